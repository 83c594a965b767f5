"""Audio checks, PCM conversion and resampling (gemo_ros.audio.signal)."""

import numpy as np
import pytest

from gemo_ros.audio.signal import StreamResampler, check_rate, resample, to_float_mono


@pytest.mark.parametrize("rate", [0, 3999, 192001, 16000.5, float("nan"), "fast", None])
def test_unsupported_rates_are_value_errors(rate):
    with pytest.raises(ValueError, match="sample rate"):
        check_rate(rate)


def test_supported_rates_come_back_as_int():
    assert check_rate(16000.0) == 16000 and isinstance(check_rate("44100"), int)


def test_pcm_formats_become_float_mono_in_unit_range():
    np.testing.assert_allclose(to_float_mono(np.array([-32768, 0, 16384], np.int16)),
                               [-1.0, 0.0, 0.5])
    np.testing.assert_allclose(to_float_mono(np.array([0, 128, 255], np.uint8)),
                               [-1.0, 0.0, 127 / 128])
    stereo = np.array([[16384, 0], [0, -16384]], np.int16)
    np.testing.assert_allclose(to_float_mono(stereo), [0.25, -0.25])


@pytest.mark.parametrize("bad, match", [
    (np.zeros(0, np.float32), "empty"), (np.array([np.nan], np.float32), "NaN"),
    (np.array([1000.0], np.float32), "unscaled"), ([40000], "overflow"),
    (np.zeros((2, 100), np.float32), r"\[C, S\]")])
def test_bad_samples_are_value_errors_naming_the_problem(bad, match):
    with pytest.raises(ValueError, match=match):
        to_float_mono(bad)


@pytest.mark.parametrize("rate_in", [8000, 22050, 44100, 48000])
def test_chunked_resampling_equals_the_whole_signal_call(rate_in):
    x = np.random.default_rng(1).standard_normal(rate_in // 2).astype(np.float32)
    whole = resample(x, rate_in, 16000)
    assert len(whole) == -(-len(x) * 16000 // rate_in)
    stream = StreamResampler(rate_in, 16000)
    pieces = [stream.push(x[i:i + 777]) for i in range(0, len(x), 777)] + [stream.tail()]
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-5)
