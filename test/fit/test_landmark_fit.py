"""Specification of the landmark fit (gemo_ros/fit/landmark_fit.py) on synthetic heads."""

import numpy as np
import pytest
import torch

from gemo_ros.face.arkit import ARKIT_INDEX
from gemo_ros.face.model import load_face_model
from gemo_ros.fit.landmark_fit import FitConfig, LandmarkEmbedding, fit_landmarks
from gemo_ros.fit.raster import project
from gemo_ros.render.camera import orbit_camera

FAST = FitConfig(rigid_steps=100, full_steps=250)


@pytest.fixture(scope="module")
def face():
    torch.set_num_threads(1)
    return load_face_model("ict")


@pytest.fixture(scope="module")
def synthetic(face):
    """A random identity with the jaw open, seen from 15 deg to its left."""
    beta = torch.randn(40, generator=torch.Generator().manual_seed(3))
    expr = torch.zeros(1, 52)
    expr[0, ARKIT_INDEX["jawOpen"]] = 0.5
    person = face.with_identity(beta)
    verts = person.pose(expr)[0]
    vm, K = orbit_camera(15.0, 0.0, 0.7, 22.0, 512, 512, target=(0.0, 0.0, 0.05))
    emb = LandmarkEmbedding.load()
    uv, _ = project(emb.points(verts).double().numpy(), vm.double().numpy(),
                    K.double().numpy())
    lm = np.zeros((478, 2))
    lm[emb.landmark_ids] = uv
    fit = fit_landmarks(face, lm, 512, 512, config=FAST)
    return {"beta": beta, "expr": expr, "person": person, "fit": fit, "emb": emb}


def test_the_embedding_puts_each_landmark_on_one_triangle(face):
    emb = LandmarkEmbedding.load()
    assert len(emb.landmark_ids) >= 460 and emb.landmark_ids.max() < 468
    assert np.allclose(emb.bary.sum(1), 1.0, atol=1e-5) and (emb.bary >= 0).all()
    assert 20 <= emb.contour.sum() <= 40
    parts = face.vertex_parts[torch.from_numpy(emb.vertex_ids)]
    assert (parts == face.part_names.index("face")).all()


def test_fit_reproduces_exact_landmarks_to_a_few_pixels(synthetic):
    assert synthetic["fit"].error_px < 3.0


def test_fit_finds_the_head_turned_away_from_a_camera_on_its_left(synthetic):
    # The camera 15 deg toward the head's left = the head turned 15 deg to its right.
    assert synthetic["fit"].head_yaw_deg == pytest.approx(-15.0, abs=3.0)
    assert abs(synthetic["fit"].head_pitch_deg) < 4.0


def test_fit_finds_the_open_jaw_and_keeps_coefficients_in_range(synthetic):
    psi = synthetic["fit"].expression
    assert float(psi[ARKIT_INDEX["jawOpen"]]) > 0.3
    assert float(psi.min()) >= 0.0 and float(psi.max()) <= 1.0


def test_fitted_identity_is_closer_to_the_person_than_the_generic_head(face, synthetic):
    emb = synthetic["emb"]
    truth = emb.points(synthetic["person"].vertices)
    fitted = emb.points(face.with_identity(synthetic["fit"].identity).vertices)
    generic = emb.points(face.vertices)

    def aligned(a, b):
        a, b = a - a.mean(0), b - b.mean(0)
        return float((a - b).norm(dim=-1).mean())

    assert aligned(fitted, truth) < 0.8 * aligned(generic, truth)


def test_bad_landmarks_are_refused(face):
    with pytest.raises(ValueError, match="landmarks"):
        fit_landmarks(face, np.zeros((10, 2)), 100, 100, config=FAST)
    with pytest.raises(ValueError, match="degenerate"):
        fit_landmarks(face, np.zeros((478, 2)), 100, 100, config=FAST)


def test_a_known_identity_and_focal_stay_fixed(face, synthetic):
    beta = synthetic["beta"]
    lm = np.zeros((478, 2))
    emb = synthetic["emb"]
    lm[emb.landmark_ids] = synthetic["fit"].projected        # any consistent landmarks
    fit = fit_landmarks(face, lm, 512, 512, config=FitConfig(rigid_steps=20, full_steps=20),
                        identity=beta, focal=1300.0)
    assert torch.allclose(fit.identity, beta.float(), atol=1e-6)
    assert float(fit.K[0, 0]) == pytest.approx(1300.0)
