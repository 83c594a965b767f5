"""Soak benchmark: the node alone under live speech, emotions and bad-input bursts.

    python bench/soak.py --minutes 30 --size 256            # the issue's soak, writes JSON
    python bench/soak.py --minutes 1 --size 64 --max-gap 2  # the integration test's version

Starts ``avatar_node`` as its own process on a private ROS domain, then from this process:

* publishes live speech on ``audio``: the bundled clip looped, S16LE in 40 ms chunks paced in
  real time, 1 s of silence between repetitions;
* publishes an emotion on ``emotion`` every 3 s (all eight in turn, intensities 0.3-1.0);
* every 30 s, a bad-input burst: a message with an odd byte count, one 60-second message,
  1000 emotion commands in 1 s, invalid JSON, unknown names, a NaN intensity, and an
  ``audio_info`` with sample rate 0;
* records every ``face/image`` (arrival time, a pixel digest) and ``face/state``; samples the
  node's RSS and CPU time every second;
* stops the node with SIGINT and times its exit.

Prints a Markdown report (fps per 10-second window, gaps, RSS, CPU, latency, Ctrl-C time)
and writes the raw figures as JSON (``--json``). Exit status 1 when a gap between frames
exceeded ``--max-gap`` or the node did not stop within ``--max-stop`` seconds.
"""

import argparse
import datetime
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

RATE = 16000
WINDOW_S = 10.0


def _rss_mb(pid: int) -> Optional[float]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _cpu_s(pid: int) -> Optional[float]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _clip() -> np.ndarray:
    import soundfile as sf

    wave, rate = sf.read(os.path.join(ROOT, "gemo_ros", "assets", "demo_speech.wav"),
                         dtype="float32")
    assert rate == RATE, rate
    return wave


def _burst(probe: Any, rng: random.Random, log: List[str]) -> None:
    """Send one burst of bad and abusive input (as the issue lists it)."""
    from gemo_ros.ros_io import bytes_from_pcm

    t0 = time.monotonic()
    probe.send_audio(b"\x01\x02\x03")                                   # odd byte count
    long_msg = (0.1 * np.sin(np.arange(60 * RATE) * 2 * np.pi * 180 / RATE)).astype(np.float32)
    probe.send_audio(bytes_from_pcm(long_msg, "S16LE"))                 # a 60-second message
    probe.send_emotion("not json {")
    probe.send_emotion('{"emotion": "happy", "intensity": }')           # invalid JSON
    probe.send_emotion(f"grumpy{rng.randint(0, 999)} 0.5")              # unknown names
    probe.send_emotion("bored")
    probe.send_emotion('{"emotion": "sad", "intensity": NaN}')          # NaN intensity
    probe.send_emotion("happy nan")
    probe.send_info(0)                                                  # sample rate 0
    # The storm comes after a pause: with KEEP_LAST history a flood may replace queued
    # commands not yet taken (the last one wins anyway); the bad input must be seen first.
    time.sleep(0.3)
    names = ["happy", "sad", "angry", "surprised", "fear", "disgusted", "contempt", "neutral"]
    t1 = time.monotonic()
    end = t1 + 1.0
    for k in range(1000):                                               # 1000 commands in 1 s
        probe.send_emotion(f"{names[k % 8]} {0.1 + 0.9 * (k % 10) / 9:.2f}")
        delay = t1 + (k + 1) / 1000.0 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    probe.send_info(RATE)                                               # back to the real rate
    log.append(f"burst at {t0:.1f} took {time.monotonic() - t0:.2f} s (deadline {end:.1f})")


def _windows(arrivals: np.ndarray, t0: float, t1: float) -> List[Dict[str, float]]:
    out = []
    start = t0
    while start + WINDOW_S <= t1 + 1e-6:
        n = int(((arrivals >= start) & (arrivals < start + WINDOW_S)).sum())
        out.append({"t": round(start - t0, 1), "fps": round(n / WINDOW_S, 2)})
        start += WINDOW_S
    return out


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the soak; return the figures."""
    from gemo_ros.ros_io import bytes_from_pcm

    domain = args.domain_id if args.domain_id is not None else random.randint(120, 220)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1")
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    cmd = [sys.executable, "-m", "gemo_ros.node", "--ros-args", "--params-file",
           os.path.join(ROOT, "config", "avatar.yaml"), "-p", f"fps:={float(args.fps)!r}",
           "-p", f"device:={args.device}"]
    if args.size:
        cmd += ["-p", f"width:={args.size}", "-p", f"height:={args.size}"]
    for p in args.node_arg:
        cmd += ["-p", p]
    log_path = args.node_log
    log = open(log_path, "w")
    print(f"[soak] node: {' '.join(cmd[1:])} (domain {domain}, log {log_path})", flush=True)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    from gemo_ros.commands.face_probe import FaceProbe

    probe = FaceProbe(domain, "gemo_soak", keep_images=False)
    rng = random.Random(0)
    samples: List[Dict[str, float]] = []
    bursts: List[str] = []
    try:
        t_wait = time.monotonic()
        while not probe.frames:
            if proc.poll() is not None:
                raise RuntimeError(f"the node exited with code {proc.returncode}; see {log_path}")
            if time.monotonic() - t_wait > args.start_timeout:
                raise RuntimeError(f"no frame after {args.start_timeout:.0f} s; see {log_path}")
            time.sleep(0.1)
        print(f"[soak] first frame after {time.monotonic() - t_wait:.1f} s; running "
              f"{args.minutes:g} min", flush=True)
        clip = _clip()
        pcm = bytes_from_pcm(clip, "S16LE")
        chunk = int(RATE * 0.04) * 2
        gap = bytes(int(RATE * 1.0) * 2)
        speech = pcm + gap
        emotions = ["happy", "sad", "surprised", "fear", "disgusted", "angry", "contempt",
                    "neutral"]
        t0 = time.monotonic()
        duration = args.minutes * 60.0
        k_chunk = 0
        n_emotion = 0
        next_burst = t0 + args.burst_every
        next_sample = t0
        last_print = t0
        while True:
            now = time.monotonic()
            if now - t0 >= duration:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the node died with code {proc.returncode}; see {log_path}")
            # audio: the chunk due now (never catch up in a rush: real-time pacing)
            due = t0 + k_chunk * 0.04
            if now >= due:
                off = (k_chunk * chunk) % len(speech)
                piece = speech[off:off + chunk]
                if len(piece) < chunk:
                    piece += speech[: chunk - len(piece)]
                probe.send_audio(piece)
                k_chunk += 1
            if now - t0 >= 3.0 * (n_emotion + 1):
                e = emotions[n_emotion % len(emotions)]
                probe.send_emotion(json.dumps({"emotion": e,
                                               "intensity": round(0.3 + 0.1 * (n_emotion % 8), 2),
                                               "transition": 0.4}))
                n_emotion += 1
            if now >= next_burst:
                _burst(probe, rng, bursts)
                next_burst += args.burst_every
            if now >= next_sample:
                samples.append({"t": now - t0, "rss_mb": _rss_mb(proc.pid),
                                "cpu_s": _cpu_s(proc.pid), "load": os.getloadavg()[0]})
                next_sample += 1.0
            if now - last_print >= 30.0:
                now = time.monotonic()  # a burst may have just taken a second
                last_print = now
                with probe.lock:
                    recent = [f for f in probe.frames if f.arrival >= now - WINDOW_S]
                print(f"[soak] {now - t0:6.0f} s: {len(recent) / WINDOW_S:5.1f} fps, RSS "
                      f"{samples[-1]['rss_mb']:.0f} MB", flush=True)
            time.sleep(max(min(t0 + k_chunk * 0.04, next_sample) - time.monotonic(), 0.0))
        t_end = time.monotonic()
    finally:
        stop_s = None
        if proc.poll() is None:
            t_sig = time.monotonic()
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=args.max_stop + 10.0)
                stop_s = time.monotonic() - t_sig
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        exit_code = proc.returncode
        probe.close()
        log.close()
    return _summarise(args, probe, samples, bursts, t0, t_end, stop_s, exit_code, log_path)


def _summarise(args: argparse.Namespace, probe: Any, samples: List[Dict[str, float]],
               bursts: List[str], t0: float, t_end: float, stop_s: Optional[float],
               exit_code: int, log_path: str) -> Dict[str, Any]:
    with probe.lock:
        frames = [f for f in probe.frames if t0 <= f.arrival <= t_end]
        states = [s for s in probe.states if t0 <= s["_arrival"] <= t_end]
    arrivals = np.array([f.arrival for f in frames])
    gaps = np.diff(np.concatenate([[t0], arrivals, [t_end]])) if len(arrivals) else \
        np.array([t_end - t0])
    big = [(round(float(arrivals[i - 1] - t0) if i else 0.0, 1), round(float(g), 3))
           for i, g in enumerate(gaps) if g > 0.5]
    windows = _windows(arrivals, t0, t_end)
    rss = [s["rss_mb"] for s in samples if s["rss_mb"] is not None]
    warm = [s for s in samples if s["t"] >= min(60.0, 0.2 * (t_end - t0))]
    rss_start = warm[0]["rss_mb"] if warm else (rss[0] if rss else None)
    rss_end = rss[-1] if rss else None
    span_h = (warm[-1]["t"] - warm[0]["t"]) / 3600.0 if len(warm) > 1 else 0.0
    growth = ((rss_end - rss_start) / rss_start * 100.0 / span_h
              if rss_start and span_h > 0 else None)
    cpu = [s["cpu_s"] for s in samples if s["cpu_s"] is not None]
    cpu_pct = (100.0 * (cpu[-1] - cpu[0]) / (samples[-1]["t"] - samples[0]["t"])
               if len(cpu) > 1 and samples[-1]["t"] > samples[0]["t"] else None)
    lat = [s["latency_s"] for s in states if s.get("latency_s") is not None]
    used = [s["render_size"] for s in states if s.get("render_size")]
    sizes = sorted(set(used))
    digests = len({f.digest for f in frames})
    stage_ms: Dict[str, List[float]] = {}
    for s in states:
        for k, v in (s.get("timings_ms") or {}).items():
            stage_ms.setdefault(k, []).append(v)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "minutes": round((t_end - t0) / 60.0, 2), "fps_set": args.fps, "size": args.size,
        "frames": len(frames), "distinct_frames": digests,
        "fps_mean": round(len(frames) / (t_end - t0), 2),
        "fps_windows": windows,
        "fps_window_min": min((w["fps"] for w in windows), default=0.0),
        "max_gap_s": round(float(gaps.max()), 3), "gaps_over_0_5_s": big,
        "rss_start_mb": rss_start, "rss_end_mb": rss_end, "rss_max_mb": max(rss, default=None),
        "rss_growth_pct_per_h": None if growth is None else round(growth, 2),
        "cpu_pct": None if cpu_pct is None else round(cpu_pct, 1),
        "latency_median_ms": round(float(np.median(lat)) * 1e3, 1) if lat else None,
        "latency_p95_ms": round(float(np.percentile(lat, 95)) * 1e3, 1) if lat else None,
        "render_sizes": sizes,
        "render_size_median": float(np.median(used)) if used else None,
        "stage_ms_median": {k: round(float(np.median(v)), 2) for k, v in stage_ms.items()},
        "watchdog_stalls": max((s.get("stalls", 0) for s in states), default=None),
        "dropped": max((s.get("dropped", 0) for s in states), default=None),
        "load_avg_mean": round(float(np.mean([s["load"] for s in samples])), 2) if samples
        else None,
        "load_avg_max": round(max(s["load"] for s in samples), 2) if samples else None,
        "ctrl_c_s": None if stop_s is None else round(stop_s, 2), "exit_code": exit_code,
        "bursts": len(bursts), "node_log": log_path,
    }
    return report


def markdown(r: Dict[str, Any]) -> str:
    """Return the report as Markdown (the docs/benchmarks.md section body)."""
    lines = [f"Machine: {r['machine']}; {r['date']}; {r['minutes']} min at {r['size'] or 'auto'}"
             f" px, fps set {r['fps_set']:g}.", "",
             f"- frames received over DDS: {r['frames']} ({r['distinct_frames']} distinct), "
             f"mean {r['fps_mean']} fps, slowest 10-s window {r['fps_window_min']} fps",
             f"- longest gap between frames: {r['max_gap_s']} s; gaps over 0.5 s: "
             f"{len(r['gaps_over_0_5_s'])} {r['gaps_over_0_5_s'][:10]}",
             f"- node RSS after warm-up {r['rss_start_mb']:.0f} MB, at the end "
             f"{r['rss_end_mb']:.0f} MB, peak {r['rss_max_mb']:.0f} MB "
             f"({r['rss_growth_pct_per_h']} % per hour)",
             f"- node CPU {r['cpu_pct']} % (of one core); audio-to-frame latency median "
             f"{r['latency_median_ms']} ms, p95 {r['latency_p95_ms']} ms",
             f"- median ms per frame: {r['stage_ms_median']}",
             f"- render sizes used by the quality controller: {r['render_sizes']} (median "
             f"{r['render_size_median']}); watchdog "
             f"stalls {r['watchdog_stalls']}; frames dropped by the node {r['dropped']}",
             f"- machine load average (1 min) during the run: mean {r['load_avg_mean']}, max "
             f"{r['load_avg_max']} (2 cores; other jobs count too)",
             f"- bad-input bursts: {r['bursts']}; Ctrl-C to exit: {r['ctrl_c_s']} s "
             f"(exit code {r['exit_code']})", "",
             "| window start (s) | fps |", "|---:|---:|"]
    lines += [f"| {w['t']:g} | {w['fps']} |" for w in r["fps_windows"]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--size", type=int, default=256, help="image size (0 = node's auto)")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--burst-every", type=float, default=30.0, help="seconds between bursts")
    parser.add_argument("--node-arg", action="append", default=[], metavar="NAME:=VALUE")
    parser.add_argument("--domain-id", type=int, default=None)
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument("--max-gap", type=float, default=None,
                        help="exit 1 when a gap between frames exceeds this (s)")
    parser.add_argument("--max-stop", type=float, default=2.0,
                        help="exit 1 when Ctrl-C takes longer than this (s)")
    parser.add_argument("--node-log", default="soak_node.log")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    report = run(args)
    print(markdown(report), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    failed = []
    if args.max_gap is not None and report["max_gap_s"] > args.max_gap:
        failed.append(f"a gap of {report['max_gap_s']} s between frames (> {args.max_gap} s)")
    if report["ctrl_c_s"] is None or report["ctrl_c_s"] > args.max_stop:
        failed.append(f"Ctrl-C took {report['ctrl_c_s']} s (> {args.max_stop} s)")
    if report["exit_code"] not in (0, -signal.SIGINT):
        failed.append(f"node exit code {report['exit_code']}")
    for f in failed:
        print(f"[soak] FAILED: {f}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
