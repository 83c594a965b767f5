"""Stage 2 training (`gemo train stage2`): the emotion residual, through the renderer.

Student: ``avatar(psi_n, offsets=residual(M(psi_e) - M(psi_n), audio, emotion, intensity))``
through ``TalkingHead.gaussians`` (the offsets' blendshape motion applied exactly),
rendered with :func:`gemo_ros.render.rasterize`; target: the dataset image (the synthetic
teacher's render, or a real frame). Loss: ``(1 - w) * L1 + w * (1 - SSIM)`` plus a small
L2 regulariser on the offsets. The avatar is frozen; only the residual learns.

Outputs in ``--out``: ``last.pt`` (resumable checkpoint), ``residual.safetensors`` (the
weights, loadable by ``load_residual``), ``preview_XXXXX.png`` (teacher | student |
no-residual rows) and ``log.jsonl``.
"""

import argparse
import json
import logging
import math
import os
import time
from dataclasses import asdict
from typing import Any, Dict, Optional, Tuple

import torch

from gemo_ros.imaging import to_uint8

LOG = logging.getLogger(__name__)

#: Weight of the SSIM term in the photometric loss (as in 3DGS).
SSIM_WEIGHT = 0.2


# ----------------------------------------------------------------------------- helpers
def build_head(avatar: str, a2e: Optional[str], device: str, window: int, feature_dim: int,
               clusters: int, dim: int, max_gaussians: int = 0) -> Any:
    """Load the avatar (+ a2e) and attach a fresh residual sized for them.

    Stages load by :mod:`gemo_ros.stages`'s rules (``a2e="none"`` leaves it out; ``device``
    ``auto``/``cpu``/``cuda[:N]``; ``max_gaussians`` 0 = all, -1 = auto for the device).
    """
    from gemo_ros.avatar.residual import EmotionResidual, ResidualConfig
    from gemo_ros.pipeline import TalkingHead
    from gemo_ros.stages import load_avatar_stage, load_optional_stage, resolve_device

    device = resolve_device(device)
    av = load_avatar_stage(avatar, max_gaussians, device)
    model = load_optional_stage("a2e", a2e)
    if model is not None:
        feature_dim = int(model.feature_dim)
    config = ResidualConfig(attribute_dims=dict(av.attribute_dims), feature_dim=feature_dim,
                            dim=dim, num_clusters=clusters, window=window,
                            output_scale=default_output_scale())
    return TalkingHead(av, model, EmotionResidual(config), device=device)


def default_output_scale() -> Dict[str, float]:
    """Per-attribute output steps for the default avatar's raw space.

    ``xyz`` is predicted in head-frame units of ``disp_scale`` (1 cm) and converted; the
    rest are raw units: quaternion, log-scale, linear RGB, opacity logit.
    """
    return {"xyz": 1.0, "rotation": 0.2, "scale": 0.3, "color": 0.3, "opacity": 1.0}


def offset_penalty(offsets: Dict[str, torch.Tensor], follow: Optional[torch.Tensor] = None,
                   position_weight: float = 1.0) -> torch.Tensor:
    """Mean squared offset over attributes, positions measured from ``follow``.

    ``follow`` (``[B, N, 3]``, :meth:`EmotionResidual.follow_offsets`) is the position offset
    that moves the Gaussians with the blendshapes: only the departure from it is penalised
    (times ``position_weight``), so the regulariser removes stray offsets without shrinking
    the expression.
    """
    total = 0.0
    for name, value in offsets.items():
        weight = 1.0
        if name == "xyz" and follow is not None:
            value, weight = value - follow, position_weight
        total = total + weight * value.pow(2).mean()
    return total / max(1, len(offsets))


def student_images(head: Any, batch: Dict[str, torch.Tensor], use_residual: bool = True,
                   settings: Any = None) -> Tuple[torch.Tensor, Optional[Dict]]:
    """Render the student for a batch: ``[B, H, W, 3]`` and the offsets.

    ``use_residual=False`` renders the blendshape-only baseline ``avatar(psi_e)``.
    """
    from gemo_ros.render import rasterize

    dev = head.device
    neck = batch["neck"].to(dev)
    neck = None if not bool(neck.abs().sum() > 0) else neck
    g, offs = head.gaussians(batch["psi_n"].to(dev), batch["psi_e"].to(dev),
                             batch["feats"].to(dev), batch["emotion"].to(dev),
                             batch["intensity"].to(dev), neck, use_residual=use_residual,
                             displacement=batch.get("disp"))
    h, w = batch["image"].shape[1:3]
    bg = torch.tensor(head.settings.background if settings is None else settings.background,
                      device=dev)
    out = []
    for b in range(g.means.shape[0]):
        rgb, _, _ = rasterize(g.means[b], g.quats[b], g.scales[b], g.opacities[b], g.colors[b],
                              batch["viewmat"][b].to(dev), batch["K"][b].to(dev), w, h,
                              background=bg, backend=head.settings.backend)
        out.append(rgb)
    return torch.stack(out).clamp(0.0, 1.0), offs


def batch_of(frames: Any, index: torch.Tensor,
             disp: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """Tensors of frames ``index`` with the image as float [B, H, W, 3] in [0, 1].

    ``disp``: optional cached mesh displacements ``[F, N, 3]`` of all frames.
    """
    sub = frames.select(index)
    out = {k: getattr(sub, k) for k in ("feats", "emotion", "intensity", "psi_n", "psi_e",
                                        "neck", "viewmat", "K")}
    out["image"] = sub.image.float() / 255.0
    if disp is not None:
        out["disp"] = disp[index]
    return out


@torch.no_grad()
def displacements(head: Any, frames: Any, chunk: int = 16) -> torch.Tensor:
    """Mesh displacement at every Gaussian for every frame ``[F, N, 3]`` (cached once)."""
    parts = [head.displacement(frames.psi_n[s:s + chunk], frames.psi_e[s:s + chunk]).cpu()
             for s in range(0, len(frames), chunk)]
    return torch.cat(parts)


def photometric(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(1 - w) L1 + w (1 - SSIM)`` on ``[B, H, W, 3]`` images."""
    from gemo_ros.train.losses import l1_loss, ssim

    return (1.0 - SSIM_WEIGHT) * l1_loss(pred, target) + SSIM_WEIGHT * (1.0 - ssim(pred, target))


def preview(head: Any, frames: Any, path: str, count: int = 6) -> None:
    """Write a PNG: rows teacher / student (with residual) / blendshapes only."""
    import imageio.v3 as iio

    idx = torch.linspace(0, len(frames) - 1, min(count, len(frames))).round().long()
    batch = batch_of(frames, idx)
    with torch.no_grad():
        with_res, _ = student_images(head, batch, True)
        without, _ = student_images(head, batch, False)
    rows = [batch["image"], with_res.cpu(), without.cpu()]
    grid = torch.cat([torch.cat(list(r), dim=1) for r in rows], dim=0)
    iio.imwrite(path, to_uint8(grid))


def speech_clips(train: int, test: int, seed: int) -> Tuple[list, list]:
    """Espeak training clips, and held-out clips: the demo utterance + espeak ones."""
    from gemo_ros.train.stage2_data import demo_clip, espeak_clips

    train_clips = espeak_clips(train, seed=1000 + seed)
    test_clips = [demo_clip()] + (espeak_clips(test, seed=2000 + seed) if test else [])
    return train_clips, test_clips


def _a2e_digest(name: str) -> str:
    """SHA-256 (first 16 hex digits) of the a2e weights file: the features the residual saw."""
    import hashlib
    from importlib import resources

    default = str(resources.files("gemo_ros").joinpath("assets", "a2e_default.safetensors"))
    path = default if name == "default" else name
    if not os.path.isfile(path):
        return "unknown"
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:16]


def _mtime(name: str) -> float:
    from gemo_ros.avatar import default_avatar_path

    path = default_avatar_path() if name == "default" else name
    return os.path.getmtime(path) if os.path.isfile(path) else 0.0


def avatar_digest(avatar: Any) -> str:
    """SHA-256 (first 16 hex digits) of an avatar as the teacher renders it.

    Part of the frame-cache key. Covers the face model's template and expression basis (its
    ARKit gains change the teacher's geometry without touching the avatar file) and the
    avatar's bindings and parameters after the level of detail (a change of the
    level-of-detail selection re-samples the Gaussians without touching any file).
    """
    import hashlib

    h = hashlib.sha256()
    tensors = [avatar.face.vertices, avatar.face.expr_basis, avatar.binding_faces,
               avatar.binding_bary] + [avatar.params[k] for k in sorted(avatar.params)]
    for t in tensors:
        h.update(t.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def synthetic_frames(head: Any, args: argparse.Namespace) -> Any:
    """Render (or reuse from ``--cache``) the synthetic teacher frames."""
    from gemo_ros.train.stage2_data import (TEACHER_VERSION, Stage2Frames, SyntheticSpec,
                                            generate_synthetic, write_stage2_dataset)

    spec = SyntheticSpec(size=args.size, intensities_per_emotion=args.intensities,
                         frames_per_intensity=args.frames, seed=args.seed)
    key = json.dumps({"spec": asdict(spec), "train": args.train_clips, "test": args.test_clips,
                      "a2e": args.a2e if head.a2e is not None else "none",
                      "avatar": args.avatar, "n": head.avatar.num_gaussians,
                      "mtime": _mtime(args.avatar), "avatar_digest": avatar_digest(head.avatar),
                      "a2e_sha": _a2e_digest(args.a2e) if head.a2e is not None else "",
                      "window": args.window, "teacher": TEACHER_VERSION}, sort_keys=True)
    if args.cache and os.path.isfile(args.cache) and os.path.isfile(args.cache + ".json"):
        with open(args.cache + ".json") as fh:
            if fh.read() == key:
                LOG.info("reusing synthetic frames from %s", args.cache)
                return Stage2Frames.load(args.cache)
    train_clips, test_clips = speech_clips(args.train_clips, args.test_clips, args.seed)
    frames = generate_synthetic(head, train_clips, test_clips, spec, window=args.window,
                                progress=not args.no_progress)
    if args.cache:
        frames.save(args.cache)
        with open(args.cache + ".json", "w") as fh:
            fh.write(key)
    if args.save_dataset:
        fps = float(head.a2e.fps) if head.a2e is not None else 25.0
        write_stage2_dataset(args.save_dataset, frames, list(train_clips) + list(test_clips),
                             fps)
    return frames


# ----------------------------------------------------------------------------- training
def train(head: Any, frames: Any, args: argparse.Namespace, out: str) -> Dict[str, float]:
    """Optimise ``head.residual`` on the training split of ``frames``; return final stats."""
    from tqdm import tqdm

    residual = head.residual
    for p in head.avatar.parameters():
        p.requires_grad_(False)
    residual.train()
    train_set = frames.split(test=False)
    if len(train_set) == 0:
        raise ValueError("no training frames")
    opt = torch.optim.Adam(residual.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * min(
            1.0, s / max(1, args.steps)))) * 0.95 + 0.05)
    start = 0
    ckpt = os.path.join(out, "last.pt")
    if args.resume and os.path.isfile(ckpt):
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        residual.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start = int(state["step"])
        LOG.info("resumed from %s at step %d", ckpt, start)
    gen = torch.Generator().manual_seed(args.seed + start)
    disp = displacements(head, train_set)
    log = open(os.path.join(out, "log.jsonl"), "a")
    t0 = time.time()
    ema = None
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, desc="stage2",
               disable=args.no_progress)
    step = start
    for step in bar:
        idx = torch.randint(0, len(train_set), (args.batch,), generator=gen)
        batch = batch_of(train_set, idx, disp)
        pred, offs = student_images(head, batch, True)
        target = batch["image"].to(pred.device)
        photo = photometric(pred, target)
        follow = residual.follow_offsets(batch["disp"].to(head.device), head._binding)
        reg = offset_penalty(offs, follow, getattr(args, "reg_position", 1.0))
        loss = photo + args.reg * reg
        opt.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(residual.parameters(), 1.0)
            opt.step()
        # else: every frame of the batch is neutral / intensity 0, where the residual is
        # exactly zero by construction - nothing to learn from it.
        sched.step()
        photo_v = float(photo.detach())
        ema = photo_v if ema is None else 0.95 * ema + 0.05 * photo_v
        bar.set_postfix(photo=f"{ema:.4f}", reg=f"{float(reg.detach()):.2e}")
        log.write(json.dumps({"step": step + 1, "photo": photo_v, "reg": float(reg.detach()),
                              "lr": sched.get_last_lr()[0], "s": round(time.time() - t0, 2)})
                  + "\n")
        log.flush()
        done = step + 1
        if done % args.checkpoint_every == 0 or done == args.steps:
            torch.save({"model": residual.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "step": done,
                        "config": asdict(residual.config)}, ckpt)
        if args.preview_every and done % args.preview_every == 0:
            residual.eval()
            preview(head, frames.split(test=True), os.path.join(out, f"preview_{done:05d}.png"))
            residual.train()
        if args.time_budget and time.time() - t0 > args.time_budget * 60:
            LOG.info("time budget reached after %d steps", done)
            torch.save({"model": residual.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "step": done,
                        "config": asdict(residual.config)}, ckpt)
            break
    log.close()
    residual.eval()
    return {"steps": step + 1, "photo_ema": ema or float("nan"),
            "minutes": (time.time() - t0) / 60}
