"""``gemo eval a2e``: the command line over :mod:`gemo_ros.train.eval_a2e`."""

import argparse
import json
import logging
import os
from typing import Dict, List, Optional

from gemo_ros.train.eval_a2e import (evaluate_set, festival_clips, flite_heldout_clips,
                                     heldout_espeak_clips, hibari_clips,
                                     model_ms_per_audio_second, plot_clip, real_recording_clips,
                                     real_speech_clips,
                                     sentence_audio, side_by_side_video)

logger = logging.getLogger(__name__)

#: Rows of the markdown table: (metric key, label).
TABLE_ROWS = (
    ("aperture_corr", "aperture correlation (target >= 0.80)"),
    ("lip_closure_rate", "lips closed on /p b m/ (target >= 0.85)"),
    ("aperture_lag_ms_median", "aperture lag, median ms (+ = late; target abs <= 20)"),
    ("vowel_aperture_mean", "mean aperture at vowel middles (target >= 0.25)"),
    ("target_vowel_aperture_mean", "  the targets' mean vowel aperture"),
    ("vowel_closure_rate", "false closures at vowel middles"),
    ("jaw_corr", "jawOpen correlation"),
    ("onset_lag_ms_median", "speech-onset lag, median ms"),
    ("emotion_centroid_accuracy", "emotion nearest-centroid accuracy"),
    ("emotion_mae_happy", "happy: MAE to the recipe target (i=1)"),
    ("clips", "clips"),
    ("seconds", "seconds"),
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `gemo eval a2e` options."""
    parser.add_argument("--weights", default="default", help="a2e weights (file or folder)")
    parser.add_argument("--before", default="",
                        help="older weights to compare with (table columns and plot)")
    parser.add_argument("--espeak-clips", type=int, default=34,
                        help="clips with held-out espeak voices")
    parser.add_argument("--festival-clips", type=int, default=24,
                        help="clips of the held-out Festival family (0 = skip)")
    parser.add_argument("--flite-clips", type=int, default=16,
                        help="clips of the held-out Flite voices (0 = skip)")
    parser.add_argument("--hibari-clips", type=int, default=20, help="hibari-tts clips")
    parser.add_argument("--no-real", action="store_true", help="skip the real-speech set")
    parser.add_argument("--plot", default="docs/a2e_curves.png", help="curve plot ('' = none)")
    parser.add_argument("--plot-set", default="real",
                        help="set whose first clip is plotted (falls back to the first set)")
    parser.add_argument("--json", default="", help="also write the metrics as JSON here")
    parser.add_argument("--markdown", default="", help="also write a markdown table here")
    parser.add_argument("--video", default="",
                        help="with --before: also write a side-by-side MP4 (old | new) of "
                             "one held-out sentence here (renders with gemo render)")
    parser.add_argument("--threads", type=int, default=1)


def _sets(args: argparse.Namespace, results: Dict[str, Dict]) -> Dict[str, List]:
    sets = {"espeak_heldout": heldout_espeak_clips(args.espeak_clips)}
    makers = [("festival_heldout_family", args.festival_clips, festival_clips),
              ("flite_heldout_voices", args.flite_clips, flite_heldout_clips),
              ("hibari", args.hibari_clips, hibari_clips)]
    for name, n, make in makers:
        if n <= 0:
            continue
        clips, reason = make(n)
        if clips:
            sets[name] = clips
        else:  # engine not installed here: say so, evaluate the rest
            results[name] = {"skipped": reason}
            logger.warning("%s set skipped: %s", name, reason)
    if not args.no_real:
        clips, reason = real_speech_clips()
        if clips:
            sets["real"] = [c for c in clips if c.source.startswith("real:")]
            sets["real_mp3_64k"] = [c for c in clips if c.source.startswith("real-mp3")]
        else:
            results["real"] = {"skipped": reason}
            logger.warning("real-speech set skipped: %s", reason)
        recorded, reason = real_recording_clips()
        sets.update(recorded)
        if reason:
            results["real_read"] = {"skipped": reason}
            logger.warning("packaged real recordings skipped: %s", reason)
    return {k: v for k, v in sets.items() if v}


def markdown_table(results: Dict[str, Dict], before: Optional[Dict[str, Dict]] = None) -> str:
    """Return a markdown table: one column per set (``before -> after`` with ``before``)."""
    names = [k for k, v in results.items() if "skipped" not in v and k != "timing"]
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key, label in TABLE_ROWS:
        cells = []
        for n in names:
            new = results[n].get(key)
            old = (before or {}).get(n, {}).get(key)
            if before is not None and key not in ("clips", "seconds"):
                cells.append(f"{old} → **{new}**")
            else:
                cells.append(str(new))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Run `gemo eval a2e`."""
    import torch

    from gemo_ros.audio.model import load_a2e

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(max(1, args.threads))
    if args.video and not args.before:
        raise SystemExit("--video needs --before WEIGHTS")
    model = load_a2e(args.weights)
    old = load_a2e(args.before) if args.before else None
    results: Dict[str, Dict] = {}
    sets = _sets(args, results)
    before: Optional[Dict[str, Dict]] = {} if old is not None else None
    for name, clips in sets.items():
        results[name] = evaluate_set(model, clips)
        logger.info("%s: %s", name, results[name])
        if old is not None:
            before[name] = evaluate_set(old, clips)
    results["timing"] = {"model_ms_per_audio_second": model_ms_per_audio_second(model)}
    if old is not None:
        before["timing"] = {"model_ms_per_audio_second": model_ms_per_audio_second(old)}
    if args.plot:
        clip = sets.get(args.plot_set, next(iter(sets.values())))[0]
        plot_clip(model, clip, args.plot, before=old)
        logger.info("wrote %s", args.plot)
    report = results if before is None else {"after": results, "before": before}
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown_table(results, before))
    if args.video:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            wav = os.path.join(tmp, "sentence.wav")
            voice = sentence_audio(wav)
            side_by_side_video(args.before, args.weights, wav, args.video)
        logger.info("wrote %s (%s)", args.video, voice)
    return 0
