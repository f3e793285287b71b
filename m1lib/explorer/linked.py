"""The linked plots: the paper's Fig 2 scatter plots, a picked point shows that participant.

Points come from :func:`m1lib.analyses.limb_pairs` (thickness / intensity of
each area against the UMN score of the contralateral limb) and
:func:`m1lib.analyses.subject_table` (per-patient means against DPR and
ALSFRS-R): the tables the analyses correlate, not a re-computation.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import analyses
from .. import contract as C
from ..errors import DataError

__all__ = ["PANELS", "AXIS_LABELS", "LinkedPlots", "scatter_points", "draw_scatter"]

#: The Fig 2 panels: (measure, clinical variable).
PANELS: tuple[tuple[str, str], ...] = (
    ("thickness_mm", "umn_score"), ("thickness_mm", "dpr"), ("thickness_mm", "alsfrs_r"),
    ("intensity", "umn_score"), ("intensity", "dpr"), ("intensity", "alsfrs_r"),
)
AXIS_LABELS = {"thickness_mm": "thickness (mm)", "intensity": "intensity (norm.)",
               "umn_score": "UMN score (contralat. limb)", "dpr": "DPR (points/month)",
               "alsfrs_r": "ALSFRS-R"}
SELECTED_COLOUR = "#d62728"
_COLUMNS = ["panel", "x", "y", "participant_id", "hemisphere", "area"]


def scatter_points(participants: pd.DataFrame, measurements: pd.DataFrame) -> pd.DataFrame:
    """Points of the Fig 2 panels: ``panel`` (index into :data:`PANELS`), ``x``, ``y``,
    ``participant_id`` and, for the per-limb panels, ``hemisphere`` and ``area``."""
    if measurements is None or measurements.empty:
        return pd.DataFrame(columns=_COLUMNS)
    try:
        pairs = analyses.limb_pairs(participants, measurements)
        subj = analyses.subject_table(participants, measurements)
    except (DataError, KeyError, ValueError):
        return pd.DataFrame(columns=_COLUMNS)
    subj = subj[subj["group"] == "ALS"]
    frames = []
    for n, (measure, var) in enumerate(PANELS):
        src = pairs if var == "umn_score" else subj
        if measure not in src.columns or var not in src.columns:
            continue
        d = pd.DataFrame({"panel": n, "x": pd.to_numeric(src[var], errors="coerce"),
                          "y": pd.to_numeric(src[measure], errors="coerce"),
                          "participant_id": src["participant_id"],
                          "hemisphere": src["hemisphere"] if "hemisphere" in src else None,
                          "area": src["area"] if "area" in src else None})
        frames.append(d.dropna(subset=["x", "y"]))
    if not frames:
        return pd.DataFrame(columns=_COLUMNS)
    return pd.concat(frames, ignore_index=True)[_COLUMNS]


class LinkedPlots:
    """The Fig 2 points of an explorer's tables, and picking them.

    Parameters
    ----------
    explorer : m1lib.explorer.state.Explorer
    """

    def __init__(self, explorer):
        self.ex = explorer
        self._points: pd.DataFrame | None = None

    def points(self) -> pd.DataFrame:
        if self._points is None:
            self._points = scatter_points(self.ex.participants, self.ex.measurements)
        return self._points

    def panel_points(self, panel: int) -> pd.DataFrame:
        pts = self.points()
        return pts[pts["panel"] == panel].reset_index(drop=True)

    def pick(self, panel: int, index: int) -> None:
        """A point picked in a panel: show that participant's area in the browser."""
        ex = self.ex
        row = self.panel_points(panel).iloc[int(index)]
        ex.set_participant(row["participant_id"])
        if not ex.has_images():
            return
        if isinstance(row.get("area"), str):
            label = f"{row['hemisphere']}_{row['area']}"
        else:  # subject-level panels keep the area looked at
            zoom = ex.state.zoom
            label = zoom if zoom in ex.labels() and zoom != C.REFERENCE_LABEL else None
            label = label or ("L_hand" if "L_hand" in ex.labels() else ex.labels()[0])
        if ex.label_position(label) is not None:
            ex.state.label, ex.state.point = label, 0
            ex.set_zoom(label)

    def selected_points(self, panel: int) -> np.ndarray:
        """Indices of the shown participant's points in a panel."""
        pts = self.panel_points(panel)
        return np.flatnonzero(pts["participant_id"].to_numpy() == self.ex.state.participant_id)


def draw_scatter(fig, linked: LinkedPlots) -> dict:
    """Draw the six Fig 2 panels into ``fig``; return ``{artist: panel}`` for picking."""
    fig.clear()
    axes = fig.subplots(2, 3)
    artists = {}
    for n, (measure, var) in enumerate(PANELS):
        ax = axes[n // 3, n % 3]
        pts = linked.panel_points(n)
        if pts.empty:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        else:
            x = pts["x"].to_numpy(float)
            if var == "umn_score":  # integer scores: spread the pairs a little to see them
                key = pts["hemisphere"].astype(str) + pts["area"].astype(str)
                codes = pd.factorize(key, sort=True)[0]
                x = x + 0.06 * (codes - codes.max() / 2)
            art = ax.scatter(x, pts["y"], s=16, color="#555555", alpha=0.8, picker=True, pickradius=5)
            art.set_gid(f"panel{n}")
            artists[art] = n
            sel = linked.selected_points(n)
            if len(sel):
                ax.scatter(x[sel], pts["y"].to_numpy()[sel], s=60, facecolors="none",
                           edgecolors=SELECTED_COLOUR, linewidths=1.5)
        ax.set_title(f"{'ABCDEF'[n]}", loc="left", fontsize=9, fontweight="bold")
        ax.set_xlabel(AXIS_LABELS[var], fontsize=8)
        ax.set_ylabel(AXIS_LABELS[measure], fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("Fig 2, patients: click a point to show that participant (red: shown)", fontsize=9)
    fig.tight_layout()
    return artists
