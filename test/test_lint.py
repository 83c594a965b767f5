"""Linters as tests, as ament_python packages run them (flake8 and pep257 docstrings)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
