"""FACS recipes of the eight emotions over speech (gemo_ros.face.emotion_recipes)."""

import numpy as np
import pytest

from gemo_ros.emotions import EMOTIONS
from gemo_ros.face.arkit import ARKIT_INDEX, NUM_ARKIT
from gemo_ros.face.emotion_recipes import (EMOTION_TARGETS, au_vector, combine_with_speech,
                                           emotion_target)


def _speech(jaw: float, close: float = 0.0, frames: int = 4) -> np.ndarray:
    s = np.zeros((frames, NUM_ARKIT), np.float32)
    s[:, ARKIT_INDEX["jawOpen"]] = jaw
    s[:, ARKIT_INDEX["mouthClose"]] = close
    return s


def test_action_units_map_onto_their_arkit_channels_and_sides():
    both = au_vector([(12, 0.5, "")])
    assert both[ARKIT_INDEX["mouthSmileLeft"]] == both[ARKIT_INDEX["mouthSmileRight"]] == 0.5
    right = au_vector([(12, 0.5, "R")])
    assert right[ARKIT_INDEX["mouthSmileRight"]] == 0.5
    assert right[ARKIT_INDEX["mouthSmileLeft"]] == 0.0
    assert np.count_nonzero(right) == 1
    with pytest.raises(ValueError, match="AU99"):
        au_vector([(99, 1.0, "")])


def test_every_emotion_but_neutral_has_a_target_in_the_unit_interval():
    assert EMOTION_TARGETS.shape == (len(EMOTIONS), NUM_ARKIT)
    assert not EMOTION_TARGETS[0].any()
    assert all(EMOTION_TARGETS[i].any() for i in range(1, len(EMOTIONS)))
    assert EMOTION_TARGETS.min() >= 0.0 and EMOTION_TARGETS.max() <= 1.0
    np.testing.assert_allclose(emotion_target("happy", 0.5), 0.5 * EMOTION_TARGETS[1])


def test_neutral_or_zero_intensity_returns_the_speech_unchanged():
    speech = _speech(0.4)
    np.testing.assert_array_equal(combine_with_speech(speech, "neutral", 1.0), speech)
    np.testing.assert_array_equal(combine_with_speech(speech, "angry", 0.0), speech)


def test_happy_adds_a_smile_and_cheeks_while_talking_and_widens_the_jaw():
    speech = _speech(0.4)
    out = combine_with_speech(speech, "happy", 1.0)
    for name in ("mouthSmileLeft", "mouthSmileRight", "cheekSquintLeft", "cheekSquintRight"):
        assert (out[:, ARKIT_INDEX[name]] > 0.5).all(), name
    assert (out[:, ARKIT_INDEX["jawOpen"]] > 0.4).all()          # SPEECH_GAIN 1.1
    assert not out[:, ARKIT_INDEX["browDownLeft"]].any()         # not a happy channel
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_sad_narrows_the_articulation_and_lowers_the_lip_corners():
    out = combine_with_speech(_speech(0.4), "sad", 1.0)
    assert (out[:, ARKIT_INDEX["jawOpen"]] < 0.4).all()          # SPEECH_GAIN 0.7
    assert (out[:, ARKIT_INDEX["mouthFrownLeft"]] > 0.3).all()
    assert (out[:, ARKIT_INDEX["browInnerUp"]] > 0.3).all()


def test_a_bilabial_keeps_the_lips_closed_under_a_jaw_dropping_emotion():
    closed = combine_with_speech(_speech(0.2, close=0.2), "surprised", 1.0)
    jaw, close = ARKIT_INDEX["jawOpen"], ARKIT_INDEX["mouthClose"]
    # jaw and mouthClose scale together: the lip aperture (jaw - close) stays 0.
    np.testing.assert_allclose(closed[:, jaw], closed[:, close], atol=1e-6)
    opened = combine_with_speech(_speech(0.2), "surprised", 1.0)
    assert (opened[:, jaw] > closed[:, jaw]).all()              # the emotion's own jaw drop
