"""The explorer as an ipywidgets app (``ExplorerView(...).widget``), laid out for a notebook.

Layout, top to bottom, in one column that fits a 1280 px screen with the
JupyterLab file browser open (about 850 px for outputs): the participant and
its clinical values; the image (with its colour bar) beside the view controls,
wrapping below it on narrower screens; the annotator with the Save button and,
beside it, the reason a save was refused; the participant's measurement table
(scrolls sideways if it must); the linked Fig 2 plots. Messages wrap. The
ipympl canvases have no toolbar (nothing covers the axes): zoom is the
explorer's own (an area and a half-width in mm, or the whole slice).

Every control calls one method of the state, annotator or linked plots and
redraws. With ipympl the image and plots are live canvases (clicks place points
and pick participants); otherwise PNG images (``interactive=False``: headless
runs and the tests). Displayed, the app carries a PNG of its first view as a
fallback: JupyterLab shows the live widget, an HTML export without widget state
(nbconvert, the report) shows the PNG.
"""
from __future__ import annotations

import base64
import threading
from typing import Callable

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import contract as C
from ..errors import DataError
from .annotator import Annotator
from .linked import LinkedPlots, draw_scatter
from .state import R2STAR, Explorer
from .text import clinical_text, message_html, readout_html, table_html
from .views import draw_browser, image_axes, is_interactive, png_bytes, snapshot_figure

__all__ = ["ExplorerView", "IMAGE_SIZE_IN", "SCATTER_SIZE_IN"]

IMAGE_SIZE_IN = (4.7, 4.4)      # at 100 dpi: 470 x 440 px, beside a 350 px control column
SCATTER_SIZE_IN = (8.2, 4.6)    # 820 px: the width of the app
_CSS = """<style>
.m1lib-explorer { max-width: 100%; }
.m1lib-explorer .widget-html-content, .m1lib-explorer .m1lib-msg { white-space: normal;
  overflow-wrap: anywhere; line-height: 1.35; }
.m1lib-explorer .m1lib-tablebox { overflow-x: auto; max-width: 100%; }
.m1lib-explorer table.m1lib-table { font-size: 85%; border-collapse: collapse; }
.m1lib-explorer table.m1lib-table td, .m1lib-explorer table.m1lib-table th { padding: 1px 8px;
  text-align: right; }
.m1lib-explorer table.m1lib-table td:first-child { text-align: left; }
.m1lib-explorer .m1lib-note { font-size: 80%; color: #555; max-width: 820px; }
</style>"""


def _lay(**kw) -> W.Layout:
    return W.Layout(**kw)


def _wrap(children, align: str = "center", **kw) -> W.HBox:
    """A row that wraps onto the next line when the notebook is narrow."""
    return W.HBox(children, layout=_lay(flex_flow="row wrap", align_items=align, **kw))


class ExplorerView:
    """The ipywidgets face of an explorer (``.widget`` is the whole app).

    Parameters
    ----------
    explorer : Explorer
    annotator : Annotator, optional
        Default: one on ``explorer`` with its manifest's backup folder.
    linked : LinkedPlots, optional
    interactive : bool, optional
        Live ipympl canvases (default: when matplotlib's backend is ipympl).
    fallback : Figure, optional
        Shown instead of the live app where widgets do not render (an HTML
        export); default: :func:`~m1lib.explorer.views.snapshot_figure` of the first view.
    """

    def __init__(self, explorer: Explorer, *, annotator: Annotator | None = None,
                 linked: LinkedPlots | None = None, interactive: bool | None = None,
                 fallback: Figure | None = None):
        self.ex = explorer
        self.annotator = annotator or Annotator(explorer)
        self.linked = linked or LinkedPlots(explorer)
        self.interactive = is_interactive() if interactive is None else bool(interactive)
        self._fallback_png = png_bytes(fallback if fallback is not None else snapshot_figure(explorer))
        self._syncing = False
        self._artists: dict = {}
        # JupyterLab may deliver widget and canvas messages on different kernel subshells
        # (threads, ipykernel >= 7): a canvas must not draw while a callback redraws its axes
        # (seen as half-drawn frames and a blank image), nor two callbacks change the state at once.
        self._lock = threading.RLock()
        self._build_browser()
        self._build_annotator()
        self._build_figures()
        self._wire()
        self.widget = self._layout()
        self.refresh(scatter=True)

    # ------------------------------------------------------------------ construction
    def _build_browser(self) -> None:
        ex, d = self.ex, {"description_width": "52px"}
        col = _lay(width="340px")
        self.participant = W.Dropdown(options=[(ex.participant_label(p), p) for p in ex.participant_order()],
                                      description="Participant", style={"description_width": "80px"},
                                      layout=_lay(width="100%", max_width="640px"))
        self.clinical = W.HTML()
        self.status = W.HTML()
        self.slice = W.IntSlider(description="Slice", min=0, max=0, continuous_update=False, style=d, layout=col)
        self.image = W.ToggleButtons(options=["echo 1"], style={"button_width": "64px"}, layout=_lay(width="auto"))
        self.auto = W.Button(description="Auto W/L", tooltip="window and level from the shown region",
                             layout=_lay(width="90px"))
        self.window = W.FloatSlider(description="Window", min=1e-3, max=1.0, continuous_update=False,
                                    style=d, readout_format=".0f", layout=col)
        self.level = W.FloatSlider(description="Level", min=0.0, max=1.0, continuous_update=False,
                                   style=d, readout_format=".0f", layout=col)
        self.zoom = W.Dropdown(description="Zoom to", options=ex.zoom_choices(),
                               style={"description_width": "58px"}, layout=_lay(width="205px"))
        self.zoom_mm = W.BoundedFloatText(description="± mm", value=ex.state.zoom_mm, min=1.0, max=60.0,
                                          step=0.5, style={"description_width": "42px"},
                                          tooltip="half side of the zoom box (mm)", layout=_lay(width="120px"))
        self.overlay = {name: W.Checkbox(value=ex.state.overlays[name], description=text, indent=False,
                                         layout=_lay(width="160px"))
                        for name, text in (("roi", "oval ROIs"), ("caliper", "calipers"),
                                           ("reference", "reference ROI"), ("edges", "fitted edges"))}
        self.caption = W.HTML(layout=col)
        self.table = W.HTML()

    def _build_annotator(self) -> None:
        ex = self.ex
        self.label = W.Dropdown(description="Edit", options=ex.labels(), value=ex.state.label,
                                style={"description_width": "34px"}, layout=_lay(width="190px"))
        self.point = W.ToggleButtons(options=[("1 superficial", 0), ("2 white matter", 1)],
                                     style={"button_width": "122px"}, layout=_lay(width="auto"))
        self.click_edits = W.ToggleButton(value=False, description="click on image places point",
                                          icon="crosshairs", layout=_lay(width="230px"))
        self.step = W.BoundedFloatText(value=0.05, min=0.01, max=2.0, step=0.01, description="step mm",
                                       style={"description_width": "58px"}, layout=_lay(width="135px"))
        arrows = {"◀": (-1, 0), "▶": (1, 0), "▲": (0, 1), "▼": (0, -1)}
        self.arrows = {k: W.Button(description=k, tooltip="move the point by one step",
                                   layout=_lay(width="34px")) for k in arrows}
        for k, (du, dv) in arrows.items():
            self.arrows[k].on_click(lambda _b, du=du, dv=dv: self._act(
                lambda: self.annotator.nudge(du * self.step.value, dv * self.step.value)))
        self.undo_btn = W.Button(description="Undo", icon="undo", tooltip="undo the last edit",
                                 layout=_lay(width="90px"))
        self.switch = W.HTML()
        self.readout = W.HTML()
        self.save_btn = W.Button(description="Save annotations", button_style="primary", icon="save",
                                 layout=_lay(width="160px"))
        self.revert_btn = W.Button(description="Discard edits", layout=_lay(width="115px"))
        self.reload_btn = W.Button(description="Reload from disk", layout=_lay(width="135px"))
        self.save_msg = W.HTML(layout=_lay(flex="1 1 260px", min_width="200px"))

    def _build_figures(self) -> None:
        if self.interactive:
            with plt.ioff():
                self.fig = plt.figure(figsize=IMAGE_SIZE_IN, dpi=100)
                self.sfig = plt.figure(figsize=SCATTER_SIZE_IN, dpi=100)
            for f in (self.fig, self.sfig):
                f.canvas.header_visible = False
                f.canvas.footer_visible = False
                f.canvas.toolbar_visible = False   # nothing over the axes
                f.canvas.resizable = False
            self.image_out, self.scatter_out = self.fig.canvas, self.sfig.canvas
        else:
            self.fig, self.sfig = Figure(figsize=IMAGE_SIZE_IN, dpi=100), Figure(figsize=SCATTER_SIZE_IN, dpi=100)
            FigureCanvasAgg(self.fig)
            FigureCanvasAgg(self.sfig)
            self.image_out = W.Image(format="png", layout=_lay(width=f"{int(IMAGE_SIZE_IN[0] * 100)}px"))
            self.scatter_out = W.Image(format="png", layout=_lay(width=f"{int(SCATTER_SIZE_IN[0] * 100)}px",
                                                                 max_width="100%"))
        self.image_out.add_class("m1lib-image")
        self.scatter_out.add_class("m1lib-scatter")
        for f in (self.fig, self.sfig):
            f.canvas.draw = self._locked(f.canvas.draw)
        self.ax, self.cax = image_axes(self.fig)
        self.fig.canvas.mpl_connect("button_press_event", self._on_click)
        self.sfig.canvas.mpl_connect("pick_event", self._on_pick)

    def _wire(self) -> None:
        ex, an = self.ex, self.annotator
        observe = {
            self.participant: lambda v: ex.set_participant(v), self.slice: lambda v: ex.set_slice(v),
            self.image: lambda v: ex.set_image(v), self.window: lambda v: ex.set_window(window=v),
            self.level: lambda v: ex.set_window(level=v), self.zoom: lambda v: ex.set_zoom(v),
            self.zoom_mm: lambda v: ex.set_zoom(ex.state.zoom, v),
            self.label: lambda v: an.select_label(v), self.point: lambda v: an.set_active_point(v),
        }
        for w, f in observe.items():
            w.observe(lambda ch, f=f: self._act(lambda: f(ch["new"])), "value")
        for name, box in self.overlay.items():
            box.observe(lambda ch, name=name: self._act(lambda: ex.set_overlay(name, ch["new"])), "value")
        self.auto.on_click(lambda _b: self._act(ex.auto_window))
        self.undo_btn.on_click(lambda _b: self._act(an.undo))
        self.save_btn.on_click(lambda _b: self._save())
        self.revert_btn.on_click(lambda _b: self._act(an.revert))
        self.reload_btn.on_click(lambda _b: self._act(an.reload))

    def _layout(self) -> W.VBox:
        ov = self.overlay
        controls = W.VBox([self.slice, _wrap([self.image, self.auto]), self.window, self.level,
                           _wrap([self.zoom, self.zoom_mm]), _wrap([ov["roi"], ov["caliper"]]),
                           _wrap([ov["reference"], ov["edges"]]), self.caption],
                          layout=_lay(width="350px", flex="0 0 auto", margin="30px 0 0 8px"))
        self.image_out.layout.flex = "0 0 auto"
        annot = W.VBox([
            W.HTML("<b>Annotator</b>: choose a caliper (point 1 on the superficial side, point 2 on the "
                   "white-matter side) or the reference point, then click on the image (click mode) "
                   "or use the arrows; values are re-measured as you move. Save writes only an "
                   "annotation that <code>m1lib measure</code> can measure."),
            _wrap([self.label, self.point, self.click_edits]),
            _wrap([self.step, *self.arrows.values(), self.undo_btn]),
            self.switch, self.readout,
            _wrap([self.save_btn, self.revert_btn, self.reload_btn, self.save_msg]),
        ], layout=_lay(border="1px solid #ddd", padding="4px 6px", margin="6px 0"))
        table = W.Box([self.table], layout=_lay(overflow="auto", max_width="100%"))
        table.add_class("m1lib-tablebox")
        app = W.VBox([
            W.HTML(_CSS), self.participant, self.clinical, self.status,
            _wrap([self.image_out, controls], align="flex-start"),
            annot, table,
            W.HTML("<b>Linked views</b>: Fig 2 of the paper; click a point to show that "
                   "participant's area above."),
            self.scatter_out,
        ], layout=_lay(max_width="100%"))
        app.add_class("m1lib-explorer")
        return app

    # ------------------------------------------------------------------ plumbing
    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["image/png"] = base64.b64encode(self._fallback_png).decode("ascii")
        data["text/plain"] = "m1lib explorer (a static snapshot of its first view where widgets do not render)"
        return bundle

    def _locked(self, fn: Callable) -> Callable:
        def locked(*args, **kwargs):
            with self._lock:
                return fn(*args, **kwargs)
        return locked

    def _act(self, action: Callable) -> None:
        """Run an action from a control, report a user error, redraw."""
        with self._lock:   # re-entrant: the sync's own change events return at once
            if not self._syncing:
                self._act_unlocked(action)

    def _act_unlocked(self, action: Callable) -> None:
        before = self.ex.state.participant_id
        try:
            action()
            self.ex.status = "" if self.ex.has_images() else self.ex.status
        except DataError as exc:
            self.ex.status = "⚠ " + "; ".join(str(p) for p in exc.problems)
        except (KeyError, ValueError) as exc:
            self.ex.status = f"⚠ {exc}"
        self.refresh(scatter=self.ex.state.participant_id != before)

    def _save(self) -> None:
        with self._lock:
            try:
                self.annotator.save()
            except DataError:
                pass  # the refusal is in annotator.message, shown beside the button
            self.refresh()

    def _on_click(self, event) -> None:
        if event.inaxes is not self.ax or event.xdata is None or not self.click_edits.value:
            return
        self._act(lambda: self.annotator.click(event.xdata, event.ydata))

    def _on_pick(self, event) -> None:
        panel = self._artists.get(event.artist)
        if panel is not None and len(getattr(event, "ind", [])):
            self._act(lambda: self.linked.pick(panel, int(event.ind[0])))

    # ------------------------------------------------------------------ rendering
    def _sync_controls(self) -> None:
        ex, st = self.ex, self.ex.state
        self._syncing = True
        try:
            self.participant.value = st.participant_id
            self.clinical.value = f"<div style='font-size:92%'>{clinical_text(ex)}</div>"
            vol = ex.volume()
            for w in (self.slice, self.image, self.auto, self.window, self.level, self.zoom, self.zoom_mm,
                      self.label, self.point, self.save_btn, self.revert_btn, self.reload_btn,
                      self.undo_btn, self.click_edits, *self.arrows.values()):
                w.disabled = vol is None
            if vol is None:
                return
            self.undo_btn.disabled = not self.annotator.can_undo()
            self.slice.max = vol.shape[2] - 1
            self.slice.value = st.slice
            self.image.options = ex.image_kinds()
            self.image.value = st.image
            img = ex.image_slice()
            finite = img[np.isfinite(img)]
            top = float(max(np.nanmax(finite) if finite.size else 1.0, st.level + st.window / 2, 1.0))
            self.window.max, self.level.max = max(top, st.window), max(top, st.level)
            self.window.step = self.level.step = top / 500
            self.window.value, self.level.value = st.window, st.level
            self.zoom.options = ex.zoom_choices()
            self.zoom.value = st.zoom
            self.zoom_mm.value = st.zoom_mm
            self.label.value = st.label
            self.point.options = ([("reference point", 0)] if st.label == C.REFERENCE_LABEL
                                  else [("1 superficial", 0), ("2 white matter", 1)])
            self.point.value = st.point
            for name, box in self.overlay.items():
                box.value = st.overlays[name]
        finally:
            self._syncing = False

    def _caption(self) -> str:
        ex = self.ex
        if not ex.has_images():
            return ""
        what = ("R2* map, voxelwise from the echoes (display only: the measurement takes R2* "
                "from ROI means). " if ex.state.image == R2STAR else "")
        lo, hi = ex.clim()
        return (f"<div class='m1lib-note'>{what}Colour bar: {ex.image_units()}, "
                f"{lo:.0f} to {hi:.0f}.</div>")

    def refresh(self, scatter: bool = False) -> None:
        """Bring every control, the image, the tables and (optionally) the plots up to date."""
        with self._lock:
            self._refresh(scatter)

    def _refresh(self, scatter: bool) -> None:
        ex, an = self.ex, self.annotator
        self._sync_controls()
        draw_browser(self.ax, self.cax, ex)
        self.caption.value = self._caption()
        self.status.value = message_html(ex.status.lstrip("⚠ "), error=ex.status.startswith("⚠"))
        self.table.value = table_html(ex)
        self.readout.value = readout_html(an.readout()) if ex.has_images() else ""
        self.switch.value = (f"<div class='m1lib-msg' style='color:#345'>Point switched automatically: "
                             f"{an.last_switch}</div>" if an.last_switch else "")
        self.save_msg.value = message_html(an.message, error=bool(an.refusal))
        if scatter:
            self._artists = draw_scatter(self.sfig, self.linked)
        self._show(self.fig, self.image_out)
        if scatter:
            self._show(self.sfig, self.scatter_out)

    def _show(self, fig, out) -> None:
        if self.interactive:
            fig.canvas.draw_idle()
        else:
            out.value = png_bytes(fig)
