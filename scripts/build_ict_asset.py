#!/usr/bin/env python3
"""Build the compact ICT face asset: gemo_ros/assets/face_ict.npz (+ its MIT licence).

Reads the shared copy of the ICT Face Model (``ict_facekit.npz``, centimetres; see its
README) and writes what ``gemo_ros.face.ict`` needs at run time, a few MB:

* the generic neutral mesh in metres, moved into the head frame of docs/ARCHITECTURE.md
  (origin at the eyeball centres' height, 6.6 cm behind them, like the procedural head);
* triangles (each quad split along its 0-2 diagonal), per-corner UV indices and the UVs;
* the 52 ARKit expression shapes in ``gemo_ros.face.arkit`` order, float16, each storing
  only the vertices it moves (``_L`` -> ``Left``; ``browInnerUp`` and ``cheekPuff`` are the
  sums of the model's halves; ``cheekRaiser_*`` and ``PupilDilate_*`` are dropped;
  ``tongueOut`` has no ICT shape and stays zero);
* the first ``--identity-modes`` identity modes as int8 with one scale per mode (coefficients
  keep the upstream units: about N(0, 1) per mode);
* the vertex ranges of the parts (upstream README) and the neck's skinning weight per vertex.

    python scripts/build_ict_asset.py [--source ../shared/face-models/ict-facekit] [-o PATH]
"""

import argparse
import os
import shutil
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from gemo_ros.face.arkit import ARKIT_NAMES  # noqa: E402

DEFAULT_SOURCE = os.path.join(ROOT, "..", "shared", "face-models", "ict-facekit")
DEFAULT_OUT = os.path.join(ROOT, "gemo_ros", "assets", "face_ict.npz")
LICENSE_OUT = os.path.join(ROOT, "gemo_ros", "assets", "ict_facekit_LICENSE")

#: Vertex ranges (inclusive) of the upstream README, in order; names used by gemo_ros.
PARTS = (
    ("face", 0, 9408), ("head", 9409, 11247), ("mouth_socket", 11248, 13293),
    ("eye_socket_left", 13294, 13677), ("eye_socket_right", 13678, 14061),
    ("gums_tongue", 14062, 17038), ("teeth", 17039, 21450),
    ("sclera_left", 21451, 22220), ("iris_left", 22221, 23020),
    ("sclera_right", 23021, 23790), ("iris_right", 23791, 24590),
    ("lacrimal_left", 24591, 24794), ("lacrimal_right", 24795, 24998),
    ("eye_blend_left", 24999, 25022), ("eye_blend_right", 25023, 25046),
    ("eye_occlusion_left", 25047, 25198), ("eye_occlusion_right", 25199, 25350),
    ("eyelashes_left", 25351, 26034), ("eyelashes_right", 26035, 26718),
)
CM = 0.01
#: Eyeball centres sit this far in front of the origin (metres), as in the procedural head.
EYE_DEPTH = 0.066
#: Neck skinning: weight 1 above NECK_TOP, 0 at NECK_BOTTOM (upstream centimetres, y).
NECK_TOP_CM, NECK_BOTTOM_CM = -9.0, -19.3
#: Neck joint below and behind the eyes (metres, head frame), as in the procedural head.
NECK_JOINT = (0.0, -0.07, -0.02)
#: Smallest stored expression displacement (metres): 0.02 mm, far below a pixel.
EXPR_TOL = 2e-5


def sphere_centre(p: np.ndarray) -> np.ndarray:
    """Least-squares sphere centre of points ``[n, 3]``."""
    A = np.c_[2.0 * p, np.ones(len(p))]
    sol = np.linalg.lstsq(A, (p ** 2).sum(1), rcond=None)[0]
    return sol[:3]


def triangulate(poly: np.ndarray) -> np.ndarray:
    """Quads (triangles padded with -1) ``[F, 4]`` -> triangles ``[F', 3]`` (fan from corner 0)."""
    tri = poly[:, [0, 1, 2]]
    quad = poly[:, 3] >= 0
    return np.concatenate([tri, poly[quad][:, [0, 2, 3]]], 0)


def arkit_shapes(names: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Upstream expression deltas ``[57, V, 3]`` -> ARKit order ``[52, V, 3]`` (same units)."""
    up = {str(n): i for i, n in enumerate(names)}
    out = np.zeros((len(ARKIT_NAMES),) + deltas.shape[1:], np.float32)
    for k, name in enumerate(ARKIT_NAMES):
        if name in ("browInnerUp", "cheekPuff"):
            out[k] = deltas[up[name + "_L"]] + deltas[up[name + "_R"]]
        elif name in up:                                  # jawLeft, jawOpen, mouthFunnel ...
            out[k] = deltas[up[name]]
        elif name.endswith("Left") or name.endswith("Right"):
            side = "_L" if name.endswith("Left") else "_R"
            stem = name[:-4] if side == "_L" else name[:-5]
            out[k] = deltas[up[stem + side]]
        elif name != "tongueOut":
            raise KeyError(f"no ICT shape for {name}")
    return out


def build(source: str, identity_modes: int) -> dict:
    """Return the asset arrays (see the module docstring)."""
    src = np.load(os.path.join(source, "ict_facekit.npz"))
    V = src["neutral"].astype(np.float64)
    if V.shape != (26719, 3):
        raise ValueError(f"unexpected ICT neutral mesh {V.shape}; is this the ICT light model?")
    ranges = {name: slice(lo, hi + 1) for name, lo, hi in PARTS}
    eye_l = sphere_centre(V[ranges["sclera_left"]])
    eye_r = sphere_centre(V[ranges["sclera_right"]])
    origin_cm = np.array([0.0, 0.5 * (eye_l[1] + eye_r[1]),
                          0.5 * (eye_l[2] + eye_r[2]) - EYE_DEPTH / CM])
    verts = ((V - origin_cm) * CM).astype(np.float32)
    faces = triangulate(src["faces"])
    face_uv = triangulate(src["face_uv"])
    # Expression shapes: float16, per shape only the vertices it moves (CSR layout).
    shapes = arkit_shapes(src["expression_names"], src["expression_deltas"]) * CM
    rows, vals, offsets = [], [], [0]
    for k in range(len(ARKIT_NAMES)):
        moved = np.nonzero(np.abs(shapes[k]).max(1) > EXPR_TOL)[0]
        rows.append(moved.astype(np.uint16))
        vals.append(shapes[k, moved].astype(np.float16))
        offsets.append(offsets[-1] + len(moved))
    ident = src["identity_deltas"][:identity_modes] * CM
    id_scale = np.abs(ident).max(axis=(1, 2)) / 127.0
    id_q = np.round(ident / id_scale[:, None, None]).astype(np.int8)
    part = np.zeros(len(V), np.int16)
    for i, (_, lo, hi) in enumerate(PARTS):
        part[lo:hi + 1] = i
    y = V[:, 1]
    t = np.clip((y - NECK_BOTTOM_CM) / (NECK_TOP_CM - NECK_BOTTOM_CM), 0.0, 1.0)
    neck_w = (t * t * (3 - 2 * t)).astype(np.float16)
    return {
        "vertices": verts, "faces": faces.astype(np.uint16),
        "uv": src["uv"].astype(np.float32), "face_uv": face_uv.astype(np.uint16),
        "expression_names": np.array(ARKIT_NAMES),
        "expr_offsets": np.array(offsets, np.int64), "expr_vertex": np.concatenate(rows),
        "expr_delta": np.concatenate(vals),
        "identity_q": id_q, "identity_scale": id_scale.astype(np.float32),
        "part_names": np.array([p[0] for p in PARTS]), "vertex_part": part,
        "neck_weight": neck_w, "neck_joint": np.array(NECK_JOINT, np.float32),
        "origin_cm": origin_cm.astype(np.float32),
    }


def main() -> int:
    """Build and write the asset and copy the licence beside it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="folder of ict_facekit.npz")
    parser.add_argument("--identity-modes", type=int, default=40,
                        help="identity modes kept (photo fitting needs a few tens)")
    parser.add_argument("-o", "--output", default=DEFAULT_OUT)
    args = parser.parse_args()
    arrays = build(args.source, args.identity_modes)
    np.savez_compressed(args.output, **arrays)
    if os.path.abspath(args.output) == os.path.abspath(DEFAULT_OUT):
        shutil.copyfile(os.path.join(args.source, "LICENSE"), LICENSE_OUT)
    size = os.path.getsize(args.output)
    print(f"wrote {os.path.normpath(args.output)}: {len(arrays['vertices'])} vertices, "
          f"{len(arrays['faces'])} triangles, {len(arrays['expr_vertex'])} moved vertex entries, "
          f"{len(arrays['identity_q'])} identity modes, {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
