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


def test_an_odd_cohort_runs_end_to_end_and_says_what_is_not_computable():
    """One reader labelled by initials, patients vs mimics with 3 patients: every analysis,
    sentence and figure runs; what cannot be computed says so."""
    from m1lib import analyses, narrative

    ids = ["sub-A1", "sub-A2", "sub-A3", "sub-M1", "sub-M2"]
    p = pd.DataFrame({"participant_id": ids, "group": ["ALS"] * 3 + ["mimic"] * 2, "excluded": False,
                      "alsfrs_r": [40, 35, 44, None, None], "disease_duration_months": [10, 20, 12, None, None],
                      "mrc": [120, 110, 125, None, None], "umn_bulbar": [0, 1, 0, None, None],
                      "umn_arm_left": [2, 5, 0, None, None], "umn_arm_right": [1, 6, 3, None, None],
                      "umn_leg_left": [0, 4, 2, None, None], "umn_leg_right": [3, 2, 1, None, None]})
    reads = pd.DataFrame({"participant_id": ids, "reader": "JD", "call": ["ALS", "ALS", "normal", "normal", "ALS"]})
    rng = np.random.default_rng(2)
    m = pd.DataFrame([(pid, h, a, rng.normal(1.8, 0.2), rng.normal(0.75, 0.03)) for pid in ids
                      for h in ("L", "R") for a in ("foot", "leg", "hand", "face")],
                     columns=["participant_id", "hemisphere", "area", "thickness_mm", "intensity"])
    res = analyses.run_all(p, reads, m, n_boot=200, seed=1, comparison=("mimic",))
    t = res.tables
    assert t["reader_agreement"].empty
    assert t["dpr_subgroups"]["method"].str.startswith("not computed").all()
    assert t["correct_vs_missed"]["method"].str.startswith("not computed").all()
    text = narrative.sentences(res.registry, narrative.data_labels(p, reads))
    assert "Agreement between readers: not computable (only one reader" in text["visual_reading"]
    assert "JD called ALS in 2 of 3 patients and 1 of 2 comparison subjects" in text["visual_reading"]
    assert "could not be compared between faster progressors and slower progressors" in text["dpr_subgroups"]
    assert "between ALS and mimic" in text["group"]
    subj = analyses.subject_table(p, m)
    figs = [figures.online_fig1_ab(analyses.diagnosis_table(p, reads), t["correct_vs_missed"]),
            figures.online_fig1_cd(subj, t["group_comparison"], "ALS", ("mimic",)),
            figures.online_fig2(subj, t["dpr_subgroups"]),
            figures.roc_figure(analyses.roc_curves(p, m, comparison=("mimic",)), t["roc"], t["visual_reading"]),
            figures.fig2_correlations(analyses.limb_pairs(p, m), subj[subj.group == "ALS"],
                                      pd.concat([t["correlations"], t["limb_correlations"]]))]
    for fig in figs:
        assert figures.png_bytes(fig, dpi=50).startswith(b"\x89PNG")


def test_motion_qc_figure_shows_the_ghost_ratio_that_sets_the_flag():
    qc = pd.DataFrame({"participant_id": ["sub-a", "sub-b", "sub-c"], "group": "HS",
                       "excluded": [False, True, False], "qc_ghost_ratio": [1.2, 2.8, 1.1],
                       "qc_motion": [False, True, False]})
    fig = figures.motion_qc_figure(qc)
    ax = fig.axes[0]
    assert sorted(b.get_height() for b in ax.patches) == [1.1, 1.2, 2.8]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["c", "a", "b"]
    (line,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert line.get_ydata()[0] == 1.6 and "Ghost ratio" in ax.get_ylabel()
