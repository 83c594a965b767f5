"""Float image -> ``uint8`` conversion: one helper, one rounding rule, used everywhere.

The rule: clamp to [0, 1], multiply by 255, round to the nearest level with ties to even
(``torch.round`` / ``np.rint``), cast to ``uint8``. So 0 -> 0, 1 -> 255, and a value
``x`` in [0, 1] lands within half a level of ``x * 255``. Inputs should be finite (NaN
has no defined level).
"""

from typing import Any

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
