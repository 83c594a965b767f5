"""The face_panel / face_window node layer (gemo_ros/panel_node.py) over real DDS, in-process.

A publisher in its own rclpy context sends images on the panel node's topic; the node must
put each good frame into its hub and skip bad ones with a warning.
"""

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

import rclpy.executors  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from gemo_ros import ros_io  # noqa: E402
from gemo_ros.panel_node import (PANEL_PARAMETERS, WINDOW_PARAMETERS,  # noqa: E402
                                 FaceViewerNode)

pytestmark = pytest.mark.ros


class _Pair:
    """The viewer node and a publisher node, each in its own context on one domain."""

    def __init__(self, domain: int, transport: str, extra=PANEL_PARAMETERS) -> None:
        self.contexts = [rclpy.Context(), rclpy.Context()]
        for c in self.contexts:
            rclpy.init(context=c, domain_id=domain)
        self.viewer = FaceViewerNode("face_panel_test", extra, context=self.contexts[0],
                                     parameter_overrides=[
                                         Parameter("transport", value=transport),
                                         Parameter("image_topic", value="panel_test/image")])
        self.pub_node = rclpy.create_node("panel_test_pub", context=self.contexts[1])
        kind, topic = ((CompressedImage, "panel_test/image/compressed")
                       if transport == "compressed" else (Image, "panel_test/image"))
        self.pub = self.pub_node.create_publisher(kind, topic, qos_profile_sensor_data)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.contexts[0])
        self.executor.add_node(self.viewer)
        self.warnings = []
        self.viewer._warn = lambda key, message: self.warnings.append(message)

    def send_until(self, msg, predicate, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.pub.publish(msg)
            self.executor.spin_once(timeout_sec=0.05)
            if predicate():
                return
        raise AssertionError("the viewer never got the message")

    def close(self) -> None:
        self.viewer.hub.close()
        self.executor.shutdown(timeout_sec=1.0)
        self.viewer.destroy_node()
        self.pub_node.destroy_node()
        for c in self.contexts:
            rclpy.try_shutdown(context=c)


@pytest.fixture()
def pair_factory(ros_domain):
    made = []

    def make(transport: str, extra=PANEL_PARAMETERS) -> _Pair:
        made.append(_Pair(int(ros_domain["ROS_DOMAIN_ID"]), transport, extra))
        return made[-1]

    yield make
    for p in made:
        p.close()


def _rgb() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (12, 16, 3), dtype=np.uint8)


def test_raw_images_reach_the_hub_pixel_for_pixel(pair_factory) -> None:
    pair = pair_factory("raw")
    assert pair.viewer.topic.endswith("/panel_test/image")
    rgb = _rgb()
    pair.send_until(ros_io.image_msg(rgb, 0), lambda: pair.viewer.hub.latest() is not None)
    np.testing.assert_array_equal(pair.viewer.hub.latest().rgb(), rgb)


def test_compressed_jpegs_reach_the_hub_byte_for_byte(pair_factory) -> None:
    pair = pair_factory("compressed")
    assert pair.viewer.topic.endswith("/panel_test/image/compressed")
    msg = ros_io.compressed_image_msg(_rgb(), 0, quality=80)
    pair.send_until(msg, lambda: pair.viewer.hub.latest() is not None)
    assert pair.viewer.hub.latest().jpeg() == bytes(msg.data)


def test_a_bad_image_is_skipped_with_a_warning_and_the_last_good_frame_stays(
        pair_factory) -> None:
    pair = pair_factory("raw", WINDOW_PARAMETERS)
    good = ros_io.image_msg(_rgb(), 0)
    pair.send_until(good, lambda: pair.viewer.hub.latest() is not None)
    seq = pair.viewer.hub.latest().seq
    bad = ros_io.image_msg(_rgb(), 0)
    bad.encoding = "mono16"
    pair.send_until(bad, lambda: pair.warnings)
    assert "mono16" in pair.warnings[0] and "skipped" in pair.warnings[0]
    short = ros_io.image_msg(_rgb(), 0)
    short.height = 500
    pair.warnings.clear()
    pair.send_until(short, lambda: pair.warnings)
    assert "does not fit" in pair.warnings[0]
    assert pair.viewer.hub.latest().seq == seq


def test_a_corrupt_jpeg_is_skipped_with_a_warning(pair_factory) -> None:
    pair = pair_factory("compressed")
    pair.send_until(CompressedImage(format="rgb8; jpeg compressed bgr8", data=b"garbage"),
                    lambda: pair.warnings)
    assert "not JPEG data" in pair.warnings[0]
    assert pair.viewer.hub.latest() is None


def test_an_unknown_transport_is_refused(ros_domain) -> None:
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_domain["ROS_DOMAIN_ID"]))
    try:
        with pytest.raises(ValueError, match="transport must be one of"):
            FaceViewerNode("face_panel_bad", PANEL_PARAMETERS, context=context,
                           parameter_overrides=[Parameter("transport", value="theora")])
    finally:
        rclpy.try_shutdown(context=context)
