"""The latest face frame, shared between the ROS callback and the displays (ROS-free).

A :class:`FrameHub` holds one frame at a time: the subscription callback puts each
received image (RGB pixels or JPEG bytes, whichever arrived) and returns at once; the web
panel's stream threads and the window's draw loop wait for a newer frame and take the
latest, so a slow viewer skips frames instead of queueing them. Each frame converts
between RGB and JPEG at most once, on first use, outside the hub's lock.
"""

import io
import threading
import time
from typing import Optional, Tuple

import numpy as np

from gemo_ros.imaging import jpeg_bytes


def letterbox(src_w: int, src_h: int, dst_w: int, dst_h: int) -> Tuple[int, int, int, int]:
    """Return ``(x, y, w, h)``: the largest ``src`` aspect-ratio rectangle centred in ``dst``.

    The rest of ``dst`` is the bars (top/bottom or left/right). Sizes in pixels, >= 1.
    """
    if min(src_w, src_h, dst_w, dst_h) <= 0:
        raise ValueError(f"sizes must be positive, got {src_w}x{src_h} in {dst_w}x{dst_h}")
    scale = min(dst_w / src_w, dst_h / src_h)
    w = max(1, min(dst_w, round(src_w * scale)))
    h = max(1, min(dst_h, round(src_h * scale)))
    return (dst_w - w) // 2, (dst_h - h) // 2, w, h


class Frame:
    """One received image: RGB ``uint8 [H, W, 3]`` and/or JPEG bytes, with its arrival time.

    ``seq`` counts frames from 1; ``arrival`` is ``time.monotonic()`` seconds.
    """

    def __init__(self, seq: int, arrival: float, rgb: Optional[np.ndarray] = None,
                 jpeg: Optional[bytes] = None, jpeg_quality: int = 85) -> None:
        if rgb is None and jpeg is None:
            raise ValueError("a frame needs RGB pixels or JPEG bytes")
        self.seq, self.arrival = seq, arrival
        self._rgb, self._jpeg, self._quality = rgb, jpeg, int(jpeg_quality)
        self._lock = threading.Lock()

    def rgb(self) -> np.ndarray:
        """Return the pixels ``uint8 [H, W, 3]`` (decoded from the JPEG once, if needed)."""
        with self._lock:
            if self._rgb is None:
                from PIL import Image as PILImage

                with PILImage.open(io.BytesIO(self._jpeg)) as img:
                    self._rgb = np.asarray(img.convert("RGB"))
            return self._rgb

    def jpeg(self) -> bytes:
        """Return JPEG bytes (encoded from the pixels once, if needed)."""
        with self._lock:
            if self._jpeg is None:
                self._jpeg = jpeg_bytes(self._rgb, self._quality)
            return self._jpeg


class FrameHub:
    """The latest frame, with a condition to wait for a newer one; thread-safe.

    ``jpeg_quality`` is used when an RGB frame is first asked for as JPEG.
    """

    def __init__(self, jpeg_quality: int = 85) -> None:
        self.jpeg_quality = int(jpeg_quality)
        self._cond = threading.Condition()
        self._frame: Optional[Frame] = None
        self._closed = False
        self._times = []  # arrival times of the last frames, for the rate

    def put_rgb(self, rgb: np.ndarray) -> Frame:
        """Make ``uint8 [H, W, 3]`` RGB the latest frame (kept by reference, not copied)."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape:
            raise ValueError(f"expected uint8 [H, W, 3], got {rgb.dtype} {list(rgb.shape)}")
        return self._put(rgb=rgb)

    def put_jpeg(self, jpeg: bytes) -> Frame:
        """Make JPEG bytes the latest frame (they must start with the JPEG marker)."""
        jpeg = bytes(jpeg)
        if not jpeg.startswith(b"\xff\xd8"):
            raise ValueError(f"not JPEG data ({len(jpeg)} bytes starting {jpeg[:4]!r})")
        return self._put(jpeg=jpeg)

    def _put(self, **data) -> Frame:
        now = time.monotonic()
        with self._cond:
            seq = self._frame.seq + 1 if self._frame is not None else 1
            self._frame = Frame(seq, now, jpeg_quality=self.jpeg_quality, **data)
            self._times = self._times[-24:] + [now]
            self._cond.notify_all()
            return self._frame

    def latest(self) -> Optional[Frame]:
        """Return the latest frame, or None before the first."""
        with self._cond:
            return self._frame

    def wait_newer(self, seq: int, timeout: float) -> Optional[Frame]:
        """Return the latest frame once its ``seq`` exceeds ``seq``; None on timeout or close."""
        end = time.monotonic() + timeout
        with self._cond:
            while not self._closed and (self._frame is None or self._frame.seq <= seq):
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return None if self._closed else self._frame

    def status(self) -> dict:
        """Return ``{"frames", "age_s", "fps", "width", "height"}`` (None where unknown)."""
        with self._cond:
            frame, times = self._frame, list(self._times)
        now = time.monotonic()
        out = {"frames": 0, "age_s": None, "fps": None, "width": None, "height": None}
        if frame is None:
            return out
        out["frames"], out["age_s"] = frame.seq, round(now - frame.arrival, 3)
        if len(times) >= 2 and times[-1] > times[0]:
            out["fps"] = round((len(times) - 1) / (times[-1] - times[0]), 2)
        if frame._rgb is not None:
            out["height"], out["width"] = int(frame._rgb.shape[0]), int(frame._rgb.shape[1])
        return out

    def close(self) -> None:
        """Wake every waiter for good (shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed
