"""Specifications of the node's parameter file and launch file (no DDS needed)."""

import ast

import pytest
import yaml

from test.conftest import ROOT


def flatten(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def test_config_lists_every_declared_parameter_with_its_default():
    node = pytest.importorskip("gemo_ros.node")
    doc = yaml.safe_load((ROOT / "config" / "avatar.yaml").read_text())
    params = flatten(doc[f"/**/{node.NODE_NAME}"]["ros__parameters"])  # any namespace
    assert set(params) == set(node.PARAMETERS)
    for name, spec in node.PARAMETERS.items():
        assert params[name] == spec["default"], name


def test_every_parameter_has_a_description():
    node = pytest.importorskip("gemo_ros.node")
    assert all(len(spec["description"]) > 10 for spec in node.PARAMETERS.values())


def test_config_has_a_comment_for_every_parameter():
    lines = (ROOT / "config" / "avatar.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if ":" in stripped and not stripped.startswith("#") and not stripped.endswith(":"):
            assert lines[i - 1].strip().startswith("#"), f"no comment above {stripped!r}"


def test_launch_file_declares_config_device_avatar_namespace_and_panel():
    tree = ast.parse((ROOT / "launch" / "avatar.launch.py").read_text())
    declared = {node.args[0].value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") ==
                "DeclareLaunchArgument"}
    assert declared == {"config", "device", "avatar", "namespace", "panel", "panel_host",
                        "panel_port"}
    text = (ROOT / "launch" / "avatar.launch.py").read_text()
    assert 'executable="avatar_node"' in text


def test_gpu_compile_parameter_names_the_modes_the_pipeline_accepts():
    node = pytest.importorskip("gemo_ros.node")
    from gemo_ros.pipeline import compile_mode
    spec = node.PARAMETERS["gpu.compile"]
    assert spec["read_only"] and compile_mode(spec["default"], "cuda") is None  # off by default
    for name in ("off", "auto", "cudagraph", "reduce-overhead", "default"):
        assert name in spec["description"]
        compile_mode(name, "cuda")  # every documented name is accepted
    with pytest.raises(ValueError, match="compile must be"):
        compile_mode("fastest", "cuda")
