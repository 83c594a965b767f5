"""``gemo avatar from-video``: a Gaussian avatar of a person from a short video.

    gemo avatar from-video clip.mp4 -o me.safetensors [--workdir me_video] [--iterations N]

Tracks the ICT head over the clip (one identity, expression and pose per frame), writes the
tracked frames as a Stage 1 dataset and trains Stage 1 on them (docs/from_photo.md). The
work folder keeps the tracking, the dataset and checkpoints: running the same command again
resumes; ``--fresh`` starts over. Everything runs locally.
"""

import argparse
import logging
import os
import shutil
import sys

import torch

from gemo_ros.commands.avatar_from_photo import step_progress
from gemo_ros.commands.common import add_device_argument, device_or_exit

LOG = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``gemo avatar from-video`` arguments."""
    from gemo_ros.fit.from_video import FromVideoConfig
    d = FromVideoConfig()
    parser.add_argument("video", help="a short clip of one person facing the camera")
    parser.add_argument("-o", "--output", required=True, help="output avatar (.safetensors)")
    parser.add_argument("--workdir", default=None,
                        help="tracking, dataset and checkpoints (default: <output>_video/)")
    parser.add_argument("--fresh", action="store_true", help="discard the work folder first")
    parser.add_argument("--max-frames", type=int, default=d.max_frames)
    parser.add_argument("--iterations", type=int, default=d.iterations,
                        help="Stage 1 training steps")
    parser.add_argument("--crop-size", type=int, default=d.crop_size)
    parser.add_argument("--downscale", type=int, default=d.downscale,
                        help="train at 1/N of the crop size (2 on a small CPU)")
    add_device_argument(parser)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = keep)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Run ``gemo avatar from-video``."""
    from gemo_ros.avatar.io import save_avatar
    from gemo_ros.fit.from_video import FromVideoConfig, VideoError, avatar_from_video
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    prog = "gemo avatar from-video"
    if args.threads:
        torch.set_num_threads(args.threads)
    if not os.path.isfile(args.video):
        print(f"{prog}: error: video not found: {args.video}", file=sys.stderr)
        return 2
    workdir = args.workdir or os.path.splitext(args.output)[0] + "_video"
    if args.fresh and os.path.isdir(workdir):
        shutil.rmtree(workdir)
    device = device_or_exit(args.device, prog)
    cfg = FromVideoConfig(max_frames=args.max_frames, iterations=args.iterations,
                          crop_size=args.crop_size, downscale=args.downscale)
    bar, progress = step_progress("from-video", args.quiet)
    try:
        avatar, track = avatar_from_video(args.video, workdir, cfg, device, progress,
                                          train_progress=not args.quiet)
    except (VideoError, ImportError) as exc:
        print(f"\n{prog}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    size = save_avatar(avatar, args.output)
    print(f"wrote {args.output} ({size / 1e6:.1f} MB, {avatar.num_gaussians} Gaussians) from "
          f"{len(track['crops'])} frames; mean landmark error "
          f"{float(track['error_px'].mean()):.1f} px; work folder {workdir}")
    return 0
