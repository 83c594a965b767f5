"""A2e evaluation (`gemo eval a2e`): lip-sync and emotion metrics on speech it never saw.

One set per source family (issue 14), every one unseen in training in some way:

* **espeak, held-out voices**: libespeak-ng voice variants (and, for half of them, the
  Caribbean accent ``en-029``) never trained on; phone times from the synthesiser.
* **festival** (held-out family): Festival's kal/ked diphone and slt HTS voices, a family
  never trained on; phone times from Festival's own segment relation.
* **flite, held-out voices**: Flite's kal/kal16 diphone voices (Flite's clustergen voices
  are trained on); phone times from a pocketsphinx forced alignment.
* **hibari**: the neural ``hibari-tts`` voice (trained on with other sentences; fed at
  24 kHz so the resampler is exercised), pocketsphinx alignment.
* **real speech** (separately): recordings of a real person (:data:`REAL_SPEECH`) as
  recorded and after a 64 kbit/s MP3 round trip, pocketsphinx alignment of the known words.

For every clip the phone timeline gives target curves (:func:`speech_curves`), and:

* aperture correlation: Pearson r of predicted vs target lip aperture
  (:func:`~gemo_ros.train.visemes.lip_aperture`), all frames of a set; aperture lag: the
  shift (ms) that maximises it per clip (median; positive = prediction late);
* lip-closure rate: share of /p b m/ phones where the predicted aperture drops below 0.05
  within the phone (+-1 frame), and the same test at the middle of vowels (false
  closures; lower is better); vowel aperture: mean predicted aperture at vowel middles;
* jaw correlation, jaw MAE, jaw lag and the median onset lag at speech onsets (jaw
  crossing 0.05 after >= 0.3 s of rest);
* emotion: per emotion at intensity 1, the mean absolute error to the recipe target, and
  the separation of the clip-mean coefficient offsets (emotional minus neutral output):
  leave-one-out nearest-centroid accuracy, the smallest distance between two emotion
  centroids and the mean distance of a clip to its own centroid (L2, coefficient units).
"""

import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from gemo_ros.train.speech_synth import ARPABET_TO_ESPEAK, align  # noqa: F401 (API)

logger = logging.getLogger(__name__)

APERTURE_CLOSED = 0.05


class EvalClip:
    """Audio at its own rate, phone timeline (espeak names, seconds) and a label."""

    def __init__(self, audio: np.ndarray, rate: int,
                 phones: List[Tuple[str, float, float]], source: str, text: str) -> None:
        self.audio, self.rate, self.phones, self.source, self.text = (audio, rate, phones,
                                                                      source, text)


def heldout_espeak_clips(n: int, seed: int = 777) -> List[EvalClip]:
    """Synthesise ``n`` clips with held-out espeak voices (16 kHz)."""
    from gemo_ros.train.a2e import DATA_RATE, eval_voices, synth_clip

    rng = np.random.default_rng(seed)
    voices = eval_voices()
    out = []
    for i in range(n):
        c = synth_clip(rng, [voices[i % len(voices)]])
        out.append(EvalClip(c.audio, DATA_RATE, c.phones, f"espeak:{c.voice}", c.text))
    return out


def hibari_clips(n: int, seed: int = 4242) -> Tuple[List[EvalClip], Optional[str]]:
    """Synthesise ``n`` hibari-tts clips and align them; return (clips, reason if none)."""
    try:
        from hibari import SAMPLE_RATE, Hibari
    except ImportError as exc:
        return [], f"hibari-tts not installed ({exc})"
    from gemo_ros.audio.signal import resample
    from gemo_ros.train.speech_synth import random_sentence

    tts = Hibari()
    rng = np.random.default_rng(seed)
    out, failures = [], []
    while len(out) < n and len(failures) < 3 * n:
        text = random_sentence(rng, 4, 12)
        audio = tts(text, seed=int(rng.integers(1 << 30)))
        lead = np.zeros(int(rng.uniform(0.2, 0.6) * SAMPLE_RATE), np.float32)
        audio = np.concatenate([lead, audio.astype(np.float32), lead])
        try:
            phones = align(resample(audio, SAMPLE_RATE, 16000), text)
        except RuntimeError as exc:
            failures.append(str(exc))
            continue
        out.append(EvalClip(audio, SAMPLE_RATE, phones, "hibari:heart", text))
    reason = None if out else f"alignment failed: {failures[:2]}"
    return out, reason


def synth_family_clips(voices: Sequence[str], n: int, seed: int
                       ) -> Tuple[List[EvalClip], Optional[str]]:
    """Synthesise ``n`` clips cycling over ``voices`` (``family:voice``) at 16 kHz.

    Returns (clips, reason if none could be made: engine missing or every clip failed).
    """
    from gemo_ros.train.a2e import DATA_RATE, synth_clip

    rng = np.random.default_rng(seed)
    out, errors = [], []
    for i in range(n):
        try:
            c = synth_clip(rng, [voices[i % len(voices)]])
        except (RuntimeError, OSError, ValueError) as exc:
            errors.append(str(exc))
            if len(errors) > n:
                break
            continue
        out.append(EvalClip(c.audio, DATA_RATE, c.phones, c.voice, c.text))
    return out, (None if out else f"no clips: {errors[:1]}")


def festival_clips(n: int, seed: int = 9090) -> Tuple[List[EvalClip], Optional[str]]:
    """Clips of the held-out Festival family (phone times from Festival itself)."""
    from gemo_ros.train import speech_synth as ss

    if not ss.festival_available():
        return [], "festival or its voices not installed (apt install festival festvox-*)"
    return synth_family_clips([f"festival:{v}" for v in ss.festival_voices()], n, seed)


def flite_heldout_clips(n: int, seed: int = 8080) -> Tuple[List[EvalClip], Optional[str]]:
    """Clips of the Flite voices never trained on (kal, kal16; pocketsphinx alignment)."""
    from gemo_ros.train import speech_synth as ss
    from gemo_ros.train.a2e import FLITE_TRAIN_VOICES

    if not ss.flite_available():
        return [], "flite not installed (apt install flite)"
    held = [f"flite:{v}" for v in ss.FLITE_VOICES if v not in FLITE_TRAIN_VOICES]
    return synth_family_clips(held, n, seed)


#: Recordings of real people found in registry packages (evaluation only, never training):
#: Debian ``alsa-utils`` speaker-test prompts, a human voice naming each channel, 48 kHz.
REAL_SPEECH = {
    "/usr/share/sounds/alsa/Front_Center.wav": "front center",
    "/usr/share/sounds/alsa/Front_Left.wav": "front left",
    "/usr/share/sounds/alsa/Front_Right.wav": "front right",
    "/usr/share/sounds/alsa/Rear_Center.wav": "rear center",
    "/usr/share/sounds/alsa/Rear_Left.wav": "rear left",
    "/usr/share/sounds/alsa/Rear_Right.wav": "rear right",
    "/usr/share/sounds/alsa/Side_Left.wav": "side left",
    "/usr/share/sounds/alsa/Side_Right.wav": "side right",
}


def _recording(source, text: str) -> Tuple[np.ndarray, int, List[Tuple[str, float, float]]]:
    """Return ``(audio, rate, phones)`` of a recording (a path or a binary file).

    Averaged to mono, with 0.3 s of rest added before and after the words; ``phones`` is a
    pocketsphinx alignment of ``text``. Raises RuntimeError when the words cannot be aligned.
    """
    import soundfile as sf

    from gemo_ros.audio.signal import resample

    audio, rate = sf.read(source, dtype="float32", always_2d=True)
    lead = np.zeros(int(0.3 * rate), np.float32)
    audio = np.concatenate([lead, audio.mean(axis=1), lead])
    return audio, rate, align(resample(audio, rate, 16000), text)


def real_speech_clips(mp3_kbps: int = 64) -> Tuple[List[EvalClip], Optional[str]]:
    """Real human speech (:data:`REAL_SPEECH`) as recorded and after an MP3 round trip.

    Phone times come from a pocketsphinx alignment of the known words. Returns (clips,
    reason if none).
    """
    from gemo_ros.train.a2e import codec_roundtrip

    out, errors = [], []
    for path, text in REAL_SPEECH.items():
        if not os.path.exists(path):
            errors.append(f"{path} missing (apt install alsa-utils)")
            continue
        try:
            audio, rate, phones = _recording(path, text)
        except RuntimeError as exc:
            errors.append(str(exc))
            continue
        name = os.path.basename(path)
        out.append(EvalClip(audio, rate, phones, f"real:{name}", text))
        if mp3_kbps:
            try:
                coded = codec_roundtrip(audio, "mp3", mp3_kbps, rate)
                out.append(EvalClip(coded, rate, phones, f"real-mp3{mp3_kbps}:{name}", text))
            except RuntimeError as exc:
                errors.append(str(exc))
    return out, (None if out else f"no real speech: {errors[:2]}")


#: Recordings of real people shipped with the package (``gemo_ros/assets/real_speech``: its
#: README names the source, CMU PocketSphinx's BSD-2 test data): LibriVox read speech
#: (decoded from 64 kbit/s MP3) and spoken commands, with /p b m/. Evaluation only.
REAL_RECORDINGS_DIR = "real_speech"


def real_recording_clips() -> Tuple[Dict[str, List[EvalClip]], Optional[str]]:
    """Return the packaged real recordings as ``{"real_read": [...], "real_spoken": [...]}``.

    Phone times from a pocketsphinx alignment of the transcripts; 0.3 s of rest added
    before and after each. Returns (sets, reason if none).
    """
    import json
    from importlib import resources

    folder = resources.files("gemo_ros") / "assets" / REAL_RECORDINGS_DIR
    try:
        texts = json.loads((folder / "transcripts.json").read_text())
    except (FileNotFoundError, OSError, ValueError) as exc:
        return {}, f"no packaged real recordings: {exc}"
    sets: Dict[str, List[EvalClip]] = {"real_read": [], "real_spoken": []}
    errors = []
    for name, text in sorted(texts.items()):
        try:
            with (folder / name).open("rb") as fh:
                audio, rate, phones = _recording(fh, text)
        except (OSError, RuntimeError) as exc:
            errors.append(f"{name}: {exc}")
            continue
        kind = "real_read" if name.startswith("librivox") else "real_spoken"
        sets[kind].append(EvalClip(audio, rate, phones, f"{kind}:{name}", text))
    sets = {k: v for k, v in sets.items() if v}
    return sets, (None if sets else f"no packaged real recordings: {errors[:2]}")


def model_ms_per_audio_second(model, seconds: float = 10.0, repeats: int = 3) -> float:
    """Whole-utterance encode + neutral decode time per second of audio (ms, best of N)."""
    import time

    import torch

    x = torch.from_numpy(np.random.default_rng(0).standard_normal(int(seconds * 16000))
                         .astype(np.float32) * 0.1)[None]
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            feats = model.encode(x)
            model.decode(feats, torch.zeros(1, dtype=torch.long), torch.zeros(1))
            best = min(best, time.perf_counter() - t0)
    return round(best / seconds * 1000.0, 2)


def _predict(model, clip: EvalClip, emotion: int, intensity: float) -> np.ndarray:
    from gemo_ros.audio.offline import infer_utterance

    return infer_utterance(model, clip.audio, clip.rate, emotion, intensity)[1]


def _targets(clip: EvalClip, num_frames: int, fps: float) -> np.ndarray:
    from gemo_ros.audio.signal import resample
    from gemo_ros.train.visemes import speech_curves

    scale = 32768.0 if clip.audio.dtype == np.int16 else 1.0
    audio = resample(clip.audio.astype(np.float32) / scale, clip.rate, 16000)
    return speech_curves(clip.phones, num_frames, fps=fps, audio=audio, sample_rate=16000)


def _closure_hits(pred: np.ndarray, phones, fps: float, kind: str = "bilabial"
                  ) -> Tuple[int, int]:
    """Count phones of class ``kind`` whose lip aperture drops below the closed level."""
    from gemo_ros.train.visemes import lip_aperture, phone_class

    ap = lip_aperture(pred)
    hits = total = 0
    for name, s, e in phones:
        if phone_class(name) != kind:
            continue
        if kind == "vowel":  # judge a vowel at its middle only
            s = e = 0.5 * (s + e)
        lo = max(0, int(np.floor(s * fps)) - 1)
        hi = min(len(ap), int(np.ceil(e * fps)) + 2)
        if hi <= lo:
            continue
        total += 1
        hits += int(ap[lo:hi].min() < APERTURE_CLOSED)
    return hits, total


def _best_lag(pred: np.ndarray, target: np.ndarray, fps: float, max_ms: float = 200) -> float:
    """Return the lag (ms) maximising the correlation; > 0 means the prediction is late."""
    k = int(max_ms / 1000 * fps)
    p, t = pred - pred.mean(), target - target.mean()
    scores = []
    for lag in range(-k, k + 1):
        a = p[max(0, lag):len(p) + min(0, lag)]
        b = t[max(0, -lag):len(t) + min(0, -lag)]
        scores.append(float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9)))
    i = int(np.argmax(scores))
    frac = 0.0
    if 0 < i < len(scores) - 1:  # parabolic refinement between frames
        y0, y1, y2 = scores[i - 1], scores[i], scores[i + 1]
        den = y0 - 2 * y1 + y2
        frac = 0.5 * (y0 - y2) / den if abs(den) > 1e-12 else 0.0
    return (i - k + frac) / fps * 1000.0


def _onsets(jaw: np.ndarray, fps: float, level: float = 0.05, rest_s: float = 0.3
            ) -> List[float]:
    """Return frame positions (sub-frame) where jaw rises through ``level`` after rest."""
    rest = int(rest_s * fps)
    out = []
    for i in range(rest, len(jaw)):
        if jaw[i] >= level > jaw[i - 1] and np.all(jaw[i - rest:i] < level):
            out.append(i - 1 + (level - jaw[i - 1]) / (jaw[i] - jaw[i - 1]))
    return out


def _vowel_middles(phones, fps: float, num_frames: int) -> List[int]:
    """Frame indices at the middle of every vowel."""
    from gemo_ros.train.visemes import phone_class

    out = []
    for name, s, e in phones:
        k = int(round(0.5 * (s + e) * fps))
        if phone_class(name) == "vowel" and 0 <= k < num_frames:
            out.append(k)
    return out


def evaluate_set(model, clips: Sequence[EvalClip]) -> Dict[str, float]:
    """Return lip-sync and emotion metrics over a list of clips."""
    from gemo_ros.emotions import EMOTIONS
    from gemo_ros.face.arkit import ARKIT_INDEX
    from gemo_ros.face.emotion_recipes import combine_with_speech

    from gemo_ros.train.visemes import lip_aperture

    fps = model.fps
    jaw = ARKIT_INDEX["jawOpen"]
    hits = total = v_hits = v_total = 0
    preds, tgts, lags, onset_lags = [], [], [], []
    ap_pred, ap_tgt, ap_lags, vowel_ap, vowel_ap_tgt = [], [], [], [], []
    emo_err = {e: [] for e in EMOTIONS[1:]}
    offsets = {e: [] for e in EMOTIONS[1:]}
    for clip in clips:
        neutral = _predict(model, clip, 0, 0.0)
        target = _targets(clip, len(neutral), fps)
        h, t = _closure_hits(neutral, clip.phones, fps)
        hits, total = hits + h, total + t
        h, t = _closure_hits(neutral, clip.phones, fps, "vowel")
        v_hits, v_total = v_hits + h, v_total + t
        preds.append(neutral[:, jaw])
        tgts.append(target[:, jaw])
        ap_p, ap_t = lip_aperture(neutral), lip_aperture(target)
        ap_pred.append(ap_p)
        ap_tgt.append(ap_t)
        ap_lags.append(_best_lag(ap_p, ap_t, fps))
        for k in _vowel_middles(clip.phones, fps, len(ap_p)):
            vowel_ap.append(float(ap_p[k]))
            vowel_ap_tgt.append(float(ap_t[k]))
        lags.append(_best_lag(neutral[:, jaw], target[:, jaw], fps))
        on_p, on_t = _onsets(neutral[:, jaw], fps), _onsets(target[:, jaw], fps)
        for o in on_t:
            near = [p for p in on_p if abs(p - o) * 1000 / fps < 250]
            if near:
                onset_lags.append((min(near, key=lambda p: abs(p - o)) - o) * 1000 / fps)
        for e_id, e in enumerate(EMOTIONS[1:], start=1):
            out = _predict(model, clip, e_id, 1.0)
            tgt = combine_with_speech(target, e_id, 1.0)
            emo_err[e].append(float(np.abs(out - tgt).mean()))
            offsets[e].append((out - neutral).mean(axis=0))
    p, t = np.concatenate(preds), np.concatenate(tgts)
    ap_p, ap_t = np.concatenate(ap_pred), np.concatenate(ap_tgt)
    res: Dict[str, float] = {
        "clips": len(clips),
        "seconds": round(float(len(p) / fps), 1),
        "aperture_corr": round(float(np.corrcoef(ap_p, ap_t)[0, 1]), 4),
        "aperture_lag_ms_median": round(float(np.median(ap_lags)), 1),
        "aperture_lag_ms_mean": round(float(np.mean(ap_lags)), 1),
        "vowel_aperture_mean": round(float(np.mean(vowel_ap)), 4) if vowel_ap else None,
        "target_vowel_aperture_mean": (round(float(np.mean(vowel_ap_tgt)), 4)
                                       if vowel_ap_tgt else None),
        "bilabials": total,
        "lip_closure_rate": round(hits / max(1, total), 4),
        "vowel_closure_rate": round(v_hits / max(1, v_total), 4),
        "jaw_corr": round(float(np.corrcoef(p, t)[0, 1]), 4),
        "jaw_mae": round(float(np.abs(p - t).mean()), 4),
        "lag_ms_xcorr_median": round(float(np.median(lags)), 1),
        "onset_lag_ms_median": round(float(np.median(onset_lags)), 1) if onset_lags else None,
        "onsets": len(onset_lags),
    }
    # Emotion separation: nearest-centroid accuracy (leave-one-out) of clip-mean offsets.
    names = list(offsets)
    x = np.stack([np.stack(offsets[e]) for e in names])          # [E, N, 52]
    cent = x.mean(axis=1)
    correct = n_all = 0
    for ei in range(len(names)):
        for ci in range(x.shape[1]):
            c = cent.copy()
            if x.shape[1] > 1:
                c[ei] = (cent[ei] * x.shape[1] - x[ei, ci]) / (x.shape[1] - 1)
            correct += int(np.argmin(np.linalg.norm(c - x[ei, ci], axis=1)) == ei)
            n_all += 1
    spread = float(np.mean(np.linalg.norm(x - cent[:, None], axis=2)))
    dists = np.linalg.norm(cent[:, None] - cent[None], axis=2) + np.eye(len(names)) * 1e9
    res["emotion_centroid_accuracy"] = round(correct / max(1, n_all), 4)
    res["emotion_min_centroid_dist"] = round(float(dists.min()), 4)
    res["emotion_within_spread"] = round(spread, 4)
    for e in names:
        res[f"emotion_mae_{e}"] = round(float(np.mean(emo_err[e])), 4)
    return res


def plot_clip(model, clip: EvalClip, path: str, before=None) -> None:
    """Plot predicted vs target curves for one clip (aperture, mouth channels, emotions).

    ``before``: optional older model drawn in grey on the speech rows for comparison.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gemo_ros.face.arkit import ARKIT_INDEX
    from gemo_ros.face.emotion_recipes import combine_with_speech
    from gemo_ros.train.visemes import lip_aperture, phone_class

    fps = model.fps
    neutral = _predict(model, clip, 0, 0.0)
    target = _targets(clip, len(neutral), fps)
    old = _predict(before, clip, 0, 0.0)[:len(neutral)] if before is not None else None
    t = np.arange(len(neutral)) / fps
    rows = [("lip aperture", None), ("jawOpen", "jawOpen"), ("mouthClose", "mouthClose"),
            ("mouthPucker", "mouthPucker")]
    emo = [("happy", "mouthSmileLeft"), ("sad", "mouthFrownLeft"),
           ("surprised", "browInnerUp"), ("angry", "browDownLeft")]
    fig, axes = plt.subplots(len(rows) + 1, 1, figsize=(11, 10), sharex=True)
    for ax, (title, ch) in zip(axes, rows):
        def get(c):
            return lip_aperture(c) if ch is None else c[:, ARKIT_INDEX[ch]]
        ax.plot(t, get(target), "k--", lw=1.2, label="target (phones)")
        if old is not None:
            ax.plot(t[:len(old)], get(old), color="0.6", lw=1.2, label="before (old weights)")
        ax.plot(t, get(neutral), "C0", lw=1.5, label="predicted (neutral)")
        ax.set_ylabel(title)
        hi = max(0.1, float(max(get(target).max(), get(neutral).max())) * 1.15)
        ax.set_ylim(-0.35 if ch is None else -0.02, hi)
        for name, s, e in clip.phones:
            if phone_class(name) == "bilabial":
                ax.axvspan(s, e, color="C3", alpha=0.15, lw=0)
    axes[0].axhline(APERTURE_CLOSED, color="C3", lw=0.8, ls=":")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[0].set_title(f"{clip.source}: \"{clip.text}\"  (red: /p b m/; dotted: closed level)",
                      fontsize=9)
    ax = axes[-1]
    for i, (e, ch) in enumerate(emo):
        k = ARKIT_INDEX[ch]
        out = _predict(model, clip, e, 1.0)
        ax.plot(t, combine_with_speech(target, e, 1.0)[:, k], "--", color=f"C{i + 1}", lw=1)
        ax.plot(t, out[:, k], color=f"C{i + 1}", lw=1.5, label=f"{e}: {ch}")
    ax.set_ylabel("emotion (i=1)")
    ax.set_xlabel("time (s)")
    ax.legend(loc="upper right", fontsize=7, ncol=4)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


#: The side-by-side sentence: many /p b m/ and open vowels.
VIDEO_SENTENCE = "Bob bought a big map, and my mom paid the bill."


def sentence_audio(path: str, text: str = VIDEO_SENTENCE) -> str:
    """Write ``text`` spoken by a held-out voice (Festival ked, else espeak en-029) to a WAV.

    Returns the voice used.
    """
    import soundfile as sf

    from gemo_ros.train import speech_synth as ss

    if ss.festival_available() and "ked_diphone" in ss.festival_voices():
        utt = ss.festival_synth([text], "ked_diphone")[0]
        voice = "festival:ked_diphone"
    else:
        utt = ss.synthesize(text, voice="en-029")
        voice = "espeak:en-029"
    pad = np.zeros(int(0.3 * utt.sample_rate), np.float32)
    sf.write(path, np.concatenate([pad, utt.audio, pad, pad]), utt.sample_rate)
    return voice


def side_by_side_video(before: str, after: str, audio_path: str, out_path: str,
                       size: int = 240, fps: float = 25.0) -> None:
    """Render the same speech with two a2e weights (``gemo render``) and stack them.

    Left: ``before``, right: ``after``; emotion neutral, no idle motion, no emotion
    residual (lip sync only), the speech muxed in. Raises RuntimeError when a render fails.
    """
    import subprocess
    import sys
    import tempfile

    import imageio.v2 as imageio
    import imageio_ffmpeg
    from PIL import Image, ImageDraw

    with tempfile.TemporaryDirectory() as tmp:
        clips = []
        for name, weights in (("before", before), ("after", after)):
            out = os.path.join(tmp, f"{name}.mp4")
            cmd = [sys.executable, "-m", "gemo_ros.cli", "render", "--audio", audio_path,
                   "--a2e", weights, "--residual", "none", "--size", str(size), "--no-idle",
                   "--fps", str(fps), "-o", out]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"gemo render failed: {res.stderr[-400:]}")
            clips.append(imageio.mimread(out, memtest=False))
        labels = ("old weights", "new weights")
        silent = os.path.join(tmp, "stacked.mp4")
        writer = imageio.get_writer(silent, fps=fps, codec="libx264", quality=6,
                                    macro_block_size=8, ffmpeg_log_level="error")
        for a, b in zip(*clips):
            frame = Image.fromarray(np.concatenate([a, b], axis=1))
            draw = ImageDraw.Draw(frame)
            for k, label in enumerate(labels):
                x0 = k * a.shape[1] + 4
                draw.rectangle((x0, 3, x0 + 6 * len(label) + 6, 17), fill=(0, 0, 0))
                draw.text((x0 + 3, 5), label, fill=(255, 255, 255))
            writer.append_data(np.asarray(frame))
        writer.close()
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i",
                        silent, "-i", audio_path, "-c:v", "copy", "-c:a", "aac", "-b:a",
                        "64k", "-shortest", out_path], check=True)
