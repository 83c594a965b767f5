"""Audio playback clock: maps every received audio sample to the time it is heard.

The face must move with the sound the robot's loudspeaker plays, not with the moment the
bytes arrive. Audio arrives in three ways, and all three land on one timeline:

* a whole utterance at once, faster than real time (a TTS sentence): it plays from its
  arrival plus ``output_latency_s`` (the sink's buffering);
* paced real-time chunks: each chunk that arrives while earlier audio is still playing is
  queued right behind it, so the utterance stays contiguous;
* stamped chunks (``audio_stamped``): the header stamp is the playback time of the first
  sample and is used as is.

A pause in playback longer than ``gap_s`` ends an utterance; the next audio starts a new one
(the audio model is reset there). Shorter underruns are kept inside the utterance as silence,
so utterance time ``u`` always plays at ``t0 + u``.

All times are float seconds on one clock chosen by the caller (the node uses ROS time).
"""

import bisect
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple


@dataclass
class TimelineConfig:
    """Settings of :class:`AudioTimeline`.

    Attributes:
        output_latency_s: seconds from the arrival of unstamped audio to its playback
            (the audio sink's buffer). Should be >= the audio model's lookahead.
        gap_s: a playback pause longer than this (seconds) ends the utterance.
    """

    output_latency_s: float = 0.2
    gap_s: float = 0.3


@dataclass
class Utterance:
    """A stretch of contiguous audio on the playback timeline.

    ``t0``: playback time (s) of utterance time 0; ``duration_s``: audio placed so far
    (including inserted silence); ``payload``: the caller's per-utterance state (the engine
    keeps its streaming audio model there).
    """

    uid: int
    t0: float
    duration_s: float = 0.0
    payload: Any = None
    _arrival_u: List[float] = field(default_factory=list)
    _arrival_t: List[float] = field(default_factory=list)

    @property
    def end(self) -> float:
        """Playback time (s) at which the audio placed so far has finished playing."""
        return self.t0 + self.duration_s

    @property
    def last_arrival(self) -> Optional[float]:
        """Arrival time (s) of the latest chunk placed in this utterance."""
        return self._arrival_t[-1] if self._arrival_t else None

    def forget_arrivals_before(self, u: float) -> None:
        """Drop arrival records wholly before utterance time ``u`` (keeps the one covering it)."""
        i = bisect.bisect_right(self._arrival_u, u) - 1
        if i > 0:
            del self._arrival_u[:i]
            del self._arrival_t[:i]

    def arrival_of(self, u: float) -> Optional[float]:
        """Arrival time (s) of the chunk holding utterance time ``u`` (None before any)."""
        i = bisect.bisect_right(self._arrival_u, u) - 1
        return self._arrival_t[i] if i >= 0 else None


@dataclass
class Placement:
    """Where :meth:`AudioTimeline.place` put a chunk.

    ``start``: playback time of its first sample (s); ``pad_s``: silence inserted before it
    inside the utterance (s); ``new``: True when the chunk starts a new utterance.
    """

    utterance: Utterance
    start: float
    pad_s: float
    new: bool


class AudioTimeline:
    """Place audio chunks on the playback clock and answer "what plays at time t"."""

    def __init__(self, config: Optional[TimelineConfig] = None) -> None:
        self.config = config or TimelineConfig()
        self._utterances: List[Utterance] = []
        self._next_uid = 0

    @property
    def utterances(self) -> Tuple[Utterance, ...]:
        """The utterances still on the timeline, oldest first."""
        return tuple(self._utterances)

    def place(self, duration_s: float, arrival_time: float,
              playback_time: Optional[float] = None) -> Placement:
        """Put a chunk of ``duration_s`` seconds, received at ``arrival_time``, on the timeline.

        ``playback_time`` (stamped audio) is the playback time of its first sample; None means
        "as soon as the sink can play it": right after the audio already queued, or at
        ``arrival_time + output_latency_s`` if nothing is playing.
        """
        if not duration_s >= 0.0:
            raise ValueError(f"chunk duration must be >= 0 s, got {duration_s}")
        cfg = self.config
        last = self._utterances[-1] if self._utterances else None
        if playback_time is None:
            if last is not None and arrival_time <= last.end:
                start = last.end  # the sink still has audio queued: play right behind it
            else:
                start = arrival_time + cfg.output_latency_s
        else:
            start = float(playback_time)
        if last is not None and last.t0 <= start <= last.end + cfg.gap_s:
            pad = max(start - last.end, 0.0)
            utt, new = last, False
            start = last.end + pad  # an overlapping stamp is queued behind (no rewind)
        else:
            utt = Utterance(uid=self._next_uid, t0=start)
            self._next_uid += 1
            self._insert(utt)
            pad, new = 0.0, True
        utt._arrival_u.append(utt.duration_s + pad)
        utt._arrival_t.append(float(arrival_time))
        utt.duration_s += pad + duration_s
        return Placement(utterance=utt, start=start, pad_s=pad, new=new)

    def _insert(self, utt: Utterance) -> None:
        keys = [u.t0 for u in self._utterances]
        self._utterances.insert(bisect.bisect_right(keys, utt.t0), utt)

    def at(self, t: float) -> Tuple[Optional[Utterance], float]:
        """Return ``(utterance, u)``: the utterance heard at time ``t`` and its time ``u``.

        The utterance is the latest one that started at or before ``t`` and whose end is
        less than ``gap_s`` ago (its trailing silence); otherwise ``(None, 0.0)``.
        """
        best = None
        for utt in self._utterances:
            if utt.t0 <= t:
                best = utt
            else:
                break
        if best is None or t > best.end + self.config.gap_s:
            return None, 0.0
        return best, t - best.t0

    def speaking(self, t: float) -> bool:
        """Return True while placed audio is playing at time ``t``."""
        utt, u = self.at(t)
        return utt is not None and 0.0 <= u < utt.duration_s

    def queued_s(self, t: float) -> float:
        """Seconds of placed audio still to play after time ``t``."""
        return sum(max(u.end - max(t, u.t0), 0.0) for u in self._utterances)

    def prune(self, t: float) -> List[Utterance]:
        """Drop utterances that finished more than ``gap_s`` before ``t``; return them."""
        keep, dropped = [], []
        for utt in self._utterances:
            (dropped if utt.end + self.config.gap_s < t else keep).append(utt)
        self._utterances = keep
        return dropped

    def clear(self) -> None:
        """Forget all audio."""
        self._utterances = []
