"""The layer-following ROI on a curved layer whose levels are known."""
from __future__ import annotations

import numpy as np
import pytest

from m1lib.geometry import Geometry
from m1lib.measure import layer_roi
from m1lib.measure import layer_oval, roi_weights
from m1lib.measure import EdgeFit, fit_profile, sample_profile

LEVELS = dict(superficial=1.0, deep=0.7, white_matter=0.85)
R_IN, T = 3.5, 1.3          # white matter inside r < 3.5 mm, deep layer 3.5-4.8 mm


@pytest.fixture(scope="module")
def curved():
    """A tightly curved layer (radius 3.5-4.8 mm), exact voxel averages (8 x 8)."""
    aff = np.diag([0.25, 0.25, 2.0, 1.0])
    g = Geometry(aff, (80, 80, 1), "sform")
    plane = g.plane(0)
    n = 8
    sub = (np.arange(n) + 0.5) / n - 0.5
    ii, jj = np.meshgrid(np.arange(80), np.arange(80), indexing="ij")
    img = np.zeros((80, 80))
    c = np.array([10.0, 10.0])
    for a in sub:
        for b in sub:
            uv = plane.ij_to_uv(np.c_[(ii + a).ravel(), (jj + b).ravel()])
            r = np.linalg.norm(uv - c, axis=1)
            v = np.where(r < R_IN, LEVELS["white_matter"],
                         np.where(r < R_IN + T, LEVELS["deep"], LEVELS["superficial"]))
            img += v.reshape(80, 80)
    return img / n ** 2, plane, c


def test_layer_roi_stays_in_a_curved_layer_where_an_oval_does_not(curved):
    img, plane, c = curved
    # caliper from the outer (superficial) edge to the inner edge, at 12 o'clock
    p1 = c + (R_IN + T) * np.array([0.0, 1.0])
    p2 = c + R_IN * np.array([0.0, 1.0])
    prof = sample_profile(img, plane, plane.uv_to_ij(p1[None])[0], plane.uv_to_ij(p2[None])[0])
    fit = fit_profile(prof)
    assert fit.ok, fit.reason
    roi = layer_roi(img, plane, prof, fit, area_mm2=4.0)
    assert roi.complete and roi.area_mm2 == pytest.approx(4.0, rel=0.1)
    assert roi.mean(img) == pytest.approx(LEVELS["deep"], rel=0.02)
    # its mid-line follows the circle of radius R_IN + T/2
    r_mid = np.linalg.norm(roi.mid_uv - c, axis=1)
    assert np.abs(r_mid - (R_IN + T / 2)).max() < 0.1
    # the straight oval of the same area reads the neighbouring layers
    a = np.deg2rad(fit.angle_deg)
    normal = np.cos(a) * prof.direction + np.sin(a) * prof.normal
    centre = prof.p1_uv + 0.5 * (fit.e_outer + fit.e_inner) / np.cos(a) * prof.direction
    ell = layer_oval(centre, normal, fit.thickness_mm, 4.0, 0.5)
    ii, jj, w, _ = roi_weights(ell, plane)
    oval = float(np.sum(w * img[ii, jj]) / w.sum())
    assert abs(oval / LEVELS["deep"] - 1) > abs(roi.mean(img) / LEVELS["deep"] - 1) + 0.01


def test_layer_roi_refuses_a_failed_fit(curved):
    img, plane, c = curved
    prof = sample_profile(img, plane, np.array([40.0, 60.0]), np.array([40.0, 55.0]))
    with pytest.raises(ValueError, match="fit that passed"):
        layer_roi(img, plane, prof, EdgeFit.failed("x"))
