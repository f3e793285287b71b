"""All analyses at once, and their tables flattened into the results registry."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from m1lib.analyses._common import (COHORT_CLINICAL, COMPARISON_GROUPS, DEFAULT_SEED,
                                    PATIENT_GROUP, comparison_groups)
from m1lib.analyses.cohort import cohort_table
from m1lib.analyses.correlations import correlations, limb_correlations
from m1lib.analyses.groups import dpr_subgroups, group_comparison
from m1lib.analyses.reading import (correct_vs_missed, fleiss_agreement, reader_agreement,
                                    visual_reading)
from m1lib.analyses.roc import roc_table
from m1lib.errors import DataError
from m1lib.results import add_record, key_part, validate_registry

__all__ = ["TABLE_NAMES", "AnalysisResult", "pair_key", "registry_from_tables", "run_all"]

#: Names of :attr:`AnalysisResult.tables`, in the paper's order.
TABLE_NAMES: tuple[str, ...] = (
    "cohort", "visual_reading", "reader_agreement", "fleiss_agreement", "correct_vs_missed",
    "group_comparison", "correlations", "limb_correlations", "dpr_subgroups", "roc",
)


@dataclass
class AnalysisResult:
    """All result tables and the results registry of one run.

    Attributes
    ----------
    tables : dict of str to DataFrame
        Keyed by :data:`TABLE_NAMES`.
    registry : dict of str to float
        Flat dotted keys (``docs/results.md``), full precision, NaN when undefined.
    params : dict
        The settings used (``alpha, n_boot, seed, ci_method, patient_group,
        comparison_groups``).
    """

    tables: dict[str, pd.DataFrame]
    registry: dict[str, float]
    params: dict = field(default_factory=dict)


def pair_key(a: str, b: str) -> str:
    """Registry key part of a comparison of two labels.

    Examples
    --------
    >>> pair_key("ALS", "HS"), pair_key("reader 1", "JD")
    ('als_vs_hs', 'reader_1_vs_jd')
    """
    return f"{key_part(a)}_vs_{key_part(b)}"


def _two_group_record(row: pd.Series) -> dict:
    a, b = key_part(row["group_x"]), key_part(row["group_y"])
    rec = {f"n_{a}": row["n_x"], f"n_{b}": row["n_y"]}
    for stat in ("mean", "sd", "median", "q1", "q3"):
        rec[f"{stat}_{a}"] = row[f"{stat}_x"]
        rec[f"{stat}_{b}"] = row[f"{stat}_y"]
    exact = {"exact": 1, "asymptotic": 0}.get(row["method"], np.nan)
    rec.update(u=row["U"], p_value=row["p_value"], p_exact=exact,
               p_value_permutation=row["p_value_permutation"],
               rank_biserial=row["rank_biserial"], hl_shift=row["hl_shift"],
               hl_ci_low=row["ci_low"], hl_ci_high=row["ci_high"])
    return rec


def _cohort_records(reg: dict, cohort: pd.DataFrame) -> None:
    for _, row in cohort.iterrows():
        subset, group, var = row["subset"], key_part(row["group"]), row["variable"]
        prefix = f"cohort.{subset}.{group}"
        if var == "n":
            suffix = "" if subset == "analysed" else "_enrolled"
            add_record(reg, "cohort", {f"n_{group}{suffix}": row["count"]})
        elif var == "excluded":
            add_record(reg, "cohort", {f"n_{group}_excluded": row["count"]})
        elif var == "sex":
            add_record(reg, prefix, {"n_female" if row["level"] == "F" else "n_male": row["count"]})
        elif var == "age" or (subset == "analysed" and var in COHORT_CLINICAL):
            add_record(reg, f"{prefix}.{var}", {"mean": row["mean"], "sd": row["sd"]})


def _reading_records(reg: dict, tables: dict) -> None:
    vr = tables["visual_reading"]
    for _, row in vr.iterrows():
        prefix = f"visual_reading.{key_part(row['reader'])}"
        if row["statistic"] in ("tp", "fp", "tn", "fn"):
            add_record(reg, prefix, {row["statistic"]: int(row["numerator"])})
        else:
            s = row["statistic"]
            add_record(reg, prefix, {s: row["estimate"], f"{s}_ci_low": row["ci_low"],
                                     f"{s}_ci_high": row["ci_high"]})
    readers = sorted(set(vr["reader"])) if len(vr) else []
    if readers:
        add_record(reg, "agreement", {"n_readers": len(readers)})
    for _, row in tables["reader_agreement"].iterrows():
        add_record(reg, f"agreement.{pair_key(row['reader_a'], row['reader_b'])}", dict(
            kappa=row["kappa"], kappa_se=row["se"], kappa_ci_low=row["ci_low"],
            kappa_ci_high=row["ci_high"], agreement=row["agreement"],
            expected_agreement=row["expected_agreement"], n_agree=row["n_agree"],
            kappa_n=row["n"]))
    fl = tables["fleiss_agreement"]
    if len(fl) and np.isfinite(fl["kappa"].iloc[0]):
        r = fl.iloc[0]
        add_record(reg, "agreement.fleiss", dict(kappa=r["kappa"], agreement=r["agreement"],
                                                 expected_agreement=r["expected_agreement"],
                                                 n=r["n"], n_readers=r["n_raters"]))
    for _, row in tables["correct_vs_missed"].iterrows():
        add_record(reg, f"correct_vs_missed.{key_part(row['reader'])}.{row['variable']}",
                   _two_group_record(row))


def _roc_records(reg: dict, roc: pd.DataFrame) -> None:
    if not len(roc):
        return
    for _, row in roc.iterrows():
        readers = [r for r in roc.loc[(roc["kind"] == "reader")
                                      & (roc["group_control"] == row["group_control"]), "predictor"]]
        prefix = f"roc.{pair_key(row['group_case'], row['group_control'])}.{key_part(row['predictor'])}"
        add_record(reg, prefix, {"auc": row["auc"], "auc_se": row["se"], "auc_ci_low": row["ci_low"],
                                 "auc_ci_high": row["ci_high"],
                                 f"n_{key_part(row['group_case'])}": row["n_case"],
                                 f"n_{key_part(row['group_control'])}": row["n_control"]})
        if row["kind"] == "measure":
            for rd in readers:
                add_record(reg, f"{prefix}.vs_{key_part(rd)}", dict(
                    auc_difference=row[f"auc_difference_vs_{rd}"], p_value=row[f"p_value_vs_{rd}"]))


def registry_from_tables(tables: dict[str, pd.DataFrame], params: dict | None = None) -> dict[str, float]:
    """Flatten the result tables of :func:`run_all` into the results registry.

    Parameters
    ----------
    tables : dict of str to DataFrame
        As :attr:`AnalysisResult.tables`; any subset (a notebook records just its own
        part; the union of the parts equals the registry of all tables).
    params : dict, optional
        ``alpha, n_boot, seed`` recorded under ``settings.``.

    Returns
    -------
    dict of str to float
        Keys catalogued in ``docs/results.md`` (:data:`m1lib.results.CATALOGUE`).
        Labels of groups and readers enter the keys as the data spell them, made
        key-safe (:func:`m1lib.results.key_part`).
    """
    reg: dict[str, float] = {}
    empty = pd.DataFrame()
    tables = {name: tables.get(name, empty) for name in TABLE_NAMES}
    if params:
        add_record(reg, "settings", {k: params[k] for k in ("alpha", "n_boot", "seed") if k in params})
    _cohort_records(reg, tables["cohort"])
    if len(tables["visual_reading"]) or len(tables["reader_agreement"]) or len(tables["correct_vs_missed"]):
        for name in ("visual_reading", "reader_agreement", "fleiss_agreement", "correct_vs_missed"):
            if tables[name].empty:
                tables[name] = pd.DataFrame(columns=["reader", "kappa"])
        _reading_records(reg, tables)
    for _, row in tables["group_comparison"].iterrows():
        add_record(reg, f"group.{pair_key(row['group_x'], row['group_y'])}.{row['variable']}",
                   _two_group_record(row))
    ds = tables["dpr_subgroups"]
    if len(ds):
        first = ds.iloc[0]
        add_record(reg, "dpr_subgroups", {"dpr_median": first["dpr_median"],
                                          "n_faster": first["n_x"], "n_slower": first["n_y"]})
    for _, row in ds.iterrows():
        add_record(reg, f"dpr_subgroups.{row['variable']}", _two_group_record(row))
    for _, row in tables["correlations"].iterrows():
        add_record(reg, f"corr.{row['measure']}.{row['variable']}", dict(
            rho=row["rho"], p_value=row["p_value"], q_value=row["q_value"], n=row["n"],
            ci_low=row["ci_low"], ci_high=row["ci_high"]))
    for _, row in tables["limb_correlations"].iterrows():
        add_record(reg, f"corr.{row['measure']}.umn_limb", dict(
            rho=row["rho"], p_value=row["p_value"], q_value=row["q_value"], n=row["n"],
            n_patients=row["n_patients"], cluster_ci_low=row["cluster_ci_low"],
            cluster_ci_high=row["cluster_ci_high"], cluster_p_value=row["cluster_p_value"],
            cluster_q_value=row["cluster_q_value"]))
    _roc_records(reg, tables["roc"])
    validate_registry(reg)
    return dict(sorted(reg.items()))


def run_all(participants: pd.DataFrame, reads: pd.DataFrame, measurements: pd.DataFrame, *,
            alpha: float = 0.05, n_boot: int = 10000, seed: int = DEFAULT_SEED,
            ci_method: str = "wilson", patient_group: str = PATIENT_GROUP,
            comparison: Sequence[str] = COMPARISON_GROUPS) -> AnalysisResult:
    """Run every analysis of the paper (and the additions) and fill the registry.

    Parameters
    ----------
    participants, reads, measurements : DataFrame
        Contract tables (all enrolled participants; exclusions are applied here).
    alpha : float
        Significance level; every interval is at level ``1 - alpha``.
    n_boot : int
        Bootstrap resamples (and cluster permutations) per analysis.
    seed : int
        Seed of all resampling; each analysis derives its own stream from it and its
        name, so results do not depend on which other analyses ran.
    ci_method : {'wilson', 'clopper-pearson'}
        Interval of the readers' proportions.
    patient_group : str
        Label of the patients (the manifest's ``settings.patient_group``).
    comparison : sequence of str
        Labels of the comparison groups (``settings.comparison_groups``).

    Returns
    -------
    AnalysisResult
        ``tables`` keyed by :data:`TABLE_NAMES` and the ``registry``. Deterministic:
        the same inputs give byte-identical tables and an identical registry. An
        analysis that cannot be computed on this cohort is a row that says why.
    """
    if not 0 < alpha < 1:
        raise DataError(f"alpha must be between 0 and 1, got {alpha}")
    if int(n_boot) < 0 or int(seed) < 0:
        raise DataError(f"n_boot and seed must be >= 0, got {n_boot} and {seed}")
    level = 1 - alpha
    n_boot = int(n_boot)
    comparison = comparison_groups(comparison)
    g = dict(patient_group=patient_group)
    gc = dict(patient_group=patient_group, comparison=comparison)
    tables = {
        "cohort": cohort_table(participants, **gc),
        "visual_reading": visual_reading(participants, reads, ci_method=ci_method, conf_level=level, **gc),
        "reader_agreement": reader_agreement(reads, participants, conf_level=level, **gc),
        "fleiss_agreement": fleiss_agreement(reads, participants, **gc),
        "correct_vs_missed": correct_vs_missed(participants, reads, conf_level=level, **g),
        "group_comparison": group_comparison(participants, measurements, conf_level=level, **gc),
        "correlations": correlations(participants, measurements, n_boot=n_boot, seed=seed,
                                     conf_level=level, **g),
        "limb_correlations": limb_correlations(participants, measurements, n_boot=n_boot,
                                               seed=seed, conf_level=level, **g),
        "dpr_subgroups": dpr_subgroups(participants, measurements, conf_level=level, **g),
        "roc": roc_table(participants, measurements, reads, conf_level=level, **gc),
    }
    params = dict(alpha=float(alpha), n_boot=n_boot, seed=int(seed), ci_method=ci_method,
                  patient_group=patient_group, comparison_groups=list(comparison))
    return AnalysisResult(tables=tables, registry=registry_from_tables(tables, params),
                          params=params)
