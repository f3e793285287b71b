"""The paper's numbers the replica is calibrated to, and the cohort's sizes.

Only the replica and the paper-vs-run table read ``m1lib/data/paper_values.yaml``;
the analyses never do. The subject-level distributions the paper does not report
are chosen here so that the reported effects come out.
"""
from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources

import yaml

from ..results import round_half_up

__all__ = ["paper_values", "scaled_count", "cohort_counts", "READERS", "DEFAULT_SEED",
           "DEFAULT_N_ALS", "DEFAULT_N_HS", "RATER_SD_MM", "OPTIONAL_MARGINALS"]

DEFAULT_SEED = 20160301
DEFAULT_N_ALS = 22
DEFAULT_N_HS = 14

READERS = ("reader1", "reader2")

# Subject-level distributions of the truth not reported by the paper (chosen so the
# reported effects come out; thickness means are the paper's 2.0 / 1.5 mm).
THICKNESS_HS = (2.0, 0.12)        # mean, sd of the subject mean (mm)
THICKNESS_ALS = (1.5, 0.20)
INTENSITY_HS = (0.74, 0.030)      # normalized deep-layer intensity, echo 2
INTENSITY_ALS = (0.740, 0.050)
AREA_SD_THICKNESS = 0.07          # within-subject area-to-area sd (mm)
AREA_SD_INTENSITY = 0.015
# Within-subject weight of the contralateral limb's UMN drive (0-1) on an area.
BETA_THICKNESS = 0.25             # mm thinner at a limb score of 8 than at 0
BETA_INTENSITY = 0.04
THICKNESS_RANGE = (1.0, 2.45)     # a deep layer thinner than 1 mm would not hold the ROI
INTENSITY_RANGE = (0.60, 0.86)    # keeps the deep layer distinct from both neighbours

# The simulated rater's endpoint error, per in-plane axis: about one voxel (0.25 mm)
# of displacement per endpoint.
RATER_SD_MM = 0.25 / math.sqrt(2)

# Optional electrophysiology / plasma columns: plausible marginals, unrelated to imaging.
OPTIONAL_MARGINALS = {
    "cmct_ms": (8.5, 2.5, 1),
    "cortical_latency_ms": (21.5, 2.8, 1),
    "cortical_silent_period_ms": (125.0, 35.0, 0),
    "frap": (0.95, 0.20, 2),
    "aopp": (115.0, 45.0, 0),
    "thiols": (310.0, 60.0, 0),
}


# --------------------------------------------------------------------------- paper
@lru_cache(maxsize=1)
def paper_values() -> dict:
    """The paper's reported numbers (``m1lib/data/paper_values.yaml``)."""
    text = resources.files("m1lib").joinpath("data/paper_values.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def _targets() -> dict:
    """Calibration targets pulled out of the paper's values."""
    pv = paper_values()
    q = pv["quantitative"]
    vr = pv["visual_reading"]
    return {
        "clinical": pv["cohort"]["als_clinical_mean_sd"],
        "r_thick_dpr": q["thickness_mm"]["spearman"]["dpr"]["r"],
        "r_thick_alsfrs": q["thickness_mm"]["spearman"]["alsfrs_r"]["r"],
        "r_int_dpr": q["intensity_normalized"]["spearman"]["dpr"]["r"],
        "r_int_alsfrs": q["intensity_normalized"]["spearman"]["alsfrs_r"]["r"],
        "r_thick_limb": q["thickness_mm"]["spearman"]["umn_limb"]["r"],
        "r_int_limb": q["intensity_normalized"]["spearman"]["umn_limb"]["r"],
        "p_int_dpr_split": q["intensity_normalized"]["faster_vs_slower_dpr_p"],
        "reads": vr,
        "cohort": pv["cohort"],
    }



def scaled_count(count: int, of: int, n: int) -> int:
    """The paper's ``count`` of ``of`` scaled to a group of ``n`` (half rounds up).

    Examples
    --------
    >>> scaled_count(12, 18, 18), scaled_count(12, 18, 3), scaled_count(4, 22, 4)
    (12, 2, 1)
    """
    return max(0, min(n, int(round_half_up(count * n / of))))


# ----------------------------------------------------------------- cohort sizes
def cohort_counts(n_als: int, n_hs: int) -> dict:
    """Enrolled, excluded and positive-call counts, the paper's scaled to the cohort.

    Examples
    --------
    >>> c = cohort_counts(22, 14)
    >>> c["excluded"], c["analysed"], c["female"]
    ({'ALS': 4, 'HS': 1}, {'ALS': 18, 'HS': 13}, {'ALS': 5, 'HS': 8})
    >>> c["positive"]
    {'reader1': {'ALS': 12, 'HS': 3}, 'reader2': {'ALS': 9, 'HS': 0}}
    """
    t = _targets()
    co = t["cohort"]
    enrolled = {"ALS": int(n_als), "HS": int(n_hs)}
    excluded = {g: scaled_count(co["excluded_motion_artifacts"][g], co["enrolled"][g], n)
                for g, n in enrolled.items()}
    analysed = {g: enrolled[g] - excluded[g] for g in enrolled}
    female = {g: scaled_count(co["sex_enrolled"][g]["F"], co["enrolled"][g], n)
              for g, n in enrolled.items()}
    positive = {}
    for r in READERS:
        positive[r] = {g: scaled_count(t["reads"][r]["positive"][g], co["analysed"][g], analysed[g])
                       for g in enrolled}
    for g in enrolled:   # reader 2's positives are a subset of reader 1's
        positive["reader2"][g] = min(positive["reader2"][g], positive["reader1"][g])
    return {"enrolled": enrolled, "excluded": excluded, "analysed": analysed,
            "female": female, "positive": positive}

