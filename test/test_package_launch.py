"""The launch file, parameter file, setup.py and the node agree (no launch_ros here)."""

import ast
import os

import yaml

from test.conftest import ROOT


def _node_call() -> dict:
    """Return the keyword arguments of the launch file's launch_ros Node(...) call."""
    with open(os.path.join(ROOT, "launch", "avatar.launch.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    calls = [n for n in ast.walk(tree)
             if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Node"]
    assert len(calls) == 1, "the launch file should start exactly one Node"
    return {kw.arg: kw.value for kw in calls[0].keywords}


def _flatten(tree: dict, prefix: str = "") -> set:
    keys = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            keys |= _flatten(value, f"{prefix}{key}.")
        else:
            keys.add(prefix + key)
    return keys


def _config() -> dict:
    with open(os.path.join(ROOT, "config", "avatar.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def test_launch_file_starts_an_executable_that_setup_py_installs() -> None:
    kwargs = _node_call()
    assert ast.literal_eval(kwargs["package"]) == "gemo_ros"
    executable = ast.literal_eval(kwargs["executable"])
    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
        assert f'"{executable} = gemo_ros.' in f.read()


def test_parameter_file_is_for_the_node_the_launch_file_names_in_any_namespace() -> None:
    name = ast.literal_eval(_node_call()["name"])
    # rcl matches a key against the node's full name: "avatar_node" alone would miss
    # /robot/avatar_node (namespace:=robot), "/**/avatar_node" matches it
    assert list(_config()) == [f"/**/{name}"]
    assert "ros__parameters" in _config()[f"/**/{name}"]


def test_parameter_file_keys_are_exactly_the_parameters_the_node_declares() -> None:
    from gemo_ros.node import PARAMETERS

    config = _config()
    keys = _flatten(next(iter(config.values()))["ros__parameters"])
    assert keys == set(PARAMETERS), (
        f"only in yaml: {sorted(keys - set(PARAMETERS))}; "
        f"only in node: {sorted(set(PARAMETERS) - keys)}")


def test_parameter_file_defaults_match_the_node_defaults() -> None:
    from gemo_ros.node import PARAMETERS

    params = next(iter(_config().values()))["ros__parameters"]
    for name, spec in PARAMETERS.items():
        value = params
        for part in name.split("."):
            value = value[part]
        assert value == spec["default"], name
