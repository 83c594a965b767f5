"""The README's robot path, for real: a colcon workspace with the repository in src/gemo_ros.

As the README tells robot users: the checkout goes to ``src/gemo_ros``, the message
packages the distribution lacks are linked beside it (``src/audio_common_msgs ->
gemo_ros/interfaces/audio_common_msgs``, same for ``hri_msgs``; colcon does not look for
packages inside a package), ``colcon build --symlink-install``, ``source
install/setup.bash``, and the node runs from the install space and publishes face/image.

This machine's "distribution" is scripts/setup.sh's environment with its own builds of the
two message packages taken off the paths, so the workspace must build them. Two CMake
arguments suit the ros-* wheels rather than a ROS installation: the interpreter of this
environment (CMake would find the system one) and no ament_lint test dependencies.
"""

import os
import random
import shutil
import signal
import subprocess
import sys

import pytest

pytest.importorskip("rclpy")

from ros_helpers.face_watch import FaceWatch  # noqa: E402
from test.conftest import ROOT  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.ros, pytest.mark.timeout(900)]

MESSAGES = sorted(p.name for p in (ROOT / "interfaces").iterdir()
                  if (p / "package.xml").is_file())
PATH_VARS = ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH", "PYTHONPATH", "LD_LIBRARY_PATH")


def without_message_builds(env: dict) -> dict:
    """Return ``env`` without the prefixes of scripts/setup.sh's message package builds."""
    out = dict(env)
    for var in PATH_VARS:
        keep = [p for p in env.get(var, "").split(os.pathsep)
                if p and not any(f"/install/{name}" in p + "/" for name in MESSAGES)]
        out[var] = os.pathsep.join(keep)
    if not out["CMAKE_PREFIX_PATH"]:  # the wheels: CMake finds ament through this
        out["CMAKE_PREFIX_PATH"] = out["AMENT_PREFIX_PATH"]
    return out


def copy_checkout(dest) -> None:
    """Copy the checkout's files (tracked and new, not ignored), like a fresh git clone."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():  # a tracked file deleted in the working tree is not there
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def in_workspace(ws, env: dict, command: str, **kwargs) -> subprocess.CompletedProcess:
    """Run ``command`` in bash in the workspace after ``source install/setup.bash``."""
    return subprocess.run(["bash", "-c", f"source install/setup.bash && {command}"], cwd=ws,
                          env=env, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, ros_env: dict):
    """Build the workspace as the README says; return (workspace path, environment)."""
    colcon = shutil.which("colcon")
    if colcon is None:
        pytest.skip("colcon is not installed (scripts/setup.sh installs it with the ROS wheels; "
                    "on a robot: apt-get install python3-colcon-common-extensions)")
    ws = tmp_path_factory.mktemp("ros2_ws")
    src = ws / "src"
    copy_checkout(src / "gemo_ros")
    for name in MESSAGES:  # the README's `ln -s gemo_ros/interfaces/<pkg> .` in src/
        os.symlink(os.path.join("gemo_ros", "interfaces", name), src / name)
    env = without_message_builds(ros_env)
    env["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(20, 99))
    env["OMP_NUM_THREADS"] = "1"

    listed = subprocess.run([colcon, "list", "--names-only"], cwd=ws, env=env,
                            capture_output=True, text=True, check=True).stdout.split()
    assert sorted(listed) == sorted(["gemo_ros", *MESSAGES]), listed

    build = subprocess.run(
        [colcon, "build", "--symlink-install", "--event-handlers", "console_direct-",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=ws, env=env, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    print(build.stdout.strip().splitlines()[-1])
    return ws, env


def test_colcon_lists_gemo_ros_and_the_linked_message_packages(workspace):
    ws, _ = workspace
    for name in MESSAGES:
        assert (ws / "install" / name / "share" / name / "package.xml").exists()


def test_the_install_space_provides_the_package_messages_and_executables(workspace):
    ws, env = workspace
    code = ("import gemo_ros, " + ", ".join(f"{m}.msg" for m in MESSAGES) + "\n"
            "from hri_msgs.msg import Expression\n"
            "print(gemo_ros.__file__)\n"
            + "".join(f"print({m}.__file__)\n" for m in MESSAGES))
    result = in_workspace(ws, env, f"python -c '{code}'")
    assert result.returncode == 0, result.stderr
    for path in result.stdout.split():
        assert path.startswith(str(ws)), f"{path} is not from the workspace {ws}"
    share = ws / "install" / "gemo_ros" / "share" / "gemo_ros"
    assert (share / "launch" / "avatar.launch.py").is_file()
    assert (share / "config" / "avatar.yaml").is_file()
    assert (ws / "install" / "gemo_ros" / "lib" / "gemo_ros" / "avatar_node").is_file()
    if shutil.which("ros2"):
        prefix = in_workspace(ws, env, "ros2 pkg prefix gemo_ros")
        assert prefix.stdout.strip() == str(ws / "install" / "gemo_ros"), prefix.stderr
        exes = in_workspace(ws, env, "ros2 pkg executables gemo_ros").stdout
        assert "gemo_ros avatar_node" in exes


def test_the_node_runs_from_the_install_space_and_publishes_face_images(workspace):
    ws, env = workspace
    log = ws / "avatar_node.log"
    command = ("exec install/gemo_ros/lib/gemo_ros/avatar_node --ros-args -p device:=cpu "
               "-p width:=48 -p height:=48 -p fps:=5.0 -p threads:=1")
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", "-c", f"source install/setup.bash && {command}"],
                                cwd=ws, env=env, stdout=out, stderr=subprocess.STDOUT)
    watch = FaceWatch(int(env["ROS_DOMAIN_ID"]))
    try:
        frames = watch.wait_frames(3, timeout=300.0)
        assert all(f.shape == (48, 48, 3) for f in frames)
        text = log.read_text()
        # the node's own files (here its avatar) come from the workspace, not the checkout
        assert f"loaded avatar {ws}" in text, text
    except AssertionError:
        print(log.read_text())
        raise
    finally:
        watch.close()
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, log.read_text()
