"""Closed-form (normal-approximation) power of the report's tests, to cross-check the simulations.

Every formula reduces to a standardized effect ``d`` per unit of sample size and is
evaluated with :class:`statsmodels.stats.power.NormalIndPower` (one-sample form,
``ratio=0``: power = :math:`\\Phi(d\\sqrt{n} - z_{1-\\alpha/2}) +
\\Phi(-d\\sqrt{n} - z_{1-\\alpha/2})`):

- Mann-Whitney (Noether 1987): :math:`\\mathrm{Var}_0(U/n_1n_2) = (N+1)/(12 n_1 n_2)`,
  so :math:`d\\sqrt{n} = |\\theta - \\tfrac12|\\sqrt{12 n_1 n_2/(N+1)}`.
- Spearman (Fisher z with Bonett & Wright 2000's variance):
  :math:`\\mathrm{Var}(\\operatorname{atanh} r_s) = (1 + \\rho^2/2)/(n - 3)`.
- Pooled per-limb Spearman: Bonett-Wright on the effective number of pairs
  :math:`nK/\\mathrm{DE}`, the design effect DE estimated on the pilot (cluster over
  naive influence-function variance, :func:`design_effect`).
- Paired AUC difference (Obuchowski & McClish 1997 / DeLong): variance
  :math:`\\sigma^2_{10}/m + \\sigma^2_{01}/n` from the pilot's placement values of
  the difference, scaled to the planned numbers of cases m and controls n.
"""
from __future__ import annotations

import numpy as np
from statsmodels.stats.power import NormalIndPower

from m1lib.power import rankstats

__all__ = ["normal_power", "noether_power", "spearman_power", "clustered_spearman_power",
           "delong_power", "design_effect", "delong_unit_variance"]

_NORMAL = NormalIndPower()


def normal_power(d_sqrt_n, alpha: float) -> np.ndarray:
    """Two-sided power of a z test whose standardized effect times sqrt(n) is ``d_sqrt_n``.

    Examples
    --------
    >>> round(float(normal_power(1.959964 + 0.841621, 0.05)), 3)
    0.8
    """
    d = np.abs(np.asarray(d_sqrt_n, dtype=float))
    return np.asarray(_NORMAL.power(effect_size=d, nobs1=1.0, alpha=alpha, ratio=0.0), dtype=float)


def noether_power(theta: float, n1, n2, alpha: float) -> np.ndarray:
    """Noether's power of the two-sided Mann-Whitney test for P(X1 > X2) = ``theta``.

    Examples
    --------
    Noether's total N = (1.960 + 0.842)^2 / (12 * 1/4 * 0.2^2) = 65.4 for theta = 0.7,
    equal groups, 80 % power: 33 per group, 34 with the exact null variance's N + 1:

    >>> n = np.arange(20, 50)
    >>> int(n[noether_power(0.7, n, n, 0.05) >= 0.8][0])
    34
    """
    n1 = np.asarray(n1, dtype=float)
    n2 = np.asarray(n2, dtype=float)
    return normal_power(abs(theta - 0.5) * np.sqrt(12 * n1 * n2 / (n1 + n2 + 1)), alpha)


def spearman_power(rho: float, n, alpha: float) -> np.ndarray:
    """Power of the test of Spearman's rho = 0 (Fisher z, Bonett-Wright variance).

    Examples
    --------
    By hand: n = 3 + (1 + 0.5^2/2) (1.960 + 0.842)^2 / atanh(0.5)^2 = 32.3, so 33:

    >>> n = np.arange(10, 60)
    >>> int(n[spearman_power(0.5, n, 0.05) >= 0.8][0])
    33
    """
    n = np.asarray(n, dtype=float)
    z = np.arctanh(min(abs(rho), 1 - 1e-12))
    return normal_power(z * np.sqrt(np.maximum(n - 3, 0) / (1 + rho ** 2 / 2)), alpha)


def clustered_spearman_power(rho: float, n_patients, pairs_per_patient: int, deff: float,
                             alpha: float) -> np.ndarray:
    """Bonett-Wright power on the effective number of pairs ``n K / deff``."""
    n_eff = np.asarray(n_patients, dtype=float) * pairs_per_patient / max(deff, 1e-12)
    return spearman_power(rho, n_eff, alpha)


def design_effect(x: np.ndarray, y: np.ndarray) -> float:
    """Variance of the pooled Spearman rho with patients as clusters over the naive one.

    Parameters
    ----------
    x, y : ndarray, (G, K)
        The pilot's pairs per patient.

    Returns
    -------
    float
        :math:`\\frac{G}{G-1}\\sum_g S_g^2 / \\sum_i IF_i^2` with the influence functions
        of :func:`m1lib.power.rankstats.pooled_spearman_rows`: 1 when the limbs of a
        patient are independent, up to K when they are copies.
    """
    g, k = x.shape
    r = rankstats.pooled_spearman_rows(x[None], y[None])
    naive_var = _naive_if_var(x, y)
    return float(r["se_cluster"][0] ** 2 / naive_var) if naive_var > 0 else np.nan


def _naive_if_var(x, y) -> float:
    """Sandwich variance of the pooled rho with every pair its own cluster."""
    n = x.size
    r = rankstats.pooled_spearman_rows(x.reshape(1, n, 1), y.reshape(1, n, 1))
    return float(r["se_cluster"][0] ** 2)


def delong_unit_variance(case1, control1, case2, control2) -> tuple[float, float]:
    """Per-case and per-control variance of the placement values of AUC1 - AUC2 (ddof = 0).

    ``Var(AUC1 - AUC2) ~= s10 / m + s01 / n`` for m cases and n controls drawn from
    the pilot's distribution (DeLong's variance with population moments).
    """
    a10, a01 = rankstats._placements(np.asarray(case1, float)[None], np.asarray(control1, float)[None])
    b10, b01 = rankstats._placements(np.asarray(case2, float)[None], np.asarray(control2, float)[None])
    return float(np.var(a10 - b10)), float(np.var(a01 - b01))


def delong_power(difference: float, s10: float, s01: float, m, n, alpha: float) -> np.ndarray:
    """Power of DeLong's paired test for an AUC difference with unit variances s10, s01."""
    m = np.asarray(m, dtype=float)
    n = np.asarray(n, dtype=float)
    se = np.sqrt(s10 / m + s01 / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(se > 0, abs(difference) / se, np.where(difference == 0, 0.0, np.inf))
    return normal_power(d, alpha)
