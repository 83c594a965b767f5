"""Shared pytest fixtures (an isolated ROS domain per test session) and the repository root.

Tests are collected with ``--import-mode=importlib`` (setup.cfg), so this file is the module
``test.conftest``: ``from test.conftest import ROOT`` gives every test the same root.
"""

import os
import pathlib
import random

import pytest

#: The repository root (the folder holding setup.cfg, gemo_ros/ and test/).
ROOT = pathlib.Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's small models on one thread: far faster on a busy CPU (no OpenMP spinning)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def tiny(one_torch_thread):
    """Return a tiny, randomly initialised audio-to-expression model (emotion branch visible)."""
    import torch

    from gemo_ros.audio import A2EConfig, AudioToExpression
    from gemo_ros.audio.model import tiny_encoder_config

    torch.manual_seed(0)
    cfg = A2EConfig(encoder=tiny_encoder_config(), decoder_hidden=32, emotion_dim=8)
    model = AudioToExpression(cfg).eval()
    with torch.no_grad():  # make the emotion branch visible in the outputs
        model.emo_out[-1].weight.mul_(20.0)
    return model
