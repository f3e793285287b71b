"""The replica (compatibility name): see :mod:`m1lib.replica`.

The replica was one module; it is now the subpackage :mod:`m1lib.replica`, one
module per step (targets and calibration, tables, anatomy, rendering, writing).
This module keeps the old import path working for code and notebooks that use
``m1lib.synth``; new code imports from :mod:`m1lib.replica` directly.
"""
from __future__ import annotations

import sys

from m1lib.replica.calibration import _S_NOISE, _rng, visibility
from m1lib.replica.files import prepare_out_dir as _prepare_out_dir
from m1lib.replica.flat import image_spec
from m1lib.replica.generate import ANATOMIES, DEFAULT_ANATOMY, generate, main
from m1lib.replica.rank_stats import iman_conover
from m1lib.replica.tables import make_cohort, truth_summary
from m1lib.replica.targets import (DEFAULT_N_ALS, DEFAULT_N_HS, DEFAULT_SEED, RATER_SD_MM,
                                   READERS, cohort_counts, paper_values, scaled_count)
from m1lib.replica.writer import rater_markups

__all__ = ["generate", "main", "make_cohort", "truth_summary", "image_spec", "cohort_counts",
           "scaled_count", "paper_values", "iman_conover", "visibility", "rater_markups",
           "READERS", "RATER_SD_MM", "DEFAULT_SEED", "DEFAULT_N_ALS", "DEFAULT_N_HS",
           "ANATOMIES", "DEFAULT_ANATOMY", "_rng", "_S_NOISE", "_prepare_out_dir"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
