"""Lip-sync metrics of `gemo eval a2e` (gemo_ros.train.eval_a2e) on curves with known answers."""

import numpy as np
import pytest

from gemo_ros.face.arkit import ARKIT_INDEX
from gemo_ros.train import eval_a2e

FPS = 50.0

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_best_lag_finds_a_known_delay_in_milliseconds():
    rng = np.random.default_rng(0)
    target = np.convolve(rng.standard_normal(300), np.ones(5) / 5, mode="same")
    late = np.roll(target, 3)                      # 3 frames = 60 ms late
    assert eval_a2e._best_lag(late, target, FPS) == pytest.approx(60.0, abs=5.0)
    assert eval_a2e._best_lag(target, target, FPS) == pytest.approx(0.0, abs=1.0)


def test_closure_hits_count_bilabials_where_the_lips_meet():
    pred = np.zeros((50, 52), np.float32)
    pred[:, ARKIT_INDEX["jawOpen"]] = 0.3
    pred[10:15, ARKIT_INDEX["mouthClose"]] = 0.3    # lips meet over the first /m/ only
    phones = [("m", 0.2, 0.28), ("a", 0.3, 0.5), ("b", 0.6, 0.68)]
    assert eval_a2e._closure_hits(pred, phones, FPS) == (1, 2)
    assert eval_a2e._closure_hits(pred, phones, FPS, "vowel") == (0, 1)


def test_onsets_are_jaw_rises_after_rest():
    jaw = np.zeros(100)
    jaw[40:60] = 0.3
    assert eval_a2e._onsets(jaw, FPS) == [pytest.approx(39 + 0.05 / 0.3)]


def test_evaluate_set_reports_every_metric_for_a_tiny_model(tiny):
    t = np.arange(16000) / 16000.0
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (t > 0.3)).astype(np.float32)
    clip = eval_a2e.EvalClip(audio, 16000, [("_", 0.0, 0.3), ("m", 0.3, 0.4), ("a", 0.4, 0.9),
                                            ("_", 0.9, 1.0)], "test", "ma")
    res = eval_a2e.evaluate_set(tiny, [clip, clip])
    assert res["clips"] == 2 and res["bilabials"] == 2
    for key in ("lip_closure_rate", "jaw_corr", "jaw_mae", "lag_ms_xcorr_median",
                "emotion_centroid_accuracy", "emotion_mae_happy"):
        assert key in res
    assert 0.0 <= res["lip_closure_rate"] <= 1.0


def test_real_speech_is_aligned_and_also_given_after_an_mp3_round_trip():
    import os

    if not all(os.path.exists(p) for p in eval_a2e.REAL_SPEECH):
        pytest.skip("the alsa-utils recordings are not installed (evaluation data only)")
    clips, reason = eval_a2e.real_speech_clips()
    assert reason is None
    real = [c for c in clips if c.source.startswith("real:")]
    coded = [c for c in clips if c.source.startswith("real-mp3")]
    assert len(real) == len(eval_a2e.REAL_SPEECH) and len(coded) == len(real)
    names = [n for n, _, _ in real[0].phones]            # "front center"
    assert "f" in names and "n" in names, names
    assert coded[0].audio.shape == real[0].audio.shape


def test_packaged_real_recordings_are_aligned_and_hold_bilabials():
    sets, reason = eval_a2e.real_recording_clips()
    assert reason is None
    assert len(sets["real_read"]) == 5 and len(sets["real_spoken"]) == 6
    bilabials = [p for clips in sets.values() for c in clips for p in c.phones
                 if p[0] in ("p", "b", "m")]
    assert len(bilabials) >= 30                           # what the set is there for
    clip = sets["real_read"][0]
    spoken = [p for p in clip.phones if p[0] != "_"]
    assert spoken[0][1] >= 0.3                            # the added rest comes first
    assert clip.phones[-1][2] <= len(clip.audio) / clip.rate + 1e-6


def test_held_out_family_clips_or_a_reason():
    clips, reason = eval_a2e.festival_clips(1)
    if not clips:
        assert reason and "festival" in reason
        pytest.skip(reason)
    assert clips[0].source.startswith("festival:") and clips[0].phones


def test_the_video_sentence_is_spoken_by_a_held_out_voice(tmp_path):
    import soundfile as sf

    try:
        voice = eval_a2e.sentence_audio(str(tmp_path / "s.wav"))
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"no synthesiser usable here: {exc}")
    audio, rate = sf.read(str(tmp_path / "s.wav"))
    assert voice in ("festival:ked_diphone", "espeak:en-029")
    assert audio.size > 1.5 * rate
