"""Specifications of adaptive density control: plans, and consistent tensors after remaps."""

import torch
from torch import nn

from gemo_ros.train.densify import (DensifyConfig, GradientStats, apply_plan,
                                    plan_densification, remap_parameters)

K = 5


def _params(n: int) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "xyz": nn.Parameter(torch.randn(n, 3, generator=g)),
        "scale": nn.Parameter(torch.randn(n, 3, generator=g)),
        "d_xyz": nn.Parameter(torch.randn(K, n, 3, generator=g)),
    }


DIMS = {"xyz": 0, "scale": 0, "d_xyz": 1}


def _step(params: dict, opt: torch.optim.Optimizer) -> None:
    opt.zero_grad()
    loss = sum((p ** 2).sum() for p in params.values())
    loss.backward()
    opt.step()


def test_pruning_keeps_parameters_state_and_buffers_aligned() -> None:
    params = _params(6)
    opt = torch.optim.Adam(list(params.values()), lr=0.1)
    _step(params, opt)
    before = {k: p.detach().clone() for k, p in params.items()}
    moments = {k: opt.state[p]["exp_avg"].clone() for k, p in params.items()}
    keep = torch.tensor([0, 2, 5])
    buffers = {"face": torch.arange(6)}
    stats = GradientStats(6)
    stats.grad_sum[:] = torch.arange(6.0)
    plan = plan_densification(torch.zeros(6), torch.zeros(6),
                              torch.tensor([1, 0, 1, 0, 0, 1.0]), 1.0, DensifyConfig())
    new = apply_plan(params, DIMS, plan, opt, buffers, stats)
    assert torch.equal(buffers["face"], keep)
    assert torch.equal(stats.grad_sum, keep.float())
    for k in params:
        dim = DIMS[k]
        assert new[k].shape[dim] == 3
        assert torch.equal(new[k].detach(), before[k].index_select(dim, keep))
        assert torch.equal(opt.state[new[k]]["exp_avg"], moments[k].index_select(dim, keep))
    assert all(p in opt.state for p in new.values()) and len(opt.state) == 3
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in new.values()]
    _step(new, opt)  # the optimizer still works on the new tensors


def test_clone_and_split_add_fresh_gaussians_with_zero_moments() -> None:
    params = _params(4)
    opt = torch.optim.Adam(list(params.values()), lr=0.1)
    _step(params, opt)
    grad = torch.tensor([1.0, 0.0, 1.0, 0.0])
    scale = torch.tensor([0.001, 0.001, 0.1, 0.1])  # 0 small+hot: clone; 2 big+hot: split
    plan = plan_densification(grad, scale, torch.ones(4), 1.0,
                              DensifyConfig(grad_threshold=0.5, percent_dense=0.01))
    assert plan.clone.tolist() == [0] and plan.split.tolist() == [2]
    old_xyz = params["xyz"].detach().clone()

    def split_fn(rows: dict) -> dict:
        return {"xyz": rows["xyz"] + 10.0}

    new = apply_plan(params, DIMS, plan, opt, split_fn=split_fn)
    # survivors 0, 1, 3, then clone of 0, then two children of 2
    assert new["xyz"].shape[0] == 6 and new["d_xyz"].shape[1] == 6
    assert torch.equal(new["xyz"][3].detach(), old_xyz[0])
    assert torch.allclose(new["xyz"][4:].detach(), old_xyz[2].expand(2, 3) + 10.0)
    assert torch.equal(new["d_xyz"][:, 4], params["d_xyz"][:, 2].detach())
    state = opt.state[new["xyz"]]
    assert state["exp_avg"][3:].abs().sum() == 0 and state["exp_avg"][:3].abs().sum() > 0
    assert state["exp_avg_sq"].shape == new["xyz"].shape


def test_plan_respects_the_gaussian_budget() -> None:
    grad = torch.tensor([5.0, 4.0, 3.0, 2.0])
    cfg = DensifyConfig(grad_threshold=1.0, percent_dense=0.5, max_gaussians=6)
    plan = plan_densification(grad, torch.full((4,), 0.1), torch.ones(4), 1.0, cfg)
    assert plan.clone.tolist() == [0, 1]
    assert plan.index().numel() == 6


def test_low_opacity_and_huge_gaussians_are_pruned_but_never_all() -> None:
    cfg = DensifyConfig(min_opacity=0.1, max_scale_fraction=0.5)
    plan = plan_densification(torch.zeros(3), torch.tensor([0.1, 0.9, 0.1]),
                              torch.tensor([0.5, 0.5, 0.01]), 1.0, cfg)
    assert plan.prune.tolist() == [False, True, True]
    plan = plan_densification(torch.zeros(2), torch.zeros(2), torch.tensor([0.0, 0.01]),
                              1.0, cfg)
    assert plan.prune.tolist() == [True, False]


def test_gradient_stats_average_over_visible_steps_in_ndc_units() -> None:
    stats = GradientStats(2)
    stats.update(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([True, False]), 4, 4)
    stats.update(torch.tensor([[3.0, 0.0], [0.0, 1.0]]), torch.tensor([True, True]), 4, 4)
    assert torch.allclose(stats.mean(), torch.tensor([4.0, 2.0]))


def test_remap_rejects_parameters_without_an_axis() -> None:
    try:
        remap_parameters({"x": nn.Parameter(torch.zeros(2))}, {}, torch.tensor([0]))
    except KeyError as exc:
        assert "x" in str(exc)
    else:
        raise AssertionError("expected KeyError")
