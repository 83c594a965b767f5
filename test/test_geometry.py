"""Specifications of gemo_ros.geometry against scipy's rotations, and the head-pitch sign."""

import argparse
import math

import numpy as np
import pytest
import torch

from gemo_ros import geometry as geo

Rotation = pytest.importorskip("scipy.spatial.transform").Rotation


def _rotvecs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return axes * rng.uniform(0.0, 3.0, size=(n, 1))       # angles below pi


def test_axis_angle_to_matrix_is_rodrigues():
    aa = _rotvecs()
    got = geo.axis_angle_to_matrix(torch.tensor(aa)).numpy()
    np.testing.assert_allclose(got, Rotation.from_rotvec(aa).as_matrix(), atol=1e-12)


def test_axis_angle_to_matrix_of_zero_is_identity():
    assert torch.equal(geo.axis_angle_to_matrix(torch.zeros(3)), torch.eye(3))


def test_matrix_to_axis_angle_inverts_it():
    aa = _rotvecs(seed=1)
    got = geo.matrix_to_axis_angle(torch.tensor(Rotation.from_rotvec(aa).as_matrix())).numpy()
    np.testing.assert_allclose(got, aa, atol=1e-9)


def test_matrix_to_rotvec_np_inverts_rodrigues():
    for aa in _rotvecs(8, seed=2):
        got = geo.matrix_to_rotvec_np(Rotation.from_rotvec(aa).as_matrix())
        np.testing.assert_allclose(got, aa, atol=1e-9)


def _wxyz(r):
    xyzw = r.as_quat()
    return np.concatenate([xyzw[..., 3:], xyzw[..., :3]], -1)


def test_matrix_to_quat_matches_scipy_with_w_non_negative():
    r = Rotation.from_rotvec(_rotvecs(seed=3))
    q = geo.matrix_to_quat(torch.tensor(r.as_matrix())).numpy()
    ref = _wxyz(r)
    ref *= np.where(ref[:, :1] < 0, -1.0, 1.0)
    np.testing.assert_allclose(q, ref, atol=1e-9)
    assert (q[:, 0] >= 0).all()


@pytest.mark.parametrize("fn", [geo.quat_to_matrix, geo.quat_to_rotmat])
def test_quaternion_to_matrix_matches_scipy_for_any_norm(fn):
    r = Rotation.from_rotvec(_rotvecs(seed=4))
    q = torch.tensor(_wxyz(r)) * 2.5
    np.testing.assert_allclose(fn(q).numpy(), r.as_matrix(), atol=1e-12)


def test_quat_multiply_composes_rotations():
    a = Rotation.from_rotvec(_rotvecs(16, seed=5))
    b = Rotation.from_rotvec(_rotvecs(16, seed=6))
    got = geo.quat_to_matrix(geo.quat_multiply(torch.tensor(_wxyz(a)), torch.tensor(_wxyz(b))))
    np.testing.assert_allclose(got.numpy(), (a * b).as_matrix(), atol=1e-12)


def test_head_rotation_is_yaw_then_raised_pitch_then_roll():
    yaw, pitch, roll = 20.0, 10.0, -5.0
    ref = Rotation.from_euler("YXZ", [yaw, -pitch, -roll], degrees=True).as_rotvec()
    np.testing.assert_allclose(geo.head_rotation(yaw, pitch, roll), ref, atol=1e-12)


def test_positive_head_pitch_raises_the_chin():
    chin = np.array([0.0, -0.1, 0.08])                         # below and in front of the centre
    moved = Rotation.from_rotvec(geo.head_rotation(0.0, 15.0)).apply(chin)
    assert moved[1] > chin[1] + 0.01


def _chin_height(neck_rotation):
    from gemo_ros.face import load_face_model

    face = load_face_model("default")
    expr = torch.zeros(1, face.num_expressions)
    neck = None if neck_rotation is None else torch.tensor(
        np.asarray(neck_rotation), dtype=torch.float32)[None]
    verts = face.pose(expr, neck)[0]
    v = face.vertices
    front = torch.nonzero((face.lbs_weights[:, 0] > 0.99) & (v[:, 2] > 0.04))[:, 0]
    chin = front[torch.argmin(v[front, 1])]           # lowest front vertex moved by the neck
    return float(verts[chin, 1])


def test_head_pitch_moves_the_chin_the_same_way_in_the_node_and_in_gemo_render():
    from gemo_ros.behaviour import IdleState
    from gemo_ros.commands.render import configure, request_from_args

    parser = argparse.ArgumentParser()
    configure(parser)
    request = request_from_args(parser.parse_args(["--head-pitch", "10"]))
    idle = IdleState(blink=0.0, gaze_deg=(0.0, 0.0), head_deg=(0.0, 10.0, 0.0))
    np.testing.assert_allclose(request.neck_rotation(), idle.neck_rotation(), atol=1e-12)
    rest = _chin_height(None)
    assert _chin_height(request.neck_rotation()) > rest + 1e-3
    assert _chin_height(idle.neck_rotation()) > rest + 1e-3
    assert math.isclose(_chin_height(request.neck_rotation()),
                        _chin_height(idle.neck_rotation()), abs_tol=1e-7)


def test_look_at_puts_the_target_on_the_optical_axis_with_world_up_at_the_top():
    eye, target = np.array([0.3, 0.2, 0.5]), np.array([0.0, -0.01, 0.0])
    view = geo.look_at(tuple(eye), tuple(target)).double().numpy()
    rot = view[:3, :3]
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-6)
    assert np.linalg.det(rot) == pytest.approx(1.0, abs=1e-6)
    cam = rot @ target + view[:3, 3]
    np.testing.assert_allclose(cam[:2], 0.0, atol=1e-6)
    assert cam[2] == pytest.approx(np.linalg.norm(target - eye), abs=1e-6)
    assert (rot @ np.array([0.0, 1.0, 0.0]))[1] < 0              # +Y up = image up (y down)


def test_orbit_eye_follows_the_yaw_and_pitch_conventions():
    front = geo.orbit_eye(0.0, 0.0, 1.0).numpy()
    np.testing.assert_allclose(front, [0.0, 0.0, 1.0], atol=1e-12)
    assert geo.orbit_eye(30.0, 0.0, 1.0)[0] > 0                  # toward +X
    assert geo.orbit_eye(0.0, 20.0, 1.0)[1] > 0                  # raised
