"""The explorer's logic without a browser: state, overlays, readouts, saving, the notebook.

Expected values are computed here from the files (nibabel affines, the markups as
written) rather than taken from m1lib.widgets.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from conftest import build_dataset
from m1lib import contract as C
from m1lib import synth, widgets
from m1lib.dataset import check_annotation
from m1lib.errors import DataError
from m1lib.markups import read_markups
from m1lib.pipeline import load_tables

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "07_explorer.ipynb"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A tiny replica (2 patients, 1 healthy subject), measured once."""
    root = tmp_path_factory.mktemp("explorer") / "replica"
    synth.generate(root, seed=7, n_als=2, n_hs=1)
    (root / "data_manifest.yaml").write_text("dataset: .\n")
    load_tables(root / "data_manifest.yaml", jobs=2, log=lambda *a: None)
    return root


@pytest.fixture
def manifest(pristine, tmp_path) -> Path:
    """A private copy of the replica (tests edit its annotations)."""
    root = tmp_path / "replica"
    shutil.copytree(pristine, root)
    return root / "data_manifest.yaml"


@pytest.fixture
def ex(manifest) -> widgets.Explorer:
    return widgets.Explorer.from_manifest(manifest, log=lambda *a: None)


def _voxels(ex, pid, label):
    """Voxel coordinates of a markup's points, from nibabel's affine (independent of widgets)."""
    img = nib.load(ex.images[pid][0].path)
    pts = read_markups(ex.annotations[pid])[label].points
    inv = np.linalg.inv(img.affine)
    return pts @ inv[:3, :3].T + inv[:3, 3]


def _shoelace_mm2(ij, px):
    x, y = ij[:, 0] * px[0], ij[:, 1] * px[1]
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


# ----------------------------------------------------------------------------- browser

def test_default_view_is_first_patient_zoomed_on_left_hand(ex):
    st = ex.state
    assert st.participant_id == "sub-ALS01"
    assert ex.participant_order() == ["sub-ALS01", "sub-ALS02", "sub-HS01"]
    assert st.zoom == "L_hand" and st.image == "echo 2"
    v = _voxels(ex, "sub-ALS01", "L_hand")
    assert st.slice == int(round(v[:, 2].mean()))
    # the zoom box: 2 x 6 mm around the caliper's midpoint, 0.25 mm voxels
    (i0, i1), (j0, j1) = ex.view_limits()
    assert np.allclose([(i0 + i1) / 2, (j0 + j1) / 2], v[:, :2].mean(axis=0))
    assert np.isclose(i1 - i0, 12 / 0.25) and np.isclose(j1 - j0, 12 / 0.25)
    # shown image = echo 2 slice, as nibabel reads it
    img = nib.load(ex.images["sub-ALS01"][1].path)
    assert np.array_equal(ex.image_slice(), np.asarray(img.dataobj[:, :, st.slice], dtype=np.float32))


def test_participant_labels_carry_clinical_values(ex):
    p = pd.read_csv(Path(ex.manifest.root) / "participants.tsv", sep="\t", na_values="n/a")
    row = p.set_index("participant_id").loc["sub-ALS02"]
    label = ex.participant_label("sub-ALS02")
    dpr = (48 - row.alsfrs_r) / row.disease_duration_months
    umn = row[list(C.UMN_COLUMNS)].sum()
    assert label.startswith("ALS sub-ALS02")
    assert f"ALSFRS-R {row.alsfrs_r:g}" in label and f"DPR {dpr:.2f}" in label and f"UMN {umn:g}" in label
    assert "ALSFRS" not in ex.participant_label("sub-HS01")


def test_slice_image_window_and_r2star(ex):
    ex.set_slice(0)
    assert ex.state.slice == 0
    ex.set_slice(999)
    assert ex.state.slice == ex.volume().shape[2] - 1
    ex.set_zoom("L_hand")
    ex.set_window(100.0, 500.0)
    assert ex.clim() == (450.0, 550.0)
    ex.set_image("R2*")
    e1 = np.asarray(nib.load(ex.images["sub-ALS01"][0].path).dataobj[:, :, ex.state.slice], float)
    e2 = np.asarray(nib.load(ex.images["sub-ALS01"][1].path).dataobj[:, :, ex.state.slice], float)
    r2 = ex.image_slice()
    tissue = e1 > 0.5 * np.percentile(e1, 99)
    with np.errstate(all="ignore"):
        expected = np.log(e1 / e2) / (0.020 - 0.010)
    ok = tissue & (e2 > 0)
    assert np.allclose(r2[ok], expected[ok], rtol=1e-4, atol=1e-3)
    assert np.isnan(r2[e1 < 0.01 * np.percentile(e1, 99)]).all()
    lo, hi = ex.clim()
    assert 0 <= lo < hi <= 300  # auto window on R2*
    with pytest.raises(ValueError):
        ex.set_image("echo 9")


def test_overlays_follow_the_measurement_and_switch_off(ex):
    ov = ex.overlays()
    kinds = {(o.kind, o.label) for o in ov}
    for lab in ("L_hand", "R_hand"):
        assert {("roi", lab), ("caliper", lab), ("edge_outer", lab), ("edge_inner", lab)} <= kinds
    px = ex.pixel_mm()
    roi = next(o for o in ov if o.kind == "roi" and o.label == "L_hand")
    assert _shoelace_mm2(roi.ij, px) == pytest.approx(ex.settings.roi_area_mm2, rel=0.01)
    cal = next(o for o in ov if o.kind == "caliper" and o.label == "L_hand")
    assert np.allclose(cal.ij, _voxels(ex, "sub-ALS01", "L_hand")[:, :2], atol=1e-6)
    assert cal.active  # the edited label is highlighted
    for name, kinds_off in (("roi", {"roi"}), ("caliper", {"caliper"}), ("edges", {"edge_outer", "edge_inner"})):
        ex.set_overlay(name, False)
        assert not {o.kind for o in ex.overlays()} & kinds_off
        ex.set_overlay(name, True)
    # the reference: its slice shows the disc of the ROI area and the point
    ex.set_zoom(C.REFERENCE_LABEL)
    ref = [o for o in ex.overlays() if o.kind == "reference"]
    assert len(ref) == 2
    disc = max(ref, key=len_ij)
    assert _shoelace_mm2(disc.ij, px) == pytest.approx(ex.settings.roi_area_mm2, rel=0.01)
    ex.set_overlay("reference", False)
    assert not [o for o in ex.overlays() if o.kind == "reference"]


def len_ij(o):
    return len(o.ij)


def test_measurements_beside_the_image_are_the_tables(ex):
    t = ex.participant_table()
    m = pd.read_csv(Path(ex.manifest.root) / "derivatives/m1lib/measurements.tsv", sep="\t", na_values="n/a")
    m = m[m.participant_id == "sub-ALS01"]
    assert len(t) == 8
    assert np.allclose(t["thickness_mm"], m["thickness_mm"]) and np.allclose(t["intensity"], m["intensity"])
    assert set(ex.labels_on_slice()) == {"L_hand", "R_hand"}
    text = widgets._table_text(ex)
    assert "sub-ALS01" in text and "L_hand   *" in text


# ----------------------------------------------------------------------------- annotator

def test_readout_equals_measurement_of_the_current_annotation(ex):
    r = ex.readout()
    v = _voxels(ex, "sub-ALS01", "L_hand")
    assert r["thickness_mm"] == pytest.approx(0.25 * np.hypot(*(v[1, :2] - v[0, :2])), rel=1e-9)
    assert r["stored_thickness_mm"] == pytest.approx(r["thickness_mm"], rel=1e-6)
    assert np.isfinite(r["intensity"]) and 20 < r["r2star_s"] < 80
    assert not r["unsaved"]


def test_click_moves_the_active_point_and_readouts_update(ex):
    v = _voxels(ex, "sub-ALS01", "L_hand")
    before = ex.readout()
    roi_before = next(o for o in ex.overlays() if o.kind == "roi" and o.label == "L_hand").ij
    ex.set_active_point(1)
    d = (v[1, :2] - v[0, :2]) / np.hypot(*(v[1, :2] - v[0, :2]))
    target = v[1, :2] + 2 * d               # 2 voxels (0.5 mm) deeper, along the caliper
    ex.click(*target)
    assert ex.state.point == 0             # the next click places the other end
    r = ex.readout()
    # positions are stored to 0.1 um (markups files), hence the tolerance
    assert r["thickness_mm"] == pytest.approx(before["thickness_mm"] + 0.5, abs=3e-4)
    assert r["unsaved"] and r["intensity"] != before["intensity"]
    roi_after = next(o for o in ex.overlays() if o.kind == "roi" and o.label == "L_hand").ij
    assert not np.allclose(roi_after, roi_before)
    cal = next(o for o in ex.overlays() if o.kind == "caliper" and o.label == "L_hand")
    assert np.allclose(cal.ij[1], target)


def test_two_clicks_draw_a_caliper_and_nudges_move_in_mm(ex):
    k = ex.state.slice
    ex.select_label("R_hand")
    c = np.asarray(ex.state.zoom_centre)
    ex.click(*(c + [0, -3]))
    ex.click(*(c + [4, 1]))
    assert ex.readout()["thickness_mm"] == pytest.approx(0.25 * np.hypot(4, 4), abs=3e-4)
    ex.set_active_point(0)
    ex.nudge(0.25, 0.0)                     # one voxel along i
    assert ex.readout()["thickness_mm"] == pytest.approx(0.25 * np.hypot(3, 4), abs=3e-4)
    assert ex.label_position("R_hand")[0] == k
    with pytest.raises(ValueError):
        ex.select_label("R_toe")


def test_moving_the_reference_changes_every_intensity(ex):
    ex.select_label(C.REFERENCE_LABEL)
    assert ex.state.zoom == C.REFERENCE_LABEL
    before = ex.readout()
    ex.nudge(0.0, 2.0)
    after = ex.readout()
    assert after["ref_mean"] != before["ref_mean"]
    ratio = after["intensity_L_hand"] / before["intensity_L_hand"]
    assert ratio == pytest.approx(before["ref_mean"] / after["ref_mean"], rel=1e-9)


def test_save_writes_valid_markups_and_keeps_a_backup(ex):
    path = ex.annotations["sub-ALS01"]
    original = path.read_bytes()
    ex.set_active_point(1)
    ex.nudge(0.0, 0.3)
    moved = ex.annotation_file().markups["L_hand"].points.copy()
    backup = ex.save()
    assert backup.parent == path.parent and backup.name.startswith(path.name) and backup.suffix == ".bak"
    assert backup.read_bytes() == original
    marks = read_markups(path)                       # valid Slicer markups, read back
    assert np.allclose(marks["L_hand"].points, moved, atol=1e-4)
    # only the moved point changed; the rest of the rater's file is as it was
    old, new = json.loads(original), json.loads(path.read_text())
    assert [m["name"] for m in new["markups"]] == [m["name"] for m in old["markups"]]
    for a, b in zip(old["markups"], new["markups"]):
        if a["name"] != "L_hand":
            assert a == b
            continue
        assert a["coordinateSystem"] == b["coordinateSystem"] == "LPS"
        assert a["controlPoints"][0] == b["controlPoints"][0]
        pa, pb = a["controlPoints"][1].pop("position"), b["controlPoints"][1].pop("position")
        assert a["controlPoints"][1] == b["controlPoints"][1]
        assert np.allclose(np.subtract(pb, pa), [0.0, -0.3, 0.0], atol=2e-4)  # +0.3 mm anterior, in LPS
        a.pop("controlPoints"), b.pop("controlPoints"), a.pop("measurements"), b.pop("measurements")
        assert a == b
    assert check_annotation(path, path.name, "sub-ALS01", ex.settings.areas) == []
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert not ex.annotation_file().dirty and ex.stale
    # a second save backs up the first
    ex.nudge(0.0, 0.3)
    second = ex.save()
    assert second != backup and read_markups(second)["L_hand"].allclose(marks["L_hand"], atol=1e-4)


def test_saving_without_edits_writes_nothing(ex):
    path = ex.annotations["sub-ALS01"]
    before = path.stat().st_mtime_ns
    assert ex.save() is None and "no changes" in ex.status
    assert path.stat().st_mtime_ns == before and not list(path.parent.glob("*.bak"))


def test_save_refuses_a_file_changed_on_disk(ex):
    path = ex.annotations["sub-ALS01"]
    ex.annotation_file()                              # opened (SHA-256 recorded)
    ex.set_active_point(1)
    ex.nudge(0.0, 0.3)
    theirs = path.read_text().replace('"L_hand-1"', '"L_hand-1 (checked)"')
    path.write_text(theirs)
    with pytest.raises(widgets.AnnotationConflict, match="changed on disk"):
        ex.save()
    assert path.read_text() == theirs                 # their change survives
    assert not list(path.parent.glob("*.bak"))
    ex.reload()                                       # take theirs; edits discarded
    assert not ex.annotation_file().dirty
    assert ex.annotation_file().original["L_hand"].labels[0] == "L_hand-1 (checked)"


def test_save_refuses_an_annotation_that_would_not_measure(ex):
    path = ex.annotations["sub-ALS01"]
    original = path.read_bytes()
    ex.click(-40.0, 10.0)                             # outside the field of view
    with pytest.raises(DataError, match="L_hand"):
        ex.save()
    assert path.read_bytes() == original


def test_the_next_report_measures_the_saved_annotation(ex, manifest):
    before = load_tables(manifest, log=lambda *a: None).measurements
    ex.set_active_point(1)
    ex.nudge(0.0, 0.5)
    live = ex.readout()
    ex.save()
    after = load_tables(manifest, log=lambda *a: None).measurements  # what `m1lib report` reads

    def value(t, pid, lab, col="thickness_mm"):
        h, a = lab.split("_")
        return float(t.query("participant_id == @pid and hemisphere == @h and area == @a")[col].iloc[0])

    assert value(after, "sub-ALS01", "L_hand") == pytest.approx(live["thickness_mm"], abs=1e-3)
    assert value(after, "sub-ALS01", "L_hand") != pytest.approx(value(before, "sub-ALS01", "L_hand"), abs=1e-3)
    assert value(after, "sub-ALS01", "L_hand", "intensity") == pytest.approx(live["intensity"], rel=1e-3)
    assert value(after, "sub-ALS02", "R_leg") == pytest.approx(value(before, "sub-ALS02", "R_leg"), rel=1e-9)


# ----------------------------------------------------------------------------- linked views

def test_picking_a_limb_point_shows_that_area(ex):
    pts = ex.panel_points(0)
    row = pts[(pts.participant_id == "sub-ALS02") & (pts.area == "leg") & (pts.hemisphere == "R")]
    ex.pick(0, int(row.index[0]))
    assert ex.state.participant_id == "sub-ALS02" and ex.state.zoom == "R_leg"
    assert ex.state.slice == int(round(_voxels(ex, "sub-ALS02", "R_leg")[:, 2].mean()))
    assert set(ex.selected_points(0)) == set(pts.index[pts.participant_id == "sub-ALS02"])
    # the whole-slice view survives a change of participant
    ex.set_zoom(None)
    ex.set_participant("sub-ALS01")
    assert ex.state.zoom is None and ex.state.slice == int(round(_voxels(ex, "sub-ALS02", "R_leg")[:, 2].mean()))
    ex.set_zoom("R_leg")
    # subject-level panels (DPR) keep the zoomed area
    dpr = ex.panel_points(1)
    ex.pick(1, int(dpr.index[dpr.participant_id == "sub-ALS01"][0]))
    assert ex.state.participant_id == "sub-ALS01" and ex.state.zoom == "R_leg"


def test_scatter_points_are_the_fig2_data(ex):
    pts = ex.scatter_points()
    assert sorted(pts.panel.unique()) == list(range(6))
    assert len(ex.panel_points(0)) == 2 * 2 * 3     # 2 patients x 2 hemispheres x hand/leg/foot
    t = pd.read_csv(Path(ex.manifest.root) / "participants.tsv", sep="\t", na_values="n/a").set_index("participant_id")
    p2 = ex.panel_points(2).set_index("participant_id")
    assert p2.loc["sub-ALS01", "x"] == t.loc["sub-ALS01", "alsfrs_r"]
    m = ex.measurements
    assert p2.loc["sub-ALS01", "y"] == pytest.approx(m[m.participant_id == "sub-ALS01"].thickness_mm.mean())


# ----------------------------------------------------------------------------- the view

def test_view_controls_call_the_model_and_redraw(ex):
    view = widgets.ExplorerView(ex, interactive=False)
    png = view.image_out.value
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and view.scatter_out.value[:4] == b"\x89PNG"
    assert "sub-ALS01" in view.clinical.value and "L_hand" in view.table.value
    view.participant.value = "sub-HS01"
    assert ex.state.participant_id == "sub-HS01" and "sub-HS01" in view.clinical.value
    assert view.image_out.value != png
    view.overlay["roi"].value = False
    assert ex.state.overlays["roi"] is False
    view.image.value = "R2*"
    assert ex.state.image == "R2*" and view.window.value == pytest.approx(ex.state.window)
    view.slice.value = 0
    assert ex.state.slice == 0
    # a click on the image edits only in click mode
    c = ex.state.zoom_centre
    ev = SimpleNamespace(inaxes=view.ax, xdata=c[0] + 3, ydata=c[1] + 3)
    view._on_click(ev)
    assert not ex.annotation_file().dirty
    view.click_edits.value = True
    view._on_click(ev)
    assert ex.annotation_file().dirty and "unsaved" in view.readout.value
    view.arrows["▲"].click()
    view.save_btn.click()
    assert "saved" in view.status.value and "was" in view.readout.value
    # a point picked in the scatter switches participant and area
    art, panel = next((a, p) for a, p in view._artists.items() if p == 0)
    view._on_pick(SimpleNamespace(artist=art, ind=[0]))
    row = ex.panel_points(0).iloc[0]
    assert ex.state.participant_id == row.participant_id and view.participant.value == row.participant_id
    assert ex.state.zoom == f"{row.hemisphere}_{row.area}" and view.zoom.value == ex.state.zoom


def test_view_reports_user_errors_instead_of_raising(ex):
    view = widgets.ExplorerView(ex, interactive=False)
    view.click_edits.value = True
    view._on_click(SimpleNamespace(inaxes=view.ax, xdata=-40.0, ydata=5.0))
    view.save_btn.click()
    assert "⚠" in view.status.value and "L_hand" in view.status.value


def test_dataset_without_images_still_explores(tmp_path):
    manifest = build_dataset(tmp_path / "study", n_als=3, n_hs=2, images=False, measurements=True)
    ex = widgets.Explorer.from_manifest(manifest, log=lambda *a: None)
    assert not ex.has_images() and ex.overlays() == [] and len(ex.participant_table()) == 8
    assert len(ex.panel_points(0)) == 3 * 2 * 3
    view = widgets.ExplorerView(ex, interactive=False)
    assert view.save_btn.disabled and "no images" in ex.status
    fig = ex.snapshot_figure()
    assert "no images" in fig.axes[0].texts[0].get_text()


def test_snapshot_is_deterministic(ex, tmp_path):
    from m1lib.figures import save_figure

    a = save_figure(ex.snapshot_figure(), tmp_path / "a", ("png",))[0].read_bytes()
    b = save_figure(ex.snapshot_figure(), tmp_path / "b", ("png",))[0].read_bytes()
    assert a == b


# ----------------------------------------------------------------------------- the notebook

def test_notebook_runs_headless_with_papermill(manifest, tmp_path):
    import papermill as pm

    from m1lib.report import ensure_kernel

    out = tmp_path / "report"
    out.mkdir()
    pm.execute_notebook(str(NOTEBOOK), str(out / "07_explorer.ipynb"), kernel_name=ensure_kernel(),
                        parameters={"manifest": str(manifest), "out_dir": ".", "figure_formats": ["png"],
                                    "alpha": 0.05, "n_boot": 100, "seed": 1},
                        cwd=str(out), progress_bar=False, execution_timeout=120, start_timeout=60)
    rec = json.loads((out / "_outputs" / "07_explorer.json").read_text())
    assert rec["files"] == ["figures/explorer_snapshot.png"]
    assert (out / "figures" / "explorer_snapshot.png").stat().st_size > 10_000
    nb = json.loads((out / "07_explorer.ipynb").read_text())
    mimes = [set(o.get("data", {})) for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert any("application/vnd.jupyter.widget-view+json" in m for m in mimes)  # the app was built
    assert any("image/png" in m for m in mimes)                                 # and the snapshot shown
    assert not any(o["output_type"] == "error" for c in nb["cells"] if c["cell_type"] == "code"
                   for o in c["outputs"])
