"""gsplat 1.5.3 backend: a thin wrapper over ``gsplat.rasterization`` (CUDA only)."""

import logging
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

LOG = logging.getLogger(__name__)

_AVAILABLE: Optional[bool] = None
_REASON = ""


def gsplat_available() -> Tuple[bool, str]:
    """Return ``(ok, reason)``: whether gsplat can rasterize here (CUDA + compiled kernels).

    The check runs once per process: it imports gsplat and renders one tiny Gaussian on
    the current CUDA device, which triggers (and caches) the JIT build of gsplat's CUDA
    code where needed.
    """
    global _AVAILABLE, _REASON
    if _AVAILABLE is not None:
        return _AVAILABLE, _REASON
    if not torch.cuda.is_available():
        _AVAILABLE, _REASON = False, "CUDA is not available"
        return _AVAILABLE, _REASON
    try:
        import gsplat
        dev = torch.device("cuda")
        gsplat.rasterization(
            torch.tensor([[0.0, 0.0, 1.0]], device=dev),
            torch.tensor([[1.0, 0.0, 0.0, 0.0]], device=dev),
            torch.full((1, 3), 0.1, device=dev), torch.ones(1, device=dev),
            torch.ones(1, 3, device=dev), torch.eye(4, device=dev)[None],
            torch.tensor([[[8.0, 0.0, 4.0], [0.0, 8.0, 4.0], [0.0, 0.0, 1.0]]], device=dev),
            8, 8, packed=False)
        torch.cuda.synchronize()
        _AVAILABLE, _REASON = True, f"gsplat {gsplat.__version__} CUDA kernels work"
    except Exception as exc:  # noqa: BLE001 - any build/runtime failure means "use torch"
        _AVAILABLE, _REASON = False, f"gsplat CUDA rasterizer unusable: {exc!r}"
    return _AVAILABLE, _REASON


def rasterize_gsplat(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
                     colors: Tensor, viewmats: Tensor, Ks: Tensor, width: int, height: int,
                     backgrounds: Optional[Tensor] = None, antialiased: bool = False,
                     sh_degree: Optional[int] = None, eps2d: float = 0.3,
                     near_plane: float = 0.01, far_plane: float = 1e10
                     ) -> Tuple[Tensor, Tensor, Dict]:
    """Rasterize with ``gsplat.rasterization`` (packed=False); same contract as the torch one.

    Raises ``RuntimeError`` for CPU tensors: gsplat's rasterizer must never run there.
    """
    if means.device.type != "cuda":
        raise RuntimeError("the gsplat backend needs CUDA tensors; use backend='torch' on CPU")
    import gsplat
    rgb, alpha, meta = gsplat.rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, sh_degree=sh_degree,
        packed=False, backgrounds=backgrounds,
        rasterize_mode="antialiased" if antialiased else "classic")
    info = {key: meta.get(key) for key in ("radii", "means2d", "depths", "conics",
                                           "opacities")}
    info.update(width=width, height=height)
    return rgb, alpha, info
