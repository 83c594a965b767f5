"""Specifications of the default face model: mesh, 52 ARKit blendshapes, joints and LBS."""

import math

import pytest
import torch

from gemo_ros.face import ARKIT_NAMES, load_face_model
from gemo_ros.face import default_head as dh
from gemo_ros.geometry import axis_angle_to_matrix

JOINT_DRIVEN = {n for n in ARKIT_NAMES if n.startswith("jaw") or n.startswith("eyeLook")}


@pytest.fixture(scope="module")
def face():
    return load_face_model("default")


@pytest.fixture(scope="module")
def unit_poses(face):
    with torch.no_grad():
        return face.pose(torch.eye(52)) - face.vertices


def expected_region(name: str, v: torch.Tensor) -> torch.Tensor:
    """Boolean mask of template vertices where blendshape ``name`` may act."""
    x, y = v[:, 0], v[:, 1]
    ax = x.abs()
    if name.startswith("eye"):
        ex = dh.EYE_X if "Left" in name else -dh.EYE_X
        return ((x - ex).abs() < 0.03) & ((y - dh.EYE_Y).abs() < 0.03)
    if name.startswith("jaw"):
        return y < -0.03
    if name.startswith("mouthSmile"):                 # a smile also lifts the cheek
        return (ax < 0.07) & (y < 0.0) & (y > -0.12)
    if name.startswith("mouth"):
        return (ax < 0.065) & (y < -0.03) & (y > -0.12)
    if name.startswith("brow"):
        return (ax < 0.07) & (y > -0.005) & (y < 0.06)
    if name == "cheekPuff":
        return (y < -0.02) & (y > -0.11)
    if name.startswith("cheekSquint"):
        return (y < 0.01) & (y > -0.06)
    if name.startswith("noseSneer"):
        return (ax < 0.035) & (y < 0.01) & (y > -0.07)
    if name == "tongueOut":
        return (ax < 0.03) & (y < -0.05) & (y > -0.09)
    raise AssertionError(name)


def test_default_model_has_the_52_arkit_names_and_four_joints(face):
    assert face.expression_names == ARKIT_NAMES
    assert face.joint_names == ("neck", "jaw", "eye_left", "eye_right")
    V = face.num_vertices
    assert face.expr_basis.shape == (52, V, 3)
    assert face.lbs_weights.shape == (V, 4)


def test_mesh_has_every_part_and_no_degenerate_triangles(face):
    for part in ("skin", "eye_left", "eye_right", "lid_upper_left", "teeth_upper",
                 "teeth_lower", "mouth_cavity", "tongue", "ear_left", "hair", "neck"):
        assert int(face.region(part).sum()) > 100, part
    tri = face.vertices[face.faces]
    area = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1)
    assert float(area.min()) > 0.0


def test_head_is_human_sized(face):
    skin = face.vertices[face.region("skin")]
    height = float(skin[:, 1].max() - skin[:, 1].min())
    width = float(skin[:, 0].max() - skin[:, 0].min())
    assert 0.21 < height < 0.27 and 0.13 < width < 0.18


def test_zero_pose_returns_the_template_exactly(face):
    verts = face.pose(torch.zeros(3, 52))
    assert torch.equal(verts, face.vertices.expand(3, -1, -1))


def test_expression_basis_is_linear(face):
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 52, generator=g), torch.rand(1, 52, generator=g)
    lhs = face.shape_vertices(a + b) - face.vertices
    rhs = (face.shape_vertices(a) - face.vertices) + (face.shape_vertices(b) - face.vertices)
    assert torch.allclose(lhs, rhs, atol=1e-6)


def test_pose_equals_the_basis_for_coefficients_that_drive_no_joint(face):
    expr = torch.zeros(1, 52)
    for i, name in enumerate(ARKIT_NAMES):
        if name not in JOINT_DRIVEN:
            expr[0, i] = 0.3
    posed = face.pose(expr)
    assert torch.allclose(posed, face.shape_vertices(expr), atol=1e-7)


def test_neck_rotation_moves_the_head_rigidly(face):
    aa = torch.tensor([[0.1, 0.4, -0.05]])
    posed = face.pose(torch.zeros(1, 52), aa)[0]
    R = axis_angle_to_matrix(aa[0])
    j = face.joints[0]
    head = face.lbs_weights[:, 0] == 1.0
    expected = (face.vertices[head] - j) @ R.T + j
    assert torch.allclose(posed[head], expected, atol=1e-6)
    fixed = face.lbs_weights.sum(-1) == 0.0          # bottom of the neck stays with the body
    assert torch.allclose(posed[fixed], face.vertices[fixed], atol=1e-7)


def test_jaw_open_drops_the_chin_and_keeps_the_upper_teeth(face):
    expr = torch.zeros(1, 52)
    expr[0, ARKIT_NAMES.index("jawOpen")] = 1.0
    d = face.pose(expr)[0] - face.vertices
    lower = face.region("teeth_lower")
    assert float(d[lower, 1].mean()) < -0.01
    assert float(d[face.region("teeth_upper")].abs().max()) == 0.0


def test_eye_look_out_left_turns_the_left_eye_toward_plus_x(face):
    expr = torch.zeros(1, 52)
    expr[0, ARKIT_NAMES.index("eyeLookOutLeft")] = 1.0
    eye = face.region("eye_left")
    front = face.vertices[eye][:, 2].argmax()              # pupil centre
    posed = face.pose(expr)[0][eye][front]
    assert float(posed[0] - face.vertices[eye][front][0]) > 0.003
    right = face.pose(expr)[0][face.region("eye_right")]
    assert torch.allclose(right, face.vertices[face.region("eye_right")])


def test_eye_blink_left_closes_the_upper_lid_below_the_eye_centre(face):
    expr = torch.zeros(1, 52)
    expr[0, ARKIT_NAMES.index("eyeBlinkLeft")] = 1.0
    lid = face.region("lid_upper_left") & ((face.vertices[:, 0] - dh.EYE_X).abs() < 0.002)
    before = face.vertices[lid][:, 1].min()             # the margin over the pupil
    after = face.pose(expr)[0][lid][:, 1].min()
    assert float(before) > dh.EYE_Y + 0.001
    assert float(after) < dh.EYE_Y - 0.002


def test_pose_is_differentiable_in_coefficients_and_neck_rotation(face):
    expr = torch.full((2, 52), 0.2, requires_grad=True)
    neck = torch.tensor([[0.0, 0.2, 0.0], [0.1, 0.0, 0.0]], requires_grad=True)
    face.pose(expr, neck)[:, :2000].sum().backward()
    assert expr.grad is not None and torch.isfinite(expr.grad).all()
    assert neck.grad is not None and float(neck.grad.abs().sum()) > 0


@pytest.mark.parametrize("name", ARKIT_NAMES)
def test_every_blendshape_moves_the_region_it_names(face, unit_poses, name):
    d = unit_poses[ARKIT_NAMES.index(name)].norm(dim=-1)
    assert float(d.max()) > 0.002, "does almost nothing"
    region = expected_region(name, face.vertices)
    inside = float(d[region].sum() / d.sum())
    assert inside > 0.9, f"only {inside:.0%} of the motion is in the named region"
    left = float(d[face.vertices[:, 0] > 0].sum() / d.sum())
    if name in ("jawLeft", "jawRight", "mouthLeft", "mouthRight"):
        return                                         # whole-mouth shifts: see direction test
    if name.endswith("Left"):
        assert left > 0.85
    elif name.endswith("Right"):
        assert left < 0.15
    else:
        assert 0.4 < left < 0.6


@pytest.mark.parametrize("name,axis,sign", [
    ("mouthLeft", 0, 1), ("mouthRight", 0, -1), ("jawLeft", 0, 1), ("jawRight", 0, -1),
    ("browInnerUp", 1, 1), ("browDownLeft", 1, -1), ("mouthSmileLeft", 1, 1),
    ("mouthFrownRight", 1, -1), ("mouthPucker", 2, 1), ("jawForward", 2, 1),
    ("tongueOut", 2, 1), ("mouthUpperUpLeft", 1, 1), ("mouthLowerDownRight", 1, -1),
])
def test_blendshape_moves_in_the_direction_its_name_says(face, unit_poses, name, axis, sign):
    d = unit_poses[ARKIT_NAMES.index(name)]
    mag = d.norm(dim=-1)
    moving = mag > 0.5 * mag.max()
    assert sign * float(d[moving, axis].mean()) > 0.0


def test_axis_angle_matches_a_known_rotation():
    R = axis_angle_to_matrix(torch.tensor([0.0, math.pi / 2, 0.0]))
    assert torch.allclose(R @ torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0]),
                          atol=1e-6)


def test_unknown_face_model_type_raises_a_clear_error():
    with pytest.raises(ValueError, match="no face model loader"):
        load_face_model("flame")


def test_posing_a_vertex_subset_equals_slicing_the_full_pose(face):
    ids = torch.arange(0, face.num_vertices, 7)
    expr = torch.rand(2, 52, generator=torch.Generator().manual_seed(4))
    neck = torch.tensor([[0.1, -0.2, 0.0], [0.0, 0.3, 0.1]])
    full = face.pose(expr, neck)
    assert torch.allclose(face.pose(expr, neck, vertex_ids=ids), full[:, ids], atol=1e-7)


def test_child_joint_transforms_compose_the_neck_with_the_local_rotation(face):
    from gemo_ros.face import model as fm

    expr = torch.rand(3, 52)
    neck = torch.randn(3, 3) * 0.3
    T = face.joint_transforms(expr, neck)
    names = ("jawOpen", "jawLeft", "jawRight", "jawForward", "eyeLookOutLeft", "eyeLookInLeft",
             "eyeLookDownLeft", "eyeLookUpLeft")
    c = {n: expr[:, ARKIT_NAMES.index(n)] for n in names}
    zero = torch.zeros(3)
    R_jaw = axis_angle_to_matrix(torch.stack([fm.JAW_OPEN_MAX * c["jawOpen"], zero, zero], -1)) \
        @ axis_angle_to_matrix(torch.stack(
            [zero, fm.JAW_SIDE_MAX * (c["jawLeft"] - c["jawRight"]), zero], -1))
    yaw = fm.EYE_YAW_MAX * (c["eyeLookOutLeft"] - c["eyeLookInLeft"])
    pitch = fm.EYE_PITCH_MAX * (c["eyeLookDownLeft"] - c["eyeLookUpLeft"])
    R_eye = axis_angle_to_matrix(torch.stack([zero, yaw, zero], -1)) \
        @ axis_angle_to_matrix(torch.stack([pitch, zero, zero], -1))
    R_neck = axis_angle_to_matrix(neck)
    j = face.joints
    p = torch.tensor([0.01, -0.02, 0.05])           # any point, moved by each joint
    fwd = torch.stack([zero, zero, fm.JAW_FORWARD_MAX * c["jawForward"]], -1)

    def apply(T_j, x):
        return (T_j[..., :3] @ x[..., None])[..., 0] + T_j[..., 3]

    def about(R, centre, x):
        return ((R @ (x - centre)[..., None])[..., 0]) + centre

    want_jaw = about(R_neck, j[0], about(R_jaw, j[1], p.expand(3, 3)) + fwd)
    want_eye = about(R_neck, j[0], about(R_eye, j[2], p.expand(3, 3)))
    assert T.shape == (3, 4, 3, 4)
    assert torch.allclose(apply(T[:, 0], p.expand(3, 3)), about(R_neck, j[0], p.expand(3, 3)),
                          atol=1e-6)
    assert torch.allclose(apply(T[:, 1], p.expand(3, 3)), want_jaw, atol=1e-6)
    assert torch.allclose(apply(T[:, 2], p.expand(3, 3)), want_eye, atol=1e-6)
