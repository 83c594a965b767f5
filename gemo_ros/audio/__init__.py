"""Audio to expression: speech -> per-frame ARKit coefficients with emotion and intensity.

Public API (see docs/ARCHITECTURE.md and docs/a2e.md)::

    model = load_a2e("default")                  # AudioToExpression (nn.Module)
    feats = model.encode(wave)                   # [B, S] @ 16 kHz -> [B, T, D] @ 50 fps
    coeffs = model.decode(feats, emotion, intensity)   # -> [B, T, 52] in [0, 1]
    stream = StreamingA2E(model, lookahead_s=0.2)
    stream.push(samples, rate); stream.coefficients(t, "happy", 0.7)  # -> [52]
"""

from gemo_ros.audio.model import A2EConfig, AudioToExpression, load_a2e
from gemo_ros.audio.offline import infer_utterance
from gemo_ros.audio.signal import StreamResampler, resample, to_float_mono
from gemo_ros.audio.streaming import StreamingA2E

__all__ = ["A2EConfig", "AudioToExpression", "load_a2e", "StreamingA2E", "StreamResampler",
           "infer_utterance", "resample", "to_float_mono"]
