"""`gemo a2e`: audio file -> per-frame ARKit expression coefficients (CSV).

    gemo a2e --audio in.wav --emotion happy --intensity 0.7 -o coeffs.csv

The CSV has a header ``time,<52 ARKit names>`` and one row per frame: time in seconds,
then the coefficients in [0, 1] (ARKit order, gemo_ros/face/arkit.py).
"""

import argparse
import logging
import sys

import numpy as np

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `gemo a2e` options."""
    parser.add_argument("--audio", required=True, help="input audio file (wav, flac, ogg)")
    parser.add_argument("--emotion", default="neutral", help="emotion name or alias")
    parser.add_argument("--intensity", type=float, default=1.0, help="emotion intensity 0..1")
    parser.add_argument("-o", "--output", default="-", help="output CSV ('-' = stdout)")
    parser.add_argument("--weights", default="default", help="a2e weights (file or folder)")
    parser.add_argument("--fps", type=float, default=None,
                        help="output frame rate (default: the model's, 50)")


def write_csv(path_or_file, times: np.ndarray, coeffs: np.ndarray) -> None:
    """Write ``time,<ARKit names>`` rows (times [N] s, coeffs [N, 52])."""
    from gemo_ros.face.arkit import ARKIT_NAMES

    if coeffs.ndim != 2 or coeffs.shape[1] != len(ARKIT_NAMES) or len(times) != len(coeffs):
        raise ValueError(f"expected times [N] and coeffs [N, 52], got {times.shape}, "
                         f"{coeffs.shape}")
    own = isinstance(path_or_file, str)
    f = open(path_or_file, "w") if own else path_or_file
    try:
        f.write("time," + ",".join(ARKIT_NAMES) + "\n")
        for t, row in zip(times, coeffs):
            f.write(f"{t:.4f}," + ",".join(f"{v:.5f}" for v in row) + "\n")
    finally:
        if own:
            f.close()


def run(args: argparse.Namespace) -> int:
    """Run `gemo a2e`."""
    import soundfile as sf

    from gemo_ros.audio.model import load_a2e
    from gemo_ros.audio.offline import infer_utterance

    try:
        samples, rate = sf.read(args.audio, dtype="float32", always_2d=False)
    except (RuntimeError, OSError) as exc:
        print(f"gemo a2e: cannot read {args.audio}: {exc}", file=sys.stderr)
        return 2
    try:
        model = load_a2e(args.weights)
        times, coeffs = infer_utterance(model, samples, rate, args.emotion, args.intensity,
                                        fps=args.fps)
    except (ValueError, FileNotFoundError) as exc:
        print(f"gemo a2e: {exc}", file=sys.stderr)
        return 2
    write_csv(sys.stdout if args.output == "-" else args.output, times, coeffs)
    if args.output != "-":
        print(f"wrote {len(times)} frames ({times[-1]:.2f} s) to {args.output}",
              file=sys.stderr)
    return 0
