"""Calibration of the replica's cohort to the paper's statistics.

Subject-level clinical and imaging variables of the analysed patients are joined
with the Iman-Conover method towards a target rank-correlation matrix built from
the reported Spearman r, then refined by greedy rank swaps that minimise the
distance to every calibration target at once (subject-level and pooled per-limb
Spearman r, derived DPR and disease-duration moments, the readers'
correct-vs-missed contrasts, the DPR median split). Swaps move ranks only, so
every marginal stays exact. Area values are the subject mean plus a
within-subject deviation driven by the contralateral limb's UMN score.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .. import contract
from .rank_stats import (_gamma, _int_quantiles, _lognormal, _mw_p_fast, _rank1,
                         _std_quantiles, _corr_of_ranks, iman_conover)
from .targets import (AREA_SD_INTENSITY, AREA_SD_THICKNESS, BETA_INTENSITY, BETA_THICKNESS,
                      INTENSITY_ALS, INTENSITY_HS, INTENSITY_RANGE, OPTIONAL_MARGINALS,
                      READERS, THICKNESS_ALS, THICKNESS_HS, THICKNESS_RANGE)

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

