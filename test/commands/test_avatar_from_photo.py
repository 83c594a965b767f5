"""Specification of ``gemo avatar from-photo`` (gemo_ros/commands/avatar_from_photo.py).

The result is an ordinary avatar file: ``gemo render --avatar FILE`` and the node's
``avatar:=FILE`` (through ``stages.load_avatar_stage``) load it with its fitted identity.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from gemo_ros.cli import main
from gemo_ros.commands import avatar_from_photo
from gemo_ros.fit.from_photo import FromPhotoConfig


def test_the_command_line_defaults_are_the_librarys():
    import argparse
    parser = argparse.ArgumentParser()
    avatar_from_photo.configure(parser)
    args = parser.parse_args(["face.jpg", "-o", "me.safetensors"])
    d = FromPhotoConfig()
    assert (args.gaussians, args.refine_steps, args.max_yaw, args.min_eye_distance) == \
        (d.num_gaussians, d.refine_steps, d.max_yaw_deg, d.min_inter_ocular_px)


def test_a_missing_photo_is_a_clear_error(tmp_path, capsys):
    rc = main(["avatar", "from-photo", str(tmp_path / "nope.jpg"), "-o",
               str(tmp_path / "a.safetensors"), "--quiet"])
    assert rc == 2
    assert "image not found" in capsys.readouterr().err


def test_a_file_that_is_not_an_image_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    rc = main(["avatar", "from-photo", str(bad), "-o", str(tmp_path / "a.safetensors"),
               "--quiet"])
    assert rc == 2
    assert "not a readable image" in capsys.readouterr().err


def test_a_photo_without_a_face_says_so_and_writes_nothing(tmp_path, capsys):
    pytest.importorskip("mediapipe")
    img = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(img)
    out = tmp_path / "a.safetensors"
    rc = main(["avatar", "from-photo", str(img), "-o", str(out), "--quiet"])
    assert rc == 2
    assert "no face" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_the_avatar_file_loads_in_gemo_render_and_the_node_with_its_identity(tmp_path):
    pytest.importorskip("mediapipe")
    skdata = pytest.importorskip("skimage.data")
    torch.set_num_threads(1)
    photo = tmp_path / "astronaut.png"
    Image.fromarray(skdata.astronaut()).save(photo)
    out = tmp_path / "me.safetensors"
    preview = tmp_path / "preview.png"
    rc = main(["avatar", "from-photo", str(photo), "-o", str(out), "--gaussians", "6000",
               "--refine-steps", "1", "--preview", str(preview), "--quiet"])
    assert rc == 0 and out.exists() and preview.exists()
    from gemo_ros.avatar import load_avatar
    from gemo_ros.stages import load_avatar_stage
    avatar = load_avatar(str(out))
    assert avatar.face.model_type == "ict" and bool((avatar.face.identity != 0).any())
    node_avatar = load_avatar_stage(str(out), 4000, "cpu")   # the node's loader, with LOD
    assert torch.equal(node_avatar.face.identity, avatar.face.identity)
    png = tmp_path / "still.png"
    rc = main(["render", "--avatar", str(out), "--expression", "jawOpen=0.6", "--size", "96",
               "--backend", "torch", "-o", str(png)])
    assert rc == 0
    img = np.asarray(Image.open(png))
    assert img.shape == (96, 96, 3) and img.std() > 5.0
