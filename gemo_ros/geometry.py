"""Rotation maths, written once: axis-angle, matrices, quaternions and the head's turn.

Conventions (docs/ARCHITECTURE.md, "Units and axes"): head frame right-handed, ``+Y`` up,
the face looks along ``+Z``, ``+X`` is the avatar's own left. Rotations act on column
vectors (``x' = R @ x``); quaternions are ``wxyz``; axis-angle vectors are ``[..., 3]``
radians (direction = axis, norm = angle).

**Head pose** (:func:`head_rotation`): yaw turns the face toward ``+X`` (the avatar's
left); **positive pitch looks up** (the chin moves forward and up, i.e. a rotation by
``-pitch`` about ``+X``); positive roll tilts the top of the head toward ``+X``. Used by
the idle behaviour (:mod:`gemo_ros.behaviour`) and ``gemo render --head-yaw/--head-pitch``.

Cameras (:func:`look_at`, :func:`orbit_eye`) use OpenCV axes (x right, y down, z forward);
:mod:`gemo_ros.render.camera` builds the renderer's ``viewmat`` / ``K`` from them.

The torch functions import torch when called, so importing this module stays cheap (the
engine's configuration imports it through the behaviour layer).
"""

import functools
import math
from typing import Any, Tuple

import numpy as np

EPS = 1e-12


# --- numpy (float64, one rotation) ---------------------------------------------------------------

def matrix_to_rotvec_np(r: np.ndarray) -> np.ndarray:
    """Rotation matrix ``[3, 3]`` -> axis-angle ``[3]`` (radians, angle in [0, pi))."""
    angle = math.acos(min(max((np.trace(r) - 1.0) * 0.5, -1.0), 1.0))
    if angle < 1e-9:
        return np.zeros(3)
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    return axis * (angle / (2.0 * math.sin(angle)))


def head_rotation(yaw_deg: float, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """Axis-angle ``[3]`` (radians, float64) of a head pose given in degrees.

    ``R = Ry(yaw) @ Rx(-pitch) @ Rz(-roll)``: yaw toward the avatar's left (``+X``),
    positive pitch looks up, positive roll tilts the top of the head toward ``+X``.
    """
    yaw, pitch, roll = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(-pitch), math.sin(-pitch)
    cr, sr = math.cos(-roll), math.sin(-roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return matrix_to_rotvec_np(ry @ rx @ rz)


# --- torch (batched, differentiable) -------------------------------------------------------------

def axis_angle_to_matrix(aa: Any) -> Any:
    """Rodrigues' formula: axis-angle ``[..., 3]`` (radians) -> rotation ``[..., 3, 3]``."""
    import torch

    theta = torch.linalg.norm(aa, dim=-1, keepdim=True)
    # Small-angle safe: sin(t)/t and (1-cos t)/t^2 by Taylor expansion near 0.
    t2 = theta * theta
    small = theta < 1e-4
    safe = torch.where(small, torch.ones_like(theta), theta)
    a = torch.where(small, 1.0 - t2 / 6.0, torch.sin(safe) / safe)
    b = torch.where(small, 0.5 - t2 / 24.0, (1.0 - torch.cos(safe)) / (safe * safe))
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    Kx = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(aa.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(Kx)
    return eye + a[..., None] * Kx + b[..., None] * (Kx @ Kx)


def matrix_to_axis_angle(R: Any) -> Any:
    """Rotation matrices ``[..., 3, 3]`` -> axis-angle ``[..., 3]`` (radians, angle < pi)."""
    import torch

    cos = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0).clamp(-1.0, 1.0)
    angle = torch.acos(cos)
    axis = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                        R[..., 1, 0] - R[..., 0, 1]], -1)
    sin = torch.sin(angle)
    scale = torch.where(sin.abs() > 1e-6, angle / (2.0 * sin).clamp_min(1e-12),
                        torch.full_like(angle, 0.5))
    return axis * scale[..., None]


def quat_multiply(q: Any, r: Any) -> Any:
    """Hamilton product of ``wxyz`` quaternions ``[..., 4]``."""
    import torch

    w1, x1, y1, z1 = q.unbind(-1)
    w2, x2, y2, z2 = r.unbind(-1)
    return torch.stack([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], -1)


@functools.lru_cache(maxsize=None)
def _m2q_table() -> Any:
    """``[9, 16]`` map from a flattened rotation matrix to ``Q = 4 q q^T - I`` (flattened)."""
    import torch

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


@functools.lru_cache(maxsize=None)
def _q2m_table() -> Any:
    """``[16, 9]`` map from ``q q^T`` (flattened, unit q) to the rotation matrix minus I."""
    import torch

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


def matrix_to_quat(R: Any) -> Any:
    """Rotation matrices ``[..., 3, 3]`` -> unit ``wxyz`` quaternions ``[..., 4]`` (w >= 0).

    Branch-free Shepperd: ``Q = 4 q q^T`` is a linear function of ``R`` (one small matmul);
    its best-conditioned row (largest ``q_i^2`` on the diagonal) normalised is ``+-q``. Batched
    and differentiable almost everywhere.
    """
    import torch

    eye = torch.eye(4, dtype=R.dtype, device=R.device).reshape(16)
    Q = R.reshape(R.shape[:-2] + (9,)) @ _m2q_table().to(R) + eye
    Q = Q.reshape(R.shape[:-2] + (4, 4))
    # argmax over a strided diagonal is ~10x slower on CPU than over a contiguous copy.
    best = torch.diagonal(Q, dim1=-2, dim2=-1).contiguous().argmax(-1)
    row = torch.gather(Q, -2, best[..., None, None].expand(best.shape + (1, 4)))[..., 0, :]
    q = row / row.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return q * torch.where(q[..., :1] < 0, -1.0, 1.0)                   # w >= 0


def quat_to_matrix(q: Any) -> Any:
    """``wxyz`` quaternions ``[..., 4]`` (normalised here) -> ``[..., 3, 3]``, one matmul.

    The batched form used for the avatar's Gaussians; :func:`quat_to_rotmat` is the same
    rotation written term by term (gsplat's formula, the renderer's reference).
    """
    import torch

    q = q / q.norm(dim=-1, keepdim=True).clamp(min=EPS)
    qq = (q[..., :, None] * q[..., None, :]).reshape(q.shape[:-1] + (16,))
    R = qq @ _q2m_table().to(q) + torch.eye(3, dtype=q.dtype, device=q.device).reshape(9)
    return R.reshape(q.shape[:-1] + (3, 3))


def quat_to_rotmat(quats: Any) -> Any:
    """``wxyz`` quaternions ``[..., 4]`` (any norm) -> ``[..., 3, 3]``, gsplat's formula."""
    import torch

    q = torch.nn.functional.normalize(quats, dim=-1)
    w, x, y, z = q.unbind(-1)
    rows = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


# --- cameras (OpenCV axes: x right, y down, z forward; viewmat = world -> camera) ----------------

#: World up axis (+Y).
WORLD_UP = (0.0, 1.0, 0.0)


def look_at(eye: Any, target: Any = (0.0, 0.0, 0.0), up: Any = WORLD_UP,
            device: Any = None) -> Any:
    """Return the world -> camera ``viewmat [4, 4]`` of a camera at ``eye`` facing ``target``.

    OpenCV axes: camera z points from ``eye`` to ``target``, x to the image right, y down
    (so world ``up`` appears at the top of the image). Positions in metres (``[3]``
    sequences or tensors); returns float32 on ``device``.
    """
    import torch

    eye_t = torch.as_tensor(eye, dtype=torch.float64).reshape(3)
    target_t = torch.as_tensor(target, dtype=torch.float64).reshape(3)
    up_t = torch.as_tensor(up, dtype=torch.float64).reshape(3)
    forward = target_t - eye_t
    if float(forward.norm()) < 1e-12:
        raise ValueError("look_at: eye and target coincide")
    forward = forward / forward.norm()
    right = torch.linalg.cross(forward, up_t)
    if float(right.norm()) < 1e-9:
        raise ValueError("look_at: viewing direction is parallel to the up vector")
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    rot = torch.stack([right, down, forward])  # rows = camera axes in world coordinates
    view = torch.eye(4, dtype=torch.float64)
    view[:3, :3] = rot
    view[:3, 3] = -rot @ eye_t
    return view.to(dtype=torch.float32, device=device)


def orbit_eye(yaw_deg: float, pitch_deg: float, distance: float,
              target: Any = (0.0, 0.0, 0.0)) -> Any:
    """Return the camera position ``[3]`` (metres, float64) of an orbit camera.

    Yaw 0 / pitch 0 is on ``+Z`` of ``target``; positive yaw swings toward ``+X``, positive
    pitch raises the camera.
    """
    import torch

    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    offset = torch.tensor([math.sin(yaw) * math.cos(pitch),
                           math.sin(pitch),
                           math.cos(yaw) * math.cos(pitch)], dtype=torch.float64)
    return torch.as_tensor(target, dtype=torch.float64).reshape(3) + distance * offset


__all__ = ["WORLD_UP", "look_at", "orbit_eye", "matrix_to_rotvec_np", "head_rotation",
           "axis_angle_to_matrix", "matrix_to_axis_angle", "quat_multiply", "matrix_to_quat",
           "quat_to_matrix", "quat_to_rotmat"]
