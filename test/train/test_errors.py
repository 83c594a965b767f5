"""One dataset error for every training data loader (gemo_ros.train.errors)."""

import pytest

from gemo_ros.train import stage1_data, stage2_data
from gemo_ros.train.errors import DatasetError


def test_both_stage_loaders_raise_the_one_dataset_error():
    assert stage1_data.DatasetError is DatasetError
    assert stage2_data.DatasetError is DatasetError
    assert issubclass(DatasetError, ValueError)


def test_a_folder_without_a_dataset_is_a_dataset_error_naming_it(tmp_path):
    with pytest.raises(DatasetError, match=str(tmp_path)):
        stage1_data.load_stage1_dataset(str(tmp_path))
