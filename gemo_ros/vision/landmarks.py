"""Face landmarks in pixels from one RGB image: MediaPipe's bundled face mesh, offline.

The detector is MediaPipe's legacy face mesh (``mediapipe.solutions.face_mesh``, pinned
``mediapipe==0.10.14`` in requirements.txt): a short-range face detector and a 468-point
mesh regressor with iris refinement (10 more points), whose TFLite models ship inside the
wheel, so nothing is downloaded at run time. (Later ``mediapipe`` releases dropped the legacy
solutions; their Tasks API needs a ``.task`` model file that is not in the wheel.) It knows
nothing of our head model, which makes it an independent judge of rendered expressions.

Conventions:

* points are ``[K, 3]`` float64 (``K`` = :data:`NUM_LANDMARKS` = 478) in pixels: ``x``
  right, ``y`` down, pixel centres at +0.5 (``x = u * W``), ``z`` MediaPipe's relative
  depth scaled like ``x`` (``z * W``; smaller is nearer the camera, origin near the head's
  centre). ``z`` is an estimate from one image: use it for coarse pose, not for geometry;
* "left" / "right" are the **face's own** sides (as ARKit's ``mouthSmileLeft``): in a
  frontal view the face's left eye appears on the image's right;
* :data:`LANDMARKS` names the points a face's expression moves (MediaPipe's canonical mesh
  indices); ``FaceLandmarks.point("mouth_corner_left")`` reads one.

One :class:`FaceLandmarker` per thread (the MediaPipe graph is not thread-safe); it is cheap
to keep and reuse (a few ms per 512 px image on one CPU core).
"""

import math
import threading
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

#: Points per face: the 468-point mesh plus 5 iris points per eye.
NUM_LANDMARKS = 478

#: Named points, by MediaPipe's canonical face-mesh index (face's own left/right).
LANDMARKS: Dict[str, int] = {
    # mouth
    "mouth_corner_left": 291,
    "mouth_corner_right": 61,
    "mouth_inner_corner_left": 308,
    "mouth_inner_corner_right": 78,
    "lip_upper_outer": 0,        # top of the upper lip, on the midline
    "lip_upper_inner": 13,       # lower edge of the upper lip, on the midline
    "lip_lower_inner": 14,       # upper edge of the lower lip, on the midline
    "lip_lower_outer": 17,       # bottom of the lower lip, on the midline
    "lip_upper_outer_left": 267,   # top of the upper lip, about above the canine
    "lip_upper_outer_right": 37,
    # brows: upper and lower edge at the inner end, the middle and the outer end
    "brow_inner_upper_left": 336,
    "brow_inner_lower_left": 285,
    "brow_mid_upper_left": 334,
    "brow_mid_lower_left": 282,
    "brow_outer_upper_left": 300,
    "brow_outer_lower_left": 276,
    "brow_inner_upper_right": 107,
    "brow_inner_lower_right": 55,
    "brow_mid_upper_right": 105,
    "brow_mid_lower_right": 52,
    "brow_outer_upper_right": 70,
    "brow_outer_lower_right": 46,
    # eyes
    "eye_upper_lid_left": 386,
    "eye_lower_lid_left": 374,
    "eye_outer_corner_left": 263,
    "eye_inner_corner_left": 362,
    "eye_upper_lid_right": 159,
    "eye_lower_lid_right": 145,
    "eye_outer_corner_right": 33,
    "eye_inner_corner_right": 133,
    "iris_centre_left": 473,
    "iris_centre_right": 468,
    # midline
    "forehead": 10,
    "nose_bridge": 168,          # between the eyes
    "nose_tip": 1,
    "subnasale": 2,              # below the tip, where the nose meets the upper lip
    "chin": 152,
}


class LandmarkError(ValueError):
    """The image holds no usable face (base class of the detector's errors)."""


class NoFaceError(LandmarkError):
    """No face was found in the image."""


class MultipleFacesError(LandmarkError):
    """More than one face was found where one was expected."""


class FaceTooSmallError(LandmarkError):
    """The face is smaller than the caller's limit (inter-ocular distance in pixels)."""


class FaceTurnedError(LandmarkError):
    """The face is turned further from the camera than the caller's limit."""


@dataclass(frozen=True)
class FaceLandmarks:
    """The landmarks of one face in one image.

    Attributes:
        points: ``[478, 3]`` float64 pixels (``x``, ``y``, relative depth ``z``; see the
            module docstring).
        width, height: size of the image they were found in (pixels).
    """

    points: np.ndarray
    width: int
    height: int

    @property
    def xy(self) -> np.ndarray:
        """Image positions ``[478, 2]`` in pixels."""
        return self.points[:, :2]

    def point(self, name: str) -> np.ndarray:
        """Return the ``[3]`` pixel position of the landmark named ``name`` (:data:`LANDMARKS`)."""
        try:
            return self.points[LANDMARKS[name]]
        except KeyError:
            raise KeyError(f"unknown landmark {name!r}; known: {', '.join(LANDMARKS)}") \
                from None

    def inter_ocular(self) -> float:
        """Distance between the outer eye corners in the image, pixels (the face's scale)."""
        a = self.points[LANDMARKS["eye_outer_corner_left"], :2]
        b = self.points[LANDMARKS["eye_outer_corner_right"], :2]
        return float(np.linalg.norm(a - b))

    def yaw_deg(self) -> float:
        """Coarse head yaw from the outer eye corners' depth, degrees.

        Positive when the face turns toward its own left (the left eye moves away from the
        camera), the sign of ``gemo_ros.geometry.head_rotation``'s yaw; about 0 frontal.
        """
        d = self.points[LANDMARKS["eye_outer_corner_left"]] - \
            self.points[LANDMARKS["eye_outer_corner_right"]]
        return math.degrees(math.atan2(float(d[2]), float(d[0])))


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an RGB image for the detector; return it C-contiguous.

    Raises:
        TypeError: not a numpy ``uint8`` array.
        ValueError: not ``[H, W, 3]`` with ``H, W >= 32``.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy uint8 array [H, W, 3], got {type(image)}")
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8 RGB [H, W, 3], got dtype {image.dtype} "
                        "(convert floats with gemo_ros.imaging.to_uint8)")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB [H, W, 3], got shape {image.shape}")
    if min(image.shape[:2]) < 32:
        raise ValueError(f"image too small for face landmarks: {image.shape[1]}x"
                         f"{image.shape[0]} px (at least 32x32)")
    return np.ascontiguousarray(image)


class FaceLandmarker:
    """MediaPipe's face mesh over still images (no tracking between calls).

    Args:
        max_faces: how many faces to look for; at least 2 so that :meth:`detect` can tell
            "several faces" from "one".
        min_detection_confidence: face detector score threshold in (0, 1).
        refine: iris refinement (adds the 10 iris points and sharpens eyes and lips);
            without it the iris rows of ``points`` are NaN.

    Raises:
        ImportError: ``mediapipe`` is not installed (``pip install mediapipe==0.10.14``).
    """

    def __init__(self, max_faces: int = 2, min_detection_confidence: float = 0.5,
                 refine: bool = True) -> None:
        if int(max_faces) < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        if not 0.0 < float(min_detection_confidence) < 1.0:
            raise ValueError("min_detection_confidence must be in (0, 1), got "
                             f"{min_detection_confidence}")
        try:
            from mediapipe.python.solutions import face_mesh
        except ImportError as exc:
            raise ImportError("face landmarks need MediaPipe's bundled face mesh: "
                              "pip install 'mediapipe==0.10.14' (see requirements.txt)") from exc
        self.max_faces = int(max_faces)
        self.refine = bool(refine)
        self._lock = threading.Lock()  # guards misuse across threads; one graph per object
        self._mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=self.max_faces,
                                        refine_landmarks=self.refine,
                                        min_detection_confidence=float(min_detection_confidence))

    def close(self) -> None:
        """Release the MediaPipe graph (the object cannot detect afterwards)."""
        with self._lock:
            if self._mesh is not None:
                self._mesh.close()
                self._mesh = None

    def __enter__(self) -> "FaceLandmarker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def detect_all(self, image: np.ndarray) -> List[FaceLandmarks]:
        """Return the landmarks of every face found (up to ``max_faces``; may be empty).

        Args:
            image: ``uint8 [H, W, 3]`` RGB.
        """
        img = check_image(image)
        h, w = img.shape[:2]
        with self._lock:
            if self._mesh is None:
                raise RuntimeError("FaceLandmarker is closed")
            with warnings.catch_warnings():
                # mediapipe 0.10.14 calls a protobuf API that protobuf 4.25 marks deprecated.
                warnings.filterwarnings("ignore", message=".*GetPrototype", category=UserWarning)
                result = self._mesh.process(img)
        faces = []
        for face in result.multi_face_landmarks or ():
            pts = np.full((NUM_LANDMARKS, 3), np.nan)
            got = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float64)
            pts[:len(got)] = got[:NUM_LANDMARKS]
            pts *= np.array([w, h, w], dtype=np.float64)
            faces.append(FaceLandmarks(pts, int(w), int(h)))
        return faces

    def detect(self, image: np.ndarray, min_inter_ocular_px: float = 0.0,
               max_yaw_deg: Optional[float] = None) -> FaceLandmarks:
        """Return the landmarks of the one face in ``image``.

        Args:
            image: ``uint8 [H, W, 3]`` RGB.
            min_inter_ocular_px: refuse faces whose outer eye corners are closer than this.
            max_yaw_deg: refuse faces turned further than this (None: any).

        Raises:
            NoFaceError, MultipleFacesError, FaceTooSmallError, FaceTurnedError (all
            :class:`LandmarkError`, a ValueError); TypeError / ValueError for a bad image.
        """
        faces = self.detect_all(image)
        if not faces:
            raise NoFaceError(f"no face found in the {image.shape[1]}x{image.shape[0]} image")
        if len(faces) > 1:
            raise MultipleFacesError(f"{len(faces)} faces found; expected one")
        face = faces[0]
        iod = face.inter_ocular()
        if iod < float(min_inter_ocular_px):
            raise FaceTooSmallError(f"face too small: eye corners {iod:.1f} px apart "
                                    f"(at least {min_inter_ocular_px:g} px)")
        if max_yaw_deg is not None and abs(face.yaw_deg()) > float(max_yaw_deg):
            raise FaceTurnedError(f"face turned {face.yaw_deg():+.0f} deg from the camera "
                                  f"(at most {max_yaw_deg:g} deg)")
        return face

    def detect_or_none(self, image: np.ndarray) -> Optional[FaceLandmarks]:
        """Return the one face's landmarks, or None for no face or several faces."""
        try:
            return self.detect(image)
        except (NoFaceError, MultipleFacesError):
            return None


_per_thread = threading.local()


def detect_landmarks(image: np.ndarray, with_depth: bool = False) -> Optional[np.ndarray]:
    """Landmarks of the one face in an image, or None (no face, or several faces).

    A convenience over :class:`FaceLandmarker` (one shared detector per thread).

    Args:
        image: ``uint8 [H, W, 3]`` RGB.
        with_depth: return ``[478, 3]`` (with MediaPipe's relative depth) instead of
            ``[478, 2]``.

    Returns:
        ``[478, 2]`` (or ``[478, 3]``) float64 pixels, or None.
    """
    det = getattr(_per_thread, "detector", None)
    if det is None:
        det = _per_thread.detector = FaceLandmarker()
    face = det.detect_or_none(image)
    if face is None:
        return None
    return face.points.copy() if with_depth else face.xy.copy()
