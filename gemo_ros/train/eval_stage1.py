"""Stage 1 evaluation: PSNR/SSIM of a fitted avatar on held-out frames and novel views.

``gemo eval stage1 --avatar avatar.safetensors --data DIR`` renders every ``test`` frame
(held-out expressions, poses and cameras) and every ``novel`` frame (held-out camera yaws
+-30 / +-60 degrees) of a Stage 1 dataset with the avatar, composites both the render and
the ground truth over white, and reports the mean per-frame PSNR and SSIM per split (and
per novel view). ``--image`` writes a side-by-side figure (ground truth above, avatar below).
"""

import logging
import math
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from gemo_ros.imaging import to_uint8
from gemo_ros.train.losses import psnr, ssim
from gemo_ros.train.stage1_data import NOVEL_YAWS_DEG, Stage1Frame, Stage1Dataset

LOG = logging.getLogger(__name__)

WHITE = (1.0, 1.0, 1.0)


def render_frame(avatar, frame: Stage1Frame, width: int, height: int, backend: str = "auto",
                 device: str = "cpu", background: Sequence[float] = WHITE) -> torch.Tensor:
    """Render ``avatar`` for one frame's expression, neck and camera: ``[H, W, 3]`` on CPU."""
    from gemo_ros.render import rasterize
    dev = torch.device(device)
    with torch.no_grad():
        g = avatar(frame.expression[None].to(dev), frame.joints["neck"][None].to(dev))
        rgb, _, _ = rasterize(**g.render_args(0), viewmat=frame.viewmat.to(dev),
                              K=frame.K.to(dev), width=width, height=height,
                              background=torch.tensor(background, device=dev),
                              backend=backend)
    return rgb.clamp(0.0, 1.0).cpu()


def ground_truth(frame: Stage1Frame, background: Sequence[float] = WHITE) -> torch.Tensor:
    """Return the frame's image composited over ``background``: ``[H, W, 3]``."""
    bg = torch.tensor(background)
    return frame.image * frame.mask + bg * (1.0 - frame.mask)


def evaluate(avatar, dataset: Stage1Dataset, splits: Sequence[str] = ("test", "novel"),
             backend: str = "auto", device: str = "cpu",
             keep_images: bool = False) -> Dict[str, Dict]:
    """PSNR (dB) and SSIM of ``avatar`` on the frames of ``splits``.

    Returns ``{split: {"psnr", "ssim", "frames", ["views": {view: {"psnr", "ssim",
    "frames"}}], ["images": [(name, gt, render)]]}}``; splits without frames are left out.
    Metrics are means over frames of the per-frame values on the full image (white
    background).
    """
    results: Dict[str, Dict] = {}
    for split in splits:
        frames = dataset.split(split)
        if not frames:
            continue
        per_view: Dict[str, List] = {}
        rows = []
        images = []
        for f in frames:
            pred = render_frame(avatar, f, dataset.width, dataset.height, backend, device)
            gt = ground_truth(f)
            p, s = float(psnr(pred, gt)), float(ssim(pred, gt))
            rows.append((p, s))
            per_view.setdefault(f.view or "", []).append((p, s))
            if keep_images:
                images.append((f.name, gt, pred))
        res = {"psnr": float(np.mean([r[0] for r in rows])),
               "ssim": float(np.mean([r[1] for r in rows])), "frames": len(rows)}
        if split == "novel":
            res["views"] = {v: {"psnr": float(np.mean([r[0] for r in vals])),
                                "ssim": float(np.mean([r[1] for r in vals])),
                                "frames": len(vals)}
                            for v, vals in sorted(per_view.items())}
        if keep_images:
            res["images"] = images
        results[split] = res
        LOG.info("%s: PSNR %.2f dB, SSIM %.4f over %d frames", split, res["psnr"],
                 res["ssim"], res["frames"])
    return results


def _orbit_frames(dataset: Stage1Dataset, yaws: Sequence[float]) -> List[Stage1Frame]:
    """Neutral frames at given yaws, at the distance and intrinsics of the first frame.

    Used for datasets without a ``novel`` split (real captures): there is no ground truth,
    the renders only show how the avatar holds up off the training views.
    """
    from gemo_ros.geometry import look_at
    from gemo_ros.render.camera import camera_position
    ref = dataset.frames[0]
    dist = float(camera_position(ref.viewmat).norm())
    out = []
    for yaw in yaws:
        eye = (dist * math.sin(math.radians(yaw)), 0.0, dist * math.cos(math.radians(yaw)))
        out.append(Stage1Frame(name=f"orbit_yaw{yaw:+.0f}", split="novel", K=ref.K,
                               viewmat=look_at(eye), expression=torch.zeros_like(ref.expression),
                               joints={k: torch.zeros(3) for k in ref.joints},
                               view=f"yaw{yaw:+.0f}"))
    return out


def _label(img: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    box = draw.textbbox((3, 1), text)
    draw.rectangle([0, 0, box[2] + 3, box[3] + 2], fill=(255, 255, 255))
    draw.text((3, 1), text, fill=(0, 0, 0))
    return np.asarray(pil)


def side_by_side(avatar, dataset: Stage1Dataset, path: str, num_test: int = 4,
                 backend: str = "auto", device: str = "cpu",
                 extra: Optional[Dict[str, object]] = None) -> np.ndarray:
    """Write a figure: held-out frames and novel views, ground truth above the avatar.

    Columns: up to ``num_test`` ``test`` frames, then one neutral ``novel`` frame per yaw in
    :data:`NOVEL_YAWS_DEG` (renders without ground truth when the dataset has none).
    ``extra`` maps a row label to another avatar rendered as an additional row (e.g. the
    initialisation). Returns the ``uint8 [H, W, 3]`` image.
    """
    from PIL import Image
    tests = dataset.split("test")[:num_test]
    novel = dataset.split("novel")
    chosen = []
    for yaw in NOVEL_YAWS_DEG:
        cand = [f for f in novel if f.view == f"yaw{yaw:+.0f}"]
        if cand:
            chosen.append(cand[0])
    if not chosen:
        chosen = _orbit_frames(dataset, NOVEL_YAWS_DEG)
    columns = tests + chosen
    W, H = dataset.width, dataset.height
    blank = torch.ones(H, W, 3)
    rows = {"ground truth": [ground_truth(f) if f.image is not None else blank
                             for f in columns],
            "stage 1 avatar": [render_frame(avatar, f, W, H, backend, device)
                               for f in columns]}
    for label, other in (extra or {}).items():
        rows[label] = [render_frame(other, f, W, H, backend, device) for f in columns]
    lines = []
    for label, imgs in rows.items():
        tiles = []
        for f, img in zip(columns, imgs):
            tile = to_uint8(img)
            name = f"{label}: {'held-out' if f.split == 'test' else f.view}"
            tiles.append(_label(tile, name))
        lines.append(np.concatenate(tiles, axis=1))
    figure = np.concatenate(lines, axis=0)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(figure).save(path)
    return figure
