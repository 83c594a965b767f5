"""Phone timelines to speech coefficient curves (gemo_ros.train.visemes)."""

import numpy as np

from gemo_ros.face.arkit import ARKIT_INDEX, NUM_ARKIT
from gemo_ros.train.visemes import (SPEECH_CHANNELS, closure_frames, normalise_phone,
                                    phone_class, speech_curves)

FPS = 50.0
#: "pa ma": silence, /p/, /a/, /m/, /a/, silence (espeak names, seconds).
PHONES = [("_", 0.0, 0.2), ("p", 0.2, 0.3), ("'a", 0.3, 0.5), ("m", 0.5, 0.6),
          ("a", 0.6, 0.8), ("_", 0.8, 1.2)]


def test_phones_are_normalised_and_classed():
    assert normalise_phone("'a") == "a"
    assert phone_class("p") == phone_class("m") == "bilabial"
    assert phone_class("'a") == "vowel"
    assert phone_class("_") == phone_class("") == "pause"


def test_vowels_open_the_jaw_and_bilabials_close_the_lips():
    curves = speech_curves(PHONES, 60, fps=FPS)
    assert curves.shape == (60, NUM_ARKIT) and curves.dtype == np.float32
    jaw, close = curves[:, ARKIT_INDEX["jawOpen"]], curves[:, ARKIT_INDEX["mouthClose"]]
    aperture = jaw - close

    def at(t):
        return int(round(t * FPS))

    assert jaw[at(0.4)] > 0.2 and aperture[at(0.4)] > 0.2          # /a/ open
    assert aperture[at(0.55)] < 0.05                                # /m/ lips together
    assert aperture[at(0.55)] < 0.25 * aperture[at(0.4)]
    assert jaw[at(0.05)] < 0.05 and jaw[at(1.15)] < 0.05            # rest in the silences


def test_only_speech_channels_move_and_everything_stays_in_the_unit_interval():
    curves = speech_curves(PHONES, 60, fps=FPS)
    others = [i for i in range(NUM_ARKIT)
              if i not in {ARKIT_INDEX[n] for n in SPEECH_CHANNELS}]
    assert not curves[:, others].any()
    assert curves.min() >= 0.0 and curves.max() <= 1.0
    assert not speech_curves([], 10).any()


def test_closure_frames_are_the_middles_of_the_bilabials():
    assert closure_frames(PHONES, fps=FPS) == [("p", 12), ("m", 28)]


def test_lip_aperture_is_near_zero_on_bilabials_and_wide_on_open_vowels():
    from gemo_ros.train.visemes import lip_aperture

    curves = speech_curves(PHONES, 60, fps=FPS)
    ap = lip_aperture(curves)
    assert ap.shape == (60,)
    assert ap[int(0.55 * FPS)] < 0.05 and ap[int(0.25 * FPS)] < 0.05        # /m/, /p/
    assert ap[int(0.4 * FPS)] > 0.4 and ap[int(0.7 * FPS)] > 0.4            # /a/: wide open
    c = np.zeros((2, NUM_ARKIT), np.float32)
    c[1, ARKIT_INDEX["jawOpen"]] = 0.4
    c[1, ARKIT_INDEX["mouthPressLeft"]] = c[1, ARKIT_INDEX["mouthPressRight"]] = 0.2
    assert np.allclose(lip_aperture(c), [0.0, 0.4 - 0.1])
