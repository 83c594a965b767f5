"""A Gaussian avatar of a person from a short video (``gemo avatar from-video``).

The paper's Stage 1 on a user's own footage, in three resumable steps inside a work folder:

1. **track** (``track.npz``): landmarks on up to ``max_frames`` evenly spaced frames
   (frames without exactly one face are skipped), one square crop for all of them, then the
   ICT fit of :mod:`gemo_ros.fit.landmark_fit` in two passes: a full fit of a few frames
   whose mean identity and median focal length are then **shared**, and a fit of every frame
   with them held fixed (expression and head pose per frame);
2. **dataset** (``data/dataset.json``): the crops as a Stage 1 dataset (``docs/stage1.md``)
   with each frame's camera (the head pose folded into ``viewmat``), ARKit coefficients and a
   foreground mask drawn from the fitted mesh (hair, which the mesh lacks, is background);
   every ``test_every``-th frame is held out;
3. **train**: :class:`gemo_ros.train.stage1.Stage1Trainer` on the ICT face model with the
   tracked identity; checkpoints in the work folder, so a stopped run resumes.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

from gemo_ros.face.model import load_face_model
from gemo_ros.fit.landmark_fit import FitConfig, LandmarkEmbedding, fit_landmarks
from gemo_ros.fit.raster import rasterize_mesh
from gemo_ros.fit.texture import OCCLUDERS

LOG = logging.getLogger(__name__)

TRACK_FILE = "track.npz"
DATA_DIR = "data"
#: Parts drawn into the foreground mask: the opaque head, as the photo fit's z-buffer has it.
MASK_PARTS = OCCLUDERS

Progress = Callable[[str, float], None]


class VideoError(ValueError):
    """The video cannot make an avatar (unreadable, or too few frames with one face)."""


@dataclass
class FromVideoConfig:
    """Settings of :func:`track_video` and :func:`avatar_from_video`.

    Attributes:
        max_frames: frames used, evenly spaced over the clip.
        min_frames: fewest frames with one face that still make an avatar.
        crop_size: side of the square crop (pixels) the dataset is written at.
        crop_scale: crop side / the landmarks' extent over all frames.
        identity_frames: frames fitted fully to find the shared identity and focal length.
        test_every: every n-th frame is held out (0: none).
        iterations: Stage 1 training steps.
        num_init: Gaussians sampled on the mesh at the start of training.
        downscale: train at 1/n of ``crop_size`` (2 suits a CPU).
        fit: landmark fit settings.
    """

    max_frames: int = 60
    min_frames: int = 8
    crop_size: int = 256
    crop_scale: float = 1.6
    identity_frames: int = 8
    test_every: int = 10
    iterations: int = 3000
    num_init: int = 6000
    downscale: int = 1
    fit: FitConfig = field(default_factory=FitConfig)


def read_frames(path: str, max_frames: int) -> List[np.ndarray]:
    """Up to ``max_frames`` evenly spaced RGB frames (``uint8 [H, W, 3]``) of a video file."""
    import imageio.v3 as iio
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video not found: {path}")
    try:
        frames = [np.asarray(f)[..., :3] for f in iio.imiter(path)]
    except Exception as exc:  # imageio raises format-specific errors
        raise VideoError(f"{path}: not a readable video ({type(exc).__name__}: {exc})") \
            from exc
    if not frames:
        raise VideoError(f"{path}: no frames")
    idx = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round())
    return [np.ascontiguousarray(frames[int(i)]) for i in idx]


def _crop_all(frames: List[np.ndarray], points: List[np.ndarray], scale: float, size: int
              ) -> Tuple[List[np.ndarray], Tuple[float, float, float]]:
    from gemo_ros.fit.from_photo import _crop
    allp = np.concatenate([p[:468] for p in points])
    crops, box = [], None
    for f in frames:
        c, box = _crop(f, allp, scale, size)
        crops.append(c)
    return crops, box


def track_video(frames: List[np.ndarray], cfg: Optional[FromVideoConfig] = None,
                progress: Optional[Progress] = None) -> dict:
    """Track the ICT head over frames with one shared identity.

    Returns a dict of numpy arrays: ``crops [T, S, S, 3]`` uint8, ``landmarks [T, 478, 2]``
    (crop pixels), ``identity [M]``, ``expression [T, 52]``, ``viewmat [T, 4, 4]``, ``K [3,
    3]``, ``error_px [T]``, ``frame_index [T]`` (indices into ``frames`` that had one face).
    """
    from gemo_ros.vision.landmarks import FaceLandmarker
    cfg = cfg or FromVideoConfig()
    say = progress or (lambda name, frac: None)
    kept, points = [], []
    with FaceLandmarker(max_faces=2) as det:
        for i, f in enumerate(frames):
            faces = det.detect_all(f)
            if len(faces) == 1:
                kept.append(i)
                points.append(faces[0].xy)
            say("landmarks", 0.2 * (i + 1) / len(frames))
    if len(kept) < cfg.min_frames:
        raise VideoError(f"only {len(kept)} of {len(frames)} frames show exactly one face "
                         f"(need {cfg.min_frames}): film one person facing the camera")
    crops, (x0, y0, s) = _crop_all([frames[i] for i in kept], points, cfg.crop_scale,
                                   cfg.crop_size)
    lms = [(p - np.array([x0, y0])) * s for p in points]
    face = load_face_model("ict")
    emb = LandmarkEmbedding.load()  # once, not once per fitted frame
    size = cfg.crop_size
    pick = np.unique(np.linspace(0, len(kept) - 1, min(cfg.identity_frames, len(kept)))
                     .round().astype(int))
    ids, focals = [], []
    for n, j in enumerate(pick):
        r = fit_landmarks(face, lms[j], size, size, emb, config=cfg.fit)
        ids.append(r.identity)
        focals.append(float(r.K[0, 0]))
        say("identity", 0.2 + 0.2 * (n + 1) / len(pick))
    identity = torch.stack(ids).mean(0)
    focal = float(np.median(focals))
    per = FitConfig(**{**cfg.fit.__dict__, "rigid_steps": cfg.fit.rigid_steps // 2,
                       "full_steps": cfg.fit.full_steps // 2})
    expr, views, errs = [], [], []
    for n, lm in enumerate(lms):
        r = fit_landmarks(face, lm, size, size, emb, config=per, identity=identity,
                          focal=focal)
        expr.append(r.expression.numpy())
        views.append(r.viewmat.numpy())
        errs.append(r.error_px)
        K = r.K.numpy()
        say("track", 0.4 + 0.6 * (n + 1) / len(lms))
    return {"crops": np.stack(crops), "landmarks": np.stack(lms),
            "identity": identity.numpy(), "expression": np.stack(expr),
            "viewmat": np.stack(views), "K": K, "error_px": np.array(errs),
            "frame_index": np.array(kept)}


def write_dataset(track: dict, root: str, test_every: int = 10) -> str:
    """Write a tracked clip as a Stage 1 dataset; return the path of its ``dataset.json``."""
    from gemo_ros.train.stage1_data import Stage1Frame, write_stage1_dataset
    face = load_face_model("ict").with_identity(track["identity"])
    F = face.faces.numpy()
    parts = face.vertex_parts.numpy()
    keep = np.isin(parts[F[:, 0]], [face.part_names.index(p) for p in MASK_PARTS])
    size = track["crops"].shape[1]
    K = torch.as_tensor(track["K"], dtype=torch.float32)
    frames = []
    for t in range(len(track["crops"])):
        expr = torch.as_tensor(track["expression"][t], dtype=torch.float32)
        with torch.no_grad():
            verts = face.pose(expr[None])[0].double().numpy()
        fid, _, _ = rasterize_mesh(verts, F[keep], track["viewmat"][t], track["K"], size, size)
        mask = torch.from_numpy((fid >= 0).astype(np.float32))[..., None]
        split = "test" if test_every and t % test_every == test_every - 1 else "train"
        frames.append(Stage1Frame(
            name=f"frame_{t:04d}", split=split, K=K,
            viewmat=torch.as_tensor(track["viewmat"][t], dtype=torch.float32),
            expression=expr, joints={j: torch.zeros(3) for j in ("neck", "jaw", "eye_left",
                                                                 "eye_right")},
            image=torch.from_numpy(track["crops"][t].astype(np.float32) / 255.0), mask=mask))
    return write_stage1_dataset(root, frames, size, size,
                                extra={"source": "gemo avatar from-video",
                                       "face_identity": [float(v) for v in track["identity"]]})


def avatar_from_video(video: str, workdir: str, cfg: Optional[FromVideoConfig] = None,
                      device: str = "cpu", progress: Optional[Progress] = None,
                      train_progress: bool = True):
    """Track ``video``, write the dataset and train Stage 1 (resuming what ``workdir`` has).

    Returns ``(avatar, track)``.
    """
    from gemo_ros.train.stage1 import CHECKPOINT_NAME, Stage1Config, Stage1Trainer
    from gemo_ros.train.stage1_data import load_stage1_dataset
    cfg = cfg or FromVideoConfig()
    os.makedirs(workdir, exist_ok=True)
    track_path = os.path.join(workdir, TRACK_FILE)
    if os.path.isfile(track_path):
        with np.load(track_path) as z:
            track = {k: z[k] for k in z.files}
        LOG.info("reusing the tracking in %s", track_path)
    else:
        track = track_video(read_frames(video, cfg.max_frames), cfg, progress)
        np.savez_compressed(track_path, **track)
    data = os.path.join(workdir, DATA_DIR)
    if not os.path.isfile(os.path.join(data, "dataset.json")):
        write_dataset(track, data, cfg.test_every)
    dataset = load_stage1_dataset(data)
    face = load_face_model("ict").with_identity(track["identity"])
    config = Stage1Config(iterations=cfg.iterations, num_init=cfg.num_init,
                          downscale=cfg.downscale)
    trainer = Stage1Trainer(dataset, config, face, device)
    ckpt = os.path.join(workdir, CHECKPOINT_NAME)
    if os.path.isfile(ckpt):
        trainer.load_checkpoint(ckpt)
        LOG.info("resumed Stage 1 from %s at step %d", ckpt, trainer.step)
    trainer.train(workdir=workdir, progress=train_progress)
    meta = {"name": "from-video", "built_by": "gemo avatar from-video",
            "video": os.path.abspath(video), "frames": int(len(track["crops"])),
            "landmark_error_px": round(float(np.mean(track["error_px"])), 3),
            "iterations": trainer.step}
    return trainer.avatar(meta), track


__all__ = ["avatar_from_video", "track_video", "write_dataset", "read_frames",
           "FromVideoConfig", "VideoError"]
