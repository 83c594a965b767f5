"""Helpers of ``bench/gpu_check.sh``: machine probe, gsplat kernel build, the markdown report.

    python bench/gpu_check.py machine --json out/gpu_check/machine.json
    python bench/gpu_check.py kernels --json out/gpu_check/kernels.json --size 512
    python bench/gpu_check.py soak-engine --minutes 2 --size 512 --device cuda --json soak.json
    python bench/gpu_check.py compile --size 512 --frames 100 --json out/gpu_check/compile.json
    python bench/gpu_check.py report --raw out/gpu_check --out docs/gpu_check.md

``machine`` and ``kernels`` need torch (and ``kernels`` a CUDA device, or ``--device cpu
--backends torch numba`` for a self-check of the script on a CPU). ``soak-engine`` is
``bench/soak.py`` without ROS, for machines that have none (the lent GPU machines): the
engine and its real-time runtime in this process, fed live speech, emotions and bursts in
the same rhythm; same figures and markdown, with frames counted at the publish callback
instead of over DDS. ``compile`` runs the engine's frame with the head step eager, as a
CUDA graph and ``torch.compile``'d (reduce-overhead), all Gaussians: compile time, ms per
frame and per stage (CUDA events), the image difference, and the host syncs of one frame
(test/helpers).
``report`` needs only the standard library (numpy for the soak's markdown) and reads
what the other steps left in the raw folder: ``steps.tsv`` (the shell script's step log),
``*.json`` and ``*.log``.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import types
import zlib
from typing import Any, Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

#: The targets of issue 17: end-to-end fps at 512 x 512 with every Gaussian, GPU memory,
#: parity of the torch backend with gsplat (absolute and relative tolerance).
TARGET_FPS = 500.0
TARGET_SIZE = 512
TARGET_GPU_MB = 2048.0
TARGET_PARITY = 1e-4


# --- machine ----------------------------------------------------------------------------------

def _run(cmd: List[str], timeout: float = 20.0) -> str:
    """Return a command's stdout ("" when it is missing or fails)."""
    if shutil.which(cmd[0]) is None:
        return ""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _version(module: str) -> Optional[str]:
    try:
        mod = __import__(module)
    except Exception:  # noqa: BLE001 - any import failure means "not usable here"
        return None
    return str(getattr(mod, "__version__", "present"))


def _extension_dir(name: str = "gsplat_cuda") -> str:
    """Where torch's JIT puts (and finds) a compiled extension, without creating it."""
    import torch
    from torch.utils.cpp_extension import get_default_build_root

    if os.environ.get("TORCH_EXTENSIONS_DIR"):  # then torch adds no version folder
        return os.path.join(os.environ["TORCH_EXTENSIONS_DIR"], name)
    py = f"py{sys.version_info[0]}{sys.version_info[1]}{getattr(sys, 'abiflags', '')}"
    cu = ("cu" + torch.version.cuda.replace(".", "")) if torch.version.cuda else "cpu"
    return os.path.join(get_default_build_root(), f"{py}_{cu}", name)


def cmd_machine(args: argparse.Namespace) -> int:
    """Report the machine: CPU, GPU (nvidia-smi and torch), torch, CUDA toolkit, gsplat."""
    import torch

    info: Dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(), "platform": platform.platform(),
        "cpus": os.cpu_count(), "python": sys.version.split()[0],
        "python_path": sys.executable, "torch": torch.__version__,
        "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
        "gsplat": _version("gsplat"), "numpy": _version("numpy"),
        "transformers": _version("transformers"), "numba": _version("numba"),
        "rclpy": "present" if _version("rclpy") else None,
        "nvcc": (_run(["nvcc", "--version"]).splitlines() or [""])[-1] or None,
        "nvidia_smi": _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,"
                            "compute_cap", "--format=csv,noheader"]) or None,
        "extension_dir": _extension_dir(),
        "max_jobs": os.environ.get("MAX_JOBS"),
        "arch_list": os.environ.get("TORCH_CUDA_ARCH_LIST"),
    }
    try:
        with open("/proc/meminfo") as f:
            info["ram_gb"] = round(int(f.readline().split()[1]) / 2 ** 20, 1)
    except (OSError, ValueError, IndexError):
        info["ram_gb"] = None
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_mem_gb=round(p.total_memory / 2 ** 30, 1),
                    capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count,
                    gpus=torch.cuda.device_count())
    for key, value in info.items():
        print(f"{key}: {value}")
    _write_json(args.json, info)
    return 0


# --- gsplat kernels and parity on the real avatar ---------------------------------------------

def cmd_kernels(args: argparse.Namespace) -> int:
    """Build/load gsplat's CUDA kernels once (timed), then hold two backends against each other.

    The parity check renders the shipped avatar (every Gaussian) with an emotional
    expression at ``--size`` px with both backends and reports the largest difference
    against ``TARGET_PARITY`` (absolute + relative, as ``torch.testing.assert_close``).
    """
    import torch

    from gemo_ros.face.arkit import ARKIT_INDEX
    from gemo_ros.pipeline import RenderSettings, TalkingHead
    from gemo_ros.stages import load_avatar_stage

    out: Dict[str, Any] = {"device": args.device, "backends": args.backends,
                           "size": args.size}
    dev = torch.device(args.device)
    if dev.type == "cuda":
        from gemo_ros.render._gsplat_backend import gsplat_available

        out["extension_dir"] = _extension_dir()
        built = os.path.exists(os.path.join(out["extension_dir"], "gsplat_cuda.so"))
        out["cached_before"] = built
        print(f"gsplat kernels: {'loading the cached build' if built else 'JIT compiling'} in "
              f"{out['extension_dir']} (MAX_JOBS={os.environ.get('MAX_JOBS')}, "
              f"TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST')})", flush=True)
        t0 = time.perf_counter()
        ok, reason = gsplat_available()
        out["kernel_s"] = round(time.perf_counter() - t0, 1)
        out["kernels_ok"], out["kernels_reason"] = ok, reason
        print(f"gsplat kernels: {reason} ({out['kernel_s']} s)", flush=True)
        if not ok:
            _write_json(args.json, out)
            return 1
    t0 = time.perf_counter()
    avatar = load_avatar_stage("default", 0, str(dev))
    head = TalkingHead(avatar, device=dev)
    expr = torch.zeros(1, head.face_model.num_expressions, device=dev)
    for name, value in (("jawOpen", 0.6), ("mouthSmileLeft", 0.5), ("mouthSmileRight", 0.5),
                        ("browInnerUp", 0.4)):  # a talking, smiling face, not the template
        expr[0, ARKIT_INDEX[name]] = value
    with torch.no_grad():
        g = head.avatar(expr)
    out["gaussians"] = int(g.means.shape[1])
    out["load_s"] = round(time.perf_counter() - t0, 1)
    images = {}
    times = {}
    for backend in args.backends:
        settings = RenderSettings(width=args.size, height=args.size, backend=backend)
        ms = []
        with torch.no_grad():
            for k in range(args.repeats + 2):
                _sync(dev)
                t1 = time.perf_counter()
                rgb, alpha = head.render_gaussians(g, 0, settings=settings)
                _sync(dev)
                if k >= 2:
                    ms.append((time.perf_counter() - t1) * 1e3)
        images[backend] = (rgb.float(), alpha.float())
        times[backend] = round(statistics.median(ms), 3)
        print(f"{backend}: {times[backend]:.3f} ms per {args.size} px render of "
              f"{out['gaussians']} Gaussians (median of {len(ms)})", flush=True)
    out["render_ms"] = times
    if len(images) >= 2:
        ref, other = args.backends[0], args.backends[1]
        diffs = {}
        for i, name in enumerate(("rgb", "alpha")):
            a, b = images[other][i], images[ref][i]
            err = (a - b).abs()
            excess = (err - (TARGET_PARITY + TARGET_PARITY * b.abs())).max().item()
            diffs[name] = {"max_abs": err.max().item(), "mean_abs": err.mean().item(),
                           "within": bool(excess <= 0.0)}
            print(f"parity {other} vs {ref} ({name}): max |d| {diffs[name]['max_abs']:.2e}, "
                  f"mean {diffs[name]['mean_abs']:.2e}, within atol=rtol={TARGET_PARITY:g}: "
                  f"{diffs[name]['within']}", flush=True)
        out["parity"] = diffs
    if dev.type == "cuda":
        out["peak_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    _write_json(args.json, out)
    return 0


def _sync(dev: Any) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _write_json(path: Optional[str], data: Dict[str, Any]) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(data, f, indent=1, default=str)


# --- the head eager vs torch.compile ------------------------------------------------------------

def _frame_syncs(eng: Any, t: float) -> Dict[str, Any]:
    """Host syncs of one frame by kind, gsplat's own apart (test/helpers/host_syncs.py)."""
    sys.path.insert(0, os.path.join(ROOT, "test"))
    from helpers.host_syncs import HostSyncRecorder

    eng.prepare_audio(t)
    with HostSyncRecorder() as rec:
        eng.frame(t)
    lib = os.sep + "gsplat" + os.sep
    ours = [e for e in rec.events if lib not in e.origin]
    return {"ours": rec.report(ours).splitlines(),
            "gsplat": len(rec.events) - len(ours),
            "renderer_files": sorted({e.file for e in ours if "/render/" in e.file})}


def cmd_compile(args: argparse.Namespace) -> int:
    """Time the engine's frame with the head step eager and compiled (see module docstring)."""
    import numpy as np

    from gemo_ros.engine import Engine, EngineConfig
    from gemo_ros.framing import ROBOT_PANEL

    import soundfile as sf

    speech, _ = sf.read(os.path.join(ROOT, "gemo_ros", "assets", "demo_speech.wav"),
                        dtype="float32")
    out: Dict[str, Any] = {"device": args.device, "size": args.size, "frames": args.frames,
                           "modes": {}}
    images = {}
    for mode in args.modes:
        clock = [0.0]
        cfg = EngineConfig(width=args.size, height=args.size, device=args.device,
                           max_gaussians=0, compile=(False if mode == "eager" else mode),
                           camera=ROBOT_PANEL,
                           output_latency_s=0.2)
        t0 = time.perf_counter()
        eng = Engine(cfg, clock=lambda: clock[0])
        eng.audio_in_background = True  # as the runtime: audio fed outside the frame
        load_s = time.perf_counter() - t0
        eng.feed_audio(np.tile(speech, 3)[:16000 * 30], 16000, arrival_time=0.0)
        eng.set_emotion("happy", 0.8, 0.0, t=0.0)
        clock[0] = 0.5
        first = []
        for _ in range(5):  # compiling and CUDA-graph recording happen here
            eng.prepare_audio(clock[0])
            t1 = time.perf_counter()
            eng.frame(clock[0])
            first.append(time.perf_counter() - t1)
            clock[0] += 0.04
        wall, stages = [], {}
        for _ in range(args.frames):
            eng.prepare_audio(clock[0])
            t1 = time.perf_counter()
            _, state = eng.frame(clock[0])
            wall.append((time.perf_counter() - t1) * 1e3)
            for k, v in state["timings_ms"].items():
                stages.setdefault(k, []).append(v)
            clock[0] += 0.04
        eng.prepare_audio(2.0)
        images[mode], _ = eng.frame(2.0)  # one fixed instant for the image comparison
        med = statistics.median(wall)
        row = {"load_s": round(load_s, 1), "first_frames_s": [round(x, 2) for x in first],
               "frame_ms": round(med, 3), "fps": round(1e3 / med, 1),
               "p95_ms": round(float(np.percentile(wall, 95)), 3),
               "stages_ms": {k: round(statistics.median(v), 3) for k, v in stages.items()},
               "compiled": (eng.head.head.compiled if getattr(eng.head, "head", None)
                            is not None else None),
               "gaussians": int(state.get("gaussians", 0))}
        if args.device.startswith("cuda"):
            import torch

            row["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
        try:
            row["syncs"] = _frame_syncs(eng, clock[0])
        except Exception as exc:  # noqa: BLE001 - the timing stands without it
            row["syncs"] = {"error": repr(exc)}
        out["modes"][mode] = row
        if mode != args.modes[0]:
            d = np.abs(images[mode].astype(int) - images[args.modes[0]].astype(int))
            row["image_diff"] = {"vs": args.modes[0], "max_levels": int(d.max()),
                                 "pixels_differing": float((d > 0).mean())}
        print(f"{mode}: {row['frame_ms']:.3f} ms per frame ({row['fps']} fps), first frames "
              f"{row['first_frames_s']} s, stages {row['stages_ms']}, compiled "
              f"{row['compiled']}, image {row.get('image_diff')}", flush=True)
        for line in row["syncs"].get("ours", []):
            print(f"    sync: {line}", flush=True)
        del eng
        _write_json(args.json, out)  # after each mode: a run stopped at its limit keeps them
    return 0


def _compile_markdown(comp: Dict[str, Any]) -> List[str]:
    lines = [f"Engine frame at {comp.get('size')} px on {comp.get('device')}, all Gaussians, "
             f"happy 0.8 while speaking, median of {comp.get('frames')} frames (audio fed "
             f"outside the frame, as the runtime's audio thread does); stages by CUDA events "
             f"on a GPU.",
             "", "| head | compiled | first 5 frames (s) | ms per frame | fps | p95 ms | "
             "audio model | head | render | to_uint8 | peak GPU MB |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, r in comp.get("modes", {}).items():
        st = r.get("stages_ms", {})
        lines.append(f"| {mode} | {r.get('compiled')} | "
                     f"{', '.join(str(x) for x in r.get('first_frames_s', []))} | "
                     f"{r.get('frame_ms')} | {r.get('fps')} | {r.get('p95_ms')} | "
                     + " | ".join(str(st.get(k, '')) for k in ("audio_model", "head", "render",
                                                               "to_uint8"))
                     + f" | {r.get('gpu_peak_mb', '')} |")
    for mode, r in comp.get("modes", {}).items():
        d = r.get("image_diff")
        if d:
            lines += ["", f"Image, {mode} vs {d['vs']}: at most {d['max_levels']} levels "
                      f"apart, {100 * d['pixels_differing']:.3f} % of pixels differ."]
    for mode, r in comp.get("modes", {}).items():
        sy = r.get("syncs") or {}
        if "ours" in sy:
            lines += ["", f"Host syncs of one frame ({mode}; gsplat's own: {sy['gsplat']}):", ""]
            lines += [f"    {x}" for x in sy["ours"]]
    return lines


# --- a soak without ROS -------------------------------------------------------------------------

def _soak_module() -> Any:
    """Import bench/soak.py (not a package) for its clip, summary and markdown."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gemo_bench_soak",
                                                  os.path.join(ROOT, "bench", "soak.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cmd_soak_engine(args: argparse.Namespace) -> int:
    """Soak the engine + runtime in this process (no node, no DDS); see the module docstring."""
    import numpy as np

    from gemo_ros.commands.face_probe import ReceivedFrame
    from gemo_ros.engine import Engine, EngineConfig
    from gemo_ros.runtime import Runtime, RuntimeConfig

    soak = _soak_module()
    rate = soak.RATE
    clock = time.monotonic
    t_load = time.monotonic()
    engine = Engine(EngineConfig(width=args.size, height=args.size, device=args.device),
                    clock=clock)
    engine.audio_in_background = True
    probe = types.SimpleNamespace(lock=threading.Lock(), frames=[], states=[])

    def publish(rgb: Any, state: Dict[str, Any]) -> None:
        now = time.monotonic()
        flat = np.asarray(rgb).reshape(-1)
        digest = zlib.crc32(flat[:: max(flat.size // 4096, 1)].tobytes())
        with probe.lock:
            probe.frames.append(ReceivedFrame(now, float(state.get("t", 0.0)), digest,
                                              int(rgb.shape[1])))
            probe.states.append({**state, "_arrival": now})

    runtime = Runtime(engine, RuntimeConfig(fps=args.fps, width=args.size, height=args.size),
                      publish)
    runtime.start()
    print(f"[soak-engine] engine on {engine.device} ready in {time.monotonic() - t_load:.1f} s;"
          f" running {args.minutes:g} min at {args.size} px, {args.fps:g} fps", flush=True)
    clip = soak._clip().astype(np.float32)
    speech = np.concatenate([clip, np.zeros(rate, np.float32)])  # 1 s of silence between
    chunk = int(rate * 0.04)
    emotions = ["happy", "sad", "surprised", "fear", "disgusted", "angry", "contempt",
                "neutral"]
    samples: List[Dict[str, Any]] = []
    bursts: List[str] = []
    pid = os.getpid()
    t0 = time.monotonic()
    k_chunk = n_emotion = 0
    next_burst, next_sample = t0 + args.burst_every, t0
    while True:
        now = time.monotonic()
        if now - t0 >= args.minutes * 60.0:
            break
        if now >= t0 + k_chunk * 0.04:  # live speech, paced in real time
            off = (k_chunk * chunk) % len(speech)
            piece = speech[off:off + chunk]
            if len(piece) < chunk:
                piece = np.concatenate([piece, speech[: chunk - len(piece)]])
            runtime.inbox.put_audio(piece, rate, None, clock())
            k_chunk += 1
        if now - t0 >= 3.0 * (n_emotion + 1):
            runtime.inbox.put_emotion(emotions[n_emotion % 8], 0.3 + 0.1 * (n_emotion % 8),
                                      0.4, clock())
            n_emotion += 1
        if now >= next_burst:  # what a node would pass on: a 60-s message, storms, bad names
            tb = time.monotonic()
            runtime.inbox.put_audio((0.1 * np.sin(np.arange(60 * rate) * 2 * np.pi * 180 / rate)
                                     ).astype(np.float32), rate, None, clock())
            runtime.inbox.put_audio(np.zeros(640, np.float32), 0, None, clock())
            runtime.inbox.put_emotion("grumpy", 0.5, None, clock())
            for k in range(1000):
                runtime.inbox.put_emotion(emotions[k % 8], 0.1 + 0.9 * (k % 10) / 9, None,
                                          clock())
                time.sleep(max(tb + (k + 1) / 1000.0 - time.monotonic(), 0.0))
            bursts.append(f"burst at {tb - t0:.1f} s took {time.monotonic() - tb:.2f} s")
            next_burst += args.burst_every
        if now >= next_sample:
            samples.append({"t": now - t0, "rss_mb": soak._rss_mb(pid),
                            "cpu_s": soak._cpu_s(pid), "load": os.getloadavg()[0]})
            next_sample += 1.0
        time.sleep(max(min(t0 + k_chunk * 0.04, next_sample) - time.monotonic(), 0.0))
    t_end = time.monotonic()
    stopped = runtime.stop(timeout=args.max_stop)
    stop_s = time.monotonic() - t_end
    report = soak._summarise(types.SimpleNamespace(fps=args.fps, size=args.size), probe,
                             samples, bursts, t0, t_end, stop_s, 0 if stopped else 1,
                             "(in process)")
    report["mode"] = ("engine + runtime in one process, no ROS: frames counted at the "
                      "publish callback, node figures are this process's")
    if str(engine.device).startswith("cuda"):
        import torch

        report["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    print(soak.markdown(report), flush=True)
    _write_json(args.json, report)
    return 0 if stopped else 1


# --- the report ---------------------------------------------------------------------------------

def _load(raw: str, name: str) -> Optional[Dict[str, Any]]:
    path = os.path.join(raw, name)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _read(raw: str, name: str) -> str:
    try:
        with open(os.path.join(raw, name), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _steps(raw: str) -> List[Dict[str, str]]:
    rows = []
    for line in _read(raw, "steps.tsv").splitlines():
        parts = line.split("\t")
        if len(parts) >= 4:
            rows.append({"name": parts[0], "status": parts[1], "seconds": parts[2],
                         "note": parts[3], "log": parts[4] if len(parts) > 4 else ""})
    return rows


def _pytest_summary(log: str) -> Dict[str, Any]:
    """Return the final summary line of a pytest log and its SKIPPED reasons."""
    summary = ""
    for line in log.splitlines():
        if re.search(r"\b(passed|failed|skipped|error|errors|no tests ran|deselected)\b", line) \
                and re.search(r"\bin [0-9.]+s\b", line):
            summary = line.strip("= ").strip()
    skipped = [line.strip() for line in log.splitlines() if line.startswith("SKIPPED")]
    failed = [line.strip() for line in log.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return {"summary": summary or "(no pytest summary line; see the log)",
            "skipped": skipped, "failed": failed}


def _gpu_samples(raw: str) -> Dict[str, Optional[float]]:
    used, util = [], []
    for line in _read(raw, "soak_gpu.csv").splitlines():
        parts = [p.strip() for p in line.split(",")]
        try:
            used.append(float(parts[0]))
            util.append(float(parts[1]))
        except (ValueError, IndexError):
            continue
    return {"max_used_mb": max(used) if used else None,
            "mean_util": round(statistics.mean(util), 1) if util else None,
            "samples": len(used)}


def _soak_markdown(report: Dict[str, Any]) -> str:
    try:
        return _soak_module().markdown(report)
    except Exception as exc:  # noqa: BLE001 - fall back to the raw figures
        keep = {k: v for k, v in report.items() if k != "fps_windows"}
        return (f"(soak markdown unavailable: {exc!r})\n\n```json\n"
                f"{json.dumps(keep, indent=1)}\n```")


def _status(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("**PASS**" if ok else "**FAIL**")


def _targets(steps: Dict[str, Dict[str, str]], kernels: Optional[Dict[str, Any]],
             pipeline: Optional[Dict[str, Any]], tests: Dict[str, Dict[str, Any]],
             soak: Optional[Dict[str, Any]], dry: bool) -> List[str]:
    rows = ["| target | goal | measured | verdict |", "|---|---|---|---|"]
    why_na = "dry run: no GPU" if dry else "step did not produce it (see Steps)"
    # end-to-end fps at 512 with all Gaussians
    fps = mem = None
    if pipeline and pipeline.get("device", "").startswith("cuda"):
        for r in pipeline.get("rows", []):
            if r.get("size") == TARGET_SIZE and r.get("lod") == 0:
                fps = r.get("fps")
                mem = r.get("gpu_mb")
        mems = [r.get("gpu_mb") for r in pipeline.get("rows", []) if r.get("gpu_mb") is not None]
        mem = max(mems) if mems else mem
    n = (f"{fps:.0f} fps ({1000.0 / fps:.2f} ms per frame)" if fps else why_na)
    rows.append(f"| end to end at {TARGET_SIZE}x{TARGET_SIZE}, all Gaussians "
                f"(`bench/pipeline.py`) | >= {TARGET_FPS:.0f} fps | {n} | "
                f"{_status(None if fps is None else fps >= TARGET_FPS)} |")
    rows.append(f"| peak GPU memory (torch allocator, pipeline benchmark) | <= "
                f"{TARGET_GPU_MB / 1024:.0f} GB | {f'{mem:.0f} MB' if mem is not None else why_na}"
                f" | {_status(None if mem is None else mem <= TARGET_GPU_MB)} |")
    par = (kernels or {}).get("parity") if (kernels or {}).get("device", "").startswith(
        "cuda") else None
    if par:
        worst = max(v["max_abs"] for v in par.values())
        ok = all(v["within"] for v in par.values())
        rows.append(f"| torch backend vs gsplat, shipped avatar at {kernels.get('size')} px "
                    f"({kernels.get('gaussians')} Gaussians) | within {TARGET_PARITY:.0e} | max "
                    f"abs diff {worst:.1e} (rgb and alpha) | {_status(ok)} |")
    else:
        rows.append(f"| torch backend vs gsplat, shipped avatar | within {TARGET_PARITY:.0e} | "
                    f"{why_na} | n/a |")
    for key, label in (("cuda_tests", "CUDA tests (`-m cuda`: torch vs gsplat at 1e-4)"),
                       ("reference_parity", "parity with gsplat's PyTorch reference (CPU)")):
        step = steps.get(key)
        t = tests.get(key)
        if step is None or step["status"] == "SKIP" or t is None:
            reason = step["note"] if step else "not run"
            rows.append(f"| {label} | all pass | skipped: {reason} | n/a |")
            continue
        ok = step["status"] == "ok" and not t["failed"]
        rows.append(f"| {label} | all pass | {t['summary']} | {_status(ok)} |")
    step = steps.get("soak")
    if soak and step:
        rows.append(f"| soak at {soak.get('size')} px for {soak.get('minutes')} min "
                    f"(`{'soak-engine' if soak.get('mode') else 'bench/soak.py'}`) | frames keep "
                    f"flowing, Ctrl-C within the limit | mean {soak.get('fps_mean')} fps (set "
                    f"{soak.get('fps_set')}), slowest 10-s window {soak.get('fps_window_min')}, "
                    f"longest gap {soak.get('max_gap_s')} s, Ctrl-C {soak.get('ctrl_c_s')} s | "
                    f"{_status(step['status'] == 'ok')} |")
    else:
        rows.append(f"| soak | frames keep flowing, Ctrl-C within the limit | skipped: "
                    f"{step['note'] if step else 'not run'} | n/a |")
    return rows


def cmd_report(args: argparse.Namespace) -> int:
    """Write the one markdown file of a run from the raw folder."""
    raw = args.raw
    steps_list = _steps(raw)
    steps = {s["name"]: s for s in steps_list}
    machine = _load(raw, "machine.json") or {}
    env = _load(raw, "env.json") or {}
    kernels = _load(raw, "kernels.json")
    pipeline = _load(raw, "pipeline.json")
    soak = _load(raw, "soak.json")
    comp = _load(raw, "compile.json")
    tests = {k: _pytest_summary(_read(raw, f"{k}.log"))
             for k in ("cuda_tests", "reference_parity")
             if os.path.exists(os.path.join(raw, f"{k}.log"))}
    dry = args.mode.startswith("dry")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    fails = [s["name"] for s in steps_list if s["status"] in ("FAIL", "TIMEOUT")]
    lines = [
        "# GPU check",
        "",
        f"Written by `{args.command}` on {now} (overwritten by each run; raw outputs: "
        f"{args.raw_note}). Mode: **{args.mode}**. The run took {args.wall_s:.0f} s"
        + (f"; failed or timed out: {', '.join(fails)}." if fails else "; none failed."),
        "",
        "How to run it on a lent GPU machine, and what each step does: `bench/README.md`.",
        "",
        "## Targets (issue 17)",
        "",
    ]
    lines += _targets(steps, kernels, pipeline, tests, soak, dry)
    lines += ["", "## Machine", ""]
    gpu = machine.get("gpu") or ("none (CUDA not available to torch)"
                                 if machine else "not probed")
    lines += [
        f"- GPU: {gpu}" + (f", {machine.get('gpu_mem_gb')} GiB, compute capability "
                           f"{machine.get('capability')}, {machine.get('sms')} SMs"
                           if machine.get("gpu") else ""),
        f"- nvidia-smi: {machine.get('nvidia_smi') or 'not available'}",
        f"- CPU: {machine.get('cpus')} cores, {machine.get('ram_gb')} GiB RAM; "
        f"{machine.get('platform')}",
        f"- Python {machine.get('python')} ({env.get('python') or machine.get('python_path')}; "
        f"environment: {env.get('kind', 'unknown')}), torch {machine.get('torch')} "
        f"(CUDA {machine.get('torch_cuda')}), gsplat {machine.get('gsplat')}, transformers "
        f"{machine.get('transformers')}, rclpy {machine.get('rclpy') or 'missing'}",
        f"- CUDA compiler: {machine.get('nvcc') or 'nvcc not found'}",
        f"- gsplat JIT cache: `{machine.get('extension_dir')}` (TORCH_EXTENSIONS_DIR moves "
        f"it; MAX_JOBS={machine.get('max_jobs')}, "
        f"TORCH_CUDA_ARCH_LIST={machine.get('arch_list')})",
    ]
    if env.get("missing"):
        lines.append(f"- not importable here: {', '.join(env['missing'])}")
    lines += ["", "## Steps", "", "| step | status | seconds | note |", "|---|---|---:|---|"]
    for s in steps_list:
        lines.append(f"| {s['name']} | {s['status']} | {s['seconds']} | "
                     f"{s['note'].replace('|', '/')} |")
    if kernels and kernels.get("device", "").startswith("cuda"):
        lines += ["", "## gsplat kernels", ""]
        lines.append(f"- {'loaded from the cache' if kernels.get('cached_before') else 'built'}"
                     f" in {kernels.get('kernel_s')} s: {kernels.get('kernels_reason')}")
        if kernels.get("render_ms"):
            lines.append("- one render of the shipped avatar at "
                         f"{kernels.get('size')} px ({kernels.get('gaussians')} Gaussians): "
                         + ", ".join(f"{k} {v:.3f} ms" for k, v in kernels["render_ms"].items()))
        for name, d in (kernels.get("parity") or {}).items():
            lines.append(f"- parity {name}: max abs diff {d['max_abs']:.2e}, mean "
                         f"{d['mean_abs']:.2e}")
    lines += ["", "## Tests", ""]
    if not tests:
        lines.append("No test step ran.")
    for key, t in tests.items():
        lines.append(f"- `{key}`: {t['summary']}")
        for item in (t["failed"] + t["skipped"])[:12]:
            lines.append(f"  - {item}")
    lines += ["", "## Pipeline benchmark", ""]
    if pipeline:
        lines.append(f"`{pipeline.get('command')}`"
                     + ("" if pipeline.get("ros") else " (no rclpy here: the message and "
                        "publish columns are empty and not in the end-to-end time)") + ".")
        lines += ["", pipeline.get("table", "").strip()]
    else:
        step = steps.get("pipeline")
        lines.append(f"Not run: {step['note'] if step else 'no such step'}.")
    lines += ["", "## Head compile (torch.compile, CUDA graphs)", ""]
    if comp:
        lines += _compile_markdown(comp)
    else:
        step = steps.get("head_compile")
        lines.append(f"Not run: {step['note'] if step else 'no such step'}.")
    lines += ["", "## Soak", ""]
    if soak:
        gpu_mem = _gpu_samples(raw)
        lines.append(f"`{args.soak_command or 'bench/soak.py'}`"
                     + (f" ({soak['mode']})" if soak.get("mode") else "") + ".")
        lines += ["", _soak_markdown(soak).strip()]
        if soak.get("gpu_peak_mb") is not None:
            lines += ["", f"Peak GPU memory of the torch allocator: {soak['gpu_peak_mb']:.0f} MB."]
        if gpu_mem["samples"]:
            lines += ["", f"GPU during the soak (nvidia-smi, whole device, CUDA context "
                      f"included): at most {gpu_mem['max_used_mb']:.0f} MiB used, "
                      f"utilisation {gpu_mem['mean_util']} % on average "
                      f"({gpu_mem['samples']} samples)."]
    else:
        step = steps.get("soak")
        lines.append(f"Not run: {step['note'] if step else 'no such step'}.")
    text = "\n".join(lines).rstrip() + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}")
    return 0


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def main() -> int:
    """Dispatch the sub-commands."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("machine", help="probe the machine and the Python environment")
    p.add_argument("--json")
    p = sub.add_parser("kernels", help="build gsplat's kernels; backend parity on the avatar")
    p.add_argument("--json")
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", type=int, default=TARGET_SIZE)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--backends", nargs="+", default=["gsplat", "torch"],
                   help="first is the reference (gsplat on CUDA)")
    p = sub.add_parser("soak-engine", help="bench/soak.py without ROS (engine + runtime)")
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--burst-every", type=float, default=30.0)
    p.add_argument("--max-stop", type=float, default=2.0)
    p.add_argument("--json")
    p = sub.add_parser("compile", help="engine frame with the head eager vs torch.compile")
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", type=int, default=TARGET_SIZE)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--modes", nargs="+", default=["eager", "cudagraph", "reduce-overhead"],
                   choices=["eager", "cudagraph", "reduce-overhead", "default"],
                   help="the first is the reference of the image comparison")
    p.add_argument("--json")
    p = sub.add_parser("report", help="write the markdown report from the raw folder")
    p.add_argument("--raw", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--mode", default="full")
    p.add_argument("--command", default="bash bench/gpu_check.sh")
    p.add_argument("--raw-note", default="out/gpu_check/")
    p.add_argument("--soak-command", default="")
    p.add_argument("--wall-s", type=float, default=0.0, help="the whole run's seconds")
    args = parser.parse_args()
    return {"machine": cmd_machine, "kernels": cmd_kernels, "soak-engine": cmd_soak_engine,
            "compile": cmd_compile, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
