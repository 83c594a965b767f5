"""Specifications of the ROS-free engine (gemo_ros.engine) with the fallback stages.

The fallback head (loudness jaw + schematic face) makes these fast and independent of
trained weights; one test runs the method's full chain when its assets are installed.
"""

import logging

import numpy as np
import pytest

from gemo_ros.behaviour import IdleConfig
from gemo_ros.engine import Engine, EngineConfig
from gemo_ros.emotions import emotion_index
from gemo_ros.fallback import FallbackHead, LoudnessStream

RATE = 16000


class Clock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


def tone(seconds, amp=0.5, freq=220.0):
    t = np.arange(int(seconds * RATE)) / RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make(**kw):
    clock = Clock()
    settings = dict(width=48, height=40, output_latency_s=0.2, lookahead_s=0.05,
                    idle=IdleConfig(seed=1))
    settings.update(kw)
    cfg = EngineConfig(**settings)
    return Engine(cfg, clock=clock, head=FallbackHead(cfg)), clock


def test_frame_is_uint8_image_of_the_configured_size_with_state():
    eng, clock = make()
    rgb, state = eng.frame(clock.t)
    assert rgb.dtype == np.uint8 and rgb.shape == (40, 48, 3)
    for key in ("emotion", "intensity", "speaking", "mouth_open", "latency_s", "timings_ms"):
        assert key in state


def test_silence_keeps_the_mouth_closed_and_not_speaking():
    eng, clock = make()
    _, state = eng.frame(clock.t + 1.0)
    assert state["mouth_open"] == 0.0 and not state["speaking"]


def test_whole_utterance_animates_from_arrival_plus_output_latency():
    eng, clock = make()
    clip = np.concatenate([tone(0.5, amp=0.0), tone(0.5), tone(0.5, amp=0.0)])
    res = eng.feed_audio(clip, RATE)
    assert res.new_utterance and res.start == pytest.approx(clock.t + 0.2)
    onset = clock.t + 0.2 + 0.5
    assert eng.frame(onset - 0.1)[1]["mouth_open"] == 0.0
    _, during = eng.frame(onset + 0.2)
    assert during["speaking"] and during["mouth_open"] > 0.1
    assert during["utterance_time"] == pytest.approx(0.7)
    assert eng.frame(onset + 0.6)[1]["mouth_open"] == 0.0


def test_stamped_audio_plays_at_its_stamp():
    eng, clock = make()
    eng.feed_audio(tone(0.4), RATE, playback_time=clock.t + 3.0)
    assert not eng.frame(clock.t + 2.9)[1]["speaking"]
    assert eng.frame(clock.t + 3.1)[1]["mouth_open"] > 0.1


def test_real_time_chunks_form_one_utterance():
    eng, clock = make()
    clip = tone(1.0)
    for k in range(0, clip.size, 640):
        eng.feed_audio(clip[k:k + 640], RATE)
        clock.t += 0.04
    assert len(eng.queued_utterances) == 1
    assert eng.queued_utterances[0].duration_s == pytest.approx(1.0)


def test_latency_is_time_since_the_shown_audio_arrived():
    eng, clock = make()
    eng.feed_audio(tone(1.0), RATE)
    clock.t += 0.5
    _, state = eng.frame(clock.t)
    assert state["latency_s"] == pytest.approx(0.5)


def test_emotion_command_ramps_over_the_transition():
    eng, clock = make()
    eng.set_emotion("happy", 0.8, 1.0)
    values = [eng.frame(clock.t + dt)[1]["intensity"] for dt in (0.0, 0.5, 1.0)]
    assert values[0] == 0.0 and 0.1 < values[1] < 0.7 and values[2] == pytest.approx(0.8)
    assert eng.frame(clock.t + 1.0)[1]["emotion"] == "happy"


def test_emotion_defaults_come_from_the_config():
    eng, clock = make(default_intensity=0.3, default_transition_s=0.0)
    eng.set_emotion("sad")
    assert eng.frame(clock.t)[1]["intensity"] == pytest.approx(0.3)


def test_unknown_emotion_raises_listing_the_valid_ones():
    eng, _ = make()
    with pytest.raises(ValueError, match="happy"):
        eng.set_emotion("elated", 0.5)


@pytest.mark.parametrize("rate", [0, -16000, float("nan"), 10, 10_000_000])
def test_bad_sample_rates_are_refused(rate):
    eng, _ = make()
    with pytest.raises(ValueError, match="sample rate"):
        eng.feed_audio(tone(0.1), rate)


def test_nan_samples_become_silence_with_a_warning():
    eng, _ = make()
    x = tone(0.1)
    x[::7] = np.nan
    res = eng.feed_audio(x, RATE)
    assert res.accepted_s == pytest.approx(0.1) and "NaN" in res.warnings[0]


def test_empty_audio_is_ignored_with_a_warning():
    eng, _ = make()
    res = eng.feed_audio(np.zeros(0, np.float32), RATE)
    assert res.accepted_s == 0.0 and res.warnings


def test_sixty_second_message_is_fed_to_the_model_lazily():
    eng, clock = make()
    eng.feed_audio(tone(60.0), RATE)
    eng.frame(clock.t + 0.5)
    stream = eng.queued_utterances[0].payload
    assert stream.pushed_s < 2.0          # only what the frame needed
    eng.frame(clock.t + 30.0)
    assert 29.0 < stream.pushed_s < 32.0


def test_stereo_audio_is_mixed_down():
    eng, clock = make()
    stereo = np.stack([tone(0.5), tone(0.5)], axis=1)
    assert eng.feed_audio(stereo, RATE).accepted_s == pytest.approx(0.5)


def test_live_audio_later_than_the_lookahead_is_shown_late_and_logged(caplog):
    eng, clock = make(output_latency_s=0.0)
    eng.config.lookahead_s = 0.2

    class SlowStream(LoudnessStream):
        @property
        def final_until(self):  # final outputs trail the audio by the lookahead
            return max(super().final_until - 0.2, -0.02)

    eng.head.new_stream = lambda: SlowStream()
    eng.feed_audio(tone(0.1), RATE)
    with caplog.at_level(logging.WARNING, logger="gemo_ros.engine"):
        _, state = eng.frame(clock.t + 0.05)
    assert state["lag_s"] > 0.0
    assert "output_latency_s" in caplog.text


def test_runtime_reconfigure_changes_background_and_rejects_bad_values():
    eng, clock = make()
    eng.reconfigure(background=(200, 10, 10))
    assert tuple(eng.frame(clock.t)[0][0, 0]) == (200, 10, 10)
    with pytest.raises(ValueError):
        eng.reconfigure(no_such_setting=1)
    eng.reconfigure(idle={"enabled": False})
    assert eng.frame(clock.t + 3.0)[1]["blink"] == 0.0


def _default_head():
    """``(config, PipelineHead)`` of the installed default assets at 32 px, or a skip."""
    pytest.importorskip("gemo_ros.pipeline")
    from gemo_ros.pipeline_head import PipelineHead

    cfg = EngineConfig(width=32, height=32, device="cpu", max_gaussians=3000)
    try:
        return cfg, PipelineHead(cfg)
    except FileNotFoundError as exc:
        pytest.skip(f"default assets not installed: {exc}")


def test_full_chain_renders_when_the_default_assets_are_installed():
    cfg, head = _default_head()
    eng = Engine(cfg, clock=Clock(), head=head)
    eng.feed_audio(tone(0.6), RATE)
    eng.set_emotion("surprised", 1.0, 0.0)
    rgb, state = eng.frame(100.5)
    assert rgb.shape == (32, 32, 3) and rgb.std() > 5
    assert state["speaking"] and state["emotion"] == "surprised"
    assert {"audio_model", "head", "render"} <= set(state["timings_ms"])


def test_idle_frames_reuse_the_silent_streams_output_per_emotion():
    cfg, head = _default_head()
    happy = emotion_index("happy")
    for emotion, intensity in ((0, 0.0), (happy, 0.7), (happy, 0.3), (0, 0.0)):
        got = head._coefficients(None, 12.0, emotion, intensity)
        want = head._coefficients(head._silence, head._silence_t, emotion, intensity)
        for g, w in zip(got, want):
            assert (g is None) == (w is None)
            if g is not None:
                assert np.array_equal(np.asarray(g), np.asarray(w))
        assert head._coefficients(None, 0.0, emotion, intensity) is got
