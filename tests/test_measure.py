"""Measurement on analytic images whose answers are known exactly.

The phantom: an oblique, anisotropic 2D slab (0.25 x 0.3 x 2 mm) holding a straight
layered cortex (CSF, superficial, deep layer of thickness T, U-fibre line, white
matter) and, beside it, a uniform "precuneus" patch. Every echo is
``M0(x) * exp(-TE * R2*)`` with a known R2*; voxel values are exact partial-volume
averages. Calipers are drawn exactly across the deep layer.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from m1lib import audit
from m1lib import contract as C
from m1lib import measure as M
from m1lib.errors import DataError
from m1lib.geometry import Geometry
from m1lib.markups import Markup, fiducial, line, write_markups

T = 1.8
R2STAR = 40.0
TES = (0.010, 0.020)
DEEP, REF = 0.8, 1.0
SHAPE = (128, 120, 5)


def rotation(axis, angle) -> np.ndarray:
    a = np.asarray(axis, float)
    a /= np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def oblique_affine() -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = rotation([1, 2, 3], 0.5) * np.array([0.25, 0.3, 2.0])
    a[:3, 3] = [-10.0, 5.0, 20.0]
    return a


class Phantom:
    """World-space description of the layered phantom."""

    def __init__(self, affine=None):
        self.affine = oblique_affine() if affine is None else affine
        self.geom = Geometry(self.affine, SHAPE, "sform")
        plane = self.geom.plane(0)
        phi = np.deg2rad(30)
        self.normal = plane.basis @ np.array([np.cos(phi), np.sin(phi)])
        self.tangent = plane.basis @ np.array([-np.sin(phi), np.cos(phi)])
        self.x0 = self.geom.voxel_to_world([[SHAPE[0] / 2, SHAPE[1] / 2, 0]])[0]

    def m0(self, world):
        d = world - self.x0
        r, t = d @ self.normal, d @ self.tangent
        out = np.full(r.shape, 0.7)
        out[r < T + 0.4] = 0.5
        out[r < T] = DEEP
        out[r < 0] = 1.0
        out[r < -1.2] = 0.3
        out[t > 6.0] = REF
        # a smooth M0 variation that R2* must not see
        return out * (1.0 + 0.1 * np.sin(d[:, 0] / 10.0))

    def volume(self, n=4):
        sub = (np.arange(n) + 0.5) / n - 0.5
        ii, jj, kk = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
        acc = np.zeros(SHAPE)
        for a in sub:
            for b in sub:
                ijk = np.c_[(ii + a).ravel(), (jj + b).ravel(), kk.ravel()]
                acc += self.m0(self.geom.voxel_to_world(ijk)).reshape(SHAPE)
        return acc / n**2

    def point(self, k, t, r):
        base = self.geom.voxel_to_world([[SHAPE[0] / 2, SHAPE[1] / 2, k]])[0]
        return base + t * self.tangent + r * self.normal


@pytest.fixture(scope="module")
def phantom():
    p = Phantom()
    p.m0_volume = p.volume()
    return p


def tpos(n: int) -> float:
    """Where caliper n crosses the cortex: the phantom's x falls along its tangent,
    so the L_* calipers (n < 4) lie left (lower RAS x) of the R_* ones, as in a brain,
    and the reference (t = 10) left of the midline."""
    return 2.2 - 1.6 * n


def labels():
    return [f"{h}_{a}" for h in C.HEMISPHERES for a in C.AREAS]


def write_participant(root: Path, pid: str, phantom: Phantom, *, coordinate_system="LPS",
                      markups: list[Markup] | None = None, sidecar_extra=None,
                      scale=1000.0) -> tuple[list[Path], Path]:
    anat = root / pid / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    echoes = []
    for e, te in enumerate(TES, start=1):
        data = (scale * phantom.m0_volume * math.exp(-te * R2STAR)).astype(np.float32)
        img = nib.Nifti1Image(data, phantom.affine)
        img.set_qform(phantom.affine, code=1)
        path = anat / f"{pid}_echo-{e}_part-mag_MEGRE.nii.gz"
        nib.save(img, path)
        meta = {"EchoTime": te, "RepetitionTime": 0.5, "SliceThickness": 2.0}
        meta.update(sidecar_extra or {})
        (anat / f"{pid}_echo-{e}_part-mag_MEGRE.json").write_text(json.dumps(meta))
        echoes.append(path)
    if markups is None:
        markups = default_markups(phantom)
    mpath = root / "derivatives" / "annotations" / f"{pid}_desc-m1_markups.mrk.json"
    write_markups(mpath, markups, coordinate_system=coordinate_system)
    return echoes, mpath


def default_markups(phantom: Phantom) -> list[Markup]:
    out = []
    for n, lab in enumerate(labels()):
        k, t = n % SHAPE[2], tpos(n)
        out.append(line(lab, phantom.point(k, t, 0.0), phantom.point(k, t, T)))
    out.append(fiducial(C.REFERENCE_LABEL, phantom.point(2, 10.0, 0.5)))
    return out


# ------------------------------------------------------------------------- ROIs

@pytest.mark.parametrize("voxel,tol", [((1.0, 1.0), 0.01), ((0.7, 1.3), 0.01),
                                       ((0.25, 0.3), 0.002)])
def test_ellipse_area_is_exact_on_coarse_and_fine_grids(voxel, tol):
    aff = np.eye(4)
    aff[:3, :3] = rotation([0.3, 0.2, 1.0], 0.4) * np.array([*voxel, 2.0])
    plane = Geometry(aff, (80, 80, 3), "sform").plane(1)
    rng = np.random.default_rng(3)
    for _ in range(5):
        centre = plane.ij_to_uv([rng.uniform(30, 50, 2)])[0]
        p1 = centre + rng.normal(0, 1, 2)
        ell = M.caliper_oval(p1, p1 + rng.uniform(1.2, 2.2) * np.array([0.6, 0.8]), 4.0)
        ii, jj, w, inside = M.roi_weights(ell, plane, supersample=16)
        assert inside
        assert w.sum() * plane.pixel_area_mm2 == pytest.approx(4.0, rel=tol)
        assert np.all((w > 0) & (w <= 1))
    disc = M.disc(centre, 4.0)
    _, _, w, _ = M.roi_weights(disc, plane)
    assert w.sum() * plane.pixel_area_mm2 == pytest.approx(4.0, rel=tol)


def test_oval_rule_minor_axis_along_the_caliper():
    e = M.caliper_oval([0.0, 0.0], [0.0, 2.0], 4.0, 0.5)
    assert e.area_mm2 == pytest.approx(4.0)
    assert e.semi_minor == pytest.approx(0.5)
    assert np.allclose(e.centre, [0.0, 1.0])
    # the minor axis (along the caliper) stays inside the middle half of the layer
    assert e.contains([[0.0, 1.49]])[0] and not e.contains([[0.0, 1.51]])[0]
    assert e.contains([[e.semi_major - 1e-6, 1.0]])[0]


def test_ellipse_through_points_recovers_a_rotated_ellipse():
    t = np.linspace(0, 2 * np.pi, 13)[:-1]
    a, b, th = 2.5, 0.6, 0.7
    x, y = a * np.cos(t), b * np.sin(t)
    pts = np.c_[x * np.cos(th) - y * np.sin(th), x * np.sin(th) + y * np.cos(th)] + [3.0, -1.0]
    e = M.ellipse_from_points(pts)
    assert np.allclose(e.centre, [3.0, -1.0]) and e.semi_major == pytest.approx(a)
    assert e.semi_minor == pytest.approx(b) and (e.angle - th) % np.pi == pytest.approx(0, abs=1e-9)


def test_weighted_mean_of_a_linear_ramp_is_its_centre_value():
    aff = np.diag([0.5, 0.5, 2.0, 1.0])
    plane = Geometry(aff, (40, 40, 1), "sform").plane(0)
    ii, jj = np.meshgrid(np.arange(40), np.arange(40), indexing="ij")
    ramp = 3.0 + 0.2 * ii - 0.1 * jj        # voxel average of a linear field = its centre value
    ell = M.caliper_oval([9.3, 10.1], [9.9, 11.7], 4.0)
    i, j, w, _ = M.roi_weights(ell, plane)
    mean, sd = M.weighted_stats(ramp[i, j], w)
    ci, cj = plane.uv_to_ij(ell.centre)[0]
    assert mean == pytest.approx(3.0 + 0.2 * ci - 0.1 * cj, abs=2e-3)
    assert sd > 0


def test_r2star_formula():
    s = [100 * np.exp(-0.01 * 33.0), 100 * np.exp(-0.02 * 33.0)]
    assert M.r2star(s, [0.01, 0.02]) == pytest.approx(33.0)
    s3 = [100 * np.exp(-te * 33.0) for te in (0.005, 0.01, 0.02)]
    assert M.r2star(s3, [0.005, 0.01, 0.02]) == pytest.approx(33.0)
    assert np.isnan(M.r2star([1.0, 0.0], [0.01, 0.02]))


# ------------------------------------------------------------------- participant

@pytest.fixture(scope="module")
def measured(phantom, tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    echoes, mk = write_participant(root, "sub-P01", phantom)
    return root, echoes, mk, M.measure_participant("sub-P01", echoes, mk)


def modulation(x, phantom):
    return 1.0 + 0.1 * np.sin((x - phantom.x0[0]) / 10.0)


def test_known_answers_on_the_analytic_phantom(measured, phantom):
    _, _, _, tab = measured
    assert list(tab.columns) == list(M.TABLE_COLUMNS)
    assert len(tab) == 8 and tab[["hemisphere", "area"]].drop_duplicates().shape[0] == 8
    # caliper: exactly T (the paper's method)
    assert np.allclose(tab.thickness_mm, T, atol=5e-4)  # markups store 0.1 um
    # rater-independent thickness
    assert tab.fit_ok.all(), tab.fit_reason.tolist()
    assert np.allclose(tab.profile_thickness_mm, T, atol=0.03)
    # R2* of a known mono-exponential, whatever M0 does in space
    assert np.allclose(tab.r2star_s, R2STAR, rtol=1e-5)
    # ROI: 4 mm² exactly, inside the deep layer; reference 4 mm²
    # (10 x 10 sub-samples per boundary voxel: a few 0.1 % on a thin oval)
    assert np.allclose(tab.roi_area_mm2, 4.0, rtol=3e-3)
    assert np.allclose(tab.ref_area_mm2, 4.0, rtol=2e-3)
    assert (tab.roi_n_voxels > 4.0 / (0.25 * 0.3)).all()
    # normalized intensity: deep / reference level, times the smooth M0 modulation
    # at the two ROI centres (its curvature over an ROI is < 0.1 %)
    ref_x = phantom.point(2, 10.0, 0.5)[0]
    centres = [phantom.point(n % SHAPE[2], tpos(n), T / 2)[0] for n in range(8)]
    expected = [DEEP * modulation(x, phantom) / (REF * modulation(ref_x, phantom)) for x in centres]
    assert np.allclose(tab.intensity, expected, rtol=0.003)
    assert (tab.affine_source == "sform").all()
    assert not tab.r2star_low_signal.any()
    assert tab.slice.tolist() == [n % SHAPE[2] for n in range(8)]


def test_layer_roi_and_oval_side_by_side(measured, phantom):
    """The layer-following ROI beside the oval, against the hand-built phantom's truth."""
    _, _, _, tab = measured
    assert (tab.roi_shape == "oval").all()
    assert np.array_equal(tab.intensity_oval, tab.intensity)
    assert np.array_equal(tab.r2star_s_oval, tab.r2star_s, equal_nan=True)
    ref_x = phantom.point(2, 10.0, 0.5)[0]
    centres = [phantom.point(n % SHAPE[2], tpos(n), T / 2)[0] for n in range(8)]
    expected = np.array([DEEP * modulation(x, phantom) / (REF * modulation(ref_x, phantom))
                         for x in centres])
    assert (tab.roi_layer_reason == "ok").all(), tab.roi_layer_reason.tolist()
    # it walks along the layer (up to ~5 mm each way), where M0's modulation varies by ~0.5 %
    assert np.allclose(tab.intensity_layer, expected, rtol=0.01)
    assert np.allclose(tab.roi_layer_area_mm2, 4.0, rtol=0.05)
    assert np.allclose(tab.r2star_s_layer, R2STAR, rtol=1e-4)
    assert np.allclose(tab.roi_layer_mean / tab.ref_mean, tab.intensity_layer)
    # layers perpendicular to the slices: no tilt, the 3-D thickness is the in-plane one
    assert (tab.thickness_3d_reason == "ok").all(), tab.thickness_3d_reason.tolist()
    assert np.allclose(tab.thickness_3d_mm, T, atol=0.05)
    assert (tab.tilt_deg < 5).all() and (tab.thickness_3d_se_mm < 0.1).all()


def test_roi_shape_layer_feeds_intensity(measured):
    _, echoes, mk, oval = measured
    lay = M.measure_participant("sub-P01", echoes, mk, roi_shape="layer")
    assert (lay.roi_shape == "layer").all() and (lay.roi_source == "layer").all()
    assert np.array_equal(lay.intensity, lay.intensity_layer)
    assert np.array_equal(lay.r2star_s, lay.r2star_s_layer)
    assert np.array_equal(lay.roi_area_mm2, lay.roi_layer_area_mm2)
    # the oval is kept under its own name, identical to the default measurement's
    assert np.array_equal(lay.intensity_oval, oval.intensity)
    assert np.array_equal(lay.intensity_layer, oval.intensity_layer)
    with pytest.raises(DataError, match="roi_shape"):
        M.MeasureSettings(roi_shape="disc")
    # the batch takes it as the manifest's settings give it (pipeline passes settings.roi_shape)
    batch, fails = M.measure_dataset({"sub-P01": echoes}, {"sub-P01": mk}, jobs=1, roi_shape="layer")
    assert fails.empty and np.array_equal(batch.intensity, lay.intensity)


class TiltedPhantom(Phantom):
    """The phantom with its layers tilted out of the slice plane by ``tilt_deg``: each
    slice samples its centre plane, so the apparent thickness is T / cos(tilt)."""

    def __init__(self, tilt_deg: float):
        super().__init__()
        a = np.deg2rad(tilt_deg)
        self.in_plane = self.normal.copy()
        self.normal = np.cos(a) * self.in_plane + np.sin(a) * self.geom.plane_normal
        self.tilt = a

    def caliper(self, k, t):
        """Outer and inner deep-layer edge on slice k, along the in-plane normal."""
        base = self.geom.voxel_to_world([[SHAPE[0] / 2, SHAPE[1] / 2, k]])[0] + t * self.tangent
        s0 = -((base - self.x0) @ self.normal) / np.cos(self.tilt)
        return (base + s0 * self.in_plane, base + (s0 + T / np.cos(self.tilt)) * self.in_plane)


def test_obliquity_corrected_thickness_on_a_tilted_layer(tmp_path):
    ph = TiltedPhantom(25.0)
    ph.m0_volume = ph.volume()
    marks = []
    for n, lab in enumerate(labels()):
        k = 1 + n % 3                       # slices with both neighbours
        marks.append(line(lab, *ph.caliper(k, tpos(n))))
    marks.append(fiducial(C.REFERENCE_LABEL, ph.caliper(2, 10.0)[0] + 0.5 * ph.in_plane))
    echoes, mk = write_participant(tmp_path, "sub-T01", ph, markups=marks)
    tab = M.measure_participant("sub-T01", echoes, mk)
    assert tab.fit_ok.all(), tab.fit_reason.tolist()
    assert np.allclose(tab.profile_thickness_mm, T / np.cos(np.deg2rad(25.0)), atol=0.05)
    assert (tab.thickness_3d_reason == "ok").all(), tab.thickness_3d_reason.tolist()
    assert np.allclose(tab.thickness_3d_mm, T, atol=0.08)
    assert np.allclose(tab.tilt_deg, 25.0, atol=4.0)
    # without neighbours asked for: NaN with the reason, never a number
    flat = M.measure_participant("sub-T01", echoes, mk,
                                 settings=M.MeasureSettings(obliquity=False))
    assert flat.thickness_3d_mm.isna().all()
    assert flat.thickness_3d_reason.str.contains("not asked").all()


def test_lps_and_ras_markups_give_the_same_result(measured, phantom):
    root, echoes, _, tab = measured
    mk = root / "ras.mrk.json"
    write_markups(mk, default_markups(phantom), coordinate_system="RAS")
    ras = M.measure_participant("sub-P01", echoes, mk)
    pd.testing.assert_frame_equal(ras, tab, atol=1e-6, check_exact=False)
    raw = json.loads(mk.read_text())
    assert {m["coordinateSystem"] for m in raw["markups"]} == {"RAS"}


def test_a_point_half_a_slice_off_is_an_error_naming_participant_and_label(phantom, tmp_path):
    marks = default_markups(phantom)
    bad = marks[2]
    off = phantom.geom.plane_normal * (0.5 * 2.0 + 0.05)
    k_last = SHAPE[2] - 1
    p = phantom.point(k_last, -3.0, 0.0)
    marks[2] = line(bad.name, p + off, phantom.point(k_last, -3.0, T) + off)
    echoes, mk = write_participant(tmp_path, "sub-P02", phantom, markups=marks)
    with pytest.raises(DataError) as err:
        M.measure_participant("sub-P02", echoes, mk)
    msg = str(err.value)
    assert "sub-P02: L_hand: point 1" in msg and "half a slice" in msg


@pytest.mark.parametrize("mtype", ["ClosedCurve", "Curve"])
def test_explicit_roi_markup_overrides_the_oval(phantom, tmp_path, mtype):
    """A closed curve is measured as drawn (its area is the polygon's shoelace area);
    another markup type with >= 5 points is replaced by its least-squares ellipse."""
    marks = default_markups(phantom)
    k, t = 0, tpos(0)
    ang = np.linspace(0, 2 * np.pi, 9)[:-1]
    tr = np.c_[t + 2.0 * np.cos(ang), 0.9 + 0.4 * np.sin(ang)]
    pts = [phantom.point(k, a, b) for a, b in tr]
    marks.append(Markup("L_foot_roi", mtype, np.array(pts)))
    echoes, mk = write_participant(tmp_path, "sub-P03", phantom, markups=marks)
    tab = M.measure_participant("sub-P03", echoes, mk)
    row = tab.set_index(["hemisphere", "area"]).loc[("L", "foot")]
    x, y = tr[:, 0], tr[:, 1]  # (t, r) are orthonormal mm in the slice plane
    shoelace = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    if mtype == "ClosedCurve":
        assert row.roi_source == "closed_curve"
        assert row.roi_area_mm2 == pytest.approx(shoelace, rel=1e-4)  # markups keep 0.1 um
        assert shoelace == pytest.approx(4 * np.sin(np.pi / 4) * 2.0 * 0.4)
    else:
        assert row.roi_source == "markup_ellipse"
        assert row.roi_area_mm2 == pytest.approx(np.pi * 2.0 * 0.4, rel=5e-3)
    expected = DEEP * modulation(phantom.point(k, t, 0.9)[0], phantom) / (
        REF * modulation(phantom.point(2, 10.0, 0.5)[0], phantom))
    assert row.intensity == pytest.approx(expected, rel=0.003)


def test_echo_time_in_milliseconds_is_refused(phantom, tmp_path):
    echoes, mk = write_participant(tmp_path, "sub-P04", phantom)
    sc = echoes[1].with_name(echoes[1].name.replace(".nii.gz", ".json"))
    sc.write_text(json.dumps({"EchoTime": 20}))
    with pytest.raises(DataError, match="sub-P04: EchoTime: EchoTime 20 is not in seconds"):
        M.measure_participant("sub-P04", echoes, mk)


# ------------------------------------------------------------------------ batch

@pytest.fixture(scope="module")
def cohort(phantom, tmp_path_factory):
    """Three participants; sub-C02's markups lack R_face."""
    root = tmp_path_factory.mktemp("cohort")
    images, ann = {}, {}
    for pid in ("sub-C01", "sub-C02", "sub-C03"):
        marks = default_markups(phantom)
        if pid == "sub-C02":
            marks = [m for m in marks if m.name != "R_face"]
        images[pid], ann[pid] = write_participant(root, pid, phantom, markups=marks)
    return images, ann


def test_one_failure_does_not_stop_the_others(cohort):
    images, ann = cohort
    table, failures = M.measure_dataset(images, ann, jobs=1)
    assert sorted(table.participant_id.unique()) == ["sub-C01", "sub-C03"]
    assert failures.participant_id.tolist() == ["sub-C02"]
    assert failures.kind.tolist() == ["data"]
    assert "R_face: annotation missing" in failures.reason.iloc[0]
    # no annotations at all: a failure too
    t2, f2 = M.measure_dataset(images, {k: v for k, v in ann.items() if k != "sub-C03"}, jobs=1)
    assert set(f2.participant_id) == {"sub-C02", "sub-C03"}


def test_process_pool_gives_the_serial_result(cohort):
    images, ann = cohort
    serial, _ = M.measure_dataset(images, ann, jobs=1)
    pooled, failures = M.measure_dataset(images, ann, jobs=2)
    pd.testing.assert_frame_equal(serial, pooled)
    assert len(failures) == 1


def test_dask_local_cluster_runs_it_unchanged(cohort):
    distributed = pytest.importorskip("distributed")
    images, ann = cohort
    serial, _ = M.measure_dataset(images, ann, jobs=1)
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        table, failures = M.measure_dataset(images, ann, executor=client)
    pd.testing.assert_frame_equal(serial, table)
    assert failures.participant_id.tolist() == ["sub-C02"]


def test_hemisphere_average(measured):
    tab = measured[3]
    per = M.hemisphere_average(tab)
    assert len(per) == 1 and per.n_thickness_mm.iloc[0] == 8
    assert per.thickness_mm.iloc[0] == pytest.approx(tab.thickness_mm.mean())
    by_area = M.hemisphere_average(tab, by_area=True)
    assert by_area.area.tolist() == sorted(C.AREAS)
    assert (by_area.n_intensity == 2).all()


def test_measure_never_imports_plotting():
    """Nothing under m1lib/measure imports matplotlib (or the plotting modules), at any level."""
    pkg = Path(M.__file__).parent
    bad = []
    for f in sorted(pkg.rglob("*.py")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            s = line.strip()
            if s.startswith(("import ", "from ")) and any(
                    w in s for w in ("matplotlib", "seaborn", "figures", "audit", "crops")):
                bad.append(f"{f.name}:{n}: {s}")
    assert not bad, bad
    # and importing it does not load matplotlib (a fresh interpreter)
    code = "import sys, m1lib.measure; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_audit_figure_is_deterministic(measured, tmp_path):
    _, echoes, mk, tab = measured
    a = audit.audit_figure("sub-P01", echoes, mk, tab, tmp_path / "a.png")
    b = audit.audit_figure("sub-P01", echoes, mk, tab, tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------- noise, QC

def test_noise_estimate_without_air_and_with_edges(phantom):
    rng = np.random.default_rng(11)
    clean = 1000.0 * phantom.m0_volume
    noisy = np.hypot(clean + 20.0 * rng.standard_normal(SHAPE), 20.0 * rng.standard_normal(SHAPE))
    assert M.estimate_noise(noisy) == pytest.approx(20.0, rel=0.05)
    # no tissue at all: NaN, not a number made up
    assert np.isnan(M.estimate_noise(np.zeros((16, 16, 2))))


def test_sharpness_ratio_drops_when_the_phase_axis_is_smeared():
    from scipy import ndimage

    rng = np.random.default_rng(5)
    # isotropic texture inside a disc ("head")
    tex = ndimage.gaussian_filter(rng.standard_normal((128, 128, 3)), (1.5, 1.5, 0))
    ii, jj = np.meshgrid(np.arange(128), np.arange(128), indexing="ij")
    head = ((ii - 64) ** 2 + (jj - 64) ** 2 < 50 ** 2)[:, :, None]
    img = np.where(head, 1000 + 300 * tex / tex.std(), 0.0)
    sigma = 5.0
    sharp = img + sigma * rng.standard_normal(img.shape)
    smeared = ndimage.gaussian_filter1d(img, 2.0, axis=1) + sigma * rng.standard_normal(img.shape)
    assert M.sharpness_ratio(sharp, 1, sigma, stride=1) == pytest.approx(1.0, abs=0.15)
    assert M.sharpness_ratio(smeared, 1, sigma, stride=1) < 0.5
    assert M.sharpness_ratio(smeared, 0, sigma, stride=1) > 2.0   # the other axis is the PE one


def shift_phase_lines(vol: np.ndarray, axis: int, share: float, mm: float, voxel_mm: float,
                      rng) -> np.ndarray:
    """Motion in a 2D acquisition, built independently of the QC: for a random ``share``
    of phase-encode lines (along in-plane ``axis``) the object was shifted rigidly (by
    up to ``mm`` each way), i.e. those k-space lines carry the shift's linear phase."""
    out = np.empty(vol.shape, np.float32)
    k_pe = np.fft.fftfreq(vol.shape[axis], voxel_mm)
    k_ro = np.fft.fftfreq(vol.shape[1 - axis], voxel_mm)
    for z in range(vol.shape[2]):
        f = np.fft.fft2(np.moveaxis(vol[:, :, z], axis, 0))
        moved = np.flatnonzero(rng.random(len(k_pe)) < share)
        d = rng.uniform(-mm, mm, (len(k_pe), 2))
        for j in moved:
            f[j] *= np.exp(-2j * np.pi * (k_ro * d[j, 0] + k_pe[j] * d[j, 1]))
        out[:, :, z] = np.moveaxis(np.abs(np.fft.ifft2(f)), 0, axis)
    return out


def test_ghost_ratio_flags_shifted_phase_lines_whatever_the_anatomy():
    from scipy import ndimage

    rng = np.random.default_rng(5)
    # stripes running along i only (as the flat replica's layers) and an isotropic texture
    ii, jj = np.meshgrid(np.arange(320), np.arange(300), indexing="ij")
    tex = ndimage.gaussian_filter(rng.standard_normal((320, 300)), 2.0)
    stripes = np.sign(np.sin(jj / 5.0 + 3 * tex))
    for anat in (stripes, tex / tex.std(), np.sign(tex)):
        vol = np.repeat((1000 + 300 * anat)[:, :, None], 3, axis=2)
        clean = vol + 10 * rng.standard_normal(vol.shape)
        moved = shift_phase_lines(vol, 1, 0.25, 1.0, 0.25, rng) + 10 * rng.standard_normal(vol.shape)
        for pe in (0, 1):     # either axis as the phase axis: the anatomy's direction does not matter
            assert M.ghost_ratio(clean, pe) < 1.5
        assert M.ghost_ratio(moved, 1) > 2.0
        assert M.ghost_ratio(moved, 0) < 1.0    # the readout axis is clean


def test_motion_flag_from_the_phase_axis_of_the_sidecar(phantom, tmp_path):
    echoes, mk = write_participant(tmp_path, "sub-M01", phantom,
                                   sidecar_extra={"PhaseEncodingDirection": "j"})
    rng = np.random.default_rng(4)
    clean = [np.asarray(nib.load(p).dataobj, np.float32) for p in echoes]

    def save(volumes):
        for p, v in zip(echoes, volumes):
            img = nib.load(p)
            noisy = v + 5 * rng.standard_normal(SHAPE)
            nib.save(nib.Nifti1Image(noisy.astype(np.float32), img.affine, img.header), p)

    save(clean)
    tab = M.measure_participant("sub-M01", echoes, mk)
    assert tab.qc_ghost_ratio.nunique() == 1 and not tab.qc_motion.any()
    # motion between phase-encode lines (j), before the noise: flagged, still measured
    vox = float(nib.load(echoes[0]).header.get_zooms()[0])
    save([shift_phase_lines(v, 1, 0.25, 1.0, vox, np.random.default_rng(9)) for v in clean])
    tab2 = M.measure_participant("sub-M01", echoes, mk)
    assert tab2.qc_motion.all() and len(tab2) == 8
    assert tab2.qc_ghost_ratio.iloc[0] > 1.5 * tab.qc_ghost_ratio.iloc[0]
    # without a phase axis anywhere, the metrics are NaN and nothing is flagged
    echoes3, mk3 = write_participant(tmp_path / "b", "sub-M02", phantom)
    tab3 = M.measure_participant("sub-M02", echoes3, mk3)
    assert tab3.qc_ghost_ratio.isna().all() and tab3.qc_sharpness_ratio.isna().all()
    assert not tab3.qc_motion.any()


def test_cohort_relative_sharpness_and_the_ghost_flag():
    ratios = [2.0, 2.1, 1.9, 2.2, 0.7, 2.05]
    t = pd.DataFrame({"participant_id": [f"sub-{i}" for i in range(6)],
                      "qc_sharpness_ratio": ratios,
                      "qc_ghost_ratio": [1.0, 1.1, 0.9, 2.4, 1.0, np.nan]})
    out = M.cohort_motion_flags(t)
    # the flag is the ghost ratio's alone (absolute threshold, no cohort reference)
    assert out.qc_motion.tolist() == [False, False, False, True, False, False]
    assert out.qc_sharpness_relative.iloc[0] == pytest.approx(2.0 / 2.025)
    # too few participants for a cohort median: against 1 (isotropic anatomy)
    assert M.cohort_motion_flags(t.iloc[4:]).qc_sharpness_relative.tolist()[0] == pytest.approx(0.7)


def test_low_signal_flag_on_the_last_echo(phantom, tmp_path):
    # a tiny image scale with added noise: the last echo's ROI is near the floor
    echoes, mk = write_participant(tmp_path, "sub-L01", phantom, scale=1000.0)
    rng = np.random.default_rng(2)
    for p in echoes:
        img = nib.load(p)
        d = np.asarray(img.dataobj, np.float32)
        noisy = np.hypot(d + 150 * rng.standard_normal(d.shape), 150 * rng.standard_normal(d.shape))
        nib.save(nib.Nifti1Image(noisy.astype(np.float32), img.affine, img.header), p)
    tab = M.measure_participant("sub-L01", echoes, mk)
    assert (tab.snr_last_echo < 5).all() and tab.r2star_low_signal.all()


# ------------------------------------------------------------- input problems

def test_sform_qform_disagreement_is_a_failure_with_its_reason(phantom, tmp_path):
    echoes, mk = write_participant(tmp_path, "sub-Q01", phantom)
    img = nib.load(echoes[0])
    moved = phantom.affine.copy()
    moved[:3, 3] += [0.3, 0.0, 0.0]
    img.set_qform(moved, code=1)
    nib.save(img, echoes[0])
    table, failures = M.measure_dataset({"sub-Q01": echoes}, {"sub-Q01": mk}, jobs=1)
    assert table.empty and failures.kind.tolist() == ["data"]
    assert "sform and qform disagree by up to 0.3" in failures.reason.iloc[0]
    assert M.measure_participant("sub-Q01", echoes, mk,
                                 settings=M.MeasureSettings(affine_tol_mm=0.5)).shape[0] == 8


def test_unreadable_image_is_a_data_failure(phantom, tmp_path):
    echoes, mk = write_participant(tmp_path, "sub-U01", phantom)
    echoes[1].write_bytes(b"not a nifti")
    _, failures = M.measure_dataset({"sub-U01": echoes}, {"sub-U01": mk}, jobs=1)
    assert failures.kind.tolist() == ["data"] and "cannot read image" in failures.reason.iloc[0]


def test_settings_are_checked():
    with pytest.raises(DataError, match="roi_centre: 'middle'"):
        M.MeasureSettings(roi_centre="middle")
    with pytest.raises(DataError, match="areas: unknown areas"):
        M.MeasureSettings(areas=("toe",))


def test_caliper_rule_roi_is_the_literal_rule(measured):
    _, echoes, mk, tab = measured
    lit = M.measure_participant("sub-P01", echoes, mk,
                                settings=M.MeasureSettings(roi_centre="caliper"))
    assert (lit.roi_source == "caliper_oval").all() and (tab.roi_source == "profile_oval").all()
    # exact calipers on a straight layer: both rules give the same intensity
    assert np.allclose(lit.intensity, tab.intensity, rtol=2e-3)
    assert np.allclose(lit.roi_area_mm2, 4.0, rtol=2e-3)


def test_truncated_image_is_a_data_error_naming_participant(tmp_path):
    """A gzip cut short fails that participant with one clear problem, not a traceback."""
    import gzip as _gzip

    from m1lib import synth
    from m1lib.dataset import find_images

    root = synth.generate(tmp_path / "r", seed=3, n_als=2, n_hs=2)
    pid = "sub-ALS01"
    echoes = find_images(root, pid)
    raw = _gzip.decompress(echoes[1].read_bytes())
    echoes[1].write_bytes(_gzip.compress(raw[: len(raw) // 3], mtime=0))
    ann = root / "derivatives" / "annotations" / f"{pid}_desc-m1_markups.mrk.json"
    table, failures = M.measure_dataset({pid: echoes}, {pid: ann}, jobs=1)
    assert table.empty and failures["kind"].tolist() == ["data"]
    assert pid in failures["reason"].iloc[0] and "image" in failures["reason"].iloc[0]
