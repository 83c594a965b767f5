"""The eight emotion categories, their aliases, intensity rules and the command grammar.

The categories are MEAD's, in EMOTE's order.

Commands: ``happy``, ``happy 0.7``, ``happy:3`` (paper level 1/2/3), ``happy:0.7``,
``happy:0`` (off), an optional transition time in seconds as a last token
(``happy 0.7 1.5``), or JSON ``{"emotion": "happy", "intensity": 0.7, "transition": 0.5}``.
"""

import json
import math
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

#: Canonical emotion names; the index is the emotion id used by every model.
EMOTIONS: Tuple[str, ...] = (
    "neutral", "happy", "sad", "surprised", "fear", "disgusted", "angry", "contempt",
)
NEUTRAL = 0

#: Common spellings accepted on /emotion and the CLI, mapped to canonical names.
ALIASES = {
    "surprise": "surprised",
    "fearful": "fear",
    "scared": "fear",
    "afraid": "fear",
    "disgust": "disgusted",
    "anger": "angry",
    "mad": "angry",
    "contemptuous": "contempt",
    "happiness": "happy",
    "joy": "happy",
    "sadness": "sad",
    "calm": "neutral",
}

#: The paper's discrete levels 1/2/3 mapped onto the continuous intensity in [0, 1].
LEVELS = {1: 1.0 / 3.0, 2: 2.0 / 3.0, 3: 1.0}


def emotion_index(name: str) -> int:
    """Return the id of an emotion name or alias (case-insensitive).

    Raises ValueError naming the valid emotions when the name is unknown.
    """
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    try:
        return EMOTIONS.index(key)
    except ValueError:
        raise ValueError(
            f"unknown emotion {name!r}; valid: {', '.join(EMOTIONS)} "
            f"(aliases: {', '.join(sorted(ALIASES))})"
        ) from None


def emotion_id(emotion: Any) -> int:
    """Return the id of an emotion given by name / alias or by id (int-like, not bool).

    Raises ValueError for an unknown name, an id outside ``0..len(EMOTIONS) - 1`` or
    anything else.
    """
    if isinstance(emotion, str):
        return emotion_index(emotion)
    if isinstance(emotion, bool):
        raise ValueError(f"emotion must be a name or an id, got {emotion!r}")
    try:
        idx = int(emotion)
    except (TypeError, ValueError):
        raise ValueError(f"emotion must be a name or an id, got {emotion!r}") from None
    if not 0 <= idx < len(EMOTIONS):
        raise ValueError(f"emotion id {idx} outside 0..{len(EMOTIONS) - 1}")
    return idx


def canonical_emotion(name: str) -> str:
    """Return the canonical name of an emotion name or alias."""
    return EMOTIONS[emotion_index(name)]


# --- the /emotion command grammar ---------------------------------------------------------

@dataclass
class EmotionCommand:
    """A parsed ``/emotion`` command.

    ``intensity`` in [0, 1] and ``transition_s`` (seconds, >= 0) are None when the command
    did not give them (the node's defaults apply). ``warnings`` lists what was corrected.
    """

    emotion: str
    intensity: Optional[float] = None
    transition_s: Optional[float] = None
    warnings: List[str] = field(default_factory=list)


def finite_number(value: Any, what: str) -> float:
    """``float(value)``, or ValueError naming ``what`` when it is not a finite number."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return x


def _level_or_intensity(token: str, cmd: EmotionCommand) -> float:
    """``happy:3`` is level 3 (= 1.0); ``happy:0.7`` is an intensity; ``happy:0`` is off."""
    if token.strip().isdigit():
        level = int(token)
        if level == 0:
            return 0.0
        if level not in LEVELS:
            raise ValueError(f"level must be 1, 2 or 3 (or an intensity such as 0.7), got "
                             f"{level}")
        return LEVELS[level]
    return _clamped_intensity(finite_number(token, "intensity"), cmd)


def _clamped_intensity(x: float, cmd: EmotionCommand) -> float:
    if x < 0.0 or x > 1.0:
        clamped = min(max(x, 0.0), 1.0)
        cmd.warnings.append(f"intensity {x:g} out of [0, 1], clamped to {clamped:g}")
        return clamped
    return x


def _transition(x: float, cmd: EmotionCommand) -> float:
    if x < 0.0:
        cmd.warnings.append(f"transition {x:g} s is negative, using 0")
        return 0.0
    return x


def parse_emotion_command(text: str) -> EmotionCommand:
    """Parse one ``/emotion`` string.

    Accepted: ``happy``; ``happy 0.7``; ``happy:3`` (level 1/2/3 -> 1/3, 2/3, 1);
    ``happy:0.7``; an optional transition in seconds as the last token (``happy 0.7 1.5``,
    ``happy:2 0.5``); JSON ``{"emotion": "happy", "intensity": 0.7, "transition": 0.5}``
    (``level`` and ``transition_s`` also accepted). Names are case-insensitive, aliases per
    :mod:`gemo_ros.emotions`. Out-of-range intensities are clamped (with a warning).

    Raises ValueError with a message naming the problem (and the valid emotions).
    """
    text = str(text).strip()
    if not text:
        raise ValueError(f"empty emotion command; expected one of: {', '.join(EMOTIONS)}")
    if text.startswith("{") or "{" in text or "}" in text:
        # a brace anywhere means JSON was meant: report the JSON error, not a strange name
        return _parse_json(text)
    tokens = text.replace(",", " ").split()
    head, _, level = tokens[0].partition(":")
    cmd = EmotionCommand(emotion=canonical_emotion(head))
    rest = tokens[1:]
    if level:
        cmd.intensity = _level_or_intensity(level, cmd)
        if len(rest) > 1:
            raise ValueError(f"too many values in {text!r}; expected 'name:level [transition]'")
        if rest:
            cmd.transition_s = _transition(finite_number(rest[0], "transition"), cmd)
        return cmd
    if len(rest) > 2:
        raise ValueError(f"too many values in {text!r}; expected 'name [intensity [transition]]'")
    if rest:
        cmd.intensity = _clamped_intensity(finite_number(rest[0], "intensity"), cmd)
    if len(rest) == 2:
        cmd.transition_s = _transition(finite_number(rest[1], "transition"), cmd)
    return cmd


def _parse_json(text: str) -> EmotionCommand:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON emotion command ({exc.msg} at char {exc.pos})") from None
    if not isinstance(obj, dict) or "emotion" not in obj:
        raise ValueError('JSON emotion command needs an "emotion" key, e.g. '
                         '{"emotion": "happy", "intensity": 0.7, "transition": 0.5}')
    cmd = EmotionCommand(emotion=canonical_emotion(str(obj["emotion"])))
    if obj.get("intensity") is not None:
        cmd.intensity = _clamped_intensity(finite_number(obj["intensity"], "intensity"), cmd)
    elif obj.get("level") is not None:
        cmd.intensity = _level_or_intensity(str(obj["level"]), cmd)
    trans = obj.get("transition", obj.get("transition_s"))
    if trans is not None:
        cmd.transition_s = _transition(finite_number(trans, "transition"), cmd)
    unknown = sorted(set(obj) - {"emotion", "intensity", "level", "transition", "transition_s"})
    if unknown:
        cmd.warnings.append(f"ignored unknown keys {unknown}")
    return cmd
