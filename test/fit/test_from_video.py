"""Specification of ``gemo_ros/fit/from_video.py``: tracking with one identity, the Stage 1
dataset it writes, training that resumes. The clip is rendered from a random ICT person."""

import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from gemo_ros.face.arkit import ARKIT_INDEX
from gemo_ros.fit.from_video import (FromVideoConfig, VideoError, avatar_from_video,
                                     read_frames, track_video, write_dataset)

pytest.importorskip("mediapipe")
CFG = FromVideoConfig(min_frames=4, identity_frames=3, crop_size=128, iterations=2,
                      num_init=500, downscale=2, test_every=4)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    import imageio.v3 as iio
    from gemo_ros.avatar.human import build_human_avatar
    from gemo_ros.face.model import load_face_model
    from gemo_ros.framing import PORTRAIT, render_frame
    torch.set_num_threads(1)
    face = load_face_model("ict")
    beta = torch.randn(40, generator=torch.Generator().manual_seed(5))
    head = build_human_avatar(8000, face=face.with_identity(beta))
    frames = []
    for t in range(8):
        e = torch.zeros(1, 52)
        e[0, ARKIT_INDEX["jawOpen"]] = 0.5 if t % 2 else 0.0
        s = replace(PORTRAIT, width=256, height=256, yaw_deg=float(8 * np.sin(t)),
                    backend="torch")
        frames.append(render_frame(head, e, s))
    path = str(tmp_path_factory.mktemp("clip") / "clip.mp4")
    iio.imwrite(path, np.stack(frames), fps=8)
    return path


@pytest.fixture(scope="module")
def track(clip):
    return track_video(read_frames(clip, 8), CFG)


def test_frames_are_read_evenly_spaced_up_to_the_limit(clip):
    assert len(read_frames(clip, 4)) == 4
    assert len(read_frames(clip, 100)) == 8


def test_a_missing_or_faceless_clip_is_refused(tmp_path):
    import imageio.v3 as iio
    with pytest.raises(FileNotFoundError):
        read_frames(str(tmp_path / "none.mp4"), 4)
    grey = str(tmp_path / "grey.mp4")
    iio.imwrite(grey, np.full((6, 128, 128, 3), 120, np.uint8), fps=6)
    with pytest.raises(VideoError, match="one face"):
        track_video(read_frames(grey, 6), CFG)


def test_tracking_shares_one_identity_and_follows_the_jaw(track):
    assert track["expression"].shape == (8, 52) and track["identity"].shape == (40,)
    assert track["error_px"].mean() < 5.0                   # in a 128 px crop
    jaw = track["expression"][:, ARKIT_INDEX["jawOpen"]]
    assert jaw[1::2].mean() > jaw[0::2].mean() + 0.15      # open on odd frames


def test_the_dataset_holds_every_tracked_frame_with_a_head_mask(track, tmp_path):
    from gemo_ros.train.stage1_data import load_stage1_dataset
    write_dataset(track, str(tmp_path / "data"), test_every=4)
    ds = load_stage1_dataset(str(tmp_path / "data"))
    assert len(ds.frames) == 8 and len(ds.split("test")) == 2
    cover = float(ds.frames[0].mask.mean())
    assert 0.1 < cover < 0.9
    assert ds.meta["face_identity"] == pytest.approx(track["identity"].tolist(), abs=1e-5)


@pytest.mark.slow
def test_training_writes_an_avatar_with_the_identity_and_resumes(clip, tmp_path):
    work = str(tmp_path / "work")
    avatar, track = avatar_from_video(clip, work, CFG, train_progress=False)
    assert os.path.isfile(os.path.join(work, "track.npz"))
    assert torch.allclose(avatar.face.identity, torch.as_tensor(track["identity"]).float())
    more = replace(CFG, iterations=3)
    again, _ = avatar_from_video(clip, work, more, train_progress=False)
    assert again.metadata["iterations"] == 3                 # resumed at 2, one more step
