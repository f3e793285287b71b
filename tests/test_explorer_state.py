"""The explorer's state without a browser: participants, slices, windows, zoom, overlays, tables."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from explorer_fixtures import ex, manifest, pristine, voxels  # noqa: F401 (fixtures)
from m1lib import contract as C
from m1lib import explorer as E
from m1lib.explorer import text, views


def _shoelace_mm2(ij, px):
    x, y = ij[:, 0] * px[0], ij[:, 1] * px[1]
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def test_default_view_is_first_patient_zoomed_on_left_hand(ex):
    st = ex.state
    assert st.participant_id == "sub-ALS01"
    assert ex.participant_order() == ["sub-ALS01", "sub-ALS02", "sub-HS01"]
    assert st.zoom == "L_hand" and st.image == "echo 2"
    v = voxels(ex, "sub-ALS01", "L_hand")
    assert st.slice == int(round(v[:, 2].mean()))
    (i0, i1), (j0, j1) = ex.view_limits()   # 2 x 6 mm around the caliper's midpoint, 0.25 mm voxels
    assert np.allclose([(i0 + i1) / 2, (j0 + j1) / 2], v[:, :2].mean(axis=0))
    assert np.isclose(i1 - i0, 12 / 0.25) and np.isclose(j1 - j0, 12 / 0.25)
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
    assert ex.image_units() == "R2* (1/s)"
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


def _rendered(ex) -> np.ndarray:
    """The image axes as drawn by Agg (RGB), and the colour bar's label."""
    fig = Figure(figsize=(4.7, 4.4), dpi=100)
    FigureCanvasAgg(fig)
    ax, cax = views.image_axes(fig)
    views.draw_browser(ax, cax, ex)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float)
    box = ax.get_window_extent()
    h = rgb.shape[0]
    return rgb[int(h - box.y1) + 2:int(h - box.y0) - 2, int(box.x0) + 2:int(box.x1) - 2], cax.get_ylabel()


@pytest.mark.parametrize("zoom", [E.WHOLE_SLICE, "L_hand", "R_leg", C.REFERENCE_LABEL])
def test_every_view_option_renders_an_image(ex, zoom):
    ex.set_zoom(zoom)
    assert (ex.state.zoom_centre is None) == (zoom == E.WHOLE_SLICE)
    for kind in ex.image_kinds():
        ex.set_image(kind)
        pixels, label = _rendered(ex)
        # an image, not a blank panel: many grey levels across the axes
        assert pixels.std() > 10 and len(np.unique(pixels.mean(axis=2).round())) > 20, (zoom, kind)
        assert label == ex.image_units()
    (i0, i1), (j0, j1) = ex.view_limits()
    if zoom == E.WHOLE_SLICE:
        assert (i0, i1) == (-0.5, ex.volume().shape[0] - 0.5)


def test_the_r2star_map_has_a_colour_bar_with_units(ex):
    ex.set_image("R2*")
    fig = Figure(figsize=(4.7, 4.4), dpi=100)
    ax, cax = views.image_axes(fig)
    views.draw_browser(ax, cax, ex)
    assert cax.get_ylabel() == "R2* (1/s)"
    lo, hi = cax.get_ylim()
    assert (lo, hi) == pytest.approx(ex.clim())


def test_overlays_follow_the_measurement_and_switch_off(ex):
    ov = ex.overlays()
    kinds = {(o.kind, o.label) for o in ov}
    for lab in ("L_hand", "R_hand"):
        assert {("roi", lab), ("caliper", lab), ("edge_outer", lab), ("edge_inner", lab)} <= kinds
    px = ex.pixel_mm()
    roi = next(o for o in ov if o.kind == "roi" and o.label == "L_hand")
    assert _shoelace_mm2(roi.ij, px) == pytest.approx(ex.settings.roi_area_mm2, rel=0.01)
    cal = next(o for o in ov if o.kind == "caliper" and o.label == "L_hand")
    assert np.allclose(cal.ij, voxels(ex, "sub-ALS01", "L_hand")[:, :2], atol=1e-6)
    assert cal.active  # the edited label is highlighted
    for name, kinds_off in (("roi", {"roi"}), ("caliper", {"caliper"}), ("edges", {"edge_outer", "edge_inner"})):
        ex.set_overlay(name, False)
        assert not {o.kind for o in ex.overlays()} & kinds_off
        ex.set_overlay(name, True)
    ex.set_zoom(C.REFERENCE_LABEL)   # the reference: the disc of the ROI area and the point
    ref = [o for o in ex.overlays() if o.kind == "reference"]
    assert len(ref) == 2
    disc = max(ref, key=lambda o: len(o.ij))
    assert _shoelace_mm2(disc.ij, px) == pytest.approx(ex.settings.roi_area_mm2, rel=0.01)
    ex.set_overlay("reference", False)
    assert not [o for o in ex.overlays() if o.kind == "reference"]
    with pytest.raises(ValueError):
        ex.set_overlay("grid", True)


def test_measurements_listed_are_the_tables_and_the_columns_are_explained(ex):
    t = ex.participant_table()
    m = pd.read_csv(Path(ex.manifest.root) / "derivatives/m1lib/measurements.tsv", sep="\t", na_values="n/a")
    m = m[m.participant_id == "sub-ALS01"]
    assert len(t) == 8
    assert np.allclose(t["thickness_mm"], m["thickness_mm"]) and np.allclose(t["intensity"], m["intensity"])
    assert set(ex.labels_on_slice()) == {"L_hand", "R_hand"}
    txt = text.table_text(ex)
    assert "sub-ALS01" in txt and "L_hand   *" in txt and "slice = acquisition slice" in txt
    page = text.table_html(ex)
    assert "<th>slice</th>" in page and "<th>k</th>" not in page and "acquisition slice" in page


def test_zoom_choices_and_unknown_participant(ex):
    assert ex.zoom_choices()[0] == E.WHOLE_SLICE and set(ex.labels()) <= set(ex.zoom_choices())
    with pytest.raises(KeyError):
        ex.set_participant("sub-XX")
    with pytest.raises(KeyError):
        ex.set_zoom("R_toe")


def test_picking_a_limb_point_shows_that_area(ex):
    lk = E.LinkedPlots(ex)
    pts = lk.panel_points(0)
    row = pts[(pts.participant_id == "sub-ALS02") & (pts.area == "leg") & (pts.hemisphere == "R")]
    lk.pick(0, int(row.index[0]))
    assert ex.state.participant_id == "sub-ALS02" and ex.state.zoom == "R_leg"
    assert ex.state.slice == int(round(voxels(ex, "sub-ALS02", "R_leg")[:, 2].mean()))
    assert set(lk.selected_points(0)) == set(pts.index[pts.participant_id == "sub-ALS02"])
    ex.set_zoom(E.WHOLE_SLICE)   # the whole-slice view survives a change of participant
    ex.set_participant("sub-ALS01")
    assert ex.state.zoom == E.WHOLE_SLICE
    assert ex.state.slice == int(round(voxels(ex, "sub-ALS02", "R_leg")[:, 2].mean()))
    ex.set_zoom("R_leg")
    dpr = lk.panel_points(1)   # subject-level panels (DPR) keep the zoomed area
    lk.pick(1, int(dpr.index[dpr.participant_id == "sub-ALS01"][0]))
    assert ex.state.participant_id == "sub-ALS01" and ex.state.zoom == "R_leg"


def test_scatter_points_are_the_fig2_data(ex):
    lk = E.LinkedPlots(ex)
    assert sorted(lk.points().panel.unique()) == list(range(6))
    assert len(lk.panel_points(0)) == 2 * 2 * 3     # 2 patients x 2 hemispheres x hand/leg/foot
    t = pd.read_csv(Path(ex.manifest.root) / "participants.tsv", sep="\t", na_values="n/a").set_index("participant_id")
    p2 = lk.panel_points(2).set_index("participant_id")
    assert p2.loc["sub-ALS01", "x"] == t.loc["sub-ALS01", "alsfrs_r"]
    m = ex.measurements
    assert p2.loc["sub-ALS01", "y"] == pytest.approx(m[m.participant_id == "sub-ALS01"].thickness_mm.mean())
