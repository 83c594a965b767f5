"""Triangle frames of bound Gaussians (gemo_ros.avatar.binding)."""

import math

import torch

from gemo_ros.avatar.binding import rotate_quats, triangle_frames
from gemo_ros.geometry import axis_angle_to_matrix, quat_to_matrix

TRI = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])   # [1, 3, 3]
FACES = torch.tensor([[0, 1, 2]])


def test_frame_of_a_triangle_in_the_xy_plane():
    origin, rot, k = triangle_frames(TRI, FACES, torch.tensor([[1 / 3, 1 / 3, 1 / 3]]))
    torch.testing.assert_close(origin, torch.tensor([[[2 / 3, 2 / 3, 0.0]]]))
    torch.testing.assert_close(rot[0, 0], torch.eye(3))          # e1 = x, e2 = y, n = z
    torch.testing.assert_close(k, torch.tensor([[[(2 + 2 + math.sqrt(8)) / 3]]]))  # mean edge


def test_frames_turn_translate_and_scale_with_the_triangle():
    R = axis_angle_to_matrix(torch.tensor([0.3, -0.2, 0.9]))
    moved = 1.5 * TRI @ R.T + torch.tensor([0.1, 0.2, 0.3])
    bary = torch.tensor([[0.2, 0.5, 0.3]])
    o0, r0, k0 = triangle_frames(TRI, FACES, bary)
    o1, r1, k1 = triangle_frames(moved, FACES, bary)
    torch.testing.assert_close(r1[0, 0], R @ r0[0, 0])
    torch.testing.assert_close(k1, 1.5 * k0)
    torch.testing.assert_close(o1[0, 0], 1.5 * R @ o0[0, 0] + torch.tensor([0.1, 0.2, 0.3]))


def test_rotate_quats_composes_the_frame_with_the_local_rotation():
    R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
    q = torch.nn.functional.normalize(torch.tensor([0.9, 0.1, -0.3, 0.2]), dim=0)
    torch.testing.assert_close(quat_to_matrix(rotate_quats(R, q)), R @ quat_to_matrix(q))
