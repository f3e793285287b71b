"""Rank-based tools of the cohort calibration: exact marginals, Iman-Conover, ranks, U tests.

Small, fast versions of what scipy computes (used thousands of times inside the
calibration's rank-swap loop); each says which scipy function it matches.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import stats

__all__ = ["iman_conover"]


def _std_quantiles(dist, n: int, mean: float, sd: float) -> np.ndarray:
    """``n`` quantiles of ``dist`` rescaled to exactly ``mean`` and ``sd`` (ddof=1)."""
    if n == 1:
        return np.array([mean])
    q = dist.ppf((np.arange(n) + 0.5) / n)
    return mean + sd * (q - q.mean()) / q.std(ddof=1)


def _int_quantiles(dist, n: int, mean: float, sd: float, lo: float, hi: float) -> np.ndarray:
    """Integer quantiles in [lo, hi] whose mean and sd are as close as rounding allows.

    Rounding and clipping shrink the spread; the pre-rounding mean and sd are
    adjusted by fixed-point iteration to compensate.
    """
    m_in, s_in = mean, sd
    best, best_err = None, np.inf
    for _ in range(25):
        v = np.clip(np.rint(_std_quantiles(dist, n, m_in, s_in)), lo, hi)
        if n < 2:
            return v
        m_out, s_out = v.mean(), v.std(ddof=1)
        err = abs(m_out - mean) / sd + abs(s_out - sd) / sd
        if err < best_err:
            best, best_err = v, err
        if err < 0.01 or s_out == 0:
            break
        m_in += mean - m_out
        s_in *= sd / s_out
    return best


def _lognormal(mean: float, sd: float):
    s2 = math.log1p((sd / mean) ** 2)
    return stats.lognorm(s=math.sqrt(s2), scale=mean / math.exp(s2 / 2))


def _gamma(mean: float, sd: float):
    return stats.gamma(a=(mean / sd) ** 2, scale=sd ** 2 / mean)


def _nearest_pd(c: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    w, v = np.linalg.eigh((c + c.T) / 2)
    c2 = (v * np.maximum(w, eps)) @ v.T
    d = np.sqrt(np.diag(c2))
    return c2 / np.outer(d, d)


def iman_conover(marginals: np.ndarray, target: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """Rearrange each column of ``marginals`` to carry the rank correlation ``target``.

    Parameters
    ----------
    marginals : array, shape (n, k)
        Column ``j`` holds the ``n`` values of variable ``j`` (any order).
    target : array, shape (k, k)
        Target correlation matrix (made positive definite if it is not).
    rng : numpy Generator

    Returns
    -------
    array, shape (n, k)
        Same values per column, reordered.

    Notes
    -----
    Iman & Conover (1982): van der Waerden scores ``S`` (random column
    permutations of ``Phi^-1(i/(n+1))``) are re-correlated as
    ``T = S Q^-T P^T`` with ``P P^T = target`` and ``Q Q^T = corr(S)``, so that
    ``corr(T) = target`` exactly; each column of ``marginals`` is then sorted into
    the rank order of the matching column of ``T``.

    References
    ----------
    Iman RL, Conover WJ. A distribution-free approach to inducing rank correlation
    among input variables. Commun Stat Simul Comput 1982;11:311-334.
    """
    n, k = marginals.shape
    if n <= k + 1:  # too few rows to re-correlate: keep a random arrangement
        return np.column_stack([rng.permutation(marginals[:, j]) for j in range(k)])
    scores = stats.norm.ppf(np.arange(1, n + 1) / (n + 1))
    s = np.column_stack([rng.permutation(scores) for _ in range(k)])
    p = np.linalg.cholesky(_nearest_pd(target))
    q = np.linalg.cholesky(_nearest_pd(np.corrcoef(s, rowvar=False)))
    t = s @ np.linalg.inv(q).T @ p.T
    out = np.empty_like(marginals, dtype=float)
    for j in range(k):
        order = np.argsort(np.argsort(t[:, j], kind="stable"), kind="stable")
        out[:, j] = np.sort(marginals[:, j])[order]
    return out


def _mw_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Mann-Whitney U P value (scipy's default method)."""
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def _rank1(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) of a 1-D array, as scipy.stats.rankdata does."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]
    dense = np.cumsum(first)
    bounds = np.r_[np.flatnonzero(first), len(x)]
    out = np.empty(len(x))
    out[order] = 0.5 * (bounds[dense - 1] + bounds[dense] + 1)
    return out


@lru_cache(maxsize=64)
def _u_cdf(n_a: int, n_b: int) -> np.ndarray:
    """Exact null CDF of the Mann-Whitney U statistic (no ties), by recursion."""
    # f[i][j] = counts of U over 0..i*j for sizes i, j
    f = {(0, j): np.ones(1) for j in range(n_b + 1)}
    for i in range(1, n_a + 1):
        f[(i, 0)] = np.ones(1)
        for j in range(1, n_b + 1):
            c = np.zeros(i * j + 1)
            a = f[(i - 1, j)]
            c[j:j + len(a)] += a              # the largest value is in group a: U += j
            b = f[(i, j - 1)]
            c[:len(b)] += b
            f[(i, j)] = c
    counts = f[(n_a, n_b)]
    return np.cumsum(counts) / counts.sum()


def _mw_p_fast(ranks_a: np.ndarray, n_b: int) -> float:
    """Mann-Whitney P from the ranks of group a, by the method scipy's 'auto' picks.

    Exact when a group has at most 8 members (and there are no ties), else the
    normal approximation with continuity correction.
    """
    n_a = len(ranks_a)
    if n_a == 0 or n_b == 0:
        return float("nan")
    u = ranks_a.sum() - n_a * (n_a + 1) / 2
    if min(n_a, n_b) <= 8 and float(u).is_integer():
        cdf = _u_cdf(n_a, n_b)
        u = int(u)
        lower = cdf[u]
        upper = 1.0 - (cdf[u - 1] if u > 0 else 0.0)
        return float(min(1.0, 2 * min(lower, upper)))
    mu, sd = n_a * n_b / 2, math.sqrt(n_a * n_b * (n_a + n_b + 1) / 12)
    z = max(0.0, abs(u - mu) - 0.5) / sd
    return math.erfc(z / math.sqrt(2))


def _corr_of_ranks(r: np.ndarray) -> np.ndarray:
    r = r - r.mean(axis=0)
    norm = np.sqrt((r ** 2).sum(axis=0))
    norm[norm == 0] = 1.0
    r = r / norm
    return r.T @ r

