"""Avatar files: one safetensors file with JSON metadata (format in docs/avatar_format.md).

``load_avatar("default")`` loads the embedded head from ``gemo_ros/assets`` (the human head
on the ICT face model), ``load_avatar("toon")`` the stylised procedural head; any other
string is a file path. ``save_avatar`` writes the same format (Stage-1 training uses it).
"""

import json
import logging
import os
from importlib import resources
from typing import Dict, Optional, Tuple, Union

import torch

from gemo_ros.avatar.model import ATTRIBUTE_DIMS, GaussianAvatar, _unpack, sparse_deltas_to_dense
from gemo_ros.face.model import FaceModel, load_face_model

LOG = logging.getLogger(__name__)
#: Build-script kind of each embedded avatar (for error messages).
_KIND = {"default": "human", "toon": "toon"}

FORMAT_NAME = "gemo_avatar"
FORMAT_VERSION = 1
METADATA_KEY = "gemo_avatar"
DEFAULT_ASSET = "avatar_default.safetensors"
#: Embedded avatars by name (``gemo_ros/assets``; built by scripts/build_default_avatar.py).
NAMED_AVATARS = {"default": DEFAULT_ASSET, "toon": "avatar_toon.safetensors"}


class AvatarFormatError(ValueError):
    """An avatar file exists but is not a valid gemo_ros avatar."""


def default_avatar_path(name: str = "default") -> str:
    """Filesystem path of an embedded avatar (``NAMED_AVATARS``; may not exist if broken)."""
    if name not in NAMED_AVATARS:
        raise ValueError(f"no embedded avatar {name!r}; embedded: {', '.join(NAMED_AVATARS)}")
    return str(resources.files("gemo_ros").joinpath("assets", NAMED_AVATARS[name]))


def save_avatar(avatar: GaussianAvatar, path: str, half: bool = True,
                metadata: Optional[dict] = None, tol: float = 0.0) -> int:
    """Write ``avatar`` to ``path`` (safetensors + JSON metadata); return the file size.

    Args:
        avatar: the avatar to save.
        path: output file (``.safetensors``); parent folders are created.
        half: store float tensors as float16 (about half the size; plenty for rendering).
        metadata: extra JSON-able entries merged into the avatar's metadata.
        tol: blendshape delta rows whose largest |value| is <= tol are not stored (sparse).
    """
    from safetensors.torch import save_file
    ftype = torch.float16 if half else torch.float32
    names = list(avatar.face.expression_names)
    tensors: Dict[str, torch.Tensor] = {
        "binding_faces": avatar.binding_faces.to(torch.int32),
        "binding_bary": avatar.binding_bary.float(),        # keep exact: bindings are geometry
    }
    for key in ATTRIBUTE_DIMS:
        tensors[f"g0.{key}"] = avatar.params[key].detach().to(ftype)
    stored = []
    deltas = avatar.deltas.detach()
    for k, name in enumerate(names):
        if deltas.shape[1] == 0:
            break
        rows = deltas[k].abs().amax(-1) > tol
        if not bool(rows.any()):
            continue
        tensors[f"delta.{name}.index"] = avatar.delta_index[rows].to(torch.int32)
        vals = _unpack(deltas[k][rows])
        for key, v in vals.items():
            if bool((v.abs() > tol).any()):        # only the attributes this shape changes
                tensors[f"delta.{name}.{key}"] = v.to(ftype)
        stored.append(name)
    meta = dict(avatar.metadata)
    meta.update(metadata or {})
    identity = getattr(avatar.face, "identity", None)
    if identity is not None and bool((identity != 0).any()):
        # A fitted person on a face model with an identity space (e.g. ICT): reload it so.
        meta["face_identity"] = [float(v) for v in identity.detach().cpu()]
    meta.update({
        "format": FORMAT_NAME, "version": FORMAT_VERSION,
        "face_model": avatar.face.model_type,
        "face_fingerprint": avatar.face.fingerprint(),
        "expression_names": names,
        "attribute_dims": ATTRIBUTE_DIMS,
        "num_gaussians": avatar.num_gaussians,
        "delta_names": stored,
    })
    tensors = {k: v.contiguous().cpu() for k, v in tensors.items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(tensors, path, metadata={METADATA_KEY: json.dumps(meta)})
    return os.path.getsize(path)


def _read(path: str) -> Tuple[dict, Dict[str, torch.Tensor]]:
    from safetensors import safe_open
    try:
        with safe_open(path, framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise
    except Exception as exc:  # safetensors raises its own error types for bad headers/data
        raise AvatarFormatError(f"{path}: not a readable safetensors avatar file "
                                f"({type(exc).__name__}: {exc})") from exc
    if METADATA_KEY not in header:
        raise AvatarFormatError(f"{path}: no '{METADATA_KEY}' metadata; not a gemo_ros avatar")
    try:
        meta = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise AvatarFormatError(f"{path}: metadata is not valid JSON ({exc})") from exc
    if meta.get("format") != FORMAT_NAME:
        raise AvatarFormatError(f"{path}: format {meta.get('format')!r} is not {FORMAT_NAME!r}")
    if int(meta.get("version", -1)) > FORMAT_VERSION:
        raise AvatarFormatError(f"{path}: format version {meta.get('version')} is newer than "
                                f"this gemo_ros reads ({FORMAT_VERSION})")
    return meta, tensors


def load_avatar(name_or_path: str = "default", device: Union[str, torch.device, None] = None,
                face: Optional[FaceModel] = None) -> GaussianAvatar:
    """Load an avatar by name (``"default"``, ``"toon"``: embedded heads) or from a file path.

    Args:
        name_or_path: ``"default"`` (the human head), ``"toon"`` (the stylised procedural
            head) or a ``.safetensors`` avatar file.
        device: where to put the avatar (default CPU).
        face: the face model to bind to; by default ``load_face_model(meta["face_model"])``.
    Raises:
        FileNotFoundError: the file does not exist (for ``"default"``: a broken install).
        AvatarFormatError: the file is not a valid avatar, or does not fit the face model.
    """
    if name_or_path in NAMED_AVATARS:
        path = default_avatar_path(name_or_path)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"embedded {name_or_path} avatar missing at {path}; rebuild it with "
                f"`python scripts/build_default_avatar.py --kind {_KIND[name_or_path]}` or "
                "reinstall gemo_ros")
    else:
        path = os.fspath(name_or_path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"avatar file not found: {path} (use 'default' or 'toon' "
                                    "for an embedded head)")
    meta, t = _read(path)
    try:
        names = list(meta["expression_names"])
        if meta.get("attribute_dims") != ATTRIBUTE_DIMS:
            raise AvatarFormatError(f"{path}: attribute_dims {meta.get('attribute_dims')} != "
                                    f"{ATTRIBUTE_DIMS}")
        if face is None:
            face = load_face_model(meta["face_model"])
            if meta.get("face_identity") is not None:
                if not hasattr(face, "with_identity"):
                    raise AvatarFormatError(f"{path}: face_identity given, but face model "
                                            f"{meta['face_model']!r} has no identity space")
                face = face.with_identity(meta["face_identity"])
        if list(face.expression_names) != names:
            raise AvatarFormatError(f"{path}: expression names differ from the face model's")
        fp = meta.get("face_fingerprint")
        if fp and fp != face.fingerprint():
            raise AvatarFormatError(
                f"{path}: built for face mesh {fp}, but the loaded face model is "
                f"{face.fingerprint()}; rebuild the avatar for this face model")
        params = {k: t[f"g0.{k}"].float() for k in ATTRIBUTE_DIMS}
        shapes = {}
        for name in meta.get("delta_names", []):
            index = t[f"delta.{name}.index"].long()
            parts = []
            for key, d in ATTRIBUTE_DIMS.items():
                v = t.get(f"delta.{name}.{key}")
                if v is None:
                    v = torch.zeros(len(index), d)
                elif tuple(v.shape) != (len(index), d):
                    raise AvatarFormatError(f"{path}: delta.{name}.{key} has shape "
                                            f"{tuple(v.shape)}, expected ({len(index)}, {d})")
                parts.append(v.float())
            shapes[name] = (index, torch.cat(parts, -1))
        deltas, delta_index = sparse_deltas_to_dense(shapes, names)
        avatar = GaussianAvatar(face, t["binding_faces"].long(), t["binding_bary"].float(),
                                params, deltas, delta_index, metadata=meta)
    except KeyError as exc:
        raise AvatarFormatError(f"{path}: missing entry {exc}") from exc
    except AvatarFormatError:
        raise
    except (ValueError, RuntimeError) as exc:
        raise AvatarFormatError(f"{path}: inconsistent avatar data ({exc})") from exc
    LOG.info("loaded avatar %s: %d Gaussians, %d blendshapes with deltas", path,
             avatar.num_gaussians, len(shapes))
    return avatar.to(device) if device is not None else avatar


__all__ = ["load_avatar", "save_avatar", "AvatarFormatError", "default_avatar_path"]
