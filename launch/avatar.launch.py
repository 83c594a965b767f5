"""Launch the gemo_ros avatar node with its parameter file, and optionally its display.

    ros2 launch gemo_ros avatar.launch.py
    ros2 launch gemo_ros avatar.launch.py device:=cpu avatar:=/path/avatar.safetensors \
        namespace:=robot1 config:=/path/to/avatar.yaml
    ros2 launch gemo_ros avatar.launch.py panel:=web      # then open http://127.0.0.1:8080/
    ros2 launch gemo_ros avatar.launch.py panel:=window   # fullscreen on the attached display

Arguments: ``config`` (parameter YAML, default the installed config/avatar.yaml),
``device`` (auto, cpu, cuda, cuda:N), ``avatar`` ('default', 'toon' or a path), ``namespace``
(of every node started here), ``panel`` (``none``; ``web``: also the ``face_panel`` page;
``window``: also the ``face_window`` fullscreen window), ``panel_host`` and ``panel_port``
(the web panel's bind address and TCP port: face_panel's ``host`` and ``port``, same
defaults, so the page is offered to this machine only unless ``panel_host:=0.0.0.0``).
The nodes are the same ``avatar_node``, ``face_panel`` and ``face_window`` executables the
tests start directly; the panels' ``image_topic`` is relative, so in a namespace they show
that namespace's face.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node

PANELS = ["none", "web", "window"]


def _panel_is(kind: str) -> IfCondition:
    # `choices` below refuses any other value before a condition is evaluated, so the
    # expression only ever compares one of PANELS (EqualsSubstitution is not in Humble)
    return IfCondition(PythonExpression(["'", LaunchConfiguration("panel"), f"' == '{kind}'"]))


def generate_launch_description() -> LaunchDescription:
    """Return the launch description: arguments, avatar_node and the chosen panel."""
    default_config = os.path.join(get_package_share_directory("gemo_ros"), "config",
                                  "avatar.yaml")
    namespace = LaunchConfiguration("namespace")
    args = [
        DeclareLaunchArgument("config", default_value=default_config,
                              description="parameter file of avatar_node"),
        DeclareLaunchArgument("device", default_value="auto",
                              description="auto (CUDA+gsplat when present, else CPU), cpu, "
                                          "cuda, cuda:N"),
        DeclareLaunchArgument("avatar", default_value="default",
                              description="'default', 'toon' or a path to an avatar "
                                          ".safetensors"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the nodes and their topics"),
        DeclareLaunchArgument("panel", default_value="none", choices=PANELS,
                              description="display started with the face: none, web "
                                          "(face_panel page) or window (face_window)"),
        DeclareLaunchArgument("panel_host", default_value="127.0.0.1",
                              description="address the web panel binds; 0.0.0.0 offers it "
                                          "to the network"),
        DeclareLaunchArgument("panel_port", default_value="8080",
                              description="TCP port of the web panel; 0 = any free port"),
    ]
    node = Node(
        package="gemo_ros",
        executable="avatar_node",
        name="avatar_node",
        namespace=namespace,
        output="screen",
        emulate_tty=True,
        # Ctrl-C: the node stops its threads, releases the models and exits 0 (about 0.5 s
        # on a loaded 2-core CPU); the grace before SIGTERM stays wide for slower machines
        sigterm_timeout="15",
        parameters=[LaunchConfiguration("config"),
                    {"device": LaunchConfiguration("device"),
                     "avatar": LaunchConfiguration("avatar")}],
    )
    web = Node(
        package="gemo_ros",
        executable="face_panel",
        name="face_panel",
        namespace=namespace,
        output="screen",
        emulate_tty=True,
        parameters=[{"host": LaunchConfiguration("panel_host"),
                     "port": LaunchConfiguration("panel_port")}],
        condition=_panel_is("web"),
    )
    window = Node(
        package="gemo_ros",
        executable="face_window",
        name="face_window",
        namespace=namespace,
        output="screen",
        emulate_tty=True,
        condition=_panel_is("window"),
    )
    return LaunchDescription(args + [node, web, window])
