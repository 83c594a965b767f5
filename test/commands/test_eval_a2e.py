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
                              "--hibari-clips", "0", "--plot", "", "--json", str(out)])
    assert eval_a2e.run(args) == 0
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == report
    assert list(report) == ["espeak_heldout"] and report["espeak_heldout"]["clips"] == 1
