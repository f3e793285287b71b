"""Group comparisons: patients vs each comparison group, and faster vs slower progressors."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from m1lib import contract, stats
from m1lib.analyses._common import (COMPARISON_GROUPS, NOT_COMPUTED, PATIENT_GROUP,
                                    _analysed, _measures, _mwu_row, _subjects,
                                    comparison_groups)
from m1lib.errors import DataError

__all__ = ["group_comparison", "subject_table", "dpr_subgroups", "example_participants"]


def group_comparison(participants: pd.DataFrame, measurements: pd.DataFrame,
                     conf_level: float = 0.95, patient_group: str = PATIENT_GROUP,
                     comparison: Sequence[str] = COMPARISON_GROUPS) -> pd.DataFrame:
    """Patients vs each comparison group for each measured quantity (per-subject means).

    Parameters
    ----------
    participants, measurements : DataFrame
        Contract tables.
    conf_level : float
        Level of the Hodges-Lehmann interval.
    patient_group : str
        Label of the patients (``x``).
    comparison : sequence of str
        Labels of the comparison groups (``y``), each compared separately; the
        paper's healthy subjects (``HS``) by default, disease mimics alike.

    Returns
    -------
    DataFrame
        One row per comparison group and measure (``thickness_mm``, ``intensity``,
        ``r2star_s`` when present): ``variable`` and the
        :func:`m1lib.stats.mann_whitney` record (``group_x`` = patients, ``group_y`` =
        the comparison group), with the exact permutation P. A group with fewer than
        2 participants with a value gives a NaN row whose ``method`` says so.

    Raises
    ------
    DataError
        The measurements hold none of the measured quantities.
    """
    subj, measures = _subjects(participants, measurements)
    if not measures:
        raise DataError("measurements have no thickness_mm, intensity or r2star_s values")
    parts = []
    for other in comparison_groups(comparison):
        for var in measures:
            t = _mwu_row(subj.loc[subj["group"] == patient_group, var],
                         subj.loc[subj["group"] == other, var],
                         (patient_group, other), conf_level)
            t.insert(0, "variable", var)
            parts.append(t)
    return pd.concat(parts, ignore_index=True)


def subject_table(participants: pd.DataFrame, measurements: pd.DataFrame,
                  patient_group: str = PATIENT_GROUP) -> pd.DataFrame:
    """Analysed participants with their per-subject means and, for patients, the DPR subgroup.

    ``progression`` is ``faster`` (DPR above the median of the patients with a DPR) or
    ``slower`` (at or below it), as in :func:`dpr_subgroups`; empty for everyone else.
    """
    subj, _ = _subjects(participants, measurements)
    pat = (subj["group"] == patient_group) & subj["dpr"].notna()
    median = float(np.median(subj.loc[pat, "dpr"])) if pat.any() else np.nan
    subj["progression"] = np.where(~pat, "", np.where(subj["dpr"] > median, "faster", "slower"))
    return subj


def dpr_subgroups(participants: pd.DataFrame, measurements: pd.DataFrame,
                  conf_level: float = 0.95, patient_group: str = PATIENT_GROUP) -> pd.DataFrame:
    """Faster vs slower progressors (split at the median DPR), per measure.

    Parameters
    ----------
    participants, measurements : DataFrame
        Contract tables.
    conf_level : float
        Level of the Hodges-Lehmann interval.
    patient_group : str
        Label of the patients.

    Returns
    -------
    DataFrame
        One row per measure: ``variable``, ``dpr_median``, ``split_rule`` and the
        :func:`m1lib.stats.mann_whitney` record (``x`` = faster, ``y`` = slower).
        With fewer than 4 patients with a DPR every row is NaN and ``method`` says so.

    Notes
    -----
    DPR = (48 - ALSFRS-R) / disease duration (:func:`m1lib.contract.dpr`). Faster:
    DPR strictly above the median of the analysed patients with a DPR; a patient
    exactly at the median (always one when their number is odd) joins the slower
    group. Patients without a DPR are left out.
    """
    subj = subject_table(participants, measurements, patient_group)
    measures = _measures(subj)
    pts = subj[subj["progression"] != ""]
    median = float(np.median(pts["dpr"])) if len(pts) else np.nan
    faster = pts[pts["progression"] == "faster"]
    slower = pts[pts["progression"] == "slower"]
    parts = []
    for var in measures:
        if len(pts) < 4:
            t = _mwu_row([], [], ("faster", "slower"), conf_level)
            t["method"] = NOT_COMPUTED + f"fewer than 4 patients with a DPR (n = {len(pts)})"
            t[["n_x", "n_y"]] = [len(faster), len(slower)]
        else:
            t = _mwu_row(faster[var], slower[var], ("faster", "slower"), conf_level)
        t.insert(0, "split_rule", "faster: dpr > median; at the median: slower")
        t.insert(0, "dpr_median", median)
        t.insert(0, "variable", var)
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def example_participants(participants: pd.DataFrame, reads: pd.DataFrame | None = None,
                         patient_group: str = PATIENT_GROUP,
                         comparison: Sequence[str] = COMPARISON_GROUPS) -> tuple[str, str]:
    """The two participants shown in Fig 1: a typical comparison subject and a typical patient.

    The comparison subject is the first analysed one (of the first comparison group)
    whom every reader called normal; the patient is the analysed one with the highest
    total UMN score whom every reader called ALS (the paper shows a clearly affected
    patient). Without reads, the first comparison subject and the highest UMN score.

    Returns
    -------
    (comparison_subject, patient) : tuple of str
        ``participant_id`` of each.
    """
    p = contract.with_derived(_analysed(participants)) if "umn_total" not in participants else _analysed(participants)
    calls = (reads.groupby("participant_id")["call"].agg(lambda c: set(c))
             if reads is not None and len(reads) else pd.Series(dtype=object))

    def unanimous(pid, call):
        return calls.get(pid, {call}) == {call}

    ref = comparison_groups(comparison)[0]
    hs = sorted(p.loc[p["group"] == ref, "participant_id"])
    pts = p[p["group"] == patient_group].sort_values(["umn_total", "participant_id"], ascending=[False, True],
                                                     kind="stable")["participant_id"].tolist()
    if not hs or not pts:
        raise DataError(f"Fig 1 needs at least one analysed {ref} participant and one {patient_group} patient")
    healthy = ([q for q in hs if unanimous(q, "normal")] or hs)[0]
    patient = ([q for q in pts if unanimous(q, "ALS")] or pts)[0]
    return healthy, patient
