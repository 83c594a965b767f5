"""Specifications of the Gaussian blendshape avatar: blending, binding, posing, rendering."""

import pytest
import torch

from gemo_ros.avatar import ATTRIBUTE_DIMS, GaussianAvatar
from gemo_ros.geometry import matrix_to_quat, quat_multiply, quat_to_matrix
from gemo_ros.avatar.procedural import build_default_avatar
from gemo_ros.face import ARKIT_NAMES
from gemo_ros.face import default_head as dh
from gemo_ros.geometry import axis_angle_to_matrix
from gemo_ros.render import orbit_camera, rasterize


@pytest.fixture(scope="module")
def avatar():
    torch.set_num_threads(2)
    return build_default_avatar(num_gaussians=5000, seed=1)


def _expr(**weights) -> torch.Tensor:
    e = torch.zeros(1, 52)
    for k, v in weights.items():
        e[0, ARKIT_NAMES.index(k)] = v
    return e


def _render(avatar, expr, size=64, yaw=0.0, neck=None, target=(0.0, -0.01, 0.0), dist=0.72):
    with torch.no_grad():
        g = avatar(expr, neck_rotation=neck)
        vm, K = orbit_camera(yaw, 0.0, dist, 22.0, size, size, target=target)
        rgb, _, _ = rasterize(**g.render_args(0), viewmat=vm, K=K, width=size, height=size,
                              background=torch.ones(3), backend="torch")
    return rgb


def test_attribute_dims_are_the_documented_raw_layout(avatar):
    assert avatar.attribute_dims == {"xyz": 3, "rotation": 4, "scale": 3, "color": 3,
                                     "opacity": 1}
    for key, d in ATTRIBUTE_DIMS.items():
        assert avatar.params[key].shape == (avatar.num_gaussians, d)


def test_zero_expression_gives_the_neutral_parameters(avatar):
    raw = avatar.blend(torch.zeros(2, 52))
    for key in ATTRIBUTE_DIMS:
        assert torch.equal(raw[key][1], avatar.params[key].detach())


def test_gaussian_blendshapes_are_linear_in_the_coefficients(avatar):
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 52, generator=g), torch.rand(1, 52, generator=g)
    ra, rb, rab, r0 = (avatar.blend(e) for e in (a, b, a + b, torch.zeros(1, 52)))
    for key in ATTRIBUTE_DIMS:
        assert torch.allclose(rab[key] - r0[key], (ra[key] - r0[key]) + (rb[key] - r0[key]),
                              atol=1e-5)


def test_jaw_open_darkens_the_mouth_interior(avatar):
    parts = avatar.face.vertex_parts[avatar.face.faces[avatar.binding_faces, 0]]
    cavity = parts == avatar.face.part_names.index("mouth_cavity")
    before = avatar.blend(torch.zeros(1, 52))["color"][0, cavity].mean()
    after = avatar.blend(_expr(jawOpen=1.0))["color"][0, cavity].mean()
    assert float(after.detach()) < 0.8 * float(before.detach())


def test_batched_evaluation_matches_single_frames(avatar):
    e = torch.rand(3, 52, generator=torch.Generator().manual_seed(2))
    neck = torch.tensor([[0.0, 0.1, 0.0], [0.05, 0.0, 0.0], [0.0, 0.0, 0.0]])
    batch = avatar(e, neck)
    one = avatar(e[1:2], neck[1:2])
    assert torch.allclose(batch.means[1], one.means[0], atol=1e-6)
    assert torch.allclose(batch.colors[1], one.colors[0], atol=1e-6)


def test_posed_gaussians_have_valid_render_attributes(avatar):
    g = avatar(torch.rand(2, 52))
    N = avatar.num_gaussians
    assert g.means.shape == (2, N, 3) and g.quats.shape == (2, N, 4)
    assert g.scales.shape == (2, N, 3) and g.opacities.shape == (2, N)
    assert g.colors.shape == (2, N, 3)
    assert torch.allclose(g.quats.norm(dim=-1), torch.ones(2, N), atol=1e-5)
    assert bool((g.scales > 0).all()) and bool((g.opacities >= 0).all())
    assert float(g.colors.detach().min()) >= 0.0 and float(g.colors.detach().max()) <= 1.0


def test_rigid_head_motion_moves_bound_gaussians_rigidly(avatar):
    aa = torch.tensor([[0.05, 0.5, 0.1]])
    R = axis_angle_to_matrix(aa[0])
    j = avatar.face.joints[0]
    zero = torch.zeros(1, 52)
    g0, g1 = avatar(zero), avatar(zero, aa)
    w = avatar.interpolate_at_gaussians(avatar.face.lbs_weights[None])[0]
    head = (w[:, 0] > 0.999)
    assert int(head.sum()) > 0.5 * avatar.num_gaussians
    assert torch.allclose(g1.means[0, head], (g0.means[0, head] - j) @ R.T + j, atol=1e-5)
    R0 = quat_to_matrix(g0.quats[0, head])
    R1 = quat_to_matrix(g1.quats[0, head])
    assert torch.allclose(R1, R @ R0, atol=5e-3)      # float32 frames of mm-sized triangles
    assert torch.allclose(g1.scales[0, head], g0.scales[0, head], rtol=1e-3, atol=1e-7)
    assert torch.equal(g1.colors, g0.colors)


def test_rendered_head_turn_equals_the_camera_turning_the_other_way(avatar):
    """Binding invariance in image space: turning the head by +a about the neck joint looks
    like orbiting the camera by -a around the same joint."""
    j = tuple(avatar.face.joints[0].tolist())
    a = 0.4
    turned = _render(avatar, torch.zeros(1, 52), neck=torch.tensor([[0.0, a, 0.0]]),
                     target=j, dist=0.7)
    orbit = _render(avatar, torch.zeros(1, 52), yaw=-a * 180 / torch.pi, target=j, dist=0.7)
    # The neck base is fixed to the body, so compare above it (the head).
    diff = (turned[:40] - orbit[:40]).abs()
    assert float(diff.mean()) < 0.01
    assert float((turned - _render(avatar, torch.zeros(1, 52), target=j, dist=0.7)).abs()
                 .mean()) > 0.03


def test_offsets_are_added_in_the_raw_parameter_space(avatar):
    zero = torch.zeros(1, 52)
    N = avatar.num_gaussians
    off = {"color": torch.full((1, N, 3), -0.1), "xyz": torch.zeros(1, N, 3)}
    off["xyz"][..., 2] = 0.5                     # half a triangle scale along the normal
    base, moved = avatar(zero), avatar(zero, offsets=off)
    assert torch.allclose(moved.colors, (base.colors - 0.1).clamp(0, 1), atol=1e-6)
    shift = (moved.means - base.means).norm(dim=-1)
    assert float(shift.detach().min()) > 0.0
    with pytest.raises(ValueError, match="unknown keys"):
        avatar(zero, offsets={"colour": torch.zeros(1, N, 3)})


def test_interpolate_at_gaussians_gives_the_binding_points(avatar):
    expr = _expr(jawOpen=0.7, mouthSmileLeft=1.0)
    verts = avatar.mesh(expr)
    pts = avatar.interpolate_at_gaussians(verts)
    g = avatar(expr)
    on_surface = avatar.params["xyz"].detach().abs().amax(-1) == 0
    assert torch.allclose(pts[0, on_surface], g.means[0, on_surface], atol=1e-6)


def test_canonical_means_are_the_neutral_template_positions(avatar):
    c = avatar.canonical_means()
    assert c.shape == (avatar.num_gaussians, 3)
    assert torch.allclose(c, avatar(torch.zeros(1, 52)).means[0])


def test_mesh_displacement_for_the_residual_is_zero_for_equal_coefficients(avatar):
    e = torch.rand(1, 52)
    assert torch.equal(avatar.mesh(e) - avatar.mesh(e.clone()), torch.zeros_like(avatar.mesh(e)))


def test_evaluation_is_differentiable_in_the_raw_parameters(avatar):
    g = avatar(_expr(jawOpen=0.5))
    (g.means.sum() + g.colors.sum() + g.opacities.sum() + g.scales.sum()).backward()
    for key in ("xyz", "color", "opacity", "scale", "rotation"):
        assert avatar.params[key].grad is not None
    assert avatar.deltas.grad is not None
    avatar.zero_grad()


@pytest.fixture(scope="module")
def unit_gaussians(avatar):
    """Posed Gaussians of every blendshape at weight 1 (batch of 52) and of neutral."""
    with torch.no_grad():
        return avatar(torch.eye(52)), avatar(torch.zeros(1, 52))


@pytest.mark.parametrize("name", ARKIT_NAMES)
def test_every_blendshape_moves_gaussians_only_near_its_region(avatar, unit_gaussians, name):
    posed, neutral = unit_gaussians
    k = ARKIT_NAMES.index(name)
    d = (posed.means[k] - neutral.means[0]).norm(dim=-1) + (
        posed.colors[k] - neutral.colors[0]).abs().sum(-1) * 0.01
    assert float(d.max()) > 1e-3
    c = neutral.means[0]
    x, y = c[:, 0], c[:, 1]
    if name.startswith("eye"):
        ex = dh.EYE_X if "Left" in name else -dh.EYE_X
        region = ((x - ex).abs() < 0.03) & ((y - dh.EYE_Y).abs() < 0.03)
    elif name.startswith("brow"):
        region = (y > -0.01) & (y < 0.07)
    elif name.startswith(("jaw", "tongue")):
        region = y < -0.03
    else:                                            # mouth, cheeks, nose: lower/mid face
        region = (y < 0.01) & (y > -0.13)
    assert float(d[region].sum() / d.sum()) > 0.9


@pytest.mark.parametrize("name,near,far", [
    ("eyeBlinkLeft", "left_eye", "mouth"),
    ("eyeBlinkRight", "right_eye", "left_eye"),
    ("jawOpen", "mouth", "left_eye"),
    ("browInnerUp", "brows", "mouth"),
])
def test_blendshape_changes_rendered_pixels_where_its_name_says(avatar, name, near, far):
    size = 96
    a = _render(avatar, torch.zeros(1, 52), size=size, target=(0.0, -0.02, 0.02), dist=0.5)
    b = _render(avatar, _expr(**{name: 1.0}), size=size, target=(0.0, -0.02, 0.02), dist=0.5)
    diff = (a - b).abs().sum(-1)
    # Boxes in pixels of the 96 px frontal face close-up (avatar's left = image right).
    boxes = {"left_eye": (34, 48, 52, 76), "right_eye": (34, 48, 20, 44),
             "mouth": (62, 82, 30, 66), "brows": (22, 38, 24, 72)}

    def mean_in(box):
        r0, r1, c0, c1 = box
        return float(diff[r0:r1, c0:c1].mean())
    assert mean_in(boxes[near]) > 0.05
    assert mean_in(boxes[far]) < 0.2 * mean_in(boxes[near])


def test_quaternion_helpers_agree():
    R = axis_angle_to_matrix(torch.randn(100, 3, generator=torch.Generator().manual_seed(3)))
    q = matrix_to_quat(R)
    assert torch.allclose(quat_to_matrix(q), R, atol=1e-5)
    q2 = matrix_to_quat(R.flip(0))
    assert torch.allclose(quat_to_matrix(quat_multiply(q, q2)), R @ R.flip(0), atol=1e-5)


def test_bad_inputs_raise_clear_errors(avatar):
    with pytest.raises(ValueError, match="expr must be"):
        avatar(torch.zeros(1, 51))
    with pytest.raises(ValueError, match="unknown expression"):
        avatar.expression_vector({"smile": 1.0})
    p = {k: v.detach() for k, v in avatar.params.items()}
    with pytest.raises(ValueError, match="binding_faces index outside"):
        GaussianAvatar(avatar.face, avatar.binding_faces + 10 ** 7, avatar.binding_bary, p)


def _centroid_bound(n: int, seed: int):
    """``(face, binding faces, barycentrics, generator)``: n Gaussians at random triangles."""
    from gemo_ros import face as face_mod

    face = face_mod.load_face_model("default")
    rng = torch.Generator().manual_seed(seed)
    faces = torch.randint(0, len(face.faces), (n,), generator=rng)
    return face, faces, torch.full((n, 3), 1.0 / 3.0), rng


def test_level_of_detail_keeps_a_subset_its_blendshapes_and_grows_scales() -> None:
    from gemo_ros.avatar import level_of_detail, model

    n = 400
    face, faces, bary, rng = _centroid_bound(n, 0)
    params = {k: torch.randn(n, d, generator=rng) * 0.01
              for k, d in model.ATTRIBUTE_DIMS.items()}
    deltas = torch.randn(face.num_expressions, 50, sum(model.ATTRIBUTE_DIMS.values()))
    av = model.GaussianAvatar(face, faces, bary, params, deltas, torch.arange(0, 100, 2))
    small = level_of_detail(av, 100)
    assert small.num_gaussians == 100
    assert 0 < small.delta_index.numel() < 50
    expr = torch.zeros(1, face.num_expressions)
    with torch.no_grad():
        big_scale = av(expr).scales.mean()
        small_scale = small(expr).scales.mean()
    assert float(small_scale / big_scale) == pytest.approx(2.0, rel=0.3)   # sqrt(400 / 100)
    assert level_of_detail(av, 0) is av


def test_contrast_level_marks_thin_dark_strands_not_smooth_skin() -> None:
    from gemo_ros.avatar import model

    rng = torch.Generator().manual_seed(0)
    pos = torch.rand(600, 3, generator=rng, dtype=torch.float64) * 0.01
    skin = torch.tensor([0.8, 0.6, 0.5], dtype=torch.float64)
    col = skin + 0.02 * torch.randn(600, 3, generator=rng, dtype=torch.float64)
    strand = pos[:, 0] < 0.001                      # a thin dark line across the patch
    col[strand] = torch.tensor([0.1, 0.07, 0.05], dtype=torch.float64)
    level = model._contrast_level(pos, col)
    away = pos[:, 0] > 0.004                        # skin clear of the strand's edge
    assert int(level[away].max()) == 0              # skin variation stays coarse
    assert float(level[strand].float().mean()) >= 1.0     # the strand gets finer cells
    assert int(level.max()) <= model.LOD_FINE_LEVELS


def test_level_of_detail_keeps_high_contrast_gaussians_denser() -> None:
    from gemo_ros.avatar import level_of_detail, model

    n = 2000
    face, faces, bary, _ = _centroid_bound(n, 1)
    params = {k: torch.zeros(n, d) for k, d in model.ATTRIBUTE_DIMS.items()}
    params["opacity"][:] = 2.0                      # scale 0: Gaussians as big as triangles
    params["color"][:] = torch.tensor([0.8, 0.6, 0.5])
    params["rotation"][:, 0] = 1.0
    params["rotation"][:, 1] = torch.arange(n) * 1e-6       # tags each Gaussian (kept as is)
    dark = torch.arange(n) % 10 == 0                # a tenth, spread over the face
    deltas = torch.zeros(face.num_expressions, 0, sum(model.ATTRIBUTE_DIMS.values()))
    uniform = model.GaussianAvatar(face, faces, bary, params, deltas,
                                   torch.zeros(0, dtype=torch.long))
    params = {k: v.clone() for k, v in params.items()}
    params["color"][dark] = torch.tensor([0.05, 0.05, 0.05])
    contrast = model.GaussianAvatar(face, faces, bary, params, deltas,
                                    torch.zeros(0, dtype=torch.long))
    small = level_of_detail(contrast, 500)
    assert small.num_gaussians == 500
    kept = torch.round(small.params["rotation"][:, 1] * 1e6).long()
    kept_dark = int(dark[kept].sum())
    # Without the contrast rule a quarter of the dark tenth would survive (~50).
    assert kept_dark > 80
    assert level_of_detail(uniform, 500).num_gaussians == 500
