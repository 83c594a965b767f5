"""Specifications of the latest-frame hub and the letterbox geometry (gemo_ros/panel/frames.py)."""

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from gemo_ros.panel.frames import Frame, FrameHub, letterbox


def _jpeg(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=95)
    return out.getvalue()


def test_letterbox_puts_bars_left_and_right_on_a_wide_screen() -> None:
    assert letterbox(256, 256, 1920, 1080) == (420, 0, 1080, 1080)


def test_letterbox_puts_bars_top_and_bottom_on_a_tall_screen() -> None:
    assert letterbox(512, 256, 600, 800) == (0, 250, 600, 300)


def test_letterbox_fills_a_screen_of_the_same_aspect() -> None:
    assert letterbox(64, 48, 640, 480) == (0, 0, 640, 480)


def test_letterbox_refuses_empty_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        letterbox(0, 10, 100, 100)


def test_frames_count_up_and_the_latest_wins() -> None:
    hub = FrameHub()
    assert hub.latest() is None and hub.status()["frames"] == 0
    a = hub.put_rgb(np.zeros((4, 6, 3), np.uint8))
    b = hub.put_rgb(np.full((4, 6, 3), 9, np.uint8))
    assert (a.seq, b.seq) == (1, 2) and hub.latest() is b
    status = hub.status()
    assert status["frames"] == 2 and (status["width"], status["height"]) == (6, 4)
    assert status["age_s"] >= 0.0


def test_an_rgb_frame_is_encoded_to_jpeg_once_and_a_jpeg_frame_decoded_once() -> None:
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :, 1] = 180
    frame = Frame(1, 0.0, rgb=rgb)
    jpeg = frame.jpeg()
    assert jpeg.startswith(b"\xff\xd8") and frame.jpeg() is jpeg
    back = Frame(2, 0.0, jpeg=_jpeg(rgb)).rgb()
    assert back.shape == (16, 16, 3) and abs(int(back[..., 1].mean()) - 180) < 4


def test_bad_frames_are_refused() -> None:
    hub = FrameHub()
    with pytest.raises(ValueError, match="uint8"):
        hub.put_rgb(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="not JPEG"):
        hub.put_jpeg(b"\x89PNG....")
    assert hub.latest() is None


def test_a_waiter_wakes_on_a_newer_frame_and_times_out_without_one() -> None:
    hub = FrameHub()
    assert hub.wait_newer(0, 0.05) is None
    got = []
    t = threading.Thread(target=lambda: got.append(hub.wait_newer(0, 10.0)))
    t.start()
    time.sleep(0.05)
    frame = hub.put_rgb(np.zeros((2, 2, 3), np.uint8))
    t.join(5.0)
    assert got == [frame]
    assert hub.wait_newer(frame.seq, 0.05) is None  # nothing newer


def test_close_wakes_every_waiter_with_none() -> None:
    hub = FrameHub()
    got = []
    t = threading.Thread(target=lambda: got.append(hub.wait_newer(0, 10.0)))
    t.start()
    time.sleep(0.05)
    hub.close()
    t.join(5.0)
    assert got == [None] and hub.closed


def test_the_rate_is_measured_from_arrivals() -> None:
    hub = FrameHub()
    for _ in range(5):
        hub.put_rgb(np.zeros((2, 2, 3), np.uint8))
        time.sleep(0.02)
    assert hub.status()["fps"] > 0
