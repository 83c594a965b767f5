"""Benchmark Stage 1 training: seconds per optimisation step vs. resolution and Gaussians.

Usage::

    python -m gemo_ros.train.stage1_data --out /tmp/stage1_synth256 --size 256   # once
    python bench/stage1.py --data /tmp/stage1_synth256 [--steps 15] [--threads 1]

For each (training resolution, Gaussian count) it builds a trainer, runs a few warm-up
steps and times ``--steps`` full steps (pose, render with the torch backend on CPU or gsplat
on CUDA, L1 + SSIM + mask loss, backward, Adam), without densification. Prints one line per
setting; record the numbers with the machine in docs/benchmarks.md.
"""

import argparse
import os
import platform
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gemo_ros.train.stage1 import Stage1Config, Stage1Trainer  # noqa: E402
from gemo_ros.train.stage1_data import load_stage1_dataset  # noqa: E402


def main() -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Stage 1 dataset (e.g. 256 px synthetic)")
    parser.add_argument("--downscales", default="2,1", help="comma-separated training scales")
    parser.add_argument("--gaussians", default="5000,20000", help="comma-separated counts")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_stage1_dataset(args.data)
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, device {args.device}, "
          f"{args.threads} thread(s)")
    for down in [int(x) for x in args.downscales.split(",")]:
        for n in [int(x) for x in args.gaussians.split(",")]:
            cfg = Stage1Config(iterations=10 ** 6, num_init=n, max_gaussians=n,
                               downscale=down, densify_from=1.0, densify_until=1.0)
            trainer = Stage1Trainer(dataset, cfg, device=args.device)
            for _ in range(args.warmup):
                trainer.train_step()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            dt = (time.perf_counter() - t0) / args.steps
            print(f"{trainer.width}x{trainer.height}  {n:6d} Gaussians  "
                  f"{dt * 1000:8.1f} ms/step  ({1 / dt:5.2f} steps/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
