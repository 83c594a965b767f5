#!/usr/bin/env python3
"""Render the README picture: the default head from five yaws and talking with emotions.

Top row: neutral at yaw -60, -30, 0, 30, 60 degrees. Bottom row: talking on the demo speech
clip with an emotion each, through the shipped audio-to-expression model and the Gaussian
blendshapes (the emotional coefficients psi_e on the mesh); ``--residual`` adds the Stage 2
emotion residual (the full method). Deterministic for a given set of assets.

    python scripts/make_readme_figure.py [--avatar default] [--residual] [--tile 256]
                                         [-o docs/default_head.png]
"""

import argparse
import os
import sys
from dataclasses import replace

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

#: (emotion, intensity, seconds into the demo clip) of the talking tiles.
TALKING = (("neutral", 0.0, 1.20), ("happy", 0.8, 2.05), ("surprised", 0.8, 3.10),
           ("sad", 0.8, 4.30), ("angry", 0.8, 5.55))


def main() -> int:
    """Render and save the figure."""
    import soundfile as sf
    import torch

    from gemo_ros.avatar.contact_sheet import VIEW_YAWS, label_tiles
    from gemo_ros.framing import PORTRAIT
    from gemo_ros.imaging import save_png, to_uint8
    from gemo_ros.pipeline import TalkingHead

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--avatar", default="default")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--residual", action="store_true",
                        help="talking tiles through the emotion residual too")
    parser.add_argument("-o", "--output", default=os.path.join(ROOT, "docs", "default_head.png"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = replace(PORTRAIT, width=args.tile, height=args.tile)
    head = TalkingHead.load(args.avatar, "default", "default", settings=settings, device="cpu",
                            max_gaussians=0)
    audio, rate = sf.read(os.path.join(ROOT, "gemo_ros", "assets", "demo_speech.wav"),
                          dtype="float32")
    tiles, labels = [], []
    for yaw in VIEW_YAWS:
        frame = head.still(settings=replace(settings, yaw_deg=yaw))
        tiles.append(to_uint8(frame.image))
        labels.append(f"yaw {yaw:+.0f}")
    for emotion, intensity, t in TALKING:
        frame = head.still(emotion, intensity, audio=audio, sample_rate=rate, time_s=t,
                           settings=replace(settings, yaw_deg=15.0),
                           use_residual=args.residual)
        tiles.append(to_uint8(frame.image))
        labels.append(f"talking, {emotion}" + (f" {intensity:.1f}" if intensity else ""))
    save_png(label_tiles(tiles, labels, cols=len(VIEW_YAWS)), args.output)
    print(f"wrote {os.path.normpath(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
