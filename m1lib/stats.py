"""Generic statistical tests, as thin wrappers over SciPy and statsmodels.

Every function takes plain arrays and returns a small tidy :class:`pandas.DataFrame`
(one row per test, or one row per statistic) whose columns name the statistic, the
method actually used, ``n`` and the confidence interval. Nothing here reads files or
knows about the study; :mod:`m1lib.analyses` applies these to the study's tables.

What SciPy and statsmodels already compute is called, not re-derived:

- proportion limits: :func:`statsmodels.stats.proportion.proportion_confint`;
- Cohen's kappa and its Fleiss-Cohen-Everitt SE: :func:`statsmodels.stats.inter_rater.cohens_kappa`;
- Mann-Whitney U and its P: :func:`scipy.stats.mannwhitneyu` with an explicit ``method``;
- Spearman's rho and its P: :func:`scipy.stats.spearmanr`;
- Benjamini-Hochberg: :func:`statsmodels.stats.multitest.multipletests`.

Written by hand, because neither library has them (each place says so): the exact
null distribution of the rank-sum statistic (for R's exact Hodges-Lehmann interval),
the exact permutation distribution with tied midranks, R's asymptotic
Hodges-Lehmann interval, a NaN-tolerant vectorized BCa bootstrap (also for clusters),
the cluster permutation test, and DeLong's AUC variance and paired test.

Where the choice matters, the defaults are those of GNU R (``wilcox.test``,
``cor.test``, ``prop.test``, ``binom.test``, pROC), and ``tests/fixtures/stats``
holds R's values that the tests compare against.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st
from scipy.special import ndtr, ndtri

from m1lib.errors import DataError

__all__ = [
    "describe",
    "proportion_ci",
    "diagnostic_accuracy",
    "diagnostic_accuracy_from_counts",
    "cohen_kappa",
    "cohen_kappa_table",
    "mann_whitney",
    "rank_sum_permutation_pvalue",
    "hodges_lehmann",
    "spearman",
    "spearman_clustered",
    "bca_interval",
    "roc_auc_delong",
    "delong_paired_test",
    "bh_qvalues",
]

#: Names accepted for the proportion interval, mapped to statsmodels' names.
CI_METHODS: dict[str, str] = {"wilson": "wilson", "clopper-pearson": "beta"}

#: Column order of :func:`mann_whitney`'s record.
MWU_COLUMNS: tuple[str, ...] = (
    "group_x", "group_y", "n_x", "n_y",
    "median_x", "q1_x", "q3_x", "iqr_x", "mean_x", "sd_x",
    "median_y", "q1_y", "q3_y", "iqr_y", "mean_y", "sd_y",
    "U", "p_value", "method", "p_value_permutation", "permutation_method",
    "rank_biserial", "hl_shift", "ci_low", "ci_high", "ci_method", "conf_level",
)

# Beyond this total sample size the exact permutation P is not computed unless asked
# for explicitly (its cost grows as N**4).
PERMUTATION_MAX_N = 200


# --------------------------------------------------------------------------- helpers
def _clean(x, name: str) -> np.ndarray:
    """1-D float array without NaN (R's wilcox.test also drops non-finite values)."""
    a = np.asarray(x, dtype=float).ravel()
    return a[np.isfinite(a)]


def _pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Complete pairs of two equally long sequences (R's ``complete.obs``)."""
    a = np.asarray(x, dtype=float).ravel()
    b = np.asarray(y, dtype=float).ravel()
    if a.shape != b.shape:
        raise DataError(f"paired data of unequal length: {a.size} and {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    return a[ok], b[ok]


def _check_level(conf_level: float) -> float:
    conf_level = float(conf_level)
    if not 0.0 < conf_level < 1.0:
        raise DataError(f"confidence level must be between 0 and 1, got {conf_level}")
    return conf_level


def _tie_term(a: np.ndarray) -> float:
    """sum(t**3 - t) over groups of tied values."""
    _, counts = np.unique(a, return_counts=True)
    counts = counts.astype(float)
    return float(np.sum(counts**3 - counts))


def describe(x) -> dict[str, float]:
    """Median, quartiles, IQR, mean and SD of a sample (NaN dropped).

    Parameters
    ----------
    x : array_like
        Values; NaN are ignored.

    Returns
    -------
    dict
        ``n, median, q1, q3, iqr, mean, sd``.

    Notes
    -----
    Quartiles by linear interpolation (``numpy.quantile`` default, R's type 7, the
    default of R's ``quantile`` and ``summary``); SD with ``ddof=1``.

    Examples
    --------
    >>> d = describe([1, 2, 3, 4, np.nan])
    >>> d["n"], d["median"], d["q1"], d["q3"], round(d["sd"], 4)
    (4, 2.5, 1.75, 3.25, 1.291)
    """
    a = _clean(x, "x")
    n = int(a.size)
    if n == 0:
        return dict(n=0, median=np.nan, q1=np.nan, q3=np.nan, iqr=np.nan,
                    mean=np.nan, sd=np.nan)
    q1, med, q3 = np.quantile(a, [0.25, 0.5, 0.75])
    return dict(n=n, median=float(med), q1=float(q1), q3=float(q3),
                iqr=float(q3 - q1), mean=float(a.mean()),
                sd=float(a.std(ddof=1)) if n > 1 else np.nan)


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
    from statsmodels.stats.proportion import proportion_confint

    if method not in CI_METHODS:
        raise DataError(f"unknown CI method {method!r} (expected one of {sorted(CI_METHODS)})")
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
        raise DataError(f"negative count in 2x2 table: {counts}")
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
        raise DataError(f"truth and calls differ in length: {t.size} and {p.size}")
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
    from statsmodels.stats.inter_rater import cohens_kappa

    conf_level = _check_level(conf_level)
    tab = np.asarray(table, dtype=float)
    if tab.ndim != 2 or tab.shape[0] != tab.shape[1] or tab.shape[0] < 2:
        raise DataError(f"agreement table must be square with >= 2 categories, got {tab.shape}")
    n = tab.sum()
    if n <= 0:
        raise DataError("agreement table is empty")
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
        raise DataError(f"raters labelled different numbers of subjects: {len(a)} and {len(b)}")
    cats = list(categories) if categories is not None else sorted(set(a) | set(b))
    index = {c: i for i, c in enumerate(cats)}
    unknown = sorted({str(v) for v in a + b if v not in index})
    if unknown:
        raise DataError(f"labels not among the categories {cats}: {unknown}")
    tab = np.zeros((len(cats), len(cats)))
    for u, v in zip(a, b):
        tab[index[u], index[v]] += 1
    return cohen_kappa_table(tab, conf_level=conf_level)


# ------------------------------------------------------------------- Mann-Whitney U
@lru_cache(maxsize=256)
def _rank_sum_null_counts(m: int, n: int) -> tuple[int, ...]:
    """Number of arrangements giving U = 0..m*n (no ties), as exact integers.

    Hand-written: SciPy has no public quantile function of the Wilcoxon rank-sum
    distribution (R's ``qwilcox``), needed for R's exact Hodges-Lehmann interval.
    Generating function prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i) (Gaussian binomial).
    """
    size = m * n + 1
    c = np.zeros(size, dtype=object)
    c[0] = 1
    for i in range(1, m + 1):
        k = n + i
        if k < size:  # multiply by (1 - q^k)
            c[k:] = c[k:] - c[:-k].copy()
        for r in range(i):  # divide by (1 - q^i): running sums with stride i
            c[r::i] = np.cumsum(c[r::i])
    return tuple(int(v) for v in c)


def _qwilcox(p: float, m: int, n: int) -> int:
    """R's ``qwilcox(p, m, n)``: smallest q with P(U <= q) >= p."""
    counts = _rank_sum_null_counts(m, n)
    total = sum(counts)
    target = p - 10 * np.finfo(float).eps  # R's fuzz for p <= 0.5 (nmath/wilcox.c)
    cum = 0
    for q, c in enumerate(counts):
        cum += c
        if cum / total >= target:
            return q
    return m * n


def _pwilcox(q: int, m: int, n: int) -> float:
    """R's ``pwilcox(q, m, n)``: P(U <= q)."""
    if q < 0:
        return 0.0
    counts = _rank_sum_null_counts(m, n)
    return sum(counts[: q + 1]) / sum(counts)


def rank_sum_permutation_pvalue(x, y) -> float:
    """Exact two-sided permutation P of the rank-sum statistic, ties allowed.

    Parameters
    ----------
    x, y : array_like
        The two samples (NaN dropped).

    Returns
    -------
    float
        :math:`P(|S - E S| \\ge |s - E S|)` over all
        :math:`\\binom{N}{n_x}` equally likely splits of the pooled midranks, where
        :math:`S` is the sum of the midranks in ``x``.

    Notes
    -----
    Hand-written (SciPy's :func:`~scipy.stats.permutation_test` only samples when the
    number of splits is large). The distribution of the midrank sum is counted by
    dynamic programming over subsets (the shift algorithm of Streitberg & Roehmel
    1986) with midranks doubled to integers, so ties are exact. This is the P of R's
    ``coin::wilcox_test(distribution = "exact")``; without ties it equals the exact
    Mann-Whitney P. Cost grows as :math:`N^4`.

    References
    ----------
    Streitberg B, Roehmel J (1986) Statistical Software Newsletter 12:10-17.

    Examples
    --------
    >>> round(rank_sum_permutation_pvalue([1, 2, 2, 3], [2, 4, 5, 5, 6]), 6)
    0.047619
    """
    # Hand-written: SciPy's permutation_test cannot enumerate C(31, 13) splits.
    a, b = _clean(x, "x"), _clean(y, "y")
    if a.size == 0 or b.size == 0:
        raise DataError("permutation test needs at least one value in each group")
    ranks2 = np.rint(2 * _st.rankdata(np.concatenate([a, b]))).astype(np.int64)
    # Count subsets of the smaller size (same P by symmetry, less work).
    n_sub = min(a.size, b.size)
    s_obs = int(ranks2[: a.size].sum()) if a.size == n_sub else int(ranks2[a.size:].sum())
    total = int(ranks2.sum())
    counts = np.zeros((n_sub + 1, total + 1))
    counts[0, 0] = 1.0
    for i, v in enumerate(ranks2):
        top = min(i + 1, n_sub)
        # numpy buffers overlapping in-place ufuncs, so rows k use the old rows k-1
        counts[1: top + 1, v:] += counts[0: top, : total + 1 - v]
    dist = counts[n_sub]
    s = np.arange(total + 1)
    mean2 = n_sub * (ranks2.size + 1)  # E[S] in doubled ranks: exact integers below
    extreme = np.abs(s - mean2) >= abs(s_obs - mean2)
    return float(min(1.0, dist[extreme].sum() / dist.sum()))


def hodges_lehmann(x, y, *, exact: bool, conf_level: float = 0.95) -> dict:
    """Hodges-Lehmann shift x - y and its interval, as R's ``wilcox.test(conf.int=TRUE)``.

    Parameters
    ----------
    x, y : array_like
        The two samples (NaN dropped).
    exact : bool
        Exact interval (no ties, both groups < 50) or asymptotic.
    conf_level : float
        Confidence level.

    Returns
    -------
    dict
        ``hl_shift, ci_low, ci_high, ci_method``.

    Notes
    -----
    Estimate: the median of the :math:`n_x n_y` differences :math:`x_i - y_j`.

    Exact interval (R's code, Bauer 1972): with :math:`d_{(1)} \\le \\dots` the sorted
    differences, :math:`q_u` = ``qwilcox``:math:`(\\alpha/2, n_x, n_y)` (1 if 0) and
    :math:`q_l = n_x n_y - q_u`, the interval is :math:`[d_{(q_u)}, d_{(q_l+1)}]`.

    Asymptotic interval: R inverts the tie- and continuity-corrected normal statistic
    :math:`W(d) = (U(d) - n_xn_y/2 - \\tfrac12\\mathrm{sign}) / \\sigma(d)` of the
    shifted samples ``x - d, y`` with ``uniroot(tol=1e-4)``. :math:`W(d)` is a step
    function that jumps only at the differences, so its crossing of
    :math:`\\pm z_{1-\\alpha/2}` is located here exactly, at the difference where it
    happens (or at :math:`\\min d`/:math:`\\max d`, as R's end-point rule); R's
    limits agree with these to within its tolerance (1e-4). R's asymptotic *estimate*
    is likewise a root of :math:`W(d)=0` found to 1e-4; here it is the median of the
    differences, the root's exact location (the midpoint of R's flat interval when
    :math:`n_xn_y` is even). Hand-written: neither SciPy nor statsmodels gives a
    Hodges-Lehmann interval.

    References
    ----------
    Hodges JL, Lehmann EL (1963) Ann Math Stat 34:598-611. Bauer DF (1972) JASA
    67:687-90. R Core Team, ``wilcox.test`` (stats package).

    Examples
    --------
    >>> hl = hodges_lehmann([0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46],
    ...                     [1.15, 0.88, 0.90, 0.74, 1.21], exact=True)
    >>> round(hl["hl_shift"], 3), round(hl["ci_low"], 2), round(hl["ci_high"], 2)
    (0.305, -0.15, 0.76)
    """
    a, b = _clean(x, "x"), _clean(y, "y")
    conf_level = _check_level(conf_level)
    nx, ny = a.size, b.size
    alpha = 1 - conf_level
    diffs = np.sort(np.subtract.outer(a, b).ravel())
    estimate = float(np.median(diffs))
    if exact:
        qu = _qwilcox(alpha / 2, nx, ny)
        if qu == 0:
            qu = 1
        ql = nx * ny - qu
        return dict(hl_shift=estimate, ci_low=float(diffs[qu - 1]),
                    ci_high=float(diffs[ql]), ci_method="exact")
    # Hand-written (no HL interval in SciPy/statsmodels): R's inversion, located exactly.
    n = nx + ny
    sigma = np.sqrt(nx * ny / 12 * ((n + 1) - (_tie_term(a) + _tie_term(b)) / (n * (n - 1))))
    if sigma == 0:
        raise DataError("cannot compute a confidence interval when all observations are tied")
    uniq = np.unique(diffs)

    def w_at(d: float) -> float:  # R's W(d) at a point, with the ties it creates
        dr = _st.rankdata(np.concatenate([a - d, b]))
        dz = dr[:nx].sum() - nx * (nx + 1) / 2 - nx * ny / 2
        sig = np.sqrt(nx * ny / 12 * ((n + 1) - _tie_term(dr) / (n * (n - 1))))
        return (dz - 0.5 * np.sign(dz)) / sig

    # On the open interval (uniq[k], uniq[k+1]) U(d) = #{diffs > uniq[k]}.
    n_greater = diffs.size - np.searchsorted(diffs, uniq, side="right")
    dz = n_greater[:-1] - nx * ny / 2
    w = (dz - 0.5 * np.sign(dz)) / sigma
    w_min, w_max = w_at(uniq[0]), w_at(uniq[-1])

    def root(zq: float) -> float:
        if w_min - zq <= 0:
            return float(uniq[0])
        if w_max - zq >= 0:
            return float(uniq[-1])
        below = np.nonzero(w - zq <= 0)[0]
        return float(uniq[below[0]]) if below.size else float(uniq[-1])

    z = float(ndtri(1 - alpha / 2))
    return dict(hl_shift=estimate, ci_low=root(z), ci_high=root(-z), ci_method="asymptotic")


def mann_whitney(x, y, *, labels: tuple[str, str] = ("x", "y"), method: str = "auto",
                 permutation: bool = False, conf_level: float = 0.95) -> pd.DataFrame:
    """Two-sided Mann-Whitney U test with R's defaults, effect sizes and summaries.

    Parameters
    ----------
    x, y : array_like
        The two samples (NaN dropped, as R does).
    labels : (str, str)
        Names of the two groups, carried into ``group_x`` and ``group_y``.
    method : {'auto', 'exact', 'asymptotic'}
        ``'auto'`` is R's ``wilcox.test`` rule, not SciPy's: exact when there are no
        ties and both groups have fewer than 50 values, otherwise the normal
        approximation with tie and continuity correction.
    permutation : bool
        Also compute the exact permutation P that handles ties
        (:func:`rank_sum_permutation_pvalue`).
    conf_level : float
        Level of the Hodges-Lehmann interval.

    Returns
    -------
    DataFrame
        One row with the columns of :data:`MWU_COLUMNS`: group labels, ``n``,
        ``median, q1, q3, iqr, mean, sd`` per group (suffix ``_x``/``_y``), ``U``
        (for ``x``; R's ``W``), ``p_value`` and the ``method`` used, the permutation P
        and its method (``'not computed'`` unless asked), ``rank_biserial``,
        ``hl_shift`` with ``ci_low``, ``ci_high``, ``ci_method``, ``conf_level``.

    Notes
    -----
    :math:`U_x = R_x - n_x(n_x+1)/2` with :math:`R_x` the sum of the midranks of x.
    P from :func:`scipy.stats.mannwhitneyu` (two-sided) called with
    ``method='exact'`` or ``method='asymptotic', use_continuity=True``; the asymptotic
    statistic is :math:`z = (U_x - n_xn_y/2 - \\tfrac12\\mathrm{sign}) / \\sigma`,
    :math:`\\sigma^2 = \\frac{n_xn_y}{12}[(N+1) - \\sum(t^3-t)/(N(N-1))]`.
    Rank-biserial correlation :math:`r = 2U_x/(n_xn_y) - 1 = P(X>Y) - P(X<Y)`
    (positive when x tends to be larger). Hodges-Lehmann shift and interval: see
    :func:`hodges_lehmann`; the interval is exact when the P is exact.

    References
    ----------
    Mann HB, Whitney DR (1947) Ann Math Stat 18:50-60. Kerby DS (2014) Compr Psychol
    3:11.IT.3.1 (rank-biserial). R Core Team, ``wilcox.test``.

    Examples
    --------
    >>> x = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
    >>> y = [1.15, 0.88, 0.90, 0.74, 1.21]
    >>> r = mann_whitney(x, y).iloc[0]
    >>> float(r.U), round(float(r.p_value), 4), r.method, round(float(r.rank_biserial), 2)
    (35.0, 0.2544, 'exact', 0.4)

    Compare with SciPy (same U and P when the method is named explicitly):

    >>> from scipy.stats import mannwhitneyu
    >>> sp = mannwhitneyu(x, y, method="exact")
    >>> float(sp.statistic), bool(np.isclose(sp.pvalue, r.p_value))
    (35.0, True)

    With ties R's rule switches to the corrected normal approximation, which SciPy
    also gives when asked for it:

    >>> t = mann_whitney([13, 0, 2, 25, 8, 1], [0, 1, 0, 2], permutation=True).iloc[0]
    >>> t.method, round(float(t.p_value), 4), round(float(t.p_value_permutation), 4)
    ('asymptotic', 0.158, 0.1857)
    >>> round(float(mannwhitneyu([13, 0, 2, 25, 8, 1], [0, 1, 0, 2],
    ...                          method="asymptotic", use_continuity=True).pvalue), 4)
    0.158
    """
    a, b = _clean(x, "x"), _clean(y, "y")
    conf_level = _check_level(conf_level)
    if a.size < 2 or b.size < 2:
        raise DataError(
            f"Mann-Whitney test needs at least 2 values per group: "
            f"{labels[0]} has {a.size}, {labels[1]} has {b.size}")
    ties = np.unique(np.concatenate([a, b])).size < a.size + b.size
    if method == "auto":
        exact = (not ties) and a.size < 50 and b.size < 50
    elif method in ("exact", "asymptotic"):
        exact = method == "exact"
        if exact and ties:
            raise DataError("the exact Mann-Whitney P needs data without ties "
                            "(use permutation=True for an exact P with ties)")
    else:
        raise DataError(f"unknown method {method!r} (expected 'auto', 'exact' or 'asymptotic')")
    if not exact and np.unique(np.concatenate([a, b])).size == 1:
        raise DataError("Mann-Whitney test is undefined when all values are equal")
    res = _st.mannwhitneyu(a, b, alternative="two-sided", use_continuity=True,
                           method="exact" if exact else "asymptotic")
    u = float(res.statistic)
    hl = hodges_lehmann(a, b, exact=exact, conf_level=conf_level)
    perm_p, perm_method = np.nan, "not computed"
    if permutation:
        perm_p = rank_sum_permutation_pvalue(a, b)
        perm_method = "exact permutation (midranks)"
    row = dict(group_x=labels[0], group_y=labels[1], n_x=int(a.size), n_y=int(b.size))
    for suffix, sample in (("x", a), ("y", b)):
        d = describe(sample)
        for k in ("median", "q1", "q3", "iqr", "mean", "sd"):
            row[f"{k}_{suffix}"] = d[k]
    row.update(U=u, p_value=float(res.pvalue), method="exact" if exact else "asymptotic",
               p_value_permutation=perm_p, permutation_method=perm_method,
               rank_biserial=2 * u / (a.size * b.size) - 1, **hl, conf_level=conf_level)
    return pd.DataFrame([row], columns=list(MWU_COLUMNS))


# ------------------------------------------------------------------------ Spearman
def _rank_rows(a: np.ndarray) -> np.ndarray:
    """Midranks along the last axis (SciPy's rankdata, average method)."""
    return _st.rankdata(a, axis=-1)


def _pearson_rows(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis; NaN when a row is constant."""
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt(np.sum(rx * rx, axis=-1) * np.sum(ry * ry, axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.sum(rx * ry, axis=-1) / den
    return np.where(den > 0, r, np.nan)


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair (vectorized over leading axes)."""
    return _pearson_rows(_rank_rows(x), _rank_rows(y))


def bca_interval(theta_hat: float, theta_boot, theta_jack, *,
                 conf_level: float = 0.95) -> tuple[float, float, int]:
    """Bias-corrected and accelerated (BCa) bootstrap interval.

    Parameters
    ----------
    theta_hat : float
        Statistic on the original data.
    theta_boot : array_like
        Statistic on each bootstrap resample; NaN (undefined) replicates are dropped.
    theta_jack : array_like
        Statistic on each jackknife (leave-one-unit-out) sample; NaN dropped.
    conf_level : float
        Confidence level.

    Returns
    -------
    (float, float, int)
        Lower and upper limit, and the number of finite bootstrap replicates used.
        NaN limits when the bootstrap distribution is degenerate.

    Notes
    -----
    Efron & Tibshirani (1993) eqs. 14.9-14.15, the formula of
    :func:`scipy.stats.bootstrap` (``method='BCa'``), written out so that undefined
    replicates can be dropped (SciPy returns NaN limits as soon as one replicate is
    NaN, which happens with tied clinical scores when a resample makes one variable
    constant) and so that clusters can be resampled:

    :math:`\\hat z_0 = \\Phi^{-1}(\\#\\{\\theta^* < \\hat\\theta\\}/B +
    \\#\\{\\theta^* = \\hat\\theta\\}/2B)`,
    :math:`\\hat a = \\sum U_i^3 / (6 (\\sum U_i^2)^{3/2})`,
    :math:`U_i = (n-1)(\\bar\\theta_{(\\cdot)} - \\theta_{(i)})`,
    :math:`\\alpha_{1,2} = \\Phi(\\hat z_0 + (\\hat z_0 + z_{\\alpha/2,1-\\alpha/2}) /
    (1 - \\hat a(\\hat z_0 + z_{\\alpha/2,1-\\alpha/2})))`, limits = the
    :math:`\\alpha_1, \\alpha_2` quantiles (linear interpolation) of
    :math:`\\theta^*`. The tests check this against SciPy on the same replicates.

    References
    ----------
    Efron B (1987) JASA 82:171-85. Efron B, Tibshirani RJ (1993) An Introduction to
    the Bootstrap, ch. 14.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> boot = rng.normal(0.5, 0.1, 5000)
    >>> lo, hi, used = bca_interval(0.5, boot, np.linspace(0.45, 0.55, 20))
    >>> bool(0.25 < lo < 0.4 and 0.6 < hi < 0.75), used
    (True, 5000)
    """
    # Hand-written (SciPy's version cannot drop NaN replicates); formula as SciPy's.
    conf_level = _check_level(conf_level)
    tb = np.asarray(theta_boot, dtype=float).ravel()
    tb = tb[np.isfinite(tb)]
    tj = np.asarray(theta_jack, dtype=float).ravel()
    tj = tj[np.isfinite(tj)]
    used = int(tb.size)
    if used == 0 or tj.size < 2 or not np.isfinite(theta_hat):
        return np.nan, np.nan, used
    frac = (np.count_nonzero(tb < theta_hat) + np.count_nonzero(tb <= theta_hat)) / (2 * used)
    z0 = ndtri(frac)
    u = (tj.size - 1) * (tj.mean() - tj)
    den = np.sum(u**2)
    a_hat = np.sum(u**3) / (6 * den**1.5) if den > 0 else 0.0
    alpha = (1 - conf_level) / 2
    limits = []
    for zq in (ndtri(alpha), ndtri(1 - alpha)):
        num = z0 + zq
        limits.append(ndtr(z0 + num / (1 - a_hat * num)))
    if not np.all(np.isfinite(limits)):
        return np.nan, np.nan, used
    lo, hi = np.percentile(tb, [100 * limits[0], 100 * limits[1]])
    return float(lo), float(hi), used


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def spearman(x, y, *, n_boot: int = 10000, seed=None,
             conf_level: float = 0.95) -> pd.DataFrame:
    """Spearman's rho with the t-approximation P and a BCa bootstrap interval.

    Parameters
    ----------
    x, y : array_like
        Paired values; pairs with a NaN are dropped.
    n_boot : int
        Bootstrap resamples of the pairs (0: no interval).
    seed : int, numpy.random.Generator or None
        Seed of the resampling (pass one for reproducible limits).
    conf_level : float
        Confidence level.

    Returns
    -------
    DataFrame
        One row: ``n, rho, p_value, method, ci_low, ci_high, ci_method, n_boot,
        n_boot_used, conf_level``.

    Notes
    -----
    :math:`\\rho` is Pearson's r of the midranks; P is two-sided from
    :math:`t = \\rho\\sqrt{(n-2)/(1-\\rho^2)}` on :math:`n-2` df, i.e.
    :func:`scipy.stats.spearmanr` and R's ``cor.test(method='spearman',
    exact=FALSE)``. Interval: BCa (:func:`bca_interval`) over ``n_boot`` resamples
    of the pairs, drawn at once as an ``(n_boot, n)`` index array and ranked row-wise
    (vectorized); the acceleration from the leave-one-pair-out jackknife. Resamples
    in which a variable is constant (rho undefined) are dropped (``n_boot_used``).

    References
    ----------
    Spearman C (1904) Am J Psychol 15:72-101. Efron B (1987) JASA 82:171-85.

    Examples
    --------
    >>> x = [1, 2, 2, 3, 4, 4, 4, 5, 6, 7]
    >>> y = [2, 1, 3, 3, 5, 4, 6, 6, 8, 7]
    >>> r = spearman(x, y, n_boot=1000, seed=1).iloc[0]
    >>> round(float(r.rho), 4), round(float(r.p_value), 7), int(r.n)
    (0.9381, 5.95e-05, 10)

    Compare with SciPy:

    >>> from scipy.stats import spearmanr
    >>> bool(np.isclose(spearmanr(x, y).pvalue, r.p_value))
    True
    """
    a, b = _pairs(x, y)
    conf_level = _check_level(conf_level)
    n = int(a.size)
    if n < 3:
        raise DataError(f"Spearman correlation needs at least 3 complete pairs, got {n}")
    if np.unique(a).size == 1 or np.unique(b).size == 1:
        raise DataError("Spearman correlation is undefined when a variable is constant")
    res = _st.spearmanr(a, b)
    rho, p = float(res.statistic), float(res.pvalue)
    lo = hi = np.nan
    used = 0
    if n_boot > 0:
        # Own BCa rather than scipy.stats.bootstrap: same draws and formula (tested
        # equal), but undefined replicates are dropped instead of voiding the interval.
        idx = _rng(seed).integers(0, n, size=(int(n_boot), n))
        boot = _spearman_rows(a[idx], b[idx])
        keep = ~np.eye(n, dtype=bool)
        jack = _spearman_rows(np.broadcast_to(a, (n, n))[keep].reshape(n, n - 1),
                              np.broadcast_to(b, (n, n))[keep].reshape(n, n - 1))
        lo, hi, used = bca_interval(rho, boot, jack, conf_level=conf_level)
    return pd.DataFrame([dict(
        n=n, rho=rho, p_value=p, method="t approximation (n-2 df)", ci_low=lo,
        ci_high=hi, ci_method="BCa bootstrap" if n_boot > 0 else "none",
        n_boot=int(n_boot), n_boot_used=used, conf_level=conf_level)])


def _weighted_spearman(values_x: np.ndarray, values_y: np.ndarray,
                       weights: np.ndarray) -> np.ndarray:
    """Spearman's rho of samples given as multiplicities of the original observations.

    ``weights`` is (B, N): how often each of the N observations occurs in each of B
    samples. The midrank of observation i in a sample is
    sum_j w_j [v_j < v_i] + (sum_j w_j [v_j == v_i] + 1) / 2, so the ranks of all B
    samples are one matrix product; rho is then the weighted Pearson r of the ranks.
    This avoids re-sorting every resample (the cluster bootstrap's hot loop).
    """
    out = []
    for v in (values_x, values_y):
        less = (v[:, None] < v[None, :]).astype(float)
        equal = (v[:, None] == v[None, :]).astype(float)
        out.append(weights @ (less + 0.5 * equal) + 0.5)
    rx, ry = out
    wsum = weights.sum(axis=1, keepdims=True)
    mx = np.sum(weights * rx, axis=1, keepdims=True) / wsum
    my = np.sum(weights * ry, axis=1, keepdims=True) / wsum
    dx, dy = rx - mx, ry - my
    sxy = np.sum(weights * dx * dy, axis=1)
    den = np.sqrt(np.sum(weights * dx * dx, axis=1) * np.sum(weights * dy * dy, axis=1))
    # Scale-aware threshold: a constant sample gives rounding noise, not exactly 0.
    tiny = 1e-9 * np.sum(weights, axis=1) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / den
    return np.where(den > tiny, r, np.nan)


def spearman_clustered(x, y, cluster, *, n_boot: int = 10000, n_perm: int | None = None,
                       seed=None, conf_level: float = 0.95) -> pd.DataFrame:
    """Pooled Spearman's rho of clustered observations, with cluster-aware inference.

    Parameters
    ----------
    x, y : array_like
        Paired observations (e.g. one per limb); pairs with a NaN are dropped.
    cluster : array_like
        Cluster (patient) of each observation.
    n_boot : int
        Cluster bootstrap resamples.
    n_perm : int, optional
        Cluster permutations (default ``n_boot``).
    seed : int, numpy.random.Generator or None
        Seed of the resampling and permutations.
    conf_level : float
        Confidence level.

    Returns
    -------
    DataFrame
        One row: ``n, n_clusters, rho, p_value, method`` (the pooled analysis that
        treats every observation as independent), ``cluster_ci_low,
        cluster_ci_high, cluster_ci_method, n_boot, n_boot_used,
        cluster_p_value, cluster_p_method, n_perm, conf_level``.

    Notes
    -----
    ``rho`` and ``p_value`` are :func:`spearman`'s on the pooled pairs (t
    approximation on n - 2 df), which assumes independent observations.

    Cluster bootstrap: resample clusters with replacement (each keeps all its
    observations), rho of the pooled resample; BCa interval with the
    leave-one-cluster-out jackknife (:func:`bca_interval`). Vectorized by
    representing each resample as multiplicities of the original observations, so
    that ranks are one matrix product (:func:`_weighted_spearman`); works for
    clusters of unequal size.

    Cluster permutation: ``y`` is the cluster-level variable (a patient's limb UMN
    scores). The test keeps each cluster's ``x`` observations and their within-cluster
    pairing slots fixed and hands whole ``y`` vectors from one cluster to another
    (a random permutation of clusters); slot ``k`` of cluster ``i`` receives the
    value of slot ``k`` of cluster ``pi(i)``. Slots are the order of the observations
    within each cluster, so every cluster must have the same number of slots (pad
    missing observations with NaN in ``x``; they are skipped). Two-sided
    :math:`P = (1 + \\#\\{|\\rho_\\pi| \\ge |\\rho|\\}) / (1 + n_{perm})`
    (Phipson & Smyth 2010; the identity permutation counts once). Hand-written:
    neither SciPy nor statsmodels offers cluster resampling.

    References
    ----------
    Field CA, Welsh AH (2007) JRSS B 69:369-90 (cluster bootstrap). Phipson B, Smyth
    GK (2010) Stat Appl Genet Mol Biol 9:39.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> u = np.repeat(rng.integers(0, 8, 12), 3).astype(float)
    >>> t = -0.1 * u + rng.normal(0, 0.2, 36)
    >>> r = spearman_clustered(t, u, np.repeat(np.arange(12), 3), n_boot=500, seed=4).iloc[0]
    >>> int(r.n), int(r.n_clusters), bool(r.rho < 0), bool(r.cluster_ci_low < r.rho < r.cluster_ci_high)
    (36, 12, True, True)
    """
    conf_level = _check_level(conf_level)
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    ca = np.asarray(cluster).ravel()
    if not (xa.shape == ya.shape == ca.shape):
        raise DataError("x, y and cluster must have the same length")
    clusters, inverse = np.unique(ca, return_inverse=True)
    ok = np.isfinite(xa) & np.isfinite(ya)
    base = spearman(xa[ok], ya[ok], n_boot=0).iloc[0]
    n_cl_all = clusters.size
    kept_clusters = np.unique(inverse[ok])
    g = kept_clusters.size
    if g < 3:
        raise DataError(f"cluster bootstrap needs at least 3 clusters with data, got {g}")
    n_perm = n_boot if n_perm is None else int(n_perm)
    rng = _rng(seed)
    vx, vy, cl = xa[ok], ya[ok], np.searchsorted(kept_clusters, inverse[ok])
    rho = float(base.rho)

    lo = hi = np.nan
    used = 0
    if n_boot > 0:
        # Hand-written: no cluster bootstrap in SciPy/statsmodels. Resamples as
        # multiplicities of the clusters, ranks by one matrix product.
        draws = rng.integers(0, g, size=(int(n_boot), g))
        counts = np.zeros((int(n_boot), g))
        np.add.at(counts, (np.repeat(np.arange(int(n_boot)), g), draws.ravel()), 1.0)
        boot = _weighted_spearman(vx, vy, counts[:, cl])
        jack_w = 1.0 - np.eye(g)
        jack = _weighted_spearman(vx, vy, jack_w[:, cl])
        lo, hi, used = bca_interval(rho, boot, jack, conf_level=conf_level)

    p_perm = np.nan
    if n_perm > 0:  # hand-written cluster permutation (not in SciPy/statsmodels)
        sizes = np.bincount(inverse, minlength=n_cl_all)
        if np.unique(sizes).size != 1:
            raise DataError("cluster permutation needs the same number of slots per "
                            "cluster (pad missing observations with NaN)")
        k = int(sizes[0])
        order = np.argsort(inverse, kind="stable")
        X = xa[order].reshape(n_cl_all, k)
        Y = ya[order].reshape(n_cl_all, k)
        perms = rng.permuted(np.tile(np.arange(n_cl_all), (n_perm, 1)), axis=1)
        Yp = Y[perms]                                  # (n_perm, clusters, slots)
        Xb = np.broadcast_to(X, Yp.shape)
        valid = np.isfinite(Xb) & np.isfinite(Yp)
        if valid.all():
            # Pooled ranks do not change when whole vectors change hands: rank once.
            rx = _st.rankdata(X.ravel())
            ry = _st.rankdata(Y.ravel()).reshape(n_cl_all, k)[perms].reshape(n_perm, -1)
            stat = _pearson_rows(np.broadcast_to(rx, ry.shape), ry)
        else:
            flat_x = np.where(valid, Xb, np.nan).reshape(n_perm, -1)
            flat_y = np.where(valid, Yp, np.nan).reshape(n_perm, -1)
            rx = _st.rankdata(flat_x, axis=1, nan_policy="omit")
            ry = _st.rankdata(flat_y, axis=1, nan_policy="omit")
            m = valid.reshape(n_perm, -1)
            cnt = m.sum(axis=1, keepdims=True)
            rx = np.where(m, rx - np.nansum(rx, axis=1, keepdims=True) / cnt, 0.0)
            ry = np.where(m, ry - np.nansum(ry, axis=1, keepdims=True) / cnt, 0.0)
            den = np.sqrt(np.sum(rx * rx, axis=1) * np.sum(ry * ry, axis=1))
            with np.errstate(invalid="ignore", divide="ignore"):
                stat = np.where(den > 0, np.sum(rx * ry, axis=1) / den, np.nan)
        hits = np.count_nonzero(np.abs(stat) >= abs(rho) - 1e-12)
        p_perm = (1 + hits) / (1 + n_perm)

    return pd.DataFrame([dict(
        n=int(base.n), n_clusters=int(g), rho=rho, p_value=float(base.p_value),
        method="t approximation (n-2 df), observations treated as independent",
        cluster_ci_low=lo, cluster_ci_high=hi,
        cluster_ci_method="cluster bootstrap BCa" if n_boot > 0 else "none",
        n_boot=int(n_boot), n_boot_used=used, cluster_p_value=p_perm,
        cluster_p_method="cluster permutation" if n_perm > 0 else "none",
        n_perm=int(n_perm), conf_level=conf_level)])


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
        raise DataError(f"direction must be 'higher' or 'lower', got {direction!r}")
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
        raise DataError(f"ROC analysis needs at least 2 cases and 2 controls, got {m} and {n}")
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
        raise DataError("case labels and scores must have the same length")
    ok = np.isfinite(s1) & np.isfinite(s2)
    c, s1, s2 = c[ok], _oriented(s1[ok], direction1), _oriented(s2[ok], direction2)
    m, n = int(c.sum()), int((~c).sum())
    if m < 2 or n < 2:
        raise DataError(f"DeLong test needs at least 2 cases and 2 controls, got {m} and {n}")
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
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float).ravel()
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return q

