"""Specifications of the Stage 1 dataset format: round trip and clear errors."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from gemo_ros.face.arkit import ARKIT_INDEX, ARKIT_NAMES
from gemo_ros.train.stage1_data import (DatasetError, Stage1Frame, load_stage1_dataset,
                                        write_stage1_dataset)

W, H = 16, 12


def _frame(i: int, split: str = "train") -> Stage1Frame:
    g = torch.Generator().manual_seed(i)
    expr = torch.zeros(52)
    expr[ARKIT_INDEX["jawOpen"]] = 0.5
    return Stage1Frame(name=f"f{i:03d}", split=split,
                       K=torch.tensor([[20.0, 0, W / 2], [0, 20.0, H / 2], [0, 0, 1]]),
                       viewmat=torch.eye(4), expression=expr,
                       joints={"neck": torch.tensor([0.0, 0.1, 0.0]), "jaw": torch.zeros(3),
                               "eye_left": torch.zeros(3), "eye_right": torch.zeros(3)},
                       image=torch.rand(H, W, 3, generator=g),
                       mask=(torch.rand(H, W, 1, generator=g) > 0.5).float())


@pytest.fixture()
def dataset_dir(tmp_path) -> str:
    root = str(tmp_path / "data")
    write_stage1_dataset(root, [_frame(0), _frame(1), _frame(2, "test")], W, H)
    return root


def _edit(root: str, fn) -> None:
    path = os.path.join(root, "dataset.json")
    with open(path) as fh:
        meta = json.load(fh)
    fn(meta)
    with open(path, "w") as fh:
        json.dump(meta, fh)


def test_written_dataset_loads_back_with_the_same_values(dataset_dir: str) -> None:
    ds = load_stage1_dataset(dataset_dir)
    assert (ds.width, ds.height) == (W, H)
    assert [f.name for f in ds.split("train")] == ["f000", "f001"]
    assert [f.name for f in ds.split("test")] == ["f002"]
    ref = _frame(1)
    got = ds.split("train")[1]
    assert torch.allclose(got.image, ref.image, atol=1 / 255)
    assert torch.equal(got.mask, ref.mask)
    assert torch.allclose(got.expression, ref.expression)
    assert torch.allclose(got.joints["neck"], ref.joints["neck"])
    batch = ds.stack(ds.split("train"))
    assert batch["image"].shape == (2, H, W, 3) and batch["neck"].shape == (2, 3)


def test_rgb_images_take_their_mask_from_a_mask_file(dataset_dir: str) -> None:
    img = Image.open(os.path.join(dataset_dir, "images", "f000.png"))
    img.convert("RGB").save(os.path.join(dataset_dir, "images", "f000_rgb.png"))
    img.getchannel("A").save(os.path.join(dataset_dir, "images", "f000_mask.png"))

    def use_rgb(meta):
        meta["frames"][0]["image"] = "images/f000_rgb.png"
        meta["frames"][0]["mask"] = "images/f000_mask.png"
    _edit(dataset_dir, use_rgb)
    ds = load_stage1_dataset(dataset_dir)
    assert torch.equal(ds.frames[0].mask, _frame(0).mask)


def test_rgb_image_without_mask_is_an_error(dataset_dir: str) -> None:
    Image.open(os.path.join(dataset_dir, "images", "f000.png")).convert("RGB").save(
        os.path.join(dataset_dir, "images", "f000.png"))
    with pytest.raises(DatasetError, match="no alpha channel"):
        load_stage1_dataset(dataset_dir)


def test_missing_index_is_reported(tmp_path) -> None:
    with pytest.raises(DatasetError, match="dataset.json is missing"):
        load_stage1_dataset(str(tmp_path))


def test_missing_image_file_is_named(dataset_dir: str) -> None:
    os.remove(os.path.join(dataset_dir, "images", "f001.png"))
    with pytest.raises(DatasetError, match="f001.png"):
        load_stage1_dataset(dataset_dir)


def test_image_of_the_wrong_size_is_reported(dataset_dir: str) -> None:
    Image.fromarray(np.zeros((H + 1, W, 4), np.uint8)).save(
        os.path.join(dataset_dir, "images", "f002.png"))
    with pytest.raises(DatasetError, match="dataset.json says 16x12"):
        load_stage1_dataset(dataset_dir)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["frames"][0].update(expression=[0.0] * 51), "52 coefficients"),
    (lambda m: m["frames"][0].update(K=[[1, 0], [0, 1]]), "K: expected shape"),
    (lambda m: m["frames"][0].update(viewmat=(2 * np.eye(4)).tolist()), "rigid"),
    (lambda m: m["frames"][0].update(split="val"), "unknown split"),
    (lambda m: m["frames"][0]["expression"].__setitem__(3, 2.0), r"\[0, 1\]"),
    (lambda m: m["frames"][0]["joints"].update(tongue=[0, 0, 0]), "unknown joints"),
    (lambda m: m["frames"][0]["joints"].update(neck=[0, 0]), "joints.neck"),
    (lambda m: m.update(expression_names=["smile"] + list(ARKIT_NAMES[1:])), "unknown"),
    (lambda m: [f.update(split="test") for f in m["frames"]], "no frame is in the 'train'"),
    (lambda m: m.update(version=7), "version 7"),
])
def test_inconsistent_index_entries_are_reported(dataset_dir: str, edit, message) -> None:
    _edit(dataset_dir, edit)
    with pytest.raises(DatasetError, match=message):
        load_stage1_dataset(dataset_dir)


def test_expression_columns_in_another_order_are_reordered(dataset_dir: str) -> None:
    names = list(reversed(ARKIT_NAMES))

    def reverse(meta):
        meta["expression_names"] = names
        for f in meta["frames"]:
            f["expression"] = list(reversed(f["expression"]))
    _edit(dataset_dir, reverse)
    ds = load_stage1_dataset(dataset_dir)
    assert ds.frames[0].expression[ARKIT_INDEX["jawOpen"]] == pytest.approx(0.5)
