"""`gemo eval a2e` (gemo_ros.commands.eval_a2e): metrics as JSON for given weights."""

import argparse
import json

import pytest
import torch

from gemo_ros.audio import A2EConfig, AudioToExpression
from gemo_ros.audio.model import tiny_encoder_config
from gemo_ros.commands import eval_a2e
from gemo_ros.train import speech_synth

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_defaults_evaluate_the_shipped_weights_on_both_sets():
    parser = argparse.ArgumentParser()
    eval_a2e.configure(parser)
    args = parser.parse_args([])
    assert args.weights == "default" and args.espeak_clips > 0 and args.hibari_clips > 0


def test_one_held_out_clip_gives_a_json_report(tmp_path, capsys):
    try:
        speech_synth.sample_rate()
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"libespeak-ng not usable here: {exc}")
    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    AudioToExpression(A2EConfig(encoder=tiny_encoder_config(), decoder_hidden=16,
                                emotion_dim=4)).save(str(weights))
    parser = argparse.ArgumentParser()
    eval_a2e.configure(parser)
    out = tmp_path / "metrics.json"
    args = parser.parse_args(["--weights", str(weights), "--espeak-clips", "1",
                              "--hibari-clips", "0", "--festival-clips", "0",
                              "--flite-clips", "0", "--no-real", "--plot", "",
                              "--json", str(out), "--markdown", str(tmp_path / "t.md")])
    assert eval_a2e.run(args) == 0
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == report
    assert list(report) == ["espeak_heldout", "timing"]
    assert report["espeak_heldout"]["clips"] == 1
    assert report["timing"]["model_ms_per_audio_second"] > 0
    table = (tmp_path / "t.md").read_text()
    assert "| aperture correlation" in table and "espeak_heldout" in table


def test_the_table_shows_before_and_after_per_set_and_leaves_out_skipped_sets():
    after = {"real": {"aperture_corr": 0.9, "clips": 8}, "festival": {"skipped": "no"}}
    before = {"real": {"aperture_corr": 0.7, "clips": 8}}
    table = eval_a2e.markdown_table(after, before)
    assert "festival" not in table
    assert "| aperture correlation (target >= 0.80) | 0.7 → **0.9** |" in table
    assert "| clips | 8 |" in table


def test_a_video_needs_the_old_weights_to_compare_with():
    parser = argparse.ArgumentParser()
    eval_a2e.configure(parser)
    with pytest.raises(SystemExit):
        eval_a2e.run(parser.parse_args(["--video", "x.mp4"]))
