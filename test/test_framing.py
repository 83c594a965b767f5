"""Specifications of the one camera-framing type (gemo_ros.framing) and where it is used."""

import argparse
from dataclasses import replace

import pytest

from gemo_ros.engine import Engine, EngineConfig
from gemo_ros.fallback import FallbackHead
from gemo_ros.framing import PORTRAIT, ROBOT_PANEL, VIDEO, RenderSettings


def test_the_engine_holds_the_robot_panel_framing_by_default():
    assert EngineConfig().camera == ROBOT_PANEL == RenderSettings()
    assert ROBOT_PANEL.background_255() == (18, 22, 30)


def test_presets_differ_from_the_defaults_only_where_they_say():
    assert replace(PORTRAIT, width=256, height=256, distance=ROBOT_PANEL.distance,
                   background=ROBOT_PANEL.background) == ROBOT_PANEL
    assert replace(VIDEO, distance=ROBOT_PANEL.distance) == ROBOT_PANEL


def test_the_node_camera_names_map_onto_the_framing():
    cfg = EngineConfig().updated(camera_yaw_deg=10.0, camera_distance=0.8,
                                 background=(255, 0, 0))
    assert (cfg.camera.yaw_deg, cfg.camera.distance) == (10.0, 0.8)
    assert cfg.camera.background == (1.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        EngineConfig().updated(no_such_setting=1)


def test_engine_reconfigure_replaces_the_framing_and_keeps_the_rest():
    cfg = EngineConfig(width=16, height=16)
    eng = Engine(cfg, clock=lambda: 0.0, head=FallbackHead(cfg))
    before = eng.config.camera
    eng.reconfigure(camera_fov_deg=30.0)
    assert eng.config.camera == replace(before, fov_deg=30.0)
    assert eng.config.width == 16


def test_pipeline_head_builds_the_render_settings_once_per_framing_and_size():
    from gemo_ros.pipeline_head import PipelineHead

    head = PipelineHead.__new__(PipelineHead)
    head._camera, head._sized = None, {}
    first = head._settings(ROBOT_PANEL, 64, 48)
    assert head._settings(ROBOT_PANEL, 64, 48) is first
    assert (first.width, first.height, first.distance) == (64, 48, ROBOT_PANEL.distance)
    moved = replace(ROBOT_PANEL, yaw_deg=20.0)
    assert head._settings(moved, 64, 48).yaw_deg == 20.0


def test_gemo_render_stills_default_to_the_portrait_preset():
    from gemo_ros.commands.render import configure, request_from_args

    parser = argparse.ArgumentParser()
    configure(parser)
    assert request_from_args(parser.parse_args([])).framing == PORTRAIT
