"""Stage 2 evaluation (`gemo eval stage2`): how much closer the residual brings the head.

On held-out frames (speech never trained on, the paper's intensity levels 1/3, 2/3, 1, and
several camera yaws) it reports PSNR / SSIM of three students against the target:

* ``residual``: ``avatar(psi_n) + residual offsets`` (the method);
* ``blendshapes``: ``avatar(psi_e)``, the emotional coefficients alone (no residual);
* ``neutral``: ``avatar(psi_n)``, no emotion at all.

It also writes a contact sheet: 7 emotions x 3 intensities, plus yaw -60/-30/30/60 for one
emotion, rendered through :class:`gemo_ros.pipeline.TalkingHead` over the demo speech.
"""

import argparse
import logging
import os
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from gemo_ros.emotions import EMOTIONS, LEVELS

LOG = logging.getLogger(__name__)

VARIANTS = ("residual", "blendshapes", "neutral")


def load_head(avatar: str, a2e: Optional[str], residual: str, device: str = "cpu",
              max_gaussians: int = 0) -> Any:
    """Load avatar (at a level of detail), a2e (unless 'none') and residual weights.

    By :func:`gemo_ros.stages.load_stages`'s rules; the residual is required here (it is
    what is evaluated): ValueError when it is "none" or missing.
    """
    from gemo_ros.pipeline import TalkingHead
    from gemo_ros.stages import StageSpec, load_stages

    stages = load_stages(StageSpec(avatar, a2e, residual, device, max_gaussians))
    if stages.residual is None:
        raise ValueError(f"no emotion residual to evaluate (--residual {residual})")
    return TalkingHead(stages.avatar, stages.a2e, stages.residual, device=stages.device)


def heldout_frames(head: Any, args: argparse.Namespace) -> Any:
    """Synthetic held-out frames (test clips only), or the test split of ``--data``."""
    if args.data:
        from gemo_ros.train.stage2_data import load_stage2_dataset

        return load_stage2_dataset(args.data, head, window=head.window, splits=("test",))
    from gemo_ros.train.stage2 import speech_clips
    from gemo_ros.train.stage2_data import SyntheticSpec, generate_synthetic

    _, test_clips = speech_clips(0, args.test_clips, args.seed)
    spec = SyntheticSpec(size=args.size, test_frames_per_level=args.frames, seed=args.seed + 7)
    return generate_synthetic(head, [], test_clips, spec, window=head.window,
                              progress=not args.no_progress)


@torch.no_grad()
def evaluate(head: Any, frames: Any, batch: int = 4, progress: bool = True
             ) -> Dict[str, Any]:
    """PSNR/SSIM of every student variant against the frames' images.

    Returns:
        ``{"overall": {variant: {"psnr", "ssim"}}, "by_emotion": {name: {...}},
        "by_level": {level: {...}}, "frames": F}`` (per-frame means).
    """
    from tqdm import tqdm

    from gemo_ros.train.losses import psnr, ssim
    from gemo_ros.train.stage2 import batch_of, student_images

    per: Dict[str, Dict[str, List[float]]] = {v: {"psnr": [], "ssim": []} for v in VARIANTS}
    for start in tqdm(range(0, len(frames), batch), desc="eval stage2", disable=not progress):
        idx = torch.arange(start, min(start + batch, len(frames)))
        b = batch_of(frames, idx)
        target = b["image"]
        outs = {"residual": student_images(head, b, True)[0],
                "blendshapes": student_images(head, b, False)[0]}
        neutral = dict(b)
        neutral["psi_e"] = b["psi_n"]
        outs["neutral"] = student_images(head, neutral, False)[0]
        for name, img in outs.items():
            img = img.cpu()
            for k in range(img.shape[0]):
                per[name]["psnr"].append(float(psnr(img[k], target[k])))
                per[name]["ssim"].append(float(ssim(img[k], target[k])))

    def summary(mask: np.ndarray) -> Dict[str, Dict[str, float]]:
        return {v: {m: float(np.mean(np.array(per[v][m])[mask])) for m in ("psnr", "ssim")}
                for v in VARIANTS}

    emo = frames.emotion.numpy()
    lev = frames.intensity.numpy()
    out: Dict[str, Any] = {"frames": len(frames),
                           "overall": summary(np.ones(len(frames), bool)),
                           "by_emotion": {}, "by_level": {}}
    for e in sorted(set(emo.tolist())):
        out["by_emotion"][EMOTIONS[e]] = summary(emo == e)
    for level, value in LEVELS.items():
        mask = np.isclose(lev, value, atol=1e-4)
        if mask.any():
            out["by_level"][str(level)] = summary(mask)
    return out


def markdown_table(metrics: Dict[str, Any]) -> str:
    """Format the metrics as a markdown table (rows: overall, per level, per emotion)."""
    head = ("| held-out frames | residual PSNR | blendshapes PSNR | neutral PSNR "
            "| residual SSIM | blendshapes SSIM | neutral SSIM |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]

    def row(name: str, s: Dict[str, Dict[str, float]]) -> str:
        cells = [f"{s[v]['psnr']:.2f}" for v in VARIANTS] + [f"{s[v]['ssim']:.4f}"
                                                             for v in VARIANTS]
        return f"| {name} | " + " | ".join(cells) + " |"

    lines.append(row(f"**all ({metrics['frames']})**", metrics["overall"]))
    for level, s in metrics["by_level"].items():
        lines.append(row(f"level {level} (intensity {LEVELS[int(level)]:.2f})", s))
    for name, s in metrics["by_emotion"].items():
        lines.append(row(name, s))
    return "\n".join(lines) + "\n"


@torch.no_grad()
def contact_sheet(head: Any, path: str, size: int = 160, emotion: str = "happy",
                  time_s: float = 1.2, teacher_row: bool = True) -> np.ndarray:
    """Render 7 emotions (columns) x 3 levels (rows) + a yaw row for ``emotion``; write a PNG.

    With ``teacher_row`` the first row is the synthetic teacher's target at intensity 1
    (what the residual was trained to reproduce), rendered from the same coefficients.
    """
    from PIL import Image, ImageDraw

    from gemo_ros.emotions import emotion_id
    from gemo_ros.train.stage2_data import EmotionTeacher, demo_clip, render_teacher

    clip = demo_clip() if head.a2e is not None else None
    settings = head.with_settings(width=size, height=size, distance=0.56, fov_deg=22.0,
                                  target=(0.0, -0.018, 0.0))
    pad, label_w, label_h = 4, 86, 18

    def tile(name: str, level: float, yaw: float = 0.0) -> np.ndarray:
        s = head.with_settings(**{**settings.__dict__, "yaw_deg": yaw})
        frame = head.still(name, level, audio=None if clip is None else clip.audio,
                           sample_rate=None if clip is None else clip.sample_rate,
                           time_s=time_s if clip is not None else 0.0, settings=s)
        return frame.to_uint8()

    teacher = EmotionTeacher(head.avatar) if teacher_row else None

    def teacher_tile(name: str) -> np.ndarray:
        from gemo_ros.imaging import to_uint8

        e = emotion_id(name)
        if clip is not None:
            _, psi_e_t, _ = head.analyse_audio(clip.audio, clip.sample_rate, e, 1.0)
            idx = min(int(round(time_s * float(head.a2e.fps))), psi_e_t.shape[0] - 1)
            psi_e = psi_e_t[idx][None]
        else:
            from gemo_ros.face.emotion_recipes import emotion_target

            psi_e = torch.from_numpy(emotion_target(e, 1.0))[None]
        viewmat, K = settings.camera(head.device)
        img = render_teacher(head, teacher, psi_e, torch.tensor([e]), torch.ones(1),
                             viewmat[None], K[None], (size, size), settings.background,
                             backend=settings.backend)
        return to_uint8(img[0].cpu())

    emotions = [e for e in EMOTIONS if e != "neutral"]
    levels = list(LEVELS.items())
    cols = len(emotions)
    first = 1 if teacher_row else 0
    rows = len(levels) + 1 + first
    width = label_w + cols * (size + pad)
    height = label_h + rows * (size + pad)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(emotions):
        draw.text((label_w + c * (size + pad) + 4, 3), name, fill=(0, 0, 0))
    if teacher_row:
        draw.text((4, label_h + size // 2 - 12), "teacher\n(1.00)", fill=(0, 0, 0))
        for c, name in enumerate(emotions):
            x = label_w + c * (size + pad)
            sheet.paste(Image.fromarray(teacher_tile(name)), (x, label_h))
    for r, (lvl, value) in enumerate(levels):
        y = label_h + (r + first) * (size + pad)
        draw.text((4, y + size // 2 - 12), f"level {lvl}\n({value:.2f})", fill=(0, 0, 0))
        for c, name in enumerate(emotions):
            sheet.paste(Image.fromarray(tile(name, value)), (label_w + c * (size + pad), y))
    y = label_h + (len(levels) + first) * (size + pad)
    draw.text((4, y + size // 2 - 12), f"{emotion} 1.0\nyaw -60..60", fill=(0, 0, 0))
    for c, yaw in enumerate((-60.0, -30.0, 30.0, 60.0)):
        x = label_w + c * (size + pad)
        sheet.paste(Image.fromarray(tile(emotion, 1.0, yaw)), (x, y))
        draw.text((x + 4, y + 3), f"yaw {yaw:+.0f}", fill=(255, 255, 255))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sheet.save(path)
    return np.asarray(sheet)
