"""``gemo train stage2``: the command line over :mod:`gemo_ros.train.stage2`."""

import argparse
import logging
import os

import torch

from gemo_ros.commands.common import add_device_argument, device_or_exit
from gemo_ros.train.stage2 import _a2e_digest, build_head, preview, synthetic_frames, train

LOG = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command-line options of ``gemo train stage2``."""
    parser.add_argument("--avatar", default="default", help="avatar name or file")
    parser.add_argument("--max-gaussians", type=int, default=12000,
                        help="train on this level of detail of the avatar (0 = all; the "
                             "CPU runtime uses 12000)")
    parser.add_argument("--a2e", default="default",
                        help="audio-to-expression weights ('none' = recipe stand-in, dev only)")
    parser.add_argument("--data", default=None,
                        help="Stage 2 dataset folder (docs/stage2.md); default: synthetic")
    parser.add_argument("--cache", default="/tmp/gemo_stage2_frames.pt",
                        help="cache of the synthetic frames (reused when it matches)")
    parser.add_argument("--save-dataset", default=None,
                        help="also write the synthetic frames in the on-disk format here")
    parser.add_argument("--out", default="runs/stage2", help="output folder")
    parser.add_argument("--size", type=int, default=112, help="training image size (px)")
    parser.add_argument("--train-clips", type=int, default=6, help="synthetic speech clips")
    parser.add_argument("--test-clips", type=int, default=1,
                        help="held-out espeak clips (plus the bundled demo clip)")
    parser.add_argument("--intensities", type=int, default=3,
                        help="random intensities per (clip, emotion)")
    parser.add_argument("--frames", type=int, default=3,
                        help="frames per (clip, emotion, intensity)")
    parser.add_argument("--steps", type=int, default=900, help="optimiser steps")
    parser.add_argument("--batch", type=int, default=2, help="frames per step")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--reg", type=float, default=1e-3, help="offset L2 weight")
    parser.add_argument("--reg-position", type=float, default=300.0,
                        help="extra factor on the position offsets' departure from the "
                             "blendshape motion (the teacher's geometry is that motion)")
    parser.add_argument("--clusters", type=int, default=1024, help="residual clusters")
    parser.add_argument("--dim", type=int, default=64, help="residual width")
    parser.add_argument("--window", type=int, default=9, help="audio frames per window")
    parser.add_argument("--time-budget", type=float, default=0.0,
                        help="stop after this many minutes of training (0 = steps only)")
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--preview-every", type=int, default=150)
    parser.add_argument("--resume", action="store_true", help="resume from OUT/last.pt")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 is fastest on a shared 2-core machine)")
    add_device_argument(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``gemo train stage2``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    device = device_or_exit(args.device, "gemo train stage2")
    head = build_head(args.avatar, args.a2e, device, args.window, 64, args.clusters,
                      args.dim, args.max_gaussians)
    if args.data:
        from gemo_ros.train.stage2_data import load_stage2_dataset

        frames = load_stage2_dataset(args.data, head, window=args.window)
    else:
        frames = synthetic_frames(head, args)
    LOG.info("frames: %d train, %d held-out, %dx%d px", int((~frames.test).sum()),
             int(frames.test.sum()), *frames.size)
    stats = train(head, frames, args, args.out)
    meta = {"trained_by": "gemo train stage2", "steps": str(stats["steps"]),
            "minutes": f"{stats['minutes']:.1f}", "data": args.data or "synthetic teacher",
            "a2e": args.a2e if head.a2e is not None else "none (recipe stand-in)",
            "avatar": args.avatar, "size": str(frames.size[0]),
            "max_gaussians": str(args.max_gaussians),
            "train_frames": str(int((~frames.test).sum())), "seed": str(args.seed)}
    if head.a2e is not None:
        meta["a2e_sha256"] = _a2e_digest(args.a2e)
    path = os.path.join(args.out, "residual.safetensors")
    head.residual.save(path, extra=meta)
    preview(head, frames.split(test=True), os.path.join(args.out, "preview_final.png"))
    LOG.info("wrote %s (%d steps, %.1f min, photometric %.4f)", path, stats["steps"],
             stats["minutes"], stats["photo_ema"])
    return 0
