"""Whole-utterance inference helpers (files, arbitrary rates, output frame rates)."""

from typing import Optional, Tuple, Union

import numpy as np
import torch

from gemo_ros.audio.model import AudioToExpression
from gemo_ros.audio.signal import check_rate, resample, to_float_mono
from gemo_ros.audio.streaming import _check_intensity
from gemo_ros.emotions import emotion_id


def infer_utterance(model: AudioToExpression, samples, rate: int,
                    emotion: Union[str, int] = 0, intensity: float = 1.0,
                    fps: Optional[float] = None, block: Optional[int] = None
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """Run the model on a whole utterance.

    Args:
        model: an :class:`AudioToExpression`.
        samples: ``[S]`` or ``[S, C]`` PCM (int16/int32/float), any rate in 4..192 kHz.
        rate: sample rate in Hz.
        emotion: emotion name/alias or id; intensity: in [0, 1].
        fps: output frame rate in Hz (default: the model's, e.g. 50); other rates are
            linearly interpolated from the model frames.
        block: encoder block size (default: the model's largest; see StreamingA2E.block).

    Returns:
        (times ``[N]`` seconds, coeffs ``[N, 52]`` float32 in [0, 1]).
    """
    rate = check_rate(rate)
    x = resample(to_float_mono(samples), rate, model.sample_rate)
    eid = emotion_id(emotion)
    inten = _check_intensity(intensity)
    dev = next(model.parameters()).device
    with torch.no_grad():
        feats = model.encode(torch.from_numpy(x)[None].to(dev), block=block)
        coeffs = model.decode(feats, torch.tensor([eid], device=dev),
                              torch.tensor([inten], device=dev))[0].float().cpu().numpy()
    times = np.arange(len(coeffs)) / model.fps
    if fps is None or abs(float(fps) - model.fps) < 1e-9:
        return times, coeffs
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    out_t = np.arange(int(np.floor(times[-1] * fps + 1e-9)) + 1) / float(fps)
    out = np.stack([np.interp(out_t, times, coeffs[:, k]) for k in range(coeffs.shape[1])], 1)
    return out_t, out.astype(np.float32)
