"""A DDS peer of the avatar node for the demo and the benches: feeds it, records its face.

::

    probe = FaceProbe(domain_id, keep_images=True)
    probe.send_audio(pcm_bytes); probe.send_emotion("happy 0.7"); probe.send_info(16000)
    with probe.lock:
        probe.frames[-1].image, probe.states[-1]["fps"]
    probe.close()

It has its own rclpy context and executor thread, so it can live beside other ROS code in
one process. Frames are recorded with their arrival time (monotonic), stamp, a digest of
the pixels (to count distinct pictures) and, when ``keep_images``, the image itself.
"""

import json
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np


@dataclass
class ReceivedFrame:
    """One ``face/image`` as it arrived: monotonic arrival (s), stamp (s), digest, pixels."""

    arrival: float
    stamp: float
    digest: int
    width: int
    image: Optional[np.ndarray] = None


class FaceProbe:
    """Publish audio, audio_info and emotion; record face/image and face/state."""

    def __init__(self, domain: int, name: str = "gemo_face_probe",
                 keep_images: bool = True) -> None:
        import rclpy
        from audio_common_msgs.msg import AudioData, AudioInfo
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        self.rclpy = rclpy
        self.keep_images = keep_images
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(name, context=self.context)
        self.lock = threading.Lock()
        self.frames: List[ReceivedFrame] = []
        self.states: List[Dict[str, Any]] = []
        self.node.create_subscription(Image, "face/image", self._on_image,
                                      qos_profile_sensor_data)
        self.node.create_subscription(String, "face/state", self._on_state, 100)
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.audio = self.node.create_publisher(AudioData, "audio", reliable)
        self.info = self.node.create_publisher(AudioInfo, "audio_info", 10)
        self.emotion = self.node.create_publisher(String, "emotion", reliable)
        self._AudioData, self._AudioInfo, self._String = AudioData, AudioInfo, String
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, name="face-probe", daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - the context is shut down under it at the end
            pass

    def _on_image(self, msg: Any) -> None:
        from gemo_ros.ros_io import image_from_msg, stamp_to_s

        now = time.monotonic()
        data = bytes(msg.data[:: max(len(msg.data) // 4096, 1)])  # a sparse digest is enough
        image = np.array(image_from_msg(msg)) if self.keep_images else None  # copy: reused
        frame = ReceivedFrame(now, stamp_to_s(msg.header.stamp), zlib.crc32(data),
                              int(msg.width), image)
        with self.lock:
            self.frames.append(frame)

    def _on_state(self, msg: Any) -> None:
        try:
            state = json.loads(msg.data)
        except ValueError:
            return
        state["_arrival"] = time.monotonic()
        with self.lock:
            self.states.append(state)

    def now(self) -> float:
        """ROS time (s) of this probe's clock."""
        return self.node.get_clock().now().nanoseconds * 1e-9

    def send_audio(self, pcm: bytes) -> None:
        """Publish raw PCM bytes on ``audio``."""
        from gemo_ros.ros_io import _byte_array

        self.audio.publish(self._AudioData(data=_byte_array(pcm)))

    def send_emotion(self, text: str) -> None:
        """Publish an emotion command on ``emotion``."""
        self.emotion.publish(self._String(data=text))

    def send_info(self, rate: int, channels: int = 1, sample_format: str = "S16LE") -> None:
        """Publish an ``audio_info`` (raw PCM at ``rate`` Hz)."""
        self.info.publish(self._AudioInfo(channels=channels, sample_rate=rate,
                                          sample_format=sample_format, coding_format="wave"))

    def close(self) -> None:
        """Stop spinning and release the context."""
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)
