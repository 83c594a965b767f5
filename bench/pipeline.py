"""Benchmark the real-time pipeline: per-stage and end-to-end ms per frame, fps, latency, RSS.

    python bench/pipeline.py                      # CPU: 256 and 512 px, LOD and full avatar
    python bench/pipeline.py --sizes 256 --frames 20 --device cuda
    python bench/pipeline.py --write-docs         # also update docs/benchmarks.md ## Pipeline
    python bench/pipeline.py --sizes 256 --lod -1 --avatar default toon default toon
                                                  # heads compared in one run, one after another
    python bench/pipeline.py --interleave --sizes 256 --lod -1 --avatar toon default --frames 24
                                                  # CPU ms per frame, heads alternating per frame

Stages, each timed on its own for one frame of streamed speech (median over frames):

* ``audio model``: push one 40 ms chunk into the streaming a2e model and query psi_n,
  psi_e and the feature window for the frame;
* ``blendshapes``: G(psi) = G0 + sum psi_k dG_k, mesh pose (LBS) and binding to triangles
  (the avatar's forward with the residual offsets, ``TalkingHead.head_with_offsets``);
* ``residual``: the mesh displacement M(psi_e) - M(psi_n) and the emotion residual module;
* ``render``: rasterisation (torch on CPU, gsplat on CUDA) and the copy to uint8;
* ``message``: uint8 RGB -> sensor_msgs/Image (rclpy) ;
* ``publish``: rclpy publish of that image (no subscriber; DDS serialisation cost).

End to end = ``Engine.frame`` (timeline, behaviour, all stages) + message + publish, run
back to back, so ``achieved fps`` is the most the node could publish; ``end to end CPU`` is
the CPU time (``time.process_time``) of the same frames: on a shared machine it is what
other jobs do not inflate, so heads are compared by it. Audio-in to frame-out
latency = the output latency the node needs (>= the model's lookahead) + one frame time.
"""

import argparse
import datetime
import os
import platform
import re
import resource
import statistics
import sys
import time
from typing import Dict, List

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

RATE = 16000
CHUNK = 640  # 40 ms


def _median(xs: List[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _speech() -> np.ndarray:
    import soundfile as sf

    wave, rate = sf.read(os.path.join(ROOT, "gemo_ros", "assets", "demo_speech.wav"),
                         dtype="float32")
    assert rate == RATE, rate
    return wave


def _ros_publisher():
    """Return (make_msg, publish) using rclpy, or (None, None) without ROS."""
    try:
        import rclpy
        import sensor_msgs.msg  # noqa: F401
    except ImportError:
        return None, None
    from gemo_ros import ros_io

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=int(os.environ.get("GEMO_BENCH_DOMAIN", "97")))
    node = rclpy.create_node("gemo_bench", context=ctx)
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    pub = node.create_publisher(Image, "face/image", qos_profile_sensor_data)
    return (lambda rgb: ros_io.image_msg(rgb, time.time_ns(), "face")), pub.publish


def bench_config(size: int, max_gaussians: int, device: str, frames: int,
                 make_msg, publish, stages: Dict[str, str]) -> Dict[str, float]:
    """Time one (size, level of detail) configuration; return medians in ms and extras."""
    import torch

    from gemo_ros.emotions import emotion_index
    from gemo_ros.engine import Engine, EngineConfig
    from gemo_ros.pipeline_head import PipelineHead

    on_cuda = str(device).startswith("cuda")
    if on_cuda:  # peak GPU memory of this configuration alone (models, frames, renderer)
        torch.cuda.reset_peak_memory_stats()
    cfg = EngineConfig(width=size, height=size, device=device, max_gaussians=max_gaussians,
                       output_latency_s=0.2, **stages)
    head = PipelineHead(cfg)
    th = head.head
    clock_t = [0.0]
    eng = Engine(cfg, clock=lambda: clock_t[0], head=head)
    speech = _speech()
    sync = (torch.cuda.synchronize if str(head.device).startswith("cuda") else (lambda: None))
    emo = emotion_index("happy")
    out: Dict[str, List[float]] = {k: [] for k in ("audio", "blend", "residual", "render",
                                                   "message", "publish", "e2e", "e2e_cpu")}

    # --- stages on their own, on a stream fed 40 ms at a time -----------------------------
    stream = head.new_stream()
    pos = 0
    for k in range(frames + 3):
        t0 = time.perf_counter()
        stream.push(speech[pos:pos + CHUNK], RATE)
        pos = (pos + CHUNK) % (len(speech) - CHUNK)
        u = max(stream.final_until, 0.0)
        psi_n = stream.coefficients(u, 0, 0.0)
        psi_e = stream.coefficients(u, emo, 0.8)
        feats = stream.features(u, th.window) if th.residual is not None else None
        t1 = time.perf_counter()
        pn = torch.as_tensor(psi_n, device=th.device)[None]
        pe = torch.as_tensor(psi_e, device=th.device)[None]
        with torch.no_grad():
            offs = disp = None
            e_t = torch.tensor([emo], device=th.device)
            i_t = torch.tensor([0.8], device=th.device)
            if th.residual is not None:
                f = torch.as_tensor(feats, device=th.device)[None]
                disp = th.displacement(pn, pe)
                offs = th.offsets(pn, pe, f, e_t, i_t, disp)
            sync()
            t2 = time.perf_counter()
            g = th.head_with_offsets(pn, pe, disp, offs, e_t, i_t)
            sync()
            t3 = time.perf_counter()
            settings = th.with_settings(width=size, height=size)
            rgb, _ = th.render_gaussians(g, 0, settings=settings)
            img = rgb.mul(255).round().to(torch.uint8).cpu().numpy()
            t4 = time.perf_counter()
        msg = make_msg(img) if make_msg else None
        t5 = time.perf_counter()
        if publish:
            publish(msg)
        t6 = time.perf_counter()
        if k >= 3:  # warm-up frames excluded
            out["audio"].append((t1 - t0) * 1e3)
            out["residual"].append((t2 - t1) * 1e3)
            out["blend"].append((t3 - t2) * 1e3)
            out["render"].append((t4 - t3) * 1e3)
            out["message"].append((t5 - t4) * 1e3)
            out["publish"].append((t6 - t5) * 1e3)

    # --- end to end through the engine, streaming 40 ms per frame --------------------------
    eng.set_emotion("happy", 0.8, 0.5, t=0.0)
    pos = 0
    for k in range(frames + 3):
        eng.feed_audio(speech[pos:pos + CHUNK], RATE, arrival_time=clock_t[0])
        pos = (pos + CHUNK) % (len(speech) - CHUNK)
        t0 = time.perf_counter()
        c0 = time.process_time()
        rgb, state = eng.frame(clock_t[0])
        if make_msg:
            msg = make_msg(rgb)
            publish(msg)
        sync()
        t1 = time.perf_counter()
        c1 = time.process_time()
        clock_t[0] += 0.04
        if k >= 3:
            out["e2e"].append((t1 - t0) * 1e3)
            out["e2e_cpu"].append((c1 - c0) * 1e3)
    res = {k: _median(v) for k, v in out.items()}
    res["gaussians"] = int(th.canonical.shape[0])
    res["fps"] = 1000.0 / res["e2e"]
    res["lookahead_ms"] = 1e3 * float(getattr(stream, "lookahead_s", cfg.lookahead_s))
    res["latency_ms"] = res["lookahead_ms"] + res["e2e"]
    res["speaking"] = bool(state["speaking"])
    res["stages"] = ", ".join(f"{k}={v}" for k, v in head.stages.items())
    res["gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20 if on_cuda else None
    return res


def interleaved_cpu(avatars: List[str], size: int, lod: int, frames: int,
                    stages: Dict[str, str]) -> List[Dict[str, float]]:
    """CPU ms (``time.process_time``) per frame of residual, blend + pose and render.

    The avatars take turns frame by frame on the same streamed speech (happy 0.8), so a
    shared machine's load falls on all of them alike; medians over ``frames``.
    """
    import torch

    from gemo_ros.emotions import emotion_index
    from gemo_ros.engine import EngineConfig
    from gemo_ros.pipeline_head import PipelineHead

    heads = [PipelineHead(EngineConfig(width=size, height=size, device="cpu",
                                       max_gaussians=lod, output_latency_s=0.2,
                                       avatar=name, **stages)) for name in avatars]
    speech, emo = _speech(), emotion_index("happy")
    stream = heads[0].new_stream()
    times = [{"residual": [], "blend": [], "render": []} for _ in heads]
    pos = 0
    for k in range(frames + 2):
        stream.push(speech[pos:pos + CHUNK], RATE)
        pos = (pos + CHUNK) % (len(speech) - CHUNK)
        u = max(stream.final_until, 0.0)
        pn = torch.as_tensor(stream.coefficients(u, 0, 0.0))[None]
        pe = torch.as_tensor(stream.coefficients(u, emo, 0.8))[None]
        for head, t in zip(heads, times):
            th = head.head
            feats = torch.as_tensor(stream.features(u, th.window))[None]
            with torch.no_grad():
                c0 = time.process_time()
                e_t, i_t = torch.tensor([emo]), torch.tensor([0.8])
                disp = th.displacement(pn, pe)
                offs = th.offsets(pn, pe, feats, e_t, i_t, disp)
                c1 = time.process_time()
                g = th.head_with_offsets(pn, pe, disp, offs, e_t, i_t)
                c2 = time.process_time()
                th.render_gaussians(g, 0, settings=th.with_settings(width=size, height=size))
                c3 = time.process_time()
            if k >= 2:                                   # warm-up frames excluded
                t["residual"].append((c1 - c0) * 1e3)
                t["blend"].append((c2 - c1) * 1e3)
                t["render"].append((c3 - c2) * 1e3)
    rows = []
    for name, head, t in zip(avatars, heads, times):
        r = {k: _median(v) for k, v in t.items()}
        r.update(avatar=name, gaussians=int(head.head.canonical.shape[0]),
                 total=sum(r.values()))
        rows.append(r)
    return rows


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name(0)} + {os.cpu_count()}-core {platform.machine()}"
    return f"{os.cpu_count()}-core {platform.machine()} CPU, no GPU, shared"


def main() -> int:
    """Run the benchmark and print (and optionally record) a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--lod", type=int, nargs="+", default=[-1, 0],
                        help="max_gaussians values: -1 auto (CPU level of detail), 0 all")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--avatar", nargs="+", default=["default"],
                        help="one or more avatars (names or files), run in this order")
    parser.add_argument("--a2e", default="default")
    parser.add_argument("--residual", default="default")
    parser.add_argument("--write-docs", action="store_true",
                        help="replace the ## Pipeline section of docs/benchmarks.md")
    parser.add_argument("--json", default=None, help="also write the rows and table here")
    parser.add_argument("--interleave", action="store_true",
                        help="CPU only: CPU ms of residual, blend + pose and render with the "
                             "avatars alternating frame by frame (first size and lod)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.interleave:
        rows = interleaved_cpu(args.avatar, args.sizes[0], args.lod[0], args.frames,
                               dict(a2e=args.a2e, residual=args.residual))
        print(f"Interleaved, {args.sizes[0]} px, max_gaussians {args.lod[0]}, torch threads "
              f"{torch_threads()}, load average {os.getloadavg()[0]:.1f}; CPU ms per frame "
              f"(medians of {args.frames}):\n")
        print("| avatar | Gaussians | residual | blend + pose | render | sum |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['avatar']} | {r['gaussians']} | {r['residual']:.1f} | "
                  f"{r['blend']:.1f} | {r['render']:.1f} | {r['total']:.1f} |")
        return 0
    make_msg, publish = _ros_publisher()
    rows = []
    for lod in args.lod:
        for size in args.sizes:
            for avatar in args.avatar:
                r = bench_config(size, lod, args.device, args.frames, make_msg, publish,
                                 dict(avatar=avatar, a2e=args.a2e, residual=args.residual))
                r.update(size=size, lod=lod, avatar=avatar)
                rows.append(r)
                print(f"{avatar} {size}px {r['gaussians']} Gaussians: e2e {r['e2e']:.1f} ms "
                      f"({r['fps']:.1f} fps, {r['e2e_cpu']:.1f} CPU ms)", flush=True)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    gpu_mb = (max(r["gpu_mb"] for r in rows)  # each configuration's own peak; the largest
              if args.device.startswith("cuda") else None)
    table = _table(rows, args, rss_mb, gpu_mb)
    print(table)
    if args.write_docs:
        _write_docs(table)
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump({"device": args.device, "ros": make_msg is not None, "rows": rows,
                       "table": table, "rss_mb": rss_mb, "gpu_mb": gpu_mb,
                       "command": "python bench/pipeline.py " + " ".join(sys.argv[1:])},
                      f, indent=1)
    return 0


def _table(rows, args, rss_mb, gpu_mb) -> str:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Machine: {_machine(args.device)}; load average {os.getloadavg()[0]:.1f} at the "
        f"start; torch threads {torch_threads()}; "
        f"`python bench/pipeline.py {' '.join(sys.argv[1:])}`; {when}; medians over "
        f"{args.frames} frames of streamed speech (40 ms chunks), emotion happy 0.8.",
        "",
        "| avatar | size | Gaussians | audio model | blendshapes | residual | render | message "
        "| publish | end to end | end to end CPU | achieved fps | audio-to-frame latency |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['avatar']} | {r['size']} | {r['gaussians']} | {r['audio']:.1f} | "
            f"{r['blend']:.1f} | {r['residual']:.1f} | {r['render']:.1f} | {r['message']:.2f} | "
            f"{r['publish']:.2f} | {r['e2e']:.1f} | {r['e2e_cpu']:.1f} | {r['fps']:.1f} | "
            f"{r['latency_ms']:.0f} ms (lookahead {r['lookahead_ms']:.0f} ms) |")
    lines.append("")
    lines.append("Stages: " + "; ".join(sorted({r["stages"] for r in rows})) + ".")
    lines.append("")
    lines.append(f"All times in ms per frame. Peak RSS of the benchmark process: {rss_mb:.0f} MB"
                 + (f"; peak GPU memory {gpu_mb:.0f} MB (per configuration: "
                    + ", ".join(f"{r['size']} px {r['gaussians']} Gaussians {r['gpu_mb']:.0f} MB"
                                for r in rows) + ")." if gpu_mb is not None else "."))
    return "\n".join(lines)


def torch_threads() -> int:
    """Return torch's intra-op thread count."""
    import torch

    return torch.get_num_threads()


def _write_docs(table: str) -> None:
    path = os.path.join(ROOT, "docs", "benchmarks.md")
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    start = re.search(r"^## Pipeline\s*$", text, flags=re.M)
    header = "## Pipeline"
    if start is None:
        text = text.rstrip("\n") + f"\n\n{header}\n\n{table}\n"
    else:
        nxt = re.search(r"^## ", text[start.end():], flags=re.M)
        end = start.end() + nxt.start() if nxt else len(text)
        body = text[start.end():end]
        # keep hand-written notes after the generated table (below a '### ' heading)
        notes = body[body.find("\n### "):] if "\n### " in body else "\n"
        text = text[:start.start()] + f"{header}\n\n{table}\n{notes.rstrip()}\n\n" + text[end:]
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\n")
    print(f"updated {path}")


if __name__ == "__main__":
    raise SystemExit(main())
