"""CPU parity of our projection and tiling maths with gsplat 1.5.3's pure-PyTorch reference.

gsplat ships slow, obviously-correct PyTorch versions of its CUDA kernels
(``gsplat.cuda._torch_impl``); all but ``_rasterize_to_pixels`` run on a CPU. The same
Gaussians and cameras go through them and through our renderer:

==================================== =============================================
gsplat reference                     ours
==================================== =============================================
``_quat_to_rotmat``,                 ``_torch_backend.quat_to_rotmat``; the factor
``_quat_scale_to_covar_preci``       ``M = R diag(s)`` of ``project`` (``M M^T``)
``_fully_fused_projection``          ``_torch_backend.project`` (float64 here) and the
(pinhole, packed=False)              numba ``_project`` (float32, via ``rasterize_numba``)
``_isect_tiles``,                    ``_torch_backend._tile_lists`` and the numba
``_isect_offset_encode``             ``_prepare`` (per-tile, depth-ordered lists)
==================================== =============================================

Deliberate differences, each tested as a stated relation rather than ignored:

* Radii. The reference has no opacities and always spans 3.33 sigma; gsplat's CUDA kernel
  (what ``rasterization()`` runs, and what both our backends reproduce) is opacity-aware:
  it culls effective opacities (times the compensation in antialiased mode) below 1/255
  and spans ``min(3.33, sqrt(2 ln(255 o)))`` sigma. So our radii equal
  ``ceil(extend(o) * sqrt(cov2d_ii + eps2d))`` with the reference's own ``cov2d``, and
  equal the reference's radii exactly once the opacity saturates the extent (o >= 1.0032).
* Depth planes. The reference keeps ``near < z < far``; the CUDA kernel and ours keep
  ``near <= z <= far``: only a Gaussian exactly on a plane differs.
* Culled Gaussians. The reference returns means2d/conics for every Gaussian; ours clamps
  the depth of culled ones (to keep autograd finite), so those are compared where valid.
* Tiles. gsplat lists a Gaussian on every ``tile_size`` tile that its ``mean +- radius``
  square touches, as sorted 64-bit ids (image | tile | float32 depth bits). Ours list it on
  the tiles its tight pixel box touches (extent clipped to the radius; 4 px tiles in torch,
  8 px in numba) and keep only the per-tile lists, with no 64-bit ids. Our binning
  functions take the box and tile size as inputs, so fed gsplat's radius boxes and 16 px
  tiles they must reproduce its tiles per Gaussian, offsets and flattened ids exactly;
  with our own boxes, our lists are a depth-ordered subset of gsplat's.

No equivalent in our code: the 3D precision matrix (``preci``) of
``_quat_scale_to_covar_preci`` (our projection needs only the covariance factor), and the
64-bit ``isect_ids`` encoding. ``_rasterize_to_pixels`` needs CUDA: render/test_gsplat_backend.py
holds the images against gsplat on a GPU.

Radius clipping: both sides cull only when both radii are 0 (gsplat's default
``radius_clip=0``; the reference has no such argument).

Tolerances: float64 projections run in a different operation order from gsplat's einsums,
so they agree to rounding: rtol 1e-10 (observed <= 1e-13; a wrong Jacobian, blur, clamp
or compensation shows at 1e-3 or more); conics relative to their largest entry, since an
off-diagonal can be ~0. Integer outputs (radii, valid masks, offsets, ids) must be equal.
The float32 numba kernels agree with the float64 reference to float32 rounding amplified
by the projection: rtol 1e-4, atol 1e-4 px (observed 1e-5 relative, 9e-5 px on far
off-screen centres); a radius may differ by one pixel only where its float64 value lies
within 1e-4 (relative) of an integer.
"""

import math

import numpy as np
import pytest
import torch

_torch_impl = pytest.importorskip("gsplat.cuda._torch_impl")

from gemo_ros.render import look_at, orbit_camera  # noqa: E402
from gemo_ros.render._torch_backend import (  # noqa: E402
    _pixel_boxes, _tile_lists, project, quat_to_rotmat)

F64 = torch.float64
W, H = 96, 64           # small, non-square image
NEAR, FAR = 0.05, 1.1   # tight planes so random scenes straddle both
EPS2D = 0.3             # gsplat's default low-pass blur, px^2
TILE_SIZE = 16          # gsplat's default tile size; a power of two, so /16 is exact
ALPHA_THRESHOLD = 1.0 / 255.0
MAX_EXTENT = 3.33
SEEDS = (0, 1, 2)
RTOL64 = 1e-10


def _scene(seed, n=300):
    """Return random float64 Gaussians ``(means, quats, scales, opacities)``.

    Spread so that some sit behind the camera, before the near plane, beyond the far plane
    and off-screen; sizes from needles to blobs.
    """
    gen = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=gen, dtype=F64) - 0.5) \
        * torch.tensor([0.7, 0.6, 1.7], dtype=F64)
    quats = torch.randn(n, 4, generator=gen, dtype=F64) * 3.0  # unnormalised on purpose
    scales = torch.exp(torch.empty(n, 3, dtype=F64).uniform_(
        math.log(1e-3), math.log(0.05), generator=gen))
    opac = torch.rand(n, generator=gen, dtype=F64)
    opac[: n // 20] = 2e-3  # below 1/255: the opacity-aware cull must drop these
    return [means, quats, scales, opac]


def _cameras():
    """Two off-axis cameras: non-square pixels, principal points off the image centre."""
    view_a, _ = orbit_camera(35.0, -20.0, 0.65, 40.0, W, H)
    view_b = look_at((-0.35, 0.25, 0.5), (0.05, 0.0, -0.1))
    Ks = torch.tensor([[[110.0, 0.0, 41.3], [0.0, 95.0, 29.7], [0.0, 0.0, 1.0]],
                       [[80.0, 0.0, 53.0], [0.0, 88.0, 30.5], [0.0, 0.0, 1.0]]])
    return torch.stack([view_a, view_b]).to(F64), Ks.to(F64)


def _reference(means, quats, scales, viewmats, Ks, width, height, antialiased, near=NEAR,
               far=FAR):
    """Run gsplat's reference projection; also return its blurred 2D covariance diagonal."""
    covars, _ = _torch_impl._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    radii, means2d, depths, conics, comp = _torch_impl._fully_fused_projection(
        means, covars, viewmats, Ks, width, height, eps2d=EPS2D, near_plane=near,
        far_plane=far, calc_compensations=antialiased, camera_model="pinhole")
    means_c, covars_c = _torch_impl._world_to_cam(means, covars, viewmats)
    _, cov2d = _torch_impl._persp_proj(means_c, covars_c, Ks, width, height)
    diag = torch.diagonal(cov2d, dim1=-2, dim2=-1) + EPS2D
    return {"radii": radii, "means2d": means2d, "depths": depths, "conics": conics,
            "comp": comp, "cov_diag": diag}


def _opacity_aware(ref, opacities, width, height):
    """gsplat's CUDA radii rule applied to the reference's outputs.

    Returns ``(radii [C, N, 2] int32, pre-ceil radii [C, N, 2], effective opacity [C, N])``.
    """
    o_eff = opacities.expand_as(ref["depths"])
    if ref["comp"] is not None:
        o_eff = o_eff * ref["comp"]
    extend = torch.sqrt(2.0 * torch.log(torch.clamp_min(o_eff, ALPHA_THRESHOLD)
                                        / ALPHA_THRESHOLD)).clamp_max(MAX_EXTENT)
    pre = extend[..., None] * torch.sqrt(ref["cov_diag"])
    radius = torch.ceil(pre)
    m = ref["means2d"]
    inside = ((m[..., 0] + radius[..., 0] > 0) & (m[..., 0] - radius[..., 0] < width)
              & (m[..., 1] + radius[..., 1] > 0) & (m[..., 1] - radius[..., 1] < height))
    # Depth culling as the reference does it (it keeps every other Gaussian whose 3.33
    # sigma box overlaps the image; ours is never larger, so `inside` implies that).
    valid = ((ref["radii"] > 0).all(-1) & (o_eff >= ALPHA_THRESHOLD) & inside
             & (radius > 0).any(-1))
    return torch.where(valid[..., None], radius, 0.0).int(), pre, o_eff


def _assert_floats_match(ours, ref, valid, antialiased, rtol, atol_px):
    """Compare depths (all), means2d, conics and compensation (valid ones)."""
    torch.testing.assert_close(ours["depths"].to(F64), ref["depths"], rtol=rtol, atol=1e-12)
    torch.testing.assert_close(ours["means2d"][valid].to(F64), ref["means2d"][valid],
                               rtol=rtol, atol=atol_px)
    # Conic entries are compared relative to the largest entry of each conic: the
    # off-diagonal can be ~0 for axis-aligned splats, where a relative test means nothing.
    con_ref = ref["conics"][valid]
    scale = con_ref.abs().amax(-1, keepdim=True)
    torch.testing.assert_close(ours["conics"][valid].to(F64) / scale, con_ref / scale,
                               rtol=0.0, atol=rtol)
    if antialiased:
        torch.testing.assert_close(ours["comp"][valid].to(F64), ref["comp"][valid],
                                   rtol=rtol, atol=rtol)


def _ours_torch(means, quats, scales, opac, viewmats, Ks, width, height, antialiased,
                near=NEAR, far=FAR):
    out = project(means, quats, scales, opac, viewmats, Ks, width, height, EPS2D, near, far,
                  antialiased)
    out["comp"] = out["opacities"] / opac  # our projection folds it into the opacity
    return out


def _coverage(ref, near, far):
    """Count the culling cases a scene exercises (so a test cannot pass on an easy scene)."""
    z = ref["depths"]
    depth_ok = (z > near) & (z < far)
    m = ref["means2d"]
    on_screen = (m[..., 0] >= 0) & (m[..., 0] < W) & (m[..., 1] >= 0) & (m[..., 1] < H)
    valid = (ref["radii"] > 0).all(-1)
    # The Jacobian is clamped where the centre lies beyond the image + 15 % of its size.
    beyond = ((m[..., 0] < -0.15 * W) | (m[..., 0] > 1.15 * W)
              | (m[..., 1] < -0.15 * H) | (m[..., 1] > 1.15 * H))
    return {"behind camera": int((z < 0).sum()),
            "before near": int(((z > 0) & (z < near)).sum()),
            "beyond far": int((z > far).sum()),
            "off-screen culled": int((depth_ok & ~valid).sum()),
            "off-centre kept": int((valid & ~on_screen).sum()),
            "clamped Jacobian kept": int((valid & beyond).sum()),
            "on screen": int((valid & on_screen).sum())}


# -- covariance -------------------------------------------------------------------------


def test_rotation_and_covariance_match_gsplat_reference():
    means, quats, scales, _ = _scene(0)
    rot = quat_to_rotmat(quats)
    torch.testing.assert_close(rot, _torch_impl._quat_to_rotmat(quats), rtol=0.0, atol=1e-14)
    factor = rot * scales[:, None, :]  # the factor project() builds: cov3d = M M^T
    covars, _ = _torch_impl._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    torch.testing.assert_close(factor @ factor.transpose(1, 2), covars, rtol=1e-12,
                               atol=1e-18)
    # Not a tautology: a transposed rotation (world <-> local mix-up) is far off.
    wrong = rot.transpose(1, 2) * scales[:, None, :]
    assert not torch.allclose(wrong @ wrong.transpose(1, 2), covars, rtol=1e-3, atol=1e-9)


# -- projection: float64 torch backend ------------------------------------------------------


@pytest.mark.parametrize("antialiased", [False, True], ids=["classic", "antialiased"])
@pytest.mark.parametrize("seed", SEEDS)
def test_projection_matches_gsplat_reference_on_random_scenes(seed, antialiased):
    means, quats, scales, opac = _scene(seed)
    viewmats, Ks = _cameras()
    ref = _reference(means, quats, scales, viewmats, Ks, W, H, antialiased)
    cover = _coverage(ref, NEAR, FAR)
    assert min(cover.values()) > 0, cover
    ours = _ours_torch(means, quats, scales, opac, viewmats, Ks, W, H, antialiased)

    want, _, _ = _opacity_aware(ref, opac, W, H)
    assert torch.equal(ours["radii"], want)
    valid = (want > 0).any(-1)
    assert torch.equal(ours["valid"], valid)
    _assert_floats_match(ours, ref, valid, antialiased, RTOL64, 1e-9)


@pytest.mark.parametrize("antialiased", [False, True], ids=["classic", "antialiased"])
@pytest.mark.parametrize("seed", SEEDS)
def test_radii_equal_gsplat_reference_once_opacity_saturates_the_extent(seed, antialiased):
    # sqrt(2 ln(255 o)) >= 3.33 needs o >= 1.0032; with o = 1e6 (times a compensation
    # >= 0.04 in these scenes) our opacity-aware extent is the reference's fixed 3.33 sigma.
    means, quats, scales, _ = _scene(seed)
    viewmats, Ks = _cameras()
    ref = _reference(means, quats, scales, viewmats, Ks, W, H, antialiased)
    ours = _ours_torch(means, quats, scales, torch.full_like(scales[:, 0], 1e6), viewmats,
                       Ks, W, H, antialiased)
    assert torch.equal(ours["radii"], ref["radii"])
    assert int((ref["radii"] > 0).all(-1).sum()) > 100


def test_depth_plane_boundaries_follow_the_cuda_kernel_not_the_reference():
    # Identity camera; centres on the optical axis (z exact in float64) and off to the side.
    z = [-1.0, 0.0, 0.5 * NEAR, NEAR, 0.3, FAR, 1.5 * FAR]
    means = torch.tensor([[0.0, 0.0, d] for d in z] + [[5.0, 0.0, 0.3], [0.0, -5.0, 0.3],
                                                       [0.2, 0.0, 0.3]], dtype=F64)
    n = means.shape[0]
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=F64).expand(n, 4)
    scales = torch.full((n, 3), 1e-3, dtype=F64)
    # Centre 19 px right of the image (its Jacobian is clamped), but 3.33 sigma reach in.
    scales[-1] = 0.02
    viewmats = torch.eye(4, dtype=F64)[None]
    Ks = torch.tensor([[[100.0, 0.0, W / 2], [0.0, 100.0, H / 2], [0.0, 0.0, 1.0]]],
                      dtype=F64)
    ref = _reference(means, quats, scales, viewmats, Ks, W, H, False)
    # Opacity 2 saturates our extent at 3.33 sigma, as in the reference.
    ours = _ours_torch(means, quats, scales, torch.full((n,), 2.0, dtype=F64), viewmats, Ks,
                       W, H, False)
    keep_ref = (ref["radii"][0] > 0).all(-1).tolist()
    keep_ours = ours["valid"][0].tolist()
    #        z: -1     0      near/2 near  0.3   far   1.5 far  right  below  edge
    assert keep_ref == [False, False, False, False, True, False, False, False, False, True]
    assert keep_ours == [False, False, False, True, True, True, False, False, False, True]


# -- projection: float32 numba backend ------------------------------------------------------


@pytest.mark.parametrize("antialiased", [False, True], ids=["classic", "antialiased"])
@pytest.mark.parametrize("seed", SEEDS)
def test_numba_projection_matches_gsplat_reference(seed, antialiased):
    nb = pytest.importorskip("gemo_ros.render._numba_backend")
    if not nb.numba_available()[0]:
        pytest.skip(nb.numba_available()[1])
    g32 = [t.float() for t in _scene(seed)]
    viewmats, Ks = [t.float() for t in _cameras()]
    means, quats, scales, opac = [t.double() for t in g32]  # the same values, in float64
    ref = _reference(means, quats, scales, viewmats.double(), Ks.double(), W, H, antialiased)
    _, _, info = nb.rasterize_numba(*g32, torch.ones(len(opac), 3), viewmats, Ks, W, H,
                                    antialiased=antialiased, near_plane=NEAR, far_plane=FAR,
                                    threads=1)
    info["comp"] = info["opacities"].double() / opac

    want, pre, o_eff = _opacity_aware(ref, opac, W, H)
    # float32 may round a radius across an integer (or an opacity across 1/255) only
    # where the float64 value sits within 1e-4 of it.
    borderline = ((pre - pre.round()).abs() < 1e-4 * pre.clamp_min(1.0)).any(-1) \
        | ((o_eff - ALPHA_THRESHOLD).abs() < 1e-4 * ALPHA_THRESHOLD)
    differ = (info["radii"] != want).any(-1)
    assert not (differ & ~borderline).any()
    assert (info["radii"] - want).abs().max() <= 1
    valid = (want > 0).all(-1) & (info["radii"] > 0).all(-1)
    assert int(valid.sum()) >= int((want > 0).any(-1).sum()) - int(borderline.sum())
    _assert_floats_match(info, ref, valid, antialiased, 1e-4, 1e-4)


# -- projection: the shipped default avatar ---------------------------------------------------


@pytest.fixture(scope="module")
def avatar_gaussians():
    """Return the default avatar at the neutral expression as float64 Gaussians.

    ``(means, quats, scales, opacities)``, all 48k of them: projection is vectorised.
    """
    from gemo_ros.avatar import load_avatar

    avatar = load_avatar("default")
    with torch.no_grad():
        g = avatar(torch.zeros(1, avatar.face.num_expressions))
    return [t[0].to(F64) for t in (g.means, g.quats, g.scales, g.opacities)]


def _node_camera(yaw_deg=0.0, pitch_deg=0.0):
    """The node's default camera (RenderSettings: 0.65 m, 22 deg, 256 px), optionally orbited."""
    from gemo_ros.pipeline import RenderSettings

    settings = RenderSettings(yaw_deg=yaw_deg, pitch_deg=pitch_deg)
    viewmat, K = settings.camera()
    return viewmat[None].to(F64), K[None].to(F64), settings.width, settings.height


@pytest.mark.parametrize("antialiased", [False, True], ids=["classic", "antialiased"])
@pytest.mark.parametrize("view", [(0.0, 0.0), (45.0, 15.0)], ids=["default", "yaw45"])
def test_default_avatar_projection_matches_gsplat_reference(avatar_gaussians, view,
                                                            antialiased):
    means, quats, scales, opac = avatar_gaussians
    viewmats, Ks, width, height = _node_camera(*view)
    ref = _reference(means, quats, scales, viewmats, Ks, width, height, antialiased)
    ours = _ours_torch(means, quats, scales, opac, viewmats, Ks, width, height, antialiased)
    want, _, _ = _opacity_aware(ref, opac, width, height)
    assert torch.equal(ours["radii"], want)
    valid = (want > 0).any(-1)
    assert int(valid.sum()) > 0.9 * means.shape[0]  # the face fills the default view
    _assert_floats_match(ours, ref, valid, antialiased, RTOL64, 1e-9)


# -- tile intersection ------------------------------------------------------------------------


def _gsplat_boxes(means2d, radii, width, height):
    """Pixel boxes whose tiles are gsplat's ``floor((m - r) / T) .. ceil((m + r) / T) - 1``.

    floor(v / T) == floor(floor(v) / T) and ceil(v / T) - 1 == (ceil(v) - 1) // T for an
    integer T, so these boxes cover exactly gsplat's tiles. Returns ``x0, y0, x1, y1``
    (inclusive, int64, ``[C, N]``); culled Gaussians get an empty box.
    """
    r = radii.to(means2d.dtype)
    lo = torch.floor(means2d - r).clamp_min(0)
    hi = torch.ceil(means2d + r) - 1
    hi[..., 0].clamp_(max=width - 1)
    hi[..., 1].clamp_(max=height - 1)
    culled = ~(radii > 0).all(-1)
    lo[culled], hi[culled] = 0.0, -1.0
    return [t.long() for t in (lo[..., 0], lo[..., 1], hi[..., 0], hi[..., 1])]


def _depth_order(depths, valid):
    """Flat ids ``c * N + i`` of valid splats, by camera then depth (our renderer's order)."""
    n = depths.shape[1]
    vis = torch.nonzero(valid.reshape(-1)).squeeze(1)
    order = vis[torch.sort(depths.reshape(-1)[vis], stable=True).indices]
    return order[torch.sort(torch.div(order, n, rounding_mode="floor"), stable=True).indices]


def _torch_lists(order, boxes, n, n_cams, width, height, tile):
    """Our torch binning, in gsplat's terms.

    Returns ``(flat ids, tile keys, offsets)``: per list entry the splat's flat id and its
    tile as gsplat's key ``camera << tile_bits | tile``; per tile ``[C * th * tw]`` the
    offset of its list.
    """
    x0, y0, x1, y1 = [b.reshape(-1) for b in boxes]
    tiles_w, tiles_h = -(-width // tile), -(-height // tile)
    n_tiles = n_cams * tiles_w * tiles_h
    src, n_entries, tile_ids, tile_start, tile_count = _tile_lists(
        order, n, x0, y0, x1 - x0 + 1, y1 - y0 + 1, tile, tiles_w, tiles_h, n_tiles)
    counts = torch.zeros(n_tiles, dtype=torch.long)
    counts[tile_ids] = tile_count
    offsets = torch.cumsum(counts, 0) - counts
    assert torch.equal(tile_start, offsets[tile_ids])
    return (order[src[:n_entries].long()],
            _tile_keys(torch.repeat_interleave(tile_ids, tile_count), tiles_w * tiles_h),
            offsets)


def _tile_keys(tiles, per_cam):
    """Our global tile index ``c * per_cam + t`` as gsplat's ``c << tile_bits | t``."""
    cam = torch.div(tiles, per_cam, rounding_mode="floor")
    return (cam << per_cam.bit_length()) | (tiles % per_cam)


def _gsplat_lists(ref, n_cams, width, height):
    """gsplat's ``(tiles per Gaussian [C, N], isect ids, flat ids, offsets [C * th * tw])``."""
    tiles_w, tiles_h = -(-width // TILE_SIZE), -(-height // TILE_SIZE)
    per_gauss, isect_ids, flat_ids = _torch_impl._isect_tiles(
        ref["means2d"], ref["radii"], ref["depths"], TILE_SIZE, tiles_w, tiles_h)
    offsets = _torch_impl._isect_offset_encode(isect_ids, n_cams, tiles_w, tiles_h)
    return per_gauss, isect_ids, flat_ids.long(), offsets.reshape(-1).long()


def _assert_same_lists(keys, flat, depths, gs_isect, gs_flat):
    """Our list entries ``(tile key, flat id)`` must be gsplat's, in gsplat's order.

    gsplat sorts ``key << 32 | float32 depth bits``; ours must be sorted the same way.
    Splats whose float32 depths tie (the avatar has such pairs) are left in an arbitrary
    order by gsplat's unstable sort, so both sides are compared with ties broken by id.
    """
    bits = depths.reshape(-1).float().view(torch.int32).long() & 0xFFFFFFFF
    isect = (keys << 32) | bits[flat]
    assert torch.equal(isect, torch.sort(isect).values)  # tile-major, front to back
    for ours, theirs in zip(_by_isect_then_id(isect, flat),
                            _by_isect_then_id(gs_isect, gs_flat)):
        assert torch.equal(ours, theirs)


def _by_isect_then_id(isect, flat):
    idx = torch.sort(flat, stable=True).indices
    idx = idx[torch.sort(isect[idx], stable=True).indices]
    return isect[idx], flat[idx]


def _tile_scene(name):
    """(means, quats, scales, opacities, viewmats, Ks, width, height) of a tiling test."""
    if name == "avatar":
        from gemo_ros.avatar import load_avatar
        from gemo_ros.avatar.model import level_of_detail

        # gsplat's reference bins in a Python loop: a 600-Gaussian level of detail.
        avatar = level_of_detail(load_avatar("default"), 600)
        with torch.no_grad():
            g = avatar(torch.zeros(1, avatar.face.num_expressions))
        viewmats, Ks, width, height = _node_camera(30.0, 10.0)
        return [t[0].to(F64) for t in (g.means, g.quats, g.scales, g.opacities)] + [
            viewmats, Ks, width, height]
    return _scene(int(name[-1])) + list(_cameras()) + [W, H]


@pytest.mark.parametrize("name", ["seed0", "seed1", "avatar"])
def test_tile_binning_reproduces_gsplat_isect_tiles_and_offsets(name):
    means, quats, scales, _, viewmats, Ks, width, height = _tile_scene(name)
    n, n_cams = means.shape[0], viewmats.shape[0]
    ref = _reference(means, quats, scales, viewmats, Ks, width, height, False)
    per_gauss, isect_ids, flat_ids, offsets = _gsplat_lists(ref, n_cams, width, height)
    assert flat_ids.numel() > n  # Gaussians spanning several tiles are exercised

    # Torch backend: our binning fed gsplat's radius boxes and 16 px tiles.
    boxes = _gsplat_boxes(ref["means2d"], ref["radii"], width, height)
    order = _depth_order(ref["depths"], (ref["radii"] > 0).all(-1))
    ids, keys, our_offsets = _torch_lists(order, boxes, n, n_cams, width, height, TILE_SIZE)
    assert torch.equal(our_offsets, offsets)
    assert torch.equal(torch.bincount(ids, minlength=n_cams * n).reshape(n_cams, n),
                       per_gauss.long())
    _assert_same_lists(keys, ids, ref["depths"], isect_ids, flat_ids)

    # Numba backend: the same boxes through its counting-sort binning (float32 depths).
    nb = pytest.importorskip("gemo_ros.render._numba_backend")
    if not nb.numba_available()[0]:
        pytest.skip(nb.numba_available()[1])
    box = np.ascontiguousarray(torch.stack(boxes, -1).numpy(), dtype=np.int32)
    f32 = {k: np.ascontiguousarray(ref[k].numpy(), dtype=np.float32)
           for k in ("depths", "means2d", "conics")}
    # The colour channel carries each splat's flat id (exact in float32 below 2^24).
    ident = np.arange(n_cams * n, dtype=np.float32).reshape(n_cams, n, 1)
    _, _, cols, start, entries = nb._prepare(
        f32["depths"], box, f32["means2d"], f32["conics"], np.ones((n_cams, n), np.float32),
        ident, TILE_SIZE, -(-width // TILE_SIZE), -(-height // TILE_SIZE))
    start = torch.from_numpy(start)
    assert torch.equal(start[:-1], offsets)
    tiles = torch.repeat_interleave(torch.arange(start.numel() - 1), torch.diff(start))
    per_cam = -(-width // TILE_SIZE) * -(-height // TILE_SIZE)
    _assert_same_lists(_tile_keys(tiles, per_cam),
                       torch.from_numpy(cols[entries, 0].astype(np.int64)), ref["depths"],
                       isect_ids, flat_ids)


@pytest.mark.parametrize("antialiased", [False, True], ids=["classic", "antialiased"])
@pytest.mark.parametrize("seed", SEEDS[:2])
def test_our_tile_lists_are_a_depth_ordered_subset_of_gsplat_lists(seed, antialiased):
    means, quats, scales, opac = _scene(seed)
    viewmats, Ks = _cameras()
    n, n_cams = means.shape[0], viewmats.shape[0]
    ref = _reference(means, quats, scales, viewmats, Ks, W, H, antialiased)
    _, isect_ids, flat_ids, _ = _gsplat_lists(ref, n_cams, W, H)

    # Our renderer's own boxes (tight, opacity-aware), binned on gsplat's 16 px tiles.
    ours = _ours_torch(means, quats, scales, opac, viewmats, Ks, W, H, antialiased)
    x0, y0, bw, bh = _pixel_boxes(ours["means2d"].reshape(-1, 2),
                                  ours["extent"].reshape(-1, 2),
                                  ours["radii"].reshape(-1, 2), W, H)
    order = _depth_order(ours["depths"], ours["valid"])
    boxes = [t.reshape(n_cams, n) for t in (x0, y0, x0 + bw - 1, y0 + bh - 1)]
    ids, keys, _ = _torch_lists(order, boxes, n, n_cams, W, H, TILE_SIZE)
    pairs = keys * (n_cams * n) + ids
    gs_pairs = (isect_ids >> 32) * (n_cams * n) + flat_ids
    kept = torch.isin(gs_pairs, pairs)
    assert int(kept.sum()) == pairs.numel()   # every entry of ours is one of gsplat's
    assert pairs.numel() < gs_pairs.numel()   # and the tight boxes do skip some tiles
    _assert_same_lists(keys, ids, ref["depths"], isect_ids[kept], flat_ids[kept])
