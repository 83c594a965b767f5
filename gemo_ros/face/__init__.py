"""Face model: template mesh, named expression basis, joints and linear blend skinning.

``gemo_ros.face.arkit`` stays importable without torch; the model classes are loaded lazily.
"""

from gemo_ros.face.arkit import ARKIT_INDEX, ARKIT_NAMES, NUM_ARKIT

_LAZY = {"FaceModel", "load_face_model", "register_face_model", "axis_angle_to_matrix"}


def __getattr__(name: str):
    if name in _LAZY:
        from gemo_ros.face import model
        return getattr(model, name)
    raise AttributeError(f"module 'gemo_ros.face' has no attribute {name!r}")


__all__ = ["ARKIT_NAMES", "ARKIT_INDEX", "NUM_ARKIT", "FaceModel", "load_face_model",
           "register_face_model", "axis_angle_to_matrix"]
