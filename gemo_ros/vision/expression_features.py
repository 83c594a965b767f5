"""How far a face's expression moves, from landmarks: features, targets and FACS prototypes.

Inputs are two landmark sets of the same face seen by the same fixed camera (``[K, 2+]``
pixels in :data:`gemo_ros.vision.landmarks.LANDMARKS` indexing): the neutral face and an
expression. Every feature is a change against neutral in **percent of the inter-ocular
distance** (IOD: the outer eye corners' distance in the neutral image), so the numbers do not
depend on image size or framing. Signs: ``up`` is positive (against image ``y``), ``out``
(away from the face's midline) is positive, a wider / more open measure is positive. Left and
right are the face's own sides. Positions are taken in image coordinates, so the head must
not move between the two images (the benchmark renders a fixed, frontal head).

The pattern test compares the change vector of :data:`PATTERN_FEATURES` with one prototype
per emotion (:data:`PROTOTYPES`, FACS / EMFACS expectations written as signed weights) by
**cosine similarity**; an emotion passes when its own prototype is the most similar. The
contempt prototype is one-sided (AU14 on either side): it is scored as the better of itself
and its mirror image.
"""

from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from gemo_ros.vision.landmarks import LANDMARKS

SIDES = ("left", "right")

#: Every feature, in the order of tables and vectors (percent of IOD, change vs neutral).
FEATURES: Tuple[str, ...] = (
    "corner_up_left", "corner_up_right",        # mouth corner, vertical (up +)
    "corner_out_left", "corner_out_right",      # mouth corner, horizontal (outward +)
    "mouth_width",                              # corner-to-corner distance
    "mouth_open",                               # inner lip gap on the midline
    "upper_lip_raise",                          # top of the upper lip (midline, canines), up +
    "brow_inner_left", "brow_inner_right",      # inner brow height (up +)
    "brow_outer_left", "brow_outer_right",      # outer brow height (up +)
    "eye_open_left", "eye_open_right",          # upper-to-lower lid distance
)

#: The features the pattern test compares (mouth width is left out: it repeats corner_out).
PATTERN_FEATURES: Tuple[str, ...] = tuple(f for f in FEATURES if f != "mouth_width")

# Signed weights of the features each emotion's prototype moves (others 0). From the
# EMFACS prototypes of Ekman & Friesen and FACS's descriptions of each action unit's
# appearance; "_both" sets the left and right feature alike.
_PROTOTYPE_SPECS: Dict[str, Dict[str, float]] = {
    # AU6 + AU12: corners pulled up and out; the cheeks raised narrow the eyes.
    "happy": {"corner_up_both": 1.0, "corner_out_both": 0.5, "eye_open_both": -0.5},
    # AU1 + AU4 + AU15: inner brows up (oblique brows), corners down, upper lids droop.
    "sad": {"brow_inner_both": 1.0, "corner_up_both": -1.0, "eye_open_both": -0.5},
    # AU1 + AU2 + AU5 + AU26: whole brow up, eyes wide, jaw dropped (corners follow it down,
    # a little closer together).
    "surprised": {"brow_inner_both": 1.0, "brow_outer_both": 1.0, "eye_open_both": 1.0,
                  "mouth_open": 1.0, "corner_up_both": -0.5, "corner_out_both": -0.25},
    # AU1 + AU2 + AU4 + AU5 + AU20 (+ AU26): inner brows up (outer less, AU4 pulls them
    # together), eyes wide, lips stretched sideways and a little down, mouth a little open.
    "fear": {"brow_inner_both": 1.0, "brow_outer_both": 0.5, "eye_open_both": 1.0,
             "corner_out_both": 1.0, "corner_up_both": -0.5, "mouth_open": 0.5},
    # AU9 + AU10 (+ AU4, AU15/17): upper lip raised (parting the lips), brows pulled down
    # by the nose wrinkler, lower lids pushed up.
    "disgusted": {"upper_lip_raise": 1.0, "mouth_open": 0.5, "brow_inner_both": -0.5,
                  "brow_outer_both": -0.5, "eye_open_both": -0.5},
    # AU4 + AU5 + AU7 + AU23: brows down and together (inner most), lips tightened (narrower);
    # the upper lid raiser and the lid tightener roughly cancel in the eye opening.
    "angry": {"brow_inner_both": -1.0, "brow_outer_both": -0.5, "corner_out_both": -0.5},
    # Unilateral AU14 (+ AU12): one corner tightened up and out (here the left; the mirror
    # counts as well).
    "contempt": {"corner_up_left": 1.0, "corner_out_left": 0.5},
}


def _expand(spec: Mapping[str, float]) -> np.ndarray:
    v = np.zeros(len(PATTERN_FEATURES))
    for key, w in spec.items():
        names = ([key[:-len("both")] + s for s in SIDES] if key.endswith("_both") else [key])
        for name in names:
            v[PATTERN_FEATURES.index(name)] = w
    return v


#: Emotion -> prototype vector over :data:`PATTERN_FEATURES` (signed weights, not unit).
PROTOTYPES: Dict[str, np.ndarray] = {e: _expand(s) for e, s in _PROTOTYPE_SPECS.items()}

#: Emotions whose prototype is one-sided and is also matched mirrored.
ONE_SIDED = ("contempt",)

#: Main feature(s) per emotion: (label, {feature: weight}) -> the weighted mean, in % IOD,
#: that the issue's target (>= 10 % IOD at intensity 1) applies to; positive = as expected.
MAIN_FEATURES: Dict[str, List[Tuple[str, Dict[str, float]]]] = {
    "happy": [("mouth corners up", {"corner_up_left": 0.5, "corner_up_right": 0.5})],
    "sad": [("inner brows up", {"brow_inner_left": 0.5, "brow_inner_right": 0.5}),
            ("mouth corners down", {"corner_up_left": -0.5, "corner_up_right": -0.5})],
    "surprised": [("brows up", {"brow_inner_left": 0.25, "brow_inner_right": 0.25,
                                "brow_outer_left": 0.25, "brow_outer_right": 0.25})],
    "fear": [("eyes wider", {"eye_open_left": 0.5, "eye_open_right": 0.5}),
             ("mouth stretched", {"mouth_width": 1.0})],
    "disgusted": [("upper lip up", {"upper_lip_raise": 1.0})],
    "angry": [("brows down", {"brow_inner_left": -0.25, "brow_inner_right": -0.25,
                              "brow_outer_left": -0.25, "brow_outer_right": -0.25})],
    "contempt": [("one corner up", {"corner_up_max": 1.0})],
}

#: The issue's target for a main feature at intensity 1, % of IOD.
TARGET_PCT_IOD = 10.0


def _check(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or p.shape[0] <= max(LANDMARKS.values()):
        raise ValueError(f"landmarks must be [K >= {max(LANDMARKS.values()) + 1}, 2 or 3] "
                         f"pixels, got shape {p.shape}")
    if not np.isfinite(p[list(LANDMARKS.values()), :2]).all():
        raise ValueError("landmarks hold NaN or inf at the named points")
    return p


def _pt(points: np.ndarray, name: str) -> np.ndarray:
    return points[LANDMARKS[name], :2]


def _mean_pt(points: np.ndarray, names: Sequence[str]) -> np.ndarray:
    return np.mean([_pt(points, n) for n in names], axis=0)


def inter_ocular(points: np.ndarray) -> float:
    """Distance between the outer eye corners of ``points [K, 2+]``, pixels."""
    p = _check(points)
    return float(np.linalg.norm(_pt(p, "eye_outer_corner_left")
                                - _pt(p, "eye_outer_corner_right")))


def _measures(points: np.ndarray) -> Dict[str, float]:
    """Absolute measures in pixels (heights as -y so that up is positive)."""
    p = _check(points)
    m: Dict[str, float] = {}
    cl, cr = _pt(p, "mouth_corner_left"), _pt(p, "mouth_corner_right")
    # The face's left appears on the image's right (x grows outward on the left side).
    m["corner_up_left"], m["corner_up_right"] = -cl[1], -cr[1]
    m["corner_out_left"], m["corner_out_right"] = cl[0], -cr[0]
    m["mouth_width"] = float(np.linalg.norm(cl - cr))
    m["mouth_open"] = _pt(p, "lip_lower_inner")[1] - _pt(p, "lip_upper_inner")[1]
    upper_lip = ("lip_upper_outer", "lip_upper_outer_left", "lip_upper_outer_right")
    m["upper_lip_raise"] = -_mean_pt(p, upper_lip)[1]
    for side in SIDES:
        for part in ("inner", "outer"):
            m[f"brow_{part}_{side}"] = -_mean_pt(p, (f"brow_{part}_upper_{side}",
                                                     f"brow_{part}_lower_{side}"))[1]
        m[f"eye_open_{side}"] = (_pt(p, f"eye_lower_lid_{side}")[1]
                                 - _pt(p, f"eye_upper_lid_{side}")[1])
    return m


def expression_features(neutral: np.ndarray, expression: np.ndarray) -> Dict[str, float]:
    """Change of every :data:`FEATURES` entry from ``neutral`` to ``expression``, % of IOD.

    Args:
        neutral, expression: landmarks ``[K, 2 or 3]`` in pixels of the same face, same
            camera, same image size.

    Returns:
        ``{feature: percent of the neutral inter-ocular distance}``.

    Raises:
        ValueError: bad shapes, NaN at a named point, or a degenerate neutral face.
    """
    iod = inter_ocular(neutral)
    if not iod > 1e-6:
        raise ValueError(f"neutral inter-ocular distance is {iod} px; not a face")
    a, b = _measures(neutral), _measures(expression)
    return {f: 100.0 * (b[f] - a[f]) / iod for f in FEATURES}


def absolute_measures(points: np.ndarray, iod: float) -> Dict[str, float]:
    """Mouth opening and width of one face in pixels and in % of ``iod`` (pixels)."""
    m = _measures(points)
    return {"mouth_open_px": m["mouth_open"], "mouth_open_pct": 100.0 * m["mouth_open"] / iod,
            "mouth_width_px": m["mouth_width"],
            "mouth_width_pct": 100.0 * m["mouth_width"] / iod}


def feature_vector(features: Mapping[str, float],
                   names: Sequence[str] = PATTERN_FEATURES) -> np.ndarray:
    """Return ``[len(names)]`` values of a features dict in a fixed order."""
    return np.array([float(features[n]) for n in names])


def _mirror(v: np.ndarray) -> np.ndarray:
    out = v.copy()
    for i, name in enumerate(PATTERN_FEATURES):
        if name.endswith("_left"):
            out[i] = v[PATTERN_FEATURES.index(name[:-len("left")] + "right")]
        elif name.endswith("_right"):
            out[i] = v[PATTERN_FEATURES.index(name[:-len("right")] + "left")]
    return out


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-12 or nb < 1e-12:
        return 0.0
    return float(a @ b / (na * nb))


def prototype_similarity(features: Mapping[str, float]) -> Dict[str, float]:
    """Cosine similarity of a change vector to every prototype (one-sided ones: best side).

    A zero change vector (no movement) is similar to nothing: every value is 0.
    """
    v = feature_vector(features)
    out = {}
    for emotion, proto in PROTOTYPES.items():
        s = _cosine(v, proto)
        if emotion in ONE_SIDED:
            s = max(s, _cosine(v, _mirror(proto)))
        out[emotion] = s
    return out


def closest_prototype(features: Mapping[str, float]) -> Tuple[str, Dict[str, float]]:
    """Return ``(emotion of the most similar prototype, all similarities)``."""
    sims = prototype_similarity(features)
    return max(sims, key=sims.get), sims


def main_features(emotion: str, features: Mapping[str, float]) -> List[Tuple[str, float]]:
    """Return ``[(label, value in % IOD)]`` of an emotion's main feature(s) (sign: expected +).

    ``corner_up_max`` is the higher of the two corners' rise (contempt is one-sided).
    """
    f = dict(features)
    f["corner_up_max"] = max(f["corner_up_left"], f["corner_up_right"])
    return [(label, float(sum(w * f[k] for k, w in weights.items())))
            for label, weights in MAIN_FEATURES[emotion]]
