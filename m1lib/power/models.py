"""Generative models fitted to a pilot data set, with one knob that sets the effect size.

Each model draws new studies by resampling the pilot's participants (for the
per-limb analysis, whole patients with all their limbs), so the distributions,
ties and within-patient correlation are the pilot's own. At its observed setting
(``strength`` 0 for a shift, 1 for a mixture) a model is the plain bootstrap of the
pilot; other settings move the effect to the ends of its confidence interval:

- :class:`TwoGroupShift` (Mann-Whitney ALS vs HS): the first group's values are
  shifted by ``s``; the effect is :math:`\\theta = P(X_1 > X_2) + \\tfrac12 P(X_1 = X_2)`
  of the model, computed exactly over all pilot pairs.
- :class:`PairMixture` (Spearman with a clinical score; the DPR split): with
  probability ``1 - w`` a patient's score comes from another random patient
  (independence); for ``w > 1`` a pair is, with probability ``w - 1``, replaced
  by the pair of equal rank in both margins (perfect monotone dependence in the
  pilot's direction). Margins stay the pilot's; Spearman's rho of the model is
  linear in ``w`` on [0, 1] and on [1, 2] (rank correlation is linear in the joint
  distribution when the margins are fixed), computed exactly.
- :class:`ClusterMixture` (pooled per-limb Spearman): the same at the patient level:
  whole UMN vectors change hands; ``w > 1`` mixes in patients matched on the rank
  of their mean measure and mean score.
- :class:`PairedAUCShift` (AUC of a measure vs a reader's calls): the cases'
  (oriented) measure is shifted by ``s``; the calls are resampled with it.

A model draws ``(n_sim, ...)`` arrays at once and returns the P values of the
report's test for every simulated study (:mod:`m1lib.power.rankstats`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from m1lib.power import rankstats

__all__ = ["TwoGroupShift", "PairMixture", "DprSplitMixture", "ClusterMixture",
           "PairedAUCShift", "mixture_strength"]


def _theta(first: np.ndarray, second: np.ndarray, shift: float = 0.0) -> float:
    """P(first + shift > second) + 1/2 P(=) over all pairs (exact)."""
    d = first[:, None] + shift - second[None, :]
    return float(np.mean(d > 0) + 0.5 * np.mean(d == 0))


def _shift_for(first: np.ndarray, second: np.ndarray, theta: float) -> float:
    """A shift whose exact theta is nearest to ``theta`` (theta is a step function)."""
    e = np.sort((second[None, :] - first[:, None]).ravel())   # theta(s) = P(e < s) + P(e = s)/2
    cand = np.concatenate([[e[0] - 1.0], (e[1:] + e[:-1]) / 2, [e[-1] + 1.0], e])
    below = np.searchsorted(e, cand, "left")
    vals = (below + 0.5 * (np.searchsorted(e, cand, "right") - below)) / e.size
    best = np.flatnonzero(np.abs(vals - theta) == np.abs(vals - theta).min())
    return float(cand[best[np.argmin(np.abs(cand[best]))]])


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(rankstats.spearman_rows(x[None, :], y[None, :])[0][0])


def mixture_strength(target: float, at0: float, at1: float, at2: float) -> float:
    """Strength ``w`` in [0, 2] of a piecewise-linear effect through (0, at0), (1, at1), (2, at2).

    A target beyond ``at0`` on the far side from ``at1`` gives 0; beyond ``at2``, 2.

    Examples
    --------
    >>> mixture_strength(0.3, 0.0, 0.6, 1.0), mixture_strength(0.8, 0.0, 0.6, 1.0)
    (0.5, 1.5)
    >>> mixture_strength(-0.2, 0.0, 0.6, 1.0), mixture_strength(1.5, 0.0, 0.6, 1.0)
    (0.0, 2.0)
    """
    sign = 1.0 if at1 >= at0 else -1.0
    t = sign * target
    a0, a1, a2 = sign * at0, sign * at1, sign * at2
    if t <= a0:
        return 0.0
    if t <= a1:
        return float((t - a0) / (a1 - a0)) if a1 > a0 else 1.0
    if t >= a2 or a2 <= a1:
        return 2.0
    return float(1.0 + (t - a1) / (a2 - a1))


def _codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Codes of a pilot's values (dense ranks, ties share one) and their number."""
    atoms, codes = np.unique(np.asarray(values, dtype=float), return_inverse=True)
    return codes.reshape(np.shape(values)), int(atoms.size)


@dataclass
class TwoGroupShift:
    """Two independent groups resampled from the pilot; the first shifted by ``strength``."""

    first: np.ndarray
    second: np.ndarray
    controls_per_patient: float = 1.0   # size of the second group per member of the first
    neutral: float = 0.5
    observed_strength: float = 0.0

    def sizes(self, n: int) -> tuple[int, int]:
        return int(n), max(2, int(np.ceil(self.controls_per_patient * n)))

    def effect(self, strength: float) -> float:
        return _theta(self.first, self.second, strength)

    def strength_for(self, effect: float) -> float:
        if np.isclose(effect, self.effect(0.0)):
            return 0.0
        return _shift_for(self.first, self.second, effect)

    def pvalues(self, rng: np.random.Generator, n_sim: int, n: int, strength: float) -> np.ndarray:
        m, k = self.sizes(n)
        codes, atoms = _codes(np.concatenate([self.first + strength, self.second]))
        ca, cb = codes[:self.first.size], codes[self.first.size:]
        a = ca[rng.integers(0, ca.size, (n_sim, m))]
        b = cb[rng.integers(0, cb.size, (n_sim, k))]
        mask = np.r_[np.ones(m, bool), np.zeros(k, bool)]
        return rankstats.mann_whitney_codes(np.concatenate([a, b], axis=1), mask, atoms)[1]


def _mixed_pairs(rng, x, y, n_sim, n, w, direction):
    """Pairs drawn from the pilot mixed with independence (w < 1) or monotone pairs (w > 1).

    Returns the pilot indices of each drawn x and y (monotone pairs: the x and y of
    equal rank, through the sorted orders).
    """
    size = x.size
    i = rng.integers(0, size, (n_sim, n))
    u = rng.random((n_sim, n))
    if w <= 1.0:
        j = rng.integers(0, size, (n_sim, n))
        return i, np.where(u < w, i, j)
    ox = np.argsort(x, kind="stable")
    oy = np.argsort(y, kind="stable")
    if direction < 0:
        oy = oy[::-1]
    mono = u < (w - 1.0)
    return np.where(mono, ox[i], i), np.where(mono, oy[i], i)


class _RankMixture:
    """One sample of n patients whose effect is a mixture of the data's pairing with
    independence (strength 0) and with perfect rank dependence (beyond 1); ``_levels``
    holds the effect at strengths 0, 1 and 2."""

    def sizes(self, n: int) -> tuple[int, int]:
        return int(n), 0

    def effect(self, strength: float) -> float:
        a0, a1, a2 = self._levels
        w = float(strength)
        return a0 + w * (a1 - a0) if w <= 1 else a1 + (w - 1) * (a2 - a1)

    def strength_for(self, effect: float) -> float:
        return mixture_strength(effect, *self._levels)


@dataclass
class PairMixture(_RankMixture):
    """Patients' (measure, clinical score) pairs; Spearman's rho with the t-approximation P."""

    x: np.ndarray
    y: np.ndarray
    neutral: float = 0.0
    observed_strength: float = 1.0

    def __post_init__(self):
        rho = _spearman(self.x, self.y)
        self.direction = 1.0 if rho >= 0 else -1.0
        ys = np.sort(self.y) if self.direction > 0 else np.sort(self.y)[::-1]
        self._levels = (0.0, rho, _spearman(np.sort(self.x), ys))
        self._cx, self._nx = _codes(self.x)
        self._cy, self._ny = _codes(self.y)

    def pvalues(self, rng, n_sim, n, strength):
        i, j = _mixed_pairs(rng, self.x, self.y, n_sim, n, float(strength), self.direction)
        return rankstats.spearman_codes(self._cx[i], self._cy[j], self._nx, self._ny)[1]


def _continuous_grades(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and width of each value's step of the empirical CDF (ties share the step)."""
    first = np.searchsorted(np.sort(values), values, "left")
    last = np.searchsorted(np.sort(values), values, "right")
    return first / values.size, (last - first) / values.size


@dataclass
class DprSplitMixture:
    """Patients split at the median DPR; Mann-Whitney of a measure, faster vs slower.

    ``x`` is the DPR, ``y`` the measure. A drawn patient's DPR is spread uniformly
    over its step of the pilot's CDF (the continuous extension of a discrete
    distribution), so that the simulated median split does not jump between whole
    pilot patients the way a split of tied resampled values would. The effect is
    theta = P(faster > slower) of the model, found by simulating ``calibration_n``
    patients at each strength of a grid (common random numbers), because the median
    split makes it non-linear in the strength.
    """

    x: np.ndarray
    y: np.ndarray
    calibration_n: int = 20000
    seed: int = 0
    neutral: float = 0.5
    observed_strength: float = 1.0

    def __post_init__(self):
        self._start, self._width = _continuous_grades(self.x)
        self._cy, self._ny = _codes(self.y)
        first = self.x > np.median(self.x)
        observed = _theta(self.y[first], self.y[~first])
        self.direction = 1.0 if observed >= 0.5 else -1.0
        self._grid = np.linspace(0.0, 2.0, 41)
        vals = []
        for w in self._grid:
            rng = np.random.default_rng([int(self.seed), 7])
            faster, codes = self._draw(rng, 1, self.calibration_n, float(w))
            u, _ = rankstats.mann_whitney_codes(codes, faster, self._ny)
            vals.append(float(u[0] / (faster.sum() * (~faster).sum())))
        vals = np.array(vals)
        # monotone in the pilot's direction (removes calibration noise)
        self._vals = np.maximum.accumulate(vals) if self.direction > 0 else np.minimum.accumulate(vals)

    def _draw(self, rng, n_sim, n, w):
        i, j = _mixed_pairs(rng, self.x, self.y, n_sim, n, w, self.direction)
        grade = self._start[i] + rng.random(i.shape) * self._width[i]
        return grade > np.median(grade, axis=-1, keepdims=True), self._cy[j]

    def sizes(self, n: int) -> tuple[int, int]:
        return int(n) // 2, int(n) - int(n) // 2

    def effect(self, strength: float) -> float:
        return float(np.interp(strength, self._grid, self._vals))

    def strength_for(self, effect: float) -> float:
        v = self._vals if self.direction > 0 else -self._vals
        t = effect if self.direction > 0 else -effect
        if t <= v[0]:
            return 0.0
        if t >= v[-1]:
            return 2.0
        return float(np.interp(t, v, self._grid))

    def pvalues(self, rng, n_sim, n, strength):
        faster, codes = self._draw(rng, n_sim, n, float(strength))
        return rankstats.mann_whitney_codes(codes, faster, self._ny)[1]


@dataclass
class ClusterMixture(_RankMixture):
    """Whole patients (K limb pairs each) resampled; pooled Spearman, cluster-robust P.

    ``x``, ``y`` : (G, K) arrays (measure per area, the contralateral limb's UMN score).
    For ``w > 1`` a drawn patient keeps its areas' measures and, with probability
    ``w - 1``, gets for each area the UMN score of the same pooled rank (perfect
    monotone dependence, limb by limb). ``test`` chooses the P: ``'cluster'`` (the
    cluster-robust test) or ``'naive'`` (limbs as independent, the paper's P).
    """

    x: np.ndarray
    y: np.ndarray
    test: str = "cluster"
    neutral: float = 0.0
    observed_strength: float = 1.0

    def __post_init__(self):
        g, k = self.x.shape
        pooled = _spearman(self.x.ravel(), self.y.ravel())
        self.direction = 1.0 if pooled >= 0 else -1.0
        # w = 0: every patient's areas with every patient's UMN vector (equal weights)
        ii, jj = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
        indep = _spearman(self.x[ii.ravel()].ravel(), self.y[jj.ravel()].ravel())
        self._ym = self._matched()
        self._levels = (indep, pooled, _spearman(self.x.ravel(), self._ym.ravel()))
        self._cx, self._nx = _codes(self.x)
        cy, self._ny = _codes(np.concatenate([self.y.ravel(), self._ym.ravel()]))
        self._cy, self._cym = cy[:self.y.size].reshape(self.y.shape), cy[self.y.size:].reshape(self.y.shape)

    def _matched(self) -> np.ndarray:
        ranks = np.argsort(np.argsort(self.x.ravel(), kind="stable"), kind="stable")
        ys = np.sort(self.y.ravel())
        if self.direction < 0:
            ys = ys[::-1]
        return ys[ranks].reshape(self.x.shape)

    def draw_codes(self, rng, n_sim, n, strength):
        g = self.x.shape[0]
        w = float(strength)
        i = rng.integers(0, g, (n_sim, n))
        u = rng.random((n_sim, n))[..., None]
        if w <= 1.0:
            j = rng.integers(0, g, (n_sim, n))
            cy = np.where(u < w, self._cy[i], self._cy[j])
        else:
            cy = np.where(u < (w - 1.0), self._cym[i], self._cy[i])
        return self._cx[i].reshape(n_sim, -1), cy.reshape(n_sim, -1)

    def pvalues(self, rng, n_sim, n, strength):
        cx, cy = self.draw_codes(rng, n_sim, n, strength)
        key = "p_cluster" if self.test == "cluster" else "p_naive"
        # tested in blocks of rows: the many temporaries then stay in cache (~1.5x faster)
        step = max(1, 150_000 // cx.shape[1])
        return np.concatenate([rankstats.pooled_spearman_codes(cx[i:i + step], cy[i:i + step], self._nx,
                                                               self._ny, n)[key]
                               for i in range(0, n_sim, step)])


@dataclass
class PairedAUCShift:
    """Participants' (measure, call) pairs per group; DeLong's paired test of AUC(measure) - AUC(call).

    ``case_score``/``control_score`` are oriented (higher = case); ``case_call``/
    ``control_call`` are 1 for a call of ALS. The cases' scores are shifted by ``strength``.
    """

    case_score: np.ndarray
    case_call: np.ndarray
    control_score: np.ndarray
    control_call: np.ndarray
    controls_per_patient: float = 1.0
    neutral: float = 0.0
    observed_strength: float = 0.0

    def __post_init__(self):
        self.reader_auc = _theta(self.case_call, self.control_call)
        calls, self._ncall = _codes(np.concatenate([self.case_call, self.control_call]))
        self._case_call, self._control_call = calls[:self.case_call.size], calls[self.case_call.size:]

    def sizes(self, n: int) -> tuple[int, int]:
        return int(n), max(2, int(np.ceil(self.controls_per_patient * n)))

    def effect(self, strength: float) -> float:
        return _theta(self.case_score, self.control_score, strength) - self.reader_auc

    def strength_for(self, effect: float) -> float:
        if np.isclose(effect, self.effect(0.0)):
            return 0.0
        return _shift_for(self.case_score, self.control_score,
                          float(np.clip(effect + self.reader_auc, 0.0, 1.0)))

    def pvalues(self, rng, n_sim, n, strength):
        m, k = self.sizes(n)
        i = rng.integers(0, self.case_score.size, (n_sim, m))
        j = rng.integers(0, self.control_score.size, (n_sim, k))
        codes, atoms = _codes(np.concatenate([self.case_score + strength, self.control_score]))
        cs, ks = codes[:self.case_score.size], codes[self.case_score.size:]
        return rankstats.delong_paired_codes(cs[i], ks[j], atoms, self._case_call[i],
                                             self._control_call[j], self._ncall)[1]
