"""The fullscreen window: the face on an attached display through SDL2 (pygame; ROS-free).

:class:`FaceWindow` draws the latest frame of a :class:`~gemo_ros.panel.frames.FrameHub`
letterboxed (black bars, aspect ratio kept) in a borderless fullscreen window with the
mouse cursor hidden; Esc or q (or closing the window) quits. While no frame is fresher than
``stale_s`` it shows ``waiting for <topic>...``. SDL picks the display server itself (X11,
Wayland, or KMS/DRM with no desktop at all: ``SDL_VIDEODRIVER=kmsdrm``); tests use
``SDL_VIDEODRIVER=dummy``, which draws into memory.

pygame is imported when a window is opened, so importing this module needs no SDL.
"""

import os
import time
from typing import Any, Optional, Sequence, Tuple

from gemo_ros.panel.frames import FrameHub, letterbox

#: Keys that close the window.
QUIT_KEYS = ("escape", "q")


def _pygame() -> Any:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # no banner on stdout
    import pygame

    return pygame


class FaceWindow:
    """A window showing a :class:`FrameHub`'s latest frame, letterboxed.

    Args:
        hub: where the frames come from.
        fullscreen: a borderless window covering the display (its native resolution).
        size: ``(width, height)`` in px of a window that is not fullscreen.
        topic: named in the waiting message.
        stale_s: seconds without a new frame before the waiting message shows.
        background: colour of the bars ``(r, g, b)``.
    """

    def __init__(self, hub: FrameHub, fullscreen: bool = True,
                 size: Tuple[int, int] = (800, 600), topic: str = "face/image",
                 stale_s: float = 2.0, background: Sequence[int] = (0, 0, 0)) -> None:
        if not fullscreen and min(size) <= 0:
            raise ValueError(f"window size must be positive, got {size}")
        self.hub, self.fullscreen, self.size = hub, bool(fullscreen), tuple(int(s) for s in size)
        self.topic, self.stale_s, self.background = topic, float(stale_s), tuple(background)
        self.screen: Any = None
        self.drawn_seq = 0  # the frame on screen (0 = none yet)
        self._waiting_shown = False
        self._pg: Any = None

    def open(self) -> "FaceWindow":
        """Open the window (raises pygame.error where no display can be opened)."""
        pg = self._pg = _pygame()
        pg.display.init()
        pg.font.init()
        if self.fullscreen:
            self.screen = pg.display.set_mode((0, 0), pg.FULLSCREEN | pg.NOFRAME)
        else:
            self.screen = pg.display.set_mode(self.size)
        pg.display.set_caption("gemo_ros face")
        pg.mouse.set_visible(False)
        self.screen.fill(self.background)
        pg.display.flip()
        return self

    def handle_events(self) -> bool:
        """Process pending window events; return False when the user asked to quit."""
        pg = self._pg
        for event in pg.event.get():
            if event.type == pg.QUIT:
                return False
            if event.type == pg.KEYDOWN and pg.key.name(event.key) in QUIT_KEYS:
                return False
        return True

    def draw(self, rgb: Any) -> Tuple[int, int, int, int]:
        """Draw ``uint8 [H, W, 3]`` RGB letterboxed; return the face's ``(x, y, w, h)``."""
        pg = self._pg
        h, w = int(rgb.shape[0]), int(rgb.shape[1])
        surface = pg.image.frombuffer(rgb.tobytes(), (w, h), "RGB")
        sw, sh = self.screen.get_size()
        x, y, bw, bh = letterbox(w, h, sw, sh)
        if (bw, bh) != (w, h):
            surface = pg.transform.smoothscale(surface, (bw, bh))
        self.screen.fill(self.background)
        self.screen.blit(surface, (x, y))
        pg.display.flip()
        return x, y, bw, bh

    def draw_waiting(self) -> None:
        """Show ``waiting for <topic>...`` centred on the background."""
        pg = self._pg
        sw, sh = self.screen.get_size()
        font = pg.font.Font(None, max(16, sh // 16))
        text = font.render(f"waiting for {self.topic}...", True, (200, 200, 200))
        self.screen.fill(self.background)
        self.screen.blit(text, text.get_rect(center=(sw // 2, sh // 2)))
        pg.display.flip()

    def step(self) -> bool:
        """Handle events and draw a newer frame (or the waiting message); False = quit."""
        if not self.handle_events():
            return False
        frame = self.hub.latest()
        stale = frame is None or time.monotonic() - frame.arrival > self.stale_s
        if frame is not None and frame.seq != self.drawn_seq and not stale:
            self.draw(frame.rgb())
            self.drawn_seq, self._waiting_shown = frame.seq, False
        elif stale and not self._waiting_shown:
            self.draw_waiting()
            self._waiting_shown = True
        return True

    def pixel(self, x: int, y: int) -> Tuple[int, int, int]:
        """Return the ``(r, g, b)`` on screen at ``(x, y)`` (tests, diagnostics)."""
        return tuple(self.screen.get_at((x, y)))[:3]

    def close(self) -> None:
        """Close the window and SDL's video."""
        if self._pg is not None:
            self._pg.display.quit()
            self._pg = None
            self.screen = None


def run(window: FaceWindow, spin_once: Optional[Any] = None, max_fps: float = 120.0) -> None:
    """Open ``window`` and draw until the user quits; ``spin_once()`` is called each turn.

    ``spin_once`` lets the caller receive messages on this (the main) thread, which SDL
    needs for its events. KeyboardInterrupt (Ctrl-C) ends it too, the window closed.
    """
    window.open()
    period = 1.0 / max_fps
    try:
        while True:
            t0 = time.monotonic()
            if spin_once is not None:
                spin_once()
            if not window.step():
                return
            left = period - (time.monotonic() - t0)
            if left > 0:
                time.sleep(left)
    finally:
        window.close()
