"""Edge fitting on analytic layered images whose edges are known exactly."""
from __future__ import annotations

import numpy as np
import pytest

from m1lib.geometry import Geometry
from m1lib.measure import ProfileSettings, edge_model, fit_profile, sample_profile

T = 1.8          # true deep-layer thickness (mm)
LEVELS = dict(csf=0.3, superficial=1.0, deep=0.8, u_fibre=0.5, white_matter=0.7)


def rotation(axis, angle) -> np.ndarray:
    a = np.asarray(axis, float)
    a /= np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def layers(r, thickness=T):
    """Ground truth along the layer normal r (mm): outer edge at 0, inner at T."""
    out = np.full(r.shape, LEVELS["white_matter"])
    out[r < thickness + 0.4] = LEVELS["u_fibre"]
    out[r < thickness] = LEVELS["deep"]
    out[r < 0] = LEVELS["superficial"]
    out[r < -1.2] = LEVELS["csf"]
    return out


@pytest.fixture(scope="module")
def slab():
    """One slice of an oblique, anisotropic 2D slab (0.25 x 0.3 x 2 mm) holding a
    straight layered cortex whose normal is 30 degrees off the first voxel axis.
    Voxel values are exact partial-volume averages (8 x 8 sub-samples)."""
    aff = np.eye(4)
    aff[:3, :3] = rotation([1, 2, 3], 0.5) * np.array([0.25, 0.3, 2.0])
    aff[:3, 3] = [-10.0, 5.0, 20.0]
    g = Geometry(aff, (64, 64, 3), "sform")
    plane = g.plane(1)
    phi = np.deg2rad(30)
    normal = np.array([np.cos(phi), np.sin(phi)])
    c0 = plane.ij_to_uv([[28.0, 30.0]])[0]
    n = 8
    sub = (np.arange(n) + 0.5) / n - 0.5
    ii, jj = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    img = np.zeros((64, 64))
    for a in sub:
        for b in sub:
            uv = plane.ij_to_uv(np.c_[(ii + a).ravel(), (jj + b).ravel()])
            img += layers((uv - c0) @ normal).reshape(64, 64)
    return img / n**2, plane, c0, normal


def caliper(plane, c0, normal, jitter=((0, 0), (0, 0))):
    p1 = c0 + np.asarray(jitter[0])
    p2 = c0 + T * normal + np.asarray(jitter[1])
    return plane.uv_to_ij(np.r_[[p1], [p2]])


@pytest.mark.parametrize("jitter", [((0, 0), (0, 0)), ((0.2, -0.15), (-0.1, 0.25)),
                                    ((-0.25, 0.2), (0.2, 0.2))])
def test_step_profile_edges_under_oblique_anisotropic_affine(slab, jitter):
    img, plane, c0, normal = slab
    ij = caliper(plane, c0, normal, jitter)
    fit = fit_profile(sample_profile(img, plane, ij[0], ij[1]))
    assert fit.ok, fit.reason
    # the perpendicular thickness, whatever the caliper's length and tilt
    assert fit.thickness_mm == pytest.approx(T, abs=0.02)
    # edges where the caliper's tilt puts them, along the caliper from its first point
    d = ij @ plane.m.T
    direction = (d[1] - d[0]) / np.linalg.norm(d[1] - d[0])
    cos_tilt = min(1.0, float(direction @ normal))
    assert np.degrees(np.arccos(cos_tilt)) == pytest.approx(abs(fit.angle_deg), abs=1.5)
    r_p1 = (d[0] - c0) @ normal   # where the first point lies along the normal
    assert fit.e_outer * np.cos(np.radians(fit.angle_deg)) == pytest.approx(-r_p1, abs=0.03)
    assert fit.levels["deep"] == pytest.approx(LEVELS["deep"], abs=0.02)
    assert fit.r2 > 0.99


def test_noisy_profile_is_within_its_standard_error(slab):
    img, plane, c0, normal = slab
    rng = np.random.default_rng(7)
    ij = caliper(plane, c0, normal, ((0.1, 0.1), (-0.1, 0.1)))
    errs, ses = [], []
    for _ in range(12):
        noisy = img + 0.02 * rng.standard_normal(img.shape)
        fit = fit_profile(sample_profile(noisy, plane, ij[0], ij[1]))
        if fit.ok:
            errs.append(fit.thickness_mm - T)
            ses.append(fit.se_mm)
    assert len(errs) >= 10
    assert abs(np.mean(errs)) < 0.05
    assert np.sqrt(np.mean(np.square(errs))) < 3 * np.mean(ses) + 0.02


def test_without_contrast_the_fit_is_nan_with_a_reason(slab):
    _, plane, c0, normal = slab
    flat = np.full((64, 64), 0.8) + 0.01 * np.random.default_rng(0).standard_normal((64, 64))
    ij = caliper(plane, c0, normal)
    fit = fit_profile(sample_profile(flat, plane, ij[0], ij[1]))
    assert not fit.ok and np.isnan(fit.thickness_mm)
    assert "contrast" in fit.reason or "uncertain" in fit.reason


def test_profile_leaving_the_image_fails_cleanly(slab):
    img, plane, _, _ = slab
    fit = fit_profile(sample_profile(img, plane, np.array([0.5, 30.0]), np.array([6.0, 30.0])))
    assert not fit.ok and fit.reason == "profile leaves the image"


def test_edge_model_is_a_blurred_staircase():
    r = np.linspace(-3, 3, 601)
    f = edge_model(r, [-1.0, 1.0], [0.0, 2.0, 1.0], 0.2)
    assert f[0] == pytest.approx(0.0, abs=1e-9) and f[-1] == pytest.approx(1.0, abs=1e-9)
    assert f[300] == pytest.approx(2.0, abs=1e-6)
    assert edge_model(np.array([-1.0]), [-1.0], [0.0, 2.0], 0.3)[0] == pytest.approx(1.0)


def test_caliper_direction_only_fit_matches_when_caliper_is_perpendicular(slab):
    img, plane, c0, normal = slab
    ij = caliper(plane, c0, normal)
    st = ProfileSettings(fit_angle=False)
    fit = fit_profile(sample_profile(img, plane, ij[0], ij[1], st), st)
    assert fit.ok and fit.angle_deg == 0.0
    # a Gaussian-blur model of box-averaged, bilinearly interpolated voxels: ~0.02 mm
    assert fit.thickness_mm == pytest.approx(T, abs=0.03)


def test_obliquity_correction_recovers_the_normal_thickness():
    """Mid-depth positions drifting by tan(tilt) per mm of z give t = t_plane cos(tilt)."""
    from m1lib.measure import EdgeFit, obliquity_corrected

    tilt = np.deg2rad(30)
    t3 = 1.5

    def fake(mid):
        f = EdgeFit(t3 / np.cos(tilt), 0.03, mid - 0.5, mid + 0.5, 0.2, 0.0, ok=True, reason="ok")
        f.params = {"mid_mm": mid, "se_mid_mm": 0.02}
        return f

    centre = fake(1.0)
    nb = {-1: fake(1.0 + 2.0 * np.tan(tilt)), +1: fake(1.0 - 2.0 * np.tan(tilt))}
    out = obliquity_corrected(centre, nb, 2.0)
    assert out["tilt_deg"] == pytest.approx(30.0, abs=1e-6)
    assert out["thickness_mm"] == pytest.approx(t3, abs=1e-9)
    assert 0.02 < out["se_mm"] < 0.1
    none = obliquity_corrected(centre, {-1: EdgeFit.failed("x")}, 2.0)
    assert np.isnan(none["thickness_mm"]) and "neighbouring" in none["reason"]
