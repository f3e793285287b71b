"""Result tables laid out for reading: named columns, APA numbers, no index, no object reprs.

Each function takes a tidy table of :mod:`m1lib.analyses` and returns a table of
display strings (ρ and intervals to two decimals, P as ``< .001`` / ``.024``, medians
with their IQR, "not computable: why" where a row could not be computed).
:func:`html` renders one without its index for a notebook.
"""
from __future__ import annotations

import pandas as pd

from m1lib.formats import _signed, p_text, pct
from m1lib.results import round_half_up

__all__ = ["cohort_display", "reader_table", "agreement_table", "two_group_table",
           "correlation_table", "limb_correlation_table", "roc_display", "power_table", "html"]

_COHORT_LABELS = {
    "n": "n", "excluded": "Excluded", "sex": "Sex", "age": "Age (y)", "alsfrs_r": "ALSFRS-R (0–48)",
    "umn_total": "UMN score (0–33)", "mrc": "MRC (0–130)", "disease_duration_months": "Disease duration (mo)",
    "dpr": "DPR (points/mo)", "cmct_ms": "CMCT (ms)", "cortical_latency_ms": "Cortical latency (ms)",
    "cortical_silent_period_ms": "Cortical silent period (ms)", "frap": "FRAP", "aopp": "AOPP", "thiols": "Thiols",
}
_MEASURE_LABELS = {"thickness_mm": "Thickness (mm)", "intensity": "Intensity (normalized)",
                   "r2star_s": "R2* (s⁻¹)", "umn_total": "UMN score", "dpr": "DPR (points/mo)"}
_VARIABLE_LABELS = {"umn_limb": "UMN score (limb)", "dpr": "DPR", "alsfrs_r": "ALSFRS-R", "mrc": "MRC",
                    "disease_duration_months": "Disease duration", "cmct_ms": "CMCT",
                    "cortical_latency_ms": "Cortical latency", "cortical_silent_period_ms": "Cortical silent period",
                    "frap": "FRAP", "aopp": "AOPP", "thiols": "Thiols"}


def _p(p) -> str:
    """APA P for a table cell: ``< .001``, ``.024``, ``1`` (:func:`~m1lib.formats.p_text`
    without its ``P``)."""
    if p is None or p != p:
        return "—"
    return p_text(p).removeprefix("P = ").removeprefix("P ")


def _ci(lo, hi, digits=2) -> str:
    return "—" if lo != lo or hi != hi else f"{_signed(lo, digits)} to {_signed(hi, digits)}"


def _status(method) -> str:
    return method if isinstance(method, str) and method.startswith("not computed") else ""


def html(df: pd.DataFrame):
    """An ``IPython.display.HTML`` of ``df`` without its index (for a notebook cell)."""
    from IPython.display import HTML  # notebook display only; the module works without IPython

    return HTML(df.to_html(index=False, escape=True, na_rep="—", border=0))


def cohort_display(cohort: pd.DataFrame) -> pd.DataFrame:
    """The cohort table laid out as the paper's on-line Table 1 (mean ± SD; counts).

    Parameters
    ----------
    cohort : DataFrame
        :func:`m1lib.analyses.cohort_table`.

    Returns
    -------
    DataFrame
        One row per variable; one column per group and subset (``ALS enrolled``,
        ``HS enrolled``, ``ALS analysed`` ...), in the table's group order.
    """
    cells: dict[tuple[str, str], str] = {}
    order: list[str] = []
    cols: list[str] = []
    for subset in ("enrolled", "analysed"):
        for g in dict.fromkeys(cohort["group"]):
            cols.append(f"{g} {subset}")
    for r in cohort.itertuples(index=False):
        if r.variable == "exclusion_reason":
            continue
        lab = _COHORT_LABELS.get(r.variable, r.variable)
        if r.variable == "sex":
            lab = f"Sex, {'women' if r.level == 'F' else 'men'}"
        if r.variable in ("n", "excluded", "sex"):
            text = f"{int(r.count)}"
        else:
            digits = 2 if r.variable in ("dpr", "frap") else 0
            text = f"{round_half_up(r.mean, digits):.{digits}f} ± {round_half_up(r.sd, digits):.{digits}f}"
        cells[(lab, f"{r.group} {r.subset}")] = text
        if lab not in order:
            order.append(lab)
    return pd.DataFrame([[lab] + [cells.get((lab, c), "") for c in cols] for lab in order],
                        columns=["Variable"] + cols)


def reader_table(accuracy: pd.DataFrame, agreement: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each reader's results as the paper prints them: counts and percentages (halves up) with CIs.

    Parameters
    ----------
    accuracy : DataFrame
        :func:`m1lib.analyses.visual_reading`.
    agreement : DataFrame, optional
        :func:`m1lib.analyses.reader_agreement`; with exactly two readers its kappa is
        added as a column (more pairs: :func:`agreement_table`).

    Returns
    -------
    DataFrame
        One row per reader: positive patients, positive comparison subjects,
        sensitivity, specificity, PPV, NPV, accuracy (as ``67%``) each with its CI.
    """
    rows = []
    kappa = agreement["kappa"].iloc[0] if agreement is not None and len(agreement) == 1 else None
    for reader, g in accuracy.groupby("reader", sort=True):
        s = g.set_index("statistic")
        row = {"reader": reader,
               "positive patients": f"{int(s.loc['tp', 'numerator'])} of {int(s.loc['tp', 'numerator'] + s.loc['fn', 'numerator'])}",
               "positive comparison": f"{int(s.loc['fp', 'numerator'])} of {int(s.loc['fp', 'numerator'] + s.loc['tn', 'numerator'])}"}
        for stat, lab in (("sensitivity", "sensitivity"), ("specificity", "specificity"), ("ppv", "PPV"),
                          ("npv", "NPV"), ("accuracy", "accuracy")):
            row[lab] = pct(s.loc[stat, "estimate"])
            row[f"{lab} 95% CI"] = f"{pct(s.loc[stat, 'ci_low'])}–{pct(s.loc[stat, 'ci_high'])}"
        if kappa is not None:
            row["Cohen kappa"] = f"{kappa:.2f}"
        rows.append(row)
    return pd.DataFrame(rows)


def agreement_table(agreement: pd.DataFrame, fleiss: pd.DataFrame | None = None) -> pd.DataFrame:
    """Cohen's kappa per pair of readers (SE, CI) and, with three or more, Fleiss' kappa."""
    rows = [{"readers": f"{r.reader_a} vs {r.reader_b}", "statistic": "Cohen κ", "n": int(r.n),
             "agreement": pct(r.agreement), "κ": _signed(r.kappa, 2), "SE": _signed(r.se, 3),
             "95% CI": _ci(r.ci_low, r.ci_high)} for r in agreement.itertuples(index=False)]
    if fleiss is not None and len(fleiss) and (fleiss["kappa"].notna().any() or fleiss["n_raters"].iloc[0] >= 3):
        f = fleiss.iloc[0]
        rows.append({"readers": f["readers"], "statistic": "Fleiss κ", "n": int(f["n"]),
                     "agreement": pct(f["agreement"]), "κ": _signed(f["kappa"], 2) if f["kappa"] == f["kappa"]
                     else f["method"], "SE": "—", "95% CI": "—"})
    if not rows:
        return pd.DataFrame({"readers": ["—"], "statistic": ["not computable: fewer than two readers"]})
    return pd.DataFrame(rows)


def two_group_table(table: pd.DataFrame, by: str | None = None, digits: int = 2) -> pd.DataFrame:
    """A Mann-Whitney table (:func:`m1lib.stats.mann_whitney` rows) for reading.

    Columns: optional ``by`` (e.g. reader), ``variable``, each group's ``n`` and
    ``median (IQR)``, the Hodges-Lehmann shift with its CI, U, P and the method.
    """
    rows = []
    for r in table.to_dict("records"):
        d = {"intensity": 3, "umn_total": 1}.get(r.get("variable"), digits)
        row = {by: r[by]} if by else {}
        row["variable"] = _MEASURE_LABELS.get(r["variable"], r["variable"])
        for side in ("x", "y"):
            g = r[f"group_{side}"]
            row[f"n {g}"] = int(r[f"n_{side}"]) if r[f"n_{side}"] == r[f"n_{side}"] else 0
            row[f"{g} median (IQR)"] = ("—" if r[f"median_{side}"] != r[f"median_{side}"] else
                                        f"{_signed(r[f'median_{side}'], d)} ({_signed(r[f'q1_{side}'], d)}–"
                                        f"{_signed(r[f'q3_{side}'], d)})")
        row["shift (HL)"] = _signed(r["hl_shift"], d)
        row[f"{round(100 * r['conf_level'])}% CI"] = _ci(r["ci_low"], r["ci_high"], d)
        row["U"] = "—" if r["U"] != r["U"] else f"{r['U']:g}"
        row["P"] = _p(r["p_value"])
        row["method"] = r["method"]
        rows.append(row)
    return pd.DataFrame(rows)


def correlation_table(table: pd.DataFrame) -> pd.DataFrame:
    """Subject-level Spearman correlations for reading: ρ, 95% CI (BCa), P, q, n."""
    rows = [{"measure": _MEASURE_LABELS.get(r.measure, r.measure),
             "variable": _VARIABLE_LABELS.get(r.variable, r.variable), "n": int(r.n),
             "ρ": _signed(r.rho, 2), f"{round(100 * r.conf_level)}% CI (BCa)": _ci(r.ci_low, r.ci_high),
             "P": _p(r.p_value), "q (BH)": _p(r.q_value), "note": _status(r.method)}
            for r in table.itertuples(index=False)]
    return pd.DataFrame(rows)


def limb_correlation_table(table: pd.DataFrame) -> pd.DataFrame:
    """Pooled per-limb correlations for reading, naive and cluster-aware side by side."""
    rows = [{"measure": _MEASURE_LABELS.get(r.measure, r.measure), "limbs": int(r.n),
             "patients": int(r.n_patients), "ρ (pooled)": _signed(r.rho, 2),
             "P (limbs independent)": _p(r.p_value),
             f"{round(100 * r.conf_level)}% CI (cluster bootstrap)": _ci(r.cluster_ci_low, r.cluster_ci_high),
             "P (cluster permutation)": _p(r.cluster_p_value), "note": _status(r.method)}
            for r in table.itertuples(index=False)]
    return pd.DataFrame(rows)


def roc_display(table: pd.DataFrame) -> pd.DataFrame:
    """ROC AUCs for reading: predictor, groups, n, AUC with its DeLong CI."""
    rows = [{"predictor": _MEASURE_LABELS.get(r.predictor, r.predictor),
             "groups": f"{r.group_case} vs {r.group_control}", "n": f"{int(r.n_case)} / {int(r.n_control)}",
             "AUC": "—" if r.auc != r.auc else f"{r.auc:.2f}",
             f"{round(100 * r.conf_level)}% CI (DeLong)": _ci(r.ci_low, r.ci_high),
             "note": _status(r.method)} for r in table.itertuples(index=False)]
    return pd.DataFrame(rows)


def _n_cell(n, row, *, pessimistic: bool = False) -> str:
    """A required sample size: ``12``; ``≤ 6`` at the grid's smallest size; ``> 120`` when
    not reached within it; ``none`` (pessimistic, when the interval includes no effect)."""
    if n is None or n != n:
        return "none" if pessimistic and bool(row.get("null_in_ci", False)) else f"> {int(row['n_max'])}"
    return f"≤ {int(n)}" if n <= row["n_min"] else f"{int(n)}"


def power_table(table: pd.DataFrame, targets) -> pd.DataFrame:
    """Notebook 08's sample-size table for reading: one row per endpoint, the effect
    with its interval, and per target power the patients needed at the observed effect,
    at the interval's ends (optimistic–pessimistic) and by the closed form.

    Parameters
    ----------
    table : DataFrame
        :func:`m1lib.power.sample_size_table` output.
    targets : sequence of float
        Target powers, e.g. ``[0.8, 0.9]``.
    """
    rows = []
    for _, r in table.iterrows():
        out = {"endpoint": r["label"], "effect": r["effect_name"],
               "estimate (CI)": f"{r['estimate']:.2f} ({r['ci_low']:.2f} to {r['ci_high']:.2f})"}
        for t in targets:
            k = f"{round(100 * t):d}"
            out[f"n, {k} % power"] = _n_cell(r[f"n_{k}"], r)
            out[f"n, {k} %: optimistic–pessimistic"] = (
                f"{_n_cell(r[f'n_{k}_optimistic'], r)} – {_n_cell(r[f'n_{k}_pessimistic'], r, pessimistic=True)}")
            closed = r[f"n_{k}_closed"]
            out[f"n, {k} %: closed form"] = "—" if closed != closed else f"{int(closed)}"
        rows.append(out)
    return pd.DataFrame(rows)

