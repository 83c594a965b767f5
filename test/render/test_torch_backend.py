"""Specs for the torch rasterizer: gsplat 1.5.3's maths on small analytic scenes."""

import math

import pytest
import torch

from gemo_ros.render import rasterize
from gemo_ros.render._torch_backend import project, rasterize_torch, sh_bases

F = 40.0          # focal length, px
SIZE = 17         # image side, px; the centre pixel (8, 8) has its centre at (8.5, 8.5)
CENTRE = 8


def _camera(size=SIZE, focal=F):
    """Identity camera (looks along +Z) whose principal point is the centre pixel centre."""
    K = torch.tensor([[focal, 0.0, size / 2.0], [0.0, focal, size / 2.0], [0.0, 0.0, 1.0]])
    return torch.eye(4), K


def _gaussians(means, scale=0.02, opacity=0.8, color=(1.0, 0.5, 0.25)):
    means = torch.as_tensor(means, dtype=torch.float32).reshape(-1, 3)
    n = means.shape[0]
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1)
    scales = torch.full((n, 3), float(scale))
    opac = torch.as_tensor(opacity, dtype=torch.float32).reshape(-1).expand(n).clone()
    colors = torch.as_tensor(color, dtype=torch.float32).reshape(-1, 3).expand(n, 3).clone()
    return means, quats, scales, opac, colors


def _render(g, size=SIZE, **kw):
    viewmat, K = _camera(size)
    kw.setdefault("backend", "torch")
    return rasterize(*g, viewmat, K, size, size, **kw)


def _var2d(scale, depth):
    return (F * scale / depth) ** 2


def test_single_isotropic_gaussian_centre_pixel_is_opacity_times_colour():
    g = _gaussians([0.0, 0.0, 2.0], opacity=0.8)
    rgb, alpha, info = _render(g)
    assert info["backend"] == "torch"
    assert alpha[CENTRE, CENTRE, 0].item() == pytest.approx(0.8, abs=1e-6)
    assert torch.allclose(rgb[CENTRE, CENTRE], 0.8 * torch.tensor([1.0, 0.5, 0.25]), atol=1e-6)


def test_opacity_is_clamped_to_0999():
    rgb, alpha, _ = _render(_gaussians([0.0, 0.0, 2.0], opacity=1.0))
    assert alpha[CENTRE, CENTRE, 0].item() == pytest.approx(0.999, abs=1e-6)


def test_alpha_falls_off_as_blurred_gaussian():
    scale, depth = 0.05, 2.0
    _, alpha, _ = _render(_gaussians([0.0, 0.0, depth], scale=scale, opacity=0.9))
    var = _var2d(scale, depth) + 0.3
    for k in (1, 2, 3):
        want = 0.9 * math.exp(-0.5 * k * k / var)
        assert alpha[CENTRE, CENTRE + k, 0].item() == pytest.approx(want, rel=1e-5)
        assert alpha[CENTRE - k, CENTRE, 0].item() == pytest.approx(want, rel=1e-5)


def test_alpha_below_1_over_255_is_skipped():
    scale, depth = 0.05, 2.0
    _, alpha, _ = _render(_gaussians([0.0, 0.0, depth], scale=scale, opacity=0.9))
    var = _var2d(scale, depth) + 0.3
    row = alpha[CENTRE, :, 0]
    for k in range(-CENTRE, CENTRE + 1):
        analytic = 0.9 * math.exp(-0.5 * k * k / var)
        if analytic < 1.0 / 255.0:
            assert row[CENTRE + k].item() == 0.0
        else:
            assert row[CENTRE + k].item() > 0.0


def test_eps2d_blurs_a_tiny_gaussian():
    g = _gaussians([0.0, 0.0, 2.0], scale=1e-4, opacity=0.9)
    for eps in (0.3, 1.0):
        _, alpha, _ = _render(g, eps2d=eps)
        var = _var2d(1e-4, 2.0) + eps
        want = 0.9 * math.exp(-0.5 / var)
        assert alpha[CENTRE, CENTRE + 1, 0].item() == pytest.approx(want, rel=1e-4)


def test_antialiased_mode_scales_opacity_by_compensation():
    scale, depth = 0.01, 2.0
    var = _var2d(scale, depth)
    _, alpha, _ = _render(_gaussians([0.0, 0.0, depth], scale=scale, opacity=0.9),
                          antialiased=True)
    comp = var / (var + 0.3)  # sqrt(det ratio) of an isotropic 2x2 covariance
    assert alpha[CENTRE, CENTRE, 0].item() == pytest.approx(0.9 * comp, rel=1e-5)


@pytest.mark.parametrize("depth", [0.005, -1.0, 2e10])
def test_gaussians_outside_near_far_are_culled(depth):
    rgb, alpha, info = _render(_gaussians([0.0, 0.0, depth], scale=1e-3))
    assert alpha.abs().max().item() == 0.0
    assert rgb.abs().max().item() == 0.0
    assert int(info["radii"].abs().sum()) == 0


def test_gaussian_just_beyond_near_plane_is_drawn():
    _, alpha, _ = _render(_gaussians([0.0, 0.0, 0.02], scale=1e-5))
    assert alpha[CENTRE, CENTRE, 0].item() > 0.5


def test_nearer_gaussian_is_in_front_regardless_of_input_order():
    red, blue = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
    means = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 2.0]])
    colors = torch.tensor([red, blue])
    opac = torch.tensor([0.6, 0.5])
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(2, 1)
    scales = torch.tensor([[0.01] * 3, [0.02] * 3])  # same 2D size: 0.4 px at both depths
    want_rgb = 0.6 * torch.tensor(red) + 0.4 * 0.5 * torch.tensor(blue)
    for perm in ([0, 1], [1, 0]):
        rgb, alpha, _ = _render((means[perm], quats[perm], scales[perm], opac[perm],
                                 colors[perm]))
        assert torch.allclose(rgb[CENTRE, CENTRE], want_rgb, atol=1e-6)
        assert alpha[CENTRE, CENTRE, 0].item() == pytest.approx(1 - 0.4 * 0.5, abs=1e-6)


def test_compositing_stops_before_transmittance_reaches_1e4():
    # T after the first: 1e-3; the second would bring it to 1e-6 <= 1e-4, so it and all
    # later ones are excluded (gsplat's exclusive stop rule).
    means = [[0.0, 0.0, 1.0], [0.0, 0.0, 1.1], [0.0, 0.0, 1.2]]
    colors = torch.eye(3)
    g = list(_gaussians(means, scale=1e-4, opacity=1.0))
    g[4] = colors
    rgb, alpha, _ = _render(tuple(g), background=torch.tensor([0.0, 1.0, 0.0]))
    assert alpha[CENTRE, CENTRE, 0].item() == pytest.approx(0.999, abs=1e-6)
    assert torch.allclose(rgb[CENTRE, CENTRE], torch.tensor([0.999, 0.001, 0.0]), atol=1e-6)


def test_background_fills_remaining_transmittance():
    bg = torch.tensor([0.2, 0.3, 0.4])
    rgb, alpha, _ = _render(_gaussians([0.0, 0.0, 2.0], opacity=0.8), background=bg)
    assert torch.allclose(rgb[0, 0], bg)  # empty corner
    want = 0.8 * torch.tensor([1.0, 0.5, 0.25]) + 0.2 * bg
    assert torch.allclose(rgb[CENTRE, CENTRE], want, atol=1e-6)


def test_empty_scene_renders_background():
    g = _gaussians([0.0, 0.0, -2.0])
    rgb, alpha, _ = _render(g, background=torch.tensor([0.1, 0.2, 0.3]))
    assert torch.allclose(rgb, torch.tensor([0.1, 0.2, 0.3]).expand_as(rgb))
    assert alpha.abs().max().item() == 0.0


def test_sh_degree0_colour_is_c0_times_coefficient_plus_half():
    means, quats, scales, opac, _ = _gaussians([0.0, 0.0, 2.0], opacity=0.8)
    sh = torch.tensor([[[0.5, -0.5, -3.0]]])
    rgb, _, _ = _render((means, quats, scales, opac, sh))
    c0 = 0.28209479177387814
    want = 0.8 * torch.clamp_min(c0 * sh[0, 0] + 0.5, 0.0)
    assert torch.allclose(rgb[CENTRE, CENTRE], want, atol=1e-6)


def test_sh_bases_match_gsplat_reference_up_to_degree4():
    from gsplat.cuda._torch_impl import _eval_sh_bases_fast  # pure torch, CPU-safe

    dirs = torch.nn.functional.normalize(torch.randn(64, 3, generator=torch.Generator()
                                                     .manual_seed(0)), dim=-1)
    for degree in range(5):
        n = (degree + 1) ** 2
        assert torch.allclose(sh_bases(degree, dirs), _eval_sh_bases_fast(n, dirs), atol=1e-6)


def test_sh_colours_depend_on_view_direction():
    means, quats, scales, opac, _ = _gaussians([[-0.3, 0.0, 2.0], [0.3, 0.0, 2.0]])
    sh = torch.zeros(2, 4, 3)
    sh[:, 3, :] = 1.0  # the x band: -C1 * x
    rgb, _, _ = _render((means, quats, scales, opac, sh), size=33)
    left, right = rgb[16, 16 - 6], rgb[16, 16 + 6]
    assert left[0] > right[0] > 0.0


def _random_scene(n, seed, spread=0.6, depth=2.0):
    gen = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=gen) - 0.5) * spread
    means[:, 2] = means[:, 2] + depth
    quats = torch.randn(n, 4, generator=gen)
    scales = torch.rand(n, 3, generator=gen) * 0.03 + 0.002
    opac = torch.rand(n, generator=gen)
    colors = torch.rand(n, 3, generator=gen)
    return means, quats, scales, opac, colors


def _brute_force(proj, colors, size, bg):
    """Per-pixel, per-Gaussian loop with gsplat's rules (slow, obviously correct)."""
    m2d = proj["means2d"][0].tolist()
    con = proj["conics"][0].tolist()
    opac = proj["opacities"][0].tolist()
    valid = proj["valid"][0].tolist()
    cols = colors.tolist()
    ids = [i for i in torch.argsort(proj["depths"][0], stable=True).tolist() if valid[i]]
    rgb = torch.zeros(size, size, 3, dtype=torch.float64)
    acc = torch.zeros(size, size, dtype=torch.float64)
    for py in range(size):
        for px in range(size):
            trans, out = 1.0, [0.0, 0.0, 0.0]
            for i in ids:
                dx, dy = m2d[i][0] - (px + 0.5), m2d[i][1] - (py + 0.5)
                a, b, c = con[i]
                sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
                alpha = min(0.999, opac[i] * math.exp(-sigma))
                if sigma < 0 or alpha < 1.0 / 255.0:
                    continue
                nxt = trans * (1.0 - alpha)
                if nxt <= 1e-4:
                    break
                out = [o + col * alpha * trans for o, col in zip(out, cols[i])]
                trans = nxt
            rgb[py, px] = torch.tensor(out, dtype=torch.float64) + trans * bg.double()
            acc[py, px] = 1.0 - trans
    return rgb, acc


@pytest.mark.parametrize("path", ["pairs", "tiles"])
@pytest.mark.parametrize("antialiased", [False, True])
def test_random_scene_matches_brute_force_reference(antialiased, path):
    size, bg = 24, torch.tensor([0.3, 0.1, 0.7])
    g = _random_scene(40, seed=3)
    viewmat, K = _camera(size, focal=30.0)
    with torch.no_grad():
        rgb, alpha, info = rasterize_torch(*g, viewmat[None], K[None], size, size,
                                           backgrounds=bg[None], antialiased=antialiased,
                                           path=path)
    assert info["path"] == path
    rgb, alpha = rgb[0], alpha[0]
    proj = project(g[0], g[1], g[2], g[3], viewmat[None], K[None], size, size, 0.3, 0.01,
                   1e10, antialiased)
    want_rgb, want_acc = _brute_force(proj, g[4], size, bg)
    assert torch.allclose(rgb.double(), want_rgb, atol=2e-5)
    assert torch.allclose(alpha[..., 0].double(), want_acc, atol=2e-5)


def test_batched_cameras_equal_single_renders():
    from gemo_ros.render import orbit_camera

    g = _random_scene(200, seed=5, depth=0.0)
    cams = [orbit_camera(yaw, pitch, 2.0, 30.0, 32, 24) for yaw, pitch in
            ((0, 0), (40, 10), (-70, -20))]
    viewmats = torch.stack([c[0] for c in cams])
    Ks = torch.stack([c[1] for c in cams])
    bgs = torch.rand(3, 3, generator=torch.Generator().manual_seed(1))
    rgb_b, alpha_b, _ = rasterize(*g, viewmats, Ks, 32, 24, background=bgs, backend="torch")
    assert rgb_b.shape == (3, 24, 32, 3) and alpha_b.shape == (3, 24, 32, 1)
    for i, (viewmat, K) in enumerate(cams):
        rgb, alpha, _ = rasterize(*g, viewmat, K, 32, 24, background=bgs[i], backend="torch")
        assert torch.allclose(rgb_b[i], rgb, atol=1e-6)
        assert torch.allclose(alpha_b[i], alpha, atol=1e-6)


@pytest.mark.parametrize("antialiased", [False, True])
@pytest.mark.parametrize("n_cams", [1, 2])
def test_inference_tiles_match_differentiable_pairs(antialiased, n_cams):
    from gemo_ros.render import orbit_camera

    means, quats, scales, opac, _ = _random_scene(3000, seed=13, depth=0.0)
    means = means * 0.4
    sh = torch.randn(3000, 9, 3, generator=torch.Generator().manual_seed(4)) * 0.4
    cams = [orbit_camera(yaw, 5.0, 0.65, 25.0, 70, 45) for yaw in (10.0, -50.0)][:n_cams]
    viewmats = torch.stack([c[0] for c in cams])
    Ks = torch.stack([c[1] for c in cams])
    bgs = torch.rand(n_cams, 3, generator=torch.Generator().manual_seed(5))
    out = {}
    for path in ("pairs", "tiles"):
        with torch.no_grad():
            out[path] = rasterize_torch(means, quats, scales * 0.3, opac, sh, viewmats, Ks, 70,
                                        45, backgrounds=bgs, antialiased=antialiased,
                                        sh_degree=2, path=path)
    assert out["pairs"][1].max() > 0.999  # opaque regions exercise the 1e-4 stop rule
    assert torch.allclose(out["tiles"][0], out["pairs"][0], atol=1e-5)
    assert torch.allclose(out["tiles"][1], out["pairs"][1], atol=1e-5)


def test_tiles_path_handles_many_tiles(monkeypatch):
    import gemo_ros.render._torch_backend as backend

    g = _random_scene(300, seed=21, depth=0.0)
    from gemo_ros.render import orbit_camera

    viewmat, K = orbit_camera(0.0, 0.0, 2.0, 30.0, 40, 40)
    with torch.no_grad():
        want = rasterize_torch(*g, viewmat[None], K[None], 40, 40, path="tiles")
        monkeypatch.setattr(backend, "_INT16_TILES", 0)  # force the int32 sort keys
        got = rasterize_torch(*g, viewmat[None], K[None], 40, 40, path="tiles")
    assert torch.equal(want[0], got[0]) and torch.equal(want[1], got[1])


def test_rasterize_uses_the_tiles_path_with_and_without_grad():
    g = _gaussians([0.0, 0.0, 2.0])
    _, _, info = _render(g)
    assert info["path"] == "tiles"
    g[0].requires_grad_(True)
    _, _, info = _render(g)
    assert info["path"] == "tiles"


def test_tiles_gradients_match_pairs_reference():
    from gemo_ros.render import orbit_camera

    base = list(_random_scene(1500, seed=17, depth=0.0))
    base[0] = base[0] * 0.4
    base[2] = base[2] * 0.3
    base[3] = 0.5 + 0.5 * base[3]  # opaque enough to hit the 1e-4 stop
    base[4] = torch.randn(1500, 4, 3, generator=torch.Generator().manual_seed(6)) * 0.3
    viewmat, K = orbit_camera(15.0, -5.0, 0.65, 25.0, 40, 36)
    bg = torch.tensor([[0.2, 0.4, 0.6]])
    weights = torch.rand(1, 36, 40, 3, generator=torch.Generator().manual_seed(7))
    res = {}
    for path in ("pairs", "tiles"):
        inputs = [t.clone().requires_grad_(True) for t in base]
        vm = viewmat.clone().requires_grad_(True)
        rgb, alpha, info = rasterize_torch(*inputs, vm[None], K[None], 40, 36,
                                           backgrounds=bg, sh_degree=1,
                                           path=path)
        ((rgb * weights).sum() + alpha.sum()).backward()
        res[path] = (rgb.detach(), alpha.detach(), [t.grad for t in inputs] + [vm.grad])
    assert int((res["pairs"][1] > 0.9998).sum()) > 10  # pixels that hit the 1e-4 stop
    assert torch.allclose(res["tiles"][0], res["pairs"][0], atol=1e-5)
    assert torch.allclose(res["tiles"][1], res["pairs"][1], atol=1e-5)
    names = ["means", "quats", "scales", "opacities", "colors", "viewmat"]
    for name, want, got in zip(names, res["pairs"][2], res["tiles"][2]):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max())), name


def test_gradients_flow_to_every_input():
    means, quats, scales, opac, _ = _random_scene(30, seed=7)
    sh = torch.randn(30, 4, 3, generator=torch.Generator().manual_seed(2)) * 0.3
    viewmat, K = _camera(24, focal=30.0)
    bg = torch.tensor([0.2, 0.2, 0.2])
    inputs = [means, quats, scales, opac, sh, viewmat, K, bg]
    for t in inputs:
        t.requires_grad_(True)
    rgb, alpha, _ = rasterize(means, quats, scales, opac, sh, viewmat, K, 24, 24,
                              background=bg, backend="torch", antialiased=True)
    weights = torch.rand(rgb.shape, generator=torch.Generator().manual_seed(3))
    ((rgb * weights).sum() + alpha.sum()).backward()
    names = ["means", "quats", "scales", "opacities", "colors", "viewmat", "K", "background"]
    for name, t in zip(names, inputs):
        assert t.grad is not None, name
        assert torch.isfinite(t.grad).all(), name
        assert t.grad.abs().sum() > 0, name


def test_gradient_of_means_matches_finite_difference():
    g = list(_random_scene(12, seed=11))
    viewmat, K = _camera(20, focal=30.0)
    means = g[0].double().requires_grad_(True)
    rest = [t.double() for t in g[1:]]

    def loss(m):
        rgb, _, _ = rasterize(m, *rest, viewmat.double(), K.double(), 20, 20, backend="torch")
        return (rgb * torch.linspace(0, 1, 3, dtype=torch.float64)).sum()

    loss(means).backward()
    eps = 1e-6
    for i, j in ((0, 0), (3, 1), (7, 2)):
        bump = torch.zeros_like(means)
        bump[i, j] = eps
        num = (loss(means.detach() + bump) - loss(means.detach() - bump)) / (2 * eps)
        assert means.grad[i, j].item() == pytest.approx(num.item(), rel=1e-3, abs=1e-6)


def test_bad_inputs_raise_clear_errors():
    g = list(_gaussians([0.0, 0.0, 2.0]))
    viewmat, K = _camera()
    with pytest.raises(ValueError, match="quats"):
        rasterize(g[0], g[1][:, :3], *g[2:], viewmat, K, SIZE, SIZE)
    with pytest.raises(ValueError, match="backend"):
        rasterize(*g, viewmat, K, SIZE, SIZE, backend="opengl")
    with pytest.raises(ValueError, match="CUDA"):
        rasterize(*g, viewmat, K, SIZE, SIZE, backend="gsplat")
    with pytest.raises(ValueError, match="background"):
        rasterize(*g, viewmat, K, SIZE, SIZE, background=torch.zeros(4))
    with pytest.raises(ValueError, match="SH coefficients"):
        rasterize(g[0], g[1], g[2], g[3], torch.zeros(1, 5, 3), viewmat, K, SIZE, SIZE)
