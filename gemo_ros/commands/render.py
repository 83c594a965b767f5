"""``gemo render``: render the avatar to a still PNG (no ROS).

    gemo render --avatar default --expression jawOpen=0.8,mouthSmileLeft=0.5 \
        --yaw 30 --pitch 0 --size 512 -o face.png

The command is split in two so that other outputs (audio-driven MP4s) can reuse it:
:func:`request_from_args` turns the parsed arguments into a :class:`RenderRequest`, and
:func:`render_still` / :func:`render_frame` turn a request (or an avatar + coefficients +
camera) into an ``uint8 [H, W, 3]`` image.
"""

import argparse
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from gemo_ros.imaging import to_uint8

LOG = logging.getLogger(__name__)

#: Default framing: the whole head, slightly below the eye line, from 0.72 m.
DEFAULT_TARGET = (0.0, -0.01, 0.0)
DEFAULT_DISTANCE = 0.72
DEFAULT_FOV_DEG = 22.0
DEFAULT_BACKGROUND = (0.86, 0.89, 0.93)


@dataclass
class RenderRequest:
    """Everything needed to render one still (angles in degrees, lengths in metres)."""

    avatar: str = "default"
    expression: Dict[str, float] = field(default_factory=dict)
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    head_yaw_deg: float = 0.0
    head_pitch_deg: float = 0.0
    distance: float = DEFAULT_DISTANCE
    fov_deg: float = DEFAULT_FOV_DEG
    width: int = 512
    height: int = 512
    background: Tuple[float, float, float] = DEFAULT_BACKGROUND
    device: str = "auto"
    backend: str = "auto"
    output: str = "face.png"


def parse_expression(text: str) -> Dict[str, float]:
    """Parse ``"jawOpen=0.8,mouthSmileLeft=0.5"`` into ``{name: weight}`` (ARKit names).

    Raises:
        ValueError: malformed item, unknown name or a weight outside [0, 1].
    """
    from gemo_ros.face.arkit import ARKIT_NAMES
    out: Dict[str, float] = {}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"expression item {item!r} is not NAME=WEIGHT")
        if name not in ARKIT_NAMES:
            close = [n for n in ARKIT_NAMES if n.lower() == name.lower()]
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown blendshape {name!r}{hint}; see gemo_ros/face/arkit.py")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"weight of {name} is not a number: {value!r}") from None
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight of {name} must be in [0, 1], got {weight}")
        out[name] = weight
    return out


def parse_color(text: str) -> Tuple[float, float, float]:
    """Parse ``"0.9,0.9,0.95"`` (0..1) or ``"#e0e4ea"`` into an RGB triple in [0, 1]."""
    t = text.strip()
    if t.startswith("#") and len(t) == 7:
        return tuple(int(t[i:i + 2], 16) / 255.0 for i in (1, 3, 5))
    parts = [float(p) for p in t.split(",")]
    if len(parts) != 3 or not all(0.0 <= p <= 1.0 for p in parts):
        raise ValueError(f"background must be R,G,B in [0, 1] or #rrggbb, got {text!r}")
    return tuple(parts)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``gemo render`` arguments."""
    parser.add_argument("--avatar", default="default",
                        help="'default' (embedded head) or an avatar .safetensors file")
    parser.add_argument("--expression", default="",
                        help="ARKit weights, e.g. jawOpen=0.8,mouthSmileLeft=0.5")
    parser.add_argument("--yaw", type=float, default=0.0,
                        help="camera yaw in degrees (+ toward the avatar's left)")
    parser.add_argument("--pitch", type=float, default=0.0,
                        help="camera pitch in degrees (+ from above)")
    parser.add_argument("--head-yaw", type=float, default=0.0, help="head turn in degrees")
    parser.add_argument("--head-pitch", type=float, default=0.0, help="head nod in degrees")
    parser.add_argument("--distance", type=float, default=DEFAULT_DISTANCE,
                        help="camera distance in metres")
    parser.add_argument("--fov", type=float, default=DEFAULT_FOV_DEG,
                        help="vertical field of view in degrees")
    parser.add_argument("--size", type=int, default=512, help="image width and height (px)")
    parser.add_argument("--width", type=int, default=None, help="override the width")
    parser.add_argument("--height", type=int, default=None, help="override the height")
    parser.add_argument("--background", default=None, help="R,G,B in [0, 1] or #rrggbb")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "gsplat"))
    parser.add_argument("-o", "--output", default="face.png", help="output PNG")
    # --emotion / --audio stills go through the full pipeline (gemo_ros.pipeline.TalkingHead)
    parser.add_argument("--time", type=float, default=0.0,
                        help="still: seconds into --audio of the frame to render")
    parser.add_argument("--a2e", default="default", help="audio-to-expression weights")
    parser.add_argument("--residual", default="default",
                        help="emotion residual weights ('none' = blendshapes only)")
    # -o *.mp4 renders a talking-head video through the engine (gemo_ros/commands/render_video)
    from gemo_ros.commands.render_video import add_video_arguments
    add_video_arguments(parser)


def request_from_args(args: argparse.Namespace) -> RenderRequest:
    """Validate parsed arguments into a :class:`RenderRequest` (ValueError on bad input)."""
    size = int(args.size)
    width = int(args.width or size)
    height = int(args.height or size)
    if width <= 0 or height <= 0 or width > 8192 or height > 8192:
        raise ValueError(f"image size must be 1..8192 px, got {width}x{height}")
    if not args.distance > 0:
        raise ValueError(f"--distance must be positive, got {args.distance}")
    if not 1.0 <= args.fov <= 120.0:
        raise ValueError(f"--fov must be in [1, 120] degrees, got {args.fov}")
    bg = parse_color(args.background) if args.background else DEFAULT_BACKGROUND
    return RenderRequest(
        avatar=args.avatar, expression=parse_expression(args.expression),
        yaw_deg=float(args.yaw), pitch_deg=float(args.pitch),
        head_yaw_deg=float(getattr(args, "head_yaw", 0.0)),
        head_pitch_deg=float(getattr(args, "head_pitch", 0.0)),
        distance=float(args.distance), fov_deg=float(args.fov), width=width, height=height,
        background=bg, device=args.device, backend=args.backend, output=args.output)


def resolve_device(name: str):
    """``"auto"`` -> CUDA when available else CPU; otherwise ``torch.device(name)``."""
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    return dev


def head_rotation(yaw_deg: float, pitch_deg: float, batch: int = 1, device=None):
    """Axis-angle ``[batch, 3]`` for a head turn (yaw about +Y) then nod (pitch about +X)."""
    import math

    import torch

    from gemo_ros.avatar.binding import matrix_to_quat
    from gemo_ros.face.model import axis_angle_to_matrix
    R = axis_angle_to_matrix(torch.tensor([0.0, math.radians(yaw_deg), 0.0])) @ \
        axis_angle_to_matrix(torch.tensor([math.radians(pitch_deg), 0.0, 0.0]))
    q = matrix_to_quat(R)
    angle = 2.0 * torch.atan2(q[1:].norm(), q[0])
    axis = q[1:] / q[1:].norm().clamp(min=1e-12)
    return (axis * angle).expand(batch, 3).to(device)


def render_frame(avatar, expr, yaw_deg: float = 0.0, pitch_deg: float = 0.0,
                 width: int = 512, height: int = 512,
                 distance: float = DEFAULT_DISTANCE, fov_deg: float = DEFAULT_FOV_DEG,
                 background: Tuple[float, float, float] = DEFAULT_BACKGROUND,
                 neck_rotation=None, offsets: Optional[Mapping] = None,
                 backend: str = "auto", target: Tuple[float, float, float] = DEFAULT_TARGET
                 ) -> np.ndarray:
    """Render one frame of ``avatar`` for ``expr [1, 52]``: ``uint8 [H, W, 3]``.

    Args:
        avatar: a :class:`gemo_ros.avatar.GaussianAvatar` (its device is used).
        expr: ``[1, 52]`` ARKit coefficients on the avatar's device.
        yaw_deg, pitch_deg: orbit camera angles (docs/ARCHITECTURE.md), degrees.
        neck_rotation: optional ``[1, 3]`` axis-angle head rotation (radians).
        offsets: optional raw-parameter offsets (the emotion residual).
    """
    import torch

    from gemo_ros.render import orbit_camera, rasterize
    device = avatar.binding_bary.device
    with torch.no_grad():
        g = avatar(expr, neck_rotation=neck_rotation, offsets=offsets)
        viewmat, K = orbit_camera(yaw_deg, pitch_deg, distance, fov_deg, width, height,
                                  target=target, device=device)
        bg = torch.tensor(background, dtype=torch.float32, device=device)
        rgb, _, _ = rasterize(**g.render_args(0), viewmat=viewmat, K=K, width=width,
                              height=height, background=bg, backend=backend)
    return to_uint8(rgb)


def render_still(request: RenderRequest, avatar=None) -> np.ndarray:
    """Render ``request`` to ``uint8 [H, W, 3]``; loads the avatar unless one is given."""
    from gemo_ros.avatar import load_avatar
    device = resolve_device(request.device)
    if avatar is None:
        avatar = load_avatar(request.avatar, device=device)
    else:
        avatar = avatar.to(device)
    expr = avatar.expression_vector(request.expression, device=device)
    neck = None
    if request.head_yaw_deg or request.head_pitch_deg:
        neck = head_rotation(request.head_yaw_deg, request.head_pitch_deg, device=device)
    return render_frame(avatar, expr, request.yaw_deg, request.pitch_deg, request.width,
                        request.height, request.distance, request.fov_deg, request.background,
                        neck_rotation=neck, backend=request.backend)


def render_pipeline_still(request: RenderRequest, emotion: str = "neutral",
                          intensity: float = 0.0, audio_path: Optional[str] = None,
                          time_s: float = 0.0, a2e: Optional[str] = "default",
                          residual: Optional[str] = "default") -> np.ndarray:
    """Render one frame of audio-to-expression + blendshapes + emotion residual.

    Silence is used when ``audio_path`` is None. ``request.expression`` is added on top of
    the coefficients. Returns ``uint8 [H, W, 3]``.
    """
    from gemo_ros.pipeline import RenderSettings, TalkingHead
    device = resolve_device(request.device)
    settings = RenderSettings(width=request.width, height=request.height,
                              yaw_deg=request.yaw_deg, pitch_deg=request.pitch_deg,
                              distance=request.distance, fov_deg=request.fov_deg,
                              target=DEFAULT_TARGET, background=request.background,
                              backend=request.backend)
    none = (None, "", "none")
    head = TalkingHead.load(request.avatar, None if a2e in none else a2e,
                            None if residual in none else residual, settings=settings,
                            device=str(device))
    audio, rate = None, None
    if audio_path:
        import soundfile as sf
        if not os.path.isfile(audio_path):
            raise FileNotFoundError(f"audio file not found: {audio_path}")
        data, rate = sf.read(audio_path, dtype="float32", always_2d=True)
        audio = data.mean(axis=1)
    neck = None
    if request.head_yaw_deg or request.head_pitch_deg:
        neck = head_rotation(request.head_yaw_deg, request.head_pitch_deg)[0].tolist()
    frame = head.still(emotion, intensity, audio=audio, sample_rate=rate, time_s=time_s,
                       expression=request.expression, neck_rotation=neck)
    return frame.to_uint8()


def save_png(image: np.ndarray, path: str) -> None:
    """Write ``uint8 [H, W, 3]`` to a PNG, creating the parent folder."""
    from PIL import Image
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    Image.fromarray(image).save(path)


def run(args: argparse.Namespace) -> int:
    """Run ``gemo render``; returns the exit status."""
    import sys
    if str(getattr(args, "output", "")).lower().endswith(".mp4"):
        from gemo_ros.commands.render_video import render_video
        return render_video(args)
    try:
        request = request_from_args(args)
        if not request.output.lower().endswith(".png"):
            raise ValueError(f"output must be a .png still, got {request.output!r}")
        emotion = str(getattr(args, "emotion", None) or "neutral")
        audio = getattr(args, "audio", None)
        if audio or emotion.strip().lower() != "neutral":
            from gemo_ros.emotions import parse_emotion_command
            command = parse_emotion_command(emotion)
            intensity = 0.7 if command.intensity is None else command.intensity
            image = render_pipeline_still(request, command.emotion, intensity, audio,
                                          float(getattr(args, "time", 0.0)),
                                          getattr(args, "a2e", "default"),
                                          getattr(args, "residual", "default"))
        else:
            image = render_still(request)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"gemo render: {exc}", file=sys.stderr)
        return 2
    save_png(image, request.output)
    print(f"wrote {request.output} ({request.width}x{request.height})")
    return 0


__all__ = ["RenderRequest", "configure", "run", "request_from_args", "render_still",
           "render_pipeline_still",
           "render_frame", "parse_expression", "parse_color", "head_rotation", "save_png"]
