"""The vocabulary of the data contract and the derived clinical variables.

Everything here is pure: names, ranges and small functions over tidy tables. File
handling and validation live in :mod:`m1lib.dataset`; see ``docs/data.md``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: Penfield areas of M1, from the vertex down (the paper's order).
AREAS: tuple[str, ...] = ("foot", "leg", "hand", "face")
#: Hemispheres.
HEMISPHERES: tuple[str, ...] = ("L", "R")
#: The paper's groups: the defaults of ``settings.patient_group`` and
#: ``settings.comparison_groups``. ``participants.tsv`` may hold any labels
#: (``PLS``, ``mimic``, ...); :mod:`m1lib.tables` checks the chosen ones are present.
GROUPS: tuple[str, ...] = ("ALS", "HS")
SEXES: tuple[str, ...] = ("F", "M")
CALLS: tuple[str, ...] = ("ALS", "normal")
#: Label of the precuneus reference point in the annotations.
REFERENCE_LABEL = "ref_precuneus"

#: Per-limb UMN columns (0-8 each) and the bulbar one (0-1); their sum is the
#: total UMN score (0-33).
UMN_LIMB_COLUMNS: tuple[str, ...] = (
    "umn_arm_left", "umn_arm_right", "umn_leg_left", "umn_leg_right",
)
UMN_COLUMNS: tuple[str, ...] = ("umn_bulbar",) + UMN_LIMB_COLUMNS

#: Numeric participant columns and their allowed closed ranges.
RANGES: dict[str, tuple[float, float]] = {
    "age": (0, 120),
    "alsfrs_r": (0, 48),
    "mrc": (0, 130),
    "umn_bulbar": (0, 1),
    "umn_arm_left": (0, 8),
    "umn_arm_right": (0, 8),
    "umn_leg_left": (0, 8),
    "umn_leg_right": (0, 8),
}
#: Clinical columns every analysed ALS participant must have.
ALS_REQUIRED: tuple[str, ...] = (
    "alsfrs_r", "disease_duration_months", "mrc",
) + UMN_COLUMNS
#: Optional electrophysiology and plasma columns (the paper's null findings).
OPTIONAL_NUMERIC: tuple[str, ...] = (
    "cmct_ms", "cortical_latency_ms", "cortical_silent_period_ms",
    "frap", "aopp", "thiols",
)
PARTICIPANT_COLUMNS: tuple[str, ...] = (
    "participant_id", "group", "age", "sex", "excluded", "exclusion_reason",
) + ALS_REQUIRED + OPTIONAL_NUMERIC

#: Long-format measurement table: the key and the two measured quantities.
MEASUREMENT_KEY: tuple[str, ...] = ("participant_id", "hemisphere", "area")
MEASUREMENT_VALUES: tuple[str, ...] = ("thickness_mm", "intensity")

#: Which limb's UMN column an M1 area of one hemisphere drives (contralateral).
#: ``face`` maps to the bulbar score, which has no side.
LIMB_UMN_COLUMN: dict[tuple[str, str], str] = {
    ("L", "hand"): "umn_arm_right", ("R", "hand"): "umn_arm_left",
    ("L", "leg"): "umn_leg_right", ("R", "leg"): "umn_leg_left",
    ("L", "foot"): "umn_leg_right", ("R", "foot"): "umn_leg_left",
    ("L", "face"): "umn_bulbar", ("R", "face"): "umn_bulbar",
}


def umn_total(participants: pd.DataFrame) -> pd.Series:
    """Total UMN score: the sum of the bulbar and four limb scores (0-33).

    NaN where any component is missing (healthy subjects have none).

    Examples
    --------
    >>> df = pd.DataFrame({"umn_bulbar": [1], "umn_arm_left": [8], "umn_arm_right": [8],
    ...                    "umn_leg_left": [8], "umn_leg_right": [8]})
    >>> int(umn_total(df).iloc[0])
    33
    """
    cols = participants.reindex(columns=list(UMN_COLUMNS)).astype(float)
    return cols.sum(axis=1, min_count=len(UMN_COLUMNS)).where(cols.notna().all(axis=1))


def dpr(participants: pd.DataFrame) -> pd.Series:
    """Disease progression rate, points of ALSFRS-R lost per month.

    Notes
    -----
    DPR = (48 - ALSFRS-R) / disease duration in months (Kimura et al. 2006, the
    paper's ref. 23). Undefined (NaN) when the duration is missing or not > 0.

    Examples
    --------
    >>> df = pd.DataFrame({"alsfrs_r": [40, 44], "disease_duration_months": [16, 0]})
    >>> dpr(df).tolist()
    [0.5, nan]
    """
    months = participants["disease_duration_months"].astype(float)
    months = months.where(months > 0)
    return (48.0 - participants["alsfrs_r"].astype(float)) / months


def with_derived(participants: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with the derived columns ``umn_total`` and ``dpr`` added."""
    out = participants.copy()
    out["umn_total"] = umn_total(out)
    out["dpr"] = dpr(out)
    return out


def limb_umn(participants: pd.DataFrame, measurements: pd.DataFrame) -> pd.DataFrame:
    """Attach to each (hemisphere, area) row the contralateral limb's UMN score.

    Parameters
    ----------
    participants : DataFrame
        One row per participant with the UMN columns.
    measurements : DataFrame
        Long table keyed by ``participant_id, hemisphere, area``.

    Returns
    -------
    DataFrame
        ``measurements`` with ``umn_column`` (the source column) and
        ``umn_score`` (its value) added.

    Examples
    --------
    >>> p = pd.DataFrame({"participant_id": ["sub-01"], "umn_bulbar": [0],
    ...     "umn_arm_left": [1], "umn_arm_right": [5], "umn_leg_left": [2], "umn_leg_right": [3]})
    >>> m = pd.DataFrame({"participant_id": ["sub-01"] * 2, "hemisphere": ["L", "R"],
    ...                   "area": ["hand", "hand"]})
    >>> limb_umn(p, m)["umn_score"].tolist()
    [5.0, 1.0]
    """
    out = measurements.copy()
    out["umn_column"] = [
        LIMB_UMN_COLUMN[(h, a)] for h, a in zip(out["hemisphere"], out["area"])
    ]
    wide = participants.set_index("participant_id")
    values = np.full(len(out), np.nan)
    for col in set(out["umn_column"]):
        sel = (out["umn_column"] == col).to_numpy()
        values[sel] = wide[col].reindex(out.loc[sel, "participant_id"]).astype(float).to_numpy()
    out["umn_score"] = values
    return out
