"""A real two-process DDS round trip of the message types the node uses."""

import subprocess
import sys
import time

import pytest

from ros_helpers.roundtrip_publisher import payload, TEXT
from test.conftest import ROOT

pytestmark = pytest.mark.ros


def test_audio_bytes_and_text_arrive_intact_from_another_process(ros_domain: dict) -> None:
    import rclpy
    from audio_common_msgs.msg import AudioData
    from std_msgs.msg import String

    seed = 1234
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "test" / "ros_helpers" / "roundtrip_publisher.py"), str(seed)],
        env=ros_domain, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    got = {}
    rclpy.init()
    try:
        node = rclpy.create_node("roundtrip_subscriber")
        node.create_subscription(AudioData, "audio", lambda m: got.setdefault("audio", m), 10)
        node.create_subscription(String, "emotion", lambda m: got.setdefault("text", m), 10)
        deadline = time.monotonic() + 30.0
        while len(got) < 2 and time.monotonic() < deadline and proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.1)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode(errors="replace")
    assert set(got) == {"audio", "text"}, f"nothing arrived over DDS; publisher said:\n{out}"
    assert bytes(got["audio"].data) == payload(seed)
    assert got["text"].data == TEXT
