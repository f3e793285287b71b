"""Correlations with clinical scores in the patients: subject-level Spearman with BCa
intervals and BH q-values, and the paper's pooled per-limb correlation with
cluster-aware (patient-level) inference beside it."""
from __future__ import annotations

import numpy as np
import pandas as pd

from m1lib import contract, stats
from m1lib.analyses._common import (CLINICAL_VARIABLES, DEFAULT_SEED, LIMB_AREAS,
                                    NOT_COMPUTED, PATIENT_GROUP, _analysed, _child_rng,
                                    _measurements, _measures, _participants, _subjects)

__all__ = ["correlations", "limb_pairs", "limb_correlations"]

def _not_computed_corr(measure, var, n, why, n_boot, conf_level) -> dict:
    return dict(measure=measure, variable=var, n=n, rho=np.nan, p_value=np.nan,
                method=NOT_COMPUTED + why, ci_low=np.nan, ci_high=np.nan,
                ci_method="not computed", n_boot=n_boot, n_boot_used=0,
                conf_level=conf_level)


def correlations(participants: pd.DataFrame, measurements: pd.DataFrame,
                 n_boot: int = 10000, seed: int = DEFAULT_SEED,
                 conf_level: float = 0.95, patient_group: str = PATIENT_GROUP) -> pd.DataFrame:
    """Spearman correlations of per-subject means with clinical variables (ALS only).

    Parameters
    ----------
    participants, measurements : DataFrame
        Contract tables.
    n_boot : int
        Bootstrap resamples for each interval.
    seed : int
        Seed; each correlation draws from its own stream (measure and variable).
    conf_level : float
        Confidence level.

    Returns
    -------
    DataFrame
        One row per measure and variable: ``measure, variable, family``, the
        :func:`m1lib.stats.spearman` record (rho, t-approximation P, BCa CI) and
        ``q_value``.

    Notes
    -----
    Variables: :data:`CLINICAL_VARIABLES` that the data have (DPR and ALSFRS-R are
    the paper's reported correlations; the rest its null findings). Pairs with a
    missing value are dropped. ``q_value``: Benjamini-Hochberg within the family of
    one measure's correlations (``family`` = the measure). A variable with fewer
    than 3 complete pairs, or constant, gives a NaN row whose ``method`` says why.
    """
    subj, measures = _subjects(participants, measurements)
    als = subj[subj["group"] == patient_group]
    variables = [v for v in CLINICAL_VARIABLES
                 if v in als.columns and pd.to_numeric(als[v], errors="coerce").notna().any()]
    rows = []
    for measure in measures:
        for var in variables:
            x = pd.to_numeric(als[measure], errors="coerce")
            y = pd.to_numeric(als[var], errors="coerce")
            ok = x.notna() & y.notna()
            n = int(ok.sum())
            if n < 3:
                rows.append(_not_computed_corr(measure, var, n, "fewer than 3 complete pairs",
                                               n_boot, conf_level))
                continue
            if x[ok].nunique() < 2 or y[ok].nunique() < 2:
                rows.append(_not_computed_corr(measure, var, n, "a variable is constant",
                                               n_boot, conf_level))
                continue
            t = stats.spearman(x[ok], y[ok], n_boot=n_boot, conf_level=conf_level,
                               seed=_child_rng(seed, "corr", measure, var)).iloc[0].to_dict()
            rows.append(dict(measure=measure, variable=var, **t))
    cols = ["measure", "variable", "family", "n", "rho", "p_value", "q_value", "method",
            "ci_low", "ci_high", "ci_method", "n_boot", "n_boot_used", "conf_level"]
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=cols)
    out["family"] = out["measure"]
    out["q_value"] = np.nan
    for _, idx in out.groupby("family", sort=False).groups.items():
        out.loc[idx, "q_value"] = stats.bh_qvalues(out.loc[idx, "p_value"])
    return out[cols]


def limb_pairs(participants: pd.DataFrame, measurements: pd.DataFrame,
               patient_group: str = PATIENT_GROUP) -> pd.DataFrame:
    """The paper's pooled per-limb pairs: each hand, leg and foot area of each hemisphere
    of each analysed patient with the contralateral limb's UMN score.

    Returns
    -------
    DataFrame
        One row per patient x hemisphere x area (hand, leg, foot): the measurement key,
        the measured quantities, ``umn_column`` and ``umn_score``
        (:func:`m1lib.contract.limb_umn`). A missing measurement stays NaN, so every
        patient has the same pairing slots.
    """
    p = _analysed(participants)
    als = p[p["group"] == patient_group]
    m = _measurements(measurements, known_ids=_participants(participants)["participant_id"])
    measures = _measures(m)
    grid = pd.MultiIndex.from_product(
        [als["participant_id"], contract.HEMISPHERES, LIMB_AREAS],
        names=list(contract.MEASUREMENT_KEY)).to_frame(index=False)
    grid = grid.merge(m[list(contract.MEASUREMENT_KEY) + measures],
                      on=list(contract.MEASUREMENT_KEY), how="left")
    return contract.limb_umn(als, grid)


def limb_correlations(participants: pd.DataFrame, measurements: pd.DataFrame,
                      n_boot: int = 10000, seed: int = DEFAULT_SEED,
                      conf_level: float = 0.95, patient_group: str = PATIENT_GROUP) -> pd.DataFrame:
    """Pooled per-limb Spearman correlation with the UMN score, as the paper did, and
    with patient-level inference beside it.

    Parameters
    ----------
    participants, measurements : DataFrame
        Contract tables.
    n_boot : int
        Cluster bootstrap resamples, and cluster permutations.
    seed : int
        Seed; each measure draws from its own stream.
    conf_level : float
        Confidence level.

    Returns
    -------
    DataFrame
        One row per measure: ``measure``, ``n`` (pairs), ``n_patients``, the pooled
        ``rho`` and its naive ``p_value`` (every limb an independent observation: the
        paper's analysis), ``cluster_ci_low/high`` (cluster bootstrap BCa),
        ``cluster_p_value`` (cluster permutation), ``q_value`` and
        ``cluster_q_value`` (Benjamini-Hochberg across the measures), and the methods.

    Notes
    -----
    Pairs: the hand, leg and foot areas of each hemisphere with the contralateral
    limb's UMN score (:func:`m1lib.contract.limb_umn`: left-hemisphere hand with
    ``umn_arm_right``, leg and foot with ``umn_leg_right``, and so on), every pair
    one observation, n = 6 per patient when complete. Limbs of one patient are not
    independent, so the naive P is too small; the cluster bootstrap resamples
    patients with all their pairs, and the permutation test gives each patient's
    areas the UMN vector of another patient (pairing slots kept), see
    :func:`m1lib.stats.spearman_clustered`. Patients without any measured pair are
    left out.
    """
    grid = limb_pairs(participants, measurements, patient_group)
    measures = _measures(_measurements(measurements))
    rows = []
    for measure in measures:
        g = grid.copy()
        g[measure] = pd.to_numeric(g[measure], errors="coerce")
        ok = g[measure].notna() & g["umn_score"].notna()
        g = g[ok.groupby(g["participant_id"]).transform("any")]
        n_pat = g["participant_id"].nunique()
        why = None
        if n_pat < 3:
            why = f"fewer than 3 patients with measured limbs (n = {n_pat})"
        elif g.loc[ok, measure].nunique() < 2 or g.loc[ok, "umn_score"].nunique() < 2:
            why = "a variable is constant"
        if why is not None:
            rows.append(dict(measure=measure, variable="umn_limb", n=int(ok.sum()), n_patients=n_pat,
                             rho=np.nan, p_value=np.nan, method=NOT_COMPUTED + why,
                             cluster_ci_low=np.nan, cluster_ci_high=np.nan,
                             cluster_ci_method="not computed", n_boot=n_boot, n_boot_used=0,
                             cluster_p_value=np.nan, cluster_p_method="not computed", n_perm=n_boot,
                             conf_level=conf_level))
            continue
        t = stats.spearman_clustered(g[measure], g["umn_score"], g["participant_id"],
                                     n_boot=n_boot, conf_level=conf_level,
                                     seed=_child_rng(seed, "limb", measure)).iloc[0].to_dict()
        t["n_patients"] = t.pop("n_clusters")
        rows.append(dict(measure=measure, variable="umn_limb", **t))
    out = pd.DataFrame(rows)
    if out.empty:
        out = pd.DataFrame(columns=["measure", "variable", "n", "n_patients", "rho", "p_value", "method",
                                    "cluster_ci_low", "cluster_ci_high", "cluster_ci_method", "n_boot",
                                    "n_boot_used", "cluster_p_value", "cluster_p_method", "n_perm",
                                    "conf_level"])
    out["q_value"] = stats.bh_qvalues(out["p_value"]) if len(out) else []
    out["cluster_q_value"] = stats.bh_qvalues(out["cluster_p_value"]) if len(out) else []
    cols = ["measure", "variable", "n", "n_patients", "rho", "p_value", "q_value", "method",
            "cluster_ci_low", "cluster_ci_high", "cluster_ci_method", "n_boot",
            "n_boot_used", "cluster_p_value", "cluster_q_value", "cluster_p_method",
            "n_perm", "conf_level"]
    return out[cols]

