"""Gaussian splatting renderer: one ``rasterize`` over gsplat (CUDA) or PyTorch (anywhere).

Conventions (see docs/ARCHITECTURE.md): world ``+Y`` up, the face looks along ``+Z``;
cameras are OpenCV pinholes (``viewmat`` world -> camera, ``K`` in pixels, pixel centres
at ``+0.5``). Both backends reproduce gsplat 1.5.3's ``rasterization(packed=False)``.
"""

import logging
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from gemo_ros.render.camera import camera_position, intrinsics, look_at, orbit_camera

__all__ = ["rasterize", "warm_up", "orbit_camera", "look_at", "intrinsics", "camera_position",
           "BACKENDS"]

LOG = logging.getLogger(__name__)

#: Accepted values of ``backend``.
BACKENDS = ("auto", "torch", "gsplat", "numba")

_LOGGED_CHOICES = set()


def _log_once(key: Tuple, message: str) -> None:
    if key not in _LOGGED_CHOICES:
        _LOGGED_CHOICES.add(key)
        LOG.info(message)


def _numba_reason(device: torch.device, dtype: torch.dtype, need_grad: bool) -> str:
    """Return why the numba CPU rasterizer cannot take this call ("" = it can)."""
    if device.type != "cpu":
        return f"tensors on {device.type}, not CPU"
    if need_grad:
        return "an input requires grad (numba is inference-only)"
    if dtype != torch.float32:
        return f"dtype {dtype} (numba kernels are float32)"
    from gemo_ros.render._numba_backend import numba_available
    ok, reason = numba_available()
    return "" if ok else reason


def _choose_backend(backend: str, device: torch.device, dtype: torch.dtype = torch.float32,
                    need_grad: bool = False) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    if backend == "numba":
        reason = _numba_reason(device, dtype, need_grad)
        if reason:
            raise ValueError(f"backend='numba' cannot render this call: {reason}")
        return "numba"
    from gemo_ros.render._gsplat_backend import gsplat_available
    if backend == "gsplat":
        if device.type != "cuda":
            raise ValueError("backend='gsplat' needs CUDA tensors (gsplat never runs on CPU)")
        ok, reason = gsplat_available()
        if not ok:
            raise RuntimeError(f"backend='gsplat' requested but {reason}")
        return "gsplat"
    if device.type == "cuda":
        ok, reason = gsplat_available()
        if ok:
            _log_once(("auto", "gsplat"), f"render backend: gsplat ({reason})")
            return "gsplat"
        _log_once(("auto", "torch", reason), f"render backend: torch ({reason})")
        return "torch"
    reason = _numba_reason(device, dtype, need_grad)
    if not reason:
        _log_once(("auto", "numba"), "render backend: numba (CPU tensors, no gradient needed)")
        return "numba"
    _log_once(("auto", "torch", device.type, reason),
              f"render backend: torch (tensors on {device.type}; numba skipped: {reason})")
    return "torch"


def warm_up(backend: str) -> None:
    """Compile or load a backend's kernels now, so the first real frame is not slow.

    Only the numba CPU backend compiles lazily (seconds once per machine, then a disk cache);
    for the other backends this does nothing.
    """
    if backend == "numba":
        from gemo_ros.render._numba_backend import warm_up as warm_numba

        warm_numba()


def _check(name: str, tensor: Tensor, shape: Tuple, ndim: Optional[int] = None) -> None:
    """Raise a ValueError naming ``name`` unless ``tensor`` matches ``shape`` (-1 = any)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    ok = tensor.dim() == len(shape) and all(
        want < 0 or got == want for got, want in zip(tensor.shape, shape))
    if not ok:
        raise ValueError(f"{name} must have shape {list(shape)} (-1 = any), "
                         f"got {list(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {tensor.dtype}")


def rasterize(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
              colors: Tensor, viewmat: Tensor, K: Tensor, width: int, height: int,
              background: Optional[Tensor] = None, backend: str = "auto",
              antialiased: bool = False, sh_degree: Optional[int] = None,
              eps2d: float = 0.3, near_plane: float = 0.01, far_plane: float = 1e10
              ) -> Tuple[Tensor, Tensor, Dict]:
    """Render 3D Gaussians into one or several pinhole cameras (gsplat conventions).

    Args:
        means: ``[N, 3]`` centres, metres, world frame.
        quats: ``[N, 4]`` rotations as ``wxyz`` quaternions (normalised internally).
        scales: ``[N, 3]`` standard deviations along the rotated axes, metres (linear,
            not log).
        opacities: ``[N]`` in ``[0, 1]`` (after the sigmoid).
        colors: ``[N, D]`` colours (linear RGB for ``D = 3``), or SH coefficients
            ``[N, K, 3]`` with ``K >= (sh_degree + 1)^2``; SH colours get ``+0.5`` and are
            clamped at 0 as in 3DGS.
        viewmat: ``[4, 4]`` world -> camera (OpenCV axes), or ``[C, 4, 4]`` for a batch.
        K: ``[3, 3]`` or ``[C, 3, 3]`` intrinsics in pixels (pixel centres at ``+0.5``).
        width, height: image size in pixels.
        background: ``[D]`` or ``[C, D]`` colour behind the Gaussians (None = black, i.e.
            premultiplied output).
        backend: ``"auto"`` (gsplat for CUDA tensors when its kernels work; for float32
            CPU tensors when no gradient is needed the compiled numba rasterizer, if numba
            imports; else torch), ``"torch"`` (always the differentiable PyTorch path),
            ``"gsplat"`` (CUDA only) or ``"numba"`` (CPU, float32, no grad; inference only).
        antialiased: gsplat's ``rasterize_mode="antialiased"`` (opacity times
            ``sqrt(det(cov2d) / det(cov2d + eps2d))``) instead of ``"classic"``.
        sh_degree: SH degree (0..4) used when ``colors`` holds SH coefficients; None with a
            3-D ``colors`` infers it from ``K`` (must be a perfect square).
        eps2d: screen-space blur added to the 2D covariance, px^2.
        near_plane, far_plane: depth range (metres) outside which Gaussians are culled.

    Returns:
        ``rgb``: ``[H, W, D]`` (``[C, H, W, D]`` for a batch of cameras), premultiplied
        colour plus ``(1 - alpha) * background``; ``alpha``: ``[H, W, 1]`` (``[C, H, W,
        1]``) accumulated opacity ``1 - T``; ``info``: dict with ``backend`` and gsplat's
        per-Gaussian projections ``radii [C, N, 2]``, ``means2d [C, N, 2]``, ``depths``,
        ``conics``, ``opacities``; the torch backend adds ``path`` (``"tiles"`` or
        ``"pairs"``) and ``n_pairs`` (alpha evaluations done).

    The torch backend is differentiable with autograd in every input tensor. It composites
    dense 4x4 pixel tiles front to back with early termination (``info["path"] ==
    "tiles"``; in-place and fastest under ``torch.no_grad()``); its reference
    implementation over exact per-pixel pair lists ("pairs") agrees to ~1e-6. The numba
    backend (``info["path"] == "numba"``) runs the same maths as compiled per-pixel loops,
    many times faster on a CPU; it agrees with the tiles path to ~1e-6. Its first call in a
    process compiles the kernels (seconds; then cached on disk).
    """
    _check("means", means, (-1, 3))
    n = means.shape[0]
    _check("quats", quats, (n, 4))
    _check("scales", scales, (n, 3))
    _check("opacities", opacities, (n,))
    if colors.dim() == 2:
        _check("colors", colors, (n, -1))
        if sh_degree is not None:
            raise ValueError("sh_degree is set but colors is [N, D]; SH needs [N, K, 3]")
    else:
        _check("colors", colors, (n, -1, 3))
        n_coeffs = colors.shape[1]
        if sh_degree is None:
            sh_degree = int(round(n_coeffs ** 0.5)) - 1
            if (sh_degree + 1) ** 2 != n_coeffs:
                raise ValueError(f"colors has {n_coeffs} SH coefficients, not a square; "
                                 "pass sh_degree")
        if not 0 <= sh_degree <= 4 or (sh_degree + 1) ** 2 > n_coeffs:
            raise ValueError(f"sh_degree {sh_degree} needs (sh_degree+1)^2 <= {n_coeffs} "
                             "coefficients and 0 <= sh_degree <= 4")
    batched = viewmat.dim() == 3
    viewmats = viewmat if batched else viewmat[None]
    _check("viewmat", viewmats, (-1, 4, 4))
    n_cams = viewmats.shape[0]
    Ks = K if K.dim() == 3 else K[None].expand(n_cams, 3, 3)
    _check("K", Ks, (n_cams, 3, 3))
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    width, height = int(width), int(height)
    n_ch = colors.shape[-1]
    backgrounds = None
    if background is not None:
        background = torch.as_tensor(background, dtype=means.dtype, device=means.device)
        if background.dim() == 1:
            background = background[None].expand(n_cams, -1)
        _check("background", background, (n_cams, n_ch))
        backgrounds = background
    devices = {t.device for t in (means, quats, scales, opacities, colors, viewmats, Ks)}
    if len(devices) != 1:
        raise ValueError(f"all tensors must be on one device, got {sorted(map(str, devices))}")

    inputs = (means, quats, scales, opacities, colors, viewmats, Ks) + (
        (backgrounds,) if backgrounds is not None else ())
    need_grad = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
    dtypes = {t.dtype for t in inputs}
    dtype = dtypes.pop() if len(dtypes) == 1 else None
    choice = _choose_backend(backend, means.device, dtype, need_grad)
    if choice == "gsplat":
        from gemo_ros.render._gsplat_backend import rasterize_gsplat as impl
    elif choice == "numba":
        from gemo_ros.render._numba_backend import rasterize_numba as impl
    else:
        from gemo_ros.render._torch_backend import rasterize_torch as impl
    rgb, alpha, info = impl(means, quats, scales, opacities, colors, viewmats, Ks, width,
                            height, backgrounds=backgrounds, antialiased=antialiased,
                            sh_degree=sh_degree, eps2d=eps2d, near_plane=near_plane,
                            far_plane=far_plane)
    info["backend"] = choice
    if not batched:
        rgb, alpha = rgb[0], alpha[0]
    return rgb, alpha, info
