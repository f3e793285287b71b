"""The ipywidgets app without a browser, and notebook 07 run headless (papermill, nbconvert)."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import ipywidgets as W
import nbformat
import pytest

from conftest import build_dataset
from explorer_fixtures import ex, manifest, pristine  # noqa: F401 (fixtures)
from m1lib import explorer as E
from m1lib.figures import save_figure
from m1lib.report import export_html

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "07_explorer.ipynb"


@pytest.fixture
def view(ex) -> E.ExplorerView:
    return E.ExplorerView(ex, interactive=False)


def test_view_controls_call_the_model_and_redraw(view, ex):
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
    assert "Colour bar: R2* (1/s)" in view.caption.value and view.cax.get_ylabel() == "R2* (1/s)"
    view.zoom.value = E.WHOLE_SLICE
    assert ex.state.zoom == E.WHOLE_SLICE and ex.state.zoom_centre is None
    view.zoom.value = "L_hand"
    view.slice.value = 0
    assert ex.state.slice == 0
    c = ex.state.zoom_centre                       # a click on the image edits only in click mode
    ev = SimpleNamespace(inaxes=view.ax, xdata=c[0] + 3, ydata=c[1] + 3)
    view._on_click(ev)
    assert not ex.annotation_file().dirty
    view.click_edits.value = True
    view._on_click(ev)
    assert ex.annotation_file().dirty and "unsaved" in view.readout.value
    assert "Point switched automatically" in view.switch.value and "point 2" in view.switch.value
    assert view.point.value == 1 and not view.undo_btn.disabled
    view.arrows["▲"].click()
    view.save_btn.click()
    assert "saved" in view.save_msg.value and "explorer_backups" in view.save_msg.value
    assert "was" in view.readout.value
    art, panel = next((a, p) for a, p in view._artists.items() if p == 0)   # pick in the scatter
    view._on_pick(SimpleNamespace(artist=art, ind=[0]))
    row = view.linked.panel_points(0).iloc[0]
    assert ex.state.participant_id == row.participant_id and view.participant.value == row.participant_id
    assert ex.state.zoom == f"{row.hemisphere}_{row.area}" and view.zoom.value == ex.state.zoom


def test_a_refused_save_says_why_beside_the_save_button(view, ex):
    path = ex.annotations["sub-ALS01"]
    original = path.read_bytes()
    view.click_edits.value = True
    c = ex.state.zoom_centre
    view._on_click(SimpleNamespace(inaxes=view.ax, xdata=c[0], ydata=c[1]))
    view._on_click(SimpleNamespace(inaxes=view.ax, xdata=c[0] + 0.3, ydata=c[1]))
    view.save_btn.click()
    assert path.read_bytes() == original
    assert "⚠" in view.save_msg.value and "shorter than one voxel" in view.save_msg.value
    row = next(b for b in _boxes(view.widget) if view.save_btn in b.children)
    assert view.save_msg in row.children           # the reason is in the Save button's row
    view.undo_btn.click()
    view.undo_btn.click()
    assert not ex.annotation_file().dirty and "undid the last edit of L_hand" in view.save_msg.value
    assert "⚠" not in view.save_msg.value and view.undo_btn.disabled


def _boxes(w):
    if isinstance(w, W.Box):
        yield w
        for c in w.children:
            yield from _boxes(c)


def test_layout_fits_the_notebook_and_has_no_toolbar(view):
    """Fixed widths of each row add up to what a 1280 px screen with the file browser leaves."""
    budget = 850

    def px(w):
        m = re.fullmatch(r"(\d+)px", str(w.layout.width or ""))
        return int(m.group(1)) if m else 0

    for box in _boxes(view.widget):
        if isinstance(box, W.HBox) and "wrap" not in str(box.layout.flex_flow):
            assert sum(px(c) for c in box.children) <= budget
    row = next(b for b in _boxes(view.widget) if view.image_out in b.children)
    assert "wrap" in row.layout.flex_flow        # controls go under the image on narrow screens
    assert sum(px(c) for c in row.children) + 8 <= budget
    assert px(view.scatter_out) <= budget


def test_view_reports_user_errors_instead_of_raising(view, ex):
    view.undo_btn.disabled = False
    view.undo_btn.click()
    assert "nothing to undo" in view.status.value


def test_dataset_without_images_still_explores(tmp_path):
    manifest = build_dataset(tmp_path / "study", n_als=3, n_hs=2, images=False, measurements=True)
    ex = E.Explorer.from_manifest(manifest, log=lambda *a: None)
    assert not ex.has_images() and ex.overlays() == [] and len(ex.participant_table()) == 8
    assert len(E.LinkedPlots(ex).panel_points(0)) == 3 * 2 * 3
    view = E.ExplorerView(ex, interactive=False)
    assert view.save_btn.disabled and "no images" in view.status.value
    fig = E.snapshot_figure(ex)
    assert "no images" in fig.axes[0].texts[0].get_text()


def test_snapshot_is_deterministic(ex, tmp_path):
    a = save_figure(E.snapshot_figure(ex), tmp_path / "a", ("png",))[0].read_bytes()
    b = save_figure(E.snapshot_figure(ex), tmp_path / "b", ("png",))[0].read_bytes()
    assert a == b


def test_the_app_carries_its_snapshot_for_exports(view):
    data = view._repr_mimebundle_()
    data = data[0] if isinstance(data, tuple) else data
    assert "application/vnd.jupyter.widget-view+json" in data
    assert base64.b64decode(data["image/png"])[:4] == b"\x89PNG"


def test_notebook_shows_the_snapshot_only_in_the_export(manifest, tmp_path):
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
    nb = nbformat.read(out / "07_explorer.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [set(o.get("data", {})) for o in outputs if o.output_type in ("display_data", "execute_result")]
    # one picture: the live app, with the snapshot only as its fallback (no image above it)
    assert [m for m in shown if m - {"text/plain"}] == [
        {"application/vnd.jupyter.widget-view+json", "image/png", "text/plain"}]
    export_html(out / "07_explorer.ipynb", out / "07_explorer.html")
    page = (out / "07_explorer.html").read_text()
    assert page.count("data:image/png;base64,") == 1     # the export shows the snapshot, once
