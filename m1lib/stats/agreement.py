"""Diagnostic accuracy and agreement: proportions with CIs, the 2x2 table, Cohen's and Fleiss' kappa."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from statsmodels.stats.inter_rater import cohens_kappa, fleiss_kappa as _sm_fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

from m1lib.stats.descriptive import _check_level, _clean, _pairs, _tie_term, describe  # noqa: F401

#: Names accepted for the proportion interval, mapped to statsmodels' names.
CI_METHODS: dict[str, str] = {"wilson": "wilson", "clopper-pearson": "beta"}


# ---------------------------------------------------------------- proportions / kappa
def proportion_ci(count: int, nobs: int, *, method: str = "wilson",
                  conf_level: float = 0.95) -> tuple[float, float]:
    """Confidence limits of a binomial proportion.

    Parameters
    ----------
    count, nobs : int
        Successes and trials.
    method : {'wilson', 'clopper-pearson'}
        Wilson score interval (no continuity correction; R's
        ``prop.test(correct=FALSE)``) or the exact Clopper-Pearson interval (R's
        ``binom.test``).
    conf_level : float
        Confidence level.

    Returns
    -------
    (float, float)
        Lower and upper limit; ``(nan, nan)`` when ``nobs == 0``.

    Notes
    -----
    Wilson: :math:`(\\hat p + z^2/2n \\pm z\\sqrt{\\hat p(1-\\hat p)/n + z^2/4n^2})
    / (1 + z^2/n)`. Clopper-Pearson: beta quantiles
    :math:`B(\\alpha/2; k, n-k+1)` and :math:`B(1-\\alpha/2; k+1, n-k)`.
    Both from :func:`statsmodels.stats.proportion.proportion_confint`
    (``method='wilson'`` or ``'beta'``).

    References
    ----------
    Wilson EB (1927) JASA 22:209-12. Clopper CJ, Pearson ES (1934) Biometrika 26:404-13.

    Examples
    --------
    >>> [round(v, 4) for v in proportion_ci(12, 18)]
    [0.4375, 0.8372]
    >>> [round(v, 4) for v in proportion_ci(12, 18, method="clopper-pearson")]
    [0.4099, 0.8666]
    """
    if method not in CI_METHODS:
        raise ValueError(f"unknown CI method {method!r} (expected one of {sorted(CI_METHODS)})")
    conf_level = _check_level(conf_level)
    if nobs <= 0:
        return (np.nan, np.nan)
    lo, hi = proportion_confint(int(count), int(nobs), alpha=1 - conf_level,
                                method=CI_METHODS[method])
    return (float(lo), float(hi))


def diagnostic_accuracy_from_counts(tp: int, fp: int, tn: int, fn: int, *,
                                    ci_method: str = "wilson",
                                    conf_level: float = 0.95) -> pd.DataFrame:
    """Sensitivity, specificity, PPV, NPV and accuracy from a 2x2 table.

    Parameters
    ----------
    tp, fp, tn, fn : int
        True/false positives and negatives.
    ci_method : {'wilson', 'clopper-pearson'}
        Interval of each proportion (:func:`proportion_ci`).
    conf_level : float
        Confidence level.

    Returns
    -------
    DataFrame
        One row per statistic (``tp, fp, tn, fn, sensitivity, specificity, ppv,
        npv, accuracy``) with ``estimate`` (a count, or a fraction), ``numerator``,
        ``denominator`` (for counts: the total), ``ci_low``, ``ci_high``,
        ``ci_method`` and ``conf_level`` (CI columns are NaN / ``'none'`` for counts).

    Notes
    -----
    sensitivity = TP/(TP+FN), specificity = TN/(TN+FP), PPV = TP/(TP+FP),
    NPV = TN/(TN+FN), accuracy = (TP+TN)/N. A proportion with a zero denominator is
    NaN.

    Examples
    --------
    The paper's reader 1 (12 of 18 patients and 3 of 13 controls called ALS):

    >>> t = diagnostic_accuracy_from_counts(12, 3, 10, 6)
    >>> t.set_index("statistic")["estimate"].round(3).tolist()
    [12.0, 3.0, 10.0, 6.0, 0.667, 0.769, 0.8, 0.625, 0.71]
    """
    counts = dict(tp=int(tp), fp=int(fp), tn=int(tn), fn=int(fn))
    if any(v < 0 for v in counts.values()):
        raise ValueError(f"negative count in 2x2 table: {counts}")
    total = sum(counts.values())
    rows = [dict(statistic=k, estimate=float(v), numerator=v, denominator=total,
                 ci_low=np.nan, ci_high=np.nan, ci_method="none")
            for k, v in counts.items()]
    fractions = {
        "sensitivity": (tp, tp + fn),
        "specificity": (tn, tn + fp),
        "ppv": (tp, tp + fp),
        "npv": (tn, tn + fn),
        "accuracy": (tp + tn, total),
    }
    for name, (num, den) in fractions.items():
        lo, hi = proportion_ci(num, den, method=ci_method, conf_level=conf_level)
        rows.append(dict(statistic=name, estimate=num / den if den else np.nan,
                         numerator=int(num), denominator=int(den), ci_low=lo,
                         ci_high=hi, ci_method=ci_method))
    out = pd.DataFrame(rows)
    out["conf_level"] = float(conf_level)
    return out


def diagnostic_accuracy(truth, predicted, *, ci_method: str = "wilson",
                        conf_level: float = 0.95) -> pd.DataFrame:
    """Diagnostic accuracy of binary calls against a binary truth.

    Parameters
    ----------
    truth, predicted : array_like of bool
        Condition present, and test positive, per subject (same order).
    ci_method, conf_level
        See :func:`diagnostic_accuracy_from_counts`.

    Returns
    -------
    DataFrame
        As :func:`diagnostic_accuracy_from_counts`.

    Examples
    --------
    >>> t = diagnostic_accuracy([1, 1, 0, 0], [1, 0, 0, 0])
    >>> t.set_index("statistic").loc[["sensitivity", "specificity"], "estimate"].tolist()
    [0.5, 1.0]
    """
    t = np.asarray(truth).astype(bool).ravel()
    p = np.asarray(predicted).astype(bool).ravel()
    if t.shape != p.shape:
        raise ValueError(f"truth and calls differ in length: {t.size} and {p.size}")
    return diagnostic_accuracy_from_counts(
        int(np.sum(t & p)), int(np.sum(~t & p)), int(np.sum(~t & ~p)),
        int(np.sum(t & ~p)), ci_method=ci_method, conf_level=conf_level)


def cohen_kappa_table(table, *, conf_level: float = 0.95) -> pd.DataFrame:
    """Cohen's kappa of a square agreement table, with its large-sample SE and CI.

    Parameters
    ----------
    table : array_like, (k, k)
        Counts; rows one rater's categories, columns the other's (same order).
    conf_level : float
        Confidence level of the Wald interval.

    Returns
    -------
    DataFrame
        One row: ``n, n_agree, agreement, expected_agreement, kappa, se,
        se_method, ci_low, ci_high, ci_method, conf_level``.

    Notes
    -----
    :math:`\\kappa = (p_o - p_e)/(1 - p_e)`, :math:`p_o = \\sum_i p_{ii}`,
    :math:`p_e = \\sum_i p_{i\\cdot} p_{\\cdot i}`. The SE is the large-sample
    (non-null) one of Fleiss, Cohen & Everitt (1969):

    .. math::
        \\mathrm{Var}(\\hat\\kappa) = \\frac{A + B - C}{n (1-p_e)^2},\\;
        A = \\sum_i p_{ii}[1-(p_{i\\cdot}+p_{\\cdot i})(1-\\kappa)]^2,\\;
        B = (1-\\kappa)^2 \\sum_{i\\ne j} p_{ij}(p_{\\cdot i}+p_{j\\cdot})^2,\\;
        C = [\\kappa - p_e(1-\\kappa)]^2

    as computed by :func:`statsmodels.stats.inter_rater.cohens_kappa`
    (``std_kappa``). CI: :math:`\\hat\\kappa \\pm z_{1-\\alpha/2}\\,SE`, not truncated
    (as R's ``psych::cohen.kappa``).

    References
    ----------
    Cohen J (1960) Educ Psychol Meas 20:37-46. Fleiss JL, Cohen J, Everitt BS (1969)
    Psychol Bull 72:323-7.

    Examples
    --------
    The paper's two readers (kappa 0.61): 9 both ALS, 6 reader 1 only, 16 both normal.

    >>> r = cohen_kappa_table([[9, 6], [0, 16]]).iloc[0]
    >>> round(float(r.kappa), 4), round(float(r.se), 4), int(r.n_agree)
    (0.6076, 0.1323, 25)
    """
    conf_level = _check_level(conf_level)
    tab = np.asarray(table, dtype=float)
    if tab.ndim != 2 or tab.shape[0] != tab.shape[1] or tab.shape[0] < 2:
        raise ValueError(f"agreement table must be square with >= 2 categories, got {tab.shape}")
    n = tab.sum()
    if n <= 0:
        raise ValueError("agreement table is empty")
    p = tab / n
    po = float(np.trace(p))
    pe = float(np.sum(p.sum(axis=1) * p.sum(axis=0)))
    if np.isclose(pe, 1.0):  # both raters used a single, common category
        kappa = se = np.nan
    else:
        res = cohens_kappa(tab)
        kappa, se = float(res.kappa), float(res.std_kappa)
    z = float(ndtri(1 - (1 - conf_level) / 2))
    return pd.DataFrame([dict(
        n=int(round(n)), n_agree=int(round(np.trace(tab))), agreement=po,
        expected_agreement=pe, kappa=kappa, se=se,
        se_method="Fleiss-Cohen-Everitt 1969 large-sample", ci_low=kappa - z * se,
        ci_high=kappa + z * se, ci_method="Wald (kappa +- z*SE)", conf_level=conf_level)])


def cohen_kappa(a, b, *, categories: Sequence | None = None,
                conf_level: float = 0.95) -> pd.DataFrame:
    """Cohen's kappa between two raters' labels of the same subjects.

    Parameters
    ----------
    a, b : sequence
        Labels given by each rater, in the same subject order.
    categories : sequence, optional
        All categories (default: the sorted union of both raters' labels).
    conf_level : float
        Confidence level.

    Returns
    -------
    DataFrame
        As :func:`cohen_kappa_table`.

    Examples
    --------
    >>> a = ["ALS"] * 15 + ["normal"] * 16
    >>> b = ["ALS"] * 9 + ["normal"] * 22
    >>> round(float(cohen_kappa(a, b)["kappa"].iloc[0]), 2)
    0.61
    """
    a = list(a)
    b = list(b)
    if len(a) != len(b):
        raise ValueError(f"raters labelled different numbers of subjects: {len(a)} and {len(b)}")
    cats = list(categories) if categories is not None else sorted(set(a) | set(b))
    index = {c: i for i, c in enumerate(cats)}
    unknown = sorted({str(v) for v in a + b if v not in index})
    if unknown:
        raise ValueError(f"labels not among the categories {cats}: {unknown}")
    tab = np.zeros((len(cats), len(cats)))
    for u, v in zip(a, b):
        tab[index[u], index[v]] += 1
    return cohen_kappa_table(tab, conf_level=conf_level)




def fleiss_kappa(ratings, *, categories: Sequence | None = None) -> pd.DataFrame:
    """Fleiss' kappa of three or more raters who each labelled every subject.

    Parameters
    ----------
    ratings : array_like, (n_subjects, n_raters)
        Label given by each rater (columns) to each subject (rows).
    categories : sequence, optional
        All categories (default: the sorted labels present).

    Returns
    -------
    DataFrame
        One row: ``n`` (subjects), ``n_raters``, ``agreement`` (mean pairwise
        agreement per subject, :math:`\\bar P`), ``expected_agreement``
        (:math:`\\bar P_e`), ``kappa``, ``method``.

    Notes
    -----
    :math:`\\kappa = (\\bar P - \\bar P_e)/(1 - \\bar P_e)` with
    :math:`\\bar P = \\frac{1}{N}\\sum_i \\frac{\\sum_j n_{ij}^2 - m}{m(m-1)}` and
    :math:`\\bar P_e = \\sum_j p_j^2`, from
    :func:`statsmodels.stats.inter_rater.fleiss_kappa` (``method='fleiss'``) on the
    subjects x categories count table (:func:`statsmodels.stats.inter_rater.aggregate_raters`).
    statsmodels gives no standard error, and none is reported here.

    References
    ----------
    Fleiss JL (1971) Psychol Bull 76:378-82.

    Examples
    --------
    >>> r = fleiss_kappa([["ALS", "ALS", "ALS"], ["ALS", "normal", "ALS"],
    ...                   ["normal", "normal", "normal"], ["normal", "normal", "ALS"]]).iloc[0]
    >>> int(r.n), int(r.n_raters), round(float(r.kappa), 4)
    (4, 3, 0.3333)
    """
    a = np.asarray(ratings, dtype=object)
    if a.ndim != 2 or a.shape[1] < 2 or a.shape[0] < 1:
        raise ValueError(f"ratings must be (subjects, raters) with >= 2 raters, got shape {a.shape}")
    cats = list(categories) if categories is not None else sorted({str(v) for v in a.ravel()})
    index = {c: i for i, c in enumerate(cats)}
    unknown = sorted({str(v) for v in a.ravel() if v not in index})
    if unknown:
        raise ValueError(f"labels not among the categories {cats}: {unknown}")
    counts = np.zeros((a.shape[0], len(cats)))
    for i, row in enumerate(a):
        for v in row:
            counts[i, index[v]] += 1
    m = a.shape[1]
    p_bar = float(np.mean((np.sum(counts**2, axis=1) - m) / (m * (m - 1))))
    p_e = float(np.sum((counts.sum(axis=0) / counts.sum()) ** 2))
    kappa = np.nan if np.isclose(p_e, 1.0) else float(_sm_fleiss_kappa(counts, method="fleiss"))
    return pd.DataFrame([dict(n=int(a.shape[0]), n_raters=int(m), agreement=p_bar,
                              expected_agreement=p_e, kappa=kappa,
                              method="Fleiss 1971 (statsmodels fleiss_kappa)")])
