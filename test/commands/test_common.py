"""What every command shares (gemo_ros.commands.common): the `--device` option and its check."""

import argparse
import importlib

import pytest


@pytest.mark.parametrize("module", [
    "gemo_ros.commands.render", "gemo_ros.commands.train_a2e", "gemo_ros.commands.train_stage1",
    "gemo_ros.commands.train_stage2", "gemo_ros.commands.eval_stage1",
    "gemo_ros.commands.eval_stage2"])
def test_every_device_option_defaults_to_auto(module):
    parser = argparse.ArgumentParser()
    importlib.import_module(module).configure(parser)
    assert parser.get_default("device") == "auto"


def test_an_unusable_device_is_exit_status_2_with_the_reason(capsys):
    from gemo_ros.commands.common import device_or_exit

    with pytest.raises(SystemExit) as exc:
        device_or_exit("tpu", "gemo train stage1")
    assert exc.value.code == 2
    assert "gemo train stage1: device must be" in capsys.readouterr().err
