"""Run-time parameters of avatar_node in the rclpy style: validate in on-set, apply in post-set.

The node runs in this process on a private domain with a missing avatar path, so the
engine uses the fast fallback head; no DDS peer is needed.
"""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("audio_common_msgs.msg")

from rclpy.parameter import Parameter  # noqa: E402

from gemo_ros.node import AvatarNode  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture
def node(ros_domain):
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(ros_domain["ROS_DOMAIN_ID"]))
    n = AvatarNode(context=context, parameter_overrides=[
        Parameter("avatar", value="/nonexistent/avatar.safetensors"),
        Parameter("device", value="cpu"), Parameter("width", value=32)])
    yield n
    n.shutdown()
    n.destroy_node()
    rclpy.try_shutdown(context=context)


def test_a_rejected_batch_changes_nothing(node):
    before_format = node._audio_format
    before_bg = node.get_parameter("background").value
    node.runtime.inbox.take()
    result = node.set_parameters_atomically([
        Parameter("audio.sample_rate", value=22050),        # fine on its own
        Parameter("camera.yaw_deg", value=12.0),            # fine on its own
        Parameter("background", value=[1, 2, 999]),         # refused
    ])
    assert not result.successful and "background" in result.reason
    assert node._audio_format == before_format
    assert node.get_parameter("audio.sample_rate").value == 16000
    assert node.get_parameter("background").value == before_bg
    assert node.runtime.inbox.take()[2] == {}


def test_an_accepted_batch_is_applied_after_it_is_set(node):
    node.runtime.inbox.take()
    result = node.set_parameters_atomically([
        Parameter("audio.sample_rate", value=22050), Parameter("camera.yaw_deg", value=12.0),
        Parameter("idle.blink_interval_s", value=2.0), Parameter("quality.adaptive", value=False),
        Parameter("render_ahead", value=False),
    ])
    assert result.successful
    assert node._audio_format[0] == 22050
    settings = node.runtime.inbox.take()[2]
    assert settings["camera_yaw_deg"] == 12.0 and settings["idle"] == {"blink_interval_s": 2.0}
    assert node.runtime.quality.adaptive is False
    assert node.runtime.config.render_ahead is False


def test_out_of_range_and_bad_format_values_are_refused_with_a_reason(node):
    bad = node.set_parameters([Parameter("audio.sample_format", value="MP3")])[0]
    assert not bad.successful and "MP3" in bad.reason
    ranged = node.set_parameters([Parameter("camera.yaw_deg", value=400.0)])[0]
    assert not ranged.successful


class _Expression:
    """The fields of hri_msgs/msg/Expression (the test does not need the package)."""

    def __init__(self, expression="", valence=0.0, arousal=0.0, confidence=0.0):
        self.expression, self.valence = expression, valence
        self.arousal, self.confidence = arousal, confidence


def _record_emotions(node, monkeypatch):
    got = []
    monkeypatch.setattr(node.runtime.inbox, "put_emotion",
                        lambda name, intensity, transition, t: got.append((name, intensity)))
    return got


def test_a_ros4hri_expression_becomes_an_emotion_command(node, monkeypatch):
    got = _record_emotions(node, monkeypatch)
    node._on_expression(_Expression("furious", confidence=0.8))
    node._on_expression(_Expression("", valence=-0.6, arousal=-0.6))
    assert got[0] == ("angry", pytest.approx(0.8))
    assert got[1][0] == "sad"


def test_an_unknown_or_broken_expression_is_a_warning_and_the_node_keeps_going(
        node, monkeypatch):
    got = _record_emotions(node, monkeypatch)
    warnings = []
    monkeypatch.setattr(node, "_warn", lambda key, message, error=False: warnings.append(message))
    node._on_expression(_Expression("grumpy"))
    node._on_expression(_Expression("happy", arousal=float("nan")))
    node._on_expression(object())  # not an Expression at all
    node._on_expression(_Expression("happy"))
    assert got == [("happy", pytest.approx(0.7))]
    assert "unknown expression 'grumpy'" in warnings[0]
    assert "arousal must be finite" in warnings[1]
    assert "_on_expression failed" in warnings[2]


def test_the_expression_topic_is_subscribed_only_where_hri_msgs_exists(node):
    topics = {s.topic_name for s in node.subscriptions}
    try:
        import hri_msgs.msg  # noqa: F401
    except ImportError:
        assert "/robot_face/expression" not in topics
    else:
        assert "/robot_face/expression" in topics


@pytest.mark.slow
def test_ctrl_c_exits_0_with_the_heap_frozen_for_a_fast_teardown(ros_domain, tmp_path):
    """main() freezes the heap on its way out (measured: Ctrl-C to exit 3 s -> 0.5 s).

    Without it the interpreter's teardown runs full collections over the ~460k objects of
    torch, numba and the models; an atexit probe (atexit runs before that teardown) reads
    how many objects main() froze.
    """
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent("""
        import atexit, gc, sys
        from gemo_ros import node
        atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count(), flush=True))
        sys.exit(node.main())
    """))
    log = tmp_path / "node.log"
    cmd = [sys.executable, str(probe), "--ros-args", "-p", "device:=cpu", "-p", "width:=32",
           "-p", "threads:=1", "-p", "avatar:=/nonexistent/avatar.safetensors"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"))
    try:
        end = time.monotonic() + 240.0
        while "publishing" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < end, log.read_text()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "Traceback" not in text and "threads still busy" not in text, text
    frozen = int(re.search(r"frozen at exit: (\d+)", text).group(1))
    assert frozen > 100_000, text  # torch alone holds more than that
