#!/usr/bin/env python3
"""Build the embedded default avatar: gemo_ros/assets/avatar_default.safetensors.

Deterministic (seeded): the procedural face model of ``gemo_ros.face.default_head`` is
sampled with Gaussians, given a procedural appearance and appearance blendshapes
(``gemo_ros.avatar.procedural``), and saved in the avatar format of docs/avatar_format.md.

    python scripts/build_default_avatar.py [--gaussians 48000] [--seed 0] [-o PATH]
"""

import argparse
import logging
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gemo_ros.avatar.io import save_avatar  # noqa: E402
from gemo_ros.avatar.procedural import build_default_avatar  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gemo_ros",
                           "assets", "avatar_default.safetensors")


def main() -> int:
    """Build and save the default avatar."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, default=48000, help="approximate count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", default=DEFAULT_OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.manual_seed(args.seed)
    t0 = time.time()
    avatar = build_default_avatar(args.gaussians, seed=args.seed)
    size = save_avatar(avatar, args.output, half=True, tol=2e-3)
    print(f"wrote {os.path.normpath(args.output)}: {avatar.num_gaussians} Gaussians, "
          f"{size / 1e6:.2f} MB, {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
