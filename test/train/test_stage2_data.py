"""Specifications of the Stage 2 data: the synthetic teacher and the on-disk dataset format."""

import json

import numpy as np
import pytest
import torch

from gemo_ros.emotions import EMOTIONS, emotion_index
from gemo_ros.pipeline import RenderSettings, TalkingHead
from gemo_ros.train.stage2_data import (SpeechClip, DatasetError, EmotionTeacher, Stage2Frames,
                                        SyntheticSpec, generate_synthetic,
                                        load_stage2_dataset, write_stage2_dataset)


@pytest.fixture(scope="module")
def avatar():
    from gemo_ros.avatar.procedural import build_default_avatar

    avatar = build_default_avatar(num_gaussians=1500, seed=0)
    for param in avatar.parameters():
        param.requires_grad_(False)
    return avatar


@pytest.fixture(scope="module")
def head(avatar):
    return TalkingHead(avatar, None, None, settings=RenderSettings(backend="torch"))


def tone(seconds: float, rate: int = 16000) -> SpeechClip:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return SpeechClip(f"tone{seconds}", wave.astype(np.float32), rate)


@pytest.fixture(scope="module")
def frames(head):
    spec = SyntheticSpec(size=24, intensities_per_emotion=1, frames_per_intensity=1,
                         test_frames_per_level=1, test_levels=(1.0,), seed=3)
    return generate_synthetic(head, [tone(0.6)], [tone(0.4)], spec, window=3, feature_dim=6,
                              progress=False)


def test_teacher_changes_nothing_at_intensity_zero(avatar):
    teacher = EmotionTeacher(avatar)
    g = avatar(torch.zeros(2, 52))
    out = teacher.apply(g, torch.tensor([1, 6]), torch.zeros(2))
    assert torch.equal(out.means, g.means)
    assert torch.equal(out.colors, g.colors.clamp(0, 1))


def test_teacher_neutral_look_is_empty(avatar):
    teacher = EmotionTeacher(avatar)
    g = avatar(torch.zeros(1, 52))
    out = teacher.apply(g, torch.tensor([0]), torch.ones(1))
    assert torch.equal(out.means, g.means)
    assert torch.equal(out.colors, g.colors)


@pytest.mark.parametrize("name", [e for e in EMOTIONS if e != "neutral"])
def test_every_emotion_changes_appearance_and_geometry(avatar, name):
    teacher = EmotionTeacher(avatar)
    g = avatar(torch.zeros(1, 52))
    out = teacher.apply(g, torch.tensor([emotion_index(name)]), torch.ones(1))
    assert float((out.colors - g.colors).abs().max()) > 0.02
    assert float((out.means - g.means).norm(dim=-1).max()) > 0.0005


def test_teacher_effects_grow_linearly_with_intensity(avatar):
    teacher = EmotionTeacher(avatar)
    g = avatar(torch.zeros(2, 52))
    out = teacher.apply(g, torch.tensor([6, 6]), torch.tensor([0.5, 1.0]))
    move = (out.means - g.means).norm(dim=-1)
    assert torch.allclose(move[1], 2 * move[0], atol=1e-7)


def test_angry_reddens_the_face_and_happy_flushes_the_cheeks(avatar):
    teacher = EmotionTeacher(avatar)
    g = avatar(torch.zeros(2, 52))
    out = teacher.apply(g, torch.tensor([emotion_index("angry"), emotion_index("happy")]),
                        torch.ones(2))
    red = out.colors[..., 0] - out.colors[..., 1]
    base = g.colors[..., 0] - g.colors[..., 1]
    assert float((red - base).max()) > 0.05
    cheek = torch.tensor([0.045, -0.03, 0.07])
    near = (avatar.canonical_means() - cheek).norm(dim=-1) < 0.015
    if near.any():
        assert float((red[1] - base[1])[near].mean()) > 0.02


def test_synthetic_frames_have_consistent_shapes(frames):
    f = len(frames)
    assert frames.feats.shape == (f, 3, 6)
    assert frames.image.shape == (f, 24, 24, 3) and frames.image.dtype == torch.uint8
    assert frames.psi_n.shape == frames.psi_e.shape == (f, 52)
    assert frames.viewmat.shape == (f, 4, 4) and frames.K.shape == (f, 3, 3)
    assert bool(frames.test.any()) and bool((~frames.test).any())
    # Held-out frames come from the held-out clip only.
    assert set(frames.clip[frames.test].tolist()) == {1}
    assert set(frames.clip[~frames.test].tolist()) == {0}


def test_frames_cache_round_trip(frames, tmp_path):
    path = str(tmp_path / "frames.pt")
    frames.save(path)
    back = Stage2Frames.load(path)
    for name in ("feats", "image", "psi_e", "viewmat", "test"):
        assert torch.equal(getattr(frames, name), getattr(back, name))


def test_dataset_format_round_trip(head, frames, tmp_path):
    clips = [tone(0.6), tone(0.4)]
    root = str(tmp_path / "ds")
    write_stage2_dataset(root, frames, clips, fps=25.0)
    back = load_stage2_dataset(root, head, window=3, feature_dim=6)
    assert len(back) == len(frames)
    assert torch.equal(back.image, frames.image)
    assert torch.equal(back.emotion, frames.emotion)
    assert torch.equal(back.test, frames.test)
    assert torch.allclose(back.psi_e, frames.psi_e, atol=1e-5)
    assert torch.allclose(back.viewmat, frames.viewmat, atol=1e-6)
    only_test = load_stage2_dataset(root, head, window=3, feature_dim=6, splits=("test",))
    assert len(only_test) == int(frames.test.sum())


def test_dataset_accepts_mead_levels_and_names_bad_fields(head, frames, tmp_path):
    root = tmp_path / "ds"
    write_stage2_dataset(str(root), frames, [tone(0.6), tone(0.4)], fps=25.0)
    manifest = json.loads((root / "stage2.json").read_text())
    entry = manifest["frames"][0]
    entry.pop("intensity")
    entry["emotion"] = "anger"
    entry["level"] = 2
    (root / "stage2.json").write_text(json.dumps(manifest))
    back = load_stage2_dataset(str(root), head, window=3, feature_dim=6)
    assert int(back.emotion[0]) == emotion_index("angry")
    assert float(back.intensity[0]) == pytest.approx(2 / 3)
    entry["emotion"] = "grumpy"
    (root / "stage2.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"frames\[0\].*grumpy"):
        load_stage2_dataset(str(root), head, window=3, feature_dim=6)
    entry["emotion"] = "sad"
    entry["viewmat"] = [[1, 0], [0, 1]]
    (root / "stage2.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="viewmat"):
        load_stage2_dataset(str(root), head, window=3, feature_dim=6)


def test_missing_manifest_is_reported(head, tmp_path):
    with pytest.raises(DatasetError, match="stage2.json"):
        load_stage2_dataset(str(tmp_path), head)
