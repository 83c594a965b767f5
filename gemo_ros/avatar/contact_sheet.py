"""Contact sheets of an avatar: labelled tiles of views and blendshapes (PNG).

    python -m gemo_ros.avatar.contact_sheet [--avatar default] [--out docs/contact_sheets]
    python -m gemo_ros.avatar.contact_sheet --avatar default --compare toon

writes ``neutral_views.png`` (yaw -60/-30/0/30/60) and ``blendshapes.png`` (each of the 52
ARKit blendshapes at weight 1, one labelled tile each). With ``--compare OTHER`` each tile
of ``--avatar`` gets the same view of OTHER beside it (views: one row per avatar; the
blendshapes: pairs), written as ``neutral_views_vs_OTHER.png`` and
``blendshapes_vs_OTHER.png``, and ``level_of_detail_vs_OTHER.png``: both at the CPU level of
detail (``--lod``, 12000 Gaussians as on the node's CPU, i.e. about equal render cost) and
in full, at the node's panel framing.
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


def interleave(first: Sequence[np.ndarray], second: Sequence[np.ndarray],
               labels: Sequence[str], names: Tuple[str, str]
               ) -> Tuple[List[np.ndarray], List[str]]:
    """Pair tiles ``first[i], second[i]`` side by side, labelled ``"<label> (<name>)"``."""
    tiles, out = [], []
    for a, b, text in zip(first, second, labels):
        tiles += [a, b]
        out += [f"{text} ({names[0]})", f"{text} ({names[1]})"]
    return tiles, out


def main(argv: Sequence[str] = None) -> int:
    """Write the two contact sheets (or the two comparison sheets with ``--compare``)."""
    import torch

    from gemo_ros.avatar import load_avatar
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--avatar", default="default")
    parser.add_argument("--compare", default=None,
                        help="a second avatar (e.g. toon) shown beside each tile")
    parser.add_argument("--out", default="docs/contact_sheets")
    parser.add_argument("--tile", type=int, default=160)
    parser.add_argument("--lod", type=int, default=12000,
                        help="Gaussians of the level-of-detail sheet with --compare")
    parser.add_argument("--view-tile", type=int, default=256,
                        help="tile of the views with --compare (judged at panel size)")
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    avatar = load_avatar(args.avatar)
    if args.compare:
        return _compare(avatar, load_avatar(args.compare), args)
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


def _compare(avatar, other, args) -> int:
    names = (os.path.basename(args.avatar).split(".")[0], os.path.basename(args.compare)
             .split(".")[0])
    suffix = f"_vs_{names[1]}"
    rows = []
    for av, name in ((avatar, names[0]), (other, names[1])):
        tiles, labels = render_views(av, tile=args.view_tile)
        rows.append((tiles, [f"{text} ({name})" for text in labels]))
    views = os.path.join(args.out, f"neutral_views{suffix}.png")
    save_png(label_tiles(rows[0][0] + rows[1][0], rows[0][1] + rows[1][1],
                         cols=len(VIEW_YAWS)), views)
    shapes = []
    for av in (avatar, other):
        tiles, labels = render_blendshapes(av, tile=args.tile)
        tiles.insert(0, render_frame(av, av.expression_vector({}), face_framing(args.tile)))
        shapes.append(tiles)
    labels.insert(0, "neutral")
    tiles, labels = interleave(shapes[0], shapes[1], labels, names)
    sheet = os.path.join(args.out, f"blendshapes{suffix}.png")
    save_png(label_tiles(tiles, labels, cols=2 * (args.cols // 2)), sheet)
    lod = os.path.join(args.out, f"level_of_detail{suffix}.png")
    save_png(label_tiles(*lod_tiles((avatar, other), names, args.lod, args.view_tile),
                         cols=4), lod)
    print(f"wrote {views}, {sheet} and {lod}")
    return 0


def lod_tiles(avatars: Sequence, names: Sequence[str], lod: int, tile: int
              ) -> Tuple[List[np.ndarray], List[str]]:
    """Each avatar at ``lod`` Gaussians and in full, yaw 0 and 30, at the panel framing."""
    from gemo_ros.avatar.model import level_of_detail
    from gemo_ros.framing import ROBOT_PANEL

    tiles, labels = [], []
    for av, name in zip(avatars, names):
        for model in (level_of_detail(av, lod), av):
            for yaw in (0.0, 30.0):
                expr = model.expression_vector({"mouthSmileLeft": 0.3, "mouthSmileRight": 0.3})
                tiles.append(render_frame(model, expr, replace(ROBOT_PANEL, width=tile,
                                                               height=tile, yaw_deg=yaw)))
                labels.append(f"{name} {model.num_gaussians} yaw {yaw:+.0f}")
    return tiles, labels


if __name__ == "__main__":
    sys.exit(main())
