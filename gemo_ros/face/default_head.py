"""Procedural default head: a human-proportioned mesh with the 52 ARKit blendshapes.

The head is assembled from parametric surfaces (a sculpted skull/face surface, eyeballs,
eyelid shells, teeth, mouth cavity, tongue, ears, hair cap and neck), each sampled on a
(u, v) grid and triangulated. Blendshapes are displacement fields: smooth falloff fields
over the template for the skin, and re-evaluation of the parametric eyelids with moved
lid margins for blinks, squints and wide eyes. Everything is deterministic (no randomness),
so the mesh (and the face indices an avatar binds to) is identical on every machine.

Axes follow docs/ARCHITECTURE.md: metres, +Y up, the face looks along +Z, +X is the
avatar's own left, origin at the head centre at eye height.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

import numpy as np

from gemo_ros.face.arkit import ARKIT_NAMES

JOINT_NAMES: Tuple[str, ...] = ("neck", "jaw", "eye_left", "eye_right")

# Landmarks of the template (metres). Named once; blendshapes and appearance use them.
EYE_X = 0.031            # eye centre |x|
EYE_Y = 0.001            # eye centre y
EYE_Z = 0.066            # eye centre z
EYE_R = 0.0124           # eyeball radius
LID_R_UP = 0.0135        # upper lid shell radius
LID_R_LOW = 0.0131       # lower lid shell radius (smaller: the closing upper lid passes in front)
MOUTH_Y = -0.066         # lip-meeting line at the centre
MOUTH_HW = 0.0225        # half width of the mouth
BROW_Y = 0.021           # eyebrow centre line at the eyes' x
NOSE_TIP = (0.0, -0.039)
MOUTH_Z = 0.089          # front of the lips at the centre (approx.)
NECK_JOINT = (0.0, -0.07, -0.02)
JAW_JOINT = (0.0, -0.028, -0.008)

PART_NAMES: Tuple[str, ...] = (
    "skin", "eye_left", "eye_right", "lid_upper_left", "lid_lower_left", "lid_upper_right",
    "lid_lower_right", "teeth_upper", "teeth_lower", "mouth_cavity", "tongue", "ear_left",
    "ear_right", "hair", "neck",
)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at ``e0`` to 1 at ``e1`` (either order)."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def gauss(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    """Axis-aligned 2D Gaussian falloff (1 at the centre)."""
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def mouth_line(x: np.ndarray) -> np.ndarray:
    """Y of the lip-meeting line at lateral position ``x`` (corners slightly raised: friendly)."""
    t = np.clip(np.abs(x) / MOUTH_HW, 0.0, 1.5)
    return MOUTH_Y + 0.0032 * t ** 2.2


def _grid_faces(nu: int, nv: int, wrap_u: bool) -> np.ndarray:
    """Triangles of a (nv rows x nu columns) vertex grid, row-major, consistent winding."""
    cols = nu if wrap_u else nu - 1
    i, j = np.meshgrid(np.arange(nv - 1), np.arange(cols), indexing="ij")
    a = i * nu + j
    b = i * nu + (j + 1) % nu
    c = (i + 1) * nu + j
    d = (i + 1) * nu + (j + 1) % nu
    tri = np.concatenate([np.stack([a, c, b], -1), np.stack([b, c, d], -1)], 0)
    return tri.reshape(-1, 3)


def _density_warp(n: int, lo: float, hi: float, centre: float, width: float,
                  boost: float, endpoint: bool) -> np.ndarray:
    """Return ``n`` samples of [lo, hi] that are ``1 + boost`` times denser near ``centre``."""
    fine = np.linspace(lo, hi, 4001)
    dens = 1.0 + boost * np.exp(-0.5 * ((fine - centre) / width) ** 2)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(fine))])
    cdf /= cdf[-1]
    q = np.linspace(0.0, 1.0, n, endpoint=endpoint)
    return np.interp(q, cdf, fine)


@dataclass
class Part:
    """One parametric surface of the head.

    ``fn(params) -> [n, 3]`` evaluates the surface for a dict of shape parameters, so
    blendshapes that move a parametric feature (an eyelid margin) can be expressed as
    ``fn(params + delta) - fn(params)``.
    """

    name: str
    fn: Callable[[Dict[str, float]], np.ndarray]
    faces: np.ndarray
    uv: np.ndarray
    keep_faces: np.ndarray = field(default=None)


# ---------------------------------------------------------------------------- skin

SKIN_NU, SKIN_NV = 232, 176


def _skin_param() -> Tuple[np.ndarray, np.ndarray]:
    theta = _density_warp(SKIN_NU, -np.pi, np.pi, 0.0, 0.55, 2.6, endpoint=False)
    phi = _density_warp(SKIN_NV, np.pi / 2, -np.pi / 2, -0.25, 0.45, 2.4, endpoint=True)
    th, ph = np.meshgrid(theta, phi)        # rows = elevation (top -> bottom)
    return th.ravel(), ph.ravel()


def _base_head(th: np.ndarray, ph: np.ndarray, grow: float = 0.0) -> np.ndarray:
    """Skull and face volume before features: an egg with a tapered jaw and flat face."""
    dx = np.cos(ph) * np.sin(th)
    dy = np.sin(ph)
    dz = np.cos(ph) * np.cos(th)
    ry = np.where(dy > 0, 0.112, 0.128) + grow
    rz = np.where(dz > 0, 0.088, 0.104) + grow
    rx = 0.077 + grow
    x, y, z = rx * dx, 0.006 + ry * dy, -0.012 + rz * dz
    # Jaw taper: the lower face narrows toward the chin, the back of the jaw less.
    s = np.clip((-0.015 - y) / 0.11, 0.0, 1.0)
    front = np.clip(dz, 0.0, 1.0)
    x = x * (1.0 - 0.30 * s ** 1.4 * (0.55 + 0.45 * front))
    # Cheeks/temples: a face is flatter than an ellipsoid across the front.
    x = x * (1.0 + 0.06 * front ** 2 * (1.0 - s))
    # The chin comes forward and the neck-side of the jaw tucks in.
    z = z + 0.010 * smoothstep(-0.07, -0.115, y) * front ** 3
    z = z - 0.012 * s ** 2 * (1.0 - front)
    # Flatten the crown a little and the back of the head.
    y = y - 0.006 * np.clip(dy, 0, 1) ** 6
    # Lower face: mouth and chin come forward and down (an ellipsoid falls away too fast).
    s_low = smoothstep(0.0, -0.11, y)
    f_front = smoothstep(-0.03, 0.06, z)
    lat = np.exp(-0.5 * (x / 0.048) ** 2)
    z = z + 0.031 * s_low ** 1.5 * f_front * lat
    y = y - 0.005 * s_low ** 2 * f_front * lat
    return np.stack([x, y, z], -1)


def _face_features(p: np.ndarray) -> np.ndarray:
    """Sculpt the face: nose, brows, sockets, cheekbones, lips, chin (+Z displacement)."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    ax = np.abs(x)
    front = smoothstep(0.02, 0.07, z)
    dz = np.zeros_like(x)
    dy = np.zeros_like(x)
    # Nose: bridge rising from between the eyes to a rounded tip, wings, septum.
    t = np.clip((0.006 - y) / (0.006 - NOSE_TIP[1]), 0.0, 1.0)
    ridge_h = 0.005 + 0.017 * t ** 1.3
    ridge_w = 0.0055 + 0.0045 * t
    ridge = ridge_h * np.exp(-0.5 * (x / ridge_w) ** 2) * smoothstep(0.012, 0.002, y)
    ridge = ridge * smoothstep(NOSE_TIP[1] - 0.011, NOSE_TIP[1] - 0.002, y)
    dz += ridge
    dz += 0.0050 * gauss(x, y, 0.0, NOSE_TIP[1] - 0.001, 0.0065, 0.0055)
    dz += 0.0075 * gauss(ax, y, 0.0125, NOSE_TIP[1] - 0.006, 0.0052, 0.0048)
    dz += 0.0050 * gauss(x, y, 0.0, NOSE_TIP[1] - 0.008, 0.0045, 0.0035)
    # Eye sockets and the brow ridge above them.
    dz -= 0.010 * gauss(ax, y, EYE_X, EYE_Y + 0.001, 0.0125, 0.0105)
    dz += 0.0040 * gauss(ax, y, 0.030, BROW_Y + 0.002, 0.020, 0.0065)
    dz += 0.0020 * gauss(x, y, 0.0, 0.035, 0.03, 0.02)
    # Cheekbones and cheeks.
    dz += 0.0060 * gauss(ax, y, 0.044, -0.024, 0.014, 0.012)
    dz += 0.0050 * gauss(ax, y, 0.034, -0.050, 0.013, 0.014)
    # Nasolabial groove: a soft line from the nose wing to outside the mouth corner.
    u = (ax - 0.018) - 0.35 * (NOSE_TIP[1] - 0.008 - y)
    groove = np.exp(-0.5 * (u / 0.0035) ** 2) * smoothstep(-0.036, -0.046, y)
    dz -= 0.0022 * groove * smoothstep(-0.085, -0.07, y)
    # Lips: the mouth region protrudes (teeth behind it), then upper/lower lip volumes.
    ym = mouth_line(x)
    dz += 0.0035 * gauss(x, y, 0.0, MOUTH_Y - 0.003, 0.026, 0.02)
    lip_w = np.clip(1.0 - (ax / (MOUTH_HW * 1.05)) ** 2, 0.0, 1.0) ** 0.6
    up = np.exp(-0.5 * ((y - ym - 0.0042) / 0.0030) ** 2) * lip_w
    low = np.exp(-0.5 * ((y - ym + 0.0055) / 0.0036) ** 2) * lip_w
    dz += 0.0032 * up + 0.0046 * low
    dz -= 0.0016 * gauss(x, y, 0.0, MOUTH_Y + 0.0135, 0.003, 0.004)   # philtrum groove
    dz -= 0.0030 * gauss(ax, y, MOUTH_HW + 0.001, MOUTH_Y + 0.001, 0.004, 0.004)  # corners
    # Lips curl inward at the slit so the mouth reads as two lips, not a cut.
    slit = np.exp(-0.5 * ((y - ym) / 0.0011) ** 2) * lip_w
    dz -= 0.0030 * slit
    # Chin and the fold above it.
    dz -= 0.0030 * gauss(x, y, 0.0, -0.087, 0.016, 0.0045)
    dz += 0.0080 * gauss(x, y, 0.0, -0.106, 0.015, 0.011)
    out = p.copy()
    out[:, 2] += dz * front
    out[:, 1] += dy * front
    return out


def _eye_region_fit(p: np.ndarray) -> np.ndarray:
    """Pull the skin around each eye opening onto the eyelid spheres (no seam at the lids)."""
    out = p.copy()
    for sx in (1.0, -1.0):
        dx = out[:, 0] - sx * EYE_X
        dy = out[:, 1] - EYE_Y
        rho = np.sqrt((dx / (1.02 * LID_R_UP)) ** 2 + (dy / (0.92 * LID_R_UP)) ** 2)
        w = smoothstep(1.9, 1.0, rho) * smoothstep(0.03, 0.05, out[:, 2])
        # Slightly outside the lid shells so the skin covers their far edges.
        r2 = (LID_R_UP + 0.0008) ** 2 - dx ** 2 - dy ** 2
        # Inside the sphere's footprint: its surface; outside: continue along the slope.
        z_s = EYE_Z + np.sqrt(np.clip(r2, 0.0, None)) - 0.35 * np.sqrt(np.clip(-r2, 0.0, None))
        out[:, 2] = out[:, 2] * (1.0 - w) + np.maximum(z_s, out[:, 2] - 0.004) * w
    return out


def _skin_fn(th: np.ndarray, ph: np.ndarray) -> Callable[[Dict[str, float]], np.ndarray]:
    def fn(params: Dict[str, float]) -> np.ndarray:
        return _eye_region_fit(_face_features(_base_head(th, ph)))
    return fn


def _skin_keep(p: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces to keep: cut the eye openings and the lip slit."""
    c = p[faces].mean(1)
    x, y, z = c[:, 0], c[:, 1], c[:, 2]
    keep = np.ones(len(faces), bool)
    for sx in (1.0, -1.0):
        dx, dy = x - sx * EYE_X, y - EYE_Y
        hole = (dx / (0.97 * LID_R_UP)) ** 2 + (dy / (0.80 * LID_R_UP)) ** 2 < 1.0
        keep &= ~(hole & (z > 0.04))
    ax = np.abs(x)
    gap = 0.0008 + 0.0006 * np.clip(1.0 - (ax / MOUTH_HW) ** 2, 0.0, 1.0)
    slit = (ax < MOUTH_HW * 0.97) & (np.abs(y - mouth_line(x)) < gap) & (z > 0.05)
    keep &= ~slit
    # Degenerate pole triangles.
    e1 = p[faces[:, 1]] - p[faces[:, 0]]
    e2 = p[faces[:, 2]] - p[faces[:, 0]]
    keep &= np.linalg.norm(np.cross(e1, e2), axis=1) > 1e-10
    return keep


def _make_skin() -> Part:
    th, ph = _skin_param()
    fn = _skin_fn(th, ph)
    faces = _grid_faces(SKIN_NU, SKIN_NV, wrap_u=True)
    p = fn({})
    return Part("skin", fn, faces, np.stack([th, ph], -1), _skin_keep(p, faces))


# ---------------------------------------------------------------------------- eyes

def _make_eye(side: float) -> Part:
    na, nb = 22, 36
    alpha = np.linspace(0.0, np.pi * 0.75, na)              # polar angle from the gaze axis
    beta = np.linspace(0.0, 2 * np.pi, nb, endpoint=False)
    al, be = np.meshgrid(alpha, beta, indexing="ij")
    al, be = al.ravel(), be.ravel()
    # Cornea bulge over the iris.
    r = EYE_R + 0.0009 * smoothstep(0.62, 0.0, al)
    centre = np.array([side * EYE_X, EYE_Y, EYE_Z])
    p = centre + np.stack([r * np.sin(al) * np.cos(be), r * np.sin(al) * np.sin(be),
                           r * np.cos(al)], -1)
    name = "eye_left" if side > 0 else "eye_right"
    faces = _grid_faces(nb, na, wrap_u=True)
    keep = np.linalg.norm(np.cross(p[faces[:, 1]] - p[faces[:, 0]],
                                   p[faces[:, 2]] - p[faces[:, 0]]), axis=1) > 1e-12
    return Part(name, lambda params, p=p: p.copy(), faces, np.stack([al, be], -1), keep)


LID_AZ = np.deg2rad(80.0)


def _lid_margin(az: np.ndarray, upper: bool, params: Dict[str, float]) -> np.ndarray:
    """Margin elevation (radians) of a lid at azimuth ``az`` for the shape parameters."""
    c = np.cos(np.clip(az / LID_AZ, -1, 1) * np.pi / 2) ** 0.7
    corner = np.deg2rad(-2.0)
    if upper:
        open_el = corner + (np.deg2rad(19.0 + params.get("raise", 0.0)) - corner) * c
        closed_el = corner + (np.deg2rad(-19.0) - corner) * c
        b = params.get("blink", 0.0)
        return open_el * (1 - b) + closed_el * b
    return corner + (np.deg2rad(-25.0 + params.get("low_raise", 0.0)) - corner) * c


def _make_lid(side: float, upper: bool) -> Part:
    nu, nv = 44, 20
    az = np.linspace(-LID_AZ, LID_AZ, nu)
    t = np.linspace(0.0, 1.0, nv)
    A, T = np.meshgrid(az, t)
    A, T = A.ravel(), T.ravel()
    R = LID_R_UP if upper else LID_R_LOW
    far = np.deg2rad(66.0 if upper else -60.0)
    centre = np.array([side * EYE_X, EYE_Y, EYE_Z])

    def fn(params: Dict[str, float]) -> np.ndarray:
        margin = _lid_margin(A, upper, params)
        el = far * (1 - T) + margin * T
        # The last rows roll in toward the eyeball: a visible lid rim.
        r = R - (R - EYE_R - 0.0002) * smoothstep(0.82, 1.0, T)
        return centre + np.stack([side * r * np.cos(el) * np.sin(A), r * np.sin(el),
                                  r * np.cos(el) * np.cos(A)], -1)

    name = ("lid_upper_" if upper else "lid_lower_") + ("left" if side > 0 else "right")
    faces = _grid_faces(nu, nv, wrap_u=False)
    if side < 0:
        faces = faces[:, ::-1].copy()      # mirrored: keep outward winding
    return Part(name, fn, faces, np.stack([A, T], -1))


# ---------------------------------------------------------------------------- mouth

def _teeth_front_z(x: np.ndarray) -> np.ndarray:
    return MOUTH_Z - 0.0135 - 32.0 * x ** 2


def _make_teeth(upper: bool) -> Part:
    nu, nv = 56, 12
    xs = np.linspace(-0.021, 0.021, nu)
    t = np.linspace(0.0, 1.0, nv)
    X, T = np.meshgrid(xs, t)
    X, T = X.ravel(), T.ravel()
    sgn = 1.0 if upper else -1.0
    y = MOUTH_Y + sgn * (0.0004 + 0.0125 * T) + 0.0015 * (X / 0.021) ** 2
    # Incisal edges are thin and rounded back; the gum line sits deeper.
    z = _teeth_front_z(X) - 0.0015 * smoothstep(0.7, 1.0, T) - 0.0012 * smoothstep(0.1, 0.0, T)
    p = np.stack([X, y, z], -1)
    faces = _grid_faces(nu, nv, wrap_u=False)
    if not upper:
        faces = faces[:, ::-1].copy()
    return Part("teeth_upper" if upper else "teeth_lower", lambda params, p=p: p.copy(),
                faces, np.stack([X, T], -1))


def _make_cavity() -> Part:
    nu, nv = 40, 24
    th = np.linspace(-np.pi, np.pi, nu, endpoint=False)
    ph = np.linspace(np.pi / 2, -np.pi / 2, nv)
    TH, PH = np.meshgrid(th, ph)
    TH, PH = TH.ravel(), PH.ravel()
    c = np.array([0.0, MOUTH_Y - 0.002, MOUTH_Z - 0.035])
    p = c + np.stack([0.024 * np.cos(PH) * np.sin(TH), 0.017 * np.sin(PH),
                      0.024 * np.cos(PH) * np.cos(TH)], -1)
    faces = _grid_faces(nu, nv, wrap_u=True)[:, ::-1].copy()   # facing inward
    cen = p[faces].mean(1)
    keep = cen[:, 2] < MOUTH_Z - 0.022
    keep &= np.linalg.norm(np.cross(p[faces[:, 1]] - p[faces[:, 0]],
                                    p[faces[:, 2]] - p[faces[:, 0]]), axis=1) > 1e-12
    return Part("mouth_cavity", lambda params, p=p: p.copy(), faces,
                np.stack([TH, PH], -1), keep)


def _make_tongue() -> Part:
    nu, nv = 36, 16
    th = np.linspace(-np.pi, np.pi, nu, endpoint=False)
    ph = np.linspace(np.pi / 2, 0.0, nv)
    TH, PH = np.meshgrid(th, ph)
    TH, PH = TH.ravel(), PH.ravel()
    c = np.array([0.0, MOUTH_Y - 0.0085, MOUTH_Z - 0.037])
    p = c + np.stack([0.0160 * np.cos(PH) * np.sin(TH), 0.0055 * np.sin(PH),
                      0.019 * np.cos(PH) * np.cos(TH)], -1)
    faces = _grid_faces(nu, nv, wrap_u=True)
    keep = np.linalg.norm(np.cross(p[faces[:, 1]] - p[faces[:, 0]],
                                   p[faces[:, 2]] - p[faces[:, 0]]), axis=1) > 1e-12
    return Part("tongue", lambda params, p=p: p.copy(), faces, np.stack([TH, PH], -1), keep)


# ---------------------------------------------------------------------------- ears, hair, neck

def _make_ear(side: float) -> Part:
    nu, nv = 36, 22
    th = np.linspace(-np.pi, np.pi, nu, endpoint=False)
    ph = np.linspace(np.pi / 2, -np.pi / 2, nv)
    TH, PH = np.meshgrid(th, ph)
    TH, PH = TH.ravel(), PH.ravel()
    u = np.cos(PH) * np.sin(TH)             # across the ear's thickness (outward for u > 0)
    v = np.sin(PH)                          # up
    w = np.cos(PH) * np.cos(TH)             # toward the face
    ring = np.sqrt(v ** 2 + w ** 2)
    # A flat disc: thick rim (helix), a bowl (concha) on the outer side, narrow lobe.
    thick = 0.0032 + 0.0030 * smoothstep(0.6, 0.95, ring)
    bowl = -0.0035 * smoothstep(0.75, 0.2, ring) * (u > 0)
    lx = thick * u + bowl
    ly = 0.031 * v
    lz = 0.018 * w * (1.0 - 0.35 * smoothstep(0.0, -0.9, v))
    tilt = np.deg2rad(-14.0)                # top leans back
    ry = ly * np.cos(tilt) - lz * np.sin(tilt)
    rz = ly * np.sin(tilt) + lz * np.cos(tilt)
    # Splay: the back edge stands off the head.
    splay = 0.35 * np.clip(-rz, 0.0, None)
    p = np.stack([side * (0.071 + 0.004 + lx + splay), -0.006 + ry, -0.014 + rz], -1)
    faces = _grid_faces(nu, nv, wrap_u=True)
    if side < 0:
        faces = faces[:, ::-1].copy()
    keep = np.linalg.norm(np.cross(p[faces[:, 1]] - p[faces[:, 0]],
                                   p[faces[:, 2]] - p[faces[:, 0]]), axis=1) > 1e-12
    return Part("ear_left" if side > 0 else "ear_right", lambda params, p=p: p.copy(), faces,
                np.stack([TH, PH], -1), keep)


def hairline_y(theta: np.ndarray) -> np.ndarray:
    """Lowest y of the hair cap at head azimuth ``theta`` (0 = front, +-pi = back)."""
    a = np.abs(theta)
    front = 0.068 - 0.030 * smoothstep(0.0, 0.75, a)               # forehead -> temples
    side = 0.036 - 0.040 * smoothstep(1.05, 1.30, a)               # sideburn down at the ear
    side = np.where(a < 1.2, np.maximum(side, -0.004), side)
    back = -0.004 - 0.070 * smoothstep(1.6, 2.6, a)                # down to the nape
    y = np.where(a < 0.9, front, np.where(a < 1.6, np.minimum(front, side), back))
    return y - 0.006 * np.sin(3.0 * theta) * smoothstep(0.2, 0.0, a)


def _make_hair() -> Part:
    nu, nv = 200, 90
    th = _density_warp(nu, -np.pi, np.pi, 0.0, 0.7, 1.0, endpoint=False)
    ph = np.linspace(np.pi / 2, -0.95, nv)
    TH, PH = np.meshgrid(th, ph)
    TH, PH = TH.ravel(), PH.ravel()

    def fn(params: Dict[str, float]) -> np.ndarray:
        dy = np.sin(PH)
        grow = 0.0035 + 0.0075 * np.clip(dy, 0.0, 1.0) ** 0.8
        base = _base_head(TH, PH, grow=0.0)
        d = base - np.array([0.0, 0.006, -0.012])
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return base + grow[:, None] * d

    faces = _grid_faces(nu, nv, wrap_u=True)
    p = fn({})
    cen_th = TH[faces].mean(1)
    wrap = np.ptp(TH[faces], axis=1) > np.pi
    cen_th = np.where(wrap, np.pi, cen_th)
    cen = p[faces].mean(1)
    keep = cen[:, 1] > hairline_y(cen_th)
    # The ears stay visible: no hair right over them.
    for sx in (1.0, -1.0):
        ear = ((cen[:, 1] + 0.008) / 0.036) ** 2 + ((cen[:, 2] + 0.012) / 0.024) ** 2 < 1.0
        keep &= ~(ear & (sx * cen[:, 0] > 0.05))
    keep &= np.linalg.norm(np.cross(p[faces[:, 1]] - p[faces[:, 0]],
                                    p[faces[:, 2]] - p[faces[:, 0]]), axis=1) > 1e-12
    return Part("hair", fn, faces, np.stack([TH, PH], -1), keep)


def _make_neck() -> Part:
    nu, nv = 72, 30
    th = np.linspace(-np.pi, np.pi, nu, endpoint=False)
    ys = np.linspace(-0.045, -0.20, nv)
    TH, Y = np.meshgrid(th, ys)
    TH, Y = TH.ravel(), Y.ravel()
    flare = 1.0 + 0.5 * smoothstep(-0.15, -0.20, Y) ** 1.5
    rx = 0.055 * flare
    rz = 0.052 * (1.0 + 0.15 * smoothstep(-0.15, -0.20, Y))
    zc = -0.030 - 0.15 * (Y + 0.045)
    p = np.stack([rx * np.sin(TH), Y, zc + rz * np.cos(TH)], -1)
    faces = _grid_faces(nu, nv, wrap_u=True)
    return Part("neck", lambda params, p=p: p.copy(), faces, np.stack([TH, Y], -1))


# ---------------------------------------------------------------------------- assembly

@dataclass
class HeadMesh:
    """The assembled template with its blendshapes and skinning (numpy, float64)."""

    vertices: np.ndarray                 # [V, 3]
    faces: np.ndarray                    # [F, 3] int
    part: np.ndarray                     # [V] int index into PART_NAMES
    uv: np.ndarray                       # [V, 2] the part's surface parameters
    basis: np.ndarray                    # [52, V, 3]
    lbs_weights: np.ndarray              # [V, 4] (rows may sum < 1: rest is the fixed root)
    joints: np.ndarray                   # [4, 3]


def _compact(verts: np.ndarray, faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    used = np.zeros(len(verts), bool)
    used[faces.ravel()] = True
    remap = -np.ones(len(verts), np.int64)
    remap[used] = np.arange(used.sum())
    return used, remap[faces]


def build_head() -> HeadMesh:
    """Assemble the default head (deterministic; about 0.5 s)."""
    parts: List[Part] = [_make_skin(), _make_eye(1.0), _make_eye(-1.0)]
    for side in (1.0, -1.0):
        parts += [_make_lid(side, True), _make_lid(side, False)]
    parts += [_make_teeth(True), _make_teeth(False), _make_cavity(), _make_tongue(),
              _make_ear(1.0), _make_ear(-1.0), _make_hair(), _make_neck()]
    parts.sort(key=lambda q: PART_NAMES.index(q.name))
    verts, faces, labels, uvs, shapes = [], [], [], [], []
    offset = 0
    for part in parts:
        p = part.fn({})
        f = part.faces if part.keep_faces is None else part.faces[part.keep_faces]
        used, f = _compact(p, f)
        lid_basis = _lid_blendshapes(part, used)
        verts.append(p[used])
        faces.append(f + offset)
        labels.append(np.full(used.sum(), PART_NAMES.index(part.name)))
        uvs.append(part.uv[used])
        shapes.append(lid_basis)
        offset += int(used.sum())
    V = np.concatenate(verts)
    F = np.concatenate(faces).astype(np.int64)
    part_id = np.concatenate(labels)
    basis = np.concatenate(shapes, axis=1)
    basis += _field_blendshapes(V, part_id)
    weights = _skinning_weights(V, part_id)
    joints = np.array([NECK_JOINT, JAW_JOINT, (EYE_X, EYE_Y, EYE_Z), (-EYE_X, EYE_Y, EYE_Z)])
    return HeadMesh(V, F, part_id, np.concatenate(uvs), basis, weights, joints)


def _lid_blendshapes(part: Part, used: np.ndarray) -> np.ndarray:
    """Blendshapes that move the parametric eyelids: [52, n_used, 3]."""
    out = np.zeros((len(ARKIT_NAMES), int(used.sum()), 3))
    if not part.name.startswith("lid_"):
        return out
    side = "Left" if part.name.endswith("left") else "Right"
    upper = "upper" in part.name
    base = part.fn({})[used]
    deltas = {
        f"eyeBlink{side}": {"blink": 1.0} if upper else {"low_raise": 5.0},
        f"eyeWide{side}": {"raise": 16.0} if upper else {"low_raise": -4.0},
        f"eyeSquint{side}": {"raise": -7.0} if upper else {"low_raise": 13.0},
        f"eyeLookUp{side}": {"raise": 9.0} if upper else {"low_raise": 3.0},
        f"eyeLookDown{side}": {"raise": -14.0} if upper else {"low_raise": -3.0},
        f"cheekSquint{side}": {} if upper else {"low_raise": 6.0},
    }
    for name, params in deltas.items():
        if params:
            out[ARKIT_NAMES.index(name)] = part.fn(params)[used] - base
    return out


def _field_blendshapes(V: np.ndarray, part_id: np.ndarray) -> np.ndarray:
    """Displacement-field blendshapes of skin, lips, brows, cheeks, nose and tongue."""
    K = len(ARKIT_NAMES)
    out = np.zeros((K, len(V), 3))
    x, y, z = V[:, 0], V[:, 1], V[:, 2]
    ax = np.abs(x)
    pid = {n: i for i, n in enumerate(PART_NAMES)}
    skin = (part_id == pid["skin"]).astype(float)
    face = skin * smoothstep(0.03, 0.065, z)
    ym = mouth_line(x)
    above = smoothstep(ym - 0.0006, ym + 0.0006, y)       # 1 on the upper lip side
    below = 1.0 - above
    lip_span = np.clip(1.0 - (ax / (MOUTH_HW * 1.25)) ** 2, 0.0, 1.0)
    mouth_area = face * gauss(x, y, 0.0, MOUTH_Y - 0.002, 0.030, 0.016)
    upper_lip = face * above * np.exp(-0.5 * ((y - ym - 0.004) / 0.0065) ** 2) * lip_span
    lower_lip = face * below * np.exp(-0.5 * ((y - ym + 0.005) / 0.0075) ** 2) * lip_span

    def put(name: str, vec: np.ndarray) -> None:
        out[ARKIT_NAMES.index(name)] += vec

    def vec3(dx=0.0, dy=0.0, dz=0.0) -> np.ndarray:
        return np.stack([np.broadcast_to(np.asarray(d, float), x.shape) for d in (dx, dy, dz)], -1)

    for side, s in (("Left", 1.0), ("Right", -1.0)):
        sx = s * x                                 # > 0 on this side
        corner = face * gauss(sx, y, MOUTH_HW, MOUTH_Y + 0.001, 0.011, 0.010)
        corner_wide = face * gauss(sx, y, MOUTH_HW + 0.006, MOUTH_Y, 0.018, 0.016)
        half = smoothstep(-0.004, 0.010, sx)        # this half of the mouth
        cheek = face * gauss(sx, y, 0.040, -0.030, 0.016, 0.014)
        under_eye = face * gauss(sx, y, EYE_X + 0.002, EYE_Y - 0.017, 0.014, 0.007)
        brow_in = face * gauss(sx, y, 0.014, BROW_Y, 0.011, 0.010)
        brow_mid = face * gauss(sx, y, 0.030, BROW_Y + 0.002, 0.016, 0.011)
        brow_out = face * gauss(sx, y, 0.046, BROW_Y - 0.002, 0.011, 0.011)
        top_lid_skin = face * gauss(sx, y, EYE_X, EYE_Y + 0.014, 0.012, 0.004)
        # Smile: corners up, out and back; cheeks lift and bulge.
        put(f"mouthSmile{side}", vec3(s * 0.0070 * corner, 0.0095 * corner - 0.0012 * corner_wide,
                                      -0.0030 * corner)
            + vec3(0, 0.0035 * cheek, 0.0025 * cheek) + vec3(0, 0.0015 * under_eye, 0))
        put(f"mouthFrown{side}", vec3(s * 0.0015 * corner, -0.0080 * corner - 0.0015 * corner_wide,
                                      -0.0005 * corner))
        put(f"mouthDimple{side}", vec3(s * 0.0035 * corner, 0.0005 * corner, -0.0040 * corner))
        put(f"mouthStretch{side}", vec3(s * 0.0075 * corner_wide, -0.0040 * corner_wide, -0.0015 *
                                        corner_wide) + vec3(0, -0.0025 * lower_lip * half, 0))
        put(f"mouthPress{side}", vec3(0, -0.0018 * upper_lip * half + 0.0022 * lower_lip * half,
                                      -0.0018 * (upper_lip + lower_lip) * half))
        put(f"mouthLowerDown{side}", vec3(0, -0.0065 * lower_lip * half, 0.0010 * lower_lip * half))
        put(f"mouthUpperUp{side}", vec3(0, 0.0055 * upper_lip * half, 0.0010 * upper_lip * half))
        put(f"browDown{side}", vec3(-s * 0.0025 * brow_in, -0.0045 * (brow_in + 0.7 * brow_mid),
                                    0.0015 * brow_in))
        put(f"browOuterUp{side}", vec3(0, 0.0065 * (brow_out + 0.5 * brow_mid), 0))
        put(f"cheekSquint{side}", vec3(0, 0.0040 * (cheek + under_eye), 0.0020 * cheek))
        put(f"eyeSquint{side}", vec3(0, 0.0020 * under_eye, 0.0008 * under_eye))
        put(f"eyeBlink{side}", vec3(0, -0.0018 * top_lid_skin, 0.0005 * top_lid_skin))
        put(f"eyeWide{side}", vec3(0, 0.0015 * top_lid_skin, 0))
        wing = face * gauss(sx, y, 0.012, NOSE_TIP[1] - 0.004, 0.007, 0.008)
        bridge = face * gauss(sx, y, 0.006, -0.012, 0.007, 0.010)
        put(f"noseSneer{side}", vec3(s * 0.0010 * wing, 0.0035 * wing + 0.0025 * bridge,
                                     0.0008 * wing) + vec3(0, 0.0020 * upper_lip * half, 0))
        shift = face * gauss(x, y, 0.0, MOUTH_Y - 0.003, 0.028, 0.017)
        put(f"mouth{side}", vec3(s * 0.0085 * shift, 0, 0))
    # Both sides.
    put("browInnerUp", vec3(0, 0.0070 * face * gauss(ax, y, 0.012, BROW_Y + 0.003, 0.013, 0.013),
                            0))
    put("mouthClose", vec3(0, -0.0050 * upper_lip + 0.0110 * lower_lip,
                           0.0015 * (upper_lip + lower_lip)))
    funnel_r = face * gauss(x, y, 0.0, MOUTH_Y, 0.022, 0.013)
    put("mouthFunnel", vec3(-0.25 * x * funnel_r, 0.0030 * upper_lip - 0.0035 * lower_lip,
                            0.0060 * funnel_r))
    put("mouthPucker", vec3(-0.45 * x * mouth_area, 0.0012 * lower_lip - 0.0008 * upper_lip,
                            0.0090 * funnel_r))
    put("mouthRollLower", vec3(0, 0.0030 * lower_lip, -0.0035 * lower_lip))
    put("mouthRollUpper", vec3(0, -0.0028 * upper_lip, -0.0032 * upper_lip))
    chin = face * gauss(x, y, 0.0, -0.100, 0.018, 0.014)
    put("mouthShrugLower", vec3(0, 0.0040 * lower_lip + 0.0030 * chin,
                                0.0030 * lower_lip + 0.0020 * chin))
    put("mouthShrugUpper", vec3(0, 0.0035 * upper_lip, 0.0025 * upper_lip))
    puff = face * gauss(ax, y, 0.038, -0.060, 0.016, 0.018)
    put("cheekPuff", vec3(np.sign(x) * 0.0070 * puff, -0.0010 * puff, 0.0050 * puff))
    # Tongue out: the front stretches forward past the lips and dips.
    tongue = (part_id == pid["tongue"]).astype(float)
    reach = tongue * (0.25 + 0.75 * smoothstep(0.040, 0.080, z))
    put("tongueOut", vec3(0, -0.0010 * reach, 0.036 * reach))
    # The tongue parts the lips on its way out.
    put("tongueOut", vec3(0, 0.0015 * upper_lip - 0.0045 * lower_lip, 0.0010 * lower_lip))
    return out


def _skinning_weights(V: np.ndarray, part_id: np.ndarray) -> np.ndarray:
    """LBS weights [V, 4] over (neck, jaw, eye_left, eye_right); the rest binds to the root."""
    pid = {n: i for i, n in enumerate(PART_NAMES)}
    x, y, z = V[:, 0], V[:, 1], V[:, 2]
    ax = np.abs(x)
    w = np.zeros((len(V), 4))
    # Jaw field: below the lip line at the front, below a line rising to the jaw joint at the
    # sides; sharp across the lip slit, soft over the cheeks.
    ym = mouth_line(x)
    sharp = 1.0 - smoothstep(0.6 * MOUTH_HW, 1.15 * MOUTH_HW, ax)
    width = 0.0012 * sharp + 0.010 * (1.0 - sharp)
    boundary = ym - 0.004 * (1.0 - sharp) + 0.45 * np.clip(ax - MOUTH_HW, 0.0, None)
    jaw = smoothstep(boundary + width, boundary - width, y)
    jaw *= smoothstep(-0.03, 0.01, z)                                   # not the back/neck
    jaw = np.where(part_id == pid["teeth_upper"], 0.0, jaw)
    jaw = np.where(np.isin(part_id, [pid["teeth_lower"], pid["tongue"]]), 1.0, jaw)
    cav = part_id == pid["mouth_cavity"]
    jaw = np.where(cav, smoothstep(MOUTH_Y + 0.004, MOUTH_Y - 0.006, y), jaw)
    other = np.isin(part_id, [pid[n] for n in ("hair", "ear_left", "ear_right")]) | \
        np.char.startswith(np.array(PART_NAMES)[part_id], "lid_") | \
        np.isin(part_id, [pid["eye_left"], pid["eye_right"]])
    jaw = np.where(other, 0.0, jaw)
    neck_part = part_id == pid["neck"]
    jaw = np.where(neck_part, 0.0, jaw)
    head = 1.0 - jaw
    # Neck: follows the head at the top, the fixed body (root) at the bottom.
    head = np.where(neck_part, smoothstep(-0.16, -0.06, y), head)
    w[:, 0] = head
    w[:, 1] = jaw
    eyes = {pid["eye_left"]: 2, pid["eye_right"]: 3}
    for p, j in eyes.items():
        m = part_id == p
        w[m] = 0.0
        w[m, j] = 1.0
    return w


__all__ = ["build_head", "HeadMesh", "JOINT_NAMES", "PART_NAMES", "mouth_line", "hairline_y"]
