"""Speech with phone timings from libespeak-ng (gemo_ros.train.speech_synth)."""

import numpy as np
import pytest

from gemo_ros.train import speech_synth


def _espeak_or_skip() -> int:
    try:
        return speech_synth.sample_rate()
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"libespeak-ng not usable here: {exc}")


def test_random_sentences_are_reproducible_and_sized():
    a = speech_synth.random_sentence(np.random.default_rng(3), 3, 5)
    assert a == speech_synth.random_sentence(np.random.default_rng(3), 3, 5)
    assert 3 <= len(a.split()) <= 5


def test_a_short_sentence_gives_audio_and_ordered_phones_inside_it():
    rate = _espeak_or_skip()
    utt = speech_synth.synthesize("mama papa", voice="en-us")
    assert utt.sample_rate == rate and utt.audio.ndim == 1 and utt.audio.size > 0.3 * rate
    duration = utt.audio.size / rate
    names = [p.name for p in utt.phones]
    assert any(n.lstrip("',") in ("m", "p") for n in names), names
    starts = [p.start for p in utt.phones]
    assert starts == sorted(starts)
    assert all(0.0 <= p.start <= p.end <= duration + 1e-6 for p in utt.phones)
