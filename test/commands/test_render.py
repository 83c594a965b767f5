"""Specification of `gemo render`: stills of an expression, and of an emotion (and audio at a
time) through TalkingHead."""

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


def test_gemo_render_writes_a_png_still(tmp_path):
    from PIL import Image

    from gemo_ros.cli import main
    out = str(tmp_path / "face.png")
    rc = main(["render", "--avatar", "default", "--expression", "jawOpen=0.8,mouthSmileLeft=0.5",
               "--yaw", "30", "--pitch", "0", "--size", "40", "--device", "cpu", "-o", out])
    assert rc == 0
    img = Image.open(out)
    assert img.size == (40, 40)
    import numpy as np
    assert float(np.asarray(img, dtype=np.float32).std()) > 10      # not a blank frame


@pytest.mark.parametrize("text,message", [
    ("jawOpn=1", "unknown blendshape"), ("jawopen=1", "did you mean jawOpen"),
    ("jawOpen", "NAME=WEIGHT"), ("jawOpen=2", r"\[0, 1\]"), ("jawOpen=x", "not a number")])
def test_bad_expressions_are_rejected_with_a_reason(text, message):
    from gemo_ros.commands.render import parse_expression
    with pytest.raises(ValueError, match=message):
        parse_expression(text)


def test_render_request_from_arguments():
    import argparse

    from gemo_ros.commands.render import configure, request_from_args
    parser = argparse.ArgumentParser()
    configure(parser)
    req = request_from_args(parser.parse_args(
        ["--expression", "eyeBlinkLeft=1", "--yaw", "-30", "--size", "64", "--height", "48",
         "--background", "#ffffff"]))
    assert req.expression == {"eyeBlinkLeft": 1.0}
    assert (req.framing.width, req.framing.height, req.framing.yaw_deg) == (64, 48, -30.0)
    assert req.framing.background == (1.0, 1.0, 1.0)
