"""Colour a Gaussian head from one photo: projection with visibility, then plausible fill.

Every skin Gaussian of the face is posed like the photographed face (fitted identity,
expression and camera), projected into the photo and given the photo's colour there, with
a confidence that is zero where the mesh hides it (z-buffer), where the surface turns away
from the camera (grazing views smear the photo) and outside the detected face outline
(hair, background). What the photo cannot see is filled, in this order of preference:

1. **symmetry**: the colour of the mirrored Gaussian (``x -> -x`` on the neutral head) when
   the photo saw that one better;
2. **skin tone**: the procedural default's colour at that place (it carries baked shading,
   lips, brows and their variation) scaled per channel to the photo's measured skin tone.

Eyes, teeth, gums, tongue, mouth socket and eyelashes keep the procedural default's look;
the default's hair keeps its shape and takes the hair colour sampled above the forehead.
Colours are display values in [0, 1] (the renderer writes them unchanged; photos likewise).
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from gemo_ros.avatar.human import smoothstep
from gemo_ros.fit.landmark_fit import EYE_CORNERS
from gemo_ros.fit.raster import project, rasterize_mesh, visible_points

#: Mesh parts that hide what lies behind them in the z-buffer (transparent shells left out).
OCCLUDERS = ("face", "head", "mouth_socket", "gums_tongue", "teeth", "sclera_left",
             "iris_left", "sclera_right", "iris_right")
#: Parts whose Gaussians take the photo's colours.
PHOTO_PARTS = ("face",)
#: Parts whose Gaussians take the skin-tone fill (no photo colour).
SKIN_PARTS = ("face", "head")
#: Facing (cosine between the surface normal and the direction to the camera) below which
#: the photo's colour is not trusted, and above which it is fully trusted.
FACING_MIN, FACING_FULL = 0.4, 0.75
#: Width of the fade at the face outline, as a fraction of the face's size in the image.
OUTLINE_FEATHER = 0.08
#: Reach of the local skin-tone ratio of the fill (metres).
FILL_RADIUS = 0.025
#: Weight of the tone-matched default in the blend (photo and mirror weights are <= 1).
FILL_WEIGHT = 0.03


@dataclass
class GaussianGroups:
    """Boolean ``[N]`` masks of an avatar's Gaussians by role."""

    photo: np.ndarray    # may take photo colours (face skin, lips, brows)
    skin: np.ndarray     # filled with the tone-matched default where unseen
    hair: np.ndarray     # the default's hair volume


def gaussian_groups(avatar) -> GaussianGroups:
    """Split an avatar built by ``gemo_ros.avatar.human`` into roles.

    Hair Gaussians are the ones lifted off their triangle (``xyz != 0``); the others lie on
    the surface of the part their triangle belongs to.
    """
    face = avatar.face
    part = face.vertex_parts[face.faces[avatar.binding_faces][:, 0]].cpu().numpy()
    hair = (avatar.params["xyz"].detach().abs().amax(-1) > 0).cpu().numpy()
    ids = lambda names: [face.part_names.index(n) for n in names]  # noqa: E731
    photo = np.isin(part, ids(PHOTO_PARTS)) & ~hair
    skin = np.isin(part, ids(SKIN_PARTS)) & ~hair
    return GaussianGroups(photo=photo, skin=skin, hair=hair)


def sample_bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Colours ``[N, C]`` of ``image [H, W, C]`` (float) at pixel positions ``uv [N, 2]``."""
    h, w = image.shape[:2]
    x = np.clip(uv[:, 0] - 0.5, 0, w - 1.001)
    y = np.clip(uv[:, 1] - 0.5, 0, h - 1.001)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    return (image[y0, x0] * (1 - fx) * (1 - fy) + image[y0, x0 + 1] * fx * (1 - fy)
            + image[y0 + 1, x0] * (1 - fx) * fy + image[y0 + 1, x0 + 1] * fx * fy)


def polygon_mask(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean ``[N]``: which ``points [N, 2]`` lie inside ``polygon [P, 2]``."""
    from matplotlib.path import Path
    return Path(polygon).contains_points(points)


def distance_to_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Distance ``[N]`` (pixels) from each of ``points [N, 2]`` to the edges of a polygon."""
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    ab = b - a                                                   # [P, 2]
    ap = points[:, None, :] - a[None]                            # [N, P, 2]
    t = np.clip((ap * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(points[:, None, :] - closest, axis=-1).min(1)


def project_photo(avatar, expr: torch.Tensor, viewmat: torch.Tensor, K: torch.Tensor,
                  image: np.ndarray, outline: np.ndarray,
                  mouth: Optional[np.ndarray] = None
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Photo colour and confidence of every Gaussian, posed as in the photo.

    Args:
        avatar: the avatar (its face model carries the fitted identity).
        expr: ``[1, 52]`` the fitted expression.
        viewmat, K: the fitted camera (``[4, 4]``, ``[3, 3]``).
        image: ``[H, W, 3]`` float photo in [0, 1].
        outline: ``[P, 2]`` pixel polygon of the face (the detector's face oval).
        mouth: optional ``[P, 2]`` pixel polygon of the inner lips: what shows there (teeth,
            tongue) must not be painted onto the lips.
    Returns:
        ``(colour [N, 3], confidence [N] in [0, 1], posed means [N, 3])``.
    """
    face = avatar.face
    with torch.no_grad():
        g = avatar(expr.to(avatar.binding_bary))
        verts = face.pose(expr.to(face.vertices))[0].double().cpu().numpy()
    means = g.means[0].double().cpu().numpy()
    F = face.faces.cpu().numpy()
    parts = face.vertex_parts.cpu().numpy()
    occ = np.isin(parts[F[:, 0]], [face.part_names.index(p) for p in OCCLUDERS])
    occ_ids = np.nonzero(occ)[0]
    h, w = image.shape[:2]
    vm, KK = viewmat.double().cpu().numpy(), K.double().cpu().numpy()
    fid, _, depth = rasterize_mesh(verts, F[occ], vm, KK, w, h)
    fid = np.where(fid >= 0, occ_ids[np.maximum(fid, 0)], -1)
    tri = avatar.binding_faces.cpu().numpy()
    vis = visible_points(means, tri, vm, KK, fid, depth)
    a, b, c = verts[F[tri, 0]], verts[F[tri, 1]], verts[F[tri, 2]]
    n = np.cross(b - a, c - a)
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    cam = -vm[:3, :3].T @ vm[:3, 3]
    to_cam = cam - means
    to_cam /= np.linalg.norm(to_cam, axis=1, keepdims=True) + 1e-12
    facing = (n * to_cam).sum(1)
    uv, _ = project(means, vm, KK)
    # Fade the photo out toward the face outline (no seam where the fill takes over).
    size = float(np.ptp(outline, axis=0).max())
    inside = polygon_mask(uv, outline) * smoothstep(
        0.0, OUTLINE_FEATHER * size, distance_to_polygon(uv, outline))
    if mouth is not None:
        inside = inside * ~polygon_mask(uv, mouth)
    conf = vis * inside * smoothstep(FACING_MIN, FACING_FULL, facing)
    colour = sample_bilinear(image, uv)
    return colour, conf, means


def mirror_index(avatar, mask: np.ndarray) -> np.ndarray:
    """Index of the masked Gaussian nearest each masked Gaussian's mirror image.

    Mirror images are taken on the neutral head (``x -> -x``); returns ``[N]``, -1 outside
    ``mask``.
    """
    from scipy.spatial import cKDTree
    with torch.no_grad():
        p = avatar.canonical_means().cpu().numpy()
    ids = np.nonzero(mask)[0]
    tree = cKDTree(p[ids])
    q = p[ids] * np.array([-1.0, 1.0, 1.0])
    _, j = tree.query(q)
    out = np.full(len(p), -1, np.int64)
    out[ids] = ids[j]
    return out


def sample_hair_colour(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Median colour ``[3]`` of a band above the forehead (where hair usually is)."""
    top = landmarks[10, :2]                      # forehead (MediaPipe index 10)
    chin = landmarks[152, :2]
    eye_l, eye_r = (landmarks[i, :2] for i in EYE_CORNERS)
    up = (top - chin) / (np.linalg.norm(top - chin) + 1e-9)
    size = np.linalg.norm(top - chin)
    h, w = image.shape[:2]
    pts = []
    for s in np.linspace(0.08, 0.22, 8):
        for t in np.linspace(0.0, 1.0, 12):
            p = top + up * s * size + (eye_r - eye_l) * (t - 0.5) * 0.8
            if 0 <= p[0] < w and 0 <= p[1] < h:
                pts.append(image[int(p[1]), int(p[0])])
    if not pts:
        return np.full(3, np.nan)
    # A darker-than-median statistic: the band catches highlights and some skin.
    return np.percentile(np.asarray(pts), 40, axis=0)


def blend_colours(default: np.ndarray, groups: GaussianGroups, photo: np.ndarray,
                  conf: np.ndarray, mirror: np.ndarray, hair_colour: np.ndarray,
                  positions: Optional[np.ndarray] = None
                  ) -> Tuple[np.ndarray, Dict[str, float]]:
    """Return the final neutral colours ``[N, 3]`` and statistics (see the module doc).

    ``positions [N, 3]`` (the neutral head's Gaussian centres, metres) make the skin-tone
    fill local: the default is scaled by the photo/default ratio of the well-seen Gaussians
    near each one (Gaussian weights, :data:`FILL_RADIUS`), falling back to the face-wide
    ratio far from anything seen, so the fill meets the photo without a seam.
    """
    out = default.copy()
    sure = groups.photo & (conf > 0.8)
    stats: Dict[str, float] = {"photo_seen": float((conf[groups.photo] > 0.05).mean())}
    if sure.sum() >= 20:
        ratio = np.median(photo[sure], 0) / np.maximum(np.median(default[sure], 0), 1e-3)
        ratio = np.clip(ratio, 0.3, 3.0)
    else:
        ratio = np.ones(3)
    stats.update({f"tone_ratio_{c}": float(r) for c, r in zip("rgb", ratio)})
    ratios = np.tile(ratio, (len(default), 1))
    if positions is not None and sure.sum() >= 20:
        from scipy.spatial import cKDTree
        seen = np.nonzero(sure)[0]
        k = min(64, len(seen))
        d, j = cKDTree(positions[seen]).query(positions[groups.skin], k=k)
        w = np.exp(-0.5 * (d / FILL_RADIUS) ** 2)                       # [n, k]
        num = (w[..., None] * photo[seen][j]).sum(1)
        den = (w[..., None] * default[seen][j]).sum(1)
        local = np.clip(num / np.maximum(den, 1e-3), 0.3, 3.0)
        a = (w.sum(1) / (w.sum(1) + 1.0))[:, None]
        ratios[groups.skin] = a * local + (1 - a) * ratio
    fill = np.clip(default * ratios, 0.0, 1.0)
    w_photo = np.where(groups.photo, conf, 0.0)
    m = np.where(mirror >= 0, mirror, 0)
    # The mirror speaks only where the photo saw this side poorly (keeps real asymmetry).
    w_mirror = np.where(groups.photo & (mirror >= 0), w_photo[m] * (1.0 - w_photo), 0.0)
    c_mirror = photo[m]
    skin = groups.skin
    num = (w_photo[:, None] * photo + w_mirror[:, None] * c_mirror
           + FILL_WEIGHT * fill)
    den = w_photo + w_mirror + FILL_WEIGHT
    out[skin] = (num / den[:, None])[skin]
    if np.all(np.isfinite(hair_colour)) and groups.hair.any():
        # The photo's hair colour with the default's strand shading (its luminance relative
        # to its median, softened): a per-channel ratio would blow bright strands out.
        lum = default[groups.hair] @ np.array([0.3, 0.59, 0.11])
        shade = np.sqrt(lum / max(float(np.median(lum)), 1e-3))
        out[groups.hair] = np.clip(hair_colour[None] * shade[:, None], 0.0, 1.0)
        stats.update({f"hair_{c}": float(v) for c, v in zip("rgb", hair_colour)})
    return np.clip(out, 0.0, 1.0), stats


__all__ = ["GaussianGroups", "gaussian_groups", "project_photo", "mirror_index",
           "blend_colours", "sample_hair_colour", "sample_bilinear", "polygon_mask",
           "distance_to_polygon"]
