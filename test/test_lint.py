"""Linters as tests: flake8 and pep257 docstrings (as ament_python runs them), import contracts."""

import os
import subprocess
import sys

from test.conftest import ROOT

CODE = ["gemo_ros", "test", "bench", "scripts", "launch", "setup.py"]


def _run(tool: str, *paths: str) -> subprocess.CompletedProcess:
    present = [p for p in paths if os.path.exists(os.path.join(ROOT, p))]
    return subprocess.run([sys.executable, "-m", tool, *present], cwd=ROOT,
                          capture_output=True, text=True)


def test_flake8_finds_no_problems() -> None:
    result = _run("flake8", *CODE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_docstrings_follow_pep257() -> None:
    result = _run("pydocstyle", "gemo_ros")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts_hold() -> None:
    """The layering in .importlinter (e.g. nothing below the node imports ROS) is kept."""
    code = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
