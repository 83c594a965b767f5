"""The README's commands, .ci/run and the package metadata agree."""

import os
import re
import xml.etree.ElementTree as ET

from test.conftest import ROOT


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


def test_interface_definitions_match_the_released_hri_msgs_expression() -> None:
    lines = [ln.split("#")[0].split() for ln in
             _read("interfaces/hri_msgs/msg/Expression.msg").splitlines()]
    lines = [ln for ln in lines if ln]
    fields = [ln for ln in lines if "=" not in ln[1]]
    constants = {ln[1].split("=")[0]: ln[1].split("=")[1].strip('"') for ln in lines
                 if "=" in ln[1]}
    assert fields == [["std_msgs/Header", "header"], ["string", "expression"],
                      ["float32", "valence"], ["float32", "arousal"],
                      ["float32", "confidence"]]
    assert len(constants) == 25 and all(k.lower() == v for k, v in constants.items())
    assert {"NEUTRAL", "HAPPY", "SAD", "ANGRY", "SURPRISED", "SCARED"} <= set(constants)


def test_nothing_below_the_node_imports_rclpy() -> None:
    import subprocess
    import sys

    code = ("import sys, gemo_ros.engine, gemo_ros.pipeline, gemo_ros.ros_io, gemo_ros.cli, "
            "gemo_ros.commands.render, gemo_ros.train.stage2; "
            "print('rclpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def _names_in_tests() -> set:
    """Dotted names (and their parents) that the test files import or spell out in full.

    An import statement counts (``import a.b``, ``from a import b``, ``from a.b import c``),
    and so does a string holding a dotted name (``importlib.import_module("a.b")``,
    ``python -m a.b``).
    """
    import ast

    seen = set()
    for path in (ROOT / "test").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value]
            else:
                continue
            for name in names:
                parts = name.split(".")
                seen.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return seen


def test_every_module_of_the_package_is_imported_by_some_test() -> None:
    """Tests mirror the package: gemo_ros/x/y.py is specified by test/x/test_y.py (or another)."""
    import pkgutil

    import gemo_ros

    modules = {m.name for m in pkgutil.walk_packages(gemo_ros.__path__, "gemo_ros.")}
    assert len(modules) > 50
    untested = sorted(modules - _names_in_tests())
    assert not untested, f"no test imports {untested}: add test/<subpackage>/test_<module>.py"
