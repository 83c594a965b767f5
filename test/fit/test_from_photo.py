"""Specification of ``avatar_from_photo`` (gemo_ros/fit/from_photo.py): errors and the result.

Needs MediaPipe (the face landmarks) and scikit-image (its public-domain NASA portrait of
astronaut Eileen Collins, ``skimage.data.astronaut()``).
"""

import numpy as np
import pytest
import torch

from gemo_ros.fit.from_photo import FromPhotoConfig, PhotoError, avatar_from_photo

pytest.importorskip("mediapipe")
skdata = pytest.importorskip("skimage.data")

SMALL = FromPhotoConfig(num_gaussians=6000, refine_steps=2, refine_size=96)


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    torch.set_num_threads(1)
    return skdata.astronaut()


@pytest.fixture(scope="module")
def result(portrait):
    return avatar_from_photo(portrait, SMALL)


def test_a_photo_without_a_face_is_refused_with_a_reason():
    with pytest.raises(PhotoError, match="no face"):
        avatar_from_photo(np.full((256, 256, 3), 128, np.uint8), SMALL)


def test_a_photo_with_two_faces_is_refused(portrait):
    with pytest.raises(PhotoError, match="2 faces"):
        face = portrait[0:300, 100:340]          # the detector wants faces large in frame
        avatar_from_photo(np.ascontiguousarray(np.concatenate([face, face], 1)), SMALL)


def test_a_face_smaller_than_the_limit_is_refused(portrait):
    cfg = FromPhotoConfig(min_inter_ocular_px=1000.0)
    with pytest.raises(PhotoError, match="too small"):
        avatar_from_photo(portrait, cfg)


def test_a_face_turned_too_far_is_refused():
    from gemo_ros.avatar.human import build_human_avatar
    from gemo_ros.framing import PORTRAIT, render_frame
    head = build_human_avatar(12000)
    img = render_frame(head, torch.zeros(1, 52), PORTRAIT.__class__(
        **{**PORTRAIT.__dict__, "yaw_deg": 55.0, "backend": "torch"}))
    with pytest.raises(PhotoError, match="turned"):
        avatar_from_photo(img, FromPhotoConfig(max_yaw_deg=20.0, num_gaussians=6000))


def test_the_fit_matches_the_portraits_landmarks_and_keeps_it_frontal(result):
    assert result.fit.error_px < 6.0            # in a 512 px crop
    assert abs(result.fit.head_yaw_deg) < 15.0
    assert result.crop.shape == (512, 512, 3)


def test_the_avatar_takes_the_photos_skin_colour_and_identity(result):
    avatar = result.avatar
    assert avatar.num_gaussians == 6000
    identity = avatar.face.identity
    assert bool((identity != 0).any())
    # The portrait's skin is lighter and pinker than the procedural head's default.
    assert result.stats["tone_ratio_g"] > 1.0
    assert result.stats["refine_psnr_after"] >= result.stats["refine_psnr_before"]


def test_progress_is_reported_from_start_to_end(portrait):
    seen = []
    avatar_from_photo(portrait, FromPhotoConfig(num_gaussians=3000, refine_steps=1,
                                                refine_size=64),
                      progress=lambda name, frac: seen.append((name, frac)))
    fracs = [f for _, f in seen]
    assert seen[0][0] == "landmarks" and seen[-1] == ("done", 1.0)
    assert fracs == sorted(fracs)


def test_refinement_moves_only_trainable_colours_toward_the_view():
    from gemo_ros.avatar.human import build_human_avatar
    from gemo_ros.fit.from_photo import refine_colours
    from gemo_ros.render.camera import orbit_camera
    torch.set_num_threads(1)
    avatar = build_human_avatar(3000)
    vm, K = orbit_camera(0.0, 0.0, 0.7, 22.0, 64, 64)
    target = np.zeros((64, 64, 3), np.float32)
    target[..., 0] = 0.8                                   # a red face
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 20:44] = 1.0
    trainable = np.zeros(avatar.num_gaussians, bool)
    trainable[: avatar.num_gaussians // 2] = True
    before = avatar.params["color"].detach().clone()
    stats = refine_colours(avatar, torch.zeros(1, 52), vm, K, target, mask, trainable, steps=4,
                           lr=0.05, prior=0.1)
    after = avatar.params["color"].detach()
    assert stats["refine_psnr_after"] > stats["refine_psnr_before"]
    assert torch.equal(after[~torch.from_numpy(trainable)], before[~torch.from_numpy(trainable)])
    assert avatar.params["color"].requires_grad and avatar.params["xyz"].requires_grad
