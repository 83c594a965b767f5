"""The tests' DDS peer of avatar_node: the package's FaceProbe plus what the tests inspect.

:class:`gemo_ros.commands.face_probe.FaceProbe` (the one peer of ``gemo demo`` and
``bench/soak.py``) feeds the node and records its frames and state; the tests also need
the raw ``face/image`` messages, the JPEGs on ``face/image/compressed``, stamped audio,
the parameter service and a way to wait for a condition.
"""

import time

from gemo_ros.commands.face_probe import FaceProbe


class Listener(FaceProbe):
    """Record face/image (raw messages), face/image/compressed and face/state of the node."""

    def __init__(self, domain: int) -> None:
        from audio_common_msgs.msg import AudioDataStamped
        from rcl_interfaces.srv import SetParameters
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage

        self.images = []   # (monotonic arrival, sensor_msgs/Image); filled from the first frame
        self.jpegs = []
        super().__init__(domain, name="gemo_test_listener", keep_images=False)
        self.node.create_subscription(CompressedImage, "face/image/compressed",
                                      self.jpegs.append, qos_profile_sensor_data)
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        # A history of 100, not the probe's 1000: the tests' bursts of 1000 messages must
        # not all queue up in front of the inputs that follow them.
        for topic, attr in (("audio", "audio"), ("emotion", "emotion")):
            old = getattr(self, attr)
            self.node.destroy_publisher(old)
            setattr(self, attr, self.node.create_publisher(old.msg_type, topic, reliable))
        self.audio_stamped = self.node.create_publisher(AudioDataStamped, "audio_stamped",
                                                        reliable)
        self.audio_info = self.info
        self.params = self.node.create_client(SetParameters, "/avatar_node/set_parameters")

    def _on_image(self, msg) -> None:
        super()._on_image(msg)
        with self.lock:
            self.images.append((time.monotonic(), msg))

    def wait_for(self, predicate, timeout: float, what: str):
        """Return the first truthy ``predicate()`` (called under the lock) within ``timeout``."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                result = predicate()
            if result:
                return result
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def count_images(self) -> int:
        with self.lock:
            return len(self.images)

    def frames_keep_coming(self, n: int = 10, timeout: float = 30.0) -> None:
        start = self.count_images()
        self.wait_for(lambda: len(self.images) >= start + n, timeout, f"{n} more frames")

    def wait_subscribers(self, publisher, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while publisher.get_subscription_count() == 0 and time.monotonic() < end:
            time.sleep(0.05)

    def set_parameter(self, name: str, value) -> bool:
        """Set one node parameter (a double, or a list of ints); return whether it was taken."""
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        assert self.params.wait_for_service(timeout_sec=20.0)
        pv = ParameterValue()
        if isinstance(value, list):
            pv.type, pv.integer_array_value = ParameterType.PARAMETER_INTEGER_ARRAY, value
        else:
            pv.type, pv.double_value = ParameterType.PARAMETER_DOUBLE, float(value)
        future = self.params.call_async(SetParameters.Request(
            parameters=[Parameter(name=name, value=pv)]))
        end = time.monotonic() + 20.0
        while not future.done() and time.monotonic() < end:
            time.sleep(0.02)
        return future.result().results[0].successful
