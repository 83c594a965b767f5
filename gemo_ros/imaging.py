"""Images: float -> ``uint8`` (one helper, one rounding rule), PNG and JPEG, colours.

The rule: clamp to [0, 1], multiply by 255, round to the nearest level with ties to even
(``torch.round`` / ``np.rint``), cast to ``uint8``. So 0 -> 0, 1 -> 255, and a value
``x`` in [0, 1] lands within half a level of ``x * 255``. Inputs should be finite (NaN
has no defined level).
"""

import io
import os
from typing import Any, Tuple

import numpy as np


def to_uint8(image: Any) -> np.ndarray:
    """Return a float image in [0, 1] as a ``uint8`` numpy array of the same shape.

    Args:
        image: float ``torch.Tensor`` (any device, gradients ignored) or numpy array, any
            shape (typically ``[H, W, 3]``, ``[H, W, 4]`` or ``[B, H, W, 3]``), values in
            [0, 1]; values outside are clamped. Integer images raise TypeError (they are
            already levels, or need their own scale).

    Returns:
        ``np.ndarray`` of ``uint8`` levels 0..255, ``round(clamp(image, 0, 1) * 255)`` with
        ties to even, on the CPU. A tensor is converted on its own device and only the
        ``uint8`` result is copied to the CPU.
    """
    if isinstance(image, np.ndarray):
        if image.dtype.kind != "f":
            raise TypeError(f"to_uint8 takes a float image in [0, 1], got {image.dtype}")
        x = np.clip(image if image.itemsize >= 4 else image.astype(np.float32), 0.0, 1.0)
        x *= 255.0
        return np.rint(x, out=x).astype(np.uint8)
    import torch

    if not isinstance(image, torch.Tensor):
        raise TypeError(f"to_uint8 takes a torch tensor or numpy array, got {type(image)}")
    if not image.is_floating_point():
        raise TypeError(f"to_uint8 takes a float image in [0, 1], got {image.dtype}")
    x = image.detach()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    x = x.clamp(0.0, 1.0)
    return x.mul_(255.0).round_().to(torch.uint8).cpu().numpy()


def save_png(image: np.ndarray, path: str) -> None:
    """Write ``uint8 [H, W, 3]`` to a PNG, creating the parent folder."""
    from PIL import Image

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(image).save(path)


def parse_color(text: str) -> Tuple[float, float, float]:
    """Parse ``"0.9,0.9,0.95"`` (0..1) or ``"#e0e4ea"`` into an RGB triple in [0, 1]."""
    t = text.strip()
    if t.startswith("#") and len(t) == 7:
        return tuple(int(t[i:i + 2], 16) / 255.0 for i in (1, 3, 5))
    parts = [float(p) for p in t.split(",")]
    if len(parts) != 3 or not all(0.0 <= p <= 1.0 for p in parts):
        raise ValueError(f"background must be R,G,B in [0, 1] or #rrggbb, got {text!r}")
    return tuple(parts)


def check_rgb(rgb: Any) -> np.ndarray:
    """Return ``rgb`` as a C-contiguous ``uint8 [H, W, 3]`` array; ValueError otherwise."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 [H, W, 3], got {rgb.dtype} {list(rgb.shape)}")
    return np.ascontiguousarray(rgb)


def jpeg_bytes(rgb: Any, quality: int = 85) -> bytes:
    """Encode ``uint8 [H, W, 3]`` RGB as baseline JPEG bytes at ``quality`` (pillow)."""
    from PIL import Image as PILImage

    out = io.BytesIO()
    PILImage.fromarray(check_rgb(rgb), "RGB").save(out, format="JPEG", quality=int(quality))
    return out.getvalue()
