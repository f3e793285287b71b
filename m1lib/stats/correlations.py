"""Correlations: Spearman's rho with bootstrap intervals, also for clustered observations."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as _st
from scipy.special import ndtr, ndtri

from m1lib.stats.descriptive import _check_level, _clean, _pairs, _tie_term, describe  # noqa: F401
from m1lib.stats.resampling import _rng, bca_interval


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
        raise ValueError(f"Spearman correlation needs at least 3 complete pairs, got {n}")
    if np.unique(a).size == 1 or np.unique(b).size == 1:
        raise ValueError("Spearman correlation is undefined when a variable is constant")
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
        raise ValueError("x, y and cluster must have the same length")
    clusters, inverse = np.unique(ca, return_inverse=True)
    ok = np.isfinite(xa) & np.isfinite(ya)
    base = spearman(xa[ok], ya[ok], n_boot=0).iloc[0]
    n_cl_all = clusters.size
    kept_clusters = np.unique(inverse[ok])
    g = kept_clusters.size
    if g < 3:
        raise ValueError(f"cluster bootstrap needs at least 3 clusters with data, got {g}")
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
            raise ValueError("cluster permutation needs the same number of slots per "
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


