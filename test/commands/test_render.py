"""Specification: `gemo render --emotion ... [--audio ... --time ...]` uses TalkingHead."""

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from gemo_ros.cli import main


@pytest.fixture(scope="module")
def avatar_file(tmp_path_factory):
    from gemo_ros.avatar import save_avatar
    from gemo_ros.avatar.procedural import build_default_avatar

    path = tmp_path_factory.mktemp("avatar") / "small.safetensors"
    save_avatar(build_default_avatar(num_gaussians=1200, seed=0), str(path))
    return str(path)


def render(avatar_file, out, *extra):
    argv = ["render", "--avatar", avatar_file, "--a2e", "none", "--residual", "none",
            "--size", "32", "--backend", "torch", "--device", "cpu", "-o", str(out), *extra]
    return main(argv)


def test_emotion_still_is_written_at_the_requested_size(avatar_file, tmp_path):
    out = tmp_path / "happy.png"
    assert render(avatar_file, out, "--emotion", "happy:0.7") == 0
    assert Image.open(out).size == (32, 32)


def test_emotion_changes_the_still(avatar_file, tmp_path):
    render(avatar_file, tmp_path / "n.png")
    render(avatar_file, tmp_path / "a.png", "--emotion", "surprised:3")
    neutral = np.asarray(Image.open(tmp_path / "n.png"))
    surprised = np.asarray(Image.open(tmp_path / "a.png"))
    assert np.abs(neutral.astype(int) - surprised.astype(int)).max() > 10


def test_audio_without_a_speech_model_is_a_clear_error(avatar_file, tmp_path, capsys):
    wav = tmp_path / "a.wav"
    sf.write(str(wav), np.zeros(16000, np.float32), 16000)
    code = render(avatar_file, tmp_path / "x.png", "--emotion", "sad", "--audio", str(wav),
                  "--time", "0.5")
    assert code == 2
    assert "audio-to-expression" in capsys.readouterr().err


def test_unknown_emotion_is_reported(avatar_file, tmp_path, capsys):
    assert render(avatar_file, tmp_path / "x.png", "--emotion", "grumpy") == 2
    assert "grumpy" in capsys.readouterr().err
