"""Emotions as FACS action units, mapped onto the 52 ARKit coefficients.

Each emotion is a prototype (EMFACS-style) list of action units (AU) with an intensity in
[0, 1] and an optional side (contempt is one-sided). :data:`AU_TO_ARKIT` turns AUs into
ARKit coefficient targets. :func:`emotion_target` gives the static target of an emotion at
an intensity; :func:`combine_with_speech` lays it over speech curves so that the two
interact the way faces do: a smile stays while talking, a dropped jaw (surprise) still lets
the lips close on /p b m/, and emotions change how widely the mouth articulates.

Used by the audio-to-expression training (targets) and by the stage-2 residual (mesh
targets); both rely on intensity 0 or ``neutral`` giving exactly the input curves.
"""

from typing import Dict, List, Tuple

import numpy as np

from gemo_ros.emotions import EMOTIONS, emotion_index
from gemo_ros.face.arkit import ARKIT_INDEX, NUM_ARKIT

#: FACS action unit -> {ARKit name (``*`` = Left and Right): weight}.
AU_TO_ARKIT: Dict[int, Dict[str, float]] = {
    1: {"browInnerUp": 1.0},                                   # inner brow raiser
    2: {"browOuterUp*": 1.0},                                  # outer brow raiser
    4: {"browDown*": 1.0, "browInnerUp": -0.3},                # brow lowerer
    5: {"eyeWide*": 1.0},                                      # upper lid raiser
    6: {"cheekSquint*": 1.0, "eyeSquint*": 0.35},              # cheek raiser
    7: {"eyeSquint*": 1.0},                                    # lid tightener
    9: {"noseSneer*": 1.0, "mouthUpperUp*": 0.3},              # nose wrinkler
    10: {"mouthUpperUp*": 1.0},                                # upper lip raiser
    12: {"mouthSmile*": 1.0},                                  # lip corner puller
    14: {"mouthDimple*": 1.0},                                 # dimpler
    15: {"mouthFrown*": 1.0},                                  # lip corner depressor
    16: {"mouthLowerDown*": 1.0},                              # lower lip depressor
    17: {"mouthShrugLower": 1.0},                              # chin raiser
    20: {"mouthStretch*": 1.0},                                # lip stretcher
    23: {"mouthPress*": 0.6, "mouthRollUpper": 0.2, "mouthRollLower": 0.2},  # tightener
    24: {"mouthPress*": 1.0},                                  # lip pressor
    25: {"mouthLowerDown*": 0.3},                              # lips part
    26: {"jawOpen": 1.0},                                      # jaw drop
}

#: emotion -> [(AU, intensity at emotion intensity 1, side: "" both, "L", "R")].
#: Sad, fear, angry and contempt run near FACS intensity E at 1 (issue 13: on the ICT head their
#: features moved 2-8 % IOD at the earlier 0.45-0.8); surprise keeps its brows at 0.85, past
#: which the landmark detector stops following them (docs/benchmarks.md).
RECIPES: Dict[str, List[Tuple[int, float, str]]] = {
    "neutral": [],
    "happy": [(6, 0.7, ""), (12, 0.85, ""), (25, 0.3, "")],
    # Sad: AU4 only draws the brows together here; on the ICT shapes more of it cancels AU1.
    "sad": [(1, 1.0, ""), (4, 0.25, ""), (15, 1.0, ""), (17, 0.35, "")],
    "surprised": [(1, 0.85, ""), (2, 0.85, ""), (5, 0.8, ""), (26, 0.35, "")],
    "fear": [(1, 0.9, ""), (2, 0.5, ""), (4, 0.35, ""), (5, 1.0, ""), (20, 0.7, ""),
             (26, 0.15, "")],
    "disgusted": [(9, 0.8, ""), (10, 0.55, ""), (4, 0.3, ""), (15, 0.3, ""), (17, 0.3, "")],
    "angry": [(4, 1.0, ""), (5, 0.3, ""), (7, 0.65, ""), (23, 0.6, "")],
    "contempt": [(12, 0.8, "R"), (14, 0.8, "R"), (7, 0.15, "")],
}

#: How widely each emotion articulates speech (jaw and lip amplitude at intensity 1).
SPEECH_GAIN: Dict[str, float] = {
    "neutral": 1.0, "happy": 1.1, "sad": 0.7, "surprised": 1.15, "fear": 0.85,
    "disgusted": 0.8, "angry": 1.25, "contempt": 0.85,
}

_SPEECH_SCALED = ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthFunnel",
                  "mouthPucker")


def _names(pattern: str, side: str) -> List[str]:
    if not pattern.endswith("*"):
        return [pattern]
    base = pattern[:-1]
    if side == "L":
        return [base + "Left"]
    if side == "R":
        return [base + "Right"]
    return [base + "Left", base + "Right"]


def au_vector(aus: List[Tuple[int, float, str]]) -> np.ndarray:
    """Return ARKit coefficients ``[52]`` for (AU, intensity, side) triples, clipped to [0, 1].

    Negative weights (AU4 lowers the inner brow) only cancel what other AUs raise.
    """
    out = np.zeros(NUM_ARKIT, np.float64)
    for au, value, side in aus:
        if au not in AU_TO_ARKIT:
            raise ValueError(f"unknown FACS action unit AU{au}")
        for pattern, w in AU_TO_ARKIT[au].items():
            for name in _names(pattern, side):
                out[ARKIT_INDEX[name]] += w * value
    return np.clip(out, 0.0, 1.0).astype(np.float32)


#: Static targets ``[8, 52]`` of every emotion at intensity 1 (row = emotion id).
EMOTION_TARGETS: np.ndarray = np.stack([au_vector(RECIPES[e]) for e in EMOTIONS])


def emotion_target(emotion, intensity: float) -> np.ndarray:
    """Return the static ARKit target ``[52]`` of an emotion (name or id) at an intensity."""
    idx = emotion if isinstance(emotion, (int, np.integer)) else emotion_index(emotion)
    return float(np.clip(intensity, 0.0, 1.0)) * EMOTION_TARGETS[int(idx)]


def combine_with_speech(speech: np.ndarray, emotion, intensity: float) -> np.ndarray:
    """Lay an emotion over speech curves; return coefficients ``[T, 52]`` in [0, 1].

    Args:
        speech: neutral speech coefficients ``[T, 52]`` (e.g. from the viseme curves).
        emotion: emotion name or id.
        intensity: in [0, 1]; 0 (or ``neutral``) returns ``speech`` unchanged.

    Rules (linear in the intensity, so a model of the form base + i * delta can match):
      * articulation amplitude (jaw, lower lip, rounding) scales by
        ``1 + i * (SPEECH_GAIN[e] - 1)``;
      * emotion targets add on top of speech with a soft union ``s + i*a*(1 - s)``, so a
        smile stays while talking without pushing channels past 1;
      * the emotion's own jaw drop and lip-pressing are suppressed where speech closes the
        lips (bilabials) or opens them (pressing), so /p b m/ stay closed.
    """
    idx = emotion if isinstance(emotion, (int, np.integer)) else emotion_index(emotion)
    i = float(np.clip(intensity, 0.0, 1.0))
    speech = np.asarray(speech, np.float32)
    if int(idx) == 0 or i == 0.0:
        return speech.copy()
    name = EMOTIONS[int(idx)]
    target = EMOTION_TARGETS[int(idx)][None, :].astype(np.float32)
    out = speech.copy()
    gain = 1.0 + i * (SPEECH_GAIN[name] - 1.0)
    for ch in _SPEECH_SCALED:
        out[:, ARKIT_INDEX[ch]] = speech[:, ARKIT_INDEX[ch]] * gain
    jaw, close = ARKIT_INDEX["jawOpen"], ARKIT_INDEX["mouthClose"]
    # Lip closure fraction of the speech (1 on a bilabial, 0 on an open vowel).
    closure = np.clip(speech[:, close] / np.maximum(speech[:, jaw], 1e-3), 0.0, 1.0)
    closure = np.where(speech[:, jaw] > 1e-3, closure, 0.0)
    add = np.repeat(target, speech.shape[0], axis=0)
    add[:, jaw] *= 1.0 - closure
    talking = np.clip(speech[:, jaw] / 0.15, 0.0, 1.0)
    for ch in ("mouthPressLeft", "mouthPressRight"):
        add[:, ARKIT_INDEX[ch]] *= 1.0 - 0.7 * talking
    out = out + i * add * (1.0 - speech)
    out[:, close] = speech[:, close] * gain  # the lips still meet on a wider jaw
    return np.clip(out, 0.0, 1.0).astype(np.float32)
