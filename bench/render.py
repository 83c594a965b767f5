"""Benchmark the Gaussian rasterizer: ms/frame and peak memory per backend.

Usage::

    python bench/render.py                 # all scenes on every available backend
    python bench/render.py --quick         # fewer repeats
    python bench/render.py --profile       # also print the torch backend's stage breakdown
    python bench/render.py --backends numba --threads 1 2 --compile-time   # numba only

Backends: ``torch`` (CPU, and CUDA where present), ``numba`` (CPU, compiled, inference only;
where numba imports) and ``gsplat`` (CUDA only). ``--threads`` takes several values to
compare CPU thread counts (torch's intra-op threads; the numba backend follows them).

Scenes: ``random-{10k,50k,100k}`` (uniform in a 0.18 x 0.24 x 0.2 m box, scales 0.5-4.5 mm,
random opacities) at 256x256 and 512x512, and ``face-30k``: Gaussians on a head-sized
ellipsoid (0.24 m tall), scales 1-3 mm, flattened along the surface normal, mostly opaque,
seen from 0.65 m with a 25 degree field of view (what the avatar looks like on a robot).
"""

import argparse
import math
import os
import resource
import sys
import time
from typing import Dict, List, Tuple

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gemo_ros.render import orbit_camera, rasterize  # noqa: E402

Scene = Tuple[torch.Tensor, ...]


def random_scene(n: int, seed: int = 0) -> Scene:
    """Return ``(means, quats, scales, opacities, colors)`` scattered in a head-sized box."""
    gen = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=gen) - 0.5) * torch.tensor([0.18, 0.24, 0.2])
    quats = torch.randn(n, 4, generator=gen)
    scales = torch.rand(n, 3, generator=gen) * 0.004 + 0.0005
    opac = torch.rand(n, generator=gen)
    colors = torch.rand(n, 3, generator=gen)
    return means, quats, scales, opac, colors


def face_scene(n: int = 30_000, seed: int = 0) -> Scene:
    """Return a face-like scene: ``n`` surfels on a 0.15 x 0.24 x 0.19 m ellipsoid."""
    gen = torch.Generator().manual_seed(seed)
    semi = torch.tensor([0.075, 0.12, 0.095])
    dirs = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    means = dirs * semi
    # A little depth jitter so the skin has some thickness, like a fitted avatar.
    normals = torch.nn.functional.normalize(dirs / semi, dim=-1)
    means = means + normals * (torch.rand(n, 1, generator=gen) - 0.5) * 0.004
    # Rotate local z onto the normal: quaternion of the shortest arc (0,0,1) -> normal.
    z = torch.tensor([0.0, 0.0, 1.0]).expand(n, 3)
    axis = torch.linalg.cross(z, normals)
    w = 1.0 + normals[:, 2:3]
    quats = torch.nn.functional.normalize(torch.cat([w, axis], -1), dim=-1)
    quats[w[:, 0] < 1e-6] = torch.tensor([0.0, 1.0, 0.0, 0.0])
    tangent = 0.001 + 0.002 * torch.rand(n, 2, generator=gen)
    scales = torch.cat([tangent, 0.0003 + 0.0004 * torch.rand(n, 1, generator=gen)], -1)
    opac = 0.6 + 0.4 * torch.rand(n, generator=gen)
    skin = torch.tensor([0.8, 0.6, 0.5])
    colors = (skin + 0.1 * torch.randn(n, 3, generator=gen)).clamp(0, 1)
    return means, quats, scales, opac, colors


def avatar_scene(max_gaussians: int = 0) -> Scene:
    """Return the procedural default avatar (neutral face), optionally at a level of detail.

    ``max_gaussians > 0`` subsamples it the way the engine does on CPUs (fewer, larger
    Gaussians). Raises ImportError where the avatar package is not available.
    """
    from gemo_ros.avatar.procedural import build_default_avatar

    avatar = build_default_avatar()
    if max_gaussians > 0:
        from gemo_ros.avatar import level_of_detail
        avatar = level_of_detail(avatar, max_gaussians)
    with torch.no_grad():
        g = avatar(torch.zeros(1, 52))
    return (g.means[0], g.quats[0], g.scales[0], g.opacities[0].reshape(-1), g.colors[0])


def _rss_mb(field: str) -> float:
    """Return ``VmRSS`` / ``VmHWM`` of this process in MB (Linux), else the max RSS."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``) so the next peak is this render's.

    Freed heap memory is handed back to the OS first (``malloc_trim``), so that the base
    resident size does not already hold the previous render's buffers.
    """
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def time_render(scene: Scene, size: int, backend: str, device: torch.device, repeats: int,
                yaw: float = 0.0) -> Dict[str, float]:
    """Render ``scene`` ``repeats`` times; return wall and CPU ms/frame and peak memory (MB).

    CPU time (process time) is reported as well because the development machine is shared:
    wall time there includes waiting for other processes.
    """
    tensors = [t.to(device) for t in scene]
    viewmat, K = orbit_camera(yaw, 0.0, 0.65, 25.0, size, size, device=device)
    with torch.no_grad():
        rasterize(*tensors, viewmat, K, size, size, backend=backend)  # warm-up
        _reset_peak_rss()
        base = _rss_mb("VmRSS")
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            _, _, info = rasterize(*tensors, viewmat, K, size, size, backend=backend)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
    times.sort()
    cpu.sort()
    # CPU: peak resident memory above the resident size before the renders (MB).
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else _rss_mb("VmHWM") - base)
    return {"ms": times[len(times) // 2], "ms_min": times[0], "cpu_ms": cpu[len(cpu) // 2],
            "peak_mb": peak,
            "pairs": float(info.get("n_pairs", float("nan")))}


def compile_time() -> Dict[str, float]:
    """Return seconds to make the numba kernels ready in a fresh process: cold, then cached.

    Runs ``warm_up()`` twice in subprocesses sharing an empty ``NUMBA_CACHE_DIR``: the first
    compiles (what a robot's very first start pays), the second loads numba's disk cache.
    """
    import subprocess
    import tempfile

    code = ("import time, torch; torch.set_num_threads(2); t = time.perf_counter(); "
            "from gemo_ros.render import _numba_backend as nb; nb.warm_up(); "
            "print(time.perf_counter() - t)")
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=root)
        for key in ("cold", "cached"):
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                 text=True, check=True)
            out[key] = float(res.stdout.strip().splitlines()[-1])
    return out


def profile_numba(scene: Scene, size: int, repeats: int = 5) -> List[Tuple[str, float]]:
    """Return the numba backend's median CPU time per stage (ms) for ``scene``."""
    from gemo_ros.render import _numba_backend

    viewmat, K = orbit_camera(0.0, 0.0, 0.65, 25.0, size, size)
    stages: Dict[str, List[float]] = {}
    with torch.no_grad():
        for _ in range(repeats + 1):
            timings: Dict[str, float] = {}
            _numba_backend.rasterize_numba(*scene, viewmat[None], K[None], size, size,
                                           timings=timings)
            for key, value in timings.items():
                stages.setdefault(key, []).append(value)
    return [(key, sorted(v[1:])[len(v[1:]) // 2]) for key, v in stages.items()]


def profile_torch(scene: Scene, size: int, repeats: int = 5) -> List[Tuple[str, float]]:
    """Return the torch backend's median time per stage (ms) for ``scene``."""
    from gemo_ros.render import _torch_backend

    viewmat, K = orbit_camera(0.0, 0.0, 0.65, 25.0, size, size)
    stages: Dict[str, List[float]] = {}
    with torch.no_grad():
        for _ in range(repeats + 1):
            timings: Dict[str, float] = {}
            _torch_backend.rasterize_torch(*scene, viewmat[None], K[None], size, size,
                                           timings=timings, clock=time.process_time)
            for key, value in timings.items():
                stages.setdefault(key, []).append(value)
    return [(key, sorted(v[1:])[len(v[1:]) // 2]) for key, v in stages.items()]


def main(argv=None) -> int:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    parser.add_argument("--profile", action="store_true", help="print the stage breakdown")
    parser.add_argument("--threads", type=int, nargs="+", default=[2],
                        help="CPU thread counts to compare (torch's; numba follows them)")
    parser.add_argument("--backends", nargs="+", default=None,
                        help="only these backends (torch, numba, gsplat)")
    parser.add_argument("--compile-time", action="store_true",
                        help="also time the numba kernels' cold compile and cache load")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--no-avatar", action="store_true", help="skip the avatar scenes")
    parser.add_argument("--scenes", nargs="*", default=None,
                        help="only these scene names (e.g. face-30k random-50k)")
    parser.add_argument("--counts", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    backends = [("torch", torch.device("cpu"))]
    from gemo_ros.render._numba_backend import numba_available, warm_up
    if numba_available()[0]:
        backends.append(("numba", torch.device("cpu")))
        torch.set_num_threads(max(args.threads))
        warm_up()  # compile / load the kernels before timing
    else:
        print(f"(numba backend unavailable: {numba_available()[1]})")
    if torch.cuda.is_available():
        backends += [("gsplat", torch.device("cuda")), ("torch", torch.device("cuda"))]
    if args.backends:
        backends = [b for b in backends if b[0] in args.backends]
    if args.compile_time and numba_available()[0]:
        secs = compile_time()
        print(f"numba kernels ready in a fresh process: {secs['cold']:.1f} s cold (compile), "
              f"{secs['cached']:.1f} s from the disk cache")
    scenes = [("face-30k", face_scene(30_000))]
    if not args.no_avatar:
        try:
            scenes += [("avatar-48k", avatar_scene()), ("avatar-lod-12k", avatar_scene(12_000))]
        except Exception as exc:  # noqa: BLE001 - the bench still runs without the avatar
            print(f"(default avatar unavailable: {exc!r})")
    scenes += [(f"random-{n // 1000}k", random_scene(n)) for n in args.counts]
    if args.scenes:
        scenes = [sc for sc in scenes if sc[0] in args.scenes]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"torch {torch.__version__}, CPU threads {args.threads}, "
          f"cuda: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    print("| scene | size | backend | device | threads | wall ms/frame (median) | min "
          "| CPU ms (median) | evaluations | peak extra MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, scene in scenes:
        for size in args.sizes:
            for backend, device in backends:
                for threads in args.threads:
                    torch.set_num_threads(threads)
                    res = time_render(scene, size, backend, device, repeats)
                    pairs = "" if math.isnan(res["pairs"]) else f"{res['pairs'] / 1e6:.2f} M"
                    print(f"| {name} | {size} | {backend} | {device.type} | {threads} | "
                          f"{res['ms']:.1f} | {res['ms_min']:.1f} | {res['cpu_ms']:.1f} | "
                          f"{pairs} | {res['peak_mb']:.0f} |", flush=True)
    if args.profile and any(b[0] == "numba" for b in backends):
        torch.set_num_threads(1)
        for name, scene in scenes[:3]:
            for size in args.sizes:
                print(f"\nstage breakdown (CPU ms, median), numba, 1 thread, {name}, "
                      f"{size}x{size}:")
                for key, ms in profile_numba(scene, size, repeats):
                    print(f"  {key:>12s}: {ms:7.2f} ms")
    if args.profile and any(b[0] == "torch" for b in backends):
        for name, scene in scenes[:3]:
            for size in args.sizes:
                print(f"\nstage breakdown (CPU ms, median), torch CPU, {name}, {size}x{size}:")
                for key, ms in profile_torch(scene, size, repeats):
                    print(f"  {key:>12s}: {ms:7.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
