"""Audio-to-expression training (`gemo train a2e`): synthetic speech with phone timings.

Data: libespeak-ng speaks random sentences with many voices (accent x variant), rates,
pitches and volumes (:mod:`gemo_ros.train.speech_synth`); the phone events become viseme
curves with co-articulation (:mod:`gemo_ros.train.visemes`) and every clip is trained with
all eight emotions at random intensities (:mod:`gemo_ros.face.emotion_recipes`). Audio is
augmented on the fly (gain, noise, reverb, resampling, band limits). A set of voices is held
out for ``gemo eval a2e``.
"""

import logging
import os
import pickle
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

#: Model sample rate; the data set is stored at this rate.
DATA_RATE = 16000
#: English espeak voices (language part).
LANGUAGES: Tuple[str, ...] = (
    "en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd", "en-029",
)
#: Accent never used for training (evaluation only).
HELDOUT_LANGUAGES: Tuple[str, ...] = ("en-029",)
#: Every n-th variant (sorted by name) is held out for evaluation.
HELDOUT_VARIANT_EVERY = 6


def voice_split() -> Tuple[List[str], List[str], List[str]]:
    """Return (train languages, train variants, held-out variants) of espeak-ng voices."""
    from gemo_ros.train.speech_synth import list_variants
    variants = [v for v in list_variants() if " " not in v] or ["m1", "m2", "f1", "f2"]
    held = [v for i, v in enumerate(variants) if i % HELDOUT_VARIANT_EVERY == 3]
    train = [v for v in variants if v not in held]
    langs = [lang for lang in LANGUAGES if lang not in HELDOUT_LANGUAGES]
    return langs, train, held


def eval_voices() -> List[str]:
    """Return the held-out espeak voices: held-out variants with held-out and seen accents."""
    _, _, held = voice_split()
    held = [v for v in held if "whisper" not in v.lower()]
    out = []
    for i, v in enumerate(held):
        lang = HELDOUT_LANGUAGES[0] if i % 2 == 0 else "en-us"
        out.append(f"{lang}+{v}")
    return out


@dataclass
class PhoneClip:
    """One training clip: int16 audio at 16 kHz and its phone timeline (seconds)."""

    audio: np.ndarray                   # [S] int16
    phones: List[Tuple[str, float, float]]
    voice: str
    text: str


#: Synthesiser families (see :mod:`gemo_ros.train.speech_synth`). A voice is named
#: ``family:voice``; a name without a family is an espeak voice.
FAMILIES: Tuple[str, ...] = ("espeak", "flite", "festival", "hibari")
#: Families never trained on (evaluation only): a whole held-out synthesiser family.
HELDOUT_FAMILIES: Tuple[str, ...] = ("festival",)
#: Flite voices trained on (kal/kal16 share Festival's held-out kal speaker).
FLITE_TRAIN_VOICES: Tuple[str, ...] = ("awb", "rms", "slt")
#: Share of training clips per family (espeak has the most voices, the others the most
#: natural timing and spectra).
FAMILY_WEIGHTS = {"espeak": 0.4, "flite": 0.3, "hibari": 0.3}


def family_of(voice: str) -> str:
    """Return the synthesiser family of a voice name (``flite:awb`` -> ``flite``)."""
    return voice.split(":", 1)[0] if ":" in voice else "espeak"


def _speak(text: str, voice: str, rng: np.random.Generator, kw: dict
           ) -> Tuple[np.ndarray, List[Tuple[str, float, float]]]:
    """Speak one sentence: 16 kHz float audio and its phones (seconds from its start)."""
    from gemo_ros.audio.signal import resample
    from gemo_ros.train import speech_synth as ss

    fam = family_of(voice)
    name = voice.split(":", 1)[1] if ":" in voice else voice
    if fam == "espeak":
        utt = ss.synthesize(text, voice=name, **kw)
        return (resample(utt.audio, utt.sample_rate, DATA_RATE),
                [(p.name, p.start, p.end) for p in utt.phones])
    if fam == "festival":
        utt = ss.festival_synth([text], name, kw["stretch"])[0]
        return (resample(utt.audio, utt.sample_rate, DATA_RATE),
                [(p.name, p.start, p.end) for p in utt.phones])
    if fam == "flite":
        audio, rate = ss.flite_synth(text, name, kw["stretch"])
    elif fam == "hibari":
        audio, rate = ss.hibari_synth(text, kw["speed"], int(rng.integers(1 << 30)))
    else:
        raise ValueError(f"unknown synthesiser family {fam!r}")
    audio = resample(audio, rate, DATA_RATE)
    # Forced alignment of the known text (pocketsphinx) gives the phone times.
    return audio, ss.align(audio, text)


def synth_clip(rng: np.random.Generator, voices: Sequence[str]) -> PhoneClip:
    """Speak 1-2 random sentences with a random voice, rate, pitch and surrounding silence.

    ``voices`` are ``family:voice`` names (plain names are espeak voices). The speaking
    rate varies per family: espeak 110-270 wpm, Flite/Festival duration stretch 0.75-1.4,
    hibari speed 0.75-1.4.
    """
    from gemo_ros.train.speech_synth import random_sentence

    voice = str(voices[int(rng.integers(len(voices)))])
    if family_of(voice) == "espeak":
        kw = dict(rate=int(rng.integers(110, 270)), pitch=int(rng.integers(15, 90)),
                  pitch_range=int(rng.integers(10, 95)), volume=int(rng.integers(60, 170)),
                  word_gap=int(rng.integers(0, 4)) if rng.random() < 0.3 else 0)
    else:
        kw = dict(stretch=float(rng.uniform(0.75, 1.4)), speed=float(rng.uniform(0.75, 1.4)))
    pieces: List[np.ndarray] = []
    phones: List[Tuple[str, float, float]] = []
    t = float(rng.uniform(0.02, 0.6))
    pieces.append(np.zeros(int(t * DATA_RATE), np.float32))
    n_sent = 1 if rng.random() < 0.7 else 2
    texts = []
    for k in range(n_sent):
        for attempt in range(5):
            text = random_sentence(rng, 2, 10)
            try:
                audio, ph = _speak(text, voice, rng, kw)
                break
            except RuntimeError:  # alignment failed: another sentence
                if attempt == 4:
                    raise
        texts.append(text)
        phones += [(name, t + s, t + e) for name, s, e in ph]
        pieces.append(audio)
        t += len(audio) / DATA_RATE
        gap = float(rng.uniform(0.05, 0.7))
        pieces.append(np.zeros(int(gap * DATA_RATE), np.float32))
        t += int(gap * DATA_RATE) / DATA_RATE
    wave = np.concatenate(pieces)
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak > 1.0:  # some engines exceed full scale: scale, never clip
        wave = wave / peak
    return PhoneClip(audio=(wave * 32767).astype(np.int16), phones=phones, voice=voice,
                     text=" ".join(texts))


def _gen_shard(args: Tuple[int, int, List[str], str]) -> str:
    seed, n, voices, path = args
    rng = np.random.default_rng(seed)
    clips: List[PhoneClip] = []
    failures = 0
    while len(clips) < n:
        try:
            clips.append(synth_clip(rng, voices))
        except RuntimeError as exc:  # e.g. no alignment for 5 sentences in a row
            failures += 1
            if failures > n:
                raise RuntimeError(f"shard {path}: too many synthesis failures") from exc
    with open(path, "wb") as f:
        pickle.dump(clips, f, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def generate_dataset(out_dir: str, n_clips: int, voices: Sequence[str], seed: int,
                     workers: int = 1, shard_size: int = 250) -> List[str]:
    """Synthesise ``n_clips`` clips into pickle shards under ``out_dir``; return shard paths.

    Existing shards are kept (the generation is deterministic per shard seed).
    """
    from tqdm import tqdm

    os.makedirs(out_dir, exist_ok=True)
    jobs = []
    for i in range(0, n_clips, shard_size):
        path = os.path.join(out_dir, f"shard_{i // shard_size:04d}.pkl")
        if not os.path.exists(path):
            jobs.append((seed * 100003 + i, min(shard_size, n_clips - i), list(voices), path))
    paths = sorted(os.path.join(out_dir, p) for p in os.listdir(out_dir) if p.endswith(".pkl"))
    if not jobs:
        return paths
    if workers > 1:
        import multiprocessing as mp
        with mp.get_context("spawn").Pool(workers) as pool:
            for _ in tqdm(pool.imap_unordered(_gen_shard, jobs), total=len(jobs),
                          desc="synthesising"):
                pass
    else:
        for job in tqdm(jobs, desc="synthesising"):
            _gen_shard(job)
    return sorted(os.path.join(out_dir, p) for p in os.listdir(out_dir) if p.endswith(".pkl"))


class _ShardUnpickler(pickle.Unpickler):
    """Read shards written before :class:`PhoneClip` was renamed (they name it ``Clip``)."""

    def find_class(self, module: str, name: str):
        if module == __name__ and name == "Clip":
            return PhoneClip
        return super().find_class(module, name)


def load_clips(paths: Sequence[str]) -> List[PhoneClip]:
    """Load clips from pickle shards."""
    clips: List[PhoneClip] = []
    for p in paths:
        with open(p, "rb") as f:
            clips += _ShardUnpickler(f).load()
    return clips


def _espeak_training_voices() -> List[str]:
    langs, variants, _ = voice_split()
    return [lang for lang in langs] + [f"{lang}+{v}" for lang in langs for v in variants]


def training_voices_by_family() -> dict:
    """Return {family: voices} of the installed synthesisers that are trained on.

    Families in :data:`HELDOUT_FAMILIES` and engines that are not installed are left out.
    """
    from gemo_ros.train import speech_synth as ss

    out = {"espeak": _espeak_training_voices()}
    if ss.flite_available():
        out["flite"] = [f"flite:{v}" for v in FLITE_TRAIN_VOICES]
    try:
        import hibari  # noqa: F401
        out["hibari"] = ["hibari:heart"]
    except ImportError:
        pass
    return {f: v for f, v in out.items() if f not in HELDOUT_FAMILIES}


def _voices_for_training() -> List[str]:
    """Flat list of training voices; families weighted by repetition (FAMILY_WEIGHTS)."""
    by_fam = training_voices_by_family()
    total = sum(FAMILY_WEIGHTS.get(f, 0.1) for f in by_fam)
    n = 2000
    out: List[str] = []
    for fam, voices in by_fam.items():
        k = int(round(n * FAMILY_WEIGHTS.get(fam, 0.1) / total))
        out += [voices[i % len(voices)] for i in range(k)]
    return out


# ---------------------------------------------------------------------------- augmentation
def codec_roundtrip(x: np.ndarray, codec: str = "mp3", kbps: int = 64,
                    rate: int = DATA_RATE) -> np.ndarray:
    """Encode float audio with a lossy codec and decode it again (ffmpeg of imageio-ffmpeg).

    ``codec`` is ``"mp3"`` (libmp3lame) or ``"opus"`` (libopus). The codec's start delay is
    removed by cross-correlation with the input, so phone times stay aligned; the result
    has the input's length. Raises RuntimeError when ffmpeg fails.
    """
    import subprocess

    import imageio_ffmpeg

    enc = {"mp3": ["-c:a", "libmp3lame", "-f", "mp3"],
           "opus": ["-c:a", "libopus", "-f", "ogg"]}.get(codec)
    if enc is None:
        raise ValueError(f"codec_roundtrip: unknown codec {codec!r}")
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    raw = np.ascontiguousarray(x, np.float32).tobytes()
    common = [exe, "-hide_banner", "-loglevel", "error", "-nostdin"]
    try:
        coded = subprocess.run(common + ["-f", "f32le", "-ar", str(rate), "-ac", "1", "-i",
                                         "pipe:0", "-b:a", f"{int(kbps)}k"] + enc + ["pipe:1"],
                               input=raw, capture_output=True, check=True, timeout=60).stdout
        dec = subprocess.run(common + ["-i", "pipe:0", "-f", "f32le", "-ar", str(rate), "-ac",
                                       "1", "pipe:1"],
                             input=coded, capture_output=True, check=True, timeout=60).stdout
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"ffmpeg {codec} round trip failed: {exc}") from exc
    y = np.frombuffer(dec, np.float32).astype(np.float64)
    n = len(x)
    # Codec delay: the shift (0..100 ms) that best matches the input.
    k = int(0.1 * rate)
    ref = np.asarray(x, np.float64)[:min(n, 4 * rate)]
    best, best_score = 0, -np.inf
    for lag in range(0, min(k, max(0, len(y) - len(ref))) + 1, 8):
        score = float(np.dot(y[lag:lag + len(ref)], ref))
        if score > best_score:
            best, best_score = lag, score
    for lag in range(max(0, best - 8), best + 9):  # refine to the sample
        seg = y[lag:lag + len(ref)]
        if len(seg) == len(ref):
            score = float(np.dot(seg, ref))
            if score > best_score:
                best, best_score = lag, score
    y = y[best:best + n]
    return np.pad(y, (0, n - len(y))).astype(np.float32)


def augment(x: np.ndarray, rng: np.random.Generator, rate: int = DATA_RATE,
            codec_p: float = 0.2) -> np.ndarray:
    """Randomly degrade a float32 clip so the model transfers to other voices and channels.

    Gain (-20..+6 dB), band limits (telephone band, low/high-pass), resampling round trips
    (8/11.025/22.05 kHz), synthetic room reverb (RT60 0.1-0.6 s), soft-clip compression,
    MP3 (24-128 kbit/s) or Opus (12-32 kbit/s) round trips with probability ``codec_p``
    (:func:`codec_roundtrip`) and noise (white or brown, SNR 5-40 dB). All filters are
    zero-phase or causal with the direct path first and codec delays are removed, so
    phone timings stay aligned with the targets.
    """
    from scipy.signal import butter, fftconvolve, resample_poly, sosfiltfilt

    y = x.astype(np.float64)
    n = len(y)
    if rng.random() < 0.3:
        low = rng.choice([8000, 11025, 22050])
        from math import gcd
        g = gcd(int(low), rate)
        y = resample_poly(resample_poly(y, low // g, rate // g), rate // g, low // g)[:n]
        y = np.pad(y, (0, n - len(y)))
    if rng.random() < 0.3:
        kind = rng.integers(3)
        if kind == 0:
            sos = butter(4, [rng.uniform(200, 400), rng.uniform(3000, 3800)], "bandpass",
                         fs=rate, output="sos")
        elif kind == 1:
            sos = butter(4, rng.uniform(2500, 6000), "lowpass", fs=rate, output="sos")
        else:
            sos = butter(2, rng.uniform(80, 400), "highpass", fs=rate, output="sos")
        y = sosfiltfilt(sos, y)
    if rng.random() < 0.35:
        rt60 = rng.uniform(0.1, 0.6)
        length = int(rt60 * rate)
        t = np.arange(length) / rate
        ir = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
        ir *= rng.uniform(0.1, 0.6) / (np.sqrt(np.sum(ir ** 2)) + 1e-9)
        ir[0] = 1.0
        y = fftconvolve(y, ir)[:n]
    peak = np.abs(y).max() + 1e-9
    y *= 10 ** (rng.uniform(-20, 6) / 20) * (0.5 / peak)
    if rng.random() < 0.1:  # loudness-maximised TTS / AGC: soft-clip compression
        drive = rng.uniform(2.0, 6.0)
        y = np.tanh(drive * y) / np.tanh(drive) * (np.abs(y).max() + 1e-9)
    if codec_p > 0 and rng.random() < codec_p:  # robot audio paths: lossy streaming codecs
        if rng.random() < 0.5:
            codec, kbps = "mp3", int(rng.choice([24, 32, 48, 64, 96, 128]))
        else:
            codec, kbps = "opus", int(rng.choice([12, 16, 24, 32]))
        try:
            y = codec_roundtrip(y.astype(np.float32), codec, kbps, rate).astype(np.float64)
        except (RuntimeError, OSError) as exc:  # no ffmpeg: train without this one
            logger.debug("codec augmentation skipped: %s", exc)
    if rng.random() < 0.5:
        noise = rng.standard_normal(n)
        if rng.random() < 0.4:
            noise = np.cumsum(noise)
            noise -= np.convolve(noise, np.ones(801) / 801, mode="same")  # brown, no drift
        sig = np.sqrt(np.mean(y ** 2)) + 1e-9
        snr = rng.uniform(5, 40)
        y += noise * sig / (np.sqrt(np.mean(noise ** 2)) + 1e-12) * 10 ** (-snr / 20)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------- targets
def clip_targets(clip: PhoneClip, fps: float = 50.0, hop: int = 320,
                 lead_s: float = 0.0) -> np.ndarray:
    """Neutral speech curves ``[T, 52]`` of a clip, ``T = ceil(S / hop)`` (frame k at k/fps).

    ``lead_s`` > 0 moves the curves that much earlier (phone times minus ``lead_s``; the
    loudness of each vowel is still read at its true place): training on them compensates
    a model that answers late by that much, without more lookahead.
    """
    from gemo_ros.train.visemes import speech_curves

    audio = clip.audio.astype(np.float32) / 32768.0
    t = -(-len(audio) // hop)
    if lead_s == 0.0:
        return speech_curves(clip.phones, t, fps=fps, audio=audio, sample_rate=DATA_RATE)
    shift = int(round(lead_s * DATA_RATE))
    early = np.concatenate([audio[shift:], np.zeros(shift, np.float32)]) if shift > 0 else audio
    phones = [(n, s - lead_s, e - lead_s) for n, s, e in clip.phones]
    return speech_curves(phones, t, fps=fps, audio=early, sample_rate=DATA_RATE)


def lag_by_family(model, clips: Sequence[PhoneClip]) -> dict:
    """Median aperture lag (ms, + = late) of ``model`` per synthesiser family of ``clips``.

    Lag = the shift maximising the correlation of predicted and target lip aperture
    (:func:`gemo_ros.train.eval_a2e._best_lag`), per clip, median per family.
    """
    import torch

    from gemo_ros.train.eval_a2e import _best_lag
    from gemo_ros.train.visemes import lip_aperture

    lags: dict = {}
    model.eval()
    with torch.no_grad():
        for c in clips:
            x = torch.from_numpy(c.audio.astype(np.float32) / 32768.0)[None]
            pred = model.decode(model.encode(x), torch.zeros(1, dtype=torch.long),
                                torch.zeros(1))[0].numpy()
            tgt = clip_targets(c, model.fps, model.hop)[:len(pred)]
            lag = _best_lag(lip_aperture(pred[:len(tgt)]), lip_aperture(tgt), model.fps)
            lags.setdefault(family_of(c.voice), []).append(lag)
    return {f: round(float(np.median(v)), 1) for f, v in sorted(lags.items())}


def deepen_encoder(model, extra_layers: int):
    """Return a copy of an a2e model with ``extra_layers`` more transformer layers on top.

    The new layers start as the identity (their attention output projection and feed-forward
    output are zero, and the encoder is pre-LayerNorm, so each adds nothing to its residual
    stream): the deeper model computes exactly what ``model`` computes and training
    continues from there with more capacity. The windows (and so the lookahead and the
    streaming equality) do not change.
    """
    import copy

    import torch

    from gemo_ros.audio.model import AudioToExpression

    if extra_layers < 1:
        raise ValueError(f"extra_layers must be >= 1, got {extra_layers}")
    cfg = copy.deepcopy(model.config)
    enc = model.encoder.config.to_dict()
    if not enc.get("do_stable_layer_norm", False):
        raise ValueError("deepen_encoder needs a pre-LayerNorm encoder (do_stable_layer_norm)")
    from gemo_ros.audio.model import _CONFIG_DROP
    cfg.encoder = {k: v for k, v in enc.items() if k not in _CONFIG_DROP}
    cfg.encoder["num_hidden_layers"] = int(enc["num_hidden_layers"]) + int(extra_layers)
    cfg.encoder_path = None
    deeper = AudioToExpression(cfg).to(next(model.parameters()).device)
    missing, unexpected = deeper.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(".layers." not in k for k in missing):
        raise ValueError(f"deepen_encoder: weights do not match ({missing[:3]}, "
                         f"{unexpected[:3]})")
    with torch.no_grad():
        for layer in deeper.encoder.encoder.layers[int(enc["num_hidden_layers"]):]:
            for lin in (layer.attention.out_proj, layer.feed_forward.output_dense):
                lin.weight.zero_()
                lin.bias.zero_()
    return deeper.train(model.training)


def phone_masks(phones: Sequence[Tuple[str, float, float]], num_frames: int,
                fps: float = 50.0, lead_s: float = 0.0) -> np.ndarray:
    """Return ``[num_frames, 2]``: vowel middles (col 0) and /p b m/ windows (col 1).

    The windows are those ``gemo eval a2e`` tests: column 0 is 1 within one frame of each
    vowel's middle (where it counts a false closure); column 1 numbers the bilabials
    (1, 2, ...; 0 elsewhere) over each one's span +-1 frame (where it looks for a closure).
    Phone times are moved ``lead_s`` earlier, like :func:`clip_targets`. Used by the
    phone-aware terms of :func:`decoder_loss`.
    """
    from gemo_ros.train.visemes import phone_class

    out = np.zeros((num_frames, 2), np.float32)
    count = 0
    for name, s, e in phones:
        kind = phone_class(name)
        if kind not in ("vowel", "bilabial"):
            continue
        s, e = s - lead_s, e - lead_s
        if kind == "vowel":
            s = e = 0.5 * (s + e)
        lo, hi = max(0, int(np.floor(s * fps)) - 1), min(num_frames, int(np.ceil(e * fps)) + 2)
        if hi <= lo:
            continue
        if kind == "vowel":
            out[lo:hi, 0] = 1.0
        else:
            count += 1
            out[lo:hi, 1] = count
    return out


def channel_weights() -> np.ndarray:
    """Loss weight per ARKit channel: lips and jaw matter most for lip sync."""
    from gemo_ros.face.arkit import ARKIT_INDEX, NUM_ARKIT
    from gemo_ros.train.visemes import SPEECH_CHANNELS

    w = np.ones(NUM_ARKIT, np.float32)
    for name in SPEECH_CHANNELS:
        w[ARKIT_INDEX[name]] = 2.0
    w[ARKIT_INDEX["jawOpen"]] = 5.0
    w[ARKIT_INDEX["mouthClose"]] = 4.0
    return w


def _batch(clips: Sequence[PhoneClip], targets: Sequence[np.ndarray], idx: Sequence[int],
           rng: np.random.Generator, model, aug: bool, max_frames: int = 120,
           n_emotions: int = 3):
    """Build a training batch of random crops (with true audio context around each crop).

    A crop of up to ``max_frames`` frames is trained on; the audio fed to the model also
    holds the encoder's left and right context around it (or the clip's real silence at
    its ends), so the cropped frames see exactly what they would in the whole clip.

    Returns (wave [B,S], neutral [B,T,52], emo [B,E,T,52], emotion ids [B,E],
    intensity [B,E], loss mask [B,T]).
    """
    import torch

    from gemo_ros.face.emotion_recipes import combine_with_speech

    hop = model.hop
    c = model.config
    ctx_l = c.context_left + c.max_block
    ctx_r = c.max_block + c.context_right + 1
    items = []
    for i in idx:
        t = len(targets[i])
        a = int(rng.integers(0, max(1, t - max_frames + 1)))
        b = min(t, a + max_frames)
        a0 = max(0, a - ctx_l)
        a1 = b + ctx_r
        audio = clips[i].audio.astype(np.float32) / 32768.0
        if aug:
            lo, hi = max(0, a0 * hop - 8000), min(len(audio), a1 * hop + 8000)
            audio = np.concatenate([np.zeros(lo, np.float32), augment(audio[lo:hi], rng)])
        seg = audio[a0 * hop:a1 * hop]
        seg = np.pad(seg, (0, (a1 - a0) * hop - len(seg)))
        tgt = np.zeros((a1 - a0, targets[i].shape[1]), np.float32)
        tgt[:min(t, a1) - a0] = targets[i][a0:min(t, a1)]
        mask = np.zeros(a1 - a0, np.float32)
        mask[a - a0:b - a0] = 1.0
        items.append((seg, tgt, mask))
    n = max(len(m) for _, _, m in items)
    wave = np.zeros((len(idx), n * hop), np.float32)
    neutral = np.zeros((len(idx), n, 52), np.float32)
    mask = np.zeros((len(idx), n), np.float32)
    for k, (seg, tgt, m) in enumerate(items):
        wave[k, :len(seg)] = seg
        neutral[k, :len(tgt)] = tgt
        mask[k, :len(m)] = m
    # Each crop is trained with a few random emotions, each at a random intensity.
    emos = np.stack([rng.permutation(7)[:n_emotions] + 1 for _ in idx]).astype(np.int64)
    inten = rng.uniform(0.1, 1.0, size=emos.shape).astype(np.float32)
    emo = np.stack([np.stack([combine_with_speech(neutral[k], int(emos[k, e]), inten[k, e])
                              for e in range(emos.shape[1])]) for k in range(len(idx))])
    return (torch.from_numpy(wave), torch.from_numpy(neutral), torch.from_numpy(emo),
            torch.from_numpy(emos), torch.from_numpy(inten), torch.from_numpy(mask))


def decoder_loss(model, feats, neutral, emo, emos, inten, mask, weights,
                 closure_weight: float = 6.0, aperture_l2: float = 0.0,
                 phone_mask=None, vowel_open: float = 0.0, vowel_floor: float = 0.12,
                 bilabial_close: float = 0.0):
    """Loss of the decoder outputs for encoder features ``[B, T, D]``.

    Weighted L1 on the neutral and the sampled emotional outputs, an L1 velocity term, and
    a lip-aperture term ``|relu(aperture) - target|`` (:func:`lip_aperture`) weighted up to
    ``1 + closure_weight`` on lip closures (rare, short events that a plain L1 loss learns
    to ignore) and up to ~2.4x on open vowels (which an L1 fit under-opens).

    ``aperture_l2`` > 0 adds that weight times the mean squared error of the *unclipped*
    aperture over all frames. An L1 fit picks the median of ambiguous frames (an unclear
    stop closes fully or not at all: spikes); a squared error fits their mean, which is
    what the aperture correlation scores, and it also asks for the full depth of a closure
    (the clipped L1 term stops at aperture 0).

    Phone-aware terms (need ``phone_mask [B, T, 2]`` from :func:`phone_masks`):
    ``vowel_open`` > 0 adds that weight times the mean hinge ``relu(vowel_floor -
    aperture)`` of the neutral output over vowel-middle frames (a vowel is never spoken
    with closed lips, whatever a short vowel's blended target says); ``bilabial_close`` > 0
    adds that weight times the mean over /p b m/ of ``relu(min aperture in its window)``:
    the lips must meet at least once in each bilabial's span +-1 frame, and only there,
    not over the decaying closure curve around it that ``closure_weight`` weighs.

    Returns (loss, dict of float parts).
    """
    import torch

    from gemo_ros.face.arkit import ARKIT_INDEX
    from gemo_ros.train.visemes import lip_aperture

    jaw, close = ARKIT_INDEX["jawOpen"], ARKIT_INDEX["mouthClose"]
    b, t, _ = feats.shape
    base, _ = model.decode_parts(feats, torch.zeros(b, dtype=torch.long))
    m = mask[:, :, None]
    norm = m.sum() * weights.sum()
    l_neu = ((base - neutral).abs() * weights * m).sum() / norm
    vel = (base[:, 1:] - base[:, :-1]) - (neutral[:, 1:] - neutral[:, :-1])
    l_vel = (vel.abs() * weights * m[:, 1:]).sum() / norm

    def aperture(c):
        return lip_aperture(c).clamp(min=0.0)

    closure = (neutral[..., close] / neutral[..., jaw].clamp(min=1e-3)).clamp(0.0, 1.0)
    # Closures are rare and short, open vowels are what an L1 fit under-opens: both weigh.
    w_ap = (1.0 + closure_weight * closure + 2.0 * aperture(neutral)) * mask
    l_ap = ((aperture(base) - aperture(neutral)).abs() * w_ap).sum() / w_ap.sum()
    l_ap2 = (((lip_aperture(base) - lip_aperture(neutral)) ** 2 * mask).sum()
             / mask.sum().clamp(min=1.0))
    # Emotional outputs: decode the same features with each sampled emotion.
    ne = emos.shape[1]
    fe = feats[:, None].expand(b, ne, t, feats.shape[-1]).reshape(b * ne, t, -1)
    base_e, delta_e = model.decode_parts(fe, emos.reshape(-1))
    pred = (base_e + inten.reshape(-1)[:, None, None] * delta_e).clamp(0.0, 1.0)
    me = m[:, None].expand(b, ne, t, 1).reshape(b * ne, t, 1)
    l_emo = ((pred - emo.reshape(b * ne, t, -1)).abs() * weights * me).sum() / (norm * ne)
    loss = l_neu + l_emo + 0.5 * l_vel + l_ap + aperture_l2 * l_ap2
    parts = {"neutral": float(l_neu.detach()), "emotion": float(l_emo.detach()),
             "velocity": float(l_vel.detach()), "aperture": float(l_ap.detach()),
             "aperture_mse": float(l_ap2.detach())}
    if vowel_open > 0 or bilabial_close > 0:
        if phone_mask is None:
            raise ValueError("vowel_open / bilabial_close need phone_mask [B, T, 2]")
        ap = lip_aperture(base)
        vm = phone_mask[..., 0] * mask
        l_vo = (torch.relu(vowel_floor - ap) * vm).sum() / vm.sum().clamp(min=1.0)
        ids = (phone_mask[..., 1] * mask).long()                          # [B, T]
        k = int(ids.max())
        l_bc = ap.new_zeros(())
        if k > 0:
            member = ids[..., None] == torch.arange(1, k + 1, device=ids.device)  # [B,T,K]
            lowest = torch.where(member, ap[..., None], ap.new_tensor(1e3)).amin(dim=1)
            present = member.any(dim=1)                                    # [B, K]
            l_bc = (torch.relu(lowest) * present).sum() / present.sum().clamp(min=1)
        loss = loss + vowel_open * l_vo + bilabial_close * l_bc
        parts.update(vowel_open=float(l_vo.detach()), bilabial_close=float(l_bc.detach()))
    return loss, parts


def a2e_loss(model, wave, neutral, emo, emos, inten, mask, weights,
             closure_weight: float = 6.0, aperture_l2: float = 0.0):
    """Encode ``wave [B, S]`` and return :func:`decoder_loss` of the features."""
    return decoder_loss(model, model.encode(wave), neutral, emo, emos, inten, mask, weights,
                        closure_weight, aperture_l2)


def _feature_key(model, clips: Sequence[PhoneClip], targets: Sequence[np.ndarray],
                 seed: int) -> str:
    """Hash of what the cached features of :func:`finetune_decoder` depend on."""
    import hashlib

    h = hashlib.sha1(str(seed).encode())
    for name, tensor in sorted(model.state_dict().items()):
        if not name.startswith(_DECODER_PREFIXES):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for c, tgt in zip(clips, targets):
        h.update(c.audio.tobytes())
        h.update(str(len(tgt)).encode())
    return h.hexdigest()


def _load_feature_cache(path: str, key: str):
    """Return (features, random state) from ``path`` if it was made for ``key``, else None."""
    import torch

    if not os.path.exists(path):
        return None
    try:
        data = torch.load(path, weights_only=False)
    except Exception as exc:  # unreadable: encode again and overwrite it
        logger.warning("feature cache %s unreadable (%s): encoding again", path, exc)
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        logger.info("feature cache %s is for other weights or clips: encoding again", path)
        return None
    return data["feats"], data["rng"]


#: State-dict prefixes of the decoder (everything else is the encoder side).
_DECODER_PREFIXES: Tuple[str, ...] = ("base_head.", "emotion_embed.", "emo_in.", "emo_film.",
                                      "emo_out.")


def finetune_decoder(model, clips: Sequence[PhoneClip], targets: Sequence[np.ndarray],
                     steps: int, lr: float, seed: int, batch: int = 32,
                     closure_weight: float = 6.0, aperture_l2: float = 0.0,
                     vowel_open: float = 0.0, vowel_floor: float = 0.12,
                     bilabial_close: float = 0.0, lead_s: float = 0.0,
                     feature_cache: Optional[str] = None):
    """Train only the decoder on cached encoder features of augmented clips (fast).

    Each clip is augmented once, encoded once (no gradient), then the decoder heads take
    ``steps`` AdamW steps on random batches of the cached features. The encoder (and the
    log-mel projection feeding it) is frozen: its tensors come out bit-identical.
    ``vowel_open``, ``vowel_floor``, ``bilabial_close``: the phone-aware terms of
    :func:`decoder_loss` (phone times moved ``lead_s`` earlier, as the targets were).
    ``feature_cache``: a file that keeps the encoded features (and the random state after
    them) for the next run with the same encoder, clips, lengths and seed, which then skips
    the encoding and trains exactly as if it had encoded; a file made for anything else is
    ignored and rewritten. Returns the last loss parts.
    """
    import torch
    from tqdm import tqdm

    from gemo_ros.face.emotion_recipes import combine_with_speech

    rng = np.random.default_rng([seed, 7])
    model.eval()
    key = _feature_key(model, clips, targets, seed)
    cached = _load_feature_cache(feature_cache, key) if feature_cache else None
    if cached is not None:
        feats, rng.bit_generator.state = cached
        logger.info("encoder features of %d clips read from %s", len(feats), feature_cache)
    else:
        feats = []
        with torch.no_grad():
            for c, tgt in zip(tqdm(clips, desc="encode"), targets):
                x = augment(c.audio.astype(np.float32) / 32768.0, rng)
                x = np.pad(x, (0, len(tgt) * model.hop - len(x)))
                feats.append(model.encode(torch.from_numpy(x)[None])[0])
        if feature_cache:
            torch.save({"key": key, "feats": feats, "rng": rng.bit_generator.state},
                       feature_cache)
    frozen = list(model.encoder.parameters())
    if getattr(model, "mel_proj", None) is not None:
        frozen += list(model.mel_proj.parameters())
    for p in frozen:
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    phone_aware = vowel_open > 0 or bilabial_close > 0
    pmasks = ([phone_masks(c.phones, len(tg), model.fps, lead_s) for c, tg in zip(clips, targets)]
              if phone_aware else None)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    weights = torch.from_numpy(channel_weights())
    parts = {}
    for step in tqdm(range(steps), desc="decoder"):
        idx = rng.integers(0, len(clips), batch)
        t = max(len(targets[i]) for i in idx)
        f = torch.zeros(batch, t, model.feature_dim)
        neutral = np.zeros((batch, t, 52), np.float32)
        mask = np.zeros((batch, t), np.float32)
        pm = np.zeros((batch, t, 2), np.float32)
        for k, i in enumerate(idx):
            f[k, :len(targets[i])] = feats[i]
            neutral[k, :len(targets[i])] = targets[i]
            mask[k, :len(targets[i])] = 1.0
            if pmasks is not None:
                pm[k, :len(targets[i])] = pmasks[i]
        emos = np.stack([rng.permutation(7)[:3] + 1 for _ in idx]).astype(np.int64)
        inten = rng.uniform(0.1, 1.0, size=emos.shape).astype(np.float32)
        emo = np.stack([np.stack([combine_with_speech(neutral[k], int(emos[k, e]), inten[k, e])
                                  for e in range(3)]) for k in range(batch)])
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * step / steps))
        loss, parts = decoder_loss(model, f, torch.from_numpy(neutral), torch.from_numpy(emo),
                                   torch.from_numpy(emos), torch.from_numpy(inten),
                                   torch.from_numpy(mask), weights,
                                   closure_weight, aperture_l2,
                                   torch.from_numpy(pm) if phone_aware else None,
                                   vowel_open, vowel_floor, bilabial_close)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in frozen:
        p.requires_grad_(True)
    return parts


def _validate(model, clips, targets, weights, device) -> float:
    import torch

    rng = np.random.default_rng(1234)
    model.eval()
    losses = []
    with torch.no_grad():
        for i in range(0, len(clips), 16):
            idx = list(range(i, min(len(clips), i + 16)))
            batch = [x.to(device) for x in _batch(clips, targets, idx, rng, model, False, 10 ** 6)]
            losses.append(float(a2e_loss(model, *batch, weights)[0]))
    return float(np.mean(losses))
