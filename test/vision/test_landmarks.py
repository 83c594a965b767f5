"""Specification of gemo_ros/vision/landmarks.py: MediaPipe face landmarks on our own renders.

The faces are the shipped default avatar rendered here at 256 px (8k Gaussians), frontal
unless a test turns the head, so the detector is checked on the images it will judge.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch

from gemo_ros.face.arkit import ARKIT_INDEX
from gemo_ros.framing import PORTRAIT, render_frame
from gemo_ros.geometry import head_rotation
from gemo_ros.stages import load_avatar_stage
from gemo_ros.vision import landmarks as lm
from gemo_ros.vision.landmarks import (LANDMARKS, NUM_LANDMARKS, FaceLandmarker,
                                       FaceTooSmallError, FaceTurnedError, MultipleFacesError,
                                       NoFaceError, detect_landmarks)

SETTINGS = replace(PORTRAIT, width=256, height=256)


@pytest.fixture(scope="module")
def avatar(one_torch_thread):
    return load_avatar_stage("default", 8000, "cpu")


def _render(avatar, expression=None, yaw_deg: float = 0.0) -> np.ndarray:
    expr = torch.zeros(1, 52)
    for name, value in (expression or {}).items():
        expr[0, ARKIT_INDEX[name]] = value
    neck = None
    if yaw_deg:
        neck = torch.tensor(head_rotation(yaw_deg), dtype=torch.float32)[None]
    return render_frame(avatar, expr, SETTINGS, neck_rotation=neck)


@pytest.fixture(scope="module")
def neutral(avatar) -> np.ndarray:
    return _render(avatar)


@pytest.fixture(scope="module")
def detector():
    with FaceLandmarker() as det:
        yield det


def test_named_landmarks_are_distinct_mesh_indices():
    assert len(set(LANDMARKS.values())) == len(LANDMARKS)
    assert all(0 <= i < NUM_LANDMARKS for i in LANDMARKS.values())
    for name in LANDMARKS:
        if name.endswith("_left"):
            assert name[:-len("left")] + "right" in LANDMARKS


def test_one_frontal_face_gives_478_points_in_pixels(detector, neutral):
    face = detector.detect(neutral)
    assert face.points.shape == (NUM_LANDMARKS, 3)
    assert np.isfinite(face.points).all()
    assert (face.width, face.height) == (256, 256)
    assert (face.xy >= 0).all() and (face.xy <= 256).all()
    # A head framed as a portrait: the eyes are a quarter to a half of the image apart.
    assert 0.25 * 256 < face.inter_ocular() < 0.5 * 256
    assert abs(face.yaw_deg()) < 10.0


def test_named_points_sit_where_a_face_has_them(detector, neutral):
    face = detector.detect(neutral)
    p = {name: face.point(name)[:2] for name in LANDMARKS}
    # The face's own left appears on the image's right in a frontal view.
    for part in ("mouth_corner", "eye_outer_corner", "brow_outer_upper", "iris_centre"):
        assert p[part + "_left"][0] > p[part + "_right"][0]
    # Top to bottom: brows, eyes, nose tip, upper lip, lower lip, chin.
    order = ["brow_mid_upper_left", "eye_upper_lid_left", "iris_centre_left",
             "eye_lower_lid_left", "nose_tip", "lip_upper_outer", "lip_upper_inner",
             "lip_lower_outer", "chin"]
    ys = [p[name][1] for name in order]
    assert ys == sorted(ys)
    # Each iris lies between its eye's corners.
    for side in ("left", "right"):
        xs = sorted([p[f"eye_outer_corner_{side}"][0], p[f"eye_inner_corner_{side}"][0]])
        assert xs[0] < p[f"iris_centre_{side}"][0] < xs[1]


def test_an_open_jaw_opens_the_lips_by_pixels(avatar, detector, neutral):
    closed = detector.detect(neutral)
    opened = detector.detect(_render(avatar, {"jawOpen": 0.6}))

    def gap(face):
        return face.point("lip_lower_inner")[1] - face.point("lip_upper_inner")[1]

    assert gap(opened) - gap(closed) > 0.05 * closed.inter_ocular()


def test_yaw_has_the_sign_of_the_head_pose_and_a_limit_refuses_it(avatar, detector):
    img = _render(avatar, yaw_deg=35.0)
    face = detector.detect(img)
    assert 15.0 < face.yaw_deg() < 60.0
    with pytest.raises(FaceTurnedError, match="turned"):
        detector.detect(img, max_yaw_deg=10.0)
    assert detector.detect(_render(avatar, yaw_deg=-35.0)).yaw_deg() < -15.0


def test_no_face_raises_and_the_lenient_calls_return_none(detector):
    blank = np.full((128, 160, 3), 200, np.uint8)
    with pytest.raises(NoFaceError, match="no face"):
        detector.detect(blank)
    assert detector.detect_or_none(blank) is None
    assert detect_landmarks(blank) is None


def test_two_faces_raise_and_are_both_found(detector, neutral):
    two = np.concatenate([neutral, neutral], axis=1)
    assert len(detector.detect_all(two)) == 2
    with pytest.raises(MultipleFacesError, match="2 faces"):
        detector.detect(two)
    assert detector.detect_or_none(two) is None


def test_a_small_face_is_refused_on_request(detector, neutral):
    with pytest.raises(FaceTooSmallError, match="too small"):
        detector.detect(neutral, min_inter_ocular_px=200.0)


def test_detect_landmarks_returns_pixels_with_or_without_depth(detector, neutral):
    xy = detect_landmarks(neutral)
    xyz = detect_landmarks(neutral, with_depth=True)
    assert xy.shape == (NUM_LANDMARKS, 2) and xyz.shape == (NUM_LANDMARKS, 3)
    np.testing.assert_allclose(xy, detector.detect(neutral).xy, atol=1e-6)


@pytest.mark.parametrize("image, error", [
    (np.zeros((64, 64, 3), np.float32), TypeError),
    ([[0, 0, 0]], TypeError),
    (np.zeros((64, 64), np.uint8), ValueError),
    (np.zeros((64, 64, 4), np.uint8), ValueError),
    (np.zeros((16, 64, 3), np.uint8), ValueError),
])
def test_bad_images_raise_clear_errors(detector, image, error):
    with pytest.raises(error, match="image"):
        detector.detect(image)


def test_a_closed_detector_refuses_work(neutral):
    det = FaceLandmarker()
    det.close()
    det.close()  # twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(neutral)


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="max_faces"):
        lm.FaceLandmarker(max_faces=0)
    with pytest.raises(ValueError, match="confidence"):
        lm.FaceLandmarker(min_detection_confidence=1.5)
