"""The ROS-free real-time engine: audio in, emotion commands in, face frames out.

::

    engine = Engine(EngineConfig(width=256, height=256))
    engine.feed_audio(samples, 16000)              # any time, any chunk size
    engine.set_emotion("happy", 0.7, 0.5)
    rgb, state = engine.frame(t)                   # uint8 [H, W, 3], dict

The engine joins the playback timeline (:mod:`gemo_ros.timeline`), the behaviour layer
(:mod:`gemo_ros.behaviour`) and the method's stages (audio-to-expression, Gaussian avatar,
emotion residual, renderer; via :mod:`gemo_ros.pipeline`). It uses whichever stages are
installed and says once in the log which are missing and what replaces them:

* no audio-to-expression model -> the jaw follows the loudness of the audio;
* no avatar or renderer -> a flat schematic face drawn from the same coefficients.

Threading: ``feed_audio`` and ``set_emotion`` only queue work under a lock and return at
once; ``frame`` (one render thread) feeds the queued audio to the audio model, lazily and
only as far ahead as needed, so a 60-second message never stalls a frame for long.
"""

import logging
import math
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Deque, Dict, Optional, Tuple

import numpy as np

from gemo_ros.behaviour import EmotionRamp, IdleBehaviour, IdleConfig, IdleState, apply_idle
from gemo_ros.emotions import EMOTIONS, NEUTRAL, emotion_index
from gemo_ros.face.arkit import ARKIT_INDEX, NUM_ARKIT
from gemo_ros.timeline import AudioTimeline, TimelineConfig, Utterance

LOG = logging.getLogger(__name__)

#: Seconds of audio the engine keeps queued at most; beyond that, new audio is refused.
MAX_QUEUED_AUDIO_S = 300.0
#: Gaussians kept on a CPU when max_gaussians is -1 (auto); render time grows with the count.
CPU_MAX_GAUSSIANS = 12000
#: Sample rates accepted by feed_audio (Hz).
MIN_RATE, MAX_RATE = 4000, 192000
JAW = ARKIT_INDEX["jawOpen"]


class LogLimiter:
    """Let a log line of a given key through at most once per ``period_s``; count the rest."""

    def __init__(self, period_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self._clock = clock
        self._last: Dict[str, float] = {}
        self._suppressed: Dict[str, int] = {}

    def __call__(self, key: str) -> Optional[int]:
        """Return None to suppress, else the number of lines suppressed since the last one."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._suppressed.pop(key, 0)


@dataclass
class EngineConfig:
    """Engine settings (the node's parameters map onto these).

    Sizes in pixels, angles in degrees, times in seconds, colours as 0-255 RGB.
    ``max_gaussians``: level of detail (-1 auto: all on CUDA, CPU_MAX_GAUSSIANS on CPU;
    0 all). ``threads``: torch CPU threads (0 = torch's default).
    """

    width: int = 256
    height: int = 256
    device: str = "auto"
    avatar: str = "default"
    a2e: str = "default"
    residual: str = "default"
    camera_yaw_deg: float = 0.0
    camera_pitch_deg: float = 0.0
    camera_distance: float = 0.65
    camera_fov_deg: float = 22.0
    background: Tuple[int, int, int] = (18, 22, 30)
    lookahead_s: float = 0.12
    output_latency_s: float = 0.2
    gap_s: float = 0.3
    default_intensity: float = 0.7
    default_transition_s: float = 0.5
    emotion: str = "neutral"
    max_gaussians: int = -1
    threads: int = 0
    idle: IdleConfig = field(default_factory=IdleConfig)

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting."""
        if not (8 <= self.width <= 4096 and 8 <= self.height <= 4096):
            raise ValueError(f"image size must be 8..4096 px, got {self.width}x{self.height}")
        for name in ("lookahead_s", "output_latency_s", "gap_s", "default_transition_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        if not 0.0 <= self.default_intensity <= 1.0:
            raise ValueError(f"default_intensity must be in [0, 1], got {self.default_intensity}")
        emotion_index(self.emotion)


@dataclass
class FeedResult:
    """What :meth:`Engine.feed_audio` did with a chunk (times in seconds)."""

    accepted_s: float = 0.0
    start: Optional[float] = None
    new_utterance: bool = False
    warnings: list = field(default_factory=list)


# --- fallbacks for missing stages ----------------------------------------------------------------

class LoudnessStream:
    """Stand-in audio-to-expression stream: the jaw follows the loudness (RMS) of the audio.

    Same surface as ``StreamingA2E``: ``push``, ``reset``, ``final_until``,
    ``coefficients(t, emotion, intensity) -> [52]``, ``features(t, window) -> None``.
    """

    rate = 16000
    hop = 160  # 10 ms envelope frames

    def __init__(self, lookahead_s: float = 0.0) -> None:
        self.lookahead_s = lookahead_s
        self.reset()

    def reset(self) -> None:
        """Forget all audio."""
        self._env: list = []
        self._tail = np.zeros(0, dtype=np.float32)

    def push(self, samples: np.ndarray, rate: int) -> None:
        """Append mono samples at ``rate`` Hz (resampled linearly to 16 kHz)."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if rate != self.rate and x.size:
            n = int(round(x.size * self.rate / rate))
            x = np.interp(np.arange(n) * (rate / self.rate), np.arange(x.size), x)
        x = np.concatenate([self._tail, x.astype(np.float32)])
        n = x.size // self.hop
        if n:
            frames = x[: n * self.hop].reshape(n, self.hop)
            self._env.extend(np.sqrt((frames ** 2).mean(axis=1)).tolist())
        self._tail = x[n * self.hop:]

    @property
    def final_until(self) -> float:
        """Seconds of audio whose outputs are final."""
        return len(self._env) * self.hop / self.rate

    def coefficients(self, t: float, emotion: int = NEUTRAL,
                     intensity: float = 0.0) -> np.ndarray:
        """Return ARKit coefficients ``[52]``: jawOpen from the 30 ms RMS around ``t``."""
        out = np.zeros(NUM_ARKIT, dtype=np.float32)
        i = int(t * self.rate / self.hop)
        if self._env and i >= 0:
            lo, hi = max(i - 1, 0), min(i + 2, len(self._env))
            if lo < hi:
                rms = float(np.mean(self._env[lo:hi]))
                db = 20.0 * math.log10(max(rms, 1e-6))
                out[JAW] = min(max((db + 45.0) / 30.0, 0.0), 1.0) * 0.6
        return out

    def features(self, t: float, window: int) -> None:
        """Return None: no audio features without the model."""
        return None


def schematic_face(coeffs: np.ndarray, width: int, height: int,
                   background: Tuple[int, int, int], head_deg: Tuple[float, float, float],
                   emotion: int, intensity: float) -> np.ndarray:
    """Draw a flat face ``uint8 [H, W, 3]`` from ARKit coefficients (used without a renderer)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    s = min(width, height)
    cx = width / 2 + head_deg[0] / 30.0 * 0.15 * s
    cy = height / 2 - head_deg[1] / 30.0 * 0.15 * s
    u, v = (xs - cx) / s, (ys - cy) / s
    img = np.empty((height, width, 3), dtype=np.float32)
    img[:] = background
    skin = np.array([224, 178, 150], dtype=np.float32)
    img[(u / 0.34) ** 2 + (v / 0.44) ** 2 < 1.0] = skin
    c = coeffs
    for side, sx in (("Left", 0.13), ("Right", -0.13)):  # avatar's left on the image right
        blink = c[ARKIT_INDEX["eyeBlink" + side]]
        eh = 0.045 * (1.0 - 0.95 * blink)
        eye = ((u - sx) / 0.07) ** 2 + ((v + 0.08) / max(eh, 1e-3)) ** 2 < 1.0
        img[eye] = (250, 250, 250)
        gx = (c[ARKIT_INDEX["eyeLookOut" + side]] - c[ARKIT_INDEX["eyeLookIn" + side]])
        gx = gx if side == "Left" else -gx
        gy = c[ARKIT_INDEX["eyeLookDown" + side]] - c[ARKIT_INDEX["eyeLookUp" + side]]
        pupil = ((u - sx - 0.04 * gx) ** 2 + (v + 0.08 - 0.03 * gy) ** 2 < 0.022 ** 2) & eye
        img[pupil] = (40, 30, 25)
        brow_y = -0.17 - 0.04 * c[ARKIT_INDEX["browInnerUp"]] + 0.03 * c[
            ARKIT_INDEX["browDown" + side]]
        img[(np.abs(u - sx) < 0.07) & (np.abs(v - brow_y) < 0.012)] = (90, 60, 40)
    jaw = c[JAW]
    smile = 0.5 * (c[ARKIT_INDEX["mouthSmileLeft"]] + c[ARKIT_INDEX["mouthSmileRight"]])
    frown = 0.5 * (c[ARKIT_INDEX["mouthFrownLeft"]] + c[ARKIT_INDEX["mouthFrownRight"]])
    mouth_v = v - 0.2 + (smile - frown) * 0.25 * (u / 0.12) ** 2 * -1.0
    mouth = (np.abs(u) < 0.12) & (np.abs(mouth_v) < 0.01 + 0.09 * jaw)
    img[mouth] = (120, 40, 45)
    return img.astype(np.uint8)


# --- the engine ----------------------------------------------------------------------------------

class _Stream:
    """Per-utterance audio-model state: queued audio fed to the model on demand.

    The model stream is made on the first :meth:`feed_until` (it runs the model once), so
    queueing audio never waits for the model. One thread feeds; others only read ``model``.
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self.model: Any = None
        self.pending: Deque[Tuple[np.ndarray, int]] = deque()
        self.pushed_s = 0.0
        self.queued_s = 0.0
        self._feed_lock = threading.Lock()

    def feed_until(self, u: float, stop: Optional[threading.Event] = None) -> None:
        """Push queued audio to the model until utterance time ``u`` is covered."""
        with self._feed_lock:
            if self.model is None:
                self.model = self._factory()
            self._feed(u, stop)

    def _feed(self, u: float, stop: Optional[threading.Event]) -> None:
        while self.pending and self.pushed_s < u:
            if stop is not None and stop.is_set():
                return
            samples, rate = self.pending[0]
            room = u - self.pushed_s
            take = max(int(math.ceil(room * rate)), 1)
            # push long messages in slices of at most 0.2 s: a reader waits for one slice at most
            take = min(take, samples.size, max(int(0.2 * rate), 1))
            try:
                self.model.push(samples[:take], rate)
            except ValueError as exc:  # the model refused it: skip, keep the clock right
                LOG.warning("audio model refused %.2f s of audio (%s); played as silence",
                            take / rate, exc)
                self.model.push(np.zeros(take, np.float32), rate)
            self.pushed_s += take / rate
            if take >= samples.size:
                self.pending.popleft()
            else:
                self.pending[0] = (samples[take:], rate)


class Engine:
    """Audio + emotion commands in, face frames out; see the module docstring."""

    def __init__(self, config: Optional[EngineConfig] = None,
                 clock: Callable[[], float] = time.monotonic, head: Any = None) -> None:
        self.config = config or EngineConfig()
        self.config.validate()
        self.clock = clock
        self._lock = threading.Lock()
        self.timeline = AudioTimeline(TimelineConfig(
            output_latency_s=self.config.output_latency_s, gap_s=self.config.gap_s))
        self.ramp = EmotionRamp(self.config.emotion, self.config.default_intensity)
        self.idle = IdleBehaviour(self.config.idle)
        self._limit = LogLimiter(2.0)
        if self.config.threads > 0:
            import torch

            torch.set_num_threads(int(self.config.threads))
        self.head = head if head is not None else load_head(self.config)
        self.stages = dict(self.head.stages)
        self.device = getattr(self.head, "device", "cpu")
        #: True while a runtime's audio thread feeds the model (then frame() never does).
        self.audio_in_background = False

    # --- inputs (any thread, cheap) ---------------------------------------------------------

    def feed_audio(self, samples: np.ndarray, rate: float,
                   playback_time: Optional[float] = None,
                   arrival_time: Optional[float] = None) -> FeedResult:
        """Queue audio for playback-synchronised animation.

        Args:
            samples: ``[S]`` mono (or ``[S, C]``, averaged) float samples in [-1, 1].
            rate: sample rate in Hz (1 kHz .. 384 kHz).
            playback_time: playback time (s, engine clock) of the first sample, when known
                (stamped audio); None plays it as soon as the sink can (see timeline).
            arrival_time: when it was received (s, engine clock); default now.

        Returns a :class:`FeedResult`; problems that can be repaired (NaN/inf samples,
        clipping, too much queued audio) are listed in ``warnings``.

        Raises ValueError for input that cannot be used at all (bad rate, wrong shape).
        """
        result = FeedResult()
        if not (isinstance(rate, (int, float, np.integer, np.floating)) and math.isfinite(rate)
                and MIN_RATE <= rate <= MAX_RATE):
            raise ValueError(f"sample rate must be {MIN_RATE}..{MAX_RATE} Hz, got {rate!r}")
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1)
        if x.ndim != 1:
            raise ValueError(f"audio must be [S] or [S, C], got shape {list(x.shape)}")
        if x.size == 0:
            result.warnings.append("empty audio message ignored")
            return result
        bad = ~np.isfinite(x)
        if bad.any():
            x = np.where(bad, np.float32(0.0), x)
            result.warnings.append(f"{int(bad.sum())} NaN/inf samples replaced by silence")
        if np.abs(x).max() > 1.0:
            x = np.clip(x, -1.0, 1.0)
            result.warnings.append("samples outside [-1, 1] clipped")
        now = self.clock() if arrival_time is None else arrival_time
        rate = int(round(rate))
        with self._lock:
            room = MAX_QUEUED_AUDIO_S - self.timeline.queued_s(now)
            if x.size / rate > room:
                keep = max(int(room * rate), 0)
                result.warnings.append(
                    f"more than {MAX_QUEUED_AUDIO_S:.0f} s of audio queued; dropped the last "
                    f"{(x.size - keep) / rate:.1f} s of this message")
                x = x[:keep]
                if keep == 0:
                    return result
            place = self.timeline.place(x.size / rate, now, playback_time)
            utt = place.utterance
            if place.new:
                utt.payload = _Stream(self.head.new_stream)
            stream: _Stream = utt.payload
            if place.pad_s > 0.0:
                stream.pending.append((np.zeros(int(round(place.pad_s * rate)), np.float32),
                                       rate))
            stream.pending.append((x, rate))
            stream.queued_s += place.pad_s + x.size / rate
        result.accepted_s = x.size / rate
        result.start = place.start
        result.new_utterance = place.new
        return result

    def set_emotion(self, name: str, intensity: Optional[float] = None,
                    transition_s: Optional[float] = None, t: Optional[float] = None) -> None:
        """Command an emotion; the face ramps to it over ``transition_s``; last command wins.

        ``intensity`` in [0, 1] (clamped) and ``transition_s`` default to the config's
        ``default_intensity`` / ``default_transition_s``. Raises ValueError on unknown names
        (the message lists the valid ones).
        """
        intensity = self.config.default_intensity if intensity is None else float(intensity)
        trans = self.config.default_transition_s if transition_s is None else float(transition_s)
        with self._lock:
            self.ramp.set(name, intensity, trans, self.clock() if t is None else t)

    def reconfigure(self, **changes: Any) -> None:
        """Change settings at run time (camera, background, idle, emotion defaults, latency)."""
        with self._lock:
            idle_changes = changes.pop("idle", None)
            for key, value in changes.items():
                if not hasattr(self.config, key):
                    raise ValueError(f"unknown engine setting {key!r}")
                setattr(self.config, key, value)
            self.config.validate()
            self.timeline.config.output_latency_s = self.config.output_latency_s
            self.timeline.config.gap_s = self.config.gap_s
            if idle_changes:
                new_idle = IdleConfig(**{**asdict(self.idle.config), **idle_changes})
                self.idle.reconfigure(new_idle)
                self.config.idle = new_idle

    # --- output (one render thread) -----------------------------------------------------------

    def prepare_audio(self, t: float, stop: Optional[threading.Event] = None) -> None:
        """Run the audio model on queued audio up to what a frame at time ``t`` needs.

        The runtime's audio thread calls this ahead of playback so that :meth:`frame` finds
        the model's outputs ready; the engine lock is not held while the model runs.
        """
        with self._lock:
            todo = [(utt.payload, t - utt.t0) for utt in self.timeline.utterances
                    if utt.payload is not None and utt.t0 <= t + self.config.lookahead_s]
        for stream, u in todo:
            if stop is not None and stop.is_set():
                return
            stream.feed_until(u + self.config.lookahead_s + 0.25, stop)

    # --- output (one render thread) -----------------------------------------------------------

    def frame(self, t: Optional[float] = None, render_size: Optional[Tuple[int, int]] = None,
              gaussians: int = 0, out_size: Optional[Tuple[int, int]] = None
              ) -> Tuple[np.ndarray, Dict[str, Any]]:
        """Render the face shown at playback time ``t`` (s, engine clock; default now).

        ``render_size`` ``(w, h)`` renders at another size than the config's and
        ``out_size`` scales the image to that size (the runtime's quality controller);
        ``gaussians`` > 0 asks for that level of detail when the head has it ready.

        Returns ``(rgb uint8 [H, W, 3], state)``; ``state`` holds ``t``, ``emotion``,
        ``intensity`` (shown now), ``target_emotion``, ``target_intensity``, ``speaking``,
        ``mouth_open`` (jawOpen in [0, 1]), ``utterance``, ``utterance_time``, ``lag_s``
        (how far the expression lags the audio because the lookahead was not there yet),
        ``latency_s`` (now minus the arrival of the audio shown; None when silent),
        ``gaussians`` rendered and ``timings_ms`` per stage.
        """
        t = self.clock() if t is None else float(t)
        t_start = time.perf_counter()
        with self._lock:
            for old in self.timeline.prune(t):
                old.payload = None
            utt, u = self.timeline.at(t)
            if utt is not None:
                utt.forget_arrivals_before(u - 10.0)  # bounded memory in endless speech
            speaking = utt is not None and 0.0 <= u < utt.duration_s
            emotion, intensity = self.ramp.at(t)
            target = self.ramp.target
            idle = self.idle.at(t, speaking)
            cfg = self.config
            stream = utt.payload if utt is not None else None
            arrival = utt.arrival_of(u) if (utt is not None and speaking) else None
            now_arrival = utt.last_arrival if utt is not None else None
        t_push = time.perf_counter()
        if stream is not None and not self.audio_in_background:
            stream.feed_until(u + cfg.lookahead_s + 0.25)
        push_ms = (time.perf_counter() - t_push) * 1e3
        if stream is not None and stream.model is None:
            stream = None  # the audio thread has not reached this utterance yet
        lag = 0.0
        u_shown = u
        if stream is not None and speaking:
            final = stream.model.final_until
            # More audio of this utterance is still arriving (a live stream) and what came so
            # far does not reach t + lookahead: the model's output for t is not final yet.
            # Show the last final output (the audio at t minus the lookahead) and say so.
            # A finished utterance (nothing arrived for gap_s) is exact as it is.
            live = now_arrival is not None and (self.clock() - now_arrival) < cfg.gap_s
            if live and final < u and stream.queued_s < u + cfg.lookahead_s:
                lag = u - max(final, 0.0)
                u_shown = max(final, 0.0)
                self._warn("lookahead", f"audio arrives too late for the model lookahead: the "
                           f"face shows the audio of {lag * 1e3:.0f} ms ago; set "
                           f"audio.output_latency_s >= lookahead ({cfg.lookahead_s * 1e3:.0f} "
                           f"ms) or publish audio earlier")
        try:
            rgb, coeffs, timings = self.head.render(
                stream.model if stream is not None else None, u_shown, emotion, intensity,
                idle, cfg, size=render_size, out_size=out_size, gaussians=gaussians)
        except (ValueError, RuntimeError) as exc:
            if stream is None:
                raise
            # a stage failed on this audio: show the idle face rather than no face
            self._warn("stage_error", f"frame at t={t:.3f} s failed on the audio "
                       f"({type(exc).__name__}: {exc}); showing the idle face")
            rgb, coeffs, timings = self.head.render(None, 0.0, emotion, intensity, idle, cfg,
                                                    size=render_size, out_size=out_size,
                                                    gaussians=gaussians)
        timings["audio_push"] = push_ms
        timings["engine_total"] = (time.perf_counter() - t_start) * 1e3
        now = self.clock()
        state = {
            "t": t,
            "emotion": EMOTIONS[emotion] if intensity > 0.0 else "neutral",
            "intensity": round(float(intensity), 4),
            "target_emotion": target[0],
            "target_intensity": round(float(target[1]), 4),
            "speaking": bool(speaking),
            "mouth_open": round(float(coeffs[JAW]), 4),
            "blink": round(float(idle.blink), 3),
            "utterance": utt.uid if utt is not None else None,
            "utterance_time": round(float(u), 4) if utt is not None else None,
            "lag_s": round(lag, 4),
            "latency_s": (round(now - arrival, 4) if arrival is not None else None),
            "audio_arrival": arrival,
            "gaussians": int(timings.pop("gaussians", 0)),
            "timings_ms": {k: round(v, 2) for k, v in timings.items()},
        }
        return rgb, state

    def _warn(self, key: str, message: str) -> None:
        skipped = self._limit(key)
        if skipped is not None:
            LOG.warning(message + (f" ({skipped} similar suppressed)" if skipped else ""))

    @property
    def queued_utterances(self) -> Tuple[Utterance, ...]:
        """The utterances on the timeline (for inspection and tests)."""
        return self.timeline.utterances


# --- stages --------------------------------------------------------------------------------------

class FallbackHead:
    """The loudness-driven jaw and the schematic face: runs with no trained stage at all."""

    device = "cpu"

    def __init__(self, config: EngineConfig, stages: Optional[Dict[str, str]] = None) -> None:
        self.stages = stages or {"a2e": "missing", "avatar": "missing",
                                 "residual": "missing", "render": "missing"}
        self.lookahead_s = config.lookahead_s

    def new_stream(self) -> LoudnessStream:
        """Return a fresh per-utterance audio stream."""
        return LoudnessStream(self.lookahead_s)

    def render(self, stream: Any, u: float, emotion: int, intensity: float, idle: IdleState,
               cfg: EngineConfig, size: Optional[Tuple[int, int]] = None,
               out_size: Optional[Tuple[int, int]] = None, gaussians: int = 0
               ) -> Tuple[np.ndarray, np.ndarray, Dict[str, float]]:
        """Return ``(rgb, coeffs[52], timings_ms)`` for utterance time ``u``.

        The flat face is cheap: it is drawn at ``out_size`` (or ``size``, or the config's).
        """
        t0 = time.perf_counter()
        coeffs = (stream.coefficients(u, emotion, intensity) if stream is not None
                  else np.zeros(NUM_ARKIT, np.float32))
        try:
            from gemo_ros.face.emotion_recipes import combine_with_speech

            coeffs = np.asarray(combine_with_speech(coeffs[None], emotion, intensity)[0],
                                np.float32)
        except ImportError:
            pass
        coeffs = apply_idle(coeffs, idle)
        t1 = time.perf_counter()
        w, h = out_size or size or (cfg.width, cfg.height)
        rgb = schematic_face(coeffs, w, h, cfg.background, idle.head_deg, emotion, intensity)
        t2 = time.perf_counter()
        return rgb, coeffs, {"audio_model": (t1 - t0) * 1e3, "render": (t2 - t1) * 1e3}


def load_stage_avatar(name: str, max_gaussians: int, device: str) -> Any:
    """Load the avatar by name or path and apply the level of detail for ``device``."""
    from gemo_ros.avatar import level_of_detail, load_avatar

    avatar = load_avatar(name)
    if max_gaussians < 0:  # auto: the full avatar on a GPU, CPU_MAX_GAUSSIANS on a CPU
        max_gaussians = 0 if str(device).startswith("cuda") else CPU_MAX_GAUSSIANS
    if 0 < max_gaussians < avatar.num_gaussians:
        LOG.info("level of detail: %d of the avatar's %d Gaussians on %s (max_gaussians)",
                 max_gaussians, avatar.num_gaussians, device)
        avatar = level_of_detail(avatar, max_gaussians)
    return avatar


def _optional_stage(kind: str, name: str) -> Any:
    """Load the a2e model or the residual; None when disabled or the default is missing."""
    if str(name).strip().lower() in ("", "none"):
        LOG.info("%s disabled by configuration", kind)
        return None
    try:
        if kind == "a2e":
            from gemo_ros.audio import load_a2e

            return load_a2e(name)
        from gemo_ros.avatar.residual import load_residual

        return load_residual(name)
    except (FileNotFoundError, ImportError, ValueError) as exc:
        if str(name) != "default":
            raise
        LOG.warning("%s stage missing: the shipped default cannot be loaded (%s)", kind, exc)
        return None


def resolve_device(device: str) -> str:
    """Map ``auto`` to ``cuda`` when a CUDA device is usable, else ``cpu``; check others."""
    import torch

    device = str(device).strip().lower() or "auto"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use auto/cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return device


class PipelineHead:
    """The method's stages through :class:`gemo_ros.pipeline.TalkingHead`.

    Per frame: ``psi_n`` / ``psi_e`` from the utterance's streaming audio model (or from a
    silent stream while idle), blinks and gaze overlaid on both (so the emotion
    displacement is unchanged), the neck pose from idle life, then avatar + residual +
    render. A stage whose weights are missing is replaced (loudness jaw without the audio
    model, blendshape-only emotions without the residual) and said once in the log.
    """

    def __init__(self, config: EngineConfig) -> None:
        from gemo_ros.pipeline import RenderSettings, TalkingHead

        self.device = resolve_device(config.device)
        t0 = time.perf_counter()
        avatar = load_stage_avatar(config.avatar, config.max_gaussians, self.device)
        a2e = _optional_stage("a2e", config.a2e)
        residual = _optional_stage("residual", config.residual)
        self.head = TalkingHead(avatar, a2e, residual, settings=RenderSettings(),
                                device=self.device)
        self._config = config
        self._lods: Dict[int, Any] = {}       # Gaussians -> TalkingHead, built in background
        self._lod_lock = threading.Lock()
        self._settings_cls = RenderSettings
        self.lookahead_s = config.lookahead_s
        backend = _render_backend(self.device)
        self.backend = backend
        from gemo_ros.render import warm_up

        warm_up(backend)
        n = int(self.head.canonical.shape[0])
        self.stages = {
            "a2e": ("trained model, lookahead %.0f ms" % (1e3 * self._lookahead())
                    if self.head.a2e is not None else "missing (jaw follows loudness)"),
            "avatar": f"{config.avatar} ({n} Gaussians)",
            "residual": (str(config.residual) if self.head.residual is not None
                         else "missing (emotions by blendshapes only)"),
            "render": f"{backend} on {self.device}",
        }
        LOG.info("stages loaded in %.1f s on %s: %s", time.perf_counter() - t0, self.device,
                 ", ".join(f"{k}={v}" for k, v in self.stages.items()))
        self._silence = self.new_stream()
        self._silence.push(np.zeros(16000, np.float32), 16000)
        self._silence_t = 0.5

    def _lookahead(self) -> float:
        from gemo_ros.audio import StreamingA2E

        return StreamingA2E(self.head.a2e, max(self.lookahead_s, 1e-3)).lookahead_s

    def new_stream(self) -> Any:
        """Return a fresh per-utterance streaming audio model."""
        if self.head.a2e is None:
            return LoudnessStream(self.lookahead_s)
        from gemo_ros.audio import StreamingA2E

        return StreamingA2E(self.head.a2e, max(self.lookahead_s, 1e-3))

    def _coefficients(self, stream: Any, u: float, emotion: int, intensity: float
                      ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        if stream is None:
            stream, u = self._silence, self._silence_t
        psi_n = stream.coefficients(u, NEUTRAL, 0.0)
        if isinstance(stream, LoudnessStream):
            from gemo_ros.face.emotion_recipes import combine_with_speech

            psi_e = combine_with_speech(psi_n[None], emotion, float(intensity))[0]
            return psi_n, np.asarray(psi_e, np.float32), None
        psi_e = (stream.coefficients(u, emotion, intensity)
                 if emotion != NEUTRAL and intensity > 0.0 else psi_n)
        feats = (stream.features(u, self.head.window) if self.head.residual is not None
                 else None)
        return psi_n, psi_e, feats

    @property
    def num_gaussians(self) -> int:
        """Gaussians of the main level of detail."""
        return int(self.head.canonical.shape[0])

    def prepare_lod(self, gaussians: int) -> None:
        """Build a coarser level of detail in a background thread (binding takes ~1 s)."""
        if not 0 < gaussians < self.num_gaussians:
            return
        with self._lod_lock:
            if gaussians in self._lods:
                return
            self._lods[gaussians] = None  # building
        threading.Thread(target=self._build_lod, args=(gaussians,), name="gemo-lod",
                         daemon=True).start()

    def _build_lod(self, gaussians: int) -> None:
        from gemo_ros.pipeline import TalkingHead

        try:
            t0 = time.perf_counter()
            avatar = load_stage_avatar(self._config.avatar, gaussians, self.device)
            head = TalkingHead(avatar, self.head.a2e, self.head.residual,
                               settings=self.head.settings, device=self.device)
            with self._lod_lock:
                self._lods[gaussians] = head
            LOG.info("level of detail with %d Gaussians ready (%.1f s)", gaussians,
                     time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - the main level keeps running
            LOG.warning("level of detail with %d Gaussians failed: %s", gaussians, exc)

    def _head_for(self, gaussians: int) -> Any:
        if gaussians <= 0:
            return self.head
        with self._lod_lock:
            head = self._lods.get(gaussians)
        if head is None:
            self.prepare_lod(gaussians)
            return self.head
        return head

    def render(self, stream: Any, u: float, emotion: int, intensity: float, idle: IdleState,
               cfg: EngineConfig, size: Optional[Tuple[int, int]] = None,
               out_size: Optional[Tuple[int, int]] = None, gaussians: int = 0
               ) -> Tuple[np.ndarray, np.ndarray, Dict[str, float]]:
        """Return ``(rgb uint8 [H, W, 3], psi_e [52] shown, timings_ms)``.

        ``size`` renders at another size than ``cfg``'s; ``out_size`` scales the image
        (bilinear) to that size; ``gaussians`` picks a coarser level of detail once built.
        """
        t0 = time.perf_counter()
        psi_n, psi_e, feats = self._coefficients(stream, max(u, 0.0), emotion, intensity)
        psi_n = apply_idle(psi_n, idle)
        psi_e = apply_idle(psi_e, idle)
        t1 = time.perf_counter()
        width, height = size or (cfg.width, cfg.height)
        head = self._head_for(gaussians)
        settings = self._settings_cls(
            width=width, height=height, yaw_deg=cfg.camera_yaw_deg,
            pitch_deg=cfg.camera_pitch_deg, distance=cfg.camera_distance,
            fov_deg=cfg.camera_fov_deg, background=tuple(c / 255.0 for c in cfg.background))
        # The residual is exactly zero for neutral or intensity 0 (by construction), so the
        # neutral head is rendered without computing it (saves two mesh posings per frame).
        emotional = emotion != NEUTRAL and intensity > 0.0
        frame = head.frame(psi_n, psi_e, feats, emotion, intensity,
                           idle.neck_rotation(), settings=settings, use_residual=emotional)
        t2 = time.perf_counter()
        if out_size is not None and tuple(out_size) != (width, height):
            rgb = _resize_uint8(frame.image, out_size)
        else:
            rgb = frame.to_uint8()
        t3 = time.perf_counter()
        timings = {"audio_model": (t1 - t0) * 1e3}
        timings.update({k: float(v) for k, v in frame.timings_ms.items()})
        timings["to_uint8"] = (t3 - t2) * 1e3
        timings["gaussians"] = float(head.canonical.shape[0])
        return rgb, psi_e, timings


def _resize_uint8(rgb: Any, out_size: Tuple[int, int]) -> np.ndarray:
    """Scale a float ``[H, W, 3]`` image in [0, 1] to ``out_size`` (w, h), bilinear, uint8."""
    import torch

    x = rgb.permute(2, 0, 1)[None].float()
    y = torch.nn.functional.interpolate(x, size=(int(out_size[1]), int(out_size[0])),
                                        mode="bilinear", align_corners=False)
    return (y[0].permute(1, 2, 0).clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()


def _render_backend(device: str) -> str:
    """Name the rasterizer ``backend="auto"`` picks for ``device`` (for the start-up log)."""
    import torch

    try:
        from gemo_ros.render import _choose_backend

        return _choose_backend("auto", torch.device(device))
    except Exception:  # noqa: BLE001 - only a label; the renderer decides when it runs
        return "gsplat" if str(device).startswith("cuda") else "torch"


def load_head(config: EngineConfig) -> Any:
    """Build the stage chain for ``config``, logging once which stages run and which are missing.

    Uses :class:`PipelineHead` (the method's stages through ``gemo_ros.pipeline``) when the
    avatar and renderer load; otherwise the :class:`FallbackHead` (said loudly in the log).
    """
    try:
        return PipelineHead(config)
    except (ImportError, FileNotFoundError) as exc:
        LOG.warning("the Gaussian head could not be loaded (%s: %s): the jaw follows the "
                    "loudness of the audio and a flat schematic face is drawn instead",
                    type(exc).__name__, exc)
        return FallbackHead(config)
