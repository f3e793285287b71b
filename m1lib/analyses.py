"""The paper's analyses (Cosottini et al. 2016) over the study's tidy tables.

Inputs are the tables of the data contract (``docs/data.md``), already read by
:mod:`m1lib.dataset`:

- ``participants``: one row per enrolled participant (contract columns, boolean
  ``excluded``); only non-excluded participants are analysed (filtered here);
- ``reads``: ``participant_id, reader, call`` (``ALS`` or ``normal``);
- ``measurements``: long, one row per ``participant_id, hemisphere, area`` with
  ``thickness_mm``, ``intensity`` and optionally ``r2star_s``.

One public function per result of the paper, each returning a tidy table built on
:mod:`m1lib.stats`; :func:`run_all` runs them all and fills the results registry
(keys catalogued in ``docs/results.md``). Nothing here reads files. Problems with
the user's data raise :class:`m1lib.errors.DataError` with a one-line message.
"""
from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from m1lib import contract, stats
from m1lib.errors import DataError
from m1lib.results import add_record, key_part, validate_registry

__all__ = [
    "limb_pairs", "subject_table", "diagnosis_table", "roc_curves",
    "example_participants", "measurement_errors", "measurement_accuracy", "motion_qc", "measurement_registry", "ACCURACY_TARGETS",
    "MEASURES", "MEASURE_DIRECTION", "CLINICAL_VARIABLES", "LIMB_AREAS", "TABLE_NAMES",
    "AnalysisResult", "subject_means", "cohort_table", "visual_reading",
    "reader_agreement", "correct_vs_missed", "group_comparison", "correlations",
    "limb_correlations", "dpr_subgroups", "roc_table", "registry_from_tables", "run_all",
]

#: Measured quantities analysed, when present in the measurements.
MEASURES: tuple[str, ...] = ("thickness_mm", "intensity", "r2star_s")
#: Expected direction in ALS, fixed before looking at the data (thinning; iron makes
#: the deep layer hypointense and shortens T2*, i.e. raises R2*). Used for the ROC.
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
#: Names of :attr:`AnalysisResult.tables`, in the paper's order.
TABLE_NAMES: tuple[str, ...] = (
    "cohort", "visual_reading", "reader_agreement", "correct_vs_missed",
    "group_comparison", "correlations", "limb_correlations", "dpr_subgroups", "roc",
)
DEFAULT_SEED = 20160301
_NOT_COMPUTED = "not computed: "


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
        The settings used (``alpha, n_boot, seed, ci_method``).
    """

    tables: dict[str, pd.DataFrame]
    registry: dict[str, float]
    params: dict = field(default_factory=dict)


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
    """All enrolled participants, checked, with ``excluded`` boolean and derived columns."""
    _require(participants, ("participant_id", "group", "excluded"), "participants")
    p = participants.copy()
    dup = sorted(set(p.loc[p["participant_id"].duplicated(), "participant_id"]))
    if dup:
        raise DataError(f"participants: duplicated participant_id {dup}")
    bad = sorted(set(p["group"]) - set(contract.GROUPS))
    if bad:
        raise DataError(f"participants: group must be ALS or HS, got {bad}")
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


# ----------------------------------------------------------------------- cohort
def cohort_table(participants: pd.DataFrame) -> pd.DataFrame:
    """Demographic and clinical summary, enrolled and analysed (online Table 1 style).

    Parameters
    ----------
    participants : DataFrame
        All enrolled participants.

    Returns
    -------
    DataFrame
        Long table with columns ``subset`` (``enrolled``/``analysed``), ``group``,
        ``variable``, ``level``, ``n``, ``count``, ``mean``, ``sd``, ``median``,
        ``min``, ``max``. Rows: ``n``; ``excluded`` (enrolled, per reason in
        ``level`` and in total); ``sex`` per level; ``age``; for analysed ALS the
        clinical scores (ALSFRS-R, total UMN, MRC, disease duration, DPR and the
        optional ones present).

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
        for group in contract.GROUPS:
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
            if "age" in g.columns:
                numeric(subset, group, "age", g["age"])
            if subset == "analysed" and group == "ALS":
                for var in COHORT_CLINICAL:
                    if var in g.columns and pd.to_numeric(g[var], errors="coerce").notna().any():
                        numeric(subset, group, var, g[var])
    out = pd.DataFrame(rows)
    out["count"] = out["count"].astype("Int64")
    return out


# ----------------------------------------------------------------- visual reading
def _reads(reads: pd.DataFrame, analysed_ids=None) -> pd.DataFrame:
    """Reads checked; restricted to ``analysed_ids`` (each must be read by every reader)."""
    _require(reads, ("participant_id", "reader", "call"), "visual reads")
    r = reads[["participant_id", "reader", "call"]].copy()
    r["reader"] = r["reader"].astype(str)
    bad = sorted(set(r["call"].astype(str)) - set(contract.CALLS))
    if bad:
        raise DataError(f"visual reads: call must be ALS or normal, got {bad}")
    dup = r.duplicated(["participant_id", "reader"], keep=False)
    if dup.any():
        first = r.loc[dup, ["participant_id", "reader"]].iloc[0].tolist()
        raise DataError(f"visual reads: participant read twice by the same reader ({first})")
    if analysed_ids is not None:
        r = r[r["participant_id"].isin(set(analysed_ids))]
        for reader, g in r.groupby("reader", sort=True):
            missing = sorted(set(analysed_ids) - set(g["participant_id"]))
            if missing:
                raise DataError(f"visual reads: {reader} did not read analysed "
                                f"participant(s) {missing[:5]}")
    if r.empty:
        raise DataError("visual reads: no reads of analysed participants")
    return r.sort_values(["reader", "participant_id"], kind="stable").reset_index(drop=True)


def visual_reading(participants: pd.DataFrame, reads: pd.DataFrame, ci_method: str = "wilson",
                   conf_level: float = 0.95) -> pd.DataFrame:
    """Each reader's diagnostic accuracy against the group label.

    Parameters
    ----------
    participants, reads : DataFrame
        Contract tables; only analysed participants count.
    ci_method : {'wilson', 'clopper-pearson'}
        Interval of the proportions.
    conf_level : float
        Confidence level.

    Returns
    -------
    DataFrame
        :func:`m1lib.stats.diagnostic_accuracy` per reader, stacked, with a
        ``reader`` column first: rows ``tp, fp, tn, fn, sensitivity, specificity,
        ppv, npv, accuracy``.

    Notes
    -----
    Positive condition: group ALS; positive test: call ALS. With the paper's counts
    (reader 1: 12/18 ALS and 3/13 HS called ALS; reader 2: 9/18 and 0/13) this gives
    67/77/80/63/71 % and 50/100/100/59/71 % (rounded half up).
    """
    p = _analysed(participants)
    r = _reads(reads, p["participant_id"]).merge(p[["participant_id", "group"]], on="participant_id")
    parts = []
    for reader, g in r.groupby("reader", sort=True):
        t = stats.diagnostic_accuracy(g["group"] == "ALS", g["call"] == "ALS",
                                      ci_method=ci_method, conf_level=conf_level)
        t.insert(0, "reader", reader)
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def reader_agreement(reads: pd.DataFrame, participants: pd.DataFrame | None = None,
                     conf_level: float = 0.95) -> pd.DataFrame:
    """Cohen's kappa for every pair of readers.

    Parameters
    ----------
    reads : DataFrame
        ``participant_id, reader, call``.
    participants : DataFrame, optional
        When given, only analysed participants count (as in :func:`run_all`).
    conf_level : float
        Confidence level.

    Returns
    -------
    DataFrame
        One row per pair (readers in sorted order): ``reader_a, reader_b`` and the
        columns of :func:`m1lib.stats.cohen_kappa_table` (kappa, Fleiss-Cohen-Everitt
        SE, Wald CI).

    Examples
    --------
    >>> reads = pd.DataFrame({"participant_id": [f"sub-{i}" for i in range(31)] * 2,
    ...     "reader": ["reader1"] * 31 + ["reader2"] * 31,
    ...     "call": ["ALS"] * 15 + ["normal"] * 16 + ["ALS"] * 9 + ["normal"] * 22})
    >>> round(float(reader_agreement(reads)["kappa"].iloc[0]), 2)
    0.61
    """
    ids = None
    if participants is not None:
        ids = _analysed(participants)["participant_id"]
    r = _reads(reads, ids)
    wide = r.pivot(index="participant_id", columns="reader", values="call")
    readers = sorted(wide.columns)
    if len(readers) < 2:
        raise DataError(f"reader agreement needs at least 2 readers, got {readers}")
    parts = []
    for a, b in itertools.combinations(readers, 2):
        both = wide[[a, b]].dropna()
        t = stats.cohen_kappa(both[a], both[b], categories=contract.CALLS, conf_level=conf_level)
        t.insert(0, "reader_b", b)
        t.insert(0, "reader_a", a)
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def _mwu_row(x, y, labels, conf_level, required: bool) -> pd.DataFrame:
    """Mann-Whitney record, or (when not ``required``) a NaN record saying why not."""
    x = pd.to_numeric(pd.Series(x), errors="coerce").dropna().to_numpy(float)
    y = pd.to_numeric(pd.Series(y), errors="coerce").dropna().to_numpy(float)
    too_few = min(x.size, y.size) < 2
    if too_few and not required:
        row = {c: np.nan for c in stats.MWU_COLUMNS}
        row.update(group_x=labels[0], group_y=labels[1], n_x=x.size, n_y=y.size,
                   method=_NOT_COMPUTED + "fewer than 2 values in a group",
                   permutation_method="not computed", ci_method="not computed",
                   conf_level=conf_level)
        return pd.DataFrame([row], columns=list(stats.MWU_COLUMNS))
    return stats.mann_whitney(x, y, labels=labels, conf_level=conf_level,
                              permutation=x.size + y.size <= stats.PERMUTATION_MAX_N)


def correct_vs_missed(participants: pd.DataFrame, reads: pd.DataFrame,
                      conf_level: float = 0.95) -> pd.DataFrame:
    """Total UMN score and DPR of correctly diagnosed vs missed patients, per reader.

    Parameters
    ----------
    participants, reads : DataFrame
        Contract tables; analysed ALS patients only.
    conf_level : float
        Level of the Hodges-Lehmann interval.

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
    r = diagnosis_table(participants, reads)
    parts = []
    for reader, g in r.groupby("reader", sort=True):
        correct = g[g["diagnosis"] == "correct"]
        missed = g[g["diagnosis"] == "missed"]
        for var in ("umn_total", "dpr"):
            t = _mwu_row(correct[var], missed[var], ("correct", "missed"), conf_level,
                         required=False)
            t.insert(0, "variable", var)
            t.insert(0, "reader", reader)
            parts.append(t)
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------ quantitative analyses
def group_comparison(participants: pd.DataFrame, measurements: pd.DataFrame,
                     conf_level: float = 0.95) -> pd.DataFrame:
    """ALS vs healthy subjects for each measured quantity (per-subject means).

    Parameters
    ----------
    participants, measurements : DataFrame
        Contract tables.
    conf_level : float
        Level of the Hodges-Lehmann interval.

    Returns
    -------
    DataFrame
        One row per measure (``thickness_mm``, ``intensity``, ``r2star_s`` when
        present): ``variable`` and the :func:`m1lib.stats.mann_whitney` record
        (``x`` = ALS, ``y`` = HS), with the exact permutation P.

    Raises
    ------
    DataError
        A group has fewer than 2 participants with a value.
    """
    subj, measures = _subjects(participants, measurements)
    if not measures:
        raise DataError("measurements have no thickness_mm, intensity or r2star_s values")
    parts = []
    for var in measures:
        t = _mwu_row(subj.loc[subj["group"] == "ALS", var], subj.loc[subj["group"] == "HS", var],
                     ("ALS", "HS"), conf_level, required=True)
        t.insert(0, "variable", var)
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def _not_computed_corr(measure, var, n, why, n_boot, conf_level) -> dict:
    return dict(measure=measure, variable=var, n=n, rho=np.nan, p_value=np.nan,
                method=_NOT_COMPUTED + why, ci_low=np.nan, ci_high=np.nan,
                ci_method="not computed", n_boot=n_boot, n_boot_used=0,
                conf_level=conf_level)


def correlations(participants: pd.DataFrame, measurements: pd.DataFrame,
                 n_boot: int = 10000, seed: int = DEFAULT_SEED,
                 conf_level: float = 0.95) -> pd.DataFrame:
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
    als = subj[subj["group"] == "ALS"]
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


def limb_pairs(participants: pd.DataFrame, measurements: pd.DataFrame) -> pd.DataFrame:
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
    als = p[p["group"] == "ALS"]
    m = _measurements(measurements, known_ids=_participants(participants)["participant_id"])
    measures = _measures(m)
    grid = pd.MultiIndex.from_product(
        [als["participant_id"], contract.HEMISPHERES, LIMB_AREAS],
        names=list(contract.MEASUREMENT_KEY)).to_frame(index=False)
    grid = grid.merge(m[list(contract.MEASUREMENT_KEY) + measures],
                      on=list(contract.MEASUREMENT_KEY), how="left")
    return contract.limb_umn(als, grid)


def subject_table(participants: pd.DataFrame, measurements: pd.DataFrame) -> pd.DataFrame:
    """Analysed participants with their per-subject means and, for patients, the DPR subgroup.

    ``progression`` is ``faster`` (DPR above the median of the patients with a DPR) or
    ``slower`` (at or below it), as in :func:`dpr_subgroups`; empty for healthy subjects.
    """
    subj, _ = _subjects(participants, measurements)
    als = (subj["group"] == "ALS") & subj["dpr"].notna()
    median = float(np.median(subj.loc[als, "dpr"])) if als.any() else np.nan
    subj["progression"] = np.where(~als, "", np.where(subj["dpr"] > median, "faster", "slower"))
    return subj


def diagnosis_table(participants: pd.DataFrame, reads: pd.DataFrame) -> pd.DataFrame:
    """Each analysed patient's call by each reader: ``diagnosis`` is ``correct`` (called ALS)
    or ``missed``, with ``umn_total`` and ``dpr``."""
    p = _analysed(participants)
    r = _reads(reads, p["participant_id"])
    als = p[p["group"] == "ALS"]
    r = r.merge(als[["participant_id", "umn_total", "dpr"]], on="participant_id")
    r["diagnosis"] = np.where(r["call"] == "ALS", "correct", "missed")
    return r.sort_values(["reader", "participant_id"], ignore_index=True)


def limb_correlations(participants: pd.DataFrame, measurements: pd.DataFrame,
                      n_boot: int = 10000, seed: int = DEFAULT_SEED,
                      conf_level: float = 0.95) -> pd.DataFrame:
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
    grid = limb_pairs(participants, measurements)
    measures = _measures(grid)
    rows = []
    for measure in measures:
        g = grid.copy()
        g[measure] = pd.to_numeric(g[measure], errors="coerce")
        usable = (g[measure].notna() & g["umn_score"].notna()).groupby(g["participant_id"]).transform("any")
        g = g[usable]
        if g["participant_id"].nunique() < 3:
            raise DataError(f"per-limb correlation of {measure} needs at least 3 patients "
                            f"with measurements, got {g['participant_id'].nunique()}")
        t = stats.spearman_clustered(g[measure], g["umn_score"], g["participant_id"],
                                     n_boot=n_boot, conf_level=conf_level,
                                     seed=_child_rng(seed, "limb", measure)).iloc[0].to_dict()
        t["n_patients"] = t.pop("n_clusters")
        rows.append(dict(measure=measure, variable="umn_limb", **t))
    out = pd.DataFrame(rows)
    out["q_value"] = stats.bh_qvalues(out["p_value"])
    out["cluster_q_value"] = stats.bh_qvalues(out["cluster_p_value"])
    cols = ["measure", "variable", "n", "n_patients", "rho", "p_value", "q_value", "method",
            "cluster_ci_low", "cluster_ci_high", "cluster_ci_method", "n_boot",
            "n_boot_used", "cluster_p_value", "cluster_q_value", "cluster_p_method",
            "n_perm", "conf_level"]
    return out[cols]


def dpr_subgroups(participants: pd.DataFrame, measurements: pd.DataFrame,
                  conf_level: float = 0.95) -> pd.DataFrame:
    """Faster vs slower progressors (split at the median DPR), per measure.

    Parameters
    ----------
    participants, measurements : DataFrame
        Contract tables.
    conf_level : float
        Level of the Hodges-Lehmann interval.

    Returns
    -------
    DataFrame
        One row per measure: ``variable``, ``dpr_median``, ``split_rule`` and the
        :func:`m1lib.stats.mann_whitney` record (``x`` = faster, ``y`` = slower).

    Notes
    -----
    DPR = (48 - ALSFRS-R) / disease duration (:func:`m1lib.contract.dpr`). Faster:
    DPR strictly above the median of the analysed patients with a DPR; a patient
    exactly at the median (always one when their number is odd) joins the slower
    group. Patients without a DPR are left out.
    """
    subj = subject_table(participants, measurements)
    measures = _measures(subj)
    als = subj[subj["progression"] != ""]
    if len(als) < 4:
        raise DataError(f"DPR subgroups need at least 4 patients with a DPR, got {len(als)}")
    median = float(np.median(als["dpr"]))
    faster = als[als["progression"] == "faster"]
    slower = als[als["progression"] == "slower"]
    parts = []
    for var in measures:
        t = _mwu_row(faster[var], slower[var], ("faster", "slower"), conf_level, required=True)
        t.insert(0, "split_rule", "faster: dpr > median; at the median: slower")
        t.insert(0, "dpr_median", median)
        t.insert(0, "variable", var)
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def example_participants(participants: pd.DataFrame, reads: pd.DataFrame | None = None) -> tuple[str, str]:
    """The two participants shown in Fig 1: a typical healthy subject and a typical patient.

    The healthy subject is the first analysed one whom every reader called normal;
    the patient is the analysed one with the highest total UMN score whom every
    reader called ALS (the paper shows a clearly affected patient). Without reads,
    the first healthy subject and the highest UMN score.

    Returns
    -------
    (healthy, als) : tuple of str
        ``participant_id`` of each.
    """
    p = contract.with_derived(_analysed(participants)) if "umn_total" not in participants else _analysed(participants)
    calls = (reads.groupby("participant_id")["call"].agg(lambda c: set(c))
             if reads is not None and len(reads) else pd.Series(dtype=object))

    def unanimous(pid, call):
        return calls.get(pid, {call}) == {call}

    hs = sorted(p.loc[p["group"] == "HS", "participant_id"])
    als = p[p["group"] == "ALS"].sort_values(["umn_total", "participant_id"], ascending=[False, True],
                                             kind="stable")["participant_id"].tolist()
    if not hs or not als:
        raise DataError("Fig 1 needs at least one analysed healthy subject and one patient")
    healthy = ([q for q in hs if unanimous(q, "normal")] or hs)[0]
    patient = ([q for q in als if unanimous(q, "ALS")] or als)[0]
    return healthy, patient


def roc_curves(participants: pd.DataFrame, measurements: pd.DataFrame) -> pd.DataFrame:
    """Empirical ROC curve of each measure (ALS vs HS, per-subject means).

    Returns
    -------
    DataFrame
        ``predictor``, ``threshold``, ``fpr``, ``tpr``: one row per distinct score
        plus the (0, 0) start, scores oriented by :data:`MEASURE_DIRECTION`.

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
    case = (subj["group"] == "ALS").to_numpy()
    parts = []
    for name in measures:
        score = subj[name].to_numpy(float)
        ok = np.isfinite(score)
        sign = 1.0 if MEASURE_DIRECTION[name] == "higher" else -1.0
        s, y = sign * score[ok], case[ok]
        order = np.argsort(-s, kind="stable")
        s, y = s[order], y[order]
        last = np.r_[np.diff(s) != 0, True]  # one point per distinct threshold
        tpr = np.cumsum(y)[last] / max(y.sum(), 1)
        fpr = np.cumsum(~y)[last] / max((~y).sum(), 1)
        parts.append(pd.DataFrame({"predictor": name, "threshold": np.r_[np.inf, sign * s[last]],
                                   "fpr": np.r_[0.0, fpr], "tpr": np.r_[0.0, tpr]}))
    return pd.concat(parts, ignore_index=True)


def roc_table(participants: pd.DataFrame, measurements: pd.DataFrame, reads: pd.DataFrame,
              conf_level: float = 0.95) -> pd.DataFrame:
    """ROC AUC of each measure and each reader for ALS vs HS, with DeLong intervals.

    Parameters
    ----------
    participants, measurements, reads : DataFrame
        Contract tables; analysed participants only.
    conf_level : float
        Confidence level.

    Returns
    -------
    DataFrame
        One row per predictor (measures first, then readers): ``predictor``, ``kind``
        (``measure``/``reader``), ``direction``, ``n_als``, ``n_hs``, ``auc``, ``se``,
        ``ci_low``, ``ci_high``, ``ci_method``, ``conf_level``, ``accuracy`` (readers:
        fraction of correct calls) and, for each reader R, ``auc_difference_vs_R``
        and ``p_value_vs_R`` (measure rows: DeLong paired test on the participants
        with both; NaN on reader rows).

    Notes
    -----
    A measure's score is its per-subject mean, oriented by
    :data:`MEASURE_DIRECTION` (fixed a priori, so an AUC below 0.5 means the data
    contradict the expected direction). A reader's score is the binary call (ALS =
    1), whose AUC is (sensitivity + specificity) / 2: the readers' balanced accuracy,
    on the same scale as the measures' AUC. DeLong variance and paired test are
    hand-written in :mod:`m1lib.stats` (neither SciPy nor statsmodels has them).
    """
    subj, measures = _subjects(participants, measurements)
    r = _reads(reads, subj["participant_id"])
    wide = r.assign(score=(r["call"] == "ALS").astype(float)).pivot(
        index="participant_id", columns="reader", values="score")
    readers = sorted(wide.columns)
    calls = {rd: wide[rd].reindex(subj["participant_id"]).to_numpy(float) for rd in readers}
    case = (subj["group"] == "ALS").to_numpy()
    predictors = [(mname, "measure", MEASURE_DIRECTION[mname], subj[mname].to_numpy(float))
                  for mname in measures]
    predictors += [(rd, "reader", "higher", calls[rd]) for rd in readers]
    rows = []
    for name, kind, direction, score in predictors:
        ok = np.isfinite(score)
        t = stats.roc_auc_delong(score[case & ok], score[~case & ok], direction=direction,
                                 conf_level=conf_level).iloc[0]
        row = dict(predictor=name, kind=kind, direction=direction, n_als=int(t.n_cases),
                   n_hs=int(t.n_controls), auc=float(t.auc), se=float(t.se),
                   ci_low=float(t.ci_low), ci_high=float(t.ci_high), ci_method=t.ci_method,
                   conf_level=conf_level,
                   accuracy=float(np.mean((score[ok] == 1) == case[ok])) if kind == "reader" else np.nan)
        for rd in readers:
            diff = pval = np.nan
            if kind == "measure":
                test = stats.delong_paired_test(case, score, calls[rd], direction1=direction,
                                                direction2="higher").iloc[0]
                diff, pval = float(test.auc_difference), float(test.p_value)
            row[f"auc_difference_vs_{rd}"] = diff
            row[f"p_value_vs_{rd}"] = pval
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------ measurement checks
#: Measured column -> (truth column, error scale, tolerance) for :func:`measurement_accuracy`.
ACCURACY_TARGETS: dict[str, tuple[str, str, float]] = {
    "profile_thickness_mm": ("thickness_mm", "absolute", 0.10),
    "thickness_mm": ("thickness_mm", "absolute", 0.25),
    "intensity": ("intensity", "relative", 0.02),
    "r2star_s": ("r2star_s", "relative", 0.05),
}


def measurement_errors(measurements: pd.DataFrame, truth: pd.DataFrame,
                       truth_participants: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-ROI error of each measured quantity against a phantom's ground truth.

    Returns
    -------
    DataFrame
        One row per ROI and quantity: the measurement key, ``quantity``, ``scale``
        (``absolute``: measured - true in the quantity's unit; ``relative``:
        measured/true - 1), ``measured``, ``true``, ``error`` (NaN where the
        measurement failed), ``subset`` (``motion`` for the motion-corrupted
        participants of ``truth_participants``, else ``included``) and ``snr``
        when the truth has it.
    """
    key = list(contract.MEASUREMENT_KEY)
    true_cols = sorted({c[0] for c in ACCURACY_TARGETS.values() if c[0] in truth.columns})
    t = truth[key + true_cols].rename(columns={c: c + "_true" for c in true_cols})
    m = measurements.merge(t, on=key, how="inner", validate="one_to_one")
    subset = pd.Series("included", index=m.index)
    snr = pd.Series(np.nan, index=m.index)
    if truth_participants is not None:
        tp = truth_participants.set_index("participant_id")
        if "motion" in tp.columns:
            motion = m["participant_id"].map(tp["motion"].astype(str).str.lower() == "true")
            subset = subset.where(~motion.fillna(False).astype(bool), "motion")
        if "snr" in tp.columns:
            snr = m["participant_id"].map(tp["snr"]).astype(float)
    parts = []
    for quantity, (true_col, scale, _) in ACCURACY_TARGETS.items():
        if quantity not in m.columns or true_col + "_true" not in m.columns:
            continue
        val = pd.to_numeric(m[quantity], errors="coerce").astype(float)
        ref = m[true_col + "_true"].astype(float)
        err = val - ref if scale == "absolute" else val / ref - 1.0
        parts.append(m[key].assign(quantity=quantity, scale=scale, measured=val, true=ref, error=err,
                                   subset=subset, snr=snr))
    return pd.concat(parts, ignore_index=True)


def measurement_accuracy(measurements: pd.DataFrame, truth: pd.DataFrame,
                         truth_participants: pd.DataFrame | None = None) -> pd.DataFrame:
    """Error of each measured quantity against a phantom's ground truth, summarised.

    Parameters
    ----------
    measurements : DataFrame
        :func:`m1lib.measure.measure_dataset` output (``profile_thickness_mm``,
        ``thickness_mm`` = caliper, ``intensity``, ``r2star_s``).
    truth : DataFrame
        ``derivatives/truth/truth_areas.tsv`` of the replica.
    truth_participants : DataFrame, optional
        With ``motion``: errors are then reported separately for the
        motion-corrupted participants (subset ``motion``).

    Returns
    -------
    DataFrame
        One row per quantity and subset: ``quantity``, ``subset``, ``scale``, ``n``,
        ``n_failed`` (failed measurements, left out), ``bias``, ``sd``, ``mae``,
        ``max_abs``, ``tolerance`` and ``within_tolerance`` (fraction with
        |error| <= tolerance), from :func:`measurement_errors`.

    Examples
    --------
    >>> m = pd.DataFrame({"participant_id": ["sub-a"] * 2, "hemisphere": ["L", "R"], "area": "hand",
    ...                   "thickness_mm": [1.5, 2.0], "profile_thickness_mm": [1.55, 1.9],
    ...                   "intensity": [0.8, 0.9], "r2star_s": [40.0, 30.0]})
    >>> t = m[["participant_id", "hemisphere", "area"]].assign(thickness_mm=[1.5, 2.0], intensity=0.8,
    ...                                                     r2star_s=40.0)
    >>> a = measurement_accuracy(m, t).set_index("quantity")
    >>> round(float(a.loc["profile_thickness_mm", "mae"]), 3), round(float(a.loc["intensity", "max_abs"]), 3)
    (0.075, 0.125)
    """
    errors = measurement_errors(measurements, truth, truth_participants)
    rows = []
    for (quantity, subset), g in errors.groupby(["quantity", "subset"], sort=False):
        e = g["error"].to_numpy(float)
        ok = np.isfinite(e)
        e = e[ok]
        tol = ACCURACY_TARGETS[quantity][2]
        rows.append(dict(quantity=quantity, subset=subset, scale=g["scale"].iloc[0], n=int(ok.sum()),
                         n_failed=int((~ok).sum()),
                         bias=float(e.mean()) if e.size else np.nan,
                         sd=float(e.std(ddof=1)) if e.size > 1 else np.nan,
                         mae=float(np.abs(e).mean()) if e.size else np.nan,
                         max_abs=float(np.abs(e).max()) if e.size else np.nan,
                         tolerance=tol,
                         within_tolerance=float((np.abs(e) <= tol).mean()) if e.size else np.nan))
    out = pd.DataFrame(rows)
    order = {q: i for i, q in enumerate(ACCURACY_TARGETS)}
    return out.sort_values(["quantity", "subset"], key=lambda c: c.map(order) if c.name == "quantity" else c,
                           ignore_index=True)


def motion_qc(participants: pd.DataFrame, measurements: pd.DataFrame,
              truth_participants: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each measured participant's motion QC beside the exclusion (and the phantom's truth).

    Returns
    -------
    DataFrame
        ``participant_id``, ``group``, ``excluded``, ``qc_sharpness_ratio``,
        ``qc_sharpness_relative`` (to the cohort median), ``qc_motion`` (the flag), and
        ``motion_truth`` when ``truth_participants`` is given. The flag is reported,
        never used to drop anyone.
    """
    p = _participants(participants)[["participant_id", "group", "excluded"]]
    cols = ["qc_sharpness_ratio", "qc_sharpness_relative", "qc_motion"]
    q = measurements.groupby("participant_id", sort=True)[cols].first().reset_index()
    q["qc_motion"] = q["qc_motion"].astype(str).str.lower() == "true"
    out = p.merge(q, on="participant_id", how="inner")
    if truth_participants is not None and "motion" in truth_participants.columns:
        tm = truth_participants[["participant_id", "motion"]].copy()
        tm["motion_truth"] = tm.pop("motion").astype(str).str.lower() == "true"
        out = out.merge(tm, on="participant_id", how="left")
    return out.sort_values("participant_id", ignore_index=True)


def measurement_registry(accuracy: pd.DataFrame | None, qc: pd.DataFrame | None) -> dict[str, float]:
    """Registry entries of the measurement checks (``measurement.*``, ``qc.*``)."""
    reg: dict[str, float] = {}
    if accuracy is not None and len(accuracy):
        for r in accuracy[accuracy["subset"] == "included"].itertuples(index=False):
            add_record(reg, f"measurement.{r.quantity}", dict(
                n=r.n, n_failed=r.n_failed, bias=r.bias, sd=r.sd, mae=r.mae, max_abs=r.max_abs,
                within_tolerance=r.within_tolerance))
    if qc is not None and len(qc):
        rec = dict(n_measured=len(qc), n_flagged=int(qc["qc_motion"].sum()),
                   n_excluded=int(qc["excluded"].sum()),
                   n_flagged_excluded=int((qc["qc_motion"] & qc["excluded"]).sum()),
                   flag_matches_exclusion=float((qc["qc_motion"] == qc["excluded"]).mean()))
        if "motion_truth" in qc.columns:
            rec["flag_matches_truth"] = float((qc["qc_motion"] == qc["motion_truth"].astype(bool)).mean())
        add_record(reg, "qc", rec)
    validate_registry(reg)
    return dict(sorted(reg.items()))


# ----------------------------------------------------------------------- registry
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


def registry_from_tables(tables: dict[str, pd.DataFrame], params: dict | None = None) -> dict[str, float]:
    """Flatten the result tables of :func:`run_all` into the results registry.

    Parameters
    ----------
    tables : dict of str to DataFrame
        As :attr:`AnalysisResult.tables`.
    params : dict, optional
        ``alpha, n_boot, seed`` recorded under ``settings.``.

    Returns
    -------
    dict of str to float
        Keys catalogued in ``docs/results.md`` (:data:`m1lib.results.CATALOGUE`).
    """
    reg: dict[str, float] = {}
    # Any subset of the tables may be given (a notebook records just its own part);
    # the union of the parts equals the registry of all tables.
    empty = pd.DataFrame()
    tables = {name: tables.get(name, empty) for name in TABLE_NAMES}
    if params:
        add_record(reg, "settings", {k: params[k] for k in ("alpha", "n_boot", "seed") if k in params})

    cohort = tables["cohort"]
    for _, row in cohort.iterrows():
        subset, group, var = row["subset"], key_part(row["group"]), row["variable"]
        prefix = f"cohort.{subset}.{group}"
        if var == "n":
            if subset == "analysed":
                add_record(reg, "cohort", {f"n_{group}": row["count"]})
            else:
                add_record(reg, "cohort", {f"n_{group}_enrolled": row["count"]})
        elif var == "excluded":
            add_record(reg, "cohort", {f"n_{group}_excluded": row["count"]})
        elif var == "sex":
            add_record(reg, prefix, {"n_female" if row["level"] == "F" else "n_male": row["count"]})
        elif var == "age" or (subset == "analysed" and group == "als" and var in COHORT_CLINICAL):
            add_record(reg, f"{prefix}.{var}", {"mean": row["mean"], "sd": row["sd"]})

    vr = tables["visual_reading"]
    for _, row in vr.iterrows():
        prefix = f"visual_reading.{key_part(row['reader'])}"
        if row["statistic"] in ("tp", "fp", "tn", "fn"):
            add_record(reg, prefix, {row["statistic"]: int(row["numerator"])})
        else:
            s = row["statistic"]
            add_record(reg, prefix, {s: row["estimate"], f"{s}_ci_low": row["ci_low"],
                                     f"{s}_ci_high": row["ci_high"]})

    ra = tables["reader_agreement"]
    for _, row in ra.iterrows():
        prefix = ("visual_reading" if len(ra) == 1 else
                  f"visual_reading.{key_part(row['reader_a'])}_vs_{key_part(row['reader_b'])}")
        add_record(reg, prefix, dict(
            kappa=row["kappa"], kappa_se=row["se"], kappa_ci_low=row["ci_low"],
            kappa_ci_high=row["ci_high"], agreement=row["agreement"],
            expected_agreement=row["expected_agreement"], n_agree=row["n_agree"],
            kappa_n=row["n"]))

    for _, row in tables["correct_vs_missed"].iterrows():
        add_record(reg, f"correct_vs_missed.{key_part(row['reader'])}.{row['variable']}",
                   _two_group_record(row))
    for _, row in tables["group_comparison"].iterrows():
        add_record(reg, f"group.{row['variable']}", _two_group_record(row))

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

    roc = tables["roc"]
    readers = [r for r in roc.loc[roc["kind"] == "reader", "predictor"]] if len(roc) else []
    for _, row in roc.iterrows():
        prefix = f"roc.{key_part(row['predictor'])}"
        add_record(reg, prefix, dict(auc=row["auc"], auc_se=row["se"], auc_ci_low=row["ci_low"],
                                     auc_ci_high=row["ci_high"], n_als=row["n_als"],
                                     n_hs=row["n_hs"]))
        if row["kind"] == "measure":
            for rd in readers:
                add_record(reg, f"{prefix}.vs_{key_part(rd)}", dict(
                    auc_difference=row[f"auc_difference_vs_{rd}"],
                    p_value=row[f"p_value_vs_{rd}"]))
    validate_registry(reg)
    return dict(sorted(reg.items()))


def run_all(participants: pd.DataFrame, reads: pd.DataFrame, measurements: pd.DataFrame, *,
            alpha: float = 0.05, n_boot: int = 10000, seed: int = DEFAULT_SEED,
            ci_method: str = "wilson") -> AnalysisResult:
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

    Returns
    -------
    AnalysisResult
        ``tables`` keyed by :data:`TABLE_NAMES` and the ``registry``. Deterministic:
        the same inputs give byte-identical tables and an identical registry.
    """
    if not 0 < alpha < 1:
        raise DataError(f"alpha must be between 0 and 1, got {alpha}")
    if int(n_boot) < 0 or int(seed) < 0:
        raise DataError(f"n_boot and seed must be >= 0, got {n_boot} and {seed}")
    level = 1 - alpha
    n_boot = int(n_boot)
    tables = {
        "cohort": cohort_table(participants),
        "visual_reading": visual_reading(participants, reads, ci_method=ci_method, conf_level=level),
        "reader_agreement": reader_agreement(reads, participants, conf_level=level),
        "correct_vs_missed": correct_vs_missed(participants, reads, conf_level=level),
        "group_comparison": group_comparison(participants, measurements, conf_level=level),
        "correlations": correlations(participants, measurements, n_boot=n_boot, seed=seed,
                                     conf_level=level),
        "limb_correlations": limb_correlations(participants, measurements, n_boot=n_boot,
                                               seed=seed, conf_level=level),
        "dpr_subgroups": dpr_subgroups(participants, measurements, conf_level=level),
        "roc": roc_table(participants, measurements, reads, conf_level=level),
    }
    params = dict(alpha=float(alpha), n_boot=n_boot, seed=int(seed), ci_method=ci_method)
    return AnalysisResult(tables=tables, registry=registry_from_tables(tables, params),
                          params=params)
