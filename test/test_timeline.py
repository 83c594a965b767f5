"""Specifications of the audio playback timeline (gemo_ros.timeline)."""

import pytest

from gemo_ros.timeline import AudioTimeline, TimelineConfig


def timeline(latency=0.2, gap=0.3):
    return AudioTimeline(TimelineConfig(output_latency_s=latency, gap_s=gap))


def test_whole_utterance_plays_from_arrival_plus_output_latency():
    tl = timeline(latency=0.25)
    p = tl.place(3.0, arrival_time=10.0)
    assert p.new and p.start == pytest.approx(10.25)
    assert tl.at(11.25) == (p.utterance, pytest.approx(1.0))
    assert tl.speaking(10.3) and not tl.speaking(10.2) and not tl.speaking(13.3)


def test_real_time_chunks_continue_the_timeline():
    tl = timeline(latency=0.2)
    starts = [tl.place(0.04, arrival_time=5.0 + 0.04 * k).start for k in range(50)]
    assert len(tl.utterances) == 1
    for k, s in enumerate(starts):
        assert s == pytest.approx(5.2 + 0.04 * k)


def test_jittery_chunks_within_the_latency_stay_contiguous():
    tl = timeline(latency=0.2)
    jitter = [0.0, 0.15, -0.02, 0.1, 0.0, 0.18]
    for k, j in enumerate(jitter):
        p = tl.place(0.1, arrival_time=1.0 + 0.1 * k + j)
        assert p.pad_s == 0.0
    assert tl.utterances[0].duration_s == pytest.approx(0.6)


def test_short_underrun_is_silence_inside_the_utterance():
    tl = timeline(latency=0.2, gap=0.3)
    tl.place(0.5, arrival_time=0.0)             # plays 0.2 .. 0.7
    p = tl.place(0.5, arrival_time=0.75)         # sink ran dry; plays at 0.95
    assert not p.new and p.pad_s == pytest.approx(0.25)
    assert p.start == pytest.approx(0.95)
    assert tl.at(1.0)[1] == pytest.approx(0.8)   # utterance time still = t - t0


def test_a_gap_longer_than_gap_s_starts_a_new_utterance():
    tl = timeline(latency=0.2, gap=0.3)
    first = tl.place(0.5, arrival_time=0.0).utterance
    p = tl.place(0.5, arrival_time=2.0)
    assert p.new and p.utterance is not first and p.start == pytest.approx(2.2)
    assert tl.at(1.0) == (first, pytest.approx(0.8))   # trailing silence of the first
    assert tl.at(1.5) == (None, 0.0)                    # idle between utterances
    assert tl.at(2.3)[0] is p.utterance


def test_audio_sent_while_speaking_is_queued_behind():
    tl = timeline(latency=0.2)
    tl.place(2.0, arrival_time=0.0)      # a whole sentence: 0.2 .. 2.2
    p = tl.place(1.0, arrival_time=0.5)  # the next sentence, sent early
    assert not p.new and p.start == pytest.approx(2.2)


def test_stamped_chunk_plays_at_its_own_time():
    tl = timeline(latency=0.2)
    p = tl.place(0.5, arrival_time=1.0, playback_time=4.0)
    assert p.new and p.start == 4.0
    assert not tl.speaking(3.9) and tl.speaking(4.1)


def test_consecutive_stamps_continue_one_utterance():
    tl = timeline()
    for k in range(10):
        p = tl.place(0.02, arrival_time=0.0, playback_time=3.0 + 0.02 * k)
        assert p.new == (k == 0)
    assert tl.utterances[0].duration_s == pytest.approx(0.2)


def test_arrival_of_maps_utterance_time_to_its_chunk_arrival():
    tl = timeline(latency=0.1)
    tl.place(0.1, arrival_time=1.0)
    tl.place(0.1, arrival_time=1.1)
    utt = tl.utterances[0]
    assert utt.arrival_of(0.05) == 1.0 and utt.arrival_of(0.15) == 1.1


def test_prune_drops_finished_utterances_only():
    tl = timeline(latency=0.0, gap=0.3)
    tl.place(1.0, arrival_time=0.0)
    tl.place(1.0, arrival_time=5.0)
    dropped = tl.prune(2.0)
    assert [u.t0 for u in dropped] == [0.0] and len(tl.utterances) == 1


def test_queued_seconds_counts_audio_still_to_play():
    tl = timeline(latency=0.0)
    tl.place(2.0, arrival_time=0.0)
    assert tl.queued_s(0.5) == pytest.approx(1.5)


def test_negative_duration_is_rejected():
    with pytest.raises(ValueError):
        timeline().place(-1.0, arrival_time=0.0)
