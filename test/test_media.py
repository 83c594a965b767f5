"""MP4 writing and probing through imageio-ffmpeg (gemo_ros.media)."""

import math

import numpy as np
import pytest

from gemo_ros.media import hold_frames, probe_duration, write_mp4


def _clip(count: int, h: int, w: int):
    for k in range(count):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[..., 0] = 20 * k
        frame[: h // 2, :, 1] = 200
        yield frame


def test_mp4_holds_h264_yuv420p_frames_and_the_audio_of_the_clip(tmp_path) -> None:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    pytest.importorskip("soundfile")
    rate, fps = 16000, 10.0
    t = np.arange(rate) / rate
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    out = tmp_path / "sub" / "clip.mp4"
    assert write_mp4(_clip(10, 21, 33), fps, str(out), audio, rate, crf=23) == 10

    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    frames = [np.frombuffer(b, np.uint8) for b in reader]
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["size"] == (34, 22)                      # odd sizes padded to even
    assert meta["fps"] == fps and meta.get("audio_codec") == "aac"
    assert len(frames) == 10
    assert imageio_ffmpeg.count_frames_and_secs(str(out)) == (10, pytest.approx(1.0, abs=0.05))
    assert probe_duration(str(out)) == pytest.approx(1.0, abs=0.1)
    assert not list(tmp_path.glob("sub/*.partial*"))


def test_no_frames_or_mixed_shapes_are_value_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="no frames"):
        write_mp4(iter(()), 10.0, str(tmp_path / "a.mp4"))
    frames = [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 6, 3), np.uint8)]
    with pytest.raises(ValueError, match="frame 1"):
        write_mp4(frames, 10.0, str(tmp_path / "b.mp4"))
    assert not list(tmp_path.iterdir())


def test_unknown_duration_is_nan(tmp_path) -> None:
    assert math.isnan(probe_duration(str(tmp_path / "missing.mp4")))


def test_hold_frames_repeats_the_latest_frame_at_a_constant_rate() -> None:
    frames = ["a", "b", "c"]
    out = list(hold_frames([0.0, 0.25, 0.5], frames, start=0.0, fps=10.0, count=7))
    assert out == ["a", "a", "a", "b", "b", "c", "c"]
