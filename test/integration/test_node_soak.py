"""The node under live load over real DDS, and `gemo demo` run again and again.

* a one-minute version of ``bench/soak.py``: live speech in 40 ms chunks, an emotion every
  3 s, bad-input bursts; fails on any gap between frames over 2 s, or when Ctrl-C does not
  stop the node;
* Ctrl-C while the node is still loading its models: a clean exit, not an abort;
* ``gemo demo`` three times in a row (the issue: 3 of 6 runs wrote a frozen video), each
  must exit 0 with a moving video (the demo's own verdict, ``check_motion``, is specified in
  test/commands/test_demo.py).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from test.conftest import ROOT


@pytest.mark.ros
@pytest.mark.timeout(600)
def test_one_minute_soak_has_no_gap_over_two_seconds_and_stops_on_ctrl_c(tmp_path, ros_env):
    pytest.importorskip("rclpy")
    pytest.importorskip("audio_common_msgs.msg")
    out = tmp_path / "soak.json"
    cmd = [sys.executable, os.path.join(ROOT, "bench", "soak.py"), "--minutes", "1",
           "--size", "64", "--burst-every", "20", "--max-gap", "2", "--max-stop", "10",
           "--node-log", str(tmp_path / "node.log"), "--json", str(out),
           "--domain-id", str(int(ros_env["ROS_DOMAIN_ID"]) + 1)]
    proc = subprocess.run(cmd, env=ros_env, capture_output=True, text=True, timeout=540)
    report = json.loads(out.read_text()) if out.exists() else {}
    detail = proc.stdout[-3000:] + proc.stderr[-2000:] + (tmp_path / "node.log").read_text()[-3000:]
    assert proc.returncode == 0, detail
    assert report["max_gap_s"] <= 2.0 and report["bursts"] >= 2, detail
    # stops on Ctrl-C (the 2 s figure is the benchmark's; a loaded CI machine gets slack)
    assert report["ctrl_c_s"] is not None and report["ctrl_c_s"] <= 10.0, detail
    assert report["distinct_frames"] > 0.5 * report["frames"] > 0, detail
    assert report["watchdog_stalls"] == 0, detail
    log = (tmp_path / "node.log").read_text()
    for phrase in ("not a whole number", "unknown emotion 'bored'", "invalid JSON",
                   "must be finite", "sample_rate 0"):
        assert phrase in log, phrase


@pytest.mark.ros
@pytest.mark.timeout(900)
def test_demo_run_three_times_in_a_row_records_a_moving_face_each_time(tmp_path, ros_env):
    pytest.importorskip("rclpy")
    pytest.importorskip("audio_common_msgs.msg")
    for k in range(3):
        out = tmp_path / f"run{k}"
        cmd = [sys.executable, "-m", "gemo_ros.cli", "demo", "--repeat", "1", "--size", "64",
               "--video-min-size", "0", "--out-dir", str(out),
               "--domain-id", str(int(ros_env["ROS_DOMAIN_ID"]) + 2 + k)]
        proc = subprocess.run(cmd, env=ros_env, capture_output=True, text=True, timeout=280)
        text = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"run {k}:\n{text[-4000:]}"
        assert (out / "demo.mp4").stat().st_size > 10_000
        m = re.search(r"distinct frames: (\d+) of (\d+)", text)
        assert m, text[-2000:]
        distinct, total = int(m.group(1)), int(m.group(2))
        assert total > 50 and distinct > 0.5 * total, f"run {k}: {m.group(0)}"


@pytest.mark.ros
@pytest.mark.timeout(300)
def test_ctrl_c_while_the_models_load_exits_cleanly(tmp_path, ros_env):
    pytest.importorskip("rclpy")
    pytest.importorskip("audio_common_msgs.msg")
    log_path = tmp_path / "node.log"
    env = dict(ros_env, ROS_DOMAIN_ID=str(int(ros_env["ROS_DOMAIN_ID"]) + 9))
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gemo_ros.node", "--ros-args",
                                 "-p", "width:=32", "-p", "device:=cpu"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 200
        while "loaded avatar" not in log_path.read_text():  # mid start-up: models loading
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log_path.read_text()
    assert code == 0, text[-3000:]
    assert "terminate called" not in text and "Traceback" not in text, text[-3000:]
