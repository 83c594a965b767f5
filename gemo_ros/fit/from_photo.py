"""A Gaussian avatar of a person from one photo (``gemo avatar from-photo``).

Steps (each reports progress through an optional callback):

1. **landmarks**: MediaPipe's bundled face mesh (``gemo_ros.vision.landmarks``), with clear
   errors for no face, several faces, a face too small or turned too far;
2. **crop** a square around the face and scale it to ``crop_size`` pixels;
3. **fit** the ICT head to the landmarks (``gemo_ros.fit.landmark_fit``): identity,
   expression, head pose and focal length;
4. **build** the procedural human head (``gemo_ros.avatar.human``) on the fitted identity:
   its eyes, teeth, mouth, lashes and hair, and Gaussians over the skin;
5. **colour** it from the photo (``gemo_ros.fit.texture``): projection with visibility,
   symmetry and skin-tone fill for what the photo cannot see, hair colour from the photo;
6. **refine** the face's colours photometrically on the input view with the Stage 1 loss
   (``(1 - l) L1 + l (1 - SSIM)``, ``gemo_ros.train.losses``) inside the face outline.

The result is an ordinary Gaussian blendshape avatar on the ICT face model (with the fitted
identity in its metadata), so the audio model and the emotion residual drive it like the
default head; ``save_avatar`` writes it and ``load_avatar(path)`` reads it back.
"""

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

from gemo_ros.avatar.human import build_human_avatar
from gemo_ros.avatar.model import GaussianAvatar
from gemo_ros.face.model import load_face_model
from gemo_ros.fit.landmark_fit import FitConfig, FitResult, fit_landmarks
from gemo_ros.fit.raster import project
from gemo_ros.fit.texture import (blend_colours, gaussian_groups, mirror_index,
                                  polygon_mask, project_photo, sample_hair_colour)
from gemo_ros.train.losses import l1_loss, ssim

LOG = logging.getLogger(__name__)

#: MediaPipe's face-oval landmark indices in order around the face (the outline).
FACE_OVAL_ORDER = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379,
                   378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127,
                   162, 21, 54, 103, 67, 109)
#: MediaPipe's inner-lip landmark indices in order (the mouth opening).
INNER_LIPS_ORDER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14,
                    87, 178, 88, 95)

#: Largest per-channel difference from the sampled hair colour that still counts as hair.
HAIR_MATCH = 0.12

Progress = Callable[[str, float], None]


def _raised_outline(outline: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Return the face outline with its upper half raised by a third of the face height."""
    chin, top = lm[152, :2], lm[10, :2]
    up = (top - chin) / (np.linalg.norm(top - chin) + 1e-9)
    centre = 0.5 * (chin + top)
    height = float(np.linalg.norm(top - chin))
    above = np.clip(((outline - centre) @ up) / (0.5 * height), 0.0, 1.0)
    return outline + (above * height / 3.0)[:, None] * up[None]


class PhotoError(ValueError):
    """The photo cannot make an avatar (the message says why and what to do)."""


@dataclass
class FromPhotoConfig:
    """Settings of :func:`avatar_from_photo`.

    Attributes:
        num_gaussians: Gaussians of the avatar (surface + hair), as the default head.
        crop_size: side of the square face crop the fit and the colours work on (pixels).
        crop_scale: crop side / landmark bounding-box side.
        min_inter_ocular_px: refuse faces whose outer eye corners are closer (pixels).
        max_yaw_deg: refuse faces turned further from the camera (degrees).
        refine_steps: photometric refinement steps (0: none).
        refine_size: image side of the refinement (pixels).
        lambda_ssim: SSIM weight of the Stage 1 loss.
        refill_after_refine: recompute the fill of half-seen skin from the refined colours.
        refine_prior: pull of the refinement toward the projected colours.
        refine_lr: Adam step of the colours.
        seed: the procedural head's sampling seed.
        fit: landmark fit settings.
    """

    num_gaussians: int = 48000
    crop_size: int = 512
    crop_scale: float = 1.8
    min_inter_ocular_px: float = 40.0
    max_yaw_deg: float = 35.0
    refine_steps: int = 30
    refine_size: int = 256
    lambda_ssim: float = 0.2
    refill_after_refine: bool = False
    refine_prior: float = 1.0
    refine_lr: float = 0.01
    seed: int = 0
    fit: FitConfig = field(default_factory=FitConfig)


@dataclass
class PhotoAvatar:
    """Result of :func:`avatar_from_photo`.

    Attributes:
        avatar: the Gaussian avatar (neutral colours from the photo).
        fit: the landmark fit, in crop pixels.
        crop: ``uint8 [S, S, 3]`` the face crop the fit refers to.
        crop_box: ``(x0, y0, scale)``: photo pixel ``p`` is crop pixel ``(p - (x0, y0)) *
            scale``.
        expression: ``[1, 52]`` the photo's fitted expression.
        stats: numbers worth reporting (landmark error, tone, refinement PSNR...).
        timings_s: seconds per step.
    """

    avatar: GaussianAvatar
    fit: FitResult
    crop: np.ndarray
    crop_box: Tuple[float, float, float]
    expression: torch.Tensor
    stats: Dict[str, float]
    timings_s: Dict[str, float]


def _crop(image: np.ndarray, points: np.ndarray, scale: float, size: int):
    """Square crop around ``points`` (edge-padded), resized to ``size``; and the map."""
    from PIL import Image
    lo, hi = points.min(0), points.max(0)
    centre = 0.5 * (lo + hi)
    side = float(scale * max(hi - lo))
    x0, y0 = centre - 0.5 * side
    pad = int(math.ceil(side))
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    box = (x0 + pad, y0 + pad, x0 + pad + side, y0 + pad + side)
    out = Image.fromarray(padded).transform((size, size), Image.Transform.EXTENT, box,
                                            resample=Image.Resampling.BICUBIC)
    s = size / side
    return np.asarray(out), (x0, y0, s)


def _checked_landmarks(image: np.ndarray, cfg: FromPhotoConfig) -> np.ndarray:
    from gemo_ros.vision.landmarks import (FaceLandmarker, FaceTooSmallError, FaceTurnedError,
                                           MultipleFacesError, NoFaceError)
    with FaceLandmarker(max_faces=2) as det:
        try:
            face = det.detect(image, min_inter_ocular_px=cfg.min_inter_ocular_px,
                              max_yaw_deg=cfg.max_yaw_deg)
        except NoFaceError as exc:
            raise PhotoError(f"{exc}: use a photo with one face seen from the front") from exc
        except MultipleFacesError as exc:
            raise PhotoError(f"{exc}: crop the photo to the one person to use") from exc
        except FaceTooSmallError as exc:
            raise PhotoError(f"{exc}: use a closer or larger photo (the face should be at "
                             "least about 150 px wide)") from exc
        except FaceTurnedError as exc:
            raise PhotoError(f"{exc}: use a photo facing the camera") from exc
    return face.points[:, :2]


def refine_colours(avatar: GaussianAvatar, expr: torch.Tensor, viewmat: torch.Tensor,
                   K: torch.Tensor, target: np.ndarray, mask: np.ndarray,
                   trainable: np.ndarray, steps: int, lr: float = 0.01,
                   lambda_ssim: float = 0.2, prior: float = 0.0,
                   progress: Optional[Callable[[int], None]] = None) -> Dict[str, float]:
    """Refine the neutral colours of ``trainable`` Gaussians on one view (Stage 1 loss).

    Args:
        avatar: changed in place (``params["color"]``).
        expr: ``[1, 52]`` the view's expression; viewmat ``[4, 4]``, K ``[3, 3]`` its camera.
        target: ``[H, W, 3]`` float image in [0, 1].
        mask: ``[H, W]`` float weights: where the loss looks (the face).
        trainable: ``[N]`` bool, the Gaussians whose colour may change.
        steps: Adam steps.
        prior: weight of a pull toward the starting colours (``prior * mean(dc^2)``): the
            view cannot tell a colour from its neighbours' blur, so unchecked colours
            overshoot into patterns that show from other angles.
    Returns:
        masked PSNR before and after (dB).
    """
    from gemo_ros.render import rasterize
    from gemo_ros.train.losses import psnr
    h, w = target.shape[:2]
    tgt = torch.as_tensor(target, dtype=torch.float32)
    m = torch.as_tensor(mask, dtype=torch.float32)[..., None]
    train = torch.as_tensor(trainable)[:, None].float()
    colour = avatar.params["color"]
    start = colour.detach().clone()
    sel = torch.as_tensor(trainable)
    bg = tgt[m[..., 0] < 0.5].mean(0) if bool((m < 0.5).any()) else torch.zeros(3)
    opt = torch.optim.Adam([colour], lr=lr)
    others = [p for n, p in avatar.named_parameters() if p is not colour]
    for p in others:
        p.requires_grad_(False)

    def render():
        g = avatar(expr)
        rgb, _, _ = rasterize(**g.render_args(0), viewmat=viewmat, K=K, width=w, height=h,
                              background=bg, backend="torch")
        return rgb

    def masked_psnr(rgb):
        return float(psnr(rgb.clamp(0, 1), tgt, mask=m))

    stats = {}
    try:
        for step in range(steps):
            rgb = render()
            if step == 0:
                stats["refine_psnr_before"] = masked_psnr(rgb.detach())
            # Outside the mask the target is the render itself: no loss there, for SSIM too.
            pred = rgb * m + tgt * (1 - m)
            loss = (1 - lambda_ssim) * l1_loss(pred, tgt) + lambda_ssim * (1 - ssim(pred, tgt))
            if prior > 0 and bool(sel.any()):
                loss = loss + prior * ((colour[sel] - start[sel]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            colour.grad.mul_(train)
            opt.step()
            with torch.no_grad():
                colour.clamp_(0.0, 1.0)
            if progress:
                progress(step + 1)
        with torch.no_grad():
            stats["refine_psnr_after"] = masked_psnr(render())
    finally:
        for p in others:
            p.requires_grad_(True)
    return stats


def avatar_from_photo(image: np.ndarray, config: Optional[FromPhotoConfig] = None,
                      progress: Optional[Progress] = None) -> PhotoAvatar:
    """Build a Gaussian avatar of the one person in ``image``.

    Args:
        image: ``uint8 [H, W, 3]`` RGB photo.
        config: settings.
        progress: called as ``progress(step_name, fraction_done)``.
    Raises:
        PhotoError: no face, several faces, a face too small or turned too far.
        ImportError: mediapipe is missing.
    """
    cfg = config or FromPhotoConfig()
    say = progress or (lambda name, frac: None)
    times: Dict[str, float] = {}
    t0 = time.perf_counter()
    say("landmarks", 0.0)
    points = _checked_landmarks(image, cfg)
    crop, (x0, y0, s) = _crop(image, points[:468], cfg.crop_scale, cfg.crop_size)
    lm = (points - np.array([x0, y0])) * s
    times["landmarks"] = time.perf_counter() - t0
    say("fit", 0.1)
    t = time.perf_counter()
    generic = load_face_model("ict")
    fit = fit_landmarks(generic, lm, cfg.crop_size, cfg.crop_size, config=cfg.fit)
    if abs(fit.head_yaw_deg) > cfg.max_yaw_deg:
        raise PhotoError(f"face turned {fit.head_yaw_deg:+.0f} deg from the camera (at most "
                         f"{cfg.max_yaw_deg:g} deg): use a photo facing the camera")
    times["fit"] = time.perf_counter() - t
    say("build", 0.3)
    t = time.perf_counter()
    person = generic.with_identity(fit.identity)
    avatar = build_human_avatar(cfg.num_gaussians, cfg.seed, face=person)
    times["build"] = time.perf_counter() - t
    say("colour", 0.4)
    t = time.perf_counter()
    expr = fit.expression[None]
    photo = crop.astype(np.float32) / 255.0
    outline = lm[list(FACE_OVAL_ORDER)]
    mouth = lm[list(INNER_LIPS_ORDER)]
    groups = gaussian_groups(avatar)
    colour, conf, means = project_photo(avatar, expr, fit.viewmat, fit.K, photo, outline,
                                        mouth)
    hair_colour = sample_hair_colour(photo, lm)
    if np.all(np.isfinite(hair_colour)):
        # The photo's hair over the forehead (a fringe) belongs to the look: above the face
        # outline, skin Gaussians that see hair-coloured photo take it.
        _, conf_up, _ = project_photo(avatar, expr, fit.viewmat, fit.K, photo,
                                      _raised_outline(outline, lm), mouth)
        # Only between the outer eye corners: hair over the temples would look like a smear
        # on a head whose own hair does not come down there.
        uv, _ = project(means, fit.viewmat.double().numpy(), fit.K.double().numpy())
        lo, hi = sorted((lm[263, 0], lm[33, 0]))
        hairy = (conf <= 0.0) & (conf_up > 0.0) & (uv[:, 0] > lo) & (uv[:, 0] < hi) & \
            (np.abs(colour - hair_colour).max(1) < HAIR_MATCH)
        conf = np.where(hairy, conf_up, conf)
        stats_hair = float(hairy.sum())
    else:
        stats_hair = 0.0
    mirror = mirror_index(avatar, groups.photo)
    default = avatar.params["color"].detach().cpu().numpy()
    # The skin-tone fill uses the face-wide tone: a local tone (blend_colours with the
    # Gaussians' positions) was measured worse on synthetic heads (docs/from_photo.md): it
    # carries the default's features (brows, lips) that the photo has elsewhere.
    neutral = None
    new, stats = blend_colours(default, groups, colour, conf, mirror, hair_colour, neutral)
    stats["fringe_gaussians"] = stats_hair
    with torch.no_grad():
        avatar.params["color"].copy_(torch.from_numpy(new))
    times["colour"] = time.perf_counter() - t
    t = time.perf_counter()
    if cfg.refine_steps > 0:
        r = cfg.refine_size / cfg.crop_size
        K = fit.K.clone()
        K[:2] *= r
        from PIL import Image
        small = np.asarray(Image.fromarray(crop).resize((cfg.refine_size,) * 2,
                                                        Image.Resampling.BOX))
        yy, xx = np.mgrid[0:cfg.refine_size, 0:cfg.refine_size] + 0.5
        pix = np.stack([xx.ravel(), yy.ravel()], 1)
        inside = polygon_mask(pix, outline * r) & ~polygon_mask(pix, mouth * r)
        mask = inside.reshape(cfg.refine_size, cfg.refine_size).astype(np.float32)
        stats.update(refine_colours(
            avatar, expr, fit.viewmat, K, small.astype(np.float32) / 255.0, mask,
            groups.photo & (conf > 0.05), cfg.refine_steps, cfg.refine_lr, cfg.lambda_ssim,
            cfg.refine_prior, progress=lambda i: say("refine", 0.45 + 0.55 * i / cfg.refine_steps)))
    if cfg.refine_steps > 0 and cfg.refill_after_refine:
        # The fill of what the photo did not see follows the refined colours (no seam).
        refined = avatar.params["color"].detach().cpu().numpy()
        again, _ = blend_colours(default, groups, refined, conf, mirror, hair_colour, neutral)
        with torch.no_grad():
            avatar.params["color"].copy_(torch.from_numpy(again))
    times["refine"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    say("done", 1.0)
    stats.update({"landmark_error_px": fit.error_px, "head_yaw_deg": fit.head_yaw_deg,
                  "head_pitch_deg": fit.head_pitch_deg,
                  "crop_scale_px_per_photo_px": float(s)})
    avatar.metadata.update({
        "name": "from-photo", "description": "avatar fitted to one photo (gemo avatar "
        "from-photo)", "built_by": "gemo avatar from-photo",
        "fit": {k: round(float(v), 4) for k, v in stats.items()}})
    LOG.info("avatar from photo: landmark error %.2f px, %.1f s", fit.error_px, times["total"])
    return PhotoAvatar(avatar, fit, crop, (float(x0), float(y0), float(s)), expr, stats, times)


__all__ = ["avatar_from_photo", "FromPhotoConfig", "PhotoAvatar", "PhotoError",
           "refine_colours", "FACE_OVAL_ORDER"]
