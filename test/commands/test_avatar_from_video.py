"""Specification of ``gemo avatar from-video`` (gemo_ros/commands/avatar_from_video.py)."""

import argparse

import numpy as np
import pytest

from gemo_ros.cli import main
from gemo_ros.commands import avatar_from_video
from gemo_ros.fit.from_video import FromVideoConfig


def test_the_command_line_defaults_are_the_librarys():
    parser = argparse.ArgumentParser()
    avatar_from_video.configure(parser)
    args = parser.parse_args(["clip.mp4", "-o", "me.safetensors"])
    d = FromVideoConfig()
    assert (args.max_frames, args.iterations, args.crop_size, args.downscale) == \
        (d.max_frames, d.iterations, d.crop_size, d.downscale)
    assert args.workdir is None and not args.fresh


def test_a_missing_video_is_a_clear_error(tmp_path, capsys):
    rc = main(["avatar", "from-video", str(tmp_path / "none.mp4"), "-o",
               str(tmp_path / "a.safetensors"), "--quiet", "--device", "cpu"])
    assert rc == 2
    assert "video not found" in capsys.readouterr().err


def test_a_clip_without_a_face_says_so_and_writes_nothing(tmp_path, capsys):
    pytest.importorskip("mediapipe")
    import imageio.v3 as iio
    clip = tmp_path / "wall.mp4"
    iio.imwrite(str(clip), np.full((10, 128, 128, 3), 100, np.uint8), fps=10)
    out = tmp_path / "a.safetensors"
    rc = main(["avatar", "from-video", str(clip), "-o", str(out), "--quiet", "--device", "cpu"])
    assert rc == 2
    assert "one face" in capsys.readouterr().err
    assert not out.exists()
