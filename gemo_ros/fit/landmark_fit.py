"""Fit the ICT head to 2D face landmarks: identity, expression, head pose and camera.

The landmarks are MediaPipe's face-mesh points (``gemo_ros.vision.landmarks``); where each
lies on the ICT mesh is measured once by ``scripts/build_landmark_embedding.py``
(``gemo_ros/assets/ict_landmarks.npz``). The fit minimises, over identity coefficients
``beta [M]``, ARKit expression coefficients ``psi [52]`` in [0, 1], a rigid transform of the
head into the camera (``R, t``: this is the head pose relative to the camera and becomes the
input view's ``viewmat``) and the focal length:

* the squared image distance between each detected landmark and its projected mesh point,
  in units of the inter-ocular distance (so the weights do not depend on image size);
* **contour landmarks** (the face oval) are not fixed surface points: seen from the side,
  the detector puts them on the visible outline. Each may slide to the best of the mesh
  vertices within ``contour_radius`` of its embedded point that faces the camera, paying a
  small price for the distance slid (a nearest-candidate term re-chosen at every step);
* priors: ``beta`` ~ N(0, 1) (the identity space is scaled so), an L1 pull of ``psi``
  toward 0 (a photo is mostly neutral; the fit explains what the landmarks need), and
  the focal length toward a portrait lens (a single view pins it down only weakly).

Rigid pose first, then everything, with Adam (a few hundred small steps: ~1 s on a CPU).
"""

import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Dict, Optional

import numpy as np
import torch

from gemo_ros.geometry import axis_angle_to_matrix
from gemo_ros.vision.landmarks import LANDMARKS

#: Name of the landmark embedding asset inside ``gemo_ros/assets``.
EMBEDDING_ASSET = "ict_landmarks.npz"
#: MediaPipe indices of the outer eye corners (the face's left, then right): scale.
EYE_CORNERS = (LANDMARKS["eye_outer_corner_left"], LANDMARKS["eye_outer_corner_right"])


@dataclass
class LandmarkEmbedding:
    """Where the detector's landmarks lie on the ICT mesh.

    Attributes:
        landmark_ids: ``[L]`` detector indices (MediaPipe face mesh, 0..467).
        vertex_ids: ``[L, 3]`` ICT vertex indices of the triangle each lies on.
        bary: ``[L, 3]`` barycentric weights in that triangle.
        contour: ``[L]`` bool, face-oval landmarks (sliding, see the module docstring).
    """

    landmark_ids: np.ndarray
    vertex_ids: np.ndarray
    bary: np.ndarray
    contour: np.ndarray

    @classmethod
    def load(cls, path: Optional[str] = None) -> "LandmarkEmbedding":
        """Load the shipped embedding (or one written by the build script at ``path``)."""
        path = path or str(resources.files("gemo_ros").joinpath("assets", EMBEDDING_ASSET))
        with np.load(path) as z:
            return cls(z["landmark_ids"].astype(np.int64), z["vertex_ids"].astype(np.int64),
                       z["bary"].astype(np.float32), z["contour"].astype(bool))

    def points(self, vertices: torch.Tensor) -> torch.Tensor:
        """Landmark positions ``[..., L, 3]`` on a mesh ``[..., V, 3]``."""
        vid = torch.as_tensor(self.vertex_ids, device=vertices.device)
        w = torch.as_tensor(self.bary, device=vertices.device, dtype=vertices.dtype)
        return (vertices[..., vid, :] * w[..., None]).sum(-2)


@dataclass
class FitConfig:
    """Weights and schedule of :func:`fit_landmarks` (defaults tuned on synthetic heads)."""

    rigid_steps: int = 150
    full_steps: int = 500
    lr: float = 0.02
    identity_modes: int = 40
    w_identity: float = 5e-6        # per coefficient, x beta^2
    w_expression: float = 2e-4      # per coefficient, x |psi|
    w_focal: float = 1e-3           # x log(f / f0)^2
    w_contour: float = 0.5          # contour landmarks count half
    contour_radius: float = 0.025   # metres a contour point may slide
    contour_candidates: int = 48    # vertices tried per contour landmark
    w_slide: float = 0.3            # price of sliding, x (slide / inter-ocular distance)^2
    fov_deg: float = 20.0           # initial vertical field of view (portrait lens)
    fix_focal: bool = False


@dataclass
class FitResult:
    """Result of :func:`fit_landmarks`.

    Attributes:
        identity: ``[M]`` identity coefficients.
        expression: ``[52]`` ARKit coefficients in [0, 1].
        viewmat: ``[4, 4]`` world (head frame) -> camera; the input view.
        K: ``[3, 3]`` intrinsics in the image's pixels.
        landmarks: ``[L, 2]`` the detected landmarks used (pixels).
        projected: ``[L, 2]`` the fitted mesh's landmarks (contour: their chosen points).
        error_px: mean distance between the two (pixels).
        head_yaw_deg, head_pitch_deg: the head's turn relative to the camera (degrees;
            yaw > 0: toward the face's left, pitch > 0: looking up).
        history: loss per step.
    """

    identity: torch.Tensor
    expression: torch.Tensor
    viewmat: torch.Tensor
    K: torch.Tensor
    landmarks: np.ndarray
    projected: np.ndarray
    error_px: float
    head_yaw_deg: float
    head_pitch_deg: float
    history: list = field(default_factory=list)


def _basis_rows(face, rows: torch.Tensor, modes: int) -> Dict[str, torch.Tensor]:
    """Mean, identity and expression basis rows of some vertices (the fit's whole model)."""
    return {"mean": face.mean_vertices[rows].double(),
            "ident": face.identity_basis[:modes, rows].double(),
            "expr": face.expr_basis[:, rows].double()}


def _vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    n = torch.linalg.cross(verts[faces[:, 1]] - verts[faces[:, 0]],
                           verts[faces[:, 2]] - verts[faces[:, 0]])
    out = torch.zeros_like(verts).index_add_(0, faces.reshape(-1), n.repeat_interleave(3, 0))
    return out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def fit_landmarks(face, landmarks: np.ndarray, width: int, height: int,
                  embedding: Optional[LandmarkEmbedding] = None,
                  config: Optional[FitConfig] = None,
                  identity: Optional[torch.Tensor] = None,
                  focal: Optional[float] = None) -> FitResult:
    """Fit identity, expression, head pose and focal length to detected landmarks.

    Args:
        face: an ICT face model (``gemo_ros.face.ict.ICTFaceModel``: ``mean_vertices``,
            ``identity_basis``, ``expr_basis``).
        landmarks: ``[>=468, 2]`` detector points in pixels (MediaPipe face-mesh order).
        width, height: image size in pixels.
        embedding: where the landmarks lie on the mesh (default: the shipped one).
        config: weights and schedule.
        identity: ``[<= M]`` known identity coefficients, held fixed (a video tracked with
            one identity); None fits them.
        focal: a known focal length in pixels, held fixed; None fits it.
    Returns:
        a :class:`FitResult`.
    """
    cfg = config or FitConfig()
    emb = embedding or LandmarkEmbedding.load()
    lm_all = np.asarray(landmarks, np.float64)
    if lm_all.ndim != 2 or lm_all.shape[0] < 468 or lm_all.shape[1] < 2:
        raise ValueError(f"landmarks must be [>=468, 2] pixels, got {lm_all.shape}")
    lm = torch.from_numpy(lm_all[emb.landmark_ids, :2])
    iod = float(np.linalg.norm(lm_all[EYE_CORNERS[0], :2] - lm_all[EYE_CORNERS[1], :2]))
    if not iod > 1.0:
        raise ValueError("landmarks are degenerate (eye corners coincide)")
    modes = min(cfg.identity_modes, face.identity_basis.shape[0])
    vid = torch.from_numpy(emb.vertex_ids)
    bary = torch.from_numpy(emb.bary).double()
    contour = torch.from_numpy(emb.contour)
    # Contour candidates: face-part vertices near each contour landmark on the generic head.
    mean = face.mean_vertices.double()
    normals0 = _vertex_normals(mean, face.faces)
    face_part = face.vertex_parts == face.part_names.index("face")
    pts0 = (mean[vid] * bary[..., None]).sum(1)
    c_idx = torch.nonzero(contour)[:, 0]
    cand_rows, cand_owner, cand_slide = [], [], []
    fverts = torch.nonzero(face_part)[:, 0]
    for j, li in enumerate(c_idx.tolist()):
        d = (mean[fverts] - pts0[li]).norm(dim=-1)
        near = torch.nonzero(d < cfg.contour_radius)[:, 0]
        # The mesh is dense (1-2 mm): every few-th vertex is plenty and keeps steps cheap.
        near = near[d[near].argsort()][::max(1, len(near) // cfg.contour_candidates)]
        cand_rows.append(fverts[near])
        cand_owner.append(torch.full((len(near),), j, dtype=torch.long))
        cand_slide.append(d[near])
    cand_rows_t = torch.cat(cand_rows) if cand_rows else torch.zeros(0, dtype=torch.long)
    cand_owner_t = torch.cat(cand_owner) if cand_owner else torch.zeros(0, dtype=torch.long)
    cand_slide_t = torch.cat(cand_slide) if cand_slide else torch.zeros(0)
    rows = torch.unique(torch.cat([vid.reshape(-1), cand_rows_t]))
    remap = torch.full((face.num_vertices,), -1, dtype=torch.long)
    remap[rows] = torch.arange(len(rows))
    B = _basis_rows(face, rows, modes)
    lvid = remap[vid]
    cvid = remap[cand_rows_t]
    cand_n = normals0[cand_rows_t]

    # Initial camera: looking at the head from +Z (world -> OpenCV: flip Y and Z), the
    # distance from the landmarks' spread, the principal point at the image centre.
    f0 = float(focal) if focal else 0.5 * height / math.tan(math.radians(cfg.fov_deg) / 2)
    spread3 = float((pts0[~contour, :2] - pts0[~contour, :2].mean(0)).norm(dim=-1).mean())
    lm_nc = lm[~contour]
    spread2 = float((lm_nc - lm_nc.mean(0)).norm(dim=-1).mean())
    z0 = f0 * spread3 / max(spread2, 1e-6)
    c0 = lm_nc.mean(0)
    cx, cy = 0.5 * width, 0.5 * height
    centre3 = pts0[~contour].mean(0)
    t_init = torch.tensor([(float(c0[0]) - cx) * z0 / f0, (float(c0[1]) - cy) * z0 / f0, z0],
                          dtype=torch.float64)
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    t_init = t_init - flip @ centre3
    rot = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    # Translation steps in decimetres: Adam's steps are about lr in every parameter's units.
    dtrans = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    log_f = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    beta = torch.zeros(modes, dtype=torch.float64)
    if identity is not None:
        given = torch.as_tensor(identity, dtype=torch.float64).reshape(-1)[:modes]
        beta[:len(given)] = given
    beta.requires_grad_(identity is None)
    psi = torch.zeros(face.num_expressions, dtype=torch.float64, requires_grad=True)
    w_lm = torch.where(contour, cfg.w_contour, 1.0).double()

    def model(with_shape: bool):
        verts = B["mean"]
        if with_shape:
            verts = verts + torch.einsum("m,mvc->vc", beta, B["ident"]) + \
                torch.einsum("k,kvc->vc", psi, B["expr"])
        R = flip @ axis_angle_to_matrix(rot[None])[0]
        f = f0 * torch.exp(log_f)
        return verts, R, f

    def project(p: torch.Tensor, R: torch.Tensor, f: torch.Tensor):
        pc = p @ R.T + t_init + 0.1 * dtrans
        z = pc[..., 2].clamp_min(1e-3)
        return torch.stack([f * pc[..., 0] / z + cx, f * pc[..., 1] / z + cy], -1), pc

    def residuals(with_shape: bool, report: bool = False):
        verts, R, f = model(with_shape)
        p = (verts[lvid] * bary[..., None]).sum(1)
        uv, pc = project(p, R, f)
        err = ((uv - lm) ** 2).sum(-1) / iod ** 2
        chosen = uv.detach().clone() if report else None
        if len(cvid):
            cuv, cpc = project(verts[cvid], R, f)
            n_cam = cand_n @ R.T
            facing = (n_cam * cpc).sum(-1) < 0.0
            scale = (f / pc[:, 2].mean()) / iod
            d = ((cuv - lm[c_idx][cand_owner_t]) ** 2).sum(-1) / iod ** 2 + \
                cfg.w_slide * (cand_slide_t * scale) ** 2
            d = torch.where(facing, d, torch.full_like(d, 1e6))
            best = torch.full((len(c_idx),), 1e6, dtype=d.dtype).scatter_reduce(
                0, cand_owner_t, d, "amin")
            has = best < 1e5
            err = err.clone()
            err[c_idx[has]] = best[has]
            # For reporting only (not per step): the chosen candidate of each contour landmark.
            if report:
                for j in torch.nonzero(has)[:, 0].tolist():
                    sel = (cand_owner_t == j) & (d == best[j])
                    chosen[c_idx[j]] = cuv[sel][0]
        return err, chosen

    history = []
    opt = torch.optim.Adam([rot, dtrans], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LinearLR(opt, 1.0, 0.1, cfg.rigid_steps)
    for _ in range(cfg.rigid_steps):
        err, _ = residuals(identity is not None)
        loss = (w_lm * err).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        history.append(float(loss.detach()))
    params = [rot, dtrans, psi] + ([beta] if identity is None else []) + \
        ([] if (cfg.fix_focal or focal) else [log_f])
    opt = torch.optim.Adam(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LinearLR(opt, 1.0, 0.05, cfg.full_steps)
    for _ in range(cfg.full_steps):
        err, _ = residuals(True)
        loss = (w_lm * err).mean() + cfg.w_identity * (beta ** 2).sum() + \
            cfg.w_expression * psi.abs().sum() + cfg.w_focal * (log_f ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            psi.clamp_(0.0, 1.0)
        history.append(float(loss.detach()))
    with torch.no_grad():
        _, chosen = residuals(True, report=True)
        verts, R, f = model(True)
        viewmat = torch.eye(4, dtype=torch.float64)
        viewmat[:3, :3] = R
        viewmat[:3, 3] = t_init + 0.1 * dtrans
        K = torch.tensor([[float(f), 0.0, cx], [0.0, float(f), cy], [0.0, 0.0, 1.0]])
        err_px = float((chosen - lm).norm(dim=-1).mean())
        # Head pose relative to the camera: the face's forward axis (+Z) in camera axes.
        fwd = R @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        yaw = math.degrees(math.atan2(float(fwd[0]), float(-fwd[2])))
        pitch = math.degrees(math.asin(max(-1.0, min(1.0, float(fwd[1])))))
    return FitResult(identity=beta.detach().float(), expression=psi.detach().float(),
                     viewmat=viewmat.float(), K=K, landmarks=lm.numpy(),
                     projected=chosen.numpy(), error_px=err_px, head_yaw_deg=yaw,
                     head_pitch_deg=pitch, history=history)


__all__ = ["LandmarkEmbedding", "FitConfig", "FitResult", "fit_landmarks", "EMBEDDING_ASSET"]
