"""``gemo train stage1``: the command line over :mod:`gemo_ros.train.stage1`."""

import argparse
import logging
import os
import time

import torch

from gemo_ros.commands.common import add_device_argument, device_or_exit
from gemo_ros.face.model import load_face_model
from gemo_ros.train.stage1 import CHECKPOINT_NAME, Stage1Config, Stage1Trainer
from gemo_ros.train.stage1_data import load_stage1_dataset

LOG = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``gemo train stage1`` arguments."""
    d = Stage1Config()
    parser.add_argument("--data", required=True, help="Stage 1 dataset folder (dataset.json)")
    parser.add_argument("--out", required=True, help="output avatar (.safetensors)")
    parser.add_argument("--workdir", default=None,
                        help="checkpoints and previews (default: <out without suffix>_stage1/)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <workdir>/checkpoint.pt")
    parser.add_argument("--iters", type=int, default=d.iterations, help="optimisation steps")
    parser.add_argument("--init-gaussians", type=int, default=d.num_init)
    parser.add_argument("--max-gaussians", type=int, default=d.max_gaussians)
    parser.add_argument("--downscale", type=int, default=1,
                        help="train at 1/N of the dataset resolution (CPU: 2 for 512 px data)")
    parser.add_argument("--face-model", default="default", help="face model of the dataset")
    add_device_argument(parser)
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "gsplat"))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = keep)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--lambda-ssim", type=float, default=d.lambda_ssim)
    parser.add_argument("--lambda-mask", type=float, default=d.lambda_mask)
    parser.add_argument("--grad-threshold", type=float, default=d.grad_threshold)
    parser.add_argument("--preview-every", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=0)
    parser.add_argument("--name", default=None, help="avatar name stored in its metadata")
    parser.add_argument("--delta-tol", type=float, default=2e-3,
                        help="blendshape rows with max |delta| <= this are not stored "
                             "(raw units; smaller files, no visible change)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``gemo train stage1``."""
    from gemo_ros.avatar.io import save_avatar
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = args.workdir or os.path.splitext(args.out)[0] + "_stage1"
    config = Stage1Config(iterations=args.iters, num_init=args.init_gaussians,
                          max_gaussians=args.max_gaussians, downscale=args.downscale,
                          seed=args.seed, lambda_ssim=args.lambda_ssim,
                          lambda_mask=args.lambda_mask, grad_threshold=args.grad_threshold,
                          preview_every=args.preview_every,
                          checkpoint_every=args.checkpoint_every)
    dataset = load_stage1_dataset(args.data)
    device = device_or_exit(args.device, "gemo train stage1")
    trainer = Stage1Trainer(dataset, config, load_face_model(args.face_model), device,
                            args.backend)
    ckpt = os.path.join(workdir, CHECKPOINT_NAME)
    if args.resume:
        if not os.path.isfile(ckpt):
            raise SystemExit(f"gemo train stage1: --resume but no checkpoint at {ckpt}")
        trainer.load_checkpoint(ckpt)
        LOG.info("resumed from %s at step %d", ckpt, trainer.step)
    LOG.info("training %d Gaussians at %dx%d on %s for %d steps (workdir %s)",
             trainer.num_gaussians, trainer.width, trainer.height, device, config.iterations,
             workdir)
    t0 = time.time()
    trainer.train(workdir=workdir, progress=not args.quiet)
    seconds = time.time() - t0
    meta = {"name": args.name or os.path.splitext(os.path.basename(args.out))[0],
            "trained_by": "gemo train stage1", "dataset": os.path.abspath(args.data),
            "iterations": trainer.step, "train_seconds_this_run": round(seconds, 1),
            "resolution": [trainer.width, trainer.height], "device": device}
    size = save_avatar(trainer.avatar(meta), args.out, tol=args.delta_tol)
    last = trainer.history[-50:]
    mean_psnr = sum(m["psnr"] for m in last) / max(1, len(last))
    LOG.info("wrote %s (%d Gaussians, %.1f MB) after %.0f s; train PSNR (last 50 steps) "
             "%.2f dB", args.out, trainer.num_gaussians, size / 1e6, seconds, mean_psnr)
    return 0
