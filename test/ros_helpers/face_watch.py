"""A DDS observer of one avatar_node in any namespace: its face/image frames and face/state.

The tests of the robot commands (``ros2 launch ... namespace:=...``, a colcon install
space) drive the node with the ROS 2 command line; this only watches what it publishes.
"""

import json
import threading
import time

import numpy as np

from gemo_ros.ros_io import image_from_msg


class FaceWatch:
    """Keep the last frames of ``<namespace>/face/image`` and every ``face/state``."""

    def __init__(self, domain: int, namespace: str = "/", keep: int = 50) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        self.rclpy = rclpy
        self.keep = keep
        self.lock = threading.Lock()
        self.frames = []   # (monotonic arrival, HxWx3 uint8)
        self.count = 0
        self.states = []   # parsed face/state JSON
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("gemo_test_face_watch", context=self.context)
        base = namespace.rstrip("/")
        self.node.create_subscription(Image, f"{base}/face/image", self._on_image,
                                      qos_profile_sensor_data)
        self.node.create_subscription(String, f"{base}/face/state", self._on_state, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, name="face-watch", daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - the context is shut down under it at the end
            pass

    def _on_image(self, msg) -> None:
        if msg.encoding != "rgb8":
            raise ValueError(f"face/image encoding {msg.encoding!r}, expected rgb8")
        image = np.array(image_from_msg(msg))  # a copy, not a view of the message
        with self.lock:
            self.frames = (self.frames + [(time.monotonic(), image)])[-self.keep:]
            self.count += 1

    def _on_state(self, msg) -> None:
        try:
            state = json.loads(msg.data)
        except ValueError:
            return
        with self.lock:
            self.states.append(state)

    def wait_frames(self, n: int, timeout: float) -> list:
        """Return the next ``n`` frames (arriving after this call) as arrays."""
        with self.lock:
            start = self.count
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if self.count >= start + n:
                    return [img for _, img in self.frames[-n:]]
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {n} frames "
                             f"({self.count - start} came)")

    def wait_state(self, predicate, timeout: float, what: str) -> dict:
        """Return the first face/state (from now on) for which ``predicate`` is true."""
        with self.lock:
            seen = len(self.states)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                for state in self.states[seen:]:
                    if predicate(state):
                        return state
                seen = len(self.states)
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for face/state {what}")

    def close(self) -> None:
        """Stop spinning and release the context."""
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)
