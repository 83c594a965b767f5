"""scripts/register_ament.py: gemo_ros in the ament index of an environment, from setup.py.

What ``ros2 launch gemo_ros ...`` needs from a prefix on AMENT_PREFIX_PATH (the package
marker, share/gemo_ros/{package.xml,launch,config} as real files, lib/gemo_ros/<executable>)
is read from setup.py's data_files and console_scripts, so it matches what colcon installs.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from test.conftest import ROOT


def _register():
    spec = importlib.util.spec_from_file_location("register_ament",
                                                  ROOT / "scripts" / "register_ament.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


register = _register()
MARKER = "share/ament_index/resource_index/packages/gemo_ros"


def test_install_writes_the_marker_share_files_and_a_launcher_per_console_script(tmp_path):
    name, files = register.plan()
    register.install(tmp_path, name, files)
    assert name == "gemo_ros" and (tmp_path / MARKER).is_file()
    for rel in ("package.xml", "launch/avatar.launch.py", "config/avatar.yaml"):
        path = tmp_path / "share" / "gemo_ros" / rel
        assert path.is_file() and not path.is_symlink()
        assert path.read_bytes() == (ROOT / rel).read_bytes()
    scripts = register.console_scripts(register.read_setup())
    assert "avatar_node" in scripts  # the executable the launch file starts
    for script in scripts:
        path = tmp_path / "lib" / "gemo_ros" / script
        assert path.is_file() and os.access(path, os.X_OK), script
    assert register.differences(tmp_path, name, files) == []


def test_a_launcher_runs_its_entry_point(tmp_path):
    name, files = register.plan()
    register.install(tmp_path, name, files)
    result = subprocess.run([str(tmp_path / "lib" / "gemo_ros" / "gemo"), "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: gemo" in result.stdout


def test_check_finds_a_stale_a_missing_and_a_left_over_file(tmp_path):
    name, files = register.plan()
    register.install(tmp_path, name, files)
    share = tmp_path / "share" / "gemo_ros"
    (share / "config" / "avatar.yaml").write_text("avatar_node: {}\n")
    (share / "launch" / "avatar.launch.py").unlink()
    (share / "launch" / "avatar.launch.py").symlink_to(ROOT / "launch" / "avatar.launch.py")
    (tmp_path / "lib" / "gemo_ros" / "retired_tool").write_text("#!/bin/sh\n")
    problems = "\n".join(register.differences(tmp_path, name, files))
    assert "out of step with the checkout: " + str(share / "config" / "avatar.yaml") in problems
    assert "not a real file: " + str(share / "launch" / "avatar.launch.py") in problems
    assert "left over: " + str(tmp_path / "lib" / "gemo_ros" / "retired_tool") in problems
    assert register.main([str(tmp_path), "--check"]) == 1
    register.install(tmp_path, name, files)  # what scripts/setup.sh does then
    assert register.differences(tmp_path, name, files) == []
    assert register.main([str(tmp_path), "--check"]) == 0


def test_every_console_script_gets_a_launcher_without_naming_it_anywhere(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "resource").mkdir(parents=True)
    (checkout / "resource" / "demo_pkg").write_text("")
    (checkout / "demo_mod.py").write_text("def run():\n    print('ran', 42)\n    return 3\n")
    (checkout / "setup.py").write_text(textwrap.dedent("""\
        from setuptools import setup
        setup(name="demo_pkg",
              data_files=[("share/ament_index/resource_index/packages",
                           ["resource/demo_pkg"])],
              entry_points={"console_scripts": ["one = demo_mod:run",
                                                "two = demo_mod:run [extra]"]})
        """))
    name, files = register.plan(root=checkout, python=sys.executable)
    assert name == "demo_pkg"
    launchers = sorted(f for f in files if f.startswith("lib/"))
    assert launchers == ["lib/demo_pkg/one", "lib/demo_pkg/two"]
    prefix = tmp_path / "prefix"
    register.install(prefix, name, files)
    result = subprocess.run([str(prefix / "lib" / "demo_pkg" / "two")], capture_output=True,
                            text=True, env=dict(os.environ, PYTHONPATH=str(checkout)))
    assert (result.returncode, result.stdout) == (3, "ran 42\n")


def test_setup_without_the_ament_marker_is_refused(tmp_path):
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup(name='x')\n")
    with pytest.raises(SystemExit, match="ament marker"):
        register.plan(root=tmp_path)


def test_the_environment_from_scripts_setup_sh_is_in_step_with_the_checkout():
    prefix = sys.prefix
    if not os.path.exists(os.path.join(prefix, MARKER)):
        pytest.skip(f"gemo_ros is not registered in {prefix} (not set up by scripts/setup.sh)")
    name, files = register.plan()
    problems = register.differences(type(ROOT)(prefix), name, files)
    assert not problems, "run: bash scripts/setup.sh\n" + "\n".join(problems)
