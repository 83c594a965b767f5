"""Contact sheets: labelled grids of tiles (gemo_ros.avatar.contact_sheet)."""

import numpy as np

from gemo_ros.avatar.contact_sheet import face_framing, interleave, label_tiles


def test_tiles_are_laid_out_in_rows_with_a_label_strip_under_each():
    tiles = [np.full((8, 10, 3), 40 * i, np.uint8) for i in range(5)]
    sheet = label_tiles(tiles, [f"t{i}" for i in range(5)], cols=3, label_px=6)
    assert sheet.shape == (2 * (8 + 6), 3 * 10, 3) and sheet.dtype == np.uint8
    for i, tile in enumerate(tiles):
        r, c = divmod(i, 3)
        np.testing.assert_array_equal(sheet[r * 14:r * 14 + 8, c * 10:c * 10 + 10], tile)
    assert (sheet[2 * 14 - 6:, 2 * 10:] == 255).all()   # the empty sixth cell stays white


def test_face_framing_is_a_square_close_up():
    framing = face_framing(32)
    assert (framing.width, framing.height) == (32, 32)
    assert framing.distance < 1.0


def test_comparison_pairs_each_tile_with_the_other_avatars_tile():
    a = [np.zeros((4, 4, 3), np.uint8)] * 2
    b = [np.ones((4, 4, 3), np.uint8)] * 2
    tiles, labels = interleave(a, b, ["jawOpen", "neutral"], ("default", "toon"))
    assert [int(t.max()) for t in tiles] == [0, 1, 0, 1]
    assert labels == ["jawOpen (default)", "jawOpen (toon)", "neutral (default)",
                      "neutral (toon)"]


def test_level_of_detail_tiles_show_each_avatar_reduced_and_full():
    import torch

    from gemo_ros.avatar.contact_sheet import lod_tiles
    from gemo_ros.avatar.procedural import build_default_avatar

    torch.manual_seed(0)
    av = build_default_avatar(num_gaussians=800, seed=0)
    tiles, labels = lod_tiles([av], ["toon"], 200, 24)
    assert len(tiles) == 4 and tiles[0].shape == (24, 24, 3)
    assert labels[0].startswith("toon 200 ") and labels[2].startswith(f"toon {av.num_gaussians} ")
