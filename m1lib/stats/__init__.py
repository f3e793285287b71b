"""Generic statistical tests, as thin wrappers over SciPy and statsmodels.

Every function takes plain arrays and returns a small tidy :class:`pandas.DataFrame`
(one row per test, or one row per statistic) whose columns name the statistic, the
method actually used, ``n`` and the confidence interval. Nothing here reads files or
knows about the study; :mod:`m1lib.analyses` applies these to the study's tables.

What SciPy and statsmodels already compute is called, not re-derived:

- proportion limits: :func:`statsmodels.stats.proportion.proportion_confint`;
- Cohen's kappa and its Fleiss-Cohen-Everitt SE: :func:`statsmodels.stats.inter_rater.cohens_kappa`;
- Mann-Whitney U and its P: :func:`scipy.stats.mannwhitneyu` with an explicit ``method``;
- Spearman's rho and its P: :func:`scipy.stats.spearmanr`;
- Benjamini-Hochberg: :func:`statsmodels.stats.multitest.multipletests`.

Written by hand, because neither library has them (each place says so): the exact
null distribution of the rank-sum statistic (for R's exact Hodges-Lehmann interval),
the exact permutation distribution with tied midranks, R's asymptotic
Hodges-Lehmann interval, a NaN-tolerant vectorized BCa bootstrap (also for clusters),
the cluster permutation test, and DeLong's AUC variance and paired test.

Where the choice matters, the defaults are those of GNU R (``wilcox.test``,
``cor.test``, ``prop.test``, ``binom.test``, pROC), and ``tests/fixtures/stats``
holds R's values that the tests compare against.
"""
from __future__ import annotations

from m1lib.stats.agreement import (CI_METHODS, cohen_kappa, cohen_kappa_table,
                                   diagnostic_accuracy, diagnostic_accuracy_from_counts,
                                   fleiss_kappa, proportion_ci)
from m1lib.stats.correlations import (_pearson_rows, _rank_rows, _spearman_rows,
                                      _weighted_spearman, spearman, spearman_clustered)
from m1lib.stats.descriptive import describe
from m1lib.stats.groups import (MWU_COLUMNS, PERMUTATION_MAX_N, _pwilcox, _qwilcox,
                                _rank_sum_null_counts, hodges_lehmann, mann_whitney,
                                rank_sum_permutation_pvalue)
from m1lib.stats.resampling import bca_interval
from m1lib.stats.roc import bh_qvalues, delong_paired_test, roc_auc_delong

__all__ = [
    "describe",
    "proportion_ci",
    "diagnostic_accuracy",
    "diagnostic_accuracy_from_counts",
    "cohen_kappa",
    "cohen_kappa_table",
    "fleiss_kappa",
    "mann_whitney",
    "rank_sum_permutation_pvalue",
    "hodges_lehmann",
    "spearman",
    "spearman_clustered",
    "bca_interval",
    "roc_auc_delong",
    "delong_paired_test",
    "bh_qvalues",
    "CI_METHODS",
    "MWU_COLUMNS",
    "PERMUTATION_MAX_N",
]
