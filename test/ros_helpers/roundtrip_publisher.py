"""Publish known AudioData and String messages until killed.

The helper process of integration/test_ros_io_dds_roundtrip.py.
"""

import sys

import numpy as np
import rclpy
from audio_common_msgs.msg import AudioData
from std_msgs.msg import String

TEXT = "happy 0.7 — ünïcode ok"


def payload(seed: int) -> bytes:
    """Return the deterministic audio payload both processes agree on."""
    rng = np.random.default_rng(seed)
    return bytes(range(256)) + rng.integers(0, 256, 64_000, dtype=np.uint8).tobytes()


def main() -> None:
    """Publish once per 100 ms on `audio` and `emotion`."""
    seed = int(sys.argv[1])
    rclpy.init()
    node = rclpy.create_node("roundtrip_publisher")
    audio_pub = node.create_publisher(AudioData, "audio", 10)
    text_pub = node.create_publisher(String, "emotion", 10)
    data = payload(seed)

    def tick() -> None:
        audio_pub.publish(AudioData(data=data))
        text_pub.publish(String(data=TEXT))

    node.create_timer(0.1, tick)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
