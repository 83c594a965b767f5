"""Parity of the torch backend with gsplat 1.5.3 on CUDA (skipped without a GPU)."""

import pytest
import torch

from gemo_ros.render import orbit_camera, rasterize

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs an NVIDIA GPU: gsplat's rasterizer never runs on CPU"),
]


def _scene(n, seed, device):
    gen = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=gen) - 0.5) * torch.tensor([0.18, 0.24, 0.2])
    quats = torch.randn(n, 4, generator=gen)
    scales = torch.rand(n, 3, generator=gen) * 0.004 + 0.0005
    opac = torch.rand(n, generator=gen)
    colors = torch.rand(n, 3, generator=gen)
    sh = torch.randn(n, 9, 3, generator=gen) * 0.3
    return [t.to(device) for t in (means, quats, scales, opac, colors, sh)]


def _gsplat_or_skip():
    from gemo_ros.render._gsplat_backend import gsplat_available

    ok, reason = gsplat_available()
    if not ok:
        pytest.skip(reason)


@pytest.mark.parametrize("antialiased", [False, True])
@pytest.mark.parametrize("use_sh", [False, True])
def test_torch_backend_matches_gsplat_on_10k_gaussians(antialiased, use_sh):
    _gsplat_or_skip()
    dev = torch.device("cuda")
    means, quats, scales, opac, colors, sh = _scene(10_000, seed=0, device=dev)
    viewmat, K = orbit_camera(20.0, 10.0, 0.65, 25.0, 256, 256, device=dev)
    bg = torch.tensor([0.1, 0.2, 0.3], device=dev)
    col = sh if use_sh else colors
    out = {}
    for backend in ("gsplat", "torch"):
        rgb, alpha, info = rasterize(means, quats, scales, opac, col, viewmat, K, 256, 256,
                                     background=bg, backend=backend, antialiased=antialiased)
        assert info["backend"] == backend
        out[backend] = (rgb, alpha)
    torch.testing.assert_close(out["torch"][0], out["gsplat"][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out["torch"][1], out["gsplat"][1], atol=1e-4, rtol=1e-4)


def test_batched_cameras_match_gsplat():
    _gsplat_or_skip()
    dev = torch.device("cuda")
    means, quats, scales, opac, colors, _ = _scene(5_000, seed=1, device=dev)
    cams = [orbit_camera(yaw, 0.0, 0.65, 25.0, 128, 96, device=dev) for yaw in (-60, 0, 45)]
    viewmats = torch.stack([c[0] for c in cams])
    Ks = torch.stack([c[1] for c in cams])
    res = [rasterize(means, quats, scales, opac, colors, viewmats, Ks, 128, 96, backend=b)
           for b in ("gsplat", "torch")]
    torch.testing.assert_close(res[1][0], res[0][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(res[1][1], res[0][1], atol=1e-4, rtol=1e-4)


def test_auto_picks_gsplat_for_cuda_tensors():
    _gsplat_or_skip()
    dev = torch.device("cuda")
    means, quats, scales, opac, colors, _ = _scene(100, seed=2, device=dev)
    viewmat, K = orbit_camera(0.0, 0.0, 0.65, 25.0, 32, 32, device=dev)
    _, _, info = rasterize(means, quats, scales, opac, colors, viewmat, K, 32, 32)
    assert info["backend"] == "gsplat"
