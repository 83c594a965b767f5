"""Stage 2 data: the emotional-video dataset format and the synthetic teacher.

Frames for training the emotion residual are tuples of (audio feature window, emotion,
intensity, neutral and emotional expression coefficients, camera, image). They come from

* a **dataset on disk** in the documented format (docs/stage2.md; e.g. MEAD converted:
  8 emotions x 3 levels, several views), loaded by :func:`load_stage2_dataset`; the
  coefficients and audio features are computed from each clip's audio by the
  audio-to-expression model, exactly as at run time;
* the **synthetic teacher** (:class:`EmotionTeacher`, :func:`generate_synthetic`): the
  avatar driven by ``psi_e`` plus what faces do in emotion that linear blendshapes of the
  neutral head cannot express: wrinkles (forehead lines, glabellar furrows, crow's feet,
  nasolabial folds, nose wrinkles) as local shading and relief that follow the expression
  coefficients, wet eyes, and at most a faint local flush - no whole-face colour. The
  student is ``avatar(psi_n)`` plus the residual, so the residual must learn both the
  emotional geometry (from the mesh displacement) and the appearance.
"""

import json
import logging
import math
import os
from dataclasses import dataclass, fields, replace
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from gemo_ros.emotions import EMOTIONS, LEVELS, NEUTRAL, emotion_index
from gemo_ros.imaging import to_uint8
from gemo_ros.framing import RenderSettings
from gemo_ros.train.errors import DatasetError

LOG = logging.getLogger(__name__)

FORMAT = "gemo_ros.stage2/1"
MANIFEST = "stage2.json"
NUM_EXPR = 52

# ----------------------------------------------------------------------------- teacher
#: Bumped whenever what the teacher paints changes (part of the synthetic-frame cache key).
TEACHER_VERSION = "faces-2"

#: Part-name fragments that are not skin (wrinkles are never painted on them).
_NOT_SKIN = ("eye", "iris", "sclera", "pupil", "cornea", "lash", "teeth", "tooth", "gum",
             "tongue", "mouth", "cavity", "socket", "hair", "brow", "lacrimal", "occlusion",
             "blend", "ear")
#: Part-name fragments of the eyeball surface (sclera, iris).
_EYEBALL = ("eye", "iris", "sclera", "pupil", "cornea")
_NOT_EYEBALL = ("lid", "lash", "socket", "occlusion", "blend", "brow", "lacrimal")


@dataclass
class FaceLandmarks:
    """Canonical landmarks of a head, found from its expression shapes (metres, head frame).

    Head-agnostic: every point is where an ARKit shape moves the neutral mesh most, so
    any face model in the ARKit vocabulary (the procedural head, the ICT model) gives its
    own brow, eye, nose and mouth positions without hand-placed coordinates.

    Attributes:
        eye: ``[2, 3]`` upper-lid centres (left = +X first), from ``eyeBlink*``.
        canthus: ``[2, 3]`` lateral eye corners (from the extent of ``eyeBlink*``).
        brow_inner: ``[3]`` inner brows (midline), from ``browInnerUp``.
        brow_outer: ``[2, 3]`` outer brows, from ``browOuterUp*``.
        nose_tip: ``[3]`` the most forward point of the midline between mouth and eyes.
        mouth_corner: ``[2, 3]`` mouth corners, from ``mouthSmile*``.
        iod: distance between the eye centres (the unit of every pattern).
    """

    eye: torch.Tensor
    canthus: torch.Tensor
    brow_inner: torch.Tensor
    brow_outer: torch.Tensor
    nose_tip: torch.Tensor
    mouth_corner: torch.Tensor
    iod: float

    @staticmethod
    def from_face(face: Any) -> "FaceLandmarks":
        """Locate the landmarks on ``face`` (a :class:`gemo_ros.face.model.FaceModel`).

        Raises:
            ValueError: the model lacks one of the ARKit shapes used, or it moves nothing.
        """
        verts = face.vertices.detach().float().cpu()
        basis = face.expr_basis
        names = list(face.expression_names)

        def moved(name: str) -> Tuple[torch.Tensor, torch.Tensor]:
            if name not in names:
                raise ValueError(f"face model lacks the ARKit shape {name!r} the emotion "
                                 f"teacher places its patterns with")
            d = basis[names.index(name)].detach().float().cpu().norm(dim=-1)
            if float(d.max()) <= 0.0:
                raise ValueError(f"the face model's {name!r} shape moves no vertex")
            return d, d / d.max()

        def centroid(name: str) -> torch.Tensor:
            d, rel = moved(name)
            w = (rel > 0.5).float() * d ** 2
            return (verts * w[:, None]).sum(0) / w.sum()

        eye = torch.stack([centroid("eyeBlinkLeft"), centroid("eyeBlinkRight")])
        iod = float((eye[0] - eye[1]).norm())
        canthus = []
        for k, name in enumerate(("eyeBlinkLeft", "eyeBlinkRight")):
            _, rel = moved(name)
            pts = verts[rel > 0.1]
            side = 1.0 if k == 0 else -1.0
            x = float(torch.quantile(pts[:, 0] * side, 0.97)) * side
            near = pts[(pts[:, 0] - x).abs() < 0.04 * iod]
            z = float(near[:, 2].mean()) if len(near) else float(eye[k, 2])
            canthus.append(torch.tensor([x, float(eye[k, 1]) - 0.06 * iod, z]))
        mouth = torch.stack([centroid("mouthSmileLeft"), centroid("mouthSmileRight")])
        mid = (eye[0] + eye[1]) / 2
        ridge = verts[((verts[:, 0] - mid[0]).abs() < 0.08 * iod)
                      & (verts[:, 1] < mid[1]) & (verts[:, 1] > mouth[:, 1].mean())]
        if not len(ridge):
            raise ValueError("no mesh vertices on the midline between the eyes and mouth")
        nose_tip = ridge[ridge[:, 2].argmax()]
        return FaceLandmarks(
            eye=eye, canthus=torch.stack(canthus), brow_inner=centroid("browInnerUp"),
            brow_outer=torch.stack([centroid("browOuterUpLeft"), centroid("browOuterUpRight")]),
            nose_tip=nose_tip, mouth_corner=mouth,
            iod=iod)


def _smooth_box(x: torch.Tensor, lo: float, hi: float, soft: float) -> torch.Tensor:
    """1 inside ``[lo, hi]``, falling off smoothly over ``soft`` on either side."""
    return torch.sigmoid((x - lo) / soft) * torch.sigmoid((hi - x) / soft)


def _line_profile(t: torch.Tensor, width: float, ridge: float,
                  side: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Groove and ridge weights of a wrinkle across its signed distance ``t``.

    The groove is a thin Gaussian on the line; the ridge a lighter band ``ridge`` away on
    one side (``side`` +1/-1, the skin that bulges over the fold) or both (``0``).
    """
    groove = torch.exp(-0.5 * (t / width) ** 2)
    if side == 0:
        rd = t.abs() - ridge
    else:
        rd = t * side - ridge
    bump = torch.exp(-0.5 * (rd / (1.2 * width)) ** 2)
    return groove, bump


def _polyline_distance(p2: torch.Tensor, pts: torch.Tensor
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distance ``[N]`` of 2-D points to a polyline ``[M, 2]``, with side and position.

    Returns ``(distance, side, fraction)``: the side is the sign of the cross product with
    the nearest segment, the fraction the arc length (0..1) of the nearest point.
    """
    a, b = pts[:-1], pts[1:]
    ab = b - a                                                     # [S, 2]
    ap = p2[:, None, :] - a[None]                                  # [N, S, 2]
    len2 = (ab ** 2).sum(-1).clamp_min(1e-12)
    s = ((ap * ab[None]).sum(-1) / len2).clamp(0.0, 1.0)           # [N, S]
    near = a[None] + s[..., None] * ab[None]
    dist = (p2[:, None, :] - near).norm(dim=-1)
    best = dist.argmin(1)
    rows = torch.arange(p2.shape[0])
    cross = ab[best, 0] * ap[rows, best, 1] - ab[best, 1] * ap[rows, best, 0]
    seg = ab.norm(dim=-1)
    cum = torch.cat([torch.zeros(1), seg.cumsum(0)])
    frac = (cum[best] + s[rows, best] * seg[best]) / cum[-1]
    return dist[rows, best], torch.sign(cross), frac


#: Pattern groups the teacher paints; each has its own strength per frame.
GROUPS: Tuple[str, ...] = (
    "forehead", "forehead_medial", "glabella", "crows_feet", "nasolabial", "nose_bridge",
    "dimple_right", "wet_eyes", "lid_rims", "cheek_flush",
    "cheek_lift", "lip_pout", "forehead_lift", "mouth_stretch", "upper_lip_raise",
    "brow_knit", "corner_up_right")

#: ARKit coefficients whose sum tracks each group, and their sum at which the pattern
#: has its nominal depth (the face does it that much). Groups not listed follow the
#: intensity alone.
GROUP_DRIVERS: Dict[str, Tuple[Tuple[str, ...], float]] = {
    "forehead": (("browInnerUp", "browOuterUpLeft", "browOuterUpRight"), 2.0),
    "forehead_medial": (("browInnerUp",), 0.8),
    "glabella": (("browDownLeft", "browDownRight"), 1.4),
    "crows_feet": (("cheekSquintLeft", "cheekSquintRight", "eyeSquintLeft",
                    "eyeSquintRight"), 1.8),
    "nasolabial": (("mouthSmileLeft", "mouthSmileRight", "mouthUpperUpLeft",
                    "mouthUpperUpRight"), 1.5),
    "nose_bridge": (("noseSneerLeft", "noseSneerRight"), 1.4),
    "dimple_right": (("mouthDimpleRight", "mouthSmileRight"), 1.0),
}

#: emotion -> {group: weight at intensity 1}. Colour is never a whole-face wash: the only
#: colour beyond wrinkle shading is a faint local flush (happy cheeks), wet eyes and
#: slightly reddened lid rims (sad).
EMOTION_GROUPS: Dict[str, Dict[str, float]] = {
    "neutral": {},
    "happy": {"crows_feet": 1.0, "nasolabial": 1.0, "cheek_flush": 1.0, "cheek_lift": 1.0},
    "sad": {"forehead_medial": 1.0, "glabella": 0.25, "wet_eyes": 1.0, "lid_rims": 1.0,
            "lip_pout": 1.0},
    "surprised": {"forehead": 1.0, "forehead_lift": 1.0},
    "fear": {"forehead_medial": 0.8, "forehead": 0.45, "glabella": 0.35,
             "mouth_stretch": 1.0},
    "disgusted": {"nose_bridge": 1.0, "nasolabial": 0.55, "glabella": 0.3,
                  "upper_lip_raise": 1.0},
    "angry": {"glabella": 1.0, "brow_knit": 1.0},
    "contempt": {"dimple_right": 1.0, "corner_up_right": 1.0},
}


class EmotionTeacher:
    """What faces do in emotion that the neutral head's linear blendshapes do not show.

    Wrinkles are local shading - a thin darker groove with a lighter ridge beside it -
    along their anatomical direction, plus a fraction of a millimetre of relief along the
    skin normal; a few emotions add a small bulk movement. Every pattern is placed from
    :class:`FaceLandmarks` (found from the ARKit shapes of the avatar's face model) in
    units of the inter-ocular distance, so it fits any head in that vocabulary:

    =========== ============================================================================
    happy       crow's feet (radial lines at the outer eye corners), deeper nasolabial folds,
                a faint cheek flush; cheeks lift 1.2 mm
    sad         central forehead lines bent up over the raised inner brows, a faint
                glabellar crease, wet glossy eyes, slightly reddened lid rims; lower lip pouts
    surprised   horizontal forehead lines across the brow width; forehead skin lifts
    fear        central and lateral forehead lines, a faint glabellar crease; mouth
                corners pulled sideways
    disgusted   a transverse line at the nose root and oblique lines down the flanks of
                the bridge, upper nasolabial folds, a faint
                glabellar crease; upper lip raised
    angry       vertical glabellar furrows between the brows; brows drawn down and
                together
    contempt    a dimple crease at the raised (right) mouth corner; that corner pulled up
    =========== ============================================================================

    Strength per frame = intensity x the emotion's weight of the pattern x how far the
    face does the matching action: e.g. forehead lines scale with ``browInnerUp`` /
    ``browOuterUp*`` of ``psi_e`` (``0.5 + 0.5 min(1.5, sum / nominal)``), so they track the
    brows while the emotion plays over speech. Intensity 0 or ``neutral`` give exactly the
    input.

    Args:
        avatar: a ``GaussianAvatar`` (its face model gives the landmarks and skin normals).
        strength: global multiplier of every effect.
    """

    def __init__(self, avatar: Any, strength: float = 1.0) -> None:
        face = avatar.face
        with torch.no_grad():
            p = avatar.canonical_means().detach().float().cpu()
        self.num_gaussians = p.shape[0]
        self.landmarks = FaceLandmarks.from_face(face)
        parts = self._parts(avatar)
        normals, lift = self._surface(avatar, p)
        n, g = p.shape[0], len(GROUPS)
        self.mul = torch.zeros(g, n, 3)
        self.add = torch.zeros(g, n, 3)
        self.geo = torch.zeros(g, n, 3)
        self._paint(p, parts, normals, lift)
        self.mul *= strength
        self.add *= strength
        self.geo *= strength
        self.gates = torch.zeros(len(EMOTIONS), g)
        for e, name in enumerate(EMOTIONS):
            for group, w in EMOTION_GROUPS[name].items():
                self.gates[e, GROUPS.index(group)] = w
        names = list(face.expression_names)
        self.drivers = torch.zeros(len(names), g)
        self.nominal = torch.ones(g)
        self.driven = torch.zeros(g, dtype=torch.bool)
        for group, (coefs, nominal) in GROUP_DRIVERS.items():
            k = GROUPS.index(group)
            for c in coefs:
                if c in names:
                    self.drivers[names.index(c), k] = 1.0
            self.nominal[k] = nominal
            self.driven[k] = True

    # ------------------------------------------------------------------ building
    @staticmethod
    def _parts(avatar: Any) -> List[str]:
        face = avatar.face
        names = tuple(getattr(face, "part_names", ()) or ())
        n = int(avatar.binding_faces.shape[0])
        if not names:
            return ["skin"] * n
        vid = face.faces[avatar.binding_faces.long(), 0]
        ids = face.vertex_parts[vid].cpu().numpy()
        return [names[i] for i in ids]

    @staticmethod
    def _surface(avatar: Any, p: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return the outward unit normal ``[N, 3]`` of each Gaussian's triangle, and lift.

        The lift ``[N]`` is how far (metres) the Gaussian sits off its binding point on the
        neutral mesh (hair floats above the scalp).
        """
        face = avatar.face
        bound = face.faces.cpu()[avatar.binding_faces.long().cpu()]
        tri = face.vertices.detach().float().cpu()[bound]
        nrm = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
        base = (avatar.binding_bary.detach().float().cpu()[..., None] * tri).sum(1)
        return nrm / nrm.norm(dim=-1, keepdim=True).clamp_min(1e-12), (p - base).norm(dim=-1)

    def _paint(self, p: torch.Tensor, parts: List[str], normals: torch.Tensor,
               lift: torch.Tensor) -> None:
        lm = self.landmarks
        u = lm.iod
        part = [s.lower() for s in parts]
        # Skin: not a part named as something else, and on the surface (hair Gaussians
        # bound to the scalp float millimetres above it).
        skin = torch.tensor([not any(k in s for k in _NOT_SKIN) for s in part]).float() * \
            torch.sigmoid((0.03 * u - lift) / (0.005 * u))
        eyeball = torch.tensor([any(k in s for k in _EYEBALL)
                                and not any(k in s for k in _NOT_EYEBALL) for s in part]).float()
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        eye_z = float(lm.eye[:, 2].mean())
        # The face, not the back of the head or the ears: in front of the eyes' depth
        # minus half an eye distance, on triangles that face forward or sideways.
        front = torch.sigmoid((z - (eye_z - 0.5 * u)) / (0.04 * u)) * \
            torch.sigmoid((normals[:, 2] + 0.3) / 0.1)
        face_skin = skin * front
        mid_x = float(lm.eye[:, 0].mean())
        xr = x - mid_x
        width, ridge = 0.017 * u, 0.045 * u   # groove std ~1.1 mm, ridge 2.8 mm beside it

        def shade(k: str, groove: torch.Tensor, bump: torch.Tensor, mask: torch.Tensor,
                  dark: float = 0.38, light: float = 0.12, relief: float = 0.0045) -> None:
            i = GROUPS.index(k)
            gm, bm = groove * mask, bump * mask * (1.0 - groove)
            self.mul[i] += (-dark * gm + light * bm)[:, None]
            # The groove sinks and the ridge bulges along the skin normal (~0.3 mm).
            self.geo[i] += (relief * u * (bm - gm))[:, None] * normals

        # -- forehead lines: horizontal, following the brows' arch, over the brow width
        brow_y = float(lm.brow_inner[1])
        outer_x = float(lm.brow_outer[0, 0] - lm.brow_outer[1, 0]) / 2
        fore_groove, fore_bump = torch.zeros_like(x), torch.zeros_like(x)
        med_groove, med_bump = torch.zeros_like(x), torch.zeros_like(x)
        for j, h in enumerate((0.26, 0.40, 0.54, 0.68)):
            wobble = 0.012 * u * torch.sin(xr / (0.21 * u) + 1.7 * j)
            # Lines dip toward the temples; break up a little along their length.
            yl = brow_y + h * u - 0.16 * u * (xr / u) ** 2 + wobble
            gr, bu = _line_profile(y - yl, width * (1.0 - 0.1 * j), ridge)
            along = 0.65 + 0.35 * torch.cos(xr / (0.17 * u) + 2.3 * j) ** 2
            reach = _smooth_box(xr, -outer_x * (0.95 - 0.08 * j), outer_x * (0.95 - 0.08 * j),
                                0.06 * u)
            fore_groove = torch.maximum(fore_groove, gr * along * reach)
            fore_bump = torch.maximum(fore_bump, bu * along * reach)
            # Sadness/fear: the inner brows rise, the lines gather at the centre and bend
            # up over it (the "omega" of grief).
            ym = brow_y + (h - 0.02) * u + 0.07 * u * torch.exp(-0.5 * (xr / (0.18 * u)) ** 2)
            gr, bu = _line_profile(y - ym, width * (1.0 - 0.1 * j), ridge)
            reach = _smooth_box(xr, -0.42 * u, 0.42 * u, 0.07 * u)
            med_groove = torch.maximum(med_groove, gr * along * reach)
            med_bump = torch.maximum(med_bump, bu * along * reach)
        top = _smooth_box(y, brow_y + 0.12 * u, brow_y + 0.85 * u, 0.04 * u)
        shade("forehead", fore_groove, fore_bump, face_skin * top, dark=0.3, light=0.1)
        shade("forehead_medial", med_groove, med_bump, face_skin * top, dark=0.3, light=0.1)

        # -- glabellar furrows: two vertical lines between the brows, a little apart at top
        eye_y = float(lm.eye[:, 1].mean())
        g_groove, g_bump = torch.zeros_like(x), torch.zeros_like(x)
        for side in (1.0, -1.0):
            xl = side * (0.075 * u + 0.06 * (y - eye_y).clamp_min(0.0))
            gr, bu = _line_profile(xr - xl, width * 1.4, ridge * 1.1, side=int(side))
            g_groove = torch.maximum(g_groove, gr)
            g_bump = torch.maximum(g_bump, bu)
        span = _smooth_box(y, eye_y + 0.04 * u, brow_y + 0.2 * u, 0.04 * u)
        shade("glabella", g_groove, g_bump, face_skin * span, dark=0.36, light=0.14)

        # -- nose wrinkles (disgust): a transverse line at the nose root, and oblique
        # "bunny lines" running down and out over each flank of the bridge
        yl = eye_y + 0.08 * u - 0.3 * u * (xr / u) ** 2
        gr, bu = _line_profile(y - yl, width * 0.9, ridge * 0.85)
        root = _smooth_box(xr, -0.07 * u, 0.07 * u, 0.025 * u)
        n_groove, n_bump = gr * root, bu * root
        for side in (1.0, -1.0):
            for j, off in enumerate((0.0, 0.07)):
                # a line from (0.05 u, eye_y - off) toward down-outward at ~45 degrees
                a0 = torch.tensor([side * 0.05 * u, eye_y - off * u])
                dirv = torch.tensor([side * 0.7071, -0.7071])
                rel = torch.stack([xr, y], -1) - a0
                along = rel @ dirv
                t = rel[:, 0] * dirv[1] - rel[:, 1] * dirv[0]
                gr, bu = _line_profile(t, width * 0.9, ridge * 0.8)
                reach = _smooth_box(along, 0.0, (0.13 - 0.03 * j) * u, 0.025 * u)
                n_groove = torch.maximum(n_groove, gr * reach)
                n_bump = torch.maximum(n_bump, bu * reach)
        bridge = _smooth_box(xr, -0.24 * u, 0.24 * u, 0.04 * u) * \
            _smooth_box(y, eye_y - 0.3 * u, min(brow_y, eye_y + 0.2 * u), 0.03 * u)
        shade("nose_bridge", n_groove, n_bump, face_skin * bridge, dark=0.36)

        # -- crow's feet: radial lines fanning out from each lateral eye corner
        c_groove, c_bump = torch.zeros_like(x), torch.zeros_like(x)
        for k, side in enumerate((1.0, -1.0)):
            c = lm.canthus[k]
            lateral = torch.sqrt((x - float(c[0])) ** 2 + (z - float(c[2])) ** 2)
            outward = torch.sign((x - float(c[0])) * side)
            a = lateral * outward                        # along the skin, outward
            b = y - float(c[1])
            r = torch.sqrt(a ** 2 + b ** 2)
            ang = torch.atan2(b, a.clamp_min(1e-6))
            for j, deg in enumerate((-34.0, -12.0, 9.0, 30.0)):
                t = r * torch.sin(ang - math.radians(deg))  # distance off the ray
                gr, bu = _line_profile(t, width * 1.2, ridge * 0.9)
                reach = _smooth_box(r, 0.08 * u, (0.22 + 0.04 * (j % 2)) * u, 0.03 * u) * \
                    (a > 0).float()
                c_groove = torch.maximum(c_groove, gr * reach)
                c_bump = torch.maximum(c_bump, bu * reach)
        shade("crows_feet", c_groove, c_bump, face_skin, dark=0.38)

        # -- nasolabial folds: from beside the nose wing (0.3 IOD out, a nose's half width)
        # to beyond the mouth corner, bowed out; the cheek bulging over the fold (lateral
        # side) catches the light
        f_groove, f_bump = torch.zeros_like(x), torch.zeros_like(x)
        for k, side in enumerate((1.0, -1.0)):
            m = lm.mouth_corner[k]
            p0 = torch.tensor([mid_x + side * 0.3 * u, float(lm.nose_tip[1]) - 0.05 * u])
            p2 = torch.tensor([float(m[0]) + side * 0.12 * u, float(m[1]) - 0.14 * u])
            p1 = (p0 + p2) / 2 + torch.tensor([side * 0.07 * u, 0.0])
            s = torch.linspace(0.0, 1.0, 17)[:, None]
            curve = (1 - s) ** 2 * p0 + 2 * (1 - s) * s * p1 + s ** 2 * p2
            dist, cross, frac = _polyline_distance(torch.stack([x, y], -1), curve)
            signed = dist * cross * side          # > 0 on the cheek (lateral) side
            gr, bu = _line_profile(signed, width * 1.8, ridge * 1.4, side=1)
            # Deepest in its upper two thirds, fading at both ends.
            along = _smooth_box(frac, 0.02, 0.92, 0.06) * (1.0 - 0.35 * frac)
            hit = (xr * side > 0).float()
            f_groove = torch.maximum(f_groove, gr * along * hit)
            f_bump = torch.maximum(f_bump, bu * along * hit)
        shade("nasolabial", f_groove, f_bump, face_skin, dark=0.34, light=0.12,
              relief=0.008)

        # -- contempt: a short dimple crease beside the raised right mouth corner
        m = lm.mouth_corner[1]
        dx, dy = xr - (float(m[0]) - mid_x - 0.07 * u), y - float(m[1])
        ell = torch.sqrt((dx / (0.035 * u)) ** 2 + (dy / (0.11 * u)) ** 2)
        gr, bu = _line_profile(ell - 1.0, 0.3, 0.7, side=1)
        shade("dimple_right", gr * (dx < 0.02 * u).float(), bu * (dx < 0.02 * u).float(),
              face_skin * _smooth_box(dy, -0.14 * u, 0.1 * u, 0.03 * u), dark=0.45)

        # -- sad eyes: a wetter, glossier eyeball (brighter, a stronger highlight, a bright
        # tear line along the lower lid) and slightly reddened lid rims
        i = GROUPS.index("wet_eyes")
        for k in range(2):
            e = lm.eye[k]
            d_eye = torch.sqrt((x - float(e[0])) ** 2 + (y - float(e[1])) ** 2)
            ball = eyeball * (d_eye < 0.35 * u).float()
            spot = torch.exp(-0.5 * (((x - float(e[0]) + 0.04 * u * (1 if k else -1)) ** 2
                                      + (y - float(e[1]) + 0.06 * u) ** 2) / (0.025 * u) ** 2))
            low = torch.exp(-0.5 * ((y - (float(e[1]) - 0.16 * u)) / (0.02 * u)) ** 2)
            self.mul[i] += (ball * 0.08)[:, None]
            self.add[i] += (ball * (0.22 * spot + 0.10 * low))[:, None] * torch.ones(3)
        rims = torch.zeros_like(x)
        ball_pts = p[eyeball > 0]
        if len(ball_pts):
            near_eye = torch.minimum(*(((p - lm.eye[k]) ** 2).sum(-1).sqrt()
                                       for k in range(2))) < 0.45 * u
            cand = torch.nonzero(near_eye & (eyeball == 0)).flatten()
            if len(cand):
                dmin = torch.cdist(p[cand], ball_pts).min(1).values
                rims[cand] = torch.exp(-0.5 * (dmin / (0.012 * u)) ** 2)
        self.mul[GROUPS.index("lid_rims")] += rims[:, None] * torch.tensor((0.07, -0.05, -0.03))

        # -- faint local flush on the cheek apples (happy)
        flush = torch.zeros_like(x)
        for k in range(2):
            c = lm.eye[k] + torch.tensor([0.12 * u * (1 if k == 0 else -1), -0.5 * u, 0.0])
            r2 = ((x - c[0]) ** 2 + (y - c[1]) ** 2) / (0.2 * u) ** 2
            flush = torch.maximum(flush, torch.exp(-0.5 * r2))
        self.mul[GROUPS.index("cheek_flush")] += (flush * face_skin)[:, None] * \
            torch.tensor((0.025, -0.008, -0.01))

        # -- bulk movements the blendshapes lack (metres on a head with 62 mm between the
        # eyes, scaled with the head)
        size = u / 0.062

        def bump(centre: Sequence[float], sigma: float) -> torch.Tensor:
            c = torch.tensor(centre)
            return torch.exp(-0.5 * ((p - c) ** 2).sum(-1) / sigma ** 2) * face_skin

        def move(k: str, weight: torch.Tensor, xyz: Sequence[float]) -> None:
            self.geo[GROUPS.index(k)] += weight[:, None] * torch.tensor(xyz) * size

        cheeks = flush * face_skin
        move("cheek_lift", cheeks, (0.0, 0.0012, 0.0012))
        mc = lm.mouth_corner
        lip = bump(((float(mc[0, 0]) + float(mc[1, 0])) / 2, float(mc[:, 1].mean()) - 0.12 * u,
                    float(mc[:, 2].max()) + 0.1 * u), 0.18 * u)
        move("lip_pout", lip, (0.0, -0.0008, 0.0015))
        move("forehead_lift", face_skin * top, (0.0, 0.0012, 0.0))
        corners = sum(bump(mc[k].tolist(), 0.12 * u) * (1 if k == 0 else -1) for k in range(2))
        move("mouth_stretch", corners, (0.0015, 0.0, 0.0))
        upper = bump(((float(mc[0, 0]) + float(mc[1, 0])) / 2, float(mc[:, 1].mean()) + 0.1 * u,
                      float(mc[:, 2].max()) + 0.1 * u), 0.18 * u)
        move("upper_lip_raise", upper, (0.0, 0.0013, 0.0))
        brows = torch.zeros_like(x) + sum(
            bump([mid_x + (float(lm.brow_outer[k, 0]) - mid_x) * 0.6, float(lm.brow_inner[1]),
                  float(lm.brow_inner[2])], 0.2 * u) for k in range(2))
        move("brow_knit", brows, (0.0, -0.0013, 0.0))
        self.geo[GROUPS.index("brow_knit")] += (brows * -torch.sign(xr) * 0.0008 * size)[:, None] \
            * torch.tensor((1.0, 0.0, 0.0))
        move("corner_up_right", bump(mc[1].tolist(), 0.12 * u), (-0.0005, 0.0015, -0.0006))

    # ------------------------------------------------------------------ applying
    def to(self, device: Any) -> "EmotionTeacher":
        """Move the effect tensors to ``device`` (in place); return self."""
        for key in ("mul", "add", "geo", "gates", "drivers", "nominal", "driven"):
            setattr(self, key, getattr(self, key).to(device))
        return self

    def strengths(self, emotion: torch.Tensor, intensity: torch.Tensor,
                  expr: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-frame strength ``[B, G]`` of every pattern group (:data:`GROUPS`).

        ``intensity x gate[emotion] x (0.5 + 0.5 min(1.5, drive / nominal))`` for groups
        that follow expression coefficients of ``expr [B, K]`` (1 when ``expr`` is None).
        """
        dev = self.mul.device
        e = emotion.to(dev).long()
        i = intensity.to(dev).float().clamp(0.0, 1.0)[:, None]
        s = i * self.gates[e]
        if expr is not None:
            drive = expr.to(dev).float().clamp(0.0, 1.0) @ self.drivers
            follow = 0.5 + 0.5 * (drive / self.nominal).clamp(0.0, 1.5)
            s = s * torch.where(self.driven, follow, torch.ones_like(follow))
        return s

    def apply(self, gaussians: Any, emotion: torch.Tensor, intensity: torch.Tensor,
              neck_rotation: Optional[torch.Tensor] = None,
              expr: Optional[torch.Tensor] = None) -> Any:
        """Add the emotion's wrinkles, eye and colour changes and geometry to posed Gaussians.

        Args:
            gaussians: avatar output (``means [B, N, 3]``, ``colors [B, N, 3]`` linear RGB).
            emotion: ``[B]`` long ids; intensity: ``[B]`` in [0, 1].
            neck_rotation: ``[B, 3]`` axis-angle (the geometry change turns with the head).
            expr: ``[B, K]`` the coefficients the face is posed with (``psi_e``): patterns
                follow them; None = nominal depth.

        Returns:
            The same Gaussians type with new ``means`` and ``colors``.
        """
        if gaussians.means.shape[1] != self.num_gaussians:
            raise ValueError(f"teacher built for {self.num_gaussians} Gaussians, got "
                             f"{gaussians.means.shape[1]}")
        dev = gaussians.means.device
        if self.mul.device != dev:
            self.to(dev)
        s = self.strengths(emotion, intensity, expr)                       # [B, G]
        mul = torch.einsum("bg,gnc->bnc", s, self.mul)
        add = torch.einsum("bg,gnc->bnc", s, self.add)
        geo = torch.einsum("bg,gnc->bnc", s, self.geo)
        col = gaussians.colors * (1.0 + mul) + add
        if neck_rotation is not None:
            from gemo_ros.geometry import axis_angle_to_matrix

            rot = axis_angle_to_matrix(neck_rotation.to(dev).float())  # [B, 3, 3]
            geo = torch.einsum("bij,bnj->bni", rot, geo)
        return replace(gaussians, means=gaussians.means + geo, colors=col.clamp(0.0, 1.0))


# ----------------------------------------------------------------------------- frames
@dataclass
class Stage2Frames:
    """Training/evaluation frames as stacked tensors (F frames).

    Attributes:
        feats: ``[F, W, D]`` audio-feature windows centred on each frame.
        emotion: ``[F]`` long ids; intensity: ``[F]`` float in [0, 1].
        psi_n, psi_e: ``[F, 52]`` neutral / emotional coefficients.
        neck: ``[F, 3]`` axis-angle head rotation (radians).
        viewmat: ``[F, 4, 4]`` world -> camera; K: ``[F, 3, 3]`` pixels.
        image: ``[F, H, W, 3]`` uint8 target images.
        test: ``[F]`` bool, held-out frames.
        clip: ``[F]`` long clip index; time: ``[F]`` seconds into the clip.
    """

    feats: torch.Tensor
    emotion: torch.Tensor
    intensity: torch.Tensor
    psi_n: torch.Tensor
    psi_e: torch.Tensor
    neck: torch.Tensor
    viewmat: torch.Tensor
    K: torch.Tensor
    image: torch.Tensor
    test: torch.Tensor
    clip: torch.Tensor
    time: torch.Tensor

    def __len__(self) -> int:
        return int(self.emotion.shape[0])

    @property
    def size(self) -> Tuple[int, int]:
        """``(width, height)`` of the images."""
        return int(self.image.shape[2]), int(self.image.shape[1])

    def select(self, index: Any) -> "Stage2Frames":
        """Return the frames at ``index`` (mask, slice or index tensor)."""
        return Stage2Frames(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def split(self, test: bool) -> "Stage2Frames":
        """Return the held-out (``test=True``) or training frames."""
        return self.select(self.test if test else ~self.test)

    @staticmethod
    def concat(parts: Sequence["Stage2Frames"]) -> "Stage2Frames":
        """Concatenate frame sets."""
        return Stage2Frames(**{f.name: torch.cat([getattr(p, f.name) for p in parts])
                               for f in fields(Stage2Frames)})

    def save(self, path: str) -> None:
        """Write all tensors to one ``.pt`` cache file."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        torch.save({f.name: getattr(self, f.name) for f in fields(self)}, path)

    @staticmethod
    def load(path: str) -> "Stage2Frames":
        """Read a cache written by :meth:`save`."""
        data = torch.load(path, map_location="cpu", weights_only=True)
        missing = {f.name for f in fields(Stage2Frames)} - set(data)
        if missing:
            raise DatasetError(f"{path}: cache lacks {sorted(missing)}")
        return Stage2Frames(**{f.name: data[f.name] for f in fields(Stage2Frames)})


# ----------------------------------------------------------------------------- speech
@dataclass
class SpeechClip:
    """A speech clip: mono float32 samples, their rate and a name."""

    name: str
    audio: np.ndarray
    sample_rate: int


def demo_clip() -> SpeechClip:
    """Return the bundled demo utterance (``gemo_ros/assets/demo_speech.wav``)."""
    from importlib import resources

    import soundfile as sf

    path = str(resources.files("gemo_ros").joinpath("assets", "demo_speech.wav"))
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    return SpeechClip("demo_speech", audio.mean(axis=1), int(rate))


def espeak_clips(count: int, seed: int) -> List[SpeechClip]:
    """Synthesize ``count`` random English sentences with varied espeak voices."""
    from gemo_ros.train import speech_synth as ss

    rng = np.random.default_rng(seed)
    variants = [v for v in ss.list_variants() if " " not in v] or [""]
    clips = []
    for k in range(count):
        lang = ss.ENGLISH_LANGUAGES[int(rng.integers(len(ss.ENGLISH_LANGUAGES)))]
        var = variants[int(rng.integers(len(variants)))]
        text = ss.random_sentence(rng, 6, 14)
        rate, pitch = int(rng.integers(140, 200)), int(rng.integers(30, 70))
        try:
            utt = ss.synthesize(text, voice=f"{lang}+{var}" if var else lang, rate=rate,
                                pitch=pitch)
        except ValueError:
            # Not every language/variant pair exists in every espeak-ng build.
            utt = ss.synthesize(text, voice="en-us", rate=rate, pitch=pitch)
        clips.append(SpeechClip(f"espeak_{seed}_{k}", utt.audio.astype(np.float32),
                                int(utt.sample_rate)))
    return clips


# ----------------------------------------------------------------------------- expressions
class ExpressionSource:
    """Neutral/emotional coefficients and audio features of a clip, per frame.

    With an a2e model (``head.a2e``) it runs the model (as at run time). Without one it
    falls back to a development stand-in: a loudness-driven ``jawOpen`` for ``psi_n``, the
    FACS emotion recipes over it for ``psi_e`` and smoothed random features; the shipped
    weights are never trained on this fallback.
    """

    def __init__(self, head: Any, feature_dim: int, seed: int = 0) -> None:
        self.head = head
        self.a2e = getattr(head, "a2e", None)
        self.feature_dim = int(feature_dim)
        self.fps = float(self.a2e.fps) if self.a2e is not None else 25.0
        self._rng = np.random.default_rng(seed)
        self._cache: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def uses_a2e(self) -> bool:
        """True when the coefficients come from the audio-to-expression model."""
        return self.a2e is not None

    def features(self, clip: SpeechClip) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return ``(feats [T, D], psi_n [T, 52])`` of a clip (cached)."""
        if clip.name in self._cache:
            return self._cache[clip.name]
        if self.a2e is not None:
            psi_n, _, feats = self.head.analyse_audio(clip.audio, clip.sample_rate, NEUTRAL, 0.0)
            out = (feats.cpu(), psi_n.cpu())
        else:
            hop = clip.sample_rate / self.fps
            t = int(len(clip.audio) / hop)
            rms = np.array([np.sqrt(np.mean(clip.audio[int(k * hop):int((k + 1) * hop)] ** 2)
                                    + 1e-12) for k in range(t)])
            psi_n = np.zeros((t, NUM_EXPR), np.float32)
            from gemo_ros.face.arkit import ARKIT_INDEX

            psi_n[:, ARKIT_INDEX["jawOpen"]] = np.clip(rms / (rms.max() + 1e-9), 0, 1) * 0.5
            noise = self._rng.standard_normal((t + 8, self.feature_dim)).astype(np.float32)
            kernel = np.hanning(9)[:, None] / np.hanning(9).sum()
            feats = np.stack([np.convolve(noise[:, j], kernel[:, 0], "valid")
                              for j in range(self.feature_dim)], 1)[:t]
            feats = feats + rms[:, None].astype(np.float32) * 5.0
            out = (torch.from_numpy(feats.astype(np.float32)), torch.from_numpy(psi_n))
        self._cache[clip.name] = out
        return out

    def emotional(self, clip: SpeechClip, emotion: int, intensity: float) -> torch.Tensor:
        """Return ``psi_e [T, 52]`` of a clip for an emotion and intensity."""
        feats, psi_n = self.features(clip)
        if emotion == NEUTRAL or intensity <= 0.0:
            return psi_n.clone()
        if self.a2e is not None:
            dev = self.head.device
            with torch.no_grad():
                out = self.a2e.decode(feats[None].to(dev), torch.tensor([emotion], device=dev),
                                      torch.tensor([float(intensity)], device=dev))
            return out[0].cpu()
        from gemo_ros.face.emotion_recipes import combine_with_speech

        return torch.from_numpy(combine_with_speech(psi_n.numpy(), emotion, intensity))


# ----------------------------------------------------------------------------- synthetic
@dataclass
class SyntheticSpec:
    """What :func:`generate_synthetic` renders.

    Attributes:
        size: image width = height in pixels.
        intensities_per_emotion: training intensities drawn per (clip, emotion).
        frames_per_intensity: frames (times x cameras) per (clip, emotion, intensity).
        yaw_deg, pitch_deg: training camera ranges (uniform).
        test_levels: held-out intensities (the paper's levels 1-3).
        test_yaws: held-out camera yaws (degrees).
        test_frames_per_level: frames per (test clip, emotion, level).
        neutral_share: fraction of extra neutral / zero-intensity training frames.
        distance, fov_deg, target: orbit camera (metres, degrees).
        background: RGB in [0, 1].
        seed: everything random derives from it.
    """

    size: int = 112
    intensities_per_emotion: int = 3
    frames_per_intensity: int = 6
    yaw_deg: Tuple[float, float] = (-55.0, 55.0)
    pitch_deg: Tuple[float, float] = (-12.0, 12.0)
    test_levels: Tuple[float, ...] = tuple(LEVELS.values())
    test_yaws: Tuple[float, ...] = (-30.0, 0.0, 30.0)
    test_frames_per_level: int = 3
    neutral_share: float = 0.08
    distance: float = 0.48
    fov_deg: float = 24.0
    target: Tuple[float, float, float] = (0.0, -0.015, 0.02)
    background: Tuple[float, float, float] = RenderSettings.background
    seed: int = 0


@torch.no_grad()
def render_teacher(head: Any, teacher: EmotionTeacher, psi_e: torch.Tensor,
                   emotion: torch.Tensor, intensity: torch.Tensor, viewmat: torch.Tensor,
                   K: torch.Tensor, size: Tuple[int, int],
                   background: Sequence[float], neck: Optional[torch.Tensor] = None,
                   backend: str = "auto") -> torch.Tensor:
    """Render teacher frames ``[B, H, W, 3]`` float in [0, 1].

    Args:
        head: a :class:`gemo_ros.pipeline.TalkingHead` (its avatar is used).
        teacher: the emotion look.
        psi_e: ``[B, 52]``; emotion, intensity: ``[B]``; viewmat ``[B, 4, 4]``; K ``[B, 3, 3]``.
        size: ``(width, height)``.
        background: RGB in [0, 1].
        neck: ``[B, 3]`` or None.
    """
    from gemo_ros.render import rasterize

    dev = head.device
    g = head.avatar(psi_e.to(dev), neck_rotation=None if neck is None else neck.to(dev))
    g = teacher.apply(g, emotion, intensity, neck, expr=psi_e.to(dev))
    out = []
    bg = torch.tensor(background, device=dev, dtype=torch.float32)
    for b in range(psi_e.shape[0]):
        rgb, _, _ = rasterize(g.means[b], g.quats[b], g.scales[b], g.opacities[b], g.colors[b],
                              viewmat[b].to(dev), K[b].to(dev), size[0], size[1],
                              background=bg, backend=backend)
        out.append(rgb.clamp(0.0, 1.0))
    return torch.stack(out)


def generate_synthetic(head: Any, train_clips: Sequence[SpeechClip],
                       test_clips: Sequence[SpeechClip],
                       spec: Optional[SyntheticSpec] = None,
                       teacher: Optional[EmotionTeacher] = None, window: int = 9,
                       feature_dim: Optional[int] = None, progress: bool = True
                       ) -> Stage2Frames:
    """Render a synthetic Stage 2 dataset with the teacher.

    Training frames: every training clip x every emotion (7 non-neutral) x random
    intensities in (0.1, 1] x random times and cameras, plus a few neutral frames.
    Held-out frames: the test clips (audio never trained on) x every emotion x the levels
    ``spec.test_levels`` x the yaws ``spec.test_yaws``.

    Args:
        head: a :class:`gemo_ros.pipeline.TalkingHead` (avatar and, when present, a2e).
        train_clips, test_clips: speech clips.
        spec: sizes, cameras and counts.
        teacher: the emotion look (default: :class:`EmotionTeacher` of the head's avatar).
        window: audio frames per feature window.
        feature_dim: feature width (default: the head's).
        progress: show a tqdm bar.
    """
    from tqdm import tqdm

    from gemo_ros.pipeline import feature_window
    from gemo_ros.render import orbit_camera

    spec = spec or SyntheticSpec()
    teacher = teacher or EmotionTeacher(head.avatar)
    source = ExpressionSource(head, feature_dim or head.feature_dim or 64, seed=spec.seed)
    if not source.uses_a2e:
        LOG.warning("no audio-to-expression model: using the recipe/random-feature stand-in "
                    "(development only)")
    rng = np.random.default_rng(spec.seed)
    jobs: List[Tuple[int, SpeechClip, int, float, bool, List[Tuple[float, float, float]]]] = []
    for ci, clip in enumerate(train_clips):
        for e in range(1, len(EMOTIONS)):
            for _ in range(spec.intensities_per_emotion):
                level = float(rng.uniform(0.1, 1.0))
                cams = [(float(rng.uniform(0, 1)), float(rng.uniform(*spec.yaw_deg)),
                         float(rng.uniform(*spec.pitch_deg)))
                        for _ in range(spec.frames_per_intensity)]
                jobs.append((ci, clip, e, level, False, cams))
        n_neutral = max(1, int(round(spec.neutral_share * (len(EMOTIONS) - 1)
                                     * spec.intensities_per_emotion)))
        for _ in range(n_neutral):
            e = int(rng.integers(0, len(EMOTIONS)))
            level = 0.0 if e != NEUTRAL else float(rng.uniform(0.1, 1.0))
            cams = [(float(rng.uniform(0, 1)), float(rng.uniform(*spec.yaw_deg)),
                     float(rng.uniform(*spec.pitch_deg))) for _ in range(spec.frames_per_intensity)]
            jobs.append((ci, clip, e, level, False, cams))
    for ti, clip in enumerate(test_clips):
        for e in range(1, len(EMOTIONS)):
            for level in spec.test_levels:
                cams = [(float(rng.uniform(0, 1)),
                         spec.test_yaws[k % len(spec.test_yaws)], 0.0)
                        for k in range(spec.test_frames_per_level)]
                jobs.append((len(train_clips) + ti, clip, e, float(level), True, cams))

    parts: Dict[str, List[torch.Tensor]] = {f.name: [] for f in fields(Stage2Frames)}
    size = (spec.size, spec.size)
    bar = tqdm(jobs, desc="teacher frames", unit="combo", disable=not progress)
    for ci, clip, e, level, is_test, cams in bar:
        feats, psi_n = source.features(clip)
        psi_e = source.emotional(clip, e, level)
        t_len = psi_n.shape[0]
        idx = torch.tensor([min(int(u * t_len), t_len - 1) for u, _, _ in cams])
        views = [orbit_camera(yaw, pitch, spec.distance, spec.fov_deg, spec.size, spec.size,
                              target=spec.target) for _, yaw, pitch in cams]
        vm = torch.stack([v for v, _ in views])
        kk = torch.stack([k for _, k in views])
        b = len(cams)
        em = torch.full((b,), e, dtype=torch.long)
        it = torch.full((b,), level, dtype=torch.float32)
        img = render_teacher(head, teacher, psi_e[idx], em, it, vm, kk, size, spec.background)
        parts["feats"].append(feature_window(feats, idx, window))
        parts["emotion"].append(em)
        parts["intensity"].append(it)
        parts["psi_n"].append(psi_n[idx].float())
        parts["psi_e"].append(psi_e[idx].float())
        parts["neck"].append(torch.zeros(b, 3))
        parts["viewmat"].append(vm)
        parts["K"].append(kk)
        parts["image"].append(torch.from_numpy(to_uint8(img)))
        parts["test"].append(torch.full((b,), is_test, dtype=torch.bool))
        parts["clip"].append(torch.full((b,), ci, dtype=torch.long))
        parts["time"].append(idx.float() / source.fps)
    return Stage2Frames(**{k: torch.cat(v) for k, v in parts.items()})


# ----------------------------------------------------------------------------- disk format
def write_stage2_dataset(root: str, frames: Stage2Frames, clips: Sequence[SpeechClip],
                         fps: float) -> str:
    """Write frames in the documented on-disk format (docs/stage2.md).

    ``frames.clip`` indexes ``clips``. Coefficients are written per frame (``psi_n`` /
    ``psi_e``), so loading does not need to rerun the a2e decoder; audio features are
    always recomputed from the clip audio.

    Returns:
        The manifest path.
    """
    import imageio.v3 as iio
    import soundfile as sf

    os.makedirs(os.path.join(root, "audio"), exist_ok=True)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    w, h = frames.size
    clip_meta = {}
    for k, clip in enumerate(clips):
        rel = f"audio/{clip.name}.wav"
        sf.write(os.path.join(root, rel), clip.audio, clip.sample_rate, subtype="PCM_16")
        clip_meta[clip.name] = {"audio": rel}
    entries = []
    for f in range(len(frames)):
        rel = f"images/{f:06d}.png"
        iio.imwrite(os.path.join(root, rel), frames.image[f].numpy())
        entries.append({
            "clip": clips[int(frames.clip[f])].name,
            "time": round(float(frames.time[f]), 6),
            "emotion": EMOTIONS[int(frames.emotion[f])],
            "intensity": round(float(frames.intensity[f]), 6),
            "image": rel,
            "viewmat": frames.viewmat[f].tolist(),
            "K": frames.K[f].tolist(),
            "neck_rotation": frames.neck[f].tolist(),
            "split": "test" if bool(frames.test[f]) else "train",
            "psi_n": [round(float(x), 6) for x in frames.psi_n[f]],
            "psi_e": [round(float(x), 6) for x in frames.psi_e[f]],
        })
    manifest = {"format": FORMAT, "width": w, "height": h, "fps": fps, "clips": clip_meta,
                "frames": entries}
    path = os.path.join(root, MANIFEST)
    with open(path, "w") as fh:
        json.dump(manifest, fh)
    return path


def _intensity_of(entry: Dict[str, Any], where: str) -> float:
    if "intensity" in entry:
        value = float(entry["intensity"])
    elif "level" in entry:
        level = int(entry["level"])
        if level not in LEVELS:
            raise DatasetError(f"{where}: level must be one of {sorted(LEVELS)}, got {level}")
        value = LEVELS[level]
    else:
        raise DatasetError(f"{where}: needs `intensity` (0..1) or `level` (1..3)")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise DatasetError(f"{where}: intensity {value} outside [0, 1]")
    return value


def _matrix(entry: Dict[str, Any], key: str, shape: Tuple[int, ...], where: str
            ) -> torch.Tensor:
    if key not in entry:
        raise DatasetError(f"{where}: missing `{key}`")
    try:
        value = torch.tensor(entry[key], dtype=torch.float32)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: `{key}` is not a numeric array ({exc})") from None
    if tuple(value.shape) != shape or not torch.isfinite(value).all():
        raise DatasetError(f"{where}: `{key}` must be finite with shape {list(shape)}, "
                           f"got {list(value.shape)}")
    return value


def load_stage2_dataset(root: str, head: Any, window: int = 9,
                        feature_dim: Optional[int] = None,
                        splits: Iterable[str] = ("train", "test")) -> Stage2Frames:
    """Load a Stage 2 dataset written in the documented format.

    Args:
        root: folder with ``stage2.json``.
        head: a :class:`gemo_ros.pipeline.TalkingHead`; its a2e model computes the audio
            features (and ``psi_n`` / ``psi_e`` for frames that do not list them).
        window: audio frames per feature window.
        feature_dim: feature width for the development stand-in without an a2e model.
        splits: which splits to keep.

    Raises:
        DatasetError: naming the file and field that is wrong.
    """
    import imageio.v3 as iio
    import soundfile as sf

    from gemo_ros.pipeline import feature_window

    path = os.path.join(root, MANIFEST)
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: not found (a Stage 2 dataset needs {MANIFEST})")
    try:
        with open(path) as fh:
            manifest = json.load(fh)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: invalid JSON ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise DatasetError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    try:
        width, height = int(manifest["width"]), int(manifest["height"])
        clip_meta = dict(manifest["clips"])
        entries = list(manifest["frames"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: needs width, height, clips and frames ({exc})") from None
    keep = set(splits)
    source = ExpressionSource(head, feature_dim or head.feature_dim or 64)
    clips: Dict[str, SpeechClip] = {}
    clip_ids: Dict[str, int] = {}
    parts: Dict[str, List[torch.Tensor]] = {f.name: [] for f in fields(Stage2Frames)}
    for n, entry in enumerate(entries):
        where = f"{path}: frames[{n}]"
        split = entry.get("split", "train")
        if split not in ("train", "test"):
            raise DatasetError(f"{where}: split must be train or test, got {split!r}")
        if split not in keep:
            continue
        name = entry.get("clip")
        if name not in clip_meta:
            raise DatasetError(f"{where}: clip {name!r} is not listed under `clips`")
        if name not in clips:
            apath = os.path.join(root, clip_meta[name].get("audio", ""))
            if not os.path.isfile(apath):
                raise DatasetError(f"{path}: clips[{name!r}]: audio file {apath} not found")
            audio, rate = sf.read(apath, dtype="float32", always_2d=True)
            clips[name] = SpeechClip(name, audio.mean(axis=1), int(rate))
            clip_ids[name] = len(clip_ids)
        clip = clips[name]
        try:
            emotion = emotion_index(entry.get("emotion", ""))
        except ValueError as exc:
            raise DatasetError(f"{where}: {exc}") from None
        intensity = 0.0 if emotion == NEUTRAL else _intensity_of(entry, where)
        t = float(entry.get("time", -1.0))
        dur = len(clip.audio) / clip.sample_rate
        if not 0.0 <= t <= dur + 1e-6:
            raise DatasetError(f"{where}: time {t} s outside the clip (0..{dur:.3f} s)")
        feats, psi_n_clip = source.features(clip)
        idx = min(int(round(t * source.fps)), feats.shape[0] - 1)
        if "psi_n" in entry and "psi_e" in entry:
            psi_n = _matrix(entry, "psi_n", (NUM_EXPR,), where)
            psi_e = _matrix(entry, "psi_e", (NUM_EXPR,), where)
        else:
            psi_n = psi_n_clip[idx]
            psi_e = source.emotional(clip, emotion, intensity)[idx]
        ipath = os.path.join(root, str(entry.get("image", "")))
        if not os.path.isfile(ipath):
            raise DatasetError(f"{where}: image {ipath} not found")
        img = np.asarray(iio.imread(ipath))
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3]
        if img.shape[:2] != (height, width) or img.dtype != np.uint8:
            raise DatasetError(f"{where}: image {ipath} is {img.shape} {img.dtype}, expected "
                               f"({height}, {width}, 3) uint8")
        parts["feats"].append(feature_window(feats, idx, window)[None])
        parts["emotion"].append(torch.tensor([emotion]))
        parts["intensity"].append(torch.tensor([intensity], dtype=torch.float32))
        parts["psi_n"].append(psi_n.float()[None])
        parts["psi_e"].append(psi_e.float()[None])
        neck = entry.get("neck_rotation")
        parts["neck"].append(torch.zeros(1, 3) if neck is None
                             else _matrix(entry, "neck_rotation", (3,), where)[None])
        parts["viewmat"].append(_matrix(entry, "viewmat", (4, 4), where)[None])
        parts["K"].append(_matrix(entry, "K", (3, 3), where)[None])
        parts["image"].append(torch.from_numpy(np.ascontiguousarray(img))[None])
        parts["test"].append(torch.tensor([split == "test"]))
        parts["clip"].append(torch.tensor([clip_ids[name]]))
        parts["time"].append(torch.tensor([t], dtype=torch.float32))
    if not parts["emotion"]:
        raise DatasetError(f"{path}: no frames in splits {sorted(keep)}")
    return Stage2Frames(**{k: torch.cat(v) for k, v in parts.items()})
