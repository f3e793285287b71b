"""ROC: how well each measure, and each reader's call, separates the patients from each
comparison group, with DeLong intervals and paired tests."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from m1lib import stats
from m1lib.analyses._common import (COMPARISON_GROUPS, MEASURE_DIRECTION, NOT_COMPUTED,
                                    PATIENT_GROUP, _reads, _subjects, comparison_groups)

__all__ = ["roc_curves", "roc_table"]


def roc_curves(participants: pd.DataFrame, measurements: pd.DataFrame,
               patient_group: str = PATIENT_GROUP,
               comparison: Sequence[str] = COMPARISON_GROUPS) -> pd.DataFrame:
    """Empirical ROC curve of each measure (patients vs each comparison group, per-subject means).

    Returns
    -------
    DataFrame
        ``group_control``, ``predictor``, ``threshold``, ``fpr``, ``tpr``: one row per
        distinct score plus the (0, 0) start, scores oriented by
        :data:`~m1lib.analyses.MEASURE_DIRECTION`.

    Notes
    -----
    The curve is the step function of (1 - specificity, sensitivity) over all
    thresholds. Written with NumPy because the project does not depend on
    scikit-learn for one cumulative sum; the AUC and its CI come from
    :func:`roc_table` (DeLong).

    Examples
    --------
    >>> p = pd.DataFrame({"participant_id": ["sub-a", "sub-b", "sub-c", "sub-d"],
    ...                   "group": ["ALS", "ALS", "HS", "HS"], "excluded": False})
    >>> m = pd.DataFrame({"participant_id": ["sub-a", "sub-b", "sub-c", "sub-d"], "hemisphere": "L",
    ...                   "area": "hand", "thickness_mm": [1.2, 1.9, 1.8, 2.1], "intensity": 1.0})
    >>> roc_curves(p, m).query("predictor == 'thickness_mm'")[["fpr", "tpr"]].values.tolist()
    [[0.0, 0.0], [0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [1.0, 1.0]]
    """
    subj, measures = _subjects(participants, measurements)
    parts = []
    for other in comparison_groups(comparison):
        s2 = subj[subj["group"].isin([patient_group, other])]
        case = (s2["group"] == patient_group).to_numpy()
        for name in measures:
            score = s2[name].to_numpy(float)
            ok = np.isfinite(score)
            sign = 1.0 if MEASURE_DIRECTION[name] == "higher" else -1.0
            s, y = sign * score[ok], case[ok]
            order = np.argsort(-s, kind="stable")
            s, y = s[order], y[order]
            last = np.r_[np.diff(s) != 0, True] if s.size else np.zeros(0, bool)
            tpr = np.cumsum(y)[last] / max(y.sum(), 1)
            fpr = np.cumsum(~y)[last] / max((~y).sum(), 1)
            parts.append(pd.DataFrame({"group_control": other, "predictor": name,
                                       "threshold": np.r_[np.inf, sign * s[last]],
                                       "fpr": np.r_[0.0, fpr], "tpr": np.r_[0.0, tpr]}))
    return pd.concat(parts, ignore_index=True)


def roc_table(participants: pd.DataFrame, measurements: pd.DataFrame, reads: pd.DataFrame,
              conf_level: float = 0.95, patient_group: str = PATIENT_GROUP,
              comparison: Sequence[str] = COMPARISON_GROUPS) -> pd.DataFrame:
    """ROC AUC of each measure and each reader, patients vs each comparison group.

    Parameters
    ----------
    participants, measurements, reads : DataFrame
        Contract tables; analysed participants only.
    conf_level : float
        Confidence level.
    patient_group : str
        Label of the patients (cases).
    comparison : sequence of str
        Labels of the comparison groups (controls), each analysed separately.

    Returns
    -------
    DataFrame
        One row per comparison group and predictor (measures first, then readers):
        ``group_case``, ``group_control``, ``predictor``, ``kind``
        (``measure``/``reader``), ``direction``, ``n_case``, ``n_control``, ``auc``,
        ``se``, ``ci_low``, ``ci_high``, ``ci_method``, ``method``, ``conf_level``,
        ``accuracy`` (readers: fraction of correct calls) and, for each reader R,
        ``auc_difference_vs_R`` and ``p_value_vs_R`` (measure rows: DeLong paired test
        on the participants with both; NaN on reader rows). With fewer than 2 cases or
        controls the row is NaN and ``method`` says so.

    Notes
    -----
    A measure's score is its per-subject mean, oriented by
    :data:`~m1lib.analyses.MEASURE_DIRECTION` (fixed a priori, so an AUC below 0.5
    means the data contradict the expected direction). A reader's score is the binary
    call (ALS = 1), whose AUC is (sensitivity + specificity) / 2: the readers'
    balanced accuracy, on the same scale as the measures' AUC. DeLong variance and
    paired test are hand-written in :mod:`m1lib.stats` (neither SciPy nor
    statsmodels has them).
    """
    subj_all, measures = _subjects(participants, measurements)
    rows = []
    for other in comparison_groups(comparison):
        subj = subj_all[subj_all["group"].isin([patient_group, other])].reset_index(drop=True)
        r = _reads(reads, subj["participant_id"])
        wide = r.assign(score=(r["call"] == "ALS").astype(float)).pivot(
            index="participant_id", columns="reader", values="score")
        readers = sorted(wide.columns)
        calls = {rd: wide[rd].reindex(subj["participant_id"]).to_numpy(float) for rd in readers}
        case = (subj["group"] == patient_group).to_numpy()
        predictors = [(m, "measure", MEASURE_DIRECTION[m], subj[m].to_numpy(float)) for m in measures]
        predictors += [(rd, "reader", "higher", calls[rd]) for rd in readers]
        for name, kind, direction, score in predictors:
            ok = np.isfinite(score)
            m, n = int((case & ok).sum()), int((~case & ok).sum())
            row = dict(group_case=patient_group, group_control=other, predictor=name, kind=kind,
                       direction=direction, n_case=m, n_control=n, auc=np.nan, se=np.nan,
                       ci_low=np.nan, ci_high=np.nan, ci_method="DeLong", method="DeLong",
                       conf_level=conf_level, accuracy=np.nan)
            if min(m, n) < 2:
                row.update(method=NOT_COMPUTED + f"fewer than 2 {patient_group if m < 2 else other} "
                                                 f"with a value (n = {min(m, n)})",
                           ci_method="not computed")
            else:
                t = stats.roc_auc_delong(score[case & ok], score[~case & ok], direction=direction,
                                         conf_level=conf_level).iloc[0]
                row.update(auc=float(t.auc), se=float(t.se), ci_low=float(t.ci_low),
                           ci_high=float(t.ci_high))
                if kind == "reader":
                    row["accuracy"] = float(np.mean((score[ok] == 1) == case[ok]))
            for rd in readers:
                diff = pval = np.nan
                both = np.isfinite(score) & np.isfinite(calls[rd])
                if kind == "measure" and np.isfinite(row["auc"]) and \
                        min((case & both).sum(), (~case & both).sum()) >= 2:
                    test = stats.delong_paired_test(case, score, calls[rd], direction1=direction,
                                                    direction2="higher").iloc[0]
                    diff, pval = float(test.auc_difference), float(test.p_value)
                row[f"auc_difference_vs_{rd}"] = diff
                row[f"p_value_vs_{rd}"] = pval
            rows.append(row)
    return pd.DataFrame(rows)
