"""Message <-> numpy conversions.

Audio: ``AudioData.data`` (raw interleaved PCM bytes) -> mono float32 samples in [-1, 1].
Images: ``uint8 [H, W, 3]`` RGB -> ``sensor_msgs/Image`` (rgb8) or ``CompressedImage`` (JPEG,
image_transport's ``compressed`` conventions) and back. Where ``cv_bridge`` is importable (a
robot with ROS 2 from apt) Image messages are built and read by ``cv_bridge.CvBridge``,
elsewhere by numpy; both give the same message bytes (test/test_ros_io.py).
ROS4HRI: ``hri_msgs/msg/Expression`` -> emotion and intensity (:mod:`gemo_ros.expressions`).
The ``/emotion`` command grammar lives with the emotion vocabulary
(:func:`gemo_ros.emotions.parse_emotion_command`).

The ROS message modules are imported inside the functions that build messages, so the
audio part works (and is tested) without ROS.
"""

import array
import io
from typing import Any, Optional, Tuple

import numpy as np

from gemo_ros.expressions import ExpressionMapping, map_expression
from gemo_ros.imaging import check_rgb, jpeg_bytes  # noqa: F401 - jpeg_bytes is re-exported

#: sample format name -> (numpy dtype, scale to [-1, 1], zero offset)
SAMPLE_FORMATS = {
    "S16LE": (np.dtype("<i2"), 1.0 / 32768.0, 0.0),
    "S32LE": (np.dtype("<i4"), 1.0 / 2147483648.0, 0.0),
    "F32LE": (np.dtype("<f4"), 1.0, 0.0),
    "U8": (np.dtype("u1"), 1.0 / 128.0, 128.0),
}
#: Spellings of the same formats used by GStreamer / audio_common.
FORMAT_ALIASES = {"S16": "S16LE", "S32": "S32LE", "F32": "F32LE", "FLOAT32": "F32LE",
                  "PCM_16": "S16LE", "PCM_S16LE": "S16LE", "UINT8": "U8"}
#: Coding formats that carry raw PCM (AudioInfo.coding_format).
RAW_CODINGS = ("", "wave", "wav", "pcm", "raw", "audio/x-raw")
AUDIO_CAPTURE_HINT = (
    "configure audio_capture to publish raw PCM: format:=wave sample_format:=S16LE "
    "(e.g. `ros2 launch audio_capture capture.launch.xml format:=wave`)"
)


class AudioFormatError(ValueError):
    """Audio bytes or format settings that cannot be turned into PCM samples."""


def normalise_sample_format(sample_format: str) -> str:
    """Return the canonical name (``S16LE``, ``S32LE``, ``F32LE``, ``U8``) of a sample format.

    Raises AudioFormatError naming the supported formats.
    """
    key = str(sample_format).strip().upper()
    key = FORMAT_ALIASES.get(key, key)
    if key not in SAMPLE_FORMATS:
        raise AudioFormatError(
            f"unsupported sample_format {sample_format!r}; supported: "
            f"{', '.join(SAMPLE_FORMATS)}")
    return key


def check_coding_format(coding_format: str) -> None:
    """Raise AudioFormatError unless ``coding_format`` is raw PCM (wave).

    Compressed streams (mp3, opus, ...) are not decoded here; the message says how to get raw
    PCM from ``audio_capture``.
    """
    if str(coding_format).strip().lower() not in RAW_CODINGS:
        raise AudioFormatError(
            f"coding_format {coding_format!r} is not supported (only raw PCM/wave); "
            + AUDIO_CAPTURE_HINT)


def pcm_from_bytes(data: Any, sample_format: str = "S16LE",
                   channels: int = 1) -> Tuple[np.ndarray, int]:
    """Convert interleaved PCM bytes to mono float32 samples with one copy.

    Args:
        data: bytes-like (``bytes``, ``array.array('B')`` from ``AudioData.data``, numpy).
        sample_format: ``S16LE``, ``S32LE``, ``F32LE`` or ``U8`` (aliases accepted).
        channels: interleaved channel count >= 1; channels are averaged to mono.

    Returns:
        ``(samples[S] float32 in [-1, 1], dropped_bytes)`` where ``dropped_bytes`` counts a
        trailing partial frame that was ignored (odd byte counts). F32LE values pass through
        as they are: NaN/inf and out-of-range values are left for the caller to report
        (:meth:`gemo_ros.engine.Engine.feed_audio` replaces and clips them).

    Raises:
        AudioFormatError: unknown format or channels < 1.
    """
    fmt = normalise_sample_format(sample_format)
    channels = int(channels)
    if channels < 1:
        raise AudioFormatError(f"channels must be >= 1, got {channels}")
    dtype, scale, offset = SAMPLE_FORMATS[fmt]
    buf = memoryview(data).cast("B")
    frame_bytes = dtype.itemsize * channels
    usable = (len(buf) // frame_bytes) * frame_bytes
    raw = np.frombuffer(buf[:usable], dtype=dtype)  # a view, no copy
    if channels == 1:
        out = raw.astype(np.float32)  # the one copy
    else:
        out = raw.reshape(-1, channels).sum(axis=1, dtype=np.float32)  # the one copy
        offset *= channels
        scale /= channels
    if offset:
        out -= offset
    out *= scale
    return out, len(buf) - usable


def bytes_from_pcm(samples: np.ndarray, sample_format: str = "S16LE") -> bytes:
    """Encode float samples in [-1, 1] as PCM bytes (the inverse of :func:`pcm_from_bytes`)."""
    fmt = normalise_sample_format(sample_format)
    dtype, scale, offset = SAMPLE_FORMATS[fmt]
    x = np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0)
    if fmt == "F32LE":
        return x.astype(dtype).tobytes()
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + offset), info.min, info.max).astype(dtype).tobytes()


# --- images -------------------------------------------------------------------------------------

def _byte_array(buf: Any) -> array.array:
    # rclpy keeps an array('B') as is; any other sequence is checked element by element.
    out = array.array("B")
    out.frombytes(memoryview(buf).cast("B"))
    return out


#: image_transport's ``compressed`` plugin: ``<input encoding>; jpeg compressed <jpeg colours>``
#: (colour JPEGs are written from bgr8, so an rgb8 image reads as below).
COMPRESSED_FORMAT = "rgb8; jpeg compressed bgr8"
#: Sub-topic of the compressed transport (``face/image`` -> ``face/image/compressed``).
COMPRESSED_SUFFIX = "compressed"

_BRIDGE: Any = None  # the CvBridge once made; False when cv_bridge cannot be imported


def cv_bridge() -> Optional[Any]:
    """Return the shared ``CvBridge`` instance, or None where the package or OpenCV is absent."""
    global _BRIDGE
    if _BRIDGE is None:
        try:
            from cv_bridge import CvBridge
            _BRIDGE = CvBridge()
        except Exception:  # noqa: BLE001 - ImportError, or a broken OpenCV underneath
            _BRIDGE = False
    return _BRIDGE or None


def _bridge_for(use_cv_bridge: Optional[bool]) -> Optional[Any]:
    """None = cv_bridge when importable; True = cv_bridge or ImportError; False = numpy."""
    if use_cv_bridge is False:
        return None
    bridge = cv_bridge()
    if bridge is None and use_cv_bridge:
        raise ImportError("cv_bridge is not importable (install ros-<distro>-cv-bridge)")
    return bridge


def image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str = "face",
              use_cv_bridge: Optional[bool] = None) -> Any:
    """Build a ``sensor_msgs/Image`` (rgb8) from ``uint8 [H, W, 3]`` with one copy.

    ``stamp_ns`` is the header stamp in integer nanoseconds (the playback time shown).
    ``use_cv_bridge``: None = ``CvBridge.cv2_to_imgmsg`` where cv_bridge is importable, else
    numpy; True/False force one path. Both give the same message.
    """
    rgb = check_rgb(rgb)
    bridge = _bridge_for(use_cv_bridge)
    if bridge is not None:
        msg = bridge.cv2_to_imgmsg(rgb, encoding="rgb8")
        _set_header(msg.header, stamp_ns, frame_id)
        return msg
    from sensor_msgs.msg import Image

    msg = Image()
    _set_header(msg.header, stamp_ns, frame_id)
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = _byte_array(rgb)
    return msg


def compressed_image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str = "face",
                         quality: int = 85) -> Any:
    """Build a ``sensor_msgs/CompressedImage`` as image_transport's ``compressed`` plugin does.

    ``format`` is :data:`COMPRESSED_FORMAT` (``rgb8; jpeg compressed bgr8``); the data is a
    baseline colour JPEG at ``quality`` (pillow), so any JPEG decoder (image_transport's
    ``compressed`` subscriber, ``CvBridge.compressed_imgmsg_to_cv2``, a browser) reads it.
    cv_bridge's own ``cv2_to_compressed_imgmsg`` is not used here: it has no quality setting
    and writes ``format`` as the bare file extension.
    """
    from sensor_msgs.msg import CompressedImage

    msg = CompressedImage()
    _set_header(msg.header, stamp_ns, frame_id)
    msg.format = COMPRESSED_FORMAT
    msg.data = _byte_array(jpeg_bytes(rgb, quality))
    return msg


def compressed_is_jpeg(msg: Any) -> bool:
    """Whether a ``CompressedImage`` holds a JPEG (its format names jpeg, or the bytes do)."""
    fmt = str(msg.format).lower()
    if "jpeg" in fmt or "jpg" in fmt:
        return True
    head = bytes(memoryview(msg.data)[:3]) if len(msg.data) >= 3 else b""
    return not fmt.strip() and head == b"\xff\xd8\xff"


def rgb_from_compressed_msg(msg: Any, use_cv_bridge: Optional[bool] = None) -> np.ndarray:
    """Decode a ``CompressedImage`` (JPEG or PNG) to ``uint8 [H, W, 3]`` RGB.

    ``CvBridge.compressed_imgmsg_to_cv2(msg, "rgb8")`` where cv_bridge is importable, else
    pillow. Raises ValueError on bytes that are no image.
    """
    bridge = _bridge_for(use_cv_bridge)
    if bridge is not None:
        try:
            out = bridge.compressed_imgmsg_to_cv2(msg, "rgb8")
        except Exception as exc:  # noqa: BLE001 - CvBridgeError, cv2.error: one kind here
            raise ValueError(f"cannot decode CompressedImage ({msg.format!r}): {exc}") from None
        if out is None:
            raise ValueError(f"cannot decode CompressedImage ({msg.format!r})")
        return check_rgb(out)
    from PIL import Image as PILImage, UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(bytes(memoryview(msg.data).cast("B")))) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot decode CompressedImage ({msg.format!r}): {exc}") from None


def image_from_msg(msg: Any, use_cv_bridge: Optional[bool] = None) -> np.ndarray:
    """Return ``uint8 [H, W, 3]`` RGB from an rgb8/bgr8 ``sensor_msgs/Image``.

    ``CvBridge.imgmsg_to_cv2(msg, "rgb8")`` where cv_bridge is importable, else numpy (a view
    when rgb8). Raises ValueError on another encoding or a size that the data does not hold.
    """
    if msg.encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"unsupported image encoding {msg.encoding!r} (rgb8/bgr8 only)")
    if msg.step < msg.width * 3 or len(msg.data) < msg.height * msg.step:
        raise ValueError(f"image of {msg.width}x{msg.height}, step {msg.step} does not fit "
                         f"its {len(msg.data)} data bytes")
    bridge = _bridge_for(use_cv_bridge)
    if bridge is not None:
        return bridge.imgmsg_to_cv2(msg, "rgb8")
    rows = np.frombuffer(msg.data, dtype=np.uint8)[: msg.height * msg.step]
    img = rows.reshape(msg.height, msg.step)[:, : msg.width * 3].reshape(msg.height, msg.width, 3)
    return img[:, :, ::-1] if msg.encoding == "bgr8" else img


def expression_from_msg(msg: Any) -> ExpressionMapping:
    """Map an ``hri_msgs/msg/Expression`` (ROS4HRI) to an emotion and intensity.

    Raises ValueError (unknown name without valence/arousal, NaN) as
    :func:`gemo_ros.expressions.map_expression` does.
    """
    return map_expression(msg.expression, msg.valence, msg.arousal, msg.confidence)


def _set_header(header: Any, stamp_ns: int, frame_id: str) -> None:
    stamp_ns = max(int(stamp_ns), 0)
    header.stamp.sec = stamp_ns // 1_000_000_000
    header.stamp.nanosec = stamp_ns % 1_000_000_000
    header.frame_id = str(frame_id)


def stamp_to_s(stamp: Any) -> float:
    """Return a ``builtin_interfaces/Time`` as float seconds."""
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)
