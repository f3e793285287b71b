"""Findings: what the results registry says, decided once, before any sentence is written.

:func:`findings` reads the registry that :mod:`m1lib.analyses` filled and returns one
row per comparison, correlation, agreement and ROC curve with its direction (which
group is higher, the sign of rho), whether it passes alpha (and, for the pooled
per-limb correlations, whether the cluster-aware P does too), its effect size and
interval, and whether it could be computed at all (and if not, why, from the counts
the registry holds). :mod:`m1lib.narrative` and the notebooks write their sentences
from this table only, so no sentence can state a direction or a significance the
numbers do not hold.
"""
from __future__ import annotations

import math
import re
from typing import Mapping

import pandas as pd

from m1lib.analyses import CLINICAL_VARIABLES, MEASURES

__all__ = ["FINDING_COLUMNS", "findings", "alpha_of", "label"]

#: Columns of :func:`findings`.
FINDING_COLUMNS: tuple[str, ...] = (
    "key", "family", "subject", "against", "label_a", "label_b", "n", "n_a", "n_b",
    "effect", "estimate", "ci_low", "ci_high", "median_a", "median_b", "p_value", "alpha",
    "significant", "direction", "cluster_p_value", "cluster_significant", "status", "reason",
)
COMPUTED = "computed"
NOT_COMPUTABLE = "not computable"


def _num(reg: Mapping, key: str) -> float:
    v = reg.get(key)
    return math.nan if v is None else float(v)


def _finite(x: float) -> bool:
    return x is not None and math.isfinite(x)


def alpha_of(registry: Mapping, default: float = 0.05) -> float:
    """The run's significance level (``settings.alpha``), else ``default``."""
    a = _num(registry, "settings.alpha")
    return a if _finite(a) else default


def label(part: str, labels: Mapping[str, str] | None = None) -> str:
    """The data's spelling of a key part (``als`` -> ``ALS``) when ``labels`` knows it."""
    return (labels or {}).get(part, part)


def _row(**kw) -> dict:
    out = {c: math.nan for c in FINDING_COLUMNS}
    out.update(status=COMPUTED, reason="", direction="", label_a="", label_b="", against="",
               significant=pd.NA, cluster_significant=pd.NA)
    out.update(kw)
    return out


def _prefixes(reg: Mapping, pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return sorted({m.group(1) for k in reg if (m := rx.match(k))})


def _by_measure(names) -> list[str]:
    """Measured quantities in the package's order (thickness, intensity, R2*), others after."""
    return sorted(names, key=lambda m: (MEASURES.index(m) if m in MEASURES else len(MEASURES), m))


def _sig(p: float, alpha: float):
    return pd.NA if not _finite(p) else bool(p < alpha)


def _two_group(reg, prefix, family, subject, against, a, b, alpha, labels) -> dict:
    g = lambda s: _num(reg, f"{prefix}.{s}")  # noqa: E731
    la, lb = label(a, labels), label(b, labels)
    n_a, n_b = g(f"n_{a}"), g(f"n_{b}")
    p = g("p_value")
    shift = g("hl_shift")
    med_a, med_b = g(f"median_{a}"), g(f"median_{b}")
    row = _row(key=prefix, family=family, subject=subject, against=against, label_a=la, label_b=lb,
               n_a=n_a, n_b=n_b, n=n_a + n_b, effect="hl_shift", estimate=shift,
               ci_low=g("hl_ci_low"), ci_high=g("hl_ci_high"), median_a=med_a, median_b=med_b,
               p_value=p, alpha=alpha, significant=_sig(p, alpha))
    diff = shift if _finite(shift) and shift != 0 else (med_a - med_b if _finite(med_a) and _finite(med_b) else math.nan)
    row["direction"] = "" if not _finite(diff) else ("higher" if diff > 0 else "lower" if diff < 0 else "equal")
    if not _finite(p):
        short = [f"{lab} (n = {int(n)})" for lab, n in ((la, n_a), (lb, n_b)) if _finite(n) and n < 2]
        row.update(status=NOT_COMPUTABLE, significant=pd.NA, direction="",
                   reason=(f"fewer than 2 values in {' and '.join(short)}" if short
                           else "all values are equal"))
    return row


def _corr(reg, prefix, subject, against, alpha) -> dict:
    g = lambda s: _num(reg, f"{prefix}.{s}")  # noqa: E731
    rho, p, n = g("rho"), g("p_value"), g("n")
    limb = against == "umn_limb"
    row = _row(key=prefix, family="limb_correlation" if limb else "correlation", subject=subject,
               against=against, n=n, effect="rho", estimate=rho,
               ci_low=g("cluster_ci_low") if limb else g("ci_low"),
               ci_high=g("cluster_ci_high") if limb else g("ci_high"),
               p_value=p, alpha=alpha, significant=_sig(p, alpha))
    if limb:
        cp = g("cluster_p_value")
        row.update(cluster_p_value=cp, cluster_significant=_sig(cp, alpha), n_a=g("n_patients"))
    row["direction"] = "" if not _finite(rho) else ("positive" if rho > 0 else "negative" if rho < 0 else "none")
    if not _finite(rho):
        if limb and _finite(row["n_a"]) and row["n_a"] < 3:
            why = f"fewer than 3 patients with measured limbs (n = {int(row['n_a'])})"
        elif _finite(n) and n < 3:
            why = f"fewer than 3 complete pairs (n = {int(n)})"
        else:
            why = "a variable is constant"
        row.update(status=NOT_COMPUTABLE, reason=why, significant=pd.NA, cluster_significant=pd.NA)
    return row


def _agreement(reg, alpha) -> list[dict]:
    rows = []
    n_readers = _num(reg, "agreement.n_readers")
    for pair in _prefixes(reg, r"^agreement\.(.+_vs_.+)\.kappa$"):
        g = lambda s: _num(reg, f"agreement.{pair}.{s}")  # noqa: E731
        a, b = pair.split("_vs_", 1)
        k = g("kappa")
        rows.append(_row(key=f"agreement.{pair}", family="agreement", subject="kappa", label_a=a, label_b=b,
                         n=g("kappa_n"), effect="cohen_kappa", estimate=k, ci_low=g("kappa_ci_low"),
                         ci_high=g("kappa_ci_high"), alpha=alpha,
                         status=COMPUTED if _finite(k) else NOT_COMPUTABLE,
                         reason="" if _finite(k) else "both readers gave a single, common call"))
    if _finite(n_readers) and n_readers < 2:
        rows.append(_row(key="agreement", family="agreement", subject="kappa", effect="cohen_kappa",
                         n=math.nan, alpha=alpha, status=NOT_COMPUTABLE,
                         reason="only one reader: agreement needs two or more"))
    if "agreement.fleiss.kappa" in reg:
        k = _num(reg, "agreement.fleiss.kappa")
        rows.append(_row(key="agreement.fleiss", family="agreement", subject="kappa", label_a="all readers",
                         n=_num(reg, "agreement.fleiss.n"), n_a=_num(reg, "agreement.fleiss.n_readers"),
                         effect="fleiss_kappa", estimate=k, alpha=alpha))
    elif _finite(n_readers) and n_readers >= 3:
        rows.append(_row(key="agreement.fleiss", family="agreement", subject="kappa", label_a="all readers",
                         effect="fleiss_kappa", alpha=alpha, status=NOT_COMPUTABLE,
                         reason="Fleiss' kappa is undefined for these calls"))
    return rows


def _roc(reg, prefix, pair, predictor, alpha, labels) -> dict:
    g = lambda s: _num(reg, f"{prefix}.{s}")  # noqa: E731
    a, b = pair.split("_vs_", 1)
    auc, lo, hi = g("auc"), g("auc_ci_low"), g("auc_ci_high")
    row = _row(key=prefix, family="roc", subject=predictor, label_a=label(a, labels),
               label_b=label(b, labels), n_a=g(f"n_{a}"), n_b=g(f"n_{b}"), effect="auc",
               estimate=auc, ci_low=lo, ci_high=hi, alpha=alpha)
    row["n"] = row["n_a"] + row["n_b"]
    if not _finite(auc):
        row.update(status=NOT_COMPUTABLE, reason="fewer than 2 participants with a value in a group")
    else:
        # "significant": the CI at level 1 - alpha excludes chance (0.5)
        row["significant"] = bool(lo > 0.5 or hi < 0.5)
        row["direction"] = "above chance" if lo > 0.5 else "below chance" if hi < 0.5 else "chance"
    return row


def findings(registry: Mapping[str, float], *, alpha: float | None = None,
             labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The findings of a results registry, one row per comparison.

    Parameters
    ----------
    registry : mapping of str to float
        As :func:`m1lib.analyses.run_all` (or the report's ``results.json``) holds it.
    alpha : float, optional
        Significance level (default: the registry's ``settings.alpha``, else 0.05).
    labels : mapping of str to str, optional
        Key part -> the data's spelling of a group or reader label (``{"als": "ALS"}``).

    Returns
    -------
    DataFrame
        :data:`FINDING_COLUMNS`. ``family``: ``group`` (patients vs a comparison
        group), ``dpr_subgroups``, ``correct_vs_missed``, ``correlation``,
        ``limb_correlation``, ``agreement``, ``roc``. ``direction``: for two groups,
        whether ``label_a`` is ``higher``/``lower`` than ``label_b`` (sign of the
        Hodges-Lehmann shift, else of the median difference); for correlations the
        sign of rho (``positive``/``negative``); for ROC whether the CI lies
        ``above chance``/``below chance`` or includes it. ``significant``: P < alpha
        (ROC: the CI excludes 0.5; agreement: NA). ``cluster_significant``: the
        cluster-permutation P < alpha (per-limb correlations only). ``status``:
        ``computed`` or ``not computable`` with ``reason``.

    Examples
    --------
    >>> reg = {"corr.thickness_mm.dpr.rho": 0.52, "corr.thickness_mm.dpr.p_value": 0.03,
    ...        "corr.thickness_mm.dpr.n": 18.0}
    >>> f = findings(reg).iloc[0]
    >>> f.direction, bool(f.significant), f.status
    ('positive', True, 'computed')
    """
    alpha = alpha_of(registry) if alpha is None else float(alpha)
    reg = registry
    rows: list[dict] = []
    for pair in _prefixes(reg, r"^group\.([^.]+_vs_[^.]+)\.[^.]+\.p_value$"):
        a, b = pair.split("_vs_", 1)
        for measure in _by_measure(_prefixes(reg, rf"^group\.{re.escape(pair)}\.([^.]+)\.p_value$")):
            rows.append(_two_group(reg, f"group.{pair}.{measure}", "group", measure, b, a, b, alpha, labels))
    for measure in _by_measure(_prefixes(reg, r"^dpr_subgroups\.([^.]+)\.p_value$")):
        rows.append(_two_group(reg, f"dpr_subgroups.{measure}", "dpr_subgroups", measure, "dpr",
                               "faster", "slower", alpha, labels))
    for reader in _prefixes(reg, r"^correct_vs_missed\.([^.]+)\.[^.]+\.p_value$"):
        found = _prefixes(reg, rf"^correct_vs_missed\.{re.escape(reader)}\.([^.]+)\.p_value$")
        for var in sorted(found, key=lambda v: (v != "umn_total", v != "dpr", v)):   # the paper's order
            r = _two_group(reg, f"correct_vs_missed.{reader}.{var}", "correct_vs_missed", var,
                           label(reader, labels), "correct", "missed", alpha, labels)
            rows.append(r)
    for measure in _by_measure(_prefixes(reg, r"^corr\.([^.]+)\.[^.]+\.rho$")):
        variables = _prefixes(reg, rf"^corr\.{re.escape(measure)}\.([^.]+)\.rho$")
        # the paper's order: per-limb UMN first, then the clinical variables as recorded
        order = ("umn_limb",) + CLINICAL_VARIABLES
        for var in sorted(variables, key=lambda v: (order.index(v) if v in order else len(order), v)):
            rows.append(_corr(reg, f"corr.{measure}.{var}", measure, var, alpha))
    rows += _agreement(reg, alpha)
    for pair in _prefixes(reg, r"^roc\.([^.]+_vs_[^.]+)\.[^.]+\.auc$"):
        preds = _prefixes(reg, rf"^roc\.{re.escape(pair)}\.([^.]+)\.auc$")
        for pred in _by_measure([q for q in preds if q in MEASURES]) + [q for q in preds if q not in MEASURES]:
            rows.append(_roc(reg, f"roc.{pair}.{pred}", pair, pred, alpha, labels))
    out = pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
    for col in ("significant", "cluster_significant"):
        out[col] = out[col].astype("boolean")
    return out
