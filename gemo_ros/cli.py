"""The `gemo` command: demo, render, a2e, train, avatar, eval.

Each subcommand lives in its own module under ``gemo_ros/commands/`` (``gemo X`` ->
``commands/X.py``, ``gemo train|eval Y`` -> ``commands/train_Y.py`` / ``commands/eval_Y.py``)
exposing ``configure(parser)`` and ``run(args) -> int``; the library they call
(``gemo_ros/train/`` and below) has no command-line code. This file only routes, so
importing it stays cheap.
"""

import argparse
import importlib
import sys
from typing import List, Optional

#: command -> module, or command -> {subcommand -> module}
COMMANDS = {
    "demo": ("gemo_ros.commands.demo",
             "run the node over DDS on a bundled clip and record out/demo.mp4"),
    "render": ("gemo_ros.commands.render", "render a still PNG or an MP4 from audio, without ROS"),
    "a2e": ("gemo_ros.commands.a2e", "audio -> per-frame expression coefficients (CSV)"),
    "train": {
        "a2e": ("gemo_ros.commands.train_a2e", "train the audio-to-expression model"),
        "stage1": ("gemo_ros.commands.train_stage1",
                   "fit a Gaussian blendshape avatar to a person's frames"),
        "stage2": ("gemo_ros.commands.train_stage2", "train the emotion residual module"),
    },
    "avatar": {
        "from-photo": ("gemo_ros.commands.avatar_from_photo",
                       "a Gaussian avatar of a person from one photo (offline)"),
        "from-video": ("gemo_ros.commands.avatar_from_video",
                       "a Gaussian avatar from a short video: tracking + Stage 1 (offline)"),
    },
    "eval": {
        "a2e": ("gemo_ros.commands.eval_a2e", "evaluate the audio-to-expression model"),
        "stage1": ("gemo_ros.commands.eval_stage1", "evaluate a fitted avatar on held-out frames"),
        "stage2": ("gemo_ros.commands.eval_stage2", "evaluate the emotion residual"),
    },
}


def _add(sub: argparse._SubParsersAction, name: str, entry: tuple) -> None:
    module_name, help_text = entry
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(_module=module_name)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not module_name.startswith(exc.name or "?"):
            raise
        parser.set_defaults(_missing=f"`{module_name}` is not available in this build")
        return
    module.configure(parser)


def build_parser(argv: List[str]) -> argparse.ArgumentParser:
    """Build the parser; only the modules of the chosen command are imported."""
    parser = argparse.ArgumentParser(prog="gemo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    chosen = [a for a in argv if not a.startswith("-")][:2]
    for name, entry in COMMANDS.items():
        if isinstance(entry, dict):
            group = sub.add_parser(name, help=f"{name}: " + ", ".join(entry))
            gsub = group.add_subparsers(dest="target", metavar="TARGET")
            gsub.required = True
            for target, leaf in entry.items():
                if chosen[:2] == [name, target]:
                    _add(gsub, target, leaf)
                else:
                    gsub.add_parser(target, help=leaf[1])
        elif chosen[:1] == [name]:
            _add(sub, name, entry)
        else:
            sub.add_parser(name, help=entry[1])
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the `gemo` command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    missing = getattr(args, "_missing", None)
    if missing:
        print(f"gemo: {missing}", file=sys.stderr)
        return 2
    module = importlib.import_module(args._module)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
