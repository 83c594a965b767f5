"""The ``avatar_node``: a thin rclpy node over :class:`gemo_ros.engine.Engine`.

Topics (relative names, so a namespace moves them all):

* sub ``audio`` (audio_common_msgs/AudioData), ``audio_info`` (AudioInfo),
  ``audio_stamped`` (AudioDataStamped), ``emotion`` (std_msgs/String) — reliable QoS;
* sub ``expression_topic`` (hri_msgs/Expression, ROS4HRI; default ``/robot_face/expression``)
  where hri_msgs is installed;
* pub ``face/image`` (sensor_msgs/Image rgb8, sensor-data QoS), optional
  ``face/image/compressed`` (JPEG), ``face/state`` (std_msgs/String JSON).

The node is thin: subscription callbacks decode a message and put it in the runtime's
bounded inbox, then return; the runtime's own threads (:mod:`gemo_ros.runtime`) run the
audio model, the head and the renderer at ``fps``, and hand each frame back here to be
published. One single-threaded executor serves the callbacks and parameter services (none
of them waits for anything), so Ctrl-C is always seen at once. Bad input is logged (one
line per kind of problem per few seconds) and never stops the frames. docs/node.md says why.
"""

import functools
import gc
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import rclpy
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from gemo_ros import ros_io
from gemo_ros.behaviour import IdleConfig
from gemo_ros.emotions import parse_emotion_command
from gemo_ros.engine import Engine, EngineConfig, camera_settings
from gemo_ros.log_limiter import LogLimiter
from gemo_ros.stages import CPU_MAX_GAUSSIANS
from gemo_ros.runtime import Runtime, RuntimeConfig

NODE_NAME = "avatar_node"
#: Published image size when ``width``/``height`` are 0 (auto).
CPU_SIZE, GPU_SIZE = 256, 512

_IDLE = IdleConfig()
_ENG = EngineConfig()


def _p(default: Any, description: str, lo: Optional[float] = None, hi: Optional[float] = None,
       read_only: bool = False, step: Optional[float] = None) -> Dict[str, Any]:
    return {"default": default, "description": description, "range": (lo, hi),
            "read_only": read_only, "step": step}


#: Every parameter of the node: name -> default, description, range, read-only.
#: config/avatar.yaml lists the same names (a test keeps them in step).
PARAMETERS: Dict[str, Dict[str, Any]] = {
    "device": _p("auto", "compute device: auto (CUDA+gsplat when present, else CPU), "
                 "cpu, cuda, cuda:N", read_only=True),
    "avatar": _p("default", "Gaussian avatar: 'default', 'toon' or a path", read_only=True),
    "a2e_model": _p("default", "audio-to-expression model: 'default' or a path",
                    read_only=True),
    "residual_model": _p("default", "emotion residual weights: 'default', a path or 'none'",
                         read_only=True),
    "max_gaussians": _p(-1, "level of detail: most Gaussians rendered; -1 = auto (all on a GPU, "
                        "12000 on a CPU), 0 = all", -1, 10_000_000, read_only=True, step=1),
    "threads": _p(0, "torch CPU threads; 0 = torch's default (all cores)", 0, 256,
                  read_only=True, step=1),
    "gpu.compile": _p("off", "the head step on a GPU: off, auto, cudagraph, reduce-overhead or "
                      "default (torch.compile); off until measured (bench/gpu_check.sh)",
                      read_only=True),
    "width": _p(0, "published image width in px; 0 = auto (512 on a GPU, 256 on a CPU)",
                0, 4096, read_only=True, step=1),
    "height": _p(0, "image height in px; 0 = same as width", 0, 4096, read_only=True, step=1),
    "fps": _p(25.0, "frames per second published", 1.0, 120.0, read_only=True),
    "quality.adaptive": _p(True, "lower/raise the render size (then the level of detail) at run "
                           "time to hold fps; false pins quality.level"),
    "quality.level": _p(0, "quality rung to start at / pin: 0 = render at the published size, "
                        "each step 1/8 smaller", 0, 16, step=1),
    "quality.min_render_size": _p(96, "smallest render size (px, shorter side) the adaptive "
                                  "quality may use; the image is scaled to width x height",
                                  8, 4096, read_only=True, step=1),
    "quality.low_gaussians": _p(-1, "Gaussians of the last quality rung; -1 = auto (half the "
                                "level of detail on a CPU, no such rung on a GPU), 0 = none",
                                -1, 10_000_000, read_only=True, step=1),
    "watchdog.stall_s": _p(1.0, "seconds without a frame before the watchdog reports a stall",
                           0.2, 60.0, read_only=True),
    "frame_id": _p("face", "frame_id of the published images"),
    "publish_compressed": _p(False, "also publish face/image/compressed (JPEG)",
                             read_only=True),
    "jpeg_quality": _p(85, "JPEG quality of face/image/compressed", 1, 100, step=1),
    "render_ahead": _p(True, "render each frame for the time it will be published at "
                       "(now + measured render time) rather than for now"),
    "camera.yaw_deg": _p(0.0, "camera yaw around the head (deg); + sees the avatar's left "
                         "cheek", -90.0, 90.0),
    "camera.pitch_deg": _p(0.0, "camera pitch (deg); + looks down from above", -60.0, 60.0),
    "camera.distance": _p(_ENG.camera.distance, "camera distance from the head centre (m)",
                          0.2, 3.0),
    "camera.fov_deg": _p(_ENG.camera.fov_deg, "vertical field of view (deg)", 5.0, 120.0),
    "background": _p(list(_ENG.camera.background_255()), "background colour [r, g, b], 0-255"),
    "audio.sample_rate": _p(16000, "sample rate of /audio in Hz (audio_info overrides)",
                            4000, 192000, step=1),
    "audio.channels": _p(1, "interleaved channels of /audio (audio_info overrides)", 1, 32,
                         step=1),
    "audio.sample_format": _p("S16LE", "S16LE, S32LE, F32LE or U8 (audio_info overrides)"),
    "audio.coding_format": _p("wave", "only raw PCM ('wave') is decoded"),
    "audio.lookahead_s": _p(_ENG.lookahead_s, "audio-model lookahead (s): an output is final "
                            "once audio this far past it has arrived", 0.0, 1.0,
                            read_only=True),
    "audio.output_latency_s": _p(_ENG.output_latency_s, "delay (s) from the arrival of "
                                 "unstamped audio to its playback by the loudspeaker; keep it "
                                 ">= lookahead_s", 0.0, 5.0),
    "audio.gap_s": _p(_ENG.gap_s, "a playback pause longer than this (s) ends an utterance",
                      0.05, 10.0),
    "emotion.initial": _p("neutral", "emotion at start-up", read_only=True),
    "emotion.default_intensity": _p(_ENG.default_intensity, "intensity used when a command "
                                    "gives none", 0.0, 1.0),
    "emotion.default_transition_s": _p(_ENG.default_transition_s, "ramp time (s) used when "
                                       "a command gives none", 0.0, 10.0),
    "expression_topic": _p("/robot_face/expression", "ROS4HRI hri_msgs/Expression input "
                           "(mapped to an emotion and intensity); '' = none", read_only=True),
    "idle.enabled": _p(_IDLE.enabled, "idle life: blinks, gaze saccades, breathing, head motion"),
    "idle.seed": _p(_IDLE.seed, "random seed of the idle behaviour", 0, 2 ** 31 - 1, step=1),
    "idle.blink_interval_s": _p(_IDLE.blink_interval_s, "mean time between blinks (s)",
                                0.5, 30.0),
    "idle.blink_duration_s": _p(_IDLE.blink_duration_s, "duration of one blink (s)",
                                0.05, 1.0),
    "idle.double_blink_prob": _p(_IDLE.double_blink_prob, "probability of a double blink",
                                 0.0, 1.0),
    "idle.saccade_interval_s": _p(_IDLE.saccade_interval_s, "mean time between gaze shifts (s)",
                                  0.2, 30.0),
    "idle.saccade_amplitude_deg": _p(_IDLE.saccade_amplitude_deg, "typical gaze shift (deg)",
                                     0.0, 20.0),
    "idle.breathing_rate_hz": _p(_IDLE.breathing_rate_hz, "breaths per second", 0.0, 1.0),
    "idle.breathing_amplitude_deg": _p(_IDLE.breathing_amplitude_deg, "head pitch of a breath "
                                       "(deg)", 0.0, 5.0),
    "idle.head_motion_deg": _p(_IDLE.head_motion_deg, "amplitude of the slow head motion (deg)",
                               0.0, 15.0),
    "idle.head_motion_hz": _p(_IDLE.head_motion_hz, "typical frequency of the head motion (Hz)",
                              0.0, 1.0),
    "idle.speaking_head_gain": _p(_IDLE.speaking_head_gain, "head-motion gain while speaking",
                                  0.0, 5.0),
}

#: node parameter -> engine setting, for the ones changeable at run time
_ENGINE_KEYS = {
    "camera.yaw_deg": "camera_yaw_deg", "camera.pitch_deg": "camera_pitch_deg",
    "camera.distance": "camera_distance", "camera.fov_deg": "camera_fov_deg",
    "audio.output_latency_s": "output_latency_s", "audio.gap_s": "gap_s",
    "emotion.default_intensity": "default_intensity",
    "emotion.default_transition_s": "default_transition_s",
}


def _guarded(callback: Callable[..., None]) -> Callable[..., None]:
    """Wrap a subscription callback so that no exception ever reaches the executor."""
    @functools.wraps(callback)
    def wrapper(self: "AvatarNode", msg: Any, *info: Any) -> None:
        try:
            callback(self, msg, *info)
        except Exception as exc:  # noqa: BLE001 - bad input must never stop the node
            self._warn("callback:" + callback.__name__,
                       f"{callback.__name__} failed on a message: {type(exc).__name__}: {exc}",
                       error=True)
    return wrapper


def _with_info(handler: Callable[..., None]) -> Callable[..., None]:
    """Let rclpy pass MessageInfo (send/receive stamps) where it can (Iron and later)."""
    import rclpy.subscription as sub

    if hasattr(sub, "MessageInfo"):
        return lambda msg, info: handler(msg, info)
    return lambda msg: handler(msg)


def _descriptor(name: str, spec: Dict[str, Any]) -> ParameterDescriptor:
    desc = ParameterDescriptor(description=spec["description"], read_only=spec["read_only"])
    lo, hi = spec["range"]
    if lo is not None:
        if isinstance(spec["default"], int) and not isinstance(spec["default"], bool):
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
        else:
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo),
                                                            to_value=float(hi), step=0.0)]
    return desc


class AvatarNode(Node):
    """Subscribes to audio and emotion commands, publishes the rendered face."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for name, spec in PARAMETERS.items():
            self.declare_parameter(name, spec["default"], _descriptor(name, spec))
        self._limit = LogLimiter(3.0)
        self._audio_lock = threading.Lock()
        self._audio_format = self._format_from_params()
        self._info_format: Optional[Tuple[int, int, str]] = None
        self._coding_ok = True
        self.engine = self._make_engine()
        self._fps = float(self._param("fps"))

        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        from audio_common_msgs.msg import AudioData, AudioDataStamped, AudioInfo
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import String

        self._String = String
        self.create_subscription(AudioData, "audio", _with_info(self._on_audio), reliable)
        self.create_subscription(AudioDataStamped, "audio_stamped",
                                 _with_info(self._on_audio_stamped), reliable)
        self.create_subscription(AudioInfo, "audio_info", self._on_audio_info,
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.create_subscription(String, "emotion", self._on_emotion, reliable)
        self._pub_image = self.create_publisher(Image, "face/image", qos_profile_sensor_data)
        self._pub_jpeg = (self.create_publisher(CompressedImage, "face/image/compressed",
                                                qos_profile_sensor_data)
                          if self._param("publish_compressed") else None)
        self._pub_state = self.create_publisher(String, "face/state", 10)
        self._subscribe_expression(reliable)

        self.runtime = self._make_runtime()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if hasattr(self, "add_post_set_parameters_callback"):  # Iron and later
            self.add_post_set_parameters_callback(self._post_set_parameters)
        else:  # Humble: apply in on-set, after the whole batch was checked
            self.add_on_set_parameters_callback(self._apply_in_on_set)
        cfg = self.runtime.config
        missing = [k for k, v in self.engine.stages.items() if str(v).startswith("missing")]
        ladder = self.runtime.quality.levels
        self.get_logger().info(
            f"publishing {cfg.width}x{cfg.height} rgb8 at {self._fps:g} fps on "
            f"{self.resolve_topic_name('face/image')}; device {self.engine.device}; quality "
            f"{'adaptive' if cfg.adaptive else 'pinned'}, render {ladder[-1].width}-"
            f"{ladder[0].width} px; images via "
            f"{'cv_bridge' if ros_io.cv_bridge() is not None else 'numpy'}; stages "
            + ", ".join(f"{k}={v}" for k, v in self.engine.stages.items())
            + (f"; MISSING: {', '.join(missing)}" if missing else ""))
        self.runtime.start()

    # --- set-up -------------------------------------------------------------------------------

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _format_from_params(self) -> Tuple[int, int, str]:
        fmt = ros_io.normalise_sample_format(self._param("audio.sample_format"))
        ros_io.check_coding_format(self._param("audio.coding_format"))
        return int(self._param("audio.sample_rate")), int(self._param("audio.channels")), fmt

    def _idle_config(self) -> IdleConfig:
        return IdleConfig(**{k: self._param("idle." + k) for k in asdict(_IDLE)})

    def _make_engine(self) -> Engine:
        w = int(self._param("width"))
        h = int(self._param("height")) or w
        cfg = EngineConfig(
            width=w or 256, height=h or w or 256, device=self._param("device"),
            avatar=self._param("avatar"), a2e=self._param("a2e_model"),
            residual=self._param("residual_model"),
            max_gaussians=int(self._param("max_gaussians")), threads=int(self._param("threads")),
            compile=str(self._param("gpu.compile")),
            camera=camera_settings(camera_yaw_deg=self._param("camera.yaw_deg"),
                                   camera_pitch_deg=self._param("camera.pitch_deg"),
                                   camera_distance=self._param("camera.distance"),
                                   camera_fov_deg=self._param("camera.fov_deg"),
                                   background=list(self._param("background"))),
            lookahead_s=self._param("audio.lookahead_s"),
            output_latency_s=self._param("audio.output_latency_s"),
            gap_s=self._param("audio.gap_s"),
            default_intensity=self._param("emotion.default_intensity"),
            default_transition_s=self._param("emotion.default_transition_s"),
            emotion=self._param("emotion.initial"), idle=self._idle_config())
        engine = Engine(cfg, clock=self._now)
        if cfg.lookahead_s > cfg.output_latency_s:
            self.get_logger().warning(
                f"audio.output_latency_s ({cfg.output_latency_s} s) < audio.lookahead_s "
                f"({cfg.lookahead_s} s): the face will lag unstamped audio by the difference")
        return engine

    def _make_runtime(self) -> Runtime:
        """Size the output (auto: 512 on a GPU, 256 on a CPU) and build the runtime."""
        gpu = str(self.engine.device).startswith("cuda")
        w = int(self._param("width")) or (GPU_SIZE if gpu else CPU_SIZE)
        h = int(self._param("height")) or w
        low = int(self._param("quality.low_gaussians"))
        if low < 0:  # auto: half the CPU level of detail; a GPU renders everything
            n = int(getattr(self.engine.head, "num_gaussians", 0) or 0)
            low = 0 if gpu else min(n, CPU_MAX_GAUSSIANS) // 2
        self.engine.reconfigure(width=w, height=h)
        config = RuntimeConfig(fps=self._fps, width=w, height=h,
                               adaptive=bool(self._param("quality.adaptive")),
                               quality_level=int(self._param("quality.level")),
                               min_render_size=int(self._param("quality.min_render_size")),
                               render_ahead=bool(self._param("render_ahead")),
                               stall_s=float(self._param("watchdog.stall_s")))
        runtime = Runtime(self.engine, config, self._publish_frame,
                          on_stall=self._publish_stall, low_gaussians=low)
        if low and hasattr(self.engine.head, "prepare_lod"):
            self.engine.head.prepare_lod(low)  # built in the background, used when needed
        self.engine.audio_in_background = True
        return runtime

    def _subscribe_expression(self, qos: QoSProfile) -> None:
        """Subscribe to ROS4HRI expressions where hri_msgs is installed (one log line if not)."""
        topic = str(self._param("expression_topic")).strip()
        if not topic:
            return
        try:
            from hri_msgs.msg import Expression
        except ImportError:
            self.get_logger().info(
                f"hri_msgs is not installed: not subscribed to ROS4HRI expressions on "
                f"{topic} (build hri_msgs to use them; /emotion works without it)")
            return
        self.create_subscription(Expression, topic, self._on_expression, qos)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _warn(self, key: str, message: str, error: bool = False) -> None:
        """Log one line per kind of problem per few seconds, counting the ones left out."""
        skipped = self._limit(key)
        if skipped is None:
            return
        if skipped:
            message += f" ({skipped} more like this since the last report)"
        # rclpy fixes the severity per call site, hence two calls
        if error:
            self.get_logger().error(message)
        else:
            self.get_logger().warning(message)

    # --- parameters at run time ---------------------------------------------------------------

    def _parameter_changes(self, params: List[Parameter]) -> Dict[str, Any]:
        """Check a batch of parameters; return what applying it means (changes nothing).

        Raises ValueError/TypeError naming the first bad value.
        """
        changes: Dict[str, Any] = {}
        idle: Dict[str, Any] = {}
        quality: Dict[str, Any] = {}
        audio_format = None
        for p in params:
            if p.name in _ENGINE_KEYS:
                v = float(p.value)
                if not math.isfinite(v):
                    raise ValueError(f"{p.name} must be finite")
                changes[_ENGINE_KEYS[p.name]] = v
            elif p.name == "background":
                changes["background"] = list(p.value)  # checked by framing, below
            elif p.name.startswith("idle."):
                idle[p.name[5:]] = p.value
            elif p.name == "quality.adaptive":
                quality["adaptive"] = bool(p.value)
            elif p.name == "quality.level":
                quality["level"] = int(p.value)
            elif p.name == "render_ahead":
                quality["render_ahead"] = bool(p.value)
        if any(p.name.startswith("audio.") for p in params):
            merged = {p.name: p.value for p in params}
            fmt = ros_io.normalise_sample_format(
                merged.get("audio.sample_format", self._param("audio.sample_format")))
            ros_io.check_coding_format(
                merged.get("audio.coding_format", self._param("audio.coding_format")))
            rate = int(merged.get("audio.sample_rate", self._param("audio.sample_rate")))
            ch = int(merged.get("audio.channels", self._param("audio.channels")))
            audio_format = (rate, ch, fmt)
        if changes:
            self.engine.config.updated(**changes).validate()
        if idle:
            IdleConfig(**{**asdict(self.engine.idle.config), **idle})
            changes["idle"] = idle
        return {"engine": changes, "quality": quality, "audio_format": audio_format}

    def _on_set_parameters(self, params: List[Parameter]) -> SetParametersResult:
        """Validate only (rclpy's on-set rule): a refused batch changes nothing."""
        try:
            self._parameter_changes(params)
        except (ValueError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_in_on_set(self, params: List[Parameter]) -> SetParametersResult:
        self._post_set_parameters(params)
        return SetParametersResult(successful=True)

    def _post_set_parameters(self, params: List[Parameter]) -> None:
        """Apply an accepted batch (engine settings go to the audio thread via the inbox)."""
        try:
            todo = self._parameter_changes(params)
        except (ValueError, TypeError) as exc:  # accepted a moment ago: should not happen
            self._warn("param_apply", f"parameters not applied: {exc}", error=True)
            return
        if todo["audio_format"] is not None:
            with self._audio_lock:
                self._audio_format = todo["audio_format"]
        if todo["engine"]:
            self.runtime.inbox.put_settings(**todo["engine"])
        quality = dict(todo["quality"])
        if "render_ahead" in quality:
            self.runtime.config.render_ahead = quality.pop("render_ahead")
        if quality:
            self.runtime.set_quality(**quality)

    # --- inputs -------------------------------------------------------------------------------

    @_guarded
    def _on_audio_info(self, msg: Any) -> None:
        try:
            ros_io.check_coding_format(msg.coding_format)
        except ros_io.AudioFormatError as exc:
            self._coding_ok = False
            self._warn("audio_info_coding", f"audio_info: {exc}; /audio is ignored until "
                       f"audio_info announces raw PCM", error=True)
            return
        try:
            fmt = ros_io.normalise_sample_format(msg.sample_format or "S16LE")
            if not 4000 <= msg.sample_rate <= 192000 or msg.channels < 1:
                raise ros_io.AudioFormatError(
                    f"sample_rate {msg.sample_rate} Hz / channels {msg.channels} unusable "
                    f"(need 4000..192000 Hz and >= 1 channel)")
        except ros_io.AudioFormatError as exc:
            self._warn("audio_info_format", f"audio_info ignored: {exc}", error=True)
            return
        with self._audio_lock:
            self._coding_ok = True
            self._info_format = (int(msg.sample_rate), int(msg.channels), fmt)

    @_guarded
    def _on_audio(self, msg: Any, info: Any = None) -> None:
        self._feed(msg.data, None, info)

    @_guarded
    def _on_audio_stamped(self, msg: Any, info: Any = None) -> None:
        stamp = ros_io.stamp_to_s(msg.header.stamp)
        if stamp <= 0.0:
            self._warn("stamp_zero", "audio_stamped with a zero stamp: played as unstamped audio")
            stamp = None
        self._feed(msg.audio.data, stamp, info)

    def _feed(self, data: Any, playback_time: Optional[float], info: Any = None) -> None:
        arrival = self._now()
        # The publisher's send time, when the middleware gives it and it is plausible, is a
        # steadier arrival time than this callback's (which waits for a free thread).
        src = (info or {}).get("source_timestamp") if isinstance(info, dict) else None
        if src:
            sent = src * 1e-9
            if 0.0 <= arrival - sent < 1.0:
                arrival = sent
        with self._audio_lock:
            coding_ok = self._coding_ok
            rate, channels, fmt = self._info_format or self._audio_format
        if not coding_ok:
            self._warn("audio_coding", "audio dropped: audio_info says it is not raw PCM; "
                       + ros_io.AUDIO_CAPTURE_HINT, error=True)
            return
        try:
            samples, dropped = ros_io.pcm_from_bytes(data, fmt, channels)
            if dropped:
                self._warn("audio_odd", f"audio message of {len(data)} bytes is not a whole "
                           f"number of {fmt} x {channels}-channel frames; ignored the last "
                           f"{dropped} bytes")
            if samples.size == 0:
                self._warn("audio_empty", "empty audio message ignored")
                return
        except (ValueError, TypeError) as exc:
            self._warn("audio_error", f"audio message dropped: {exc}", error=True)
            return
        if not self.runtime.inbox.put_audio(samples, rate, playback_time, arrival):
            self._warn("audio_full", f"audio message of {samples.size / rate:.1f} s dropped: "
                       f"more than {self.runtime.inbox.max_audio_s:.0f} s of audio are waiting "
                       f"for the audio thread", error=True)

    @_guarded
    def _on_emotion(self, msg: Any) -> None:
        try:
            cmd = parse_emotion_command(msg.data)
        except ValueError as exc:
            text = msg.data if len(msg.data) <= 60 else msg.data[:57] + "..."
            # one report stream per problem: each unknown name, bad JSON, a bad number, ...
            self._warn("emotion_error:" + str(exc)[:40], f"/emotion {text!r} ignored: {exc}")
            return
        self.runtime.inbox.put_emotion(cmd.emotion, cmd.intensity, cmd.transition_s, self._now())
        for w in cmd.warnings:
            self._warn("emotion_warning", f"/emotion {msg.data!r}: {w}")

    @_guarded
    def _on_expression(self, msg: Any) -> None:
        try:
            mapped = ros_io.expression_from_msg(msg)
        except ValueError as exc:
            self._warn("expression_error:" + str(exc)[:40], f"expression ignored: {exc}")
            return
        self.runtime.inbox.put_emotion(mapped.emotion, mapped.intensity, None, self._now())
        for w in mapped.warnings:
            self._warn("expression_warning", f"expression {msg.expression!r}: {w}")

    # --- frames -------------------------------------------------------------------------------

    def _publish_frame(self, rgb: np.ndarray, state: Dict[str, Any]) -> None:
        """Publish one frame and its state (called on the runtime's frame thread)."""
        t0 = time.perf_counter()
        stamp_ns = int(round(state["t"] * 1e9))
        frame_id = self._param("frame_id")
        img = ros_io.image_msg(rgb, stamp_ns, frame_id)
        jpeg = (ros_io.compressed_image_msg(rgb, stamp_ns, frame_id,
                                            self._param("jpeg_quality"))
                if self._pub_jpeg is not None else None)
        t1 = time.perf_counter()
        self._pub_image.publish(img)
        if jpeg is not None:
            self._pub_jpeg.publish(jpeg)
        t2 = time.perf_counter()
        timings = state.pop("timings_ms")
        timings.update(message=(t1 - t0) * 1e3, publish=(t2 - t1) * 1e3)
        arrival = state.pop("audio_arrival", None)
        state.update(width=rgb.shape[1], height=rgb.shape[0], device=str(self.engine.device),
                     timings_ms={k: round(v, 2) for k, v in timings.items()})
        if arrival is not None:
            state["latency_s"] = round(self._now() - arrival, 4)
        self._pub_state.publish(self._String(data=json.dumps(state)))

    def _publish_stall(self, state: Dict[str, Any]) -> None:
        """Say on face/state that frames stopped (called by the runtime's watchdog)."""
        state = {k: v for k, v in state.items() if k != "audio_arrival"}
        self._pub_state.publish(self._String(data=json.dumps(state)))

    def shutdown(self, timeout: float = 1.5) -> None:
        """Stop the runtime's threads (before the node is destroyed)."""
        runtime = getattr(self, "runtime", None)
        if runtime is not None:
            runtime.stop(timeout)
        close = getattr(getattr(getattr(self, "engine", None), "head", None), "close", None)
        if close is not None:
            close(1.0)  # a level of detail still being built


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(args: Optional[List[str]] = None) -> int:
    """Run the avatar node until Ctrl-C / SIGINT / SIGTERM; exit 0 on a clean shutdown.

    The signals raise KeyboardInterrupt in the main thread (rclpy's own handlers are not
    installed), and the executor spins in 0.1 s steps, so a signal stops the node within
    about a tenth of a second at any moment, loading the models at start-up included.
    """
    from rclpy.signals import SignalHandlerOptions

    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)  # e.g. from a process manager: like Ctrl-C
    node = None
    executor = None
    code = 0
    try:
        node = AvatarNode()
        # Every callback returns at once (the runtime's threads do the work), so one thread
        # serves them all; see docs/node.md.
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException) as exc:
        if node is None:
            logging.getLogger(NODE_NAME).info("interrupted during start-up (%s)", exc)
    except Exception as exc:  # noqa: BLE001 - a start-up error: one clear line, exit 1
        logging.getLogger(NODE_NAME).error("avatar_node stopped: %s: %s",
                                           type(exc).__name__, exc)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup
        if node is not None:
            node.shutdown()  # stop the runtime's threads first
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    busy = [t.name for t in threading.enumerate()
            if t is not threading.main_thread() and t.is_alive()]
    if busy:
        # A thread still inside a model would abort the interpreter's teardown
        # ("terminate called without an active exception"): leave without it.
        logging.getLogger(NODE_NAME).warning("exiting with threads still busy: %s",
                                             ", ".join(busy))
    if busy or node is None:
        # Interrupted at start-up: a Ctrl-C that lands inside a C extension's import (scipy
        # pulls in numpy.f2py on first use) leaves CPython's "unhandled KeyboardInterrupt"
        # mark set although it was handled here, and the interpreter would then end the
        # process by SIGINT (exit -2). Nothing is left to clean up: leave with our code.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    # Everything is stopped. The interpreter's teardown would now run full garbage
    # collections over the ~460k objects torch, numba and the models hold (0.7 s each on
    # a loaded 2-core CPU, 1.5-4.5 s in all: most of the time from Ctrl-C to exit).
    # Freezing them skips those passes; atexit handlers and the normal exit still run.
    gc.freeze()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
