"""Build the default avatar: Gaussians on the ICT face mesh with a procedural human look.

The ICT Face Model (``gemo_ros.face.ict``) gives the geometry: skin, mouth socket, teeth,
gums and tongue, eyeballs and eyelashes. This module samples Gaussians over its triangles
(area x part density, deterministic seed), paints them (skin with low-frequency variation,
lips, brows, lashes, iris and sclera, teeth, gums, tongue), bakes soft lighting (a key light,
sky/ground tint and a cavity term from the mesh's own concavity) and grows a hair volume of
layered, strand-oriented Gaussians over the scalp (the ICT mesh has no hair): they are bound
to scalp triangles and lifted along the normal, so they follow the head. The eye occlusion
and eye blend shells (shading helpers of the original renderer), the lacrimal fluid and
the hidden half of each eyeball get no Gaussians. Used by ``scripts/build_default_avatar.py``.
"""

import logging
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from gemo_ros.avatar.model import ATTRIBUTE_DIMS, GaussianAvatar
from gemo_ros.face.arkit import ARKIT_NAMES
from gemo_ros.face.model import FaceModel, load_face_model

LOG = logging.getLogger(__name__)

#: Relative Gaussian density (per square metre) of each ICT part; 0 = no Gaussians.
PART_DENSITY: Dict[str, float] = {
    "face": 1.0, "head": 0.35, "mouth_socket": 0.35, "eye_socket_left": 0.0,
    "eye_socket_right": 0.0, "gums_tongue": 0.5, "teeth": 0.9, "sclera_left": 4.0,
    "iris_left": 0.0, "sclera_right": 4.0, "iris_right": 0.0, "lacrimal_left": 0.0,
    "lacrimal_right": 0.0, "eye_blend_left": 0.0, "eye_blend_right": 0.0,
    "eye_occlusion_left": 0.0, "eye_occlusion_right": 0.0, "eyelashes_left": 1.5,
    "eyelashes_right": 1.5,
}
#: Share of the Gaussians spent on the hair volume.
HAIR_FRACTION = 0.20

SKIN = np.array([0.86, 0.64, 0.53])
LIP = np.array([0.68, 0.37, 0.36])
BROW = np.array([0.20, 0.13, 0.09])
HAIR = np.array([0.25, 0.15, 0.09])
SCLERA = np.array([0.95, 0.93, 0.91])
IRIS = np.array([0.33, 0.21, 0.11])
TEETH = np.array([0.93, 0.90, 0.82])
GUM = np.array([0.74, 0.38, 0.40])
TONGUE = np.array([0.76, 0.38, 0.40])
CAVITY = np.array([0.28, 0.08, 0.08])
LASH = np.array([0.12, 0.08, 0.06])
#: Key light direction (head frame): upper front, from the avatar's right.
LIGHT = np.array([-0.35, 0.55, 0.76])
#: Upper lip: vermilion width from the inner lip line; lower lip: depth below the mouth
#: corners at the centre (metres).
LIP_UPPER, LIP_LOWER = 0.0102, 0.0112
#: Largest surface Gaussian spacing (metres).
MAX_SPACING = 0.004
#: Iris and pupil radii (metres, from the eye's optical axis).
IRIS_R, PUPIL_R = 0.0061, 0.0022


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at ``e0`` to 1 at ``e1`` (either order)."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def value_noise(p: np.ndarray, scale: float, seed: int = 0, waves: int = 8) -> np.ndarray:
    """Smooth noise in about [-1, 1] from random plane waves (deterministic, ``scale`` m)."""
    rng = np.random.default_rng(4321 + seed)
    out = np.zeros(len(p))
    for _ in range(waves):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        out += np.sin(p @ d / scale * rng.uniform(0.6, 1.6) + rng.uniform(0, 2 * np.pi))
    return out / np.sqrt(waves / 2.0)


def _adjacency(F: np.ndarray, n: int):
    import scipy.sparse as sp
    rows = np.concatenate([F[:, 0], F[:, 1], F[:, 2], F[:, 1], F[:, 2], F[:, 0]])
    cols = np.concatenate([F[:, 1], F[:, 2], F[:, 0], F[:, 0], F[:, 1], F[:, 2]])
    A = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    A.data[:] = 1.0
    return sp.diags(1.0 / np.maximum(np.asarray(A.sum(1)).ravel(), 1)) @ A


def vertex_normals_and_cavity(V: np.ndarray, F: np.ndarray, smooth: int = 6
                              ) -> Tuple[np.ndarray, np.ndarray]:
    """Smoothed unit vertex normals ``[V, 3]`` and a concavity measure ``[V]`` (metres).

    Concavity is how far the Laplacian-smoothed surface lies in front of a vertex along its
    normal: positive in folds and corners (nasolabial fold, eye corners, under the nose),
    negative on ridges. It stands in for ambient occlusion.
    """
    fn = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    n = np.zeros_like(V)
    for i in range(3):
        np.add.at(n, F[:, i], fn)
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    A = _adjacency(F, len(V))
    ns = n.copy()
    for _ in range(smooth):
        ns = A @ ns
    ns /= np.linalg.norm(ns, axis=1, keepdims=True) + 1e-12
    P = V.copy()
    for _ in range(12):
        P = 0.5 * P + 0.5 * (A @ P)
    cav = np.einsum("vc,vc->v", P - V, n)
    return ns, cav


def scalp_height(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Y of the hairline (metres) around the head, by azimuth from the front (+Z)."""
    th = np.abs(np.arctan2(x, z - 0.005))                    # 0 front, pi back
    # Front hairline 7 cm above the eyes, receding a little at the temples, down in front
    # of the ears (sideburns), over the ears and down to the nape.
    keys = np.array([0.0, 0.30, 0.55, 0.85, 1.15, 1.45, 1.75, 2.2, np.pi])
    vals = np.array([0.074, 0.071, 0.062, 0.042, 0.028, 0.014, -0.012, -0.055, -0.070])
    h = np.interp(th, keys, vals)
    h = h - 0.026 * np.exp(-0.5 * ((th - 1.36) / 0.06) ** 2)
    # An uneven hem (strands end at different heights), not a cut line.
    p = np.stack([x, np.zeros_like(x), z], -1)
    return h + 0.0025 * value_noise(p, 0.004, seed=11, waves=6)


def hair_cover(p: np.ndarray) -> np.ndarray:
    """Soft ``[n]`` mask in [0, 1]: how much a scalp point is under hair (1 = fully)."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    h = scalp_height(x, z)
    # The ear itself stays free: cut out a region around each ear.
    ear = np.exp(-0.5 * (((y + 0.025) / 0.022) ** 2 + ((z + 0.005) / 0.022) ** 2)) * \
        smoothstep(0.060, 0.070, np.abs(x))
    return smoothstep(-0.004, 0.006, y - h) * (1.0 - smoothstep(0.3, 0.7, ear))


def _sample(weight: np.ndarray, n: int, rng: np.random.Generator
            ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """About ``n`` (triangle, barycentric, expected-count) samples in proportion to ``weight``."""
    expected = weight * n / max(weight.sum(), 1e-12)
    cum = np.cumsum(expected)
    counts = np.diff(np.floor(np.concatenate([[0.0], cum]) + 0.5)).astype(np.int64)
    fidx = np.repeat(np.arange(len(weight)), counts)
    r1, r2 = rng.random(len(fidx)), rng.random(len(fidx))
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], -1)
    single = counts[fidx] == 1                 # a lone Gaussian sits near its centroid
    bary[single] = 0.8 / 3.0 + 0.2 * bary[single]
    return fidx, bary, expected[fidx]


class _Layout:
    """Per-vertex geometry of the face model used by the painter."""

    def __init__(self, face: FaceModel) -> None:
        self.V = face.vertices.detach().cpu().numpy().astype(np.float64)
        self.F = face.faces.detach().cpu().numpy()
        self.part = face.vertex_parts.detach().cpu().numpy()
        self.names = tuple(face.part_names)
        self.vn, self.cav = vertex_normals_and_cavity(self.V, self.F)
        self.eyes = face.joints.detach().cpu().numpy()[2:4].astype(np.float64)
        self.tri_part = np.array(self.names)[self.part[self.F[:, 0]]]
        e = self.V[self.F]
        self.area = 0.5 * np.linalg.norm(np.cross(e[:, 1] - e[:, 0], e[:, 2] - e[:, 0]), axis=1)
        self.k = (np.linalg.norm(e[:, 1] - e[:, 0], axis=1) + np.linalg.norm(
            e[:, 2] - e[:, 0], axis=1) + np.linalg.norm(e[:, 2] - e[:, 1], axis=1)) / 3.0
        self.centroid = e.mean(1)
        # Inner lip line: skin vertices of triangles shared with the mouth socket.
        tp = self.part[self.F]
        face_id, sock_id = self.names.index("face"), self.names.index("mouth_socket")
        rim = (tp == face_id).any(1) & (tp == sock_id).any(1)
        rim_v = np.unique(self.F[rim][tp[rim] == face_id])
        self.lip_line = self.V[rim_v]
        #: Height of the mouth corners (metres): splits upper from lower lip.
        self.corner_y = float(self.lip_line[np.argmax(np.abs(self.lip_line[:, 0])), 1])

    def at(self, fidx: np.ndarray, bary: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Barycentric interpolation of per-vertex ``values`` at samples."""
        return np.einsum("nk,nk...->n...", bary, values[self.F[fidx]])

    def gaze_axes(self) -> np.ndarray:
        """Return the unit optical axis ``[2, 3]`` of each eye (eyeball centre -> iris)."""
        out = []
        for i, side in enumerate(("left", "right")):
            iris = self.V[self.part == self.names.index(f"iris_{side}")]
            a = iris.mean(0) - self.eyes[i]
            out.append(a / np.linalg.norm(a))
        return np.array(out)


def _surface_weights(L: _Layout) -> np.ndarray:
    dens = np.array([PART_DENSITY.get(p, 0.0) for p in L.tri_part])
    c = L.centroid
    skin = np.isin(L.tri_part, ["face", "head"])
    # The face gets most of the skin budget; scalp under the hair and the far neck little.
    front = smoothstep(-0.02, 0.07, c[:, 2])
    dens = np.where(skin, dens * (0.45 + 1.6 * front), dens)
    dens = np.where(skin, dens * (1.0 - 0.8 * hair_cover(c)), dens)
    dens = np.where(skin & (c[:, 1] < -0.20), 0.0, dens)
    # Brows and lips get more Gaussians: they carry fine colour detail.
    brow = np.zeros(len(c))
    for sx in (1.0, -1.0):
        brow += np.exp(-0.5 * (((c[:, 0] - sx * 0.034) / 0.02) ** 2 + ((c[:, 1] - 0.024) / 0.008)
                               ** 2))
    mouth = np.exp(-0.5 * ((c[:, 0] / 0.03) ** 2 + ((c[:, 1] + 0.066) / 0.012) ** 2))
    dens = np.where(skin & (c[:, 2] > 0.05), dens * (1 + 1.5 * brow + 1.0 * mouth), dens)
    # Only the front half of each eyeball can be seen.
    for i, side in enumerate(("left", "right")):
        m = L.tri_part == f"sclera_{side}"
        ahead = (c[m] - L.eyes[i]) @ L.gaze_axes()[i]
        dens[np.nonzero(m)[0][ahead < -0.002]] = 0.0
    # Lower lashes read as a dotted line at panel sizes: only the upper ones are kept.
    lash = np.char.startswith(L.tri_part, "eyelashes")
    dens = np.where(lash & (c[:, 1] < 0.0), 0.0, dens)
    # The mouth socket: only its front can be seen through the lips; back teeth, back gums
    # and the root of the tongue hardly ever (they would cost render time for nothing).
    sock = L.tri_part == "mouth_socket"
    dens = np.where(sock, dens * smoothstep(0.06, 0.085, c[:, 2]), dens)
    inner = np.isin(L.tri_part, ["teeth", "gums_tongue"])
    dens = np.where(inner, dens * (0.1 + 0.9 * smoothstep(0.060, 0.082, c[:, 2])), dens)
    return L.area * dens


def _lip_masks(p: np.ndarray, L: _Layout, d: np.ndarray) -> np.ndarray:
    """Vermilion mask ``[n]`` in [0, 1] for skin points ``d`` (:func:`_rim_distance`) away.

    Upper lip: within ``LIP_UPPER`` of the inner lip line (the lip rolls out from it).
    Lower lip: from the lip line down to a curve under its fullest part (a distance from the
    inner line cuts across the lower lip, which bulges forward).
    """
    x, y = p[:, 0], p[:, 1]
    ax = np.abs(x)
    upper = y > L.corner_y
    w = np.clip(1.0 - (ax / 0.026) ** 2, 0.0, 1.0) ** 0.6
    up = smoothstep(0.0010, -0.0006, d - (LIP_UPPER * w + 0.0010)) * upper
    bottom = L.corner_y - LIP_LOWER * np.clip(1.0 - (ax / 0.025) ** 2, 0.0, 1.0) ** 0.7
    low = smoothstep(bottom - 0.0008, bottom + 0.0008, y) * ~upper * (ax < 0.026)
    return np.maximum(up, low) * (p[:, 2] > 0.075)


def _rim_distance(p: np.ndarray, L: _Layout) -> np.ndarray:
    """Distance ``[n]`` (metres) from the inner lip line."""
    from scipy.spatial import cKDTree
    return cKDTree(L.lip_line).query(p)[0]


def _brow_mask(p: np.ndarray) -> np.ndarray:
    """Eyebrow density ``[n]`` in [0, 1]: tapered arches above the eyes, with strokes."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    out = np.zeros(len(p))
    for s in (1.0, -1.0):
        u = s * x
        t = (u - 0.011) / 0.047                               # 0 inner end, 1 outer tail
        arch = 0.0205 + 0.0075 * np.sin(np.clip(t, 0, 1) * np.pi * 0.9) - 0.006 * t
        thick = 0.0040 * (1.05 - 0.55 * np.clip(t, 0, 1))
        across = np.abs(y - arch) / thick
        body = smoothstep(1.15, 0.55, across) * smoothstep(-0.02, 0.10, t) * \
            smoothstep(1.02, 0.80, t)
        # Hairs show as a faint texture only: strong strokes alias into speckle at low detail.
        stroke = 0.92 + 0.08 * np.sin(u * 2600 + y * 1100)
        out = np.maximum(out, body * stroke * (z > 0.06))
    return np.clip(out, 0, 1)


def _paint_surface(p: np.ndarray, nrm: np.ndarray, cav: np.ndarray, part: np.ndarray,
                   L: _Layout) -> Tuple[np.ndarray, np.ndarray]:
    """Colour ``[n, 3]`` (baked shading included) and opacity ``[n]`` of surface Gaussians."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    ax = np.abs(x)
    n = len(p)
    col = np.tile(SKIN, (n, 1))
    opa = np.full(n, 0.995)   # near 1: pixels saturate after fewer splats (cheaper)
    skin = np.isin(part, ["face", "head"])

    def g2(cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
        """Mirror-symmetric Gaussian bump at (|x|, y) = (cx, cy)."""
        return np.exp(-0.5 * (((ax - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))
    # Skin: low-frequency variation (not speckle), warm cheeks, nose and ears, cooler jaw.
    tone = 0.035 * value_noise(p, 0.012) + 0.015 * value_noise(p, 0.005, seed=3)
    col = col * (1 + tone[:, None])
    warm = 0.9 * g2(0.040, -0.030, 0.016, 0.014) + 0.6 * np.exp(
        -0.5 * ((x / 0.010) ** 2 + ((y + 0.030) / 0.012) ** 2)) + 0.5 * smoothstep(
        0.060, 0.075, ax) * (y < 0.02) * (z < 0.03)
    col = col + (warm * skin)[:, None] * np.array([0.035, -0.030, -0.030])
    jaw = smoothstep(-0.08, -0.11, y) * smoothstep(0.0, 0.06, z)
    col = col + (0.5 * jaw * skin)[:, None] * np.array([-0.025, -0.01, 0.0])
    # Under-eye and upper-lid tint: slightly darker, a touch cooler / rosier.
    under = g2(0.032, -0.013, 0.012, 0.004) * (z > 0.06)
    col = col * (1 - 0.05 * under[:, None]) + (under[:, None] * np.array([0.0, -0.01, 0.01]))
    lid = g2(0.031, 0.009, 0.011, 0.004) * (z > 0.06)
    col = col + (0.8 * lid)[:, None] * np.array([0.01, -0.02, -0.015])
    # Lips.
    rim_d = _rim_distance(p, L)
    lip = _lip_masks(p, L, rim_d) * skin
    lip_col = LIP * (1 + 0.03 * value_noise(p, 0.002, seed=5))[:, None]
    col = col * (1 - lip[:, None]) + lip_col * lip[:, None]
    rim = np.exp(-0.5 * (rim_d / 0.0012) ** 2) * lip
    col = col * (1 - 0.25 * rim[:, None])
    # Brows.
    brow = _brow_mask(p) * skin
    col = col * (1 - 0.95 * brow[:, None]) + BROW * 0.95 * brow[:, None]
    # Hairline under the hair cap: scalp coloured like the hair roots.
    cover = hair_cover(p) * skin
    col = col * (1 - cover[:, None]) + (HAIR * 0.75) * cover[:, None]
    # Baked light: wrapped key light, sky from above, a cavity term.
    Ld = LIGHT / np.linalg.norm(LIGHT)
    ndl = nrm @ Ld
    shade = 0.54 + 0.44 * np.clip((ndl + 0.35) / 1.35, 0, 1) + 0.06 * nrm[:, 1]
    occl = np.clip(cav / 0.0025, -1.0, 1.5)
    shade = shade * (1 - 0.16 * np.clip(occl, 0, None)) * (1 + 0.04 * np.clip(-occl, 0, 1))
    # Under the chin and the neck sit in the jaw's shadow; the neck fades out at the bottom.
    neck = smoothstep(-0.095, -0.125, y) * (z < 0.075)
    shade = shade * (1 - 0.25 * neck * skin)
    opa = np.where(skin, opa * smoothstep(-0.205, -0.175, y), opa)
    col = np.where(skin[:, None], col * shade[:, None], col)
    # Eyes: the outer shell gets sclera, iris (radial streaks, limbal ring) and pupil.
    for i, side in enumerate(("left", "right")):
        m = part == f"sclera_{side}"
        if not m.any():
            continue
        a = L.gaze_axes()[i]
        rel = p[m] - L.eyes[i]
        along = rel @ a
        perp_v = rel - along[:, None] * a
        r = np.linalg.norm(perp_v, axis=1)
        up = np.array([0.0, 1.0, 0.0]) - a[1] * a
        up /= np.linalg.norm(up)
        ang = np.arctan2(perp_v @ np.cross(a, up), perp_v @ up)
        streak = 0.86 + 0.14 * np.sin(ang * 29.0) * np.sin(ang * 7.0 + 1.0)
        iris = IRIS[None] * (streak * (1.30 - 0.55 * r / IRIS_R))[:, None]
        iris = iris + np.array([0.06, 0.07, 0.01]) * smoothstep(0.0045, 0.0028, r)[:, None]
        corner = smoothstep(0.009, 0.014, r)
        sclera = SCLERA * (1 - 0.10 * corner)[:, None] + corner[:, None] * np.array(
            [0.03, -0.03, -0.03])
        c = np.where((r < IRIS_R)[:, None], iris, sclera)
        limbal = smoothstep(IRIS_R - 0.0010, IRIS_R - 0.0002, r) * (r < IRIS_R + 0.0004)
        c = c * (1 - 0.55 * limbal[:, None])
        c = np.where((r < PUPIL_R)[:, None], np.array([0.025, 0.02, 0.02]), c)
        # The upper lid shades the top of the eyeball; a catch light up and to the right.
        h = perp_v @ up / 0.012
        shade_e = 0.93 - 0.22 * smoothstep(0.05, 0.7, h)
        side_x = perp_v @ np.cross(a, up)
        up_x = perp_v @ up
        catch = np.exp(-0.5 * (((side_x + 0.0017) / 0.0008) ** 2
                               + ((up_x - 0.0020) / 0.0008) ** 2))
        c = c * shade_e[:, None] * (1 - catch[:, None]) + 0.95 * catch[:, None]
        col[m] = c
    lash = np.char.startswith(part, "eyelashes")
    col[lash] = LASH
    # Lashes are fibres, not a sheet: mostly see-through.
    opa[lash] = 0.28
    # Mouth: teeth (darker toward the back and the gum line), gums, tongue, dark socket.
    teeth = part == "teeth"
    depth = smoothstep(0.098, 0.070, z)                      # 0 at the front teeth
    tooth = TEETH[None] * (1 - 0.55 * depth)[:, None]
    gum_band = smoothstep(0.0045, 0.0065, np.abs(y + 0.0655)) * (ax < 0.03)
    col[teeth] = (tooth * (1 - gum_band[:, None]) + GUM * gum_band[:, None])[teeth]
    gt = part == "gums_tongue"
    tongue_like = (y < -0.070) & (ax < 0.022)
    col[gt] = np.where(tongue_like[:, None], TONGUE, GUM)[gt] * (1 - 0.45 * depth[gt])[:, None]
    sock = part == "mouth_socket"
    col[sock] = CAVITY * (1 - 0.6 * depth[sock])[:, None]
    return np.clip(col, 0.0, 1.0), opa


def _hair(L: _Layout, n: int, rng: np.random.Generator):
    """Hair volume: ``(fidx, bary, xyz local, angle, sig_u, sig_v, sig_n, colour, opacity)``."""
    c = L.centroid
    scalp = np.isin(L.tri_part, ["face", "head"]) & (c[:, 1] > -0.09)
    w = L.area * hair_cover(c) * scalp
    fidx, bary, _ = _sample(w, n, rng)
    p = np.einsum("nk,nkc->nc", bary, L.V[L.F[fidx]])
    nrm = L.at(fidx, bary, L.vn)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    # One spacing for the whole cap (the sampling weight's cover factor is not density).
    spacing = np.full(len(fidx), np.sqrt(w.sum() / max(n, 1) / max(float(np.mean(
        hair_cover(c)[fidx])), 0.3)))
    # Volume: thicker on top and at the back of the crown, a soft taper at the hairline.
    cover = hair_cover(p)
    top = smoothstep(0.02, 0.09, p[:, 1])
    thick = (0.0055 + 0.010 * top) * (0.35 + 0.65 * cover)
    layer = rng.random(len(fidx)) ** 0.7                    # more Gaussians toward the surface
    lift = thick * layer
    # Strands flow from a crown whorl, combed forward-right at the front (a side part).
    crown = np.array([0.015, 0.115, -0.030])
    flow = p - crown
    flow -= np.einsum("nc,nc->n", flow, nrm)[:, None] * nrm
    fringe = smoothstep(0.02, 0.08, p[:, 2]) * top
    flow += fringe[:, None] * np.array([-0.05, 0.0, 0.0])
    flow /= np.linalg.norm(flow, axis=1, keepdims=True) + 1e-12
    # Local triangle frame (e1, e2, n) of the bound triangles to express the strand angle.
    tri = L.V[L.F[fidx]]
    e1 = tri[:, 1] - tri[:, 0]
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    tn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    tn /= np.linalg.norm(tn, axis=1, keepdims=True)
    e2 = np.cross(tn, e1)
    out = np.sign(np.einsum("nc,nc->n", tn, nrm))
    angle = np.arctan2(np.einsum("nc,nc->n", flow, e2),
                       np.einsum("nc,nc->n", flow, e1))
    angle += rng.normal(0, 0.12, len(fidx))
    k = L.k[fidx]
    xyz = np.zeros((len(fidx), 3))
    xyz[:, 2] = out * lift / k
    sig_u = 1.8 * spacing * (0.4 + 0.6 * cover)
    sig_v = 0.5 * spacing
    sig_n = 0.45 * spacing
    # Colour: dark roots, lighter, warmer tips on the outer layer; streaks along strands.
    streak = value_noise(p + 0.004 * layer[:, None] * flow, 0.0018, seed=7)
    ndl = nrm @ (LIGHT / np.linalg.norm(LIGHT))
    shade = 0.55 + 0.45 * np.clip((ndl + 0.4) / 1.4, 0, 1)
    # A soft sheen band across the top of the head.
    sheen = 0.22 * np.exp(-0.5 * ((ndl - 0.75) / 0.12) ** 2) * layer
    col = HAIR * ((0.70 + 0.45 * layer) * (1 + 0.22 * streak) * shade)[:, None]
    col = col + sheen[:, None] * np.array([0.9, 0.75, 0.55])
    opa = 0.99 * (0.6 + 0.4 * cover)
    return fidx, bary, xyz, angle, sig_u, sig_v, sig_n, np.clip(col, 0, 1), opa


def build_human_avatar(num_gaussians: int = 48000, seed: int = 0,
                       face: Optional[FaceModel] = None) -> GaussianAvatar:
    """Build the default human avatar on the ICT face model (deterministic for a seed).

    Args:
        num_gaussians: approximate Gaussian count (surface + hair).
        seed: random seed of the sampling and of the in-plane orientations.
        face: ICT face model to bind to (default ``load_face_model("ict")``; an identity
            from ``face.with_identity(...)`` works too).
    """
    face = face or load_face_model("ict")
    rng = np.random.default_rng(seed)
    L = _Layout(face)
    n_hair = int(round(HAIR_FRACTION * num_gaussians))
    fidx, bary, expected = _sample(_surface_weights(L), num_gaussians - n_hair, rng)
    p = np.einsum("nk,nkc->nc", bary, L.V[L.F[fidx]])
    nrm = L.at(fidx, bary, L.vn)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True) + 1e-12
    cav = L.at(fidx, bary, L.cav)
    part = np.array(L.names)[L.part[L.F[fidx, 0]]]
    col, opa = _paint_surface(p, nrm, cav, part, L)
    # Faded-out regions (deep mouth socket, under the hair) must not grow huge splats.
    spacing = np.minimum(np.sqrt(L.area[fidx] / np.maximum(expected, 1e-12)), MAX_SPACING)
    angle = rng.uniform(0, np.pi, len(fidx))
    # Wide enough that random placement leaves no holes (the dark scalp would show through).
    sig_u = 0.95 * spacing
    sig_v = 0.95 * spacing
    sig_n = 0.25 * spacing + 5e-5
    lash = np.char.startswith(part, "eyelashes")
    sig_u = np.where(lash, np.minimum(0.9 * spacing, 0.0008), sig_u)
    sig_v = np.where(lash, np.minimum(0.3 * spacing, 0.0003), sig_v)
    xyz = np.zeros((len(fidx), 3))
    h = _hair(L, n_hair, rng)
    fidx = np.concatenate([fidx, h[0]])
    bary = np.concatenate([bary, h[1]])
    xyz = np.concatenate([xyz, h[2]])
    angle = np.concatenate([angle, h[3]])
    sig_u = np.concatenate([sig_u, h[4]])
    sig_v = np.concatenate([sig_v, h[5]])
    sig_n = np.concatenate([sig_n, h[6]])
    col = np.concatenate([col, h[7]])
    opa = np.concatenate([opa, h[8]])
    is_hair = np.concatenate([np.zeros(len(part), bool), np.ones(len(h[0]), bool)])
    part = np.concatenate([part, np.array(["hair"] * len(h[0]))])
    k = L.k[fidx]
    scale = np.log(np.stack([sig_u, sig_v, sig_n], -1) / k[:, None])
    rot = np.stack([np.cos(angle / 2), np.zeros_like(angle), np.zeros_like(angle),
                    np.sin(angle / 2)], -1)
    opa = np.clip(opa, 1e-3, 1 - 1e-3)
    params = {
        "xyz": torch.tensor(xyz, dtype=torch.float32),
        "rotation": torch.tensor(rot, dtype=torch.float32),
        "scale": torch.tensor(scale, dtype=torch.float32),
        "color": torch.tensor(col, dtype=torch.float32),
        "opacity": torch.tensor(np.log(opa / (1 - opa))[:, None], dtype=torch.float32),
    }
    dense, touched = _appearance_deltas(np.concatenate([p, np.zeros((len(h[0]), 3))]), part,
                                        col, is_hair)
    meta = {"name": "default", "description": "human head on the ICT Face Model (gemo_ros)",
            "seed": seed, "built_by": "scripts/build_default_avatar.py --kind human",
            "face_licence": "ICT Face Model, MIT (gemo_ros/assets/ict_facekit_LICENSE)"}
    LOG.info("human avatar: %d Gaussians (%d hair), %d with appearance deltas",
             len(fidx), len(h[0]), len(touched))
    return GaussianAvatar(face, torch.from_numpy(fidx), torch.tensor(bary, dtype=torch.float32),
                          params, torch.from_numpy(dense), torch.from_numpy(touched),
                          metadata=meta)


def _appearance_deltas(p: np.ndarray, part: np.ndarray, col: np.ndarray, is_hair: np.ndarray
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """Colour blendshapes where geometry is not enough: ``(dense [K, M, 14], index [M])``.

    The mouth interior darkens as the jaw opens (it falls into shadow, away from the light
    that reaches the lips), a little with a funnel.
    """
    D = sum(ATTRIBUTE_DIMS.values())
    names = list(ATTRIBUTE_DIMS)
    off = sum(list(ATTRIBUTE_DIMS.values())[:names.index("color")])
    dark = (0.35 * (part == "mouth_socket") + 0.30 * (part == "gums_tongue")
            + 0.15 * (part == "teeth") * smoothstep(0.095, 0.080, p[:, 2]))
    dark = dark * ~is_hair
    dense = np.zeros((len(ARKIT_NAMES), len(p), D), np.float32)
    dense[ARKIT_NAMES.index("jawOpen"), :, off:off + 3] = -dark[:, None] * col
    dense[ARKIT_NAMES.index("mouthFunnel"), :, off:off + 3] = -0.5 * dark[:, None] * col
    touched = np.nonzero(np.abs(dense).max(axis=(0, 2)) > 2e-3)[0]
    return dense[:, touched], touched


__all__ = ["build_human_avatar", "PART_DENSITY", "scalp_height", "hair_cover"]
