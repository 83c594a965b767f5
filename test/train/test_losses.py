"""Specifications of the shared image losses and metrics (L1, SSIM, PSNR)."""

import math

import pytest
import torch

from gemo_ros.train.losses import l1_loss, psnr, ssim, ssim_loss


def test_ssim_of_identical_images_is_one() -> None:
    img = torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(0))
    assert ssim(img, img).item() == pytest.approx(1.0, abs=1e-5)


def test_ssim_of_constant_images_matches_the_closed_form() -> None:
    a, b = 0.3, 0.7
    c1 = 0.01 ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # variances are zero
    value = ssim(torch.full((24, 24, 3), a), torch.full((24, 24, 3), b)).item()
    assert value == pytest.approx(expected, rel=1e-4)


def test_ssim_drops_with_noise_and_is_symmetric() -> None:
    g = torch.Generator().manual_seed(1)
    img = torch.rand(40, 40, 3, generator=g)
    small = (img + 0.05 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    large = (img + 0.3 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    assert 1.0 > ssim(small, img).item() > ssim(large, img).item()
    assert ssim(small, img).item() == pytest.approx(ssim(img, small).item(), abs=1e-6)


def test_ssim_loss_is_differentiable() -> None:
    target = torch.rand(2, 20, 20, 3)
    pred = torch.rand(2, 20, 20, 3, requires_grad=True)
    ssim_loss(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_psnr_of_uniform_error_matches_definition() -> None:
    target = torch.zeros(8, 8, 3)
    pred = torch.full((8, 8, 3), 0.1)
    assert psnr(pred, target).item() == pytest.approx(20.0, abs=1e-4)
    assert psnr(pred, target).item() == pytest.approx(-10 * math.log10(0.01), abs=1e-4)


def test_masked_losses_only_count_masked_pixels() -> None:
    target = torch.zeros(8, 8, 3)
    pred = torch.zeros(8, 8, 3)
    pred[:, :4] = 1.0
    mask = torch.zeros(8, 8, 1)
    mask[:, 4:] = 1.0
    assert l1_loss(pred, target, mask).item() == 0.0
    assert l1_loss(pred, target).item() == pytest.approx(0.5)


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        l1_loss(torch.zeros(4, 4, 3), torch.zeros(4, 5, 3))
