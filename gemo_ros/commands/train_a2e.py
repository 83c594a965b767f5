"""``gemo train a2e``: the command line over :mod:`gemo_ros.train.a2e`."""

import argparse
import logging
import os
import time

import numpy as np

from gemo_ros.commands.common import add_device_argument, device_or_exit
from gemo_ros.train.a2e import (DATA_RATE, _batch, _validate, _voices_for_training, a2e_loss,
                                channel_weights, clip_targets, finetune_decoder,
                                generate_dataset, lag_by_family, load_clips)

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `gemo train a2e` options."""
    parser.add_argument("--data", default="/tmp/gemo_a2e_data", help="data set cache folder")
    parser.add_argument("--clips", type=int, default=6000, help="number of training clips")
    parser.add_argument("--workers", type=int, default=1, help="synthesis processes")
    parser.add_argument("--generate-only", action="store_true",
                        help="only synthesise the data set")
    parser.add_argument("--out", default="runs/a2e", help="output folder (checkpoints, log)")
    parser.add_argument("--steps", type=int, default=500, help="optimiser steps")
    parser.add_argument("--batch", type=int, default=8, help="clips per step")
    parser.add_argument("--crop", type=int, default=120, help="frames trained per clip")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--encoder", default=None,
                        help="directory of a pretrained Wav2Vec2/HuBERT/WavLM checkpoint to "
                             "use as the encoder (default: the compact config, from scratch)")
    parser.add_argument("--resume", action="store_true", help="resume from OUT/last.pt")
    parser.add_argument("--init", default=None, help="start from these a2e weights")
    parser.add_argument("--decoder-only", action="store_true",
                        help="with --init: train only the decoder on cached encoder features "
                             "of --clips augmented clips for --steps steps")
    parser.add_argument("--lead-ms", type=float, default=0.0,
                        help="train on targets this much earlier (compensates a measured "
                             "output lag; the lag per family is logged at the end)")
    parser.add_argument("--closure-weight", type=float, default=6.0,
                        help="extra weight of the lip-aperture loss on lip closures "
                             "(higher: more /p b m/ closed, more false closures)")
    parser.add_argument("--add-layers", type=int, default=0,
                        help="with --init: add this many transformer layers on top of the "
                             "encoder, initialised as the identity (more capacity, same "
                             "output at step 0)")
    parser.add_argument("--aperture-l2", type=float, default=0.0,
                        help="weight of a squared-error term on the unclipped lip aperture "
                             "(fits the mean of ambiguous frames instead of their median)")
    parser.add_argument("--vowel-open", type=float, default=0.0,
                        help="with --decoder-only: weight of a hinge that keeps the lip "
                             "aperture at vowel middles above --vowel-floor (fewer false "
                             "closures)")
    parser.add_argument("--vowel-floor", type=float, default=0.12,
                        help="aperture the --vowel-open hinge asks for at vowel middles")
    parser.add_argument("--bilabial-close", type=float, default=0.0,
                        help="with --decoder-only: weight of a hinge that asks for aperture "
                             "<= 0 on the frames of /p b m/ (closure on bilabials only)")
    parser.add_argument("--feature-cache", default="",
                        help="with --decoder-only: keep the encoded features in this file and "
                             "reuse them in the next run with the same weights' encoder, "
                             "clips and seed (same result, no encoding)")
    parser.add_argument("--checkpoint-every", type=int, default=50)
    add_device_argument(parser)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Run `gemo train a2e`."""
    import sys

    import torch
    from tqdm import tqdm

    from gemo_ros.audio.model import A2EConfig, AudioToExpression

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    device = device_or_exit(args.device, "gemo train a2e")
    t0 = time.time()
    paths = generate_dataset(args.data, args.clips, _voices_for_training(), args.seed,
                             workers=args.workers)
    logger.info("data set: %d shards in %s (%.0f s)", len(paths), args.data, time.time() - t0)
    if args.generate_only:
        return 0
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, args.threads))
    rng = np.random.default_rng(args.seed)
    clips = load_clips(paths)[:args.clips]
    rng.shuffle(clips)
    n_val = max(8, len(clips) // 50)
    val, train = clips[:n_val], clips[n_val:]
    if args.init:
        from gemo_ros.audio.model import load_a2e
        model = load_a2e(args.init, device=device).train()
        if args.add_layers > 0:
            from gemo_ros.train.a2e import deepen_encoder
            model = deepen_encoder(model, args.add_layers)
    else:
        model = AudioToExpression(A2EConfig(encoder_path=args.encoder)).to(device)
    hop = model.hop
    if (args.vowel_open > 0 or args.bilabial_close > 0) and not args.decoder_only:
        raise SystemExit("--vowel-open / --bilabial-close need --decoder-only")
    if args.decoder_only:
        if not args.init:
            raise SystemExit("--decoder-only needs --init WEIGHTS")
        tgts = [clip_targets(c, model.fps, hop, args.lead_ms / 1000.0) for c in train]
        t_ft = time.time()
        parts = finetune_decoder(model, train, tgts, args.steps, args.lr, args.seed,
                                 batch=2 * args.batch, closure_weight=args.closure_weight,
                                 aperture_l2=args.aperture_l2, vowel_open=args.vowel_open,
                                 vowel_floor=args.vowel_floor,
                                 bilabial_close=args.bilabial_close,
                                 lead_s=args.lead_ms / 1000.0,
                                 feature_cache=args.feature_cache or None)
        os.makedirs(args.out, exist_ok=True)
        out = os.path.join(args.out, "a2e.safetensors")
        info = {"command": "gemo " + " ".join(sys.argv[1:]), "seed": args.seed,
                "init": args.init, "decoder_steps": args.steps, "clips": len(train),
                "closure_weight": args.closure_weight, "lead_ms": args.lead_ms,
                "aperture_l2": args.aperture_l2, "vowel_open": args.vowel_open,
                "vowel_floor": args.vowel_floor, "bilabial_close": args.bilabial_close,
                "val_lag_ms_by_family": lag_by_family(model.cpu().eval(), val),
                "train_seconds": round(time.time() - t_ft),
                "last_loss": {k: round(v, 5) for k, v in parts.items()}}
        model.cpu().eval().save(out, extra=info)
        logger.info("saved %s: %s", out, info)
        return 0
    lead = args.lead_ms / 1000.0
    targets = [clip_targets(c, model.fps, hop, lead) for c in tqdm(train, desc="targets")]
    val_targets = [clip_targets(c, model.fps, hop, lead) for c in val]
    weights = torch.from_numpy(channel_weights()).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warm = min(100, args.steps // 10)

    def lr_at(step: int) -> float:
        if step < warm:
            return args.lr * (step + 1) / warm
        return args.lr * 0.5 * (1 + np.cos(np.pi * (step - warm) / max(1, args.steps - warm)))

    os.makedirs(args.out, exist_ok=True)
    last = os.path.join(args.out, "last.pt")
    step = 0
    if args.resume and os.path.exists(last):
        ck = torch.load(last, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        rng = np.random.default_rng([args.seed, step])
        logger.info("resumed from %s at step %d", last, step)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("model: %d parameters; %d train / %d val clips (%.2f h of audio)", n_params,
                len(train), len(val), sum(len(c.audio) for c in train) / DATA_RATE / 3600)
    t_train = time.time()
    bar = tqdm(total=args.steps, initial=step, desc="train a2e")
    val_loss = float("nan")
    while step < args.steps:
        model.train()
        idx = rng.integers(0, len(train), args.batch)
        batch = [x.to(device)
                 for x in _batch(train, targets, idx, rng, model, True, args.crop)]
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss, parts = a2e_loss(model, *batch, weights, args.closure_weight, args.aperture_l2)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{float(loss):.4f}", jaw_etc=f"{parts['neutral']:.4f}",
                        val=f"{val_loss:.4f}")
        if step % args.checkpoint_every == 0 or step == args.steps:
            val_loss = _validate(model, val, val_targets, weights, device)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step},
                       last)
            logger.info("step %d loss %.4f val %.4f (%.0f s)", step, float(loss), val_loss,
                        time.time() - t_train)
    bar.close()
    from collections import Counter

    from gemo_ros.train.a2e import HELDOUT_FAMILIES, family_of
    info = {"command": "gemo " + " ".join(sys.argv[1:]), "seed": args.seed,
            "init": args.init or "", "steps": args.steps, "batch": args.batch,
            "clips": len(train),
            "clips_per_family": dict(Counter(family_of(c.voice) for c in train)),
            "heldout_families": list(HELDOUT_FAMILIES),
            "hours_audio": round(sum(len(c.audio) for c in train) / DATA_RATE / 3600, 3),
            "train_seconds": round(time.time() - t_train), "val_loss": round(val_loss, 5),
            "parameters": n_params, "add_layers": args.add_layers,
            "aperture_l2": args.aperture_l2, "closure_weight": args.closure_weight,
            "lr": args.lr}
    model.cpu().eval()
    # Lag per family on the validation clips, against the true (not the lead) targets.
    info["lead_ms"] = args.lead_ms
    info["val_lag_ms_by_family"] = lag_by_family(model, val)
    out = os.path.join(args.out, "a2e.safetensors")
    model.save(out, extra=info)
    logger.info("saved %s: %s", out, info)
    return 0
