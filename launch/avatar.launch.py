"""Launch the gemo_ros avatar node with its parameter file.

    ros2 launch gemo_ros avatar.launch.py
    ros2 launch gemo_ros avatar.launch.py device:=cpu avatar:=/path/avatar.safetensors \
        namespace:=robot1 config:=/path/to/avatar.yaml

Arguments: ``config`` (parameter YAML, default the installed config/avatar.yaml),
``device`` (auto, cpu, cuda, cuda:N), ``avatar`` ('default', 'toon' or a path), ``namespace``.
The node is the same ``avatar_node`` executable the tests start directly.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    """Return the launch description: arguments plus one avatar_node."""
    default_config = os.path.join(get_package_share_directory("gemo_ros"), "config",
                                  "avatar.yaml")
    args = [
        DeclareLaunchArgument("config", default_value=default_config,
                              description="parameter file of avatar_node"),
        DeclareLaunchArgument("device", default_value="auto",
                              description="auto (CUDA+gsplat when present, else CPU), cpu, "
                                          "cuda, cuda:N"),
        DeclareLaunchArgument("avatar", default_value="default",
                              description="'default' or a path to an avatar .safetensors"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node and its topics"),
    ]
    node = Node(
        package="gemo_ros",
        executable="avatar_node",
        name="avatar_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        # Ctrl-C: the node stops its threads, releases the models and exits 0; on a busy
        # CPU that can take longer than launch's default 5 s before it escalates to SIGTERM
        sigterm_timeout="15",
        parameters=[LaunchConfiguration("config"),
                    {"device": LaunchConfiguration("device"),
                     "avatar": LaunchConfiguration("avatar")}],
    )
    return LaunchDescription(args + [node])
