"""Shared helpers of :mod:`m1lib.stats` and descriptive statistics."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as _st
from scipy.special import ndtr, ndtri

__all__ = ["describe"]


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
        raise ValueError(f"paired data of unequal length: {a.size} and {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    return a[ok], b[ok]


def _check_level(conf_level: float) -> float:
    conf_level = float(conf_level)
    if not 0.0 < conf_level < 1.0:
        raise ValueError(f"confidence level must be between 0 and 1, got {conf_level}")
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


