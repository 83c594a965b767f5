"""face_window end to end, offscreen: images over DDS are drawn letterboxed in the window.

SDL's ``dummy`` video driver draws into memory, so the window's pixels can be read back.
The window's node runs in this process (its own context); a publisher in another context
sends frames over DDS. The ``face_window`` executable is also started as a process and
stopped with Ctrl-C.
"""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
rclpy = pytest.importorskip("rclpy")
pytest.importorskip("pygame")

import rclpy.executors  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from gemo_ros import ros_io  # noqa: E402
from gemo_ros.panel.window import FaceWindow  # noqa: E402
from gemo_ros.panel_node import WINDOW_PARAMETERS, FaceViewerNode  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]
WINDOW_CODE = "from gemo_ros.panel_node import window_main; raise SystemExit(window_main())"


def test_frames_published_over_dds_are_drawn_in_the_window(ros_domain) -> None:
    domain = int(ros_domain["ROS_DOMAIN_ID"])
    ctx_view, ctx_pub = rclpy.Context(), rclpy.Context()
    for c in (ctx_view, ctx_pub):
        rclpy.init(context=c, domain_id=domain)
    node = FaceViewerNode("face_window_test", WINDOW_PARAMETERS, context=ctx_view,
                          parameter_overrides=[Parameter("image_topic", value="win_test/image")])
    executor = rclpy.executors.SingleThreadedExecutor(context=ctx_view)
    executor.add_node(node)
    pub_node = rclpy.create_node("win_test_pub", context=ctx_pub)
    pub = pub_node.create_publisher(Image, "win_test/image", qos_profile_sensor_data)
    window = FaceWindow(node.hub, fullscreen=False, size=(320, 240), topic=node.topic).open()
    rgb = np.zeros((60, 60, 3), np.uint8)
    rgb[...] = (40, 200, 90)
    rgb[:30, :30] = (250, 250, 250)
    try:
        assert not pytest.importorskip("pygame").mouse.get_visible()
        end = time.monotonic() + 30.0
        while window.drawn_seq == 0 and time.monotonic() < end:
            pub.publish(ros_io.image_msg(rgb, 0))
            executor.spin_once(timeout_sec=0.05)
            assert window.step()
        assert window.drawn_seq > 0, "no frame reached the window"
        # 60x60 in 320x240: a 240x240 square at x = 40..279
        assert window.pixel(20, 120) == (0, 0, 0) and window.pixel(300, 120) == (0, 0, 0)
        assert window.pixel(200, 200) == (40, 200, 90)
        assert window.pixel(60, 20) == (250, 250, 250)
    finally:
        window.close()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        pub_node.destroy_node()
        for c in (ctx_view, ctx_pub):
            rclpy.try_shutdown(context=c)


def test_the_face_window_executable_runs_offscreen_and_ctrl_c_ends_it_cleanly(tmp_path) -> None:
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(20, 99)), PYTHONUNBUFFERED="1",
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", SDL_VIDEODRIVER="dummy")
    log = tmp_path / "face_window.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", WINDOW_CODE, "--ros-args",
                                 "-p", "fullscreen:=false"], stdout=out,
                                stderr=subprocess.STDOUT, env=env)
    try:
        end = time.monotonic() + 60.0
        while "Esc or q quits" not in log.read_text() and time.monotonic() < end:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        assert "face window (windowed) showing /face/image" in log.read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in log.read_text()
