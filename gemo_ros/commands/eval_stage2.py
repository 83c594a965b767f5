"""``gemo eval stage2``: the command line over :mod:`gemo_ros.train.eval_stage2`."""

import argparse
import json
import logging

import torch

from gemo_ros.commands.common import add_device_argument, device_or_exit
from gemo_ros.train.eval_stage2 import (contact_sheet, evaluate, heldout_frames, load_head,
                                        markdown_table)

LOG = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command-line options of ``gemo eval stage2``."""
    parser.add_argument("--avatar", default="default", help="avatar name or file")
    parser.add_argument("--max-gaussians", type=int, default=12000,
                        help="evaluate this level of detail (0 = every Gaussian)")
    parser.add_argument("--a2e", default="default", help="a2e weights ('none' = stand-in)")
    parser.add_argument("--residual", default="default", help="residual weights to evaluate")
    parser.add_argument("--data", default=None,
                        help="Stage 2 dataset folder (its test split); default: synthetic")
    parser.add_argument("--size", type=int, default=112, help="image size of synthetic frames")
    parser.add_argument("--test-clips", type=int, default=1,
                        help="held-out espeak clips besides the demo clip")
    parser.add_argument("--frames", type=int, default=3, help="frames per (clip, emotion, level)")
    parser.add_argument("--json", default=None, help="write the metrics as JSON here")
    parser.add_argument("--table", default=None, help="write the markdown table here")
    parser.add_argument("--sheet", default=None,
                        help="write the contact sheet PNG here "
                             "(e.g. docs/stage2_contact_sheet.png)")
    parser.add_argument("--sheet-size", type=int, default=160, help="contact-sheet tile size")
    parser.add_argument("--sheet-emotion", default="happy", help="emotion of the yaw row")
    parser.add_argument("--sheet-time", type=float, default=1.2,
                        help="seconds into the demo speech shown on the sheet")
    parser.add_argument("--sheet-only", action="store_true",
                        help="only write the contact sheet (no metrics)")
    parser.add_argument("--threads", type=int, default=1)
    add_device_argument(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``gemo eval stage2``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(max(1, args.threads))
    try:
        head = load_head(args.avatar, args.a2e, args.residual,
                         device_or_exit(args.device, "gemo eval stage2"), args.max_gaussians)
    except (FileNotFoundError, ValueError) as exc:
        print(f"gemo eval stage2: {exc}")
        return 2
    if args.sheet_only:
        if not args.sheet:
            print("gemo eval stage2: --sheet-only needs --sheet PATH")
            return 2
        contact_sheet(head, args.sheet, args.sheet_size, args.sheet_emotion, args.sheet_time)
        LOG.info("wrote %s", args.sheet)
        return 0
    frames = heldout_frames(head, args)
    metrics = evaluate(head, frames, progress=not args.no_progress)
    table = markdown_table(metrics)
    print(table)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(metrics, fh, indent=1)
    if args.table:
        with open(args.table, "w") as fh:
            fh.write(table)
    if args.sheet:
        contact_sheet(head, args.sheet, args.sheet_size, args.sheet_emotion, args.sheet_time)
        LOG.info("wrote %s", args.sheet)
    better = (metrics["overall"]["residual"]["psnr"] > metrics["overall"]["blendshapes"]["psnr"]
              and metrics["overall"]["residual"]["ssim"]
              > metrics["overall"]["blendshapes"]["ssim"])
    LOG.info("residual %s the blendshape-only head on held-out frames",
             "improves on" if better else "does NOT improve on")
    return 0
