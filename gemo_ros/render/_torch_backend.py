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

Compositing is vectorised over (Gaussian, pixel) pairs: pairs are generated from compact
per-Gaussian pixel boxes, grouped per pixel in depth order, and the per-pixel cumulative
transmittance is a segmented prefix sum of ``log(1 - alpha)``.
"""

import math
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

#: gsplat's constants.
ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
TRANSMITTANCE_STOP = 1e-4
MAX_EXTENT = 3.33
#: Extra margin (px) on the analytic pixel box so float rounding never drops a pixel that
#: passes the alpha threshold.
_BOX_PAD = 1e-3
_LOG_STOP = math.log(TRANSMITTANCE_STOP)

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


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Return rotation matrices ``[..., 3, 3]`` from ``wxyz`` quaternions (any norm)."""
    q = torch.nn.functional.normalize(quats, dim=-1)
    w, x, y, z = q.unbind(-1)
    rows = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


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
    rot_c = viewmats[:, :3, :3]                                   # [C, 3, 3]
    t_c = viewmats[:, :3, 3]                                      # [C, 3]
    mean_c = torch.einsum("cij,nj->cni", rot_c, means) + t_c[:, None, :]  # [C, N, 3]
    x, y, z = mean_c.unbind(-1)

    # World covariance factor M = R diag(s); cov_cam = (W M)(W M)^T.
    factor = quat_to_rotmat(quats) * scales[:, None, :]           # [N, 3, 3]
    factor_c = torch.einsum("cij,njk->cnik", rot_c, factor)       # [C, N, 3, 3]

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
    j0 = torch.stack([fx * rz, torch.zeros_like(rz), -fx * tx * rz * rz], dim=-1)
    j1 = torch.stack([torch.zeros_like(rz), fy * rz, -fy * ty * rz * rz], dim=-1)
    u0 = torch.einsum("cni,cnik->cnk", j0, factor_c)              # [C, N, 3]
    u1 = torch.einsum("cni,cnik->cnk", j1, factor_c)
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
                    near_plane: float = 0.01, far_plane: float = 1e10
                    ) -> Tuple[Tensor, Tensor, Dict]:
    """Rasterize ``N`` Gaussians into ``C`` cameras with PyTorch ops (differentiable).

    Shapes as in :func:`gemo_ros.render.rasterize` after batching: ``viewmats [C, 4, 4]``,
    ``Ks [C, 3, 3]``, ``colors [N, D]`` or SH ``[N, K, 3]`` (with ``sh_degree``),
    ``backgrounds [C, D]`` or None. Returns ``rgb [C, H, W, D]``, ``alpha [C, H, W, 1]``
    and an info dict.
    """
    n_cams = viewmats.shape[0]
    n = means.shape[0]
    dev = means.device
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
        cam_of = torch.arange(n_cams, device=dev).repeat_interleave(n)
        x0, y0, bw, bh = _pixel_boxes(means2d.detach(), proj["extent"].reshape(-1, 2),
                                      proj["radii"].reshape(-1, 2), width, height)
        bw = torch.where(valid, bw, torch.zeros_like(bw))
        vis = torch.nonzero(valid).squeeze(1)
        # Depth order per camera; a stable sort keeps gsplat's tie order (lower id first).
        order = vis[torch.sort(depths[vis], stable=True).indices]
        order = order[torch.sort(cam_of[order], stable=True).indices]
        splat, px, py, _ = _expand_pairs(order, x0, y0, bw, bh, width)
        pix = (cam_of[splat] * height + py) * width + px

    # Per-pair alpha (differentiable in means2d, conics, opacities).
    d = means2d[splat] - torch.stack([px, py], -1).to(means2d.dtype) - 0.5
    con = conics[splat]
    sigma = 0.5 * (con[:, 0] * d[:, 0] ** 2 + con[:, 2] * d[:, 1] ** 2) \
        + con[:, 1] * d[:, 0] * d[:, 1]
    alpha = torch.clamp_max(opac[splat] * torch.exp(-sigma), MAX_ALPHA)
    with torch.no_grad():
        keep = torch.nonzero((sigma >= 0) & (alpha >= ALPHA_THRESHOLD)).squeeze(1)
        # Group pairs by pixel; the stable sort keeps the depth order inside a pixel.
        by_pix = keep[torch.sort(pix[keep], stable=True).indices]
        pix_s = pix[by_pix]
    alpha_s = alpha[by_pix]
    splat_s = splat[by_pix]

    rgb, alpha_img = _composite(alpha_s, pix_s, flat_colors[splat_s], n_cams * height * width)
    rgb = rgb.reshape(n_cams, height, width, n_ch)
    alpha_img = alpha_img.reshape(n_cams, height, width, 1)
    if backgrounds is not None:
        rgb = rgb + (1.0 - alpha_img) * backgrounds[:, None, None, :]
    info = {"radii": proj["radii"], "means2d": proj["means2d"], "depths": proj["depths"],
            "conics": proj["conics"], "opacities": proj["opacities"],
            "n_pairs": int(by_pix.numel()), "width": width, "height": height}
    return rgb, alpha_img, info


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
