"""Image losses and metrics shared by every training stage: L1, SSIM and PSNR.

Images are float tensors in [0, 1], channels last: ``[H, W, C]`` or ``[B, H, W, C]``
(the renderer's layout). Every function is differentiable with respect to ``pred``.
"""

from typing import Optional

import torch
import torch.nn.functional as F

#: Gaussian window of the structural similarity index (Wang et al. 2004).
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


def _batched(image: torch.Tensor) -> torch.Tensor:
    """Return ``image`` as ``[B, C, H, W]`` from ``[H, W, C]`` or ``[B, H, W, C]``."""
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4:
        raise ValueError(f"expected an image [H,W,C] or [B,H,W,C], "
                         f"got shape {tuple(image.shape)}")
    return image.permute(0, 3, 1, 2)


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} "
                         f"differ in shape")


def l1_loss(pred: torch.Tensor, target: torch.Tensor,
            mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean absolute error.

    Args:
        pred, target: ``[..., H, W, C]`` images.
        mask: optional ``[..., H, W, 1]`` weights in [0, 1]; the mean is taken over the
            weighted pixels (all channels), so a mask selects where the loss counts.

    Returns:
        Scalar tensor.
    """
    _check_pair(pred, target)
    err = (pred - target).abs()
    if mask is None:
        return err.mean()
    weight = mask.expand_as(err)
    return (err * weight).sum() / weight.sum().clamp_min(1e-8)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA,
                    dtype: torch.dtype = torch.float32,
                    device: Optional[torch.device] = None) -> torch.Tensor:
    """Return a normalised 1-D Gaussian window ``[size]``."""
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of ``x [B, C, H, W]``, 'valid' (no padding) output."""
    c = x.shape[1]
    k = window.numel()
    horiz = window.view(1, 1, 1, k).expand(c, 1, 1, k)
    vert = window.view(1, 1, k, 1).expand(c, 1, k, 1)
    x = F.conv2d(x, horiz, groups=c)
    return F.conv2d(x, vert, groups=c)


def ssim_map(pred: torch.Tensor, target: torch.Tensor, window_size: int = SSIM_WINDOW,
             sigma: float = SSIM_SIGMA, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel SSIM with a Gaussian window.

    Local means, variances and covariance are Gaussian-weighted averages (window
    ``window_size`` px, std ``sigma`` px); only windows that lie fully inside the image are
    used ('valid'), so borders are never compared with padding.

    Args:
        pred, target: ``[H, W, C]`` or ``[B, H, W, C]``, values in ``[0, data_range]``.

    Returns:
        ``[B, C, H - window_size + 1, W - window_size + 1]`` SSIM values in [-1, 1].
    """
    _check_pair(pred, target)
    x, y = _batched(pred), _batched(target)
    if min(x.shape[-2:]) < window_size:
        raise ValueError(f"image {tuple(x.shape[-2:])} is smaller than the SSIM window "
                         f"({window_size} px)")
    window = gaussian_window(window_size, sigma, x.dtype, x.device)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_x, mu_y = _blur(x, window), _blur(y, window)
    var_x = _blur(x * x, window) - mu_x ** 2
    var_y = _blur(y * y, window) - mu_y ** 2
    cov = _blur(x * y, window) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2)
    return num / den


def ssim(pred: torch.Tensor, target: torch.Tensor, window_size: int = SSIM_WINDOW,
         sigma: float = SSIM_SIGMA, data_range: float = 1.0) -> torch.Tensor:
    """Mean structural similarity (SSIM) of two images; 1 means identical.

    See :func:`ssim_map` for the arguments. Returns a scalar tensor (mean over batch,
    channels and pixels).
    """
    return ssim_map(pred, target, window_size, sigma, data_range).mean()


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return ``1 - SSIM``, a loss in [0, 2] that is 0 for identical images."""
    return 1.0 - ssim(pred, target)


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None,
         data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(range^2 / MSE)``.

    Args:
        pred, target: ``[..., H, W, C]`` images.
        mask: optional ``[..., H, W, 1]`` weights; the MSE is taken over weighted pixels.

    Returns:
        Scalar tensor (dB); identical images give a large finite value (MSE floored at 1e-10).
    """
    _check_pair(pred, target)
    err = (pred - target) ** 2
    if mask is None:
        mse = err.mean()
    else:
        weight = mask.expand_as(err)
        mse = (err * weight).sum() / weight.sum().clamp_min(1e-8)
    return 10.0 * torch.log10(data_range ** 2 / mse.clamp_min(1e-10))
