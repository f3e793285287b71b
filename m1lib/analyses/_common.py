"""Shared ground of the analyses: the tables checked once, group labels, and "not computed".

Every analysis takes the contract tables (``docs/data.md``) already read by
:mod:`m1lib.dataset` and reads them through the helpers here: only analysed
(non-excluded) participants count; the patient group and the comparison group(s)
are labels given by the caller (the manifest's ``settings.patient_group`` and
``settings.comparison_groups``; the paper's ALS vs HS by default). A result that
cannot be computed on this cohort is a row whose ``method`` starts with
``"not computed: "`` and says why; it never stops the other analyses.
"""
from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np
import pandas as pd

from m1lib import contract, stats
from m1lib.errors import DataError

#: Measured quantities analysed, when present in the measurements.
MEASURES: tuple[str, ...] = ("thickness_mm", "intensity", "r2star_s")
#: Expected direction in the patients, fixed before looking at the data (thinning; iron
#: makes the deep layer hypointense and shortens T2*, i.e. raises R2*). Used for the ROC.
MEASURE_DIRECTION: dict[str, str] = {
    "thickness_mm": "lower", "intensity": "lower", "r2star_s": "higher",
}
#: Subject-level correlates, in the paper's order: the reported ones (DPR,
#: ALSFRS-R), then the null findings. Each is used when the data have it.
CLINICAL_VARIABLES: tuple[str, ...] = (
    "dpr", "alsfrs_r", "mrc", "disease_duration_months", "cmct_ms",
    "cortical_latency_ms", "cortical_silent_period_ms", "frap", "aopp", "thiols",
)
#: Clinical scores summarised in the cohort table (online Table 1).
COHORT_CLINICAL: tuple[str, ...] = (
    "alsfrs_r", "umn_total", "mrc", "disease_duration_months", "dpr",
) + contract.OPTIONAL_NUMERIC
#: M1 areas correlated with their limb's UMN score (the face has no limb).
LIMB_AREAS: tuple[str, ...] = ("foot", "leg", "hand")
DEFAULT_SEED = 20160301
#: The paper's groups: patients with ALS against healthy subjects.
PATIENT_GROUP = "ALS"
COMPARISON_GROUPS: tuple[str, ...] = ("HS",)
NOT_COMPUTED = "not computed: "
_NOT_COMPUTED = NOT_COMPUTED


def not_computed(method) -> bool:
    """Whether a result row's ``method`` says it could not be computed."""
    return isinstance(method, str) and method.startswith(NOT_COMPUTED)


def comparison_groups(groups: str | Sequence[str]) -> tuple[str, ...]:
    """The comparison group labels as a tuple (a single label is accepted)."""
    out = (groups,) if isinstance(groups, str) else tuple(groups)
    if not out:
        raise ValueError("at least one comparison group is needed")
    return out


# ----------------------------------------------------------------------- boundary
def _require(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what} lacks column(s) {', '.join(missing)} "
                        f"(has: {', '.join(map(str, df.columns))})")


def _excluded_flag(values: pd.Series) -> pd.Series:
    if values.dtype == bool:
        return values
    mapping = {"true": True, "false": False, "1": True, "0": False}
    text = values.map(lambda v: str(v).strip().lower() if not isinstance(v, bool) else str(v).lower())
    bad = sorted(set(text[~text.isin(list(mapping))]))
    if bad:
        raise DataError(f"participants: excluded must be true or false, got {bad}")
    return text.map(mapping).astype(bool)


def _numeric(df: pd.DataFrame, columns, what: str) -> pd.DataFrame:
    """Columns converted to float; a value that is not a number is a DataError."""
    for col in columns:
        if col not in df.columns or pd.api.types.is_numeric_dtype(df[col]):
            continue
        raw = df[col].replace({"n/a": np.nan, "": np.nan})
        vals = pd.to_numeric(raw, errors="coerce")
        bad = raw.notna() & vals.isna()
        if bad.any():
            raise DataError(f"{what}: {col} is not a number: {raw[bad].iloc[0]!r}")
        df[col] = vals.astype(float)
    return df


def _participants(participants: pd.DataFrame) -> pd.DataFrame:
    """All enrolled participants, checked, with ``excluded`` boolean and derived columns.

    Group labels are not restricted here: the dataset layer validates them against
    the manifest, and the analyses use whatever labels the caller names.
    """
    _require(participants, ("participant_id", "group", "excluded"), "participants")
    p = participants.copy()
    dup = sorted(set(p.loc[p["participant_id"].duplicated(), "participant_id"]))
    if dup:
        raise DataError(f"participants: duplicated participant_id {dup}")
    p["group"] = p["group"].astype(str)
    p["excluded"] = _excluded_flag(p["excluded"])
    p = _numeric(p, ("age",) + contract.ALS_REQUIRED + contract.OPTIONAL_NUMERIC, "participants")
    for col in contract.ALS_REQUIRED:
        if col not in p.columns:
            p[col] = np.nan
    p = contract.with_derived(p)
    return p.sort_values("participant_id", kind="stable").reset_index(drop=True)


def _analysed(participants: pd.DataFrame) -> pd.DataFrame:
    p = _participants(participants)
    return p[~p["excluded"]].reset_index(drop=True)


def _measurements(measurements: pd.DataFrame, known_ids=None) -> pd.DataFrame:
    _require(measurements, contract.MEASUREMENT_KEY, "measurements")
    m = measurements.copy()
    key = list(contract.MEASUREMENT_KEY)
    dup = m.duplicated(key, keep=False)
    if dup.any():
        first = m.loc[dup, key].iloc[0].tolist()
        raise DataError(f"measurements: {int(dup.sum())} rows repeat a participant, "
                        f"hemisphere and area (first: {first})")
    m = _numeric(m, MEASURES, "measurements")
    if known_ids is not None:
        unknown = sorted(set(m["participant_id"]) - set(known_ids))
        if unknown:
            raise DataError(f"measurements for participants not in participants: {unknown[:5]}")
    return m


def _measures(measurements: pd.DataFrame) -> list[str]:
    return [c for c in MEASURES if c in measurements.columns
            and pd.to_numeric(measurements[c], errors="coerce").notna().any()]


def _child_rng(seed, *names: str) -> np.random.Generator:
    """An independent, reproducible stream per analysis, whatever else ran."""
    tag = zlib.crc32("|".join(names).encode("utf-8"))
    return np.random.default_rng([int(seed), tag])


def subject_means(measurements: pd.DataFrame) -> pd.DataFrame:
    """Per-participant mean of every measured quantity (the paper's per-subject value).

    Parameters
    ----------
    measurements : DataFrame
        Long table keyed by ``participant_id, hemisphere, area``.

    Returns
    -------
    DataFrame
        One row per participant (sorted by id): ``participant_id`` and the mean,
        over both hemispheres and all areas, of each numeric non-key column. Missing
        values are skipped; a participant with none gets NaN.

    Notes
    -----
    The paper: "measurements ... for each subject were then averaged to obtain mean
    values from both cerebral hemispheres" (all four Penfield areas).

    Examples
    --------
    >>> m = pd.DataFrame({"participant_id": ["sub-1"] * 3 + ["sub-2"],
    ...     "hemisphere": ["L", "R", "L", "L"], "area": ["hand", "hand", "leg", "hand"],
    ...     "thickness_mm": [1.0, 2.0, np.nan, 3.0], "intensity": [0.9, 0.8, 0.7, 1.0]})
    >>> subject_means(m).round(3).to_dict("list")
    {'participant_id': ['sub-1', 'sub-2'], 'thickness_mm': [1.5, 3.0], 'intensity': [0.8, 1.0]}
    """
    m = _measurements(measurements)
    values = [c for c in m.columns if c not in contract.MEASUREMENT_KEY
              and pd.api.types.is_numeric_dtype(m[c]) and not pd.api.types.is_bool_dtype(m[c])]
    out = m.groupby("participant_id", sort=True)[values].mean()
    return out.reset_index()


def _subjects(participants: pd.DataFrame, measurements: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Analysed participants with their per-subject means, and the measures present."""
    p = _analysed(participants)
    m = _measurements(measurements, known_ids=_participants(participants)["participant_id"])
    measures = _measures(m)
    means = subject_means(m)[["participant_id"] + measures]
    return p.merge(means, on="participant_id", how="left"), measures



# ----------------------------------------------------------------------- reads
def _reads(reads: pd.DataFrame, analysed_ids=None) -> pd.DataFrame:
    """Reads checked; restricted to ``analysed_ids`` (each must be read by every reader).

    The dataset layer reports these problems file- and line-wise at load time; this is
    the same check for tables handed in directly.
    """
    _require(reads, ("participant_id", "reader", "call"), "visual reads")
    r = reads[["participant_id", "reader", "call"]].copy()
    r["reader"] = r["reader"].astype(str)
    bad = sorted(set(r["call"].astype(str)) - set(contract.CALLS))
    if bad:
        raise DataError(f"visual reads: call must be {' or '.join(contract.CALLS)}, got {bad}")
    dup = r.duplicated(["participant_id", "reader"], keep=False)
    if dup.any():
        first = r.loc[dup, ["participant_id", "reader"]].iloc[0].tolist()
        raise DataError(f"visual reads: participant read twice by the same reader ({first})")
    if analysed_ids is not None:
        r = r[r["participant_id"].isin(set(analysed_ids))]
        for reader, g in r.groupby("reader", sort=True):
            missing = sorted(set(analysed_ids) - set(g["participant_id"]))
            if missing:
                raise DataError(f"visual reads: {reader} did not read {len(missing)} analysed "
                                f"participant(s): {', '.join(missing[:5])}"
                                f"{' ...' if len(missing) > 5 else ''}")
    return r.sort_values(["reader", "participant_id"], kind="stable").reset_index(drop=True)


def _mwu_row(x, y, labels, conf_level) -> pd.DataFrame:
    """Mann-Whitney record, or a NaN record whose ``method`` says why it was not computed."""
    x = pd.to_numeric(pd.Series(x, dtype=object), errors="coerce").dropna().to_numpy(float)
    y = pd.to_numeric(pd.Series(y, dtype=object), errors="coerce").dropna().to_numpy(float)
    why = None
    if min(x.size, y.size) < 2:
        short = [f"{lab} (n = {v.size})" for lab, v in zip(labels, (x, y)) if v.size < 2]
        why = f"fewer than 2 values in {' and '.join(short)}"
    elif np.unique(np.concatenate([x, y])).size < 2:
        why = "all values are equal"
    if why is not None:
        row = {c: np.nan for c in stats.MWU_COLUMNS}
        row.update(group_x=labels[0], group_y=labels[1], n_x=x.size, n_y=y.size,
                   method=NOT_COMPUTED + why, permutation_method="not computed",
                   ci_method="not computed", conf_level=conf_level)
        return pd.DataFrame([row], columns=list(stats.MWU_COLUMNS))
    return stats.mann_whitney(x, y, labels=labels, conf_level=conf_level,
                              permutation=x.size + y.size <= stats.PERMUTATION_MAX_N)
