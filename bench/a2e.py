#!/usr/bin/env python3
"""Benchmark the audio-to-expression model: model time per second of audio and per chunk.

    python bench/a2e.py [--weights default] [--seconds 10] [--threads 2] [--device cpu]

Prints (milliseconds):
* whole utterance: encode + two decodes (neutral and an emotion) per second of audio;
* streaming: one 40 ms chunk pushed + coefficients queried for neutral and emotion at
  every 40 ms render tick (25 fps); mean and 95th percentile per chunk, and the
  resulting real-time factor.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gemo_ros.audio import StreamingA2E, load_a2e  # noqa: E402


def _speech(seconds: float, rate: int = 16000) -> np.ndarray:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gemo_ros", "assets",
                        "demo_speech.wav")
    import soundfile as sf
    wav, r = sf.read(path, dtype="float32")
    reps = int(np.ceil(seconds * r / len(wav)))
    return np.tile(wav, reps)[:int(seconds * r)]


def main() -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="default")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_a2e(args.weights, device=args.device)
    wave = _speech(args.seconds)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    x = torch.from_numpy(wave)[None].to(args.device)
    with torch.no_grad():
        for _ in range(2):  # warm-up
            model.decode(model.encode(x[:, :16000]), 1, 1.0)
        times = []
        for _ in range(3):
            sync()
            t0 = time.perf_counter()
            f = model.encode(x)
            model.decode(f, 0, 0.0)
            model.decode(f, 1, 0.7)
            sync()
            times.append(time.perf_counter() - t0)
    whole = min(times) / args.seconds * 1000
    stream = StreamingA2E(model, lookahead_s=0.2)
    chunk = 640
    per = []
    for i in range(0, len(wave) - chunk + 1, chunk):
        t0 = time.perf_counter()
        stream.push(wave[i:i + chunk], 16000)
        t = max(0.0, stream.final_until)
        stream.coefficients(t, "neutral", 0.0)
        stream.coefficients(t, "happy", 0.7)
        sync()
        per.append(time.perf_counter() - t0)
    per_ms = np.array(per[5:]) * 1000
    print(f"device {args.device}, torch threads {args.threads}, "
          f"{sum(p.numel() for p in model.parameters())} parameters, block {stream.block}, "
          f"lookahead {stream.lookahead_s * 1000:.1f} ms")
    print(f"whole utterance: {whole:.1f} ms model time per second of audio "
          f"(encode + 2 decodes, {args.seconds:.0f} s clip)")
    print(f"streaming 40 ms chunks: mean {per_ms.mean():.2f} ms, p95 "
          f"{np.percentile(per_ms, 95):.2f} ms per chunk "
          f"(= {per_ms.mean() / 40:.3f} x real time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
