"""Specifications of the ROS4HRI expression mapping (gemo_ros/expressions.py)."""

import math

import pytest

from gemo_ros.emotions import EMOTIONS
from gemo_ros.expressions import (CIRCUMPLEX, EXPRESSIONS, NEUTRAL_RADIUS,
                                  from_valence_arousal, map_expression)

#: hri_msgs/msg/Expression's constants (ROS4HRI), as released.
HRI_NAMES = ("neutral angry sad happy surprised disgusted scared pleading vulnerable "
             "despaired guilty disappointed embarrassed horrified skeptical annoyed furious "
             "suspicious rejected bored tired asleep confused amazed excited").split()


def test_every_ros4hri_expression_name_maps_to_one_of_our_emotions() -> None:
    assert set(EXPRESSIONS) == set(HRI_NAMES)
    for name in HRI_NAMES:
        m = map_expression(name)
        assert m.emotion in EMOTIONS and 0.0 <= m.intensity <= 1.0 and m.source == "name"


def test_the_six_basic_emotions_map_to_themselves() -> None:
    for name, ours in (("happy", "happy"), ("sad", "sad"), ("angry", "angry"),
                       ("surprised", "surprised"), ("disgusted", "disgusted"),
                       ("scared", "fear")):
        assert map_expression(name).emotion == ours


def test_stronger_words_give_stronger_intensities_of_the_same_emotion() -> None:
    for weak, strong in (("annoyed", "furious"), ("happy", "excited"), ("sad", "despaired"),
                         ("scared", "horrified"), ("surprised", "amazed")):
        a, b = map_expression(weak), map_expression(strong)
        assert a.emotion == b.emotion and a.intensity < b.intensity


def test_names_are_case_insensitive_and_our_own_names_are_accepted() -> None:
    assert map_expression("  HAPPY ").emotion == "happy"
    assert map_expression("contempt").emotion == "contempt"
    assert map_expression("fearful").emotion == "fear"
    assert map_expression("contempt").intensity == 1.0


def test_neutral_has_zero_intensity() -> None:
    assert map_expression("neutral").intensity == 0.0
    assert map_expression("asleep").intensity == 0.0


def test_arousal_raises_and_lowers_a_named_expression_and_zero_leaves_it() -> None:
    base = EXPRESSIONS["happy"][1]
    assert map_expression("happy").intensity == pytest.approx(base)
    assert map_expression("happy", arousal=0.5).intensity > base
    assert map_expression("happy", arousal=-0.5).intensity < base
    assert map_expression("excited", arousal=1.0).intensity == 1.0  # capped


def test_confidence_scales_the_intensity_and_zero_means_not_given() -> None:
    full = map_expression("angry").intensity
    assert map_expression("angry", confidence=0.0).intensity == pytest.approx(full)
    assert map_expression("angry", confidence=1.0).intensity == pytest.approx(full)
    assert map_expression("angry", confidence=0.5).intensity == pytest.approx(0.5 * full)


def test_an_empty_name_reads_valence_and_arousal() -> None:
    m = map_expression("", valence=0.9, arousal=0.3)
    assert (m.emotion, m.source) == ("happy", "valence-arousal")
    assert m.intensity == pytest.approx(min(1.0, math.hypot(0.9, 0.3)))
    assert map_expression("", valence=-0.6, arousal=-0.6).emotion == "sad"
    assert map_expression("", valence=-0.6, arousal=0.6).emotion == "angry"
    assert map_expression("", valence=0.2, arousal=0.9).emotion == "surprised"


def test_each_circumplex_direction_maps_back_to_its_emotion() -> None:
    for emotion, (v, a) in CIRCUMPLEX.items():
        r = math.hypot(v, a)
        assert from_valence_arousal(0.8 * v / r, 0.8 * a / r) == (emotion, pytest.approx(0.8))


def test_near_the_origin_the_face_is_neutral() -> None:
    assert from_valence_arousal(0.0, 0.0) == ("neutral", 0.0)
    assert from_valence_arousal(NEUTRAL_RADIUS * 0.7, -NEUTRAL_RADIUS * 0.7)[0] == "neutral"


def test_an_unknown_name_without_valence_arousal_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown expression 'grumpy'.*furious"):
        map_expression("grumpy")


def test_an_unknown_name_with_valence_arousal_falls_back_with_a_warning() -> None:
    m = map_expression("grumpy", valence=-0.7, arousal=0.6)
    assert m.emotion == "angry" and m.source == "valence-arousal"
    assert any("grumpy" in w for w in m.warnings)


def test_out_of_range_numbers_are_clamped_with_warnings() -> None:
    m = map_expression("happy", arousal=3.0, confidence=2.0)
    assert m.intensity <= 1.0
    assert len(m.warnings) == 2 and "arousal 3" in m.warnings[0]


@pytest.mark.parametrize("field", ["valence", "arousal", "confidence"])
def test_non_finite_numbers_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=f"{field} must be finite"):
        map_expression("happy", **{field: float("nan")})
