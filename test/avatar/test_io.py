"""Specifications of the avatar file format and the embedded default head."""

import json
import os

import pytest
import torch

from gemo_ros.avatar import AvatarFormatError, default_avatar_path, load_avatar, save_avatar
from gemo_ros.avatar.procedural import build_default_avatar
from gemo_ros.face import ARKIT_NAMES


@pytest.fixture(scope="module")
def small():
    return build_default_avatar(num_gaussians=3000, seed=2)


def test_round_trip_in_float32_reproduces_the_avatar_exactly(small, tmp_path):
    path = str(tmp_path / "a.safetensors")
    save_avatar(small, path, half=False)
    back = load_avatar(path)
    assert back.num_gaussians == small.num_gaussians
    assert torch.equal(back.binding_faces, small.binding_faces)
    e = torch.rand(2, 52, generator=torch.Generator().manual_seed(0))
    a, b = small(e), back(e)
    assert torch.allclose(a.means, b.means, atol=1e-7)
    assert torch.allclose(a.colors, b.colors, atol=1e-7)
    assert back.metadata["name"] == "default"


def test_round_trip_in_float16_stays_close(small, tmp_path):
    path = str(tmp_path / "a16.safetensors")
    save_avatar(small, path, half=True)
    back = load_avatar(path)
    e = torch.rand(1, 52, generator=torch.Generator().manual_seed(1))
    a, b = small(e), back(e)
    assert float((a.means - b.means).detach().abs().max()) < 2e-5         # metres
    assert float((a.colors - b.colors).detach().abs().max()) < 2e-3


def test_only_nonzero_blendshape_deltas_are_stored(small, tmp_path):
    from safetensors import safe_open
    path = str(tmp_path / "s.safetensors")
    save_avatar(small, path)
    with safe_open(path, "pt") as f:
        keys = set(f.keys())
        meta = json.loads(f.metadata()["gemo_avatar"])
    assert "delta.jawOpen.color" in keys and "delta.jawOpen.xyz" not in keys
    assert "delta.eyeLookInLeft.index" not in keys            # geometry-only: the mesh moves it
    assert meta["format"] == "gemo_avatar" and meta["expression_names"] == list(ARKIT_NAMES)


def test_the_embedded_default_avatar_loads_by_name():
    avatar = load_avatar("default")
    assert 20000 <= avatar.num_gaussians <= 60000
    assert os.path.getsize(default_avatar_path()) < 5_000_000
    g = avatar(torch.zeros(1, 52))
    assert torch.isfinite(g.means).all()


def test_missing_file_raises_file_not_found_naming_the_path(tmp_path):
    path = str(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_avatar(path)


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, b"\x10\x00\x00\x00\x00\x00\x00\x00{"])
def test_corrupt_file_raises_a_format_error(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(AvatarFormatError, match="bad.safetensors"):
        load_avatar(str(path))


def test_truncated_file_raises_a_format_error(small, tmp_path):
    path = tmp_path / "cut.safetensors"
    save_avatar(small, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AvatarFormatError):
        load_avatar(str(path))


def test_safetensors_without_avatar_metadata_is_rejected(tmp_path):
    from safetensors.torch import save_file
    path = str(tmp_path / "other.safetensors")
    save_file({"x": torch.zeros(3)}, path)
    with pytest.raises(AvatarFormatError, match="not a gemo_ros avatar"):
        load_avatar(path)


def test_avatar_for_a_different_face_mesh_is_rejected(small, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    path = str(tmp_path / "fp.safetensors")
    save_avatar(small, path)
    with safe_open(path, "pt") as f:
        meta = json.loads(f.metadata()["gemo_avatar"])
    meta["face_fingerprint"] = "default:1:deadbeef"
    save_file(load_file(path), path, metadata={"gemo_avatar": json.dumps(meta)})
    with pytest.raises(AvatarFormatError, match="rebuild the avatar"):
        load_avatar(path)


def test_missing_tensor_is_reported_by_name(small, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    path = str(tmp_path / "m.safetensors")
    save_avatar(small, path)
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    tensors = load_file(path)
    del tensors["g0.scale"]
    save_file(tensors, path, metadata=meta)
    with pytest.raises(AvatarFormatError, match="g0.scale"):
        load_avatar(path)


def test_the_toon_head_loads_by_name_and_unknown_names_are_errors():
    toon = load_avatar("toon")
    assert toon.face.model_type == "default" and toon.num_gaussians == 48000
    with pytest.raises(ValueError, match="toon"):
        default_avatar_path("nope")


def test_an_avatar_on_a_fitted_identity_reloads_on_that_identity(tmp_path):
    from gemo_ros.avatar.human import build_human_avatar
    from gemo_ros.face import load_face_model

    person = load_face_model("ict").with_identity([1.5, -1.0, 0.5])
    avatar = build_human_avatar(num_gaussians=1500, seed=0, face=person)
    path = str(tmp_path / "person.safetensors")
    save_avatar(avatar, path, half=False)
    back = load_avatar(path)
    assert torch.allclose(back.face.identity[:3], torch.tensor([1.5, -1.0, 0.5]))
    with torch.no_grad():
        assert torch.allclose(back(torch.zeros(1, 52)).means, avatar(torch.zeros(1, 52)).means,
                              atol=1e-6)
