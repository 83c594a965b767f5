"""`gemo train stage2`: train the emotion residual through the renderer.

Student: ``avatar(psi_n, offsets=residual(M(psi_e) - M(psi_n), audio, emotion, intensity))``
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


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the command-line options of ``gemo train stage2``."""
    parser.add_argument("--avatar", default="default", help="avatar name or file")
    parser.add_argument("--max-gaussians", type=int, default=12000,
                        help="train on this level of detail of the avatar (0 = all; the "
                             "CPU runtime uses 12000)")
    parser.add_argument("--a2e", default="default",
                        help="audio-to-expression weights ('none' = recipe stand-in, dev only)")
    parser.add_argument("--data", default=None,
                        help="Stage 2 dataset folder (docs/stage2.md); default: synthetic")
    parser.add_argument("--cache", default="/tmp/gemo_stage2_frames.pt",
                        help="cache of the synthetic frames (reused when it matches)")
    parser.add_argument("--save-dataset", default=None,
                        help="also write the synthetic frames in the on-disk format here")
    parser.add_argument("--out", default="runs/stage2", help="output folder")
    parser.add_argument("--size", type=int, default=80, help="training image size (px)")
    parser.add_argument("--train-clips", type=int, default=6, help="synthetic speech clips")
    parser.add_argument("--test-clips", type=int, default=1,
                        help="held-out espeak clips (plus the bundled demo clip)")
    parser.add_argument("--intensities", type=int, default=3,
                        help="random intensities per (clip, emotion)")
    parser.add_argument("--frames", type=int, default=3,
                        help="frames per (clip, emotion, intensity)")
    parser.add_argument("--steps", type=int, default=900, help="optimiser steps")
    parser.add_argument("--batch", type=int, default=2, help="frames per step")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--reg", type=float, default=1e-3, help="offset L2 weight")
    parser.add_argument("--clusters", type=int, default=1024, help="residual clusters")
    parser.add_argument("--dim", type=int, default=64, help="residual width")
    parser.add_argument("--window", type=int, default=9, help="audio frames per window")
    parser.add_argument("--time-budget", type=float, default=0.0,
                        help="stop after this many minutes of training (0 = steps only)")
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--preview-every", type=int, default=150)
    parser.add_argument("--resume", action="store_true", help="resume from OUT/last.pt")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 is fastest on a shared 2-core machine)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")


# ----------------------------------------------------------------------------- helpers
def build_head(avatar: str, a2e: Optional[str], device: str, window: int, feature_dim: int,
               clusters: int, dim: int, max_gaussians: int = 0) -> Any:
    """Load the avatar (+ a2e) and attach a fresh residual sized for them."""
    from gemo_ros.avatar import load_avatar
    from gemo_ros.avatar.residual import EmotionResidual, ResidualConfig
    from gemo_ros.pipeline import TalkingHead
    from gemo_ros.avatar import level_of_detail

    av = level_of_detail(load_avatar(avatar), max_gaussians)
    model = None
    if a2e and a2e != "none":
        from gemo_ros.audio import load_a2e

        model = load_a2e(a2e)
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


def offset_penalty(offsets: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean squared offset over attributes (position converted back to head-frame cm)."""
    total = 0.0
    for name, value in offsets.items():
        total = total + value.pow(2).mean()
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


def synthetic_frames(head: Any, args: argparse.Namespace) -> Any:
    """Render (or reuse from ``--cache``) the synthetic teacher frames."""
    from gemo_ros.train.stage2_data import (Stage2Frames, SyntheticSpec, generate_synthetic,
                                            write_stage2_dataset)

    spec = SyntheticSpec(size=args.size, intensities_per_emotion=args.intensities,
                         frames_per_intensity=args.frames, seed=args.seed)
    key = json.dumps({"spec": asdict(spec), "train": args.train_clips, "test": args.test_clips,
                      "a2e": args.a2e if head.a2e is not None else "none",
                      "avatar": args.avatar, "n": head.avatar.num_gaussians,
                      "mtime": _mtime(args.avatar),
                      "a2e_sha": _a2e_digest(args.a2e) if head.a2e is not None else "",
                      "window": args.window}, sort_keys=True)
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
        reg = offset_penalty(offs)
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


def run(args: argparse.Namespace) -> int:
    """Entry point of ``gemo train stage2``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    head = build_head(args.avatar, args.a2e, args.device, args.window, 64, args.clusters,
                      args.dim, args.max_gaussians)
    if args.data:
        from gemo_ros.train.stage2_data import load_stage2_dataset

        frames = load_stage2_dataset(args.data, head, window=args.window)
    else:
        frames = synthetic_frames(head, args)
    LOG.info("frames: %d train, %d held-out, %dx%d px", int((~frames.test).sum()),
             int(frames.test.sum()), *frames.size)
    stats = train(head, frames, args, args.out)
    meta = {"trained_by": "gemo train stage2", "steps": str(stats["steps"]),
            "minutes": f"{stats['minutes']:.1f}", "data": args.data or "synthetic teacher",
            "a2e": args.a2e if head.a2e is not None else "none (recipe stand-in)",
            "avatar": args.avatar, "size": str(frames.size[0]),
            "max_gaussians": str(args.max_gaussians),
            "train_frames": str(int((~frames.test).sum())), "seed": str(args.seed)}
    if head.a2e is not None:
        meta["a2e_sha256"] = _a2e_digest(args.a2e)
    path = os.path.join(args.out, "residual.safetensors")
    head.residual.save(path, extra=meta)
    preview(head, frames.split(test=True), os.path.join(args.out, "preview_final.png"))
    LOG.info("wrote %s (%d steps, %.1f min, photometric %.4f)", path, stats["steps"],
             stats["minutes"], stats["photo_ema"])
    return 0
