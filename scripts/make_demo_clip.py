#!/usr/bin/env python3
"""Make gemo_ros/assets/demo_speech.wav: a short English speech clip spoken by libespeak-ng.

Layout: 0.5 s silence, sentence 1, 0.6 s pause, sentence 2, 0.6 s silence; 16 kHz mono
S16LE. The phone timeline is written next to it as ``demo_speech.phones.csv`` (start, end,
phone) so tests can check lip closures against known /p b m/ times.

    python scripts/make_demo_clip.py [-o gemo_ros/assets/demo_speech.wav]
"""

import argparse
import csv
import os
import sys
from typing import List

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gemo_ros.train.speech_synth import synthesize  # noqa: E402

RATE = 16000
SENTENCES = (
    "Hello! I am a friendly robot, and I am happy to meet you.",
    "Please bring me the big blue book, and maybe a cup of warm tea.",
)
VOICE = "en-us+m3"


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * RATE)), np.float32)


def main(argv: List[str] = None) -> int:
    """Write the clip and its phone timeline."""
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.normpath(os.path.join(here, "..", "gemo_ros", "assets", "demo_speech.wav"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=default)
    args = parser.parse_args(argv)

    pieces, rows, t = [_silence(0.5)], [], 0.5
    for i, text in enumerate(SENTENCES):
        utt = synthesize(text, voice=VOICE, rate=165, pitch=45, pitch_range=60)
        audio = resample_poly(utt.audio.astype(np.float64), 320, 441).astype(np.float32)
        pieces.append(audio)
        rows += [(t + p.start, t + p.end, p.name) for p in utt.phones]
        t += len(audio) / RATE
        gap = _silence(0.6)
        pieces.append(gap)
        t += len(gap) / RATE
    wave = np.concatenate(pieces)
    wave *= 0.7 / max(1e-6, float(np.abs(wave).max()))  # headroom, deterministic level
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    sf.write(args.output, wave, RATE, subtype="PCM_16")
    phones_path = os.path.splitext(args.output)[0] + ".phones.csv"
    with open(phones_path, "w", newline="") as f:
        writer = csv.writer(f)  # phone names may hold commas (secondary stress: ",i:")
        writer.writerow(["start", "end", "phone"])
        for start, end, name in rows:
            writer.writerow([f"{start:.4f}", f"{end:.4f}", name])
    print(f"wrote {args.output} ({len(wave) / RATE:.2f} s) and {phones_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
