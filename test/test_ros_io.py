"""Specifications of gemo_ros.ros_io: audio bytes and images."""

import array

import numpy as np
import pytest

from gemo_ros import ros_io


def test_s16le_mono_bytes_become_float32_in_unit_range():
    ints = np.array([0, 16384, -32768, 32767], dtype="<i2")
    out, dropped = ros_io.pcm_from_bytes(ints.tobytes(), "S16LE", 1)
    assert out.dtype == np.float32 and dropped == 0
    np.testing.assert_allclose(out, [0.0, 0.5, -1.0, 32767 / 32768], atol=1e-7)


def test_audio_data_array_of_bytes_is_accepted():
    ints = np.array([1000, -1000], dtype="<i2")
    data = array.array("B", ints.tobytes())
    out, _ = ros_io.pcm_from_bytes(data, "S16LE")
    np.testing.assert_allclose(out, ints / 32768.0, atol=1e-7)


@pytest.mark.parametrize("fmt", ["S16LE", "S32LE", "F32LE", "U8"])
def test_every_format_round_trips_through_bytes(fmt):
    x = np.linspace(-0.9, 0.9, 37).astype(np.float32)
    out, dropped = ros_io.pcm_from_bytes(ros_io.bytes_from_pcm(x, fmt), fmt)
    tol = 1 / 100 if fmt == "U8" else 1e-4
    np.testing.assert_allclose(out, x, atol=tol)
    assert dropped == 0


def test_stereo_is_averaged_to_mono():
    left = np.full(10, 0.5)
    right = np.full(10, -0.25)
    inter = np.stack([left, right], axis=1).reshape(-1)
    out, _ = ros_io.pcm_from_bytes(ros_io.bytes_from_pcm(inter, "S16LE"), "S16LE", channels=2)
    assert out.shape == (10,)
    np.testing.assert_allclose(out, 0.125, atol=1e-4)


def test_stereo_u8_silence_is_zero():
    out, _ = ros_io.pcm_from_bytes(bytes([128] * 8), "U8", channels=2)
    np.testing.assert_allclose(out, 0.0)


def test_odd_byte_count_drops_the_partial_frame_and_reports_it():
    data = np.array([100, 200, 300], dtype="<i2").tobytes() + b"\x01"
    out, dropped = ros_io.pcm_from_bytes(data, "S16LE")
    assert out.shape == (3,) and dropped == 1


def test_empty_bytes_give_no_samples():
    out, dropped = ros_io.pcm_from_bytes(b"", "S16LE")
    assert out.shape == (0,) and dropped == 0


def test_float_samples_pass_through_unchanged_for_the_engine_to_check():
    x = np.array([np.nan, np.inf, 0.25, 3.0], dtype="<f4")
    out, _ = ros_io.pcm_from_bytes(x.tobytes(), "F32LE")
    np.testing.assert_array_equal(out, x)


def test_unknown_sample_format_names_the_supported_ones():
    with pytest.raises(ros_io.AudioFormatError, match="S16LE"):
        ros_io.pcm_from_bytes(b"\x00\x00", "S24BE")


def test_mp3_coding_explains_how_to_get_wave():
    with pytest.raises(ros_io.AudioFormatError, match="audio_capture.*wave"):
        ros_io.check_coding_format("mp3")
    ros_io.check_coding_format("wave")
    ros_io.check_coding_format("")


def test_format_aliases_are_accepted():
    assert ros_io.normalise_sample_format("s16") == "S16LE"
    assert ros_io.normalise_sample_format("f32le") == "F32LE"


def test_zero_channels_is_an_error():
    with pytest.raises(ros_io.AudioFormatError, match="channels"):
        ros_io.pcm_from_bytes(b"\x00\x00", "S16LE", channels=0)


def test_image_message_is_rgb8_with_the_given_stamp():
    pytest.importorskip("sensor_msgs.msg")
    rgb = np.random.default_rng(0).integers(0, 255, (6, 5, 3), dtype=np.uint8)
    msg = ros_io.image_msg(rgb, stamp_ns=3_250_000_000, frame_id="panel")
    assert (msg.height, msg.width, msg.step, msg.encoding) == (6, 5, 15, "rgb8")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (3, 250_000_000)
    assert msg.header.frame_id == "panel"
    np.testing.assert_array_equal(ros_io.image_from_msg(msg), rgb)


def test_compressed_message_holds_a_decodable_jpeg():
    pytest.importorskip("sensor_msgs.msg")
    import io

    from PIL import Image

    rgb = np.zeros((16, 24, 3), dtype=np.uint8)
    rgb[:, :, 0] = 200
    msg = ros_io.compressed_image_msg(rgb, 0, quality=90)
    assert "jpeg" in msg.format
    back = np.asarray(Image.open(io.BytesIO(bytes(msg.data))))
    assert back.shape == (16, 24, 3) and abs(int(back[..., 0].mean()) - 200) < 4


def test_image_rejects_wrong_shape():
    with pytest.raises(ValueError, match="uint8"):
        ros_io.jpeg_bytes(np.zeros((4, 4), dtype=np.uint8))


# --- cv_bridge and the numpy path, image_transport's compressed conventions ------------------

def _face_like(h: int = 24, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_cv_bridge_and_numpy_build_the_same_image_message_bytes():
    pytest.importorskip("sensor_msgs.msg")
    if ros_io.cv_bridge() is None:
        pytest.skip("cv_bridge is not importable here (no ros-*-cv-bridge wheel on PyPI for "
                    "Kilted; a robot's apt ROS has it)")
    from rclpy.serialization import serialize_message

    rgb = _face_like()
    a = ros_io.image_msg(rgb, 1_500_000_000, "face", use_cv_bridge=True)
    b = ros_io.image_msg(rgb, 1_500_000_000, "face", use_cv_bridge=False)
    assert serialize_message(a) == serialize_message(b)
    np.testing.assert_array_equal(ros_io.image_from_msg(a, use_cv_bridge=True),
                                  ros_io.image_from_msg(b, use_cv_bridge=False))


def test_cv_bridge_and_pillow_decode_the_compressed_message_to_the_same_pixels():
    pytest.importorskip("sensor_msgs.msg")
    if ros_io.cv_bridge() is None:
        pytest.skip("cv_bridge is not importable here (no ros-*-cv-bridge wheel on PyPI for "
                    "Kilted; a robot's apt ROS has it)")
    msg = ros_io.compressed_image_msg(_face_like(), 0, quality=90)
    a = ros_io.rgb_from_compressed_msg(msg, use_cv_bridge=True).astype(int)
    b = ros_io.rgb_from_compressed_msg(msg, use_cv_bridge=False).astype(int)
    assert a.shape == b.shape and np.abs(a - b).max() <= 2  # two IDCTs of one JPEG


def test_without_cv_bridge_the_numpy_path_is_used_and_forcing_cv_bridge_says_why():
    pytest.importorskip("sensor_msgs.msg")
    if ros_io.cv_bridge() is not None:
        pytest.skip("cv_bridge is importable here")
    msg = ros_io.image_msg(_face_like(), 0)
    assert msg.encoding == "rgb8"
    with pytest.raises(ImportError, match="cv-bridge"):
        ros_io.image_msg(_face_like(), 0, use_cv_bridge=True)


def test_compressed_message_follows_image_transport_naming():
    pytest.importorskip("sensor_msgs.msg")
    msg = ros_io.compressed_image_msg(_face_like(), 2_000_000_001, "panel")
    assert msg.format == "rgb8; jpeg compressed bgr8"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (
        2, 1, "panel")
    assert bytes(msg.data[:3]) == b"\xff\xd8\xff" and ros_io.compressed_is_jpeg(msg)
    assert "face/image/" + ros_io.COMPRESSED_SUFFIX == "face/image/compressed"


def test_compressed_message_decodes_to_the_image_within_jpeg_error():
    pytest.importorskip("sensor_msgs.msg")
    rgb = np.zeros((32, 48, 3), dtype=np.uint8)
    rgb[:, :24] = (220, 40, 30)
    rgb[:, 24:] = (20, 60, 200)
    back = ros_io.rgb_from_compressed_msg(ros_io.compressed_image_msg(rgb, 0, quality=95),
                                          use_cv_bridge=False)
    assert back.shape == rgb.shape
    assert np.abs(back[4:-4, 4:20].astype(int) - rgb[4:-4, 4:20]).max() < 12
    assert np.abs(back[4:-4, 28:44].astype(int) - rgb[4:-4, 28:44]).max() < 12


def test_garbage_compressed_data_is_a_value_error():
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    msg = sensor_msgs.CompressedImage(format="jpeg", data=b"not an image")
    with pytest.raises(ValueError, match="cannot decode"):
        ros_io.rgb_from_compressed_msg(msg, use_cv_bridge=False)


def test_bgr8_images_are_returned_as_rgb_and_short_data_is_refused():
    pytest.importorskip("sensor_msgs.msg")
    rgb = _face_like(4, 5)
    msg = ros_io.image_msg(rgb, 0, use_cv_bridge=False)
    msg.encoding = "bgr8"
    np.testing.assert_array_equal(ros_io.image_from_msg(msg, use_cv_bridge=False),
                                  rgb[:, :, ::-1])
    msg.height = 9
    with pytest.raises(ValueError, match="does not fit"):
        ros_io.image_from_msg(msg, use_cv_bridge=False)


def test_expression_message_fields_are_mapped():
    class Expression:  # the fields of hri_msgs/msg/Expression (the package may be absent)
        expression, valence, arousal, confidence = "furious", 0.0, 0.0, 0.5

    m = ros_io.expression_from_msg(Expression())
    assert m.emotion == "angry" and m.intensity == pytest.approx(0.5)
