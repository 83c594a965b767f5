"""Specification of the mesh z-buffer (gemo_ros/fit/raster.py)."""

import numpy as np
import torch

from gemo_ros.fit.raster import project, rasterize_mesh, visible_points
from gemo_ros.render.camera import orbit_camera


def _camera(size=64):
    vm, K = orbit_camera(0.0, 0.0, 1.0, 40.0, size, size)
    return vm.double().numpy(), K.double().numpy()


def _square(z):
    """Two triangles making a 0.2 m square facing +Z at height z."""
    V = np.array([[-0.1, -0.1, z], [0.1, -0.1, z], [0.1, 0.1, z], [-0.1, 0.1, z]])
    F = np.array([[0, 1, 2], [0, 2, 3]])
    return V, F


def test_a_square_facing_the_camera_covers_the_centre_at_its_depth():
    vm, K = _camera()
    V, F = _square(0.0)
    fid, bary, depth = rasterize_mesh(V, F, vm, K, 64, 64)
    assert fid[32, 32] in (0, 1)
    assert np.isclose(depth[32, 32], 1.0, atol=1e-6)
    assert np.allclose(bary[fid >= 0].sum(-1), 1.0)
    assert fid[0, 0] == -1 and np.isinf(depth[0, 0])


def test_the_nearer_surface_wins_and_hides_the_farther_one():
    vm, K = _camera()
    back, F = _square(0.0)
    front, _ = _square(0.2)
    V = np.concatenate([back, front])
    faces = np.concatenate([F, F + 4])
    fid, _, depth = rasterize_mesh(V, faces, vm, K, 64, 64)
    assert fid[32, 32] in (2, 3)
    assert np.isclose(depth[32, 32], 0.8, atol=1e-6)
    pts = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.2]])
    vis = visible_points(pts, np.array([0, 2]), vm, K, fid, depth)
    assert vis.tolist() == [False, True]


def test_barycentric_coordinates_rebuild_the_point_seen():
    vm, K = _camera()
    V = np.array([[-0.1, -0.1, 0.0], [0.15, -0.05, 0.1], [0.0, 0.12, -0.05]])
    F = np.array([[0, 1, 2]])
    fid, bary, depth = rasterize_mesh(V, F, vm, K, 64, 64)
    ys, xs = np.nonzero(fid == 0)
    p = bary[ys, xs] @ V
    uv, z = project(p, vm, K)
    assert np.allclose(uv, np.stack([xs + 0.5, ys + 0.5], 1), atol=1e-6)
    assert np.allclose(z, depth[ys, xs], atol=1e-9)


def test_project_matches_the_renderer_camera_convention():
    vm, K = orbit_camera(0.0, 0.0, 1.0, 40.0, 64, 64)
    uv, z = project(np.array([[0.0, 0.0, 0.0]]), vm.double().numpy(), K.double().numpy())
    assert np.allclose(uv, [[32.0, 32.0]]) and np.isclose(z[0], 1.0)
    # +Y (up in the world) appears above the centre (smaller y) in the image.
    uv_up, _ = project(np.array([[0.0, 0.1, 0.0]]), vm.double().numpy(),
                       K.double().numpy())
    assert uv_up[0, 1] < 32.0
    assert torch.is_tensor(vm)
