"""Errors shared by the training data loaders."""


class DatasetError(ValueError):
    """A dataset on disk is missing a file or holds inconsistent data.

    The message names the file, frame or field that is wrong. Raised by the Stage 1
    (:mod:`gemo_ros.train.stage1_data`) and Stage 2 (:mod:`gemo_ros.train.stage2_data`) loaders.
    """
