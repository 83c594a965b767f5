"""Specifications of Stage 1 training on a tiny synthetic dataset (CPU, torch backend)."""

import os

import pytest
import torch

from gemo_ros.avatar.io import load_avatar, save_avatar
from gemo_ros.train.eval_stage1 import evaluate, side_by_side
from gemo_ros.train.stage1 import PARAM_DIMS, Stage1Config, Stage1Trainer
from gemo_ros.train.stage1_data import SyntheticConfig, generate_synthetic

SIZE = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """Ten 32x32 training frames of a 1500-Gaussian ground-truth head, three held out."""
    from gemo_ros.avatar.procedural import build_default_avatar
    root = str(tmp_path_factory.mktemp("stage1") / "data")
    cfg = SyntheticConfig(width=SIZE, height=SIZE, num_train=10, num_test=3,
                          novel_expressions=1, seed=3)
    return generate_synthetic(root, build_default_avatar(1500), cfg, progress=False)


def _config(**kw) -> Stage1Config:
    base = dict(iterations=200, num_init=400, max_gaussians=2000, densify_every=50, seed=1)
    base.update(kw)
    return Stage1Config(**base)


def _heldout_psnr(trainer: Stage1Trainer) -> float:
    return evaluate(trainer.avatar(), trainer.dataset, splits=("test",))["test"]["psnr"]


def test_tiny_run_lowers_the_loss_and_beats_the_initialisation(tiny_dataset) -> None:
    trainer = Stage1Trainer(tiny_dataset, _config())
    before = _heldout_psnr(trainer)
    history = trainer.train(progress=False)
    first = sum(m["loss"] for m in history[:10]) / 10
    last = sum(m["loss"] for m in history[-20:]) / 20
    after = _heldout_psnr(trainer)
    assert last < 0.5 * first, (first, last)
    assert after > before + 3.0, (before, after)
    assert trainer.num_gaussians != 400  # density control did something


def test_densification_keeps_parameters_optimizer_and_bindings_consistent(tiny_dataset) -> None:
    trainer = Stage1Trainer(tiny_dataset, _config(grad_threshold=0.0))
    for _ in range(3):
        trainer.train_step()
    summary = trainer.densify_and_prune()
    n = trainer.num_gaussians
    assert n > 400, summary
    assert trainer.buffers["binding_bary"].shape == (n, 3)
    assert trainer.poser.num_gaussians == n and trainer.stats.n == n
    opt_params = [p for g in trainer.optimizer.param_groups for p in g["params"]]
    assert {id(p) for p in opt_params} == {id(p) for p in trainer.params.values()}
    for key, p in trainer.params.items():
        assert p.shape[PARAM_DIMS[key]] == n
        state = trainer.optimizer.state[p]
        assert state["exp_avg"].shape == p.shape and state["exp_avg_sq"].shape == p.shape
    trainer.train_step()  # still trains
    assert all(torch.isfinite(p).all() for p in trainer.params.values())


def test_resuming_from_a_checkpoint_gives_the_same_state(tiny_dataset, tmp_path) -> None:
    cfg = _config(iterations=12, densify_every=5, densify_from=0.0, grad_threshold=1e-6)
    straight = Stage1Trainer(tiny_dataset, cfg)
    straight.train(progress=False)
    first = Stage1Trainer(tiny_dataset, cfg)
    first.train(iterations=7, progress=False)   # crosses the densification at step 5
    path = str(tmp_path / "ckpt.pt")
    first.save_checkpoint(path)
    resumed = Stage1Trainer(tiny_dataset, cfg)
    resumed.load_checkpoint(path)
    resumed.train(progress=False)
    assert resumed.step == straight.step == 12
    assert resumed.num_gaussians == straight.num_gaussians
    for key, p in straight.params.items():
        assert torch.allclose(resumed.params[key], p, atol=1e-6), key
    assert torch.equal(resumed.buffers["binding_faces"], straight.buffers["binding_faces"])


def test_exported_avatar_file_renders_like_the_trainer(tiny_dataset, tmp_path) -> None:
    trainer = Stage1Trainer(tiny_dataset, _config())
    for _ in range(5):
        trainer.train_step()
    with torch.no_grad():
        trainer.params["dg.color"].normal_(0.0, 0.1)   # non-zero blendshapes
    path = str(tmp_path / "avatar.safetensors")
    save_avatar(trainer.avatar({"name": "tiny"}), path, half=False)
    loaded = load_avatar(path)
    expr = tiny_dataset.split("test")[0].expression[None]
    neck = tiny_dataset.split("test")[0].joints["neck"][None]
    with torch.no_grad():
        ours = trainer.gaussians(expr, neck)
        theirs = loaded(expr, neck)
    assert torch.allclose(ours.means, theirs.means, atol=1e-6)
    assert torch.allclose(ours.colors, theirs.colors, atol=1e-6)
    assert torch.allclose(ours.opacities, theirs.opacities, atol=1e-6)


def test_evaluation_reports_novel_views_and_writes_a_figure(tiny_dataset, tmp_path) -> None:
    trainer = Stage1Trainer(tiny_dataset, _config())
    res = evaluate(trainer.avatar(), tiny_dataset)
    assert set(res) == {"test", "novel"}
    assert set(res["novel"]["views"]) == {"yaw-60", "yaw-30", "yaw+30", "yaw+60"}
    path = str(tmp_path / "fig.png")
    fig = side_by_side(trainer.avatar(), tiny_dataset, path)
    assert os.path.isfile(path) and fig.shape == (2 * SIZE, 7 * SIZE, 3)


def test_cli_trains_resumes_and_evaluates(tiny_dataset, tmp_path) -> None:
    import json

    from gemo_ros.cli import main
    out = str(tmp_path / "me.safetensors")
    common = ["train", "stage1", "--data", tiny_dataset.root, "--out", out, "--quiet",
              "--init-gaussians", "300", "--checkpoint-every", "3"]
    assert main(common + ["--iters", "4"]) == 0
    assert os.path.isfile(out)
    assert os.path.isfile(str(tmp_path / "me_stage1" / "checkpoint.pt"))
    assert main(common + ["--iters", "6", "--resume"]) == 0
    assert load_avatar(out).metadata["iterations"] == 6
    metrics = str(tmp_path / "m.json")
    image = str(tmp_path / "fig.png")
    assert main(["eval", "stage1", "--avatar", out, "--data", tiny_dataset.root,
                 "--json", metrics, "--image", image]) == 0
    with open(metrics) as fh:
        assert json.load(fh)["test"]["frames"] == 3
    assert os.path.isfile(image)


def test_resume_without_a_checkpoint_is_an_error(tiny_dataset, tmp_path) -> None:
    from gemo_ros.cli import main
    with pytest.raises(SystemExit, match="no checkpoint"):
        main(["train", "stage1", "--data", tiny_dataset.root, "--out",
              str(tmp_path / "x.safetensors"), "--resume", "--quiet"])


def test_synthetic_training_cameras_avoid_the_novel_yaws(tiny_dataset) -> None:
    import math

    from gemo_ros.render.camera import camera_position
    from gemo_ros.train.stage1_data import NOVEL_YAWS_DEG
    target = torch.tensor([0.0, -0.03, 0.0])
    for f in tiny_dataset.split("train") + tiny_dataset.split("test"):
        eye = camera_position(f.viewmat) - target
        yaw = math.degrees(math.atan2(float(eye[0]), float(eye[2])))
        assert min(abs(yaw - v) for v in NOVEL_YAWS_DEG) > 0.4, (f.name, yaw)
    views = {f.view for f in tiny_dataset.split("novel")}
    assert views == {f"yaw{v:+.0f}" for v in NOVEL_YAWS_DEG}


def test_written_joint_rotations_match_what_the_face_model_derives(tiny_dataset) -> None:
    from gemo_ros.face.model import load_face_model
    from gemo_ros.geometry import axis_angle_to_matrix
    from gemo_ros.train.stage1_data import derived_joint_rotations
    face = load_face_model("default")
    batch = tiny_dataset.stack(tiny_dataset.split("train"))
    T = face.joint_transforms(batch["expression"], batch["neck"])
    assert torch.allclose(axis_angle_to_matrix(batch["neck"]), T[:, 0, :, :3], atol=1e-5)
    R_jaw = T[:, 0, :, :3] @ axis_angle_to_matrix(batch["jaw"])
    assert torch.allclose(R_jaw, T[:, 1, :, :3], atol=1e-4)
    derived = derived_joint_rotations(face, batch["expression"], batch["neck"])
    assert torch.allclose(derived["eye_left"], batch["eye_left"], atol=1e-5)
