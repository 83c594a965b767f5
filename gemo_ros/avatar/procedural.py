"""Build the default Gaussian avatar from the default face model (procedural appearance).

Gaussians are sampled over the triangles (area x region density, deterministic seed), get a
hand-designed albedo per part (skin, lips, brows, eyes with iris and pupil, teeth, gums,
mouth, tongue, hair) with soft baked lighting, and appearance blendshapes where geometry
alone is wrong: the mouth interior darkens as the jaw opens, wrinkles appear with frowns,
squints and sneers, cheeks blush with a smile. Used by ``scripts/build_default_avatar.py``.
"""

import logging
from typing import Dict, Tuple

import numpy as np
import torch

from gemo_ros.avatar.model import ATTRIBUTE_DIMS, GaussianAvatar
from gemo_ros.face import default_head as dh
from gemo_ros.face.arkit import ARKIT_NAMES
from gemo_ros.face.model import FaceModel, load_face_model

LOG = logging.getLogger(__name__)

#: Relative Gaussian density per part (per square metre, times a global factor).
PART_DENSITY = {
    "skin": 1.0, "eye_left": 5.0, "eye_right": 5.0, "lid_upper_left": 7.0,
    "lid_lower_left": 5.0, "lid_upper_right": 7.0, "lid_lower_right": 5.0,
    "teeth_upper": 2.0, "teeth_lower": 2.0, "mouth_cavity": 0.6, "tongue": 1.2,
    "ear_left": 1.0, "ear_right": 1.0, "hair": 0.9, "neck": 0.45,
}

SKIN = np.array([0.92, 0.71, 0.59])
LIP = np.array([0.78, 0.50, 0.47])
BROW = np.array([0.24, 0.15, 0.10])
HAIR = np.array([0.27, 0.16, 0.09])
SCLERA = np.array([0.93, 0.91, 0.89])
IRIS = np.array([0.36, 0.22, 0.11])
TEETH = np.array([0.94, 0.92, 0.85])
GUM = np.array([0.78, 0.40, 0.42])
CAVITY = np.array([0.32, 0.09, 0.09])
TONGUE = np.array([0.80, 0.40, 0.42])
LIGHT = np.array([-0.35, 0.55, 0.76])


def _vertex_normals(V: np.ndarray, F: np.ndarray, part: np.ndarray, names: Tuple[str, ...],
                    smooth_iters: int = 12) -> np.ndarray:
    """Outward, smoothed vertex normals for baked shading (no creases at part seams)."""
    import scipy.sparse as sp
    fn = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    n = np.zeros_like(V)
    for i in range(3):
        np.add.at(n, F[:, i], fn)
    # Orient outward from the part's own centre (eyeballs/lids: the eye centre).
    pn = np.array(names)[part]
    centre = np.tile(np.array([0.0, 0.0, -0.01]), (len(V), 1))
    for side, sx in (("left", 1.0), ("right", -1.0)):
        m = np.char.endswith(pn, side) & (np.char.startswith(pn, "eye") | np.char.startswith(
            pn, "lid"))
        centre[m] = (sx * dh.EYE_X, dh.EYE_Y, dh.EYE_Z)
    n = np.where((np.einsum("vc,vc->v", n, V - centre) < 0)[:, None], -n, n)
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    # Laplacian smoothing over the mesh graph.
    rows = np.concatenate([F[:, 0], F[:, 1], F[:, 2], F[:, 1], F[:, 2], F[:, 0]])
    cols = np.concatenate([F[:, 1], F[:, 2], F[:, 0], F[:, 0], F[:, 1], F[:, 2]])
    A = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(V), len(V)))
    A = A + sp.eye(len(V))
    A = sp.diags(1.0 / np.asarray(A.sum(1)).ravel()) @ A
    for _ in range(smooth_iters):
        n = A @ n
    return n / (np.linalg.norm(n, axis=1, keepdims=True) + 1e-12)


def _hash_noise(p: np.ndarray, scale: float, seed: int = 0) -> np.ndarray:
    """Smooth-ish value noise in [-1, 1] from sums of random sinusoids (deterministic)."""
    rng = np.random.default_rng(1234 + seed)
    out = np.zeros(len(p))
    for _ in range(6):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        out += np.sin(p @ d / scale * rng.uniform(0.6, 1.6) + rng.uniform(0, 6.28))
    return out / 6 ** 0.5


def _sample(face: FaceModel, n_target: int, rng: np.random.Generator
            ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick (face index, barycentric, local spacing in metres) for about ``n_target`` Gaussians."""
    V = face.vertices.numpy().astype(np.float64)
    F = face.faces.numpy()
    part = face.vertex_parts.numpy()
    names = np.array(face.part_names)
    tri_part = names[part[F[:, 0]]]
    area = 0.5 * np.linalg.norm(np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]]), axis=1)
    dens = np.array([PART_DENSITY[p] for p in tri_part])
    c = V[F].mean(1)
    skin = tri_part == "skin"
    # The face (front) gets most of the skin budget; skin under the hair cap gets none.
    theta = np.arctan2(c[:, 0], c[:, 2])
    covered = skin & (c[:, 1] > dh.hairline_y(theta) + 0.006) & (c[:, 2] < 0.07)
    dens = np.where(skin, dens * (0.5 + 2.5 * dh.smoothstep(0.0, 0.06, c[:, 2])), dens)
    dens = np.where(covered, 0.0, dens)
    dens = np.where(skin & (c[:, 1] < -0.12) & (c[:, 2] < 0.02), 0.0, dens)   # under the jaw
    # Mouth cavity: only the part that can be seen through the lips.
    weight = area * dens
    expected = weight * n_target / weight.sum()
    cum = np.cumsum(expected)
    counts = np.diff(np.floor(np.concatenate([[0.0], cum]) + 0.5)).astype(np.int64)
    fidx = np.repeat(np.arange(len(F)), counts)
    r1, r2 = rng.random(len(fidx)), rng.random(len(fidx))
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], -1)
    # A lone Gaussian sits near its triangle's centroid: fewer holes than uniform sampling.
    single = counts[fidx] == 1
    bary[single] = 0.8 / 3.0 + 0.2 * bary[single]
    spacing = np.sqrt(area[fidx] / np.maximum(expected[fidx], 1e-9))
    return fidx, bary, spacing


def _albedo(pos: np.ndarray, nrm: np.ndarray, part: np.ndarray, uv: np.ndarray,
            names: Tuple[str, ...]) -> Tuple[np.ndarray, np.ndarray]:
    """Colour [N, 3] (with baked shading) and opacity [N] per Gaussian."""
    x, y, z = pos[:, 0], pos[:, 1], pos[:, 2]
    ax = np.abs(x)
    pn = np.array(names)[part]
    col = np.tile(SKIN, (len(pos), 1))
    opa = np.full(len(pos), 0.97)
    g = dh.gauss
    is_skin = np.isin(pn, ["skin", "neck", "ear_left", "ear_right"])
    is_skin |= np.char.startswith(pn, "lid_")
    # Skin: subtle mottling, warmer cheeks/nose/ears, cooler jaw.
    mott = _hash_noise(pos, 0.004)
    col = col * (1 + 0.025 * mott[:, None])
    blush = 0.8 * g(ax, y, 0.040, -0.036, 0.014, 0.011)
    blush += 0.5 * g(x, y, 0, dh.NOSE_TIP[1], 0.01, 0.008)
    col = col + (blush * is_skin)[:, None] * np.array([0.03, -0.045, -0.04])
    ear = np.isin(pn, ["ear_left", "ear_right"])
    col[ear] = col[ear] * np.array([1.0, 0.93, 0.92])
    # Lips: colour by distance from the lip line, soft vermilion border.
    ym = dh.mouth_line(x)
    lip_w = np.clip(1.0 - (ax / (dh.MOUTH_HW * 1.08)) ** 2, 0, 1)
    up = (y > ym) & (y < ym + 0.0075 * lip_w ** 0.5 - 0.0010 * g(x, y, 0, 0, 0.004, 1.0))
    low = (y <= ym) & (y > ym - 0.0105 * lip_w ** 0.5)
    lipm = ((up | low) & (pn == "skin") & (z > 0.06)).astype(float)
    # Soften the border by distance.
    col = col * (1 - lipm[:, None]) + LIP * lipm[:, None]
    col = col - (lipm * np.exp(-0.5 * ((y - ym) / 0.0012) ** 2))[:, None] * np.array(
        [0.25, 0.18, 0.16])
    # Eyebrows: a tapered arch of hair strokes above each eye.
    for s in (1.0, -1.0):
        u = s * x
        t = (u - 0.010) / 0.046
        arch = dh.BROW_Y + 0.004 + 0.006 * np.sin(np.clip(t, 0, 1) * np.pi * 0.85) - 0.004 * t
        thick = 0.0042 * (1.1 - 0.6 * np.clip(t, 0, 1))
        inside = (t > 0) & (t < 1) & (np.abs(y - arch) < thick) & (pn == "skin") & (z > 0.04)
        stroke = 0.65 + 0.35 * np.sin(u * 2400 + y * 900)
        mask = inside * np.clip(stroke, 0, 1) * dh.smoothstep(0.0, 0.12, t) * dh.smoothstep(
            1.0, 0.85, t)
        col = col * (1 - mask[:, None]) + BROW * mask[:, None]
    # Nostrils and shadow under the nose.
    nostril = g(ax, y, 0.0070, dh.NOSE_TIP[1] - 0.0095, 0.0024, 0.0015) * (pn == "skin")
    col = col * (1 - 0.55 * nostril[:, None])
    # Baked light: key from the upper front, soft wrap, sky/ground tint, cavities darker.
    L = LIGHT / np.linalg.norm(LIGHT)
    ndl = nrm @ L
    shade = 0.62 + 0.38 * np.clip((ndl + 0.3) / 1.3, 0, 1) + 0.05 * nrm[:, 1]
    cav = (0.18 * g(ax, y, 0.016, 0.002, 0.006, 0.008)        # inner eye corners
           + 0.22 * g(ax, y, dh.MOUTH_HW + 0.001, dh.MOUTH_Y, 0.003, 0.003)
           + 0.12 * g(x, y, 0, -0.087, 0.015, 0.004)         # under the lower lip
           + 0.10 * g(ax, y, dh.EYE_X, dh.EYE_Y + 0.013, 0.012, 0.003)   # lid crease
           + 0.09 * g(ax, y, 0.012, -0.022, 0.003, 0.012)          # sides of the nose
           + 0.10 * g(ax, y, 0.013, dh.NOSE_TIP[1] - 0.006, 0.004, 0.004))
    shade = shade * (1 - cav * (pn == "skin"))
    neck = pn == "neck"
    shade = np.where(neck, shade * (0.72 + 0.18 * dh.smoothstep(-0.06, -0.13, y)), shade)
    opa = np.where(neck, 0.97 * dh.smoothstep(-0.205, -0.175, y), opa)
    # Eyes: sclera, hazel iris with radial streaks, dark limbal ring, pupil, a catch light.
    eye = np.isin(pn, ["eye_left", "eye_right"])
    al, be = uv[:, 0], uv[:, 1]
    iris_r, pupil_r = 0.54, 0.22
    streak = 0.85 + 0.15 * np.sin(be * 23.0) * np.sin(be * 7.0 + 1.0)
    iris_col = IRIS[None] * streak[:, None] * (1.25 - 0.6 * (al / iris_r))[:, None]
    iris_col = iris_col + np.array([0.05, 0.06, 0.0]) * dh.smoothstep(0.3, 0.1, al)[:, None]
    ec = np.where((al < iris_r)[:, None], iris_col, SCLERA * (1 - 0.12 * dh.smoothstep(
        0.9, 1.6, al))[:, None])
    ec = np.where((np.abs(al - iris_r) < 0.05)[:, None], IRIS * 0.35, ec)
    ec = np.where((al < pupil_r)[:, None], np.array([0.03, 0.02, 0.02]), ec)
    hx, hy = np.sin(al) * np.cos(be), np.sin(al) * np.sin(be)
    catch = np.exp(-0.5 * (((hx + 0.18) / 0.07) ** 2 + ((hy - 0.22) / 0.07) ** 2))
    ec = ec * (1 - catch[:, None]) + catch[:, None]
    col = np.where(eye[:, None], ec, col)
    # The upper lid shades the top of the eyeball; the corners of the sclera are darker.
    eye_shade = 0.92 - 0.22 * dh.smoothstep(0.05, 0.45, hy) - 0.12 * dh.smoothstep(
        0.55, 0.95, np.abs(hx))
    shade = np.where(eye, eye_shade + 0.25 * catch, shade)
    # Eyelids: lashes along the upper margin, a pink rim on the lower one.
    lidu = np.char.startswith(pn, "lid_upper")
    lidl = np.char.startswith(pn, "lid_lower")
    t = uv[:, 1]
    lash = lidu & (t > 0.86)
    col = np.where(lash[:, None], np.array([0.16, 0.11, 0.09]), col)
    col = np.where((lidl & (t > 0.86))[:, None], col * np.array([0.92, 0.8, 0.8]), col)
    lid = lidu | lidl
    radial = pos - np.array([0.0, 0.0, -0.01])
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    n_lid = 0.4 * nrm + 0.6 * radial
    n_lid /= np.linalg.norm(n_lid, axis=1, keepdims=True)
    lid_shade = 0.62 + 0.38 * np.clip((n_lid @ L + 0.3) / 1.3, 0, 1) + 0.05 * n_lid[:, 1]
    shade = np.where(lid, lid_shade * (1 - 0.08 * lidu * dh.smoothstep(0.5, 1.0, t)), shade)
    # Teeth with gaps, gums; mouth interior; tongue.
    for nm, sgn in (("teeth_upper", 1), ("teeth_lower", -1)):
        m = pn == nm
        tx, tt = uv[:, 0], uv[:, 1]
        width = np.where(np.abs(tx) < 0.009, 0.0085, 0.0072)
        gap = np.abs(np.sin(np.pi * tx / width * 2.0)) ** 0.15
        fall = 1 - 0.35 * np.abs(tx / 0.021) ** 2          # darker toward the back teeth
        tooth = TEETH[None] * ((0.8 + 0.2 * gap) * fall)[:, None]
        gum = tt > (0.72 if sgn > 0 else 0.76)
        c = np.where(gum[:, None], GUM, tooth)
        col = np.where(m[:, None], c, col)
        shade = np.where(m, 1.0, shade)
    cavity = pn == "mouth_cavity"
    col = np.where(cavity[:, None], CAVITY, col)
    tongue = pn == "tongue"
    col = np.where(tongue[:, None], TONGUE * (1 + 0.05 * mott)[:, None], col)
    shade = np.where(cavity | tongue, 1.0, shade)
    # Hair: brown with streaks along the strands and a soft hairline.
    hair = pn == "hair"
    streaks = _hash_noise(pos * np.array([3.0, 0.6, 3.0]), 0.003, seed=1)
    hc = HAIR * (1 + 0.22 * streaks[:, None]) * (0.9 + 0.25 * np.clip(nrm[:, 1:2], 0, 1))
    col = np.where(hair[:, None], hc, col)
    shade = np.where(hair, 0.85 + 0.25 * np.clip(ndl, 0, 1), shade)
    theta = np.arctan2(x, z)
    edge = dh.smoothstep(0.0, 0.010, y - dh.hairline_y(theta))
    opa = np.where(hair, 0.98 * (0.45 + 0.55 * edge), opa)
    col = np.clip(col * shade[:, None], 0.0, 1.0)
    return col, opa


def _appearance_deltas(pos: np.ndarray, part: np.ndarray, col: np.ndarray,
                       names: Tuple[str, ...]) -> Dict[str, np.ndarray]:
    """Colour deltas ``{expression: [N, 3]}`` where geometry alone is not enough."""
    x, y, z = pos[:, 0], pos[:, 1], pos[:, 2]
    ax = np.abs(x)
    pn = np.array(names)[part]
    skin = (pn == "skin") & (z > 0.03)
    g = dh.gauss
    out: Dict[str, np.ndarray] = {}
    dark = np.zeros(len(pos))
    dark += 0.50 * (pn == "mouth_cavity") + 0.30 * (pn == "tongue")
    dark += 0.25 * (pn == "teeth_lower") + 0.12 * (pn == "teeth_upper")
    out["jawOpen"] = -dark[:, None] * col
    out["mouthClose"] = 0.5 * dark[:, None] * col
    for side, s in (("Left", 1.0), ("Right", -1.0)):
        sx = s * x
        u = (sx - 0.018) - 0.35 * (dh.NOSE_TIP[1] - 0.008 - y)
        fold = np.exp(-0.5 * (u / 0.0025) ** 2) * dh.smoothstep(-0.038, -0.046, y) * \
            dh.smoothstep(-0.080, -0.066, y) * skin
        cheek = g(sx, y, 0.040, -0.035, 0.013, 0.011) * skin
        out[f"mouthSmile{side}"] = (-0.16 * fold)[:, None] * col + cheek[:, None] * np.array(
            [0.035, -0.02, -0.02])
        glab = skin * g(sx, y, 0.006, 0.016, 0.0025, 0.008) * (0.6 + 0.4 * np.cos(sx * 1600))
        out[f"browDown{side}"] = (-0.20 * glab)[:, None] * col
        crow = skin * g(sx, y, dh.EYE_X + 0.019, dh.EYE_Y - 0.002, 0.005, 0.008) * \
            np.clip(np.sin((y - dh.EYE_Y) * 900 + sx * 300), 0, 1)
        out[f"eyeSquint{side}"] = (-0.15 * crow)[:, None] * col
        out[f"cheekSquint{side}"] = (-0.10 * crow)[:, None] * col
        sneer = skin * g(sx, y, 0.009, -0.010, 0.004, 0.007) * np.clip(
            np.sin(y * 1500), 0, 1)
        out[f"noseSneer{side}"] = (-0.22 * sneer)[:, None] * col
    fore = skin * g(x, y, 0.0, 0.048, 0.030, 0.014) * np.clip(np.sin(y * 700), 0, 1) * \
        (pn == "skin")
    out["browInnerUp"] = (-0.13 * fore)[:, None] * col
    puff = skin * g(ax, y, 0.038, -0.060, 0.015, 0.016)
    out["cheekPuff"] = puff[:, None] * np.array([0.03, 0.0, -0.01])
    return out


def build_default_avatar(num_gaussians: int = 48000, seed: int = 0,
                         face: FaceModel = None) -> GaussianAvatar:
    """Build the procedural default avatar (deterministic for a given seed and count).

    Args:
        num_gaussians: approximate Gaussian count (exact count varies by a few).
        seed: random seed of the sampling and of the in-plane orientations.
        face: face model to bind to (default: ``load_face_model("default")``).
    """
    face = face or load_face_model("default")
    rng = np.random.default_rng(seed)
    fidx, bary, spacing = _sample(face, num_gaussians, rng)
    V = face.vertices.numpy().astype(np.float64)
    F = face.faces.numpy()
    tri = V[F[fidx]]
    pos = np.einsum("nk,nkc->nc", bary, tri)
    vn = _vertex_normals(V, F, face.vertex_parts.numpy(), face.part_names)
    nrm = np.einsum("nk,nkc->nc", bary, vn[F[fidx]])
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True) + 1e-12
    part = face.vertex_parts.numpy()[F[fidx, 0]]
    uv_all = _vertex_uv(face)
    uv = np.einsum("nk,nkc->nc", bary, uv_all[F[fidx]])
    # Azimuth-like uv may wrap within a triangle; use the nearest vertex's uv then.
    wrap = np.ptp(uv_all[F[fidx]][:, :, 1], axis=1) > 3.0
    uv[wrap] = uv_all[F[fidx[wrap], 0]]
    col, opa = _albedo(pos, nrm, part, uv, face.part_names)
    # Local frame of each bound triangle (template) to express strand directions for hair.
    e1 = tri[:, 1] - tri[:, 0]
    k = (np.linalg.norm(e1, axis=1) + np.linalg.norm(tri[:, 2] - tri[:, 0], axis=1)
         + np.linalg.norm(tri[:, 2] - tri[:, 1], axis=1)) / 3.0
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    e2 = np.cross(n, e1)
    angle = rng.uniform(0, np.pi, len(fidx))
    sig_u = 0.85 * spacing
    sig_v = 0.85 * spacing
    pn = np.array(face.part_names)[part]
    hair = pn == "hair"
    strand = pos - np.array([0.0, 0.125, -0.035])           # flow away from the crown
    st_a = np.arctan2(np.einsum("nc,nc->n", strand, e2), np.einsum("nc,nc->n", strand, e1))
    angle = np.where(hair, st_a, angle)
    sig_u = np.where(hair, 1.9 * spacing, sig_u)
    sig_v = np.where(hair, 0.45 * spacing, sig_v)
    sig_n = 0.30 * np.minimum(sig_u, sig_v) + 0.0001
    sig_n = np.where(hair, 0.6 * spacing, sig_n)
    # Fine parts get smaller splats so edges (lid margins, iris) stay crisp.
    scale = np.log(np.stack([sig_u, sig_v, sig_n], -1) / k[:, None])
    rot = np.stack([np.cos(angle / 2), np.zeros_like(angle), np.zeros_like(angle),
                    np.sin(angle / 2)], -1)
    xyz = np.zeros((len(fidx), 3))
    xyz[:, 2] = np.where(hair, rng.normal(0, 0.15, len(fidx)), 0.0)
    opa = np.clip(opa, 1e-3, 1 - 1e-3)
    params = {
        "xyz": torch.tensor(xyz, dtype=torch.float32),
        "rotation": torch.tensor(rot, dtype=torch.float32),
        "scale": torch.tensor(scale, dtype=torch.float32),
        "color": torch.tensor(col, dtype=torch.float32),
        "opacity": torch.tensor(np.log(opa / (1 - opa))[:, None], dtype=torch.float32),
    }
    D = sum(ATTRIBUTE_DIMS.values())
    col_off = list(ATTRIBUTE_DIMS).index("color")
    col_off = sum(list(ATTRIBUTE_DIMS.values())[:col_off])
    deltas_np = _appearance_deltas(pos, part, col, face.part_names)
    dense = np.zeros((len(ARKIT_NAMES), len(fidx), D), np.float32)
    for name, d in deltas_np.items():
        dense[ARKIT_NAMES.index(name), :, col_off:col_off + 3] = d
    touched = np.nonzero(np.abs(dense).max(axis=(0, 2)) > 2e-3)[0]
    dense = dense[:, touched]
    meta = {"name": "default", "description": "procedural default head (gemo_ros)",
            "seed": seed, "built_by": "scripts/build_default_avatar.py"}
    LOG.info("default avatar: %d Gaussians, %d with appearance deltas", len(fidx), len(touched))
    return GaussianAvatar(face, torch.from_numpy(fidx), torch.tensor(bary, dtype=torch.float32),
                          params, torch.from_numpy(dense), torch.from_numpy(touched),
                          metadata=meta)


def _vertex_uv(face: FaceModel) -> np.ndarray:
    from gemo_ros.face.default_head import build_head
    return _cached_uv(face.fingerprint(), build_head)


_UV_CACHE: Dict[str, np.ndarray] = {}


def _cached_uv(key: str, builder) -> np.ndarray:
    if key not in _UV_CACHE:
        _UV_CACHE[key] = builder().uv
    return _UV_CACHE[key]


__all__ = ["build_default_avatar"]
