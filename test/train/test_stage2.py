"""Specification: `gemo train stage2` lowers the photometric loss and writes loadable weights."""

import argparse
import json

import numpy as np
import pytest
import torch

from gemo_ros.avatar.residual import EmotionResidual, ResidualConfig, load_residual
from gemo_ros.pipeline import RenderSettings, TalkingHead
from gemo_ros.train import stage2
from gemo_ros.train.stage2_data import SpeechClip, SyntheticSpec, generate_synthetic


def _small_head(num_gaussians: int, dim: int, clusters: int) -> TalkingHead:
    """The default procedural head, small, with a fresh residual and no a2e model."""
    from gemo_ros.avatar.procedural import build_default_avatar

    avatar = build_default_avatar(num_gaussians=num_gaussians, seed=0)
    config = ResidualConfig(attribute_dims=dict(avatar.attribute_dims), feature_dim=6, dim=dim,
                            num_clusters=clusters, window=3,
                            output_scale=stage2.default_output_scale())
    return TalkingHead(avatar, None, EmotionResidual(config),
                       settings=RenderSettings(backend="torch"))


@pytest.mark.slow
def test_training_reduces_the_photometric_error_and_saves_weights(tmp_path):
    torch.manual_seed(0)
    head = _small_head(1200, dim=32, clusters=64)
    rate = 16000
    t = np.arange(rate // 2) / rate
    clip = SpeechClip("tone", (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), rate)
    spec = SyntheticSpec(size=32, intensities_per_emotion=1, frames_per_intensity=2,
                         test_frames_per_level=1, test_levels=(1.0,), seed=1,
                         yaw_deg=(-10.0, 10.0), pitch_deg=(0.0, 0.0))
    frames = generate_synthetic(head, [clip], [clip], spec, window=3, feature_dim=6,
                                progress=False)
    train_set = frames.split(test=False)
    idx = torch.arange(len(train_set))

    def error() -> float:
        with torch.no_grad():
            batch = stage2.batch_of(train_set, idx)
            pred, _ = stage2.student_images(head, batch, True)
            return float(stage2.photometric(pred, batch["image"]))

    before = error()
    args = argparse.Namespace(lr=3e-3, steps=40, batch=4, reg=1e-3, seed=0, resume=False,
                              checkpoint_every=20, preview_every=0, time_budget=0.0,
                              no_progress=True)
    stats = stage2.train(head, frames, args, str(tmp_path))
    after = error()
    assert stats["steps"] == 40
    assert after < before * 0.9, (before, after)
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 40
    assert (tmp_path / "last.pt").is_file()
    from gemo_ros.train.eval_stage2 import evaluate, markdown_table

    metrics = evaluate(head, frames.split(test=True), progress=False)
    assert metrics["frames"] == int(frames.test.sum())
    overall = metrics["overall"]
    assert overall["residual"]["psnr"] > overall["neutral"]["psnr"]
    table = markdown_table(metrics)
    assert table.count("\n") == 2 + 1 + len(metrics["by_level"]) + len(metrics["by_emotion"])
    path = tmp_path / "res.safetensors"
    head.residual.save(path)
    assert load_residual(path).config == head.residual.config


def test_contact_sheet_has_a_teacher_row_above_the_levels(tmp_path):
    from gemo_ros.train.eval_stage2 import contact_sheet

    head = _small_head(800, dim=16, clusters=32)
    size = 24
    with_teacher = contact_sheet(head, str(tmp_path / "a.png"), size=size)
    without = contact_sheet(head, str(tmp_path / "b.png"), size=size, teacher_row=False)
    assert (tmp_path / "a.png").is_file()
    # One more row of tiles; the teacher (intensity 1) differs from the level-1 row.
    assert with_teacher.shape[0] - without.shape[0] == size + 4
    assert with_teacher.shape[1] == without.shape[1]
    top = with_teacher[18:18 + size, 86:]
    below = with_teacher[18 + size + 4:18 + 2 * size + 4, 86:]
    assert np.abs(top.astype(int) - below.astype(int)).max() > 10


def test_avatar_digest_changes_with_the_shapes_and_the_level_of_detail():
    """The synthetic-frame cache key sees a change of the face's shapes (e.g. its gains) and
    of the level-of-detail selection, neither of which touches a file."""
    from gemo_ros.avatar import level_of_detail
    from gemo_ros.avatar.procedural import build_default_avatar
    from gemo_ros.train.stage2 import avatar_digest

    avatar = build_default_avatar(num_gaussians=600, seed=0)
    before = avatar_digest(avatar)
    assert before == avatar_digest(avatar) and len(before) == 16
    assert avatar_digest(level_of_detail(avatar, 300)) != before
    assert avatar_digest(level_of_detail(avatar, 300, seed=1)) != \
        avatar_digest(level_of_detail(avatar, 300))
    with torch.no_grad():
        avatar.face.expr_basis[0] *= 2.0
    assert avatar_digest(avatar) != before
