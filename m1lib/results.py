"""The results registry: flat dotted keys with numeric values, and its catalogue.

Every analysis in :mod:`m1lib.analyses` records its numbers under keys such as
``visual_reading.reader1.sensitivity`` or ``corr.intensity.dpr.rho``. Values are
stored at full precision (rounding is for display only, :func:`round_half_up`),
proportions as fractions, undefined values as NaN. :func:`registry_to_json` writes
the registry deterministically (``results.json``); :data:`CATALOGUE` describes every
key (meaning and method) and is rendered into ``docs/results.md`` by
:func:`catalogue_markdown` (``python -m m1lib.results > docs/results.md``).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Mapping

import numpy as np
import pandas as pd

from m1lib.errors import DataError

__all__ = [
    "KEY_PATTERN", "key_part", "add_record", "validate_registry", "registry_to_json",
    "registry_from_json", "registry_table", "round_half_up", "format_percent",
    "CatalogueEntry", "PLACEHOLDERS", "CATALOGUE", "catalogue_entry",
    "undocumented_keys", "catalogue_markdown",
]

#: A registry key: two or more dot-separated parts of lower-case letters, digits, '_'.
KEY_PATTERN = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")


def key_part(name) -> str:
    """A name made safe for one part of a registry key.

    Lower-cased; every run of characters other than ``a-z``, ``0-9`` and ``_``
    becomes one ``_``.

    Examples
    --------
    >>> key_part("Reader 1"), key_part("thickness_mm"), key_part("sub-ALS01")
    ('reader_1', 'thickness_mm', 'sub_als01')
    """
    part = re.sub(r"[^a-z0-9_]+", "_", str(name).lower()).strip("_")
    if not part:
        raise DataError(f"name {name!r} gives an empty registry key part")
    return part


def _number(value):
    """A registry value as a Python int or float (NaN for missing)."""
    if value is None or value is pd.NA:
        return math.nan
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"registry values must be numbers, got {value!r}") from None


def add_record(registry: dict, prefix: str, values: Mapping[str, object]) -> dict:
    """Add ``prefix.<name>`` for each item of ``values`` to ``registry`` (in place).

    Examples
    --------
    >>> add_record({}, "group.thickness_mm", {"p_value": 0.001, "u": 16})
    {'group.thickness_mm.p_value': 0.001, 'group.thickness_mm.u': 16}
    """
    for name, value in values.items():
        key = f"{prefix}.{name}"
        if not KEY_PATTERN.match(key):
            raise ValueError(f"invalid registry key {key!r}")
        if key in registry:
            raise ValueError(f"registry key recorded twice: {key!r}")
        registry[key] = _number(value)
    return registry


def validate_registry(registry: Mapping[str, object]) -> None:
    """Check keys and values; raise ``ValueError`` naming every bad key.

    Keys must match :data:`KEY_PATTERN` and no key may also be the prefix of another
    (so that the registry can be nested); values must be real numbers or NaN.

    Examples
    --------
    >>> validate_registry({"a.b": 1.0, "a.c": float("nan")})
    >>> validate_registry({"a.b": 1.0, "a.b.c": 2.0})
    Traceback (most recent call last):
    ...
    ValueError: registry key is also a prefix: 'a.b'
    """
    problems = []
    keys = sorted(registry)
    for key in keys:
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            problems.append(f"invalid registry key: {key!r}")
    for a, b in zip(keys, keys[1:]):
        if b.startswith(a + "."):
            problems.append(f"registry key is also a prefix: {a!r}")
    for key in keys:
        v = registry[key]
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            problems.append(f"registry value of {key!r} is not a number: {v!r}")
        elif math.isinf(float(v)):
            problems.append(f"registry value of {key!r} is infinite")
    if problems:
        raise ValueError("; ".join(problems))


def registry_to_json(registry: Mapping[str, object]) -> str:
    """Deterministic JSON of a registry: sorted keys, full-precision floats, NaN as null.

    Parameters
    ----------
    registry : mapping of str to number
        Flat dotted keys; values int, float or NaN.

    Returns
    -------
    str
        A JSON object, one key per line, ending in a newline. Floats are written with
        Python's shortest round-trip representation (``float(repr(x)) == x``), so
        reading the file back gives the same numbers bit for bit; integers stay
        integers; NaN becomes ``null``.

    Examples
    --------
    >>> print(registry_to_json({"b.x": float("nan"), "a.y": 2 / 3, "a.n": 18}), end="")
    {
      "a.n": 18,
      "a.y": 0.6666666666666666,
      "b.x": null
    }
    """
    validate_registry(registry)
    out = {}
    for key in sorted(registry):
        v = _number(registry[key])
        out[key] = None if isinstance(v, float) and math.isnan(v) else v
    return json.dumps(out, indent=2, sort_keys=True, allow_nan=False) + "\n"


def registry_from_json(text: str) -> dict[str, float]:
    """Read :func:`registry_to_json` output back (``null`` becomes NaN).

    Examples
    --------
    >>> registry_from_json('{"a.b": null, "a.c": 0.5}')
    {'a.b': nan, 'a.c': 0.5}
    """
    data = json.loads(text)
    return {k: (math.nan if v is None else v) for k, v in data.items()}


def registry_table(registry: Mapping[str, object]) -> pd.DataFrame:
    """The registry as a two-column table (``key``, ``value``), sorted by key.

    Examples
    --------
    >>> registry_table({"b.c": 1, "a.b": 0.5})["key"].tolist()
    ['a.b', 'b.c']
    """
    keys = sorted(registry)
    return pd.DataFrame({"key": keys, "value": [float(_number(registry[k])) for k in keys]})


def round_half_up(value: float, ndigits: int = 0) -> float:
    """Round for display the way papers do: halves away from zero, on the decimal value.

    Python's ``round`` and ``format`` round halves to even (``round(62.5) == 62``),
    so the paper's NPV of 10/16 = 62.5 % would show as 62 %, where the paper prints
    63 %. The float is first written in its shortest decimal form, then rounded.

    Examples
    --------
    >>> round_half_up(62.5), round(62.5), round_half_up(0.125, 2), round_half_up(-2.5)
    (63.0, 62, 0.13, -3.0)
    """
    if value is None or not math.isfinite(float(value)):
        return float("nan")
    q = Decimal(1).scaleb(-int(ndigits))
    return float(Decimal(repr(float(value))).quantize(q, rounding=ROUND_HALF_UP))


def format_percent(fraction: float, ndigits: int = 0) -> str:
    """A fraction as a percentage string, rounded half up (NaN gives ``'n/a'``).

    Examples
    --------
    >>> format_percent(10 / 16), format_percent(12 / 18), format_percent(float("nan"))
    ('63%', '67%', 'n/a')
    """
    if fraction is None or not math.isfinite(float(fraction)):
        return "n/a"
    # Scale in decimal: 100 * x in binary can pick up an error (100 * 0.29 != 29).
    pct = round_half_up(float(Decimal(repr(float(fraction))) * 100), ndigits)
    return f"{pct:.{int(ndigits)}f}%"


# ------------------------------------------------------------------------- catalogue
@dataclass(frozen=True)
class CatalogueEntry:
    """One documented key pattern of the registry."""

    section: str
    pattern: str
    meaning: str
    method: str

    def regex(self) -> re.Pattern:
        """The pattern as a regular expression (placeholders and ``{a,b}`` expanded)."""
        out = []
        for token in re.split(r"(<[a-z_]+>|\{[a-z0-9_,]+\})", self.pattern):
            if token.startswith("<"):
                out.append(f"(?:{PLACEHOLDERS[token[1:-1]][0]})")
            elif token.startswith("{"):
                out.append("(?:" + "|".join(re.escape(t) for t in token[1:-1].split(",")) + ")")
            else:
                out.append(re.escape(token))
        return re.compile("^" + "".join(out) + "$")


_MEASURES = "thickness_mm|intensity|r2star_s"
_CLINICAL = ("dpr|alsfrs_r|mrc|disease_duration_months|cmct_ms|cortical_latency_ms|"
             "cortical_silent_period_ms|frap|aopp|thiols")
_NAME = r"[a-z0-9_]+"

#: Placeholders used in :data:`CATALOGUE` patterns: (regex, description).
PLACEHOLDERS: dict[str, tuple[str, str]] = {
    "reader": (_NAME, "a reader's label as `visual_reads.tsv` spells it, made key-safe "
                      "(lower case; other characters become `_`): any readers, one or more"),
    "reader_a": (_NAME, "first reader of a pair (readers in sorted order)"),
    "reader_b": (_NAME, "second reader of a pair"),
    "group": (_NAME, "a group label as `participants.tsv` spells it, made key-safe (`als`, "
                     "`hs`, `mimic` ...)"),
    "patient": (_NAME, "the patient group's label (manifest `settings.patient_group`, "
                       "default `ALS`), made key-safe"),
    "comparison": (_NAME, "a comparison group's label (manifest `settings.comparison_groups`, "
                          "default `HS`), made key-safe"),
    "measure": (_MEASURES, "a measured quantity: `thickness_mm`, `intensity`, and "
                           "`r2star_s` when the measurements have it"),
    "variable": (_CLINICAL, "a clinical variable present in the data: `dpr`, "
                            "`alsfrs_r`, `mrc`, `disease_duration_months`, `cmct_ms`, "
                            "`cortical_latency_ms`, `cortical_silent_period_ms`, "
                            "`frap`, `aopp`, `thiols`"),
    "clinical": ("umn_total|" + _CLINICAL, "`umn_total` or a `<variable>`"),
    "predictor": (_NAME, "a `<measure>` or a `<reader>`"),
    "endpoint": (f"(?:group|limb|dpr_split)_(?:{_MEASURES})|corr_(?:{_MEASURES})_(?:{_CLINICAL})"
                 f"|auc_(?:{_MEASURES})_vs_{_NAME}",
                 "a power-analysis endpoint (notebook 08): `group_<measure>`, "
                 "`corr_<measure>_<variable>`, `limb_<measure>`, `auc_<measure>_vs_<reader>`, "
                 "`dpr_split_<measure>`"),
    "target": ("[0-9]{1,2}", "a target power in percent (`80`, `90`)"),
}

_TWO_GROUP_STATS = [
    ("n_{a,b}", "participants per group (after dropping missing values)", "count"),
    ("{mean,sd}_{a,b}", "mean and SD per group", "SD with n-1"),
    ("{median,q1,q3}_{a,b}", "median and quartiles per group (IQR = q1..q3)",
     "linear interpolation (R type 7)"),
    ("u", "Mann-Whitney U of the first group (R's W)", "U = R1 - n1(n1+1)/2, midranks"),
    ("p_value", "two-sided P of the Mann-Whitney test",
     "R's wilcox.test default: exact if no ties and both groups < 50, otherwise normal "
     "approximation with tie and continuity correction (scipy.stats.mannwhitneyu with "
     "that method named)"),
    ("p_exact", "1 if `p_value` is exact, 0 if asymptotic", "see `p_value`"),
    ("p_value_permutation", "two-sided exact permutation P, ties allowed",
     "complete enumeration of group splits of the midranks (coin's exact "
     "wilcox_test); NaN when N > 200"),
    ("rank_biserial", "rank-biserial correlation, P(first > second) - P(first < second)",
     "2U/(n1 n2) - 1"),
    ("hl_shift", "Hodges-Lehmann shift, first group minus second",
     "median of all pairwise differences"),
    ("hl_ci_{low,high}", "95 % CI of the shift (level 1 - alpha)",
     "R's wilcox.test(conf.int=TRUE): exact when `p_exact`, else the inverted "
     "corrected normal statistic (located exactly; R's uniroot agrees to 1e-4)"),
]


def _two_group(section: str, prefix: str, labels: tuple[str, str] | None, what: str) -> list:
    out = []
    for suffix, meaning, method in _TWO_GROUP_STATS:
        # labels None: the groups are the data's own (a `<group>` placeholder)
        suffix = suffix.replace("{a,b}", "<group>" if labels is None else "{%s,%s}" % labels)
        out.append(CatalogueEntry(section, f"{prefix}.{suffix}", f"{what}: {meaning}", method))
    return out


_PROP = "{sensitivity,specificity,ppv,npv,accuracy}"
_KAPPA = [
    ("kappa", "Cohen's kappa between the two readers", "(po - pe)/(1 - pe); "
     "statsmodels.stats.inter_rater.cohens_kappa"),
    ("kappa_se", "standard error of kappa", "Fleiss-Cohen-Everitt 1969 large-sample "
     "(non-null) variance (statsmodels std_kappa)"),
    ("kappa_ci_{low,high}", "CI of kappa (level 1 - alpha)", "kappa +- z * SE (Wald, "
     "not truncated)"),
    ("agreement", "observed agreement po (fraction)", "diagonal / n"),
    ("expected_agreement", "chance agreement pe (fraction)", "sum of products of marginals"),
    ("n_agree", "participants on whom the readers agree", "count"),
    ("kappa_n", "participants read by both readers", "count"),
]

#: Every key pattern the analyses record, with its meaning and method.
CATALOGUE: tuple[CatalogueEntry, ...] = tuple(
    [
        CatalogueEntry("settings", "settings.alpha", "significance level; CIs are at 1 - alpha", "input"),
        CatalogueEntry("settings", "settings.n_boot", "bootstrap resamples and permutations", "input"),
        CatalogueEntry("settings", "settings.seed", "seed of all resampling", "input; a correlation draws from `numpy.random.default_rng([seed, crc32('corr|<measure>|<variable>')])`, a per-limb analysis from `[seed, crc32('limb|<measure>')]`"),
        CatalogueEntry("cohort", "cohort.n_<group>_enrolled", "enrolled participants per group", "count of rows in participants.tsv"),
        CatalogueEntry("cohort", "cohort.n_<group>_excluded", "excluded participants per group", "count of `excluded == true`"),
        CatalogueEntry("cohort", "cohort.n_unmeasured", "analysed participants that could not be measured (the report runs without them only when allowed: settings.allow_unmeasured)", "count of participants in the run's unmeasured list (m1lib.pipeline.unmeasured), added by the runner"),
        CatalogueEntry("cohort", "cohort.n_<group>", "analysed participants per group (the patient and comparison groups, and any other group the data hold)", "count of `excluded == false`"),
        CatalogueEntry("cohort", "cohort.{enrolled,analysed}.<group>.n_{female,male}", "participants by sex", "count"),
        CatalogueEntry("cohort", "cohort.{enrolled,analysed}.<group>.age.{mean,sd}", "age in years", "mean, SD (n-1)"),
        CatalogueEntry("cohort", "cohort.analysed.<patient>.<clinical>.{mean,sd}", "clinical scores of the analysed patients (the paper's 18)", "mean, SD (n-1); `umn_total` and `dpr` derived by m1lib.contract"),
        CatalogueEntry("visual_reading", "visual_reading.<reader>.{tp,fp,tn,fn}", "reader's 2x2 table against the group label (positive = call ALS / patient group; negatives: the comparison groups, pooled)", "count over analysed participants"),
        CatalogueEntry("visual_reading", f"visual_reading.<reader>.{_PROP}", "diagnostic accuracy (fraction)", "TP/(TP+FN), TN/(TN+FP), TP/(TP+FP), TN/(TN+FN), (TP+TN)/N"),
        CatalogueEntry("visual_reading", f"visual_reading.<reader>.{_PROP}_ci_{{low,high}}", "CI of each proportion (level 1 - alpha)", "Wilson score by default, Clopper-Pearson on request (statsmodels proportion_confint); the table's `ci_method` says which"),
    ]
    + [CatalogueEntry("agreement", "agreement.n_readers", "readers in `visual_reads.tsv` (1: no agreement is computable)", "count")]
    + [CatalogueEntry("agreement", f"agreement.<reader_a>_vs_<reader_b>.{s}", m + " (every pair of readers)", meth)
       for s, m, meth in _KAPPA]
    + [CatalogueEntry("agreement", "agreement.fleiss.kappa", "Fleiss' kappa across all readers (three or more readers only)", "statsmodels.stats.inter_rater.fleiss_kappa (method='fleiss'); no SE"),
       CatalogueEntry("agreement", "agreement.fleiss.{agreement,expected_agreement}", "mean pairwise agreement per subject, and chance agreement", "Fleiss 1971"),
       CatalogueEntry("agreement", "agreement.fleiss.{n,n_readers}", "subjects and readers", "count")]
    + _two_group("correct_vs_missed", "correct_vs_missed.<reader>.{umn_total,dpr}",
                 ("correct", "missed"),
                 "analysed patients called ALS (correct) vs called normal (missed) by the reader; total UMN score or DPR")
    + _two_group("group", "group.<patient>_vs_<comparison>.<measure>", None,
                 "patients vs a comparison group (ALS vs HS in the paper; any pair the manifest names), per-subject mean over both hemispheres and all areas; `<group>` is either label")
    + [
        CatalogueEntry("dpr_subgroups", "dpr_subgroups.dpr_median", "median DPR of the analysed patients (the split)", "numpy.median"),
        CatalogueEntry("dpr_subgroups", "dpr_subgroups.n_{faster,slower}", "patients per subgroup", "faster: DPR > median; a patient exactly at the median is slower"),
    ]
    + _two_group("dpr_subgroups", "dpr_subgroups.<measure>", ("faster", "slower"),
                 "faster vs slower progressors, per-subject mean")
    + [
        CatalogueEntry("corr", "corr.<measure>.<variable>.rho", "Spearman's rho, per-subject mean vs clinical variable (analysed patients)", "scipy.stats.spearmanr (midranks)"),
        CatalogueEntry("corr", "corr.<measure>.<variable>.p_value", "two-sided P of rho", "t approximation on n-2 df (R cor.test exact=FALSE)"),
        CatalogueEntry("corr", "corr.<measure>.<variable>.q_value", "Benjamini-Hochberg q within the family of one measure's correlations", "statsmodels multipletests fdr_bh"),
        CatalogueEntry("corr", "corr.<measure>.<variable>.n", "complete pairs", "count"),
        CatalogueEntry("corr", "corr.<measure>.<variable>.ci_{low,high}", "CI of rho (level 1 - alpha)", "BCa bootstrap of the pairs, n_boot resamples, seeded; undefined resamples dropped"),
        CatalogueEntry("corr", "corr.<measure>.umn_limb.rho", "pooled per-limb Spearman's rho, as in the paper: hand, leg and foot areas of each hemisphere vs the contralateral limb's UMN score, every pair one observation (6 per patient)", "scipy.stats.spearmanr on the pooled pairs; limb map m1lib.contract.limb_umn"),
        CatalogueEntry("corr", "corr.<measure>.umn_limb.p_value", "P of the pooled rho treating limbs as independent (the paper's analysis)", "t approximation on n-2 df"),
        CatalogueEntry("corr", "corr.<measure>.umn_limb.q_value", "BH q of `p_value` across the per-limb family (the measures)", "statsmodels multipletests fdr_bh"),
        CatalogueEntry("corr", "corr.<measure>.umn_limb.n", "limb observations", "count of complete pairs"),
        CatalogueEntry("corr", "corr.<measure>.umn_limb.n_patients", "patients contributing", "count"),
        CatalogueEntry("corr", "corr.<measure>.umn_limb.cluster_ci_{low,high}", "CI of the pooled rho that respects patients (level 1 - alpha)", "cluster bootstrap over patients (all limbs of a patient together), BCa with leave-one-patient-out jackknife"),
        CatalogueEntry("corr", "corr.<measure>.umn_limb.cluster_p_value", "P that respects patients", "permutation of whole UMN vectors between patients (each patient's areas and their limb pairing kept), (1 + hits)/(1 + n_boot), two-sided on |rho|"),
        CatalogueEntry("corr", "corr.<measure>.umn_limb.cluster_q_value", "BH q of `cluster_p_value` across the per-limb family", "statsmodels multipletests fdr_bh"),
        CatalogueEntry("roc", "roc.<patient>_vs_<comparison>.<predictor>.auc", "ROC AUC for patients vs a comparison group: a measure's per-subject mean (direction fixed a priori: thinner, darker, higher R2* in patients) or a reader's binary call (= (sensitivity + specificity)/2)", "Mann-Whitney form, ties count 1/2"),
        CatalogueEntry("roc", "roc.<patient>_vs_<comparison>.<predictor>.auc_se", "standard error of the AUC", "DeLong et al. 1988 (hand-written; agrees with pROC)"),
        CatalogueEntry("roc", "roc.<patient>_vs_<comparison>.<predictor>.auc_ci_{low,high}", "CI of the AUC (level 1 - alpha)", "AUC +- z * DeLong SE, truncated to [0, 1] (as pROC)"),
        CatalogueEntry("roc", "roc.<patient>_vs_<comparison>.<predictor>.n_<group>", "participants with a value, per group", "count"),
        CatalogueEntry("roc", "roc.<patient>_vs_<comparison>.<measure>.vs_<reader>.auc_difference", "AUC of the measure minus the reader's", "same participants (complete cases)"),
        CatalogueEntry("roc", "roc.<patient>_vs_<comparison>.<measure>.vs_<reader>.p_value", "two-sided P of the AUC difference", "DeLong paired test (pROC roc.test method='delong', paired=TRUE)"),
        CatalogueEntry("measurement", "measurement.{profile_thickness_mm,thickness_mm,intensity,r2star_s}.{n,n_failed}", "ROIs compared with the phantom's truth (analysed participants), and failed profile fits left out", "count; m1lib.analyses.measurement_accuracy (replica only)"),
        CatalogueEntry("measurement", "measurement.{profile_thickness_mm,thickness_mm,intensity,r2star_s}.{bias,sd,mae,max_abs}", "error against the truth: mm for the thicknesses (profile fit; caliper = simulated rater), relative (measured/true - 1) for intensity and R2*", "mean, SD (n-1), mean |error|, max |error|"),
        CatalogueEntry("measurement", "measurement.{profile_thickness_mm,thickness_mm,intensity,r2star_s}.within_tolerance", "fraction of ROIs within tolerance: 0.10 mm, 0.25 mm, 2 %, 5 %", "|error| <= tolerance"),
        CatalogueEntry("qc", "qc.{n_measured,n_flagged,n_excluded,n_flagged_excluded}", "motion QC counts over measured participants (excluded ones included)", "flag: phase-encode/readout edge-energy ratio below 0.6 of the cohort median (m1lib.measure)"),
        CatalogueEntry("qc", "qc.flag_matches_exclusion", "fraction of measured participants whose QC flag equals their exclusion", "mean of flag == excluded"),
        CatalogueEntry("qc", "qc.flag_matches_truth", "fraction whose QC flag equals the phantom's motion truth (replica only)", "mean of flag == truth"),
        CatalogueEntry("power", "power.settings.{n_sim,n_min,n_max,controls_per_patient}", "power analysis (notebook 08): simulated studies per point, smallest and largest patients per study simulated, planned controls per patient", "input"),
        CatalogueEntry("power", "power.<endpoint>.{estimate,ci_low,ci_high}", "the endpoint's effect on this dataset and its interval (level 1 - alpha): P(first group > second) for Mann-Whitney endpoints, Spearman's rho, pooled per-limb rho, AUC difference (measure minus reader)", "m1lib.power.plan_endpoints: BCa bootstrap (correlations and per-limb: the report's own intervals)"),
        CatalogueEntry("power", "power.<endpoint>.n_<target>", "patients per study for the target power at the observed effect (two-group endpoints: plus ceil(controls_per_patient * n) controls; DPR split: n patients split at the median); NaN when not reached within the simulated sizes", "smallest n of the grid from which the simulated power (n_sim studies resampled from this dataset, tested as the report tests) stays >= target"),
        CatalogueEntry("power", "power.<endpoint>.n_<target>_{optimistic,pessimistic}", "the same at the interval's end on the observed side (optimistic) and at the other end, or no effect when the interval includes it (pessimistic)", "as `n_<target>`, model moved to that effect (m1lib.power.models)"),
        CatalogueEntry("power", "power.<endpoint>.n_<target>_closed", "closed-form patients per study at the observed effect (cross-check of the simulation)", "Noether (Mann-Whitney), Fisher z with Bonett-Wright variance (Spearman; per-limb on n*pairs/design effect), Obuchowski/DeLong variance components (AUC difference); statsmodels NormalIndPower"),
    ]
)


def catalogue_entry(key: str) -> CatalogueEntry | None:
    """The catalogue entry whose pattern matches ``key`` (None if undocumented).

    Examples
    --------
    >>> catalogue_entry("corr.intensity.dpr.rho").pattern
    'corr.<measure>.<variable>.rho'
    >>> catalogue_entry("corr.intensity.shoe_size.rho") is None
    True
    """
    for entry in CATALOGUE:
        if entry.regex().match(key):
            return entry
    return None


def undocumented_keys(registry: Mapping[str, object]) -> list[str]:
    """Keys of ``registry`` that no catalogue pattern describes."""
    return [k for k in sorted(registry) if catalogue_entry(k) is None]


_INTRO = """\
# Results registry

Every analysis of `m1lib.analyses.run_all` records its numbers in a flat registry
of dotted keys (`AnalysisResult.registry`), which the report writes to
`results.json` with `m1lib.results.registry_to_json`. This page lists every key.
It is generated from `m1lib.results.CATALOGUE`
(`python -m m1lib.results > docs/results.md`); a test keeps the two in step and
checks that every key the analyses record is listed here.

Conventions:

- Values are numbers at full precision; rounding is for display only
  (`m1lib.results.round_half_up` rounds halves up, as the paper does: NPV 10/16 =
  62.5 % is printed 63 %).
- Proportions are fractions (0-1), not percentages.
- An undefined value (e.g. a test that could not be computed) is NaN, written
  `null` in `results.json`; the tables say why in their `method` column.
- JSON is deterministic: keys sorted, floats in shortest round-trip form, one key
  per line.
- `{a,b}` in a pattern stands for either alternative; `<name>` for a placeholder
  (below). Keys contain only `a-z`, `0-9`, `_` and dots.
- Only non-excluded participants are analysed. Per-subject values are the mean over
  both hemispheres and all measured areas (the paper's aggregation).
- Intervals are at level 1 - `alpha` (0.95 by default). All resampling is seeded:
  each analysis draws from its own `numpy.random.default_rng([seed, crc32(name)])`
  (see `settings.seed`), so a result does not depend on which other analyses ran.
- Keys for an optional quantity (`r2star_s`, the null-finding variables) exist only
  when the data have it.
- Labels are the data's own: readers as `visual_reads.tsv` spells them (any number),
  groups as `participants.tsv` spells them, with the patient and comparison groups
  named by the manifest (`settings.patient_group`, `settings.comparison_groups`;
  ALS vs HS by default). The paper's two-reader, two-group design is a special case:
  `agreement.reader1_vs_reader2.kappa`, `group.als_vs_hs.thickness_mm.p_value`.
- A result that cannot be computed on a cohort (a group with fewer than 2 values, one
  reader, fewer than 3 pairs) is NaN here and "not computed: <why>" in its table.
- Words come from `m1lib.findings.findings(registry)`: per comparison its direction,
  P < `settings.alpha` (the pooled per-limb correlations also with the cluster
  permutation P), effect size and CI, or "not computable" with the reason. Every
  sentence of the report is written from that table (`m1lib.narrative`).
- `paper_comparison.csv` (`m1lib.paper`) puts each number the paper reports beside
  this run's, with its `origin` on the replica (`calibration target`: the generator set
  it; `derived`: computed from targets without measuring an image; `emerges from
  measurement`) and whether the paper's and this run's verdicts at alpha agree.

## Placeholders

| placeholder | stands for |
|---|---|
"""


def catalogue_markdown() -> str:
    """``docs/results.md``: the catalogue as Markdown tables, one per section."""
    lines = [_INTRO.rstrip("\n")]
    for name, (_, desc) in PLACEHOLDERS.items():
        lines.append(f"| `<{name}>` | {desc} |")
    section = None
    for entry in CATALOGUE:
        if entry.section != section:
            section = entry.section
            lines += ["", f"## `{section}`", "", "| key | meaning | method |", "|---|---|---|"]
        cells = [f"`{entry.pattern}`", entry.meaning, entry.method]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(catalogue_markdown(), end="")
