"""Face model: template mesh, named linear expression basis, joints and batched torch LBS.

``load_face_model(name_or_path)`` goes through a registry of loaders keyed by model type,
so other parametric heads (e.g. a FLAME file the user owns) can be added with
``register_face_model("flame", loader)`` without touching the avatar or the renderer.
"""

import functools
import logging
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from gemo_ros.face.arkit import ARKIT_INDEX, ARKIT_NAMES
from gemo_ros.geometry import axis_angle_to_matrix

LOG = logging.getLogger(__name__)

#: Joint rotation limits of the default model (radians) and jaw slide (metres).
JAW_OPEN_MAX = 0.30
JAW_SIDE_MAX = 0.10
JAW_FORWARD_MAX = 0.006
EYE_PITCH_MAX = 0.38
EYE_YAW_MAX = 0.50


class FaceModel(nn.Module):
    """A linear-blendshape face mesh posed by linear blend skinning.

    Buffers (float32 unless noted):
        vertices: ``[V, 3]`` template in metres (head frame, docs/ARCHITECTURE.md).
        faces: ``[F, 3]`` int64 triangle vertex indices (counter-clockwise seen from outside).
        expr_basis: ``[K, V, 3]`` metres of displacement per unit coefficient.
        lbs_weights: ``[V, J]`` skinning weights; a row may sum to less than 1, the rest is
            bound to the fixed root (the body below the neck).
        joints: ``[J, 3]`` joint centres in the template.
    ``joint_names`` is ``("neck", "jaw", "eye_left", "eye_right")``; jaw and eyes are children
    of the neck. Subclasses for other model types override :meth:`joint_transforms`.
    """

    joint_names: Tuple[str, ...] = ("neck", "jaw", "eye_left", "eye_right")

    def __init__(self, vertices: torch.Tensor, faces: torch.Tensor, expr_basis: torch.Tensor,
                 lbs_weights: torch.Tensor, joints: torch.Tensor,
                 expression_names: Sequence[str] = ARKIT_NAMES, model_type: str = "default",
                 vertex_parts: Optional[torch.Tensor] = None,
                 part_names: Sequence[str] = ()) -> None:
        super().__init__()
        V = vertices.shape[0]
        if vertices.shape != (V, 3) or faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"bad mesh shapes: vertices {tuple(vertices.shape)}, "
                             f"faces {tuple(faces.shape)}")
        if expr_basis.shape != (len(expression_names), V, 3):
            raise ValueError(f"expr_basis {tuple(expr_basis.shape)} does not match "
                             f"{len(expression_names)} expressions x {V} vertices")
        if lbs_weights.shape != (V, len(self.joint_names)) or joints.shape != (4, 3):
            raise ValueError("lbs_weights must be [V, 4] and joints [4, 3]")
        if int(faces.min()) < 0 or int(faces.max()) >= V:
            raise ValueError("faces index outside the vertex array")
        self.model_type = model_type
        self.expression_names: Tuple[str, ...] = tuple(expression_names)
        self.part_names: Tuple[str, ...] = tuple(part_names)
        self.register_buffer("vertices", vertices.float())
        self.register_buffer("faces", faces.long())
        self.register_buffer("expr_basis", expr_basis.float())
        self.register_buffer("lbs_weights", lbs_weights.float())
        self.register_buffer("joints", joints.float())
        if vertex_parts is None:
            vertex_parts = torch.zeros(V, dtype=torch.long)
        self.register_buffer("vertex_parts", vertex_parts.long())

    @property
    def num_vertices(self) -> int:
        """Number of template vertices V."""
        return int(self.vertices.shape[0])

    @property
    def num_expressions(self) -> int:
        """Number of expression coefficients K."""
        return len(self.expression_names)

    def fingerprint(self) -> str:
        """Short stable hash of the topology (vertex count + faces), for binding checks."""
        import hashlib
        h = hashlib.sha1(self.faces.cpu().numpy().astype(np.int64).tobytes())
        return f"{self.model_type}:{self.num_vertices}:{h.hexdigest()[:16]}"

    def _check_expr(self, expr: torch.Tensor) -> torch.Tensor:
        if expr.ndim != 2 or expr.shape[1] != self.num_expressions:
            raise ValueError(f"expr must be [B, {self.num_expressions}], got {tuple(expr.shape)}")
        return expr.to(self.vertices)

    def shape_vertices(self, expr: torch.Tensor) -> torch.Tensor:
        """Template plus the linear expression basis: ``[B, K] -> [B, V, 3]`` (no skinning)."""
        expr = self._check_expr(expr)
        idx, compact = self._compact_basis()
        B = expr.shape[0]
        out = self.vertices.expand(B, -1, -1)
        # Only vertices that some blendshape moves take part (a third of the default head).
        return out.index_add(1, idx, (expr @ compact).reshape(B, -1, 3))

    def _compact_basis(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(vertex ids [V'], basis [K, V' * 3])`` of the moving vertices (cached)."""
        key = (self.expr_basis._version, self.expr_basis.data_ptr(), self.expr_basis.device)
        if getattr(self, "_compact_key", None) != key:
            idx = torch.nonzero(self.expr_basis.abs().amax((0, 2)) > 0)[:, 0]
            self._compact = (idx, self.expr_basis[:, idx].reshape(self.num_expressions, -1))
            self._compact_key = key
        return self._compact

    def joint_transforms(self, expr: torch.Tensor,
                         neck_rotation: Optional[torch.Tensor] = None) -> torch.Tensor:
        """World transforms of the joints, ``[B, J, 3, 4]`` (rotation | translation).

        Args:
            expr: ``[B, 52]`` ARKit coefficients; ``jawOpen``/``jawLeft``/``jawRight``/
                ``jawForward`` drive the jaw and ``eyeLook*`` the eyes.
            neck_rotation: ``[B, 3]`` axis-angle (radians) of the head about the neck joint,
                or None for no head rotation.
        """
        expr = self._check_expr(expr)
        B = expr.shape[0]
        c = {n: expr[:, i] for n, i in ARKIT_INDEX.items()}
        eye3 = torch.eye(3, dtype=expr.dtype, device=expr.device)
        if neck_rotation is None:
            R_neck = eye3.expand(B, 3, 3)
        else:
            if neck_rotation.shape != (B, 3):
                raise ValueError(f"neck_rotation must be [{B}, 3], got "
                                 f"{tuple(neck_rotation.shape)}")
            R_neck = axis_angle_to_matrix(neck_rotation.to(expr))
        zero = torch.zeros_like(c["jawOpen"])
        pitch_l = EYE_PITCH_MAX * (c["eyeLookDownLeft"] - c["eyeLookUpLeft"])
        pitch_r = EYE_PITCH_MAX * (c["eyeLookDownRight"] - c["eyeLookUpRight"])
        # The avatar's left eye looks "out" toward +X, the right eye "out" toward -X.
        yaw_l = EYE_YAW_MAX * (c["eyeLookOutLeft"] - c["eyeLookInLeft"])
        yaw_r = EYE_YAW_MAX * (c["eyeLookInRight"] - c["eyeLookOutRight"])
        # Six single-axis rotations in one Rodrigues call (few small ops per frame), paired
        # as (first @ second): jaw = X(open) @ Y(side); each eye = Y(yaw) @ X(pitch).
        # Positive rotation about +X swings +Z (the chin) down: opens the jaw.
        angles = torch.stack([
            torch.stack([JAW_OPEN_MAX * c["jawOpen"], zero, zero], -1),
            torch.stack([zero, JAW_SIDE_MAX * (c["jawLeft"] - c["jawRight"]), zero], -1),
            torch.stack([zero, yaw_l, zero], -1), torch.stack([pitch_l, zero, zero], -1),
            torch.stack([zero, yaw_r, zero], -1), torch.stack([pitch_r, zero, zero], -1)], 1)
        rots = axis_angle_to_matrix(angles)                            # [B, 6, 3, 3]
        R_local = rots[:, 0::2] @ rots[:, 1::2]                        # [B, 3, 3, 3]
        t_jaw = torch.stack([zero, zero, JAW_FORWARD_MAX * c["jawForward"]], -1)
        extra = torch.stack([t_jaw, torch.zeros_like(t_jaw), torch.zeros_like(t_jaw)], 1)
        j = self.joints.to(expr)

        def about(R: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
            t = centre - (R @ centre[..., None])[..., 0]
            return torch.cat([R, t[..., None]], -1)

        T_neck = about(R_neck, j[0].expand(B, 3))                      # [B, 3, 4]
        local = about(R_local, j[1:].expand(B, 3, 3))                  # jaw, eye_l, eye_r
        local = torch.cat([local[..., :3], (local[..., 3] + extra)[..., None]], -1)
        # Children of the neck: T_neck o T_local.
        A = T_neck[:, None]
        R = A[..., :3] @ local[..., :3]
        t = (A[..., :3] @ local[..., 3:])[..., 0] + A[..., 3]
        return torch.cat([T_neck[:, None], torch.cat([R, t[..., None]], -1)], 1)

    def skin(self, verts: torch.Tensor, transforms: torch.Tensor,
             weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Linear blend skinning: ``[B, V, 3]`` with ``[B, J, 3, 4]`` -> ``[B, V, 3]``.

        ``weights [V, J]`` defaults to :attr:`lbs_weights` (pass a subset's rows with a subset).
        """
        w = (self.lbs_weights if weights is None else weights).to(verts)
        # v + sum_j w_j ((R_j - I) v + t_j): the root (weight 1 - sum w) adds nothing, identity
        # joints give the input exactly, and J small matmuls replace a [B, V, 3, 4] blend.
        eye = torch.eye(3, dtype=verts.dtype, device=verts.device)
        moved = torch.einsum("bvk,bjmk->bjvm", verts, transforms[..., :3] - eye) + \
            transforms[:, :, None, :, 3]
        return verts + torch.einsum("vj,bjvm->bvm", w, moved)

    def pose(self, expr: torch.Tensor, neck_rotation: Optional[torch.Tensor] = None,
             vertex_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Posed vertices ``[B, V, 3]`` (metres) for ``expr[B, K]`` and ``neck_rotation[B, 3]``.

        Differentiable in both arguments. Zero coefficients and no neck rotation give the
        template exactly. With ``vertex_ids [V']`` only those vertices are posed (``[B, V',
        3]``, same values as ``pose(...)[:, vertex_ids]``) - cheaper when a consumer (a
        level-of-detail avatar) needs part of the mesh.
        """
        transforms = self.joint_transforms(expr, neck_rotation)
        if vertex_ids is None:
            return self.skin(self.shape_vertices(expr), transforms)
        expr = self._check_expr(expr)
        rows, compact, template, weights = self._subset_basis(vertex_ids)
        verts = template.expand(expr.shape[0], -1, -1).index_add(
            1, rows, (expr @ compact).reshape(expr.shape[0], -1, 3))
        return self.skin(verts, transforms, weights)

    def _subset_basis(self, ids: torch.Tensor):
        """Return (moving rows within ``ids``, their basis, template, weights), cached."""
        key = (ids.data_ptr(), ids.numel(), ids.device, self.expr_basis._version)
        cache = getattr(self, "_subset_cache", {})
        if key not in cache:
            sub = self.expr_basis[:, ids]
            rows = torch.nonzero(sub.abs().amax((0, 2)) > 0)[:, 0]
            if len(cache) >= 4:                    # a few avatars may share one face model
                cache = {}
            cache[key] = (rows, sub[:, rows].reshape(self.num_expressions, -1),
                          self.vertices[ids], self.lbs_weights[ids])
            self._subset_cache = cache
        return cache[key]

    def region(self, part: str) -> torch.Tensor:
        """Boolean ``[V]`` mask of the vertices of a named part (e.g. ``"eye_left"``)."""
        if part not in self.part_names:
            raise KeyError(f"unknown part {part!r}; parts: {', '.join(self.part_names)}")
        return self.vertex_parts == self.part_names.index(part)


FaceLoader = Callable[[str], FaceModel]
_LOADERS: Dict[str, FaceLoader] = {}


def register_face_model(model_type: str, loader: FaceLoader) -> None:
    """Register ``loader(name_or_path) -> FaceModel`` for a model type (e.g. ``"flame"``)."""
    _LOADERS[model_type] = loader


@functools.lru_cache(maxsize=2)
def _default_face_cached() -> FaceModel:
    from gemo_ros.face.default_head import PART_NAMES, build_head
    head = build_head()
    LOG.debug("built default head: %d vertices, %d faces", len(head.vertices), len(head.faces))
    return FaceModel(torch.from_numpy(head.vertices), torch.from_numpy(head.faces),
                     torch.from_numpy(head.basis), torch.from_numpy(head.lbs_weights),
                     torch.from_numpy(head.joints), ARKIT_NAMES, "default",
                     torch.from_numpy(head.part), PART_NAMES)


def _load_default(name: str) -> FaceModel:
    src = _default_face_cached()
    # A fresh module sharing the cached (read-only) buffers: callers may move it to a device.
    model = FaceModel.__new__(FaceModel)
    nn.Module.__init__(model)
    model.model_type = src.model_type
    model.expression_names = src.expression_names
    model.part_names = src.part_names
    for key, buf in src.named_buffers():
        model.register_buffer(key, buf)
    return model


register_face_model("default", _load_default)


def _load_ict(name: str) -> FaceModel:
    # The ICT head (gemo_ros/face/ict.py) reads its asset only when asked for.
    from gemo_ros.face.ict import load_registered
    return load_registered(name)


register_face_model("ict", _load_ict)


def load_face_model(name: str = "default", model_type: Optional[str] = None) -> FaceModel:
    """Load a face model by name (``"default"``) or by a file path with a registered type.

    Args:
        name: ``"default"`` for the built-in procedural head, ``"ict"`` for the ICT Face
            Model (``gemo_ros.face.ict``), or a path understood by the loader of
            ``model_type``.
        model_type: registry key; inferred from ``name`` when it is a registered type.
    Raises:
        ValueError: no loader is registered for the type.
    """
    key = model_type or name
    if key not in _LOADERS:
        raise ValueError(f"no face model loader for {key!r}; registered: {sorted(_LOADERS)}")
    return _LOADERS[key](name)


__all__ = ["FaceModel", "load_face_model", "register_face_model", "axis_angle_to_matrix"]
