"""Pinhole cameras in the conventions of docs/ARCHITECTURE.md.

World / head frame: right-handed, ``+Y`` up, the face looks along ``+Z``, ``+X`` is the
avatar's own left. Cameras use OpenCV axes (x right, y down, z forward); ``viewmat`` maps
world -> camera; ``K`` is in pixels with pixel centres at ``+0.5`` (so the principal
point of a centred camera is ``(width / 2, height / 2)``).

``orbit_camera``: yaw 0 puts the camera on ``+Z`` looking at the face; positive yaw moves
it toward ``+X`` (it sees the avatar's left cheek); positive pitch moves it up (looking
down).
"""

import math
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from gemo_ros.geometry import WORLD_UP, look_at, orbit_eye

Vec3 = Union[Sequence[float], Tensor]


def intrinsics(fov_deg: float, width: int, height: int,
               device: Optional[Union[str, torch.device]] = None) -> Tensor:
    """Return the 3x3 pixel intrinsics ``K`` of a centred pinhole camera.

    ``fov_deg`` is the vertical field of view in degrees; pixels are square, so the
    horizontal field of view follows from the aspect ratio. Returns ``[3, 3]`` float32.
    """
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    focal = 0.5 * height / math.tan(math.radians(fov_deg) / 2.0)
    return torch.tensor([[focal, 0.0, 0.5 * width],
                         [0.0, focal, 0.5 * height],
                         [0.0, 0.0, 1.0]], dtype=torch.float32, device=device)


def orbit_camera(yaw_deg: float, pitch_deg: float, distance: float, fov_deg: float,
                 width: int, height: int, target: Vec3 = (0.0, 0.0, 0.0),
                 device: Optional[Union[str, torch.device]] = None) -> Tuple[Tensor, Tensor]:
    """Return ``(viewmat [4, 4], K [3, 3])`` of a camera orbiting ``target``.

    yaw 0 / pitch 0 puts the camera on ``+Z`` of ``target`` looking along ``-Z`` at the
    face; positive ``yaw_deg`` swings it toward ``+X``; positive ``pitch_deg`` raises it
    (it looks down). ``distance`` in metres from ``target``; ``fov_deg`` is the vertical
    field of view. The camera stays upright (world ``+Y`` up in the image).
    """
    if not distance > 0.0:
        raise ValueError(f"distance must be positive, got {distance}")
    if not -90.0 < pitch_deg < 90.0:
        raise ValueError(f"pitch_deg must be in (-90, 90), got {pitch_deg}")
    eye = orbit_eye(yaw_deg, pitch_deg, distance, target)
    viewmat = look_at(eye, target, WORLD_UP, device=device)
    return viewmat, intrinsics(fov_deg, width, height, device=device)


def camera_position(viewmat: Tensor) -> Tensor:
    """Return camera centres ``[..., 3]`` in world coordinates from ``viewmat [..., 4, 4]``."""
    rot = viewmat[..., :3, :3]
    trans = viewmat[..., :3, 3]
    return -(rot.transpose(-1, -2) @ trans.unsqueeze(-1)).squeeze(-1)
