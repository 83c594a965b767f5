"""Computer vision on images of faces, independent of our own head model (ROS-free).

``landmarks``: 478 face landmarks in pixels from MediaPipe's bundled face mesh (offline),
with named points (mouth corners, lips, brows, eyelids, eye corners, nose). Used by the
expressiveness benchmark (``bench/expressiveness.py``) and for fitting a head to a photo.
"""

from gemo_ros.vision.landmarks import (  # noqa: F401
    LANDMARKS,
    NUM_LANDMARKS,
    FaceLandmarker,
    FaceLandmarks,
    FaceTooSmallError,
    FaceTurnedError,
    LandmarkError,
    MultipleFacesError,
    NoFaceError,
    detect_landmarks,
)
