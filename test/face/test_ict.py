"""Specifications of the ICT face model loader (``load_face_model("ict")``)."""

import math
import os

import pytest
import torch

from gemo_ros.face import ARKIT_INDEX, ARKIT_NAMES, load_face_model
from gemo_ros.face.ict import ASSET, LICENSE, ICTFaceModel, asset_path, load_ict_face
from gemo_ros.geometry import head_rotation


@pytest.fixture(scope="module")
def face():
    return load_face_model("ict")


def unit(name: str) -> torch.Tensor:
    e = torch.zeros(1, 52)
    e[0, ARKIT_INDEX[name]] = 1.0
    return e


def part(face, name: str) -> torch.Tensor:
    return face.region(name)


def test_the_ict_model_speaks_the_52_arkit_names_in_metres(face):
    assert isinstance(face, ICTFaceModel) and face.model_type == "ict"
    assert face.expression_names == ARKIT_NAMES
    assert face.expr_basis.shape == (52, face.num_vertices, 3)
    extent = face.vertices.max(0).values - face.vertices.min(0).values
    assert 0.2 < float(extent[1]) < 0.4                   # a real head and neck, in metres
    # The eyeballs sit at eye height, 6.2 cm apart, the left one at +X (docs axes).
    left, right = face.joints[2], face.joints[3]
    assert float(left[0]) > 0.025 and float(right[0]) < -0.025
    assert abs(float(left[1])) < 1e-3 and abs(float(left[0] - right[0]) - 0.062) < 0.004


def test_faces_are_triangles_with_uvs_and_every_part_has_vertices(face):
    assert face.faces.shape[1] == 3 and int(face.faces.max()) < face.num_vertices
    assert face.face_uv.shape == face.faces.shape and int(face.face_uv.max()) < len(face.uv)
    for name in ("face", "head", "teeth", "gums_tongue", "iris_left", "sclera_right",
                 "eyelashes_left", "mouth_socket"):
        assert int(part(face, name).sum()) > 100, name


def test_zero_coefficients_and_no_neck_rotation_give_the_template(face):
    v = face.pose(torch.zeros(1, 52))[0]
    assert torch.equal(v, face.vertices)


def test_left_shapes_move_the_heads_own_left_side(face):
    d = face.pose(unit("eyeBlinkLeft"))[0] - face.vertices
    moved = d.norm(dim=1) > 1e-3
    assert moved.any() and bool((face.vertices[moved, 0] > 0).all())


def test_browinnerup_is_symmetric_and_tongueout_has_no_shape(face):
    d = face.pose(unit("browInnerUp"))[0] - face.vertices
    assert float(d[:, 1].max()) > 0.003                     # both inner brows rise millimetres
    left = face.vertices[:, 0] > 0.005
    right = face.vertices[:, 0] < -0.005
    assert abs(float(d[left, 1].sum() - d[right, 1].sum())) < 0.02 * float(d[left, 1].sum())
    assert float(face.expr_basis[ARKIT_INDEX["tongueOut"]].abs().max()) == 0.0


def test_jaw_open_is_a_linear_shape_and_no_vertex_follows_the_jaw_joint(face):
    assert float(face.lbs_weights[:, 1].abs().max()) == 0.0
    d = face.pose(unit("jawOpen"))[0] - face.vertices
    assert float(-d[:, 1].min()) > 0.03                     # the chin drops by centimetres


def test_eyelook_turns_the_eyeballs_rigidly_about_their_centres(face):
    eye = part(face, "sclera_left") | part(face, "iris_left")
    assert float(face.expr_basis[:, eye].abs().max()) == 0.0     # no shape deforms an eyeball
    v0 = face.vertices[eye]
    v1 = face.pose(unit("eyeLookOutLeft"))[0, eye]
    centre = face.joints[2]
    assert torch.allclose((v1 - centre).norm(dim=1), (v0 - centre).norm(dim=1), atol=1e-6)
    assert torch.allclose(torch.cdist(v1[:50], v1[50:100]), torch.cdist(v0[:50], v0[50:100]),
                          atol=1e-6)
    iris = part(face, "iris_left")
    shift = face.pose(unit("eyeLookOutLeft"))[0, iris].mean(0) - face.vertices[iris].mean(0)
    assert float(shift[0]) > 0.002                          # the left eye looks out, to +X
    right = part(face, "sclera_right")
    assert torch.equal(face.pose(unit("eyeLookOutLeft"))[0, right], face.vertices[right])


def test_the_lids_follow_the_gaze_but_the_eyeball_does_not_deform(face):
    d = face.pose(unit("eyeLookUpLeft"))[0] - face.vertices
    lids = part(face, "face") & (d.norm(dim=1) > 5e-4)
    assert lids.any()


def test_neck_rotation_turns_the_head_and_fades_down_the_neck(face):
    yaw = torch.tensor(head_rotation(30.0, 0.0, 0.0), dtype=torch.float32)[None]
    v = face.pose(torch.zeros(1, 52), yaw)[0]
    d = (v - face.vertices).norm(dim=1)
    nose = face.vertices[:, 2].argmax()
    bottom = face.vertices[:, 1].argmin()
    rho = (face.vertices[nose] - face.joints[0])[[0, 2]].norm()     # distance from the yaw axis
    assert float(d[nose]) == pytest.approx(2 * float(rho) * math.sin(math.radians(15)), rel=1e-3)
    assert float(d[bottom]) < 1e-6
    eye = part(face, "iris_left")
    assert float(d[eye].min()) > 0.01                        # the eyes go with the head


def test_identity_coefficients_reshape_the_head_and_keep_the_topology(face):
    other = face.with_identity([2.0, -1.0, 0.5])
    assert other.fingerprint() == face.fingerprint()
    assert float((other.vertices - face.vertices).abs().max()) > 0.005
    assert torch.allclose(other.identity[:3], torch.tensor([2.0, -1.0, 0.5]))
    batch = face.identity_vertices(torch.tensor([[2.0, -1.0, 0.5]]))
    assert torch.allclose(batch[0], other.vertices, atol=1e-6)
    with pytest.raises(ValueError, match="identity"):
        face.with_identity([0.0] * (face.num_identity_modes + 1))
    with pytest.raises(ValueError, match="finite"):
        face.with_identity([float("nan")])


def test_the_shipped_asset_is_compact_and_carries_its_licence():
    path = asset_path()
    assert os.path.basename(path) == ASSET
    assert os.path.getsize(path) < 6_000_000
    licence = os.path.join(os.path.dirname(path), LICENSE)
    with open(licence, encoding="utf-8") as f:
        assert "Permission is hereby granted" in f.read()


def test_a_missing_or_corrupt_asset_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_ict_face(str(tmp_path / "nope.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        load_ict_face(str(bad))


def test_arkit_gains_scale_the_raw_ict_shapes_symmetrically(face):
    from gemo_ros.face.ict import ARKIT_GAINS, arkit_gain_vector
    raw = load_ict_face(gains={})
    assert torch.equal(raw.expression_gains, torch.ones(52))
    gain = arkit_gain_vector()
    assert torch.equal(face.expression_gains, gain)
    for key, g in ARKIT_GAINS.items():
        sides = [n for n in (key, key + "Left", key + "Right") if n in ARKIT_INDEX]
        assert sides and all(abs(float(gain[ARKIT_INDEX[n]]) - g) < 1e-6 for n in sides)
        for n in sides:                     # the basis is the raw ICT shape times its gain
            k = ARKIT_INDEX[n]
            assert torch.allclose(face.expr_basis[k], g * raw.expr_basis[k])
    assert 1.5 < ARKIT_GAINS["browInnerUp"] and 1.5 < ARKIT_GAINS["browDown"]
    # Shapes without a gain (jaw, blinks, gaze) are the raw ICT shapes.
    for n in ("jawOpen", "eyeBlinkLeft", "eyeLookUpRight", "noseSneerLeft"):
        assert torch.equal(face.expr_basis[ARKIT_INDEX[n]], raw.expr_basis[ARKIT_INDEX[n]])


def test_gains_leave_identity_template_and_rigid_eyeballs_alone(face):
    raw = load_ict_face(gains={})
    assert torch.equal(face.vertices, raw.vertices)
    assert torch.equal(face.pose(torch.zeros(1, 52)), raw.pose(torch.zeros(1, 52)))
    person = face.with_identity([1.0, -0.5])
    assert torch.equal(person.expression_gains, face.expression_gains)  # kept per identity
    assert torch.equal(person.vertices, raw.with_identity([1.0, -0.5]).vertices)
    assert torch.equal(person.identity_vertices(torch.ones(1, 3)),
                       raw.identity_vertices(torch.ones(1, 3)))
    eye = part(face, "sclera_left") | part(face, "iris_left") | part(face, "sclera_right")
    assert float(face.expr_basis[:, eye].abs().max()) == 0.0     # eyeballs: still rigid
    # The shipped asset keeps the raw shapes: a cached asset is never scaled in place.
    assert torch.equal(load_ict_face(gains={}).expr_basis, raw.expr_basis)


@pytest.mark.parametrize("gains", [{"browDownLeft": 2.0}, {"browUp": 2.0},
                                   {"browInnerUp": 0.0}, {"eyeWide": float("nan")}])
def test_bad_gains_are_a_clear_error(gains):
    with pytest.raises(ValueError):
        load_ict_face(gains=gains)
