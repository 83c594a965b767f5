"""The eight emotion categories (MEAD's, in EMOTE's order), their aliases and intensity rules."""

from typing import Tuple

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


def canonical_emotion(name: str) -> str:
    """Return the canonical name of an emotion name or alias."""
    return EMOTIONS[emotion_index(name)]
