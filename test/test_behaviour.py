"""Specifications of emotion ramps and idle life (gemo_ros.behaviour)."""

import numpy as np
import pytest

from gemo_ros.behaviour import EmotionRamp, IdleBehaviour, IdleConfig, IdleState, apply_idle
from gemo_ros.emotions import EMOTIONS
from gemo_ros.face.arkit import ARKIT_INDEX


def name_of(value):
    return EMOTIONS[value[0]], value[1]


def test_emotion_ramps_up_monotonically_over_the_transition():
    ramp = EmotionRamp()
    ramp.set("happy", 0.8, transition_s=1.0, t=10.0)
    values = [ramp.at(10.0 + 0.1 * k)[1] for k in range(11)]
    assert values[0] == 0.0 and values[-1] == pytest.approx(0.8)
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert 0.2 < values[5] < 0.6
    assert name_of(ramp.at(10.5))[0] == "happy"


def test_zero_transition_is_immediate():
    ramp = EmotionRamp()
    ramp.set("sad", 0.5, transition_s=0.0, t=1.0)
    assert name_of(ramp.at(1.0)) == ("sad", 0.5)


def test_change_of_emotion_passes_through_neutral():
    ramp = EmotionRamp("happy", 1.0)
    ramp.set("angry", 1.0, transition_s=1.0, t=0.0)
    assert name_of(ramp.at(0.25))[0] == "happy"
    assert ramp.at(0.5)[1] == pytest.approx(0.0, abs=1e-9)
    assert name_of(ramp.at(0.75))[0] == "angry"
    assert name_of(ramp.at(1.0)) == ("angry", 1.0)


def test_last_command_wins_and_starts_from_the_current_value():
    ramp = EmotionRamp()
    ramp.set("happy", 1.0, transition_s=1.0, t=0.0)
    mid = ramp.at(0.5)[1]
    ramp.set("happy", 0.2, transition_s=1.0, t=0.5)
    assert ramp.at(0.5)[1] == pytest.approx(mid)
    assert ramp.at(1.5)[1] == pytest.approx(0.2)
    assert ramp.target == ("happy", 0.2)


def test_neutral_command_ramps_intensity_down_to_zero():
    ramp = EmotionRamp("fear", 0.6)
    ramp.set("neutral", 1.0, transition_s=0.4, t=0.0)
    assert ramp.at(0.2)[1] == pytest.approx(0.3)
    assert ramp.at(0.4)[1] == 0.0


def test_ramp_rejects_unknown_emotions_and_nan():
    ramp = EmotionRamp()
    with pytest.raises(ValueError, match="valid"):
        ramp.set("bored", 0.5, 0.1, 0.0)
    with pytest.raises(ValueError):
        ramp.set("happy", float("nan"), 0.1, 0.0)


def blink_onsets(idle, seconds, dt=0.01):
    values = np.array([idle.blink(k * dt) for k in range(int(seconds / dt))])
    closed = values > 0.5
    return np.flatnonzero(closed[1:] & ~closed[:-1]) * dt


def test_blinks_occur_at_natural_random_intervals():
    idle = IdleBehaviour(IdleConfig(seed=3, blink_interval_s=4.0, double_blink_prob=0.0))
    onsets = blink_onsets(idle, 240.0)
    intervals = np.diff(onsets)
    assert 40 < len(onsets) < 90                     # about one per 4 s
    assert intervals.std() > 0.3 * intervals.mean()  # irregular, not a metronome
    assert intervals.min() > 0.3


def test_a_blink_closes_the_eyes_fully_and_reopens():
    idle = IdleBehaviour(IdleConfig(seed=0))
    values = np.array([idle.blink(k * 0.005) for k in range(4000)])
    assert values.max() == pytest.approx(1.0, abs=0.05)
    assert (values < 0.01).mean() > 0.8


def test_idle_is_a_pure_function_of_time_and_seed():
    a = IdleBehaviour(IdleConfig(seed=5))
    b = IdleBehaviour(IdleConfig(seed=5))
    times = [7.3, 0.2, 3.3, 7.3]
    sa = [a.at(t) for t in times]
    sb = [b.at(t) for t in sorted(times)]
    assert sa[0] == sa[3]
    assert {s.blink for s in sa} == {s.blink for s in sb}


def test_gaze_makes_small_saccades():
    idle = IdleBehaviour(IdleConfig(seed=1, saccade_amplitude_deg=5.0))
    gaze = np.array([idle.gaze(0.02 * k) for k in range(3000)])
    assert np.abs(gaze).max() <= 10.0 + 1e-9
    moves = np.abs(np.diff(gaze[:, 0])) > 0.05
    assert 10 < np.count_nonzero(np.diff(moves.astype(int)) == 1) < 60


def test_head_moves_slowly_and_breathes():
    idle = IdleBehaviour(IdleConfig(seed=2, head_motion_deg=2.0, breathing_amplitude_deg=0.5))
    heads = np.array([idle.head(0.04 * k) for k in range(1500)])
    assert 0.3 < np.abs(heads).max() < 5.0
    assert np.abs(np.diff(heads, axis=0)).max() < 0.2   # slow: < 0.2 deg per frame
    still = IdleBehaviour(IdleConfig(head_motion_deg=0.0, breathing_amplitude_deg=0.5))
    pitch = np.array([still.head(0.1 * k)[1] for k in range(41)])  # one breath at 0.25 Hz
    assert pitch.max() == pytest.approx(0.5, abs=0.01) and pitch.min() == pytest.approx(0.0)


def test_disabled_idle_is_still():
    idle = IdleBehaviour(IdleConfig(enabled=False))
    s = idle.at(12.0)
    assert (s.blink, s.gaze_deg, s.head_deg) == (0.0, (0.0, 0.0), (0.0, 0.0, 0.0))
    np.testing.assert_array_equal(s.neck_rotation(), 0.0)


def test_neck_rotation_follows_the_head_frame():
    yaw = IdleState(0.0, (0.0, 0.0), (10.0, 0.0, 0.0)).neck_rotation()
    np.testing.assert_allclose(yaw, [0.0, np.radians(10.0), 0.0], atol=1e-9)
    up = IdleState(0.0, (0.0, 0.0), (0.0, 10.0, 0.0)).neck_rotation()
    np.testing.assert_allclose(up, [-np.radians(10.0), 0.0, 0.0], atol=1e-9)


def test_apply_idle_overlays_blink_and_gaze():
    coeffs = np.zeros(52, dtype=np.float32)
    coeffs[ARKIT_INDEX["jawOpen"]] = 0.4
    out = apply_idle(coeffs, IdleState(0.8, (15.0, -15.0), (0, 0, 0)), eye_look_max_deg=30.0)
    assert out[ARKIT_INDEX["eyeBlinkLeft"]] == pytest.approx(0.8)
    assert out[ARKIT_INDEX["eyeLookOutLeft"]] == pytest.approx(0.5)
    assert out[ARKIT_INDEX["eyeLookInRight"]] == pytest.approx(0.5)
    assert out[ARKIT_INDEX["eyeLookDownLeft"]] == pytest.approx(0.5)
    assert out[ARKIT_INDEX["jawOpen"]] == pytest.approx(0.4)
    assert coeffs[ARKIT_INDEX["eyeBlinkLeft"]] == 0.0


def test_wall_clock_times_are_cheap_and_still_blink():
    idle = IdleBehaviour(IdleConfig(seed=4, blink_interval_s=2.0))
    t0 = 1.8e9
    values = [idle.blink(t0 + 0.01 * k) for k in range(3000)]
    assert max(values) > 0.9
