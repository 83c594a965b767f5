#!/usr/bin/env python3
"""Evaluate ``gemo avatar from-photo`` on synthetic ground truth and on a real portrait.

    python bench/from_photo_eval.py [--cases 3] [--out docs/contact_sheets] [--threads 1]

Synthetic ground truth: random ICT identities (identity coefficients ~ N(0, 1), never seen
by anything: the fit has no training), the procedural human head on each with a known
texture (skin tone, a low-frequency colour pattern and a hair colour drawn at random), a
known expression and a known head pose (camera yaw/pitch), rendered at 512 px with our
renderer. The photo goes through ``avatar_from_photo``; reported per case:

* landmark error: mean distance between the detected landmarks and the fitted mesh's (px
  in the 512 px face crop);
* shape error: mean vertex distance on the face (ICT's narrow face area) between the fitted
  and the true neutral identity after rigid alignment (mm), beside the generic head's;
* PSNR / SSIM on the face (pixels of the true head's narrow face area) at the input view
  (fitted avatar at the fitted camera vs the photo) and at +-30 deg (neutral heads, fitted
  vs true), beside the generic default head's numbers at +-30 deg;
* run time.

Real photo: the public-domain NASA portrait of astronaut Eileen Collins shipped with
scikit-image (``skimage.data.astronaut()``): contact sheets of the avatar neutral from -45
to +45 deg, at the input view beside the photo, and talking (demo clip) with three emotions.
Writes ``from_photo_synthetic.png``, ``from_photo_astronaut.png`` and
``from_photo_eval.json`` under ``--out``.

``--video``: instead, ``gemo avatar from-video`` on a rendered 30-frame clip of another
synthetic person (head turning +-20 deg, talking, brows): truth beside the trained avatar
(``from_video_synthetic.png``, ``from_video_eval.json``).
"""

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gemo_ros.avatar.contact_sheet import label_tiles  # noqa: E402
from gemo_ros.avatar.human import build_human_avatar  # noqa: E402
from gemo_ros.face.arkit import ARKIT_INDEX  # noqa: E402
from gemo_ros.face.model import load_face_model  # noqa: E402
from gemo_ros.fit.from_photo import FromPhotoConfig, avatar_from_photo  # noqa: E402
from gemo_ros.fit.raster import rasterize_mesh  # noqa: E402
from gemo_ros.fit.texture import gaussian_groups  # noqa: E402
from gemo_ros.framing import PORTRAIT  # noqa: E402
from gemo_ros.imaging import save_png, to_uint8  # noqa: E402
from gemo_ros.render import rasterize  # noqa: E402
from gemo_ros.render.camera import orbit_camera  # noqa: E402
from gemo_ros.train.losses import psnr, ssim_map  # noqa: E402

#: ICT's "narrow face area" (upstream README): vertices 0..6705.
NARROW_FACE = 6706
BACKGROUND = (0.86, 0.89, 0.93)
SIZE = 512
NOVEL = (-30.0, 30.0)


def render(avatar, expr, viewmat, K, size):
    with torch.no_grad():
        g = avatar(expr)
        rgb, _, _ = rasterize(**g.render_args(0), viewmat=viewmat, K=K, width=size, height=size,
                              background=torch.tensor(BACKGROUND))
    return rgb.clamp(0, 1)


def face_mask(face, expr, viewmat, K, size):
    """``[H, W]`` bool: pixels where the narrow face area is the nearest surface."""
    verts = face.pose(expr)[0].double().numpy()
    F = face.faces.numpy()
    fid, _, _ = rasterize_mesh(verts, F, viewmat.double().numpy(), K.double().numpy(), size,
                               size)
    front = F[np.maximum(fid, 0)].max(-1) < NARROW_FACE
    return (fid >= 0) & front


def masked_metrics(pred, target, mask):
    m = torch.from_numpy(mask.astype(np.float32))[..., None]
    p = float(psnr(pred, target, mask=m))
    smap = ssim_map(pred, target)                     # valid windows only: crop the mask
    if smap.ndim == 4:
        smap = smap.mean(1)[0]
    off = (mask.shape[0] - smap.shape[-2]) // 2
    mm = torch.from_numpy(mask[off:off + smap.shape[-2], off:off + smap.shape[-1]])
    return p, float(smap[mm].mean())


def aligned_error_mm(a, b):
    a, b = a.double(), b.double()
    a0, b0 = a - a.mean(0), b - b.mean(0)
    U, _, Vt = torch.linalg.svd(a0.T @ b0)
    d = torch.sign(torch.det(Vt.T @ U.T))
    R = Vt.T @ torch.diag(torch.tensor([1.0, 1.0, float(d)], dtype=a.dtype)) @ U.T
    return 1000.0 * float((a0 @ R.T - b0).norm(dim=-1).mean())


def synthetic_truth(face, rng, case):
    beta = torch.from_numpy(rng.standard_normal(40).astype(np.float32))
    person = face.with_identity(beta)
    avatar = build_human_avatar(48000, seed=100 + case, face=person)
    groups = gaussian_groups(avatar)
    col = avatar.params["color"].detach().numpy().copy()
    p = avatar.canonical_means().detach().numpy()
    tone = rng.uniform(0.75, 1.1, 3)
    k = rng.uniform(25, 45, 2)
    pattern = 1.0 + 0.12 * np.sin(k[0] * p[:, 0] + 1.0) * np.sin(k[1] * p[:, 1] + 2.0)
    col[groups.skin] = col[groups.skin] * tone * pattern[groups.skin, None]
    col[groups.hair] = col[groups.hair] * rng.uniform(0.4, 2.0, 3)
    with torch.no_grad():
        avatar.params["color"].copy_(torch.from_numpy(np.clip(col, 0, 1).astype(np.float32)))
    expr = torch.zeros(1, 52)
    expr[0, ARKIT_INDEX["mouthSmileLeft"]] = expr[0, ARKIT_INDEX["mouthSmileRight"]] = \
        float(rng.uniform(0.0, 0.5))
    expr[0, ARKIT_INDEX["jawOpen"]] = float(rng.uniform(0.0, 0.2))
    expr[0, ARKIT_INDEX["browInnerUp"]] = float(rng.uniform(0.0, 0.4))
    yaw, pitch = float(rng.uniform(-15, 15)), float(rng.uniform(-8, 8))
    return beta, person, avatar, expr, yaw, pitch


def run_synthetic(n_cases, cfg, log):
    face = load_face_model("ict")
    generic = build_human_avatar(48000, seed=0, face=face)
    rng = np.random.default_rng(2026)
    rows, tiles, labels = [], [], []
    for case in range(n_cases):
        beta, person, truth, expr, yaw, pitch = synthetic_truth(face, rng, case)
        vm, K = orbit_camera(yaw, pitch, PORTRAIT.distance, PORTRAIT.fov_deg, SIZE, SIZE,
                             PORTRAIT.target)
        photo = to_uint8(render(truth, expr, vm, K, SIZE))
        t0 = time.perf_counter()
        res = avatar_from_photo(photo, cfg)
        secs = time.perf_counter() - t0
        fit = res.fit
        x0, y0, s = res.crop_box
        Kc = K.clone()
        Kc[:2, :2] *= s
        Kc[0, 2] = (K[0, 2] - x0) * s
        Kc[1, 2] = (K[1, 2] - y0) * s
        mask_in = face_mask(person, expr, vm, Kc, SIZE)
        pred_in = render(res.avatar, res.expression, fit.viewmat, fit.K, SIZE)
        tgt_in = torch.from_numpy(res.crop.astype(np.float32) / 255.0)
        row = {"case": case, "true_yaw_deg": round(yaw, 1), "true_pitch_deg": round(pitch, 1),
               "fit_yaw_deg": round(-fit.head_yaw_deg, 1),
               "landmark_error_px": round(fit.error_px, 2),
               "shape_error_mm": round(aligned_error_mm(
                   res.avatar.face.vertices[:NARROW_FACE], person.vertices[:NARROW_FACE]), 2),
               "generic_shape_error_mm": round(aligned_error_mm(
                   face.vertices[:NARROW_FACE], person.vertices[:NARROW_FACE]), 2),
               "seconds": round(secs, 1)}
        row["psnr_input"], row["ssim_input"] = masked_metrics(pred_in, tgt_in, mask_in)
        views = [to_uint8(tgt_in), to_uint8(pred_in)]
        names = [f"case {case}: photo", "avatar, input view"]
        zero = torch.zeros(1, 52)
        for yaw_n in NOVEL:
            vmn, Kn = orbit_camera(yaw_n, 0.0, PORTRAIT.distance, PORTRAIT.fov_deg, 256, 256,
                                   PORTRAIT.target)
            m = face_mask(person, zero, vmn, Kn, 256)
            t_img = render(truth, zero, vmn, Kn, 256)
            f_img = render(res.avatar, zero, vmn, Kn, 256)
            g_img = render(generic, zero, vmn, Kn, 256)
            key = f"{yaw_n:+.0f}"
            row[f"psnr_{key}"], row[f"ssim_{key}"] = masked_metrics(f_img, t_img, m)
            row[f"generic_psnr_{key}"], row[f"generic_ssim_{key}"] = \
                masked_metrics(g_img, t_img, m)
            big = torch.nn.functional.interpolate(
                torch.stack([t_img, f_img]).permute(0, 3, 1, 2), size=(SIZE, SIZE),
                mode="bilinear").permute(0, 2, 3, 1)
            views += [to_uint8(big[0]), to_uint8(big[1])]
            names += [f"truth, yaw {key}", f"avatar, yaw {key}"]
        rows.append({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
        log(f"synthetic case {case}: {rows[-1]}")
        tiles += [t[::2, ::2] for t in views]
        labels += names
    return rows, label_tiles(tiles, labels, cols=6)


def run_astronaut(cfg, log):
    import skimage.data
    from gemo_ros.audio import load_a2e
    from gemo_ros.avatar.residual import load_residual
    import soundfile as sf
    from gemo_ros.pipeline import TalkingHead
    photo = skimage.data.astronaut()
    t0 = time.perf_counter()
    res = avatar_from_photo(photo, cfg)
    secs = time.perf_counter() - t0
    log(f"astronaut: {secs:.0f} s, {res.stats}")
    avatar = res.avatar
    tile = 224
    tiles, labels = [res.crop[::2, ::2], to_uint8(render(avatar, res.expression, res.fit.viewmat,
                                                         res.fit.K, SIZE))[::2, ::2]], \
        ["photo (crop)", "avatar, input view"]
    tiles = [_resize(t, tile) for t in tiles]
    zero = torch.zeros(1, 52)
    for yaw in (-45, -30, -15, 0, 15, 30, 45):
        s = replace(PORTRAIT, width=tile, height=tile, yaw_deg=float(yaw))
        vm, K = s.camera()
        tiles.append(to_uint8(render(avatar, zero, vm, K, tile)))
        labels.append(f"neutral, yaw {yaw:+d}")
    head = TalkingHead(avatar, load_a2e("default"), load_residual("default"),
                       settings=replace(PORTRAIT, width=tile, height=tile))
    wav_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gemo_ros",
                            "assets", "demo_speech.wav")
    wave, rate = sf.read(wav_path, dtype="float32", always_2d=True)
    wave = wave.mean(1)
    for emotion in ("neutral", "happy", "sad", "surprised"):
        for t in (0.9, 1.6):
            frame = head.still(emotion, 0.0 if emotion == "neutral" else 1.0, audio=wave,
                               sample_rate=rate, time_s=t)
            tiles.append(frame.to_uint8())
            labels.append(f"talking {emotion} @{t:.1f}s")
    return {"seconds": round(secs, 1), **{k: round(float(v), 3) for k, v in res.stats.items()},
            "timings_s": {k: round(v, 1) for k, v in res.timings_s.items()}}, \
        label_tiles(tiles, labels, cols=9), avatar


def run_video(out_dir, iterations, log):
    import imageio.v3 as iio
    from gemo_ros.fit.from_video import FromVideoConfig, avatar_from_video
    from gemo_ros.framing import render_frame
    face = load_face_model("ict")
    beta = torch.randn(40, generator=torch.Generator().manual_seed(11))
    truth = build_human_avatar(48000, seed=3, face=face.with_identity(beta))
    frames = []
    for t in range(30):
        e = torch.zeros(1, 52)
        e[0, ARKIT_INDEX["jawOpen"]] = float(0.4 * abs(np.sin(t / 2)))
        smile = float(0.4 * (np.sin(t / 5) > 0.3))
        e[0, ARKIT_INDEX["mouthSmileLeft"]] = e[0, ARKIT_INDEX["mouthSmileRight"]] = smile
        e[0, ARKIT_INDEX["browInnerUp"]] = float(0.5 * (np.cos(t / 4) > 0.5))
        view = replace(PORTRAIT, width=384, height=384, yaw_deg=float(20 * np.sin(t / 4)),
                       pitch_deg=float(5 * np.cos(t / 3)))
        frames.append(render_frame(truth, e, view))
    work = os.path.join("out", "from_video_eval")
    os.makedirs(work, exist_ok=True)
    clip = os.path.join(work, "clip.mp4")
    iio.imwrite(clip, np.stack(frames), fps=10)
    cfg = FromVideoConfig(max_frames=30, iterations=iterations, downscale=2, crop_size=256)
    t0 = time.perf_counter()
    avatar, track = avatar_from_video(clip, os.path.join(work, "work"), cfg,
                                      train_progress=False)
    secs = time.perf_counter() - t0
    tiles, labels = [], []
    zero = torch.zeros(1, 52)
    for yaw in (-30, 0, 30):
        view = replace(PORTRAIT, width=192, height=192, yaw_deg=float(yaw))
        tiles += [render_frame(truth, zero, view), render_frame(avatar, zero, view)]
        labels += [f"truth yaw {yaw:+d}", f"from video yaw {yaw:+d}"]
    e = torch.zeros(1, 52)
    e[0, ARKIT_INDEX["jawOpen"]] = 0.5
    view = replace(PORTRAIT, width=192, height=192)
    tiles += [render_frame(truth, e, view), render_frame(avatar, e, view)]
    labels += ["truth jawOpen 0.5", "from video jawOpen 0.5"]
    save_png(label_tiles(tiles, labels, cols=8),
             os.path.join(out_dir, "from_video_synthetic.png"))
    vt = face.with_identity(beta).vertices[:NARROW_FACE]
    result = {"seconds": round(secs, 1), "frames": int(len(track["crops"])),
              "iterations": iterations,
              "landmark_error_px": round(float(track["error_px"].mean()), 2),
              "shape_error_mm": round(aligned_error_mm(
                  avatar.face.vertices[:NARROW_FACE], vt), 2),
              "generic_shape_error_mm": round(aligned_error_mm(
                  face.vertices[:NARROW_FACE], vt), 2),
              "gaussians": avatar.num_gaussians, "load_average": os.getloadavg()}
    log(f"from video: {result}")
    with open(os.path.join(out_dir, "from_video_eval.json"), "w") as f:
        json.dump(result, f, indent=1)
    return 0


def _resize(img, size):
    from PIL import Image
    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=3)
    ap.add_argument("--out", default="docs/contact_sheets")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--refine-steps", type=int, default=FromPhotoConfig().refine_steps)
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--video", action="store_true",
                    help="evaluate gemo avatar from-video on a rendered clip instead")
    ap.add_argument("--video-iterations", type=int, default=400)
    ap.add_argument("--avatar-out", default="out/from_photo/astronaut.safetensors",
                    help="also save the astronaut avatar here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = FromPhotoConfig(refine_steps=args.refine_steps)
    os.makedirs(args.out, exist_ok=True)
    report = {"machine": f"{platform.processor() or platform.machine()}, "
                         f"{os.cpu_count()} cores, torch threads {args.threads}",
              "load_average_start": os.getloadavg()}
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    if args.video:
        return run_video(args.out, args.video_iterations, log)
    if not args.skip_synthetic:
        rows, sheet = run_synthetic(args.cases, cfg, log)
        save_png(sheet, os.path.join(args.out, "from_photo_synthetic.png"))
        report["synthetic"] = rows
    real, sheet, avatar = run_astronaut(cfg, log)
    save_png(sheet, os.path.join(args.out, "from_photo_astronaut.png"))
    report["astronaut"] = real
    report["load_average_end"] = os.getloadavg()
    if args.avatar_out:
        from gemo_ros.avatar.io import save_avatar
        save_avatar(avatar, args.avatar_out)
    with open(os.path.join(args.out, "from_photo_eval.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
