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


def _m2q_table() -> torch.Tensor:
    """``[9, 16]`` map from a flattened rotation matrix to ``Q = 4 q q^T - I`` (flattened)."""
    T = torch.zeros(9, 16, dtype=torch.float64)
    idx = {(r, c): 3 * r + c for r in range(3) for c in range(3)}

    def put(qi: int, qj: int, terms) -> None:
        for sign, rc in terms:
            T[idx[rc], 4 * qi + qj] += sign
            if qi != qj:
                T[idx[rc], 4 * qj + qi] += sign
    put(0, 0, [(1, (0, 0)), (1, (1, 1)), (1, (2, 2))])
    put(1, 1, [(1, (0, 0)), (-1, (1, 1)), (-1, (2, 2))])
    put(2, 2, [(-1, (0, 0)), (1, (1, 1)), (-1, (2, 2))])
    put(3, 3, [(-1, (0, 0)), (-1, (1, 1)), (1, (2, 2))])
    put(0, 1, [(1, (2, 1)), (-1, (1, 2))])
    put(0, 2, [(1, (0, 2)), (-1, (2, 0))])
    put(0, 3, [(1, (1, 0)), (-1, (0, 1))])
    put(1, 2, [(1, (0, 1)), (1, (1, 0))])
    put(1, 3, [(1, (0, 2)), (1, (2, 0))])
    put(2, 3, [(1, (1, 2)), (1, (2, 1))])
    return T


def _q2m_table() -> torch.Tensor:
    """``[16, 9]`` map from ``q q^T`` (flattened, unit q) to the rotation matrix minus I."""
    T = torch.zeros(16, 9, dtype=torch.float64)

    def put(rc: Tuple[int, int], terms) -> None:
        for sign, (a, b) in terms:
            T[4 * a + b, 3 * rc[0] + rc[1]] += sign
    put((0, 0), [(-2, (2, 2)), (-2, (3, 3))])
    put((1, 1), [(-2, (1, 1)), (-2, (3, 3))])
    put((2, 2), [(-2, (1, 1)), (-2, (2, 2))])
    put((0, 1), [(2, (1, 2)), (-2, (0, 3))])
    put((0, 2), [(2, (1, 3)), (2, (0, 2))])
    put((1, 0), [(2, (1, 2)), (2, (0, 3))])
    put((1, 2), [(2, (2, 3)), (-2, (0, 1))])
    put((2, 0), [(2, (1, 3)), (-2, (0, 2))])
    put((2, 1), [(2, (2, 3)), (2, (0, 1))])
    return T


_M2Q = _m2q_table()
_Q2M = _q2m_table()


def matrix_to_quat(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` -> unit ``wxyz`` quaternions ``[..., 4]``.

    Branch-free Shepperd: ``Q = 4 q q^T`` is a linear function of ``R`` (one small matmul);
    its best-conditioned row (largest ``q_i^2`` on the diagonal) normalised is ``+-q``. Batched
    and differentiable almost everywhere.
    """
    eye = torch.eye(4, dtype=R.dtype, device=R.device).reshape(16)
    Q = R.reshape(R.shape[:-2] + (9,)) @ _M2Q.to(R) + eye
    Q = Q.reshape(R.shape[:-2] + (4, 4))
    # argmax over a strided diagonal is ~10x slower on CPU than over a contiguous copy.
    best = torch.diagonal(Q, dim1=-2, dim2=-1).contiguous().argmax(-1)
    row = torch.gather(Q, -2, best[..., None, None].expand(best.shape + (1, 4)))[..., 0, :]
    q = row / row.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return q * torch.where(q[..., :1] < 0, -1.0, 1.0)                   # w >= 0


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Convert ``wxyz`` quaternions ``[..., 4]`` (normalised here) to ``[..., 3, 3]``."""
    q = q / q.norm(dim=-1, keepdim=True).clamp(min=EPS)
    qq = (q[..., :, None] * q[..., None, :]).reshape(q.shape[:-1] + (16,))
    R = qq @ _Q2M.to(q) + torch.eye(3, dtype=q.dtype, device=q.device).reshape(9)
    return R.reshape(q.shape[:-1] + (3, 3))


def rotate_quats(R: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Quaternion ``[..., 4]`` of ``R @ quat_to_matrix(q)`` for frames ``R [..., 3, 3]``."""
    return matrix_to_quat(R @ quat_to_matrix(q))


__all__ = ["triangle_frames", "quat_multiply", "matrix_to_quat", "quat_to_matrix",
           "rotate_quats"]
