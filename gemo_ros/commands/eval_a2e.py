"""``gemo eval a2e``: the command line over :mod:`gemo_ros.train.eval_a2e`."""

import argparse
import json
import logging
from typing import Dict

from gemo_ros.train.eval_a2e import (evaluate_set, heldout_espeak_clips, hibari_clips,
                                     plot_clip)

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `gemo eval a2e` options."""
    parser.add_argument("--weights", default="default", help="a2e weights (file or folder)")
    parser.add_argument("--espeak-clips", type=int, default=34,
                        help="clips with held-out espeak voices")
    parser.add_argument("--hibari-clips", type=int, default=20, help="hibari-tts clips")
    parser.add_argument("--plot", default="docs/a2e_curves.png", help="curve plot ('' = none)")
    parser.add_argument("--json", default="", help="also write the metrics as JSON here")
    parser.add_argument("--threads", type=int, default=1)


def run(args: argparse.Namespace) -> int:
    """Run `gemo eval a2e`."""
    import torch

    from gemo_ros.audio.model import load_a2e

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(max(1, args.threads))
    model = load_a2e(args.weights)
    results: Dict[str, Dict] = {}
    sets = {"espeak_heldout": heldout_espeak_clips(args.espeak_clips)}
    if args.hibari_clips > 0:
        clips, reason = hibari_clips(args.hibari_clips)
        if clips:
            sets["hibari"] = clips
        else:
            results["hibari"] = {"skipped": reason}
            logger.warning("hibari set skipped: %s", reason)
    for name, clips in sets.items():
        results[name] = evaluate_set(model, clips)
        logger.info("%s: %s", name, results[name])
    if args.plot:
        clip = sets.get("hibari", sets["espeak_heldout"])[0]
        plot_clip(model, clip, args.plot)
        logger.info("wrote %s", args.plot)
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0
