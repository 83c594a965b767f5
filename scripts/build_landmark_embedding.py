#!/usr/bin/env python3
"""Build ``gemo_ros/assets/ict_landmarks.npz``: where MediaPipe's face-mesh landmarks lie on
the ICT head (for ``gemo avatar from-photo``).

MediaPipe's 468 face-mesh points have no published correspondence to the ICT mesh, so this
script measures one: it draws the generic ICT head (flat-shaded skin, dark lashes and
pupils) with a small z-buffer from several views, runs the landmark detector on each image,
and casts each detected landmark back onto the mesh (triangle + barycentric point). Points
found in several views are averaged on the generic head and snapped to the nearest surface
point. The face-oval (contour) landmarks are taken from the frontal view only: off the
front they slide along the silhouette, which the fit handles separately.

Output (npz): ``vertex_ids [L, 3]`` ICT vertex indices (the upstream numbering, which the
loader keeps), ``bary [L, 3]``, ``landmark_ids [L]`` MediaPipe indices, ``contour [L]``
bool, ``spread [L]`` metres (scatter of the point between views: a reliability measure).

Run: ``python scripts/build_landmark_embedding.py`` (needs mediapipe; about a minute).
"""

import argparse
import os
import sys
from typing import List, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from gemo_ros.face.model import load_face_model  # noqa: E402
from gemo_ros.fit.raster import rasterize_mesh  # noqa: E402
from gemo_ros.render.camera import orbit_camera  # noqa: E402

#: Parts drawn for the detector (the transparent overlays are left out).
DRAWN = ("face", "head", "mouth_socket", "eye_socket_left", "eye_socket_right", "gums_tongue",
         "teeth", "sclera_left", "iris_left", "sclera_right", "iris_right",
         "eyelashes_left", "eyelashes_right")
COLOURS = {"iris_left": (0.12, 0.08, 0.05), "iris_right": (0.12, 0.08, 0.05),
           "sclera_left": (0.85, 0.85, 0.85), "sclera_right": (0.85, 0.85, 0.85),
           "eyelashes_left": (0.05, 0.04, 0.04), "eyelashes_right": (0.05, 0.04, 0.04),
           "mouth_socket": (0.25, 0.08, 0.08), "gums_tongue": (0.55, 0.25, 0.25),
           "teeth": (0.9, 0.88, 0.8)}
SKIN = (0.78, 0.58, 0.48)
VIEWS = [(0.0, 0.0), (-12.0, 0.0), (12.0, 0.0), (0.0, -10.0), (0.0, 10.0),
         (-20.0, 5.0), (20.0, 5.0)]
SIZE = 512


def draw(face, yaw: float, pitch: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray,
                                                  np.ndarray, np.ndarray]:
    """Render the shaded head; return (uint8 image, face_id, bary, faces drawn, tri map)."""
    V = face.vertices.numpy().astype(np.float64)
    Fall = face.faces.numpy()
    parts = face.vertex_parts.numpy()
    drawn_ids = [face.part_names.index(p) for p in DRAWN]
    keep = np.nonzero(np.isin(parts[Fall[:, 0]], drawn_ids))[0]
    F = Fall[keep]
    vm, K = orbit_camera(yaw, pitch, 0.6, 24.0, SIZE, SIZE, target=(0.0, -0.02, 0.06))
    vm, K = vm.numpy().astype(np.float64), K.numpy().astype(np.float64)
    fid, bary, _ = rasterize_mesh(V, F, vm, K, SIZE, SIZE)
    n = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    col = np.tile(np.array(SKIN), (len(F), 1))
    tri_part = parts[F[:, 0]]
    for name, c in COLOURS.items():
        col[tri_part == face.part_names.index(name)] = c
    light = np.array([0.3, 0.5, 1.0]) / np.linalg.norm([0.3, 0.5, 1.0])
    lam = np.clip(n @ light, 0.0, 1.0) * 0.7 + 0.3
    img = np.full((SIZE, SIZE, 3), 0.25)
    m = fid >= 0
    img[m] = col[fid[m]] * lam[fid[m], None]
    u8 = np.round(np.clip(img, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)
    return u8, fid, bary, F, keep


def main() -> int:
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL
    from gemo_ros.vision.landmarks import FaceLandmarker
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.path.join(ROOT, "gemo_ros", "assets", "ict_landmarks.npz")
    ap.add_argument("-o", "--output", default=default)
    args = ap.parse_args()
    face = load_face_model("ict")
    V = face.vertices.numpy().astype(np.float64)
    samples: List[List[np.ndarray]] = [[] for _ in range(468)]
    oval = np.zeros(468, bool)
    oval[sorted({i for edge in FACEMESH_FACE_OVAL for i in edge})] = True
    detector = FaceLandmarker(max_faces=2)
    for yaw, pitch in VIEWS:
        img, fid, bary, F, _ = draw(face, yaw, pitch)
        faces = detector.detect_all(img)
        if len(faces) != 1:
            print(f"view yaw {yaw} pitch {pitch}: {len(faces)} faces; skipped")
            continue
        pts = faces[0].xy[:468]
        for i, (x, y) in enumerate(pts):
            if oval[i] and (yaw, pitch) != (0.0, 0.0):
                continue
            xi, yi = int(x), int(y)
            if not (0 <= xi < SIZE and 0 <= yi < SIZE) or fid[yi, xi] < 0:
                continue
            tri = F[fid[yi, xi]]
            samples[i].append(bary[yi, xi] @ V[tri])
        print(f"view yaw {yaw:+.0f} pitch {pitch:+.0f}: landmarks cast onto the mesh")
    surf = np.nonzero(np.isin(face.vertex_parts.numpy()[face.faces.numpy()[:, 0]],
                              [face.part_names.index("face")]))[0]
    Fs = face.faces.numpy()[surf]
    vid, bw, spread, ids = [], [], [], []
    centroids = V[Fs].mean(1)
    for i, pts in enumerate(samples):
        if not pts:
            continue
        p = np.mean(pts, 0)
        spread.append(float(np.linalg.norm(np.asarray(pts) - p, axis=1).mean()))
        # Snap to the closest point of the nearest triangles (projection + clamp).
        cand = np.argsort(np.linalg.norm(centroids - p, axis=1))[:8]
        best = None
        for t in cand:
            a, b, c = V[Fs[t]]
            w = _closest_bary(p, a, b, c)
            q = w @ V[Fs[t]]
            d = np.linalg.norm(q - p)
            if best is None or d < best[0]:
                best = (d, Fs[t], w)
        vid.append(best[1])
        bw.append(best[2])
        ids.append(i)
    ids = np.array(ids)
    np.savez_compressed(args.output, vertex_ids=np.array(vid, np.int32),
                        bary=np.array(bw, np.float32), landmark_ids=ids.astype(np.int32),
                        contour=oval[ids], spread=np.array(spread, np.float32))
    print(f"wrote {args.output}: {len(ids)} landmarks ({int(oval[ids].sum())} contour); "
          f"median scatter between views {1000 * np.median(spread):.1f} mm")
    return 0


def _closest_bary(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric weights of the point of triangle abc nearest to p (clamped projection)."""
    e0, e1 = b - a, c - a
    n = np.cross(e0, e1)
    q = p - n * np.dot(p - a, n) / max(np.dot(n, n), 1e-18)
    M = np.array([[e0 @ e0, e0 @ e1], [e0 @ e1, e1 @ e1]])
    rhs = np.array([(q - a) @ e0, (q - a) @ e1])
    try:
        v, w = np.linalg.solve(M, rhs)
    except np.linalg.LinAlgError:
        return np.array([1.0, 0.0, 0.0])
    bw = np.clip(np.array([1 - v - w, v, w]), 0.0, None)
    return bw / bw.sum()


if __name__ == "__main__":
    sys.exit(main())
