"""The one loader of the stages (gemo_ros.stages): device names, disabling, level of detail."""

import pytest
import torch

from gemo_ros.stages import (CPU_MAX_GAUSSIANS, gaussian_budget, is_disabled,
                             load_optional_stage, resolve_device)


def test_device_names_resolve_or_are_refused():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    assert resolve_device(" CPU ") == "cpu"
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_none_and_empty_names_switch_a_stage_off():
    assert is_disabled(None) and is_disabled("") and is_disabled(" None ")
    assert not is_disabled("default")
    assert load_optional_stage("a2e", "none") is None
    assert load_optional_stage("residual", None) is None
    with pytest.raises(ValueError, match="unknown optional stage"):
        load_optional_stage("avatar", "default")


def test_a_named_stage_that_is_missing_is_an_error_not_a_fallback(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_optional_stage("residual", str(tmp_path / "missing.safetensors"))


def test_auto_level_of_detail_caps_only_the_cpu():
    assert gaussian_budget(-1, "cpu") == CPU_MAX_GAUSSIANS
    assert gaussian_budget(-1, "cuda:0") == 0
    assert gaussian_budget(5000, "cuda") == 5000 and gaussian_budget(0, "cpu") == 0


def test_talking_head_load_follows_the_stage_rules():
    from gemo_ros.pipeline import TalkingHead

    head = TalkingHead.load("default", "none", None, device="cpu", max_gaussians=500)
    assert head.a2e is None and head.residual is None
    assert head.canonical.shape[0] == 500
    with pytest.raises(ValueError):
        TalkingHead.load("default", "none", "none", device="tpu")
