"""Two-group comparisons: Mann-Whitney U, its exact permutation P and the Hodges-Lehmann shift."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats as _st
from scipy.special import ndtr, ndtri

from m1lib.stats.descriptive import _check_level, _clean, _pairs, _tie_term, describe  # noqa: F401

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
        raise ValueError("permutation test needs at least one value in each group")
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
        raise ValueError("cannot compute a confidence interval when all observations are tied")
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
        raise ValueError(
            f"Mann-Whitney test needs at least 2 values per group: "
            f"{labels[0]} has {a.size}, {labels[1]} has {b.size}")
    ties = np.unique(np.concatenate([a, b])).size < a.size + b.size
    if method == "auto":
        exact = (not ties) and a.size < 50 and b.size < 50
    elif method in ("exact", "asymptotic"):
        exact = method == "exact"
        if exact and ties:
            raise ValueError("the exact Mann-Whitney P needs data without ties "
                            "(use permutation=True for an exact P with ties)")
    else:
        raise ValueError(f"unknown method {method!r} (expected 'auto', 'exact' or 'asymptotic')")
    if not exact and np.unique(np.concatenate([a, b])).size == 1:
        raise ValueError("Mann-Whitney test is undefined when all values are equal")
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


