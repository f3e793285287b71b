"""The replica's anatomy: resampling, distance fields and truth on known shapes."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from m1lib.replica import anatomy as A


def test_separable_resampling_equals_map_coordinates():
    rng = np.random.default_rng(0)
    vol = ndimage.gaussian_filter(rng.normal(size=(12, 10, 9)), 1.5)
    aff = np.diag([1.0, 1.0, 1.0, 1.0])
    aff[:3, 3] = [-3.0, 2.0, 10.0]
    box = A.Box((-1.125, 3.375, 12.125), 0.25, (20, 16, 12))
    got = A.resample_separable(vol, aff, box)
    X, Y, Z = np.meshgrid(*box.axes(), indexing="ij")
    idx = [X - aff[0, 3], Y - aff[1, 3], Z - aff[2, 3]]
    want = ndimage.map_coordinates(vol, idx, order=3, mode="mirror")
    np.testing.assert_allclose(got, want, atol=1e-5)


def _sphere_anatomy(r_white=6.0, r_pial=10.0, step=0.25):
    """Concentric spheres: the exact signed distances are known."""
    box = A.Box((-12.0, -12.0, -12.0), step, (97, 97, 97))
    X, Y, Z = np.meshgrid(*box.axes(), indexing="ij")
    r = np.sqrt(X ** 2 + Y ** 2 + Z ** 2)
    # smooth maps like the template's (a logistic edge 0.7 mm wide)
    p_white = 1 / (1 + np.exp((r - r_white) / 0.7))
    p_brain = 1 / (1 + np.exp((r - r_pial) / 0.7))
    d_white = A.signed_distance(p_white.astype(np.float32), step)
    d_pial = -A.signed_distance(p_brain.astype(np.float32), step)
    return A.Anatomy(box, d_white, d_pial, 0.0), r


def test_signed_distance_of_a_sphere():
    anat, r = _sphere_anatomy()
    shell = (r > 5) & (r < 9)
    err = anat.d_white[shell] - (r[shell] - 6.0)
    assert np.abs(err).max() < 0.15 and abs(err.mean()) < 0.05
    err_p = anat.d_pial[shell] - (10.0 - r[shell])
    assert np.abs(err_p).max() < 0.15 and abs(err_p.mean()) < 0.05


def test_locate_area_on_a_sphere_gives_the_known_thicknesses():
    anat, _ = _sphere_anatomy()
    # on the plane z = 3 the sphere of radius 6 is cut at 30 degrees off its normal
    z = 3.0
    truth = A.locate_area(anat, (0.0, -5.0, z), (0.0, -1.0), z, 1.5, radius=3.0)
    obl = np.rad2deg(np.arcsin(z / 6.0))
    assert truth.obliquity_deg == pytest.approx(obl, abs=1.5)
    assert truth.thickness_3d_mm == pytest.approx(1.5, abs=0.06)
    # in the plane: circles of radius sqrt(R^2 - z^2) for R = 6 and 7.5
    want = np.sqrt(7.5 ** 2 - z ** 2) - np.sqrt(6.0 ** 2 - z ** 2)
    assert truth.thickness_plane_mm == pytest.approx(want, abs=0.06)
    assert truth.cortex_mm == pytest.approx(4.0, abs=0.1)


def test_locate_area_refuses_a_seed_off_the_surface():
    anat, _ = _sphere_anatomy()
    with pytest.raises(ValueError, match="no white surface"):
        A.locate_area(anat, (0.0, 0.0, 0.0), (0.0, -1.0), 0.0, 1.5, radius=2.0)


@pytest.mark.slow
def test_template_anatomy_has_m1_like_cortex_at_every_area():
    anat = A.build_anatomy()
    for area, (seed, facing) in A.AREA_SEEDS_MM.items():
        t = A.locate_area(anat, seed, facing, seed[2], 1.8)
        assert 3.3 < t.cortex_mm < 5.5, area
        assert t.obliquity_deg <= 40
        assert t.thickness_plane_mm >= t.thickness_3d_mm - 0.05
