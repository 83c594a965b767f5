"""The engine's per-frame adapter over the method's stages (:class:`PipelineHead`)."""

import logging
import threading
import time
from typing import Any, Dict, Optional, Tuple

import numpy as np

from gemo_ros.behaviour import IdleState, idle_overlay
from gemo_ros.emotions import NEUTRAL
from gemo_ros.fallback import LoudnessStream
from gemo_ros.stages import StageSpec, load_avatar_stage, load_stages

LOG = logging.getLogger(__name__)


class PipelineHead:
    """The method's stages through :class:`gemo_ros.pipeline.TalkingHead`.

    Per frame: ``psi_n`` / ``psi_e`` from the utterance's streaming audio model (or from a
    silent stream while idle), blinks and gaze overlaid on both (so the emotion
    displacement is unchanged), the neck pose from idle life, then avatar + residual +
    render. A stage whose weights are missing is replaced (loudness jaw without the audio
    model, blendshape-only emotions without the residual) and said once in the log.
    """

    def __init__(self, config: Any) -> None:
        """Load the stages named by ``config`` (an :class:`gemo_ros.engine.EngineConfig`)."""
        from gemo_ros.pipeline import TalkingHead

        t0 = time.perf_counter()
        stages = load_stages(StageSpec(config.avatar, config.a2e, config.residual,
                                       config.device, config.max_gaussians))
        self.device = stages.device
        self.head = TalkingHead(stages.avatar, stages.a2e, stages.residual,
                                settings=config.camera, device=self.device,
                                compile=getattr(config, "compile", False))
        self._config = config
        self._lods: Dict[int, Any] = {}       # Gaussians -> TalkingHead, built in background
        self._lod_lock = threading.Lock()
        self._builders: list = []
        self._camera: Any = None               # the config's framing the cache was built for
        self._sized: Dict[Tuple[int, int], Any] = {}  # (w, h) -> RenderSettings
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
        if self.head.compiled:
            self.stages["head"] = ("CUDA graph" if self.head.compiled == "cudagraph"
                                   else f"torch.compile ({self.head.compiled})")
        LOG.info("stages loaded in %.1f s on %s: %s", time.perf_counter() - t0, self.device,
                 ", ".join(f"{k}={v}" for k, v in self.stages.items()))
        self._silence = self.new_stream()
        self._silence.push(np.zeros(16000, np.float32), 16000)
        self._silence_t = 0.5
        self._idle_key: Any = None             # (emotion, intensity) of self._idle_coeffs
        self._idle_coeffs: Any = None

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
                      ) -> Tuple[Any, Any, Any]:
        """Return ``(psi_n, psi_e, feats)`` of utterance time ``u``.

        Device tensors from the audio model (no host round trip); host arrays from the
        loudness stand-in (uploaded with the frame's other inputs). Without a stream the
        silent stream's output depends on the emotion alone: idle frames reuse it (read only).
        """
        if stream is None:
            key = (emotion, float(intensity))
            if key != self._idle_key:
                self._idle_coeffs = self._coefficients(self._silence, self._silence_t,
                                                       emotion, intensity)
                self._idle_key = key
            return self._idle_coeffs
        if isinstance(stream, LoudnessStream):
            psi_n = stream.coefficients(u, NEUTRAL, 0.0)
            from gemo_ros.face.emotion_recipes import combine_with_speech

            psi_e = combine_with_speech(psi_n[None], emotion, float(intensity))[0]
            return psi_n, np.asarray(psi_e, np.float32), None
        if emotion != NEUTRAL and intensity > 0.0:
            pair = stream.coefficient_pair_tensor(u, emotion, intensity)  # one decode
            psi_n, psi_e = pair[0], pair[1]
        else:
            psi_n = psi_e = stream.coefficient_pair_tensor(u, NEUTRAL, 0.0)[0]
        feats = (stream.features_tensor(u, self.head.window) if self.head.residual is not None
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
        builder = threading.Thread(target=self._build_lod, args=(gaussians,), name="gemo-lod",
                                   daemon=True)
        self._builders.append(builder)
        builder.start()

    def close(self, timeout: float = 1.0) -> None:
        """Wait (at most ``timeout`` s) for level-of-detail builds still running."""
        end = time.monotonic() + timeout
        for builder in self._builders:
            builder.join(max(end - time.monotonic(), 0.0))

    def _build_lod(self, gaussians: int) -> None:
        from gemo_ros.pipeline import TalkingHead

        try:
            t0 = time.perf_counter()
            avatar = load_avatar_stage(self._config.avatar, gaussians, self.device)
            head = TalkingHead(avatar, self.head.a2e, self.head.residual,
                               settings=self.head.settings, device=self.device,
                               compile=self.head.compiled)
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

    def _settings(self, camera: Any, width: int, height: int) -> Any:
        """Return the framing at ``width x height``, built once per framing and size."""
        if camera is not self._camera:
            self._camera, self._sized = camera, {}
        settings = self._sized.get((width, height))
        if settings is None:
            settings = self._sized[(width, height)] = camera.resized(width, height)
        return settings

    def render(self, stream: Any, u: float, emotion: int, intensity: float, idle: IdleState,
               cfg: Any, size: Optional[Tuple[int, int]] = None,
               out_size: Optional[Tuple[int, int]] = None, gaussians: int = 0
               ) -> Tuple[np.ndarray, np.ndarray, Dict[str, float]]:
        """Return ``(rgb uint8 [H, W, 3], psi_e [52] shown, timings_ms)``.

        ``size`` renders at another size than ``cfg``'s; ``out_size`` scales the image
        (bilinear) to that size; ``gaussians`` picks a coarser level of detail once built.
        On a GPU every stage stays on the device; the image and ``psi_e`` come back in one
        wait at the end (:func:`gemo_ros.pipeline.download_frame`), and the timings are
        CUDA-event times of each stage.
        """
        from gemo_ros.pipeline import StageClock, download_frame

        clock = StageClock(self.device)
        psi_n, psi_e, feats = self._coefficients(stream, max(u, 0.0), emotion, intensity)
        clock.mark("audio_model")
        width, height = size or (cfg.width, cfg.height)
        head = self._head_for(gaussians)
        settings = self._settings(cfg.camera, width, height)
        # The residual is exactly zero for neutral or intensity 0 (by construction), so the
        # neutral head is rendered without computing it (saves two mesh posings per frame).
        emotional = emotion != NEUTRAL and intensity > 0.0
        frame = head.frame(psi_n, psi_e, feats, emotion, intensity,
                           idle.neck_rotation(), settings=settings, use_residual=emotional,
                           idle_overlay=idle_overlay(idle), clock=clock)
        image = frame.image
        if out_size is not None and tuple(out_size) != (width, height):
            image = _resize(image, out_size)
        rgb, psi_shown = download_frame(image, frame.psi_e, clock=clock)
        timings = clock.ms()
        timings["gaussians"] = float(head.canonical.shape[0])
        return rgb, psi_shown, timings


def _resize(rgb: Any, out_size: Tuple[int, int]) -> Any:
    """Scale a float ``[H, W, 3]`` image to ``out_size`` (w, h), bilinear, on its device."""
    import torch

    x = rgb.permute(2, 0, 1)[None].float()
    y = torch.nn.functional.interpolate(x, size=(int(out_size[1]), int(out_size[0])),
                                        mode="bilinear", align_corners=False)
    return y[0].permute(1, 2, 0)


def _render_backend(device: str) -> str:
    """Name the rasterizer ``backend="auto"`` picks for ``device`` (for the start-up log)."""
    import torch

    try:
        from gemo_ros.render import _choose_backend

        return _choose_backend("auto", torch.device(device))
    except Exception:  # noqa: BLE001 - only a label; the renderer decides when it runs
        return "gsplat" if str(device).startswith("cuda") else "torch"
