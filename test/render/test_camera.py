"""Specs for the camera helpers (axes of docs/ARCHITECTURE.md)."""

import math

import pytest
import torch

from gemo_ros.render import camera_position, intrinsics, look_at, orbit_camera


def _to_pixel(point, viewmat, K):
    p = viewmat[:3, :3] @ torch.as_tensor(point, dtype=torch.float32) + viewmat[:3, 3]
    uvw = K @ p
    return uvw[:2] / uvw[2], p[2]


def test_yaw0_camera_sits_on_plus_z_and_looks_at_target():
    viewmat, _ = orbit_camera(0.0, 0.0, 0.65, 25.0, 64, 64)
    assert torch.allclose(camera_position(viewmat), torch.tensor([0.0, 0.0, 0.65]), atol=1e-6)
    _, depth = _to_pixel((0.0, 0.0, 0.0), viewmat, intrinsics(25.0, 64, 64))
    assert depth == pytest.approx(0.65, abs=1e-6)


def test_target_projects_to_image_centre():
    viewmat, K = orbit_camera(33.0, -12.0, 0.7, 25.0, 96, 64, target=(0.01, 0.02, -0.03))
    uv, _ = _to_pixel((0.01, 0.02, -0.03), viewmat, K)
    assert torch.allclose(uv, torch.tensor([48.0, 32.0]), atol=1e-4)


def test_plus_x_appears_on_image_right_at_yaw0():
    viewmat, K = orbit_camera(0.0, 0.0, 0.65, 25.0, 64, 64)
    uv, _ = _to_pixel((0.05, 0.0, 0.0), viewmat, K)
    assert uv[0] > 32.0 + 1.0
    assert uv[1] == pytest.approx(32.0, abs=1e-4)


def test_plus_y_appears_at_image_top():
    viewmat, K = orbit_camera(0.0, 0.0, 0.65, 25.0, 64, 64)
    uv, _ = _to_pixel((0.0, 0.05, 0.0), viewmat, K)
    assert uv[1] < 32.0 - 1.0


def test_yaw90_camera_sits_on_plus_x():
    viewmat, _ = orbit_camera(90.0, 0.0, 0.65, 25.0, 64, 64)
    assert torch.allclose(camera_position(viewmat), torch.tensor([0.65, 0.0, 0.0]), atol=1e-6)


def test_positive_yaw_sees_more_of_the_plus_x_side():
    # A point on the +X cheek is nearer to the camera after a positive yaw.
    cheek = (0.07, 0.0, 0.03)
    depths = [_to_pixel(cheek, orbit_camera(yaw, 0.0, 0.65, 25.0, 64, 64)[0],
                        intrinsics(25.0, 64, 64))[1] for yaw in (-30.0, 0.0, 30.0)]
    assert depths[0] > depths[1] > depths[2]


def test_positive_pitch_moves_camera_up():
    viewmat, _ = orbit_camera(0.0, 30.0, 0.65, 25.0, 64, 64)
    pos = camera_position(viewmat)
    assert pos[1] == pytest.approx(0.65 * math.sin(math.radians(30.0)), abs=1e-6)
    assert pos[2] == pytest.approx(0.65 * math.cos(math.radians(30.0)), abs=1e-6)


def test_viewmat_rotation_is_orthonormal():
    viewmat, _ = orbit_camera(-47.0, 21.0, 1.2, 40.0, 32, 32)
    rot = viewmat[:3, :3]
    assert torch.allclose(rot @ rot.T, torch.eye(3), atol=1e-6)
    assert torch.det(rot) == pytest.approx(1.0, abs=1e-6)


def test_intrinsics_match_vertical_fov():
    K = intrinsics(90.0, 200, 100)
    assert K[1, 1] == pytest.approx(50.0, rel=1e-6)
    assert K[0, 0] == K[1, 1]
    assert (K[0, 2], K[1, 2]) == (100.0, 50.0)


def test_bad_camera_arguments_raise():
    with pytest.raises(ValueError, match="pitch_deg"):
        orbit_camera(0.0, 90.0, 0.65, 25.0, 64, 64)
    with pytest.raises(ValueError, match="distance"):
        orbit_camera(0.0, 0.0, 0.0, 25.0, 64, 64)
    with pytest.raises(ValueError, match="fov_deg"):
        intrinsics(0.0, 64, 64)
    with pytest.raises(ValueError, match="parallel"):
        look_at((0.0, 1.0, 0.0), (0.0, 0.0, 0.0))
