"""The launch file, parameter file, setup.py and the nodes agree (launch_ros only where noted)."""

import ast
import os

import pytest
import yaml

from test.conftest import ROOT

LAUNCH_FILE = os.path.join(ROOT, "launch", "avatar.launch.py")
#: executable -> the ``panel`` launch argument's value that starts it (None: always)
EXPECTED_NODES = {"avatar_node": None, "face_panel": "web", "face_window": "window"}


def _node_calls() -> dict:
    """Return {executable: keyword arguments} of the launch file's launch_ros Node(...) calls."""
    with open(LAUNCH_FILE, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    calls = [n for n in ast.walk(tree)
             if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Node"]
    # a keyword given as a variable (namespace=namespace): the expression assigned to it
    names = {t.id: n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
             for t in n.targets if isinstance(t, ast.Name)}
    nodes = {}
    for call in calls:
        kwargs = {kw.arg: names.get(kw.value.id, kw.value) if isinstance(kw.value, ast.Name)
                  else kw.value for kw in call.keywords}
        nodes[ast.literal_eval(kwargs["executable"])] = kwargs
    assert len(nodes) == len(calls), "two Node(...) calls start the same executable"
    return nodes


def _node_call() -> dict:
    """Return the keyword arguments of the avatar_node Node(...) call."""
    return _node_calls()["avatar_node"]


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


def test_launch_file_starts_the_node_and_the_optional_panels_that_setup_py_installs() -> None:
    nodes = _node_calls()
    assert set(nodes) == set(EXPECTED_NODES)
    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
        setup_py = f.read()
    for executable, kwargs in nodes.items():
        assert ast.literal_eval(kwargs["package"]) == "gemo_ros"
        assert ast.literal_eval(kwargs["name"]) == executable
        assert f'"{executable} = gemo_ros.' in setup_py, executable
        # every node follows the launch's namespace: the panels then show that face
        assert ast.unparse(kwargs["namespace"]) == "LaunchConfiguration('namespace')", executable
        # the face always starts, a panel only when asked for
        assert ("condition" in kwargs) == (EXPECTED_NODES[executable] is not None), executable


def test_web_panel_launch_arguments_reuse_face_panel_parameters_and_defaults() -> None:
    from gemo_ros.panel_node import PANEL_PARAMETERS

    with open(LAUNCH_FILE, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    declared = {}
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "DeclareLaunchArgument":
            kwargs = {kw.arg: kw.value for kw in call.keywords}
            declared[ast.literal_eval(call.args[0])] = kwargs
    assert ast.literal_eval(declared["panel"]["default_value"]) == "none"
    params = _node_calls()["face_panel"]["parameters"]
    (mapping,) = params.elts
    passed = {ast.literal_eval(k): ast.unparse(v) for k, v in zip(mapping.keys, mapping.values)}
    for name in ("host", "port"):
        assert passed[name] == f"LaunchConfiguration('panel_{name}')", passed
        default = ast.literal_eval(declared[f"panel_{name}"]["default_value"])
        # launch_ros reads "8080" as YAML: the integer face_panel declares
        assert yaml.safe_load(default) == PANEL_PARAMETERS[name][0], name
    assert PANEL_PARAMETERS["host"][0] == "127.0.0.1"  # the page stays on this machine


def _description():
    """Return the real LaunchDescription (skip without launch_ros or the ament index entry)."""
    pytest.importorskip("launch_ros")
    from ament_index_python.packages import PackageNotFoundError
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    try:
        return get_launch_description_from_python_launch_file(LAUNCH_FILE)
    except PackageNotFoundError:
        pytest.skip("gemo_ros is not registered in the ament index (run scripts/setup.sh)")


@pytest.mark.parametrize("panel", ["none", "web", "window"])
def test_launch_starts_exactly_the_chosen_panel(panel: str) -> None:
    """Evaluate the real launch description's conditions (needs launch_ros and the index)."""
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    description = _description()
    context = LaunchContext()
    context.launch_configurations["panel"] = panel
    started = set()
    for action in description.entities:
        if isinstance(action, DeclareLaunchArgument):
            action.visit(context)  # sets defaults and checks `choices`
        elif isinstance(action, Node) and (action.condition is None
                                           or action.condition.evaluate(context)):
            started.add(action.node_executable)
    assert started == {exe for exe, when in EXPECTED_NODES.items() if when in (None, panel)}


def test_launch_refuses_an_unknown_panel() -> None:
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument

    description = _description()
    context = LaunchContext()
    context.launch_configurations["panel"] = "browser"
    (panel,) = [a for a in description.entities
                if isinstance(a, DeclareLaunchArgument) and a.name == "panel"]
    with pytest.raises(Exception, match="browser"):
        panel.visit(context)


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
