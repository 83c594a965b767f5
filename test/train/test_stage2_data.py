"""Specifications of the Stage 2 data: the synthetic teacher and the on-disk dataset format."""

import json

import numpy as np
import pytest
import torch

from gemo_ros.emotions import EMOTIONS, emotion_index
from gemo_ros.pipeline import RenderSettings, TalkingHead
from gemo_ros.train.stage2_data import (GROUPS, SpeechClip, DatasetError, EmotionTeacher,
                                        FaceLandmarks, Stage2Frames, SyntheticSpec,
                                        generate_synthetic, load_stage2_dataset,
                                        write_stage2_dataset)


@pytest.fixture(scope="module")
def avatar():
    from gemo_ros.avatar.procedural import build_default_avatar

    avatar = build_default_avatar(num_gaussians=1500, seed=0)
    for param in avatar.parameters():
        param.requires_grad_(False)
    return avatar


@pytest.fixture(scope="module")
def dense():
    """The shipped avatar at full density: thin lines need many Gaussians to show."""
    from gemo_ros.avatar import load_avatar

    return load_avatar("default")


@pytest.fixture(scope="module")
def head(avatar):
    return TalkingHead(avatar, None, None, settings=RenderSettings(backend="torch"))


def tone(seconds: float, rate: int = 16000) -> SpeechClip:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return SpeechClip(f"tone{seconds}", wave.astype(np.float32), rate)


@pytest.fixture(scope="module")
def frames(head):
    spec = SyntheticSpec(size=24, intensities_per_emotion=1, frames_per_intensity=1,
                         test_frames_per_level=1, test_levels=(1.0,), seed=3)
    return generate_synthetic(head, [tone(0.6)], [tone(0.4)], spec, window=3, feature_dim=6,
                              progress=False)


def test_teacher_changes_nothing_at_intensity_zero(avatar):
    teacher = EmotionTeacher(avatar)
    g = avatar(torch.zeros(2, 52))
    out = teacher.apply(g, torch.tensor([1, 6]), torch.zeros(2))
    assert torch.equal(out.means, g.means)
    assert torch.equal(out.colors, g.colors.clamp(0, 1))


def test_teacher_neutral_look_is_empty(avatar):
    teacher = EmotionTeacher(avatar)
    g = avatar(torch.zeros(1, 52))
    out = teacher.apply(g, torch.tensor([0]), torch.ones(1))
    assert torch.equal(out.means, g.means)
    assert torch.equal(out.colors, g.colors)


@pytest.mark.parametrize("name", [e for e in EMOTIONS if e != "neutral"])
def test_every_emotion_changes_appearance_and_geometry(avatar, name):
    teacher = EmotionTeacher(avatar)
    g = avatar(torch.zeros(1, 52))
    out = teacher.apply(g, torch.tensor([emotion_index(name)]), torch.ones(1))
    assert float((out.colors - g.colors).abs().max()) > 0.02
    assert float((out.means - g.means).norm(dim=-1).max()) > 0.0005


def test_teacher_effects_grow_linearly_with_intensity(avatar):
    teacher = EmotionTeacher(avatar)
    g = avatar(torch.zeros(2, 52))
    out = teacher.apply(g, torch.tensor([6, 6]), torch.tensor([0.5, 1.0]))
    move = (out.means - g.means).norm(dim=-1)
    assert torch.allclose(move[1], 2 * move[0], atol=1e-7)


def _face_skin(avatar, teacher):
    """Front skin Gaussians of the procedural head (not eyes, lids, lips' inside, hair)."""
    p = avatar.canonical_means()
    parts = np.array(teacher._parts(avatar))
    return torch.from_numpy(np.isin(parts, ["skin"])) & (p[:, 2] > 0.05)


@pytest.mark.parametrize("name", [e for e in EMOTIONS if e != "neutral"])
def test_no_emotion_washes_the_face_with_colour(avatar, name):
    """Colour changes are local (wrinkles, eyes, a faint flush), never a whole-face tint."""
    teacher = EmotionTeacher(avatar)
    g = avatar(torch.zeros(1, 52))
    out = teacher.apply(g, torch.tensor([emotion_index(name)]), torch.ones(1))
    rel = (out.colors[0] / g.colors[0].clamp_min(1e-3) - 1.0)[_face_skin(avatar, teacher)]
    # Most of the face is untouched, and the mean tint of the face is tiny.
    assert float((rel.abs().amax(-1) > 0.02).float().mean()) < 0.3
    assert float(rel.mean(0).abs().max()) < 0.02
    # No channel is pushed against the others over the face (no red/blue/yellow cast).
    cast = rel.mean(0) - rel.mean()
    assert float(cast.abs().max()) < 0.01


def _profile(teacher, group, avatar, along, fixed, lo, hi):
    """Mean colour multiplier of one pattern group in bins along an axis of the face."""
    p = avatar.canonical_means()
    k = GROUPS.index(group)
    mul = teacher.mul[k].mean(-1)
    sel = (p[:, fixed[0]] - fixed[1]).abs() < fixed[2]
    sel &= p[:, 2] > 0.05
    edges = torch.linspace(lo, hi, 41)
    vals = []
    for a, b in zip(edges[:-1], edges[1:]):
        m = sel & (p[:, along] >= a) & (p[:, along] < b)
        vals.append(float(mul[m].mean()) if m.any() else 0.0)
    return np.array(vals)


def _extrema(vals, dark=-0.05, light=0.02):
    """Count dark grooves and light ridges (local minima / maxima beyond thresholds)."""
    mins = [i for i in range(1, len(vals) - 1)
            if vals[i] < dark and vals[i] <= vals[i - 1] and vals[i] <= vals[i + 1]]
    maxs = [i for i in range(1, len(vals) - 1)
            if vals[i] > light and vals[i] >= vals[i - 1] and vals[i] >= vals[i + 1]]
    return mins, maxs


def test_forehead_lines_are_horizontal_grooves_with_ridges(dense):
    avatar = dense
    teacher = EmotionTeacher(avatar)
    lm = teacher.landmarks
    brow = float(lm.brow_inner[1])
    # Up the forehead's midline: several dark grooves separated by lighter ridges.
    vals = _profile(teacher, "forehead", avatar, 1, (0, 0.0, 0.004), brow, brow + 0.06)
    mins, maxs = _extrema(vals)
    assert len(mins) >= 2 and len(maxs) >= 2
    # Across the forehead at one groove's height it stays dark: a horizontal line.
    y = brow + 0.06 * (mins[0] + 0.5) / 40
    across = _profile(teacher, "forehead", avatar, 0, (1, y, 0.0008), -0.015, 0.015)
    assert float(np.median(across[across != 0])) < -0.03


def test_glabellar_furrows_are_two_vertical_lines_between_the_brows(dense):
    avatar = dense
    teacher = EmotionTeacher(avatar)
    lm = teacher.landmarks
    y = float(lm.eye[:, 1].mean() + lm.brow_inner[1]) / 2
    vals = _profile(teacher, "glabella", avatar, 0, (1, y, 0.003), -0.02, 0.02)
    mins, _ = _extrema(vals)
    assert len(mins) == 2
    centres = (np.array(mins) + 0.5) / 40 * 0.04 - 0.02
    assert centres[0] < 0 < centres[1] and abs(centres[0] + centres[1]) < 0.002
    # Vertical: the same two grooves a few millimetres higher.
    up = _profile(teacher, "glabella", avatar, 0, (1, y + 0.004, 0.003), -0.02, 0.02)
    assert len(_extrema(up)[0]) == 2


def test_each_emotion_paints_its_own_wrinkles(dense):
    teacher = EmotionTeacher(dense)
    gates = teacher.gates
    expect = {"surprised": "forehead", "sad": "forehead_medial", "fear": "forehead_medial",
              "angry": "glabella", "happy": "crows_feet", "disgusted": "nose_bridge",
              "contempt": "dimple_right"}
    for name, group in expect.items():
        assert float(gates[emotion_index(name), GROUPS.index(group)]) == 1.0 or \
            name == "fear"
        assert float(teacher.mul[GROUPS.index(group)].min()) < -0.2    # a real groove
    assert float(gates[emotion_index("happy"), GROUPS.index("nasolabial")]) > 0
    assert float(gates[emotion_index("sad"), GROUPS.index("wet_eyes")]) > 0


def test_wrinkles_follow_the_expression_coefficients(avatar):
    """Forehead lines deepen with browInnerUp/browOuterUp of the posed face."""
    teacher = EmotionTeacher(avatar)
    g = avatar(torch.zeros(3, 52))
    names = list(avatar.face.expression_names)
    expr = torch.zeros(3, 52)
    for k, v in enumerate((0.0, 0.5, 1.0)):
        for n in ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"):
            expr[k, names.index(n)] = v
    e = torch.full((3,), emotion_index("surprised"))
    out = teacher.apply(g, e, torch.ones(3), expr=expr)
    depth = (g.colors - out.colors).clamp_min(0).sum((1, 2))
    assert float(depth[0]) < float(depth[1]) < float(depth[2])
    s = teacher.strengths(e, torch.ones(3), expr)[:, GROUPS.index("forehead")]
    # 0.5 + 0.5 min(1.5, sum / nominal) with the nominal sum 2.0 of the three brow channels
    assert torch.allclose(s, torch.tensor([0.5, 0.875, 1.25]))


def _scaled_copy(avatar, scale, shift):
    from gemo_ros.avatar.model import GaussianAvatar
    from gemo_ros.face.model import FaceModel

    f = avatar.face
    sh = torch.tensor(shift)
    face = FaceModel(f.vertices * scale + sh, f.faces, f.expr_basis * scale, f.lbs_weights,
                     f.joints * scale + sh, f.expression_names, f.model_type, f.vertex_parts,
                     f.part_names)
    params = {k: v.detach() for k, v in avatar.params.items()}
    return GaussianAvatar(face, avatar.binding_faces, avatar.binding_bary, params,
                          avatar.deltas.detach(), avatar.delta_index)


def test_patterns_are_placed_from_the_head_not_fixed_coordinates(avatar):
    """A bigger head somewhere else gets the same patterns on the same skin."""
    a = EmotionTeacher(avatar)
    b = EmotionTeacher(_scaled_copy(avatar, 1.2, (0.003, 0.01, -0.005)))
    assert b.landmarks.iod == pytest.approx(1.2 * a.landmarks.iod, rel=1e-4)
    assert torch.allclose(b.mul, a.mul, atol=2e-3)
    assert torch.allclose(b.geo, 1.2 * a.geo, atol=2e-5)


def test_landmarks_and_patterns_on_the_ict_face_model():
    """The teacher works on the ICT head too (landmarks from its ARKit shapes)."""
    from gemo_ros.avatar.model import GaussianAvatar
    from gemo_ros.face.model import load_face_model

    face = load_face_model("ict")
    lm = FaceLandmarks.from_face(face)
    assert 0.055 < lm.iod < 0.075
    assert lm.eye[0, 0] > 0 > lm.eye[1, 0] and lm.mouth_corner[0, 0] > 0
    assert lm.brow_inner[1] > lm.eye[0, 1] > lm.nose_tip[1] > lm.mouth_corner[0, 1]
    assert abs(float(lm.canthus[0, 0])) > abs(float(lm.eye[0, 0]))
    # A bare avatar: one Gaussian at the centre of every skin triangle of the face.
    skin = face.vertex_parts[face.faces[:, 0]] == face.part_names.index("face")
    tri = torch.nonzero(skin)[:, 0]
    n = len(tri)
    params = {"xyz": torch.zeros(n, 3), "rotation": torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
              "scale": torch.zeros(n, 3), "color": torch.full((n, 3), 0.6),
              "opacity": torch.zeros(n, 1)}
    av = GaussianAvatar(face, tri, torch.full((n, 3), 1 / 3), params)
    teacher = EmotionTeacher(av)
    g = av(torch.zeros(1, 52))
    for name, group in (("surprised", "forehead"), ("angry", "glabella"),
                        ("happy", "nasolabial"), ("disgusted", "nose_bridge")):
        out = teacher.apply(g, torch.tensor([emotion_index(name)]), torch.ones(1))
        darker = (g.colors - out.colors)[0].amax(-1)
        assert float(darker.max()) > 0.1, name
        assert float((darker > 0.02).float().mean()) < 0.15, name     # local, not a wash


def test_synthetic_frames_have_consistent_shapes(frames):
    f = len(frames)
    assert frames.feats.shape == (f, 3, 6)
    assert frames.image.shape == (f, 24, 24, 3) and frames.image.dtype == torch.uint8
    assert frames.psi_n.shape == frames.psi_e.shape == (f, 52)
    assert frames.viewmat.shape == (f, 4, 4) and frames.K.shape == (f, 3, 3)
    assert bool(frames.test.any()) and bool((~frames.test).any())
    # Held-out frames come from the held-out clip only.
    assert set(frames.clip[frames.test].tolist()) == {1}
    assert set(frames.clip[~frames.test].tolist()) == {0}


def test_frames_cache_round_trip(frames, tmp_path):
    path = str(tmp_path / "frames.pt")
    frames.save(path)
    back = Stage2Frames.load(path)
    for name in ("feats", "image", "psi_e", "viewmat", "test"):
        assert torch.equal(getattr(frames, name), getattr(back, name))


def test_dataset_format_round_trip(head, frames, tmp_path):
    clips = [tone(0.6), tone(0.4)]
    root = str(tmp_path / "ds")
    write_stage2_dataset(root, frames, clips, fps=25.0)
    back = load_stage2_dataset(root, head, window=3, feature_dim=6)
    assert len(back) == len(frames)
    assert torch.equal(back.image, frames.image)
    assert torch.equal(back.emotion, frames.emotion)
    assert torch.equal(back.test, frames.test)
    assert torch.allclose(back.psi_e, frames.psi_e, atol=1e-5)
    assert torch.allclose(back.viewmat, frames.viewmat, atol=1e-6)
    only_test = load_stage2_dataset(root, head, window=3, feature_dim=6, splits=("test",))
    assert len(only_test) == int(frames.test.sum())


def test_dataset_accepts_mead_levels_and_names_bad_fields(head, frames, tmp_path):
    root = tmp_path / "ds"
    write_stage2_dataset(str(root), frames, [tone(0.6), tone(0.4)], fps=25.0)
    manifest = json.loads((root / "stage2.json").read_text())
    entry = manifest["frames"][0]
    entry.pop("intensity")
    entry["emotion"] = "anger"
    entry["level"] = 2
    (root / "stage2.json").write_text(json.dumps(manifest))
    back = load_stage2_dataset(str(root), head, window=3, feature_dim=6)
    assert int(back.emotion[0]) == emotion_index("angry")
    assert float(back.intensity[0]) == pytest.approx(2 / 3)
    entry["emotion"] = "grumpy"
    (root / "stage2.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"frames\[0\].*grumpy"):
        load_stage2_dataset(str(root), head, window=3, feature_dim=6)
    entry["emotion"] = "sad"
    entry["viewmat"] = [[1, 0], [0, 1]]
    (root / "stage2.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="viewmat"):
        load_stage2_dataset(str(root), head, window=3, feature_dim=6)


def test_missing_manifest_is_reported(head, tmp_path):
    with pytest.raises(DatasetError, match="stage2.json"):
        load_stage2_dataset(str(tmp_path), head)
