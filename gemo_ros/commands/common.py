"""What every ``gemo`` subcommand shares: the ``--device`` option and its one rule."""

import argparse
import sys

from gemo_ros.stages import resolve_device

DEVICE_HELP = "auto (CUDA when usable, else CPU; the default), cpu, cuda or cuda:N"


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--device`` (default ``auto``) to ``parser``."""
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)


def device_or_exit(name: str, prog: str) -> str:
    """Resolve ``--device`` by :func:`gemo_ros.stages.resolve_device`; exit 2 when it cannot.

    Returns ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; prints ``<prog>: <reason>`` to stderr and
    raises ``SystemExit(2)`` for a device that is unknown or not usable here.
    """
    try:
        return resolve_device(name)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
