"""Shared pytest fixtures: an isolated ROS domain per test session."""

import os
import random

import pytest


@pytest.fixture(scope="session")
def ros_env() -> dict:
    """Return an environment for child ROS processes on a private, localhost-only domain."""
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(100, 200))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture()
def ros_domain(ros_env: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Put this process on the same private ROS domain as the child processes."""
    for key in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE"):
        monkeypatch.setenv(key, ros_env[key])
    return ros_env
