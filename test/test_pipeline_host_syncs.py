"""The per-frame path makes no host round trip but the final image (issue 17, item 2).

:mod:`helpers.host_syncs` records every op that would stall a GPU frame (value reads,
data-dependent shapes, host copies, host data entering torch); on this CPU they are found
by what the code asks for. The engine's frame is run with the torch rasterizer (gsplat
needs CUDA): the rasterizer's own tile lists are data-dependent by design and reported
apart; everything else must be one upload of the frame's small inputs and the download of
the image (with the coefficients shown) in :func:`gemo_ros.pipeline.download_frame`.
"""

import ast
import inspect
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from gemo_ros.behaviour import IdleState, apply_idle, apply_idle_tensor, idle_overlay
from gemo_ros.engine import Engine, EngineConfig
from gemo_ros.framing import ROBOT_PANEL
from gemo_ros.pipeline import StageClock, download_frame, upload
from helpers.host_syncs import HostSyncRecorder
from test.conftest import ROOT

RENDERER = "gemo_ros/render/_torch_backend.py"


# --- the recorder itself ----------------------------------------------------------------------

def test_recorder_sees_each_kind_of_host_sync_and_nothing_else():
    x = torch.arange(6.0)
    with HostSyncRecorder() as rec:
        x.sum().item()
        bool(x.any())
        float(x[0])
        x.tolist()
        torch.nonzero(x)
        x[x > 2]
        torch.unique(x)
        x.numpy()
        np.asarray(x)
        x.cpu()
        x.to("cpu")
        torch.tensor([1.0, 2.0])
        torch.from_numpy(np.zeros(2, np.float32))
        torch.zeros(3)
    ops = [e.op for e in rec.events]
    assert ops == ["Tensor.item", "Tensor.__bool__", "Tensor.__float__", "Tensor.tolist",
                   "aten.nonzero", "aten.index(bool mask)", "aten._unique2", "Tensor.numpy",
                   "Tensor.__array__", "Tensor.cpu", "Tensor.to(cpu)", "torch.tensor",
                   "torch.from_numpy", "torch.zeros"]
    idx = torch.tensor([0, 2])
    with HostSyncRecorder() as rec:  # sync-free equivalents
        y = torch.where(x > 2, x, torch.zeros_like(x)).clamp(0, 4)
        torch.nan_to_num(y / y)
        x[idx]
        torch.zeros(3, device=x.device)
        x.to(x.device)
    assert rec.events == []
    assert torch.from_numpy is not rec._recording_from_numpy  # restored on exit


def test_recorder_names_the_gemo_ros_frame():
    from gemo_ros.imaging import to_uint8

    img = torch.rand(2, 2, 3)
    with HostSyncRecorder() as rec:
        to_uint8(img)
    assert {e.file for e in rec.events} == {"gemo_ros/imaging.py"}
    assert all("to_uint8" in e.where for e in rec.events)


# --- the frame path ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def engine(one_torch_thread):
    import soundfile as sf

    wave, rate = sf.read(os.path.join(ROOT, "gemo_ros", "assets", "demo_speech.wav"),
                         dtype="float32")
    clock = [0.0]
    cfg = EngineConfig(width=48, height=48, device="cpu", max_gaussians=1500,
                       camera=replace(ROBOT_PANEL, backend="torch"), output_latency_s=0.2)
    eng = Engine(cfg, clock=lambda: clock[0])
    eng.audio_in_background = True  # the runtime's audio thread feeds the model
    eng.feed_audio(wave[:rate * 2], rate, arrival_time=0.0)
    clock[0] = 0.5  # speaking (playback starts after the output latency)
    return eng, clock


def _frame_syncs(eng, clock, **frame_args):
    clock[0] += 0.04
    eng.prepare_audio(clock[0])
    eng.frame(clock[0], **frame_args)  # caches (camera, moving vertices) warm
    clock[0] += 0.04
    with HostSyncRecorder() as audio:
        eng.prepare_audio(clock[0])
    with HostSyncRecorder() as rec:
        rgb, state = eng.frame(clock[0], **frame_args)
    return audio, rec, state


def _assert_only_inputs_and_image(rec):
    own = rec.outside(RENDERER)
    uploads = [e for e in own if e.kind in ("upload", "host_factory")]
    downloads = [e for e in own if e.kind == "download"]
    assert len(uploads) == 1 and "upload" in uploads[0].where, rec.report(own)
    assert uploads[0].file == "gemo_ros/pipeline.py"
    # on a CPU: to_uint8's .cpu().numpy() of the image and psi_e's .cpu().numpy()
    assert len(downloads) == 4 and all(
        any("download_frame" in f for f in e.stack) for e in downloads), rec.report(own)
    assert len(own) == 5, rec.report(own)  # no value read, no data-dependent shape


@pytest.mark.parametrize("emotion,intensity", [("neutral", 0.0), ("happy", 0.8)])
def test_speaking_frame_syncs_only_for_its_inputs_and_its_image(engine, emotion, intensity):
    eng, clock = engine
    eng.set_emotion(emotion, intensity, 0.0, t=clock[0])
    audio, rec, state = _frame_syncs(eng, clock)
    assert state["speaking"] and state["intensity"] == pytest.approx(intensity)
    print(f"frame ({emotion}):\n{rec.report()}")
    _assert_only_inputs_and_image(rec)
    # The renderer's syncs are its own tile lists (gsplat has its own on CUDA).
    assert all(e.kind in ("shape", "read") for e in rec.within(RENDERER))
    # Audio pushed to the model: uploaded once per encode, nothing read back.
    assert [e.kind for e in audio.events] in ([], ["upload"])
    assert all(e.where.startswith("gemo_ros/audio/streaming.py") for e in audio.events)


def test_silent_frame_mid_ramp_and_rescaled_syncs_the_same(engine):
    eng, clock = engine
    clock[0] += 5.0  # past the audio: the idle head
    eng.set_emotion("sad", 0.9, 2.0, t=clock[0])
    audio, rec, state = _frame_syncs(eng, clock, render_size=(40, 40), out_size=(48, 48))
    assert not state["speaking"] and 0.0 < state["intensity"] < 0.9
    _assert_only_inputs_and_image(rec)
    assert audio.events == []


def test_frame_timings_come_from_the_stage_clock(engine):
    eng, clock = engine
    clock[0] += 0.04
    _, state = eng.frame(clock[0])
    t = state["timings_ms"]
    assert {"audio_model", "head", "render", "to_uint8"} <= set(t)
    assert all(v >= 0.0 for v in t.values())


# --- helpers of the device path ---------------------------------------------------------------

def test_upload_is_one_copy_with_the_shapes_and_values():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    b = np.array([0.25], np.float32)
    with HostSyncRecorder() as rec:
        ta, tb = upload([a, b], "cpu")
    assert [e.op for e in rec.events] == ["torch.from_numpy"]
    assert ta.shape == (2, 3) and ta.dtype == torch.float32 and tb.tolist() == [0.25]
    np.testing.assert_array_equal(ta.numpy(), a.astype(np.float32))
    a[0, 0] = 99.0  # the upload does not alias the caller's array
    assert ta[0, 0] == 0.0


def test_download_frame_equals_to_uint8_and_stage_clock_marks():
    from gemo_ros.imaging import to_uint8

    img = torch.rand(5, 7, 3) * 1.2 - 0.1
    psi = torch.rand(52)
    clock = StageClock("cpu")
    rgb, back = download_frame(img, psi, clock=clock)
    np.testing.assert_array_equal(rgb, to_uint8(img))
    np.testing.assert_array_equal(back, psi.numpy())
    assert set(clock.ms()) == {"to_uint8"}


def test_idle_overlay_on_tensors_equals_apply_idle_bitwise():
    rng = np.random.default_rng(0)
    for _ in range(200):
        c = rng.uniform(-0.1, 1.1, 52).astype(np.float32)
        idle = IdleState(float(rng.choice([0.0, rng.uniform()])),
                         (float(rng.normal(0, 8)), float(rng.normal(0, 5))), (0.0, 0.0, 0.0))
        want = apply_idle(c, idle)
        got = apply_idle_tensor(torch.from_numpy(c), torch.from_numpy(idle_overlay(idle)))
        np.testing.assert_array_equal(got.numpy(), want)


def test_gsplat_wrapper_reads_nothing_back():
    """Our gsplat wrapper (CUDA only, cannot run here) adds no sync to gsplat's own.

    gsplat's tile intersection reads its pair count back inside its CUDA op; the wrapper
    must add none: no value read, host copy, data-dependent op or host tensor per frame.
    """
    from gemo_ros.render import _gsplat_backend

    tree = ast.parse(inspect.getsource(_gsplat_backend.rasterize_gsplat))
    banned = {"item", "tolist", "numpy", "cpu", "nonzero", "unique", "masked_select", "any",
              "all", "synchronize", "tensor", "as_tensor", "from_numpy"}
    calls = {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
             for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert not calls & (banned | {"bool", "int", "float"}), calls & banned
    # The one-off availability check is cached: no per-frame render of a test Gaussian.
    assert "_AVAILABLE" in inspect.getsource(_gsplat_backend.gsplat_available)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_cuda_frame_syncs_only_in_gsplat_and_the_download():
    """On a GPU: the same frame with gsplat; gsplat's own syncs are reported apart."""
    import soundfile as sf

    wave, rate = sf.read(os.path.join(ROOT, "gemo_ros", "assets", "demo_speech.wav"),
                         dtype="float32")
    clock = [0.0]
    eng = Engine(EngineConfig(width=64, height=64, device="cuda", output_latency_s=0.2),
                 clock=lambda: clock[0])
    eng.audio_in_background = True
    eng.feed_audio(wave[:rate * 2], rate, arrival_time=0.0)
    eng.set_emotion("happy", 0.8, 0.0, t=0.0)
    clock[0] = 0.5
    audio, rec, state = _frame_syncs(eng, clock)
    gsplat_dir = os.sep + "gsplat" + os.sep
    own = [e for e in rec.events if gsplat_dir not in e.origin]
    print(rec.report())
    # download_frame's pinned buffers and their numpy views are host-side: no sync.
    rest = [e for e in own if not any("download_frame" in f for f in e.stack)]
    assert [e.op for e in rest] == ["torch.from_numpy"], rec.report(own)
    assert "upload" in rest[0].where
