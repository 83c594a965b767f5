"""Stage 1 Gaussian blendshape avatar (and, in ``residual``, the Stage 2 emotion residual)."""

from gemo_ros.avatar.io import AvatarFormatError, default_avatar_path, load_avatar, save_avatar
from gemo_ros.avatar.model import (ATTRIBUTE_DIMS, GaussianAvatar, Gaussians, level_of_detail,
                                   sparse_deltas_to_dense)

__all__ = ["GaussianAvatar", "Gaussians", "ATTRIBUTE_DIMS", "load_avatar", "save_avatar",
           "AvatarFormatError", "default_avatar_path", "sparse_deltas_to_dense", "level_of_detail"]
