"""Inference-only CPU rasterizer compiled with numba: gsplat 1.5.3's maths as per-pixel loops.

The torch backend needs ~8 tensor passes per (Gaussian, pixel) evaluation; here each
evaluation is a few scalar float32 operations in a compiled loop, so a face frame costs
milliseconds instead of ~100 ms. Same conventions and rules as
:mod:`gemo_ros.render._torch_backend` (and gsplat ``packed=False``):

1. Projection (:func:`_project`): EWA with the Jacobian evaluated at the clamped
   (frustum + 30 %) mean, ``eps2d`` blur, antialiased compensation, culling by depth,
   determinant, effective opacity and the off-image test, opacity-aware extent
   ``min(3.33, sqrt(2 ln(255 o)))`` sigma; float32 operations in the torch backend's order.
2. Lists (:func:`_prepare`): visible splats in depth order per camera (stable sort, lower
   id first on ties), then a counting sort onto ``TILE x TILE`` pixel tiles, which keeps
   every per-tile list in depth order without sorting the entries.
3. Compositing (:func:`_render_tile`): per tile, front to back over its list, each splat
   visiting the not-yet-stopped pixels of its pixel box: ``alpha = min(0.999, o
   exp(-sigma))``, skipped when ``sigma < 0`` or ``alpha < 1/255``, stop before the
   Gaussian that would bring the transmittance to ``<= 1e-4``; background times the
   remaining transmittance. A tile leaves as soon as all its pixels have stopped.

No autograd: :func:`gemo_ros.render.rasterize` routes here only for CPU float32 tensors
when no gradient is needed. SH colours are evaluated with the torch backend's
:func:`~gemo_ros.render._torch_backend.eval_sh` first (one cheap pass over the Gaussians).
The first call in a process compiles the kernels (seconds) or loads them from numba's
on-disk cache; :func:`warm_up` does that ahead of time.
"""

import logging
import math
import threading
import time
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

LOG = logging.getLogger(__name__)

try:  # numba is optional: without it rasterize() stays on the torch backend.
    import numba
    from numba import njit, prange
    _IMPORT_ERROR: Optional[str] = None
except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
    numba = None
    _IMPORT_ERROR = f"numba is not importable ({exc!r})"

#: Tile side (px).
TILE = 8

_F = np.float32
_HALF = _F(0.5)
_ONE = _F(1.0)
_TWO = _F(2.0)
_ZERO = _F(0.0)
_THRESH = _F(1.0 / 255.0)
_MAX_ALPHA = _F(0.999)
_T_STOP = _F(1e-4)
_MAX_EXTENT = _F(3.33)
_FOV_MARGIN = _F(0.3)
_BOX_PAD = _F(1e-3)
#: Pairs with sigma above ``ln(255 o) + _SKIP_MARGIN`` have alpha < 1/255 for sure: the
#: exp is skipped for them (the exact test still decides every other pair).
_SKIP_MARGIN = 1e-3

_COMPILE_LOCK = threading.RLock()
_PARALLEL_LOCK = threading.Lock()  # numba's workqueue layer must not be entered twice
_READY = set()


def numba_available() -> Tuple[bool, str]:
    """Return ``(ok, reason)``: whether the numba CPU rasterizer can run here."""
    if numba is None:
        return False, _IMPORT_ERROR or "numba is not importable"
    return True, f"numba {numba.__version__}"


if numba is not None:
    @njit(cache=True, fastmath=False)
    def _project(means, quats, scales, opac, viewmats, Ks, width, height, eps2d, near, far,
                 antialiased, m2d, depth, conic, o_eff, radii, box):
        """Project every (camera, Gaussian); fill the ``[C, N, ...]`` output arrays.

        ``box [C, N, 4]`` = first/last pixel column and row (inclusive) whose centre can
        get alpha >= 1/255; ``x1 < x0`` (or ``radii == 0``) marks a culled splat.
        """
        n = means.shape[0]
        n_cams = viewmats.shape[0]
        wf, hf = _F(width), _F(height)
        fac = np.empty((n, 3, 3), np.float32)  # M = R(q) diag(s)
        for i in range(n):
            qw, qx, qy, qz = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
            norm = max(np.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), _F(1e-12))
            qw, qx, qy, qz = qw / norm, qx / norm, qy / norm, qz / norm
            rot = ((_ONE - _TWO * (qy * qy + qz * qz), _TWO * (qx * qy - qw * qz),
                    _TWO * (qx * qz + qw * qy)),
                   (_TWO * (qx * qy + qw * qz), _ONE - _TWO * (qx * qx + qz * qz),
                    _TWO * (qy * qz - qw * qx)),
                   (_TWO * (qx * qz - qw * qy), _TWO * (qy * qz + qw * qx),
                    _ONE - _TWO * (qx * qx + qy * qy)))
            for r in range(3):
                for k in range(3):
                    fac[i, r, k] = rot[r][k] * scales[i, k]
        for c in range(n_cams):
            fx, fy = Ks[c, 0, 0], Ks[c, 1, 1]
            cx, cy = Ks[c, 0, 2], Ks[c, 1, 2]
            lim_xp = (wf - cx) / fx + _FOV_MARGIN * (_HALF * wf / fx)
            lim_xn = cx / fx + _FOV_MARGIN * (_HALF * wf / fx)
            lim_yp = (hf - cy) / fy + _FOV_MARGIN * (_HALF * hf / fy)
            lim_yn = cy / fy + _FOV_MARGIN * (_HALF * hf / fy)
            for i in range(n):
                mc0 = (viewmats[c, 0, 0] * means[i, 0] + viewmats[c, 0, 1] * means[i, 1]
                       + viewmats[c, 0, 2] * means[i, 2]) + viewmats[c, 0, 3]
                mc1 = (viewmats[c, 1, 0] * means[i, 0] + viewmats[c, 1, 1] * means[i, 1]
                       + viewmats[c, 1, 2] * means[i, 2]) + viewmats[c, 1, 3]
                z = (viewmats[c, 2, 0] * means[i, 0] + viewmats[c, 2, 1] * means[i, 1]
                     + viewmats[c, 2, 2] * means[i, 2]) + viewmats[c, 2, 3]
                z_safe = z if z > near else near
                rz = _ONE / z_safe
                tx = z_safe * min(lim_xp, max(-lim_xn, mc0 * rz))
                ty = z_safe * min(lim_yp, max(-lim_yn, mc1 * rz))
                ja, jb = fx * rz, fx * tx * rz * rz
                jc, jd = fy * rz, fy * ty * rz * rz
                cov_a = _ZERO
                cov_b = _ZERO
                cov_c = _ZERO
                for k in range(3):
                    # Column k of W M, then J (W M).
                    w0 = (viewmats[c, 0, 0] * fac[i, 0, k] + viewmats[c, 0, 1] * fac[i, 1, k]
                          + viewmats[c, 0, 2] * fac[i, 2, k])
                    w1 = (viewmats[c, 1, 0] * fac[i, 0, k] + viewmats[c, 1, 1] * fac[i, 1, k]
                          + viewmats[c, 1, 2] * fac[i, 2, k])
                    w2 = (viewmats[c, 2, 0] * fac[i, 0, k] + viewmats[c, 2, 1] * fac[i, 1, k]
                          + viewmats[c, 2, 2] * fac[i, 2, k])
                    u0 = ja * w0 - jb * w2
                    u1 = jc * w1 - jd * w2
                    cov_a += u0 * u0
                    cov_b += u0 * u1
                    cov_c += u1 * u1
                mx = fx * mc0 * rz + cx
                my = fy * mc1 * rz + cy
                m2d[c, i, 0] = mx
                m2d[c, i, 1] = my
                depth[c, i] = z
                det_orig = cov_a * cov_c - cov_b * cov_b
                cov_a += eps2d
                cov_c += eps2d
                det = cov_a * cov_c - cov_b * cov_b
                ok = (z >= near) and (z <= far) and (det > _ZERO)
                det_safe = det if ok else _ONE
                conic[c, i, 0] = cov_c / det_safe
                conic[c, i, 1] = -cov_b / det_safe
                conic[c, i, 2] = cov_a / det_safe
                o = opac[i]
                if antialiased:
                    o = o * np.sqrt(max(det_orig / det_safe, _ZERO))
                o_eff[c, i] = o
                ok = ok and o >= _THRESH
                extend = min(np.sqrt(_TWO * np.log(max(o, _THRESH) / _THRESH)), _MAX_EXTENT)
                ext_x = extend * np.sqrt(max(cov_a, _ZERO))
                ext_y = extend * np.sqrt(max(cov_c, _ZERO))
                rx, ry = np.ceil(ext_x), np.ceil(ext_y)
                ok = ok and (rx > _ZERO or ry > _ZERO)
                ok = ok and (mx + rx > _ZERO) and (mx - rx < wf)
                ok = ok and (my + ry > _ZERO) and (my - ry < hf)
                if not ok:
                    radii[c, i, 0] = 0
                    radii[c, i, 1] = 0
                    box[c, i, 0] = 0
                    box[c, i, 1] = 0
                    box[c, i, 2] = -1
                    box[c, i, 3] = -1
                    continue
                radii[c, i, 0] = np.int32(rx)
                radii[c, i, 1] = np.int32(ry)
                # Pixel centres strictly inside mean +- (extent + pad), clipped to the image.
                ex, ey = min(ext_x + _BOX_PAD, rx), min(ext_y + _BOX_PAD, ry)
                box[c, i, 0] = max(np.int32(np.floor(mx - ex - _HALF)) + 1, 0)
                box[c, i, 1] = max(np.int32(np.floor(my - ey - _HALF)) + 1, 0)
                box[c, i, 2] = min(np.int32(np.ceil(mx + ex - _HALF)) - 1, width - 1)
                box[c, i, 3] = min(np.int32(np.ceil(my + ey - _HALF)) - 1, height - 1)

    @njit(cache=True, fastmath=False)
    def _prepare(depth, box, m2d, conic, o_eff, colors, tile, tiles_w, tiles_h):
        """Depth-order the visible splats and list them on every tile their box touches.

        ``colors [Cc, N, D]`` (``Cc`` = 1 or C). Returns ``table [M, 7]`` (x, y, conic a,
        b, c, opacity, sigma above which alpha < 1/255 for sure), ``boxes [M, 4]`` (pixel
        box) and ``cols [M, D]`` per
        splat in depth order, ``start [tiles + 1]`` and ``entries [E]`` (splat ranks,
        depth order inside each tile).
        """
        n_cams, n = depth.shape
        n_vis = 0
        for c in range(n_cams):
            for i in range(n):
                if box[c, i, 2] >= box[c, i, 0] and box[c, i, 3] >= box[c, i, 1]:
                    n_vis += 1
        order = np.empty(n_vis, np.int64)
        pos = 0
        for c in range(n_cams):
            ids = np.empty(n, np.int64)
            cnt = 0
            for i in range(n):
                if box[c, i, 2] >= box[c, i, 0] and box[c, i, 3] >= box[c, i, 1]:
                    ids[cnt] = i
                    cnt += 1
            ids = ids[:cnt]
            keys = np.empty(cnt, np.float32)
            for j in range(cnt):
                keys[j] = depth[c, ids[j]]
            srt = _radix_argsort(keys)  # stable: ties keep the lower id first
            for j in range(cnt):
                order[pos + j] = c * n + ids[srt[j]]
            pos += cnt

        n_ch = colors.shape[2]
        table = np.empty((n_vis, 7), np.float32)
        boxes = np.empty((n_vis, 4), np.int32)
        cols = np.empty((n_vis, n_ch), np.float32)
        per_cam = tiles_w * tiles_h
        counts = np.zeros(n_cams * per_cam + 1, np.int64)
        span = np.empty((n_vis, 4), np.int32)  # first tile column/row, tile columns/rows
        for r in range(n_vis):
            c, i = order[r] // n, order[r] % n
            table[r, 0] = m2d[c, i, 0]
            table[r, 1] = m2d[c, i, 1]
            table[r, 2] = conic[c, i, 0]
            table[r, 3] = conic[c, i, 1]
            table[r, 4] = conic[c, i, 2]
            table[r, 5] = o_eff[c, i]
            table[r, 6] = np.float32(math.log(255.0 * o_eff[c, i]) + _SKIP_MARGIN)
            for j in range(4):
                boxes[r, j] = box[c, i, j]
            ci = c if colors.shape[0] > 1 else 0
            for d in range(n_ch):
                cols[r, d] = colors[ci, i, d]
            # Box corners are >= 0, so // is a plain division here.
            tx0, ty0 = box[c, i, 0] // tile, box[c, i, 1] // tile
            span[r, 0] = c * per_cam + ty0 * tiles_w + tx0
            span[r, 1] = box[c, i, 2] // tile - tx0 + 1
            span[r, 2] = box[c, i, 3] // tile - ty0 + 1
            for ty in range(span[r, 2]):
                for tx in range(span[r, 1]):
                    counts[span[r, 0] + ty * tiles_w + tx + 1] += 1
        start = np.cumsum(counts)
        cursor = start[:-1].copy()
        entries = np.empty(start[-1], np.int32)
        for r in range(n_vis):  # in depth order, so every tile's list is depth-ordered
            for ty in range(span[r, 2]):
                for tx in range(span[r, 1]):
                    t = span[r, 0] + ty * tiles_w + tx
                    entries[cursor[t]] = r
                    cursor[t] += 1
        return table, boxes, cols, start, entries

    @njit(cache=True, fastmath=False)
    def _radix_argsort(keys):
        """Return the stable ascending order of positive float32 ``keys`` (LSD radix sort).

        Positive IEEE floats order like their bit patterns, so three 11-bit counting passes
        over the bits sort them stably in O(n).
        """
        n = keys.shape[0]
        bits = keys.view(np.uint32)
        idx = np.arange(n)
        tmp = np.empty(n, np.int64)
        for shift in (0, 11, 22):
            counts = np.zeros(2049, np.int64)
            for j in range(n):
                counts[((bits[idx[j]] >> shift) & 2047) + 1] += 1
            for d in range(2048):
                counts[d + 1] += counts[d]
            for j in range(n):
                d = (bits[idx[j]] >> shift) & 2047
                tmp[counts[d]] = idx[j]
                counts[d] += 1
            idx, tmp = tmp, idx
        return idx

    @njit(cache=True, fastmath=False)
    def _render_tile(t, tile, tiles_w, tiles_h, width, height, start, entries, table, boxes,
                     cols, bg, rgb, alpha):
        """Composite tile ``t`` front to back into ``rgb``/``alpha``; return the evaluations.

        Entry-major over the tile's depth-ordered list: each splat visits only the tile
        pixels inside its pixel box (outside it alpha < 1/255) that have not stopped yet;
        pixels are independent, so this equals gsplat's pixel-major loop. A sigma surely
        past the 1/255 cut skips the exp; the tile leaves once all its pixels stopped.
        """
        per_cam = tiles_w * tiles_h
        c = t // per_cam
        ty = (t % per_cam) // tiles_w
        tx = t % tiles_w
        x0, y0 = tx * tile, ty * tile
        nx, ny = min(tile, width - x0), min(tile, height - y0)
        n_pix = nx * ny
        n_ch = cols.shape[1]
        trans = np.ones(n_pix, np.float32)
        live = np.ones(n_pix, np.bool_)
        acc = np.zeros((n_pix, n_ch), np.float32)
        n_live = n_pix
        n_evals = 0
        for j in range(start[t], start[t + 1]):
            r = entries[j]
            bx0, by0 = max(boxes[r, 0] - x0, 0), max(boxes[r, 1] - y0, 0)
            bx1, by1 = min(boxes[r, 2] - x0, nx - 1), min(boxes[r, 3] - y0, ny - 1)
            mx, my = table[r, 0], table[r, 1]
            ca, cb, cc = table[r, 2], table[r, 3], table[r, 4]
            o, lim = table[r, 5], table[r, 6]
            for iy in range(by0, by1 + 1):
                dy = my - (_F(y0 + iy) + _HALF)
                for ix in range(bx0, bx1 + 1):
                    p = iy * nx + ix
                    if not live[p]:
                        continue
                    n_evals += 1
                    dx = mx - (_F(x0 + ix) + _HALF)
                    sigma = _HALF * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                    if sigma < _ZERO or sigma > lim:
                        continue
                    a = min(_MAX_ALPHA, o * np.exp(-sigma))
                    if a < _THRESH:
                        continue
                    t_cur = trans[p]
                    t_next = t_cur * (_ONE - a)
                    if t_next <= _T_STOP:  # gsplat excludes the Gaussian that would stop it
                        live[p] = False
                        n_live -= 1
                        continue
                    vis = a * t_cur
                    for d in range(n_ch):
                        acc[p, d] += cols[r, d] * vis
                    trans[p] = t_next
            if n_live == 0:
                break
        for p in range(n_pix):
            x, y = x0 + p % nx, y0 + p // nx
            for d in range(n_ch):
                rgb[c, y, x, d] = acc[p, d] + trans[p] * bg[c, d]
            alpha[c, y, x, 0] = _ONE - trans[p]
        return n_evals

    @njit(cache=True, fastmath=False)
    def _composite_serial(tiles, tile, tiles_w, tiles_h, width, height, start, entries,
                          table, boxes, cols, bg, rgb, alpha):
        """Composite the listed tiles one after the other; return the evaluations."""
        total = 0
        for j in range(tiles.shape[0]):
            total += _render_tile(tiles[j], tile, tiles_w, tiles_h, width, height, start,
                                  entries, table, boxes, cols, bg, rgb, alpha)
        return total

    @njit(cache=True, fastmath=False, parallel=True)
    def _composite_parallel(tiles, tile, tiles_w, tiles_h, width, height, start, entries,
                            table, boxes, cols, bg, rgb, alpha):
        """Composite the listed tiles on numba's threads (tiles write disjoint pixels)."""
        evals = np.zeros(tiles.shape[0], np.int64)
        for j in prange(tiles.shape[0]):
            evals[j] = _render_tile(tiles[j], tile, tiles_w, tiles_h, width, height, start,
                                    entries, table, boxes, cols, bg, rgb, alpha)
        return evals.sum()


def _as_f32(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)


def _threads() -> int:
    """Render threads: torch's setting (the engine's ``threads``), capped by numba's pool."""
    return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


def rasterize_numba(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
                    colors: Tensor, viewmats: Tensor, Ks: Tensor, width: int, height: int,
                    backgrounds: Optional[Tensor] = None, antialiased: bool = False,
                    sh_degree: Optional[int] = None, eps2d: float = 0.3,
                    near_plane: float = 0.01, far_plane: float = 1e10,
                    threads: Optional[int] = None, timings: Optional[Dict[str, float]] = None
                    ) -> Tuple[Tensor, Tensor, Dict]:
    """Rasterize ``N`` Gaussians into ``C`` cameras with the compiled CPU kernels (no grad).

    Same arguments and outputs as :func:`~gemo_ros.render._torch_backend.rasterize_torch`
    (``viewmats [C, 4, 4]``, ``Ks [C, 3, 3]``, ``colors [N, D]`` or SH ``[N, K, 3]`` with
    ``sh_degree``, ``backgrounds [C, D]``); returns float32 CPU ``rgb [C, H, W, D]``,
    ``alpha [C, H, W, 1]`` and an info dict (``path = "numba"``, ``n_pairs`` = sigma
    evaluations, ``threads``). ``threads`` defaults to ``torch.get_num_threads()``;
    ``timings`` receives CPU-clock milliseconds per stage.
    """
    ok, reason = numba_available()
    if not ok:
        raise RuntimeError(f"the numba CPU rasterizer is unavailable: {reason}")
    for name, t in (("means", means), ("quats", quats), ("scales", scales),
                    ("opacities", opacities), ("colors", colors), ("viewmats", viewmats),
                    ("Ks", Ks)):
        if t.device.type != "cpu":
            raise ValueError(f"the numba rasterizer needs CPU tensors; {name} is on {t.device}")
    n_threads = _threads() if threads is None else max(1, int(threads))
    n_threads = min(n_threads, numba.config.NUMBA_NUM_THREADS)
    _warm_once(n_threads > 1)
    clock = time.process_time
    t0 = clock()
    n_cams, n = viewmats.shape[0], means.shape[0]
    width, height = int(width), int(height)
    with torch.no_grad():
        if sh_degree is not None:
            from gemo_ros.render._torch_backend import eval_sh
            from gemo_ros.render.camera import camera_position
            dirs = means[None, :, :] - camera_position(viewmats)[:, None, :]
            col_t = eval_sh(sh_degree, dirs, colors[None].expand(n_cams, -1, -1, -1))
        else:
            col_t = colors[None]
    col_np = _as_f32(col_t)
    n_ch = col_np.shape[2]
    m2d = np.empty((n_cams, n, 2), np.float32)
    depth = np.empty((n_cams, n), np.float32)
    conic = np.empty((n_cams, n, 3), np.float32)
    o_eff = np.empty((n_cams, n), np.float32)
    radii = np.empty((n_cams, n, 2), np.int32)
    box = np.empty((n_cams, n, 4), np.int32)
    _project(_as_f32(means), _as_f32(quats), _as_f32(scales), _as_f32(opacities),
             _as_f32(viewmats), _as_f32(Ks), width, height, _F(eps2d), _F(near_plane),
             _F(far_plane), bool(antialiased), m2d, depth, conic, o_eff, radii, box)
    t1 = clock()
    tiles_w, tiles_h = -(-width // TILE), -(-height // TILE)
    table, boxes, cols, start, entries = _prepare(depth, box, m2d, conic, o_eff, col_np,
                                                  TILE, tiles_w, tiles_h)
    t2 = clock()
    bg = (np.zeros((n_cams, n_ch), np.float32) if backgrounds is None
          else _as_f32(backgrounds).reshape(n_cams, n_ch))
    rgb = np.empty((n_cams, height, width, n_ch), np.float32)
    rgb[...] = bg[:, None, None, :]
    alpha = np.zeros((n_cams, height, width, 1), np.float32)
    tiles = np.nonzero(np.diff(start))[0].astype(np.int64)
    if n_threads > 1 and tiles.size > 1:
        # Deal the tiles round-robin so each thread's static share mixes face and border.
        tiles = np.concatenate([tiles[j::n_threads] for j in range(n_threads)])
        with _PARALLEL_LOCK:
            numba.set_num_threads(n_threads)
            n_evals = _composite_parallel(tiles, TILE, tiles_w, tiles_h, width, height, start,
                                          entries, table, boxes, cols, bg, rgb, alpha)
    else:
        n_evals = _composite_serial(tiles, TILE, tiles_w, tiles_h, width, height, start,
                                    entries, table, boxes, cols, bg, rgb, alpha)
    t3 = clock()
    if timings is not None:
        for key, a, b in (("project", t0, t1), ("tile lists", t1, t2), ("composite", t2, t3)):
            timings[key] = timings.get(key, 0.0) + (b - a) * 1e3
    out_dtype = means.dtype
    info = {"radii": torch.from_numpy(radii), "means2d": torch.from_numpy(m2d).to(out_dtype),
            "depths": torch.from_numpy(depth).to(out_dtype),
            "conics": torch.from_numpy(conic).to(out_dtype),
            "opacities": torch.from_numpy(o_eff).to(out_dtype), "path": "numba",
            "n_pairs": int(n_evals), "n_entries": int(entries.size), "threads": n_threads,
            "width": width, "height": height}
    return (torch.from_numpy(rgb).to(out_dtype), torch.from_numpy(alpha).to(out_dtype), info)


def _warm_once(parallel: bool) -> None:
    """Compile (or load from numba's disk cache) the kernels once per process, with a log."""
    key = "parallel" if parallel else "serial"
    if key in _READY:
        return
    with _COMPILE_LOCK:
        if key in _READY:
            return
        LOG.info("compiling the CPU rasterizer (once; numba caches it on disk)...")
        t0 = time.perf_counter()
        m = torch.tensor([[0.0, 0.0, 1.0], [0.01, 0.0, 1.2]])
        q = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.9, 0.1, 0.0, 0.0]])
        s = torch.full((2, 3), 0.01)
        o = torch.tensor([0.9, 0.5])
        K = torch.tensor([[[20.0, 0.0, 8.0], [0.0, 20.0, 8.0], [0.0, 0.0, 1.0]]])
        _READY.add(key)
        try:
            rasterize_numba(m, q, s, o, torch.rand(2, 3), torch.eye(4)[None], K, 16, 16,
                            threads=2 if parallel else 1)
        except Exception:
            _READY.discard(key)
            raise
        LOG.info("CPU rasterizer ready (%s) in %.1f s", key, time.perf_counter() - t0)


def warm_up() -> bool:
    """Compile or load the numba kernels now (serial and, with >1 thread, parallel).

    Returns False (and does nothing) where numba is unavailable.
    """
    if not numba_available()[0]:
        return False
    _warm_once(False)
    if _threads() > 1 and numba.config.NUMBA_NUM_THREADS > 1:
        _warm_once(True)
    return True
