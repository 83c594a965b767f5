"""``gemo eval stage1``: the command line over :mod:`gemo_ros.train.eval_stage1`."""

import argparse
import json
import logging
import os

import torch

from gemo_ros.commands.common import add_device_argument, device_or_exit
from gemo_ros.train.eval_stage1 import evaluate, side_by_side
from gemo_ros.train.stage1_data import load_stage1_dataset

LOG = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``gemo eval stage1`` arguments."""
    parser.add_argument("--avatar", required=True, help="fitted avatar (.safetensors)")
    parser.add_argument("--data", required=True, help="Stage 1 dataset folder")
    parser.add_argument("--image", default=None, help="write a side-by-side PNG here")
    parser.add_argument("--json", default=None, help="write the metrics as JSON here")
    parser.add_argument("--compare", default=None,
                        help="another avatar to add as a row of the figure (e.g. the GT)")
    add_device_argument(parser)
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "gsplat"))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = keep)")


def run(args: argparse.Namespace) -> int:
    """Run ``gemo eval stage1``."""
    from gemo_ros.avatar.io import load_avatar
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = device_or_exit(args.device, "gemo eval stage1")
    dataset = load_stage1_dataset(args.data, splits=("test", "novel", "train"))
    avatar = load_avatar(args.avatar, device=device)
    results = evaluate(avatar, dataset, backend=args.backend, device=device)
    if not results:
        LOG.warning("%s has no test or novel frames: nothing to evaluate", args.data)
    for split, res in results.items():
        print(f"{split:6s} PSNR {res['psnr']:6.2f} dB  SSIM {res['ssim']:.4f}  "
              f"({res['frames']} frames)")
        for view, v in res.get("views", {}).items():
            print(f"  {view:8s} PSNR {v['psnr']:6.2f} dB  SSIM {v['ssim']:.4f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"avatar": args.avatar, "data": args.data, **results}, fh, indent=1)
    if args.image:
        extra = {}
        if args.compare:
            extra[os.path.basename(args.compare)] = load_avatar(args.compare, device=device)
        side_by_side(avatar, dataset, args.image, backend=args.backend, device=device,
                     extra=extra)
        print(f"wrote {args.image}")
    return 0
