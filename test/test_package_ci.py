"""The README's commands, .ci/run and the package metadata agree."""

import os
import re
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(path: str) -> str:
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def test_ci_runs_the_readme_test_command_exactly() -> None:
    ci_lines = [ln.strip() for ln in _read(".ci/run").splitlines()
                if ln.strip() and not ln.startswith("#") and "pytest" in ln]
    assert len(ci_lines) == 1
    readme_block = re.search(r"```bash\n(.*?)```", _read("README.md"), re.S).group(1)
    assert ci_lines[0] in readme_block.splitlines()


def test_package_xml_declares_the_runtime_dependencies() -> None:
    root = ET.fromstring(_read("package.xml"))
    assert root.get("format") == "3"
    assert root.findtext("name") == "gemo_ros"
    deps = {e.text for e in root.iter("exec_depend")} | {e.text for e in root.iter("depend")}
    for dep in ("rclpy", "std_msgs", "sensor_msgs", "audio_common_msgs", "cv_bridge",
                "launch", "launch_ros", "python3-numpy"):
        assert dep in deps
    assert root.find("export/build_type").text == "ament_python"


def test_interface_definitions_match_the_released_audio_common_msgs() -> None:
    msg = "interfaces/audio_common_msgs/msg/"
    assert _read(msg + "AudioData.msg").split() == ["uint8[]", "data"]
    assert _read(msg + "AudioDataStamped.msg").split() == [
        "std_msgs/Header", "header", "AudioData", "audio"]
    fields = [ln.split() for ln in _read(msg + "AudioInfo.msg").splitlines()
              if ln.strip() and not ln.startswith("#")]
    assert fields == [["uint8", "channels"], ["uint32", "sample_rate"],
                      ["string", "sample_format"], ["uint32", "bitrate"],
                      ["string", "coding_format"]]


def test_nothing_below_the_node_imports_rclpy() -> None:
    import subprocess
    import sys

    code = ("import sys, gemo_ros.engine, gemo_ros.pipeline, gemo_ros.ros_io, gemo_ros.cli, "
            "gemo_ros.commands.render, gemo_ros.train.stage2; "
            "print('rclpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
