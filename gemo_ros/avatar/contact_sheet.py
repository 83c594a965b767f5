"""Contact sheets of an avatar: labelled tiles of views and blendshapes (PNG).

    python -m gemo_ros.avatar.contact_sheet [--avatar default] [--out docs/contact_sheets]

writes ``neutral_views.png`` (yaw -60/-30/0/30/60) and ``blendshapes.png`` (each of the 52
ARKit blendshapes at weight 1, one labelled tile each).
"""

import argparse
import logging
import os
import sys
from dataclasses import replace
from typing import List, Sequence, Tuple

import numpy as np

from gemo_ros.framing import PORTRAIT, RenderSettings, render_frame
from gemo_ros.imaging import save_png

LOG = logging.getLogger(__name__)

VIEW_YAWS = (-60.0, -30.0, 0.0, 30.0, 60.0)
#: Blendshape tiles frame the face (not the whole head) so small motions stay visible.
FACE_TARGET = (0.0, -0.02, 0.02)
FACE_DISTANCE = 0.50


def face_framing(tile: int) -> RenderSettings:
    """Return the portrait framing closed in on the face, ``tile`` pixels square."""
    return replace(PORTRAIT, width=tile, height=tile, distance=FACE_DISTANCE,
                   target=FACE_TARGET)


def label_tiles(tiles: Sequence[np.ndarray], labels: Sequence[str], cols: int,
                label_px: int = 14) -> np.ndarray:
    """Grid ``uint8 [h, w, 3]`` tiles with a text label under each: ``uint8 [H, W, 3]``."""
    from PIL import Image, ImageDraw, ImageFont
    h, w = tiles[0].shape[:2]
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * w, rows * (h + label_px)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, (tile, text) in enumerate(zip(tiles, labels)):
        r, c = divmod(i, cols)
        x0, y0 = c * w, r * (h + label_px)
        sheet.paste(Image.fromarray(tile), (x0, y0))
        tw = draw.textlength(text, font=font)
        draw.text((x0 + (w - tw) / 2, y0 + h + 1), text, fill=(20, 20, 20), font=font)
    return np.asarray(sheet)


def render_views(avatar, yaws: Sequence[float] = VIEW_YAWS, tile: int = 160
                 ) -> Tuple[List[np.ndarray], List[str]]:
    """Neutral face at each yaw (degrees): tiles and labels."""
    expr = avatar.expression_vector({})
    tiles = [render_frame(avatar, expr, replace(PORTRAIT, width=tile, height=tile, yaw_deg=yaw))
             for yaw in yaws]
    return tiles, [f"yaw {yaw:+.0f}" for yaw in yaws]


def render_blendshapes(avatar, names: Sequence[str] = (), tile: int = 160, weight: float = 1.0
                       ) -> Tuple[List[np.ndarray], List[str]]:
    """Each blendshape at ``weight`` (default: all of the avatar's): tiles and labels."""
    from tqdm import tqdm

    names = list(names or avatar.expression_names)
    tiles = []
    for name in tqdm(names, desc="blendshapes", leave=False):
        expr = avatar.expression_vector({name: weight})
        tiles.append(render_frame(avatar, expr, face_framing(tile)))
    return tiles, names


def main(argv: Sequence[str] = None) -> int:
    """Write the two contact sheets."""
    import torch

    from gemo_ros.avatar import load_avatar
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--avatar", default="default")
    parser.add_argument("--out", default="docs/contact_sheets")
    parser.add_argument("--tile", type=int, default=160)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    avatar = load_avatar(args.avatar)
    neutral = avatar.expression_vector({})
    tiles, labels = render_views(avatar, tile=args.tile)
    save_png(label_tiles(tiles, labels, cols=len(tiles)),
             os.path.join(args.out, "neutral_views.png"))
    tiles, labels = render_blendshapes(avatar, tile=args.tile)
    tiles.insert(0, render_frame(avatar, neutral, face_framing(args.tile)))
    labels.insert(0, "neutral")
    save_png(label_tiles(tiles, labels, cols=args.cols),
             os.path.join(args.out, "blendshapes.png"))
    print(f"wrote {args.out}/neutral_views.png and {args.out}/blendshapes.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
