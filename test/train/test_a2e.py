"""The audio-to-expression training data (gemo_ros.train.a2e): voices, shards, targets."""

import pickle

import numpy as np
import pytest

from gemo_ros.face.arkit import ARKIT_INDEX
from gemo_ros.train import a2e


def _clip(seconds: float = 0.5) -> a2e.PhoneClip:
    n = int(seconds * a2e.DATA_RATE)
    audio = (0.3 * 32767 * np.sin(np.arange(n) * 2 * np.pi * 200 / a2e.DATA_RATE)).astype(np.int16)
    return a2e.PhoneClip(audio=audio, phones=[("m", 0.1, 0.2), ("a", 0.2, 0.4)], voice="en-us",
                         text="ma")


def test_held_out_voices_are_never_trained_on():
    langs, train, held = a2e.voice_split()
    assert held and train and not set(held) & set(train)
    assert not set(langs) & set(a2e.HELDOUT_LANGUAGES)
    for voice in a2e.eval_voices():
        assert voice.split("+")[1] in held


def test_targets_have_one_frame_per_hop_and_open_the_jaw_on_the_vowel():
    clip = _clip()
    targets = a2e.clip_targets(clip)
    assert targets.shape == (-(-len(clip.audio) // 320), 52)
    jaw = targets[:, ARKIT_INDEX["jawOpen"]]
    assert jaw[15] > 0.2 > jaw[2]                         # 0.3 s (/a/) vs 0.04 s (rest)


def test_lip_and_jaw_channels_weigh_most_in_the_loss():
    w = a2e.channel_weights()
    assert w[ARKIT_INDEX["jawOpen"]] == w.max() == 5.0
    assert w[ARKIT_INDEX["mouthClose"]] == 4.0
    assert w[ARKIT_INDEX["browInnerUp"]] == 1.0


def test_augmentation_keeps_the_length_and_range():
    x = _clip().audio.astype(np.float32) / 32768.0
    for seed in range(4):
        y = a2e.augment(x, np.random.default_rng(seed))
        assert y.shape == x.shape and y.dtype == np.float32
        assert np.abs(y).max() <= 1.0


def test_shards_written_before_the_rename_still_load(tmp_path, monkeypatch):
    class Clip:  # what the shards named PhoneClip before the rename
        def __init__(self, audio, phones, voice, text):
            self.audio, self.phones, self.voice, self.text = audio, phones, voice, text

    Clip.__module__, Clip.__qualname__ = a2e.__name__, "Clip"
    monkeypatch.setattr(a2e, "Clip", Clip, raising=False)
    old = tmp_path / "shard_0000.pkl"
    old.write_bytes(pickle.dumps([Clip(np.zeros(4, np.int16), [], "en", "x")]))
    monkeypatch.delattr(a2e, "Clip")
    new = tmp_path / "shard_0001.pkl"
    new.write_bytes(pickle.dumps([_clip()]))
    clips = a2e.load_clips([str(old), str(new)])
    assert [type(c) for c in clips] == [a2e.PhoneClip, a2e.PhoneClip]
    assert clips[1].phones == _clip().phones


def test_the_held_out_family_is_never_trained_on():
    voices = a2e._voices_for_training()
    families = {a2e.family_of(v) for v in voices}
    assert "espeak" in families
    assert not families & set(a2e.HELDOUT_FAMILIES)
    assert a2e.family_of("flite:awb") == "flite" and a2e.family_of("en-us+f3") == "espeak"
    assert not any(v in ("flite:kal", "flite:kal16") for v in voices)


def test_codec_round_trips_keep_length_and_timing():
    rng = np.random.default_rng(0)
    x = np.zeros(16000, np.float32)
    x[6000:6800] = 0.5 * np.sin(np.arange(800) * 2 * np.pi * 300 / 16000)   # a tone burst
    x += 0.001 * rng.standard_normal(16000).astype(np.float32)
    for codec, kbps in (("mp3", 32), ("opus", 16)):
        try:
            y = a2e.codec_roundtrip(x, codec, kbps)
        except RuntimeError as exc:
            pytest.skip(f"ffmpeg cannot encode {codec} here: {exc}")
        assert y.shape == x.shape and y.dtype == np.float32
        env_x = np.abs(x) > 0.1
        env_y = np.abs(y) > 0.1
        onset_x, onset_y = np.argmax(env_x), np.argmax(env_y)
        assert abs(int(onset_y) - int(onset_x)) < 80          # < 5 ms: phone times stay aligned
    with pytest.raises(ValueError):
        a2e.codec_roundtrip(x, "wma")


def test_lead_moves_the_targets_earlier_by_that_much():
    clip = _clip(1.0)
    base = a2e.clip_targets(clip)[:, ARKIT_INDEX["jawOpen"]]
    early = a2e.clip_targets(clip, lead_s=0.04)[:, ARKIT_INDEX["jawOpen"]]
    assert early.shape == base.shape
    assert int(np.argmax(early)) == int(np.argmax(base)) - 2      # 2 frames = 40 ms earlier
    assert np.allclose(early[5:40], base[7:42], atol=0.02)   # (the rest's plateau differs a bit)


def test_lag_by_family_reports_a_median_per_family(tiny):
    clips = [_clip(0.8), _clip(0.8)]
    clips[1].voice = "flite:awb"
    lags = a2e.lag_by_family(tiny, clips)
    assert set(lags) == {"espeak", "flite"}
    assert all(abs(v) <= 200.0 for v in lags.values())


def test_deepened_encoder_starts_with_the_same_output_and_more_layers(tiny):
    import torch

    deeper = a2e.deepen_encoder(tiny, 2).eval()
    assert len(deeper.encoder.encoder.layers) == len(tiny.encoder.encoder.layers) + 2
    assert deeper.window_frames == tiny.window_frames          # same windows: same lookahead
    x = 0.1 * torch.randn(1, 9000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = tiny.decode(tiny.encode(x), torch.tensor([2]), torch.tensor([0.6]))
        out = deeper.decode(deeper.encode(x), torch.tensor([2]), torch.tensor([0.6]))
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    new = deeper.encoder.encoder.layers[-1].feed_forward.output_dense.weight
    assert new.requires_grad and float(new.abs().sum()) == 0.0  # trainable, identity at start
    with pytest.raises(ValueError):
        a2e.deepen_encoder(tiny, 0)


def test_aperture_l2_adds_a_squared_error_on_the_unclipped_aperture(tiny):
    import torch

    from gemo_ros.train.visemes import lip_aperture

    torch.manual_seed(0)
    b, t = 2, 30
    feats = torch.randn(b, t, tiny.feature_dim)
    neutral = torch.rand(b, t, 52) * 0.3
    neutral[:, 10:14, ARKIT_INDEX["mouthClose"]] = 0.3      # a closure: aperture below 0
    emos = torch.tensor([[1, 2], [3, 4]])
    inten = torch.full((b, 2), 0.5)
    emo = neutral[:, None].repeat(1, 2, 1, 1)
    mask = torch.ones(b, t)
    w = torch.from_numpy(a2e.channel_weights())
    plain, parts = a2e.decoder_loss(tiny, feats, neutral, emo, emos, inten, mask, w)
    with_l2, _ = a2e.decoder_loss(tiny, feats, neutral, emo, emos, inten, mask, w,
                                  aperture_l2=3.0)
    base, _ = tiny.decode_parts(feats, torch.zeros(b, dtype=torch.long))
    mse = float(((lip_aperture(base) - lip_aperture(neutral)) ** 2).mean())
    assert parts["aperture_mse"] == pytest.approx(mse, rel=1e-5)
    assert float(with_l2 - plain) == pytest.approx(3.0 * mse, rel=1e-4)


def test_phone_masks_mark_vowel_middles_and_bilabial_spans():
    phones = [("m", 0.1, 0.2), ("a", 0.2, 0.41), ("t", 0.41, 0.46)]
    m = a2e.phone_masks(phones, 30)
    assert m.shape == (30, 2)
    # /a/ middle 0.305 s = frame 15.25: frames 15..16 +-1, the frames the evaluation tests.
    assert list(np.flatnonzero(m[:, 0])) == [14, 15, 16, 17]
    assert list(np.flatnonzero(m[:, 1])) == list(range(4, 12))  # /m/ 0.1-0.2 s, +-1 frame
    assert set(m[:, 1]) == {0.0, 1.0}
    early = a2e.phone_masks(phones, 30, lead_s=0.04)      # two frames earlier
    assert list(np.flatnonzero(early[:, 0])) == [12, 13, 14, 15]
    two = a2e.phone_masks([("p", 0.1, 0.14), ("a", 0.14, 0.3), ("b", 0.3, 0.34)], 30)
    assert two[6, 1] == 1.0 and two[15, 1] == 2.0        # bilabials are numbered


def test_vowel_open_and_bilabial_close_are_hinges_on_their_frames(tiny):
    import copy

    import torch

    from gemo_ros.train.visemes import lip_aperture

    tiny = copy.deepcopy(tiny)
    with torch.no_grad():  # a half-open jaw: both hinges have something to push on
        tiny.base_head[-1].bias[ARKIT_INDEX["jawOpen"]] = 0.0
    torch.manual_seed(1)
    b, t = 2, 20
    feats = torch.randn(b, t, tiny.feature_dim)
    neutral = torch.rand(b, t, 52) * 0.3
    emos = torch.tensor([[1, 2], [3, 4]])
    inten = torch.full((b, 2), 0.5)
    emo = neutral[:, None].repeat(1, 2, 1, 1)
    mask = torch.ones(b, t)
    pm = torch.zeros(b, t, 2)
    pm[:, 3:6, 0] = 1.0                                    # vowel middles
    pm[:, 10:12, 1] = 1.0                                  # two bilabials, one per clip
    pm[1, 15:18, 1] = 2.0                                  # and a second one in clip 1
    w = torch.from_numpy(a2e.channel_weights())
    plain, _ = a2e.decoder_loss(tiny, feats, neutral, emo, emos, inten, mask, w)
    loss, parts = a2e.decoder_loss(tiny, feats, neutral, emo, emos, inten, mask, w,
                                   phone_mask=pm, vowel_open=2.0, vowel_floor=0.5,
                                   bilabial_close=3.0)
    with torch.no_grad():
        base, _ = tiny.decode_parts(feats, torch.zeros(b, dtype=torch.long))
    ap = lip_aperture(base)
    vo = float(torch.relu(0.5 - ap[:, 3:6]).mean())
    lowest = [ap[0, 10:12].min(), ap[1, 10:12].min(), ap[1, 15:18].min()]
    bc = float(sum(torch.relu(v) for v in lowest)) / 3      # the lowest frame of each
    assert vo > 0 and bc > 0                               # the test can fail either way
    assert parts["vowel_open"] == pytest.approx(vo, rel=1e-5)
    assert parts["bilabial_close"] == pytest.approx(bc, rel=1e-5)
    assert float((loss - plain).detach()) == pytest.approx(2.0 * vo + 3.0 * bc, rel=1e-4)
    # A vowel already open wider than the floor costs nothing.
    _, low = a2e.decoder_loss(tiny, feats, neutral, emo, emos, inten, mask, w, phone_mask=pm,
                              vowel_open=2.0, vowel_floor=-5.0)
    assert low["vowel_open"] == 0.0
    with pytest.raises(ValueError):
        a2e.decoder_loss(tiny, feats, neutral, emo, emos, inten, mask, w, vowel_open=1.0)


def test_decoder_only_training_leaves_every_encoder_tensor_bit_identical(tiny):
    import copy

    import torch

    model = copy.deepcopy(tiny)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clips = [_clip(0.6), _clip(0.5)]
    targets = [a2e.clip_targets(c, model.fps, model.hop) for c in clips]
    parts = a2e.finetune_decoder(model, clips, targets, steps=3, lr=1e-2, seed=0, batch=2,
                                 vowel_open=5.0, bilabial_close=5.0)
    assert "vowel_open" in parts and "bilabial_close" in parts
    after = model.state_dict()
    decoder = ("base_head.", "emotion_embed.", "emo_in.", "emo_film.", "emo_out.")
    changed = [k for k in after if not torch.equal(after[k], before[k])]
    assert changed and all(k.startswith(decoder) for k in changed)
    assert any(k.startswith("mel_proj.") for k in after)    # the projection exists, unchanged
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again afterwards


def test_feature_cache_gives_the_same_decoder_without_encoding(tiny, tmp_path, monkeypatch):
    import copy

    import torch

    clips = [_clip(0.6), _clip(0.5)]
    targets = [a2e.clip_targets(c, tiny.fps, tiny.hop) for c in clips]
    cache = str(tmp_path / "feats.pt")
    kw = dict(steps=3, lr=1e-2, seed=0, batch=2, feature_cache=cache)
    first = copy.deepcopy(tiny)
    a2e.finetune_decoder(first, clips, targets, **kw)
    second = copy.deepcopy(tiny)

    def no_encoding(*args, **kwargs):
        raise AssertionError("encoded although the cache holds the features")

    monkeypatch.setattr(second, "encode", no_encoding)
    a2e.finetune_decoder(second, clips, targets, **kw)
    for (k, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), k
    # Other clips (or other encoder weights) do not match the cache: encoded again.
    monkeypatch.undo()
    calls = []
    third = copy.deepcopy(tiny)
    real_encode = third.encode
    monkeypatch.setattr(third, "encode", lambda *a, **k: calls.append(1) or real_encode(*a, **k))
    a2e.finetune_decoder(third, clips[:1], targets[:1], **kw)
    assert calls
