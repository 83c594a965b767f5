#!/usr/bin/env python3
"""Benchmark Stage 1 evaluation: G(psi) blending and posing through the mesh, per frame.

    python bench/avatar.py [--avatar default] [--threads 2] [--iters 30] [--batch 1]

Prints ms per call for: mesh posing (blendshapes + LBS), Gaussian blending, the full
``avatar(expr)`` (blend + pose + triangle frames), on CPU and on CUDA when available.
"""

import argparse
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gemo_ros.avatar import default_avatar_path, load_avatar  # noqa: E402


def _time(fn, iters: int, sync) -> float:
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench(device: str, name: str, iters: int, batch: int) -> None:
    """Print the timings on one device."""
    avatar = load_avatar(name, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    g = torch.Generator().manual_seed(0)
    expr = (torch.rand(batch, 52, generator=g) * 0.5).to(device)
    neck = torch.tensor([[0.05, 0.2, 0.0]]).expand(batch, 3).to(device)
    with torch.no_grad():
        t_mesh = _time(lambda: avatar.mesh(expr, neck), iters, sync)
        t_blend = _time(lambda: avatar.blend(expr), iters, sync)
        t_full = _time(lambda: avatar(expr, neck), iters, sync)
    print(f"{device:5s} batch {batch}: mesh pose {t_mesh:7.2f} ms | G(psi) blend {t_blend:7.2f} ms"
          f" | full avatar(expr) {t_full:7.2f} ms  ({t_full / batch:.2f} ms/frame)")


def main() -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--avatar", default="default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    avatar = load_avatar(args.avatar)
    path = default_avatar_path() if args.avatar == "default" else args.avatar
    print(f"avatar {args.avatar}: {avatar.num_gaussians} Gaussians, "
          f"{avatar.face.num_vertices} mesh vertices, {len(avatar.face.faces)} triangles, "
          f"{int(avatar.delta_index.shape[0])} Gaussians with deltas, "
          f"file {os.path.getsize(path) / 1e6:.2f} MB")
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{args.threads} threads")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for b in args.batch:
            bench(device, args.avatar, args.iters, b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
