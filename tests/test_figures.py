"""Figures draw what they are given and save identical bytes every time."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from m1lib import figures


def _subjects():
    rng = np.random.default_rng(0)
    n = 12
    return pd.DataFrame({"participant_id": [f"sub-{i}" for i in range(n)], "group": ["ALS"] * 6 + ["HS"] * 6,
                         "thickness_mm": rng.normal(1.7, 0.2, n), "intensity": rng.normal(0.75, 0.05, n),
                         "progression": ["faster", "slower"] * 3 + [""] * 6})


def test_saved_figures_are_byte_identical(tmp_path):
    digests = []
    for k in range(2):
        groups = pd.DataFrame({"variable": ["thickness_mm", "intensity"], "p_value": [0.0004, 0.98]})
        fig = figures.online_fig1_cd(_subjects(), groups)
        paths = figures.save_figure(fig, tmp_path / f"run{k}" / "fig", ("png", "pdf"))
        digests.append([hashlib.sha256(p.read_bytes()).hexdigest() for p in paths])
    assert digests[0] == digests[1]
    pdf = (tmp_path / "run0" / "fig.pdf").read_bytes()
    assert b"CreationDate" not in pdf


def test_panels_show_the_given_statistics():
    sub = pd.DataFrame({"variable": ["intensity", "thickness_mm"], "p_value": [0.024, 0.6]})
    fig = figures.online_fig2(_subjects(), sub)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["P = .024", "P = .600"]
    assert [t.get_text() for t in fig.axes[0].texts] == ["A"]


def test_fig2_reads_rho_and_p_from_the_tables():
    s = _subjects().assign(dpr=np.linspace(0.2, 1.5, 12), alsfrs_r=np.arange(36, 48))
    limb = pd.DataFrame({"umn_score": [0, 2, 4, 8], "thickness_mm": [2.0, 1.8, 1.6, 1.2],
                         "intensity": [0.8, 0.78, 0.75, 0.7]})
    stats = pd.DataFrame([(m, v, -0.5, 0.01, 18) for m in ("thickness_mm", "intensity")
                          for v in ("umn_limb", "dpr", "alsfrs_r")],
                         columns=["measure", "variable", "rho", "p_value", "n"])
    fig = figures.fig2_correlations(limb, s, stats)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert sum("ρ = \u22120.50\nP = .010\nn = 18" in t for t in texts) == 6
