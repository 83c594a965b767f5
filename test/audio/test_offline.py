"""Whole-utterance inference (gemo_ros.audio.offline): any input rate, any output rate."""

import numpy as np
import pytest

from gemo_ros.audio.offline import infer_utterance

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _noise(rate: int, seconds: float = 1.0) -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal(int(rate * seconds))).astype(np.float32)


def test_frames_are_at_the_model_rate_for_any_input_rate(tiny):
    times, coeffs = infer_utterance(tiny, _noise(16000), 16000)
    assert coeffs.shape == (len(times), 52) and coeffs.dtype == np.float32
    assert len(times) == pytest.approx(tiny.fps, abs=1)
    np.testing.assert_allclose(np.diff(times), 1.0 / tiny.fps)
    times48, _ = infer_utterance(tiny, _noise(48000), 48000)
    assert len(times48) == len(times)


def test_other_output_rates_interpolate_the_model_frames(tiny):
    times, coeffs = infer_utterance(tiny, _noise(16000), 16000, "happy", 0.5)
    t30, c30 = infer_utterance(tiny, _noise(16000), 16000, "happy", 0.5, fps=30)
    np.testing.assert_allclose(np.diff(t30), 1 / 30)
    np.testing.assert_allclose(c30[:, 0], np.interp(t30, times, coeffs[:, 0]), atol=1e-6)
    with pytest.raises(ValueError, match="fps"):
        infer_utterance(tiny, _noise(16000), 16000, fps=-1)


def test_intensity_zero_is_the_neutral_face(tiny):
    _, neutral = infer_utterance(tiny, _noise(16000), 16000, "neutral")
    _, zero = infer_utterance(tiny, _noise(16000), 16000, "angry", 0.0)
    np.testing.assert_array_equal(neutral, zero)
