"""Camera framing of a render: the one settings type, its defaults and its presets.

:class:`RenderSettings` is used by every path that turns Gaussians into pixels: the engine
(``EngineConfig.camera``, which the node's ``camera.*`` and ``background`` parameters map
onto), :class:`gemo_ros.pipeline.TalkingHead`, ``gemo render`` (stills and MP4s), the
contact sheets and stage-2 training. Units: metres, degrees (at this surface; radians
inside the maths), pixels, colours as linear RGB floats in [0, 1].

Presets (the defaults are written once, in :class:`RenderSettings`):

* :data:`ROBOT_PANEL` (= ``RenderSettings()``): the node's face on a dark panel, 256 px;
* :data:`PORTRAIT`: ``gemo render`` stills for people to look at: 512 px, the camera a
  little further back (0.72 m, the whole head with a margin) on a light grey background;
* :data:`VIDEO`: ``gemo render -o *.mp4``: the panel's dark background from 0.72 m.

This module does not import torch until a camera is built, so the engine's configuration
stays cheap to import.
"""

from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

Color = Tuple[float, float, float]


@dataclass(frozen=True)
class RenderSettings:
    """Camera and image settings of a render (degrees and metres at this surface).

    Attributes:
        width, height: image size in pixels.
        yaw_deg, pitch_deg: orbit camera angles (``render.camera.orbit_camera``; positive
            yaw sees the avatar's left cheek, positive pitch looks down from above).
        distance: camera distance from ``target`` in metres.
        fov_deg: vertical field of view in degrees.
        target: point the camera looks at (head frame, metres).
        background: linear RGB in [0, 1] behind the head.
        backend: renderer backend (``"auto"``, ``"torch"``, ``"gsplat"``, ``"numba"``).
    """

    width: int = 256
    height: int = 256
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    distance: float = 0.65
    fov_deg: float = 22.0
    target: Tuple[float, float, float] = (0.0, -0.01, 0.0)
    background: Color = (18 / 255, 22 / 255, 30 / 255)
    backend: str = "auto"

    def camera(self, device: Any = "cpu") -> Tuple[Any, Any]:
        """Return ``(viewmat [4, 4], K [3, 3])`` torch tensors for these settings."""
        from gemo_ros.render import orbit_camera

        return orbit_camera(self.yaw_deg, self.pitch_deg, self.distance, self.fov_deg,
                            self.width, self.height, target=self.target, device=device)

    def background_255(self) -> Tuple[int, int, int]:
        """Return the background as 0-255 integer RGB (the node's ``background`` parameter)."""
        return tuple(int(round(255.0 * float(c))) for c in self.background)

    def resized(self, width: int, height: int) -> "RenderSettings":
        """Return a copy at another image size (same camera)."""
        if (width, height) == (self.width, self.height):
            return self
        return replace(self, width=int(width), height=int(height))


#: The node's face on the robot's panel (the defaults).
ROBOT_PANEL = RenderSettings()
#: ``gemo render`` stills for people: 512 px, whole head from 0.72 m, light grey background.
PORTRAIT = RenderSettings(width=512, height=512, distance=0.72, background=(0.86, 0.89, 0.93))
#: ``gemo render -o *.mp4``: the panel's look (dark background) from the portrait's distance.
VIDEO = replace(ROBOT_PANEL, distance=PORTRAIT.distance)


def background_from_255(rgb: Sequence[Union[int, float]]) -> Color:
    """Turn a 0-255 RGB triple (the node's ``background`` parameter) into [0, 1] floats."""
    vals = [float(c) for c in rgb]
    if len(vals) != 3 or not all(0.0 <= c <= 255.0 for c in vals):
        raise ValueError(f"background must be [r, g, b] with 0-255 values, got {list(rgb)}")
    return tuple(c / 255.0 for c in vals)


def render_frame(avatar: Any, expr: Any, settings: RenderSettings = PORTRAIT,
                 neck_rotation: Any = None, offsets: Optional[Mapping[str, Any]] = None
                 ) -> Any:
    """Render one frame of ``avatar`` for ``expr [1, 52]``: ``uint8 [H, W, 3]`` numpy.

    Args:
        avatar: a :class:`gemo_ros.avatar.GaussianAvatar` (its device is used).
        expr: ``[1, 52]`` ARKit coefficients on the avatar's device.
        settings: camera, image size, background and backend.
        neck_rotation: optional ``[1, 3]`` axis-angle head rotation (radians,
            :func:`gemo_ros.geometry.head_rotation`).
        offsets: optional raw-parameter offsets ``{name: [1, N, d]}`` (the emotion residual).
    """
    import torch

    from gemo_ros.imaging import to_uint8
    from gemo_ros.render import rasterize

    device = avatar.binding_bary.device
    with torch.no_grad():
        g = avatar(expr, neck_rotation=neck_rotation, offsets=offsets)
        viewmat, K = settings.camera(device)
        bg = torch.tensor(settings.background, dtype=torch.float32, device=device)
        rgb, _, _ = rasterize(**g.render_args(0), viewmat=viewmat, K=K, width=settings.width,
                              height=settings.height, background=bg, backend=settings.backend)
    return to_uint8(rgb)
