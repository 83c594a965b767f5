"""Phone timeline -> ARKit speech coefficient curves with co-articulation.

Every phone class has a *viseme*: target values of the mouth/jaw coefficients and a
*dominance* per coefficient (how strongly the phone insists on that value). The curve of a
coefficient at time t is the dominance-weighted mean of the targets of nearby phones
(Cohen & Massaro style), where a phone's dominance decays with the distance to its span,
more slowly *before* the phone than after it (anticipation: lips round / close before the
sound starts). Bilabials dominate the lips and the jaw (the lips must meet), labiodentals
the lower lip, vowels the jaw (scaled with the vowel's loudness), and pauses pull everything
back to rest. A short Gaussian smooths the result. Diphthongs glide between two targets.

Phones are libespeak-ng's English mnemonics (``p``, ``aI``, ``'u:``, ``_:``); stress
marks are ignored.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from gemo_ros.face.arkit import ARKIT_INDEX, NUM_ARKIT

#: Channels the speech curves drive (every other channel stays 0).
SPEECH_CHANNELS: Tuple[str, ...] = (
    "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker",
    "mouthStretchLeft", "mouthStretchRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugUpper", "mouthShrugLower", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "tongueOut",
)

# Viseme targets: {short name: value}; symmetric names expand to Left/Right.
_V = Dict[str, float]
# mouthClose is not blended: it is set to closure * jawOpen after blending (ARKit's
# mouthClose brings the lips together against the open jaw), see speech_curves.
# Amplitudes (jawOpen 1.0 taken as ~30 mm of vertical incisor opening, the range ARKit
# captures reach in wide-open speech; see docs/a2e.md "Target amplitudes"): consonants
# from the mean incisor positions of Burnett (1999) (2.5 mm sibilants .. 11.7 mm /h/,
# measured in words, so partly the neighbouring vowel's), open vowels ~18-21 mm,
# close vowels ~5-6 mm. Bilabials keep the jaw nearly shut and close the lips fully.
_BILABIAL: _V = {"jaw": 0.03, "press": 0.5, "rollL": 0.12, "rollU": 0.12}
_LABIODENTAL: _V = {"jaw": 0.08, "rollL": 0.55, "upperUp": 0.25, "shrugU": 0.1}
_DENTAL: _V = {"jaw": 0.15, "tongue": 0.35, "lowerDown": 0.12}
_ALVEOLAR: _V = {"jaw": 0.13, "lowerDown": 0.15, "stretch": 0.1}
_SIBILANT: _V = {"jaw": 0.08, "stretch": 0.25, "lowerDown": 0.12}
_POSTALV: _V = {"jaw": 0.1, "funnel": 0.45, "pucker": 0.2, "shrugU": 0.25}
_VELAR: _V = {"jaw": 0.2, "lowerDown": 0.08}
_GLOTTAL: _V = {"jaw": 0.3}
_R: _V = {"jaw": 0.14, "pucker": 0.35, "funnel": 0.25}
_W: _V = {"jaw": 0.08, "pucker": 0.75, "funnel": 0.35}
_J: _V = {"jaw": 0.1, "stretch": 0.2}
_REST: _V = {}

_VOWELS: Dict[str, _V] = {
    "a": {"jaw": 0.62, "stretch": 0.15, "lowerDown": 0.3},
    "aa": {"jaw": 0.66, "lowerDown": 0.3},
    "A:": {"jaw": 0.7, "lowerDown": 0.3},
    "A@": {"jaw": 0.64, "lowerDown": 0.25},
    "E": {"jaw": 0.46, "stretch": 0.2, "lowerDown": 0.22},
    "e@": {"jaw": 0.45, "stretch": 0.15, "lowerDown": 0.15},
    "e": {"jaw": 0.4, "stretch": 0.25, "lowerDown": 0.12},
    "I": {"jaw": 0.28, "stretch": 0.3, "lowerDown": 0.08},
    "i": {"jaw": 0.2, "stretch": 0.4},
    "i:": {"jaw": 0.18, "stretch": 0.45},
    "i@": {"jaw": 0.28, "stretch": 0.25},
    "0": {"jaw": 0.62, "funnel": 0.3, "lowerDown": 0.2},
    "O:": {"jaw": 0.52, "funnel": 0.5, "pucker": 0.2, "lowerDown": 0.15},
    "O@": {"jaw": 0.52, "funnel": 0.45, "pucker": 0.15, "lowerDown": 0.15},
    "o@": {"jaw": 0.5, "funnel": 0.45, "pucker": 0.2},
    "O": {"jaw": 0.52, "funnel": 0.45, "lowerDown": 0.15},
    "U": {"jaw": 0.24, "pucker": 0.5, "funnel": 0.2},
    "u:": {"jaw": 0.18, "pucker": 0.75, "funnel": 0.3},
    "U@": {"jaw": 0.26, "pucker": 0.45, "funnel": 0.2},
    "V": {"jaw": 0.52, "lowerDown": 0.2},
    "3:": {"jaw": 0.36, "funnel": 0.25, "pucker": 0.1},
    "3": {"jaw": 0.32, "funnel": 0.2},
    "@": {"jaw": 0.3, "lowerDown": 0.08},
    "@L": {"jaw": 0.28},
    "o": {"jaw": 0.42, "funnel": 0.4, "pucker": 0.35},
}
#: Diphthongs: (first target, second target, fraction of the span spent on the first).
_DIPHTHONGS: Dict[str, Tuple[str, str, float]] = {
    "aI": ("a", "i", 0.6), "aU": ("a", "u:", 0.6), "eI": ("E", "i", 0.6),
    "OI": ("O:", "i", 0.55), "oU": ("@", "u:", 0.5), "aI@": ("a", "@", 0.7),
    "aU@": ("a", "@", 0.7), "i@3": ("i", "@", 0.6),
}
_CONSONANTS: Dict[str, Tuple[_V, str]] = {}
for _names, _vis, _kind in (
    ("p b m", _BILABIAL, "bilabial"), ("f v", _LABIODENTAL, "labiodental"),
    ("T D", _DENTAL, "dental"), ("t d n l t# d# n- l- t2 d2 ?", _ALVEOLAR, "alveolar"),
    ("s z", _SIBILANT, "sibilant"), ("S Z tS dZ", _POSTALV, "postalveolar"),
    ("k g N x", _VELAR, "velar"), ("h", _GLOTTAL, "glottal"), ("r r- *", _R, "r"),
    ("w W", _W, "w"), ("j", _J, "j"),
):
    for _n in _names.split():
        _CONSONANTS[_n] = (_vis, _kind)

# Dominance of each phone class per short channel (default 1); WHY: a bilabial must close
# the lips whatever the neighbours do, while an alveolar barely constrains the lips.
_DOMINANCE: Dict[str, _V] = {
    # The lips meet through mouthClose = closure * jaw (below), so a bilabial need not
    # drag the jaw and press of its neighbouring vowels shut (12 before issue 14 did:
    # vowel middles next to /p b m/ sat at a third of their opening).
    "bilabial": {"jaw": 3.0, "press": 3.0, "rollL": 3.0, "rollU": 3.0,
                 "funnel": 3.0, "pucker": 2.0, "stretch": 0.5, "lowerDown": 3.0,
                 "upperUp": 3.0, "tongue": 3.0},
    "labiodental": {"jaw": 2.0, "rollL": 8.0, "upperUp": 4.0, "lowerDown": 4.0,
                    "funnel": 2.0, "pucker": 1.0},
    "dental": {"jaw": 1.5, "tongue": 6.0},
    "alveolar": {"jaw": 0.6, "funnel": 0.2, "pucker": 0.2, "stretch": 0.3},
    "sibilant": {"jaw": 1.5, "funnel": 0.3, "pucker": 0.3, "stretch": 0.8},
    "postalveolar": {"jaw": 1.0, "funnel": 4.0, "pucker": 3.0, "shrugU": 3.0},
    "velar": {"jaw": 0.4, "funnel": 0.2, "pucker": 0.2, "stretch": 0.2},
    "glottal": {"jaw": 0.2, "funnel": 0.1, "pucker": 0.1, "stretch": 0.1},
    "r": {"jaw": 0.5, "funnel": 2.0, "pucker": 2.0},
    "w": {"jaw": 1.0, "funnel": 4.0, "pucker": 5.0},
    "j": {"jaw": 0.5, "stretch": 1.5},
    "vowel": {"jaw": 5.0, "funnel": 2.0, "pucker": 2.0, "stretch": 2.0, "lowerDown": 2.0},
    "pause": {},
}
_PAUSE_DOMINANCE = 1.5
_SHORT = {
    "jaw": ("jawOpen",), "close": ("mouthClose",), "funnel": ("mouthFunnel",),
    "pucker": ("mouthPucker",), "stretch": ("mouthStretchLeft", "mouthStretchRight"),
    "rollL": ("mouthRollLower",), "rollU": ("mouthRollUpper",),
    "shrugU": ("mouthShrugUpper",), "shrugL": ("mouthShrugLower",),
    "press": ("mouthPressLeft", "mouthPressRight"),
    "lowerDown": ("mouthLowerDownLeft", "mouthLowerDownRight"),
    "upperUp": ("mouthUpperUpLeft", "mouthUpperUpRight"), "tongue": ("tongueOut",),
}
_CH = [ARKIT_INDEX[n] for n in SPEECH_CHANNELS]


def _vec(v: _V) -> np.ndarray:
    out = np.zeros(NUM_ARKIT, np.float32)
    for short, value in v.items():
        for name in _SHORT[short]:
            out[ARKIT_INDEX[name]] = value
    return out


def _dom(kind: str) -> np.ndarray:
    base = _PAUSE_DOMINANCE if kind == "pause" else 1.0
    out = np.full(NUM_ARKIT, base, np.float32)
    for short, value in _DOMINANCE[kind].items():
        for name in _SHORT[short]:
            out[ARKIT_INDEX[name]] = value
    return out


def normalise_phone(name: str) -> str:
    """Strip espeak stress marks (``'`` ``,``) and a trailing variant digit."""
    n = name.strip().lstrip("',%=")
    if len(n) > 1 and n[-1].isdigit() and n not in _VOWELS and n not in _DIPHTHONGS:
        n = n[:-1]
    return n.rstrip(";") or name


def phone_class(name: str) -> str:
    """Return the viseme class of an espeak phone (``bilabial``, ``vowel``, ``pause``, ...)."""
    n = normalise_phone(name)
    if not n or n.startswith("_") or n in (";", "|", "||"):
        return "pause"
    if n in _CONSONANTS:
        return _CONSONANTS[n][1]
    if n in _VOWELS or n in _DIPHTHONGS:
        return "vowel"
    if n.rstrip("#-") in _VOWELS:
        return "vowel"
    # Unknown symbol: vowels start with a vowel letter or a schwa/IPA-ish symbol.
    return "vowel" if n[0] in "aeiouAEIOUV@03" else "alveolar"


def _vowel_target(n: str) -> _V:
    if n in _VOWELS:
        return _VOWELS[n]
    n2 = n.rstrip("#-")
    if n2 in _VOWELS:
        return _VOWELS[n2]
    for k in sorted(_VOWELS, key=len, reverse=True):
        if n.startswith(k):
            return _VOWELS[k]
    return {"jaw": 0.3}


def _segments(name: str, start: float, end: float
              ) -> List[Tuple[float, float, np.ndarray, np.ndarray, str]]:
    """One or two (start, end, target[52], dominance[52], class) segments for a phone."""
    kind = phone_class(name)
    n = normalise_phone(name)
    if kind == "pause":
        return [(start, end, _vec(_REST), _dom("pause"), kind)]
    if kind == "vowel":
        if n in _DIPHTHONGS:
            a, b, frac = _DIPHTHONGS[n]
            mid = start + frac * (end - start)
            return [(start, mid, _vec(_vowel_target(a)), _dom("vowel"), kind),
                    (mid, end, _vec(_vowel_target(b)), _dom("vowel"), kind)]
        return [(start, end, _vec(_vowel_target(n)), _dom("vowel"), kind)]
    return [(start, end, _vec(_CONSONANTS.get(n, (_ALVEOLAR, ""))[0]), _dom(kind), kind)]


def _rms(audio: Optional[np.ndarray], rate: int, start: float, end: float) -> float:
    if audio is None:
        return 1.0
    a = audio[max(0, int(start * rate)):max(int(start * rate) + 1, int(end * rate))]
    return float(np.sqrt(np.mean(np.square(a.astype(np.float64))))) if a.size else 0.0


def speech_curves(phones: Sequence[Tuple[str, float, float]], num_frames: int,
                  fps: float = 50.0, audio: Optional[np.ndarray] = None,
                  sample_rate: int = 16000, anticipation_s: float = 0.07,
                  carryover_s: float = 0.04, smooth_s: float = 0.012) -> np.ndarray:
    """Return speech coefficient curves ``[num_frames, 52]`` in [0, 1] for a phone timeline.

    Args:
        phones: (espeak phone, start s, end s) in time order; frame k is at time ``k / fps``.
        num_frames: number of output frames.
        fps: frame rate in Hz.
        audio: optional mono samples; the jaw opening of each vowel is scaled by its RMS
            loudness relative to the clip's median vowel loudness (0.6x .. 1.35x).
        sample_rate: rate of ``audio`` in Hz.
        anticipation_s: decay length of a phone's dominance before its span (seconds).
        carryover_s: decay length after its span (seconds).
        smooth_s: standard deviation of the final Gaussian smoothing (seconds).

    Channels outside :data:`SPEECH_CHANNELS` are 0; frames far from any phone are at rest (0).
    """
    t = np.arange(num_frames, dtype=np.float64) / fps
    segs = []
    phones = list(phones)
    if phones:
        # Silence before the first and after the last phone is rest, not anticipation.
        phones = ([("_", -1.0, float(phones[0][1]))] + phones
                  + [("_", float(phones[-1][2]), num_frames / fps + 1.0)])
    for name, s, e in phones:
        segs += _segments(name, float(s), float(max(e, s + 1e-3)))
    if not segs or num_frames == 0:
        return np.zeros((num_frames, NUM_ARKIT), np.float32)
    vowel_rms = [_rms(audio, sample_rate, s, e) for s, e, _, _, k in segs if k == "vowel"]
    ref = float(np.median(vowel_rms)) if vowel_rms else 1.0
    num = np.zeros((num_frames, NUM_ARKIT))
    den = np.full((num_frames, NUM_ARKIT), 1e-3)  # weak pull to rest far from any phone
    for s, e, target, dom, kind in segs:
        target = target.astype(np.float64)
        if kind == "vowel" and audio is not None and ref > 0:
            loud = float(np.clip(np.sqrt(_rms(audio, sample_rate, s, e) / ref), 0.6, 1.35))
            target[ARKIT_INDEX["jawOpen"]] *= loud
        # Plateau over the middle of the span, exponential decay outside it.
        inset = 0.15 * (e - s)
        a, b = s + inset, e - inset
        before = np.clip(a - t, 0, None) / anticipation_s
        after = np.clip(t - b, 0, None) / carryover_s
        w = np.exp(-(before + after))[:, None] * dom[None, :]
        if kind == "pause":
            # A pause only pulls to rest once it has lasted a while (no closing in short gaps).
            w = w * min(1.0, (e - s) / 0.15)
        num += w * target[None, :]
        den += w
    out = num / den
    if smooth_s > 0:
        from scipy.ndimage import gaussian_filter1d
        out = gaussian_filter1d(out, sigma=smooth_s * fps, axis=0, mode="nearest")
    # Lip closure: 1 inside a bilabial's span, decaying within ~30 ms around it (a sharper
    # kernel than the blend, so the lips meet only on /p b m/); mouthClose = closure * jaw.
    jaw, close = ARKIT_INDEX["jawOpen"], ARKIT_INDEX["mouthClose"]
    closure = np.zeros(num_frames)
    for s, e, _, _, kind in segs:
        if kind == "bilabial":
            d = np.clip(s - t, 0, None) / 0.035 + np.clip(t - e, 0, None) / 0.025
            closure = np.maximum(closure, np.exp(-d))
    out[:, close] = closure * out[:, jaw]
    res = np.zeros((num_frames, NUM_ARKIT), np.float32)
    res[:, _CH] = np.clip(out[:, _CH], 0.0, 1.0)
    return res


def lip_aperture(coeffs):
    """Mouth aperture of ARKit coefficients ``[..., 52]`` (numpy array or torch tensor).

    ``jawOpen - mouthClose - 0.5 mouthPress - 0.5 mouthRoll + 0.3 mouthLowerDown`` (press,
    roll and lowerDown averaged over their two shapes): how far the lips are apart, about
    0 with the lips together and ~0.7 on a wide /a/ (issue 14's definition).
    """
    i = ARKIT_INDEX
    press = 0.5 * (coeffs[..., i["mouthPressLeft"]] + coeffs[..., i["mouthPressRight"]])
    roll = 0.5 * (coeffs[..., i["mouthRollLower"]] + coeffs[..., i["mouthRollUpper"]])
    lower = 0.5 * (coeffs[..., i["mouthLowerDownLeft"]] + coeffs[..., i["mouthLowerDownRight"]])
    return (coeffs[..., i["jawOpen"]] - coeffs[..., i["mouthClose"]] - 0.5 * press
            - 0.5 * roll + 0.3 * lower)


def closure_frames(phones: Sequence[Tuple[str, float, float]], fps: float = 50.0,
                   min_duration: float = 0.0) -> List[Tuple[str, int]]:
    """Return (phone, frame index at the middle of its span) for every /p b m/ phone."""
    out = []
    for name, s, e in phones:
        if phone_class(name) == "bilabial" and e - s >= min_duration:
            out.append((normalise_phone(name), int(round(0.5 * (s + e) * fps))))
    return out
