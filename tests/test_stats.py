"""Tests of m1lib.stats against values obtained independently.

Two kinds of reference: small cases worked out by hand (or by brute-force
enumeration written here), and GNU R's values stored in
``tests/fixtures/stats/r_reference.json`` (produced by ``make_r_reference.R`` in the
same folder; see its header and ``README.md`` there).
"""
from __future__ import annotations

import inspect
import itertools
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from m1lib import stats
from m1lib.results import round_half_up

REF = json.loads((Path(__file__).parent / "fixtures" / "stats" / "r_reference.json").read_text())
RTOL = 1e-10  # R's values carry 15 significant digits


# ------------------------------------------------------------------ R: Mann-Whitney
@pytest.mark.parametrize("name", sorted(REF["mann_whitney"]))
def test_mann_whitney_matches_r_wilcox_test(name):
    case = REF["mann_whitney"][name]
    r = stats.mann_whitney(case["x"], case["y"], permutation=True).iloc[0]
    assert r.method == ("exact" if case["exact"] else "asymptotic")
    assert r.U == pytest.approx(case["W"], abs=1e-12)
    assert r.p_value == pytest.approx(case["p_value"], rel=RTOL)
    assert r.p_value_permutation == pytest.approx(case["p_value_exact_permutation"], rel=1e-9)
    diffs = np.sort(np.subtract.outer(case["x"], case["y"]).ravel())
    if case["exact"]:
        assert r.ci_method == "exact"
        assert [r.ci_low, r.ci_high] == pytest.approx(case["ci"], abs=1e-12)
        assert r.hl_shift == pytest.approx(case["hl_estimate"], abs=1e-12)
    else:
        # R finds the asymptotic limits and estimate with uniroot(tol = 1e-4).
        assert r.ci_method == "asymptotic"
        assert [r.ci_low, r.ci_high] == pytest.approx(case["ci"], abs=1e-4)
        # Our limits are the differences at which R's step function jumps.
        assert np.min(np.abs(diffs - r.ci_low)) == 0 and np.min(np.abs(diffs - r.ci_high)) == 0
        # R's estimate is a root of W(d) = 0: inside the median's flat interval.
        mid = diffs.size // 2
        lo, hi = (diffs[mid - 1], diffs[mid]) if diffs.size % 2 == 0 else (diffs[mid], diffs[mid])
        assert lo - 1e-4 <= case["hl_estimate"] <= hi + 1e-4
        assert r.hl_shift == pytest.approx(np.median(diffs))


def test_mann_whitney_by_hand():
    # x entirely below y: U = 0; exact two-sided P = 2 / C(7, 3) = 2/35.
    r = stats.mann_whitney([1, 2, 3], [4, 5, 6, 7]).iloc[0]
    assert r.U == 0 and r.method == "exact"
    assert r.p_value == pytest.approx(2 / 35, rel=1e-12)
    assert r.rank_biserial == -1
    # 12 differences -6 -5 -5 -4 -4 -4 -3 -3 -3 -2 -2 -1: median -3.5
    assert r.hl_shift == -3.5
    assert (r.median_x, r.q1_x, r.q3_x, r.mean_x, r.sd_x) == (2, 1.5, 2.5, 2, 1)
    assert (r.n_x, r.n_y, r.group_x, r.group_y) == (3, 4, "x", "y")


def test_mann_whitney_method_choice_is_rs_not_scipys():
    # No ties but a group of 50: R goes asymptotic, SciPy's 'auto' would stay exact.
    x = np.arange(50) + 0.5
    y = np.arange(10) * 3.1 + 0.25
    r = stats.mann_whitney(x, y).iloc[0]
    assert r.method == "asymptotic"
    assert r.p_value == pytest.approx(
        st.mannwhitneyu(x, y, method="asymptotic", use_continuity=True).pvalue, rel=1e-12)
    # Ties in small groups: asymptotic with tie and continuity correction.
    r = stats.mann_whitney([1, 2, 2, 5], [2, 3, 4, 6]).iloc[0]
    assert r.method == "asymptotic"
    with pytest.raises(ValueError):
        stats.mann_whitney([1, 2, 2, 5], [2, 3, 4, 6], method="exact")


def test_mann_whitney_rejects_tiny_groups():
    with pytest.raises(ValueError, match="at least 2 values"):
        stats.mann_whitney([1.0], [2.0, 3.0], labels=("ALS", "HS"))
    with pytest.raises(ValueError):
        stats.mann_whitney([1.0, np.nan], [2.0, 3.0])


def _brute_force_permutation_p(x, y):
    z = np.concatenate([x, y]).astype(float)
    ranks = st.rankdata(z)
    mu = len(x) * (len(z) + 1) / 2
    obs = abs(ranks[: len(x)].sum() - mu)
    hits = total = 0
    for idx in itertools.combinations(range(len(z)), len(x)):
        total += 1
        hits += abs(ranks[list(idx)].sum() - mu) >= obs - 1e-9
    return hits / total


@pytest.mark.parametrize("x,y", [
    ([1, 2, 2, 3], [2, 4, 5, 5, 6]),
    ([0, 0, 1, 3, 8], [0, 1, 1, 2]),
    ([1.5, 2.5, 0.5], [3.5, 4.5, 0.25, 5]),
])
def test_permutation_p_by_enumeration(x, y):
    assert stats.rank_sum_permutation_pvalue(x, y) == pytest.approx(
        _brute_force_permutation_p(x, y), rel=1e-12)


@pytest.mark.parametrize("m,n", [(1, 1), (2, 3), (3, 4), (4, 4), (5, 3)])
def test_rank_sum_null_distribution_by_enumeration(m, n):
    counts = stats._rank_sum_null_counts(m, n)
    brute = np.zeros(m * n + 1, dtype=int)
    for idx in itertools.combinations(range(1, m + n + 1), m):
        brute[sum(idx) - m * (m + 1) // 2] += 1
    assert list(counts) == brute.tolist()


def test_exact_distribution_agrees_with_scipy_exact_p():
    # Our exact U distribution (behind the HL interval) gives SciPy's exact P.
    rng = np.random.default_rng(0)
    for m, n in [(10, 5), (18, 13), (6, 9), (3, 30)]:
        x, y = rng.normal(size=m), rng.normal(0.5, 1, size=n)
        sp = st.mannwhitneyu(x, y, method="exact")
        u = int(sp.statistic)
        ours = min(1.0, 2 * stats._pwilcox(min(u, m * n - u), m, n))
        assert ours == pytest.approx(sp.pvalue, rel=1e-12)


# ----------------------------------------------------------------- R: Spearman
@pytest.mark.parametrize("name", sorted(REF["spearman"]))
def test_spearman_matches_r_cor_test(name):
    case = REF["spearman"][name]
    r = stats.spearman(case["x"], case["y"], n_boot=0).iloc[0]
    assert r.rho == pytest.approx(case["rho"], rel=RTOL)
    assert r.p_value == pytest.approx(case["p_value"], rel=1e-9)
    assert r.n == len(case["x"])


def test_spearman_by_hand():
    # Ranks differ by d = (-1, 1, -1, 1, 0): rho = 1 - 6 * 4 / (5 * 24) = 0.8.
    r = stats.spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], n_boot=0).iloc[0]
    assert r.rho == pytest.approx(0.8, rel=1e-14)
    t = 0.8 * math.sqrt(3 / (1 - 0.64))
    assert r.p_value == pytest.approx(2 * st.t.sf(t, 3), rel=1e-12)
    assert r.method.startswith("t approximation")


def test_spearman_drops_incomplete_pairs_and_checks_input():
    r = stats.spearman([1, 2, np.nan, 4, 5], [2, 1, 3, np.nan, 5], n_boot=0).iloc[0]
    assert r.n == 3
    with pytest.raises(ValueError):
        stats.spearman([1, 2], [2, 1])
    with pytest.raises(ValueError):
        stats.spearman([1, 1, 1, 1], [1, 2, 3, 4])


# ---------------------------------------------------------------- bootstrap (BCa)
def _rho(x, y, axis=-1):
    return stats._spearman_rows(x, y)


def test_bca_formula_matches_scipy_on_the_same_replicates():
    rng = np.random.default_rng(11)
    x = rng.normal(size=18)
    y = 0.5 * x + rng.normal(size=18)
    seed_kw = "rng" if "rng" in inspect.signature(st.bootstrap).parameters else "random_state"
    res = st.bootstrap((x, y), _rho, paired=True, vectorized=True, n_resamples=3000,
                       method="BCa", **{seed_kw: np.random.default_rng(5)})
    n = x.size
    jack = np.array([st.spearmanr(np.delete(x, i), np.delete(y, i)).statistic for i in range(n)])
    rho = st.spearmanr(x, y).statistic
    lo, hi, used = stats.bca_interval(rho, res.bootstrap_distribution, jack)
    assert used == 3000
    assert lo == pytest.approx(res.confidence_interval.low, rel=1e-12)
    assert hi == pytest.approx(res.confidence_interval.high, rel=1e-12)


def test_spearman_bootstrap_is_seeded_and_sane():
    rng = np.random.default_rng(2)
    x = rng.normal(size=18)
    y = x + rng.normal(size=18)
    a = stats.spearman(x, y, n_boot=2000, seed=7)
    b = stats.spearman(x, y, n_boot=2000, seed=7)
    c = stats.spearman(x, y, n_boot=2000, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert a.ci_low.iloc[0] != c.ci_low.iloc[0]
    r = a.iloc[0]
    assert r.ci_low < r.rho < r.ci_high and r.n_boot_used == 2000
    assert r.ci_method == "BCa bootstrap"


def test_bootstrap_drops_undefined_resamples():
    # Six tied values out of eight: some resamples are constant in x (rho undefined).
    x = [0, 0, 0, 0, 0, 0, 1, 2]
    y = [1, 2, 3, 4, 5, 6, 7, 8]
    r = stats.spearman(x, y, n_boot=2000, seed=1).iloc[0]
    assert 0 < r.n_boot_used < 2000
    assert np.isfinite(r.ci_low) and np.isfinite(r.ci_high)


def test_weighted_spearman_equals_expanded_samples():
    rng = np.random.default_rng(4)
    vx = np.round(rng.normal(size=30), 1)  # with ties
    vy = rng.integers(0, 5, 30).astype(float)
    w = rng.integers(0, 3, size=(25, 30)).astype(float)
    got = stats._weighted_spearman(vx, vy, w)
    for b in range(25):
        idx = np.repeat(np.arange(30), w[b].astype(int))
        want = st.spearmanr(vx[idx], vy[idx]).statistic
        assert got[b] == pytest.approx(want, rel=1e-10, abs=1e-12)


def _exact_cluster_permutation_p(X, Y):
    """Enumerate every permutation of whole Y vectors between clusters."""
    ok = np.isfinite(X) & np.isfinite(Y)
    rho = st.spearmanr(X[ok], Y[ok]).statistic
    hits = total = 0
    for perm in itertools.permutations(range(X.shape[0])):
        Yp = Y[list(perm)]
        ok = np.isfinite(X) & np.isfinite(Yp)
        r = st.spearmanr(X[ok], Yp[ok]).statistic
        total += 1
        hits += abs(r) >= abs(rho) - 1e-12
    return hits / total


@pytest.mark.parametrize("with_missing", [False, True])
def test_cluster_permutation_p_approaches_full_enumeration(with_missing):
    rng = np.random.default_rng(9)
    Y = np.repeat(rng.integers(0, 8, (6, 2)), [2, 1], axis=1).astype(float)  # 6 clusters x 3 slots
    X = -0.2 * Y + rng.normal(0, 0.8, Y.shape)
    if with_missing:
        X[1, 2] = np.nan  # that slot drops out of every permutation
    exact = _exact_cluster_permutation_p(X, Y)
    cl = np.repeat(np.arange(6), 3)
    r = stats.spearman_clustered(X.ravel(), Y.ravel(), cl, n_boot=0, n_perm=20000, seed=3).iloc[0]
    # Monte Carlo P vs the exact permutation P (SE <= 0.0036 for 20000 draws).
    assert r.cluster_p_value == pytest.approx(exact, abs=0.015)
    assert r.n == (17 if with_missing else 18) and r.n_clusters == 6


def test_cluster_bootstrap_interval_is_wider_than_naive_for_clustered_data():
    rng = np.random.default_rng(12)
    patient_effect = rng.normal(size=18)
    Y = np.repeat(rng.integers(0, 8, 18)[:, None], 6, axis=1).astype(float)
    X = -0.1 * Y + patient_effect[:, None] + rng.normal(0, 0.2, (18, 6))
    cl = np.repeat(np.arange(18), 6)
    r = stats.spearman_clustered(X.ravel(), Y.ravel(), cl, n_boot=2000, seed=1).iloc[0]
    naive = stats.spearman(X.ravel(), Y.ravel(), n_boot=2000, seed=1).iloc[0]
    assert (r.cluster_ci_high - r.cluster_ci_low) > (naive.ci_high - naive.ci_low)
    assert r.cluster_p_value > r.p_value
    assert r.n == 108 and r.n_clusters == 18 and r.n_perm == 2000


# -------------------------------------------------------- R: proportions and kappa
@pytest.mark.parametrize("i", range(len(REF["proportions"])))
def test_proportion_limits_match_r(i):
    c = REF["proportions"][i]
    k, n = c["count"], c["nobs"]
    assert stats.proportion_ci(k, n) == pytest.approx(c["wilson_95"], rel=RTOL, abs=1e-14)
    assert stats.proportion_ci(k, n, conf_level=0.90) == pytest.approx(c["wilson_90"], rel=RTOL, abs=1e-14)
    assert stats.proportion_ci(k, n, method="clopper-pearson") == pytest.approx(
        c["clopper_pearson_95"], rel=RTOL, abs=1e-14)
    assert stats.proportion_ci(k, n, method="clopper-pearson", conf_level=0.90) == pytest.approx(
        c["clopper_pearson_90"], rel=RTOL, abs=1e-14)


def test_proportion_ci_by_hand_and_errors():
    # Wilson limits for 0 of n: [0, z^2/(n + z^2)].
    z = st.norm.ppf(0.975)
    assert stats.proportion_ci(0, 13) == pytest.approx((0.0, z**2 / (13 + z**2)), abs=1e-14)
    # Clopper-Pearson for n of n: [(alpha/2)^(1/n), 1].
    assert stats.proportion_ci(9, 9, method="clopper-pearson") == pytest.approx((0.025 ** (1 / 9), 1.0))
    assert all(math.isnan(v) for v in stats.proportion_ci(0, 0))
    with pytest.raises(ValueError):
        stats.proportion_ci(1, 2, method="jeffreys")


@pytest.mark.parametrize("name", sorted(REF["kappa"]))
def test_kappa_and_fce_se_match_r(name):
    c = REF["kappa"][name]
    r = stats.cohen_kappa_table(c["table"]).iloc[0]
    assert r.kappa == pytest.approx(c["kappa"], rel=RTOL)
    assert r.se == pytest.approx(c["se_psych"], rel=RTOL)
    assert r.se == pytest.approx(c["se_formula"], rel=RTOL)
    assert [r.ci_low, r.ci_high] == pytest.approx(c["ci_psych"], rel=RTOL)


def test_kappa_by_hand_paper_readers():
    # 9 both ALS, 6 reader 1 only, 0 reader 2 only, 16 both normal (25 of 31 agree).
    # po = 25/31, pe = (15*9 + 16*22)/31^2 = 487/961, kappa = 288/474 = 48/79.
    r = stats.cohen_kappa_table([[9, 6], [0, 16]]).iloc[0]
    assert Fraction(r.kappa).limit_denominator(1000) == Fraction(48, 79)
    assert r.agreement == pytest.approx(25 / 31) and r.expected_agreement == pytest.approx(487 / 961)
    assert round_half_up(r.kappa, 2) == 0.61
    labels = stats.cohen_kappa(["ALS"] * 15 + ["normal"] * 16,
                               ["ALS"] * 9 + ["normal"] * 22, categories=["ALS", "normal"])
    assert labels.kappa.iloc[0] == pytest.approx(48 / 79, rel=1e-14)


# ---------------------------------------------- the paper's reader table, exactly
PAPER_READERS = {
    # counts from the paper's text; printed percentages (sens, spec, PPV, NPV, acc)
    "reader1": ((12, 3, 10, 6), (67, 77, 80, 63, 71)),
    "reader2": ((9, 0, 13, 9), (50, 100, 100, 59, 71)),
}


@pytest.mark.parametrize("reader", sorted(PAPER_READERS))
def test_paper_reader_table_exactly(reader):
    (tp, fp, tn, fn), printed = PAPER_READERS[reader]
    t = stats.diagnostic_accuracy_from_counts(tp, fp, tn, fn).set_index("statistic")
    pct = [round_half_up(100 * t.loc[s, "estimate"]) for s in
           ("sensitivity", "specificity", "ppv", "npv", "accuracy")]
    assert pct == list(printed)
    assert t.loc["npv", "numerator"] == tn and t.loc["npv", "denominator"] == tn + fn
    assert (t.loc[["tp", "fp", "tn", "fn"], "estimate"] == [tp, fp, tn, fn]).all()
    assert (t.loc["sensitivity", "ci_method"], t.loc["tp", "ci_method"]) == ("wilson", "none")


def test_diagnostic_accuracy_from_labels_and_zero_denominator():
    t = stats.diagnostic_accuracy([1, 1, 1], [1, 0, 1], ci_method="clopper-pearson").set_index("statistic")
    assert t.loc["sensitivity", "estimate"] == pytest.approx(2 / 3)
    assert math.isnan(t.loc["specificity", "estimate"]) and math.isnan(t.loc["specificity", "ci_low"])
    assert t.loc["sensitivity", "ci_method"] == "clopper-pearson"


# ------------------------------------------------------------------ R: DeLong / pROC
@pytest.mark.parametrize("name", sorted(REF["roc"]))
def test_delong_matches_proc(name):
    c = REF["roc"][name]
    direction = "lower" if c["direction"] == ">" else "higher"
    r = stats.roc_auc_delong(c["cases"], c["controls"], direction=direction).iloc[0]
    assert r.auc == pytest.approx(c["auc"], rel=RTOL)
    assert r.se**2 == pytest.approx(c["var"], rel=1e-9)
    assert [r.ci_low, r.ci_high] == pytest.approx(c["ci"], rel=RTOL)


def test_delong_paired_test_matches_proc_roc_test():
    c = REF["roc_paired"]
    case = np.array(c["response"]) == 1
    r = stats.delong_paired_test(case, c["predictor1"], c["predictor2"]).iloc[0]
    assert r.auc1 == pytest.approx(c["auc1"], rel=RTOL)
    assert r.auc2 == pytest.approx(c["auc2"], rel=RTOL)
    assert r.z == pytest.approx(c["z"], rel=1e-9)
    assert r.p_value == pytest.approx(c["p_value"], rel=1e-9)


def test_auc_by_hand():
    # pairs (case > control): 0.9>0.1, 0.9>0.85, 0.8>0.1, 0.8<0.85 -> 3/4
    r = stats.roc_auc_delong([0.9, 0.8], [0.1, 0.85]).iloc[0]
    assert r.auc == 0.75
    # a tie counts one half; 'lower' flips the orientation
    assert stats.roc_auc_delong([1, 2], [2, 3], direction="lower").auc.iloc[0] == pytest.approx(
        (1 + 1 + 0.5 + 1) / 4)
    # a binary score: AUC = (sensitivity + specificity) / 2
    r = stats.roc_auc_delong([1] * 9 + [0] * 9, [0] * 13).iloc[0]
    assert r.auc == pytest.approx((9 / 18 + 1) / 2)
    assert r.ci_high <= 1 and r.ci_method == "DeLong"


# --------------------------------------------------------------------- R: BH q
def test_bh_matches_r_p_adjust():
    p = [np.nan if v is None else v for v in REF["bh"]["p"]]
    q = [np.nan if v is None else v for v in REF["bh"]["q"]]
    np.testing.assert_allclose(stats.bh_qvalues(p), q, rtol=1e-12)


def test_describe_matches_r_type7_quantiles():
    # R: quantile(c(3, 1, 4, 1, 5, 9, 2, 6), c(.25, .5, .75)) -> 1.75 3.5 5.25
    d = stats.describe([3, 1, 4, 1, 5, 9, 2, 6])
    assert (d["q1"], d["median"], d["q3"]) == (1.75, 3.5, 5.25)
    assert d["iqr"] == 3.5
