"""Specifications of the fullscreen face window (gemo_ros/panel/window.py), drawn offscreen.

SDL's ``dummy`` video driver draws into memory, so the window's pixels can be read back.
"""

import os

import numpy as np
import pytest

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
pygame = pytest.importorskip("pygame")

from gemo_ros.panel.frames import FrameHub  # noqa: E402
from gemo_ros.panel.window import FaceWindow, run  # noqa: E402


@pytest.fixture()
def window():
    w = FaceWindow(FrameHub(), fullscreen=False, size=(200, 100), topic="face/image").open()
    yield w
    w.close()


def _face(h: int = 50, w: int = 50) -> np.ndarray:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[...] = (230, 30, 20)
    rgb[: h // 2, : w // 2] = (20, 40, 240)  # top-left quarter blue: orientation check
    return rgb


def test_a_received_frame_is_drawn_letterboxed_with_black_bars(window) -> None:
    window.hub.put_rgb(_face())
    assert window.step()
    assert window.drawn_seq == 1
    # a square face in 200x100: 100x100 at x = 50..149, bars left and right
    assert window.pixel(10, 50) == (0, 0, 0) and window.pixel(190, 50) == (0, 0, 0)
    assert window.pixel(125, 75) == (230, 30, 20)
    assert window.pixel(60, 10) == (20, 40, 240)  # not flipped or mirrored


def test_a_tall_window_gets_bars_top_and_bottom() -> None:
    w = FaceWindow(FrameHub(), fullscreen=False, size=(100, 300)).open()
    try:
        w.hub.put_rgb(_face())
        w.step()
        assert w.pixel(50, 20) == (0, 0, 0) and w.pixel(50, 280) == (0, 0, 0)
        assert w.pixel(75, 175) == (230, 30, 20)
    finally:
        w.close()


def test_each_new_frame_replaces_the_last(window) -> None:
    window.hub.put_rgb(_face())
    window.step()
    window.hub.put_rgb(np.full((50, 50, 3), 128, np.uint8))
    window.step()
    assert window.drawn_seq == 2 and window.pixel(100, 50) == (128, 128, 128)


def test_the_cursor_is_hidden(window) -> None:
    assert not pygame.mouse.get_visible()


def test_without_frames_it_says_it_is_waiting(window) -> None:
    assert window.step()
    shot = pygame.surfarray.array3d(window.screen)
    assert shot.max() > 100  # the message's text
    assert window.pixel(2, 2) == (0, 0, 0) and window.drawn_seq == 0


def test_a_stale_frame_brings_the_waiting_message_back(window) -> None:
    window.stale_s = 0.05
    window.hub.put_rgb(np.full((50, 50, 3), 128, np.uint8))
    window.step()
    assert window.pixel(100, 50) == (128, 128, 128)
    import time
    time.sleep(0.1)
    window.step()
    assert window.pixel(100, 50) != (128, 128, 128)


@pytest.mark.parametrize("key", [pygame.K_ESCAPE, pygame.K_q])
def test_escape_and_q_quit(window, key) -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="",
                                         scancode=0))
    assert not window.step()


def test_other_keys_do_not_quit(window) -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_a, mod=0, unicode="a",
                                         scancode=0))
    assert window.step()


def test_run_spins_draws_and_returns_on_quit() -> None:
    hub = FrameHub()
    w = FaceWindow(hub, fullscreen=False, size=(64, 64))
    calls = []

    def spin_once():
        calls.append(1)
        if len(calls) == 1:
            hub.put_rgb(_face(8, 8))
        elif len(calls) == 3:
            pygame.event.post(pygame.event.Event(pygame.QUIT))

    run(w, spin_once=spin_once)
    assert len(calls) == 3 and w.drawn_seq == 1 and w.screen is None


def test_fullscreen_covers_the_display() -> None:
    w = FaceWindow(FrameHub(), fullscreen=True).open()
    try:
        info_size = w.screen.get_size()
        assert min(info_size) > 0
        w.hub.put_rgb(_face())
        w.step()
        x = info_size[0] // 2
        assert w.pixel(x, info_size[1] // 2) != (0, 0, 0)
    finally:
        w.close()
