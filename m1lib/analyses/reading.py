"""Visual reading: each reader's diagnostic accuracy, agreement between readers, and the
UMN score and DPR of correctly diagnosed vs missed patients.

Readers are whatever labels ``visual_reads.tsv`` holds, one or more; the paper's two
readers are the special case.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import pandas as pd

from m1lib import contract, stats
from m1lib.analyses._common import (COMPARISON_GROUPS, NOT_COMPUTED, PATIENT_GROUP,
                                    _analysed, _mwu_row, _reads, comparison_groups)

__all__ = ["visual_reading", "reader_agreement", "fleiss_agreement", "correct_vs_missed",
           "diagnosis_table", "AGREEMENT_COLUMNS"]

#: Columns of :func:`reader_agreement` (one row per pair of readers).
AGREEMENT_COLUMNS: tuple[str, ...] = (
    "reader_a", "reader_b", "n", "n_agree", "agreement", "expected_agreement", "kappa", "se",
    "se_method", "ci_low", "ci_high", "ci_method", "conf_level")


def _read_subjects(participants, patient_group, comparison) -> pd.DataFrame:
    p = _analysed(participants)
    return p[p["group"].isin([patient_group, *comparison_groups(comparison)])]


def visual_reading(participants: pd.DataFrame, reads: pd.DataFrame, ci_method: str = "wilson",
                   conf_level: float = 0.95, patient_group: str = PATIENT_GROUP,
                   comparison: Sequence[str] = COMPARISON_GROUPS) -> pd.DataFrame:
    """Each reader's diagnostic accuracy against the group label.

    Parameters
    ----------
    participants, reads : DataFrame
        Contract tables; only analysed participants of the patient and comparison
        groups count.
    ci_method : {'wilson', 'clopper-pearson'}
        Interval of the proportions.
    conf_level : float
        Confidence level.
    patient_group : str
        Label of the patients (condition present).
    comparison : sequence of str
        Labels of the groups without the condition (pooled).

    Returns
    -------
    DataFrame
        :func:`m1lib.stats.diagnostic_accuracy` per reader (readers in sorted order),
        stacked, with a ``reader`` column first: rows ``tp, fp, tn, fn, sensitivity,
        specificity, ppv, npv, accuracy``. Empty when there are no reads.

    Notes
    -----
    Positive condition: the patient group; positive test: call ``ALS``. With the
    paper's counts (reader 1: 12/18 ALS and 3/13 HS called ALS; reader 2: 9/18 and
    0/13) this gives 67/77/80/63/71 % and 50/100/100/59/71 % (rounded half up).
    """
    p = _read_subjects(participants, patient_group, comparison)
    r = _reads(reads, p["participant_id"]).merge(p[["participant_id", "group"]], on="participant_id")
    parts = []
    for reader, g in r.groupby("reader", sort=True):
        t = stats.diagnostic_accuracy(g["group"] == patient_group, g["call"] == "ALS",
                                      ci_method=ci_method, conf_level=conf_level)
        t.insert(0, "reader", reader)
        parts.append(t)
    if not parts:
        return pd.DataFrame(columns=["reader", "statistic", "estimate", "numerator", "denominator",
                                     "ci_low", "ci_high", "ci_method", "conf_level"])
    return pd.concat(parts, ignore_index=True)


def _wide_calls(reads, participants, patient_group, comparison) -> pd.DataFrame:
    ids = None
    if participants is not None:
        ids = _read_subjects(participants, patient_group, comparison)["participant_id"]
    r = _reads(reads, ids)
    return r.pivot(index="participant_id", columns="reader", values="call")


def reader_agreement(reads: pd.DataFrame, participants: pd.DataFrame | None = None,
                     conf_level: float = 0.95, patient_group: str = PATIENT_GROUP,
                     comparison: Sequence[str] = COMPARISON_GROUPS) -> pd.DataFrame:
    """Cohen's kappa for every pair of readers.

    Parameters
    ----------
    reads : DataFrame
        ``participant_id, reader, call``.
    participants : DataFrame, optional
        When given, only analysed participants of the patient and comparison groups
        count (as in :func:`~m1lib.analyses.run_all`).
    conf_level : float
        Confidence level.
    patient_group, comparison
        See :func:`visual_reading`.

    Returns
    -------
    DataFrame
        One row per pair (readers in sorted order): :data:`AGREEMENT_COLUMNS`, the
        columns of :func:`m1lib.stats.cohen_kappa_table` (kappa, Fleiss-Cohen-Everitt
        SE, Wald CI). With fewer than two readers there is no pair: no rows.

    Examples
    --------
    >>> reads = pd.DataFrame({"participant_id": [f"sub-{i}" for i in range(31)] * 2,
    ...     "reader": ["reader1"] * 31 + ["reader2"] * 31,
    ...     "call": ["ALS"] * 15 + ["normal"] * 16 + ["ALS"] * 9 + ["normal"] * 22})
    >>> round(float(reader_agreement(reads)["kappa"].iloc[0]), 2)
    0.61
    """
    wide = _wide_calls(reads, participants, patient_group, comparison)
    parts = []
    for a, b in itertools.combinations(sorted(wide.columns), 2):
        both = wide[[a, b]].dropna()
        t = stats.cohen_kappa(both[a], both[b], categories=contract.CALLS, conf_level=conf_level)
        t.insert(0, "reader_b", b)
        t.insert(0, "reader_a", a)
        parts.append(t)
    if not parts:
        return pd.DataFrame(columns=list(AGREEMENT_COLUMNS))
    return pd.concat(parts, ignore_index=True)[list(AGREEMENT_COLUMNS)]


def fleiss_agreement(reads: pd.DataFrame, participants: pd.DataFrame | None = None,
                     patient_group: str = PATIENT_GROUP,
                     comparison: Sequence[str] = COMPARISON_GROUPS) -> pd.DataFrame:
    """Fleiss' kappa across all readers (three or more).

    Returns
    -------
    DataFrame
        One row: ``readers`` (comma-separated), :func:`m1lib.stats.fleiss_kappa`'s
        columns; with fewer than three readers ``kappa`` is NaN and ``method`` says
        why (two readers: Cohen's kappa of :func:`reader_agreement` is the measure).
    """
    wide = _wide_calls(reads, participants, patient_group, comparison)
    readers = sorted(wide.columns)
    if len(readers) < 3:
        return pd.DataFrame([dict(readers=", ".join(readers), n=len(wide), n_raters=len(readers),
                                  agreement=np.nan, expected_agreement=np.nan, kappa=np.nan,
                                  method=NOT_COMPUTED + f"Fleiss' kappa needs 3 or more readers, "
                                         f"got {len(readers)}")])
    t = stats.fleiss_kappa(wide[readers].to_numpy(), categories=contract.CALLS)
    t.insert(0, "readers", ", ".join(readers))
    return t


def diagnosis_table(participants: pd.DataFrame, reads: pd.DataFrame,
                    patient_group: str = PATIENT_GROUP) -> pd.DataFrame:
    """Each analysed patient's call by each reader: ``diagnosis`` is ``correct`` (called ALS)
    or ``missed``, with ``umn_total`` and ``dpr``."""
    p = _analysed(participants)
    r = _reads(reads, p["participant_id"])
    patients = p[p["group"] == patient_group]
    r = r.merge(patients[["participant_id", "umn_total", "dpr"]], on="participant_id")
    r["diagnosis"] = np.where(r["call"] == "ALS", "correct", "missed")
    return r.sort_values(["reader", "participant_id"], ignore_index=True)


def correct_vs_missed(participants: pd.DataFrame, reads: pd.DataFrame,
                      conf_level: float = 0.95, patient_group: str = PATIENT_GROUP) -> pd.DataFrame:
    """Total UMN score and DPR of correctly diagnosed vs missed patients, per reader.

    Parameters
    ----------
    participants, reads : DataFrame
        Contract tables; analysed patients only.
    conf_level : float
        Level of the Hodges-Lehmann interval.
    patient_group : str
        Label of the patients.

    Returns
    -------
    DataFrame
        One row per reader and variable (``umn_total``, ``dpr``): ``reader``,
        ``variable`` and the :func:`m1lib.stats.mann_whitney` record (groups
        ``correct`` = called ALS, ``missed`` = called normal), with the exact
        permutation P.

    Notes
    -----
    A reader who called every patient correctly (or none) leaves a group with fewer
    than 2 patients: that row is NaN and its ``method`` says so, rather than failing
    the whole run.
    """
    r = diagnosis_table(participants, reads, patient_group)
    parts = []
    for reader, g in r.groupby("reader", sort=True):
        correct = g[g["diagnosis"] == "correct"]
        missed = g[g["diagnosis"] == "missed"]
        for var in ("umn_total", "dpr"):
            t = _mwu_row(correct[var], missed[var], ("correct", "missed"), conf_level)
            t.insert(0, "variable", var)
            t.insert(0, "reader", reader)
            parts.append(t)
    if not parts:
        return pd.DataFrame(columns=["reader", "variable", *stats.MWU_COLUMNS])
    return pd.concat(parts, ignore_index=True)
