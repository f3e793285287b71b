"""Drawing the browser: the slice, its overlays, a colour bar with units, and the snapshot.

Any matplotlib backend: live ipympl canvases in JupyterLab, Agg for the static
snapshot of the report (deterministic bytes: fixed size, DPI and fonts, no PNG
timestamp).
"""
from __future__ import annotations

import io

import matplotlib
import matplotlib.patheffects as pe
import nibabel as nib
import numpy as np
from IPython import get_ipython
from IPython.display import Image
from matplotlib.figure import Figure

from .state import R2STAR, WHOLE_SLICE, Explorer
from .text import table_text

__all__ = ["COLOURS", "draw_browser", "image_axes", "snapshot_figure", "as_image",
           "use_widget_backend", "is_interactive"]

#: Overlay colours (those of the audit figure of :mod:`m1lib.measure`).
COLOURS = {"roi": "#1f77b4", "caliper": "#ff7f0e", "edit": "#ffdd00", "reference": "#17becf",
           "edge_outer": "#2ca02c", "edge_inner": "#d62728"}


def _orientation_letters(affine) -> tuple[str, str, str, str]:
    """(left, right, bottom, top) screen edges of an i-right, j-up display."""
    codes = nib.orientations.aff2axcodes(affine)
    opposite = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}
    return opposite[codes[0]], codes[0], opposite[codes[1]], codes[1]


def image_axes(fig, rect=(0.01, 0.01, 0.79, 0.92), cbar=(0.83, 0.08, 0.035, 0.80)):
    """The image axes and the colour bar's axes, at fixed places (no layout jumps)."""
    return fig.add_axes(rect), fig.add_axes(cbar)


def _draw_overlays(ax, ex: Explorer) -> None:
    (i0, i1), _ = ex.view_limits()
    numbered = (i1 - i0) * ex.pixel_mm()[0] <= 30   # point numbers only where they do not overlap
    for ov in ex.overlays():
        colour = COLOURS["edit"] if ov.active and ov.kind == "caliper" else COLOURS.get(ov.kind, "w")
        lw = 1.8 if ov.active else 1.4
        if ov.kind == "caliper":
            ax.plot(ov.ij[:, 0], ov.ij[:, 1], color=colour, lw=lw, marker="o", ms=3.5)
            if ov.active and numbered:  # which end is which: 1 superficial, 2 white matter
                for n, (x, y) in enumerate(ov.ij):
                    ax.annotate(str(n + 1), (x, y), xytext=(4, 4), textcoords="offset points",
                                color=colour, fontsize=8, fontweight="bold")
        elif ov.kind == "reference" and len(ov.ij) == 1:
            ax.plot(ov.ij[:, 0], ov.ij[:, 1], color=COLOURS["reference"], marker="+", ms=9, mew=1.5)
        else:
            ax.plot(ov.ij[:, 0], ov.ij[:, 1], color=colour, lw=lw, ls=ov.style)


_OUTLINE = [pe.withStroke(linewidth=2.5, foreground="black")]   # legible on bright tissue


def _scale_bar_and_letters(ax, ex: Explorer) -> None:
    px = ex.pixel_mm()
    (i0, i1), (j0, j1) = ax.get_xlim(), ax.get_ylim()
    bar_mm = 1.0 if (i1 - i0) * px[0] <= 30 else 10.0   # 1 mm zoomed in, 10 mm on the slice
    x0, y0 = i0 + 0.05 * (i1 - i0), j0 + 0.05 * (j1 - j0)
    ax.plot([x0, x0 + bar_mm / px[0]], [y0, y0], color="w", lw=2.5, solid_capstyle="butt",
            path_effects=_OUTLINE)
    ax.text(x0, y0 + 0.02 * (j1 - j0), f"{bar_mm:g} mm", color="w", fontsize=8, path_effects=_OUTLINE)
    left, right, bottom, top = _orientation_letters(ex.volume().geometry.affine)
    for x, y, s in ((0.01, 0.5, left), (0.99, 0.5, right), (0.5, 0.01, bottom), (0.5, 0.99, top)):
        ax.text(x, y, s, transform=ax.transAxes, color="#ffff66", fontsize=9, fontweight="bold",
                path_effects=_OUTLINE,
                ha="left" if x < 0.2 else "right" if x > 0.8 else "center",
                va="bottom" if y < 0.2 else "top" if y > 0.8 else "center")


def draw_browser(ax, cax, ex: Explorer, *, limits: bool = True) -> None:
    """Draw the shown slice, its overlays and (into ``cax``) a colour bar with units.

    Parameters
    ----------
    ax, cax : Axes
        The image's axes and the colour bar's (see :func:`image_axes`).
    ex : Explorer
    limits : bool
        Set the view limits from the explorer (False keeps the axes' own).
    """
    ax.clear()
    cax.clear()
    ax.set_xticks([])
    ax.set_yticks([])
    pid = ex.state.participant_id
    img = ex.image_slice()
    if img is None:
        ax.text(0.5, 0.5, f"{pid}: no images in this dataset\n(measurements only)",
                ha="center", va="center", transform=ax.transAxes, fontsize=10)
        cax.set_axis_off()
        return
    cax.set_axis_on()
    ni, nj = img.shape
    px = ex.pixel_mm()
    vmin, vmax = ex.clim()
    cmap = matplotlib.colormaps["magma" if ex.state.image == R2STAR else "gray"].with_extremes(bad="black")
    im = ax.imshow(np.ma.masked_invalid(img.T), cmap=cmap, origin="lower", interpolation="nearest",
                   vmin=vmin, vmax=vmax, extent=(-0.5, ni - 0.5, -0.5, nj - 0.5),
                   aspect=float(px[1] / px[0]))
    _draw_overlays(ax, ex)
    if limits:
        (i0, i1), (j0, j1) = ex.view_limits()
        ax.set_xlim(i0, i1)
        ax.set_ylim(j0, j1)
    _scale_bar_and_letters(ax, ex)
    bar = ax.figure.colorbar(im, cax=cax)
    bar.set_label(ex.image_units(), fontsize=8)
    bar.ax.tick_params(labelsize=7)
    zoom = "" if ex.state.zoom == WHOLE_SLICE else f" · {ex.state.zoom}"
    ax.set_title(f"{pid} · slice {ex.state.slice} · {ex.state.image}{zoom}", fontsize=8.5)


def snapshot_figure(ex: Explorer, *, dpi: int = 150) -> Figure:
    """A static figure of the current view: the image with its overlays and colour bar,
    and the participant's measurements (deterministic bytes: Agg, fixed size and fonts)."""
    fig = Figure(figsize=(10.0, 5.2), dpi=dpi)
    ax, cax = image_axes(fig, rect=(0.01, 0.03, 0.46, 0.88), cbar=(0.475, 0.10, 0.012, 0.72))
    draw_browser(ax, cax, ex)
    txt = fig.add_axes((0.55, 0.03, 0.44, 0.88))
    txt.axis("off")
    txt.text(0.0, 1.0, table_text(ex), family="DejaVu Sans Mono", fontsize=7.5,
             va="top", ha="left", transform=txt.transAxes)
    return fig


def as_image(fig, dpi: int | None = None, alt: str = "explorer snapshot") -> Image:
    """A figure as an ``IPython.display.Image`` (PNG): shown the same under any backend."""
    return Image(data=png_bytes(fig, dpi), format="png", alt=alt)


def png_bytes(fig, dpi: int | None = None) -> bytes:
    """The figure as PNG bytes without a timestamp (same figure, same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi, metadata={"Software": None})
    return buf.getvalue()


def is_interactive() -> bool:
    """Whether matplotlib draws on live ipympl canvases."""
    b = matplotlib.get_backend().lower()
    return "ipympl" in b or b == "widget"


def use_widget_backend() -> bool:
    """Switch matplotlib to ipympl (``%matplotlib widget``) when running in a kernel.

    Returns whether the figures will be live canvases. Headless runs (papermill,
    nbconvert) work either way: the canvases are built and nothing waits for a click.
    """
    ip = get_ipython()
    if ip is None or not hasattr(ip, "kernel"):
        return False
    try:
        ip.run_line_magic("matplotlib", "widget")
    except Exception:  # ipympl missing or broken: static figures, said by the return value
        return False
    return is_interactive()
