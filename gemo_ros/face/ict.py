"""The ICT Face Model as a gemo_ros face model: ``load_face_model("ict")``.

The ICT Face Model (USC ICT-FaceKit, MIT licence: ``gemo_ros/assets/ict_facekit_LICENSE``) is
a light-stage-scanned human head with mouth socket, teeth, gums, tongue, eyeballs, lacrimal
fluid and eyelashes, a linear identity space and linear ARKit expression shapes. The package
ships a compact derived copy, ``gemo_ros/assets/face_ict.npz``, written by
``scripts/build_ict_asset.py`` (metres, head frame of docs/ARCHITECTURE.md, 52 ARKit shapes,
40 identity modes).

Joints: ``jawOpen`` and the other jaw shapes are linear shapes here, so no vertex follows the
jaw joint; the neck rotation poses the head (skin weight 1 on the head, falling to 0 down the
neck); the eyeballs (sclera and iris) turn rigidly about their own centres for ``eyeLook*``
(the ICT ``eyeLook*`` shapes move only the lids, never the eyeballs).

    face = load_face_model("ict")                     # the generic (mean) identity
    person = face.with_identity(coefficients)         # [M] identity coefficients, ~N(0, 1)

Amplitude (:data:`ARKIT_GAINS`): the ICT brow, lid and lip-corner-depressor shapes are small
at weight 1 next to what an ARKit capture of a performer gives at 1.0 (Apple's
``ARFaceAnchor.BlendShapeLocation`` reference images show the extreme of each movement; FACS
intensity E is the maximum a person can do). Measured on the rendered head by
``bench/expressiveness.py --shapes`` (MediaPipe landmarks, % of the inter-ocular distance IOD,
outer eye corners; the ICT IOD is about 9.5 cm, so 1 % IOD is about 1 mm): ``browInnerUp``
+4.0, ``browOuterUp*`` +6.6, ``browDown*`` -2.3, ``eyeWide*`` +3.3 (lid gap), ``mouthFrown*``
-2.9, ``mouthDimple*`` +2.8, ``mouthStretch*`` +6.5 (width), ``mouthSmile*`` +12.5 (corner).
Reference amplitudes at intensity E (FACS manual's appearance changes; anthropometric studies
of posed expressions: brow raise about 8-12 mm, brow lowering 5-8 mm, lip-corner depression
5-8 mm, upper-lid raise 3-5 mm, lip stretch about 10 mm of mouth width, smile corner raise
12-15 mm) give the gains below, capped where the renders showed artefacts (brows past the
detector's range, dark folds at the mouth corners); the loader multiplies the expression
basis by them when the model is built (the shipped asset keeps the raw ICT shapes; the
avatar's Gaussians ride the posed triangles, so avatars follow without a rebuild). Left and
right always get the same gain. Shapes not listed (jaw, lips for speech, sneer, upper-lip raiser,
squints, blinks, gaze) already move as far as a capture does and keep gain 1.
"""

import functools
import os
from importlib import resources
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import torch

from gemo_ros.face.arkit import ARKIT_NAMES
from gemo_ros.face.model import FaceModel

#: Name of the shipped asset inside ``gemo_ros/assets``.
ASSET = "face_ict.npz"
#: Upstream licence file shipped beside the asset.
LICENSE = "ict_facekit_LICENSE"
#: Parts whose vertices turn with each eye (rigidly, about the eyeball centre).
EYE_PARTS = {"eye_left": ("sclera_left", "iris_left"), "eye_right": ("sclera_right", "iris_right")}

#: Per-shape amplitude gains, ICT shape -> ARKit capture amplitude (see the module docstring).
#: Keys without a side suffix apply to both ``...Left`` and ``...Right`` (always symmetric).
#: Comments: main feature at weight 1, raw -> expected with the gain, % IOD (1 % IOD is
#: about 1 mm), and the reference amplitude at FACS intensity E. The landmark detector reads
#: less than the geometric product at large amplitudes (docs/expressiveness/ict.md).
ARKIT_GAINS: Dict[str, float] = {
    "browInnerUp": 2.0,     # inner brows +4.0 -> +8 % IOD (AU1 at E: 8-10 mm)
    "browOuterUp": 1.3,     # outer brow +6.6 -> +8.6 (AU2 at E: 8-12 mm)
    "browDown": 2.5,        # inner brow -2.3 -> -5.8 (AU4 at E: 5-8 mm, brows drawn together)
    "eyeWide": 2.0,         # lid gap +3.3 -> +5.5 as the detector reads it (AU5 at E:
    #                         sclera above the iris, 3-5 mm)
    "mouthFrown": 2.0,      # corner -2.9 -> -5.8 (AU15 at E: 5-8 mm; 2.5 folded darkly
    #                         at the corners together with mouthStretch and jawOpen)
    "mouthDimple": 2.0,     # corner +2.8 -> +5.6 (AU14 at E: corner tucked in and up)
    "mouthStretch": 1.4,    # width +6.5 -> +9.1 (AU20 at E: about 10 mm)
    "mouthSmile": 1.2,      # corner +12.5 -> +15 (AU12 at E: 12-15 mm, Apple's 1.0 a full grin)
}


def arkit_gain_vector(gains: Optional[Mapping[str, float]] = None) -> torch.Tensor:
    """Per-shape gains ``[52]`` in ``ARKIT_NAMES`` order (default :data:`ARKIT_GAINS`).

    Raises:
        ValueError: a key names no ARKit shape (with or without its side suffix), is
            one-sided (``...Left``/``...Right``: gains are symmetric), or a gain is not a
            finite number > 0.
    """
    gains = ARKIT_GAINS if gains is None else gains
    out = torch.ones(len(ARKIT_NAMES))
    for key, g in gains.items():
        if not (isinstance(g, (int, float)) and np.isfinite(g) and g > 0):
            raise ValueError(f"gain of {key!r} must be a finite number > 0, got {g!r}")
        if key.endswith(("Left", "Right")):
            raise ValueError(f"{key!r}: gains are symmetric, give the shape without its side")
        hits = [i for i, n in enumerate(ARKIT_NAMES)
                if n == key or n in (key + "Left", key + "Right")]
        if not hits:
            raise ValueError(f"{key!r} is no ARKit shape")
        out[hits] = float(g)
    return out


def asset_path() -> str:
    """Filesystem path of the shipped ICT asset."""
    return str(resources.files("gemo_ros").joinpath("assets", ASSET))


@functools.lru_cache(maxsize=2)
def _read_asset(path: str) -> Dict[str, torch.Tensor]:
    """Read an asset file once into CPU tensors (shared, never modified in place)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ICT face asset not found: {path}; build it with "
                                "`python scripts/build_ict_asset.py`")
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        names = tuple(str(n) for n in a["expression_names"])
        if names != ARKIT_NAMES:
            raise ValueError("expression names are not the 52 ARKit names in gemo_ros order")
        V = a["vertices"].shape[0]
        off = a["expr_offsets"].astype(np.int64)
        basis = np.zeros((len(names), V, 3), np.float32)
        rows, vals = a["expr_vertex"].astype(np.int64), a["expr_delta"].astype(np.float32)
        for k in range(len(names)):
            basis[k, rows[off[k]:off[k + 1]]] = vals[off[k]:off[k + 1]]
        ident = a["identity_q"].astype(np.float32) * a["identity_scale"][:, None, None]
        parts = tuple(str(n) for n in a["part_names"])
        out = {
            "vertices": torch.from_numpy(a["vertices"].astype(np.float32)),
            "faces": torch.from_numpy(a["faces"].astype(np.int64)),
            "uv": torch.from_numpy(a["uv"].astype(np.float32)),
            "face_uv": torch.from_numpy(a["face_uv"].astype(np.int64)),
            "expr_basis": torch.from_numpy(basis),
            "identity_basis": torch.from_numpy(np.ascontiguousarray(ident)),
            "vertex_parts": torch.from_numpy(a["vertex_part"].astype(np.int64)),
            "neck_weight": torch.from_numpy(a["neck_weight"].astype(np.float32)),
            "neck_joint": torch.from_numpy(a["neck_joint"].astype(np.float32)),
        }
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a valid ICT face asset ({exc})") from exc
    out["part_names"] = parts                                   # type: ignore[assignment]
    return out


def _sphere_centre(p: torch.Tensor) -> torch.Tensor:
    """Least-squares sphere centre of points ``[n, 3]``."""
    p = p.double()
    A = torch.cat([2.0 * p, torch.ones(len(p), 1, dtype=p.dtype)], 1)
    sol = torch.linalg.lstsq(A, (p ** 2).sum(1, keepdim=True)).solution[:, 0]
    return sol[:3].float()


class ICTFaceModel(FaceModel):
    """The ICT head for one identity: a :class:`FaceModel` plus UVs and the identity space.

    Extra buffers:
        uv: ``[U, 2]`` texture coordinates; face_uv: ``[F, 3]`` UV index of each corner.
        identity_basis: ``[M, V, 3]`` metres per unit identity coefficient.
        identity: ``[M]`` this model's identity coefficients (zeros: the generic head).
        mean_vertices: ``[V, 3]`` the generic neutral mesh (``vertices`` = it + identity).
    """

    def __init__(self, asset: Dict[str, torch.Tensor],
                 identity: Optional[Sequence[float]] = None,
                 gains: Optional[Mapping[str, float]] = None) -> None:
        gain = arkit_gain_vector(gains)
        basis_id = asset["identity_basis"]
        M = basis_id.shape[0]
        coeffs = torch.zeros(M)
        if identity is not None:
            given = torch.as_tensor(identity, dtype=torch.float32).reshape(-1)
            if given.numel() > M:
                raise ValueError(f"{given.numel()} identity coefficients given; the model "
                                 f"has {M} identity modes")
            if not torch.isfinite(given).all():
                raise ValueError("identity coefficients must be finite")
            coeffs[:given.numel()] = given
        mean = asset["vertices"]
        verts = mean + torch.einsum("m,mvc->vc", coeffs, basis_id) if bool(coeffs.any()) else mean
        parts = asset["part_names"]
        vparts = asset["vertex_parts"]
        joints = torch.zeros(4, 3)
        joints[0] = asset["neck_joint"]
        # No vertex follows the jaw joint (ICT jaw shapes are linear); put it at the neck.
        joints[1] = asset["neck_joint"]
        weights = torch.zeros(len(mean), 4)
        weights[:, 0] = asset["neck_weight"]
        for j, (name, eye_parts) in enumerate(EYE_PARTS.items(), start=2):
            ids = [parts.index(p) for p in eye_parts]
            mask = torch.isin(vparts, torch.tensor(ids))
            sclera = vparts == parts.index(eye_parts[0])
            joints[j] = _sphere_centre(verts[sclera])
            weights[mask, 0] = 0.0                   # the eye joint is a child of the neck
            weights[mask, j] = 1.0
        # ARKit amplitude: a new tensor, the cached asset stays the raw ICT shapes.
        expr_basis = asset["expr_basis"] * gain[:, None, None]
        super().__init__(verts, asset["faces"], expr_basis, weights, joints,
                         ARKIT_NAMES, "ict", vparts, parts)
        self.register_buffer("uv", asset["uv"])
        self.register_buffer("face_uv", asset["face_uv"])
        self.register_buffer("identity_basis", basis_id)
        self.register_buffer("identity", coeffs)
        self.register_buffer("mean_vertices", mean)
        self.register_buffer("expression_gains", gain)
        self._asset = asset
        self._gains = dict(ARKIT_GAINS if gains is None else gains)

    @property
    def num_identity_modes(self) -> int:
        """Number M of identity coefficients."""
        return int(self.identity_basis.shape[0])

    def with_identity(self, identity: Optional[Sequence[float]]) -> "ICTFaceModel":
        """Return the same model for other identity coefficients ``[<= M]`` (None: generic).

        The topology (and so :meth:`fingerprint`) is unchanged: avatars bound to the generic
        head bind to every identity.
        """
        return ICTFaceModel(self._asset, identity, self._gains)

    def identity_vertices(self, identity: torch.Tensor) -> torch.Tensor:
        """Neutral vertices ``[B, V, 3]`` for identity coefficients ``[B, M]`` (differentiable)."""
        if identity.ndim != 2 or identity.shape[1] > self.num_identity_modes:
            raise ValueError(f"identity must be [B, <= {self.num_identity_modes}], got "
                             f"{tuple(identity.shape)}")
        basis = self.identity_basis[: identity.shape[1]].to(identity)
        return self.mean_vertices.to(identity) + torch.einsum("bm,mvc->bvc", identity, basis)


def load_ict_face(path: Optional[str] = None,
                  identity: Optional[Sequence[float]] = None,
                  gains: Optional[Mapping[str, float]] = None) -> ICTFaceModel:
    """Load the ICT face model from ``path`` (default: the shipped asset) for an identity.

    Args:
        path: an asset written by ``scripts/build_ict_asset.py``; None for the shipped one.
        identity: identity coefficients (first modes; the rest 0); None for the generic head.
        gains: per-shape amplitude gains (:func:`arkit_gain_vector`); None for
            :data:`ARKIT_GAINS`, ``{}`` for the raw ICT shapes.
    Raises:
        FileNotFoundError: the asset is missing; ValueError: it is not a valid asset, the
            identity has too many or non-finite coefficients, or a gain is invalid.
    """
    return ICTFaceModel(_read_asset(os.path.abspath(path or asset_path())), identity, gains)


def load_registered(name: str) -> FaceModel:
    """Loader of the face-model registry: ``"ict"`` (shipped asset) or an asset path."""
    return load_ict_face(None if name == "ict" else name)


__all__ = ["ICTFaceModel", "load_ict_face", "load_registered", "asset_path", "arkit_gain_vector",
           "ARKIT_GAINS", "ASSET", "LICENSE"]
