"""Stage 1 training: fit a Gaussian blendshape avatar (G0 and every dG_k) to one person's frames.

``gemo train stage1 --data DIR --out avatar.safetensors`` reads a Stage 1 dataset
(:mod:`gemo_ros.train.stage1_data`, format in ``docs/stage1.md``) and optimises

* the neutral Gaussians G0 (raw ``xyz``, ``rotation``, ``scale``, ``color``, ``opacity`` in
  the local frame of the face-model triangle each Gaussian is bound to), and
* one Gaussian blendshape dG_k per expression coefficient (same attributes),

so that ``G(psi) = G0 + sum_k psi_k dG_k``, posed through the face mesh for the frame's
expression and neck rotation and splatted into the frame's camera, matches the image.

Loss: ``(1 - l_ssim) L1 + l_ssim (1 - SSIM)`` on the image composited over a random
background colour (so the alpha must match the mask too), plus ``l_mask * L1(alpha, mask)``
and a small L2 prior (weight decay) on the blendshapes, so that what the data never shows
stays neutral.
Gaussians start area-uniformly on the template surface; they are cloned/split by their
accumulated view-space positional gradient and pruned by opacity
(:mod:`gemo_ros.train.densify`). Adam with a learning rate per attribute (positions decay
exponentially). Checkpoints hold everything needed to resume exactly.
"""

import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from gemo_ros.geometry import quat_to_matrix
from gemo_ros.avatar.model import ATTRIBUTE_DIMS, GaussianAvatar, Gaussians
from gemo_ros.face.model import FaceModel, load_face_model
from gemo_ros.imaging import to_uint8
from gemo_ros.train.densify import (SPLIT_SCALE_FACTOR, DensifyConfig, GradientStats,
                                    apply_plan, plan_densification)
from gemo_ros.train.losses import l1_loss, psnr, ssim
from gemo_ros.train.stage1_data import Stage1Dataset

LOG = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
#: The renderer's default screen-space blur (px^2), see ``gemo_ros.render.rasterize``.
EPS2D = 0.3
#: Background of previews and evaluation renders (white, as in the docs' figures).
EVAL_BACKGROUND = (1.0, 1.0, 1.0)


@dataclass
class Stage1Config:
    """Every setting of a Stage 1 run; the defaults work out of the box.

    Learning rates are per raw attribute (units of :mod:`gemo_ros.avatar.model`: positions
    and log-scales in units of the triangle size, colours linear RGB, opacity logits).
    Fractions of ``iterations`` place the densification window.
    """

    iterations: int = 3000
    num_init: int = 6000                 #: Gaussians sampled on the template at start
    max_gaussians: int = 60000
    lr_xyz: float = 5e-3
    lr_xyz_final: float = 5e-5           #: positions decay exponentially to this
    lr_rotation: float = 1e-3
    lr_scale: float = 5e-3
    lr_color: float = 1e-2
    lr_opacity: float = 5e-2
    lr_blend_factor: float = 0.5         #: dG_k learning rate = factor * G0 rate
    lambda_ssim: float = 0.2
    lambda_mask: float = 0.1
    lambda_blend: float = 1e-4           #: L2 prior on dG_k (Adam weight decay)
    init_opacity: float = 0.3
    densify_from: float = 0.1
    densify_until: float = 0.7
    densify_every: int = 0               #: 0 = iterations // 15 (at least 50)
    grad_threshold: float = 2e-4
    percent_dense: float = 0.01
    min_opacity: float = 0.005
    random_background: bool = True
    downscale: int = 1                   #: train at 1/downscale of the dataset's resolution
    seed: int = 0
    preview_every: int = 0               #: 0 = iterations // 10
    checkpoint_every: int = 0            #: 0 = iterations // 5

    def densify_interval(self) -> int:
        """Return the number of steps between densification rounds."""
        return self.densify_every or max(50, self.iterations // 15)


# -- the trainable avatar -----------------------------------------------------------------

def _g0(key: str) -> str:
    return f"g0.{key}"


def _dg(key: str) -> str:
    return f"dg.{key}"


PARAM_DIMS: Dict[str, int] = {**{_g0(k): 0 for k in ATTRIBUTE_DIMS},
                              **{_dg(k): 1 for k in ATTRIBUTE_DIMS}}


def sample_surface(face: FaceModel, n: int, generator: torch.Generator
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample ``n`` points area-uniformly on the template mesh.

    Returns ``(faces [n] long, bary [n, 3], spacing [n])`` where ``spacing`` (metres) is the
    mean distance between neighbouring samples on that triangle's surface.
    """
    V, Fc = face.vertices, face.faces
    tri = V[Fc]
    area = 0.5 * torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1)
    fidx = torch.multinomial(area, n, replacement=True, generator=generator)
    r1, r2 = torch.rand(n, generator=generator), torch.rand(n, generator=generator)
    s = r1.sqrt()
    bary = torch.stack([1 - s, s * (1 - r2), s * r2], -1)
    spacing = torch.full((n,), math.sqrt(float(area.sum()) / n))
    return fidx, bary, spacing


def init_parameters(face: FaceModel, n: int, generator: torch.Generator,
                    color: Tuple[float, float, float] = (0.5, 0.5, 0.5),
                    opacity: float = 0.3) -> Tuple[Dict[str, torch.Tensor],
                                                   Dict[str, torch.Tensor]]:
    """Create raw parameters and bindings of ``n`` Gaussians on the template surface.

    Each Gaussian sits on its triangle (``xyz = 0``), flat in the triangle plane (std-dev
    0.6 x sample spacing along the surface, 0.2 x across), with the given colour and
    opacity; every blendshape starts at zero.

    Returns:
        ``(params, buffers)``: ``params`` maps ``g0.<key>`` to ``[N, d]`` and ``dg.<key>``
        to ``[K, N, d]``; ``buffers`` holds ``binding_faces [N]`` and ``binding_bary [N, 3]``.
    """
    fidx, bary, spacing = sample_surface(face, n, generator)
    tri = face.vertices[face.faces[fidx]]
    k = ((tri[:, 1] - tri[:, 0]).norm(dim=-1) + (tri[:, 2] - tri[:, 0]).norm(dim=-1)
         + (tri[:, 2] - tri[:, 1]).norm(dim=-1)) / 3.0
    sig = torch.stack([0.6 * spacing, 0.6 * spacing, 0.2 * spacing], -1)
    K = face.num_expressions
    logit = math.log(opacity / (1.0 - opacity))
    g0 = {
        "xyz": torch.zeros(n, 3),
        "rotation": torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1),
        "scale": torch.log(sig / k[:, None].clamp_min(1e-9)),
        "color": torch.tensor(color, dtype=torch.float32).repeat(n, 1),
        "opacity": torch.full((n, 1), logit),
    }
    params = {_g0(key): v for key, v in g0.items()}
    params.update({_dg(key): torch.zeros(K, n, d) for key, d in ATTRIBUTE_DIMS.items()})
    return params, {"binding_faces": fidx, "binding_bary": bary}


def blend_raw(params: Dict[str, torch.Tensor], expr: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Raw blended attributes ``G0 + sum_k expr_k dG_k``: ``{key: [B, N, d]}``."""
    out = {}
    for key in ATTRIBUTE_DIMS:
        dg = params[_dg(key)]
        K, N, d = dg.shape
        out[key] = params[_g0(key)][None] + (expr @ dg.reshape(K, N * d)).reshape(-1, N, d)
    return out


def subset_face(face: FaceModel, used_faces: torch.Tensor) -> Tuple[FaceModel, torch.Tensor]:
    """Restrict a face model to the vertices of some triangles (same posing, less work).

    Posing is per vertex (linear basis + LBS with shared joint transforms), so the subset
    poses exactly like the full mesh. Returns ``(sub_face, face_map)`` where
    ``face_map[f]`` is the index in ``sub_face.faces`` of triangle ``f`` of ``used_faces``
    (-1 elsewhere). Face models with their own joint logic (subclasses) are returned whole.
    """
    if type(face) is not FaceModel:
        return face, torch.arange(face.faces.shape[0], device=face.faces.device)
    uniq = torch.unique(used_faces)
    tri = face.faces[uniq]
    verts = torch.unique(tri)
    vmap = torch.full((face.num_vertices,), -1, dtype=torch.long, device=verts.device)
    vmap[verts] = torch.arange(verts.numel(), device=verts.device)
    sub = FaceModel(face.vertices[verts], vmap[tri], face.expr_basis[:, verts],
                    face.lbs_weights[verts], face.joints, face.expression_names,
                    face.model_type, face.vertex_parts[verts], face.part_names)
    fmap = torch.full((face.faces.shape[0],), -1, dtype=torch.long, device=uniq.device)
    fmap[uniq] = torch.arange(uniq.numel(), device=uniq.device)
    return sub, fmap


def _posing_avatar(face: FaceModel, buffers: Dict[str, torch.Tensor]) -> GaussianAvatar:
    """Build a parameter-less avatar on the used part of the mesh, used only for posing."""
    n = buffers["binding_faces"].shape[0]
    dev = buffers["binding_bary"].device
    sub, fmap = subset_face(face, buffers["binding_faces"])
    zeros = {k: torch.zeros(n, d, device=dev) for k, d in ATTRIBUTE_DIMS.items()}
    avatar = GaussianAvatar(sub, fmap[buffers["binding_faces"]], buffers["binding_bary"], zeros)
    return avatar.to(dev)


def make_avatar(face: FaceModel, params: Dict[str, torch.Tensor],
                buffers: Dict[str, torch.Tensor], metadata: Optional[dict] = None
                ) -> GaussianAvatar:
    """Pack trained parameters into a :class:`GaussianAvatar` (dense blendshapes)."""
    g0 = {k: params[_g0(k)].detach().cpu() for k in ATTRIBUTE_DIMS}
    deltas = torch.cat([params[_dg(k)].detach().cpu() for k in ATTRIBUTE_DIMS], -1)
    n = deltas.shape[1]
    return GaussianAvatar(face.cpu(), buffers["binding_faces"].cpu(),
                          buffers["binding_bary"].cpu(), g0, deltas, torch.arange(n),
                          metadata=metadata)


# -- trainer ------------------------------------------------------------------------------

def _split_children(generator: torch.Generator):
    """Return a split function for :func:`apply_plan` sampling children from the parent."""
    def split_fn(rows: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        xyz, rot, scale = rows[_g0("xyz")], rows[_g0("rotation")], rows[_g0("scale")]
        # Sample inside the parent's ellipsoid; xyz and scale share the triangle-size unit.
        noise = torch.randn(xyz.shape, generator=generator).to(xyz)
        offset = (quat_to_matrix(rot) @ (torch.exp(scale) * noise)[..., None])[..., 0]
        return {_g0("xyz"): xyz + offset, _g0("scale"): scale - math.log(SPLIT_SCALE_FACTOR)}
    return split_fn


class Stage1Trainer:
    """Holds the trainable avatar, its optimizer and densification state.

    Args:
        dataset: a loaded :class:`Stage1Dataset` (images loaded).
        config: the run's settings.
        face: the face model the dataset's coefficients refer to (default model if None).
        device: torch device (``cuda`` renders with gsplat, ``cpu`` with the torch backend).
        backend: renderer backend (``auto``, ``torch`` or ``gsplat``).
    """

    def __init__(self, dataset: Stage1Dataset, config: Stage1Config,
                 face: Optional[FaceModel] = None, device: str = "cpu",
                 backend: str = "auto") -> None:
        self.config = config
        self.device = torch.device(device)
        self.backend = backend
        self.face = (face or load_face_model("default")).to(self.device)
        self.dataset = dataset
        train = dataset.split("train")
        if not train:
            raise ValueError("the dataset has no training frames")
        self.train_batch = self._prepare(dataset.stack(train))
        eval_frames = dataset.split("test") or train[:1]
        self.preview_batch = self._prepare(dataset.stack(eval_frames[:1]))
        self.width = self.train_batch["image"].shape[2]
        self.height = self.train_batch["image"].shape[1]
        self.step = 0
        self.history: List[Dict[str, float]] = []
        gen = torch.Generator().manual_seed(config.seed)
        fg = self.train_batch["mask"]
        mean_color = ((self.train_batch["image"] * fg).sum((0, 1, 2))
                      / fg.sum().clamp_min(1.0)).cpu()
        params, buffers = init_parameters(self.face.cpu(), config.num_init, gen,
                                          tuple(mean_color.tolist()), config.init_opacity)
        self.face.to(self.device)
        self._set_state(params, buffers)
        self.optimizer = self._make_optimizer()
        self._check_joints()
        # Scene extent: radius of the template around its centre (metres).
        verts = self.face.vertices
        self.extent = float((verts - verts.mean(0)).norm(dim=-1).max())

    # -- setup ------------------------------------------------------------------------
    def _check_joints(self, tolerance: float = 0.05) -> int:
        """Warn about frames whose given jaw/eye rotations disagree with the face model.

        The default face model derives jaw and eye rotations from the coefficients
        (``jawOpen``, ``eyeLook*``), so training uses those; rotations given in the dataset
        (non-zero) that differ by more than ``tolerance`` radians mean the coefficients and
        the joints came from different trackers. Returns the number of such frames.
        """
        from gemo_ros.train.stage1_data import derived_joint_rotations
        b = self.train_batch
        with torch.no_grad():
            derived = derived_joint_rotations(self.face, b["expression"], b["neck"])
        bad = torch.zeros(b["expression"].shape[0], dtype=torch.bool, device=self.device)
        for joint in ("jaw", "eye_left", "eye_right"):
            given = b[joint]
            off = (given - derived[joint]).norm(dim=-1) > tolerance
            bad |= (given.abs().sum(-1) > 0) & off
        if bool(bad.any()):
            LOG.warning("%d of %d training frames give jaw/eye rotations that differ from "
                        "those the face model derives from their coefficients by > %.2f rad; "
                        "training follows the coefficients", int(bad.sum()), bad.numel(),
                        tolerance)
        return int(bad.sum())

    def _prepare(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        s = self.config.downscale
        if s > 1:
            img = batch["image"].permute(0, 3, 1, 2)
            h, w = img.shape[-2] // s, img.shape[-1] // s
            batch["image"] = F.interpolate(img, (h, w), mode="area").permute(0, 2, 3, 1)
            batch["mask"] = F.interpolate(batch["mask"].permute(0, 3, 1, 2), (h, w),
                                          mode="area").permute(0, 2, 3, 1)
            K = batch["K"].clone()
            K[:, :2] = K[:, :2] / s     # pixel centres at +0.5 scale with the image
            batch["K"] = K
        return {k: v.to(self.device) for k, v in batch.items()}

    def _set_state(self, params: Dict[str, torch.Tensor], buffers: Dict[str, torch.Tensor]
                   ) -> None:
        self.params = {k: nn.Parameter(v.to(self.device).contiguous())
                       for k, v in params.items()}
        self.buffers = {k: v.to(self.device) for k, v in buffers.items()}
        self.poser = _posing_avatar(self.face, self.buffers)
        self.stats = GradientStats(self.num_gaussians, self.device)

    def _lr(self, key: str) -> float:
        attr = key.split(".", 1)[1]
        base = getattr(self.config, f"lr_{attr}")
        return base * (self.config.lr_blend_factor if key.startswith("dg.") else 1.0)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        # The blendshape prior is a weight decay (gradient lambda * dG): the same as an L2
        # loss term without materialising dG^2 every step.
        groups = [{"params": [p], "lr": self._lr(k), "name": k,
                   "weight_decay": self.config.lambda_blend if k.startswith("dg.") else 0.0}
                  for k, p in self.params.items()]
        return torch.optim.Adam(groups, lr=0.0, eps=1e-15)

    @property
    def num_gaussians(self) -> int:
        """Current number of Gaussians N."""
        return int(self.buffers["binding_faces"].shape[0])

    # -- forward ----------------------------------------------------------------------
    def gaussians(self, expr: torch.Tensor, neck: Optional[torch.Tensor] = None) -> Gaussians:
        """Posed Gaussians ``[B, N, ...]`` for ``expr [B, K]`` and ``neck [B, 3]``."""
        raw = blend_raw(self.params, expr)
        return self.poser.pose_gaussians(raw, self.poser.face.pose(expr, neck))

    def render(self, batch: Dict[str, torch.Tensor], index: int,
               background: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, Dict]:
        """Render frame ``index`` of a prepared batch: ``rgb [H,W,3]``, ``alpha [H,W,1]``."""
        from gemo_ros.render import rasterize
        g = self.gaussians(batch["expression"][index:index + 1],
                           batch["neck"][index:index + 1])
        return rasterize(**g.render_args(0), viewmat=batch["viewmat"][index],
                         K=batch["K"][index], width=self.width, height=self.height,
                         background=background, backend=self.backend, eps2d=self.eps2d)

    @property
    def eps2d(self) -> float:
        """Screen-space blur (px^2) at the training resolution.

        The renderer adds ``EPS2D`` px^2 to every 2D covariance at whatever resolution it
        draws. Training at ``1/downscale`` of the data's resolution uses
        ``EPS2D / downscale^2`` instead, the same blur in the image plane as the renderer
        adds at full resolution, so the avatar looks right where it will be shown
        (measured: trained at 128 px with the full 0.3 px^2, rendered at 256 px, the
        held-out PSNR dropped from 38.6 to 27.1 dB).
        """
        return EPS2D / float(self.config.downscale) ** 2

    # -- one step ---------------------------------------------------------------------
    def _step_generator(self) -> torch.Generator:
        # Seeded by (seed, step): a resumed run draws exactly what the straight run drew.
        return torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.step)

    def _update_lr(self) -> None:
        c = self.config
        t = min(1.0, self.step / max(1, c.iterations))
        decay = (c.lr_xyz_final / c.lr_xyz) ** t
        for group in self.optimizer.param_groups:
            if group["name"].endswith(".xyz"):
                group["lr"] = self._lr(group["name"]) * decay

    def loss_terms(self, rgb: torch.Tensor, alpha: torch.Tensor, target: torch.Tensor,
                   mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Return the weighted loss terms and their total (``"loss"``)."""
        c = self.config
        l1 = l1_loss(rgb, target)
        d_ssim = 1.0 - ssim(rgb, target)
        terms = {"l1": l1, "ssim": d_ssim,
                 "mask": l1_loss(alpha, mask)}
        terms["loss"] = ((1 - c.lambda_ssim) * l1 + c.lambda_ssim * d_ssim
                         + c.lambda_mask * terms["mask"])
        return terms

    def train_step(self) -> Dict[str, float]:
        """Run one optimisation step (and densification when due); return its metrics."""
        c = self.config
        gen = self._step_generator()
        n_frames = self.train_batch["image"].shape[0]
        idx = int(torch.randint(n_frames, (1,), generator=gen))
        if c.random_background:
            bg = torch.rand(3, generator=gen).to(self.device)
        else:
            bg = torch.tensor(EVAL_BACKGROUND, device=self.device)
        self._update_lr()
        rgb, alpha, info = self.render(self.train_batch, idx, bg)
        means2d = info["means2d"]
        if means2d.requires_grad:
            means2d.retain_grad()
        image, mask = self.train_batch["image"][idx], self.train_batch["mask"][idx]
        target = image * mask + bg * (1.0 - mask)
        terms = self.loss_terms(rgb, alpha, target, mask)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        if means2d.grad is not None:
            visible = (info["radii"] > 0).any(-1)
            self.stats.update(means2d.grad, visible, self.width, self.height)
        self.optimizer.step()
        self.step += 1
        self._maybe_densify(gen)
        with torch.no_grad():
            metrics = {"step": self.step, "loss": float(terms["loss"]),
                       "l1": float(terms["l1"]), "psnr": float(psnr(rgb.clamp(0, 1), target)),
                       "gaussians": self.num_gaussians}
        self.history.append(metrics)
        return metrics

    # -- density control --------------------------------------------------------------
    def neutral_world_attributes(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Largest world std-dev ``[N]`` (metres) and opacity ``[N]`` of the neutral head."""
        with torch.no_grad():
            zero = torch.zeros(1, self.face.num_expressions, device=self.device)
            raw = {k: self.params[_g0(k)][None] for k in ATTRIBUTE_DIMS}
            g = self.poser.pose_gaussians(raw, self.poser.face.pose(zero))
            return g.scales[0].amax(-1), g.opacities[0]

    def _maybe_densify(self, gen: torch.Generator) -> None:
        c = self.config
        if self.step == c.iterations:            # final clean-up: prune only
            self.densify_and_prune(gen, densify=False)
            return
        start, stop = int(c.densify_from * c.iterations), int(c.densify_until * c.iterations)
        if self.step % c.densify_interval() == 0 and self.step >= max(start, 1):
            # After the window only pruning continues.
            self.densify_and_prune(gen, densify=self.step <= stop)

    def densify_and_prune(self, generator: Optional[torch.Generator] = None,
                          densify: bool = True) -> str:
        """Clone/split by accumulated view-space gradient, prune by opacity; return a summary."""
        c = self.config
        scale_max, opacity = self.neutral_world_attributes()
        cfg = DensifyConfig(grad_threshold=c.grad_threshold, percent_dense=c.percent_dense,
                            min_opacity=c.min_opacity, max_gaussians=c.max_gaussians)
        plan = plan_densification(self.stats.mean(), scale_max, opacity, self.extent, cfg,
                                  densify=densify)
        before = self.num_gaussians
        gen = generator or self._step_generator()
        self.params = apply_plan(self.params, PARAM_DIMS, plan, self.optimizer,
                                 self.buffers, None, _split_children(gen))
        self.poser = _posing_avatar(self.face, self.buffers)
        self.stats = GradientStats(self.num_gaussians, self.device)
        summary = f"step {self.step}: {plan.summary()}: {before} -> {self.num_gaussians}"
        LOG.info("densify %s", summary)
        return summary

    # -- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume: parameters, bindings, optimizer, step, history."""
        return {"step": self.step,
                "config": dataclasses.asdict(self.config),
                "params": {k: p.detach().cpu() for k, p in self.params.items()},
                "buffers": {k: v.cpu() for k, v in self.buffers.items()},
                "stats": {"grad_sum": self.stats.grad_sum.cpu(),
                          "count": self.stats.count.cpu()},
                "optimizer": self.optimizer.state_dict(),
                "history": list(self.history),
                "dataset": {"root": os.path.abspath(self.dataset.root),
                            "frames": len(self.dataset.frames)}}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (the config given to the constructor is kept)."""
        self._set_state(state["params"], state["buffers"])
        self.optimizer = self._make_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        self.stats.grad_sum = state["stats"]["grad_sum"].to(self.device)
        self.stats.count = state["stats"]["count"].to(self.device)
        self.step = int(state["step"])
        self.history = list(state.get("history", []))

    def save_checkpoint(self, path: str) -> None:
        """Write a checkpoint atomically (a crash never leaves a half-written file)."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp"
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path: str) -> None:
        """Resume from a checkpoint written by :meth:`save_checkpoint`."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("dataset", {}).get("frames") != len(self.dataset.frames):
            LOG.warning("checkpoint %s was written for another dataset (%s)", path,
                        state.get("dataset"))
        self.load_state_dict(state)

    # -- outputs ----------------------------------------------------------------------
    def avatar(self, metadata: Optional[dict] = None) -> GaussianAvatar:
        """Return the current avatar as a :class:`GaussianAvatar` on the CPU."""
        return make_avatar(self.face, self.params, self.buffers, metadata)

    def preview(self, path: str) -> None:
        """Save ``[target | render]`` of the first held-out frame on white as a PNG."""
        from PIL import Image
        bg = torch.tensor(EVAL_BACKGROUND, device=self.device)
        with torch.no_grad():
            rgb, _, _ = self.render(self.preview_batch, 0, bg)
        b = self.preview_batch
        target = b["image"][0] * b["mask"][0] + bg * (1 - b["mask"][0])
        pair = torch.cat([target, rgb.clamp(0, 1)], dim=1)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        Image.fromarray(to_uint8(pair)).save(path)

    def train(self, iterations: Optional[int] = None, workdir: Optional[str] = None,
              progress: bool = True) -> List[Dict[str, float]]:
        """Train until ``iterations`` (default: the config's) with previews and checkpoints."""
        from tqdm import tqdm
        c = self.config
        total = iterations or c.iterations
        preview_every = c.preview_every or max(1, c.iterations // 10)
        ckpt_every = c.checkpoint_every or max(1, c.iterations // 5)
        bar = tqdm(total=total, initial=self.step, desc="stage1", disable=not progress,
                   dynamic_ncols=True)
        ema = None
        while self.step < total:
            m = self.train_step()
            ema = m["psnr"] if ema is None else 0.9 * ema + 0.1 * m["psnr"]
            bar.update(1)
            bar.set_postfix(loss=f"{m['loss']:.4f}", psnr=f"{ema:.2f}", n=m["gaussians"])
            if workdir:
                if self.step % preview_every == 0 or self.step == total:
                    self.preview(os.path.join(workdir, "previews", f"step_{self.step:06d}.png"))
                if self.step % ckpt_every == 0 or self.step == total:
                    self.save_checkpoint(os.path.join(workdir, CHECKPOINT_NAME))
        bar.close()
        return self.history


# -- command line -------------------------------------------------------------------------
