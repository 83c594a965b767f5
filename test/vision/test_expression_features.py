"""Specification of gemo_ros/vision/expression_features.py on synthetic landmark arrays.

A schematic frontal face: outer eye corners 100 px apart (so 1 px = 1 % of the inter-ocular
distance), the face's left on the image's right, image y down.
"""

import numpy as np
import pytest

from gemo_ros.vision import expression_features as xf
from gemo_ros.vision.landmarks import LANDMARKS, NUM_LANDMARKS

# Named points of the schematic face (x, y) in pixels; centre line x = 200.
_FACE = {
    "eye_outer_corner_left": (250, 200), "eye_outer_corner_right": (150, 200),
    "eye_inner_corner_left": (220, 202), "eye_inner_corner_right": (180, 202),
    "eye_upper_lid_left": (235, 195), "eye_lower_lid_left": (235, 207),
    "eye_upper_lid_right": (165, 195), "eye_lower_lid_right": (165, 207),
    "iris_centre_left": (235, 201), "iris_centre_right": (165, 201),
    "brow_inner_upper_left": (215, 175), "brow_inner_lower_left": (215, 181),
    "brow_mid_upper_left": (235, 172), "brow_mid_lower_left": (235, 178),
    "brow_outer_upper_left": (258, 178), "brow_outer_lower_left": (258, 184),
    "brow_inner_upper_right": (185, 175), "brow_inner_lower_right": (185, 181),
    "brow_mid_upper_right": (165, 172), "brow_mid_lower_right": (165, 178),
    "brow_outer_upper_right": (142, 178), "brow_outer_lower_right": (142, 184),
    "forehead": (200, 130), "nose_bridge": (200, 200), "nose_tip": (200, 250),
    "subnasale": (200, 258),
    "lip_upper_outer": (200, 272), "lip_upper_outer_left": (212, 271),
    "lip_upper_outer_right": (188, 271), "lip_upper_inner": (200, 280),
    "lip_lower_inner": (200, 281), "lip_lower_outer": (200, 292),
    "mouth_corner_left": (230, 280), "mouth_corner_right": (170, 280),
    "mouth_inner_corner_left": (226, 280), "mouth_inner_corner_right": (174, 280),
    "chin": (200, 340),
}


def neutral_face() -> np.ndarray:
    pts = np.zeros((NUM_LANDMARKS, 3))
    for name, (x, y) in _FACE.items():
        pts[LANDMARKS[name], :2] = (x, y)
    return pts


def moved(**shifts) -> np.ndarray:
    """Neutral face with named points shifted by (dx, dy) pixels (image axes)."""
    pts = neutral_face()
    for name, (dx, dy) in shifts.items():
        pts[LANDMARKS[name], :2] += (dx, dy)
    return pts


def test_every_named_point_is_placed():
    assert set(_FACE) == set(LANDMARKS)


def test_an_unchanged_face_gives_zero_everywhere():
    f = xf.expression_features(neutral_face(), neutral_face())
    assert list(f) == list(xf.FEATURES)
    assert all(v == 0.0 for v in f.values())


def test_a_corner_moving_up_and_out_reads_in_percent_of_iod_on_its_own_side():
    # The face's left corner: up is -y, outward is +x (it appears on the image's right).
    f = xf.expression_features(neutral_face(), moved(mouth_corner_left=(5, -10)))
    assert f["corner_up_left"] == pytest.approx(10.0)
    assert f["corner_out_left"] == pytest.approx(5.0)
    assert f["corner_up_right"] == 0.0 and f["corner_out_right"] == 0.0
    assert f["mouth_width"] == pytest.approx(np.hypot(65.0, 10.0) - 60.0)


def test_the_right_corner_moves_outward_toward_smaller_x():
    f = xf.expression_features(neutral_face(), moved(mouth_corner_right=(-4, 3)))
    assert f["corner_out_right"] == pytest.approx(4.0)
    assert f["corner_up_right"] == pytest.approx(-3.0)
    assert f["mouth_width"] == pytest.approx(np.hypot(64.0, 3.0) - 60.0)


def test_mouth_opening_and_upper_lip_raise():
    f = xf.expression_features(neutral_face(), moved(
        lip_upper_inner=(0, -3), lip_lower_inner=(0, 6), lip_upper_outer=(0, -6),
        lip_upper_outer_left=(0, -3), lip_upper_outer_right=(0, -3)))
    assert f["mouth_open"] == pytest.approx(9.0)
    assert f["upper_lip_raise"] == pytest.approx(4.0)  # mean of the three points


def test_brow_height_is_the_mean_of_the_brow_edges_and_eye_opening_the_lid_gap():
    f = xf.expression_features(neutral_face(), moved(
        brow_inner_upper_left=(0, -6), brow_inner_lower_left=(0, -2),
        brow_outer_upper_right=(0, 3), brow_outer_lower_right=(0, 3),
        eye_upper_lid_right=(0, -2), eye_lower_lid_right=(0, 1)))
    assert f["brow_inner_left"] == pytest.approx(4.0)
    assert f["brow_outer_right"] == pytest.approx(-3.0)
    assert f["brow_inner_right"] == 0.0 and f["brow_outer_left"] == 0.0
    assert f["eye_open_right"] == pytest.approx(3.0)
    assert f["eye_open_left"] == 0.0


def test_features_do_not_depend_on_image_scale_or_position():
    a, b = neutral_face(), moved(mouth_corner_left=(3, -7), brow_inner_upper_right=(0, -4))
    ref = xf.expression_features(a, b)
    shift = np.array([31.0, -12.0, 0.0])
    scaled = xf.expression_features(2.5 * a + shift, 2.5 * b + shift)
    for name in xf.FEATURES:
        assert scaled[name] == pytest.approx(ref[name])


def test_the_iod_is_taken_from_the_neutral_face():
    f = xf.expression_features(2.0 * neutral_face(), 2.0 * moved(mouth_corner_left=(0, -10)))
    assert f["corner_up_left"] == pytest.approx(10.0)  # 20 px of a 200 px IOD
    assert xf.inter_ocular(neutral_face()) == pytest.approx(100.0)


def _features_of(vector: np.ndarray) -> dict:
    out = dict(zip(xf.PATTERN_FEATURES, vector))
    out["mouth_width"] = 0.0
    return out


@pytest.mark.parametrize("emotion", list(xf.PROTOTYPES))
def test_each_prototype_scaled_is_closest_to_itself(emotion):
    closest, sims = xf.closest_prototype(_features_of(7.0 * xf.PROTOTYPES[emotion]))
    assert closest == emotion
    assert sims[emotion] == pytest.approx(1.0)


def test_contempt_on_either_side_matches_contempt_and_a_smile_matches_happy():
    right = _features_of(np.zeros(len(xf.PATTERN_FEATURES)))
    right.update(corner_up_right=8.0, corner_out_right=3.0)
    assert xf.closest_prototype(right)[0] == "contempt"
    both = dict(right, corner_up_left=8.0, corner_out_left=3.0, eye_open_left=-2.0,
                eye_open_right=-2.0)
    assert xf.closest_prototype(both)[0] == "happy"


def test_a_face_that_does_not_move_is_similar_to_no_prototype():
    sims = xf.prototype_similarity(xf.expression_features(neutral_face(), neutral_face()))
    assert set(sims) == set(xf.PROTOTYPES) and all(v == 0.0 for v in sims.values())


def test_prototypes_are_distinct_patterns():
    names = list(xf.PROTOTYPES)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            pa, pb = xf.PROTOTYPES[a], xf.PROTOTYPES[b]
            assert pa @ pb / (np.linalg.norm(pa) * np.linalg.norm(pb)) < 0.9, (a, b)


def test_main_features_sign_and_the_one_sided_contempt_corner():
    f = xf.expression_features(neutral_face(), moved(
        mouth_corner_right=(0, -12), brow_inner_upper_left=(0, 5), brow_inner_lower_left=(0, 5),
        brow_inner_upper_right=(0, 5), brow_inner_lower_right=(0, 5)))
    assert xf.main_features("contempt", f) == [("one corner up", pytest.approx(12.0))]
    assert xf.main_features("happy", f)[0][1] == pytest.approx(6.0)
    # Angry expects the brows down: lowered inner brows count positive.
    assert xf.main_features("angry", f)[0][1] == pytest.approx(2.5)
    assert set(xf.MAIN_FEATURES) == set(xf.PROTOTYPES)


def test_absolute_mouth_measures_in_pixels_and_percent():
    m = xf.absolute_measures(moved(lip_lower_inner=(0, 9)), iod=50.0)
    assert m["mouth_open_px"] == pytest.approx(10.0)
    assert m["mouth_open_pct"] == pytest.approx(20.0)
    assert m["mouth_width_px"] == pytest.approx(60.0)


def test_bad_landmarks_raise_clear_errors():
    with pytest.raises(ValueError, match="landmarks must be"):
        xf.expression_features(neutral_face()[:100], neutral_face())
    bad = neutral_face()
    bad[LANDMARKS["mouth_corner_left"], 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        xf.expression_features(neutral_face(), bad)
    with pytest.raises(ValueError, match="inter-ocular"):
        xf.expression_features(np.zeros((NUM_LANDMARKS, 2)), neutral_face())
