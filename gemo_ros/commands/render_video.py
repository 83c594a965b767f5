"""The MP4 part of ``gemo render``: speech in, talking-head video out, without ROS.

    gemo render --audio in.wav --emotion happy:0.7 -o out.mp4
    gemo render --audio in.wav --emotion-track track.txt --fps 25 --size 256 -o out.mp4

Frames come from the same :class:`gemo_ros.engine.Engine` the node runs (timeline,
emotion ramps, idle life, all stages), driven by a virtual clock: the whole clip is placed
at playback time 0 and frame k shows time ``k / fps``. The audio is muxed into the MP4.

Emotion track file: one command per line, ``<time_s> <command>``, where the command uses
the ``/emotion`` grammar (``happy``, ``happy 0.7``, ``sad:3``, ``fear 0.5 1.0`` with a
transition, or JSON); ``#`` starts a comment. Example::

    0.0  neutral
    1.5  happy 0.8 0.5
    4.0  {"emotion": "sad", "intensity": 0.6, "transition": 1.0}
"""

import argparse
import math
import sys
from dataclasses import replace
from typing import List, Tuple

import numpy as np

from gemo_ros.emotions import EmotionCommand, parse_emotion_command
from gemo_ros.framing import VIDEO, RenderSettings
from gemo_ros.imaging import parse_color


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the MP4 options that ``parser`` does not have yet (shared with the still render)."""
    def add(flag: str, **kw) -> None:
        try:
            parser.add_argument(flag, **kw)
        except argparse.ArgumentError:  # the parser has this option already (shared with stills)
            pass

    add("--audio", default=None, help="speech WAV/FLAC; with -o *.mp4 renders a video")
    add("--emotion", default="neutral",
        help="emotion command: happy, happy:0.7, happy:3 (level), sad 0.5")
    add("--emotion-track", default=None,
        help="file of '<time_s> <emotion command>' lines (MP4 only)")
    add("--fps", type=float, default=25.0, help="video frame rate (MP4 only, default 25)")
    add("--max-gaussians", type=int, default=0,
        help="level of detail for the video: 0 = every Gaussian (default), -1 = auto")
    add("--no-idle", action="store_true", help="MP4: no blinks, gaze or head motion")


def read_emotion_track(path: str) -> List[Tuple[float, EmotionCommand]]:
    """Read an emotion track file; return ``[(time_s, command)]`` sorted by time.

    Raises ValueError naming the file and line of a bad entry.
    """
    out = []
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = (raw if "{" in raw else raw.split("#", 1)[0]).strip()
            if not line:
                continue
            head, _, rest = line.partition(" ")
            try:
                t = float(head)
                if not math.isfinite(t) or t < 0:
                    raise ValueError(f"time must be >= 0 s, got {head}")
                out.append((t, parse_emotion_command(rest)))
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: {exc}") from None
    return sorted(out, key=lambda x: x[0])


def _emotion_arg(value) -> EmotionCommand:
    """Accept the ``--emotion`` value as a command string or a parsed (name, intensity)."""
    if value is None or isinstance(value, str):
        return parse_emotion_command(value or "neutral")
    if isinstance(value, EmotionCommand):
        return value
    name, intensity = (list(value) + [None])[:2]
    return parse_emotion_command(f"{name} {intensity}" if intensity is not None else name)


def video_framing(args: argparse.Namespace) -> RenderSettings:
    """Return the MP4's framing: :data:`gemo_ros.framing.VIDEO` with the camera options given."""
    size = int(getattr(args, "size", None) or VIDEO.width)
    changes = {"width": int(getattr(args, "width", None) or size),
               "height": int(getattr(args, "height", None) or size)}
    for arg, name in (("yaw", "yaw_deg"), ("pitch", "pitch_deg"), ("distance", "distance"),
                      ("fov", "fov_deg")):
        value = getattr(args, arg, None)
        if value is not None:
            changes[name] = float(value)
    background = getattr(args, "background", None)
    if background:
        changes["background"] = parse_color(background)
    return replace(VIDEO, **changes)


def render_video(args: argparse.Namespace) -> int:
    """Render ``args.audio`` to the MP4 ``args.output``; return the exit status."""
    import soundfile as sf
    from tqdm import tqdm

    from gemo_ros.behaviour import IdleConfig
    from gemo_ros.engine import Engine, EngineConfig
    from gemo_ros.media import write_mp4

    try:
        if not args.audio:
            raise ValueError("an MP4 needs --audio (speech to animate)")
        wave, rate = sf.read(args.audio, dtype="float32", always_2d=True)
        wave = wave.mean(axis=1)
        if wave.size == 0:
            raise ValueError(f"{args.audio} holds no samples")
        fps = float(args.fps)
        if not 1.0 <= fps <= 240.0:
            raise ValueError(f"--fps must be in [1, 240], got {fps}")
        track = [(0.0, _emotion_arg(getattr(args, "emotion", None)))]
        if args.emotion_track:
            track += read_emotion_track(args.emotion_track)
        camera = video_framing(args)
        width, height = camera.width, camera.height
        clock = [0.0]
        cfg = EngineConfig(width=width, height=height, device=getattr(args, "device", "auto"),
                           avatar=getattr(args, "avatar", "default"),
                           a2e=getattr(args, "a2e", "default") or "default",
                           residual=getattr(args, "residual", "default") or "default",
                           max_gaussians=int(getattr(args, "max_gaussians", 0)),
                           camera=camera,
                           idle=IdleConfig(enabled=not getattr(args, "no_idle", False)))
        engine = Engine(cfg, clock=lambda: clock[0])
        for w in engine.feed_audio(wave, rate, playback_time=0.0, arrival_time=-1e6).warnings:
            print(f"gemo render: {w}", file=sys.stderr)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"gemo render: {exc}", file=sys.stderr)
        return 2
    duration = wave.size / rate
    n_frames = max(int(math.ceil(duration * fps)), 1)
    pending = list(track)

    def frames():
        for k in tqdm(range(n_frames), desc="gemo render", unit="frame"):
            t = k / fps
            clock[0] = t
            while pending and pending[0][0] <= t + 1e-9:
                t_cmd, cmd = pending.pop(0)
                engine.set_emotion(cmd.emotion, cmd.intensity,
                                   0.0 if t_cmd == 0.0 and cmd.transition_s is None
                                   else cmd.transition_s, t=t_cmd)
            rgb, _ = engine.frame(t)
            yield rgb

    count = write_mp4(frames(), fps, args.output, np.asarray(wave, np.float32), rate)
    print(f"wrote {args.output}: {count} frames at {fps:g} fps ({count / fps:.2f} s), "
          f"{width}x{height}, stages: " + ", ".join(f"{k}={v}" for k, v in engine.stages.items()))
    return 0
