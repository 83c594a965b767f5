"""Specs for the numba CPU rasterizer: the torch tiles path's results, compiled."""

import math

import pytest
import torch

import gemo_ros.render as render
from gemo_ros.render import orbit_camera, rasterize
from gemo_ros.render._torch_backend import rasterize_torch

numba_backend = pytest.importorskip("gemo_ros.render._numba_backend")
if not numba_backend.numba_available()[0]:
    pytest.skip(f"numba unavailable: {numba_backend.numba_available()[1]}",
                allow_module_level=True)
rasterize_numba = numba_backend.rasterize_numba


def _scene(n, seed, sh=0):
    """Return random Gaussians in a head-sized box around the origin (colours or SH)."""
    gen = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=gen) - 0.5) * torch.tensor([0.18, 0.24, 0.2])
    quats = torch.randn(n, 4, generator=gen)
    scales = torch.rand(n, 3, generator=gen) * 0.012 + 0.001
    opac = torch.rand(n, generator=gen)
    opac[: n // 10] = 1.0  # exercises the 0.999 clamp
    if sh:
        colors = torch.randn(n, (sh + 1) ** 2, 3, generator=gen) * 0.3
    else:
        colors = torch.rand(n, 3, generator=gen)
    return means, quats, scales, opac, colors


def _cameras(width, height, yaws=(0.0,)):
    cams = [orbit_camera(yaw, 8.0, 0.65, 25.0, width, height) for yaw in yaws]
    return torch.stack([c[0] for c in cams]), torch.stack([c[1] for c in cams])


def _both(g, viewmats, Ks, width, height, **kw):
    """Render with the torch ``pairs`` reference, torch ``tiles`` and numba; check agreement.

    numba must equal the exact reference to 1e-5 everywhere and the tiles path to 1e-5 on
    all but at most 0.1 % of pixels: the tiles path thresholds alpha in the log domain, so a
    pair within rounding of 1/255 can flip there (the reference and numba test alpha itself).
    Returns ``(tiles, numba)`` outputs.
    """
    with torch.no_grad():
        ref = rasterize_torch(*g, viewmats, Ks, width, height, path="pairs", **kw)
        want = rasterize_torch(*g, viewmats, Ks, width, height, path="tiles", **kw)
        got = rasterize_numba(*g, viewmats, Ks, width, height, **kw)
    assert torch.allclose(got[0], ref[0], atol=1e-5)
    assert torch.allclose(got[1], ref[1], atol=1e-5)
    off = ((got[0] - want[0]).abs().amax(-1) > 1e-5) | ((got[1] - want[1]).abs()[..., 0] > 1e-5)
    assert off.float().mean() <= 1e-3
    return want, got


def _close(got, want):
    """Whether two images agree to 1e-5 on all but at most 0.1 % of pixels."""
    off = (got - want).abs().amax(-1) > 1e-5
    return bool(off.float().mean() <= 1e-3)


@pytest.mark.parametrize("seed,width,height", [(0, 48, 40), (1, 61, 37), (2, 96, 96)])
@pytest.mark.parametrize("antialiased", [False, True])
def test_numba_matches_torch_tiles_on_random_scenes(seed, width, height, antialiased):
    g = _scene(1500, seed)
    viewmats, Ks = _cameras(width, height)
    bg = torch.rand(1, 3, generator=torch.Generator().manual_seed(seed))
    want, got = _both(g, viewmats, Ks, width, height, backgrounds=bg, antialiased=antialiased)
    assert got[2]["path"] == "numba"
    assert want[1].max() > 0.999  # opaque pixels exercise the 1e-4 stop rule
    assert _close(got[0], want[0]) and _close(got[1], want[1])
    for key in ("means2d", "depths", "conics", "opacities"):
        assert torch.allclose(got[2][key], want[2][key], rtol=1e-5, atol=1e-6), key
    assert torch.equal(got[2]["radii"], want[2]["radii"])


def test_numba_matches_torch_with_batched_cameras_and_backgrounds():
    g = _scene(1200, 7)
    viewmats, Ks = _cameras(40, 32, yaws=(0.0, 35.0, -60.0))
    bgs = torch.rand(3, 3, generator=torch.Generator().manual_seed(3))
    want, got = _both(g, viewmats, Ks, 40, 32, backgrounds=bgs)
    assert got[0].shape == (3, 32, 40, 3) and got[1].shape == (3, 32, 40, 1)
    assert _close(got[0], want[0]) and _close(got[1], want[1])


def test_numba_matches_torch_with_sh_colours():
    g = _scene(1000, 11, sh=2)
    viewmats, Ks = _cameras(40, 40, yaws=(20.0, -40.0))
    want, got = _both(g, viewmats, Ks, 40, 40, sh_degree=2)
    assert _close(got[0], want[0]) and _close(got[1], want[1])


def test_numba_matches_torch_with_more_channels():
    means, quats, scales, opac, _ = _scene(800, 5)
    feats = torch.rand(800, 5, generator=torch.Generator().manual_seed(2))
    viewmats, Ks = _cameras(33, 29)
    want, got = _both((means, quats, scales, opac, feats), viewmats, Ks, 33, 29,
                      backgrounds=torch.rand(1, 5))
    assert got[0].shape == (1, 29, 33, 5)
    assert _close(got[0], want[0])


def test_two_threads_give_the_same_image_as_one():
    g = _scene(1500, 4)
    viewmats, Ks = _cameras(64, 64)
    with torch.no_grad():
        one = rasterize_numba(*g, viewmats, Ks, 64, 64, threads=1)
        two = rasterize_numba(*g, viewmats, Ks, 64, 64, threads=2)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


def test_single_gaussian_matches_analytic_falloff():
    size, focal, scale, depth, o = 17, 40.0, 0.05, 2.0, 0.9
    K = torch.tensor([[[focal, 0.0, size / 2.0], [0.0, focal, size / 2.0], [0.0, 0.0, 1.0]]])
    g = (torch.tensor([[0.0, 0.0, depth]]), torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
         torch.full((1, 3), scale), torch.tensor([o]), torch.tensor([[1.0, 0.5, 0.25]]))
    rgb, alpha, _ = rasterize_numba(*g, torch.eye(4)[None], K, size, size,
                                    backgrounds=torch.tensor([[0.0, 0.0, 1.0]]))
    var = (focal * scale / depth) ** 2 + 0.3
    c = size // 2
    for k in range(-c, c + 1):
        analytic = o * math.exp(-0.5 * k * k / var)
        got = alpha[0, c, c + k, 0].item()
        if analytic < 1.0 / 255.0:
            assert got == 0.0
        else:
            assert got == pytest.approx(analytic, rel=1e-5)
    want = torch.tensor([o, 0.5 * o, 0.25 * o + (1.0 - o)])
    assert torch.allclose(rgb[0, c, c], want, atol=1e-6)


def test_stop_rule_excludes_the_gaussian_that_would_end_transmittance():
    size = 9
    K = torch.tensor([[[20.0, 0.0, 4.5], [0.0, 20.0, 4.5], [0.0, 0.0, 1.0]]])
    means = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.1], [0.0, 0.0, 1.2]])
    g = (means, torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(3, 1), torch.full((3, 3), 0.05),
         torch.ones(3), torch.eye(3))
    rgb, alpha, _ = rasterize_numba(*g, torch.eye(4)[None], K, size, size)
    # 0.999 then 0.999 * 0.001 (T = 1e-6 would follow, so the third is excluded... and the
    # second would bring T to 1e-6 <= 1e-4, so it is excluded too).
    assert torch.allclose(rgb[0, 4, 4], torch.tensor([0.999, 0.0, 0.0]), atol=1e-6)
    assert alpha[0, 4, 4, 0].item() == pytest.approx(0.999, abs=1e-6)


def test_empty_and_culled_scenes_render_the_background():
    K = torch.tensor([[[20.0, 0.0, 8.0], [0.0, 20.0, 8.0], [0.0, 0.0, 1.0]]])
    bg = torch.tensor([[0.2, 0.4, 0.6]])
    empty = (torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0),
             torch.zeros(0, 3))
    behind = (torch.tensor([[0.0, 0.0, -1.0]]), torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
              torch.full((1, 3), 0.05), torch.ones(1), torch.ones(1, 3))
    for g in (empty, behind):
        rgb, alpha, _ = rasterize_numba(*g, torch.eye(4)[None], K, 16, 12, backgrounds=bg)
        assert rgb.shape == (1, 12, 16, 3)
        assert torch.equal(rgb, bg[:, None, None, :].expand(1, 12, 16, 3))
        assert torch.count_nonzero(alpha) == 0


def test_auto_picks_numba_on_cpu_without_grad():
    g = _scene(200, 1)
    viewmat, K = orbit_camera(0.0, 0.0, 0.65, 25.0, 32, 32)
    with torch.no_grad():
        _, _, info = rasterize(*g, viewmat, K, 32, 32)
    assert info["backend"] == "numba" and info["path"] == "numba"
    _, _, info = rasterize(*g, viewmat, K, 32, 32)  # grad mode on, but nothing needs grad
    assert info["backend"] == "numba"


def test_auto_uses_torch_when_a_gradient_is_needed():
    means, quats, scales, opac, colors = _scene(200, 1)
    viewmat, K = orbit_camera(0.0, 0.0, 0.65, 25.0, 32, 32)
    colors.requires_grad_(True)
    rgb, _, info = rasterize(means, quats, scales, opac, colors, viewmat, K, 32, 32)
    assert info["backend"] == "torch" and info["path"] == "tiles"
    rgb.sum().backward()
    assert colors.grad is not None and colors.grad.abs().sum() > 0


def test_backend_torch_still_forces_the_torch_path():
    g = _scene(200, 1)
    viewmat, K = orbit_camera(0.0, 0.0, 0.65, 25.0, 32, 32)
    with torch.no_grad():
        _, _, info = rasterize(*g, viewmat, K, 32, 32, backend="torch")
    assert info["backend"] == "torch"


def test_auto_falls_back_to_torch_without_numba(monkeypatch):
    monkeypatch.setattr(numba_backend, "numba_available", lambda: (False, "not installed"))
    g = _scene(200, 1)
    viewmat, K = orbit_camera(0.0, 0.0, 0.65, 25.0, 32, 32)
    with torch.no_grad():
        _, _, info = rasterize(*g, viewmat, K, 32, 32)
        assert info["backend"] == "torch"
        with pytest.raises(ValueError, match="numba"):
            rasterize(*g, viewmat, K, 32, 32, backend="numba")


def test_auto_uses_torch_for_float64():
    g = [t.double() for t in _scene(100, 1)]
    viewmat, K = orbit_camera(0.0, 0.0, 0.65, 25.0, 16, 16)
    with torch.no_grad():
        rgb, _, info = rasterize(*g, viewmat.double(), K.double(), 16, 16)
    assert info["backend"] == "torch" and rgb.dtype == torch.float64


def test_forced_numba_rejects_inputs_that_need_grad():
    means, quats, scales, opac, colors = _scene(50, 1)
    viewmat, K = orbit_camera(0.0, 0.0, 0.65, 25.0, 16, 16)
    means.requires_grad_(True)
    with pytest.raises(ValueError, match="requires grad"):
        rasterize(means, quats, scales, opac, colors, viewmat, K, 16, 16, backend="numba")
    assert "numba" in render.BACKENDS


def test_public_warm_up_readies_the_numba_kernels_before_the_first_frame() -> None:
    from gemo_ros.render import _numba_backend, warm_up

    _numba_backend._READY.discard("serial")
    warm_up("numba")
    assert "serial" in _numba_backend._READY
    warm_up("torch")  # nothing to compile: a no-op, not an error
