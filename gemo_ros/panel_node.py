"""The ``face_panel`` (web page) and ``face_window`` (fullscreen SDL) executables.

Each is a small rclpy node that subscribes to the avatar's image and hands every frame to a
:class:`gemo_ros.panel.frames.FrameHub`; the display itself (:mod:`gemo_ros.panel.web`,
:mod:`gemo_ros.panel.window`) knows nothing of ROS.

Parameters (both): ``image_topic`` (default ``face/image``, relative: a namespace moves it),
``transport`` (``raw``: sensor_msgs/Image on the topic; ``compressed``: CompressedImage on
``<image_topic>/compressed``, image_transport's naming; JPEGs then go to the browser as they
are), ``stale_s`` (seconds without frames before "waiting for ..." shows).
``face_panel``: ``host`` (127.0.0.1: this machine only), ``port`` (8080), ``jpeg_quality``.
``face_window``: ``fullscreen`` (true), ``window_width``/``window_height`` (when not).

Bad messages (an unsupported encoding, data that does not fit the size, a corrupt JPEG)
are reported in one rate-limited warning and skipped; the display keeps the last good frame.
One single-threaded executor: the callbacks only convert and store. The web panel serves
HTTP on its own threads; the window draws on the main thread (SDL wants its events there),
spinning the executor between frames.
"""

import logging
import signal
from typing import Any, Callable, Dict, List, Optional

import rclpy
from rcl_interfaces.msg import IntegerRange, ParameterDescriptor, FloatingPointRange
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data

from gemo_ros import ros_io
from gemo_ros.log_limiter import LogLimiter
from gemo_ros.panel.frames import FrameHub

TRANSPORTS = ("raw", "compressed")

#: name -> (default, description, (lo, hi) or None), shared by both executables
COMMON_PARAMETERS: Dict[str, Any] = {
    "image_topic": ("face/image", "image topic of avatar_node (sensor_msgs/Image)", None),
    "transport": ("raw", "raw: Image on image_topic; compressed: CompressedImage on "
                  "<image_topic>/compressed", None),
    "stale_s": (2.0, "seconds without a frame before the display says it is waiting",
                (0.1, 60.0)),
}
PANEL_PARAMETERS: Dict[str, Any] = {
    "host": ("127.0.0.1", "address the web panel binds; 0.0.0.0 = every interface", None),
    "port": (8080, "TCP port of the web panel; 0 = any free port", (0, 65535)),
    "jpeg_quality": (85, "JPEG quality of raw frames sent to the browser", (1, 100)),
}
WINDOW_PARAMETERS: Dict[str, Any] = {
    "fullscreen": (True, "cover the whole display (borderless, native resolution)", None),
    "window_width": (800, "window width in px when not fullscreen", (1, 16384)),
    "window_height": (600, "window height in px when not fullscreen", (1, 16384)),
}


def _descriptor(default: Any, description: str, bounds: Optional[tuple]) -> ParameterDescriptor:
    desc = ParameterDescriptor(description=description, read_only=True)
    if bounds is not None:
        if isinstance(default, int) and not isinstance(default, bool):
            desc.integer_range = [IntegerRange(from_value=bounds[0], to_value=bounds[1], step=1)]
        else:
            desc.floating_point_range = [FloatingPointRange(from_value=float(bounds[0]),
                                                            to_value=float(bounds[1]))]
    return desc


class FaceViewerNode(Node):
    """Subscribe to the face image and put each frame into :attr:`hub`.

    ``extra`` declares the executable's own parameters (:data:`PANEL_PARAMETERS` or
    :data:`WINDOW_PARAMETERS`).
    """

    def __init__(self, name: str, extra: Dict[str, Any], **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        for key, (default, description, bounds) in {**COMMON_PARAMETERS, **extra}.items():
            self.declare_parameter(key, default, _descriptor(default, description, bounds))
        self._limit = LogLimiter(3.0)
        transport = str(self.param("transport"))
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
        quality = int(self.param("jpeg_quality")) if "jpeg_quality" in extra else 85
        self.hub = FrameHub(jpeg_quality=quality)
        topic = str(self.param("image_topic"))
        from sensor_msgs.msg import CompressedImage, Image

        if transport == "compressed":
            topic = topic.rstrip("/") + "/" + ros_io.COMPRESSED_SUFFIX
            self.create_subscription(CompressedImage, topic, self._on_compressed,
                                     qos_profile_sensor_data)
        else:
            self.create_subscription(Image, topic, self._on_image, qos_profile_sensor_data)
        self.topic = self.resolve_topic_name(topic)

    def param(self, name: str) -> Any:
        """Return a parameter's value."""
        return self.get_parameter(name).value

    def _warn(self, key: str, message: str) -> None:
        skipped = self._limit(key)
        if skipped is None:
            return
        if skipped:
            message += f" ({skipped} more like this since the last report)"
        self.get_logger().warning(message)

    def _on_image(self, msg: Any) -> None:
        try:
            self.hub.put_rgb(ros_io.image_from_msg(msg))
        except Exception as exc:  # noqa: BLE001 - a bad message must not stop the display
            self._warn("image", f"frame on {self.topic} skipped: {type(exc).__name__}: {exc}")

    def _on_compressed(self, msg: Any) -> None:
        try:
            if ros_io.compressed_is_jpeg(msg):
                self.hub.put_jpeg(bytes(memoryview(msg.data).cast("B")))
            else:  # PNG etc.: decode here, the browser gets JPEG
                self.hub.put_rgb(ros_io.rgb_from_compressed_msg(msg))
        except Exception as exc:  # noqa: BLE001 - a bad message must not stop the display
            self._warn("compressed", f"frame on {self.topic} skipped: "
                       f"{type(exc).__name__}: {exc}")


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _run(name: str, args: Optional[List[str]],
         body: Callable[[FaceViewerNode, SingleThreadedExecutor], None],
         extra: Dict[str, Any]) -> int:
    """Init rclpy, build the node, run ``body`` until Ctrl-C/SIGTERM; exit code 0 when clean."""
    from rclpy.signals import SignalHandlerOptions

    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    node = executor = None
    code = 0
    try:
        node = FaceViewerNode(name, extra)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        body(node, executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # noqa: BLE001 - a start-up error: one clear line, exit 1
        logging.getLogger(name).error("%s stopped: %s: %s", name, type(exc).__name__, exc)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup
        if node is not None:
            node.hub.close()
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


def _serve(node: FaceViewerNode, executor: SingleThreadedExecutor) -> None:
    from gemo_ros.panel.web import WebPanel

    panel = WebPanel(node.hub, host=node.param("host"), port=node.param("port"),
                     topic=node.topic, stale_s=node.param("stale_s")).start()
    node.get_logger().info(f"face panel on {panel.url} showing {node.topic}")
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    finally:
        panel.stop()


def _show(node: FaceViewerNode, executor: SingleThreadedExecutor) -> None:
    from gemo_ros.panel.window import FaceWindow, run

    window = FaceWindow(node.hub, fullscreen=node.param("fullscreen"),
                        size=(node.param("window_width"), node.param("window_height")),
                        topic=node.topic, stale_s=node.param("stale_s"))
    node.get_logger().info(f"face window ({'fullscreen' if window.fullscreen else 'windowed'})"
                           f" showing {node.topic}; Esc or q quits")
    run(window, spin_once=lambda: executor.spin_once(timeout_sec=0.005))


def panel_main(args: Optional[List[str]] = None) -> int:
    """``face_panel``: serve the face page (http://127.0.0.1:8080/ by default) until Ctrl-C."""
    return _run("face_panel", args, _serve, PANEL_PARAMETERS)


def window_main(args: Optional[List[str]] = None) -> int:
    """``face_window``: show the face full screen on the attached display until Esc/q/Ctrl-C."""
    return _run("face_window", args, _show, WINDOW_PARAMETERS)


if __name__ == "__main__":
    import sys

    mains = {"panel": panel_main, "window": window_main}
    if len(sys.argv) < 2 or sys.argv[1] not in mains:
        raise SystemExit("usage: python -m gemo_ros.panel_node {panel|window} [--ros-args ...]")
    raise SystemExit(mains[sys.argv.pop(1)]())
