"""The talking head for one frame: audio-to-expression + Gaussian blendshapes + residual + render.

Per frame (docs/ARCHITECTURE.md, "The method"):

1. ``psi_n`` / ``psi_e``: expression coefficients ``[52]`` from the audio-to-expression model
   with emotion neutral, and with the commanded emotion and intensity;
2. ``M(psi_n)``, ``M(psi_e)``: the face mesh posed by both (no neck rotation, head frame);
3. the mesh displacement ``M(psi_e) - M(psi_n)`` interpolated at every Gaussian's binding;
4. the emotion residual's offsets from (displacement, canonical positions, audio feature
   window, emotion, intensity);
5. ``avatar(psi_n, neck_rotation, offsets)`` -> Gaussians -> ``render.rasterize`` (the
   offsets' blendshape motion applied exactly: :meth:`TalkingHead.head_with_offsets`).

:class:`TalkingHead` exposes each step (batched over frames) so the engine, ``gemo render``,
training and evaluation share one implementation. Nothing here imports rclpy.

On a GPU a frame makes no host round trip but its result: the small host inputs (intensity,
neck pose, idle overlay, and coefficients when they come from the host) go up in one
pinned, non-blocking copy (:func:`upload`), every stage runs on device tensors, and
:func:`download_frame` brings the ``uint8`` image back with one CUDA event to wait on.
:class:`StageClock` times the stages with CUDA events there (``time.perf_counter`` on a
CPU). ``test/test_pipeline_host_syncs.py`` records every host sync of a frame.
"""

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from gemo_ros.emotions import NEUTRAL, emotion_id
from gemo_ros.framing import RenderSettings
from gemo_ros.imaging import to_uint8

LOG = logging.getLogger(__name__)

Emotion = Union[int, str]

#: Modes of :meth:`TalkingHead.enable_compile`: a CUDA graph of the eager head step, or one
#: of ``torch.compile``'s modes.
COMPILE_MODES = ("cudagraph", "reduce-overhead", "default", "max-autotune")


def compile_mode(value: Union[bool, str, None], device: Union[str, torch.device]
                 ) -> Optional[str]:
    """Normalise a compile setting: None (off) or one of :data:`COMPILE_MODES`.

    ``False``, ``""``, ``"off"``, ``"none"``: off; ``True`` / ``"auto"``:
    ``"reduce-overhead"`` on CUDA, ``"default"`` elsewhere. Raises ValueError on other names.
    """
    if value is None or value is False:
        return None
    name = "auto" if value is True else str(value).strip().lower()
    if name in ("", "off", "none", "false"):
        return None
    if name in ("auto", "true", "on"):
        return "reduce-overhead" if torch.device(device).type == "cuda" else "default"
    if name not in COMPILE_MODES:
        raise ValueError(f"compile must be off, auto or one of {', '.join(COMPILE_MODES)}; "
                         f"got {value!r}")
    return name


class _CudaGraphStep:
    """A function of tensors captured once per input signature as a CUDA graph and replayed.

    The function must make no host sync (the frame's head step makes none:
    ``test/test_pipeline_host_syncs.py``). Inputs are copied into static buffers; the
    outputs are the graph's own buffers, overwritten by the next replay.
    """

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.graphs: Dict[Tuple, Tuple[Any, List[Any], Any]] = {}

    def __call__(self, *args: Any) -> Any:
        tensors = [a if torch.is_tensor(a) else None for a in args]
        key = tuple((tuple(a.shape), a.dtype) if torch.is_tensor(a) else a for a in args)
        entry = self.graphs.get(key)
        if entry is None:
            static = [a.clone() if torch.is_tensor(a) else a for a in args]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up fills every lazy cache before capture
                for _ in range(2):
                    self.fn(*static)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: the audio thread may use the GPU while this thread captures
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                out = self.fn(*static)
            entry = self.graphs[key] = (graph, static, out)
        graph, static, out = entry
        for dst, src in zip(static, tensors):
            if src is not None:
                dst.copy_(src)
        graph.replay()
        return out


@dataclass
class Frame:
    """One rendered frame and the intermediate results that made it.

    Attributes:
        image: ``[H, W, 3]`` float RGB in [0, 1].
        alpha: ``[H, W, 1]`` accumulated opacity.
        psi_n, psi_e: ``[52]`` neutral and emotional expression coefficients.
        offsets: residual offsets ``{name: [N, d]}`` (None without a residual).
        gaussians: the avatar's output for this frame (batch of one).
        timings_ms: milliseconds per step.
    """

    image: torch.Tensor
    alpha: torch.Tensor
    psi_n: torch.Tensor
    psi_e: torch.Tensor
    offsets: Optional[Dict[str, torch.Tensor]]
    gaussians: Any
    timings_ms: Dict[str, float] = field(default_factory=dict)

    def to_uint8(self) -> np.ndarray:
        """Return the image as ``uint8 [H, W, 3]`` (:func:`gemo_ros.imaging.to_uint8`)."""
        return to_uint8(self.image)


class StageClock:
    """Milliseconds per stage of one frame, from marks at the end of each stage.

    On CUDA each mark records an event in the current stream (no sync), and :meth:`ms`
    reads them once the frame's last event has completed (after :func:`download_frame`);
    on a CPU the marks are ``time.perf_counter`` readings.
    """

    def __init__(self, device: Union[str, torch.device]) -> None:
        self.cuda = torch.device(device).type == "cuda"
        self._marks: List[Tuple[str, Any]] = []
        self.mark("")

    def mark(self, stage: str) -> Any:
        """End ``stage`` now; returns the CUDA event (None on a CPU)."""
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._marks.append((stage, event))
            return event
        self._marks.append((stage, time.perf_counter()))
        return None

    def ms(self) -> Dict[str, float]:
        """Return ``{stage: ms}`` (on CUDA this waits for the last mark's event)."""
        if self.cuda and self._marks:
            self._marks[-1][1].synchronize()
        out: Dict[str, float] = {}
        for (_, a), (stage, b) in zip(self._marks, self._marks[1:]):
            out[stage] = out.get(stage, 0.0) + (a.elapsed_time(b) if self.cuda
                                                else (b - a) * 1e3)
        return out


def upload(arrays: Sequence[Any], device: Union[str, torch.device]) -> List[torch.Tensor]:
    """Copy small host arrays to ``device`` as float32 tensors in one copy.

    The arrays are packed into one buffer; on CUDA it is pinned and copied without blocking
    the host (the caching host allocator holds the buffer until the copy has run). Returns
    one tensor per array, of its shape (views of the one device buffer).
    """
    host = [np.asarray(a, dtype=np.float32) for a in arrays]
    flat = np.concatenate([a.reshape(-1) for a in host]) if host else np.zeros(0, np.float32)
    buf = torch.from_numpy(flat)
    device = torch.device(device)
    if device.type == "cuda":
        buf = buf.pin_memory().to(device, non_blocking=True)
    out, start = [], 0
    for a in host:
        out.append(buf[start:start + a.size].view(a.shape))
        start += a.size
    return out


def download_frame(image: torch.Tensor, *extras: torch.Tensor,
                   clock: Optional[StageClock] = None) -> Tuple[np.ndarray, ...]:
    """Return ``image`` as ``uint8`` and ``extras`` as float32 numpy arrays, waiting once.

    ``uint8`` by the :func:`gemo_ros.imaging.to_uint8` rule. On CUDA the conversion runs on
    the device and the results go to pinned host memory without blocking; one event
    (``clock``'s ``"to_uint8"`` mark when given) is waited on.
    """
    if image.device.type != "cuda":
        out = (to_uint8(image),) + tuple(x.detach().float().cpu().numpy() for x in extras)
        if clock is not None:
            clock.mark("to_uint8")
        return out
    x = image.detach()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    # Same rule and ops as gemo_ros.imaging.to_uint8, kept on the device.
    levels = x.clamp(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    hosts = []
    for t in (levels,) + tuple(e.detach().float() for e in extras):
        h = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        h.copy_(t, non_blocking=True)
        hosts.append(h)
    done = clock.mark("to_uint8") if clock is not None else None
    if done is None:
        done = torch.cuda.Event()
        done.record()
    done.synchronize()
    return tuple(h.numpy() for h in hosts)


def face_model_of(avatar: Any) -> Any:
    """Return the face model an avatar is bound to (``avatar.face_model`` or ``.face``)."""
    for name in ("face_model", "face"):
        model = getattr(avatar, name, None)
        if model is not None and hasattr(model, "pose"):
            return model
    raise AttributeError(f"{type(avatar).__name__} exposes no face model "
                         "(expected an attribute `face_model` with `pose(expr, neck)`)")


def binding_frames(avatar: Any) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return the canonical binding frames of an avatar's Gaussians.

    Returns:
        ``rot [N, 3, 3]`` (columns = local axes in the head frame) and ``scale [N, 1]``
        (metres per local unit) of each Gaussian's triangle in the template pose, so that a
        local offset ``xyz`` moves the Gaussian by ``scale * rot @ xyz`` metres.
    """
    from gemo_ros.avatar.binding import triangle_frames

    face = face_model_of(avatar)
    with torch.no_grad():
        zero = torch.zeros(1, face.num_expressions, device=avatar.binding_bary.device)
        verts = face.pose(zero, None)
        _, rot, scale = triangle_frames(verts, face.faces[avatar.binding_faces],
                                        avatar.binding_bary)
    return rot[0], scale[0]


def feature_window(feats: torch.Tensor, index: Union[int, torch.Tensor],
                   window: int) -> torch.Tensor:
    """Cut windows of audio features centred on frame indices, repeating the edge frames.

    Args:
        feats: ``[T, D]`` features of a whole clip at the a2e frame rate.
        index: frame index (int) or ``[B]`` indices of the centre frames.
        window: W frames per window.

    Returns:
        ``[W, D]`` for an int index, ``[B, W, D]`` for a tensor of indices.
    """
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise ValueError(f"features must be [T>0, D], got {tuple(feats.shape)}")
    single = not torch.is_tensor(index)
    idx = torch.as_tensor(index, dtype=torch.long, device=feats.device).reshape(-1)
    offs = torch.arange(window, device=feats.device) - (window - 1) // 2
    rows = (idx[:, None] + offs[None]).clamp(0, feats.shape[0] - 1)
    out = feats[rows]
    return out[0] if single else out


class TalkingHead:
    """The stages joined for one frame: a2e (optional), avatar, residual (optional), renderer.

    Args:
        avatar: a ``GaussianAvatar`` (``gemo_ros.avatar``).
        a2e: an ``AudioToExpression`` model, or None (then callers pass coefficients and
            features, or silence gives zero coefficients).
        residual: an ``EmotionResidual``, or None for the neutral head with ``psi_e``
            coefficients only.
        settings: render settings (camera, size, background, backend).
        device: torch device everything runs on.
        emotion_geometry: without a residual, drive the avatar with ``psi_e`` instead of
            ``psi_n`` (so emotions still show); with a residual the method's ``psi_n`` +
            offsets is used.
        compile: run the head step of :meth:`frame` as a CUDA graph or ``torch.compile``'d
            (:func:`compile_mode`, :meth:`enable_compile`); off by default until a GPU run
            has measured it.
    """

    def __init__(self, avatar: Any, a2e: Any = None, residual: Any = None,
                 settings: Optional[RenderSettings] = None,
                 device: Union[str, torch.device] = "cpu",
                 emotion_geometry: bool = True, compile: Union[bool, str] = False) -> None:
        self.device = torch.device(device)
        self.avatar = avatar.to(self.device).eval() if hasattr(avatar, "to") else avatar
        self.face_model = face_model_of(self.avatar)
        self.a2e = a2e.to(self.device).eval() if a2e is not None and hasattr(a2e, "to") else a2e
        self.residual = residual.to(self.device).eval() if residual is not None else None
        self.settings = settings or RenderSettings()
        self.emotion_geometry = emotion_geometry
        self._canonical = self.avatar.canonical_means().detach().to(self.device)
        self._binding = None
        self._cameras: Dict[Any, Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._emotion_ids: Dict[int, torch.Tensor] = {}  # emotion id -> [1] on the device
        if self.residual is not None:
            self._check_residual()
            self._binding = self.residual.bind(self._canonical, frames=binding_frames(avatar))
        self._num_expr = len(getattr(self.face_model, "expression_names", ())) or 52
        self._step = self._head_step
        #: the compile mode in use (None: eager)
        self.compiled: Optional[str] = None
        mode = compile_mode(compile, self.device)
        if mode is not None:
            self.enable_compile(mode)

    # ------------------------------------------------------------------ torch.compile
    def enable_compile(self, mode: Optional[str] = "auto") -> None:
        """Run the head step of :meth:`frame` (blendshapes, residual, posing) faster.

        ``mode`` (:func:`compile_mode`): ``"cudagraph"`` captures the eager step once per
        input shape as a CUDA graph (one launch instead of hundreds of small ones; possible
        because the step makes no host sync); a ``torch.compile`` mode compiles it with
        inductor (``"reduce-overhead"`` also replays CUDA graphs). ``"auto"``:
        ``"reduce-overhead"`` on CUDA, ``"default"`` elsewhere. The work happens on the first
        frames (seconds on a GPU, minutes for inductor on a CPU); if it fails the head logs a
        warning and runs eagerly. With CUDA graphs a frame's ``Frame.gaussians`` /
        ``offsets`` are overwritten by the next frame (the renderer has used them by then):
        clone them to keep them.
        """
        mode = compile_mode(mode, self.device)
        if mode is None:
            self._step, self.compiled = self._head_step, None
            return
        if mode == "cudagraph":
            if self.device.type != "cuda":
                LOG.warning("compile mode cudagraph needs CUDA; the head runs eagerly on %s",
                            self.device)
                return
            self._step = _CudaGraphStep(self._head_step)
        else:
            self._step = torch.compile(self._head_step, mode=mode, dynamic=False)
        self.compiled = mode

    def _head_step(self, pn: torch.Tensor, pe: torch.Tensor, f: Optional[torch.Tensor],
                   e: torch.Tensor, i: torch.Tensor, neck: Optional[torch.Tensor],
                   use_residual: bool, active: bool) -> Tuple[Any, ...]:
        """Return the frame's head: ``(means, quats, scales, opacities, colors, offsets)``."""
        g, offs = self.gaussians(pn, pe, f, e, i, neck, use_residual=use_residual,
                                 active=active, validate=False)
        return g.means, g.quats, g.scales, g.opacities, g.colors, offs

    def _run_step(self, *args: Any) -> Tuple[Any, Any]:
        try:
            out = self._step(*args)
        except Exception as exc:  # noqa: BLE001 - a compiler failure must not stop frames
            if self._step is self._head_step:
                raise
            LOG.warning("the head step compiled as %s failed (%s: %s); running it eagerly",
                        self.compiled, type(exc).__name__,
                        str(exc).splitlines()[0][:300] if str(exc) else "")
            self._step, self.compiled = self._head_step, None
            out = self._step(*args)
        from gemo_ros.avatar.model import Gaussians

        return Gaussians(*out[:5]), out[5]

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, avatar: str = "default", a2e: Optional[str] = "default",
             residual: Optional[str] = "default", settings: Optional[RenderSettings] = None,
             device: str = "auto", max_gaussians: int = 0) -> "TalkingHead":
        """Load the stages by :func:`gemo_ros.stages.load_stages`'s rules and join them.

        ``a2e`` / ``residual``: ``"default"``, a path, or ``"none"`` / None to leave the stage
        out; ``device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; ``max_gaussians``: level
        of detail (0 = every Gaussian).
        """
        from gemo_ros.stages import StageSpec, load_stages

        stages = load_stages(StageSpec(avatar, a2e, residual, device, max_gaussians))
        return cls(stages.avatar, stages.a2e, stages.residual, settings=settings,
                   device=stages.device)

    def _check_residual(self) -> None:
        cfg = self.residual.config
        dims = dict(getattr(self.avatar, "attribute_dims", cfg.attribute_dims))
        if dict(cfg.attribute_dims) != dims:
            raise ValueError(f"residual attributes {dict(cfg.attribute_dims)} do not match the "
                             f"avatar's {dims}")
        if self.a2e is not None and int(self.a2e.feature_dim) != cfg.feature_dim:
            raise ValueError(f"residual expects {cfg.feature_dim}-d audio features, the a2e "
                             f"model gives {self.a2e.feature_dim}")

    @property
    def feature_dim(self) -> int:
        """Width D of the audio features fed to the residual (0 when neither stage has it)."""
        if self.residual is not None:
            return int(self.residual.config.feature_dim)
        return int(getattr(self.a2e, "feature_dim", 0) or 0)

    @property
    def window(self) -> int:
        """Audio frames per residual window."""
        return int(self.residual.config.window) if self.residual is not None else 1

    @property
    def canonical(self) -> torch.Tensor:
        """Canonical Gaussian means ``[N, 3]`` (cached)."""
        return self._canonical

    # ------------------------------------------------------------------ audio
    @torch.no_grad()
    def analyse_audio(self, wave: Union[np.ndarray, torch.Tensor], sample_rate: int,
                      emotion: Emotion = NEUTRAL, intensity: float = 0.0
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the a2e model over a whole clip.

        Args:
            wave: ``[S]`` mono samples (float in [-1, 1]).
            sample_rate: Hz of ``wave``; resampled to the model's rate.
            emotion: name or id; intensity: [0, 1].

        Returns:
            ``psi_n [T, 52]``, ``psi_e [T, 52]``, ``feats [T, D]`` at ``a2e.fps``.
        """
        if self.a2e is None:
            raise RuntimeError("no audio-to-expression model loaded")
        wave_t = torch.as_tensor(np.asarray(wave, dtype=np.float32)).reshape(-1)
        if wave_t.numel() == 0:
            raise ValueError("audio is empty")
        if int(sample_rate) != int(self.a2e.sample_rate):
            from gemo_ros.audio import resample

            wave_t = torch.as_tensor(resample(wave_t.numpy(), int(sample_rate),
                                              int(self.a2e.sample_rate)))
        wave_t = wave_t.to(self.device)[None]
        feats = self.a2e.encode(wave_t)
        e = torch.tensor([emotion_id(emotion)], device=self.device)
        zero = torch.zeros(1, device=self.device)
        psi_n = self.a2e.decode(feats, torch.zeros_like(e), zero)
        psi_e = self.a2e.decode(feats, e, torch.tensor([float(intensity)], device=self.device))
        return psi_n[0], psi_e[0], feats[0]

    # ------------------------------------------------------------------ stages (batched)
    def displacement(self, psi_n: torch.Tensor, psi_e: torch.Tensor) -> torch.Tensor:
        """Mesh displacement ``M(psi_e) - M(psi_n)`` at every Gaussian's binding.

        Args:
            psi_n, psi_e: ``[B, 52]`` coefficients.

        Returns:
            ``[B, N, 3]`` metres (head frame, no neck rotation).
        """
        expr = torch.cat([psi_e, psi_n], 0).to(self.device)
        b = psi_n.shape[0]
        ids = getattr(self.avatar, "_used_vertices", None)
        local = getattr(self.avatar, "_bound_local_ids", None)
        if ids is not None and local is not None:
            # Pose only the vertices under bound triangles (a level-of-detail avatar needs
            # a fraction of the mesh); same values as the full path below.
            moving = self._moving_vertices(ids)
            if moving is None:
                verts = self.face_model.pose(expr, None, vertex_ids=ids)
                diff = verts[:b] - verts[b:]
            else:
                # Of those, only the ones an expression can move: the rest are exactly zero.
                pos, moving_ids = moving
                verts = self.face_model.pose(expr, None, vertex_ids=moving_ids)
                diff = verts.new_zeros(b, ids.shape[0], 3)
                diff[:, pos] = verts[:b] - verts[b:]
            tri = diff[:, local]  # [B, N, 3, 3]
            return torch.einsum("nk,bnkc->bnc", self.avatar.binding_bary.to(tri), tri)
        verts = self.face_model.pose(expr, None)
        return self.avatar.interpolate_at_gaussians(verts[:b] - verts[b:])

    def _moving_vertices(self, ids: torch.Tensor
                         ) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """Vertices of ``ids [V']`` an expression can move without a neck rotation.

        With the built-in :class:`FaceModel` rigging, no neck rotation leaves the neck joint
        at identity, so a vertex outside the expression basis and skinned only to the neck
        stays at the template for every ``psi``: its displacement is exactly zero. Returns
        ``(positions in ids [V''], their vertex ids [V''])``, or None (pose them all) for
        other face models. Cached per ``ids`` (a fixed tensor keeps the face model's
        subset cache warm).
        """
        from gemo_ros.face.model import FaceModel

        face = self.face_model
        if any(getattr(type(face), name, None) is not getattr(FaceModel, name)
               for name in ("joint_transforms", "skin", "pose")):
            return None
        key = (ids.data_ptr(), ids.numel(), face.expr_basis._version)
        if getattr(self, "_moving_key", None) != key:
            moves = (face.expr_basis[:, ids].abs().amax((0, 2)) > 0) | \
                (face.lbs_weights[ids, 1:].abs().amax(1) > 0)
            pos = torch.nonzero(moves)[:, 0]
            self._moving = (pos, ids[pos])
            self._moving_key = key
        return self._moving

    def offsets(self, psi_n: torch.Tensor, psi_e: torch.Tensor, feats: torch.Tensor,
                emotion: torch.Tensor, intensity: torch.Tensor,
                displacement: Optional[torch.Tensor] = None, **checks: Any
                ) -> Optional[Dict[str, torch.Tensor]]:
        """Residual offsets ``{name: [B, N, d]}`` (None without a residual).

        Args:
            psi_n, psi_e: ``[B, 52]``; feats: ``[B, W, D]``; emotion: ``[B]`` long;
            intensity: ``[B]`` in [0, 1].
            displacement: precomputed :meth:`displacement` ``[B, N, 3]`` (training caches it).
            checks: ``active`` / ``validate`` of the residual's forward (the frame path
                knows both on the host and skips the device reads).
        """
        if self.residual is None:
            return None
        disp = (self.displacement(psi_n, psi_e) if displacement is None
                else displacement.to(self.device))
        return self.residual(disp, self._canonical, feats.to(self.device),
                             emotion.to(self.device), intensity.to(self.device),
                             binding=self._binding, **checks)

    def gaussians(self, psi_n: torch.Tensor, psi_e: torch.Tensor, feats: Optional[torch.Tensor],
                  emotion: torch.Tensor, intensity: torch.Tensor,
                  neck_rotation: Optional[torch.Tensor] = None, use_residual: bool = True,
                  displacement: Optional[torch.Tensor] = None, **checks: Any
                  ) -> Tuple[Any, Optional[Dict[str, torch.Tensor]]]:
        """Return ``(avatar Gaussians with batch dim B, offsets or None)``.

        With a residual (and ``use_residual``): ``avatar(psi_n, neck, offsets)``, the
        method's head (see :meth:`head_with_offsets` for how the offsets' blendshape motion is
        applied). Without: ``avatar(psi_e, neck)`` when ``emotion_geometry`` else
        ``avatar(psi_n, neck)``. ``displacement``: optional precomputed ``[B, N, 3]``;
        ``checks``: see :meth:`offsets`.
        """
        if self.residual is not None and use_residual:
            if feats is None:
                feats = torch.zeros(psi_n.shape[0], self.window, self.feature_dim,
                                    device=self.device)
            disp = (self.displacement(psi_n, psi_e) if displacement is None
                    else displacement.to(self.device))
            offs = self.offsets(psi_n, psi_e, feats, emotion, intensity, disp, **checks)
            return self.head_with_offsets(psi_n, psi_e, disp, offs, emotion, intensity,
                                          neck_rotation), offs
        expr = psi_e if self.emotion_geometry else psi_n
        return self.avatar(expr.to(self.device), neck_rotation=neck_rotation), None

    def head_with_offsets(self, psi_n: torch.Tensor, psi_e: torch.Tensor,
                          disp: Optional[torch.Tensor], offs: Optional[Dict[str, torch.Tensor]],
                          emotion: torch.Tensor, intensity: torch.Tensor,
                          neck_rotation: Optional[torch.Tensor] = None) -> Any:
        """``avatar(psi_n) + offsets`` with the offsets' blendshape motion applied exactly.

        The residual's position offsets are the blendshape motion
        (:meth:`EmotionResidual.follow_offsets`) plus a small learned departure. Added as a
        raw offset, that motion keeps ``psi_n``'s triangle frames: where frown, stretch and
        jaw shear the mouth corners, lip Gaussians then stand outside the lips as dark dots
        instead of turning and squashing with them. So an emotional item is posed at
        ``psi_e`` (frames, blendshape deltas) and gets only the departure; a neutral or
        intensity-0 item stays exactly ``avatar(psi_n)`` (its offsets are zero). Per item on
        the device: no host read. ``disp``: :meth:`displacement`; ``offs``: :meth:`offsets`
        (None: ``avatar(psi_n)``).
        """
        dev = self.device
        follow = None
        if self.residual is not None and offs is not None and "xyz" in offs:
            follow = self.residual.follow_offsets(disp, self._binding)
        if follow is None:
            return self.avatar(psi_n.to(dev), neck_rotation=neck_rotation, offsets=offs)
        on = ((emotion.to(dev).reshape(-1) != NEUTRAL)
              & (intensity.to(dev).reshape(-1) > 0))[:, None]            # [B, 1]
        expr = torch.where(on, psi_e.to(dev), psi_n.to(dev))
        xyz = offs["xyz"] - follow * on[..., None].to(follow.dtype)
        return self.avatar(expr, neck_rotation=neck_rotation, offsets={**offs, "xyz": xyz})

    def render_gaussians(self, gaussians: Any, index: int = 0,
                         viewmat: Optional[torch.Tensor] = None, K: Optional[torch.Tensor] = None,
                         settings: Optional[RenderSettings] = None
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Rasterize item ``index`` of a batch of Gaussians.

        Returns:
            ``rgb [H, W, 3]`` in [0, 1] over the background and ``alpha [H, W, 1]``
            (``[C, H, W, *]`` when ``viewmat`` is a batch ``[C, 4, 4]``).
        """
        from gemo_ros.render import rasterize

        s = settings or self.settings
        colors = gaussians.colors[index]
        cam_K, cam_view, bg = self._camera_tensors(s, colors.dtype)
        if viewmat is None or K is None:
            viewmat, K = cam_view, cam_K
        rgb, alpha, _ = rasterize(gaussians.means[index], gaussians.quats[index],
                                  gaussians.scales[index], gaussians.opacities[index], colors,
                                  viewmat.to(self.device), K.to(self.device), s.width, s.height,
                                  background=bg, backend=s.backend)
        return rgb.clamp(0.0, 1.0), alpha

    def _camera_tensors(self, s: RenderSettings, dtype: torch.dtype
                        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(K, viewmat, background)`` on the device, built once per framing.

        A frozen ``RenderSettings`` is the key, so frames upload no camera.
        """
        key = (s, dtype)
        cached = self._cameras.get(key)
        if cached is None:
            viewmat, K = s.camera(self.device)
            bg = torch.tensor(s.background, dtype=dtype, device=self.device)
            cached = (K.to(self.device), viewmat.to(self.device), bg)
            if len(self._cameras) >= 32:  # sizes x framings in use are few; stay bounded
                self._cameras.clear()
            self._cameras[key] = cached
        return cached

    # ------------------------------------------------------------------ one frame
    def _emotion_tensor(self, e_id: int) -> torch.Tensor:
        """``[e_id]`` as a long tensor on the device, made once per emotion."""
        e = self._emotion_ids.get(e_id)
        if e is None:
            e = self._emotion_ids[e_id] = torch.tensor([e_id], device=self.device)
        return e

    @torch.no_grad()
    def frame(self, psi_n: Any, psi_e: Any, feats: Any, emotion: Emotion, intensity: float,
              neck_rotation: Any = None, settings: Optional[RenderSettings] = None,
              use_residual: bool = True, idle_overlay: Optional[np.ndarray] = None,
              clock: Optional[StageClock] = None) -> Frame:
        """Render one frame from its coefficients and audio feature window.

        Args:
            psi_n, psi_e: ``[52]`` neutral / emotional coefficients (tensors, best on the
                device, or host arrays).
            feats: ``[W, D]`` audio features around the frame, or None (silence: zeros).
            emotion: name or id; intensity: [0, 1] (checked on the host).
            neck_rotation: ``[3]`` axis-angle radians, or None.
            settings: overrides the head's render settings for this frame.
            use_residual: False renders ``avatar(psi_e)`` (the blendshape-only baseline).
            idle_overlay: ``[2, 52]`` blinks and gaze (:func:`gemo_ros.behaviour.idle_overlay`)
                applied to both coefficient vectors on the device, or None.
            clock: marks ``head`` and ``render`` on it (then ``Frame.timings_ms`` is left
                empty: the caller reads the clock after its download).

        Returns:
            A :class:`Frame`. Host inputs go up in one copy (:func:`upload`); nothing is read
            back from the device.
        """
        own = clock is None
        clock = StageClock("cpu") if own else clock
        if not math.isfinite(float(intensity)):
            raise ValueError(f"intensity must be finite, got {intensity}")
        e_id = emotion_id(emotion)
        inten = min(max(float(intensity), 0.0), 1.0)
        host = {"intensity": np.array([inten], np.float32)}
        dev: Dict[str, torch.Tensor] = {}
        for name, value in (("psi_n", psi_n), ("psi_e", psi_e), ("feats", feats),
                            ("neck", neck_rotation), ("idle", idle_overlay)):
            if value is None:
                continue
            if torch.is_tensor(value):
                dev[name] = value.to(device=self.device, dtype=torch.float32)
            else:
                host[name] = value
        dev.update(zip(host, upload(list(host.values()), self.device)))
        pn, pe = dev["psi_n"].reshape(1, -1), dev["psi_e"].reshape(1, -1)
        if "idle" in dev:
            from gemo_ros.behaviour import apply_idle_tensor

            pn = apply_idle_tensor(pn, dev["idle"])
            # A neutral frame passes one tensor as both: overlay it once.
            pe = pn if dev["psi_e"] is dev["psi_n"] else apply_idle_tensor(pe, dev["idle"])
        f = dev["feats"][None] if "feats" in dev else None
        neck = dev["neck"].reshape(1, 3) if "neck" in dev else None
        # The residual is exactly zero for neutral or intensity 0: known here, on the host.
        active = e_id != NEUTRAL and inten > 0.0
        g, offs = self._run_step(pn, pe, f, self._emotion_tensor(e_id), dev["intensity"], neck,
                                 use_residual, active)
        clock.mark("head")
        rgb, alpha = self.render_gaussians(g, 0, settings=settings)
        clock.mark("render")
        offs1 = None if offs is None else {k: v[0] for k, v in offs.items()}
        return Frame(rgb, alpha, pn[0], pe[0], offs1, g, clock.ms() if own else {})

    @torch.no_grad()
    def still(self, emotion: Emotion = NEUTRAL, intensity: float = 0.0,
              audio: Optional[Union[np.ndarray, torch.Tensor]] = None,
              sample_rate: Optional[int] = None, time_s: float = 0.0,
              expression: Optional[Dict[str, float]] = None,
              neck_rotation: Optional[Sequence[float]] = None,
              settings: Optional[RenderSettings] = None, use_residual: bool = True) -> Frame:
        """Render one still through the full pipeline.

        Args:
            emotion, intensity: the commanded emotion.
            audio: ``[S]`` mono samples, or None for silence.
            sample_rate: Hz of ``audio``.
            time_s: seconds into the audio of the frame to render.
            expression: extra ARKit coefficients ``{name: value}`` added to both psi_n and
                psi_e (e.g. a manual ``jawOpen``), clamped to [0, 1].
            neck_rotation: ``[3]`` axis-angle radians.
            settings: render settings for this still.
            use_residual: False gives the blendshape-only baseline.
        """
        e_id = emotion_id(emotion)
        if not time_s >= 0.0:
            raise ValueError(f"time must be >= 0 s, got {time_s}")
        if self.a2e is not None:
            fps = float(self.a2e.fps)
            if audio is None:
                # Silence long enough to cover the time and the model's receptive field.
                sample_rate = int(self.a2e.sample_rate)
                audio = np.zeros(int((time_s + 1.0) * sample_rate), np.float32)
            elif sample_rate is None:
                raise ValueError("sample_rate is required with audio")
            dur = len(audio) / float(sample_rate)
            if time_s > dur:
                raise ValueError(f"time {time_s:.3f} s is past the end of the audio "
                                 f"({dur:.3f} s)")
            psi_n_t, psi_e_t, feats_t = self.analyse_audio(audio, sample_rate, e_id, intensity)
            idx = min(int(round(time_s * fps)), psi_n_t.shape[0] - 1)
            psi_n, psi_e = psi_n_t[idx], psi_e_t[idx]
            feats = feature_window(feats_t, idx, self.window)
        else:
            if audio is not None:
                raise RuntimeError("audio given but no audio-to-expression model is loaded")
            psi_n = torch.zeros(self._num_expr, device=self.device)
            psi_e = psi_n.clone()
            feats = None
            if e_id != NEUTRAL and intensity > 0:
                # No speech model: the FACS recipe of the emotion over a still, silent face.
                from gemo_ros.face.emotion_recipes import combine_with_speech

                speech = np.zeros((1, self._num_expr), np.float32)
                psi_e = torch.as_tensor(combine_with_speech(speech, e_id, float(intensity))[0],
                                        device=self.device)
        if expression:
            from gemo_ros.face.arkit import ARKIT_INDEX

            extra = torch.zeros_like(psi_n)
            for name, value in expression.items():
                if name not in ARKIT_INDEX:
                    raise ValueError(f"unknown expression {name!r}")
                extra[ARKIT_INDEX[name]] = float(value)
            psi_n = (psi_n + extra).clamp(0.0, 1.0)
            psi_e = (psi_e + extra).clamp(0.0, 1.0)
        neck = None if neck_rotation is None else torch.tensor(list(neck_rotation))
        return self.frame(psi_n, psi_e, feats, e_id, intensity, neck, settings=settings,
                          use_residual=use_residual)

    def with_settings(self, **changes: Any) -> RenderSettings:
        """Return a copy of the render settings with ``changes`` applied."""
        return replace(self.settings, **changes)
