"""Gaussian blendshape avatar: G(psi) = G0 + sum_k psi_k dG_k, bound to a posed face mesh.

Raw per-Gaussian parameters live in the local frame of the triangle each Gaussian is bound
to (see :mod:`gemo_ros.avatar.binding`):

=========== === ===================================================================
key          d   meaning (raw -> posed)
=========== === ===================================================================
``xyz``      3   offset from the binding point in the triangle frame, in units of the
                 triangle scale k: ``mean = origin + k * R @ xyz``
``rotation`` 4   local ``wxyz`` quaternion (unnormalised): ``quat = q(R) * normalize(q)``
``scale``    3   log of the std-devs in units of k: ``scales = k * exp(scale)``
``color``    3   linear RGB; clamped to [0, 1] after blending
``opacity``  1   logit: ``opacity = sigmoid(opacity)``
=========== === ===================================================================

Blending happens in this raw space; the emotion residual's ``offsets`` are added there too.
"""

import math
from dataclasses import dataclass, fields
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from gemo_ros.avatar.binding import rotate_quats, triangle_frames
from gemo_ros.face.model import FaceModel

#: A level-of-detail Gaussian standing for c Gaussians grows by c ** LOD_GROWTH per axis
#: (0.5 would keep the covered area; the even subset needs less, and less stays sharper);
#: reductions deeper than 4x add up to 0.05 (holes showed at 8x).
LOD_GROWTH = 0.4
#: Brightness contrast (mean luma difference to the nearest Gaussians) per step of sqrt(2)
#: finer level-of-detail cells, and the most steps (2 = cells 2x finer).
LOD_CONTRAST_STEP = 0.12
LOD_FINE_LEVELS = 2
#: Raw attribute layout, in packing order.
ATTRIBUTE_DIMS: Dict[str, int] = {"xyz": 3, "rotation": 4, "scale": 3, "color": 3, "opacity": 1}


@dataclass
class Gaussians:
    """Posed Gaussians in the world/head frame, ready for ``gemo_ros.render.rasterize``.

    Attributes:
        means: ``[B, N, 3]`` metres.
        quats: ``[B, N, 4]`` unit ``wxyz`` quaternions.
        scales: ``[B, N, 3]`` standard deviations, metres (linear).
        opacities: ``[B, N]`` in [0, 1].
        colors: ``[B, N, 3]`` linear RGB in [0, 1].
    """

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor

    @property
    def batch_size(self) -> int:
        """Leading batch dimension B."""
        return int(self.means.shape[0])

    @property
    def num_gaussians(self) -> int:
        """Number of Gaussians N."""
        return int(self.means.shape[1])

    def render_args(self, index: int = 0) -> Dict[str, torch.Tensor]:
        """Unbatched tensors of frame ``index`` as keyword arguments of ``rasterize``."""
        return {f.name: getattr(self, f.name)[index] for f in fields(self)}

    def to(self, *args, **kwargs) -> "Gaussians":
        """Move/cast every tensor (``torch.Tensor.to`` arguments)."""
        return Gaussians(**{f.name: getattr(self, f.name).to(*args, **kwargs)
                            for f in fields(self)})


def _pack(params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([params[k] for k in ATTRIBUTE_DIMS], -1)


def _unpack(packed: torch.Tensor) -> Dict[str, torch.Tensor]:
    return dict(zip(ATTRIBUTE_DIMS, packed.split(list(ATTRIBUTE_DIMS.values()), -1)))


class GaussianAvatar(nn.Module):
    """Neutral Gaussians, Gaussian blendshapes and their binding to a face model.

    Args:
        face: the face model whose posed mesh carries the Gaussians.
        binding_faces: ``[N]`` triangle index of each Gaussian.
        binding_bary: ``[N, 3]`` barycentric coordinates of each binding point.
        params: raw neutral parameters G0, ``{key: [N, d]}`` per :data:`ATTRIBUTE_DIMS`.
        deltas: blendshapes dG as ``[K, M, D]`` (D = 14, keys packed in order) for the M
            Gaussians listed in ``delta_index``; None for none (M = 0).
        delta_index: ``[M]`` Gaussian indices that ``deltas`` rows refer to; None with
            ``deltas`` of M = N means all Gaussians in order.
        metadata: free-form JSON-able dict saved with the avatar (name, provenance...).
    """

    attribute_dims: Dict[str, int] = dict(ATTRIBUTE_DIMS)

    def __init__(self, face: FaceModel, binding_faces: torch.Tensor,
                 binding_bary: torch.Tensor, params: Mapping[str, torch.Tensor],
                 deltas: Optional[torch.Tensor] = None,
                 delta_index: Optional[torch.Tensor] = None,
                 metadata: Optional[dict] = None) -> None:
        super().__init__()
        N = int(binding_faces.shape[0])
        K = face.num_expressions
        D = sum(ATTRIBUTE_DIMS.values())
        if binding_faces.ndim != 1 or binding_bary.shape != (N, 3):
            raise ValueError(f"binding_faces must be [N] and binding_bary [N, 3], got "
                             f"{tuple(binding_faces.shape)} and {tuple(binding_bary.shape)}")
        if N and (int(binding_faces.min()) < 0 or int(binding_faces.max()) >= len(face.faces)):
            raise ValueError(f"binding_faces index outside the face model's "
                             f"{len(face.faces)} triangles")
        missing = set(ATTRIBUTE_DIMS) - set(params)
        if missing:
            raise ValueError(f"params lacks {sorted(missing)}; need {ATTRIBUTE_DIMS}")
        for key, d in ATTRIBUTE_DIMS.items():
            if tuple(params[key].shape) != (N, d):
                raise ValueError(f"params[{key!r}] must be [{N}, {d}], got "
                                 f"{tuple(params[key].shape)}")
        if deltas is None:
            deltas = torch.zeros(K, 0, D)
            delta_index = torch.zeros(0, dtype=torch.long)
        if delta_index is None:
            delta_index = torch.arange(deltas.shape[1])
        M = int(delta_index.shape[0])
        if tuple(deltas.shape) != (K, M, D):
            raise ValueError(f"deltas must be [{K}, {M}, {D}], got {tuple(deltas.shape)}")
        if M and (int(delta_index.min()) < 0 or int(delta_index.max()) >= N):
            raise ValueError("delta_index refers to Gaussians that do not exist")
        self.face = face
        self.metadata = dict(metadata or {})
        self.register_buffer("binding_faces", binding_faces.long())
        self.register_buffer("binding_bary", binding_bary.float())
        self.params = nn.ParameterDict({k: nn.Parameter(params[k].float().clone())
                                        for k in ATTRIBUTE_DIMS})
        self.deltas = nn.Parameter(deltas.float().clone())
        self.register_buffer("delta_index", delta_index.long())
        self.register_buffer("_bound_vertex_ids", face.faces[binding_faces.long()],
                             persistent=False)
        # Posing needs only the vertices of bound triangles (fewer with a level of detail).
        used, local = torch.unique(self._bound_vertex_ids, return_inverse=True)
        self.register_buffer("_used_vertices", used, persistent=False)
        self.register_buffer("_bound_local_ids", local.reshape(-1, 3), persistent=False)

    # -- sizes ----------------------------------------------------------------------
    @property
    def num_gaussians(self) -> int:
        """Number of Gaussians N."""
        return int(self.binding_faces.shape[0])

    @property
    def expression_names(self) -> Tuple[str, ...]:
        """Names of the K expression coefficients (the face model's basis)."""
        return self.face.expression_names

    # -- Stage 1 evaluation ----------------------------------------------------------
    def blend(self, expr: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Raw blended parameters ``G0 + sum_k expr_k dG_k``: ``{key: [B, N, d]}``.

        One matmul over the blendshapes and one scatter-add into the Gaussians that have
        deltas; no loops over Gaussians.
        """
        if expr.ndim != 2 or expr.shape[1] != self.face.num_expressions:
            raise ValueError(f"expr must be [B, {self.face.num_expressions}], got "
                             f"{tuple(expr.shape)}")
        g0 = _pack(self.params)
        B = expr.shape[0]
        out = g0.expand(B, -1, -1)
        M = self.delta_index.shape[0]
        if M:
            K, _, D = self.deltas.shape
            deltas, expr = self.deltas, expr.to(g0)
            if not (torch.is_grad_enabled() and deltas.requires_grad):
                # Inference: only blendshapes that have any delta take part in the matmul.
                active, deltas = self._active_shapes()
                expr = expr[:, active]
            d = (expr @ deltas.reshape(-1, M * D)).reshape(B, M, D)
            if M == self.num_gaussians:
                out = out + d
            else:
                out = out.index_add(1, self.delta_index, d)
        return _unpack(out)

    def _active_shapes(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Blendshapes with non-zero deltas and their deltas (cached per deltas version)."""
        key = (self.deltas._version, self.deltas.data_ptr(), self.deltas.device)
        if getattr(self, "_active_key", None) != key:
            with torch.no_grad():
                active = torch.nonzero(self.deltas.abs().amax((1, 2)) > 0)[:, 0]
                self._active = (active, self.deltas.detach()[active].contiguous())
            self._active_key = key
        return self._active

    def mesh(self, expr: torch.Tensor, neck_rotation: Optional[torch.Tensor] = None
             ) -> torch.Tensor:
        """Posed face mesh ``M(expr)``: ``[B, V, 3]`` metres (for the emotion residual)."""
        return self.face.pose(expr, neck_rotation)

    def pose_gaussians(self, raw: Mapping[str, torch.Tensor], verts: torch.Tensor
                       ) -> Gaussians:
        """Apply the triangle frames of posed ``verts[B, V, 3]`` to raw ``{key: [B, N, d]}``."""
        return self._pose_bound(raw, verts, self._bound_vertex_ids)

    def _pose_bound(self, raw: Mapping[str, torch.Tensor], verts: torch.Tensor,
                    tri_ids: torch.Tensor) -> Gaussians:
        origin, R, k = triangle_frames(verts, tri_ids, self.binding_bary)
        means = origin + k * (R @ raw["xyz"][..., None])[..., 0]
        quats = rotate_quats(R, raw["rotation"])
        scales = k * torch.exp(raw["scale"])
        opacities = torch.sigmoid(raw["opacity"][..., 0])
        colors = raw["color"].clamp(0.0, 1.0)
        return Gaussians(means, quats, scales, opacities, colors)

    def forward(self, expr: torch.Tensor, neck_rotation: Optional[torch.Tensor] = None,
                offsets: Optional[Mapping[str, torch.Tensor]] = None) -> Gaussians:
        """Posed Gaussians for ``expr[B, K]`` (ARKit order).

        Args:
            expr: ``[B, K]`` expression coefficients in [0, 1].
            neck_rotation: ``[B, 3]`` axis-angle head rotation (radians) or None.
            offsets: optional ``{key: [B, N, d]}`` added to the blended raw parameters before
                posing (the emotion residual); any subset of :data:`ATTRIBUTE_DIMS` keys.
        """
        raw = self.blend(expr)
        if offsets:
            unknown = set(offsets) - set(ATTRIBUTE_DIMS)
            if unknown:
                raise ValueError(f"offsets has unknown keys {sorted(unknown)}")
            raw = {k: (v + offsets[k].to(v) if k in offsets else v) for k, v in raw.items()}
        verts = self.face.pose(expr, neck_rotation, vertex_ids=self._used_vertices)
        return self._pose_bound(raw, verts, self._bound_local_ids)

    # -- helpers for Stage 2 --------------------------------------------------------
    def interpolate_at_gaussians(self, vertex_values: torch.Tensor) -> torch.Tensor:
        """Barycentric interpolation of per-vertex values ``[B, V, C]`` -> ``[B, N, C]``."""
        if vertex_values.ndim != 3 or vertex_values.shape[1] != self.face.num_vertices:
            raise ValueError(f"vertex_values must be [B, {self.face.num_vertices}, C], got "
                             f"{tuple(vertex_values.shape)}")
        tri = vertex_values[:, self._bound_vertex_ids]                 # [B, N, 3, C]
        return torch.einsum("nk,bnkc->bnc", self.binding_bary.to(vertex_values), tri)

    def canonical_means(self) -> torch.Tensor:
        """Gaussian centres ``[N, 3]`` of the neutral avatar in the template pose."""
        zero = torch.zeros(1, self.face.num_expressions, device=self.binding_bary.device)
        with torch.no_grad():
            return self.forward(zero).means[0]

    def expression_vector(self, weights: Mapping[str, float], batch: int = 1,
                          device: Optional[torch.device] = None) -> torch.Tensor:
        """Coefficient vector ``[batch, K]`` from ``{name: weight}`` (unknown names raise)."""
        names = self.face.expression_names
        expr = torch.zeros(batch, len(names), device=device or self.binding_bary.device)
        for name, value in weights.items():
            if name not in names:
                raise ValueError(f"unknown expression {name!r}; known: {', '.join(names)}")
            expr[:, names.index(name)] = float(value)
        return expr


def sparse_deltas_to_dense(shapes: Mapping[str, Tuple[torch.Tensor, torch.Tensor]],
                           names: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pack per-shape sparse deltas ``{name: (index[n], values[n, D])}`` into the dense union.

    Returns ``(deltas [K, M, D], delta_index [M])`` for :class:`GaussianAvatar`.
    """
    D = sum(ATTRIBUTE_DIMS.values())
    unknown = set(shapes) - set(names)
    if unknown:
        raise ValueError(f"deltas for unknown expressions {sorted(unknown)}")
    if not shapes:
        return torch.zeros(len(names), 0, D), torch.zeros(0, dtype=torch.long)
    union = torch.unique(torch.cat([idx.long() for idx, _ in shapes.values()]))
    lookup = torch.full((int(union.max()) + 1,), -1, dtype=torch.long)
    lookup[union] = torch.arange(len(union))
    dense = torch.zeros(len(names), len(union), D)
    for name, (idx, vals) in shapes.items():
        if vals.shape != (idx.shape[0], D):
            raise ValueError(f"delta {name!r}: values must be [{idx.shape[0]}, {D}], got "
                             f"{tuple(vals.shape)}")
        dense[names.index(name), lookup[idx.long()]] = vals.float()
    return dense, union


__all__ = ["GaussianAvatar", "Gaussians", "ATTRIBUTE_DIMS", "sparse_deltas_to_dense"]


def _contrast_level(pos: torch.Tensor, color: torch.Tensor, neighbours: int = 16) -> torch.Tensor:
    """``[N]`` 0..LOD_FINE_LEVELS: how much finer a Gaussian's cell is, from its contrast.

    Lashes, brow hairs and the iris are much darker than their neighbours; skin, lips and
    hair are not (brightness, not hue: denser lip-edge Gaussians poked through the stretched
    skin of a smile as dark dots). High-contrast Gaussians get cells up to 2x finer, so a
    reduction keeps more of them (thin dark strands otherwise break into blobs) and fewer
    of the smooth parts, where the merge hides the loss.
    """
    from scipy.spatial import cKDTree

    k = min(neighbours, pos.shape[0])
    _, nb = cKDTree(pos.numpy()).query(pos.numpy(), k=k)
    luma = color.clamp(0.0, 1.0) @ color.new_tensor([0.299, 0.587, 0.114])
    diff = (luma[torch.from_numpy(nb).long()] - luma[:, None]).abs().mean(-1)
    # Steps of sqrt(2) in cell size per LOD_CONTRAST_STEP of mean brightness difference.
    return torch.clamp(torch.floor(diff / LOD_CONTRAST_STEP), 0, LOD_FINE_LEVELS)


def level_of_detail(avatar: GaussianAvatar, max_gaussians: int, seed: int = 0) -> GaussianAvatar:
    """Return a level-of-detail copy of ``avatar`` with at most ``max_gaussians`` Gaussians.

    The CPU runtime's level of detail (render time grows with the Gaussian count; the
    residual's weights do not depend on it). ``max_gaussians <= 0`` or a smaller avatar
    returns ``avatar`` itself. Otherwise:

    * **kept set**: an even (stratified) subset, not a random one (random subsets leave
      clumps and holes that read as blotches): Gaussians are binned in a grid whose cell
      follows each Gaussian's own size (so dense parts such as the eyes stay denser) and,
      up to 2x finer, its brightness contrast with its neighbours (lashes, brows and the
      iris keep more of their Gaussians; skin, lips and hair fewer), and one
      per cell is kept (seeded), the cell size chosen by bisection to keep about M;
    * **merge**: a kept Gaussian takes the opacity-weighted mean colour of the dropped
      Gaussians of about its size that are nearest to it (a pre-filter: fine colour detail
      turns into its average instead of aliasing into speckle, and lashes or an iris do not
      smear into the skin) and grows by ``members ** LOD_GROWTH`` per axis, members being
      all the Gaussians nearest to it (``+LOD_GROWTH log(members)`` on the log scale), so
      the thinner surface stays covered; its bindings and blendshape deltas are kept.
    """
    n = int(avatar.num_gaussians)
    if max_gaussians <= 0 or n <= max_gaussians:
        return avatar
    m = int(max_gaussians)
    device = avatar.binding_faces.device
    with torch.no_grad():
        g = avatar(torch.zeros(1, avatar.face.num_expressions, device=device))
    pos = g.means[0].detach().double().cpu()
    size = g.scales[0].detach().double().cpu().clamp_min(1e-6)
    size = (size.sort(-1).values[:, 1:]).prod(-1).sqrt()           # in-plane extent, metres
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(n, generator=gen)
    level = torch.round(torch.log2(size) * 2.0)                    # cells by size, sqrt(2) bins
    fine = _contrast_level(pos, avatar.params["color"].detach().double().cpu())

    def pick(c: float) -> torch.Tensor:
        cell_size = c * torch.exp2((level - fine) / 2.0)
        cell = torch.floor(pos / cell_size[:, None]).long() + (1 << 14)
        cell = cell.clamp(0, (1 << 15) - 1)
        key = ((((level.long() + 128) * 8 + fine.long()) << 45) | (cell[:, 0] << 30)
               | (cell[:, 1] << 15) | cell[:, 2])[order]
        _, inv = torch.unique(key, return_inverse=True)
        first = torch.full((int(inv.max()) + 1,), n, dtype=torch.long)
        first.scatter_reduce_(0, inv, torch.arange(n), reduce="amin")
        return order[first]

    lo, hi = 0.1, 20.0
    keep = pick(hi)
    for _ in range(30):
        mid = (lo * hi) ** 0.5
        cand = pick(mid)
        if cand.numel() >= m:
            lo, keep = mid, cand
        else:
            hi = mid
        if abs(cand.numel() - m) <= max(1, m // 200):  # close enough to m
            break
    keep = keep[torch.randperm(keep.numel(), generator=gen)[:m]]   # exactly m (a few dropped)
    idx = keep.sort().values
    # Coverage: each kept Gaussian grows with the Gaussians nearest to it.
    from scipy.spatial import cKDTree
    dist, near_all = cKDTree(pos[idx].numpy()).query(pos.numpy())
    nearest = torch.from_numpy(near_all).long()
    nearest[idx] = torch.arange(m)
    count = torch.bincount(nearest, minlength=m).double().clamp_min(1)
    # Colour: averaged over the nearest kept Gaussian of about the same size when one is
    # about as near as the nearest of any size (lashes into lashes, an iris into the iris:
    # fine features do not smear into the skin; far-away band-mates would make speckle).
    owner = nearest.clone()
    band = torch.round(level / 2.0)                                # factor-2 size bands
    for b in torch.unique(band).tolist():
        kept_b = torch.nonzero(band[idx] == b)[:, 0]
        mine = torch.nonzero(band == b)[:, 0]
        if kept_b.numel():
            d_b, near = cKDTree(pos[idx[kept_b]].numpy()).query(pos[mine].numpy())
            close = torch.from_numpy(d_b <= 2.0 * dist[mine.numpy()] + 1e-9)  # not far away
            owner[mine[close]] = kept_b[torch.from_numpy(near).long()][close]
    owner[idx] = torch.arange(m)
    w = torch.sigmoid(avatar.params["opacity"].detach().double().cpu()[:, 0]) + 1e-6
    col = avatar.params["color"].detach().double().cpu()
    mean_col = torch.zeros(m, 3, dtype=torch.float64).index_add_(0, owner, col * w[:, None])
    mean_col /= torch.zeros(m, dtype=torch.float64).index_add_(0, owner, w)[:, None]
    idx = idx.to(device)
    params = {k: v.detach()[idx].clone() for k, v in avatar.params.items()}
    params["color"] = mean_col.to(params["color"])
    # Deeper reductions need a little more growth to stay hole-free (0.45 from 8x on).
    growth = LOD_GROWTH + 0.05 * min(max(math.log2(n / m) - 2.0, 0.0), 1.0)
    params["scale"] = params["scale"] + growth * torch.log(count).to(params["scale"])[:, None]
    remap = torch.full((n,), -1, dtype=torch.long, device=device)
    remap[idx] = torch.arange(idx.numel(), device=device)
    mapped = remap[avatar.delta_index]
    kept = mapped >= 0
    meta = dict(getattr(avatar, "metadata", {}) or {})
    meta["level_of_detail"] = f"{idx.numel()} of {n} Gaussians"
    return type(avatar)(avatar.face, avatar.binding_faces[idx], avatar.binding_bary[idx],
                        params, avatar.deltas.detach()[:, kept], mapped[kept], meta)
