"""Triangle frames of Gaussians bound to mesh triangles (rotation maths: gemo_ros.geometry).

A Gaussian bound to triangle ``f`` with barycentric weights ``b`` lives in the triangle's
local frame: origin at the barycentric point, axes ``(e1, e2, n)`` with ``e1`` along the
first edge, ``n`` the unit normal and ``e2 = n x e1``; lengths are measured in units of
the triangle's scale ``k`` (mean edge length). Posing the mesh moves, rotates and scales
the Gaussian with its triangle.
"""

from typing import Tuple

import torch

from gemo_ros.geometry import EPS, matrix_to_quat, quat_multiply, quat_to_matrix


def triangle_frames(verts: torch.Tensor, faces: torch.Tensor, bary: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Local frames of bound triangles.

    Args:
        verts: ``[B, V, 3]`` posed vertices (metres).
        faces: ``[N, 3]`` vertex indices of the triangle each Gaussian is bound to.
        bary: ``[N, 3]`` barycentric coordinates of each binding point.
    Returns:
        origin ``[B, N, 3]`` (metres), rotation ``[B, N, 3, 3]`` (columns e1, e2, n) and
        scale ``[B, N, 1]`` (mean edge length, metres).
    """
    tri = verts[:, faces]                                  # [B, N, 3, 3] gather
    v0, v1, v2 = tri.unbind(2)
    origin = torch.einsum("nk,bnkc->bnc", bary.to(verts), tri)
    a, b = v1 - v0, v2 - v0
    e1 = a / (a.norm(dim=-1, keepdim=True) + EPS)
    n = torch.linalg.cross(a, b, dim=-1)
    n = n / (n.norm(dim=-1, keepdim=True) + EPS)
    e2 = torch.linalg.cross(n, e1, dim=-1)
    rot = torch.stack([e1, e2, n], -1)
    k = (a.norm(dim=-1) + b.norm(dim=-1) + (v2 - v1).norm(dim=-1))[..., None] / 3.0
    return origin, rot, k


def rotate_quats(R: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Quaternion ``[..., 4]`` of ``R @ quat_to_matrix(q)`` for frames ``R [..., 3, 3]``."""
    return matrix_to_quat(R @ quat_to_matrix(q))


__all__ = ["triangle_frames", "quat_multiply", "matrix_to_quat", "quat_to_matrix",
           "rotate_quats"]
