#!/usr/bin/env python3
"""Build the embedded avatars: gemo_ros/assets/avatar_default.safetensors and avatar_toon.

Deterministic (seeded). Two kinds:

* ``--kind human`` (the default head, ``load_avatar("default")``): Gaussians on the ICT Face
  Model (``gemo_ros.face.ict``, asset from ``scripts/build_ict_asset.py``) with the procedural
  human appearance and hair of ``gemo_ros.avatar.human``;
* ``--kind toon`` (``load_avatar("toon")``, ``avatar:=toon``): the stylised procedural head
  of ``gemo_ros.face.default_head`` with the appearance of ``gemo_ros.avatar.procedural``.

Both are saved in the avatar format of docs/avatar_format.md.

    python scripts/build_default_avatar.py [--kind human|toon|all] [--gaussians N] [--seed 0]
                                           [-o PATH]
"""

import argparse
import logging
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gemo_ros.avatar.io import save_avatar  # noqa: E402

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gemo_ros", "assets")
#: kind -> (output file, default Gaussian count)
KINDS = {"human": ("avatar_default.safetensors", 48000),
         "toon": ("avatar_toon.safetensors", 48000)}


def build(kind: str, gaussians: int, seed: int):
    """Return the avatar of ``kind`` (``human`` or ``toon``)."""
    if kind == "human":
        from gemo_ros.avatar.human import build_human_avatar
        return build_human_avatar(gaussians, seed=seed)
    from gemo_ros.avatar.procedural import build_default_avatar
    avatar = build_default_avatar(gaussians, seed=seed)
    avatar.metadata.update(name="toon", built_by="scripts/build_default_avatar.py --kind toon")
    return avatar


def main() -> int:
    """Build and save the chosen avatar(s)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["human", "toon", "all"], default="human")
    parser.add_argument("--gaussians", type=int, default=0,
                        help="approximate count (0: the kind's default, 48000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", default=None, help="file (one kind only)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    kinds = list(KINDS) if args.kind == "all" else [args.kind]
    if args.output and len(kinds) > 1:
        parser.error("-o/--output needs one --kind")
    for kind in kinds:
        name, count = KINDS[kind]
        out = args.output or os.path.join(ASSETS, name)
        torch.manual_seed(args.seed)
        t0 = time.time()
        avatar = build(kind, args.gaussians or count, args.seed)
        size = save_avatar(avatar, out, half=True, tol=2e-3)
        print(f"wrote {os.path.normpath(out)} ({kind}): {avatar.num_gaussians} Gaussians, "
              f"{size / 1e6:.2f} MB, {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
