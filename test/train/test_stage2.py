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


@pytest.mark.slow
def test_training_reduces_the_photometric_error_and_saves_weights(tmp_path):
    from gemo_ros.avatar.procedural import build_default_avatar

    torch.manual_seed(0)
    avatar = build_default_avatar(num_gaussians=1200, seed=0)
    config = ResidualConfig(attribute_dims=dict(avatar.attribute_dims), feature_dim=6, dim=32,
                            num_clusters=64, window=3,
                            output_scale=stage2.default_output_scale())
    head = TalkingHead(avatar, None, EmotionResidual(config),
                       settings=RenderSettings(backend="torch"))
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
