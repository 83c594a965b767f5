"""Pure-PyTorch Gaussian rasterizer reproducing gsplat 1.5.3's maths (the CPU backend).

Conventions follow ``gsplat.rasterization`` with ``packed=False``, pinhole cameras:

* Projection: EWA splatting, ``cov2d = J W cov3d W^T J^T`` where the Jacobian is evaluated
  at the camera-space mean with x/z and y/z clamped to the image's extent plus 30 % of the
  half field of view (so huge off-screen Gaussians do not explode).
* ``eps2d`` (0.3 px^2) is added to the diagonal of ``cov2d``; in ``antialiased`` mode the
  opacity is multiplied by ``sqrt(det(cov2d) / det(cov2d + eps2d I))``.
* Culling: depth outside ``[near, far]``, non-positive determinant, effective opacity below
  1/255, or a bounding box entirely off the image.
* Extent: opacity-aware, ``min(3.33, sqrt(2 ln(255 o)))`` standard deviations per axis.
* Pixels: centres at ``(i + 0.5, j + 0.5)``; ``alpha = min(0.999, o exp(-sigma))``, pairs
  with ``alpha < 1/255`` are skipped; compositing is front to back and a pixel stops at
  the first Gaussian that would bring its transmittance to ``<= 1e-4`` (that Gaussian is
  excluded); the background is added times the remaining transmittance.
* Spherical harmonics (degree <= 4): real SH in the usual 3DGS sign convention, evaluated
  on the normalised direction camera -> Gaussian, then ``+0.5`` and clamped at 0.

Two compositing paths, same result (to ~1e-6):

* ``tiles`` (the default): per-tile depth-ordered lists on 4x4 pixel tiles, composited
  front to back in dense ``[tiles, pixels, K]`` blocks with batched matmuls and
  ``cumprod``; tiles whose pixels have all stopped leave early. See
  :func:`_render_tiles` (in-place, for inference) and :func:`_render_tiles_grad` (its
  out-of-place twin, used when an input needs a gradient; autograd does the backward).
* ``pairs`` (the slow, obviously-correct reference): exact (Gaussian, pixel) pairs from
  compact per-Gaussian pixel boxes, grouped per pixel in depth order by a stable sort;
  the per-pixel transmittance is a segmented prefix sum of ``log(1 - alpha)``;
  differentiable with autograd too. Tests hold the tiles path against it.

Tensors may live on any device (CPU is the point; CUDA works too, for the parity test).
"""

import math
import time
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

from gemo_ros.geometry import quat_to_rotmat

#: gsplat's constants.
ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
TRANSMITTANCE_STOP = 1e-4
MAX_EXTENT = 3.33
#: Extra margin (px) on the analytic pixel box so float rounding never drops a pixel that
#: passes the alpha threshold.
_BOX_PAD = 1e-3
_LOG_STOP = math.log(TRANSMITTANCE_STOP)
_LOG_MAX_ALPHA = math.log(MAX_ALPHA)
_LOG_ALPHA_THRESHOLD = math.log(ALPHA_THRESHOLD)
#: Tile side (px) of the inference path and the number of list entries per dense chunk.
TILE = 4
CHUNK = 32
_ONE = torch.ones(())
_INT16_TILES = 2**15 - 1

# Real spherical-harmonics constants (Sloan, "Efficient Spherical Harmonic Evaluation").
_SH_C0 = 0.28209479177387814
_SH_C1 = 0.4886025119029199
_SH_C2 = (1.0925484305920792, 0.31539156525252005, 0.5462742152960396)
_SH_C3 = (0.5900435899266435, 2.890611442640554, 0.4570457994644658, 0.3731763325901154,
          1.445305721320277)
_SH_C4 = (2.5033429417967046, 1.7701307697799304, 0.9461746957575601, 0.6690465435572892,
          0.10578554691520431, 0.47308734787878, 0.6258357354491761)


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """Evaluate real SH bases ``[..., (degree + 1)^2]`` at unit directions ``[..., 3]``."""
    if not 0 <= degree <= 4:
        raise ValueError(f"sh_degree must be in 0..4, got {degree}")
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, _SH_C0)]
    if degree >= 1:
        out += [-_SH_C1 * y, _SH_C1 * z, -_SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        xy, yz, xz = x * y, y * z, x * z
        out += [_SH_C2[0] * xy, -_SH_C2[0] * yz, _SH_C2[1] * (3.0 * zz - 1.0),
                -_SH_C2[0] * xz, _SH_C2[2] * (xx - yy)]
    if degree >= 3:
        out += [-_SH_C3[0] * y * (3.0 * xx - yy),
                _SH_C3[1] * xy * z,
                -_SH_C3[2] * y * (5.0 * zz - 1.0),
                _SH_C3[3] * z * (5.0 * zz - 3.0),
                -_SH_C3[2] * x * (5.0 * zz - 1.0),
                _SH_C3[4] * z * (xx - yy),
                -_SH_C3[0] * x * (xx - 3.0 * yy)]
    if degree >= 4:
        out += [_SH_C4[0] * xy * (xx - yy),
                -_SH_C4[1] * yz * (3.0 * xx - yy),
                _SH_C4[2] * xy * (7.0 * zz - 1.0),
                -_SH_C4[3] * yz * (7.0 * zz - 3.0),
                _SH_C4[4] * (zz * (35.0 * zz - 30.0) + 3.0),
                -_SH_C4[3] * xz * (7.0 * zz - 3.0),
                _SH_C4[5] * (xx - yy) * (7.0 * zz - 1.0),
                -_SH_C4[1] * xz * (xx - 3.0 * yy),
                _SH_C4[6] * (xx * (xx - 3.0 * yy) - yy * (3.0 * xx - yy))]
    return torch.stack(out, dim=-1)


def eval_sh(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Return SH colours ``[..., 3]`` (+0.5, clamped at 0) from ``coeffs [..., K, 3]``.

    ``dirs [..., 3]`` need not be normalised (camera -> Gaussian directions).
    """
    n_bases = (degree + 1) ** 2
    if coeffs.shape[-2] < n_bases:
        raise ValueError(f"sh_degree {degree} needs {n_bases} coefficients, "
                         f"colors has {coeffs.shape[-2]}")
    dirs = torch.nn.functional.normalize(dirs, dim=-1)
    bases = sh_bases(degree, dirs)
    rgb = (bases.unsqueeze(-1) * coeffs[..., :n_bases, :]).sum(dim=-2)
    return torch.clamp_min(rgb + 0.5, 0.0)


def project(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
            viewmats: Tensor, Ks: Tensor, width: int, height: int, eps2d: float,
            near_plane: float, far_plane: float, antialiased: bool) -> Dict[str, Tensor]:
    """Project Gaussians into every camera (EWA splatting, gsplat conventions).

    Inputs ``means [N, 3]``, ``quats [N, 4]``, ``scales [N, 3]``, ``opacities [N]``,
    ``viewmats [C, 4, 4]``, ``Ks [C, 3, 3]``. Returns ``[C, N, ...]`` tensors: ``means2d``
    (px), ``depths`` (m), ``conics`` (a, b, c of the inverse 2D covariance), ``opacities``
    (times the antialiasing compensation), ``extent`` (px half-size of the tight box,
    float, per axis), ``radii`` (int32, gsplat's ceil'd radii, 0 = culled) and ``valid``.
    """
    n = means.shape[0]
    rot_c = viewmats[:, :3, :3]                                   # [C, 3, 3]
    t_c = viewmats[:, :3, 3]                                      # [C, 3]
    mean_c = torch.matmul(means, rot_c.transpose(1, 2)) + t_c[:, None, :]  # [C, N, 3]
    x, y, z = mean_c.unbind(-1)

    # World covariance factor M = R diag(s) as [3, N, 3] (row i of every M side by side),
    # so W M for all Gaussians is one [3, 3] x [3, 3N] matmul per camera.
    factor = quat_to_rotmat(quats) * scales[:, None, :]           # [N, 3, 3]
    factor_c = torch.matmul(rot_c, factor.transpose(0, 1).reshape(3, 3 * n))
    wm0, wm1, wm2 = factor_c.reshape(-1, 3, n, 3).unbind(1)       # rows of W M: [C, N, 3]

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]                 # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    # Clamp the Jacobian's evaluation point to the frustum + 30 % margin (gsplat persp_proj).
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    # Keep the depth away from 0 for culled Gaussians so no inf/nan reaches autograd.
    z_safe = torch.where(z > near_plane, z, torch.full_like(z, near_plane))
    rz = 1.0 / z_safe
    tx = z_safe * torch.minimum(lim_x_pos, torch.maximum(-lim_x_neg, x * rz))
    ty = z_safe * torch.minimum(lim_y_pos, torch.maximum(-lim_y_neg, y * rz))
    # J rows: [fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]; J (W M) row by row.
    u0 = (fx * rz)[..., None] * wm0 - (fx * tx * rz * rz)[..., None] * wm2   # [C, N, 3]
    u1 = (fy * rz)[..., None] * wm1 - (fy * ty * rz * rz)[..., None] * wm2
    cov_a = (u0 * u0).sum(-1)
    cov_b = (u0 * u1).sum(-1)
    cov_c = (u1 * u1).sum(-1)
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)

    det_orig = cov_a * cov_c - cov_b * cov_b
    cov_a = cov_a + eps2d
    cov_c = cov_c + eps2d
    det = cov_a * cov_c - cov_b * cov_b
    valid = (z >= near_plane) & (z <= far_plane) & (det > 0)
    det_safe = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([cov_c / det_safe, -cov_b / det_safe, cov_a / det_safe], dim=-1)
    opac = opacities.expand_as(z)
    if antialiased:
        comp = torch.sqrt(torch.clamp_min(det_orig / det_safe, 0.0))
        opac = opac * comp

    with torch.no_grad():
        o_eff = opac.detach()
        valid = valid & (o_eff >= ALPHA_THRESHOLD)
        extend = torch.sqrt(2.0 * torch.log(torch.clamp_min(o_eff, ALPHA_THRESHOLD)
                                            / ALPHA_THRESHOLD))
        extend = torch.clamp_max(extend, MAX_EXTENT)
        ext = torch.stack([extend * torch.sqrt(torch.clamp_min(cov_a.detach(), 0.0)),
                           extend * torch.sqrt(torch.clamp_min(cov_c.detach(), 0.0))], -1)
        radii = torch.ceil(ext)
        valid = valid & (radii > 0).any(-1)
        m2d = means2d.detach()
        on_x = (m2d[..., 0] + radii[..., 0] > 0) & (m2d[..., 0] - radii[..., 0] < width)
        on_y = (m2d[..., 1] + radii[..., 1] > 0) & (m2d[..., 1] - radii[..., 1] < height)
        valid = valid & on_x & on_y
        radii = torch.where(valid[..., None], radii, torch.zeros_like(radii)).int()
    return {"means2d": means2d, "depths": z, "conics": conics, "opacities": opac,
            "extent": ext, "radii": radii, "valid": valid}


def _pixel_boxes(means2d: Tensor, extent: Tensor, radii: Tensor, width: int,
                 height: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Return the first pixel and box size ``(x0, y0, w, h)`` per splat (int64, ``[S]``).

    The box holds the pixels whose centre lies strictly inside ``mean +- extent`` (plus a
    tiny pad), clipped to gsplat's ceil'd radius and the image: outside it
    ``o exp(-sigma) <= 1/255``, so no pixel that gsplat composites is left out.
    """
    ext = torch.minimum(extent + _BOX_PAD, radii.to(extent.dtype))
    lo = torch.floor(means2d - ext - 0.5) + 1.0
    hi = torch.ceil(means2d + ext - 0.5) - 1.0
    lo[:, 0].clamp_(min=0)
    lo[:, 1].clamp_(min=0)
    hi[:, 0].clamp_(max=width - 1)
    hi[:, 1].clamp_(max=height - 1)
    size = torch.clamp_min(hi - lo + 1.0, 0.0).long()
    lo = lo.long()
    return lo[:, 0], lo[:, 1], size[:, 0], size[:, 1]


def _expand_pairs(order: Tensor, x0: Tensor, y0: Tensor, bw: Tensor, bh: Tensor,
                  width: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Expand splats ``order`` (depth-sorted splat ids) into (splat, pixel) pairs.

    Returns ``(splat_id, px, py, count)`` for every pixel of every box, splat-major in the
    order given. All int64.
    """
    counts = (bw * bh)[order]
    splat = torch.repeat_interleave(order, counts)
    starts = torch.cumsum(counts, 0) - counts
    local = torch.arange(splat.numel(), device=order.device) - torch.repeat_interleave(
        starts, counts)
    w = bw[splat]
    dy = torch.div(local, w, rounding_mode="floor")
    px = x0[splat] + (local - dy * w)
    py = y0[splat] + dy
    return splat, px, py, counts


def rasterize_torch(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
                    colors: Tensor, viewmats: Tensor, Ks: Tensor, width: int, height: int,
                    backgrounds: Optional[Tensor] = None, antialiased: bool = False,
                    sh_degree: Optional[int] = None, eps2d: float = 0.3,
                    near_plane: float = 0.01, far_plane: float = 1e10,
                    path: str = "auto", timings: Optional[Dict[str, float]] = None,
                    clock: Callable[[], float] = time.perf_counter
                    ) -> Tuple[Tensor, Tensor, Dict]:
    """Rasterize ``N`` Gaussians into ``C`` cameras with PyTorch ops.

    Shapes as in :func:`gemo_ros.render.rasterize` after batching: ``viewmats [C, 4, 4]``,
    ``Ks [C, 3, 3]``, ``colors [N, D]`` or SH ``[N, K, 3]`` (with ``sh_degree``),
    ``backgrounds [C, D]`` or None. Returns ``rgb [C, H, W, D]``, ``alpha [C, H, W, 1]``
    and an info dict.

    ``path``: ``"tiles"`` (dense 4x4 tiles, K-batched front to back with per-tile early
    termination; in-place under no-grad, out-of-place with autograd otherwise),
    ``"pairs"`` (the reference: exact per-pixel pair lists; same result to ~1e-6, several
    times slower) or ``"auto"`` (= tiles). ``timings``, if given, receives milliseconds
    per stage measured with ``clock`` (e.g. ``time.process_time`` for CPU time).
    """
    clock = _Clock(timings, clock)
    n_cams = viewmats.shape[0]
    n = means.shape[0]
    need_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (means, quats, scales, opacities, colors, viewmats, Ks)
        + ((backgrounds,) if backgrounds is not None else ()))
    if path == "auto":
        path = "tiles"
    if path not in ("pairs", "tiles"):
        raise ValueError(f"path must be 'auto', 'pairs' or 'tiles', got {path!r}")

    proj = project(means, quats, scales, opacities, viewmats, Ks, width, height, eps2d,
                   near_plane, far_plane, antialiased)
    if sh_degree is not None:
        from gemo_ros.render.camera import camera_position
        campos = camera_position(viewmats)                          # [C, 3]
        dirs = means[None, :, :] - campos[:, None, :]               # [C, N, 3]
        splat_colors = eval_sh(sh_degree, dirs, colors[None].expand(n_cams, -1, -1, -1))
    else:
        splat_colors = colors[None].expand(n_cams, -1, -1)          # [C, N, D]
    n_ch = splat_colors.shape[-1]

    # Flatten (camera, Gaussian) into splats; each camera owns an H*W block of pixels.
    means2d = proj["means2d"].reshape(-1, 2)
    conics = proj["conics"].reshape(-1, 3)
    opac = proj["opacities"].reshape(-1)
    flat_colors = splat_colors.reshape(-1, n_ch)
    with torch.no_grad():
        valid = proj["valid"].reshape(-1)
        depths = proj["depths"].detach().reshape(-1)
        x0, y0, bw, bh = _pixel_boxes(means2d.detach(), proj["extent"].reshape(-1, 2),
                                      proj["radii"].reshape(-1, 2), width, height)
        vis = torch.nonzero(valid & (bw > 0) & (bh > 0)).squeeze(1)
        # Depth order per camera; a stable sort keeps gsplat's tie order (lower id first).
        order = vis[torch.sort(depths[vis], stable=True).indices]
        if n_cams > 1:
            order = order[torch.sort(torch.div(order, n, rounding_mode="floor"),
                                     stable=True).indices]
    clock.lap("project")

    if path == "pairs":
        rgb, alpha_img, n_pairs = _render_pairs(
            order, n, x0, y0, bw, bh, means2d, conics, opac, flat_colors, n_cams, width,
            height)
    else:
        render = _render_tiles_grad if need_grad else _render_tiles
        rgb, alpha_img, n_pairs = render(
            order, n, x0, y0, bw, bh, means2d, conics, opac, flat_colors, n_cams, width,
            height, clock)
    if backgrounds is not None:
        rgb = rgb + (1.0 - alpha_img) * backgrounds[:, None, None, :]
    clock.lap("finish")
    info = {"radii": proj["radii"], "means2d": proj["means2d"], "depths": proj["depths"],
            "conics": proj["conics"], "opacities": proj["opacities"], "path": path,
            "n_pairs": n_pairs, "width": width, "height": height}
    return rgb, alpha_img, info


class _Clock:
    """Record milliseconds per named stage into a dict (no-op without one)."""

    def __init__(self, out: Optional[Dict[str, float]],
                 now: Callable[[], float] = time.perf_counter) -> None:
        self.out = out
        self.now = now
        self.last = now() if out is not None else 0.0

    def lap(self, name: str) -> None:
        if self.out is None:
            return
        now = self.now()
        self.out[name] = self.out.get(name, 0.0) + (now - self.last) * 1e3
        self.last = now


def _render_pairs(order: Tensor, n: int, x0: Tensor, y0: Tensor, bw: Tensor, bh: Tensor,
                  means2d: Tensor, conics: Tensor, opac: Tensor, flat_colors: Tensor,
                  n_cams: int, width: int, height: int) -> Tuple[Tensor, Tensor, int]:
    """Differentiable compositing over exact (splat, pixel) pairs, grouped per pixel."""
    with torch.no_grad():
        splat, px, py, _ = _expand_pairs(order, x0, y0, bw, bh, width)
        cam = torch.div(splat, n, rounding_mode="floor")
        pix = (cam * height + py) * width + px

    # Per-pair alpha (differentiable in means2d, conics, opacities).
    d = means2d[splat] - torch.stack([px, py], -1).to(means2d.dtype) - 0.5
    con = conics[splat]
    sigma = 0.5 * (con[:, 0] * d[:, 0] ** 2 + con[:, 2] * d[:, 1] ** 2) \
        + con[:, 1] * d[:, 0] * d[:, 1]
    alpha = torch.clamp_max(opac[splat] * torch.exp(-sigma), MAX_ALPHA)
    with torch.no_grad():
        keep = torch.nonzero((sigma >= 0) & (alpha >= ALPHA_THRESHOLD)).squeeze(1)
        # Group pairs by pixel; the stable sort keeps the depth order inside a pixel.
        key = pix[keep]
        key = key.int() if n_cams * height * width < 2**31 else key  # int32 sorts faster
        by_pix = keep[torch.sort(key, stable=True).indices]
        pix_s = pix[by_pix]
    alpha_s = alpha[by_pix]
    splat_s = splat[by_pix]
    n_ch = flat_colors.shape[-1]
    rgb, acc = _composite(alpha_s, pix_s, flat_colors[splat_s], n_cams * height * width)
    return (rgb.reshape(n_cams, height, width, n_ch),
            acc.reshape(n_cams, height, width, 1), int(by_pix.numel()))


def _composite(alpha: Tensor, pix: Tensor, colors: Tensor, n_pix: int) -> Tuple[Tensor, Tensor]:
    """Composite pixel-grouped, depth-ordered pairs front to back.

    ``alpha [P]`` and ``colors [P, D]`` per pair, ``pix [P]`` sorted (pairs of a pixel are
    contiguous, nearest first). Returns the premultiplied colour ``[n_pix, D]`` and the
    accumulated alpha ``1 - T`` ``[n_pix]``.
    """
    n_ch = colors.shape[-1]
    if alpha.numel() == 0:
        zero = alpha.new_zeros(n_pix)
        return alpha.new_zeros(n_pix, n_ch) + 0.0 * colors.sum(), zero + 0.0 * alpha.sum()
    log_keep = torch.log1p(-alpha).double()
    incl = torch.cumsum(log_keep, 0)
    with torch.no_grad():
        first = torch.ones_like(pix, dtype=torch.bool)
        first[1:] = pix[1:] != pix[:-1]
        seg_start = torch.cummax(torch.where(first, torch.arange(pix.numel(), device=pix.device),
                                             torch.zeros_like(pix)), 0).values
    # Log transmittance before (excl) and after (incl) each pair, within its pixel.
    base = incl[seg_start] - log_keep[seg_start]
    log_t_excl = incl - log_keep - base
    log_t_incl = log_t_excl + log_keep
    # gsplat stops at the first Gaussian that would bring T to <= 1e-4 and excludes it.
    with torch.no_grad():
        live = (log_t_incl > _LOG_STOP).to(alpha.dtype)
    weight = alpha * torch.exp(log_t_excl).to(alpha.dtype) * live
    rgb = alpha.new_zeros(n_pix, n_ch).index_add(0, pix, weight[:, None] * colors)
    log_t = log_keep.new_zeros(n_pix).index_add(0, pix, log_keep * live.double())
    acc_alpha = 1.0 - torch.exp(log_t).to(alpha.dtype)
    return rgb, acc_alpha


def _render_tiles(order: Tensor, n: int, x0: Tensor, y0: Tensor, bw: Tensor, bh: Tensor,
                  means2d: Tensor, conics: Tensor, opac: Tensor, flat_colors: Tensor,
                  n_cams: int, width: int, height: int, clock: "_Clock"
                  ) -> Tuple[Tensor, Tensor, int]:
    """Inference compositing on dense ``TILE x TILE`` pixel tiles (no autograd).

    1. Each visible splat is listed on every tile its pixel box touches; one stable sort
       by tile gives per-tile lists in depth order.
    2. Front to back in passes, each taking the next ``K`` entries of every live tile
       (``K`` = ``CHUNK``, doubled every second pass) as a dense ``[tiles, pixels, K]``
       block, list axis last so the scan runs over contiguous memory: log-alpha is one
       batched matmul of per-entry quadratic coefficients with a fixed per-pixel basis;
       ``cumprod(1 - alpha)`` with each pixel's transmittance carried in; gsplat's stop
       rule by zeroing T past the stop; one batched matmul of T with colour differences
       (Abel summation of ``sum (T_{k-1} - T_k) c_k``, plus a ones channel that sums the
       weights). A tile leaves once its list
       is used up or all its pixels have stopped: Gaussians hidden behind an opaque
       surface are never evaluated.
    """
    S = TILE
    n_pix = S * S
    dev, dtype = means2d.device, means2d.dtype
    n_ch = flat_colors.shape[-1]
    tiles_w, tiles_h = -(-width // S), -(-height // S)
    n_tiles = n_cams * tiles_w * tiles_h
    m = order.numel()

    # 1. Tile lists: (tile, splat) entries, splat-major in depth order, grouped by tile.
    src, n_entries, tile_ids, tile_start, tile_count = _tile_lists(
        order, n, x0, y0, bw, bh, S, tiles_w, tiles_h, n_tiles)
    clock.lap("tile lists")

    # Per splat (depth order) + one inert padding splat at index m: the quadratic's
    # ingredients and the colour with a ones channel (it sums the weights).
    table = torch.zeros(m + 1, 6, dtype=dtype, device=dev)
    table[:m, :2] = means2d[order]
    table[:m, 2:5] = conics[order]
    table[:m, 5] = torch.log(opac[order])
    table[m, 5] = float("-inf")
    colr = torch.ones(m + 1, n_ch + 1, dtype=dtype, device=dev)
    colr[:m, :n_ch] = flat_colors[order]
    colr[m] = 0.0
    off = torch.arange(S, dtype=dtype, device=dev) - 0.5 * (S - 1)
    q_off, p_off = torch.meshgrid(off, off, indexing="ij")                 # row-major pixels
    p_off, q_off = p_off.reshape(-1), q_off.reshape(-1)
    basis = torch.stack([torch.ones_like(p_off), p_off, q_off, p_off * p_off, q_off * q_off,
                         p_off * q_off], dim=-1)                           # [P, 6]
    centre_x = (tile_ids % tiles_w).to(dtype) * S + 0.5 * S
    centre_y = (torch.div(tile_ids, tiles_w, rounding_mode="floor") % tiles_h).to(dtype) * S \
        + 0.5 * S
    clock.lap("tables")

    # 2. Front-to-back passes over the lists.
    clamp = bool(opac.numel() > 0 and opac.max() > MAX_ALPHA)  # else min(0.999, .) is a no-op
    trans_carry = torch.ones(n_tiles, n_pix, dtype=dtype, device=dev)  # 0 once stopped
    trans_out = torch.ones(n_tiles, n_pix, dtype=dtype, device=dev)
    out = torch.zeros(n_tiles, n_ch + 1, n_pix, dtype=dtype, device=dev)
    one = _ONE.to(device=dev, dtype=dtype)
    active = torch.arange(tile_ids.numel(), device=dev)
    offset, n_pass, n_evals = 0, 0, 0
    while active.numel() > 0:
        k_width = CHUNK << (n_pass // 2)
        tiles = tile_ids[active]
        ranks = offset + torch.arange(k_width, device=dev)
        ent = torch.where(ranks < tile_count[active, None], tile_start[active, None] + ranks,
                          torch.full((1, 1), n_entries, device=dev))      # [A, K]
        splat = src[ent]
        n_evals += ent.numel() * n_pix

        # log alpha at pixel offset (p, q) from the tile centre = coef . [1, p, q, p^2,
        # q^2, p q]; alpha = min(0.999, o exp(-sigma)), zero below 1/255.
        par = table[splat]                                                 # [A, K, 6]
        u = par[..., 0] - centre_x[active, None]
        v = par[..., 1] - centre_y[active, None]
        a, b, c = par[..., 2], par[..., 3], par[..., 4]
        coef = torch.empty(par.shape, dtype=dtype, device=dev)
        c1 = torch.addcmul(a * u, b, v, out=coef[..., 1])
        c2 = torch.addcmul(c * v, b, u, out=coef[..., 2])
        torch.addcmul(par[..., 5], u * c1 + v * c2, one, value=-0.5, out=coef[..., 0])
        torch.mul(a, -0.5, out=coef[..., 3])
        torch.mul(c, -0.5, out=coef[..., 4])
        torch.neg(b, out=coef[..., 5])
        buf = torch.matmul(basis, coef.transpose(1, 2))                   # [A, P, K]
        if clamp:
            buf.clamp_max_(_LOG_MAX_ALPHA)
        torch.nn.functional.threshold_(buf, _LOG_ALPHA_THRESHOLD, float("-inf"))
        buf.exp_()
        torch.sub(one.expand_as(buf), buf, out=buf)                        # 1 - alpha
        clock.lap("alpha")

        t_prev = trans_carry[tiles]                                        # [A, P]
        buf[:, :, 0].mul_(t_prev)
        trans = torch.cumprod(buf, dim=2)                                  # T after each
        t_last = trans[:, :, -1].clone()
        # gsplat stops before the Gaussian that would bring T to <= 1e-4 (exclusive):
        # zero T from there on, so that the weights T_{k-1} - T_k vanish behind the stop;
        # only the first stopped Gaussian keeps a wrong weight T_{k*-1}, fixed below.
        newly = (t_last <= TRANSMITTANCE_STOP) & (t_prev > 0)  # stopped pixels have T = 0
        any_stop = bool(newly.any())
        if any_stop:
            torch.nn.functional.threshold_(trans, TRANSMITTANCE_STOP, 0.0)
        # sum_k (T_{k-1} - T_k) c_k = t_prev c_0 + sum_k T_k (c_{k+1} - c_k), c_K = 0:
        # one batched matmul with colour differences, no weight tensor.
        cols = colr[splat]                                                 # [A, K, D + 1]
        dcol = torch.empty_like(cols)
        torch.sub(cols[:, 1:], cols[:, :-1], out=dcol[:, :-1])
        torch.neg(cols[:, -1], out=dcol[:, -1])
        # [A, D + 1, P]; this operand order is the fast one for MKL's small batched gemm.
        acc = torch.bmm(dcol.transpose(1, 2), trans.transpose(1, 2))
        acc.addcmul_(cols[:, 0, :, None], t_prev[:, None, :])
        held = t_last.clone()
        if any_stop:
            stopped = torch.nonzero(newly)
            row, pix = stopped[:, 0], stopped[:, 1]
            t_rows = trans[row, pix]                                       # [S, K]
            n_live = (t_rows > 0).sum(1)
            t_hold = torch.where(n_live > 0,
                                 t_rows.gather(1, (n_live - 1).clamp_min(0)[:, None])[:, 0],
                                 t_prev[row, pix])
            acc[row, :, pix] -= t_hold[:, None] * cols[row, n_live.clamp_max(k_width - 1)]
            held[row, pix] = t_hold
            t_last[row, pix] = 0.0
        out.index_add_(0, tiles, acc)
        trans_out[tiles] = torch.where(t_prev > 0, held, trans_out[tiles])
        trans_carry[tiles] = t_last
        clock.lap("composite")

        offset += k_width
        n_pass += 1
        more = (tile_count[active] > offset) & (trans_carry[tiles] > 0).any(1)
        active = active[more]

    out[:, n_ch] = 1.0 - trans_out
    img = out.view(n_cams, tiles_h, tiles_w, n_ch + 1, S, S).permute(0, 1, 4, 2, 5, 3)
    img = img.reshape(n_cams, tiles_h * S, tiles_w * S, n_ch + 1)[:, :height, :width]
    return img[..., :n_ch], img[..., n_ch:], n_evals


def _tile_lists(order: Tensor, n: int, x0: Tensor, y0: Tensor, bw: Tensor, bh: Tensor,
                S: int, tiles_w: int, tiles_h: int, n_tiles: int
                ) -> Tuple[Tensor, int, Tensor, Tensor, Tensor]:
    """List every splat of ``order`` (depth-sorted) on each ``S x S`` tile its box touches.

    Returns ``src [E + 1]`` (depth rank of the splat of each entry, grouped by tile, depth
    order inside a tile; the last entry is padding pointing at rank ``m``), ``E``, and per
    non-empty tile its id, first entry and entry count.
    """
    dev = order.device
    m = order.numel()
    idx_t = torch.int32
    bx0, by0 = x0[order].to(idx_t), y0[order].to(idx_t)
    tx0, ty0 = bx0 // S, by0 // S
    ntx = (bx0 + bw[order].to(idx_t) - 1) // S - tx0 + 1
    nty = (by0 + bh[order].to(idx_t) - 1) // S - ty0 + 1
    counts = ntx * nty
    first_tile = (torch.div(order, n, rounding_mode="floor").to(idx_t) * tiles_h + ty0) \
        * tiles_w + tx0
    src = torch.repeat_interleave(torch.arange(m, dtype=idx_t, device=dev), counts)
    n_entries = src.numel()
    local = torch.arange(n_entries, dtype=idx_t, device=dev) - (torch.cumsum(
        counts, 0, dtype=idx_t) - counts)[src]
    ntx_e = ntx[src]
    ly = local // ntx_e
    tile = first_tile[src] + ly * (tiles_w - ntx_e) + local
    tile_count = torch.bincount(tile, minlength=n_tiles)
    key = tile.to(torch.int16) if n_tiles <= _INT16_TILES else tile  # int16 sorts faster
    src = src[torch.sort(key, stable=True).indices]
    tile_ids = torch.nonzero(tile_count).squeeze(1)
    tile_start = (torch.cumsum(tile_count, 0) - tile_count)[tile_ids]
    tile_count = tile_count[tile_ids]
    return torch.cat([src, src.new_full((1,), m)]), n_entries, tile_ids, tile_start, tile_count


def _render_tiles_grad(order: Tensor, n: int, x0: Tensor, y0: Tensor, bw: Tensor,
                       bh: Tensor, means2d: Tensor, conics: Tensor, opac: Tensor,
                       flat_colors: Tensor, n_cams: int, width: int, height: int,
                       clock: "_Clock") -> Tuple[Tensor, Tensor, int]:
    """Differentiable twin of :func:`_render_tiles` (out-of-place ops, autograd backward).

    Same lists, passes and stop rule; the stop masks are constants (as in gsplat, whose
    backward also treats which Gaussians contributed as fixed).
    """
    S = TILE
    n_pix = S * S
    dev, dtype = means2d.device, means2d.dtype
    n_ch = flat_colors.shape[-1]
    tiles_w, tiles_h = -(-width // S), -(-height // S)
    n_tiles = n_cams * tiles_w * tiles_h
    with torch.no_grad():
        src, n_entries, tile_ids, tile_start, tile_count = _tile_lists(
            order, n, x0, y0, bw, bh, S, tiles_w, tiles_h, n_tiles)
    clock.lap("tile lists")

    pad = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, float("-inf")]], dtype=dtype, device=dev)
    table = torch.cat([torch.cat([means2d[order], conics[order],
                                  torch.log(opac[order])[:, None]], -1), pad])
    ones = torch.ones(order.numel(), 1, dtype=dtype, device=dev)
    colr = torch.cat([torch.cat([flat_colors[order], ones], -1),
                      torch.zeros(1, n_ch + 1, dtype=dtype, device=dev)])
    off = torch.arange(S, dtype=dtype, device=dev) - 0.5 * (S - 1)
    q_off, p_off = torch.meshgrid(off, off, indexing="ij")
    p_off, q_off = p_off.reshape(-1), q_off.reshape(-1)
    basis = torch.stack([torch.ones_like(p_off), p_off, q_off, p_off * p_off, q_off * q_off,
                         p_off * q_off], dim=-1)
    centre_x = (tile_ids % tiles_w).to(dtype) * S + 0.5 * S
    centre_y = (torch.div(tile_ids, tiles_w, rounding_mode="floor") % tiles_h).to(dtype) * S \
        + 0.5 * S
    clock.lap("tables")

    clamp = bool(opac.numel() > 0 and opac.max() > MAX_ALPHA)
    trans_carry = torch.ones(n_tiles, n_pix, dtype=dtype, device=dev)
    trans_out = torch.ones(n_tiles, n_pix, dtype=dtype, device=dev)
    out = torch.zeros(n_tiles, n_ch + 1, n_pix, dtype=dtype, device=dev)
    active = torch.arange(tile_ids.numel(), device=dev)
    offset, n_pass, n_evals = 0, 0, 0
    while active.numel() > 0:
        k_width = CHUNK << (n_pass // 2)
        tiles = tile_ids[active]
        ranks = offset + torch.arange(k_width, device=dev)
        ent = torch.where(ranks < tile_count[active, None], tile_start[active, None] + ranks,
                          torch.full((1, 1), n_entries, device=dev))
        splat = src[ent]
        n_evals += ent.numel() * n_pix

        par = table[splat]
        u = par[..., 0] - centre_x[active, None]
        v = par[..., 1] - centre_y[active, None]
        a, b, c = par[..., 2], par[..., 3], par[..., 4]
        c1 = a * u + b * v
        c2 = c * v + b * u
        coef = torch.stack([par[..., 5] - 0.5 * (u * c1 + v * c2), c1, c2, -0.5 * a,
                            -0.5 * c, -b], -1)
        logit = torch.matmul(basis, coef.transpose(1, 2))                 # [A, P, K]
        if clamp:
            logit = logit.clamp_max(_LOG_MAX_ALPHA)
        logit = torch.where(logit > _LOG_ALPHA_THRESHOLD, logit,
                            torch.full_like(logit, float("-inf")))
        one_minus = 1.0 - torch.exp(logit)
        t_prev = trans_carry[tiles]
        one_minus = torch.cat([one_minus[:, :, :1] * t_prev[:, :, None], one_minus[:, :, 1:]],
                              2)
        trans = torch.cumprod(one_minus, dim=2)
        t_last = trans[:, :, -1]
        with torch.no_grad():
            live = trans > TRANSMITTANCE_STOP
            newly = (t_last <= TRANSMITTANCE_STOP) & (t_prev > 0)
            stopped = torch.nonzero(newly)
            row, pix = stopped[:, 0], stopped[:, 1]
            n_live = live[row, pix].sum(1)
        trans_live = trans * live
        cols = colr[splat]
        dcol = torch.cat([cols[:, 1:] - cols[:, :-1], -cols[:, -1:]], 1)
        acc = torch.bmm(dcol.transpose(1, 2), trans_live.transpose(1, 2)) \
            + cols[:, 0, :, None] * t_prev[:, None, :]
        held = t_last
        carry = t_last
        if row.numel() > 0:
            # Remove the weight T_{k*-1} the first stopped Gaussian got in the sum above.
            t_hold = torch.where(
                n_live > 0,
                trans[row, pix].gather(1, (n_live - 1).clamp_min(0)[:, None])[:, 0],
                t_prev[row, pix])
            fix = t_hold[:, None] * cols[row, n_live.clamp_max(k_width - 1)]   # [S, D + 1]
            chan = torch.arange(n_ch + 1, device=dev)
            acc = acc.index_put((row[:, None], chan[None, :], pix[:, None]), -fix,
                                accumulate=True)
            held = t_last.index_put((row, pix), t_hold)
            carry = torch.where(newly, torch.zeros_like(t_last), t_last)
        out = out.index_add(0, tiles, acc)
        trans_out = trans_out.index_copy(0, tiles, torch.where(t_prev > 0, held,
                                                               trans_out[tiles]))
        trans_carry = trans_carry.index_copy(0, tiles, carry)
        clock.lap("composite")

        offset += k_width
        n_pass += 1
        more = (tile_count[active] > offset) & (trans_carry[tiles] > 0).any(1)
        active = active[more]

    rgb = out[:, :n_ch].reshape(n_cams, tiles_h, tiles_w, n_ch, S, S).permute(0, 1, 4, 2, 5, 3)
    rgb = rgb.reshape(n_cams, tiles_h * S, tiles_w * S, n_ch)[:, :height, :width]
    alpha = (1.0 - trans_out).reshape(n_cams, tiles_h, tiles_w, S, S).permute(0, 1, 3, 2, 4)
    alpha = alpha.reshape(n_cams, tiles_h * S, tiles_w * S, 1)[:, :height, :width]
    return rgb, alpha, n_evals
