"""Benchmark the emotion residual module alone: ms per frame at the default avatar's size.

Usage::

    python bench/residual.py [--gaussians 12000 48000] [--clusters 512 1024 2048]
                             [--threads 2] [--device cpu|cuda] [--repeats 30]

Times ``EmotionResidual.forward`` (no grad, batch 1) on random inputs: displacement
``[1, N, 3]``, the avatar's canonical positions (the shipped default avatar, subsampled to
N, or random points when the avatar is missing), a 9-frame audio window. Reports the
median and the minimum of ``--repeats`` runs (the minimum is the least disturbed by other
processes on a shared machine). Also reports the one-off cost of clustering (``bind``).
"""

import argparse
import statistics
import time

import torch

from gemo_ros.avatar.residual import EmotionResidual, ResidualConfig


def canonical_points(n: int) -> torch.Tensor:
    """Canonical means of the default avatar (subsampled to n), or random head-sized points."""
    try:
        from gemo_ros.avatar import load_avatar
        from gemo_ros.avatar import level_of_detail

        avatar = level_of_detail(load_avatar("default"), n)
        return avatar.canonical_means()
    except (FileNotFoundError, ImportError, ValueError):
        return torch.randn(n, 3) * 0.08


def sync(device: str) -> None:
    """Wait for queued GPU work."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench(n: int, clusters: int, device: str, repeats: int, feature_dim: int) -> dict:
    """Return timings (ms) of one configuration."""
    torch.manual_seed(0)
    model = EmotionResidual(ResidualConfig(feature_dim=feature_dim, num_clusters=clusters))
    model = model.to(device).eval()
    canonical = canonical_points(n).to(device)
    frames = (torch.linalg.qr(torch.randn(n, 3, 3))[0].to(device),
              torch.full((n, 1), 0.003, device=device))
    t0 = time.perf_counter()
    binding = model.bind(canonical, frames=frames)
    bind_ms = (time.perf_counter() - t0) * 1e3
    disp = torch.randn(1, n, 3, device=device) * 0.003
    audio = torch.randn(1, 9, feature_dim, device=device)
    emotion = torch.tensor([1], device=device)
    intensity = torch.tensor([0.7], device=device)
    times = []
    with torch.no_grad():
        for k in range(repeats + 3):
            sync(device)
            t = time.perf_counter()
            model(disp, canonical, audio, emotion, intensity, binding=binding)
            sync(device)
            if k >= 3:  # warm-up
                times.append((time.perf_counter() - t) * 1e3)
    return {"gaussians": n, "clusters": binding.num_clusters, "median_ms": statistics.median(times),
            "min_ms": min(times), "bind_ms": bind_ms}


def main() -> None:
    """Run the benchmark grid and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, nargs="+", default=[12000, 48000])
    parser.add_argument("--clusters", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--feature-dim", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"device {args.device}, torch threads {args.threads}, torch {torch.__version__}")
    print("| Gaussians | clusters | median ms | min ms | bind (once) ms |")
    print("|---:|---:|---:|---:|---:|")
    for n in args.gaussians:
        for c in args.clusters:
            r = bench(n, c, args.device, args.repeats, args.feature_dim)
            print(f"| {r['gaussians']} | {r['clusters']} | {r['median_ms']:.2f} | "
                  f"{r['min_ms']:.2f} | {r['bind_ms']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
