"""Streaming audio-to-expression: chunked inference equals whole-utterance inference."""

import numpy as np
import pytest
import torch

from gemo_ros.audio import AudioToExpression
from gemo_ros.audio.signal import resample
from gemo_ros.audio.streaming import StreamingA2E

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _speechy(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t)
    x = env * (0.3 * np.sin(2 * np.pi * 180 * t) + 0.05 * rng.standard_normal(len(t)))
    return x.astype(np.float32)


def _whole(model: AudioToExpression, wave16k: np.ndarray, block: int) -> np.ndarray:
    with torch.no_grad():
        return model.encode(torch.from_numpy(wave16k)[None], block=block)[0].numpy()


@pytest.mark.parametrize("lookahead", [0.1, 0.2])
def test_chunked_features_match_whole_utterance(tiny: AudioToExpression,
                                                lookahead: float) -> None:
    wave = _speechy(1.5)
    ref = _whole(tiny, wave, StreamingA2E(tiny, lookahead).block)
    stream = StreamingA2E(tiny, lookahead)
    rng = np.random.default_rng(1)
    i = 0
    while i < len(wave):
        n = int(rng.integers(160, 6000))  # 10 ms .. 375 ms chunks
        stream.push(wave[i:i + n], 16000)
        i += n
        final = int(np.floor(stream.final_until * stream.fps + 1e-6)) + 1
        if final > 0:
            got = stream.frame_features(np.arange(final))
            np.testing.assert_allclose(got, ref[:final], atol=1e-4)
    got = stream.frame_features(np.arange(len(ref)))
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_chunked_coefficients_match_whole_utterance(tiny: AudioToExpression) -> None:
    wave = _speechy(1.2, seed=3)
    stream = StreamingA2E(tiny, 0.2)
    for i in range(0, len(wave), 640):  # 40 ms chunks
        stream.push(wave[i:i + 640], 16000)
    feats = torch.from_numpy(_whole(tiny, wave, stream.block))[None]
    with torch.no_grad():
        ref = tiny.decode(feats, torch.tensor([1]), torch.tensor([0.7]))[0].numpy()
    times = np.arange(len(ref)) / tiny.fps
    np.testing.assert_allclose(stream.coefficients_at(times, "happy", 0.7), ref, atol=1e-4)


def test_provisional_frames_equal_inference_on_audio_so_far(tiny: AudioToExpression) -> None:
    wave = _speechy(1.0, seed=4)
    stream = StreamingA2E(tiny, 0.2)
    stream.push(wave[:9000], 16000)
    ref = _whole(tiny, wave[:9000], stream.block)
    np.testing.assert_allclose(stream.frame_features(np.arange(len(ref))), ref, atol=1e-4)


def test_final_until_trails_received_audio_by_at_most_the_lookahead(
        tiny: AudioToExpression) -> None:
    stream = StreamingA2E(tiny, 0.2)
    stream.push(_speechy(1.0), 16000)
    assert stream.lookahead_s <= 0.2
    assert 1.0 - stream.lookahead_s - 1.0 / stream.fps <= stream.final_until <= 1.0


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_rates_match_whole_signal_resampling(tiny: AudioToExpression, rate: int) -> None:
    wave = resample(_speechy(1.0, seed=5), 16000, rate)
    stream = StreamingA2E(tiny, 0.2)
    step = rate // 25
    for i in range(0, len(wave), step):
        stream.push(wave[i:i + step], rate)
    ref = _whole(tiny, resample(wave, rate, 16000), stream.block)
    np.testing.assert_allclose(stream.frame_features(np.arange(len(ref))), ref, atol=1e-4)


def test_stereo_int16_is_averaged_to_mono(tiny: AudioToExpression) -> None:
    left = _speechy(0.8, seed=6)
    right = _speechy(0.8, seed=7)
    pcm = (np.stack([left, right], axis=1) * 20000).astype(np.int16)
    stream = StreamingA2E(tiny, 0.2)
    stream.push(pcm, 16000)
    mono = pcm.astype(np.float32).mean(axis=1) / 32768.0
    ref = _whole(tiny, mono, stream.block)
    np.testing.assert_allclose(stream.frame_features(np.arange(len(ref))), ref, atol=1e-4)


def test_reset_restarts_utterance_time(tiny: AudioToExpression) -> None:
    wave = _speechy(0.6, seed=8)
    stream = StreamingA2E(tiny, 0.2)
    stream.push(wave, 16000)
    first = stream.coefficients(0.3)
    stream.push(_speechy(0.5, seed=9), 16000)
    stream.reset()
    assert stream.duration == 0.0
    stream.push(wave, 16000)
    np.testing.assert_allclose(stream.coefficients(0.3), first, atol=1e-6)


def test_feature_window_is_centred_and_sized(tiny: AudioToExpression) -> None:
    stream = StreamingA2E(tiny, 0.2)
    stream.push(_speechy(1.0), 16000)
    win = stream.features(0.5, 8)
    assert win.shape == (8, tiny.feature_dim)
    np.testing.assert_allclose(win[4], stream.frame_features([25])[0])
    # before time 0: the silence feature
    np.testing.assert_allclose(stream.features(0.0, 8)[0], stream.frame_features([-4])[0])


def test_coefficient_pair_equals_two_single_queries(tiny: AudioToExpression) -> None:
    wave = np.random.default_rng(3).standard_normal(12000).astype(np.float32) * 0.3
    stream = StreamingA2E(tiny, 0.2)
    stream.push(wave[:9000], 16000)  # the last frames are provisional: the same rule applies
    for t in (0.0, 0.2, 0.2137, 0.41, 0.5555):
        for emotion, intensity in (("happy", 0.7), ("angry", 1.0), ("sad", 0.05)):
            psi_n, psi_e = stream.coefficient_pair(t, emotion, intensity)
            np.testing.assert_allclose(psi_n, stream.coefficients(t, 0, 0.0), atol=1e-6)
            np.testing.assert_allclose(psi_e, stream.coefficients(t, emotion, intensity),
                                       atol=1e-6)
            assert np.abs(psi_e - psi_n).max() > 1e-4  # the emotion shows


def test_tensor_queries_stay_on_the_device_and_equal_the_numpy_ones(
        tiny: AudioToExpression) -> None:
    from helpers.host_syncs import HostSyncRecorder

    wave = np.random.default_rng(5).standard_normal(12000).astype(np.float32) * 0.3
    stream = StreamingA2E(tiny, 0.2)
    stream.push(wave[:9000], 16000)
    stream.coefficient_pair_tensor(0.1, "happy", 0.5)  # the emotion's id tensor, once
    for t in (0.0, 0.2137, 0.5555):  # final and provisional frames
        with HostSyncRecorder() as rec:
            pair = stream.coefficient_pair_tensor(t, "happy", 0.7)
            feats = stream.features_tensor(t, 8)
        # nothing read back; a provisional block uploads its audio window (pinned on CUDA)
        assert all(e.kind == "upload" and "_upload" in e.where for e in rec.events), \
            rec.report()
        psi_n, psi_e = stream.coefficient_pair(t, "happy", 0.7)
        np.testing.assert_array_equal(pair.numpy(), np.stack([psi_n, psi_e]))
        np.testing.assert_array_equal(feats.numpy(), stream.features(t, 8))
    with pytest.raises(ValueError):
        stream.coefficient_pair_tensor(0.1, 99, 0.5)
