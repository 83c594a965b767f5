"""Specifications of TalkingHead: the stages joined for one frame (small avatar, tiny images)."""

import numpy as np
import pytest
import torch
from torch import nn

from gemo_ros.avatar.residual import EmotionResidual, ResidualConfig
from gemo_ros.face.arkit import ARKIT_INDEX
from gemo_ros.pipeline import RenderSettings, TalkingHead, feature_window

FEAT = 8


class FakeA2E(nn.Module):
    """Loudness -> jawOpen; emotion adds a smile; enough of the a2e interface for the pipeline."""

    sample_rate = 16000
    fps = 25.0
    feature_dim = FEAT

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        hop = self.sample_rate // int(self.fps)
        t = max(1, wave.shape[1] // hop)
        frames = wave[:, :t * hop].reshape(wave.shape[0], t, hop)
        rms = frames.pow(2).mean(-1, keepdim=True).sqrt()
        return torch.cat([rms * (k + 1) for k in range(FEAT)], -1)

    def decode(self, feats, emotion, intensity):
        b, t, _ = feats.shape
        out = torch.zeros(b, t, 52)
        out[..., ARKIT_INDEX["jawOpen"]] = (feats[..., 0] * 4).clamp(0, 1)
        smile = (emotion != 0).float() * intensity
        out[..., ARKIT_INDEX["mouthSmileLeft"]] = smile[:, None]
        out[..., ARKIT_INDEX["mouthSmileRight"]] = smile[:, None]
        return out


@pytest.fixture(scope="module")
def avatar():
    from gemo_ros.avatar.procedural import build_default_avatar

    return build_default_avatar(num_gaussians=1500, seed=0)


def make_head(avatar, a2e=None, residual=True, size=40):
    res = None
    if residual:
        torch.manual_seed(0)
        res = EmotionResidual(ResidualConfig(attribute_dims=dict(avatar.attribute_dims),
                                             feature_dim=FEAT, dim=32, num_clusters=48,
                                             window=5))
    settings = RenderSettings(width=size, height=size + 8, backend="torch")
    return TalkingHead(avatar, a2e, res, settings=settings)


def test_still_has_the_requested_image_size(avatar):
    head = make_head(avatar)
    frame = head.still("happy", 0.7)
    assert frame.image.shape == (48, 40, 3)
    assert frame.alpha.shape == (48, 40, 1)
    assert frame.to_uint8().dtype == np.uint8
    assert frame.image.min() >= 0 and frame.image.max() <= 1


def test_neutral_still_equals_the_plain_avatar_render(avatar):
    head = make_head(avatar)
    with_res = head.still("neutral", 1.0)
    plain = make_head(avatar, residual=False).still("neutral", 0.0)
    assert torch.equal(with_res.image, plain.image)
    for value in with_res.offsets.values():
        assert torch.equal(value, torch.zeros_like(value))


def test_intensity_zero_gives_exactly_the_neutral_head(avatar):
    head = make_head(avatar)
    a = head.still("angry", 0.0)
    b = head.still("neutral", 0.0)
    assert torch.equal(a.image, b.image)


def test_emotion_changes_the_image_and_offsets_are_nonzero(avatar):
    head = make_head(avatar)
    a = head.still("neutral", 0.0)
    b = head.still("happy", 1.0)
    assert not torch.equal(a.image, b.image)
    assert sum(float(v.abs().sum()) for v in b.offsets.values()) > 0


def test_audio_drives_the_mouth_through_the_a2e_model(avatar):
    head = make_head(avatar, a2e=FakeA2E())
    rate = 16000
    t = np.arange(rate) / rate
    loud = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    silent = head.still("neutral", 0.0, audio=np.zeros_like(loud), sample_rate=rate, time_s=0.5)
    spoken = head.still("neutral", 0.0, audio=loud, sample_rate=rate, time_s=0.5)
    jaw = ARKIT_INDEX["jawOpen"]
    assert float(spoken.psi_n[jaw]) > 0.5 > float(silent.psi_n[jaw])
    assert not torch.equal(silent.image, spoken.image)


def test_silence_is_used_when_no_audio_is_given(avatar):
    head = make_head(avatar, a2e=FakeA2E())
    frame = head.still("sad", 0.5)
    assert float(frame.psi_n[ARKIT_INDEX["jawOpen"]]) == 0.0
    assert float(frame.psi_e[ARKIT_INDEX["mouthSmileLeft"]]) == pytest.approx(0.5)


def test_time_past_the_end_of_the_audio_is_rejected(avatar):
    head = make_head(avatar, a2e=FakeA2E())
    with pytest.raises(ValueError, match="past the end"):
        head.still("happy", 0.5, audio=np.zeros(1600, np.float32), sample_rate=16000,
                   time_s=2.0)


def test_without_residual_the_emotional_coefficients_drive_the_avatar(avatar):
    head = make_head(avatar, residual=False)
    frame = head.still("happy", 1.0)
    assert frame.offsets is None
    assert float(frame.psi_e.sum()) > 0
    assert not torch.equal(frame.image, head.still("neutral", 0.0).image)


def test_batched_gaussians_match_single_frames(avatar):
    head = make_head(avatar)
    psi = torch.rand(3, 52) * 0.3
    psi_e = (psi + 0.2).clamp(0, 1)
    feats = torch.randn(3, 5, FEAT)
    emotion = torch.tensor([1, 4, 6])
    intensity = torch.tensor([0.3, 0.6, 1.0])
    with torch.no_grad():
        g, _ = head.gaussians(psi, psi_e, feats, emotion, intensity)
        g1, _ = head.gaussians(psi[1:2], psi_e[1:2], feats[1:2], emotion[1:2], intensity[1:2])
    assert torch.allclose(g.means[1], g1.means[0], atol=1e-6)
    assert torch.allclose(g.colors[1], g1.colors[0], atol=1e-6)


def test_the_blendshape_motion_of_the_offsets_poses_the_head_at_psi_e(avatar, monkeypatch):
    # Offsets that are exactly the blendshape motion must give avatar(psi_e), frames included
    # (the neutral frames left dark dots at sheared mouth corners); a neutral item of the
    # same batch stays exactly avatar(psi_n) although its psi_e differs.
    head = make_head(avatar)
    res = head.residual

    def motion_only(disp, canonical, audio, emotion, intensity, binding=None, **_):
        offs = {k: disp.new_zeros(disp.shape[0], disp.shape[1], w)
                for k, w in res.config.attribute_dims.items()}
        # like the trained module: exactly zero for a neutral item
        offs["xyz"] = res.follow_offsets(disp, binding) * (emotion != 0)[:, None, None]
        return offs

    monkeypatch.setattr(res, "forward", motion_only)
    torch.manual_seed(1)
    psi_n = torch.rand(2, 52) * 0.3
    psi_e = (psi_n + torch.rand(2, 52) * 0.6).clamp(0, 1)
    with torch.no_grad():
        g, _ = head.gaussians(psi_n, psi_e, torch.zeros(2, 5, FEAT), torch.tensor([2, 0]),
                              torch.tensor([1.0, 1.0]))
        want_e, want_n = head.avatar(psi_e[:1]), head.avatar(psi_n[1:])
    assert torch.allclose(g.means[0], want_e.means[0], atol=1e-6)
    assert torch.allclose(g.quats[0], want_e.quats[0], atol=1e-6)
    assert torch.allclose(g.scales[0], want_e.scales[0], atol=1e-7)
    assert torch.equal(g.means[1], want_n.means[0])
    assert torch.equal(g.quats[1], want_n.quats[0])


def test_residual_attribute_mismatch_is_reported(avatar):
    res = EmotionResidual(ResidualConfig(attribute_dims={"xyz": 3}, feature_dim=FEAT))
    with pytest.raises(ValueError, match="attributes"):
        TalkingHead(avatar, None, res)


def test_feature_window_repeats_edge_frames():
    feats = torch.arange(5.0)[:, None].expand(5, 2)
    win = feature_window(feats, 0, 5)
    assert win[:, 0].tolist() == [0, 0, 0, 1, 2]
    batch = feature_window(feats, torch.tensor([4, 2]), 3)
    assert batch[0, :, 0].tolist() == [3, 4, 4]
    assert batch[1, :, 0].tolist() == [1, 2, 3]


def test_displacement_is_the_mesh_difference_at_the_bindings(avatar):
    head = make_head(avatar)
    psi_n = torch.rand(2, 52) * 0.3
    psi_e = (psi_n + torch.rand(2, 52) * 0.4).clamp(0, 1)
    with torch.no_grad():
        got = head.displacement(psi_n, psi_e)
        full = head.face_model.pose(psi_e) - head.face_model.pose(psi_n)
        want = avatar.interpolate_at_gaussians(full)
    assert got.shape == (2, avatar.num_gaussians, 3)
    assert torch.allclose(got, want, atol=1e-6)


def test_displacement_skips_only_vertices_no_expression_moves(avatar):
    head = make_head(avatar)
    ids = avatar._used_vertices
    pos, moving_ids = head._moving_vertices(ids)
    assert 0 < pos.numel() < ids.numel()                  # the cheap path is taken
    assert torch.equal(moving_ids, ids[pos])
    still = torch.ones(ids.numel(), dtype=torch.bool)
    still[pos] = False
    with torch.no_grad():
        for psi in (torch.ones(1, 52), torch.rand(3, 52)):
            moved = head.face_model.pose(psi) - head.face_model.pose(torch.zeros_like(psi))
            assert float(moved[:, ids[still]].abs().max()) == 0.0
