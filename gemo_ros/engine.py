"""The ROS-free real-time engine: audio in, emotion commands in, face frames out.

::

    engine = Engine(EngineConfig(width=256, height=256))
    engine.feed_audio(samples, 16000)              # any time, any chunk size
    engine.set_emotion("happy", 0.7, 0.5)
    rgb, state = engine.frame(t)                   # uint8 [H, W, 3], dict

The engine keeps the clock: it joins the playback timeline (:mod:`gemo_ros.timeline`), the
behaviour layer (:mod:`gemo_ros.behaviour`) and a head that turns coefficients into pixels
(:class:`gemo_ros.pipeline_head.PipelineHead` over the method's stages, or the stand-ins of
:mod:`gemo_ros.fallback` when a stage is missing, said once in the log).

Threading: the engine lock guards only bookkeeping (timeline, emotion ramp, settings) and is
never held while a model runs. ``feed_audio``, ``set_emotion`` and ``reconfigure`` are
cheap; ``prepare_audio`` runs the audio model ahead of playback (the runtime's audio
thread); ``frame`` renders (the runtime's frame thread). Used alone (offline tools, tests),
``frame`` also feeds the audio model, only as far ahead as it needs.
"""

import logging
import math
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Deque, Dict, Optional, Tuple, Union

import numpy as np

from gemo_ros.behaviour import EmotionRamp, IdleBehaviour, IdleConfig
from gemo_ros.emotions import EMOTIONS, emotion_index
from gemo_ros.face.arkit import ARKIT_INDEX
from gemo_ros.framing import ROBOT_PANEL, RenderSettings, background_from_255
from gemo_ros.log_limiter import LogLimiter
from gemo_ros.timeline import AudioTimeline, TimelineConfig, Utterance

LOG = logging.getLogger(__name__)

#: Seconds of audio the engine keeps queued at most; beyond that, new audio is refused.
MAX_QUEUED_AUDIO_S = 300.0
#: Sample rates accepted by feed_audio (Hz).
MIN_RATE, MAX_RATE = 4000, 192000
JAW = ARKIT_INDEX["jawOpen"]
#: Audio fed to the model beyond what a frame needs (s): the next frames find it ready.
FEED_MARGIN_S = 0.25
#: The node's camera setting names -> :class:`RenderSettings` fields.
CAMERA_KEYS = {"camera_yaw_deg": "yaw_deg", "camera_pitch_deg": "pitch_deg",
               "camera_distance": "distance", "camera_fov_deg": "fov_deg"}


def camera_settings(camera: RenderSettings = ROBOT_PANEL, **changes: Any) -> RenderSettings:
    """Return ``camera`` with the node's camera settings applied.

    ``changes``: any of :data:`CAMERA_KEYS` (degrees, metres) and ``background`` (0-255
    RGB, the node's parameter). Raises ValueError on another name or a bad colour.
    """
    fields: Dict[str, Any] = {}
    for key, value in changes.items():
        if key == "background":
            fields["background"] = background_from_255(value)
        elif key in CAMERA_KEYS:
            fields[CAMERA_KEYS[key]] = float(value)
        else:
            raise ValueError(f"unknown camera setting {key!r}; valid: "
                             f"{', '.join(sorted(CAMERA_KEYS))}, background")
    return replace(camera, **fields) if fields else camera


@dataclass
class EngineConfig:
    """Engine settings (the node's parameters map onto these).

    Sizes in pixels, angles in degrees, times in seconds. ``camera``: the framing
    (:class:`gemo_ros.framing.RenderSettings`; its width and height are replaced by this
    config's, or by a quality rung's). ``reconfigure`` also takes the node's names
    ``camera_yaw_deg``, ``camera_pitch_deg``, ``camera_distance``, ``camera_fov_deg`` and
    ``background`` (0-255 RGB) for the camera's fields (:func:`camera_settings`).
    ``max_gaussians``: level of detail (-1 auto: all on CUDA, CPU_MAX_GAUSSIANS on CPU;
    0 all). ``threads``: torch CPU threads (0 = torch's default). ``compile``: the head
    step as a CUDA graph or ``torch.compile``'d: False/"off", True/"auto", "cudagraph",
    "reduce-overhead", "default" (:func:`gemo_ros.pipeline.compile_mode`); off until
    measured on a GPU.
    """

    width: int = 256
    height: int = 256
    device: str = "auto"
    avatar: str = "default"
    a2e: str = "default"
    residual: str = "default"
    camera: RenderSettings = ROBOT_PANEL
    lookahead_s: float = 0.12
    output_latency_s: float = 0.2
    gap_s: float = 0.3
    default_intensity: float = 0.7
    default_transition_s: float = 0.5
    emotion: str = "neutral"
    max_gaussians: int = -1
    threads: int = 0
    compile: Union[bool, str] = False
    idle: IdleConfig = field(default_factory=IdleConfig)

    def updated(self, **changes: Any) -> "EngineConfig":
        """Return a copy with ``changes`` applied (the node's camera names included).

        Camera settings (:data:`CAMERA_KEYS`, ``background`` 0-255) go into ``camera``;
        ``idle`` is not handled here. Raises ValueError on an unknown name.
        """
        camera = {k: changes.pop(k) for k in list(changes)
                  if k in CAMERA_KEYS or k == "background"}
        for key in changes:
            if key not in self.__dataclass_fields__:
                raise ValueError(f"unknown engine setting {key!r}")
        if camera:
            changes["camera"] = camera_settings(self.camera, **camera)
        return replace(self, **changes)

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
        from gemo_ros.pipeline import compile_mode

        compile_mode(self.compile, "cpu")  # a bad name raises here, not at start-up


@dataclass
class FeedResult:
    """What :meth:`Engine.feed_audio` did with a chunk (times in seconds)."""

    accepted_s: float = 0.0
    start: Optional[float] = None
    new_utterance: bool = False
    warnings: list = field(default_factory=list)


# --- the engine ----------------------------------------------------------------------------------

class _UtteranceAudio:
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
                utt.payload = _UtteranceAudio(self.head.new_stream)
            stream: _UtteranceAudio = utt.payload
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
            new = self.config.updated(**changes)
            new.validate()
            for key in new.__dataclass_fields__:
                if key != "idle":
                    setattr(self.config, key, getattr(new, key))
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
            stream.feed_until(self._feed_horizon(u), stop)

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
            stream.feed_until(self._feed_horizon(u))
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

    def _feed_horizon(self, u: float) -> float:
        """Utterance time up to which audio must be in the model for a frame at ``u``."""
        return u + self.config.lookahead_s + FEED_MARGIN_S

    def _warn(self, key: str, message: str) -> None:
        self._limit.log(LOG, key, message)

    @property
    def queued_utterances(self) -> Tuple[Utterance, ...]:
        """The utterances on the timeline (for inspection and tests)."""
        return self.timeline.utterances


def load_head(config: EngineConfig) -> Any:
    """Build the stage chain for ``config``, logging once which stages run and which are missing.

    Uses :class:`PipelineHead` (the method's stages through ``gemo_ros.pipeline``) when the
    avatar and renderer load; otherwise the :class:`FallbackHead` (said loudly in the log).
    """
    from gemo_ros.fallback import FallbackHead

    try:
        from gemo_ros.pipeline_head import PipelineHead

        return PipelineHead(config)
    except (ImportError, FileNotFoundError) as exc:
        LOG.warning("the Gaussian head could not be loaded (%s: %s): the jaw follows the "
                    "loudness of the audio and a flat schematic face is drawn instead",
                    type(exc).__name__, exc)
        return FallbackHead(config)
