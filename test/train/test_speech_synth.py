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


def test_arpabet_phones_map_to_espeak_mnemonics():
    assert speech_synth.arpabet_to_espeak("AA1") == "A:"
    assert speech_synth.arpabet_to_espeak("m") == "m"
    assert speech_synth.arpabet_to_espeak("pau") == "_"
    assert speech_synth.arpabet_to_espeak("??") == "_"


def test_festival_gives_audio_and_its_own_phone_times():
    if not speech_synth.festival_available():
        pytest.skip("festival and its voices are not installed (training/eval data only)")
    voice = speech_synth.festival_voices()[0]
    utt, = speech_synth.festival_synth(["Bob and mom."], voice)
    duration = utt.audio.size / utt.sample_rate
    names = [p.name for p in utt.phones]
    assert "b" in names and "m" in names, names
    assert all(0.0 <= p.start < p.end <= duration + 0.05 for p in utt.phones)
    with pytest.raises(ValueError):
        speech_synth.festival_synth(["x"], "no_such_voice")


def test_flite_speech_aligns_with_pocketsphinx():
    if not speech_synth.flite_available():
        pytest.skip("flite is not installed (training/eval data only)")
    from scipy.signal import resample_poly

    audio, rate = speech_synth.flite_synth("bring my map", "slt", 1.0)
    assert audio.ndim == 1 and audio.size > 0.3 * rate
    x = audio if rate == 16000 else resample_poly(audio, 16000, rate).astype(np.float32)
    phones = speech_synth.align(x, "bring my map")
    names = [n for n, _, _ in phones]
    assert names.count("m") == 2 and "b" in names, names
    assert all(s < e for _, s, e in phones)
    with pytest.raises(RuntimeError):
        speech_synth.align(x, "qqqzzx")
