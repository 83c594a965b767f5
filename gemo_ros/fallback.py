"""Stand-ins for missing stages: a loudness-driven jaw and a flat schematic face.

The engine uses them when the trained audio model or the Gaussian head cannot be loaded
(said once in the log), so the node still shows a talking face.
"""

import math
import time
from typing import Any, Dict, Optional, Tuple

import numpy as np

from gemo_ros.behaviour import IdleState, apply_idle
from gemo_ros.emotions import NEUTRAL
from gemo_ros.face.arkit import ARKIT_INDEX, NUM_ARKIT

JAW = ARKIT_INDEX["jawOpen"]


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


class FallbackHead:
    """The loudness-driven jaw and the schematic face: runs with no trained stage at all."""

    device = "cpu"

    def __init__(self, config: Any, stages: Optional[Dict[str, str]] = None) -> None:
        self.stages = stages or {"a2e": "missing", "avatar": "missing",
                                 "residual": "missing", "render": "missing"}
        self.lookahead_s = config.lookahead_s

    def new_stream(self) -> LoudnessStream:
        """Return a fresh per-utterance audio stream."""
        return LoudnessStream(self.lookahead_s)

    def render(self, stream: Any, u: float, emotion: int, intensity: float, idle: IdleState,
               cfg: Any, size: Optional[Tuple[int, int]] = None,
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
        rgb = schematic_face(coeffs, w, h, cfg.camera.background_255(), idle.head_deg, emotion,
                             intensity)
        t2 = time.perf_counter()
        return rgb, coeffs, {"audio_model": (t1 - t0) * 1e3, "render": (t2 - t1) * 1e3}
