"""ROS4HRI facial expressions -> our emotion categories and an intensity (ROS-free).

ROS4HRI (REP-155) commands a robot face with ``hri_msgs/msg/Expression``: an expression
name (one of 25 constants such as ``happy``, ``furious``, ``skeptical``), a valence and an
arousal in [-1, 1] and a confidence in [0, 1]. This module maps those four values onto
one of the eight categories of :mod:`gemo_ros.emotions` and an intensity in [0, 1]; the
node only copies the message fields into :func:`map_expression`.

Rules (docs/node.md has the table):

* a known name gives its emotion and a base intensity (:data:`EXPRESSIONS`); our own
  emotion names and aliases (``contempt``, ``fear``, ...) are accepted too, at base 1.0;
* the arousal scales a named expression's intensity by ``1 + AROUSAL_GAIN * arousal``
  (0 = as listed; publishers that only fill the name leave it 0);
* an empty name (or an unknown one, with a warning) is read from valence/arousal: the
  nearest :data:`CIRCUMPLEX` direction gives the emotion, the distance from the origin
  the intensity; within :data:`NEUTRAL_RADIUS` of the origin the face is neutral;
* the confidence scales the intensity; 0 means "not given" (the message's default) and
  counts as 1;
* an unknown name with no valence/arousal, or a NaN/inf number, raises ValueError.
"""

import math
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from gemo_ros.emotions import ALIASES, EMOTIONS, finite_number

#: ROS4HRI expression name -> (our emotion, base intensity in [0, 1]). The 25 names are
#: hri_msgs/msg/Expression's constants.
EXPRESSIONS: Dict[str, Tuple[str, float]] = {
    "neutral": ("neutral", 0.0),
    "happy": ("happy", 0.7),
    "excited": ("happy", 1.0),
    "sad": ("sad", 0.7),
    "despaired": ("sad", 1.0),
    "disappointed": ("sad", 0.5),
    "rejected": ("sad", 0.6),
    "guilty": ("sad", 0.4),
    "pleading": ("sad", 0.4),
    "embarrassed": ("sad", 0.3),
    "tired": ("sad", 0.25),
    "bored": ("sad", 0.2),
    "asleep": ("neutral", 0.0),
    "surprised": ("surprised", 0.7),
    "amazed": ("surprised", 1.0),
    "confused": ("surprised", 0.3),
    "scared": ("fear", 0.7),
    "horrified": ("fear", 1.0),
    "vulnerable": ("fear", 0.4),
    "disgusted": ("disgusted", 0.7),
    "angry": ("angry", 0.7),
    "furious": ("angry", 1.0),
    "annoyed": ("angry", 0.4),
    "skeptical": ("contempt", 0.5),
    "suspicious": ("contempt", 0.4),
}

#: Direction of each emotion on the valence/arousal plane (Russell's circumplex, roughly),
#: used when no (known) name is given. Neutral is the centre.
CIRCUMPLEX: Dict[str, Tuple[float, float]] = {
    "happy": (0.9, 0.3),
    "surprised": (0.3, 0.95),
    "fear": (-0.35, 0.9),
    "angry": (-0.7, 0.65),
    "disgusted": (-0.9, 0.2),
    "contempt": (-0.8, -0.2),
    "sad": (-0.65, -0.7),
}
#: Below this distance from (0, 0) on the valence/arousal plane the face is neutral.
NEUTRAL_RADIUS = 0.2
#: How much the arousal raises/lowers a named expression's intensity.
AROUSAL_GAIN = 0.5


@dataclass
class ExpressionMapping:
    """What an expression means for the face.

    ``emotion`` is a canonical name of :data:`gemo_ros.emotions.EMOTIONS`, ``intensity`` in
    [0, 1]; ``source`` is ``"name"`` or ``"valence-arousal"``; ``warnings`` lists what was
    corrected or guessed.
    """

    emotion: str
    intensity: float
    source: str
    warnings: List[str] = field(default_factory=list)


def _clamp(x: float, lo: float, hi: float, what: str, warnings: List[str]) -> float:
    if x < lo or x > hi:
        clamped = min(max(x, lo), hi)
        warnings.append(f"{what} {x:g} out of [{lo:g}, {hi:g}], clamped to {clamped:g}")
        return clamped
    return x


def _named(key: str) -> Tuple[str, float]:
    """Return (emotion, base intensity) of a ROS4HRI name or one of our names; KeyError."""
    if key in EXPRESSIONS:
        return EXPRESSIONS[key]
    own = ALIASES.get(key, key)
    if own in EMOTIONS:
        return own, (0.0 if own == "neutral" else 1.0)
    raise KeyError(key)


def from_valence_arousal(valence: float, arousal: float) -> Tuple[str, float]:
    """Return (emotion, intensity) of a point on the valence/arousal plane, both in [-1, 1].

    The emotion is the :data:`CIRCUMPLEX` direction with the smallest angle to the point;
    the intensity is the point's distance from the origin (1 at the unit circle, capped),
    0 and ``neutral`` within :data:`NEUTRAL_RADIUS`.
    """
    radius = math.hypot(valence, arousal)
    if radius < NEUTRAL_RADIUS:
        return "neutral", 0.0
    best = max(CIRCUMPLEX, key=lambda e: (CIRCUMPLEX[e][0] * valence + CIRCUMPLEX[e][1] * arousal)
               / math.hypot(*CIRCUMPLEX[e]))
    return best, min(radius, 1.0)


def map_expression(name: str, valence: float = 0.0, arousal: float = 0.0,
                   confidence: float = 0.0) -> ExpressionMapping:
    """Map a ROS4HRI expression to ``(emotion, intensity)``; see the module docstring.

    Args:
        name: expression name (case-insensitive; ``""`` = use valence/arousal).
        valence: [-1, 1], negative to positive (clamped with a warning).
        arousal: [-1, 1], calm to excited (clamped with a warning).
        confidence: [0, 1]; 0 = not given (counts as 1).

    Raises:
        ValueError: a non-finite number, or an unknown name without valence/arousal.
    """
    warnings: List[str] = []
    valence = _clamp(finite_number(valence, "valence"), -1.0, 1.0, "valence", warnings)
    arousal = _clamp(finite_number(arousal, "arousal"), -1.0, 1.0, "arousal", warnings)
    confidence = _clamp(finite_number(confidence, "confidence"), 0.0, 1.0, "confidence", warnings)
    weight = confidence if confidence > 0.0 else 1.0
    key = str(name).strip().lower()
    if key:
        try:
            emotion, base = _named(key)
        except KeyError:
            if valence == 0.0 and arousal == 0.0:
                raise ValueError(
                    f"unknown expression {name!r} (and no valence/arousal); known: "
                    f"{', '.join(sorted(EXPRESSIONS))} or one of {', '.join(EMOTIONS)}"
                ) from None
            warnings.append(f"unknown expression {name!r}: used valence/arousal instead")
        else:
            intensity = min(max(base * (1.0 + AROUSAL_GAIN * arousal), 0.0), 1.0)
            return ExpressionMapping(emotion, intensity * weight, "name", warnings)
    emotion, intensity = from_valence_arousal(valence, arousal)
    return ExpressionMapping(emotion, intensity * weight, "valence-arousal", warnings)
