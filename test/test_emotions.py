"""Specifications of the ``/emotion`` command grammar (gemo_ros.emotions)."""

import json

import pytest

from gemo_ros.emotions import LEVELS, parse_emotion_command


def test_plain_emotion_name_leaves_intensity_to_the_default():
    cmd = parse_emotion_command("Happy")
    assert (cmd.emotion, cmd.intensity, cmd.transition_s) == ("happy", None, None)


def test_name_and_intensity():
    cmd = parse_emotion_command("sad 0.7")
    assert (cmd.emotion, cmd.intensity) == ("sad", pytest.approx(0.7))


def test_colon_integer_is_a_paper_level():
    for level, value in LEVELS.items():
        assert parse_emotion_command(f"angry:{level}").intensity == pytest.approx(value)


def test_colon_float_is_an_intensity():
    assert parse_emotion_command("happy:0.4").intensity == pytest.approx(0.4)


def test_trailing_number_is_the_transition_time():
    cmd = parse_emotion_command("fear 0.5 2.0")
    assert cmd.transition_s == pytest.approx(2.0)
    assert parse_emotion_command("fear:2 1.5").transition_s == pytest.approx(1.5)


def test_aliases_map_to_canonical_names():
    assert parse_emotion_command("surprise").emotion == "surprised"
    assert parse_emotion_command("anger 1").emotion == "angry"


def test_json_command():
    cmd = parse_emotion_command(
        json.dumps({"emotion": "disgust", "intensity": 0.3, "transition": 0.5}))
    assert (cmd.emotion, cmd.intensity, cmd.transition_s) == ("disgusted", 0.3, 0.5)


def test_json_level():
    cmd = parse_emotion_command('{"emotion": "sad", "level": 2}')
    assert cmd.intensity == pytest.approx(2 / 3)


def test_out_of_range_intensity_is_clamped_with_a_warning():
    cmd = parse_emotion_command("happy 1.8")
    assert cmd.intensity == 1.0 and "clamped" in cmd.warnings[0]
    cmd = parse_emotion_command('{"emotion": "happy", "intensity": -2}')
    assert cmd.intensity == 0.0 and cmd.warnings


def test_unknown_emotion_lists_the_valid_ones():
    with pytest.raises(ValueError, match="neutral, happy, sad"):
        parse_emotion_command("ecstatic 0.5")


def test_invalid_json_is_a_clear_error():
    with pytest.raises(ValueError, match="invalid JSON"):
        parse_emotion_command('{"emotion": "happy",')


def test_json_without_emotion_key_is_an_error():
    with pytest.raises(ValueError, match='"emotion"'):
        parse_emotion_command('{"intensity": 0.5}')


@pytest.mark.parametrize("text", ["", "   ", "happy nan", "happy 0.5 1 2", "happy:7", "sad abc"])
def test_malformed_commands_raise_value_error(text):
    with pytest.raises(ValueError):
        parse_emotion_command(text)


def test_colon_zero_means_intensity_zero():
    assert parse_emotion_command("happy:0").intensity == 0.0
    with pytest.raises(ValueError, match="or an intensity such as 0.7"):
        parse_emotion_command("happy:5")


def test_a_brace_anywhere_is_reported_as_json_not_as_an_unknown_name():
    with pytest.raises(ValueError, match="invalid JSON"):
        parse_emotion_command("not json {")


def test_emotion_id_takes_names_aliases_and_ids_and_nothing_else():
    from gemo_ros.emotions import EMOTIONS, emotion_id

    assert emotion_id("happy") == EMOTIONS.index("happy") == emotion_id(EMOTIONS.index("happy"))
    for bad in (True, -1, len(EMOTIONS), "bored", None):
        with pytest.raises(ValueError):
            emotion_id(bad)
