"""The power-curve figure: simulated power against n, per scenario, with the target lines.

Draws only what :func:`m1lib.power.power_curves` computed; no statistics here.
"""
from __future__ import annotations

import textwrap
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from m1lib.figures import style

__all__ = ["power_curve_figure"]

_SCENARIO_STYLE = {"optimistic": dict(color="#1b7837", ls="--"),
                   "central": dict(color="black", ls="-"),
                   "pessimistic": dict(color="#b2182b", ls="--")}


def _panel(ax, c: pd.DataFrame, row: pd.Series, targets) -> None:
    for scen, kw in _SCENARIO_STYLE.items():
        s = c[c["scenario"] == scen].sort_values("n")
        if not np.isfinite(s["power"]).any():
            continue
        ax.plot(s["n"], s["power"], marker="o", ms=2, lw=0.9, label=scen, **kw)
        if scen == "central":
            band = 1.96 * s["mc_se"]
            ax.fill_between(s["n"], s["power"] - band, s["power"] + band, color="black", alpha=0.12, lw=0,
                            label="central +- 1.96 MC SE")
            ax.plot(s["n"], s["power_closed"], color="0.5", ls=":", lw=1.0, label="closed form (central)")
    for t in targets:
        ax.axhline(t, color="0.6", lw=0.5)
        ax.text(c["n"].min(), t, f"{round(100 * t)}%", fontsize=5.5, ha="left", va="bottom", color="0.4")
    ax.set_xscale("log")
    grid = sorted(set(c["n"]))
    ticks = grid[::2] + ([grid[-1]] if len(grid) % 2 == 0 else [])
    ax.set_xticks(ticks, [str(int(t)) for t in ticks], fontsize=6)
    ax.minorticks_off()
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"n ({row['unit']})", fontsize=6.5)
    ax.set_ylabel("power", fontsize=6.5)
    effects = ", ".join(f"{s[0].upper()} {row[f'model_effect_{s}']:.2f}" for s in _SCENARIO_STYLE
                        if np.isfinite(row[f"model_effect_{s}"]))
    ax.set_title("\n".join(textwrap.wrap(row["label"], 38)) + f"\n{row['effect_name']}: {effects}", fontsize=6)


def power_curve_figure(curves: pd.DataFrame, table: pd.DataFrame, endpoints: Sequence[str] | None = None,
                       targets: Sequence[float] = (0.8, 0.9), columns: int = 3) -> Figure:
    """Power against n, one panel per endpoint: three scenarios, the closed form, the targets.

    Parameters
    ----------
    curves : DataFrame
        :func:`m1lib.power.power_curves`.
    table : DataFrame
        :func:`m1lib.power.sample_size_table` (labels and scenario effects).
    endpoints : sequence of str, optional
        Endpoints to draw, one panel each (default: every endpoint of ``table``).
    targets : sequence of float
        Horizontal lines at these powers.
    columns : int
        Panels per row.

    Notes
    -----
    The central curve carries a band of +-1.96 Monte-Carlo SE; each panel's title
    gives the simulated model's effect in each scenario (``model_effect_*``). One figure for all endpoints, so that the report saves
    (and a reader compares) them at once.
    """
    eps = list(table["endpoint"]) if endpoints is None else list(endpoints)
    rows = table.set_index("endpoint")
    ncol = min(columns, len(eps))
    nrow = -(-len(eps) // ncol)
    with style():
        fig = Figure(figsize=(2.5 * ncol, 2.3 * nrow), layout="constrained")
        axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
        for ax, ep in zip(axes, eps):
            _panel(ax, curves[curves["endpoint"] == ep], rows.loc[ep], targets)
        for ax in axes[len(eps):]:
            ax.set_visible(False)
        n_sim = int(curves["n_sim"].iloc[0])
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=5, fontsize=6.5, frameon=False)
        fig.suptitle(f"Simulated power ({n_sim} studies per point, resampled from this dataset); "
                     "O/C/P: optimistic, central, pessimistic effect", fontsize=7)
        return fig
