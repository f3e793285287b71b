"""The replica: a synthetic cohort shaped like Cosottini et al. 2016, written as a dataset.

The study's data are private, so the default dataset the report runs on is a
replica generated here. It follows the data contract (``docs/data.md``) exactly —
participants, readers' calls, two-echo GRE images, Slicer annotations — and adds
the ground truth (``derivatives/truth/``) that lets the measurement be proved right.

Construction, in order (all from one seed; see :func:`make_cohort`):

1. **Cohort.** Enrolled / excluded counts, sex and age as in the paper (scaled to
   other cohort sizes). Marginals of the clinical scores are exact standardized
   quantiles of skewed distributions with the paper's mean and SD.
2. **Joint structure.** Subject-level clinical and imaging variables are joined
   with the Iman–Conover method (van der Waerden scores, Cholesky re-correlation)
   towards a target rank-correlation matrix built from the reported Spearman r,
   then refined by greedy rank swaps that minimise the distance to every
   calibration target at once (subject-level and pooled per-limb Spearman r,
   derived DPR and disease-duration moments, the readers' correct-vs-missed
   contrasts, the DPR median split). Swaps move ranks only, so every marginal
   stays exact; the refinement runs for cohorts of up to 400 analysed patients
   (beyond that Iman-Conover alone is accurate).
3. **Areas.** Per hemisphere and Penfield area, thickness and intensity are the
   subject mean plus a within-subject deviation driven by the contralateral
   limb's UMN score and a small area-to-area noise, centred within subject so the
   subject mean is exact. The pooled per-limb r is among the refinement's
   targets. Thickness targets are met by the truth (what a rater-independent
   profile measurement sees). The simulated rater's endpoint error (about a voxel)
   is drawn afterwards from its own stream, independently of the calibration, so
   what a caliper-based analysis finds is measured, not set. Deep-layer R2* (iron)
   is then solved so the noise-free normalized intensity on echo 2 equals the target.
4. **Readers.** A latent visibility of thinning and hypointensity (from the
   truth, plus a small per-reader perception noise); each reader calls the
   top-k of each group, k being the paper's counts scaled; reader 2's positives
   are taken from reader 1's, which gives 25/31 agreements (kappa 0.61).
5. **Images and annotations** (:mod:`m1lib.phantom`): a 2D multi-slice axial slab
   rendered from the anatomy, the rater's calipers with about one voxel of jitter.

Only this module and the paper-vs-run table read ``m1lib/data/paper_values.yaml``.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from m1lib import contract
from m1lib import markups as mk
from m1lib import phantom as ph
from m1lib.errors import DataError
from m1lib.results import round_half_up

DEFAULT_SEED = 20160301
DEFAULT_N_ALS = 22
DEFAULT_N_HS = 14

READERS = ("reader1", "reader2")

# Subject-level distributions of the truth not reported by the paper (chosen so the
# reported effects come out; thickness means are the paper's 2.0 / 1.5 mm).
THICKNESS_HS = (2.0, 0.12)        # mean, sd of the subject mean (mm)
THICKNESS_ALS = (1.5, 0.20)
INTENSITY_HS = (0.74, 0.030)      # normalized deep-layer intensity, echo 2
INTENSITY_ALS = (0.740, 0.050)
AREA_SD_THICKNESS = 0.07          # within-subject area-to-area sd (mm)
AREA_SD_INTENSITY = 0.015
# Within-subject weight of the contralateral limb's UMN drive (0-1) on an area.
BETA_THICKNESS = 0.25             # mm thinner at a limb score of 8 than at 0
BETA_INTENSITY = 0.04
THICKNESS_RANGE = (1.0, 2.45)     # a deep layer thinner than 1 mm would not hold the ROI
INTENSITY_RANGE = (0.60, 0.86)    # keeps the deep layer distinct from both neighbours

# The simulated rater's endpoint error, per in-plane axis: about one voxel (0.25 mm)
# of displacement per endpoint.
RATER_SD_MM = 0.25 / math.sqrt(2)

# Optional electrophysiology / plasma columns: plausible marginals, unrelated to imaging.
OPTIONAL_MARGINALS = {
    "cmct_ms": (8.5, 2.5, 1),
    "cortical_latency_ms": (21.5, 2.8, 1),
    "cortical_silent_period_ms": (125.0, 35.0, 0),
    "frap": (0.95, 0.20, 2),
    "aopp": (115.0, 45.0, 0),
    "thiols": (310.0, 60.0, 0),
}


# --------------------------------------------------------------------------- paper
@lru_cache(maxsize=1)
def paper_values() -> dict:
    """The paper's reported numbers (``m1lib/data/paper_values.yaml``)."""
    text = resources.files("m1lib").joinpath("data/paper_values.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def _targets() -> dict:
    """Calibration targets pulled out of the paper's values."""
    pv = paper_values()
    q = pv["quantitative"]
    vr = pv["visual_reading"]
    return {
        "clinical": pv["cohort"]["als_clinical_mean_sd"],
        "r_thick_dpr": q["thickness_mm"]["spearman"]["dpr"]["r"],
        "r_thick_alsfrs": q["thickness_mm"]["spearman"]["alsfrs_r"]["r"],
        "r_int_dpr": q["intensity_normalized"]["spearman"]["dpr"]["r"],
        "r_int_alsfrs": q["intensity_normalized"]["spearman"]["alsfrs_r"]["r"],
        "r_thick_limb": q["thickness_mm"]["spearman"]["umn_limb"]["r"],
        "r_int_limb": q["intensity_normalized"]["spearman"]["umn_limb"]["r"],
        "p_int_dpr_split": q["intensity_normalized"]["faster_vs_slower_dpr_p"],
        "reads": vr,
        "cohort": pv["cohort"],
    }


# ------------------------------------------------------------------- small helpers
def scaled_count(count: int, of: int, n: int) -> int:
    """The paper's ``count`` of ``of`` scaled to a group of ``n`` (half rounds up).

    Examples
    --------
    >>> scaled_count(12, 18, 18), scaled_count(12, 18, 3), scaled_count(4, 22, 4)
    (12, 2, 1)
    """
    return max(0, min(n, int(round_half_up(count * n / of))))


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


# ------------------------------------------------------------- subject-level ALS
_COLS = ("dpr0", "loss", "umn_total", "mrc", "thickness", "intensity") + tuple(OPTIONAL_MARGINALS)
_I = {name: i for i, name in enumerate(_COLS)}


def _als_marginals(n: int, clin: dict) -> np.ndarray:
    """Exact marginals (n values per column) of the analysed patients' variables."""
    dpr_m, dpr_s = clin["dpr"]
    loss_m, loss_s = 48 - clin["alsfrs_r"][0], clin["alsfrs_r"][1]
    umn_m, umn_s = clin["umn_score"]
    mrc_m, mrc_s = clin["mrc"]
    cols = {
        "dpr0": _std_quantiles(_lognormal(dpr_m, dpr_s), n, dpr_m, dpr_s),
        "loss": _int_quantiles(_gamma(loss_m, loss_s), n, loss_m, loss_s, 1, 47),
        "umn_total": _int_quantiles(_gamma(umn_m, umn_s), n, umn_m, umn_s, 0, 33),
        # MRC has a ceiling at 130: a reflected gamma.
        "mrc": 130 - _int_quantiles(_gamma(130 - mrc_m, mrc_s), n, 130 - mrc_m, mrc_s, 0, 130),
        "thickness": _std_quantiles(stats.norm, n, *THICKNESS_ALS),
        "intensity": _std_quantiles(stats.norm, n, *INTENSITY_ALS),
    }
    for name, (m, s, dec) in OPTIONAL_MARGINALS.items():
        cols[name] = np.round(_std_quantiles(_gamma(m, s), n, m, s), dec)
    return np.column_stack([cols[c] for c in _COLS]).astype(float)


def _target_matrix(t: dict, rho_dpr_loss: float) -> np.ndarray:
    k = len(_COLS)
    c = np.eye(k)

    def put(a, b, r):
        c[_I[a], _I[b]] = c[_I[b], _I[a]] = r

    put("dpr0", "loss", rho_dpr_loss)
    put("thickness", "dpr0", t["r_thick_dpr"])
    put("thickness", "loss", -t["r_thick_alsfrs"])
    put("intensity", "dpr0", t["r_int_dpr"])
    put("intensity", "loss", -t["r_int_alsfrs"])
    put("umn_total", "thickness", -0.75)
    put("umn_total", "intensity", -0.55)
    put("umn_total", "dpr0", 0.50)
    put("umn_total", "loss", 0.35)
    put("thickness", "intensity", 0.45)
    put("mrc", "loss", -0.50)
    put("mrc", "dpr0", -0.25)
    put("cmct_ms", "cortical_latency_ms", 0.5)
    return c


def _derive_duration(dpr0: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Disease duration (whole months) and the DPR it implies."""
    months = np.maximum(1.0, np.rint(loss / dpr0))
    return months, loss / months


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


def visibility(thickness: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Latent visibility of deep-layer thinning and hypointensity (z units vs healthy)."""
    return ((THICKNESS_HS[0] - np.asarray(thickness)) / THICKNESS_HS[1]
            + (INTENSITY_HS[0] - np.asarray(intensity)) / INTENSITY_HS[1])


def _reader_calls(vis: np.ndarray, noise: np.ndarray, k1: int, k2: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean positive calls of reader 1 and 2 for one group (reader 2 within reader 1)."""
    n = len(vis)
    r1 = np.zeros(n, bool)
    r2 = np.zeros(n, bool)
    if k1 > 0:
        r1[np.argsort(-(vis + noise[0]), kind="stable")[:k1]] = True
    if k2 > 0:
        cand = np.flatnonzero(r1)
        score = vis[cand] + noise[1][cand]
        r2[cand[np.argsort(-score, kind="stable")[:k2]]] = True
    return r1, r2


class _Objective:
    """Distance of one arrangement of the analysed patients' table to the targets."""

    def __init__(self, t: dict, n: int, reader_noise: np.ndarray, k1: int, k2: int,
                 profiles: np.ndarray, eps_t: np.ndarray, eps_i: np.ndarray):
        self.t, self.n, self.noise, self.k1, self.k2 = t, n, reader_noise, k1, k2
        self.profiles, self.eps_t, self.eps_i = profiles, eps_t, eps_i
        # The rater's caliper error is NOT known here: it is drawn after the
        # calibration, so caliper results emerge from the simulated measurement.
        self.limb_cols = np.array([a != "face" for _, a in _area_keys()])
        clin = t["clinical"]
        self.dur = clin["disease_duration_months"]
        self.dpr = clin["dpr"]
        rd = t["reads"]["correct_vs_misdiagnosed"]
        self.reads = rd

    def ranks(self, a: np.ndarray) -> np.ndarray:
        """Column ranks of ``a``; the UMN column ranks the profiles' totals (with ties)."""
        r = np.column_stack([_rank1(a[:, j]) for j in range(a.shape[1])])
        j = _I["umn_total"]
        r[:, j] = _rank1(self.profiles[a[:, j].astype(int)].sum(axis=1).astype(float))
        return r

    def stats(self, a: np.ndarray, ranks: np.ndarray | None = None) -> dict:
        """Calibration statistics of arrangement ``a`` (``ranks``: its column ranks)."""
        if ranks is None:
            ranks = self.ranks(a)
        months, dpr = _derive_duration(a[:, _I["dpr0"]], a[:, _I["loss"]])
        th, it = a[:, _I["thickness"]], a[:, _I["intensity"]]
        prof = self.profiles[a[:, _I["umn_total"]].astype(int)]
        umn = prof.sum(axis=1)
        drive = _profile_drive(prof)
        r_dpr = _rank1(dpr)
        opt = [ranks[:, _I[c]] for c in OPTIONAL_MARGINALS]
        # ALSFRS-R = 48 - loss: its ranks are reversed loss ranks.
        cols = np.column_stack([ranks[:, _I["thickness"]], ranks[:, _I["intensity"]], r_dpr,
                                -ranks[:, _I["loss"]], ranks[:, _I["umn_total"]]] + opt)
        r = _corr_of_ranks(cols)
        out = {
            "r_thick_dpr": r[0, 2], "r_thick_alsfrs": r[0, 3],
            "r_int_dpr": r[1, 2], "r_int_alsfrs": r[1, 3],
            "r_thick_umn": r[0, 4], "r_int_umn": r[1, 4], "r_dpr_umn": r[2, 4],
            "r_optional_max": float(np.abs(r[:2, 5:]).max()) if r.shape[0] > 5 else 0.0,
            "duration_mean": months.mean(), "duration_sd": months.std(ddof=1),
            "dpr_mean": dpr.mean(), "dpr_sd": dpr.std(ddof=1),
        }
        lc = self.limb_cols
        area_t = _area_values(th, drive, BETA_THICKNESS, self.eps_t, *THICKNESS_RANGE)
        out["r_thick_limb"] = _pooled_r(area_t, drive, lc)
        out["r_int_limb"] = _pooled_r(_area_values(it, drive, BETA_INTENSITY, self.eps_i,
                                                   *INTENSITY_RANGE), drive, lc)
        fast = dpr > np.median(dpr)
        r_it = ranks[:, _I["intensity"]]
        out["p_int_dpr_split"] = _mw_p_fast(r_it[fast], int((~fast).sum()))
        r_th = ranks[:, _I["thickness"]]
        out["p_thick_dpr_split"] = _mw_p_fast(r_th[fast], int((~fast).sum()))
        r1, r2 = _reader_calls(visibility(th, it), self.noise, self.k1, self.k2)
        for name, pos in (("reader1", r1), ("reader2", r2)):
            for var, v in (("umn_score", umn), ("dpr", dpr)):
                out[f"{var}_{name}_correct"] = v[pos].mean() if pos.any() else np.nan
                out[f"{var}_{name}_missed"] = v[~pos].mean() if (~pos).any() else np.nan
        return out

    def __call__(self, a: np.ndarray, ranks: np.ndarray | None = None) -> float:
        s = self.stats(a, ranks)
        t = self.t
        loss = 0.0
        for key in ("r_int_dpr", "r_int_alsfrs", "r_int_limb"):
            loss += 4.0 * (s[key] - t[key]) ** 2
        # thickness: the truth (what a rater-independent measurement sees)
        for key in ("dpr", "alsfrs", "limb"):
            loss += 4.0 * (s[f"r_thick_{key}"] - t[f"r_thick_{key}"]) ** 2
        loss += 0.3 * (s["r_dpr_umn"] - 0.50) ** 2
        loss += 2.0 * max(0.0, s["r_optional_max"] - 0.2) ** 2
        for (m, sd), key in ((self.dur, "duration"), (self.dpr, "dpr")):
            loss += 4.0 * max(0.0, abs(s[f"{key}_mean"] - m) / sd - 0.04) ** 2
            loss += 4.0 * max(0.0, abs(s[f"{key}_sd"] - sd) / sd - 0.04) ** 2
        p = s["p_int_dpr_split"]
        if np.isfinite(p) and self.n >= 8:
            loss += 0.3 * (math.log10(max(p, 1e-12)) - math.log10(t["p_int_dpr_split"])) ** 2
            # the paper found no thickness difference between faster and slower progressors
            p = s["p_thick_dpr_split"]
            loss += 0.3 * min(0.0, math.log10(max(p, 1e-12)) - math.log10(0.1)) ** 2
        for var, scale in (("umn_score", 10.0), ("dpr", 0.47)):
            for reader in READERS:
                ref = self.reads[var][reader]
                for grp in ("correct", "missed"):
                    v = s[f"{var}_{reader}_{grp}"]
                    if np.isfinite(v):
                        loss += 0.3 * ((v - ref[grp][0]) / scale) ** 2
        return loss


def _refine(a: np.ndarray, objective: _Objective, rng: np.random.Generator,
            n_iter: int, tol: float = 2e-4, patience: int = 500) -> np.ndarray:
    """Greedy rank swaps within columns that lower the objective (marginals unchanged).

    Stops after ``n_iter`` proposals, once the objective is below ``tol``, or after
    ``patience`` proposals in a row that did not help.
    """
    n, k = a.shape
    if n < 4 or n_iter <= 0:
        return a
    ranks = objective.ranks(a)
    movable = [j for j in range(k) if j != _I["thickness"]]
    best = objective(a, ranks)
    cols = rng.choice(movable, size=n_iter)
    pairs = rng.integers(0, n, size=(n_iter, 2))
    stale = 0
    for it in range(n_iter):
        if best < tol or stale > patience:
            break
        j = cols[it]
        i1, i2 = pairs[it]
        stale += 1
        if i1 == i2 or a[i1, j] == a[i2, j]:
            continue
        sw = [i1, i2], [i2, i1]
        a[sw[0], j] = a[sw[1], j]
        ranks[sw[0], j] = ranks[sw[1], j]
        val = objective(a, ranks)
        if val < best:
            best, stale = val, 0
        else:
            a[sw[0], j] = a[sw[1], j]
            ranks[sw[0], j] = ranks[sw[1], j]
    return a


def _profile_drive(prof: np.ndarray) -> np.ndarray:
    """(n, 8) area drives from (n, 5) UMN profiles (bulbar, arm L/R, leg L/R)."""
    col = {c: i for i, c in enumerate(contract.UMN_COLUMNS)}
    idx = [col[contract.LIMB_UMN_COLUMN[k]] for k in _area_keys()]
    scale = np.array([1.0 if contract.LIMB_UMN_COLUMN[k] == "umn_bulbar" else 8.0
                      for k in _area_keys()])
    return prof[:, idx] / scale


def _als_subject_table(n: int, rng: np.random.Generator, t: dict, k1: int, k2: int,
                       n_iter: int = 3000) -> tuple[pd.DataFrame, dict]:
    """Subject-level values of the ``n`` analysed patients.

    Returns the table (one row per patient: clinical scores, UMN profile, subject
    mean thickness and intensity, optional columns) and the per-row draws the
    calibration used (reader noise, area deviations), which must be reused.
    """
    reader_noise = rng.normal(0.0, 0.5, size=(2, n))
    n_areas = len(_area_keys())
    eps_t = rng.normal(0.0, AREA_SD_THICKNESS, (n, n_areas))
    eps_i = rng.normal(0.0, AREA_SD_INTENSITY, (n, n_areas))
    a = _als_marginals(n, t["clinical"])
    # UMN profiles (bulbar + 4 limbs) travel with their total: the column holds an
    # index into the profiles sorted by total.
    totals = np.sort(a[:, _I["umn_total"]]).astype(int)
    split = _split_umn(totals, rng)
    profiles = np.column_stack([split[c] for c in contract.UMN_COLUMNS])
    a[:, _I["umn_total"]] = np.arange(n)
    a = iman_conover(a, _target_matrix(t, 0.45), rng)
    obj = _Objective(t, n, reader_noise, k1, k2, profiles, eps_t, eps_i)
    if n <= 400:
        a = _refine(a, obj, rng, n_iter)
    months, _ = _derive_duration(a[:, _I["dpr0"]], a[:, _I["loss"]])
    df = pd.DataFrame({c: a[:, _I[c]] for c in _COLS})
    prof = profiles[a[:, _I["umn_total"]].astype(int)]
    for j, c in enumerate(contract.UMN_COLUMNS):
        df[c] = prof[:, j]
    df["umn_total"] = prof.sum(axis=1)
    df["disease_duration_months"] = months
    df["alsfrs_r"] = 48 - df["loss"]
    return df.drop(columns=["dpr0", "loss"]), {"reader_noise": reader_noise, "eps_t": eps_t,
                                               "eps_i": eps_i}


# ----------------------------------------------------------------- cohort sizes
def cohort_counts(n_als: int, n_hs: int) -> dict:
    """Enrolled, excluded and positive-call counts, the paper's scaled to the cohort.

    Examples
    --------
    >>> c = cohort_counts(22, 14)
    >>> c["excluded"], c["analysed"], c["female"]
    ({'ALS': 4, 'HS': 1}, {'ALS': 18, 'HS': 13}, {'ALS': 5, 'HS': 8})
    >>> c["positive"]
    {'reader1': {'ALS': 12, 'HS': 3}, 'reader2': {'ALS': 9, 'HS': 0}}
    """
    t = _targets()
    co = t["cohort"]
    enrolled = {"ALS": int(n_als), "HS": int(n_hs)}
    excluded = {g: scaled_count(co["excluded_motion_artifacts"][g], co["enrolled"][g], n)
                for g, n in enrolled.items()}
    analysed = {g: enrolled[g] - excluded[g] for g in enrolled}
    female = {g: scaled_count(co["sex_enrolled"][g]["F"], co["enrolled"][g], n)
              for g, n in enrolled.items()}
    positive = {}
    for r in READERS:
        positive[r] = {g: scaled_count(t["reads"][r]["positive"][g], co["analysed"][g], analysed[g])
                       for g in enrolled}
    for g in enrolled:   # reader 2's positives are a subset of reader 1's
        positive["reader2"][g] = min(positive["reader2"][g], positive["reader1"][g])
    return {"enrolled": enrolled, "excluded": excluded, "analysed": analysed,
            "female": female, "positive": positive}


def _ids(prefix: str, n: int) -> list[str]:
    width = max(2, len(str(n)))
    return [f"sub-{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(stream)))


# stream ids of the seed (each part of the replica draws from its own stream)
_S_COHORT, _S_ALS, _S_HS, _S_AREAS, _S_ANATOMY, _S_RATER, _S_NOISE = range(7)


def _split_umn(total: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Split total UMN scores (0-33) into bulbar (0-1) and four limb scores (0-8 each).

    Asymmetric (one side and one limb usually worse, as in limb-onset ALS), with
    the sum preserved exactly.
    """
    n = len(total)
    total = np.asarray(total, dtype=int)
    bulbar = (rng.random(n) < np.clip(total / 14.0, 0.0, 0.9)).astype(int)
    bulbar[total == 0] = 0
    limbs_sum = np.minimum(total - bulbar, 32)
    w = rng.dirichlet([3.0, 3.0, 3.0, 3.0], size=n)        # arm_l, arm_r, leg_l, leg_r
    raw = w * limbs_sum[:, None]
    x = np.floor(raw).astype(int)
    rem = limbs_sum - x.sum(axis=1)
    order = np.argsort(-(raw - x), axis=1, kind="stable")
    for step in range(4):
        give = rem > step
        x[np.arange(n)[give], order[give, step]] += 1
    for _ in range(8):                                      # cap at 8, move the excess
        over = np.maximum(x - 8, 0)
        if not over.any():
            break
        x -= over
        spill = over.sum(axis=1)
        room = np.where(x < 8, 8 - x, 0)
        target = np.argmax(room, axis=1)
        x[np.arange(n), target] += spill
    return {"umn_bulbar": bulbar, "umn_arm_left": x[:, 0], "umn_arm_right": x[:, 1],
            "umn_leg_left": x[:, 2], "umn_leg_right": x[:, 3]}


def _random_from(values_dist, rng, n):
    return values_dist.ppf(rng.uniform(0.02, 0.98, size=n))


def _excluded_als(n: int, rng: np.random.Generator, clin: dict) -> pd.DataFrame:
    """Clinical values of enrolled patients excluded for motion (not calibrated)."""
    dpr_m, dpr_s = clin["dpr"]
    loss_m, loss_s = 48 - clin["alsfrs_r"][0], clin["alsfrs_r"][1]
    dpr0 = _random_from(_lognormal(dpr_m, dpr_s), rng, n)
    loss = np.clip(np.rint(_random_from(_gamma(loss_m, loss_s), rng, n)), 1, 47)
    months, _ = _derive_duration(dpr0, loss)
    df = pd.DataFrame({
        "alsfrs_r": 48 - loss, "disease_duration_months": months,
        "umn_total": np.clip(np.rint(_random_from(_gamma(*clin["umn_score"]), rng, n)), 0, 33),
        "mrc": np.clip(np.rint(130 - _random_from(_gamma(130 - clin["mrc"][0], clin["mrc"][1]),
                                                  rng, n)), 0, 130),
        "thickness": rng.normal(*THICKNESS_ALS, size=n),
        "intensity": rng.normal(*INTENSITY_ALS, size=n),
    })
    for name, (m, s, dec) in OPTIONAL_MARGINALS.items():
        df[name] = np.round(_random_from(_gamma(m, s), rng, n), dec)
    return df


# ------------------------------------------------------------------ area level
def _area_keys() -> list[tuple[str, str]]:
    return [(h, a) for h in contract.HEMISPHERES for a in contract.AREAS]


def _drive(participants: pd.DataFrame) -> np.ndarray:
    """(P, 8) UMN drive of each area: contralateral limb score / 8; bulbar for face."""
    keys = _area_keys()
    out = np.zeros((len(participants), len(keys)))
    for j, (h, a) in enumerate(keys):
        col = contract.LIMB_UMN_COLUMN[(h, a)]
        v = pd.to_numeric(participants[col], errors="coerce").to_numpy(float)
        out[:, j] = np.nan_to_num(v / (1.0 if col == "umn_bulbar" else 8.0))
    return out


def _area_values(mean: np.ndarray, drive: np.ndarray, beta: float, eps: np.ndarray,
                 lo: float, hi: float) -> np.ndarray:
    """Subject mean + within-subject deviation (centred), kept in [lo, hi]."""
    dev = -beta * (drive - drive.mean(axis=1, keepdims=True))
    dev += eps - eps.mean(axis=1, keepdims=True)
    v = mean[:, None] + dev
    for _ in range(4):   # clipping moves the mean: shift back, clip again
        v = np.clip(v, lo, hi)
        v += (mean - v.mean(axis=1))[:, None]
    return np.clip(v, lo, hi)


def _pooled_r(values: np.ndarray, drive: np.ndarray, cols: np.ndarray) -> float:
    v, d = values[:, cols].ravel(), drive[:, cols].ravel()
    return float(np.corrcoef(_rank1(v), _rank1(d))[0, 1])


# -------------------------------------------------------------------- anatomy
def _draw_anatomy(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per participant (P), hemisphere (2: L, R) and slice (K) stripe geometry."""
    K = ph.N_SLICES
    k = np.arange(K) - (K - 1) / 2
    shape = (n, 2, K)
    side = np.array([-1.0, 1.0])[None, :, None]
    cx_abs = rng.normal(26.0, 2.0, (n, 2, 1)) + 0.25 * k
    rc = rng.uniform(62.0, 75.0, (n, 2, 1)) + rng.normal(0.0, 0.8, shape)
    y_cs = rng.normal(-12.0, 1.5, (n, 2, 1)) - 0.6 * k + rng.normal(0.0, 0.4, shape)
    t_sup = np.clip(rng.normal(1.35, 0.08, (n, 2, 1)), 1.15, 1.6) + np.zeros(shape)
    return {
        "cx": side * cx_abs, "cy": y_cs + rc, "rc": rc,
        "gap_cs": rng.uniform(1.3, 2.0, shape), "t_sup": t_sup,
        "core_pre": rng.uniform(3.5, 5.0, shape), "gap_pre": rng.uniform(1.2, 1.8, shape),
        "core_post": rng.uniform(2.8, 4.0, shape), "gap_post": rng.uniform(1.2, 1.8, shape),
        "core_gen": rng.uniform(3.5, 5.5, shape),
        "x_area": np.stack([rng.normal(ph.AREA_X_MM[a], 1.2, (n, 2)) for a in contract.AREAS],
                           axis=-1),
    }


def _slice_profile(per_area: np.ndarray) -> np.ndarray:
    """(P, 2, 4 areas) -> (P, 2, K) by linear interpolation between area slices."""
    order = sorted(contract.AREAS, key=lambda a: ph.AREA_SLICE[a])
    ks = np.array([ph.AREA_SLICE[a] for a in order], float)
    idx = [contract.AREAS.index(a) for a in order]
    vals = per_area[..., idx]
    kk = np.arange(ph.N_SLICES)
    flat = vals.reshape(-1, len(idx))
    out = np.stack([np.interp(kk, ks, row) for row in flat])
    return out.reshape(per_area.shape[:2] + (ph.N_SLICES,))


# ---------------------------------------------------------------------- cohort
def make_cohort(seed: int = DEFAULT_SEED, n_als: int = DEFAULT_N_ALS,
                n_hs: int = DEFAULT_N_HS, oblique: bool = False, *,
                rater_seed: int | None = None) -> dict[str, pd.DataFrame]:
    """Build the replica's tables (no images): participants, reads, truth, anatomy.

    Parameters
    ----------
    seed : int
        Seed of every random draw (each part uses its own stream of it).
    n_als, n_hs : int
        Enrolled patients and healthy subjects (>= 1 each).
    oblique : bool
        Whether the slab is tilted (changes world coordinates only).
    rater_seed : int, optional
        Seed of the simulated rater's caliper errors (default ``seed``). They are
        drawn after the calibration; another ``rater_seed`` changes the calipers and
        nothing else.

    Returns
    -------
    dict of DataFrame
        ``participants`` (the contract's ``participants.tsv``), ``visual_reads``,
        ``truth_areas``, ``truth_participants`` and ``anatomy`` (the phantom's
        per participant, hemisphere and slice geometry).

    Notes
    -----
    ``truth_areas`` (one row per participant, hemisphere, area): ``slice_index``
    (0-based), ``thickness_mm``, ``r2star_s``, ``m0`` (image units, bias
    excluded), ``intensity`` (noise-free deep-layer signal at the caliper
    midpoint / noise-free signal at the precuneus reference, echo 2, bias field
    included), ``signal_echo1/2`` and ``bias`` at the midpoint, the true edges
    ``edge_outer_*`` (superficial/deep) and ``edge_inner_*`` (deep/U-fibre
    onset), ``midpoint_*``, the unit ``normal_*`` (superficial to white matter)
    and the rater's caliper ``caliper_outer_*``, ``caliper_inner_*``,
    ``caliper_length_mm`` — coordinates in world RAS mm. ``truth_participants``:
    ``motion``, ``snr`` (superficial cortex, echo 1, over the noise sd),
    ``sigma`` (noise sd, image units), the reference point (``ref_*`` true,
    ``ref_marked_*`` as annotated) and its signals, tissue and bias parameters.
    """
    if int(n_als) < 1 or int(n_hs) < 1:
        raise DataError(f"the replica needs at least one patient and one healthy subject "
                        f"(got n_als={n_als}, n_hs={n_hs})")
    t = _targets()
    clin = t["clinical"]
    counts = cohort_counts(n_als, n_hs)
    rng = _rng(seed, _S_COHORT)
    age_ms = t["cohort"]["age_enrolled_mean_sd"]

    parts = []
    for g, prefix in (("ALS", "ALS"), ("HS", "HS")):
        n = counts["enrolled"][g]
        ids = _ids(prefix, n)
        excl = np.zeros(n, bool)
        excl[rng.choice(n, counts["excluded"][g], replace=False)] = True
        female = np.zeros(n, bool)
        female[rng.choice(n, counts["female"][g], replace=False)] = True
        age = np.clip(np.rint(rng.permutation(
            _std_quantiles(stats.norm, n, *age_ms[g]))), 18, 95).astype(int)
        parts.append(pd.DataFrame({
            "participant_id": ids, "group": g, "age": age,
            "sex": np.where(female, "F", "M"), "excluded": excl,
            "exclusion_reason": np.where(excl, "motion artifacts", "n/a"),
        }))
    p = pd.concat(parts, ignore_index=True)
    is_als = (p["group"] == "ALS").to_numpy()
    analysed = ~p["excluded"].to_numpy()

    # --- ALS subject level (calibrated), excluded patients (not calibrated)
    arng = _rng(seed, _S_ALS)
    k1 = counts["positive"]["reader1"]["ALS"]
    k2 = counts["positive"]["reader2"]["ALS"]
    sub, draws = _als_subject_table(counts["analysed"]["ALS"], arng, t, k1, k2)
    exc = _excluded_als(counts["excluded"]["ALS"], arng, clin)
    als_rows = np.flatnonzero(is_als & analysed)
    exc_rows = np.flatnonzero(is_als & ~analysed)
    subj_cols = ["alsfrs_r", "disease_duration_months", "mrc", "umn_total", "thickness",
                 "intensity"] + list(OPTIONAL_MARGINALS)
    for c in subj_cols:
        p[c] = np.nan
    p.loc[als_rows, subj_cols] = sub[subj_cols].to_numpy()
    p.loc[exc_rows, subj_cols] = exc[subj_cols].to_numpy()
    umn = _split_umn(p.loc[exc_rows, "umn_total"].to_numpy(int), arng)
    for c in contract.UMN_COLUMNS:
        p[c] = np.nan
        p.loc[als_rows, c] = sub[c].to_numpy()
        p.loc[exc_rows, c] = umn[c]

    # --- HS subject level
    hrng = _rng(seed, _S_HS)
    hs_rows = np.flatnonzero(~is_als & analysed)
    hs_exc = np.flatnonzero(~is_als & ~analysed)
    m = np.column_stack([_std_quantiles(stats.norm, len(hs_rows), *THICKNESS_HS),
                         _std_quantiles(stats.norm, len(hs_rows), *INTENSITY_HS)])
    m = iman_conover(m, np.array([[1.0, 0.3], [0.3, 1.0]]), hrng)
    p.loc[hs_rows, "thickness"] = m[:, 0]
    p.loc[hs_rows, "intensity"] = m[:, 1]
    p.loc[hs_exc, "thickness"] = hrng.normal(*THICKNESS_HS, size=len(hs_exc))
    p.loc[hs_exc, "intensity"] = hrng.normal(*INTENSITY_HS, size=len(hs_exc))
    hs_noise = hrng.normal(0.0, 0.5, size=(2, len(hs_rows)))

    # --- readers' calls (analysed participants only)
    p["visibility"] = visibility(p["thickness"], p["intensity"])
    calls = {r: np.full(len(p), "", dtype=object) for r in READERS}
    for rows, noise, g in ((als_rows, draws["reader_noise"], "ALS"), (hs_rows, hs_noise, "HS")):
        r1, r2 = _reader_calls(p.loc[rows, "visibility"].to_numpy(), noise,
                               counts["positive"]["reader1"][g], counts["positive"]["reader2"][g])
        calls["reader1"][rows] = np.where(r1, "ALS", "normal")
        calls["reader2"][rows] = np.where(r2, "ALS", "normal")
    reads = pd.DataFrame([
        {"participant_id": pid, "reader": r, "call": calls[r][i]}
        for i, pid in enumerate(p["participant_id"]) if analysed[i] for r in READERS])

    # --- areas: thickness and intensity per hemisphere and Penfield area
    P = len(p)
    keys = _area_keys()
    drive = _drive(p)
    drive[~is_als] = 0.0
    ar = _rng(seed, _S_AREAS)
    eps_t = ar.normal(0.0, AREA_SD_THICKNESS, (P, len(keys)))
    eps_i = ar.normal(0.0, AREA_SD_INTENSITY, (P, len(keys)))
    eps_t[als_rows] = draws["eps_t"]      # the draws the calibration used
    eps_i[als_rows] = draws["eps_i"]
    # the simulated rater's endpoint errors: drawn after the calibration, from a stream
    # of their own (``rater_seed``), so they are independent of everything calibrated
    rseed = seed if rater_seed is None else rater_seed
    rater = _rng(rseed, _S_RATER).normal(0.0, RATER_SD_MM, (P, len(keys), 2, 2))
    rater_ref = _rng(rseed, _S_RATER, 1).normal(0.0, RATER_SD_MM, (P, 2))
    thick = _area_values(p["thickness"].to_numpy(float), drive, BETA_THICKNESS, eps_t,
                         *THICKNESS_RANGE)
    inten = _area_values(p["intensity"].to_numpy(float), drive, BETA_INTENSITY, eps_i,
                         *INTENSITY_RANGE)

    # --- anatomy, tissues, bias, noise level
    an = _draw_anatomy(_rng(seed, _S_ANATOMY), P)
    prng = _rng(seed, _S_ANATOMY, 1)
    gain = 2000.0 * prng.uniform(0.85, 1.15, P)
    r2_ctx = ph.TISSUE_DEFAULTS["cortex"][1] + prng.normal(0.0, 0.8, P)
    r2_wm = ph.TISSUE_DEFAULTS["wm"][1] + prng.normal(0.0, 1.2, P)
    m0_csf = ph.TISSUE_DEFAULTS["csf"][0] * (1 + prng.normal(0.0, 0.02, P))
    m0_deep = ph.TISSUE_DEFAULTS["deep"][0] * (1 + prng.normal(0.0, 0.01, P))
    bias = np.clip(prng.normal(0.0, 0.04, (P, 5)), -0.08, 0.08)
    snr = np.clip(prng.normal(28.0, 2.0, P), 23.0, 34.0)
    m0_ctx = ph.TISSUE_DEFAULTS["cortex"][0]
    te1, te2 = ph.ECHO_TIMES_S
    sigma = gain * m0_ctx * np.exp(-te1 * r2_ctx) / snr
    motion = ~analysed
    motion_blur = np.where(motion, prng.uniform(1.0, 2.5, P), 0.0)
    motion_ghost = np.where(motion, prng.uniform(0.15, 0.35, P), 0.0)
    x_s, y_s, z_s = ph.slab_axes()
    ref_slab = np.column_stack([
        np.full(P, -(ph.MIDLINE["csf"] + ph.MIDLINE["precuneus_cortex"] / 2)),
        ph.REF_Y + prng.uniform(-1.5, 1.5, P), np.full(P, z_s[ph.REF_SLICE])])
    ref_bias = np.array([ph.bias_at(bias[i], ref_slab[i]) for i in range(P)])
    ref_s = gain * m0_ctx * ref_bias
    ref_s1, ref_s2 = ref_s * np.exp(-te1 * r2_ctx), ref_s * np.exp(-te2 * r2_ctx)

    # deep-layer thickness per area -> per slice (geometry needs it before the calipers)
    area_idx = {a: j for j, a in enumerate(contract.AREAS)}
    t_area = thick.reshape(P, 2, len(contract.AREAS))
    an["t_deep"] = _slice_profile(t_area)

    rows = []
    r2_area = np.zeros((P, 2, len(contract.AREAS)))
    for i in range(P):
        for hi, h in enumerate(contract.HEMISPHERES):
            side = -1.0 if h == "L" else 1.0
            for a in contract.AREAS:
                j = area_idx[a]
                k = ph.AREA_SLICE[a]
                g = {key: float(an[key][i, hi, k]) for key in
                     ("cx", "cy", "rc", "gap_cs", "t_sup", "t_deep")}
                cp = caliper = ph.caliper_points(g, side, float(an["x_area"][i, hi, j]), z_s[k])
                b_mid = float(ph.bias_at(bias[i], cp["mid"]))
                target = float(inten[i, hi * len(contract.AREAS) + j])
                s0 = gain[i] * m0_deep[i] * b_mid
                r2 = (math.log(s0) - math.log(target * ref_s2[i])) / te2
                r2_area[i, hi, j] = r2
                w = {nm: ph.to_world(caliper[nm], oblique) for nm in ("outer", "inner", "mid")}
                nrm = ph.to_world(caliper["normal"], oblique) - ph.to_world(np.zeros(3), oblique)
                row = {
                    "participant_id": p.at[i, "participant_id"], "group": p.at[i, "group"],
                    "hemisphere": h, "area": a, "slice_index": k,
                    "thickness_mm": float(t_area[i, hi, j]), "r2star_s": r2,
                    "m0": gain[i] * m0_deep[i], "intensity": target,
                    "superficial_thickness_mm": g["t_sup"], "bias": b_mid,
                    "signal_echo1": s0 * math.exp(-te1 * r2), "signal_echo2": s0 * math.exp(-te2 * r2),
                    "umn_drive": float(drive[i, hi * len(contract.AREAS) + j]),
                }
                for nm, key in (("outer", "edge_outer"), ("inner", "edge_inner"), ("mid", "midpoint")):
                    row.update({f"{key}_{ax}": float(v) for ax, v in zip("xyz", w[nm])})
                row.update({f"normal_{ax}": float(v) for ax, v in zip("xyz", nrm)})
                # the rater's caliper: each true edge displaced in the slice plane
                n_s = caliper["normal"]
                t_s = np.array([-n_s[1], n_s[0], 0.0])
                jit = rater[i, hi * len(contract.AREAS) + j]
                ends = [caliper[nm] + jit[e, 0] * n_s + jit[e, 1] * t_s
                        for e, nm in enumerate(("outer", "inner"))]
                for nm, pt in zip(("caliper_outer", "caliper_inner"), ends):
                    row.update({f"{nm}_{ax}": float(v)
                                for ax, v in zip("xyz", ph.to_world(pt, oblique))})
                row["caliper_length_mm"] = float(np.linalg.norm(ends[1] - ends[0]))
                rows.append(row)
    an["r2star_deep"] = _slice_profile(r2_area)
    truth_areas = pd.DataFrame(rows)

    ref_world = ph.to_world(ref_slab, oblique)
    ref_marked = ph.to_world(ref_slab + np.column_stack([rater_ref, np.zeros(P)]), oblique)
    truth_p = pd.DataFrame({
        "participant_id": p["participant_id"], "group": p["group"], "excluded": p["excluded"],
        "motion": motion, "snr": snr, "sigma": sigma, "gain": gain,
        "thickness_mean_mm": thick.mean(axis=1), "intensity_mean": inten.mean(axis=1),
        "visibility": p["visibility"],
        "ref_x": ref_world[:, 0], "ref_y": ref_world[:, 1], "ref_z": ref_world[:, 2],
        "ref_slice_index": ph.REF_SLICE, "ref_m0": gain * m0_ctx, "ref_r2star_s": r2_ctx,
        "ref_bias": ref_bias, "ref_signal_echo1": ref_s1, "ref_signal_echo2": ref_s2,
        "m0_deep": gain * m0_deep, "r2star_wm_s": r2_wm, "m0_csf": gain * m0_csf,
        "motion_blur_vox": motion_blur, "motion_ghost": motion_ghost,
        **{f"bias_c{c}": bias[:, c] for c in range(5)},
        **{f"ref_slab_{ax}": ref_slab[:, c] for c, ax in enumerate("xyz")},
        **{f"ref_marked_{ax}": ref_marked[:, c] for c, ax in enumerate("xyz")},
    })

    K = ph.N_SLICES
    keys_geom = ("cx", "cy", "rc", "gap_cs", "t_sup", "t_deep", "r2star_deep", "core_pre",
                 "gap_pre", "core_post", "gap_post", "core_gen")
    pid = np.repeat(p["participant_id"].to_numpy(), 2 * K)
    hem = np.tile(np.repeat(np.array(contract.HEMISPHERES), K), P)
    sl = np.tile(np.arange(K), 2 * P)
    anatomy = pd.DataFrame({"participant_id": pid, "hemisphere": hem, "slice_index": sl,
                            **{key: an[key].reshape(-1) for key in keys_geom}})

    participants = p[list(contract.PARTICIPANT_COLUMNS)].copy()
    return {"participants": participants, "visual_reads": reads, "truth_areas": truth_areas,
            "truth_participants": truth_p, "anatomy": anatomy}


def image_spec(cohort: dict, index: int):
    """The :class:`m1lib.phantom.ParticipantImageSpec` of participant ``index``."""
    tp = cohort["truth_participants"].iloc[index]
    K = ph.N_SLICES
    an = cohort["anatomy"].iloc[index * 2 * K:(index + 1) * 2 * K]
    hemi = {}
    for hi, h in enumerate(contract.HEMISPHERES):
        block = an.iloc[hi * K:(hi + 1) * K]
        hemi[h] = {c: block[c].to_numpy(float) for c in an.columns
                   if c not in ("participant_id", "hemisphere", "slice_index")}
    tissues = dict(ph.TISSUE_DEFAULTS)
    tissues["cortex"] = (tissues["cortex"][0], float(tp["ref_r2star_s"]))
    tissues["wm"] = (tissues["wm"][0], float(tp["r2star_wm_s"]))
    tissues["csf"] = (float(tp["m0_csf"] / tp["gain"]), tissues["csf"][1])
    tissues.pop("deep")
    return ph.ParticipantImageSpec(
        hemi=hemi, tissues=tissues, m0_deep=float(tp["m0_deep"] / tp["gain"]),
        gain=float(tp["gain"]), bias=np.array([tp[f"bias_c{c}"] for c in range(5)], float),
        sigma=float(tp["sigma"]), motion=bool(tp["motion"]),
        motion_blur=float(tp["motion_blur_vox"]), motion_ghost=float(tp["motion_ghost"]))


# --------------------------------------------------------------------- writing

_PARTICIPANTS_JSON = {
    "participant_id": {"Description": "Participant label (sub-ALSnn patients, sub-HSnn healthy)."},
    "group": {"Description": "Diagnostic group.",
              "Levels": {"ALS": "definite ALS (revised El Escorial)", "HS": "healthy subject"}},
    "age": {"Description": "Age at MRI.", "Units": "year"},
    "sex": {"Description": "Sex.", "Levels": {"F": "female", "M": "male"}},
    "excluded": {"Description": "Excluded from the analysis.",
                 "Levels": {"true": "excluded", "false": "analysed"}},
    "exclusion_reason": {"Description": "Why the participant was excluded (n/a if analysed)."},
    "alsfrs_r": {"Description": "ALS Functional Rating Scale-Revised (0-48)."},
    "disease_duration_months": {"Description": "Months from first symptom to MRI.",
                                "Units": "month"},
    "mrc": {"Description": "Medical Research Council sum score of muscle strength (0-130)."},
    "umn_bulbar": {"Description": "Bulbar upper motor neuron score (0-1)."},
    "umn_arm_left": {"Description": "Upper motor neuron score, left arm (0-8)."},
    "umn_arm_right": {"Description": "Upper motor neuron score, right arm (0-8)."},
    "umn_leg_left": {"Description": "Upper motor neuron score, left leg (0-8)."},
    "umn_leg_right": {"Description": "Upper motor neuron score, right leg (0-8)."},
    "cmct_ms": {"Description": "Central motor conduction time (MEP).", "Units": "ms"},
    "cortical_latency_ms": {"Description": "Cortical MEP latency.", "Units": "ms"},
    "cortical_silent_period_ms": {"Description": "Cortical silent period.", "Units": "ms"},
    "frap": {"Description": "Ferric-reducing ability of plasma.", "Units": "mmol/L"},
    "aopp": {"Description": "Advanced oxidation protein products (plasma).", "Units": "umol/L"},
    "thiols": {"Description": "Plasma thiols.", "Units": "umol/L"},
}
_INT_COLUMNS = ("age", "alsfrs_r", "disease_duration_months", "mrc") + contract.UMN_COLUMNS


def _fmt_participants(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in _INT_COLUMNS:
        out[c] = pd.array(np.where(out[c].notna(), out[c], np.nan), dtype="Float64").round(0)
        out[c] = out[c].astype("Int64")
    for c, (_, _, dec) in OPTIONAL_MARGINALS.items():
        if dec == 0:
            out[c] = pd.array(out[c], dtype="Float64").round(0).astype("Int64")
    out["excluded"] = np.where(df["excluded"], "true", "false")
    return out


def _write_tsv(path: Path, df: pd.DataFrame, float_format: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == bool:
            df[c] = np.where(df[c], "true", "false")
    text = df.to_csv(sep="\t", index=False, na_rep="n/a", float_format=float_format,
                     lineterminator="\n")
    path.write_text(text, encoding="utf-8")


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("m1lib")
    except Exception:  # pragma: no cover - not installed
        return "unknown"


def _derivative_description(name: str, description: str) -> dict:
    return {"Name": name, "BIDSVersion": "1.8.0", "DatasetType": "derivative",
            "Description": description,
            "GeneratedBy": [{"Name": "m1lib synth", "Version": _version()}]}


def _prepare_out_dir(out: Path) -> None:
    """Create ``out``; clear a previous replica there; refuse other non-empty folders."""
    if out.exists() and any(out.iterdir()):
        desc = out / "dataset_description.json"
        try:
            ours = "m1lib synth" in desc.read_text(encoding="utf-8")
        except OSError:
            ours = False
        if not ours:
            raise DataError(f"{out}: folder is not empty and does not hold a replica "
                            "(expected an empty or missing folder)")
        import shutil
        for child in out.iterdir():
            if child.is_dir() and (child.name.startswith("sub-")
                                   or child.name in ("derivatives", "phenotype")):
                shutil.rmtree(child)
    out.mkdir(parents=True, exist_ok=True)


def rater_markups(truth_areas: pd.DataFrame, truth_participant: pd.Series) -> list:
    """The simulated rater's calipers and reference point for one participant.

    Each caliper runs from the true outer (superficial) edge to the true inner
    (white-matter side) edge of the deep layer, both endpoints displaced in the
    slice plane by ``N(0, RATER_SD_MM)`` per axis (drawn in :func:`make_cohort`,
    columns ``caliper_*`` of the truth); the reference point likewise
    (``ref_marked_*``).
    """
    out = []
    for _, row in truth_areas.iterrows():
        pts = [[row[f"{key}_{ax}"] for ax in "xyz"] for key in ("caliper_outer", "caliper_inner")]
        out.append(mk.line(f"{row['hemisphere']}_{row['area']}", pts[0], pts[1]))
    ref = [truth_participant[f"ref_marked_{ax}"] for ax in "xyz"]
    out.append(mk.fiducial(contract.REFERENCE_LABEL, ref))
    return out


def generate(out_dir, seed: int = DEFAULT_SEED, n_als: int = DEFAULT_N_ALS,
             n_hs: int = DEFAULT_N_HS, oblique: bool = False, *,
             workers: int | None = None) -> Path:
    """Generate the replica dataset in ``out_dir`` (see ``docs/data.md``).

    Parameters
    ----------
    out_dir : str or Path
        Folder to write (created; a previous replica there is replaced; any other
        non-empty folder is refused).
    seed : int
        The same seed gives byte-identical files.
    n_als, n_hs : int
        Enrolled patients and healthy subjects.
    oblique : bool
        Tilt the slab's affine (the anatomy rides with the slab).
    workers : int, optional
        Participants rendered concurrently (threads; default ``min(2, cpus)``).
        The output does not depend on it.

    Returns
    -------
    Path
        ``out_dir``.
    """
    out = Path(out_dir)
    _prepare_out_dir(out)
    cohort = make_cohort(seed, n_als, n_hs, oblique)
    p = cohort["participants"]
    ph.write_json(out / "dataset_description.json", {
        "Name": "m1lib replica of Cosottini et al. 2016 (synthetic)",
        "BIDSVersion": "1.8.0", "DatasetType": "raw", "License": "CC0",
        "Authors": ["m1lib synth"],
        "HowToAcknowledge": "Synthetic data: a replica shaped like AJNR 2016;37:455-61.",
        "GeneratedBy": [{"Name": "m1lib synth", "Version": _version(),
                         "Description": f"seed={seed} n_als={n_als} n_hs={n_hs} "
                                        f"oblique={str(bool(oblique)).lower()}"}],
    })
    (out / "data_manifest.yaml").write_text(
        "# Written by `m1lib synth`: this folder is a replica (synthetic) dataset.\n"
        "dataset: .\n"
        f"replica:\n  seed: {int(seed)}\n  n_als: {int(n_als)}\n  n_hs: {int(n_hs)}\n"
        f"  oblique: {str(bool(oblique)).lower()}\n", encoding="utf-8")
    _write_tsv(out / "participants.tsv", _fmt_participants(p))
    ph.write_json(out / "participants.json", _PARTICIPANTS_JSON)
    _write_tsv(out / "phenotype" / "visual_reads.tsv", cohort["visual_reads"])
    truth_dir = out / "derivatives" / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    ph.write_json(truth_dir / "dataset_description.json", _derivative_description(
        "m1lib replica ground truth",
        "True deep-layer thickness, R2*, M0, noise-free normalized intensity (echo 2) and "
        "edge positions (RAS mm) per participant, hemisphere and Penfield area."))
    ta = cohort["truth_areas"]
    _write_tsv(truth_dir / "truth_areas.tsv", ta, float_format="%.6f")
    _write_tsv(truth_dir / "truth_participants.tsv", cohort["truth_participants"],
               float_format="%.6f")
    ann_dir = out / "derivatives" / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    ph.write_json(ann_dir / "dataset_description.json", _derivative_description(
        "m1lib replica annotations",
        "Simulated rater: electronic calipers across the deep layer of M1 (first point on "
        "the superficial side) and the left precuneus reference point (3D Slicer markups)."))
    affine = ph.slab_affine(oblique)
    tp = cohort["truth_participants"]
    n_area_rows = len(contract.HEMISPHERES) * len(contract.AREAS)
    ids = list(p["participant_id"])

    def one(i: int) -> None:
        # everything for participant i, from its own random streams: order-free
        pid = ids[i]
        img = ph.render(image_spec(cohort, i), noise_rng=_rng(seed, _S_NOISE, i))
        anat = out / pid / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        for e in range(img.shape[0]):
            stem = f"{pid}_echo-{e + 1}_part-mag_MEGRE"
            (anat / f"{stem}.nii.gz").write_bytes(
                ph.nifti_gz_bytes(ph.to_int16(img[e]), affine))
            ph.write_json(anat / f"{stem}.json", ph.sidecar(e))
        del img
        rows = ta.iloc[i * n_area_rows:(i + 1) * n_area_rows]
        mk.write_markups(ann_dir / f"{pid}_desc-m1_markups.mrk.json",
                         rater_markups(rows, tp.iloc[i]))

    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    if workers <= 1:
        for i in range(len(ids)):
            one(i)
    else:
        # numpy's random fills and zlib release the GIL; at most `workers`
        # participants are in memory at once
        with ThreadPoolExecutor(max_workers=workers) as ex:
            for _ in ex.map(one, range(len(ids))):
                pass
    return out


def main(argv=None) -> int:
    """``m1lib synth --out DIR [--seed N] [--n-als N --n-hs N] [--oblique]``."""
    ap = argparse.ArgumentParser(prog="m1lib synth", description=(
        "Generate the replica: a synthetic cohort shaped like Cosottini et al. 2016, "
        "written as a dataset in the data contract, with its ground truth."))
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--n-als", type=int, default=DEFAULT_N_ALS, help="patients enrolled")
    ap.add_argument("--n-hs", type=int, default=DEFAULT_N_HS, help="healthy subjects enrolled")
    ap.add_argument("--oblique", action="store_true", help="tilt the slab's affine")
    args = ap.parse_args(argv)
    try:
        path = generate(args.out, args.seed, args.n_als, args.n_hs, args.oblique)
    except DataError as exc:
        print(f"m1lib synth: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


# ----------------------------------------------------------------- self-check
def _mean_sd(v: np.ndarray) -> tuple[float, float]:
    v = np.asarray(v, dtype=float)
    return (float(v.mean()) if len(v) else float("nan"),
            float(v.std(ddof=1)) if len(v) > 1 else float("nan"))


def truth_summary(cohort: dict) -> dict:
    """The paper's statistics computed on the replica's truth (analysed participants).

    For checking the calibration: subject-level means over the 8 areas, Spearman r
    (scipy), Mann-Whitney P (scipy, two-sided), the readers' counts and Cohen's
    kappa. The analyses proper live in :mod:`m1lib.analyses`; this only checks
    that the replica was built as intended.
    """
    p = contract.with_derived(cohort["participants"])
    p = p[~p["excluded"].astype(bool)].set_index("participant_id")
    ta = cohort["truth_areas"]
    ta = ta[ta["participant_id"].isin(p.index)]
    subj = ta.groupby("participant_id")[["thickness_mm", "intensity"]].mean()
    als = p.index[p["group"] == "ALS"]
    hs = p.index[p["group"] == "HS"]
    out: dict = {"n": {"ALS": len(als), "HS": len(hs)}}
    clin = {}
    for c in ("alsfrs_r", "umn_total", "mrc", "disease_duration_months", "dpr"):
        clin[c] = _mean_sd(p.loc[als, c].astype(float).to_numpy())
    out["clinical"] = clin
    for q in ("thickness_mm", "intensity"):
        a, h = subj.loc[als, q], subj.loc[hs, q]
        out[q] = {"mean_ALS": float(a.mean()), "mean_HS": float(h.mean()),
                  "p_ALS_vs_HS": _mw_p(a.to_numpy(), h.to_numpy())}
        for c in ("dpr", "alsfrs_r"):
            out[q][f"r_{c}"] = float(stats.spearmanr(a, p.loc[als, c].astype(float)).statistic)
        lim = contract.limb_umn(p.reset_index(), ta[ta["participant_id"].isin(als)
                                                    & (ta["area"] != "face")])
        out[q]["r_umn_limb"] = float(stats.spearmanr(lim[q], lim["umn_score"]).statistic)
        d = p.loc[als, "dpr"].astype(float)
        fast = (d > d.median()).to_numpy()
        out[q]["p_faster_vs_slower"] = _mw_p(a.to_numpy()[fast], a.to_numpy()[~fast])
    reads = cohort["visual_reads"].pivot(index="participant_id", columns="reader", values="call")
    reads = reads.loc[p.index]
    pos = reads == "ALS"
    out["reads"] = {r: {"ALS": int(pos.loc[als, r].sum()), "HS": int(pos.loc[hs, r].sum())}
                    for r in READERS}
    agree = (reads["reader1"] == reads["reader2"])
    p1, p2 = pos["reader1"].mean(), pos["reader2"].mean()
    pe = p1 * p2 + (1 - p1) * (1 - p2)
    out["reads"]["agreements"] = int(agree.sum())
    out["reads"]["kappa"] = float((agree.mean() - pe) / (1 - pe)) if pe < 1 else float("nan")
    cvm = {}
    for r in READERS:
        ok = pos.loc[als, r].to_numpy()
        for c in ("umn_total", "dpr"):
            v = p.loc[als, c].astype(float).to_numpy()
            cvm[f"{c}_{r}"] = {"correct": _mean_sd(v[ok]), "missed": _mean_sd(v[~ok]),
                               "p": _mw_p(v[ok], v[~ok])}
    out["correct_vs_missed"] = cvm
    return out
