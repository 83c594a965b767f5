"""The one place that loads the method's stages: avatar, audio-to-expression, residual, device.

::

    stages = load_stages(StageSpec(avatar="default", a2e="default", residual="none",
                                   device="auto", max_gaussians=-1))
    stages.avatar, stages.a2e, stages.residual, stages.device

One rule for each choice, used by the node, the engine, ``gemo render``, the training and
evaluation commands and the benches:

* **device**: ``auto`` is CUDA when usable, else CPU; ``cuda``/``cuda:N`` without CUDA and
  anything else are a ``ValueError`` naming the choices (:func:`resolve_device`);
* **"none"** (or ``""`` or ``None``) disables the a2e model or the residual;
* **"default"** loads the shipped weights; when they are missing (a broken install) the
  stage is left out with one warning, while a missing *path* the user gave is an error;
* **level of detail**: ``max_gaussians`` -1 = all on a GPU, :data:`CPU_MAX_GAUSSIANS` on a
  CPU; 0 = all; n = at most n (:func:`gemo_ros.avatar.level_of_detail`).
"""

import logging
from dataclasses import dataclass
from typing import Any, Optional, Union

LOG = logging.getLogger(__name__)

#: Gaussians kept on a CPU when max_gaussians is -1 (auto); render time grows with the count.
CPU_MAX_GAUSSIANS = 12000
_DISABLED = ("", "none")


def resolve_device(device: Union[str, Any, None] = "auto") -> str:
    """Return ``"cuda"``/``"cuda:N"``/``"cpu"`` for ``auto``, ``cpu``, ``cuda``, ``cuda:N``.

    Raises ValueError when CUDA is asked for but not usable, or the name is unknown.
    """
    import torch

    name = str(device if device is not None else "auto").strip().lower() or "auto"
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this "
                         f"machine; use auto or cpu")
    if not (name == "cpu" or name == "cuda" or
            (name.startswith("cuda:") and name[5:].isdigit())):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return name


def is_disabled(name: Optional[str]) -> bool:
    """Return True for the names that switch an optional stage off (None, "", "none")."""
    return name is None or str(name).strip().lower() in _DISABLED


@dataclass
class StageSpec:
    """What to load: names or paths, the device and the level of detail.

    ``a2e`` / ``residual``: ``"default"``, a path, or ``"none"`` (also None) to disable.
    ``max_gaussians``: -1 auto (all on CUDA, :data:`CPU_MAX_GAUSSIANS` on a CPU), 0 all.
    """

    avatar: str = "default"
    a2e: Optional[str] = "default"
    residual: Optional[str] = "default"
    device: str = "auto"
    max_gaussians: int = 0


@dataclass
class Stages:
    """The loaded stages (``a2e`` / ``residual`` None when disabled or missing)."""

    avatar: Any
    a2e: Any
    residual: Any
    device: str


def gaussian_budget(max_gaussians: int, device: str) -> int:
    """Return the Gaussians to keep (0 = all) for ``max_gaussians`` on ``device``."""
    if max_gaussians < 0:
        return 0 if str(device).startswith("cuda") else CPU_MAX_GAUSSIANS
    return int(max_gaussians)


def load_avatar_stage(name: str, max_gaussians: int, device: str) -> Any:
    """Load the avatar by name or path and apply the level of detail for ``device``."""
    from gemo_ros.avatar import level_of_detail, load_avatar

    avatar = load_avatar(name)
    keep = gaussian_budget(max_gaussians, device)
    if 0 < keep < avatar.num_gaussians:
        LOG.info("level of detail: %d of the avatar's %d Gaussians on %s (max_gaussians)",
                 keep, avatar.num_gaussians, device)
        avatar = level_of_detail(avatar, keep)
    return avatar


def load_optional_stage(kind: str, name: Optional[str]) -> Any:
    """Load the ``"a2e"`` model or the ``"residual"``; None when disabled or default-missing."""
    if kind not in ("a2e", "residual"):
        raise ValueError(f"unknown optional stage {kind!r}")
    if is_disabled(name):
        LOG.info("%s disabled by configuration", kind)
        return None
    try:
        if kind == "a2e":
            from gemo_ros.audio import load_a2e

            return load_a2e(name)
        from gemo_ros.avatar.residual import load_residual

        return load_residual(name)
    except (FileNotFoundError, ImportError, ValueError) as exc:
        if str(name) != "default":
            raise
        LOG.warning("%s stage missing: the shipped default cannot be loaded (%s)", kind, exc)
        return None


def load_stages(spec: StageSpec) -> Stages:
    """Load every stage of ``spec`` by the rules in the module docstring."""
    device = resolve_device(spec.device)
    avatar = load_avatar_stage(spec.avatar, spec.max_gaussians, device)
    return Stages(avatar, load_optional_stage("a2e", spec.a2e),
                  load_optional_stage("residual", spec.residual), device)
