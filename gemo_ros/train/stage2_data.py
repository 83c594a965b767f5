"""Stage 2 data: the emotional-video dataset format and the synthetic teacher.

Frames for training the emotion residual are tuples of (audio feature window, emotion,
intensity, neutral and emotional expression coefficients, camera, image). They come from

* a **dataset on disk** in the documented format (docs/stage2.md; e.g. MEAD converted:
  8 emotions x 3 levels, several views), loaded by :func:`load_stage2_dataset`; the
  coefficients and audio features are computed from each clip's audio by the
  audio-to-expression model, exactly as at run time;
* the **synthetic teacher** (:class:`EmotionTeacher`, :func:`generate_synthetic`): the
  default avatar driven by ``psi_e`` plus emotion-specific appearance and a little geometry
  that linear blendshapes of the neutral head cannot express (flushed cheeks, a furrowed
  brow, reddened glossy eyes, pallor, wrinkle shading). The student is ``avatar(psi_n)``
  plus the residual, so the residual must learn both the emotional geometry (from the mesh
  displacement) and the appearance.
"""

import json
import logging
import math
import os
from dataclasses import dataclass, fields, replace
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from gemo_ros.emotions import EMOTIONS, LEVELS, NEUTRAL, emotion_index
from gemo_ros.imaging import to_uint8
from gemo_ros.framing import RenderSettings
from gemo_ros.train.errors import DatasetError

LOG = logging.getLogger(__name__)

FORMAT = "gemo_ros.stage2/1"
MANIFEST = "stage2.json"
NUM_EXPR = 52

#: Linear-RGB luminance weights (Rec. 709).
LUMA = (0.2126, 0.7152, 0.0722)


# ----------------------------------------------------------------------------- teacher
def _blob(p: torch.Tensor, centre: Sequence[float], sigma: Sequence[float],
          mirror: bool = False) -> torch.Tensor:
    """Anisotropic Gaussian bump ``[N]`` around ``centre`` (and its mirror in x)."""
    c = torch.tensor(centre, dtype=p.dtype)
    s = torch.tensor(sigma, dtype=p.dtype)
    w = torch.exp(-0.5 * (((p - c) / s) ** 2).sum(-1))
    if mirror:
        cm = c.clone()
        cm[0] = -cm[0]
        w = torch.maximum(w, torch.exp(-0.5 * (((p - cm) / s) ** 2).sum(-1)))
    return w


@dataclass
class _Look:
    """Per-Gaussian appearance/geometry change of one emotion at intensity 1."""

    mul: torch.Tensor      # [N, 3] relative colour change: c * (1 + i * mul)
    add: torch.Tensor      # [N, 3] additive colour (sheen)
    pallor: torch.Tensor   # [N] blend weight toward a pale, bluish skin tone
    geo: torch.Tensor      # [N, 3] metres, head frame


class EmotionTeacher:
    """Emotion-specific appearance and geometry the neutral blendshapes cannot express.

    The effects are defined on the avatar's canonical Gaussian positions (head frame:
    +Y up, face along +Z, eyes near ``(+-0.031, 0.001, 0.066)`` m for the default head) and
    on the face model's part labels (skin, eyes, lids), and scale linearly with intensity:

    =========== ============================================================================
    happy       flushed cheeks; cheeks bulge up/forward 1.5 mm
    sad         reddened, glossier eyes and red lid rims and nose tip; lower lip pouts
    surprised   horizontal forehead wrinkle shading; forehead lifts 1.5 mm
    fear        pallor (desaturated, bluish, lighter skin); mouth corners pulled sideways
    disgusted   nose-bridge wrinkle shading, sallow skin; upper lip raised
    angry       red, darker face; brow-furrow shading; brows lowered and drawn in
    contempt    one-sided dimple shading and a flushed cheek; that mouth corner pulled up
    =========== ============================================================================

    Args:
        avatar: a ``GaussianAvatar``.
        strength: global multiplier of every effect.
    """

    def __init__(self, avatar: Any, strength: float = 1.0) -> None:
        with torch.no_grad():
            p = avatar.canonical_means().detach().float().cpu()
        self.num_gaussians = p.shape[0]
        parts = self._parts(avatar)
        looks = [self._look(name, p, parts) for name in EMOTIONS]
        self.mul = torch.stack([lk.mul for lk in looks]) * strength      # [8, N, 3]
        self.add = torch.stack([lk.add for lk in looks]) * strength      # [8, N, 3]
        self.pallor = torch.stack([lk.pallor for lk in looks]) * strength  # [8, N]
        self.geo = torch.stack([lk.geo for lk in looks]) * strength      # [8, N, 3]

    @staticmethod
    def _parts(avatar: Any) -> List[str]:
        face = getattr(avatar, "face", None) or getattr(avatar, "face_model", None)
        names = tuple(getattr(face, "part_names", ()) or ())
        n = int(avatar.binding_faces.shape[0])
        if not names or not hasattr(face, "vertex_parts"):
            return ["skin"] * n
        vid = face.faces[avatar.binding_faces.long(), 0]
        ids = face.vertex_parts[vid].cpu().numpy()
        return [names[i] for i in ids]

    def _look(self, name: str, p: torch.Tensor, parts: List[str]) -> _Look:
        n = p.shape[0]
        mul, add = torch.zeros(n, 3), torch.zeros(n, 3)
        pallor, geo = torch.zeros(n), torch.zeros(n, 3)
        part = np.array(parts)
        skin = torch.from_numpy(np.isin(part, ["skin", "neck"])).float()
        lids = torch.from_numpy(np.char.startswith(part.astype(str), "lid_")).float()
        eyes = torch.from_numpy(np.isin(part, ["eye_left", "eye_right"])).float()
        front = torch.sigmoid((p[:, 2] - 0.02) / 0.01)  # the face, not the back of the head
        face_area = _blob(p, (0.0, -0.015, 0.08), (0.05, 0.06, 0.08)) * front * skin

        def tint(weight: torch.Tensor, rgb: Sequence[float]) -> None:
            mul.add_(weight[:, None] * torch.tensor(rgb))

        def move(weight: torch.Tensor, xyz: Sequence[float]) -> None:
            geo.add_(weight[:, None] * torch.tensor(xyz))

        if name == "happy":
            cheeks = _blob(p, (0.045, -0.03, 0.07), (0.016, 0.014, 0.03), mirror=True) * skin
            tint(cheeks, (0.30, -0.22, -0.18))
            move(cheeks, (0.0, 0.0012, 0.0015))
        elif name == "sad":
            tint(eyes, (0.15, -0.30, -0.25))
            add.add_(eyes[:, None] * torch.tensor((0.10, 0.08, 0.08)))  # wet sheen
            rims = _blob(p, (0.031, -0.006, 0.07), (0.016, 0.009, 0.03), mirror=True)
            tint(rims * torch.clamp(skin + lids, max=1.0), (0.22, -0.18, -0.12))
            nose = _blob(p, (0.0, -0.036, 0.1), (0.011, 0.010, 0.03)) * skin
            tint(nose, (0.25, -0.12, -0.10))
            lip = _blob(p, (0.0, -0.073, 0.085), (0.016, 0.006, 0.02)) * skin
            move(lip, (0.0, -0.0008, 0.0015))
        elif name == "surprised":
            band = (_blob(p, (0.0, 0.052, 0.08), (0.038, 0.004, 0.05))
                    + _blob(p, (0.0, 0.068, 0.075), (0.034, 0.004, 0.05))) * skin * front
            tint(band, (-0.28, -0.30, -0.30))
            forehead = _blob(p, (0.0, 0.045, 0.08), (0.045, 0.02, 0.05)) * skin
            move(forehead, (0.0, 0.0015, 0.0))
        elif name == "fear":
            pallor.add_(0.8 * face_area + 0.3 * lids)
            corners = _blob(p, (0.026, -0.062, 0.08), (0.008, 0.007, 0.02), mirror=True) * skin
            move(corners * torch.sign(p[:, 0]), (0.0015, 0.0, 0.0))
        elif name == "disgusted":
            bridge = _blob(p, (0.0, -0.008, 0.09), (0.012, 0.008, 0.03)) * skin
            tint(bridge, (-0.35, -0.38, -0.36))
            tint(face_area, (-0.03, 0.02, -0.16))
            upper_lip = _blob(p, (0.0, -0.052, 0.09), (0.016, 0.006, 0.02)) * skin
            move(upper_lip, (0.0, 0.0015, 0.0))
        elif name == "angry":
            tint(face_area, (0.10, -0.20, -0.20))
            furrow = _blob(p, (0.0, 0.018, 0.09), (0.007, 0.010, 0.03)) * skin
            tint(furrow, (-0.40, -0.42, -0.42))
            brows = _blob(p, (0.028, 0.024, 0.085), (0.014, 0.006, 0.03), mirror=True) * skin
            move(brows * torch.sign(p[:, 0]), (-0.001, 0.0, 0.0))
            move(brows, (0.0, -0.0015, 0.0))
        elif name == "contempt":
            dimple = _blob(p, (0.031, -0.058, 0.08), (0.007, 0.007, 0.02)) * skin
            tint(dimple, (-0.35, -0.38, -0.38))
            cheek = _blob(p, (0.045, -0.03, 0.07), (0.016, 0.014, 0.03)) * skin
            tint(cheek, (0.18, -0.12, -0.10))
            corner = _blob(p, (0.027, -0.06, 0.08), (0.009, 0.008, 0.02)) * skin
            move(corner, (0.0005, 0.0015, -0.0008))
        return _Look(mul, add, pallor, geo)

    def to(self, device: Any) -> "EmotionTeacher":
        """Move the effect tensors to ``device`` (in place); return self."""
        for key in ("mul", "add", "pallor", "geo"):
            setattr(self, key, getattr(self, key).to(device))
        return self

    def apply(self, gaussians: Any, emotion: torch.Tensor, intensity: torch.Tensor,
              neck_rotation: Optional[torch.Tensor] = None) -> Any:
        """Add the emotion's appearance and geometry to posed Gaussians.

        Args:
            gaussians: avatar output (``means [B, N, 3]``, ``colors [B, N, 3]`` linear RGB).
            emotion: ``[B]`` long ids; intensity: ``[B]`` in [0, 1].
            neck_rotation: ``[B, 3]`` axis-angle (the geometry change turns with the head).

        Returns:
            The same Gaussians type with new ``means`` and ``colors``.
        """
        if gaussians.means.shape[1] != self.num_gaussians:
            raise ValueError(f"teacher built for {self.num_gaussians} Gaussians, got "
                             f"{gaussians.means.shape[1]}")
        dev = gaussians.means.device
        e = emotion.to(dev).long()
        i = intensity.to(dev).float().clamp(0.0, 1.0)[:, None, None]
        col = gaussians.colors
        col = col * (1.0 + i * self.mul[e].to(dev)) + i * self.add[e].to(dev)
        luma = (col * torch.tensor(LUMA, device=dev)).sum(-1, keepdim=True)
        pale = luma * torch.tensor((0.95, 1.0, 1.12), device=dev) + 0.06
        col = col + i * self.pallor[e].to(dev)[..., None] * (pale - col)
        geo = self.geo[e].to(dev)
        if neck_rotation is not None:
            from gemo_ros.geometry import axis_angle_to_matrix

            rot = axis_angle_to_matrix(neck_rotation.to(dev).float())  # [B, 3, 3]
            geo = torch.einsum("bij,bnj->bni", rot, geo)
        means = gaussians.means + i * geo
        return replace(gaussians, means=means, colors=col.clamp(0.0, 1.0))


# ----------------------------------------------------------------------------- frames
@dataclass
class Stage2Frames:
    """Training/evaluation frames as stacked tensors (F frames).

    Attributes:
        feats: ``[F, W, D]`` audio-feature windows centred on each frame.
        emotion: ``[F]`` long ids; intensity: ``[F]`` float in [0, 1].
        psi_n, psi_e: ``[F, 52]`` neutral / emotional coefficients.
        neck: ``[F, 3]`` axis-angle head rotation (radians).
        viewmat: ``[F, 4, 4]`` world -> camera; K: ``[F, 3, 3]`` pixels.
        image: ``[F, H, W, 3]`` uint8 target images.
        test: ``[F]`` bool, held-out frames.
        clip: ``[F]`` long clip index; time: ``[F]`` seconds into the clip.
    """

    feats: torch.Tensor
    emotion: torch.Tensor
    intensity: torch.Tensor
    psi_n: torch.Tensor
    psi_e: torch.Tensor
    neck: torch.Tensor
    viewmat: torch.Tensor
    K: torch.Tensor
    image: torch.Tensor
    test: torch.Tensor
    clip: torch.Tensor
    time: torch.Tensor

    def __len__(self) -> int:
        return int(self.emotion.shape[0])

    @property
    def size(self) -> Tuple[int, int]:
        """``(width, height)`` of the images."""
        return int(self.image.shape[2]), int(self.image.shape[1])

    def select(self, index: Any) -> "Stage2Frames":
        """Return the frames at ``index`` (mask, slice or index tensor)."""
        return Stage2Frames(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def split(self, test: bool) -> "Stage2Frames":
        """Return the held-out (``test=True``) or training frames."""
        return self.select(self.test if test else ~self.test)

    @staticmethod
    def concat(parts: Sequence["Stage2Frames"]) -> "Stage2Frames":
        """Concatenate frame sets."""
        return Stage2Frames(**{f.name: torch.cat([getattr(p, f.name) for p in parts])
                               for f in fields(Stage2Frames)})

    def save(self, path: str) -> None:
        """Write all tensors to one ``.pt`` cache file."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        torch.save({f.name: getattr(self, f.name) for f in fields(self)}, path)

    @staticmethod
    def load(path: str) -> "Stage2Frames":
        """Read a cache written by :meth:`save`."""
        data = torch.load(path, map_location="cpu", weights_only=True)
        missing = {f.name for f in fields(Stage2Frames)} - set(data)
        if missing:
            raise DatasetError(f"{path}: cache lacks {sorted(missing)}")
        return Stage2Frames(**{f.name: data[f.name] for f in fields(Stage2Frames)})


# ----------------------------------------------------------------------------- speech
@dataclass
class SpeechClip:
    """A speech clip: mono float32 samples, their rate and a name."""

    name: str
    audio: np.ndarray
    sample_rate: int


def demo_clip() -> SpeechClip:
    """Return the bundled demo utterance (``gemo_ros/assets/demo_speech.wav``)."""
    from importlib import resources

    import soundfile as sf

    path = str(resources.files("gemo_ros").joinpath("assets", "demo_speech.wav"))
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    return SpeechClip("demo_speech", audio.mean(axis=1), int(rate))


def espeak_clips(count: int, seed: int) -> List[SpeechClip]:
    """Synthesize ``count`` random English sentences with varied espeak voices."""
    from gemo_ros.train import speech_synth as ss

    rng = np.random.default_rng(seed)
    variants = [v for v in ss.list_variants() if " " not in v] or [""]
    clips = []
    for k in range(count):
        lang = ss.ENGLISH_LANGUAGES[int(rng.integers(len(ss.ENGLISH_LANGUAGES)))]
        var = variants[int(rng.integers(len(variants)))]
        text = ss.random_sentence(rng, 6, 14)
        rate, pitch = int(rng.integers(140, 200)), int(rng.integers(30, 70))
        try:
            utt = ss.synthesize(text, voice=f"{lang}+{var}" if var else lang, rate=rate,
                                pitch=pitch)
        except ValueError:
            # Not every language/variant pair exists in every espeak-ng build.
            utt = ss.synthesize(text, voice="en-us", rate=rate, pitch=pitch)
        clips.append(SpeechClip(f"espeak_{seed}_{k}", utt.audio.astype(np.float32),
                                int(utt.sample_rate)))
    return clips


# ----------------------------------------------------------------------------- expressions
class ExpressionSource:
    """Neutral/emotional coefficients and audio features of a clip, per frame.

    With an a2e model (``head.a2e``) it runs the model (as at run time). Without one it
    falls back to a development stand-in: a loudness-driven ``jawOpen`` for ``psi_n``, the
    FACS emotion recipes over it for ``psi_e`` and smoothed random features; the shipped
    weights are never trained on this fallback.
    """

    def __init__(self, head: Any, feature_dim: int, seed: int = 0) -> None:
        self.head = head
        self.a2e = getattr(head, "a2e", None)
        self.feature_dim = int(feature_dim)
        self.fps = float(self.a2e.fps) if self.a2e is not None else 25.0
        self._rng = np.random.default_rng(seed)
        self._cache: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def uses_a2e(self) -> bool:
        """True when the coefficients come from the audio-to-expression model."""
        return self.a2e is not None

    def features(self, clip: SpeechClip) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return ``(feats [T, D], psi_n [T, 52])`` of a clip (cached)."""
        if clip.name in self._cache:
            return self._cache[clip.name]
        if self.a2e is not None:
            psi_n, _, feats = self.head.analyse_audio(clip.audio, clip.sample_rate, NEUTRAL, 0.0)
            out = (feats.cpu(), psi_n.cpu())
        else:
            hop = clip.sample_rate / self.fps
            t = int(len(clip.audio) / hop)
            rms = np.array([np.sqrt(np.mean(clip.audio[int(k * hop):int((k + 1) * hop)] ** 2)
                                    + 1e-12) for k in range(t)])
            psi_n = np.zeros((t, NUM_EXPR), np.float32)
            from gemo_ros.face.arkit import ARKIT_INDEX

            psi_n[:, ARKIT_INDEX["jawOpen"]] = np.clip(rms / (rms.max() + 1e-9), 0, 1) * 0.5
            noise = self._rng.standard_normal((t + 8, self.feature_dim)).astype(np.float32)
            kernel = np.hanning(9)[:, None] / np.hanning(9).sum()
            feats = np.stack([np.convolve(noise[:, j], kernel[:, 0], "valid")
                              for j in range(self.feature_dim)], 1)[:t]
            feats = feats + rms[:, None].astype(np.float32) * 5.0
            out = (torch.from_numpy(feats.astype(np.float32)), torch.from_numpy(psi_n))
        self._cache[clip.name] = out
        return out

    def emotional(self, clip: SpeechClip, emotion: int, intensity: float) -> torch.Tensor:
        """Return ``psi_e [T, 52]`` of a clip for an emotion and intensity."""
        feats, psi_n = self.features(clip)
        if emotion == NEUTRAL or intensity <= 0.0:
            return psi_n.clone()
        if self.a2e is not None:
            dev = self.head.device
            with torch.no_grad():
                out = self.a2e.decode(feats[None].to(dev), torch.tensor([emotion], device=dev),
                                      torch.tensor([float(intensity)], device=dev))
            return out[0].cpu()
        from gemo_ros.face.emotion_recipes import combine_with_speech

        return torch.from_numpy(combine_with_speech(psi_n.numpy(), emotion, intensity))


# ----------------------------------------------------------------------------- synthetic
@dataclass
class SyntheticSpec:
    """What :func:`generate_synthetic` renders.

    Attributes:
        size: image width = height in pixels.
        intensities_per_emotion: training intensities drawn per (clip, emotion).
        frames_per_intensity: frames (times x cameras) per (clip, emotion, intensity).
        yaw_deg, pitch_deg: training camera ranges (uniform).
        test_levels: held-out intensities (the paper's levels 1-3).
        test_yaws: held-out camera yaws (degrees).
        test_frames_per_level: frames per (test clip, emotion, level).
        neutral_share: fraction of extra neutral / zero-intensity training frames.
        distance, fov_deg, target: orbit camera (metres, degrees).
        background: RGB in [0, 1].
        seed: everything random derives from it.
    """

    size: int = 112
    intensities_per_emotion: int = 3
    frames_per_intensity: int = 6
    yaw_deg: Tuple[float, float] = (-55.0, 55.0)
    pitch_deg: Tuple[float, float] = (-12.0, 12.0)
    test_levels: Tuple[float, ...] = tuple(LEVELS.values())
    test_yaws: Tuple[float, ...] = (-30.0, 0.0, 30.0)
    test_frames_per_level: int = 3
    neutral_share: float = 0.08
    distance: float = 0.48
    fov_deg: float = 24.0
    target: Tuple[float, float, float] = (0.0, -0.015, 0.02)
    background: Tuple[float, float, float] = RenderSettings.background
    seed: int = 0


@torch.no_grad()
def render_teacher(head: Any, teacher: EmotionTeacher, psi_e: torch.Tensor,
                   emotion: torch.Tensor, intensity: torch.Tensor, viewmat: torch.Tensor,
                   K: torch.Tensor, size: Tuple[int, int],
                   background: Sequence[float], neck: Optional[torch.Tensor] = None,
                   backend: str = "auto") -> torch.Tensor:
    """Render teacher frames ``[B, H, W, 3]`` float in [0, 1].

    Args:
        head: a :class:`gemo_ros.pipeline.TalkingHead` (its avatar is used).
        teacher: the emotion look.
        psi_e: ``[B, 52]``; emotion, intensity: ``[B]``; viewmat ``[B, 4, 4]``; K ``[B, 3, 3]``.
        size: ``(width, height)``.
        background: RGB in [0, 1].
        neck: ``[B, 3]`` or None.
    """
    from gemo_ros.render import rasterize

    dev = head.device
    g = head.avatar(psi_e.to(dev), neck_rotation=None if neck is None else neck.to(dev))
    g = teacher.apply(g, emotion, intensity, neck)
    out = []
    bg = torch.tensor(background, device=dev, dtype=torch.float32)
    for b in range(psi_e.shape[0]):
        rgb, _, _ = rasterize(g.means[b], g.quats[b], g.scales[b], g.opacities[b], g.colors[b],
                              viewmat[b].to(dev), K[b].to(dev), size[0], size[1],
                              background=bg, backend=backend)
        out.append(rgb.clamp(0.0, 1.0))
    return torch.stack(out)


def generate_synthetic(head: Any, train_clips: Sequence[SpeechClip],
                       test_clips: Sequence[SpeechClip],
                       spec: Optional[SyntheticSpec] = None,
                       teacher: Optional[EmotionTeacher] = None, window: int = 9,
                       feature_dim: Optional[int] = None, progress: bool = True
                       ) -> Stage2Frames:
    """Render a synthetic Stage 2 dataset with the teacher.

    Training frames: every training clip x every emotion (7 non-neutral) x random
    intensities in (0.1, 1] x random times and cameras, plus a few neutral frames.
    Held-out frames: the test clips (audio never trained on) x every emotion x the levels
    ``spec.test_levels`` x the yaws ``spec.test_yaws``.

    Args:
        head: a :class:`gemo_ros.pipeline.TalkingHead` (avatar and, when present, a2e).
        train_clips, test_clips: speech clips.
        spec: sizes, cameras and counts.
        teacher: the emotion look (default: :class:`EmotionTeacher` of the head's avatar).
        window: audio frames per feature window.
        feature_dim: feature width (default: the head's).
        progress: show a tqdm bar.
    """
    from tqdm import tqdm

    from gemo_ros.pipeline import feature_window
    from gemo_ros.render import orbit_camera

    spec = spec or SyntheticSpec()
    teacher = teacher or EmotionTeacher(head.avatar)
    source = ExpressionSource(head, feature_dim or head.feature_dim or 64, seed=spec.seed)
    if not source.uses_a2e:
        LOG.warning("no audio-to-expression model: using the recipe/random-feature stand-in "
                    "(development only)")
    rng = np.random.default_rng(spec.seed)
    jobs: List[Tuple[int, SpeechClip, int, float, bool, List[Tuple[float, float, float]]]] = []
    for ci, clip in enumerate(train_clips):
        for e in range(1, len(EMOTIONS)):
            for _ in range(spec.intensities_per_emotion):
                level = float(rng.uniform(0.1, 1.0))
                cams = [(float(rng.uniform(0, 1)), float(rng.uniform(*spec.yaw_deg)),
                         float(rng.uniform(*spec.pitch_deg)))
                        for _ in range(spec.frames_per_intensity)]
                jobs.append((ci, clip, e, level, False, cams))
        n_neutral = max(1, int(round(spec.neutral_share * (len(EMOTIONS) - 1)
                                     * spec.intensities_per_emotion)))
        for _ in range(n_neutral):
            e = int(rng.integers(0, len(EMOTIONS)))
            level = 0.0 if e != NEUTRAL else float(rng.uniform(0.1, 1.0))
            cams = [(float(rng.uniform(0, 1)), float(rng.uniform(*spec.yaw_deg)),
                     float(rng.uniform(*spec.pitch_deg))) for _ in range(spec.frames_per_intensity)]
            jobs.append((ci, clip, e, level, False, cams))
    for ti, clip in enumerate(test_clips):
        for e in range(1, len(EMOTIONS)):
            for level in spec.test_levels:
                cams = [(float(rng.uniform(0, 1)),
                         spec.test_yaws[k % len(spec.test_yaws)], 0.0)
                        for k in range(spec.test_frames_per_level)]
                jobs.append((len(train_clips) + ti, clip, e, float(level), True, cams))

    parts: Dict[str, List[torch.Tensor]] = {f.name: [] for f in fields(Stage2Frames)}
    size = (spec.size, spec.size)
    bar = tqdm(jobs, desc="teacher frames", unit="combo", disable=not progress)
    for ci, clip, e, level, is_test, cams in bar:
        feats, psi_n = source.features(clip)
        psi_e = source.emotional(clip, e, level)
        t_len = psi_n.shape[0]
        idx = torch.tensor([min(int(u * t_len), t_len - 1) for u, _, _ in cams])
        views = [orbit_camera(yaw, pitch, spec.distance, spec.fov_deg, spec.size, spec.size,
                              target=spec.target) for _, yaw, pitch in cams]
        vm = torch.stack([v for v, _ in views])
        kk = torch.stack([k for _, k in views])
        b = len(cams)
        em = torch.full((b,), e, dtype=torch.long)
        it = torch.full((b,), level, dtype=torch.float32)
        img = render_teacher(head, teacher, psi_e[idx], em, it, vm, kk, size, spec.background)
        parts["feats"].append(feature_window(feats, idx, window))
        parts["emotion"].append(em)
        parts["intensity"].append(it)
        parts["psi_n"].append(psi_n[idx].float())
        parts["psi_e"].append(psi_e[idx].float())
        parts["neck"].append(torch.zeros(b, 3))
        parts["viewmat"].append(vm)
        parts["K"].append(kk)
        parts["image"].append(torch.from_numpy(to_uint8(img)))
        parts["test"].append(torch.full((b,), is_test, dtype=torch.bool))
        parts["clip"].append(torch.full((b,), ci, dtype=torch.long))
        parts["time"].append(idx.float() / source.fps)
    return Stage2Frames(**{k: torch.cat(v) for k, v in parts.items()})


# ----------------------------------------------------------------------------- disk format
def write_stage2_dataset(root: str, frames: Stage2Frames, clips: Sequence[SpeechClip],
                         fps: float) -> str:
    """Write frames in the documented on-disk format (docs/stage2.md).

    ``frames.clip`` indexes ``clips``. Coefficients are written per frame (``psi_n`` /
    ``psi_e``), so loading does not need to rerun the a2e decoder; audio features are
    always recomputed from the clip audio.

    Returns:
        The manifest path.
    """
    import imageio.v3 as iio
    import soundfile as sf

    os.makedirs(os.path.join(root, "audio"), exist_ok=True)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    w, h = frames.size
    clip_meta = {}
    for k, clip in enumerate(clips):
        rel = f"audio/{clip.name}.wav"
        sf.write(os.path.join(root, rel), clip.audio, clip.sample_rate, subtype="PCM_16")
        clip_meta[clip.name] = {"audio": rel}
    entries = []
    for f in range(len(frames)):
        rel = f"images/{f:06d}.png"
        iio.imwrite(os.path.join(root, rel), frames.image[f].numpy())
        entries.append({
            "clip": clips[int(frames.clip[f])].name,
            "time": round(float(frames.time[f]), 6),
            "emotion": EMOTIONS[int(frames.emotion[f])],
            "intensity": round(float(frames.intensity[f]), 6),
            "image": rel,
            "viewmat": frames.viewmat[f].tolist(),
            "K": frames.K[f].tolist(),
            "neck_rotation": frames.neck[f].tolist(),
            "split": "test" if bool(frames.test[f]) else "train",
            "psi_n": [round(float(x), 6) for x in frames.psi_n[f]],
            "psi_e": [round(float(x), 6) for x in frames.psi_e[f]],
        })
    manifest = {"format": FORMAT, "width": w, "height": h, "fps": fps, "clips": clip_meta,
                "frames": entries}
    path = os.path.join(root, MANIFEST)
    with open(path, "w") as fh:
        json.dump(manifest, fh)
    return path


def _intensity_of(entry: Dict[str, Any], where: str) -> float:
    if "intensity" in entry:
        value = float(entry["intensity"])
    elif "level" in entry:
        level = int(entry["level"])
        if level not in LEVELS:
            raise DatasetError(f"{where}: level must be one of {sorted(LEVELS)}, got {level}")
        value = LEVELS[level]
    else:
        raise DatasetError(f"{where}: needs `intensity` (0..1) or `level` (1..3)")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise DatasetError(f"{where}: intensity {value} outside [0, 1]")
    return value


def _matrix(entry: Dict[str, Any], key: str, shape: Tuple[int, ...], where: str
            ) -> torch.Tensor:
    if key not in entry:
        raise DatasetError(f"{where}: missing `{key}`")
    try:
        value = torch.tensor(entry[key], dtype=torch.float32)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: `{key}` is not a numeric array ({exc})") from None
    if tuple(value.shape) != shape or not torch.isfinite(value).all():
        raise DatasetError(f"{where}: `{key}` must be finite with shape {list(shape)}, "
                           f"got {list(value.shape)}")
    return value


def load_stage2_dataset(root: str, head: Any, window: int = 9,
                        feature_dim: Optional[int] = None,
                        splits: Iterable[str] = ("train", "test")) -> Stage2Frames:
    """Load a Stage 2 dataset written in the documented format.

    Args:
        root: folder with ``stage2.json``.
        head: a :class:`gemo_ros.pipeline.TalkingHead`; its a2e model computes the audio
            features (and ``psi_n`` / ``psi_e`` for frames that do not list them).
        window: audio frames per feature window.
        feature_dim: feature width for the development stand-in without an a2e model.
        splits: which splits to keep.

    Raises:
        DatasetError: naming the file and field that is wrong.
    """
    import imageio.v3 as iio
    import soundfile as sf

    from gemo_ros.pipeline import feature_window

    path = os.path.join(root, MANIFEST)
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: not found (a Stage 2 dataset needs {MANIFEST})")
    try:
        with open(path) as fh:
            manifest = json.load(fh)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: invalid JSON ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise DatasetError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    try:
        width, height = int(manifest["width"]), int(manifest["height"])
        clip_meta = dict(manifest["clips"])
        entries = list(manifest["frames"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: needs width, height, clips and frames ({exc})") from None
    keep = set(splits)
    source = ExpressionSource(head, feature_dim or head.feature_dim or 64)
    clips: Dict[str, SpeechClip] = {}
    clip_ids: Dict[str, int] = {}
    parts: Dict[str, List[torch.Tensor]] = {f.name: [] for f in fields(Stage2Frames)}
    for n, entry in enumerate(entries):
        where = f"{path}: frames[{n}]"
        split = entry.get("split", "train")
        if split not in ("train", "test"):
            raise DatasetError(f"{where}: split must be train or test, got {split!r}")
        if split not in keep:
            continue
        name = entry.get("clip")
        if name not in clip_meta:
            raise DatasetError(f"{where}: clip {name!r} is not listed under `clips`")
        if name not in clips:
            apath = os.path.join(root, clip_meta[name].get("audio", ""))
            if not os.path.isfile(apath):
                raise DatasetError(f"{path}: clips[{name!r}]: audio file {apath} not found")
            audio, rate = sf.read(apath, dtype="float32", always_2d=True)
            clips[name] = SpeechClip(name, audio.mean(axis=1), int(rate))
            clip_ids[name] = len(clip_ids)
        clip = clips[name]
        try:
            emotion = emotion_index(entry.get("emotion", ""))
        except ValueError as exc:
            raise DatasetError(f"{where}: {exc}") from None
        intensity = 0.0 if emotion == NEUTRAL else _intensity_of(entry, where)
        t = float(entry.get("time", -1.0))
        dur = len(clip.audio) / clip.sample_rate
        if not 0.0 <= t <= dur + 1e-6:
            raise DatasetError(f"{where}: time {t} s outside the clip (0..{dur:.3f} s)")
        feats, psi_n_clip = source.features(clip)
        idx = min(int(round(t * source.fps)), feats.shape[0] - 1)
        if "psi_n" in entry and "psi_e" in entry:
            psi_n = _matrix(entry, "psi_n", (NUM_EXPR,), where)
            psi_e = _matrix(entry, "psi_e", (NUM_EXPR,), where)
        else:
            psi_n = psi_n_clip[idx]
            psi_e = source.emotional(clip, emotion, intensity)[idx]
        ipath = os.path.join(root, str(entry.get("image", "")))
        if not os.path.isfile(ipath):
            raise DatasetError(f"{where}: image {ipath} not found")
        img = np.asarray(iio.imread(ipath))
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3]
        if img.shape[:2] != (height, width) or img.dtype != np.uint8:
            raise DatasetError(f"{where}: image {ipath} is {img.shape} {img.dtype}, expected "
                               f"({height}, {width}, 3) uint8")
        parts["feats"].append(feature_window(feats, idx, window)[None])
        parts["emotion"].append(torch.tensor([emotion]))
        parts["intensity"].append(torch.tensor([intensity], dtype=torch.float32))
        parts["psi_n"].append(psi_n.float()[None])
        parts["psi_e"].append(psi_e.float()[None])
        neck = entry.get("neck_rotation")
        parts["neck"].append(torch.zeros(1, 3) if neck is None
                             else _matrix(entry, "neck_rotation", (3,), where)[None])
        parts["viewmat"].append(_matrix(entry, "viewmat", (4, 4), where)[None])
        parts["K"].append(_matrix(entry, "K", (3, 3), where)[None])
        parts["image"].append(torch.from_numpy(np.ascontiguousarray(img))[None])
        parts["test"].append(torch.tensor([split == "test"]))
        parts["clip"].append(torch.tensor([clip_ids[name]]))
        parts["time"].append(torch.tensor([t], dtype=torch.float32))
    if not parts["emotion"]:
        raise DatasetError(f"{path}: no frames in splits {sorted(keep)}")
    return Stage2Frames(**{k: torch.cat(v) for k, v in parts.items()})
