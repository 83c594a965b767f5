"""Streaming audio-to-expression: push audio chunks, query coefficients at any time.

The encoder works in blocks of frames, each computed from a fixed audio window (see
:mod:`gemo_ros.audio.model`), so a block is *final* as soon as its window has arrived and
the values equal whole-utterance inference (``model.encode(wave, block=stream.block)``).
Frames whose window is still incomplete are computed *provisionally* as if the audio ended
now (zeros after the end), exactly what whole-utterance inference on the audio so far gives.
Input at any rate is resampled by :class:`gemo_ros.audio.signal.StreamResampler`, which
reproduces whole-signal resampling sample for sample.

Utterance time 0 is the first sample pushed since :meth:`StreamingA2E.reset`.

Features stay on the model's device: the ``*_tensor`` queries return device tensors with no
host round trip (what a frame on a GPU needs); the numpy queries copy those to the host.
"""

import logging
import threading
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from gemo_ros.audio.model import AudioToExpression
from gemo_ros.audio.signal import StreamResampler, check_rate, to_float_mono
from gemo_ros.emotions import emotion_id

logger = logging.getLogger(__name__)
EmotionLike = Union[str, int]


class StreamingA2E:
    """Incremental inference for an :class:`AudioToExpression` model.

    Args:
        model: the model (put in eval mode; its device is used).
        lookahead_s: the most future audio (seconds) a frame may wait for before it is
            final; picks the block size. Between the model's minimum (about 0.07 s for
            the default model) and its maximum (about 0.17 s); larger values are capped.
        history_s: seconds of past features kept for queries (older ones are dropped).

    Thread-safe: one thread may push while another queries.
    """

    def __init__(self, model: AudioToExpression, lookahead_s: float = 0.2,
                 history_s: float = 120.0) -> None:
        if not isinstance(model, AudioToExpression):
            raise TypeError("StreamingA2E needs an AudioToExpression model")
        if not np.isfinite(lookahead_s) or lookahead_s <= 0:
            raise ValueError(f"lookahead_s must be > 0, got {lookahead_s!r}")
        self.model = model.eval()
        if lookahead_s < model.lookahead_s(1):
            # Below the model's right context no block size works: use the smallest.
            logger.warning("lookahead %.3f s is below the a2e model's minimum %.3f s; using "
                           "the minimum", lookahead_s, model.lookahead_s(1))
            lookahead_s = model.lookahead_s(1)
        self.block = model.block_for_lookahead(float(lookahead_s))
        self.history_frames = int(history_s * model.fps)
        self._device = next(model.parameters()).device
        self._lock = threading.RLock()
        with torch.no_grad():
            self._silence = model.silence_feature().float()  # [D] on the device
        self._emotion_ids: Dict[int, torch.Tensor] = {}   # emotion id -> [1] on the device
        self.reset()

    # ------------------------------------------------------------------ properties
    @property
    def sample_rate(self) -> int:
        """Model sample rate in Hz."""
        return self.model.sample_rate

    @property
    def fps(self) -> float:
        """Frame rate of features and coefficients in Hz."""
        return self.model.fps

    @property
    def lookahead_s(self) -> float:
        """Effective worst-case lookahead in seconds (<= the requested one)."""
        return self.model.lookahead_s(self.block)

    @property
    def final_until(self) -> float:
        """Utterance time (s) up to which coefficients are final (-1/fps before any)."""
        with self._lock:
            return (self._n_blocks * self.block - 1) / self.fps

    @property
    def duration(self) -> float:
        """Seconds of audio received since :meth:`reset`."""
        with self._lock:
            return self._n_samples_total() / self.sample_rate

    # ------------------------------------------------------------------ input
    def reset(self) -> None:
        """Forget all audio; the next pushed sample is utterance time 0."""
        with self._lock:
            self._resampler: Optional[StreamResampler] = None
            self._audio = np.zeros(0, np.float32)   # final model-rate samples ...
            self._audio_start = 0                   # ... from this global sample index
            self._n_final = 0                       # final model-rate samples in total
            self._tail = np.zeros(0, np.float32)    # provisional samples after them
            self._feats = torch.zeros(0, self.model.feature_dim, device=self._device)
            self._feats_start = 0                   # frame index of self._feats[0]
            self._n_blocks = 0                      # final blocks
            self._prov: Dict[int, torch.Tensor] = {}  # provisional block features (device)

    def push(self, samples, rate: int) -> None:
        """Add an audio chunk.

        Args:
            samples: ``[S]`` mono or ``[S, C]`` frames; int16/int32/uint8 PCM or float in
                [-1, 1]; any length (10 ms to a whole utterance).
            rate: sample rate of this chunk in Hz (4..192 kHz; resampled to 16 kHz). A new
                rate ends the previous stretch of audio and starts a new resampler.

        Raises:
            ValueError: empty chunk, NaN/inf, overflow, bad shape or rate.
        """
        rate = check_rate(rate)
        x = to_float_mono(samples)
        with self._lock:
            if self._resampler is not None and self._resampler.rate_in != rate:
                self._append_final(self._resampler.tail())
                self._resampler = None
            if self._resampler is None:
                self._resampler = StreamResampler(rate, self.sample_rate)
            self._append_final(self._resampler.push(x))
            self._tail = self._resampler.tail()
            self._prov = {}
            self._compute_final_blocks()

    def _append_final(self, y: np.ndarray) -> None:
        if len(y):
            self._audio = np.concatenate([self._audio, y.astype(np.float32)])
            self._n_final += len(y)

    def _n_samples_total(self) -> int:
        return self._n_final + len(self._tail)

    # ------------------------------------------------------------------ encoding
    def _window(self, j: int, final_only: bool) -> np.ndarray:
        start, end = self.model.window_span(j, self.block)
        src = self._audio if final_only else np.concatenate([self._audio, self._tail])
        out = np.zeros(end - start, np.float32)
        lo = max(start, self._audio_start)
        hi = min(end, self._audio_start + len(src))
        if hi > lo:
            out[lo - start:hi - start] = src[lo - self._audio_start:hi - self._audio_start]
        return out

    def _encode(self, windows: Sequence[np.ndarray]) -> torch.Tensor:
        """Encode audio windows into block features ``[N, block, D]`` on the device."""
        with torch.no_grad():
            w = _upload(np.stack(windows), self._device)
            return self.model.encode_windows(w, self.block).float()

    def _compute_final_blocks(self) -> None:
        ready = []
        j = self._n_blocks
        while self.model.window_span(j, self.block)[1] <= self._n_final:
            ready.append(j)
            j += 1
        if ready:
            feats = self._encode([self._window(k, True) for k in ready])
            self._feats = torch.cat([self._feats, feats.reshape(-1, feats.shape[-1])])
            self._n_blocks = j
        # Drop features beyond the history and audio no future window needs.
        extra = len(self._feats) - self.history_frames
        if extra > self.block:
            extra -= extra % self.block
            self._feats = self._feats[extra:]
            self._feats_start += extra
        need = self.model.window_span(self._n_blocks, self.block)[0]
        if need - self._audio_start > 4 * self.sample_rate:
            drop = need - self._audio_start
            self._audio = self._audio[drop:]
            self._audio_start += drop

    def _block_feats(self, j: int) -> torch.Tensor:
        if j < self._n_blocks:
            lo = j * self.block - self._feats_start
            if lo < 0:
                raise ValueError("requested time is older than the kept history")
            return self._feats[lo:lo + self.block]
        if self.model.window_span(j, self.block)[0] >= self._n_samples_total():
            return self._silence.expand(self.block, -1)
        if j not in self._prov:
            self._prov[j] = self._encode([self._window(j, False)])[0]
        return self._prov[j]

    def frame_features(self, frames: Sequence[int]) -> np.ndarray:
        """Return features ``[N, D]`` of frame indices (frames before 0 are silence)."""
        return self.frame_features_tensor(frames).cpu().numpy()

    def frame_features_tensor(self, frames: Sequence[int]) -> torch.Tensor:
        """:meth:`frame_features` as a float tensor ``[N, D]`` on the model's device.

        Frame indices are host integers, so rows are picked with no device sync.
        """
        frames = np.asarray(frames, np.int64).reshape(-1)
        rows = []
        with self._lock:
            cache: Dict[int, torch.Tensor] = {}
            for k in frames.tolist():
                if k < 0:
                    rows.append(self._silence[None])
                    continue
                j = k // self.block
                if j not in cache:
                    cache[j] = self._block_feats(j)
                i = k - j * self.block
                rows.append(cache[j][i:i + 1])
        if not rows:
            return self._silence.new_zeros(0, self._silence.shape[0])
        return torch.cat(rows) if len(rows) > 1 else rows[0]

    # ------------------------------------------------------------------ queries
    def features(self, t: float, window: int) -> np.ndarray:
        """Return the audio feature window ``[window, D]`` centred on time ``t`` (seconds).

        Rows are frames ``round(t * fps) - window // 2 + i``; frames before time 0 are
        silence, frames after the received audio are computed as if it ended now.
        """
        return self.features_tensor(t, window).cpu().numpy()

    def features_tensor(self, t: float, window: int) -> torch.Tensor:
        """:meth:`features` as a tensor ``[window, D]`` on the model's device (no sync)."""
        if int(window) < 1:
            raise ValueError(f"window must be >= 1 frame, got {window!r}")
        _check_time(t)
        k = int(np.round(t * self.fps)) - int(window) // 2
        return self.frame_features_tensor(np.arange(k, k + int(window)))

    def coefficients_at(self, times, emotion: EmotionLike = 0,
                        intensity: float = 1.0) -> np.ndarray:
        """Return coefficients ``[N, 52]`` at times (seconds), linearly interpolated."""
        times = np.asarray(times, np.float64).reshape(-1)
        for t in times:
            _check_time(t)
        eid = emotion_id(emotion)
        inten = _check_intensity(intensity)
        x = times * self.fps
        k0 = np.floor(x).astype(np.int64)
        a = (x - k0).astype(np.float32)[:, None]
        # The next frame only matters off the frame grid (it may not be final yet).
        k1 = np.where(a[:, 0] > 0, k0 + 1, k0)
        uniq, inv = np.unique(np.concatenate([k0, k1]), return_inverse=True)
        with torch.no_grad():
            f = self.frame_features_tensor(uniq)[None]
            c = self.model.decode(f, torch.tensor([eid], device=self._device),
                                  torch.tensor([inten], device=self._device))[0]
            c = c.float().cpu().numpy()
        c0, c1 = c[inv[:len(k0)]], c[inv[len(k0):]]
        return (1.0 - a) * c0 + a * c1

    def coefficient_pair(self, t: float, emotion: EmotionLike,
                         intensity: float) -> Tuple[np.ndarray, np.ndarray]:
        """Return ``(psi_n, psi_e)`` ``[52]`` at time ``t`` from one decode.

        Equal to ``coefficients(t, 0, 0.0)`` and ``coefficients(t, emotion, intensity)``:
        the neutral output is the decoder's base, the emotional one adds the emotion's
        delta, so one pass gives both (the runtime needs both every frame).
        """
        pair = self.coefficient_pair_tensor(t, emotion, intensity).cpu().numpy()
        return pair[0], pair[1]

    def coefficient_pair_tensor(self, t: float, emotion: EmotionLike,
                                intensity: float) -> torch.Tensor:
        """:meth:`coefficient_pair` as one float tensor ``[2, 52]`` on the model's device.

        No host round trip: the emotion id and intensity are checked on the host, the
        emotion's id tensor is uploaded once per emotion, the intensity and the
        interpolation weight enter as scalars (float32 products, as numpy's float32 maths).
        """
        _check_time(t)
        eid = emotion_id(emotion)
        if not 0 <= eid < self.model.config.num_emotions:
            raise ValueError(f"emotion id {eid} outside the model's "
                             f"{self.model.config.num_emotions} emotions")
        inten = _check_intensity(intensity)
        x = np.float64(t) * self.fps
        k0 = int(np.floor(x))
        a = np.float32(x - k0)
        frames = [k0, k0 + 1] if a > 0 else [k0]
        with torch.no_grad():
            f = self.frame_features_tensor(frames)[None]
            base, delta = self.model.decode_parts(f, self._emotion_tensor(eid), validate=False)
            pair = torch.cat([base.clamp(0.0, 1.0),
                              (base + float(np.float32(inten)) * delta).clamp(0.0, 1.0)])
            pair = pair.float()  # [2, frames, 52]
            if len(frames) == 1:
                return pair[:, 0]
            return float(np.float32(1.0) - a) * pair[:, 0] + float(a) * pair[:, 1]

    def _emotion_tensor(self, eid: int) -> torch.Tensor:
        """``[eid]`` as a long tensor on the device, made once per emotion."""
        e = self._emotion_ids.get(eid)
        if e is None:
            e = self._emotion_ids[eid] = torch.tensor([eid], device=self._device)
        return e

    def coefficients(self, t: float, emotion: EmotionLike = 0,
                     intensity: float = 1.0) -> np.ndarray:
        """Return the 52 ARKit coefficients at utterance time ``t`` (seconds), float32.

        ``emotion`` is a name/alias or id; ``intensity`` in [0, 1]. Values at times after
        :attr:`final_until` may still change when more audio arrives.
        """
        return self.coefficients_at([t], emotion, intensity)[0]


def _upload(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """Copy a host array to ``device``: from pinned memory without blocking on CUDA.

    The caching host allocator keeps the pinned block until the copy has run, so the
    host is free to go on; on the CPU this is the array itself, shared.
    """
    host = torch.from_numpy(np.ascontiguousarray(array))
    if device.type != "cuda":
        return host
    return host.pin_memory().to(device, non_blocking=True)


def _check_time(t: float) -> None:
    if not np.isfinite(t):
        raise ValueError(f"time must be finite seconds, got {t!r}")


def _check_intensity(intensity: float) -> float:
    try:
        i = float(intensity)
    except (TypeError, ValueError):
        raise ValueError(f"intensity must be a number in [0, 1], got {intensity!r}") from None
    if not np.isfinite(i) or not -1e-6 <= i <= 1.0 + 1e-6:
        raise ValueError(f"intensity must be in [0, 1], got {intensity!r}")
    return min(max(i, 0.0), 1.0)
