"""The real-time runtime around :class:`gemo_ros.engine.Engine`: threads, pacing, watchdog.

::

    rt = Runtime(engine, RuntimeConfig(fps=25.0, width=256, height=256), publish=callback)
    rt.start()
    rt.inbox.put_audio(samples, 16000)        # from any thread; never blocks, never waits
    rt.inbox.put_emotion("happy", 0.7, 0.5)
    ...
    rt.stop()                                 # joins every thread within ``timeout``

Threading model (why: a ROS callback that waits for the audio model starves the executor,
see docs/node.md):

* **callers** (ROS callbacks) only copy into the bounded :class:`Inbox` and return;
* the **audio thread** owns the audio model: it moves the inbox into the engine (timeline,
  emotion ramp, settings) and runs the streaming audio model ahead of playback;
* the **frame thread** owns the head and the renderer: paced at ``fps`` on a monotonic
  clock, it renders the frame for the time it will be shown, hands it to ``publish`` and
  feeds the :class:`QualityController` with the time it took; missed ticks are dropped and
  counted, never made up in a rush;
* the **watchdog** notices when frames stop (or fall below half the set rate), logs what
  every thread is doing and reports it through ``on_stall``.

Nothing here imports rclpy.
"""

import logging
import math
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import numpy as np

from gemo_ros.engine import Engine
from gemo_ros.log_limiter import LogLimiter

LOG = logging.getLogger(__name__)

#: Audio seconds the inbox holds at most between two drains (the engine queues more).
MAX_INBOX_AUDIO_S = 120.0


@dataclass
class RuntimeConfig:
    """Runtime settings: output size (px), frame rate (Hz), quality bounds, watchdog (s)."""

    fps: float = 25.0
    width: int = 256
    height: int = 256
    adaptive: bool = True
    quality_level: int = 0
    min_render_size: int = 96
    render_ahead: bool = True
    stall_s: float = 1.0


# --- inbox ---------------------------------------------------------------------------------------

class Inbox:
    """Bounded, thread-safe hand-over from callers to the audio thread.

    Audio is kept in order up to ``max_audio_s``; beyond that a chunk is refused (the caller
    logs it). Emotion commands: the last one wins (a storm of 1000 commands costs one ramp);
    settings changes are merged.
    """

    def __init__(self, max_audio_s: float = MAX_INBOX_AUDIO_S) -> None:
        self.max_audio_s = max_audio_s
        self._lock = threading.Lock()
        self._audio: Deque[Tuple[np.ndarray, float, Optional[float], float]] = deque()
        self._audio_s = 0.0
        self._emotion: Optional[Tuple[str, Optional[float], Optional[float], float]] = None
        self._settings: Dict[str, Any] = {}
        self.superseded = 0
        self.ready = threading.Event()

    def put_audio(self, samples: np.ndarray, rate: float, playback_time: Optional[float],
                  arrival: float) -> bool:
        """Queue a chunk; False (nothing queued) when the inbox already holds too much."""
        dur = samples.size / float(rate) if rate and rate > 0 else 0.0
        with self._lock:
            if self._audio and self._audio_s + dur > self.max_audio_s:
                return False
            self._audio.append((samples, rate, playback_time, arrival))
            self._audio_s += dur
        self.ready.set()
        return True

    def put_emotion(self, name: str, intensity: Optional[float], transition_s: Optional[float],
                    t: float) -> None:
        """Queue an emotion command (replacing one not yet applied)."""
        with self._lock:
            if self._emotion is not None:
                self.superseded += 1
            self._emotion = (name, intensity, transition_s, t)
        self.ready.set()

    def put_settings(self, **changes: Any) -> None:
        """Queue engine settings changes (merged with ones not yet applied)."""
        with self._lock:
            idle = changes.pop("idle", None)
            if idle:
                self._settings.setdefault("idle", {}).update(idle)
            self._settings.update(changes)
        self.ready.set()

    def take(self) -> Tuple[List[Tuple[np.ndarray, float, Optional[float], float]],
                            Optional[Tuple[str, Optional[float], Optional[float], float]],
                            Dict[str, Any]]:
        """Return and clear everything queued: ``(audio chunks, emotion, settings)``."""
        with self._lock:
            audio, self._audio, self._audio_s = list(self._audio), deque(), 0.0
            emotion, self._emotion = self._emotion, None
            settings, self._settings = self._settings, {}
            self.ready.clear()
        return audio, emotion, settings

    @property
    def audio_s(self) -> float:
        """Seconds of audio waiting."""
        with self._lock:
            return self._audio_s


# --- adaptive quality ----------------------------------------------------------------------------

@dataclass(frozen=True)
class QualityLevel:
    """One rung of the quality ladder: render size (px) and Gaussians (0 = all loaded)."""

    width: int
    height: int
    gaussians: int = 0


def quality_ladder(width: int, height: int, min_size: int = 96,
                   low_gaussians: int = 0) -> List[QualityLevel]:
    """Return rungs from the output size down to ``min_size`` (shorter side) in 1/8 steps.

    The last rung repeats the smallest size with ``low_gaussians`` (when > 0): fewer
    Gaussians only once fewer pixels are not enough.
    """
    short = min(width, height)
    floor = min(max(int(min_size), 8), short)
    levels = []
    for k in range(8):
        scale = 1.0 - k / 8.0
        if short * scale < floor - 1e-6:
            break
        levels.append(QualityLevel(int(round(width * scale)) // 2 * 2 or 2,
                                   int(round(height * scale)) // 2 * 2 or 2))
    if low_gaussians > 0:
        last = levels[-1]
        levels.append(QualityLevel(last.width, last.height, int(low_gaussians)))
    return levels


class QualityController:
    """Hold the frame rate by moving along a quality ladder (with hysteresis).

    ``update(work_s, now, dropped)`` takes the time one frame took (and whether ticks were
    missed). Nothing moves during ``warm_up_s`` (first frames are slow). Down one rung when
    the smoothed time exceeds ``high`` x the frame budget for ``hold_down_s`` (two rungs
    above 1.5 x, three above 2.5 x: a busy machine needs a big step at once); up one rung
    when it stayed below ``low`` x budget for ``hold_up_s`` and the rung above did not
    prove too slow in the last ``retry_s`` (no flapping). ``adaptive=False`` pins the level.
    """

    def __init__(self, levels: List[QualityLevel], fps: float, level: int = 0,
                 adaptive: bool = True, high: float = 0.92, low: float = 0.7,
                 hold_down_s: float = 1.0, hold_up_s: float = 3.0, warm_up_s: float = 2.0,
                 retry_s: float = 30.0) -> None:
        if not levels:
            raise ValueError("the quality ladder needs at least one level")
        self.levels = levels
        self.budget_s = 1.0 / fps
        self.level = min(max(int(level), 0), len(levels) - 1)
        self.adaptive = adaptive
        self.high, self.low = high, low
        self.hold_down_s, self.hold_up_s = hold_down_s, hold_up_s
        self.warm_up_s, self.retry_s = warm_up_s, retry_s
        self._ema: Optional[float] = None
        self._start: Optional[float] = None
        self._over_since: Optional[float] = None
        self._under_since: Optional[float] = None
        self._too_slow: Dict[int, float] = {}   # level -> when it proved too slow

    @property
    def current(self) -> QualityLevel:
        """The rung in use."""
        return self.levels[self.level]

    def pin(self, level: int) -> None:
        """Set the level (clamped to the ladder) and restart the smoothing."""
        self.level = min(max(int(level), 0), len(self.levels) - 1)
        self._ema = None
        self._over_since = self._under_since = None

    def update(self, work_s: float, now: float, dropped: bool = False) -> Optional[str]:
        """Account one frame; return a log line when the level changed, else None."""
        if not math.isfinite(work_s):
            return None
        self._ema = work_s if self._ema is None else 0.85 * self._ema + 0.15 * work_s
        if self._start is None:
            self._start = now
        if not self.adaptive or now - self._start < self.warm_up_s:
            return None
        load = self._ema / self.budget_s
        over = load > self.high or dropped
        self._over_since = (self._over_since or now) if over else None
        self._under_since = (self._under_since or now) if load < self.low else None
        if self._over_since is not None and now - self._over_since >= self.hold_down_s \
                and self.level < len(self.levels) - 1:
            self._too_slow[self.level] = now
            # far over budget (a busy machine): skip rungs rather than crawl down one by one
            steps = 1 if load < 1.5 else 2 if load < 2.5 else 3
            return self._move(min(steps, len(self.levels) - 1 - self.level), now, load)
        recently_slow = now - self._too_slow.get(self.level - 1, -1e9) <= self.retry_s
        if self._under_since is not None and now - self._under_since >= self.hold_up_s \
                and self.level > 0 and not recently_slow:
            return self._move(-1, now, load)
        return None

    def _move(self, step: int, now: float, load: float) -> str:
        old = self.current
        self.level += step
        for skipped in range(self.level - step + 1, self.level):  # too slow as well
            self._too_slow[skipped] = now
        self._over_since = self._under_since = None
        self._ema = None
        new = self.current
        return (f"quality {'down' if step > 0 else 'up'}: render {old.width}x{old.height} -> "
                f"{new.width}x{new.height}"
                + (f", {new.gaussians or 'all'} Gaussians" if new.gaussians != old.gaussians
                   else "")
                + f" (frames took {load * 100:.0f} % of the {self.budget_s * 1e3:.0f} ms budget)")


# --- the runtime ---------------------------------------------------------------------------------

def thread_stacks(limit: int = 4) -> str:
    """Return one line per live thread: its name and innermost ``limit`` frames."""
    names = {t.ident: t.name for t in threading.enumerate()}
    lines = []
    for ident, frame in sys._current_frames().items():
        stack = traceback.extract_stack(frame)[-limit:]
        where = " <- ".join(f"{f.name} ({f.filename.rsplit('/', 1)[-1]}:{f.lineno})"
                            for f in reversed(stack))
        lines.append(f"  {names.get(ident, ident)}: {where}")
    return "\n".join(lines)


class Runtime:
    """Runs an :class:`Engine` in real time; see the module docstring."""

    def __init__(self, engine: Engine, config: RuntimeConfig,
                 publish: Callable[[np.ndarray, Dict[str, Any]], None],
                 on_stall: Optional[Callable[[Dict[str, Any]], None]] = None,
                 low_gaussians: int = 0) -> None:
        if not (math.isfinite(config.fps) and config.fps > 0):
            raise ValueError(f"fps must be > 0, got {config.fps}")
        self.engine = engine
        self.config = config
        self.publish = publish
        self.on_stall = on_stall
        self.clock = engine.clock
        self.inbox = Inbox()
        self.quality = QualityController(
            quality_ladder(config.width, config.height, config.min_render_size, low_gaussians),
            config.fps, config.quality_level, config.adaptive)
        self._limit = LogLimiter(3.0)
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self._frame_times: Deque[float] = deque(maxlen=int(2 * config.fps) + 2)
        self._work: Deque[float] = deque(maxlen=9)
        self._last_frame_mono: Optional[float] = None
        self._last_show = 0.0
        self.frames = 0
        self.dropped = 0
        self.stalls = 0
        self._stalled = False
        self.last_state: Dict[str, Any] = {}

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the audio, frame and watchdog threads."""
        for name, target in (("gemo-audio", self._audio_loop), ("gemo-frame", self._frame_loop),
                             ("gemo-watchdog", self._watchdog_loop)):
            th = threading.Thread(target=target, name=name, daemon=True)
            th.start()
            self._threads.append(th)

    def stop(self, timeout: float = 1.5) -> bool:
        """Stop every thread; True when all ended within ``timeout`` s (they are daemons)."""
        self._stop.set()
        self.inbox.ready.set()
        end = time.monotonic() + timeout
        for th in self._threads:
            th.join(max(end - time.monotonic(), 0.0))
        alive = [th.name for th in self._threads if th.is_alive()]
        if alive:
            LOG.warning("threads still busy at shutdown (left to exit with the process): %s",
                        ", ".join(alive))
        return not alive

    def _warn(self, key: str, message: str, level: int = logging.WARNING) -> None:
        self._limit.log(LOG, key, message, level)

    # --- audio thread -------------------------------------------------------------------------

    def _audio_loop(self) -> None:
        while not self._stop.is_set():
            self.inbox.ready.wait(0.02)
            if self._stop.is_set():
                break
            try:
                self._apply_inbox()
                # the audio model runs ahead of playback, off the frame thread
                self.engine.prepare_audio(self.clock() + self._ahead_s(), self._stop)
            except Exception as exc:  # noqa: BLE001 - bad input must never stop the runtime
                self._warn("audio_thread", f"audio thread: {type(exc).__name__}: {exc}",
                           logging.ERROR)

    def _apply_inbox(self) -> None:
        audio, emotion, settings = self.inbox.take()
        if settings:
            try:
                self.engine.reconfigure(**settings)
            except (ValueError, TypeError) as exc:
                self._warn("settings", f"settings not applied: {exc}")
        if emotion is not None:
            name, intensity, transition, t = emotion
            try:
                self.engine.set_emotion(name, intensity, transition, t)
            except ValueError as exc:
                self._warn("emotion", f"emotion command ignored: {exc}")
        for samples, rate, playback_time, arrival in audio:
            try:
                result = self.engine.feed_audio(samples, rate, playback_time, arrival)
            except ValueError as exc:
                self._warn("audio_error", f"audio chunk dropped: {exc}", logging.ERROR)
                continue
            for w in result.warnings:
                self._warn("audio_warning_" + w[:12], f"audio: {w}")

    # --- frame thread -------------------------------------------------------------------------

    def _ahead_s(self) -> float:
        return float(np.median(self._work)) if self._work and self.config.render_ahead else 0.0

    def _frame_loop(self) -> None:
        period = 1.0 / self.config.fps
        next_tick = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_tick:
                self._stop.wait(next_tick - now)
                continue
            missed = int((now - next_tick) / period)
            if missed:  # the last frame overran: skip its ticks rather than rush
                self.dropped += missed
                next_tick += missed * period
            next_tick += period
            try:
                self._frame_once(missed > 0)
            except Exception as exc:  # noqa: BLE001 - a bad frame must not stop the loop
                if self._stop.is_set():
                    break
                self._warn("frame_error", f"frame failed: {type(exc).__name__}: {exc}",
                           logging.ERROR)

    def _frame_once(self, dropped: bool = False) -> None:
        t0 = time.perf_counter()
        level = self.quality.current
        t_show = max(self.clock() + self._ahead_s(), self._last_show + 1e-6)
        self._last_show = t_show
        rgb, state = self.engine.frame(t_show, render_size=(level.width, level.height),
                                       gaussians=level.gaussians,
                                       out_size=(self.config.width, self.config.height))
        self.frames += 1
        mono = time.monotonic()
        self._frame_times.append(mono)
        span = self._frame_times[-1] - self._frame_times[0]
        fps = (len(self._frame_times) - 1) / span if span > 0 else 0.0
        state.update(frame=self.frames, fps=round(fps, 2), dropped=self.dropped,
                     stalls=self.stalls, stalled=False, render_size=level.width,
                     quality={"level": self.quality.level, "levels": len(self.quality.levels),
                              "render_width": level.width, "render_height": level.height,
                              "gaussians": state.get("gaussians", level.gaussians),
                              "adaptive": self.quality.adaptive},
                     inbox_audio_s=round(self.inbox.audio_s, 3))
        self.publish(rgb, state)
        work = time.perf_counter() - t0
        self._work.append(work)
        self._last_frame_mono = time.monotonic()
        if self._stalled:
            self._stalled = False
            LOG.info("frames flowing again (frame %d)", self.frames)
        self.last_state = state
        msg = self.quality.update(work, mono, dropped)
        if msg:
            LOG.info(msg)

    def set_quality(self, adaptive: Optional[bool] = None, level: Optional[int] = None) -> None:
        """Pin or free the quality controller (run-time parameters)."""
        if level is not None:
            self.quality.pin(level)
        if adaptive is not None:
            self.quality.adaptive = bool(adaptive)

    # --- watchdog -----------------------------------------------------------------------------

    def _watchdog_loop(self) -> None:
        stall_s = max(self.config.stall_s, 3.0 / self.config.fps)
        started = time.monotonic()
        while not self._stop.wait(0.25):
            now = time.monotonic()
            last = self._last_frame_mono
            since = now - (last if last is not None else started)
            if since > stall_s and not self._stalled:
                self._stalled = True
                self.stalls += 1
                LOG.error("no frame for %.1f s (watchdog; stall %d). Threads:\n%s",
                          since, self.stalls, thread_stacks())
                if self.on_stall is not None:
                    try:
                        self.on_stall({**self.last_state, "stalled": True, "stalls": self.stalls,
                                       "seconds_without_frame": round(since, 2)})
                    except Exception as exc:  # noqa: BLE001 - reporting must not kill the dog
                        self._warn("on_stall", f"stall report failed: {exc}")
            times = list(self._frame_times)
            if len(times) > 2 and now - started > 5.0 and times[-1] - times[0] > 1.0:
                fps = (len(times) - 1) / (times[-1] - times[0])
                if fps < 0.5 * self.config.fps:
                    timings = self.last_state.get("timings_ms", {})
                    self._warn("slow", f"running at {fps:.1f} fps (set {self.config.fps:g}) at "
                               f"the lowest quality the controller allows; ms per stage: "
                               f"{timings}" if self.quality.level == len(self.quality.levels) - 1
                               else f"running at {fps:.1f} fps (set {self.config.fps:g}); "
                               f"lowering quality")
