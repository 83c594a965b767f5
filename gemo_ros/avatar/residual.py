"""Emotion residual deformation: the spatial-audio-emotion attention module (Stage 2).

The neutral talking head ``G(psi_n)`` is phoneme-synchronised but emotionless. This module
predicts per-Gaussian offsets of every raw avatar attribute from

* the mesh displacement ``M(psi_e) - M(psi_n)`` sampled at each Gaussian's binding
  (barycentric interpolation on its triangle), ``[B, N, 3]`` metres,
* the canonical Gaussian positions ``[N, 3]`` metres (positional encoding),
* a window of audio-encoder features ``[B, W, D]``,
* the emotion id ``[B]`` and the intensity ``[B]`` in ``[0, 1]``,

so that the final head is ``avatar(psi_n, offsets=residual(...))``.

Design (why it looks like this):

* Attention per Gaussian is too slow on a 2-core CPU at 20k-60k Gaussians, so the Gaussians
  are grouped once per avatar into ``C`` K-means clusters of their canonical positions
  (default 1024). Each Gaussian's query is ``W_d * disp_g + W_p * PE(x_g)``; since it is
  linear, the mean of the member queries of a cluster equals ``W_d * mean(disp) + W_p *
  mean(PE(x))``, which is what is computed (exactly the pooled per-Gaussian queries, at
  cluster cost).
* The cluster queries attend (multi-head, ``scaled_dot_product_attention``) over audio
  tokens plus one emotion token and one intensity token; a pre-norm MLP follows.
* The head predicts, per cluster, offsets ``a_c``, gains ``g_c`` of the local displacement
  magnitude and a 3x3 map ``A_c`` of each Gaussian's *own* displacement to its position
  offset (initialised to the identity: the untrained module moves Gaussians with the mesh
  displacement), so detail below the cluster scale survives. They are interpolated to
  Gaussians with inverse-distance weights ``w`` over the ``k`` nearest cluster centres (a
  fixed sparse matrix; smooth, no seams between clusters):
  ``o_g = i * a_g + s * (g_g * |d_g| + [A_g d_g on xyz])`` with ``a_g = sum_k w_gk a_ck``
  etc., intensity ``i`` and ``s = 1`` for ``i > 0``.
* Fine colour detail (wrinkle lines ~1 mm wide, far below the ~8 mm cluster spacing): a
  rank-J factorisation ``c_g = i * sum_j B_j(x_g) z_j``. ``B = MLP(PE(x_g))`` is a
  continuous field of J basis maps over the canonical position with octaves down to ~2 mm
  (weights independent of the Gaussian count; evaluated once per binding and cached when
  no gradient is needed, so a frame pays only an ``[N, J] x [J, 3]`` product), and the J
  colour coefficients ``z`` come per frame from the pooled attention output plus the
  emotion embedding (so the lines follow the emotion, intensity and the face's motion).
* Every term is multiplied by ``emotion != neutral`` and vanishes at intensity 0 (the
  constant and detail terms through ``i``, the displacement terms through ``s``; they are
  also proportional to the displacement, which is zero when ``psi_e = psi_n``), so
  intensity 0 or the neutral emotion give exactly zero offsets by construction, not by
  training.
"""

import json
import logging
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from gemo_ros.emotions import EMOTIONS, NEUTRAL

LOG = logging.getLogger(__name__)

#: Name of the shipped weights inside ``gemo_ros/assets``.
DEFAULT_ASSET = "residual_default.safetensors"
#: Format tag stored in the safetensors metadata (/2 added the fine colour-detail field).
FORMAT = "gemo_ros.emotion_residual/2"
#: Older format tags that still load (their configs predate the detail field: it is off).
_LEGACY_FORMATS = {"gemo_ros.emotion_residual/1": {"detail_basis": 0}}


@dataclass
class ResidualConfig:
    """Hyper-parameters of :class:`EmotionResidual` (saved with the weights).

    Attributes:
        attribute_dims: raw avatar attribute name -> width, in the avatar's order, e.g.
            ``{"xyz": 3, "rotation": 4, "scale": 3, "color": 3, "opacity": 1}``.
        feature_dim: width D of the audio-encoder features.
        dim: token / query width.
        heads: attention heads (``dim`` must be divisible by it).
        num_clusters: K-means clusters of Gaussians that attend (queries per frame).
        knn: nearest cluster centres interpolated to each Gaussian.
        pe_freqs: octaves of the sinusoidal positional encoding.
        pos_scale: metres that map to 1 before the positional encoding (head radius).
        disp_scale: metres of mesh displacement that map to 1 (displacements are mm-cm).
        output_scale: per-attribute multiplier of the raw head output (sets the step size
            of each attribute in the avatar's raw units); missing keys use 1. With binding
            frames, ``xyz`` is predicted in the head frame in units of ``disp_scale`` metres
            and converted to local units before this multiplier.
        window: audio frames centred on the rendered frame that the model was trained
            with (the pipeline feeds this many).
        max_window: longest audio window accepted (frames).
        detail_basis: J basis maps of the fine colour-detail field (0 = no detail term,
            as in format /1 files).
        detail_freqs: octaves of the detail field's positional encoding (finest
            wavelength ``2 * pos_scale / 2^(L-1)``: 2.3 mm for 8 octaves at 0.15 m).
        detail_hidden: width of the detail field's MLP.
    """

    attribute_dims: Dict[str, int] = field(default_factory=lambda: {
        "xyz": 3, "rotation": 4, "scale": 3, "color": 3, "opacity": 1})
    feature_dim: int = 64
    dim: int = 64
    heads: int = 4
    num_clusters: int = 1024
    knn: int = 4
    pe_freqs: int = 5
    pos_scale: float = 0.15
    disp_scale: float = 0.01
    output_scale: Dict[str, float] = field(default_factory=dict)
    window: int = 9
    max_window: int = 64
    detail_basis: int = 16
    detail_freqs: int = 8
    detail_hidden: int = 64

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent setting."""
        if not self.attribute_dims:
            raise ValueError("ResidualConfig.attribute_dims is empty")
        for name, width in self.attribute_dims.items():
            if int(width) <= 0:
                raise ValueError(f"attribute {name!r} has width {width}; must be > 0")
        if self.dim % self.heads:
            raise ValueError(f"dim={self.dim} is not divisible by heads={self.heads}")
        for name, value in (("feature_dim", self.feature_dim), ("num_clusters",
                            self.num_clusters), ("knn", self.knn), ("window", self.window),
                            ("max_window", self.max_window)):
            if int(value) <= 0:
                raise ValueError(f"ResidualConfig.{name}={value} must be > 0")
        if self.detail_basis < 0 or (self.detail_basis and (self.detail_freqs <= 0
                                                            or self.detail_hidden <= 0)):
            raise ValueError(f"detail_basis={self.detail_basis}, detail_freqs="
                             f"{self.detail_freqs}, detail_hidden={self.detail_hidden}: "
                             "the basis count must be >= 0 and the others > 0")
        if self.window > self.max_window:
            raise ValueError(f"window={self.window} exceeds max_window={self.max_window}")
        unknown = set(self.output_scale) - set(self.attribute_dims)
        if unknown:
            raise ValueError(f"output_scale names unknown attributes {sorted(unknown)}")


@dataclass
class ClusterBinding:
    """Grouping of N Gaussians into C clusters, computed once per avatar.

    Attributes:
        assign: ``[N]`` long, cluster of each Gaussian.
        counts: ``[C]`` float, members per cluster (>= 1).
        centroids: ``[C, 3]`` metres, mean canonical position of the members.
        mean_pe: ``[C, E]`` mean positional encoding of the members.
        knn_index: ``[N, k]`` long, nearest cluster centres of each Gaussian.
        knn_weight: ``[N, k]`` inverse-distance weights (rows sum to 1).
        frame_rot: optional ``[N, 3, 3]`` rotation (columns = local axes in the head frame)
            of each Gaussian's binding frame in the canonical pose.
        frame_scale: optional ``[N, 1]`` metres per local unit of that frame.
    """

    assign: torch.Tensor
    counts: torch.Tensor
    centroids: torch.Tensor
    mean_pe: torch.Tensor
    knn_index: torch.Tensor
    knn_weight: torch.Tensor
    frame_rot: Optional[torch.Tensor] = None
    frame_scale: Optional[torch.Tensor] = None
    _pool: Optional[torch.Tensor] = None
    _interp: Optional[torch.Tensor] = None
    _detail: Optional[Tuple[Tuple, torch.Tensor]] = None

    def pool_matrix(self) -> torch.Tensor:
        """Return the sparse CSR ``[C, N]`` matrix that averages members of each cluster."""
        if self._pool is None:
            n, c = self.num_gaussians, self.num_clusters
            idx = torch.stack([self.assign, torch.arange(n, device=self.assign.device)])
            val = (1.0 / self.counts)[self.assign]
            self._pool = _csr(idx, val, (c, n))
        return self._pool

    def interp_matrix(self) -> torch.Tensor:
        """Return the sparse CSR ``[N, C]`` inverse-distance interpolation matrix."""
        if self._interp is None:
            n, k = self.knn_index.shape
            rows = torch.arange(n, device=self.knn_index.device).repeat_interleave(k)
            idx = torch.stack([rows, self.knn_index.reshape(-1)])
            self._interp = _csr(idx, self.knn_weight.reshape(-1), (n, self.num_clusters))
        return self._interp

    @property
    def num_gaussians(self) -> int:
        """Return N."""
        return int(self.assign.shape[0])

    @property
    def num_clusters(self) -> int:
        """Return C."""
        return int(self.centroids.shape[0])

    def to(self, device: Union[str, torch.device]) -> "ClusterBinding":
        """Return a copy on ``device``."""
        return ClusterBinding(**{k: (None if v is None else v.to(device))
                                 for k, v in asdict_shallow(self).items()})


def _csr(index: torch.Tensor, values: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    # Sparse matmul is ~15x faster than gathering [N, k, Q] on CPU; build it once per avatar.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coo = torch.sparse_coo_tensor(index, values.to(torch.float32), size).coalesce()
        return coo.to_sparse_csr()


def _spmm(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Return ``matrix @ x`` for a sparse ``[R, S]`` matrix and a batched ``x[B, S, Q]``."""
    b, s, q = x.shape
    flat = x.reshape(s, q) if b == 1 else x.permute(1, 0, 2).reshape(s, b * q)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = torch.mm(matrix, flat.to(torch.float32)).to(x.dtype)
    return out.reshape(-1, b, q).permute(1, 0, 2)


def asdict_shallow(binding: ClusterBinding) -> Dict[str, torch.Tensor]:
    """Return the tensors of a binding by field name (no deep copy, unlike ``asdict``)."""
    return {name: getattr(binding, name) for name in
            ("assign", "counts", "centroids", "mean_pe", "knn_index", "knn_weight",
             "frame_rot", "frame_scale")}


def positional_encoding(x: torch.Tensor, freqs: int) -> torch.Tensor:
    """Return ``[x, sin(2^l pi x), cos(2^l pi x)]`` for l < freqs.

    Args:
        x: ``[..., 3]`` positions already divided by the head scale.
        freqs: number of octaves L.

    Returns:
        ``[..., 3 + 6 L]``.
    """
    scales = (2.0 ** torch.arange(freqs, dtype=x.dtype, device=x.device)) * math.pi
    angles = x[..., None, :] * scales[:, None]  # [..., L, 3]
    return torch.cat([x, torch.sin(angles).flatten(-2), torch.cos(angles).flatten(-2)], dim=-1)


def kmeans(points: torch.Tensor, k: int, iters: int = 12, seed: int = 0) -> torch.Tensor:
    """Cluster points with Lloyd's algorithm; deterministic for a given seed.

    Args:
        points: ``[N, 3]``.
        k: clusters (clamped to N).
        iters: Lloyd iterations.
        seed: seed of the k-means++-lite initialisation (random distinct points).

    Returns:
        ``[N]`` long cluster assignment, every cluster id in ``[0, k')`` non-empty, where
        k' <= k after dropping clusters that end up empty.
    """
    n = points.shape[0]
    k = max(1, min(int(k), n))
    gen = torch.Generator().manual_seed(seed)
    centres = points[torch.randperm(n, generator=gen)[:k]].clone()
    assign = torch.zeros(n, dtype=torch.long)
    for _ in range(iters):
        assign = _nearest(points, centres)
        sums = torch.zeros_like(centres).index_add_(0, assign, points)
        counts = torch.bincount(assign, minlength=k).to(points.dtype)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    assign = _nearest(points, centres)
    # Relabel so ids are contiguous over non-empty clusters.
    used, assign = torch.unique(assign, return_inverse=True)
    return assign


def _nearest(points: torch.Tensor, centres: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    out = []
    for start in range(0, points.shape[0], chunk):
        out.append(torch.cdist(points[start:start + chunk], centres).argmin(dim=1))
    return torch.cat(out)


def build_binding(canonical: torch.Tensor, num_clusters: int, knn: int, pe_freqs: int,
                  pos_scale: float, seed: int = 0,
                  frames: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> ClusterBinding:
    """Group canonical Gaussian positions into clusters and precompute interpolation weights.

    Args:
        canonical: ``[N, 3]`` metres, the avatar's canonical (neutral, unposed) means.
        num_clusters: wanted C (clamped to N).
        knn: cluster centres interpolated per Gaussian (clamped to C).
        pe_freqs: octaves of the positional encoding.
        pos_scale: metres mapped to 1 before the encoding.
        seed: k-means seed.
        frames: optional ``(rot [N, 3, 3], scale [N, 1])`` canonical binding frames of the
            Gaussians (``mean = origin + scale * rot @ xyz``); with them, position offsets
            are predicted in head-frame metres and converted to local units.

    Returns:
        A :class:`ClusterBinding` on the device of ``canonical``.
    """
    if canonical.ndim != 2 or canonical.shape[-1] != 3 or canonical.shape[0] == 0:
        raise ValueError(f"canonical positions must be [N>0, 3], got {tuple(canonical.shape)}")
    if not torch.isfinite(canonical).all():
        raise ValueError("canonical positions contain NaN or inf")
    device = canonical.device
    pts = canonical.detach().to("cpu", torch.float32)
    assign = kmeans(pts, num_clusters, seed=seed)
    c = int(assign.max()) + 1
    counts = torch.bincount(assign, minlength=c).to(torch.float32)
    centroids = torch.zeros(c, 3).index_add_(0, assign, pts) / counts[:, None]
    pe = positional_encoding(pts / pos_scale, pe_freqs)
    mean_pe = torch.zeros(c, pe.shape[1]).index_add_(0, assign, pe) / counts[:, None]
    k = max(1, min(int(knn), c))
    idx_parts, w_parts = [], []
    for start in range(0, pts.shape[0], 8192):
        d = torch.cdist(pts[start:start + 8192], centroids)
        dist, idx = d.topk(k, dim=1, largest=False)
        # Inverse-distance weights; the epsilon (0.1 mm) keeps a Gaussian sitting on a
        # centre from dividing by zero and makes the weights continuous in position.
        w = 1.0 / (dist + 1e-4)
        idx_parts.append(idx)
        w_parts.append(w / w.sum(dim=1, keepdim=True))
    binding = ClusterBinding(assign=assign, counts=counts, centroids=centroids, mean_pe=mean_pe,
                             knn_index=torch.cat(idx_parts), knn_weight=torch.cat(w_parts))
    if frames is not None:
        rot, scale = frames
        n = pts.shape[0]
        if tuple(rot.shape) != (n, 3, 3) or tuple(scale.reshape(n, -1).shape) != (n, 1):
            raise ValueError(f"frames must be ([N={n}, 3, 3], [N, 1]), got "
                             f"{tuple(rot.shape)} and {tuple(scale.shape)}")
        if not bool((scale > 0).all()):
            raise ValueError("frame scales must be positive")
        binding.frame_rot = rot.detach().float().cpu()
        binding.frame_scale = scale.detach().float().reshape(n, 1).cpu()
    return binding.to(device)


class EmotionResidual(nn.Module):
    """Spatial-audio-emotion attention: per-Gaussian attribute offsets for the avatar.

    Call :meth:`bind` once with the avatar's canonical means (or let ``forward`` do it and
    cache the result), then call the module per frame (batched over frames ``B``).
    """

    def __init__(self, config: Optional[ResidualConfig] = None) -> None:
        super().__init__()
        self.config = config or ResidualConfig()
        self.config.validate()
        cfg = self.config
        d = cfg.dim
        self.attribute_names = tuple(cfg.attribute_dims)
        self.attribute_widths = tuple(int(cfg.attribute_dims[n]) for n in self.attribute_names)
        self.out_dim = sum(self.attribute_widths)
        pe_dim = 3 + 6 * cfg.pe_freqs

        # Queries: linear in (displacement, PE(position)) so that cluster pooling is exact.
        self.query_disp = nn.Linear(3, d, bias=False)
        self.query_pos = nn.Linear(pe_dim, d)
        self.query_mlp = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(),
                                       nn.Linear(d, d))
        # Keys/values: audio tokens, an emotion token and an intensity token.
        self.audio_norm = nn.LayerNorm(cfg.feature_dim)
        self.audio_proj = nn.Linear(cfg.feature_dim, d)
        self.emotion_embed = nn.Embedding(len(EMOTIONS), d)
        self.intensity_proj = nn.Linear(8, d)
        self.type_embed = nn.Parameter(torch.randn(3, d) * 0.02)  # audio, emotion, intensity
        self.kv_norm = nn.LayerNorm(d)
        self.q_norm = nn.LayerNorm(d)
        self.to_q = nn.Linear(d, d)
        self.to_kv = nn.Linear(d, 2 * d)
        self.attn_out = nn.Linear(d, d)
        self.ffn = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(),
                                 nn.Linear(2 * d, d))
        # Head, per cluster: offsets a_c [P], gains g_c [P] of the local displacement
        # magnitude (fine detail: shading where the skin folds), and a 3x3 map A_c of the
        # Gaussian's own displacement to its position offset (when "xyz" is an attribute).
        self.xyz_slice = self._slice("xyz") if cfg.attribute_dims.get("xyz") == 3 else None
        self.head_width = 2 * self.out_dim + (9 if self.xyz_slice is not None else 0)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(),
                                  nn.Linear(d, self.head_width))
        # Small (not zero) init of the last layer so gradients reach every parameter; the
        # displacement map starts at the identity: the untrained residual moves each
        # Gaussian with the emotional mesh displacement (avatar(psi_n) + offsets ~ the
        # geometry of avatar(psi_e)) and leaves the appearance alone.
        with torch.no_grad():
            self.head[-1].weight.mul_(0.05)
            self.head[-1].bias.zero_()
            if self.xyz_slice is not None:
                self.head[-1].bias[2 * self.out_dim:] = torch.eye(3).reshape(-1)
        scale = torch.tensor([float(cfg.output_scale.get(n, 1.0))
                              for n, w in zip(self.attribute_names, self.attribute_widths)
                              for _ in range(w)])
        self.register_buffer("output_scale", scale, persistent=False)
        # Fine colour detail: J basis maps of the canonical position (a continuous field,
        # so it serves any Gaussian count) times J per-frame colour coefficients.
        self.color_slice = self._slice("color") if cfg.attribute_dims.get("color") == 3 else None
        self.detail_field: Optional[nn.Module] = None
        self.detail_code: Optional[nn.Module] = None
        if cfg.detail_basis and self.color_slice is not None:
            width, hid, j = 3 + 6 * cfg.detail_freqs, cfg.detail_hidden, cfg.detail_basis
            self.detail_field = nn.Sequential(nn.Linear(width, hid), nn.GELU(),
                                              nn.Linear(hid, hid), nn.GELU(),
                                              nn.Linear(hid, j))
            self.detail_code = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(),
                                             nn.Linear(d, 3 * j))
            with torch.no_grad():  # small start: the untrained term barely shows
                self.detail_code[-1].weight.mul_(0.05)
                self.detail_code[-1].bias.zero_()
        self._binding: Optional[ClusterBinding] = None
        self._binding_key: Optional[Tuple] = None

    def _slice(self, name: str) -> slice:
        start = 0
        for n, w in zip(self.attribute_names, self.attribute_widths):
            if n == name:
                return slice(start, start + w)
            start += w
        raise KeyError(name)

    # ------------------------------------------------------------------ binding
    def bind(self, canonical: torch.Tensor, seed: int = 0,
             frames: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> ClusterBinding:
        """Cluster the avatar's canonical means and cache the binding.

        Args:
            canonical: ``[N, 3]`` metres.
            seed: k-means seed (the same seed gives the same clusters).
            frames: optional canonical binding frames ``(rot [N, 3, 3], scale [N, 1])``
                (see :func:`build_binding`); the avatar's ``xyz`` lives in such frames.

        Returns:
            The cached :class:`ClusterBinding`.
        """
        cfg = self.config
        self._binding = build_binding(canonical, cfg.num_clusters, cfg.knn, cfg.pe_freqs,
                                      cfg.pos_scale, seed=seed, frames=frames)
        self._binding_key = self._key(canonical)
        LOG.debug("residual bound to %d Gaussians in %d clusters",
                  self._binding.num_gaussians, self._binding.num_clusters)
        return self._binding

    @staticmethod
    def _key(canonical: torch.Tensor) -> Tuple:
        # Identity of the tensor and its in-place version counter: cheap, and any edit of
        # the canonical positions triggers a rebind.
        return (tuple(canonical.shape), canonical.device, canonical.data_ptr(),
                canonical._version)

    def binding_for(self, canonical: torch.Tensor) -> ClusterBinding:
        """Return the cached binding for these canonical means, building it if they changed."""
        if self._binding is None or self._binding_key != self._key(canonical):
            self.bind(canonical)
        return self._binding

    def detail_basis(self, canonical: torch.Tensor, bind: ClusterBinding) -> torch.Tensor:
        """Return the ``[N, J]`` detail basis maps at the canonical means.

        Cached on ``bind`` when no gradient is needed (the frame path): the key holds the
        canonical tensor's identity and the field's parameter versions, so training steps
        or loading other weights recompute it.
        """
        cfg = self.config
        params = list(self.detail_field.parameters())
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in params)
        key = (self._key(canonical), tuple((p.data_ptr(), p._version) for p in params))
        if not grad and bind._detail is not None and bind._detail[0] == key:
            return bind._detail[1]
        pe = positional_encoding(canonical.to(params[0].dtype) / cfg.pos_scale,
                                 cfg.detail_freqs)
        basis = self.detail_field(pe)
        if not grad:
            bind._detail = (key, basis)
        return basis

    # ------------------------------------------------------------------ tokens
    @staticmethod
    def _intensity_features(intensity: torch.Tensor) -> torch.Tensor:
        i = intensity[:, None]
        freqs = torch.arange(1, 4, dtype=i.dtype, device=i.device) * math.pi
        return torch.cat([i, i * i, torch.sin(freqs * i), torch.cos(freqs * i)], dim=-1)

    @staticmethod
    def _time_encoding(w: int, d: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        # Relative frame offset from the window centre, sinusoidal (any window length works).
        t = torch.arange(w, device=device, dtype=dtype) - (w - 1) / 2.0
        half = d // 2
        freq = torch.exp(-math.log(100.0) * torch.arange(half, device=device, dtype=dtype) / half)
        ang = t[:, None] * freq[None]
        return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)

    def _tokens(self, audio: torch.Tensor, emotion: torch.Tensor,
                intensity: torch.Tensor) -> torch.Tensor:
        b, w, _ = audio.shape
        a = self.audio_proj(self.audio_norm(audio))
        a = a + self._time_encoding(w, a.shape[-1], a.device, a.dtype) + self.type_embed[0]
        e = self.emotion_embed(emotion)[:, None] + self.type_embed[1]
        i = self.intensity_proj(self._intensity_features(intensity))[:, None] + self.type_embed[2]
        return self.kv_norm(torch.cat([a, e, i], dim=1))  # [B, W + 2, d]

    # ------------------------------------------------------------------ forward
    def _check(self, displacement: torch.Tensor, canonical: torch.Tensor, audio: torch.Tensor,
               emotion: torch.Tensor, intensity: torch.Tensor, values: bool = True) -> None:
        if displacement.ndim != 3 or displacement.shape[-1] != 3:
            raise ValueError(f"displacement must be [B, N, 3], got {tuple(displacement.shape)}")
        b, n, _ = displacement.shape
        if canonical.shape != (n, 3):
            raise ValueError(f"canonical must be [N={n}, 3], got {tuple(canonical.shape)}")
        if audio.ndim != 3 or audio.shape[0] != b or audio.shape[2] != self.config.feature_dim:
            raise ValueError(f"audio features must be [B={b}, W, D={self.config.feature_dim}], "
                             f"got {tuple(audio.shape)}")
        if not 0 < audio.shape[1] <= self.config.max_window:
            raise ValueError(f"audio window W={audio.shape[1]} outside 1..{self.config.max_window}")
        if emotion.shape != (b,) or intensity.shape != (b,):
            raise ValueError(f"emotion and intensity must be [B={b}], got "
                             f"{tuple(emotion.shape)} and {tuple(intensity.shape)}")
        if not values:  # the value checks below read the device (a sync on a GPU)
            return
        if emotion.numel() and (int(emotion.min()) < 0 or int(emotion.max()) >= len(EMOTIONS)):
            raise ValueError(f"emotion ids must be in 0..{len(EMOTIONS) - 1}, got "
                             f"{emotion.tolist()}")

    def forward(self, displacement: torch.Tensor, canonical: torch.Tensor, audio: torch.Tensor,
                emotion: torch.Tensor, intensity: torch.Tensor,
                binding: Optional[ClusterBinding] = None, active: Optional[bool] = None,
                validate: bool = True) -> Dict[str, torch.Tensor]:
        """Predict raw-attribute offsets for every Gaussian.

        Args:
            displacement: ``[B, N, 3]`` metres, ``M(psi_e) - M(psi_n)`` interpolated at each
                Gaussian's binding (``avatar.interpolate_at_gaussians``).
            canonical: ``[N, 3]`` metres, the avatar's canonical means.
            audio: ``[B, W, D]`` audio-encoder features around the frame (W odd, centred).
            emotion: ``[B]`` long emotion ids (``gemo_ros.emotions.EMOTIONS``).
            intensity: ``[B]`` float in [0, 1] (clamped).
            binding: precomputed clusters (optionally with binding frames, see
                :meth:`bind`); default: cached from ``canonical`` without frames.
            active: whether any item is emotional with intensity > 0, when the caller knows
                it on the host (False returns the zeros at once); None reads it from the
                tensors (a device -> host sync on a GPU).
            validate: False skips the value checks (emotion ids in range, finite inputs),
                each a device -> host read on a GPU; for callers that checked their host
                inputs (the real-time frame). Shapes are always checked.

        Returns:
            ``{name: [B, N, width]}`` for every name in ``config.attribute_dims``, in the
            avatar's raw (pre-posing) parameter space; exactly zero where intensity is 0 or
            the emotion is neutral.
        """
        emotion = torch.as_tensor(emotion, device=displacement.device).long().reshape(-1)
        intensity = torch.as_tensor(intensity, device=displacement.device,
                                    dtype=displacement.dtype).reshape(-1)
        self._check(displacement, canonical, audio, emotion, intensity, values=validate)
        if validate and not (torch.isfinite(intensity).all() and torch.isfinite(audio).all()
                             and torch.isfinite(displacement).all()):
            raise ValueError("residual inputs contain NaN or inf")
        intensity = intensity.clamp(0.0, 1.0)
        bind = binding if binding is not None else self.binding_for(canonical)
        if bind.num_gaussians != displacement.shape[1]:
            raise ValueError(f"binding has {bind.num_gaussians} Gaussians, displacement "
                             f"{displacement.shape[1]}")
        b, n, _ = displacement.shape
        cfg = self.config
        if active is None:
            active = bool(((emotion != NEUTRAL) & (intensity > 0)).any())
        if not active:
            # Neutral or intensity 0 everywhere (the idle case): exactly zero, no compute.
            zeros = displacement.new_zeros(b, n, self.out_dim)
            return dict(zip(self.attribute_names, zeros.split(self.attribute_widths, dim=-1)))
        disp = displacement / cfg.disp_scale
        # Cluster queries = mean of the (linear) per-Gaussian queries of the members.
        pooled = _spmm(bind.pool_matrix(), disp)  # [B, C, 3]
        q = self.query_disp(pooled) + self.query_pos(bind.mean_pe.to(disp.dtype))[None]
        q = q + self.query_mlp(q)
        kv = self._tokens(audio.to(disp.dtype), emotion, intensity)
        h = self.heads_attention(self.q_norm(q), kv)
        h = q + self.attn_out(h)
        h = h + self.ffn(h)
        # Interpolate the head output to Gaussians (inverse distance over k nearest centres);
        # one sparse matmul per block keeps the per-Gaussian tensors contiguous (fast on CPU).
        out = self.head(h)  # [B, C, head_width]
        p = self.out_dim
        interp = bind.interp_matrix()
        emotional = (emotion != NEUTRAL).to(disp.dtype)
        # The constant part scales with the intensity; the displacement-driven part is
        # already proportional to the displacement (which grows with the intensity), so it
        # is only switched off at intensity 0 / neutral. Both are exactly 0 there.
        gate = (intensity * emotional)[:, None, None]
        step = ((intensity > 0).to(disp.dtype) * emotional)[:, None, None]
        mag = disp.norm(dim=-1, keepdim=True)  # [B, N, 1]
        offs = _spmm(interp, out[..., :p]) * gate
        local = _spmm(interp, out[..., p:2 * p]) * mag
        if self.xyz_slice is not None:
            amap = _spmm(interp, out[..., 2 * p:]).reshape(b, n, 3, 3)
            xyz = torch.einsum("bnij,bnj->bni", amap, disp)
            local = local + F.pad(xyz, (self.xyz_slice.start, p - self.xyz_slice.stop))
        offs = offs + local * step
        if self.detail_field is not None:
            # Fine colour detail: frame code (pooled attention output + emotion) -> J colour
            # coefficients, times the cached basis maps; scaled by the intensity gate.
            code = h.mean(dim=1) + self.emotion_embed(emotion)
            z = self.detail_code(code).reshape(b, -1, 3)                    # [B, J, 3]
            basis = self.detail_basis(canonical, bind).to(disp.dtype)      # [N, J]
            detail = torch.einsum("nj,bjc->bnc", basis, z) * gate
            cs = self.color_slice
            offs = offs + F.pad(detail, (cs.start, p - cs.stop))
        if self.xyz_slice is not None:
            if bind.frame_rot is not None:
                # Position offsets are predicted in the head frame (units of disp_scale
                # metres: smooth across triangles whatever their local axes) and expressed
                # in each Gaussian's local binding frame: xyz = R^T w / k.
                sl = self.xyz_slice
                world = offs[..., sl] * cfg.disp_scale
                local = torch.einsum("nji,bnj->bni", bind.frame_rot.to(world.dtype), world)
                local = local / bind.frame_scale.to(world.dtype)
                offs = torch.cat([offs[..., :sl.start], local, offs[..., sl.stop:]], dim=-1)
        offs = offs * self.output_scale.to(disp.dtype)
        return dict(zip(self.attribute_names, offs.split(self.attribute_widths, dim=-1)))

    def follow_offsets(self, displacement: torch.Tensor,
                       binding: Optional[ClusterBinding] = None) -> Optional[torch.Tensor]:
        """Raw position offsets ``[B, N, 3]`` that move each Gaussian with the mesh.

        What the untrained module's identity map gives for ``displacement [B, N, 3]``
        (metres): the blendshape motion. Training regularises the offsets' departure from it
        (penalising the offsets themselves would shrink every expression). None when the
        module predicts no positions.
        """
        if self.xyz_slice is None:
            return None
        cfg = self.config
        bind = binding
        if bind is not None and bind.frame_rot is not None:
            local = torch.einsum("nji,bnj->bni", bind.frame_rot.to(displacement.dtype),
                                 displacement)
            local = local / bind.frame_scale.to(displacement.dtype)
        else:
            local = displacement / cfg.disp_scale
        return local * self.output_scale[self.xyz_slice].to(displacement.dtype)

    def heads_attention(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """Multi-head cross-attention of cluster queries ``[B, C, d]`` over tokens ``[B, T, d]``."""
        b, c, d = q.shape
        h = self.config.heads
        qh = self.to_q(q).reshape(b, c, h, d // h).transpose(1, 2)
        k, v = self.to_kv(kv).chunk(2, dim=-1)
        kh = k.reshape(b, -1, h, d // h).transpose(1, 2)
        vh = v.reshape(b, -1, h, d // h).transpose(1, 2)
        att = F.scaled_dot_product_attention(qh, kh, vh)
        return att.transpose(1, 2).reshape(b, c, d)

    # ------------------------------------------------------------------ persistence
    def save(self, path: Union[str, os.PathLike], extra: Optional[Dict[str, str]] = None) -> None:
        """Write weights and config to one safetensors file.

        Args:
            path: output file (``.safetensors``).
            extra: additional string metadata (e.g. how the weights were trained).
        """
        from safetensors.torch import save_file

        meta = {"format": FORMAT, "config": json.dumps(asdict(self.config))}
        for key, value in (extra or {}).items():
            meta[str(key)] = str(value)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def load(cls, path: Union[str, os.PathLike],
             map_location: Union[str, torch.device] = "cpu") -> "EmotionResidual":
        """Read a file written by :meth:`save`; raises ValueError on a foreign or corrupt file."""
        from safetensors import safe_open

        if not os.path.isfile(path):
            raise FileNotFoundError(f"residual weights not found: {path}")
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                meta = handle.metadata() or {}
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        except Exception as exc:  # safetensors raises several types on corrupt headers
            raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
        fmt = meta.get("format")
        if fmt != FORMAT and fmt not in _LEGACY_FORMATS:
            newer = isinstance(fmt, str) and fmt.startswith(FORMAT.rsplit("/", 1)[0] + "/")
            raise ValueError(f"{path}: " + (
                f"emotion-residual format {fmt!r} is newer than this code reads ({FORMAT!r}"
                f" and {sorted(_LEGACY_FORMATS)}); update gemo_ros" if newer else
                f"not an emotion-residual file (format {fmt!r}, expected {FORMAT!r})"))
        settings = dict(_LEGACY_FORMATS.get(fmt, {}))
        settings.update(json.loads(meta["config"]))
        try:
            config = ResidualConfig(**settings)
        except TypeError as exc:
            raise ValueError(f"{path}: config does not match format {fmt!r} ({exc})") from exc
        model = cls(config)
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path}: weights do not match the config "
                             f"(missing {missing}, unexpected {unexpected})")
        model.metadata = meta
        return model.to(map_location)


def default_residual_path() -> str:
    """Return the file path of the shipped default residual weights."""
    from importlib import resources

    return str(resources.files("gemo_ros").joinpath("assets", DEFAULT_ASSET))


def load_residual(name_or_path: Union[str, os.PathLike] = "default",
                  map_location: Union[str, torch.device] = "cpu") -> EmotionResidual:
    """Load residual weights by name (``"default"``) or file path.

    Raises:
        FileNotFoundError: when the file does not exist (the message names it).
        ValueError: when it is not a residual file.
    """
    path = default_residual_path() if str(name_or_path) == "default" else str(name_or_path)
    return EmotionResidual.load(path, map_location=map_location)
