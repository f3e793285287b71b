"""The cohort: enrolment, exclusions and clinical scores (on-line Table 1)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from m1lib import contract, stats
from m1lib.analyses._common import (COHORT_CLINICAL, COMPARISON_GROUPS, PATIENT_GROUP,
                                    _participants, comparison_groups)

__all__ = ["cohort_table", "group_order"]


def group_order(participants: pd.DataFrame, patient_group: str = PATIENT_GROUP,
                comparison: Sequence[str] = COMPARISON_GROUPS) -> list[str]:
    """Group labels in report order: the patients, the comparison groups, then any others.

    Examples
    --------
    >>> p = pd.DataFrame({"group": ["HS", "PLS", "ALS", "mimic"]})
    >>> group_order(p, "ALS", ("mimic", "HS"))
    ['ALS', 'mimic', 'HS', 'PLS']
    """
    named = [patient_group, *comparison_groups(comparison)]
    present = set(participants["group"].astype(str))
    return named + sorted(present - set(named))


def cohort_table(participants: pd.DataFrame, patient_group: str = PATIENT_GROUP,
                 comparison: Sequence[str] = COMPARISON_GROUPS) -> pd.DataFrame:
    """Demographic and clinical summary, enrolled and analysed (online Table 1 style).

    Parameters
    ----------
    participants : DataFrame
        All enrolled participants.
    patient_group : str
        Label of the patients (their clinical scores are summarised).
    comparison : sequence of str
        Labels of the comparison groups. Every group named, and any other group the
        data hold, gets its rows (a named group without participants has n = 0).

    Returns
    -------
    DataFrame
        Long table with columns ``subset`` (``enrolled``/``analysed``), ``group``,
        ``variable``, ``level``, ``n``, ``count``, ``mean``, ``sd``, ``median``,
        ``min``, ``max``. Rows: ``n``; ``excluded`` (enrolled, per reason in
        ``level`` and in total); ``sex`` per level; ``age``; for the analysed
        patients the clinical scores (ALSFRS-R, total UMN, MRC, disease duration, DPR
        and the optional ones present).

    Notes
    -----
    SD with n - 1. ``umn_total`` and ``dpr`` are derived by :mod:`m1lib.contract`.

    Examples
    --------
    >>> p = pd.DataFrame({"participant_id": ["sub-A1", "sub-A2", "sub-H1"],
    ...     "group": ["ALS", "ALS", "HS"], "age": [60, 70, 50], "sex": ["M", "F", "F"],
    ...     "excluded": [False, True, False], "exclusion_reason": ["n/a", "motion", "n/a"]})
    >>> t = cohort_table(p)
    >>> t.query("variable == 'n'")[["subset", "group", "count"]].values.tolist()
    [['enrolled', 'ALS', 2], ['enrolled', 'HS', 1], ['analysed', 'ALS', 1], ['analysed', 'HS', 1]]
    """
    p = _participants(participants)
    groups = group_order(p, patient_group, comparison)
    rows = []

    def numeric(subset, group, var, values):
        d = stats.describe(pd.to_numeric(values, errors="coerce"))
        v = pd.to_numeric(values, errors="coerce").dropna()
        rows.append(dict(subset=subset, group=group, variable=var, level="", n=d["n"],
                         count=np.nan, mean=d["mean"], sd=d["sd"], median=d["median"],
                         min=float(v.min()) if len(v) else np.nan,
                         max=float(v.max()) if len(v) else np.nan))

    def count(subset, group, var, level, n, k):
        rows.append(dict(subset=subset, group=group, variable=var, level=level, n=n,
                         count=int(k), mean=np.nan, sd=np.nan, median=np.nan,
                         min=np.nan, max=np.nan))

    for subset in ("enrolled", "analysed"):
        for group in groups:
            g = p[p["group"] == group]
            if subset == "analysed":
                g = g[~g["excluded"]]
            n = len(g)
            count(subset, group, "n", "", n, n)
            if subset == "enrolled":
                ex = g[g["excluded"]]
                count(subset, group, "excluded", "", n, len(ex))
                if "exclusion_reason" in g.columns:
                    reasons = ex["exclusion_reason"].fillna("n/a").astype(str)
                    for reason in sorted(set(reasons)):
                        count(subset, group, "exclusion_reason", reason, len(ex),
                              int((reasons == reason).sum()))
            if "sex" in g.columns:
                for sex in contract.SEXES:
                    count(subset, group, "sex", sex, n, int((g["sex"] == sex).sum()))
            if "age" in g.columns and n:
                numeric(subset, group, "age", g["age"])
            if subset == "analysed" and group == patient_group:
                for var in COHORT_CLINICAL:
                    if var in g.columns and pd.to_numeric(g[var], errors="coerce").notna().any():
                        numeric(subset, group, var, g[var])
    out = pd.DataFrame(rows)
    out["count"] = out["count"].astype("Int64")
    return out
