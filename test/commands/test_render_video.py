"""Specifications of the offline MP4 render (gemo_ros.commands.render_video)."""

import argparse

import numpy as np
import pytest

from gemo_ros.commands import render_video


def test_emotion_track_is_parsed_and_sorted(tmp_path):
    track = tmp_path / "track.txt"
    track.write_text("# time command\n2.0 sad:3\n0.5 happy 0.7 0.25  # smile\n\n"
                     '3.0 {"emotion": "fear", "intensity": 0.4}\n')
    items = render_video.read_emotion_track(str(track))
    assert [t for t, _ in items] == [0.5, 2.0, 3.0]
    assert items[0][1].emotion == "happy" and items[0][1].transition_s == 0.25
    assert items[1][1].intensity == 1.0 and items[2][1].emotion == "fear"


def test_bad_track_line_names_file_and_line(tmp_path):
    track = tmp_path / "track.txt"
    track.write_text("0.0 happy\nsoon sad\n")
    with pytest.raises(ValueError, match="track.txt:2"):
        render_video.read_emotion_track(str(track))


def test_video_options_do_not_clash_with_existing_ones():
    parser = argparse.ArgumentParser()
    parser.add_argument("--audio")
    render_video.add_video_arguments(parser)
    args = parser.parse_args(["--audio", "x.wav", "--emotion-track", "t.txt", "--fps", "10"])
    assert (args.audio, args.emotion_track, args.fps) == ("x.wav", "t.txt", 10.0)


def test_mp4_without_audio_is_a_clear_error(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    render_video.add_video_arguments(parser)
    args = parser.parse_args([])
    args.output = str(tmp_path / "x.mp4")
    assert render_video.render_video(args) == 2
    assert "--audio" in capsys.readouterr().err


@pytest.mark.slow
def test_render_writes_an_mp4_with_audio_of_the_clip_length(tmp_path):
    sf = pytest.importorskip("soundfile")
    from gemo_ros.media import probe_duration

    rate = 16000
    t = np.arange(int(0.8 * rate)) / rate
    wav = tmp_path / "in.wav"
    sf.write(str(wav), (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), rate)
    parser = argparse.ArgumentParser()
    render_video.add_video_arguments(parser)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--avatar", default="default")
    parser.add_argument("-o", "--output")
    out = tmp_path / "out.mp4"
    args = parser.parse_args(["--audio", str(wav), "--emotion", "happy:0.7", "--fps", "10",
                              "--max-gaussians", "2000", "-o", str(out)])
    assert render_video.render_video(args) == 0
    assert out.stat().st_size > 1000
    assert probe_duration(str(out)) == pytest.approx(0.8, abs=0.15)
