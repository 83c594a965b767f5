"""Specifications of the real-time runtime (gemo_ros.runtime): threads, inbox, quality, watchdog.

The engine runs the fallback head (schematic face, loudness jaw) so these are fast; the
audio model is replaced by streams that block on an event, to show that a busy or stuck
audio model never stops the frames. Waits are liveness checks with generous time-outs,
not timing thresholds.
"""

import threading
import time

import numpy as np
import pytest

from gemo_ros.behaviour import IdleConfig
from gemo_ros.engine import Engine, EngineConfig
from gemo_ros.fallback import FallbackHead, LoudnessStream
from gemo_ros.runtime import (Inbox, QualityController, QualityLevel, Runtime, RuntimeConfig,
                              quality_ladder, thread_stacks)

RATE = 16000


class BlockingStream(LoudnessStream):
    """A loudness stream whose ``push`` waits for ``gate`` (a slow or stuck audio model)."""

    def __init__(self, gate: threading.Event, entered: threading.Event) -> None:
        super().__init__(0.05)
        self.gate, self.entered = gate, entered

    def push(self, samples, rate):
        self.entered.set()
        self.gate.wait(30.0)
        super().push(samples, rate)


class BlockingHead(FallbackHead):
    """The fallback head with a blocking audio model and an optional blocking render."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.render_gate = threading.Event()
        self.render_gate.set()
        self.sizes = []

    def new_stream(self):
        return BlockingStream(self.gate, self.entered)

    def render(self, *args, **kwargs):
        self.render_gate.wait(30.0)
        self.sizes.append(kwargs.get("size"))
        return super().render(*args, **kwargs)


def make(fps=50.0, **kw):
    cfg = EngineConfig(width=32, height=32, output_latency_s=0.05, lookahead_s=0.05,
                       idle=IdleConfig(seed=1))
    head = BlockingHead(cfg)
    engine = Engine(cfg, head=head)
    engine.audio_in_background = True
    published, stalls = [], []
    rt = Runtime(engine, RuntimeConfig(fps=fps, width=32, height=32, stall_s=0.3, **kw),
                 publish=lambda rgb, state: published.append((rgb, state)),
                 on_stall=stalls.append)
    return rt, head, published, stalls


def wait_until(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def runtime():
    rt, head, published, stalls = make()
    rt.start()
    yield rt, head, published, stalls
    head.gate.set()
    head.render_gate.set()
    rt.stop()


def test_frames_keep_flowing_while_the_audio_model_is_stuck(runtime):
    rt, head, published, _ = runtime
    rt.inbox.put_audio(np.full(RATE, 0.3, np.float32), RATE, None, rt.clock())
    assert wait_until(head.entered.is_set), "the audio thread never ran the model"
    n = len(published)
    assert wait_until(lambda: len(published) >= n + 20), "frames stopped with the model busy"
    assert not head.gate.is_set()  # the model was still stuck during those frames
    # callers never wait either: queueing more audio and emotions returns at once
    assert rt.inbox.put_audio(np.zeros(800, np.float32), RATE, None, rt.clock())
    rt.inbox.put_emotion("happy", 0.8, 0.0, rt.clock())
    head.gate.set()
    assert wait_until(lambda: published[-1][1]["target_emotion"] == "happy")


def test_an_emotion_storm_costs_one_command_and_the_last_one_wins(runtime):
    rt, head, published, _ = runtime
    head.gate.set()
    names = ["happy", "sad", "angry", "fear"]
    for k in range(1000):
        rt.inbox.put_emotion(names[k % 4], 0.5, 0.0, rt.clock())
    rt.inbox.put_emotion("surprised", 0.9, 0.0, rt.clock())
    assert wait_until(lambda: published and published[-1][1]["target_emotion"] == "surprised")
    assert published[-1][1]["target_intensity"] == pytest.approx(0.9)
    assert rt.inbox.superseded >= 900  # coalesced, not queued


def test_state_reports_frame_counter_fps_drops_and_quality(runtime):
    rt, _, published, _ = runtime
    assert wait_until(lambda: len(published) >= 30)
    state = published[-1][1]
    assert state["frame"] == len(published)
    assert state["fps"] > 0 and state["dropped"] >= 0 and state["stalls"] == 0
    assert state["quality"]["render_width"] == 32 and state["quality"]["adaptive"]
    frames = [s["frame"] for _, s in published]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    stamps = [s["t"] for _, s in published]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))


def test_watchdog_reports_a_stall_with_thread_stacks_and_recovers(runtime, caplog):
    rt, head, published, stalls = runtime
    assert wait_until(lambda: len(published) >= 5)
    head.render_gate.clear()  # the frame thread is now stuck inside a render
    with caplog.at_level("ERROR", logger="gemo_ros.runtime"):
        assert wait_until(lambda: stalls), "the watchdog did not notice"
    assert stalls[0]["stalled"] and stalls[0]["stalls"] == 1
    assert stalls[0]["seconds_without_frame"] >= 0.3
    text = caplog.text
    assert "no frame for" in text and "gemo-frame" in text and "render" in text
    n = len(published)
    head.render_gate.set()
    assert wait_until(lambda: len(published) >= n + 5), "frames did not resume"
    assert published[-1][1]["stalls"] == 1 and not published[-1][1]["stalled"]


def test_stop_returns_promptly_even_with_a_thread_stuck():
    rt, head, published, _ = make()
    rt.start()
    rt.inbox.put_audio(np.full(RATE, 0.3, np.float32), RATE, None, rt.clock())
    assert wait_until(head.entered.is_set)
    t0 = time.monotonic()
    clean = rt.stop(timeout=0.5)
    assert time.monotonic() - t0 < 5.0  # generous: the bound is the timeout, not the model
    assert not clean  # the audio thread is still inside the stuck model: said, not waited for
    head.gate.set()
    n = len(published)
    time.sleep(0.2)
    assert len(published) <= n + 1  # no frames after stop


def test_bad_audio_and_settings_are_reported_and_frames_continue(runtime, caplog):
    rt, head, published, _ = runtime
    head.gate.set()
    with caplog.at_level("WARNING", logger="gemo_ros.runtime"):
        rt.inbox.put_audio(np.zeros(10, np.float32), 0, None, rt.clock())     # rate 0
        rt.inbox.put_settings(default_intensity=7.0)                           # out of range
        rt.inbox.put_audio(np.array([np.nan, 2.0], np.float32), RATE, None, rt.clock())
        n = len(published)
        assert wait_until(lambda: len(published) >= n + 10)
    assert "sample rate" in caplog.text and "default_intensity" in caplog.text
    assert "NaN" in caplog.text


def test_inbox_bounds_audio_merges_settings_and_keeps_order():
    box = Inbox(max_audio_s=1.0)
    assert box.put_audio(np.zeros(RATE // 2, np.float32), RATE, None, 0.0)
    assert box.put_audio(np.ones(RATE // 2, np.float32), RATE, None, 1.0)
    assert not box.put_audio(np.zeros(10, np.float32), RATE, None, 2.0)  # full: refused
    box.put_settings(camera_yaw_deg=10.0, idle={"enabled": False})
    box.put_settings(camera_yaw_deg=20.0, idle={"seed": 3})
    audio, emotion, settings = box.take()
    assert [a[3] for a in audio] == [0.0, 1.0] and emotion is None
    assert settings == {"camera_yaw_deg": 20.0, "idle": {"enabled": False, "seed": 3}}
    assert box.take() == ([], None, {}) and box.audio_s == 0.0
    assert box.put_audio(np.zeros(2 * RATE, np.float32), RATE, None, 3.0)  # one long message


def test_quality_ladder_steps_down_in_eighths_to_the_floor_then_fewer_gaussians():
    ladder = quality_ladder(256, 256, min_size=96, low_gaussians=6000)
    assert [lv.width for lv in ladder] == [256, 224, 192, 160, 128, 96, 96]
    assert [lv.gaussians for lv in ladder] == [0] * 6 + [6000]
    assert quality_ladder(320, 240, min_size=200)[-1] == QualityLevel(280, 210, 0)
    assert quality_ladder(64, 64, min_size=96) == [QualityLevel(64, 64, 0)]


def feed(ctrl, work_s, seconds, t0, fps=25.0, dropped=False):
    msgs = []
    t = t0
    while t < t0 + seconds:
        m = ctrl.update(work_s, t, dropped)
        if m:
            msgs.append(m)
        t += 1.0 / fps
    return msgs, t


def test_quality_controller_holds_the_rate_with_hysteresis_and_recovers():
    ladder = quality_ladder(256, 256, 96, 6000)
    ctrl = QualityController(ladder, fps=25.0)
    msgs, t = feed(ctrl, 0.050, 1.9, 0.0)       # warm-up: slow frames move nothing
    assert msgs == [] and ctrl.level == 0
    msgs, t = feed(ctrl, 0.050, 1.2, t)         # sustained overload: one rung down
    assert ctrl.level == 1 and "down" in msgs[0] and "224x224" in msgs[0]
    msgs, t = feed(ctrl, 0.030, 10.0, t)        # 75 % of the budget: stay (hysteresis)
    assert msgs == [] and ctrl.level == 1
    msgs, t = feed(ctrl, 0.010, 4.0, t)         # load gone, but 256 proved slow just now
    assert ctrl.level == 1
    msgs, t = feed(ctrl, 0.010, 30.0, t)        # after the retry time: back up
    assert ctrl.level == 0 and "up" in msgs[-1]
    ctrl.adaptive = False
    feed(ctrl, 0.2, 10.0, t)
    assert ctrl.level == 0                      # pinned
    ctrl.pin(99)
    assert ctrl.current == ladder[-1]


def test_quality_controller_skips_rungs_when_far_over_budget():
    ctrl = QualityController(quality_ladder(256, 256, 96, 6000), fps=25.0)
    msgs, t = feed(ctrl, 0.120, 3.5, 0.0)       # three times the budget: a busy machine
    assert ctrl.level == 3 and "256x256 -> 160x160" in msgs[0]
    msgs, t = feed(ctrl, 0.012, 10.0, t)        # load gone: the skipped rungs wait their turn
    assert ctrl.level == 3
    feed(ctrl, 0.012, 40.0, t)
    assert ctrl.level == 0


def test_runtime_renders_at_the_controller_size_and_publishes_the_output_size():
    rt, head, published, _ = make(adaptive=False, quality_level=2, min_render_size=8)
    head.gate.set()
    rt.start()
    try:
        assert wait_until(lambda: len(published) >= 3)
    finally:
        rt.stop()
    assert head.sizes[-1] == (24, 24)
    rgb, state = published[-1]
    assert rgb.shape == (32, 32, 3) and state["quality"]["render_width"] == 24


def test_thread_stacks_names_every_thread():
    text = thread_stacks()
    assert "MainThread" in text and "test_thread_stacks_names_every_thread" in text
