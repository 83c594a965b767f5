"""``gemo render``: render the avatar to a still PNG (no ROS).

    gemo render --avatar default --expression jawOpen=0.8,mouthSmileLeft=0.5 \
        --yaw 30 --pitch 0 --size 512 -o face.png

:func:`request_from_args` turns the parsed arguments into a :class:`RenderRequest` (framed
by :data:`gemo_ros.framing.PORTRAIT`: a still for people, 512 px on light grey), and
:func:`render_still` / :func:`render_pipeline_still` turn it into an ``uint8 [H, W, 3]``
image (through :func:`gemo_ros.framing.render_frame` / :class:`gemo_ros.pipeline.TalkingHead`).
``-o *.mp4`` goes to :mod:`gemo_ros.commands.render_video`.
"""

import argparse
import logging
import os
from dataclasses import dataclass, field, replace
from typing import Dict, Optional

import numpy as np

from gemo_ros.commands.render_video import add_video_arguments, render_video
from gemo_ros.framing import PORTRAIT, RenderSettings, render_frame
from gemo_ros.geometry import head_rotation
from gemo_ros.imaging import parse_color, save_png
from gemo_ros.stages import resolve_device

LOG = logging.getLogger(__name__)


@dataclass
class RenderRequest:
    """Everything needed to render one still (angles in degrees, lengths in metres).

    ``framing``: camera, size, background and backend (default
    :data:`gemo_ros.framing.PORTRAIT`); ``head_yaw_deg`` / ``head_pitch_deg``: the head's
    own turn (:func:`gemo_ros.geometry.head_rotation`: positive pitch looks up).
    """

    avatar: str = "default"
    expression: Dict[str, float] = field(default_factory=dict)
    framing: RenderSettings = PORTRAIT
    head_yaw_deg: float = 0.0
    head_pitch_deg: float = 0.0
    device: str = "auto"
    output: str = "face.png"

    def neck_rotation(self) -> Optional[np.ndarray]:
        """Return the head turn as axis-angle ``[3]`` radians, or None for a frontal head."""
        if not (self.head_yaw_deg or self.head_pitch_deg):
            return None
        return head_rotation(self.head_yaw_deg, self.head_pitch_deg)


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


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``gemo render`` arguments."""
    parser.add_argument("--avatar", default="default",
                        help="'default' (embedded human head), 'toon' (the stylised head) "
                        "or an avatar .safetensors file")
    parser.add_argument("--expression", default="",
                        help="ARKit weights, e.g. jawOpen=0.8,mouthSmileLeft=0.5")
    parser.add_argument("--yaw", type=float, default=0.0,
                        help="camera yaw in degrees (+ toward the avatar's left)")
    parser.add_argument("--pitch", type=float, default=0.0,
                        help="camera pitch in degrees (+ from above)")
    parser.add_argument("--head-yaw", type=float, default=0.0,
                        help="head turn in degrees (+ toward the avatar's left)")
    parser.add_argument("--head-pitch", type=float, default=0.0,
                        help="head nod in degrees (+ looks up)")
    parser.add_argument("--distance", type=float, default=PORTRAIT.distance,
                        help="camera distance in metres")
    parser.add_argument("--fov", type=float, default=PORTRAIT.fov_deg,
                        help="vertical field of view in degrees")
    parser.add_argument("--size", type=int, default=PORTRAIT.width,
                        help="image width and height (px)")
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
    bg = parse_color(args.background) if args.background else PORTRAIT.background
    framing = replace(PORTRAIT, width=width, height=height, yaw_deg=float(args.yaw),
                      pitch_deg=float(args.pitch), distance=float(args.distance),
                      fov_deg=float(args.fov), background=bg, backend=args.backend)
    return RenderRequest(
        avatar=args.avatar, expression=parse_expression(args.expression), framing=framing,
        head_yaw_deg=float(getattr(args, "head_yaw", 0.0)),
        head_pitch_deg=float(getattr(args, "head_pitch", 0.0)),
        device=args.device, output=args.output)


def render_still(request: RenderRequest, avatar=None) -> np.ndarray:
    """Render ``request`` to ``uint8 [H, W, 3]``; loads the avatar unless one is given."""
    import torch

    from gemo_ros.avatar import load_avatar
    device = resolve_device(request.device)
    if avatar is None:
        avatar = load_avatar(request.avatar, device=device)
    else:
        avatar = avatar.to(device)
    expr = avatar.expression_vector(request.expression, device=device)
    neck = request.neck_rotation()
    if neck is not None:
        neck = torch.tensor(neck, dtype=torch.float32, device=device)[None]
    return render_frame(avatar, expr, request.framing, neck_rotation=neck)


def render_pipeline_still(request: RenderRequest, emotion: str = "neutral",
                          intensity: float = 0.0, audio_path: Optional[str] = None,
                          time_s: float = 0.0, a2e: Optional[str] = "default",
                          residual: Optional[str] = "default") -> np.ndarray:
    """Render one frame of audio-to-expression + blendshapes + emotion residual.

    Silence is used when ``audio_path`` is None. ``request.expression`` is added on top of
    the coefficients; ``a2e`` / ``residual`` follow :mod:`gemo_ros.stages`'s rules ("none"
    leaves a stage out). Returns ``uint8 [H, W, 3]``.
    """
    from gemo_ros.pipeline import TalkingHead
    head = TalkingHead.load(request.avatar, a2e, residual, settings=request.framing,
                            device=request.device)
    audio, rate = None, None
    if audio_path:
        import soundfile as sf
        if not os.path.isfile(audio_path):
            raise FileNotFoundError(f"audio file not found: {audio_path}")
        data, rate = sf.read(audio_path, dtype="float32", always_2d=True)
        audio = data.mean(axis=1)
    neck = request.neck_rotation()
    neck = None if neck is None else neck.tolist()
    frame = head.still(emotion, intensity, audio=audio, sample_rate=rate, time_s=time_s,
                       expression=request.expression, neck_rotation=neck)
    return frame.to_uint8()


def run(args: argparse.Namespace) -> int:
    """Run ``gemo render``; returns the exit status."""
    import sys
    if str(getattr(args, "output", "")).lower().endswith(".mp4"):
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
    print(f"wrote {request.output} ({request.framing.width}x{request.framing.height})")
    return 0


__all__ = ["RenderRequest", "configure", "run", "request_from_args", "render_still",
           "render_pipeline_still", "parse_expression"]
