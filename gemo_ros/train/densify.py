"""Adaptive density control for Gaussian blendshape avatars: clone, split and prune.

Works on plain tensors so that it can be tested without a renderer. A Gaussian avatar's
trainable state is a dict of parameters that each have one *Gaussian axis* (``dims[name]``):
``[N, d]`` for the neutral attributes G0 (axis 0) and ``[K, N, d]`` for the blendshapes dG
(axis 1). Every change of the Gaussian set is one *remap*: a gather by an index ``[M]`` into
the old Gaussians (repeats clone, omissions prune), applied identically to every parameter,
its Adam moments and any per-Gaussian buffer, so the tensors can never fall out of step.

The decision follows 3D Gaussian splatting (Kerbl et al. 2023): Gaussians whose mean
view-space positional gradient is large are under-reconstructed; small ones are cloned,
large ones split in two smaller ones sampled from the parent; Gaussians that became nearly
transparent (or huge) are pruned.
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch
from torch import nn

#: Splitting a Gaussian divides its scale by this factor (3DGS uses 1.6 = 0.8 * 2 children).
SPLIT_SCALE_FACTOR = 1.6


def remap_tensor(t: torch.Tensor, dim: int, index: torch.Tensor,
                 fresh: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Gather ``t`` along ``dim`` by ``index [M]``; rows where ``fresh [M]`` is set become 0."""
    out = t.index_select(dim, index)
    if fresh is not None and bool(fresh.any()):
        shape = [1] * out.dim()
        shape[dim] = -1
        out = out * (~fresh).view(shape).to(out.dtype)
    return out


def remap_parameters(params: Dict[str, nn.Parameter], dims: Dict[str, int], index: torch.Tensor,
                     optimizer: Optional[torch.optim.Optimizer] = None,
                     fresh: Optional[torch.Tensor] = None) -> Dict[str, nn.Parameter]:
    """Gather every parameter along its Gaussian axis and keep the optimizer in step.

    Args:
        params: name -> parameter; ``params[name].shape[dims[name]] == N``.
        dims: name -> index of the Gaussian axis of that parameter.
        index: ``[M]`` long, indices into the N old Gaussians (repeats allowed).
        optimizer: an optimizer (Adam-like: per-parameter state tensors shaped like the
            parameter) holding these parameters; its param groups and state are rewritten.
        fresh: ``[M]`` bool; the optimizer moments of fresh rows (new Gaussians) start at 0,
            the others keep their old moments.

    Returns:
        A new dict of new ``nn.Parameter`` objects (the old ones are dropped from the
        optimizer).
    """
    index = index.to(torch.long)
    new_params: Dict[str, nn.Parameter] = {}
    replaced = {}
    for name, p in params.items():
        if name not in dims:
            raise KeyError(f"no Gaussian axis given for parameter {name!r}")
        new = nn.Parameter(p.detach().index_select(dims[name], index.to(p.device)).contiguous(),
                           requires_grad=p.requires_grad)
        new_params[name] = new
        replaced[id(p)] = (p, new, dims[name])
    if optimizer is not None:
        for group in optimizer.param_groups:
            for i, p in enumerate(group["params"]):
                if id(p) not in replaced:
                    continue
                old, new, dim = replaced[id(p)]
                state = optimizer.state.pop(old, None)
                if state:
                    for key, value in state.items():
                        if torch.is_tensor(value) and value.shape == old.shape:
                            state[key] = remap_tensor(value, dim, index.to(value.device),
                                                      None if fresh is None
                                                      else fresh.to(value.device)).contiguous()
                    optimizer.state[new] = state
                group["params"][i] = new
    return new_params


@dataclass
class DensifyConfig:
    """Thresholds of adaptive density control (units noted per field)."""

    #: mean view-space gradient norm (d loss / d mean in NDC units, i.e. pixels * W/2) above
    #: which a Gaussian is densified (3DGS: 2e-4).
    grad_threshold: float = 2e-4
    #: Gaussians whose largest world scale exceeds this fraction of the scene extent are
    #: split, smaller ones cloned.
    percent_dense: float = 0.01
    #: prune Gaussians whose neutral opacity is below this.
    min_opacity: float = 0.005
    #: prune Gaussians whose largest world scale exceeds this fraction of the extent.
    max_scale_fraction: float = 0.2
    #: never grow beyond this many Gaussians (highest gradients first).
    max_gaussians: int = 200_000
    #: children per split Gaussian.
    split_children: int = 2


class GradientStats:
    """Accumulate each Gaussian's view-space positional gradient norm over iterations."""

    def __init__(self, n: int, device: Optional[torch.device] = None) -> None:
        self.grad_sum = torch.zeros(n, device=device)
        self.count = torch.zeros(n, device=device)

    @property
    def n(self) -> int:
        """Number of Gaussians tracked."""
        return int(self.grad_sum.shape[0])

    def update(self, grad2d: torch.Tensor, visible: torch.Tensor, width: int,
               height: int) -> None:
        """Add one step's gradients.

        Args:
            grad2d: ``[N, 2]`` or ``[B, N, 2]`` gradient of the loss w.r.t. the projected
                means in pixels.
            visible: ``[N]`` or ``[B, N]`` bool, Gaussians that touched the image.
            width, height: image size in pixels (gradients are converted to NDC units so
                that thresholds do not depend on the resolution).
        """
        if grad2d.dim() == 2:
            grad2d, visible = grad2d.unsqueeze(0), visible.unsqueeze(0)
        if grad2d.shape[1] != self.n or visible.shape != grad2d.shape[:2]:
            raise ValueError(f"gradient {tuple(grad2d.shape)} / visibility "
                             f"{tuple(visible.shape)} do not match {self.n} Gaussians")
        scale = torch.tensor([width / 2.0, height / 2.0], device=grad2d.device)
        norm = (grad2d.detach() * scale).norm(dim=-1) * visible
        self.grad_sum += norm.sum(0).to(self.grad_sum.device)
        self.count += visible.sum(0).to(self.count.dtype).to(self.count.device)

    def mean(self) -> torch.Tensor:
        """Return ``[N]`` mean gradient norm over the steps where each Gaussian was visible."""
        return self.grad_sum / self.count.clamp_min(1)

    def reset(self) -> None:
        """Zero the accumulators."""
        self.grad_sum.zero_()
        self.count.zero_()

    def remap(self, index: torch.Tensor, fresh: Optional[torch.Tensor] = None) -> None:
        """Follow a remap of the Gaussians (fresh rows start at zero)."""
        self.grad_sum = remap_tensor(self.grad_sum, 0, index.to(self.grad_sum.device), fresh)
        self.count = remap_tensor(self.count, 0, index.to(self.count.device), fresh)


@dataclass
class DensifyPlan:
    """What one densification step does: indices of clones and splits, and a prune mask."""

    clone: torch.Tensor   #: [C] long, Gaussians to duplicate
    split: torch.Tensor   #: [S] long, Gaussians to replace by ``children`` smaller ones
    prune: torch.Tensor   #: [N] bool, Gaussians to remove
    children: int = 2

    def index(self) -> torch.Tensor:
        """Return the remap index ``[M]``: survivors, then clones, then split children."""
        removed = self.prune.clone()
        removed[self.split] = True
        survivors = torch.nonzero(~removed).flatten()
        return torch.cat([survivors, self.clone, self.split.repeat(self.children)])

    def fresh(self) -> torch.Tensor:
        """Return ``[M]`` bool: rows that are new Gaussians (clones and split children)."""
        idx = self.index()
        n_new = self.clone.numel() + self.split.numel() * self.children
        fresh = torch.zeros(idx.numel(), dtype=torch.bool, device=idx.device)
        if n_new:
            fresh[-n_new:] = True
        return fresh

    def split_rows(self) -> slice:
        """Return the slice of the remapped Gaussians that are split children."""
        m = self.index().numel()
        return slice(m - self.split.numel() * self.children, m)

    def summary(self) -> str:
        """Return a one-line description for logs."""
        return (f"clone {self.clone.numel()}, split {self.split.numel()}, "
                f"prune {int(self.prune.sum())}")


def plan_densification(grad_mean: torch.Tensor, world_scale_max: torch.Tensor,
                       opacity: torch.Tensor, extent: float, config: DensifyConfig,
                       densify: bool = True, prune: bool = True) -> DensifyPlan:
    """Decide which Gaussians to clone, split and prune.

    Args:
        grad_mean: ``[N]`` mean view-space gradient norm (:meth:`GradientStats.mean`).
        world_scale_max: ``[N]`` largest axis of each Gaussian in world units (metres).
        opacity: ``[N]`` opacity in [0, 1] of the neutral head.
        extent: scene size in metres (e.g. the head's bounding-sphere radius).
        config: thresholds.
        densify, prune: enable either half.

    Returns:
        A :class:`DensifyPlan` (clone/split never include pruned Gaussians).
    """
    n = grad_mean.shape[0]
    if world_scale_max.shape != (n,) or opacity.shape != (n,):
        raise ValueError("grad_mean, world_scale_max and opacity must all be [N]")
    dev = grad_mean.device
    prune_mask = torch.zeros(n, dtype=torch.bool, device=dev)
    if prune:
        prune_mask = (opacity < config.min_opacity) | \
            (world_scale_max > config.max_scale_fraction * extent)
        if bool(prune_mask.all()):  # never delete the whole avatar
            prune_mask[torch.argmax(opacity)] = False
    empty = torch.zeros(0, dtype=torch.long, device=dev)
    if not densify:
        return DensifyPlan(empty, empty, prune_mask, config.split_children)
    hot = (grad_mean >= config.grad_threshold) & ~prune_mask
    big = world_scale_max > config.percent_dense * extent
    clone_idx = torch.nonzero(hot & ~big).flatten()
    split_idx = torch.nonzero(hot & big).flatten()
    # Respect the budget: survivors + clones + (children - 1) per split.
    n_after = n - int(prune_mask.sum())
    room = config.max_gaussians - n_after
    cost = clone_idx.numel() + split_idx.numel() * (config.split_children - 1)
    if cost > room:
        cand = torch.cat([clone_idx, split_idx])
        is_split = torch.cat([torch.zeros_like(clone_idx, dtype=torch.bool),
                              torch.ones_like(split_idx, dtype=torch.bool)])
        order = torch.argsort(grad_mean[cand], descending=True)
        unit = torch.where(is_split[order], config.split_children - 1, 1)
        take = order[torch.cumsum(unit, 0) <= max(room, 0)]
        clone_idx = cand[take][~is_split[take]]
        split_idx = cand[take][is_split[take]]
    return DensifyPlan(clone_idx, split_idx, prune_mask, config.split_children)


def apply_plan(params: Dict[str, nn.Parameter], dims: Dict[str, int], plan: DensifyPlan,
               optimizer: Optional[torch.optim.Optimizer] = None,
               buffers: Optional[Dict[str, torch.Tensor]] = None,
               stats: Optional[GradientStats] = None,
               split_fn: Optional[Callable[[Dict[str, torch.Tensor]],
                                           Dict[str, torch.Tensor]]] = None,
               ) -> Dict[str, nn.Parameter]:
    """Carry out a plan on parameters, optimizer state, buffers and gradient statistics.

    Args:
        params, dims, optimizer: as in :func:`remap_parameters`.
        plan: from :func:`plan_densification`.
        buffers: per-Gaussian non-trainable tensors (axis 0), remapped in place of the dict.
        stats: gradient accumulators, remapped (new Gaussians start at zero).
        split_fn: gets the split children's rows (``{name: rows}``, each row a copy of its
            parent, gathered along the Gaussian axis) and returns replacement values for
            some of them (e.g. sampled positions and shrunk scales).

    Returns:
        The new parameter dict.
    """
    index = plan.index()
    fresh = plan.fresh()
    new = remap_parameters(params, dims, index, optimizer, fresh)
    if buffers is not None:
        for key in list(buffers):
            buffers[key] = buffers[key].index_select(0, index.to(buffers[key].device))
    if stats is not None:
        stats.remap(index, fresh)
    rows = plan.split_rows()
    if split_fn is not None and plan.split.numel():
        with torch.no_grad():
            child = {k: p.narrow(dims[k], rows.start, rows.stop - rows.start)
                     for k, p in new.items()}
            for k, value in split_fn(child).items():
                child[k].copy_(value)
    return new
