"""ROC: AUC with DeLong's variance and DeLong's paired test; multiplicity (Benjamini-Hochberg)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as _st
from scipy.special import ndtri
from statsmodels.stats.multitest import multipletests

from m1lib.stats.descriptive import _check_level, _clean, _pairs, _tie_term, describe  # noqa: F401


# ------------------------------------------------------------------------ ROC / AUC
def _placements(cases: np.ndarray, controls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong placement values via midranks (Sun & Xu 2014)."""
    m, n = cases.size, controls.size
    tz = _st.rankdata(np.concatenate([cases, controls]))
    v10 = (tz[:m] - _st.rankdata(cases)) / n          # per case: share of controls below
    v01 = 1.0 - (tz[m:] - _st.rankdata(controls)) / m  # per control: share of cases above
    return v10, v01


def _oriented(values, direction: str) -> np.ndarray:
    if direction not in ("higher", "lower"):
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}")
    a = _clean(values, "values")
    return a if direction == "higher" else -a


def roc_auc_delong(cases, controls, *, direction: str = "higher",
                   conf_level: float = 0.95) -> pd.DataFrame:
    """ROC AUC of a score with DeLong's standard error and Wald interval.

    Parameters
    ----------
    cases, controls : array_like
        Scores of the subjects with and without the condition (NaN dropped).
    direction : {'higher', 'lower'}
        Whether cases are expected to score higher (pROC ``direction='<'``) or lower
        (``'>'``) than controls; fixed a priori, not chosen from the data.
    conf_level : float
        Confidence level.

    Returns
    -------
    DataFrame
        One row: ``n_cases, n_controls, direction, auc, se, ci_low, ci_high,
        ci_method, conf_level``.

    Notes
    -----
    :math:`\\mathrm{AUC} = \\frac{1}{mn}\\sum_{i,j}\\psi(X_i, Y_j)`, :math:`\\psi = 1`
    if the case scores beyond the control, 1/2 if tied. DeLong's variance
    :math:`S_{10}/m + S_{01}/n` from the sample variances of the placement values
    :math:`V_{10}(X_i) = \\frac1n\\sum_j\\psi(X_i,Y_j)`,
    :math:`V_{01}(Y_j) = \\frac1m\\sum_i\\psi(X_i,Y_j)`, computed with midranks (Sun &
    Xu 2014). Interval :math:`\\mathrm{AUC} \\pm z\\,SE` truncated to [0, 1], as
    pROC's ``ci.auc(method='delong')``. Hand-written: neither SciPy nor statsmodels
    implements DeLong's method. A binary score (a reader's call) gives
    AUC = (sensitivity + specificity) / 2.

    References
    ----------
    DeLong ER, DeLong DM, Clarke-Pearson DL (1988) Biometrics 44:837-45. Sun X, Xu W
    (2014) IEEE Signal Process Lett 21:1389-93. Robin X et al. (2011) BMC
    Bioinformatics 12:77 (pROC).

    Examples
    --------
    Reader 1's calls as a binary score (sensitivity 12/18, specificity 10/13):

    >>> r = roc_auc_delong([1] * 12 + [0] * 6, [1] * 3 + [0] * 10).iloc[0]
    >>> round(float(r.auc), 4), round(float(r.se), 4)
    (0.7179, 0.0835)
    """
    # Hand-written: neither SciPy nor statsmodels implements DeLong's variance.
    conf_level = _check_level(conf_level)
    xs, ys = _oriented(cases, direction), _oriented(controls, direction)
    m, n = xs.size, ys.size
    if m < 2 or n < 2:
        raise ValueError(f"ROC analysis needs at least 2 cases and 2 controls, got {m} and {n}")
    v10, v01 = _placements(xs, ys)
    auc = float(v10.mean())
    se = float(np.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n))
    z = float(ndtri(1 - (1 - conf_level) / 2))
    return pd.DataFrame([dict(
        n_cases=int(m), n_controls=int(n), direction=direction, auc=auc, se=se,
        ci_low=max(0.0, auc - z * se), ci_high=min(1.0, auc + z * se),
        ci_method="DeLong", conf_level=conf_level)])


def delong_paired_test(is_case, score1, score2, *, direction1: str = "higher",
                       direction2: str = "higher") -> pd.DataFrame:
    """DeLong's test of two correlated AUCs measured on the same subjects.

    Parameters
    ----------
    is_case : array_like of bool
        Condition per subject.
    score1, score2 : array_like
        Two scores of the same subjects; subjects with a NaN in either are dropped.
    direction1, direction2 : {'higher', 'lower'}
        Orientation of each score (see :func:`roc_auc_delong`).

    Returns
    -------
    DataFrame
        One row: ``n_cases, n_controls, auc1, auc2, auc_difference, se, z,
        p_value, method``.

    Notes
    -----
    :math:`z = (\\hat A_1 - \\hat A_2)/\\sqrt{L S L^T}`, :math:`L = (1, -1)`,
    :math:`S = S_{10}/m + S_{01}/n` with :math:`S_{10}, S_{01}` the 2x2 sample
    covariance matrices of the two scores' placement values; two-sided normal P.
    As pROC's ``roc.test(method='delong', paired=TRUE)``. Hand-written (not in SciPy
    or statsmodels). z = 0 when both AUCs and the SE are 0 (pROC's convention).

    References
    ----------
    DeLong ER, DeLong DM, Clarke-Pearson DL (1988) Biometrics 44:837-45.

    Examples
    --------
    >>> case = [1, 1, 1, 1, 0, 0, 0, 0]
    >>> r = delong_paired_test(case, [5, 6, 7, 3, 1, 2, 4, 0], [1, 1, 0, 0, 0, 0, 1, 0]).iloc[0]
    >>> round(float(r.auc1), 4), round(float(r.auc2), 4)
    (0.9375, 0.625)
    """
    # Hand-written: DeLong's paired test is in neither SciPy nor statsmodels.
    c = np.asarray(is_case).astype(bool).ravel()
    s1 = np.asarray(score1, dtype=float).ravel()
    s2 = np.asarray(score2, dtype=float).ravel()
    if not (c.shape == s1.shape == s2.shape):
        raise ValueError("case labels and scores must have the same length")
    ok = np.isfinite(s1) & np.isfinite(s2)
    c, s1, s2 = c[ok], _oriented(s1[ok], direction1), _oriented(s2[ok], direction2)
    m, n = int(c.sum()), int((~c).sum())
    if m < 2 or n < 2:
        raise ValueError(f"DeLong test needs at least 2 cases and 2 controls, got {m} and {n}")
    p1, p2 = _placements(s1[c], s1[~c]), _placements(s2[c], s2[~c])
    a1, a2 = float(p1[0].mean()), float(p2[0].mean())
    s10 = np.cov(np.vstack([p1[0], p2[0]]), ddof=1)
    s01 = np.cov(np.vstack([p1[1], p2[1]]), ddof=1)
    S = s10 / m + s01 / n
    L = np.array([1.0, -1.0])
    se = float(np.sqrt(max(L @ S @ L, 0.0)))
    d = a1 - a2
    z = 0.0 if (d == 0 and se == 0) else (d / se if se > 0 else np.sign(d) * np.inf)
    return pd.DataFrame([dict(
        n_cases=m, n_controls=n, auc1=a1, auc2=a2, auc_difference=d, se=se, z=float(z),
        p_value=float(2 * _st.norm.sf(abs(z))), method="DeLong paired")])


# ------------------------------------------------------------------------ multiplicity
def bh_qvalues(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted P values (q-values); NaN stay NaN.

    Parameters
    ----------
    p_values : array_like
        P values of one family of tests.

    Returns
    -------
    ndarray
        :math:`q_{(i)} = \\min_{j \\ge i} \\min(1, m\\,p_{(j)}/j)` over the ``m``
        finite P values, from :func:`statsmodels.stats.multitest.multipletests`
        (``method='fdr_bh'``); R's ``p.adjust(method='BH')``.

    References
    ----------
    Benjamini Y, Hochberg Y (1995) JRSS B 57:289-300.

    Examples
    --------
    >>> bh_qvalues([0.01, 0.04, np.nan, 0.03]).round(3).tolist()
    [0.03, 0.04, nan, 0.04]
    """
    p = np.asarray(p_values, dtype=float).ravel()
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return q

