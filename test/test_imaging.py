"""Float image -> uint8: one rounding rule for tensors and arrays (gemo_ros.imaging)."""

import numpy as np
import pytest
import torch

from gemo_ros.imaging import to_uint8


def test_levels_round_to_nearest_with_ties_to_even_and_clamp() -> None:
    x = np.array([-0.5, 0.0, 0.5 / 255, 1.5 / 255, 2.4 / 255, 2.6 / 255, 0.5, 1.0, 1.7],
                 np.float64)
    assert to_uint8(x).tolist() == [0, 0, 0, 2, 2, 3, 128, 255, 255]


def test_tensor_and_array_give_the_same_levels() -> None:
    img = torch.rand(2, 17, 13, 3, generator=torch.Generator().manual_seed(0)) * 1.2 - 0.1
    out = to_uint8(img.requires_grad_())
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (2, 17, 13, 3)
    np.testing.assert_array_equal(out, to_uint8(img.detach().numpy()))
    np.testing.assert_array_equal(to_uint8(img.detach().half()),
                                  to_uint8(img.detach().half().numpy()))


def test_every_level_survives_a_round_trip_through_float32() -> None:
    levels = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(to_uint8(levels.astype(np.float32) / 255.0), levels)
    np.testing.assert_array_equal(to_uint8(torch.from_numpy(levels).float() / 255.0), levels)


def test_integer_images_are_refused() -> None:
    with pytest.raises(TypeError):
        to_uint8(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(TypeError):
        to_uint8(torch.zeros(2, 2, 3, dtype=torch.uint8))


def test_jpeg_bytes_encodes_rgb_that_decodes_to_the_same_size_and_rejects_other_arrays():
    import io as _io

    from PIL import Image

    from gemo_ros.imaging import check_rgb, jpeg_bytes

    rgb = np.zeros((6, 10, 3), np.uint8)
    rgb[:, 5:] = 200
    data = jpeg_bytes(rgb[:, ::-1], quality=90)  # a non-contiguous view is accepted
    assert data.startswith(b"\xff\xd8")
    with Image.open(_io.BytesIO(data)) as img:
        assert img.size == (10, 6) and img.mode == "RGB"
    for bad in (np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)):
        with pytest.raises(ValueError, match="expected uint8"):
            check_rgb(bad)
