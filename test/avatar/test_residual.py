"""Specifications of the emotion residual module (synthetic tensors, no avatar needed)."""

import dataclasses
import math

import pytest
import torch

from gemo_ros.avatar.residual import (EmotionResidual, ResidualConfig, build_binding,
                                      load_residual, positional_encoding)
from gemo_ros.emotions import EMOTIONS, emotion_index

DIMS = {"xyz": 3, "rotation": 4, "scale": 3, "color": 3, "opacity": 1}


def make(n: int = 300, b: int = 2, feature_dim: int = 16, window: int = 5, seed: int = 0,
         **cfg):
    """Return a small module and matching random inputs."""
    torch.manual_seed(seed)
    config = ResidualConfig(attribute_dims=dict(DIMS), feature_dim=feature_dim, dim=32, heads=4,
                            num_clusters=cfg.pop("num_clusters", 32), **cfg)
    model = EmotionResidual(config)
    canonical = torch.randn(n, 3) * 0.1
    disp = torch.randn(b, n, 3) * 0.004
    audio = torch.randn(b, window, feature_dim)
    return model, canonical, disp, audio


def total_norm(offsets):
    return sum(float(v.detach().norm()) for v in offsets.values())


def test_offsets_are_exactly_zero_at_intensity_zero():
    model, canonical, disp, audio = make()
    out = model(disp, canonical, audio, torch.tensor([1, 6]), torch.tensor([0.0, 0.0]))
    for value in out.values():
        assert torch.equal(value, torch.zeros_like(value))


def test_offsets_are_exactly_zero_for_neutral_at_any_intensity():
    model, canonical, disp, audio = make()
    out = model(disp, canonical, audio, torch.tensor([0, 0]), torch.tensor([1.0, 0.5]))
    for value in out.values():
        assert torch.equal(value, torch.zeros_like(value))


def test_zero_gate_is_per_frame_in_a_batch():
    model, canonical, disp, audio = make()
    out = model(disp, canonical, audio, torch.tensor([0, 2]), torch.tensor([1.0, 1.0]))
    assert torch.equal(out["color"][0], torch.zeros_like(out["color"][0]))
    assert out["color"][1].abs().sum() > 0


def test_offsets_grow_with_intensity():
    model, canonical, disp, audio = make(b=1)
    emotion = torch.tensor([emotion_index("angry")])
    norms = []
    for level in (0.1, 0.3, 0.5, 0.7, 0.9, 1.0):
        # The mesh displacement also grows with intensity in the real pipeline.
        out = model(disp * level, canonical, audio, emotion, torch.tensor([level]))
        norms.append(total_norm(out))
    assert all(a < b for a, b in zip(norms, norms[1:])), norms


def test_output_has_one_entry_per_attribute_with_its_width():
    model, canonical, disp, audio = make(b=3, n=77)
    out = model(disp[:1].expand(3, -1, -1), canonical, audio[:1].expand(3, -1, -1),
                torch.tensor([1, 2, 3]), torch.tensor([0.2, 0.5, 1.0]))
    assert list(out) == list(DIMS)
    for name, width in DIMS.items():
        assert out[name].shape == (3, 77, width)


@pytest.mark.parametrize("n", [1, 2, 5, 31, 32, 33, 1000])
def test_shapes_hold_for_any_gaussian_count(n):
    model, canonical, disp, audio = make(n=n, b=2)
    out = model(disp, canonical, audio, torch.tensor([1, 4]), torch.tensor([0.5, 1.0]))
    for name, width in DIMS.items():
        assert out[name].shape == (2, n, width)
        assert torch.isfinite(out[name]).all()


def test_any_window_length_up_to_the_maximum_is_accepted():
    model, canonical, disp, _ = make(b=1)
    for w in (1, 4, 9):
        out = model(disp[:1], canonical, torch.randn(1, w, 16), torch.tensor([1]),
                    torch.tensor([1.0]))
        assert out["xyz"].shape == (1, 300, 3)


def test_gradients_reach_every_parameter():
    model, canonical, disp, audio = make()
    out = model(disp, canonical, audio, torch.tensor([1, 5]), torch.tensor([0.6, 1.0]))
    loss = sum((v ** 2).sum() + v.sum() for v in out.values())
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_rebinds_when_the_gaussian_set_changes():
    model, canonical, disp, audio = make(n=100, b=1)
    model(disp[:1], canonical, audio[:1], torch.tensor([1]), torch.tensor([1.0]))
    other = torch.randn(40, 3) * 0.1
    out = model(torch.randn(1, 40, 3) * 0.01, other, audio[:1], torch.tensor([1]),
                torch.tensor([1.0]))
    assert out["xyz"].shape == (1, 40, 3)


def test_save_load_round_trip_gives_identical_offsets(tmp_path):
    model, canonical, disp, audio = make(output_scale={"xyz": 0.5})
    args = (disp, canonical, audio, torch.tensor([3, 7]), torch.tensor([0.4, 0.9]))
    with torch.no_grad():
        before = model(*args)
    path = tmp_path / "res.safetensors"
    model.save(path, extra={"note": "test"})
    loaded = load_residual(path)
    assert loaded.config == model.config
    assert loaded.metadata["note"] == "test"
    with torch.no_grad():
        after = loaded(*args)
    for name in DIMS:
        assert torch.equal(before[name], after[name])


def test_loading_a_foreign_file_raises_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="not an emotion-residual file"):
        load_residual(path)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a file at all")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_residual(garbage)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_residual(tmp_path / "missing.safetensors")


def test_bad_inputs_raise_errors_naming_the_problem():
    model, canonical, disp, audio = make()
    e, i = torch.tensor([1, 2]), torch.tensor([0.5, 0.5])
    with pytest.raises(ValueError, match="displacement"):
        model(disp[0], canonical, audio, e, i)
    with pytest.raises(ValueError, match="canonical"):
        model(disp, canonical[:-1], audio, e, i)
    with pytest.raises(ValueError, match="audio features"):
        model(disp, canonical, audio[..., :3], e, i)
    with pytest.raises(ValueError, match="emotion ids"):
        model(disp, canonical, audio, torch.tensor([1, len(EMOTIONS)]), i)
    with pytest.raises(ValueError, match="NaN"):
        model(disp, canonical, audio, e, torch.tensor([float("nan"), 0.5]))
    with pytest.raises(ValueError, match="divisible"):
        EmotionResidual(ResidualConfig(dim=30, heads=4))


def test_intensity_is_clamped_to_the_unit_interval():
    model, canonical, disp, audio = make(b=1)
    e = torch.tensor([1])
    a = model(disp[:1], canonical, audio[:1], e, torch.tensor([1.0]))
    b = model(disp[:1], canonical, audio[:1], e, torch.tensor([3.0]))
    assert torch.equal(a["xyz"], b["xyz"])


def test_binding_weights_interpolate_and_clusters_cover_every_gaussian():
    pts = torch.randn(500, 3) * 0.1
    bind = build_binding(pts, num_clusters=40, knn=4, pe_freqs=3, pos_scale=0.15)
    assert bind.num_clusters <= 40
    assert int(bind.counts.sum()) == 500
    assert torch.allclose(bind.knn_weight.sum(1), torch.ones(500))
    dense = bind.interp_matrix().to_dense()
    assert torch.allclose(dense.sum(1), torch.ones(500))
    pooled = bind.pool_matrix().to_dense() @ pts
    assert torch.allclose(pooled, bind.centroids, atol=1e-6)


def test_positional_encoding_width_and_identity_part():
    x = torch.randn(4, 3)
    pe = positional_encoding(x, 5)
    assert pe.shape == (4, 3 + 30)
    assert torch.equal(pe[:, :3], x)


def random_frames(n: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, 3, 3, generator=gen))
    return q, torch.rand(n, 1, generator=gen) * 0.004 + 0.001


def test_position_offsets_are_the_same_world_motion_whatever_the_local_frames():
    model, canonical, disp, audio = make(b=1)
    args = (disp, canonical, audio[:1], torch.tensor([6]), torch.tensor([0.8]))
    worlds = []
    for seed in (1, 2):
        rot, scale = random_frames(canonical.shape[0], seed)
        bind = model.bind(canonical, frames=(rot, scale))
        xyz = model(*args, binding=bind)["xyz"][0]
        worlds.append(scale * torch.einsum("nij,nj->ni", rot, xyz))  # k R xyz, metres
    assert torch.allclose(worlds[0], worlds[1], atol=1e-7)
    other = model(*args, binding=bind)["color"]
    plain = model(*args, binding=model.bind(canonical))["color"]
    assert torch.allclose(other, plain)


def test_identity_frames_of_unit_scale_give_offsets_in_disp_scale_units():
    model, canonical, disp, audio = make(b=1)
    n = canonical.shape[0]
    args = (disp, canonical, audio[:1], torch.tensor([2]), torch.tensor([1.0]))
    plain = model(*args, binding=model.bind(canonical))["xyz"]
    eye = torch.eye(3).expand(n, 3, 3)
    framed = model(*args, binding=model.bind(canonical, frames=(eye, torch.ones(n, 1))))["xyz"]
    assert torch.allclose(framed, plain * model.config.disp_scale, atol=1e-8)


def test_untrained_module_moves_gaussians_with_the_mesh_displacement():
    model, canonical, disp, audio = make(b=1)
    rot, scale = random_frames(canonical.shape[0], 3)
    bind = model.bind(canonical, frames=(rot, scale))
    with torch.no_grad():
        xyz = model(disp, canonical, audio[:1], torch.tensor([1]), torch.tensor([0.5]),
                    binding=bind)["xyz"][0]
    world = scale * torch.einsum("nij,nj->ni", rot, xyz)
    err = (world - disp[0]).norm() / disp[0].norm()
    assert float(err) < 0.3


def test_follow_offsets_are_the_mesh_displacement_in_each_gaussians_frame():
    model, canonical, disp, _ = make(b=2)
    rot, scale = random_frames(canonical.shape[0], 4)
    follow = model.follow_offsets(disp, model.bind(canonical, frames=(rot, scale)))
    world = scale * torch.einsum("nij,bnj->bni", rot, follow)    # k R xyz, metres
    assert torch.allclose(world, disp, atol=1e-9)
    plain = model.follow_offsets(disp, model.bind(canonical))
    assert torch.allclose(plain * model.config.disp_scale, disp, atol=1e-9)


def test_offset_penalty_measures_positions_from_the_blendshape_motion():
    from gemo_ros.train.stage2 import offset_penalty

    follow = torch.randn(2, 50, 3)
    offs = {"xyz": follow.clone(), "color": torch.zeros(2, 50, 3)}
    assert float(offset_penalty(offs, follow)) == 0.0
    assert float(offset_penalty(offs)) > 0.0          # the old penalty shrank the motion
    offs["xyz"] = follow + 0.1
    assert float(offset_penalty(offs, follow)) == pytest.approx(0.01 / 2)
    assert float(offset_penalty(offs, follow, 30.0)) == pytest.approx(30 * 0.01 / 2)
    offs["color"] += 0.1                              # other attributes keep weight 1
    assert float(offset_penalty(offs, follow, 30.0)) == pytest.approx((30 + 1) * 0.01 / 2)


# --- the fine colour-detail field (format /2) --------------------------------------------------

def test_detail_field_is_cached_in_the_frame_path_and_recomputed_after_a_step():
    model, canonical, disp, audio = make()
    bind = model.bind(canonical)
    args = (disp, canonical, audio, torch.tensor([1, 6]), torch.tensor([0.5, 1.0]))
    with torch.no_grad():
        first = model.detail_basis(canonical, bind)
        assert model.detail_basis(canonical, bind) is first
        before = model(*args, binding=bind)["color"]
    assert first.shape == (canonical.shape[0], model.config.detail_basis)
    out = model(*args, binding=bind)  # with gradients: computed, not cached
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    out["color"].sum().backward()
    opt.step()
    with torch.no_grad():
        again = model.detail_basis(canonical, bind)
        after = model(*args, binding=bind)["color"]
    assert again is not first and not torch.equal(again, first)
    assert not torch.equal(before, after)


def test_detail_field_makes_no_host_sync_in_the_frame_path():
    from helpers.host_syncs import HostSyncRecorder

    model, canonical, disp, audio = make()
    bind = model.bind(canonical)
    args = (disp, canonical, audio, torch.tensor([1, 6]), torch.tensor([0.5, 1.0]))
    with torch.no_grad():
        model(*args, binding=bind, active=True, validate=False)  # fills the cache
        with HostSyncRecorder() as rec:
            model(*args, binding=bind, active=True, validate=False)
    assert rec.events == [], rec.events


def fit_stripes(detail_basis: int, steps: int = 150) -> float:
    """Fit colour offsets to 2 mm-wide stripes 6 mm apart on a 6 cm patch; return corr."""
    torch.manual_seed(0)
    n = 1500
    xy = (torch.rand(n, 2) - 0.5) * 0.06
    canonical = torch.cat([xy, torch.full((n, 1), 0.08)], dim=1)
    target = (torch.cos(2 * math.pi * canonical[:, 1] / 0.006) > 0.5).float() * -0.2
    config = ResidualConfig(attribute_dims=dict(DIMS), feature_dim=8, dim=32, heads=4,
                            num_clusters=16, detail_basis=detail_basis)
    model = EmotionResidual(config)
    bind = model.bind(canonical)
    args = (torch.zeros(1, n, 3), canonical, torch.zeros(1, 3, 8), torch.tensor([2]),
            torch.tensor([1.0]))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        color = model(*args, binding=bind)["color"][0].mean(-1)
        loss = (color - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        color = model(*args, binding=bind)["color"][0].mean(-1)
    return float(torch.corrcoef(torch.stack([color, target]))[0, 1])


def test_detail_field_resolves_millimetre_lines_that_clusters_cannot():
    with_detail, without = fit_stripes(16), fit_stripes(0)
    assert with_detail > 0.8, with_detail
    assert without < 0.5, without
    assert with_detail > without + 0.3


def test_weights_of_format_1_still_load_without_the_detail_term(tmp_path):
    import json

    from safetensors.torch import save_file

    model, canonical, disp, audio = make(detail_basis=0)
    assert model.detail_field is None
    cfg = dataclasses.asdict(model.config)
    for key in ("detail_basis", "detail_freqs", "detail_hidden"):
        cfg.pop(key)
    path = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"format": "gemo_ros.emotion_residual/1", "config": json.dumps(cfg)})
    loaded = load_residual(path)
    assert loaded.config.detail_basis == 0 and loaded.detail_field is None
    args = (disp, canonical, audio, torch.tensor([3, 7]), torch.tensor([0.4, 0.9]))
    with torch.no_grad():
        assert torch.equal(model(*args)["color"], loaded(*args)["color"])


def test_a_newer_format_or_mismatched_weights_fail_with_a_clear_message(tmp_path):
    import json

    from safetensors.torch import save_file

    model, *_ = make()
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    cfg = json.dumps(dataclasses.asdict(model.config))
    newer = tmp_path / "newer.safetensors"
    save_file(tensors, str(newer), metadata={"format": "gemo_ros.emotion_residual/9",
                                             "config": cfg})
    with pytest.raises(ValueError, match="newer than this code"):
        load_residual(newer)
    # A format-1 tag on weights that carry the detail field: the config says no field.
    stale = tmp_path / "stale.safetensors"
    old_cfg = {k: v for k, v in json.loads(cfg).items() if not k.startswith("detail_")}
    save_file(tensors, str(stale), metadata={"format": "gemo_ros.emotion_residual/1",
                                             "config": json.dumps(old_cfg)})
    with pytest.raises(ValueError, match="do not match the config"):
        load_residual(stale)
