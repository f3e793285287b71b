"""Paper-style figures.

Figures draw; they never compute statistics: every number they print comes from
a table that :mod:`m1lib.analyses` computed. Each function returns a matplotlib
``Figure``; :func:`save_figure` writes it with fixed fonts and DPI and without
timestamps, so the same figure gives the same bytes on every run. No backend is
forced: headless runs fall back to Agg, and a live notebook keeps its own.
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.image
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse, Patch
import numpy as np
import pandas as pd

from m1lib.formats import p_text, rho_text
from m1lib.measure.settings import MeasureSettings
from m1lib.memo import Memo

# ---------------------------------------------------------------- style and saving
#: Fixed style so that figures are identical run to run and machine to machine.
STYLE = {
    "font.family": "DejaVu Sans", "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7,
    "axes.spines.top": False, "axes.spines.right": False, "axes.linewidth": 0.6,
    "xtick.major.width": 0.6, "ytick.major.width": 0.6, "lines.linewidth": 1.0,
    "savefig.dpi": 300, "figure.dpi": 100, "pdf.fonttype": 42, "svg.hashsalt": "m1lib",
    "path.simplify": False,
}
GROUP_COLORS = {"ALS": "#b2182b", "HS": "#2166ac"}
SUBGROUP_COLORS = {"faster": "#b2182b", "slower": "#f4a582"}
CALL_COLORS = {"correct": "#1b7837", "missed": "#999999"}
_METADATA = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
             "svg": {"Creator": None, "Date": None}}


def style():
    """Context manager applying :data:`STYLE` (use around figure construction)."""
    return matplotlib.rc_context(STYLE)


#: Resolution of saved PNGs, and of the image shown in a notebook (half of it).
SAVE_DPI, DISPLAY_DPI = 300, 150


def render(fig, formats=("png", "pdf")) -> dict[str, bytes]:
    """``fig`` as file bytes for each format, and as the image a notebook shows.

    Returns
    -------
    dict
        ``{fmt: bytes}`` for each of ``formats`` and ``"display"``: a PNG at
        :data:`DISPLAY_DPI`.

    Notes
    -----
    The figure is laid out and rasterised once: the 300-dpi RGBA buffer is written
    as the PNG (the bytes ``savefig(format="png", dpi=300)`` writes) and reduced 2 x 2
    to the display image, instead of a second rendering at 150 dpi; vector formats
    are then drawn with the layout already computed (constrained layout is the
    costliest step of a draw), so every format shows the same layout.
    """
    with matplotlib.rc_context(STYLE):
        rgba = _rgba(fig, SAVE_DPI)
        out = {}
        if "png" in formats:
            out["png"] = _png(rgba, SAVE_DPI)
        out["display"] = _png(_halve(rgba), DISPLAY_DPI)
        engine = fig.get_layout_engine()
        if engine is not None:
            fig.set_layout_engine("none")   # keep the positions the raster draw computed
        try:
            for fmt in formats:
                if fmt != "png":
                    buf = io.BytesIO()
                    fig.savefig(buf, format=fmt, dpi=SAVE_DPI, metadata=_METADATA.get(fmt), bbox_inches=None)
                    out[fmt] = buf.getvalue()
        finally:
            if engine is not None:
                fig.set_layout_engine(engine)
    return out


def _rgba(fig, dpi) -> np.ndarray:
    """The Agg rendering of ``fig`` at ``dpi`` as an (h, w, 4) uint8 array."""
    buf = io.BytesIO()
    fig.savefig(buf, format="rgba", dpi=dpi, bbox_inches=None)
    raw = np.frombuffer(buf.getvalue(), np.uint8)
    # Agg truncates the pixel size it computes through transforms; W x H in inches times
    # dpi can round either side of an integer, so take the candidate the buffer fits
    x, y = fig.get_size_inches() * dpi
    fits = [(int(w), int(h)) for w in (x, x + 1e-6, x - 1e-6) for h in (y, y + 1e-6, y - 1e-6)
            if int(w) * int(h) * 4 == raw.size]
    if not fits:
        raise RuntimeError(f"Agg buffer of {raw.size} bytes does not fit {x:.4f} x {y:.4f} px RGBA")
    w, h = fits[0]
    return raw.reshape(h, w, 4)


def _halve(rgba: np.ndarray) -> np.ndarray:
    """Mean of each 2 x 2 block (a box filter; odd last rows/columns dropped)."""
    h, w = (rgba.shape[0] // 2) * 2, (rgba.shape[1] // 2) * 2
    blocks = rgba[:h, :w].reshape(h // 2, 2, w // 2, 2, 4).astype(np.uint16)
    return ((blocks.sum(axis=(1, 3)) + 2) // 4).astype(np.uint8)


def _png(rgba: np.ndarray, dpi: int) -> bytes:
    # what matplotlib's print_png does with its Agg buffer (no text chunks: no timestamps)
    buf = io.BytesIO()
    matplotlib.image.imsave(buf, rgba, format="png", origin="upper", dpi=dpi, metadata=_METADATA["png"])
    return buf.getvalue()


def write_rendered(rendered: dict[str, bytes], stem, formats=("png", "pdf")) -> list[Path]:
    """Write :func:`render`'s bytes to ``stem.<fmt>`` for each format; return the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        path.write_bytes(rendered[fmt])
        paths.append(path)
    return paths


def save_figure(fig, stem, formats=("png", "pdf")) -> list[Path]:
    """Save ``fig`` to ``stem.<fmt>`` with timestamps and software tags stripped.

    PNG at 300 dpi; PDF with embedded TrueType fonts. The same figure gives the same
    bytes on every run (no creation dates). Laid out and rasterised once
    (:func:`render`).
    """
    return write_rendered(render(fig, formats), stem, formats)


def rc_state() -> dict[str, str]:
    """matplotlib's settings, which drawing and saving read (the backend aside)."""
    return {k: repr(v) for k, v in sorted(matplotlib.rcParams.items())
            if k not in ("backend", "backend_fallback", "interactive")}


def render_memo(memo: Memo, make, args=(), kwargs=None, formats=("png", "pdf")) -> dict[str, bytes]:
    """:func:`render` of ``make(*args, **kwargs)``, kept in ``memo``.

    The key holds ``make`` and its arguments' content, the code of ``make``'s module
    and of this one (the rendering), the formats and every matplotlib setting
    (:func:`rc_state`), so an unchanged figure is neither drawn nor rendered again.
    """
    kwargs = dict(kwargs or {})
    if not memo.enabled:
        memo.misses += 1
        return render(make(*args, **kwargs), formats)
    key = memo.key(make, tuple(args), kwargs, code=(__name__,),
                   extra={"formats": list(formats), "rc": rc_state()})
    found, rendered = memo.get(key)
    if found:
        memo.hits += 1
        return rendered
    memo.misses += 1
    rendered = render(make(*args, **kwargs), formats)
    memo.put(key, rendered)
    return rendered


def display_image(png: bytes):
    """An ``IPython.display.Image`` of PNG bytes (e.g. :func:`render`'s ``"display"``)."""
    from IPython.display import Image  # notebook display only

    return Image(data=png, format="png")


def png_bytes(fig, dpi: int = 150) -> bytes:
    """``fig`` rendered to PNG bytes (no timestamps), e.g. to show it inline."""
    buf = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buf, format="png", dpi=dpi, metadata=_METADATA["png"])
    return buf.getvalue()


def show(fig, dpi: int = 150):
    """An ``IPython.display.Image`` of ``fig`` for a notebook.

    The figures are built as plain :class:`~matplotlib.figure.Figure` objects, not
    through pyplot, so IPython has no inline formatter for them (a bare ``fig`` at the
    end of a cell prints ``<Figure size ...>``); an image always displays, in the
    executed notebook and in its HTML.
    """
    from IPython.display import Image  # notebook display only

    return Image(data=png_bytes(fig, dpi), format="png")


def panel_letter(ax, letter: str) -> None:
    ax.text(-0.18, 1.04, letter, transform=ax.transAxes, fontsize=10, fontweight="bold",
            va="bottom", ha="left")


def format_p(p: float) -> str:
    """The paper's P style (``P < .001``, ``P = .024``); see :func:`m1lib.formats.p_text`."""
    return p_text(p)


def format_r(r: float) -> str:
    """Spearman's rho as printed on the panels: ``ρ = −0.45``."""
    return rho_text(r)


# ---------------------------------------------------------------- paper figures
_Y = {"thickness_mm": "Deep-layer thickness (mm)", "intensity": "Deep-layer signal intensity\n(normalized to precuneus)",
      "r2star_s": "Deep-layer R2* (1/s)"}
_X = {"umn_score": "UMN score (contralateral limb, 0\u20138)", "dpr": "DPR (points/month)", "alsfrs_r": "ALSFRS-R"}


def _scatter(ax, x, y, text, jitter: float = 0.0):
    # integer scores pile up: jitter for display only (fixed seed; fit and statistics use x)
    shown = x + np.random.default_rng(1).uniform(-jitter, jitter, len(x)) if jitter else x
    ax.scatter(shown, y, s=10, color="black", linewidths=0, alpha=0.6)
    ok = np.isfinite(x) & np.isfinite(y)
    slope = 0.0
    if ok.sum() >= 3 and np.ptp(x[ok]) > 0:
        slope, icpt = np.polyfit(x[ok], y[ok], 1)  # a visual guide, as in the paper's Fig 2
        xs = np.linspace(x[ok].min(), x[ok].max(), 50)
        ax.plot(xs, icpt + slope * xs, color="black", lw=0.8, label="least-squares line (guide)")
    # the statistics go in the upper corner the trend leaves empty
    left = slope > 0
    ax.text(0.03 if left else 0.97, 0.97, text, transform=ax.transAxes, ha="left" if left else "right",
            va="top", fontsize=7)


def fig2_correlations(limb: pd.DataFrame, subjects: pd.DataFrame, stats: pd.DataFrame):
    """The paper's Fig 2: thickness (A-C) and intensity (D-F) against UMN score, DPR, ALSFRS-R.

    Parameters
    ----------
    limb : DataFrame
        Pooled per-limb pairs: ``umn_score``, ``thickness_mm``, ``intensity``.
    subjects : DataFrame
        One row per ALS patient: ``dpr``, ``alsfrs_r``, ``thickness_mm``, ``intensity``.
    stats : DataFrame
        ``measure``, ``variable`` (``umn_limb``, ``dpr``, ``alsfrs_r``), ``rho``, ``p_value``, ``n``:
        the rows of :func:`m1lib.analyses.correlations` and :func:`~m1lib.analyses.limb_correlations`;
        this function only draws them.
    """
    with style():
        fig = Figure(figsize=(7.2, 4.6), layout="constrained")
        axes = fig.subplots(2, 3)
        letters = iter("ABCDEF")
        for i, measure in enumerate(("thickness_mm", "intensity")):
            for j, clinical in enumerate(("umn_score", "dpr", "alsfrs_r")):
                ax = axes[i, j]
                src = limb if clinical == "umn_score" else subjects
                variable = "umn_limb" if clinical == "umn_score" else clinical
                row = stats[(stats["measure"] == measure) & (stats["variable"] == variable)]
                text = "" if row.empty else \
                    f"{format_r(row['rho'].iloc[0])}\n{format_p(row['p_value'].iloc[0])}\nn = {int(row['n'].iloc[0])}"
                _scatter(ax, src[clinical].to_numpy(float), src[measure].to_numpy(float), text,
                         jitter=0.15 if clinical == "umn_score" else 0.0)
                ax.set_xlabel(_X[clinical])
                ax.set_ylabel(_Y[measure] if j == 0 else "")
                panel_letter(ax, next(letters))
        # a constrained layout keeps room for a suptitle, not for free text below the axes
        fig.suptitle("\u03c1, P: Spearman (A, D: limbs pooled as independent); line: least-squares fit, "
                     "a visual guide; UMN scores jittered for display", fontsize=7)
        return fig


def _groups_panel(ax, data: pd.DataFrame, value: str, by: str, order, colors, p_text: str, ylabel: str):
    rng = np.random.default_rng(0)  # fixed jitter: identical figures run to run
    vals = [data.loc[data[by] == g, value].dropna().to_numpy(float) for g in order]
    bp = ax.boxplot(vals, positions=range(len(order)), widths=0.5, showfliers=False,
                    patch_artist=True, medianprops={"color": "black"})
    for patch, g in zip(bp["boxes"], order):
        patch.set_facecolor(colors[g])
        patch.set_alpha(0.35)
    for k, v in enumerate(vals):
        ax.scatter(k + rng.uniform(-0.12, 0.12, len(v)), v, s=9, color=colors[order[k]], linewidths=0, zorder=3)
    ax.set_xticks(range(len(order)), [f"{g}\n(n = {len(v)})" for g, v in zip(order, vals)])
    ax.set_ylabel(ylabel)
    ax.set_title(p_text)


def online_fig1_ab(diagnosis: pd.DataFrame, correct_vs_missed: pd.DataFrame):
    """On-line Fig 1A-B: total UMN score (top) and DPR (bottom) in correctly diagnosed vs
    missed patients, one column per reader (as the data label them).

    ``diagnosis``: :func:`m1lib.analyses.diagnosis_table`; ``correct_vs_missed``:
    :func:`m1lib.analyses.correct_vs_missed` (its P values are printed).
    """
    readers = sorted(diagnosis["reader"].unique())
    rows = (("umn_total", "UMN score (total, 0\u201333)"), ("dpr", "DPR (points/month)"))
    with style():
        fig = Figure(figsize=(1.9 * max(len(readers), 1) + 0.4, 4.8), layout="constrained")
        axes = fig.subplots(2, max(len(readers), 1), squeeze=False)
        letters = iter("ABCDEFGHIJKLMNOP")
        for r, (var, ylabel) in enumerate(rows):
            p_values = _p_by(correct_vs_missed, "reader", {"variable": var})
            for ax, reader in zip(axes[r], readers):
                d = diagnosis[diagnosis["reader"] == reader]
                _groups_panel(ax, d, var, "diagnosis", ["correct", "missed"], CALL_COLORS,
                              f"{reader}: {format_p(p_values.get(reader))}", ylabel if ax is axes[r][0] else "")
                panel_letter(ax, next(letters))
        return fig


def _p_by(table: pd.DataFrame, column: str, where: dict | None = None) -> dict:
    """``{table[column]: p_value}`` from a result table of :mod:`m1lib.analyses` (rows filtered by ``where``)."""
    t = table
    for k, v in (where or {}).items():
        t = t[t[k] == v]
    return dict(zip(t[column], t["p_value"]))


def _two_measures_by_group(subjects, measures, letters, by, order, colors, p_values, p_label=""):
    with style():
        fig = Figure(figsize=(2.1 + 1.05 * len(order), 2.6), layout="constrained")
        for ax, value, letter in zip(fig.subplots(1, len(measures)), measures, letters):
            _groups_panel(ax, subjects, value, by, order, colors, p_label + format_p(p_values.get(value)),
                          _Y[value])
            panel_letter(ax, letter)
        return fig


def online_fig1_cd(subjects: pd.DataFrame, group_comparison: pd.DataFrame, patient_group: str = "ALS",
                   comparison=("HS",)):
    """On-line Fig 1C-D: deep-layer thickness (C) and intensity (D), ALS vs healthy subjects.

    ``subjects``: :func:`m1lib.analyses.subject_table`; ``group_comparison``:
    :func:`m1lib.analyses.group_comparison` (P values printed).
    """
    comparison = (comparison,) if isinstance(comparison, str) else tuple(comparison)
    order = [patient_group, *comparison]
    colors = {g: GROUP_COLORS.get(g, c) for g, c in zip(order, ("#b2182b", "#2166ac", "#4d9221", "#762a83"))}
    first = group_comparison[group_comparison["group_y"] == comparison[0]] \
        if "group_y" in group_comparison.columns else group_comparison
    # one P per panel: against the first comparison group (all P values are in the table)
    return _two_measures_by_group(subjects, ("thickness_mm", "intensity"), "CD", "group", order,
                                  colors, {k: v for k, v in _p_by(first, "variable").items()},
                                  p_label=f"vs {comparison[0]}: " if len(comparison) > 1 else "")


def online_fig2(subjects: pd.DataFrame, dpr_subgroups: pd.DataFrame):
    """On-line Fig 2: intensity (A) and thickness (B) in faster vs slower progressors.

    ``subjects``: :func:`m1lib.analyses.subject_table` (patients with a ``progression`` are
    drawn); ``dpr_subgroups``: :func:`m1lib.analyses.dpr_subgroups` (P values printed).
    """
    return _two_measures_by_group(subjects[subjects["progression"] != ""], ("intensity", "thickness_mm"),
                                  "AB", "progression", ["faster", "slower"], SUBGROUP_COLORS,
                                  _p_by(dpr_subgroups, "variable"))


def roc_figure(curves: pd.DataFrame, roc: pd.DataFrame, visual_reading: pd.DataFrame):
    """ROC curves of the quantitative measures with the readers' operating points.

    ``curves``: :func:`m1lib.analyses.roc_curves`; ``roc``: :func:`m1lib.analyses.roc_table`
    (AUC and DeLong CI for the legend); ``visual_reading``: :func:`m1lib.analyses.visual_reading`.
    """
    readers = visual_reading.pivot(index="reader", columns="statistic", values="estimate").reset_index()
    colors = {"thickness_mm": "#1b9e77", "intensity": "#d95f02", "r2star_s": "#7570b3"}
    if "group_control" in curves.columns:      # the first comparison group (all AUCs are in the table)
        control = roc["group_control"].iloc[0]
        curves = curves[curves["group_control"] == control]
        roc = roc[roc["group_control"] == control]
    level = float(roc["conf_level"].iloc[0]) if "conf_level" in roc.columns and len(roc) else 0.95
    with style():
        fig = Figure(figsize=(3.4, 4.3), layout="constrained")
        ax = fig.subplots()
        for name, c in curves.groupby("predictor", sort=False):
            row = roc[roc["predictor"] == name].iloc[0]
            label = (f"{_Y.get(name, name).splitlines()[0]}: AUC {row['auc']:.2f} "
                     f"({level:.0%} CI {row['ci_low']:.2f}\u2013{min(row['ci_high'], 1):.2f})")
            ax.step(c["fpr"], c["tpr"], where="post", color=colors.get(name, "black"), label=label)
        for r, m in zip(readers.itertuples(index=False), ("o", "s", "^", "D", "v", "P", "X")):
            ax.plot(1 - r.specificity, r.sensitivity, m, color="black", ms=5, mfc="none",
                    label=f"{r.reader} (visual read)")
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.6, ls="--")
        ax.set_xlabel("1 \u2212 specificity")
        ax.set_ylabel("Sensitivity")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        # below the axes, so that no curve is hidden; DeLong intervals
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False, fontsize=6, ncol=1,
                  title=f"AUC with {level:.0%} DeLong CI", title_fontsize=6)
        return fig


# ---------------------------------------------------------------- Fig 1 and profiles
_MM_PER_INCH = 25.4


def _crop_panel(ax, crop, window=(0.5, 90.0)):
    lo, hi = np.percentile(crop.image, window)  # window on tissue: sulcal CSF saturates
    ax.imshow(crop.image, cmap="gray", origin="lower", extent=crop.extent, vmin=lo, vmax=hi,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlim(crop.extent[0], crop.extent[1])
    ax.set_ylim(crop.extent[2], crop.extent[3])


_ON_IMAGE = dict(color="w", fontsize=7, bbox=dict(boxstyle="square,pad=0.15", fc="black", ec="none", alpha=0.6))


def _scale_bar(ax, crop, mm: float = 2.0):
    # white on a dark box: readable over bright CSF as over dark white matter
    x0, y0 = crop.extent[0] + 0.4, crop.extent[3] - 0.5
    ax.text(x0 + mm / 2, y0, f"{mm:g} mm", ha="center", va="top", **_ON_IMAGE)
    ax.plot([x0, x0 + mm], [y0 - 0.75, y0 - 0.75], color="w", lw=2, solid_capstyle="butt",
            path_effects=[patheffects.withStroke(linewidth=3.5, foreground="black")])


def fig1(comparison, patient, comparison_label: str = "Healthy subject", patient_label: str = "ALS",
         roi_area_mm2: float = 4.0, echo: int = 2):
    """Fig 1 of Cosottini et al. 2016 redrawn: the deep layer of M1 in a comparison subject
    (A-C) and a patient (D-F).

    Parameters
    ----------
    comparison, patient : m1lib.crops.Crop
        The crop of one annotated area of each participant
        (:func:`m1lib.crops.participant_crops`).
    comparison_label, patient_label : str
        Row labels (the data's group names).
    roi_area_mm2 : float
        Area of the measured ROI (for the caption line).
    echo : int
        The echo shown (for the title).

    Notes
    -----
    (A, D) the image; (B, E) the paper's schematic marks - dots on the superficial
    hyperintense layer, a bracket on the deep layer, arrowheads on the U-fibre line;
    (C, F) the measurement - the caliper and the ROI that :mod:`m1lib.measure`
    measured (not a redrawn oval). Draws only; reads no file.
    """
    with style():
        fig = Figure(figsize=(180 / _MM_PER_INCH, 4.9))
        axes = fig.subplots(2, 3)
        for row, (crop, label) in enumerate(((comparison, comparison_label), (patient, patient_label))):
            pts = crop.caliper
            d = pts[1] - pts[0]
            length = float(np.hypot(*d))
            nrm = d / length if length > 0 else np.array([0.0, 1.0])
            tan = np.array([-nrm[1], nrm[0]])
            for col in range(3):
                ax = axes[row, col]
                _crop_panel(ax, crop)
                ax.set_title("ABCDEF"[row * 3 + col], loc="left", fontsize=10, fontweight="bold")
            ax = axes[row, 1]            # B/E: the paper's schematic marks
            sup = pts[0] - 0.55 * nrm
            for t in np.linspace(-1.8, 1.8, 5):
                ax.plot(*(sup + t * tan), "o", ms=2.4, color="#ffd400")
            off = 2.4 * tan
            b0, b1 = pts[0] + off, pts[1] + off
            br = 0.45 * tan
            ax.plot(*np.column_stack([b0 - br, b0, b1, b1 - br]), color="#ff5a36", lw=1.4)
            u = pts[1] + 0.2 * nrm
            for t in (-1.6, 1.6):
                q = u + t * tan
                ax.annotate("", xy=q, xytext=q + 1.3 * nrm,
                            arrowprops=dict(arrowstyle="-|>", color="#39c5ff", lw=1.0))
            ax = axes[row, 2]            # C/F: the measurement, as measured
            ax.plot(*pts.T, "-", color="#ffd400", lw=1.2)
            for e in pts:
                ax.plot(*np.column_stack([e - 0.5 * tan, e + 0.5 * tan]), color="#ffd400", lw=1.2)
            ax.plot(crop.roi[:, 0], crop.roi[:, 1], color="#39c5ff", lw=1.1)
            ax.text(0.03, 0.04, f"caliper {crop.caliper_mm:.2f} mm", transform=ax.transAxes, **_ON_IMAGE)
            axes[row, 0].set_ylabel(f"{label}\n{crop.participant_id}", fontsize=8)
            _scale_bar(axes[row, 0], crop)
        c = patient
        fig.suptitle(f"Precentral gyrus, {c.label.replace('_', ' ')} area, echo {echo} GRE, full resolution",
                     fontsize=8)
        fig.text(0.5, 0.005, "B/E: dots, superficial hyperintense layer; bracket, deep layer of M1; arrowheads, "
                 "U-fibre line.\nC/F: caliper (yellow) and the "
                 f"{roi_area_mm2:g} mm\u00b2 ROI that was measured (blue; it may extend beyond the crop)",
                 ha="center", va="bottom", fontsize=7)
        fig.subplots_adjust(left=0.07, right=0.99, top=0.9, bottom=0.1, wspace=0.04, hspace=0.12)
        return fig


def profiles_figure(crops, title: str = ""):
    """Each caliper of one participant for a journal page (180 mm wide, text >= 7 pt).

    Per area: the slice crop with the caliper, the measured ROI and the fitted layer
    edges, and beneath it the signal along the caliper (mean of the central lines)
    with the fitted edge model.

    Parameters
    ----------
    crops : sequence of m1lib.crops.Crop
        One participant's areas (:func:`m1lib.crops.participant_crops`).
    title : str
        Figure title (e.g. the participant and group).
    """
    ncol = 4
    nrow = int(np.ceil(len(crops) / ncol))
    with style():
        fig = Figure(figsize=(180 / _MM_PER_INCH, 3.15 * nrow + 0.35), layout="constrained")
        grid = fig.add_gridspec(2 * nrow, ncol, height_ratios=[1.25, 1.0] * nrow)
        for n, crop in enumerate(crops):
            r, c = 2 * (n // ncol), n % ncol
            ax = fig.add_subplot(grid[r, c])
            _crop_panel(ax, crop)
            ax.plot(crop.roi[:, 0], crop.roi[:, 1], color="#1f77b4", lw=1)
            ax.plot(*crop.caliper.T, color="#ff7f0e", lw=1, marker="o", ms=2)
            for seg, col in zip(crop.edges, ("#2ca02c", "#d62728")):
                ax.plot(*seg.T, color=col, lw=1, ls="-" if crop.fit_ok else "--")
            _scale_bar(ax, crop, 1.0)
            prof = "fit failed" if not np.isfinite(crop.profile_mm) else f"profile {crop.profile_mm:.2f}"
            ax.set_title(f"{crop.label.replace('_', ' ')}\ncaliper {crop.caliper_mm:.2f}, {prof} mm", fontsize=7)
            axp = fig.add_subplot(grid[r + 1, c])
            axp.plot(crop.profile_s, crop.profile_mean, color="black", lw=0.8)
            axp.plot(crop.profile_s, crop.profile_model, color="#d62728", lw=0.8)
            for x in (0.0, crop.caliper_mm):
                axp.axvline(x, color="#ff7f0e", lw=0.6)
            axp.set_xlabel("Along caliper (mm)")
            axp.set_ylabel("Signal (a.u.)" if c == 0 else "")
        fig.suptitle((title + ". " if title else "") + "Images: measured ROI blue, caliper orange, fitted "
                     "outer/inner edge green/red (dashed: fit not accepted).\nProfiles: signal along the "
                     "caliper black, fitted edge model red; orange lines: caliper ends", fontsize=7)
        return fig


# ---------------------------------------------------------------- measurement checks
def measurement_error_vs_snr(errors: pd.DataFrame):
    """Profile-thickness and caliper error against each participant's SNR (replica truth).

    ``errors``: :func:`m1lib.analyses.measurement_errors`. Motion-corrupted participants
    are drawn hollow.
    """
    with style():
        fig = Figure(figsize=(6.4, 2.6), layout="constrained")
        axes = fig.subplots(1, 2, sharey=True)
        for ax, quantity, title, letter in zip(
                axes, ("profile_thickness_mm", "thickness_mm"),
                ("Profile fit (rater-independent)", "Caliper (simulated rater)"), "AB"):
            d = errors[errors["quantity"] == quantity]
            for subset, face in (("included", "black"), ("motion", "none")):
                s = d[d["subset"] == subset]
                ax.scatter(s["snr"], s["error"], s=8, facecolors=face, edgecolors="black", linewidths=0.5,
                           label="motion-corrupted" if subset == "motion" else "analysed")
            ax.axhline(0, color="0.5", lw=0.6)
            for t in (-0.1, 0.1):
                ax.axhline(t, color="#b2182b", lw=0.6, ls="--", label="\u00b10.1 mm" if t > 0 else None)
            ax.set_title(title)
            ax.set_xlabel("SNR (superficial cortex, echo 1)")
            panel_letter(ax, letter)
        axes[0].set_ylabel("Thickness error (mm)")
        axes[0].legend(frameon=False, loc="lower left")
        return fig


def motion_qc_figure(qc: pd.DataFrame, threshold: float = MeasureSettings().ghost_threshold):
    """Each participant's k-space ghost ratio against the flag threshold, excluded ones marked.

    ``qc``: :func:`m1lib.analyses.motion_qc`; ``threshold``: the measurement's
    ``ghost_threshold`` (``qc_motion`` is ``qc_ghost_ratio > threshold``).
    """
    with style():
        d = qc.sort_values(["qc_ghost_ratio", "participant_id"], ignore_index=True)
        fig = Figure(figsize=(7.09, 2.6), layout="constrained")
        ax = fig.subplots()
        colors = np.where(d["excluded"], "#b2182b", "#2166ac")
        ax.bar(np.arange(len(d)), d["qc_ghost_ratio"], color=colors, width=0.8)
        ax.axhline(threshold, color="black", lw=0.7, ls="--")
        ax.set_xticks(np.arange(len(d)), d["participant_id"].str.replace("sub-", ""), rotation=90, fontsize=7)
        ax.set_ylabel("Ghost ratio\n(phase-encode / readout)")
        ax.set_xlabel("Participant")
        ax.legend(handles=[Patch(color="#b2182b", label="excluded (participants.tsv)"),
                           Patch(color="#2166ac", label="analysed"),
                           Line2D([], [], color="black", lw=0.7, ls="--", label=f"QC flag threshold ({threshold:g})")],
                  loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=7)
        ax.set_title("Motion QC: line-to-line k-space inconsistency per participant")
        return fig
