"""Specification of photo projection and fill (gemo_ros/fit/texture.py)."""

import numpy as np

from gemo_ros.fit.texture import (GaussianGroups, blend_colours, polygon_mask,
                                  sample_bilinear, sample_hair_colour)


def test_bilinear_sampling_reads_pixel_centres_exactly_and_blends_between():
    img = np.zeros((4, 4, 3))
    img[1, 2] = 1.0
    assert np.allclose(sample_bilinear(img, np.array([[2.5, 1.5]])), 1.0)
    assert np.allclose(sample_bilinear(img, np.array([[3.0, 1.5]])), 0.5)


def test_polygon_mask_tells_inside_from_outside():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    assert polygon_mask(np.array([[5.0, 5.0], [15.0, 5.0]]), square).tolist() == [True, False]


def _groups(n):
    photo = np.ones(n, bool)
    photo[-1] = False                       # the last one is hair
    return GaussianGroups(photo=photo, skin=photo.copy(), hair=~photo)


def test_seen_skin_takes_the_photo_colour_and_unseen_skin_its_mirror():
    default = np.full((4, 3), 0.5)
    photo = np.array([[0.9, 0.2, 0.1], [0.1, 0.8, 0.2], [0.3, 0.3, 0.9], [0, 0, 0]])
    conf = np.array([1.0, 0.0, 1.0, 0.0])
    mirror = np.array([1, 0, 2, -1])        # 0 and 1 mirror each other
    out, _ = blend_colours(default, _groups(4), photo, conf, mirror, np.full(3, np.nan))
    assert np.allclose(out[0], photo[0], atol=0.05)
    assert np.allclose(out[1], photo[0], atol=0.05)      # the mirror's colour
    assert np.allclose(out[2], photo[2], atol=0.05)


def test_skin_nobody_saw_gets_the_default_scaled_to_the_photos_skin_tone():
    n = 60
    default = np.full((n, 3), 0.5)
    photo = np.tile([0.6, 0.4, 0.3], (n, 1))
    conf = np.ones(n)
    conf[0] = 0.0
    mirror = np.full(n, -1)
    mirror[:-1] = 0                          # everyone's mirror is the unseen one
    out, stats = blend_colours(default, _groups(n), photo, conf, mirror, np.full(3, np.nan))
    assert np.allclose(out[0], [0.6, 0.4, 0.3], atol=1e-6)   # 0.5 x tone ratio
    assert np.isclose(stats["tone_ratio_r"], 1.2)


def test_hair_takes_the_sampled_hair_colour_with_its_own_shading():
    n = 30
    default = np.full((n, 3), 0.5)
    default[-1] = [0.2, 0.1, 0.05]
    groups = _groups(n)
    out, _ = blend_colours(default, groups, default, np.zeros(n), np.full(n, -1),
                           np.array([0.1, 0.1, 0.1]))
    assert np.allclose(out[-1], 0.1, atol=1e-6)


def test_hair_colour_is_read_above_the_forehead():
    img = np.zeros((200, 200, 3))
    img[:70] = [0.4, 0.2, 0.1]               # "hair" above the forehead
    lm = np.zeros((478, 2))
    lm[10] = (100, 75)                       # forehead
    lm[152] = (100, 180)                     # chin
    lm[263], lm[33] = (130, 110), (70, 110)  # eye corners
    assert np.allclose(sample_hair_colour(img, lm), [0.4, 0.2, 0.1])


def test_distance_to_polygon_is_the_distance_to_the_nearest_edge():
    from gemo_ros.fit.texture import distance_to_polygon
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    d = distance_to_polygon(np.array([[5.0, 5.0], [1.0, 5.0], [15.0, 10.0]]), square)
    assert np.allclose(d, [5.0, 1.0, 5.0])


def test_the_fill_follows_the_tone_of_the_photo_nearby():
    # Two seen patches of different tone; an unseen Gaussian beside each takes its tone.
    n = 44
    pos = np.zeros((n, 3))
    pos[:22, 0] = np.linspace(-0.1, -0.09, 22)
    pos[22:, 0] = np.linspace(0.09, 0.1, 22)
    default = np.full((n, 3), 0.5)
    photo = np.where(pos[:, :1] < 0, [[0.6, 0.5, 0.4]], [[0.4, 0.5, 0.6]])
    conf = np.ones(n)
    conf[[0, 43]] = 0.0                      # one unseen at each end
    groups = GaussianGroups(photo=np.ones(n, bool), skin=np.ones(n, bool),
                            hair=np.zeros(n, bool))
    out, _ = blend_colours(default, groups, photo, conf, np.full(n, -1),
                           np.full(3, np.nan), pos)
    assert np.allclose(out[0], [0.6, 0.5, 0.4], atol=0.03)
    assert np.allclose(out[43], [0.4, 0.5, 0.6], atol=0.03)
