"""Audio-to-expression model: emotion/intensity structure, inputs, persistence."""

import os

import numpy as np
import pytest
import torch

from gemo_ros.audio import A2EConfig, AudioToExpression, StreamingA2E, load_a2e
from gemo_ros.audio.model import tiny_encoder_config
from gemo_ros.emotions import EMOTIONS
from gemo_ros.face.arkit import ARKIT_INDEX
from test.conftest import ROOT

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def feats(tiny: AudioToExpression) -> torch.Tensor:
    torch.manual_seed(1)
    with torch.no_grad():
        return tiny.encode(0.1 * torch.randn(2, 16000))


def test_interface_rates_and_shapes(tiny: AudioToExpression, feats: torch.Tensor) -> None:
    assert tiny.sample_rate == 16000 and tiny.fps == 50.0
    assert feats.shape == (2, 50, tiny.feature_dim)
    with torch.no_grad():
        out = tiny.decode(feats, torch.tensor([1, 2]), torch.tensor([0.5, 1.0]))
    assert out.shape == (2, 50, 52)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_neutral_or_zero_intensity_gives_exactly_the_neutral_output(
        tiny: AudioToExpression, feats: torch.Tensor) -> None:
    with torch.no_grad():
        neutral = tiny.decode(feats, torch.tensor([0, 0]), torch.tensor([1.0, 1.0]))
        for e in range(1, len(EMOTIONS)):
            zero = tiny.decode(feats, torch.tensor([e, e]), torch.tensor([0.0, 0.0]))
            assert torch.equal(zero, neutral)
        base, delta = tiny.decode_parts(feats, torch.tensor([0, 0]))
    assert torch.equal(base, neutral) and float(delta.abs().max()) == 0.0


def test_emotional_output_differs_from_neutral_only_by_the_emotion_term(
        tiny: AudioToExpression, feats: torch.Tensor) -> None:
    with torch.no_grad():
        base, delta = tiny.decode_parts(feats, torch.tensor([1, 1]))
        neutral = tiny.decode(feats, torch.tensor([0, 0]), torch.tensor([0.0, 0.0]))
        happy = tiny.decode(feats, torch.tensor([1, 1]), torch.tensor([0.6, 0.6]))
    assert float(delta.abs().max()) > 0.01
    torch.testing.assert_close(happy, (neutral + 0.6 * delta).clamp(0, 1))


def test_intensity_moves_every_coefficient_monotonically(
        tiny: AudioToExpression, feats: torch.Tensor) -> None:
    levels = torch.linspace(0, 1, 11)
    with torch.no_grad():
        outs = torch.stack([tiny.decode(feats, torch.tensor([6, 6]), torch.stack([i, i]))
                            for i in levels])
    steps = outs[1:] - outs[:-1]                       # [10, B, T, 52]
    sign = torch.sign(outs[-1] - outs[0])
    assert float((steps * sign).min()) >= -1e-6
    assert float((outs[-1] - outs[0]).abs().max()) > 0.05


def test_decode_rejects_bad_emotion_ids(tiny: AudioToExpression, feats: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="emotion ids"):
        tiny.decode(feats, torch.tensor([8, 0]), torch.tensor([1.0, 1.0]))


@pytest.mark.parametrize("bad, match", [
    (np.zeros(0, np.float32), "empty"),
    (np.array([0.0, np.nan, 0.1], np.float32), "NaN"),
    (np.array([0.0, np.inf], np.float32), "NaN or inf"),
    ([0, 40000, -5], "overflow"),
    (np.full(100, 300.0, np.float32), "unscaled"),
    (np.zeros((2, 100, 1), np.float32), "shape"),
    (np.zeros((2, 1000), np.float32), r"\[C, S\]"),
])
def test_bad_audio_raises_clear_value_error(tiny: AudioToExpression, bad, match: str) -> None:
    stream = StreamingA2E(tiny)
    with pytest.raises(ValueError, match=match):
        stream.push(bad, 16000)


@pytest.mark.parametrize("rate", [0, -16000, 100, 10 ** 7, float("nan"), 16000.5, "fast"])
def test_bad_sample_rate_raises_clear_value_error(tiny: AudioToExpression, rate) -> None:
    with pytest.raises(ValueError, match="sample rate"):
        StreamingA2E(tiny).push(np.zeros(160, np.float32), rate)


def test_bad_queries_raise_clear_value_error(tiny: AudioToExpression) -> None:
    stream = StreamingA2E(tiny)
    stream.push(np.zeros(1600, np.float32), 16000)
    with pytest.raises(ValueError, match="intensity"):
        stream.coefficients(0.05, "happy", 1.5)
    with pytest.raises(ValueError, match="unknown emotion"):
        stream.coefficients(0.05, "bored", 0.5)
    with pytest.raises(ValueError, match="time"):
        stream.coefficients(float("nan"))
    with pytest.raises(ValueError, match="lookahead"):
        StreamingA2E(tiny, lookahead_s=0.0)


def test_too_small_lookahead_is_raised_to_the_model_minimum(tiny: AudioToExpression) -> None:
    stream = StreamingA2E(tiny, lookahead_s=0.01)
    assert stream.block == 1
    assert stream.lookahead_s == pytest.approx(tiny.lookahead_s(1))


def test_save_and_load_roundtrip(tiny: AudioToExpression, feats: torch.Tensor,
                                 tmp_path) -> None:
    path = os.path.join(tmp_path, "a2e.safetensors")
    tiny.save(path, extra={"note": "test"})
    again = load_a2e(str(tmp_path))
    with torch.no_grad():
        torch.testing.assert_close(again.decode(feats, torch.tensor([3, 4]),
                                                torch.tensor([0.3, 0.9])),
                                   tiny.decode(feats, torch.tensor([3, 4]),
                                               torch.tensor([0.3, 0.9])))


def test_load_rejects_missing_and_foreign_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        load_a2e(os.path.join(tmp_path, "nope.safetensors"))
    from safetensors.torch import save_file
    path = os.path.join(tmp_path, "other.safetensors")
    save_file({"x": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not an a2e checkpoint"):
        load_a2e(path)


@pytest.mark.parametrize("model_type", ["hubert", "wavlm"])
def test_other_transformers_encoders_build_and_stream_exactly(model_type: str) -> None:
    cfg = tiny_encoder_config()
    cfg["model_type"] = model_type
    if model_type == "wavlm":
        cfg["num_buckets"] = 16
        cfg["max_bucket_distance"] = 32
    torch.manual_seed(0)
    model = AudioToExpression(A2EConfig(encoder=cfg, decoder_hidden=16, emotion_dim=4)).eval()
    wave = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    stream = StreamingA2E(model, 0.2)
    for i in range(0, len(wave), 800):
        stream.push(wave[i:i + 800], 16000)
    with torch.no_grad():
        ref = model.encode(torch.from_numpy(wave)[None], block=stream.block)[0].numpy()
    np.testing.assert_allclose(stream.frame_features(np.arange(len(ref))), ref, atol=1e-4)


# ---------------------------------------------------------------- shipped weights
SHIPPED = ROOT / "gemo_ros" / "assets" / "a2e_default.safetensors"
needs_weights = pytest.mark.skipif(not os.path.exists(SHIPPED), reason="no shipped weights")


@pytest.fixture(scope="module")
def shipped() -> AudioToExpression:
    return load_a2e("default")


@needs_weights
def test_silence_gives_a_closed_relaxed_mouth(shipped: AudioToExpression) -> None:
    stream = StreamingA2E(shipped, 0.2)
    stream.push(np.zeros(16000, np.int16), 16000)
    c = stream.coefficients_at(np.linspace(0.1, 0.8, 8), "neutral", 0.0)
    assert float(c[:, ARKIT_INDEX["jawOpen"]].max()) < 0.06
    assert float(c[:, ARKIT_INDEX["mouthFunnel"]].max()) < 0.1
    assert float(c.max()) < 0.15


@needs_weights
def test_shipped_model_opens_the_jaw_on_speech_and_smiles_when_happy(
        shipped: AudioToExpression) -> None:
    import soundfile as sf

    from gemo_ros.audio import infer_utterance

    wav = os.path.join(os.path.dirname(SHIPPED), "demo_speech.wav")
    samples, rate = sf.read(wav, dtype="int16")
    _, neutral = infer_utterance(shipped, samples, rate, "neutral", 1.0)
    _, happy = infer_utterance(shipped, samples, rate, "happy", 1.0)
    jaw = neutral[:, ARKIT_INDEX["jawOpen"]]
    assert float(jaw.max()) > 0.2 and float(np.percentile(jaw, 10)) < 0.05
    smile = ARKIT_INDEX["mouthSmileLeft"]
    assert float(happy[:, smile].mean()) > float(neutral[:, smile].mean()) + 0.3


def test_pretrained_transformers_checkpoint_on_disk_is_the_encoder(tmp_path) -> None:
    import transformers

    cfg = dict(tiny_encoder_config())
    model_type = cfg.pop("model_type")
    config = transformers.AutoConfig.for_model(model_type, **cfg)
    hf = transformers.AutoModel.from_config(config)
    hf.save_pretrained(str(tmp_path))
    model = AudioToExpression(A2EConfig(encoder_path=str(tmp_path), decoder_hidden=16,
                                        emotion_dim=4)).eval()
    torch.testing.assert_close(model.encoder.feature_projection.projection.weight,
                               hf.feature_projection.projection.weight)
    path = os.path.join(tmp_path, "a2e.safetensors")
    model.save(path)                      # the file carries the architecture, not the path
    again = load_a2e(path)
    wave = 0.1 * torch.randn(1, 8000)
    with torch.no_grad():
        torch.testing.assert_close(again.encode(wave), model.encode(wave))
