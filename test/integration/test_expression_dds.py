"""ROS4HRI expressions over real DDS: hri_msgs/Expression in, face/state follows.

avatar_node runs as its own process on a private domain with ``expression_topic`` set;
this process publishes real ``hri_msgs/msg/Expression`` messages and reads face/state.
"""

import os
import random
import subprocess
import sys
import time

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("audio_common_msgs.msg")
try:
    from hri_msgs.msg import Expression
except ImportError:
    pytest.skip("hri_msgs is not built in this environment (interfaces/hri_msgs, issue 15)",
                allow_module_level=True)

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from gemo_ros.commands.face_probe import FaceProbe  # noqa: E402
from ros_helpers.process import stop_process  # noqa: E402
from test.conftest import ROOT  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]
TOPIC = "/gemo_test/robot_face/expression"


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    domain = random.randint(20, 99)
    log = tmp_path_factory.mktemp("expr") / "avatar_node.log"
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS="1", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    cmd = [sys.executable, "-m", "gemo_ros.node", "--ros-args", "--params-file",
           str(ROOT / "config" / "avatar.yaml"), "-p", "width:=48", "-p", "fps:=10.0",
           "-p", "device:=cpu", "-p", "threads:=1", "-p", f"expression_topic:={TOPIC}",
           "-p", "emotion.default_transition_s:=0.0"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    probe = FaceProbe(domain, name="expression_test", keep_images=False)
    pub = probe.node.create_publisher(
        Expression, TOPIC, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    try:
        _wait(probe, lambda: probe.states, 180.0, "face/state", log)
        end = time.monotonic() + 30.0
        while pub.get_subscription_count() == 0 and time.monotonic() < end:
            time.sleep(0.05)
        yield probe, pub, log
    finally:
        probe.close()
        stop_process(proc)


def _wait(probe, predicate, timeout, what, log):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with probe.lock:
            if predicate():
                return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()}")


def _send(pub, name, valence=0.0, arousal=0.0, confidence=0.0):
    pub.publish(Expression(expression=name, valence=valence, arousal=arousal,
                           confidence=confidence))


def _latest(probe):
    """The last face/state (call with probe.lock held, as _wait's predicates are)."""
    return probe.states[-1] if probe.states else {}


def test_a_named_expression_sets_the_emotion_and_intensity(running):
    probe, pub, log = running
    _send(pub, "furious", confidence=1.0)
    _wait(probe, lambda: _latest(probe).get("emotion") == "angry"
          and _latest(probe).get("intensity", 0) > 0.9, 30.0, "angry on face/state", log)


def test_valence_and_arousal_alone_set_the_emotion(running):
    probe, pub, log = running
    _send(pub, "", valence=0.9, arousal=0.3)
    _wait(probe, lambda: _latest(probe).get("emotion") == "happy", 30.0,
          "happy on face/state", log)


def test_an_unknown_expression_is_a_warning_and_the_face_keeps_going(running):
    probe, pub, log = running
    _send(pub, "amazed")
    _wait(probe, lambda: _latest(probe).get("emotion") == "surprised", 30.0,
          "surprised on face/state", log)
    _send(pub, "grumpy")
    end = time.monotonic() + 30.0
    while "unknown expression 'grumpy'" not in log.read_text() and time.monotonic() < end:
        time.sleep(0.1)
    assert "unknown expression 'grumpy'" in log.read_text()
    with probe.lock:
        n = len(probe.states)
    _wait(probe, lambda: len(probe.states) > n + 5, 30.0, "more face/state", log)
    with probe.lock:
        assert _latest(probe)["emotion"] == "surprised"
