"""The report's endpoints as power-analysis inputs: effect sizes with bootstrap intervals and models.

:func:`plan_endpoints` reads the analysed participants through
:mod:`m1lib.analyses` (the same per-subject means, DPR split and per-limb pairs as
the report), estimates each endpoint's effect size with a BCa bootstrap interval,
and fits the generative model of :mod:`m1lib.power.models` that later draws the
simulated studies. Interval ends become the optimistic and pessimistic scenarios:
the end farther from "no effect" is optimistic; the nearer end is pessimistic, and
when the interval contains "no effect" the pessimistic effect *is* no effect.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from m1lib import analyses, stats
from m1lib.errors import DataError
from m1lib.power import closed, rankstats
from m1lib.results import key_part
from m1lib.power.models import (ClusterMixture, DprSplitMixture, PairedAUCShift, PairMixture,
                                TwoGroupShift)

__all__ = ["Endpoint", "plan_endpoints", "ENDPOINT_KINDS", "child_rng"]

#: Endpoint kinds, in the paper's order.
ENDPOINT_KINDS: tuple[str, ...] = ("group", "corr", "limb", "auc", "dpr_split")
_LABELS = {"thickness_mm": "thickness", "intensity": "intensity", "r2star_s": "R2*",
           "dpr": "DPR", "alsfrs_r": "ALSFRS-R"}


def child_rng(seed, *names: str) -> np.random.Generator:
    """An independent, reproducible stream per analysis (as :mod:`m1lib.analyses` derives its own).

    Written here because the report's helper is private; same rule
    (``default_rng([seed, crc32('a|b|...')])``), so the correlation and per-limb
    intervals equal the report's for the same seed and number of resamples.
    """
    tag = zlib.crc32("|".join(names).encode("utf-8"))
    return np.random.default_rng([int(seed), tag])


@dataclass
class Endpoint:
    """One endpoint of the report, its effect on the pilot and the model that simulates it."""

    key: str               # registry-safe name, e.g. ``corr_thickness_mm_dpr``
    kind: str              # one of ENDPOINT_KINDS
    label: str             # words, e.g. "thickness vs DPR (Spearman)"
    effect_name: str       # e.g. "rho", "P(ALS > HS)"
    estimate: float
    ci_low: float
    ci_high: float
    ci_method: str
    n_pilot: str           # e.g. "18 ALS, 13 HS"
    model: object
    closed_method: str
    unit: str              # what n counts, e.g. "patients"
    second: str = ""       # the second group counted beside n ("controls"), if any
    deff: float = np.nan   # per-limb only: the pilot's design effect (closed form)
    conf_level: float = 0.95

    @property
    def neutral(self) -> float:
        return float(self.model.neutral)

    def scenario_effects(self) -> dict[str, float]:
        """Effects of the optimistic, central and pessimistic scenarios."""
        lo, hi, nul = self.ci_low, self.ci_high, self.neutral
        if not (np.isfinite(lo) and np.isfinite(hi)):
            return {"optimistic": np.nan, "central": self.estimate, "pessimistic": np.nan}
        side = np.sign(self.estimate - nul)
        if side == 0:   # no effect observed: the end farther from it is the optimistic one
            side = -1.0 if abs(lo - nul) >= abs(hi - nul) else 1.0
        # optimistic: the interval's end on the observed side; pessimistic: the other
        # end, or no effect at all when the interval holds it
        far, near = (hi, lo) if side > 0 else (lo, hi)
        if (near - nul) * side <= 0:
            near = nul
        return {"optimistic": float(far), "central": float(self.estimate), "pessimistic": float(near)}

    def scenario_strengths(self) -> dict[str, float]:
        out = {}
        for name, eff in self.scenario_effects().items():
            if name == "central":
                out[name] = float(self.model.observed_strength)
            else:
                out[name] = np.nan if not np.isfinite(eff) else float(self.model.strength_for(eff))
        return out

    def closed_power(self, n, strength: float, alpha: float) -> np.ndarray:
        """Closed-form power at ``n`` (array) under the model at ``strength``."""
        n = np.asarray(n)
        eff = self.model.effect(strength)
        sizes = np.array([self.model.sizes(int(k)) for k in np.atleast_1d(n)], dtype=float)
        if self.kind in ("group", "dpr_split"):
            return closed.noether_power(eff, sizes[:, 0], sizes[:, 1], alpha)
        if self.kind == "corr":
            return closed.spearman_power(eff, sizes[:, 0], alpha)
        if self.kind == "limb":
            return closed.clustered_spearman_power(eff, sizes[:, 0], self.model.x.shape[1],
                                                   self.deff, alpha)
        if self.kind == "auc":
            m = self.model
            s10, s01 = closed.delong_unit_variance(m.case_score + strength, m.control_score,
                                                   m.case_call, m.control_call)
            return closed.delong_power(eff, s10, s01, sizes[:, 0], sizes[:, 1], alpha)
        raise ValueError(f"unknown endpoint kind {self.kind!r}")


def _bca_two_groups(a, b, stat, n_boot, rng, conf_level):
    """Stratified bootstrap (groups resampled separately) + leave-one-out jackknife, BCa."""
    est = float(stat(a[None], b[None])[0])
    if n_boot <= 0:
        return est, np.nan, np.nan
    boot = stat(a[rng.integers(0, a.size, (n_boot, a.size))], b[rng.integers(0, b.size, (n_boot, b.size))])
    jack = [stat(np.delete(a, i)[None], b[None])[0] for i in range(a.size)]
    jack += [stat(a[None], np.delete(b, j)[None])[0] for j in range(b.size)]
    lo, hi, _ = stats.bca_interval(est, boot, np.array(jack, float), conf_level=conf_level)
    return est, lo, hi


def _theta_rows(a, b):
    m = a.shape[-1]
    vals = np.concatenate([a, b], axis=-1)
    u, _ = rankstats.mann_whitney_rows(vals, np.r_[np.ones(m, bool), np.zeros(b.shape[-1], bool)])
    return u / (m * b.shape[-1])


def _group_endpoint(subj, measure, patient, control, ratio, n_boot, seed, level):
    a = subj.loc[subj["group"] == patient, measure].dropna().to_numpy(float)
    b = subj.loc[subj["group"] == control, measure].dropna().to_numpy(float)
    if min(a.size, b.size) < 2:
        raise DataError(f"power: {measure} needs at least 2 {patient} and 2 {control} with a value")
    est, lo, hi = _bca_two_groups(a, b, _theta_rows, n_boot, child_rng(seed, "power", "group", measure), level)
    return Endpoint(f"group_{measure}", "group", f"{_LABELS.get(measure, measure)}, {patient} vs {control} "
                    "(Mann-Whitney)", f"P({patient} > {control})", est, lo, hi, "BCa bootstrap, groups "
                    "resampled separately", f"{a.size} {patient}, {b.size} {control}",
                    TwoGroupShift(a, b, ratio), "Noether", f"{patient} patients", control)


def _corr_endpoint(subj, measure, variable, patient, n_boot, seed, level):
    p = subj[subj["group"] == patient][[measure, variable]].apply(pd.to_numeric, errors="coerce").dropna()
    x, y = p[measure].to_numpy(float), p[variable].to_numpy(float)
    if x.size < 4 or np.unique(x).size < 2 or np.unique(y).size < 2:
        raise DataError(f"power: {measure} vs {variable} needs at least 4 patients with both, not constant")
    # the report's own interval: same function, same stream (analyses.correlations)
    r = stats.spearman(x, y, n_boot=n_boot, seed=child_rng(seed, "corr", measure, variable),
                       conf_level=level).iloc[0]
    return Endpoint(f"corr_{measure}_{variable}", "corr", f"{_LABELS.get(measure, measure)} vs "
                    f"{_LABELS.get(variable, variable)} (Spearman)", "rho", float(r.rho),
                    float(r.ci_low), float(r.ci_high), "BCa bootstrap of the patients (as the report)",
                    f"{x.size} {patient}", PairMixture(x, y), "Fisher z, Bonett-Wright variance",
                    f"{patient} patients")


def _limb_endpoint(pairs, measure, patient, n_boot, seed, level):
    g = pairs[["participant_id", "hemisphere", "area", measure, "umn_score"]].copy()
    g[measure] = pd.to_numeric(g[measure], errors="coerce")
    complete = g.groupby("participant_id")[[measure, "umn_score"]].transform(lambda c: c.notna().all()).all(axis=1)
    left_out = g.loc[~complete, "participant_id"].nunique()
    g = g[complete].sort_values(["participant_id", "hemisphere", "area"], kind="stable")
    ids = g["participant_id"].unique()
    if ids.size < 4:
        raise DataError(f"power: per-limb {measure} needs at least 4 patients with every limb pair")
    k = len(g) // ids.size
    x = g[measure].to_numpy(float).reshape(ids.size, k)
    y = g["umn_score"].to_numpy(float).reshape(ids.size, k)
    r = stats.spearman_clustered(x.ravel(), y.ravel(), np.repeat(ids, k), n_boot=n_boot, n_perm=0,
                                 seed=child_rng(seed, "limb", measure), conf_level=level).iloc[0]
    return Endpoint(f"limb_{measure}", "limb", f"{_LABELS.get(measure, measure)} vs limb UMN score "
                  "(pooled Spearman, patients as clusters)", "pooled rho", float(r.rho),
                  float(r.cluster_ci_low), float(r.cluster_ci_high),
                  "cluster bootstrap BCa over patients (as the report)",
                  f"{ids.size} {patient} with all {k} limb pairs"
                  + (f" ({left_out} with a missing pair left out)" if left_out else ""), ClusterMixture(x, y),
                  "Fisher z, Bonett-Wright variance on n x pairs / design effect",
                  f"{patient} patients", deff=closed.design_effect(x, y))


def _auc_endpoint(subj, calls, measure, reader, patient, control, ratio, n_boot, seed, level):
    sign = 1.0 if analyses.MEASURE_DIRECTION.get(measure, "higher") == "higher" else -1.0
    d = subj[["participant_id", "group", measure]].merge(calls[calls["reader"] == reader],
                                                         on="participant_id", how="inner")
    d = d[np.isfinite(pd.to_numeric(d[measure], errors="coerce"))]
    case, ctrl = d[d["group"] == patient], d[d["group"] == control]
    if min(len(case), len(ctrl)) < 2:
        raise DataError(f"power: AUC of {measure} vs {reader} needs at least 2 {patient} and 2 {control}")
    cs, cc = sign * case[measure].to_numpy(float), (case["call"] == "ALS").to_numpy(float)
    ks, kc = sign * ctrl[measure].to_numpy(float), (ctrl["call"] == "ALS").to_numpy(float)

    def diff(i, j):   # rows of case and control indices
        return rankstats.delong_paired_rows(cs[i], ks[j], cc[i], kc[j])[0]

    est = float(diff(np.arange(cs.size)[None], np.arange(ks.size)[None])[0])
    lo = hi = np.nan
    if n_boot > 0:
        rng = child_rng(seed, "power", "auc", measure, reader)
        boot = diff(rng.integers(0, cs.size, (n_boot, cs.size)), rng.integers(0, ks.size, (n_boot, ks.size)))
        jack = [diff(np.delete(np.arange(cs.size), i)[None], np.arange(ks.size)[None])[0]
                for i in range(cs.size)]
        jack += [diff(np.arange(cs.size)[None], np.delete(np.arange(ks.size), j)[None])[0]
                 for j in range(ks.size)]
        lo, hi, _ = stats.bca_interval(est, boot, np.array(jack), conf_level=level)
    return Endpoint(f"auc_{measure}_vs_{key_part(reader)}", "auc", f"AUC of {_LABELS.get(measure, measure)} "
                    f"vs {reader}'s calls (DeLong, paired)", "AUC difference", est, lo, hi,
                    "BCa bootstrap, groups resampled separately", f"{cs.size} {patient}, {ks.size} {control}",
                    PairedAUCShift(cs, cc, ks, kc, ratio), "Obuchowski (DeLong variance components)",
                    f"{patient} patients", control)


def _dpr_split_theta(dpr, values):
    faster = dpr > np.median(dpr, axis=-1, keepdims=True)
    u, _ = rankstats.mann_whitney_rows(values, faster)
    nf = faster.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return u / (nf * (values.shape[-1] - nf))


def _dpr_split_endpoint(subj, measure, patient, n_boot, seed, level):
    p = subj[subj["group"] == patient][["dpr", measure]].apply(pd.to_numeric, errors="coerce").dropna()
    dpr, v = p["dpr"].to_numpy(float), p[measure].to_numpy(float)
    if dpr.size < 6:
        raise DataError(f"power: the DPR split of {measure} needs at least 6 patients with DPR and {measure}")
    est = float(_dpr_split_theta(dpr[None], v[None])[0])
    lo = hi = np.nan
    if n_boot > 0:
        idx = child_rng(seed, "power", "dpr_split", measure).integers(0, dpr.size, (n_boot, dpr.size))
        boot = _dpr_split_theta(dpr[idx], v[idx])
        keep = [np.delete(np.arange(dpr.size), i) for i in range(dpr.size)]
        jack = np.array([_dpr_split_theta(dpr[k][None], v[k][None])[0] for k in keep])
        lo, hi, _ = stats.bca_interval(est, boot, jack, conf_level=level)
    return Endpoint(f"dpr_split_{measure}", "dpr_split", f"{_LABELS.get(measure, measure)}, faster vs "
                    "slower progressors (median DPR split, Mann-Whitney)", "P(faster > slower)", est, lo, hi,
                    "BCa bootstrap of the patients, split at each resample's median", f"{dpr.size} {patient}",
                    DprSplitMixture(dpr, v, seed=int(seed)), "Noether (n/2 per subgroup)",
                    f"{patient} patients")


def plan_endpoints(participants: pd.DataFrame, measurements: pd.DataFrame, reads: pd.DataFrame | None = None,
                   *, measures=("thickness_mm", "intensity"), variables=("dpr", "alsfrs_r"),
                   kinds=ENDPOINT_KINDS, auc_measures=("thickness_mm",), readers=None,
                   patient_group: str = "ALS", control_group: str = "HS",
                   controls_per_patient: float = 1.0, n_boot: int = 2000, seed: int = 20160301,
                   conf_level: float = 0.95) -> list[Endpoint]:
    """The endpoints of the report, with effect sizes, intervals and fitted models.

    Parameters
    ----------
    participants, measurements, reads : DataFrame
        Contract tables (all enrolled participants; exclusions applied by
        :mod:`m1lib.analyses`).
    measures : sequence of str
        Measured quantities for the group, correlation, per-limb and DPR-split endpoints.
    variables : sequence of str
        Clinical variables correlated with each measure.
    kinds : sequence of str
        Subset of :data:`ENDPOINT_KINDS`.
    auc_measures : sequence of str
        Measures whose AUC is compared with every reader's calls.
    readers : sequence of str, optional
        Readers for the AUC endpoints (default: every reader in ``reads``).
    patient_group, control_group : str
        Group labels of patients and controls.
    controls_per_patient : float
        Planned controls per patient (two-group endpoints).
    n_boot : int
        Bootstrap resamples of each effect's interval.
    seed : int
        Seed; each endpoint draws from its own stream.
    conf_level : float
        Level of the effect intervals.

    Returns
    -------
    list of Endpoint
        In the order of :data:`ENDPOINT_KINDS`, then measure, then variable/reader.
    """
    unknown = sorted(set(kinds) - set(ENDPOINT_KINDS))
    if unknown:
        raise DataError(f"power: unknown endpoint kind(s) {unknown}; expected {list(ENDPOINT_KINDS)}")
    if controls_per_patient <= 0:
        raise DataError(f"power: controls_per_patient must be > 0, got {controls_per_patient}")
    subj = analyses.subject_table(participants, measurements)
    missing = [m for m in measures if m not in subj.columns]
    if missing:
        raise DataError(f"power: the measurements have no {', '.join(missing)}")
    if "corr" in kinds:
        absent = [v for v in variables if v not in subj.columns]
        if absent:
            raise DataError(f"power: the participants have no {', '.join(absent)} to correlate with")
    if "auc" in kinds and (reads is None or not len(reads)):
        raise DataError("power: the AUC endpoints need the visual reads (phenotype/visual_reads.tsv)")
    out: list[Endpoint] = []
    level, ratio = float(conf_level), float(controls_per_patient)
    if "group" in kinds:
        out += [_group_endpoint(subj, m, patient_group, control_group, ratio, n_boot, seed, level)
                for m in measures]
    if "corr" in kinds:
        out += [_corr_endpoint(subj, m, v, patient_group, n_boot, seed, level)
                for m in measures for v in variables]
    if "limb" in kinds:
        pairs = analyses.limb_pairs(participants, measurements)
        pats = set(subj.loc[subj["group"] == patient_group, "participant_id"])
        pairs = pairs[pairs["participant_id"].isin(pats)]
        out += [_limb_endpoint(pairs, m, patient_group, n_boot, seed, level) for m in measures]
    if "auc" in kinds:
        calls = reads[["participant_id", "reader", "call"]].astype({"reader": str})
        for m in auc_measures:
            for rd in (readers if readers is not None else sorted(calls["reader"].unique())):
                out.append(_auc_endpoint(subj, calls, m, rd, patient_group, control_group, ratio,
                                         n_boot, seed, level))
    if "dpr_split" in kinds:
        out += [_dpr_split_endpoint(subj, m, patient_group, n_boot, seed, level) for m in measures]
    for ep in out:
        ep.conf_level = level
    return out
