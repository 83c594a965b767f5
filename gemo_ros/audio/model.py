"""The audio-to-expression model: a windowed `transformers` speech encoder + emotion decoder.

Encoder. A Wav2Vec2 / HuBERT / WavLM model from ``transformers`` (a compact config built
with no download by default; any checkpoint directory on disk by path). Its receptive
field is made *bounded* so that streamed and whole-utterance inference agree exactly: the
feature frames (``fps`` = sample_rate / conv hop, 50 Hz) are produced in blocks of
``block`` frames, and each block is computed by running the model on a fixed-length
audio window of ``W = context_left + max_block + context_right`` frames that ends
``context_right`` frames after the block. Frame k is centred on sample ``k * hop`` (time
``k / fps``); audio before time 0 and after the end is zeros. A frame is therefore final
once audio up to ``(k + block - 1 + context_right) / fps + half_window`` has arrived.

Decoder (cheap; the engine runs it twice per frame, neutral and commanded emotion):

    coeffs = clip(base(feats) + intensity * delta(feats, emotion), 0, 1)
    base  = sigmoid(MLP(feats))                              neutral speech, [0, 1]
    delta = tanh(MLP(FiLM(feats; emotion embedding)))        zero for emotion 0 (neutral)

so intensity 0 or ``neutral`` gives exactly the neutral output, and every coefficient moves
monotonically (linearly until it saturates) with the intensity.
"""

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gemo_ros.emotions import EMOTIONS, NEUTRAL
from gemo_ros.face.arkit import NUM_ARKIT

logger = logging.getLogger(__name__)

#: Supported ``transformers`` speech encoder families.
ENCODER_TYPES = ("wav2vec2", "hubert", "wavlm")


def default_encoder_config() -> Dict[str, Any]:
    """Return the compact Wav2Vec2 config of the shipped model (about 0.4 M parameters)."""
    return dict(
        model_type="wav2vec2", hidden_size=96, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=192, conv_dim=[32, 32, 64, 64, 96, 128, 128],
        conv_stride=[5, 2, 2, 2, 2, 2, 2], conv_kernel=[10, 3, 3, 3, 3, 2, 2],
        feat_extract_norm="layer", conv_bias=True, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=16, do_stable_layer_norm=True, hidden_dropout=0.05,
        attention_dropout=0.05, activation_dropout=0.0, feat_proj_dropout=0.0,
        final_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0, mask_feature_prob=0.0,
        vocab_size=8,
    )


def tiny_encoder_config() -> Dict[str, Any]:
    """Return a very small config for tests (fast on CPU, random weights)."""
    cfg = default_encoder_config()
    cfg.update(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=64, conv_dim=[16] * 7, num_conv_pos_embeddings=4,
               num_conv_pos_embedding_groups=4, hidden_dropout=0.0, attention_dropout=0.0)
    return cfg


@dataclass
class A2EConfig:
    """Everything needed to rebuild an :class:`AudioToExpression` (saved as JSON)."""

    encoder: Dict[str, Any] = field(default_factory=default_encoder_config)
    #: Optional directory of a pretrained ``transformers`` checkpoint to load the encoder from.
    encoder_path: Optional[str] = None
    sample_rate: int = 16000
    context_left: int = 12       # frames of past audio each window sees
    max_block: int = 6           # frames produced per window at most
    context_right: int = 3       # frames of future audio (lookahead) beyond a block
    #: Log-mel bands added to the conv front end (0 = the plain transformers model). The
    #: mel frames use the same 400-sample windows as the conv frames, so they stay local.
    mel_bins: int = 40
    decoder_hidden: int = 96
    emotion_dim: int = 32
    num_emotions: int = len(EMOTIONS)
    num_coeffs: int = NUM_ARKIT


def _build_encoder(cfg: A2EConfig) -> nn.Module:
    import transformers

    if cfg.encoder_path:
        model = transformers.AutoModel.from_pretrained(cfg.encoder_path)
    else:
        enc = dict(cfg.encoder)
        model_type = enc.pop("model_type", "wav2vec2")
        if model_type not in ENCODER_TYPES:
            raise ValueError(f"encoder model_type {model_type!r} not supported; "
                             f"use one of {ENCODER_TYPES}")
        config = transformers.AutoConfig.for_model(model_type, **enc)
        model = transformers.AutoModel.from_config(config)
    mt = getattr(model.config, "model_type", "")
    if mt not in ENCODER_TYPES or not hasattr(model, "feature_extractor"):
        raise ValueError(f"encoder of type {mt!r} is not a Wav2Vec2/HuBERT/WavLM model")
    # No SpecAugment or LayerDrop inside the encoder: training augments the audio itself.
    model.config.mask_time_prob = 0.0
    model.config.mask_feature_prob = 0.0
    model.config.layerdrop = 0.0
    return model


class AudioToExpression(nn.Module):
    """Speech -> 52 ARKit coefficients per frame, conditioned on emotion and intensity.

    Attributes:
        sample_rate: input rate in Hz (16000).
        fps: frame rate of features and coefficients in Hz (sample_rate / hop = 50).
        hop: samples per frame; ``receptive``: samples seen by one frame (400).
        feature_dim: D, width of the encoder features.
    """

    def __init__(self, config: Optional[A2EConfig] = None) -> None:
        super().__init__()
        self.config = config or A2EConfig()
        c = self.config
        self.encoder = _build_encoder(c)
        ec = self.encoder.config
        self.hop = int(np.prod(ec.conv_stride))
        rf = 1
        for k, s in zip(reversed(ec.conv_kernel), reversed(ec.conv_stride)):
            rf = (rf - 1) * s + k
        self.receptive = int(rf)
        self.sample_rate = int(c.sample_rate)
        self.fps = self.sample_rate / self.hop
        self.feature_dim = int(ec.hidden_size)
        self.window_frames = c.context_left + c.max_block + c.context_right
        # Fast path: a LayerNorm conv front end is local, so it can run once over the whole
        # signal instead of once per window (a GroupNorm front end normalises over time).
        self._local_conv = getattr(ec, "feat_extract_norm", "group") == "layer"
        self.mel_bins = int(c.mel_bins)
        if self.mel_bins > 0:
            n_fft = 512
            self.register_buffer("mel_window", torch.hann_window(self.receptive,
                                                                 periodic=False),
                                 persistent=False)
            self.register_buffer("mel_fb", _mel_filterbank(self.sample_rate, n_fft,
                                                           self.mel_bins), persistent=False)
            self.mel_proj = nn.Linear(self.mel_bins, int(ec.conv_dim[-1]))
        h, d = c.decoder_hidden, self.feature_dim
        self.base_head = nn.Sequential(nn.Linear(d, h), nn.GELU(), nn.Linear(h, h), nn.GELU(),
                                       nn.Linear(h, c.num_coeffs))
        self.emotion_embed = nn.Embedding(c.num_emotions, c.emotion_dim)
        self.emo_in = nn.Linear(d, h)
        self.emo_film = nn.Linear(c.emotion_dim, 2 * h)
        self.emo_out = nn.Sequential(nn.GELU(), nn.Linear(h, h), nn.GELU(),
                                     nn.Linear(h, c.num_coeffs))
        with torch.no_grad():
            # Start with a relaxed face (all coefficients near 0) and no emotion.
            self.base_head[-1].bias.fill_(-4.0)
            self.emo_out[-1].weight.mul_(0.1)
            self.emo_out[-1].bias.zero_()

    # ------------------------------------------------------------------ geometry
    def block_for_lookahead(self, lookahead_s: float) -> int:
        """Return the largest block size whose worst-case lookahead is <= ``lookahead_s``."""
        c = self.config
        half = (self.receptive / 2) / self.sample_rate
        b = int(np.floor((lookahead_s - half) * self.fps + 1e-9)) - c.context_right + 1
        if b < 1:
            raise ValueError(f"lookahead {lookahead_s:.3f} s is below this model's minimum "
                             f"{self.lookahead_s(1):.3f} s")
        return min(b, c.max_block)

    def lookahead_s(self, block: Optional[int] = None) -> float:
        """Worst-case seconds of future audio a frame needs with the given block size."""
        block = self.config.max_block if block is None else int(block)
        half = (self.receptive / 2) / self.sample_rate
        return (block - 1 + self.config.context_right) / self.fps + half

    def num_frames(self, num_samples: int) -> int:
        """Frames of an utterance of ``num_samples``: centres k*hop inside the audio."""
        return int(-(-int(num_samples) // self.hop))

    def window_span(self, block_index: int, block: int) -> Tuple[int, int]:
        """Sample range [start, end) of the audio window that computes a block."""
        c = self.config
        f0 = block_index * block + block - c.max_block - c.context_left
        start = f0 * self.hop - self.receptive // 2
        return start, start + self.receptive + (self.window_frames - 1) * self.hop

    # ------------------------------------------------------------------ encoder
    def _frontend(self, wave: torch.Tensor) -> torch.Tensor:
        """Conv features ``[B, F, C]`` (+ projected log-mel of the same 400-sample frames)."""
        conv = self.encoder.feature_extractor(wave).transpose(1, 2)
        if self.mel_bins > 0:
            frames = wave.unfold(-1, self.receptive, self.hop)[:, :conv.shape[1]]
            spec = torch.fft.rfft(frames * self.mel_window, n=self.mel_fb.shape[0] * 2 - 2)
            mel = (spec.real ** 2 + spec.imag ** 2) @ self.mel_fb
            # log compresses the gain; the fixed affine keeps typical speech near [-1, 1].
            conv = conv + self.mel_proj((torch.log(mel + 1e-6) + 6.0) / 4.0)
        return conv

    def _project(self, conv_feats: torch.Tensor) -> torch.Tensor:
        out = self.encoder.feature_projection(conv_feats)
        return out[0] if isinstance(out, tuple) else out

    def encode_windows(self, windows: torch.Tensor, block: int) -> torch.Tensor:
        """Encode audio windows ``[N, window_samples]`` -> block features ``[N, block, D]``."""
        c = self.config
        conv = self._frontend(windows)                                   # [N, W, C]
        hidden = self.encoder.encoder(self._project(conv)).last_hidden_state
        lo = c.context_left + c.max_block - block
        return hidden[:, lo:lo + block]

    def encode(self, wave: torch.Tensor, block: Optional[int] = None) -> torch.Tensor:
        """Encode whole utterances.

        Args:
            wave: ``[B, S]`` float samples at ``sample_rate`` (about [-1, 1]).
            block: frames per window (default ``max_block``); streaming with a lookahead
                uses :meth:`block_for_lookahead`, and the same block gives the same numbers.

        Returns:
            feats ``[B, T, D]`` with ``T = ceil(S / hop)``; frame k is at time ``k / fps``.
        """
        c = self.config
        block = c.max_block if block is None else int(block)
        if not 1 <= block <= c.max_block:
            raise ValueError(f"block must be in [1, {c.max_block}], got {block}")
        if wave.dim() != 2:
            raise ValueError(f"encode expects wave [B, S], got shape {tuple(wave.shape)}")
        b, s = wave.shape
        t = self.num_frames(s)
        nb = max(1, -(-t // block))
        start, _ = self.window_span(0, block)
        _, end = self.window_span(nb - 1, block)
        padded = F.pad(wave, (-start, max(0, end - s)))                  # sample `start` -> 0
        win_len = self.window_span(0, block)[1] - start
        step = block * self.hop
        if self._local_conv:
            conv = self._frontend(padded)                                  # [B, F, C]
            proj = self._project(conv)                                     # [B, F, D]
            win = proj.unfold(1, self.window_frames, block)[:, :nb]        # [B, nb, D, W]
            win = win.permute(0, 1, 3, 2).reshape(b * nb, self.window_frames, -1)
            hidden = self.encoder.encoder(win).last_hidden_state
            lo = c.context_left + c.max_block - block
            feats = hidden[:, lo:lo + block]
        else:
            windows = padded.unfold(1, win_len, step)[:, :nb].reshape(b * nb, win_len)
            feats = self.encode_windows(windows, block)
        return feats.reshape(b, nb * block, -1)[:, :t]

    # ------------------------------------------------------------------ decoder
    def decode_parts(self, feats: torch.Tensor, emotion: torch.Tensor, validate: bool = True
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return (base ``[B,T,52]`` in (0,1), delta ``[B,T,52]`` in [-1,1], 0 if neutral).

        ``validate=False`` skips the range check of the emotion ids (a device -> host read
        on a GPU); the caller has checked them on the host (the streaming frame path).
        """
        base = torch.sigmoid(self.base_head(feats))
        emotion = torch.as_tensor(emotion, dtype=torch.long, device=feats.device).reshape(-1)
        if emotion.numel() == 1 and feats.shape[0] > 1:
            emotion = emotion.expand(feats.shape[0])
        if validate and (emotion.min() < 0 or emotion.max() >= self.config.num_emotions):
            raise ValueError(f"emotion ids must be in [0, {self.config.num_emotions - 1}]")
        gamma, beta = self.emo_film(self.emotion_embed(emotion)).chunk(2, dim=-1)
        h = self.emo_in(feats) * (1 + gamma[:, None]) + beta[:, None]
        delta = torch.tanh(self.emo_out(h))
        delta = delta * (emotion != NEUTRAL).to(delta.dtype)[:, None, None]
        return base, delta

    def decode(self, feats: torch.Tensor, emotion, intensity) -> torch.Tensor:
        """Map features to coefficients.

        Args:
            feats: ``[B, T, D]`` encoder features.
            emotion: ``[B]`` long emotion ids (:data:`gemo_ros.emotions.EMOTIONS`), or one id.
            intensity: ``[B]`` float in [0, 1], or one value.

        Returns:
            coeffs ``[B, T, 52]`` in [0, 1], ARKit order.
        """
        base, delta = self.decode_parts(feats, emotion)
        inten = torch.as_tensor(intensity, dtype=feats.dtype, device=feats.device).reshape(-1)
        if not torch.all(torch.isfinite(inten)):
            raise ValueError("intensity must be finite")
        inten = inten.clamp(0.0, 1.0)
        if inten.numel() == 1 and feats.shape[0] > 1:
            inten = inten.expand(feats.shape[0])
        return (base + inten[:, None, None] * delta).clamp(0.0, 1.0)

    def forward(self, wave: torch.Tensor, emotion, intensity) -> torch.Tensor:
        """Whole-utterance inference: ``wave[B,S]`` -> ``coeffs[B,T,52]``."""
        return self.decode(self.encode(wave), emotion, intensity)

    @torch.no_grad()
    def silence_feature(self) -> torch.Tensor:
        """Return the feature vector ``[D]`` of a frame whose whole window is silent."""
        windows = torch.zeros(1, self.window_span(0, 1)[1] - self.window_span(0, 1)[0],
                              device=next(self.parameters()).device)
        return self.encode_windows(windows, 1)[0, 0]

    # ------------------------------------------------------------------ persistence
    def save(self, path: str, extra: Optional[Dict[str, Any]] = None) -> None:
        """Save to ``path`` (a ``.safetensors`` file) with the config in its metadata."""
        from safetensors.torch import save_file

        cfg = asdict(self.config)
        # Store the encoder's full architecture so the file loads without the original
        # pretrained checkpoint directory.
        enc = self.encoder.config.to_dict()
        cfg["encoder"] = {k: v for k, v in enc.items() if k not in _CONFIG_DROP}
        cfg["encoder_path"] = None
        meta = {"a2e_config": json.dumps(cfg)}
        if extra:
            meta["info"] = json.dumps(extra)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, path, metadata=meta)


def _mel_filterbank(rate: int, n_fft: int, bins: int, fmin: float = 60.0,
                    fmax: float = 7600.0) -> torch.Tensor:
    """Triangular mel filters ``[n_fft // 2 + 1, bins]`` (HTK mel scale), unit peak.

    ``rate`` in Hz, ``fmin``/``fmax`` in Hz (``fmax`` capped at the Nyquist rate). The
    filters are ``transformers.audio_utils.mel_filter_bank`` with the HTK scale, no area
    normalisation and triangles drawn in Hz, cast to float32: equal bit for bit to the
    hand-written filters the shipped weights were trained with (held by a test).
    """
    from transformers.audio_utils import mel_filter_bank

    fb = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=bins,
                         min_frequency=fmin, max_frequency=min(fmax, rate / 2),
                         sampling_rate=rate, norm=None, mel_scale="htk",
                         triangularize_in_mel_space=False)
    return torch.from_numpy(fb.astype(np.float32))


_CONFIG_DROP = ("architectures", "transformers_version", "_name_or_path", "torch_dtype",
                "dtype", "id2label", "label2id", "_attn_implementation_autoset")


def _default_path() -> str:
    from importlib import resources

    return str(resources.files("gemo_ros") / "assets" / "a2e_default.safetensors")


def load_a2e(name_or_path: Union[str, os.PathLike] = "default",
             device: Union[str, torch.device] = "cpu") -> AudioToExpression:
    """Load an audio-to-expression model in eval mode.

    Args:
        name_or_path: ``"default"`` (weights shipped in ``gemo_ros/assets``), a
            ``.safetensors`` file written by :meth:`AudioToExpression.save` /
            ``gemo train a2e``, or a directory holding such a file (``a2e.safetensors``).
        device: torch device.

    Raises:
        FileNotFoundError: the path does not exist; ValueError: not an a2e checkpoint.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = _default_path() if str(name_or_path) == "default" else os.fspath(name_or_path)
    if os.path.isdir(path):
        path = os.path.join(path, "a2e.safetensors")
    if not os.path.exists(path):
        raise FileNotFoundError(f"a2e weights not found: {path}")
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
    if "a2e_config" not in meta:
        raise ValueError(f"{path} is not an a2e checkpoint (no a2e_config metadata)")
    cfg = A2EConfig(**json.loads(meta["a2e_config"]))
    model = AudioToExpression(cfg)
    state = load_file(path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not match the config "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.to(device).eval()
