"""Stage 1 dataset: the on-disk format, its loader and writer, and a synthetic generator.

A Stage 1 dataset is a folder with ``dataset.json`` and image files (format in
``docs/stage1.md``). Each frame holds an image with a foreground mask, a pinhole camera
(``K [3,3]`` pixels, ``viewmat [4,4]`` world -> camera, OpenCV axes), the 52 ARKit expression
coefficients in :data:`gemo_ros.face.arkit.ARKIT_NAMES` order and the joint rotations
(axis-angle, radians) of ``neck``, ``jaw``, ``eye_left`` and ``eye_right``. Frames belong to a
split: ``train``, ``test`` (held-out frames) or ``novel`` (held-out camera views).
"""

import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from gemo_ros.face.arkit import ARKIT_INDEX, ARKIT_NAMES, NUM_ARKIT
from gemo_ros.geometry import matrix_to_axis_angle
from gemo_ros.train.errors import DatasetError
from gemo_ros.imaging import to_uint8

LOG = logging.getLogger(__name__)

FORMAT_NAME = "gemo-stage1"
FORMAT_VERSION = 1
INDEX_FILE = "dataset.json"
JOINT_NAMES = ("neck", "jaw", "eye_left", "eye_right")
SPLITS = ("train", "test", "novel")
#: Coefficients slightly outside [0, 1] (tracker noise) are clipped; further out is an error.
EXPR_TOLERANCE = 0.05


@dataclass
class Stage1Frame:
    """One training or evaluation frame (tensors are float32 on the CPU).

    Attributes:
        name: frame id (the image file's stem unless the index names it).
        split: ``train``, ``test`` or ``novel``.
        image: ``[H, W, 3]`` colour in [0, 1] (``None`` until loaded).
        mask: ``[H, W, 1]`` foreground weight in [0, 1] (alpha or mask file).
        K: ``[3, 3]`` intrinsics in pixels (pixel centres at +0.5).
        viewmat: ``[4, 4]`` world -> camera (OpenCV: x right, y down, z forward).
        expression: ``[52]`` ARKit coefficients in ``ARKIT_NAMES`` order.
        joints: joint name -> ``[3]`` axis-angle rotation (radians).
        view: optional label of the camera (e.g. ``yaw+30``) for reports.
    """

    name: str
    split: str
    K: torch.Tensor
    viewmat: torch.Tensor
    expression: torch.Tensor
    joints: Dict[str, torch.Tensor]
    image: Optional[torch.Tensor] = None
    mask: Optional[torch.Tensor] = None
    view: str = ""
    image_path: str = ""
    mask_path: str = ""


@dataclass
class Stage1Dataset:
    """A loaded Stage 1 dataset: image size, frames and optional background colour."""

    root: str
    width: int
    height: int
    frames: List[Stage1Frame]
    background: Optional[List[float]] = None
    meta: Dict = field(default_factory=dict)

    def split(self, name: str) -> List[Stage1Frame]:
        """Return the frames of one split: ``train``, ``test`` or ``novel``."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return [f for f in self.frames if f.split == name]

    def stack(self, frames: Sequence[Stage1Frame]) -> Dict[str, torch.Tensor]:
        """Stack frames into batched tensors (images must be loaded).

        Returns a dict with ``image [B,H,W,3]``, ``mask [B,H,W,1]``, ``K [B,3,3]``,
        ``viewmat [B,4,4]``, ``expression [B,52]`` and ``neck``/``jaw``/``eye_left``/
        ``eye_right`` ``[B,3]``.
        """
        if any(f.image is None for f in frames):
            raise DatasetError("stack() needs frames loaded with load_images=True")
        out = {
            "image": torch.stack([f.image for f in frames]),
            "mask": torch.stack([f.mask for f in frames]),
            "K": torch.stack([f.K for f in frames]),
            "viewmat": torch.stack([f.viewmat for f in frames]),
            "expression": torch.stack([f.expression for f in frames]),
        }
        for joint in JOINT_NAMES:
            out[joint] = torch.stack([f.joints[joint] for f in frames])
        return out


def _matrix(value, shape: tuple, what: str) -> torch.Tensor:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{what}: not a numeric array ({exc})") from None
    if arr.shape != shape:
        raise DatasetError(f"{what}: expected shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DatasetError(f"{what}: contains NaN or infinite values")
    return torch.from_numpy(arr.astype(np.float32))


def _expression_order(names: Optional[Sequence[str]], where: str) -> Optional[np.ndarray]:
    """Return the permutation from the file's coefficient order to ARKIT_NAMES (or None)."""
    if names is None or list(names) == list(ARKIT_NAMES):
        return None
    unknown = [n for n in names if n not in ARKIT_INDEX]
    if unknown:
        raise DatasetError(f"{where}: unknown expression names {unknown[:5]}; the basis is the "
                           f"52 ARKit names of gemo_ros.face.arkit")
    missing = [n for n in ARKIT_NAMES if n not in names]
    if missing or len(names) != NUM_ARKIT:
        raise DatasetError(f"{where}: expression_names must list each of the 52 ARKit names "
                           f"once; missing {missing[:5]}")
    return np.array([list(names).index(n) for n in ARKIT_NAMES])


def _read_image(path: str, width: int, height: int) -> np.ndarray:
    if not os.path.isfile(path):
        raise DatasetError(f"missing image file {path}")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode not in ("RGB", "RGBA", "L", "LA"):
                img = img.convert("RGBA" if "A" in mode or "transparency" in img.info
                                  else "RGB")
            arr = np.asarray(img)
    except OSError as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from None
    if arr.shape[0] != height or arr.shape[1] != width:
        raise DatasetError(f"{path}: image is {arr.shape[1]}x{arr.shape[0]}, dataset.json says "
                           f"{width}x{height}")
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    return arr.astype(np.float32) / 255.0


def load_stage1_dataset(root: str, load_images: bool = True,
                        splits: Optional[Sequence[str]] = None) -> Stage1Dataset:
    """Load and validate a Stage 1 dataset folder.

    Args:
        root: folder holding ``dataset.json``.
        load_images: read images and masks now (``False`` only validates the index and
            that the files exist).
        splits: keep only these splits (default: all).

    Raises:
        DatasetError: a file is missing or unreadable, or shapes, sizes, names or values are
            inconsistent; the message names the file or frame.
    """
    index_path = os.path.join(root, INDEX_FILE)
    if not os.path.isdir(root):
        raise DatasetError(f"dataset folder {root} does not exist")
    if not os.path.isfile(index_path):
        raise DatasetError(f"{root} is not a Stage 1 dataset: {INDEX_FILE} is missing")
    try:
        with open(index_path) as fh:
            meta = json.load(fh)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{index_path}: invalid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{index_path}: top level must be an object")
    if meta.get("format", FORMAT_NAME) != FORMAT_NAME:
        raise DatasetError(f"{index_path}: format is {meta.get('format')!r}, "
                           f"expected {FORMAT_NAME!r}")
    version = meta.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise DatasetError(f"{index_path}: version {version} is not supported "
                           f"(this loader reads {FORMAT_VERSION})")
    for key in ("width", "height", "frames"):
        if key not in meta:
            raise DatasetError(f"{index_path}: required key {key!r} is missing")
    width, height = meta["width"], meta["height"]
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise DatasetError(f"{index_path}: width/height must be positive integers")
    if not isinstance(meta["frames"], list) or not meta["frames"]:
        raise DatasetError(f"{index_path}: 'frames' must be a non-empty list")
    order = _expression_order(meta.get("expression_names"), index_path)
    background = meta.get("background")
    if background is not None:
        background = _matrix(background, (3,), f"{index_path}: background").tolist()
    default_split = meta.get("split", {})
    if not isinstance(default_split, dict):
        raise DatasetError(f"{index_path}: 'split' must map split names to lists of frame names")
    split_of = {}
    for split_name, names in default_split.items():
        if split_name not in SPLITS:
            raise DatasetError(f"{index_path}: unknown split {split_name!r}; use {SPLITS}")
        for n in names:
            split_of[n] = split_name

    frames: List[Stage1Frame] = []
    seen = set()
    for i, entry in enumerate(meta["frames"]):
        where = f"{index_path}: frame {i}"
        if not isinstance(entry, dict):
            raise DatasetError(f"{where}: must be an object")
        for key in ("image", "K", "viewmat", "expression"):
            if key not in entry:
                raise DatasetError(f"{where}: required key {key!r} is missing")
        image_path = os.path.join(root, entry["image"])
        name = str(entry.get("name", os.path.splitext(os.path.basename(entry["image"]))[0]))
        where = f"{index_path}: frame {i} ({name})"
        if name in seen:
            raise DatasetError(f"{where}: duplicate frame name")
        seen.add(name)
        split = entry.get("split", split_of.get(name))
        if split is None:
            raise DatasetError(f"{where}: no split; give 'split' per frame or a top-level "
                               f"'split' object")
        if split not in SPLITS:
            raise DatasetError(f"{where}: unknown split {split!r}; use {SPLITS}")
        K = _matrix(entry["K"], (3, 3), f"{where}: K")
        if K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] != 1 or K[2, :2].abs().sum() != 0:
            raise DatasetError(f"{where}: K must be [[fx,0,cx],[0,fy,cy],[0,0,1]] with fx, fy > 0")
        viewmat = _matrix(entry["viewmat"], (4, 4), f"{where}: viewmat")
        rot = viewmat[:3, :3].double()
        if (rot @ rot.T - torch.eye(3, dtype=torch.float64)).abs().max() > 1e-3 or \
                torch.det(rot) < 0 or viewmat[3].tolist() != [0.0, 0.0, 0.0, 1.0]:
            raise DatasetError(f"{where}: viewmat must be a rigid world->camera transform "
                               f"(rotation with det +1, last row 0 0 0 1)")
        expr = np.asarray(entry["expression"], dtype=np.float64)
        if expr.shape != (NUM_ARKIT,):
            raise DatasetError(f"{where}: expression must hold {NUM_ARKIT} coefficients, "
                               f"got shape {expr.shape}")
        if not np.all(np.isfinite(expr)):
            raise DatasetError(f"{where}: expression contains NaN or infinite values")
        if expr.min() < -EXPR_TOLERANCE or expr.max() > 1 + EXPR_TOLERANCE:
            raise DatasetError(f"{where}: expression coefficients must lie in [0, 1] "
                               f"(got {expr.min():.3f}..{expr.max():.3f})")
        if order is not None:
            expr = expr[order]
        expression = torch.from_numpy(np.clip(expr, 0.0, 1.0).astype(np.float32))
        joints_in = entry.get("joints", {})
        if not isinstance(joints_in, dict):
            raise DatasetError(f"{where}: 'joints' must map joint names to axis-angle [3]")
        unknown = set(joints_in) - set(JOINT_NAMES)
        if unknown:
            raise DatasetError(f"{where}: unknown joints {sorted(unknown)}; use {JOINT_NAMES}")
        joints = {j: (_matrix(joints_in[j], (3,), f"{where}: joints.{j}") if j in joints_in
                      else torch.zeros(3)) for j in JOINT_NAMES}
        mask_rel = entry.get("mask")
        mask_path = os.path.join(root, mask_rel) if mask_rel else ""
        if not os.path.isfile(image_path):
            raise DatasetError(f"{where}: missing image file {image_path}")
        if mask_path and not os.path.isfile(mask_path):
            raise DatasetError(f"{where}: missing mask file {mask_path}")
        frame = Stage1Frame(name=name, split=split, K=K, viewmat=viewmat, expression=expression,
                            joints=joints, view=str(entry.get("view", "")),
                            image_path=image_path, mask_path=mask_path)
        if splits is not None and split not in splits:
            continue
        if load_images:
            _load_pixels(frame, width, height)
        frames.append(frame)
    if splits is None and not any(f.split == "train" for f in frames):
        raise DatasetError(f"{index_path}: no frame is in the 'train' split")
    LOG.info("loaded %d frames (%s) from %s", len(frames),
             ", ".join(f"{s}: {sum(f.split == s for f in frames)}" for s in SPLITS), root)
    return Stage1Dataset(root=root, width=width, height=height, frames=frames,
                         background=background, meta=meta)


def _load_pixels(frame: Stage1Frame, width: int, height: int) -> None:
    """Read a frame's image and mask into ``frame.image`` / ``frame.mask``."""
    arr = _read_image(frame.image_path, width, height)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    elif arr.shape[-1] == 2:  # grey + alpha
        arr = np.concatenate([np.repeat(arr[..., :1], 3, axis=-1), arr[..., 1:]], axis=-1)
    alpha = arr[..., 3:4] if arr.shape[-1] == 4 else None
    if frame.mask_path:
        m = _read_image(frame.mask_path, width, height)
        mask = m[..., :1] if m.ndim == 3 else m[..., None]
    elif alpha is not None:
        mask = alpha
    else:
        raise DatasetError(f"frame {frame.name}: {frame.image_path} has no alpha channel and no "
                           f"'mask' file is given; Stage 1 needs a foreground mask")
    frame.image = torch.from_numpy(np.ascontiguousarray(arr[..., :3]))
    frame.mask = torch.from_numpy(np.ascontiguousarray(mask))


def write_stage1_dataset(root: str, frames: Sequence[Stage1Frame], width: int, height: int,
                         background: Optional[Sequence[float]] = None,
                         extra: Optional[Dict] = None) -> str:
    """Write frames (images and masks loaded) as a Stage 1 dataset folder.

    Images are stored as RGBA PNG (alpha = mask) under ``images/``. Returns the path of
    ``dataset.json``.
    """
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    entries = []
    for f in frames:
        if f.image is None or f.mask is None:
            raise ValueError(f"frame {f.name}: image and mask are required to write it")
        rel = os.path.join("images", f"{f.name}.png")
        rgba = torch.cat([f.image, f.mask], dim=-1)
        Image.fromarray(to_uint8(rgba), mode="RGBA").save(os.path.join(root, rel))
        entry = {
            "name": f.name, "image": rel, "split": f.split,
            "K": f.K.tolist(), "viewmat": f.viewmat.tolist(),
            "expression": [round(float(v), 6) for v in f.expression],
            "joints": {j: [float(v) for v in f.joints[j]] for j in JOINT_NAMES if j in f.joints},
        }
        if f.view:
            entry["view"] = f.view
        entries.append(entry)
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "width": int(width),
            "height": int(height), "expression_names": list(ARKIT_NAMES),
            "joint_names": list(JOINT_NAMES), "frames": entries}
    if background is not None:
        meta["background"] = [float(v) for v in background]
    if extra:
        meta.update(extra)
    path = os.path.join(root, INDEX_FILE)
    with open(path, "w") as fh:
        json.dump(meta, fh, indent=1)
    return path


# -- synthetic benchmark data -------------------------------------------------------------

#: Camera yaws (degrees) of the held-out novel views; training cameras never use them.
NOVEL_YAWS_DEG = (-60.0, -30.0, 30.0, 60.0)


@dataclass
class SyntheticConfig:
    """How the synthetic benchmark is sampled (angles in degrees, lengths in metres)."""

    width: int = 256
    height: int = 256
    num_train: int = 120
    num_test: int = 20
    #: expressions rendered at each novel yaw (the first is always neutral).
    novel_expressions: int = 2
    seed: int = 0
    appearance: str = "variant"
    train_yaw: float = 35.0          #: camera yaw ~ U(-train_yaw, train_yaw)
    train_pitch: tuple = (-10.0, 15.0)
    neck_yaw: float = 12.0           #: head (neck joint) yaw ~ U(-neck_yaw, neck_yaw)
    neck_pitch: float = 10.0
    neck_roll: float = 5.0
    distance: tuple = (0.68, 0.78)
    fov_deg: float = 25.0
    target: tuple = (0.0, -0.03, 0.0)
    #: largest number of simultaneously active expression coefficients.
    max_active: int = 5


APPEARANCES = ("default", "variant")


def appearance_variant(avatar, name: str):
    """Return a copy of ``avatar`` with a different appearance (colours of G0 and dG).

    ``default`` keeps the colours. ``variant`` gives another person-like look: a colour
    transform (cooler, darker skin; darker hair) and a high-frequency pattern (face paint
    stripes on the cheeks and forehead, a function of the canonical positions) that a
    learner must resolve with enough Gaussians.
    """
    import copy
    if name not in APPEARANCES:
        raise ValueError(f"unknown appearance {name!r}; choose one of {APPEARANCES}")
    out = copy.deepcopy(avatar)
    if name == "default":
        return out
    with torch.no_grad():
        pos = out.canonical_means()                                     # [N, 3]
        col = out.params["color"].data
        mix = torch.tensor([[0.80, 0.12, 0.05], [0.05, 0.78, 0.10], [0.02, 0.10, 0.95]])
        col = (col @ mix.T) * torch.tensor([0.85, 0.88, 1.02])
        x, y, z = pos.unbind(-1)
        front = ((z > 0.03) & (y > -0.09) & (y < 0.09)).float()
        stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * (x * 55.0 + y * 18.0))
        paint = torch.tensor([0.15, 0.35, 0.75])
        cheek = front * ((x.abs() > 0.025) & (y < 0.0) & (y > -0.06)).float()
        brow = front * (y > 0.045).float()
        w = (0.55 * (cheek + brow).clamp(max=1.0) * (stripes > 0.6).float())[:, None]
        out.params["color"].data = ((1 - w) * col + w * paint).clamp(0.0, 1.0)
    out.metadata = dict(out.metadata, appearance=name)
    return out


def random_expression(rng: np.random.Generator, max_active: int = 5) -> np.ndarray:
    """Sample a plausible sparse ARKit coefficient vector ``[52]`` in [0, 1]."""
    expr = np.zeros(NUM_ARKIT)
    if rng.random() < 0.1:
        return expr                                          # neutral
    n = int(rng.integers(1, max_active + 1))
    for i in rng.choice(NUM_ARKIT, size=n, replace=False):
        expr[i] = rng.uniform(0.2, 1.0)
    if rng.random() < 0.5:                                   # the mouth is the hard part
        expr[ARKIT_INDEX["jawOpen"]] = rng.uniform(0.1, 0.9)
    if rng.random() < 0.15:
        expr[ARKIT_INDEX["eyeBlinkLeft"]] = expr[ARKIT_INDEX["eyeBlinkRight"]] = \
            rng.uniform(0.5, 1.0)
    return expr


def derived_joint_rotations(face, expr: torch.Tensor,
                            neck: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Joint rotations that ``face`` derives for ``expr [B,52]`` and ``neck [B,3]``.

    Returns ``{joint: [B, 3]}`` axis-angle rotations relative to the parent joint (jaw and
    eyes relative to the neck), the convention of the dataset's ``joints`` entries.
    """
    T = face.joint_transforms(expr, neck)                    # [B, J, 3, 4] world
    R = T[..., :3]
    out = {"neck": matrix_to_axis_angle(R[:, 0])}
    for j, name in enumerate(face.joint_names[1:], start=1):
        out[name] = matrix_to_axis_angle(R[:, 0].transpose(-1, -2) @ R[:, j])
    return out


def _render_frame(avatar, expr: torch.Tensor, neck: torch.Tensor, viewmat: torch.Tensor,
                  K: torch.Tensor, width: int, height: int):
    from gemo_ros.render import rasterize
    with torch.no_grad():
        g = avatar(expr[None], neck[None])
        rgb, alpha, _ = rasterize(**g.render_args(0), viewmat=viewmat, K=K, width=width,
                                  height=height)
    # Straight (un-premultiplied) colour for the RGBA file; alpha is the mask.
    straight = torch.where(alpha > 1e-4, rgb / alpha.clamp_min(1e-4), torch.zeros_like(rgb))
    return straight.clamp(0.0, 1.0), alpha.clamp(0.0, 1.0)


def generate_synthetic(out_dir: str, avatar, config: SyntheticConfig,
                       progress: bool = True) -> Stage1Dataset:
    """Render a ground-truth avatar into a Stage 1 dataset folder with known answers.

    ``train`` and ``test`` frames share one distribution: random sparse expressions, random
    neck rotations and random orbit cameras (yaw within ``+-train_yaw``). ``novel`` frames
    are held-out views at :data:`NOVEL_YAWS_DEG` with no neck rotation, so they test
    viewpoints and not only expressions. Joint rotations written are those the face model
    derives (jaw and eyes from the coefficients).

    Args:
        out_dir: folder to create (``dataset.json`` + ``images/``).
        avatar: the ground-truth :class:`gemo_ros.avatar.GaussianAvatar`.
        config: sampling settings.
    """
    from tqdm import tqdm

    from gemo_ros.render import orbit_camera
    rng = np.random.default_rng(config.seed)
    gt = appearance_variant(avatar, config.appearance)
    jobs = []
    for i in range(config.num_train + config.num_test):
        split = "train" if i < config.num_train else "test"
        yaw = rng.uniform(-config.train_yaw, config.train_yaw)
        while any(abs(yaw - v) < 0.5 for v in NOVEL_YAWS_DEG):  # keep novel yaws unseen
            yaw = rng.uniform(-config.train_yaw, config.train_yaw)
        pitch = rng.uniform(*config.train_pitch)
        neck = np.radians([rng.uniform(-config.neck_pitch, config.neck_pitch),
                           rng.uniform(-config.neck_yaw, config.neck_yaw),
                           rng.uniform(-config.neck_roll, config.neck_roll)])
        jobs.append((f"{split}_{i:04d}", split, yaw, pitch, rng.uniform(*config.distance),
                     neck, random_expression(rng, config.max_active), ""))
    for j, yaw in enumerate(NOVEL_YAWS_DEG):
        for e in range(config.novel_expressions):
            expr = np.zeros(NUM_ARKIT) if e == 0 else random_expression(rng, config.max_active)
            jobs.append((f"novel_{j}{e}_yaw{yaw:+.0f}", "novel", yaw, 0.0,
                         float(np.mean(config.distance)), np.zeros(3), expr,
                         f"yaw{yaw:+.0f}"))
    frames = []
    for name, split, yaw, pitch, dist, neck, expr, view in tqdm(
            jobs, desc="render synthetic frames", disable=not progress):
        viewmat, K = orbit_camera(yaw, pitch, dist, config.fov_deg, config.width,
                                  config.height, target=config.target)
        expr_t = torch.tensor(expr, dtype=torch.float32)
        neck_t = torch.tensor(neck, dtype=torch.float32)
        image, mask = _render_frame(gt, expr_t, neck_t, viewmat, K, config.width,
                                    config.height)
        joints = {k: v[0] for k, v in derived_joint_rotations(
            gt.face, expr_t[None], neck_t[None]).items()}
        frames.append(Stage1Frame(name=name, split=split, K=K, viewmat=viewmat, expression=expr_t,
                                  joints=joints, image=image, mask=mask, view=view))
    extra = {"synthetic": {"appearance": config.appearance, "seed": config.seed,
                           "gt_avatar": str(gt.metadata.get("name", "")),
                           "gt_gaussians": gt.num_gaussians,
                           "novel_yaws_deg": list(NOVEL_YAWS_DEG),
                           "train_yaw_deg": config.train_yaw}}
    write_stage1_dataset(out_dir, frames, config.width, config.height, extra=extra)
    LOG.info("wrote %d synthetic frames to %s", len(frames), out_dir)
    return load_stage1_dataset(out_dir)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line of the synthetic generator (``python -m gemo_ros.train.stage1_data``)."""
    import argparse
    d = SyntheticConfig()
    parser = argparse.ArgumentParser(
        description="Render a ground-truth avatar into a Stage 1 dataset (synthetic benchmark).")
    parser.add_argument("--out", required=True, help="dataset folder to write")
    parser.add_argument("--avatar", default="default",
                        help="ground-truth avatar: 'default' or a .safetensors file")
    parser.add_argument("--gt-gaussians", type=int, default=0,
                        help="instead of --avatar, build the procedural default head with "
                             "this many Gaussians (small, fast data for tests)")
    parser.add_argument("--appearance", default=d.appearance, choices=APPEARANCES)
    parser.add_argument("--size", type=int, default=d.width, help="image width = height (px)")
    parser.add_argument("--train", type=int, default=d.num_train, help="training frames")
    parser.add_argument("--test", type=int, default=d.num_test, help="held-out frames")
    parser.add_argument("--novel-expressions", type=int, default=d.novel_expressions,
                        help="frames per novel yaw (the first neutral)")
    parser.add_argument("--train-yaw", type=float, default=d.train_yaw,
                        help="training camera yaw range +-deg")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.gt_gaussians:
        from gemo_ros.avatar.procedural import build_default_avatar
        avatar = build_default_avatar(args.gt_gaussians)
    else:
        from gemo_ros.avatar.io import load_avatar
        avatar = load_avatar(args.avatar)
    config = SyntheticConfig(width=args.size, height=args.size, num_train=args.train,
                             num_test=args.test, novel_expressions=args.novel_expressions,
                             seed=args.seed, appearance=args.appearance,
                             train_yaw=args.train_yaw)
    generate_synthetic(args.out, avatar, config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
