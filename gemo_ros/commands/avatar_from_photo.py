"""``gemo avatar from-photo``: a Gaussian avatar of a person from one photo.

    gemo avatar from-photo face.jpg -o my_avatar.safetensors
    gemo render --avatar my_avatar.safetensors --emotion happy -o me.png

Everything runs locally (MediaPipe's bundled face mesh, the ICT face model shipped with
gemo_ros); nothing is uploaded or downloaded. See docs/from_photo.md.
"""

import argparse
import logging
import os
import sys
import time
from typing import Any, Callable, Tuple

import numpy as np
import torch

LOG = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``gemo avatar from-photo`` arguments."""
    from gemo_ros.fit.from_photo import FromPhotoConfig
    d = FromPhotoConfig()
    parser.add_argument("image", help="photo with one face seen from the front (JPEG/PNG)")
    parser.add_argument("-o", "--output", required=True, help="output avatar (.safetensors)")
    parser.add_argument("--gaussians", type=int, default=d.num_gaussians,
                        help="number of Gaussians (surface + hair)")
    parser.add_argument("--refine-steps", type=int, default=d.refine_steps,
                        help="photometric refinement steps on the photo (0: none)")
    parser.add_argument("--max-yaw", type=float, default=d.max_yaw_deg,
                        help="refuse faces turned further than this (degrees)")
    parser.add_argument("--min-eye-distance", type=float, default=d.min_inter_ocular_px,
                        help="refuse faces whose outer eye corners are closer (pixels)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--preview", default=None,
                        help="also write a PNG: the face crop beside the avatar at that view")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = keep)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def step_progress(label: str, quiet: bool) -> Tuple[Any, Callable[[str, float], None]]:
    """Return ``(bar, progress)`` for a ``gemo avatar`` command.

    ``bar`` is a tqdm bar on stderr (None when ``quiet``; close it when done) and
    ``progress(step_name, fraction_done)`` the callback the ``gemo_ros.fit`` builders take.
    """
    bar = None
    if not quiet:
        from tqdm import tqdm
        bar = tqdm(total=100, desc="landmarks", unit="%", file=sys.stderr,
                   bar_format=label + " {desc:>9}: {percentage:3.0f}%|{bar}| {elapsed}")

    def progress(step: str, frac: float) -> None:
        if bar is not None:
            bar.set_description_str(step, refresh=False)
            bar.update(int(round(100 * frac)) - bar.n)
    return bar, progress


def _read_image(path: str) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from exc


def _preview(result, path: str) -> None:
    from gemo_ros.imaging import save_png, to_uint8
    from gemo_ros.render import rasterize
    size = result.crop.shape[0]
    with torch.no_grad():
        g = result.avatar(result.expression)
        rgb, _, _ = rasterize(**g.render_args(0), viewmat=result.fit.viewmat, K=result.fit.K,
                              width=size, height=size,
                              background=torch.tensor([0.5, 0.5, 0.5]))
    save_png(np.concatenate([result.crop, to_uint8(rgb)], 1), path)


def run(args: argparse.Namespace) -> int:
    """Run ``gemo avatar from-photo``."""
    from gemo_ros.fit.from_photo import FromPhotoConfig, PhotoError, avatar_from_photo
    from gemo_ros.avatar.io import save_avatar
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    prog = "gemo avatar from-photo"
    try:
        image = _read_image(args.image)
    except (FileNotFoundError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    config = FromPhotoConfig(num_gaussians=args.gaussians, refine_steps=args.refine_steps,
                             max_yaw_deg=args.max_yaw,
                             min_inter_ocular_px=args.min_eye_distance, seed=args.seed)
    bar, progress = step_progress("from-photo", args.quiet)
    t0 = time.perf_counter()
    try:
        result = avatar_from_photo(image, config, progress)
    except PhotoError as exc:
        print(f"\n{prog}: error: {args.image}: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"\n{prog}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    size = save_avatar(result.avatar, args.output)
    if args.preview:
        _preview(result, args.preview)
    s = result.stats
    psnr = (f"face PSNR on the photo {s['refine_psnr_after']:.1f} dB"
            if "refine_psnr_after" in s else "not refined")
    print(f"wrote {args.output} ({size / 1e6:.1f} MB, {result.avatar.num_gaussians} Gaussians) "
          f"in {time.perf_counter() - t0:.0f} s: landmark error {s['landmark_error_px']:.1f} px "
          f"(in a {result.crop.shape[0]} px crop), head yaw {s['head_yaw_deg']:+.0f} deg, {psnr}")
    print(f"use it: gemo render --avatar {args.output} ...   or   ros2 launch gemo_ros "
          f"avatar.launch.py avatar:={os.path.abspath(args.output)}")
    return 0
