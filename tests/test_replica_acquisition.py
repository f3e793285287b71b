"""The replica's acquisition on a sphere whose geometry is known exactly."""
from __future__ import annotations

import numpy as np
import pytest

from m1lib.replica import acquisition as Q
from m1lib.replica import anatomy as A

R_WHITE, R_PIAL = 6.0, 10.0


@pytest.fixture(scope="module")
def sphere():
    step = 0.25
    box = A.Box((-12.875, -12.875, -4.875), step, (104, 104, 40))
    X, Y, Z = np.meshgrid(*box.axes(), indexing="ij")
    r = np.sqrt(X ** 2 + Y ** 2 + Z ** 2)
    # exact distances: the acquisition, not the distance transform, is under test
    return A.Anatomy(box, (r - R_WHITE).astype(np.float32), (R_PIAL - r).astype(np.float32), 0.0)


def _spec(**kw):
    tissues = {"csf": (1.2, 0.0), "superficial": (1.0, 0.0), "deep": (0.8, 0.0),
               "u_fibre": (0.5, 0.0), "white_matter": (0.7, 0.0), "vein": (0.1, 0.0)}
    base = dict(tissues=tissues, anchors=np.array([[7.0, 0.0, 0.0]]), t_level=np.array([1.5]),
                r2_deep=np.array([0.0]), u_width_mm=0.0, u_absent=1.0)
    base.update(kw)
    return Q.SubjectSpec(**base)


ACQ = Q.Acquisition(x_range=(-12.0, 12.0), y_range=(-12.0, 12.0), n_slices=1, z0=0.0,
                    echo_times_s=(0.01,), kspace_filter="none")


def test_plateaus_and_pial_edge_land_where_the_anatomy_puts_them(sphere):
    img = Q.render_subject(sphere, ACQ, _spec())[0, 0]
    x, y, _ = ACQ.axes()
    iy0 = int(np.argmin(np.abs(y - 0.125)))
    row = img[iy0]
    # white matter at the centre, CSF beyond the pial surface (ringing aside)
    assert row[np.abs(x) < 3].mean() == pytest.approx(0.7, abs=0.01)
    assert row[np.abs(x) > 11.0].mean() == pytest.approx(1.2, abs=0.03)
    # the superficial cortex/CSF edge at half height, right of the centre: at
    # r ~ 10 (a 2 mm slab through the sphere's equator moves it by < 0.02 mm)
    right = (x > 9) & (x < 11)
    xs, vs = x[right], row[right]
    k = np.flatnonzero((vs[:-1] - 1.1) * (vs[1:] - 1.1) <= 0)[0]
    edge = xs[k] + (1.1 - vs[k]) / (vs[k + 1] - vs[k]) * (xs[k + 1] - xs[k])
    assert edge == pytest.approx(np.hypot(R_PIAL, 0.125 - 0.0) - 0.01, abs=0.05)


def test_through_slice_partial_volume_follows_the_slice_profile(sphere):
    # a slice through z = 4 mm cuts the white-matter sphere (r 6) into a disc of
    # radius sqrt(36 - z^2), varying across the 2 mm slab: the in-plane extent of
    # white matter is the slab average, between the radii at z = 3 and z = 5
    acq = Q.Acquisition(x_range=(-12.0, 12.0), y_range=(-12.0, 12.0), n_slices=1, z0=4.0,
                        echo_times_s=(0.01,), kspace_filter="tukey")
    spec = _spec(t_level=np.array([0.0]), t_background=0.0)    # no deep layer
    img = Q.render_subject(sphere, acq, spec)[0, 0]
    x, y, _ = acq.axes()
    row = img[int(np.argmin(np.abs(y - 0.125)))]
    # fraction of white matter at the centre column = 1; at x = 4.3 (between
    # sqrt(36 - 25) = 3.3 and sqrt(36 - 9) = 5.2) partial
    centre = row[np.abs(x) < 1].mean()
    assert centre == pytest.approx(0.7, abs=0.01)
    mid = row[np.argmin(np.abs(x - 4.3))]
    assert 0.72 < mid < 0.98


def test_motion_shifts_only_whole_phase_encode_lines(sphere):
    spec = _spec(motion_lines=0.3, motion_shift_mm=1.0)
    obj = Q.object_slice(sphere, ACQ, spec, 0)
    ones = np.ones(obj.shape[1:], np.float32)
    clean = Q.acquire(obj, ACQ, spec, ones, None, magnitude=False)[0]
    moved = Q.acquire(obj, ACQ, spec, ones, np.random.default_rng(1), magnitude=False)[0]
    Fc, Fm = np.fft.fft2(clean), np.fft.fft2(moved)
    same_row = np.all(np.isclose(Fc, Fm, atol=1e-6 * np.abs(Fc).max()), axis=1)
    # phase-encode lines (rows) untouched by motion are identical; ~30 % differ
    assert 0.55 < same_row.mean() < 0.85
    assert not np.allclose(clean, moved)


def test_noise_follows_the_g_factor_map(sphere):
    spec = _spec(sigma=0.05, g_max=2.0)
    clean = Q.render_subject(sphere, ACQ, spec)[0, 0]
    noisy = Q.render_subject(sphere, ACQ, spec, np.random.default_rng(3))[0, 0]
    g = Q.g_factor(ACQ, spec)
    d = noisy - clean
    centre, edge = g > np.quantile(g, 0.8), g < np.quantile(g, 0.2)
    assert g[centre].mean() / g[edge].mean() > 1.1
    # high SNR: the magnitude's noise SD is the complex noise SD
    assert d[centre].std() / d[edge].std() == pytest.approx(
        g[centre].mean() / g[edge].mean(), rel=0.15)


def test_deep_layer_thickness_field_is_calibrated_at_its_anchor():
    spec = _spec(anchors=np.array([[7.0, 0.0, 0.0], [-7.0, 0.0, 0.0]]),
                 t_level=np.array([1.0, 2.0]), r2_deep=np.array([40.0, 50.0]))
    pts = spec.anchors
    spec.t_level = Q.solve_anchor_values(spec, pts, np.array([1.3, 1.7]), "t")
    t, _ = Q.layer_fields(spec, pts)
    np.testing.assert_allclose(t, [1.3, 1.7], atol=1e-9)
