"""Specifications of the default human avatar built on the ICT face model."""

import pytest
import torch

from gemo_ros.avatar import load_avatar
from gemo_ros.avatar.human import PART_DENSITY, build_human_avatar, hair_cover, scalp_height
from gemo_ros.face import ARKIT_INDEX


@pytest.fixture(scope="module")
def small(one_torch_thread):
    return build_human_avatar(num_gaussians=4000, seed=3)


def parts_of(avatar) -> list:
    face = avatar.face
    names = face.part_names
    return [names[int(i)] for i in face.vertex_parts[face.faces[avatar.binding_faces, 0]]]


def test_it_binds_to_the_ict_model_and_is_deterministic(small):
    assert small.face.model_type == "ict"
    assert 3900 <= small.num_gaussians <= 4100
    again = build_human_avatar(num_gaussians=4000, seed=3)
    assert torch.equal(again.binding_faces, small.binding_faces)
    assert torch.equal(again.params["color"], small.params["color"])


def test_shading_shells_and_fluid_get_no_gaussians(small):
    used = set(parts_of(small))
    for name, density in PART_DENSITY.items():
        if density == 0.0:
            assert name not in used, name
    for name in ("face", "teeth", "gums_tongue", "sclera_left", "sclera_right",
                 "eyelashes_left"):
        assert name in used, name


def test_hair_is_a_volume_above_the_scalp(small):
    lifted = small.params["xyz"][:, 2].abs() > 0.05
    assert int(lifted.sum()) > 0.15 * small.num_gaussians     # hair is a real share
    with torch.no_grad():
        g = small(torch.zeros(1, 52))
    top = g.means[0, lifted][:, 1].max()
    assert float(top) > float(small.face.vertices[:, 1].max())  # it stands above the skull
    hair_col = g.colors[0, lifted].mean(0)
    assert float(hair_col.sum()) < 1.2                         # dark, not skin


def test_the_hairline_leaves_the_face_and_ears_free():
    front = torch.tensor([[0.0, 0.03, 0.10], [0.072, -0.03, -0.005]]).numpy()
    assert (hair_cover(front) < 0.01).all()
    top = torch.tensor([[0.0, 0.11, 0.0]]).numpy()
    assert hair_cover(top)[0] > 0.99
    assert scalp_height(torch.tensor([0.0]).numpy(), torch.tensor([1.0]).numpy())[0] > 0.05


def test_colours_and_opacities_are_valid(small):
    with torch.no_grad():
        g = small(torch.rand(2, 52, generator=torch.Generator().manual_seed(0)))
    assert torch.isfinite(g.means).all()
    assert float(g.colors.min()) >= 0.0 and float(g.colors.max()) <= 1.0
    assert float(g.opacities.min()) > 0.0 and float(g.opacities.max()) < 1.0


def test_the_mouth_interior_darkens_as_the_jaw_opens(small):
    mouth = torch.tensor([p in ("mouth_socket", "gums_tongue") for p in parts_of(small)])
    with torch.no_grad():
        closed = small(torch.zeros(1, 52)).colors[0, mouth].mean()
        e = torch.zeros(1, 52)
        e[0, ARKIT_INDEX["jawOpen"]] = 1.0
        opened = small(e).colors[0, mouth].mean()
    assert float(opened) < 0.8 * float(closed)


def test_the_eyes_turn_rigidly_with_the_gaze(small):
    parts = parts_of(small)
    eye = torch.tensor([p == "sclera_left" for p in parts])
    centre = small.face.joints[2]
    e = torch.zeros(1, 52)
    e[0, ARKIT_INDEX["eyeLookUpLeft"]] = 1.0
    with torch.no_grad():
        a = small(torch.zeros(1, 52)).means[0, eye]
        b = small(e).means[0, eye]
    assert torch.allclose((a - centre).norm(dim=1), (b - centre).norm(dim=1), atol=1e-6)
    assert float((b - a)[:, 1].mean()) > 0.001                 # the front of the eye rises


def test_the_embedded_default_is_the_human_head_and_toon_the_old_one():
    human = load_avatar("default")
    toon = load_avatar("toon")
    assert human.face.model_type == "ict" and toon.face.model_type == "default"
    assert human.metadata["name"] == "default" and toon.metadata["name"] == "toon"
