"""Behaviour layered over the talking face: emotion ramps and idle life.

* :class:`EmotionRamp` turns ``/emotion`` commands into a smooth (emotion, intensity)
  signal: changes ramp over ``transition_s`` with a smoothstep; the last command wins and
  starts from wherever the face is. The models take one emotion at a time, so a change
  between two emotions passes through the neutral face (intensity 0 gives exactly the
  neutral head): the first half of the ramp lowers the old emotion, the second half
  raises the new one.
* :class:`IdleBehaviour` adds what a face does while alive: blinks at natural random
  intervals (gamma-distributed, with occasional double blinks), small gaze saccades that
  hold and return toward the centre, breathing, and slow head motion (smooth
  sums of sines). Everything is a pure function of time and a seed, so any frame time
  can be asked for, in any order.

Angles are degrees at the configuration surface and radians inside (axis-angle).
"""

import bisect
import math
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import numpy as np

from gemo_ros.emotions import EMOTIONS, NEUTRAL, emotion_index
from gemo_ros.face.arkit import ARKIT_INDEX
from gemo_ros.geometry import head_rotation

#: eyeLook* = 1 corresponds to this eye rotation (degrees), the face model's convention.
EYE_LOOK_MAX_DEG = 30.0


def ease_in_out(s: float) -> float:
    """Return the cubic ease ``3s^2 - 2s^3`` of ``s`` clipped to [0, 1] (a smoothstep)."""
    s = min(max(s, 0.0), 1.0)
    return s * s * (3.0 - 2.0 * s)


# --- emotion ------------------------------------------------------------------------------------

class EmotionRamp:
    """Smooth emotion/intensity over time; the last command wins."""

    def __init__(self, emotion: str = "neutral", intensity: float = 0.0) -> None:
        eid = emotion_index(emotion)
        value = (eid, float(intensity) if eid != NEUTRAL else 0.0)
        self._from = value
        self._to = value
        self._t0 = 0.0
        self._duration = 0.0

    @property
    def target(self) -> Tuple[str, float]:
        """The commanded (emotion name, intensity) the ramp is heading to."""
        return EMOTIONS[self._to[0]], self._to[1]

    def set(self, emotion: str, intensity: float, transition_s: float, t: float) -> None:
        """Command ``emotion`` at ``intensity`` in [0, 1], reached ``transition_s`` after ``t``.

        Raises ValueError on an unknown emotion or a non-finite intensity/transition.
        """
        eid = emotion_index(emotion)
        if not (math.isfinite(intensity) and math.isfinite(transition_s)):
            raise ValueError(f"intensity and transition must be finite, got "
                             f"{intensity}, {transition_s}")
        intensity = min(max(float(intensity), 0.0), 1.0)
        if eid == NEUTRAL:
            intensity = 0.0
        self._from = self.at(t)
        self._to = (eid, intensity)
        self._t0 = float(t)
        self._duration = max(float(transition_s), 0.0)

    def at(self, t: float) -> Tuple[int, float]:
        """Return ``(emotion id, intensity)`` shown at time ``t`` (seconds)."""
        (e0, i0), (e1, i1) = self._from, self._to
        s = 1.0 if self._duration <= 0.0 else (t - self._t0) / self._duration
        if s >= 1.0:
            return self._to
        if s <= 0.0:
            return self._from
        if e0 == e1 or i0 == 0.0 or e0 == NEUTRAL:
            return e1, i0 + (i1 - i0) * ease_in_out(s)
        if i1 == 0.0 or e1 == NEUTRAL:
            return e0, i0 * (1.0 - ease_in_out(s))
        # two different emotions: down through neutral, then up
        if s < 0.5:
            return e0, i0 * (1.0 - ease_in_out(2.0 * s))
        return e1, i1 * ease_in_out(2.0 * s - 1.0)


# --- idle life -----------------------------------------------------------------------------------

@dataclass
class IdleConfig:
    """Idle-life settings (all changeable at run time).

    Attributes:
        enabled: master switch; False gives a still face (blinks included).
        seed: random seed of the blink/saccade schedule and head-motion phases.
        blink_interval_s: mean time between blinks (s); intervals are gamma-distributed.
        blink_duration_s: one blink, closing plus opening (s).
        double_blink_prob: chance that a blink is followed by a second one.
        saccade_interval_s: mean fixation time between gaze shifts (s).
        saccade_amplitude_deg: typical size of a gaze shift (deg).
        breathing_rate_hz: breaths per second.
        breathing_amplitude_deg: head pitch swing of one breath (deg).
        head_motion_deg: amplitude of the slow head wander (deg).
        head_motion_hz: typical frequency of the head wander (Hz).
        speaking_head_gain: head-wander multiplier while speaking.
    """

    enabled: bool = True
    seed: int = 0
    blink_interval_s: float = 4.0
    blink_duration_s: float = 0.22
    double_blink_prob: float = 0.12
    saccade_interval_s: float = 1.8
    saccade_amplitude_deg: float = 6.0
    breathing_rate_hz: float = 0.25
    breathing_amplitude_deg: float = 0.6
    head_motion_deg: float = 2.5
    head_motion_hz: float = 0.08
    speaking_head_gain: float = 1.6


@dataclass
class IdleState:
    """Idle behaviour at one instant.

    ``blink`` in [0, 1] (1 = closed); ``gaze_deg`` (yaw to the avatar's left, pitch up);
    ``head_deg`` (yaw, pitch up, roll) of the neck.
    """

    blink: float
    gaze_deg: Tuple[float, float]
    head_deg: Tuple[float, float, float]

    def neck_rotation(self) -> np.ndarray:
        """Neck rotation as an axis-angle vector ``[3]`` (radians) in the head frame.

        Head frame per ARCHITECTURE.md: +Y up, +Z forward, +X the avatar's left; yaw turns
        toward +X, positive pitch looks up, roll tilts the top of the head toward +X.
        """
        return head_rotation(*self.head_deg)


class IdleBehaviour:
    """Blinks, saccades, breathing and head motion as a pure function of time."""

    def __init__(self, config: Optional[IdleConfig] = None) -> None:
        self.config = config or IdleConfig()
        self._reseed()

    def _reseed(self) -> None:
        cfg = self.config
        self._seed_used = cfg.seed
        rng = np.random.default_rng(cfg.seed)
        # head wander: three incommensurate sines per axis with random phases
        self._head_freqs = rng.uniform(0.6, 1.6, size=(3, 3))
        self._head_phases = rng.uniform(0.0, 2 * math.pi, size=(3, 3))
        self._blink_rng = np.random.default_rng([cfg.seed, 1])
        self._sacc_rng = np.random.default_rng([cfg.seed, 2])
        self._blinks: List[float] = []
        self._blink_t = 0.5
        self._sacc_t: List[float] = [0.0]
        self._sacc_gaze: List[Tuple[float, float]] = [(0.0, 0.0)]

    def reconfigure(self, config: IdleConfig) -> None:
        """Replace the settings; the schedule restarts when the seed or rates changed."""
        old = self.config
        self.config = config
        if (config.seed, config.blink_interval_s, config.saccade_interval_s,
                config.double_blink_prob) != (old.seed, old.blink_interval_s,
                                              old.saccade_interval_s, old.double_blink_prob):
            self._reseed()

    def _extend_blinks(self, t: float) -> None:
        cfg = self.config
        mean = max(cfg.blink_interval_s, 0.3)
        if self._blink_t < t - 30.0:
            # far behind (e.g. a wall clock in the 1e9 s range): restart the schedule near t
            self._blink_t = t - self._blink_rng.uniform(0.0, mean)
        while self._blink_t <= t + 1.0:
            self._blinks.append(self._blink_t)
            if self._blink_rng.random() < cfg.double_blink_prob:
                self._blinks.append(self._blink_t + 1.6 * cfg.blink_duration_s)
            # gamma(k=3) intervals: right-skewed like human inter-blink intervals
            gap = self._blink_rng.gamma(3.0, mean / 3.0)
            self._blink_t += max(gap, 2.5 * cfg.blink_duration_s)

    def _extend_saccades(self, t: float) -> None:
        cfg = self.config
        rng = self._sacc_rng
        if self._sacc_t[-1] < t - 30.0:
            self._sacc_t.append(t - rng.uniform(0.0, cfg.saccade_interval_s))
            self._sacc_gaze.append((0.0, 0.0))
        while self._sacc_t[-1] <= t + 1.0:
            self._sacc_t.append(self._sacc_t[-1] + rng.exponential(max(cfg.saccade_interval_s,
                                                                       0.1)) + 0.15)
            amp = cfg.saccade_amplitude_deg
            if rng.random() < 0.35:  # glance back toward the listener
                gaze = tuple(float(v) for v in rng.normal(0.0, 0.2 * amp, size=2))
            else:
                gaze = (float(rng.normal(0.0, amp)), float(rng.normal(0.0, 0.5 * amp)))
            lim = 2.0 * amp
            self._sacc_gaze.append((float(np.clip(gaze[0], -lim, lim)),
                                    float(np.clip(gaze[1], -lim, lim))))

    def blink(self, t: float) -> float:
        """Eyelid closure in [0, 1] at time ``t``: fast close (35 %), slower open."""
        cfg = self.config
        self._extend_blinks(t)
        dur = max(cfg.blink_duration_s, 1e-3)
        i = bisect.bisect_right(self._blinks, t) - 1
        value = 0.0
        for j in (i, i - 1):
            if j < 0:
                continue
            s = (t - self._blinks[j]) / dur
            if 0.0 <= s < 1.0:
                v = ease_in_out(s / 0.35) if s < 0.35 else 1.0 - ease_in_out((s - 0.35) / 0.65)
                value = max(value, v)
        return value

    def gaze(self, t: float) -> Tuple[float, float]:
        """Gaze (yaw, pitch) in degrees at time ``t``; each saccade takes ~50 ms."""
        self._extend_saccades(t)
        i = max(bisect.bisect_right(self._sacc_t, t) - 1, 0)
        target = self._sacc_gaze[i]
        prev = self._sacc_gaze[i - 1] if i > 0 else target
        s = ease_in_out((t - self._sacc_t[i]) / 0.05)
        return (prev[0] + (target[0] - prev[0]) * s, prev[1] + (target[1] - prev[1]) * s)

    def head(self, t: float, speaking: bool = False) -> Tuple[float, float, float]:
        """Head (yaw, pitch, roll) in degrees at time ``t``: wander plus breathing."""
        cfg = self.config
        gain = cfg.head_motion_deg * (cfg.speaking_head_gain if speaking else 1.0)
        w = 2 * math.pi * cfg.head_motion_hz * self._head_freqs
        wander = (np.sin(w * t + self._head_phases).sum(axis=1) / 3.0) * gain
        breath = cfg.breathing_amplitude_deg * 0.5 * (
            1.0 - math.cos(2 * math.pi * cfg.breathing_rate_hz * t))
        return (float(wander[0]), float(0.6 * wander[1] + breath), float(0.4 * wander[2]))

    def at(self, t: float, speaking: bool = False) -> IdleState:
        """Return the idle state at time ``t`` (all zero when disabled)."""
        if self.config.seed != self._seed_used:
            self._reseed()
        if not self.config.enabled:
            return IdleState(0.0, (0.0, 0.0), (0.0, 0.0, 0.0))
        return IdleState(self.blink(t), self.gaze(t), self.head(t, speaking))


_BLINK = (ARKIT_INDEX["eyeBlinkLeft"], ARKIT_INDEX["eyeBlinkRight"])


def apply_idle(coeffs: np.ndarray, idle: IdleState,
               eye_look_max_deg: float = EYE_LOOK_MAX_DEG) -> np.ndarray:
    """Overlay blinks and gaze on ARKit coefficients ``[52]`` (a new array, values in [0, 1]).

    Blinks take the max with the model's blink; gaze adds to ``eyeLook*`` (yaw > 0 looks to
    the avatar's left: ``eyeLookOutLeft`` + ``eyeLookInRight``; pitch > 0 looks up).
    """
    out = np.array(coeffs, dtype=np.float32, copy=True)
    floor, add = idle_overlay(idle, eye_look_max_deg, out.shape[-1])
    np.maximum(out, floor, out=out)
    out += add
    np.clip(out, 0.0, 1.0, out=out)
    return out


def idle_overlay(idle: IdleState, eye_look_max_deg: float = EYE_LOOK_MAX_DEG,
                 size: int = 52) -> np.ndarray:
    """Return ``[floor, add]`` ``[2, size]``: ``apply_idle(c) = clip(max(c, floor) + add)``.

    Made on the host from the idle state alone (no coefficients), so a GPU frame uploads it
    with its other small inputs and overlays it on the device (:func:`apply_idle_tensor`).
    ``floor`` is -inf except at the blinks.
    """
    out = np.zeros((2, size), np.float32)
    out[0] = -np.inf
    for k in _BLINK:
        out[0, k] = idle.blink
    yaw, pitch = (g / eye_look_max_deg for g in idle.gaze_deg)
    # Looking down drops the upper lids a little; blinking overrides gaze.
    adds = {
        "eyeLookOutLeft": max(yaw, 0.0), "eyeLookInRight": max(yaw, 0.0),
        "eyeLookInLeft": max(-yaw, 0.0), "eyeLookOutRight": max(-yaw, 0.0),
        "eyeLookUpLeft": max(pitch, 0.0), "eyeLookUpRight": max(pitch, 0.0),
        "eyeLookDownLeft": max(-pitch, 0.0), "eyeLookDownRight": max(-pitch, 0.0),
    }
    for name, v in adds.items():
        out[1, ARKIT_INDEX[name]] = v
    return out


def apply_idle_tensor(coeffs: Any, overlay: Any) -> Any:
    """Return :func:`apply_idle` of tensors ``coeffs [..., 52]`` with ``overlay [2, 52]``.

    ``overlay`` is :func:`idle_overlay` on the coefficients' device; no host round trip,
    the same float32 values as :func:`apply_idle`.
    """
    import torch

    return (torch.maximum(coeffs, overlay[0]) + overlay[1]).clamp(0.0, 1.0)
