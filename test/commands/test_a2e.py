"""`gemo a2e` writes one CSV row per frame: time, then the 52 ARKit coefficients."""

import csv
import io
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from gemo_ros.audio import A2EConfig, AudioToExpression
from gemo_ros.audio.model import tiny_encoder_config
from gemo_ros.cli import main
from gemo_ros.commands.a2e import write_csv
from gemo_ros.face.arkit import ARKIT_NAMES


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def weights(tmp_path) -> str:
    torch.manual_seed(0)
    model = AudioToExpression(A2EConfig(encoder=tiny_encoder_config(), decoder_hidden=16,
                                        emotion_dim=4))
    path = os.path.join(tmp_path, "tiny.safetensors")
    model.save(path)
    return path


def test_cli_writes_time_and_52_named_columns(tmp_path, weights: str) -> None:
    wav = os.path.join(tmp_path, "in.wav")
    sf.write(wav, (0.1 * np.random.default_rng(0).standard_normal(22050)).astype(np.float32),
             22050)
    out = os.path.join(tmp_path, "coeffs.csv")
    rc = main(["a2e", "--audio", wav, "--emotion", "happy", "--intensity", "0.7", "-o", out,
               "--weights", weights])
    assert rc == 0
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["time"] + list(ARKIT_NAMES)
    data = np.array(rows[1:], dtype=np.float64)
    assert data.shape == (50, 53)                       # 1 s at 50 fps
    np.testing.assert_allclose(np.diff(data[:, 0]), 0.02, atol=1e-4)
    assert data[:, 1:].min() >= 0.0 and data[:, 1:].max() <= 1.0


def test_cli_resamples_output_to_requested_fps(tmp_path, weights: str) -> None:
    wav = os.path.join(tmp_path, "in.wav")
    sf.write(wav, np.zeros(16000, np.int16), 16000, subtype="PCM_16")
    out = os.path.join(tmp_path, "c.csv")
    assert main(["a2e", "--audio", wav, "-o", out, "--weights", weights, "--fps", "30"]) == 0
    data = np.array(list(csv.reader(open(out)))[1:], dtype=np.float64)
    np.testing.assert_allclose(np.diff(data[:, 0]), 1 / 30, atol=1e-3)


def test_cli_reports_bad_emotion_and_unreadable_audio(tmp_path, weights: str, capsys) -> None:
    wav = os.path.join(tmp_path, "in.wav")
    sf.write(wav, np.zeros(1600, np.int16), 16000, subtype="PCM_16")
    assert main(["a2e", "--audio", wav, "--emotion", "bored", "--weights", weights]) == 2
    assert "unknown emotion" in capsys.readouterr().err
    assert main(["a2e", "--audio", os.path.join(tmp_path, "missing.wav"),
                 "--weights", weights]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_write_csv_rounds_rows_and_refuses_mismatched_shapes() -> None:
    buf = io.StringIO()
    write_csv(buf, np.array([0.0, 0.02]), np.full((2, 52), 0.123456, np.float32))
    lines = buf.getvalue().splitlines()
    assert lines[0].split(",")[:2] == ["time", ARKIT_NAMES[0]]
    assert lines[2].startswith("0.0200,0.12346,")
    with pytest.raises(ValueError, match="52"):
        write_csv(io.StringIO(), np.zeros(2), np.zeros((2, 51)))
