"""The paper's analyses (Cosottini et al. 2016) over the study's tidy tables.

Inputs are the tables of the data contract (``docs/data.md``), already read by
:mod:`m1lib.dataset`:

- ``participants``: one row per enrolled participant (contract columns, boolean
  ``excluded``); only non-excluded participants are analysed (filtered here);
- ``reads``: ``participant_id, reader, call`` (``ALS`` or ``normal``), any readers;
- ``measurements``: long, one row per ``participant_id, hemisphere, area`` with
  ``thickness_mm``, ``intensity`` and optionally ``r2star_s``.

One public function per result of the paper, each returning a tidy table built on
:mod:`m1lib.stats`, grouped by family:

- :mod:`~m1lib.analyses.cohort`: enrolment and clinical scores;
- :mod:`~m1lib.analyses.reading`: diagnostic accuracy and agreement of the readers;
- :mod:`~m1lib.analyses.groups`: patients vs comparison groups, DPR subgroups;
- :mod:`~m1lib.analyses.correlations`: Spearman correlations, per subject and per limb;
- :mod:`~m1lib.analyses.roc`: ROC AUC of measures and readers;
- :mod:`~m1lib.analyses.measurement`: accuracy against a phantom's truth, motion QC;
- :mod:`~m1lib.analyses.registry`: :func:`run_all` and the results registry (keys
  catalogued in ``docs/results.md``), from which :mod:`m1lib.findings` derives the
  findings that :mod:`m1lib.narrative` puts into words.

The patient and comparison groups are labels the caller passes (the manifest's
settings; ALS vs HS by default). Nothing here reads files. Problems with the user's
data raise :class:`m1lib.errors.DataError` with a one-line message; a result that
cannot be computed on this cohort is a row whose ``method`` says why.
"""
from __future__ import annotations

from m1lib.analyses._common import (CLINICAL_VARIABLES, COHORT_CLINICAL, COMPARISON_GROUPS,
                                    DEFAULT_SEED, LIMB_AREAS, MEASURE_DIRECTION, MEASURES,
                                    NOT_COMPUTED, PATIENT_GROUP, _analysed, _participants,
                                    comparison_groups, not_computed, subject_means)
from m1lib.analyses.cohort import cohort_table, group_order
from m1lib.analyses.correlations import correlations, limb_correlations, limb_pairs
from m1lib.analyses.groups import (dpr_subgroups, example_participants, group_comparison,
                                   subject_table)
from m1lib.analyses.measurement import (ACCURACY_TARGETS, measurement_accuracy,
                                        measurement_errors, measurement_registry, motion_qc)
from m1lib.analyses.reading import (correct_vs_missed, diagnosis_table, fleiss_agreement,
                                    reader_agreement, visual_reading)
from m1lib.analyses.registry import (TABLE_NAMES, AnalysisResult, pair_key,
                                     registry_from_tables, run_all)
from m1lib.analyses.roc import roc_curves, roc_table

__all__ = [
    "limb_pairs", "subject_table", "diagnosis_table", "roc_curves",
    "example_participants", "measurement_errors", "measurement_accuracy", "motion_qc",
    "measurement_registry", "ACCURACY_TARGETS",
    "MEASURES", "MEASURE_DIRECTION", "CLINICAL_VARIABLES", "LIMB_AREAS", "TABLE_NAMES",
    "AnalysisResult", "subject_means", "cohort_table", "visual_reading",
    "reader_agreement", "fleiss_agreement", "correct_vs_missed", "group_comparison",
    "correlations", "limb_correlations", "dpr_subgroups", "roc_table",
    "registry_from_tables", "run_all", "PATIENT_GROUP", "COMPARISON_GROUPS", "NOT_COMPUTED",
    "not_computed", "comparison_groups", "group_order", "pair_key", "COHORT_CLINICAL",
    "DEFAULT_SEED",
]
