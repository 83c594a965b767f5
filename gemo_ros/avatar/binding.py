"""Triangle frames and quaternion helpers for Gaussians bound to mesh triangles.

A Gaussian bound to triangle ``f`` with barycentric weights ``b`` lives in the triangle's
local frame: origin at the barycentric point, axes ``(e1, e2, n)`` with ``e1`` along the
first edge, ``n`` the unit normal and ``e2 = n x e1``; lengths are measured in units of
the triangle's scale ``k`` (mean edge length). Posing the mesh moves, rotates and scales
the Gaussian with its triangle.
"""

from typing import Tuple

import torch

EPS = 1e-12


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


def quat_multiply(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Hamilton product of ``wxyz`` quaternions ``[..., 4]``."""
    w1, x1, y1, z1 = q.unbind(-1)
    w2, x2, y2, z2 = r.unbind(-1)
    return torch.stack([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], -1)


def matrix_to_quat(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` -> unit ``wxyz`` quaternions ``[..., 4]``.

    Branch-free Shepperd: the symmetric matrix ``Q = 4 q q^T`` is assembled from sums and
    differences of ``R``'s entries, and its best-conditioned row (largest ``q_i^2``) is used,
    so it is batched and differentiable almost everywhere.
    """
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    d = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                     1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)      # 4 q_i^2
    a, b, c = m21 - m12, m02 - m20, m10 - m01                           # 4 w x, 4 w y, 4 w z
    e, f, g = m01 + m10, m02 + m20, m12 + m21                           # 4 x y, 4 x z, 4 y z
    Q = torch.stack([d[..., 0], a, b, c, a, d[..., 1], e, f,
                     b, e, d[..., 2], g, c, f, g, d[..., 3]], -1).reshape(R.shape[:-2] + (4, 4))
    best = d.argmax(-1)
    row = torch.gather(Q, -2, best[..., None, None].expand(best.shape + (1, 4)))[..., 0, :]
    q = row / row.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return q * torch.where(q[..., :1] < 0, -1.0, 1.0)                   # w >= 0


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Convert ``wxyz`` quaternions ``[..., 4]`` (normalised here) to ``[..., 3, 3]``."""
    q = q / q.norm(dim=-1, keepdim=True).clamp(min=EPS)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1
    ).reshape(q.shape[:-1] + (3, 3))


__all__ = ["triangle_frames", "quat_multiply", "matrix_to_quat", "quat_to_matrix"]
