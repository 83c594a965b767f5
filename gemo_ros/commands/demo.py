"""`gemo demo`: run the real avatar node over DDS on the bundled speech clip and record it.

What it does, step by step (progress is printed):

1. starts ``avatar_node`` as a separate process on a private ROS_DOMAIN_ID;
2. waits for its first frame on ``face/image``;
3. plays the bundled speech clip twice into ``audio`` as S16LE chunks paced in real time
   (40 ms by default, the way a TTS or microphone node publishes), while walking
   ``emotion`` through all eight emotions at two intensities;
4. records ``face/image`` and ``face/state``, stops the node with SIGINT;
5. writes ``out/demo.mp4`` (frames held at their playback stamps, so picture and sound stay
   in step whatever frame rate the machine achieved; the audio muxed in at the playback time
   the node gave it) and ``out/demo_contact_sheet.png`` (one frame per emotion step).
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from gemo_ros.commands.common import add_device_argument
from gemo_ros.emotions import EMOTIONS

CLIP = "demo_speech.wav"
INTENSITIES = (0.4, 1.0)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options."""
    parser.add_argument("--out-dir", default="out", help="output folder (default: out)")
    parser.add_argument("--audio", default=None,
                        help="speech WAV to play (default: the bundled demo_speech.wav)")
    parser.add_argument("--fps", type=float, default=25.0, help="node frame rate (default 25)")
    parser.add_argument("--size", type=int, default=0,
                        help="image size in px (default 0: the node's automatic choice)")
    add_device_argument(parser)
    parser.add_argument("--avatar", default="default", help="avatar name or path")
    parser.add_argument("--chunk-ms", type=float, default=40.0,
                        help="audio chunk length published every chunk-ms (default 40)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="times the clip is played (default 2)")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="ROS_DOMAIN_ID for the demo (default: a random private one)")
    parser.add_argument("--node-arg", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra node parameter, e.g. --node-arg idle.enabled:=false")
    parser.add_argument("--video-min-size", type=int, default=256,
                        help="small frames are scaled up (bilinear) to at least this many "
                             "pixels in the MP4 (default 256; 0 keeps the node's size)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds to wait for the node's first frame (default 300)")


def _say(msg: str) -> None:
    print(f"[gemo demo] {msg}", flush=True)


def _load_clip(path: Optional[str]) -> Tuple[np.ndarray, int]:
    import soundfile as sf

    if path is None:
        from importlib import resources

        with resources.as_file(resources.files("gemo_ros") / "assets" / CLIP) as p:
            wave, rate = sf.read(str(p), dtype="float32", always_2d=True)
    else:
        wave, rate = sf.read(path, dtype="float32", always_2d=True)
    return wave.mean(axis=1), int(rate)


def _start_node(args: argparse.Namespace, domain: int, log_path: str) -> subprocess.Popen:
    config = _config_path()
    cmd = [sys.executable, "-m", "gemo_ros.node", "--ros-args"]
    if config:
        cmd += ["--params-file", config]
    params = [f"fps:={float(args.fps)!r}", f"device:={args.device}", f"avatar:={args.avatar}"]
    if args.size:
        params += [f"width:={args.size}", f"height:={args.size}"]
    params += list(args.node_arg)
    for p in params:
        cmd += ["-p", p]
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1")
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    log = open(log_path, "w")
    _say("starting avatar_node: " + " ".join(cmd[1:]))
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def _config_path() -> Optional[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.path.join(here, "..", "..", "config", "avatar.yaml"),):
        if os.path.exists(cand):
            return os.path.normpath(cand)
    try:
        from ament_index_python.packages import get_package_share_directory

        cand = os.path.join(get_package_share_directory("gemo_ros"), "config", "avatar.yaml")
        return cand if os.path.exists(cand) else None
    except Exception:  # noqa: BLE001 - ament_index is optional without a ROS install
        return None


def _tail(path: str, n: int = 25) -> str:
    try:
        with open(path) as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def _play(rec: Any, clip: np.ndarray, rate: int, args: argparse.Namespace,
          schedule: List[Tuple[float, str]], lead_s: float, pause_s: float) -> float:
    """Publish the clip(s) paced in real time and the emotion schedule; return the duration."""
    from tqdm import tqdm

    from gemo_ros.ros_io import bytes_from_pcm

    chunk = max(int(rate * args.chunk_ms / 1000.0), 1)
    events: List[Tuple[float, str, Any]] = [(t, "emotion", text) for t, text in schedule]
    t = lead_s
    for _ in range(max(args.repeat, 1)):
        for k in range(0, len(clip), chunk):
            events.append((t + k / rate, "audio", bytes_from_pcm(clip[k:k + chunk], "S16LE")))
        t += len(clip) / rate + pause_s
    total = t - pause_s + 1.0
    events.sort(key=lambda e: e[0])
    start = time.monotonic()
    label = "idle"
    with tqdm(total=round(total, 1), unit="s", desc="[gemo demo] playing", mininterval=0.5,
              bar_format="{desc}: {n:.1f}/{total:.1f} s |{bar}| {postfix}") as bar:
        last = 0.0
        for when, kind, payload in events:
            delay = start + when - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if kind == "audio":
                rec.send_audio(payload)
            else:
                rec.send_emotion(payload)
                cmd = json.loads(payload)
                label = f"{cmd['emotion']} {cmd['intensity']:g}"
            now = time.monotonic()
            if now - last >= 0.5:
                last = now
                bar.n = round(min(now - start, total), 1)
                bar.set_postfix_str(f"/emotion {label}, frames {len(rec.frames)}")
        time.sleep(max(start + total - time.monotonic(), 0.0))
        bar.n = round(total, 1)
        bar.set_postfix_str(f"frames {len(rec.frames)}")
    return total


def _scaled(frames, scale: float):
    """Yield frames resized by ``scale`` (bilinear) for a watchable video of a small node."""
    from PIL import Image

    for f in frames:
        h, w = f.shape[:2]
        size = (int(round(w * scale)) // 2 * 2, int(round(h * scale)) // 2 * 2)
        yield np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR))


def _utterance_starts(states: List[Dict[str, Any]]) -> Dict[int, float]:
    """Return the playback start time of every utterance the node reported."""
    starts: Dict[int, List[float]] = {}
    for s in states:
        if s.get("utterance") is not None and s.get("utterance_time") is not None:
            starts.setdefault(s["utterance"], []).append(s["t"] - s["utterance_time"])
    return {k: float(np.median(v)) for k, v in starts.items()}


def run(args: argparse.Namespace) -> int:
    """Run the demo; return 0 on success."""
    try:
        import rclpy  # noqa: F401
        import audio_common_msgs.msg  # noqa: F401
    except ImportError as exc:
        print(f"gemo demo needs ROS 2 (rclpy, audio_common_msgs): {exc}\n"
              f"Run `bash scripts/setup.sh` once, then `source .venv/env.sh`.", file=sys.stderr)
        return 2
    from gemo_ros.media import contact_sheet, hold_frames, probe_duration, write_mp4

    t_begin = time.monotonic()
    os.makedirs(args.out_dir, exist_ok=True)
    clip, rate = _load_clip(args.audio)
    domain = args.domain_id if args.domain_id is not None else random.randint(30, 99)
    log_path = os.path.join(args.out_dir, "demo_node.log")
    _say(f"ROS_DOMAIN_ID={domain}; node log: {log_path}")
    proc = _start_node(args, domain, log_path)
    from gemo_ros.commands.face_probe import FaceProbe

    rec = FaceProbe(domain, "gemo_demo")
    ok = False
    try:
        t0 = time.monotonic()
        while not rec.frames:
            if proc.poll() is not None:
                _say(f"the node exited with code {proc.returncode}:\n{_tail(log_path)}")
                return 1
            if time.monotonic() - t0 > args.timeout:
                _say(f"no frame after {args.timeout:.0f} s:\n{_tail(log_path)}")
                return 1
            time.sleep(0.1)
        first = rec.frames[0].image
        _say(f"node ready after {time.monotonic() - t0:.1f} s: {first.shape[1]}x{first.shape[0]}"
             f" frames")
        for line in _tail(log_path, 40).splitlines():
            if "stages" in line or "auto on CPU" in line or "level of detail" in line:
                _say("node: " + line.split("]: ", 1)[-1])
        # The emotion walk: every emotion at two intensities, evenly over the speech.
        lead_s, pause_s = 1.0, 1.0
        speech_s = max(args.repeat, 1) * (len(clip) / rate + pause_s) - pause_s
        steps = [(e, i) for e in EMOTIONS for i in INTENSITIES]
        step_s = speech_s / len(steps)
        schedule = [(lead_s + k * step_s, json.dumps({"emotion": e, "intensity": i,
                                                      "transition": min(0.4, step_s / 3)}))
                    for k, (e, i) in enumerate(steps)]
        t_play = rec.now()
        total = _play(rec, clip, rate, args, schedule, lead_s, pause_s)
        time.sleep(0.5)
        ok = True
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        rec.close()
    if not ok:
        return 1
    with rec.lock:
        frames = [(f.stamp, f.image) for f in rec.frames if f.stamp >= t_play]
        states = [s for s in rec.states if s["t"] >= t_play]
    frames.sort(key=lambda x: x[0])
    if len(frames) < 2:
        _say(f"only {len(frames)} frames were recorded:\n{_tail(log_path)}")
        return 1
    stamps = [s for s, _ in frames]
    images = [f for _, f in frames]

    # Video: constant rate from the playback stamps; audio placed where the node played it.
    fps = float(args.fps)
    n_out = int(total * fps)
    audio = np.zeros(int(total * rate) + rate, np.float32)
    starts = sorted(_utterance_starts(states).values())
    for st in starts[: max(args.repeat, 1)]:
        k = int(round((st - t_play) * rate))
        if 0 <= k < len(audio):
            seg = clip[: len(audio) - k]
            audio[k:k + len(seg)] += seg
    audio = audio[: int(n_out / fps * rate)]
    mp4 = os.path.join(args.out_dir, "demo.mp4")
    video = hold_frames(stamps, images, t_play, fps, n_out)
    scale = (args.video_min_size / images[0].shape[0]
             if 0 < images[0].shape[0] < args.video_min_size else 1.0)
    if scale > 1.0:
        video = _scaled(video, scale)
    write_mp4(video, fps, mp4, audio, rate)
    duration = probe_duration(mp4)

    # Contact sheet: the last frame of each emotion step (the ramp has settled there).
    picks, labels = [], []
    for k, (e, i) in enumerate(steps):
        t_end = t_play + lead_s + (k + 1) * step_s - 0.05
        j = int(np.searchsorted(stamps, t_end)) - 1
        if j >= 0:
            picks.append(images[j])
            labels.append(f"{e} {i:g}")
    sheet = os.path.join(args.out_dir, "demo_contact_sheet.png")
    contact_sheet(picks, labels, columns=4, path=sheet, cell=max(images[0].shape[0], 128))

    span = stamps[-1] - stamps[0]
    achieved = (len(stamps) - 1) / span if span > 0 else 0.0
    timings: Dict[str, List[float]] = {}
    for s in states:
        for k, v in s.get("timings_ms", {}).items():
            timings.setdefault(k, []).append(v)
    lat = [s["latency_s"] for s in states if s.get("latency_s") is not None]
    _say(f"wrote {mp4}: {duration:.2f} s at {fps:g} fps, node frames {images[0].shape[1]}x"
         f"{images[0].shape[0]}" + (f" shown x{scale:.2f}" if scale > 1.0 else "")
         + f", audio muxed ({len(starts)} utterances)")
    _say(f"wrote {sheet}")
    _say(f"frames received: {len(stamps)} in {span:.1f} s = {achieved:.1f} fps achieved "
         f"(node asked for {fps:g}); device {states[-1].get('device') if states else '?'}")
    if timings:
        _say("median ms per frame: " + ", ".join(
            f"{k} {np.median(v):.1f}" for k, v in timings.items()))
    if lat:
        _say(f"audio-to-frame latency: median {np.median(lat) * 1e3:.0f} ms")
    motion = motion_stats(stamps, images, t_play, t_play + total)
    problems = motion_problems(motion, fps)
    _say(f"distinct frames: {motion.distinct} of {len(images)}; "
         f"longest gap {motion.longest_gap_s:.2f} s")
    _say(f"done in {time.monotonic() - t_begin:.0f} s")
    if problems:
        for p in problems:
            _say(f"FAILED: {p}")
        _say(f"the video above shows it; node log: {log_path}")
        return 3
    return 0


def _longest_gap(stamps: List[float], t0: float, t1: float) -> float:
    """Longest time (s) between consecutive frame stamps in [t0, t1], edges included."""
    inside = [s for s in stamps if t0 <= s <= t1]
    edges = [t0] + inside + [t1]
    return max(b - a for a, b in zip(edges, edges[1:]))


class MotionStats(NamedTuple):
    """What a recording shows: longest gap (s), achieved fps, distinct pictures, frames."""

    longest_gap_s: float
    achieved_fps: float
    distinct: int
    frames: int


def motion_stats(stamps: List[float], images: List[np.ndarray], t0: float,
                 t1: float) -> MotionStats:
    """Measure the frames stamped in [t0, t1] (each picture hashed once)."""
    inside = len([s for s in stamps if t0 <= s <= t1])
    return MotionStats(_longest_gap(stamps, t0, t1), inside / max(t1 - t0, 1e-9),
                       len({hash(f.tobytes()) for f in images}), len(images))


def motion_problems(stats: MotionStats, fps: float, max_gap_s: float = 2.0) -> List[str]:
    """Return what is wrong with a recording (empty when the face kept moving at rate).

    Fails when frames stopped for more than ``max_gap_s``, the achieved rate is below half
    the requested one, or most frames repeat the same picture (a frozen face).
    """
    problems = []
    if stats.longest_gap_s > max_gap_s:
        problems.append(f"frames stopped for {stats.longest_gap_s:.1f} s (more than "
                        f"{max_gap_s:g} s)")
    if stats.achieved_fps < 0.5 * fps:
        problems.append(f"achieved {stats.achieved_fps:.1f} fps, below half the requested "
                        f"{fps:g} fps")
    if stats.frames and stats.distinct < 0.5 * stats.frames:
        problems.append(f"the face froze: only {stats.distinct} distinct pictures in "
                        f"{stats.frames} frames")
    return problems


def check_motion(stamps: List[float], images: List[np.ndarray], fps: float, t0: float,
                 t1: float, max_gap_s: float = 2.0) -> List[str]:
    """Return what is wrong with the recording ``stamps``/``images`` over [t0, t1]."""
    return motion_problems(motion_stats(stamps, images, t0, t1), fps, max_gap_s)
