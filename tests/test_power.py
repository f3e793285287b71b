"""m1lib.power: vectorised tests against SciPy, simulated power against closed forms,
the cluster-aware per-limb power, determinism, sentences read off the table."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from conftest import _participants
from m1lib import results, stats
from m1lib.errors import DataError
from m1lib.power import closed, models, rankstats, words
from m1lib.power import plan_endpoints, power_curves, power_registry, sample_size_table
from m1lib.power.simulate import check_grid, target_label

# Monte-Carlo tolerance used throughout: the simulated power p of n_sim studies has
# SE sqrt(p(1-p)/n_sim) (at most 0.0079 for n_sim = 4000); a simulated power agrees
# with a closed form when |p_sim - p_closed| <= 4 SE.
N_SIM = 4000
K_SE = 4.0


def mc_se(p: float, n_sim: int = N_SIM) -> float:
    return math.sqrt(p * (1 - p) / n_sim)


# ------------------------------------------------------------ vectorised rank tests
def test_mann_whitney_rows_equal_scipy_row_by_row():
    rng = np.random.default_rng(1)
    a = np.round(rng.normal(0, 1, (60, 11)), 1)          # rounding makes ties
    b = np.round(rng.normal(0.4, 1, (60, 8)), 1)
    u, p = rankstats.mann_whitney_rows(np.concatenate([a, b], 1), np.r_[np.ones(11, bool), np.zeros(8, bool)])
    ref = st.mannwhitneyu(a, b, axis=1, method="asymptotic")
    np.testing.assert_allclose(u, ref.statistic)
    np.testing.assert_allclose(p, ref.pvalue, rtol=1e-10)


def test_mann_whitney_with_a_group_mask_that_changes_per_row():
    rng = np.random.default_rng(2)
    v = rng.integers(0, 6, (30, 14)).astype(float)
    mask = rng.random((30, 14)) < 0.5
    mask[:, 0], mask[:, 1] = True, False
    u, p = rankstats.mann_whitney_rows(v, mask)
    for i in range(30):
        r = st.mannwhitneyu(v[i, mask[i]], v[i, ~mask[i]], method="asymptotic")
        assert u[i] == r.statistic and p[i] == pytest.approx(r.pvalue, rel=1e-10)


def test_spearman_rows_equal_scipy_and_constant_rows_are_nan():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, (40, 12)).astype(float)
    y = x + rng.integers(0, 4, (40, 12))
    x[0] = 2.0
    rho, p = rankstats.spearman_rows(x, y)
    assert np.isnan(rho[0]) and np.isnan(p[0])
    for i in range(1, 40):
        r = st.spearmanr(x[i], y[i])
        assert rho[i] == pytest.approx(r.statistic, abs=1e-12) and p[i] == pytest.approx(r.pvalue, rel=1e-9)


def test_delong_rows_equal_the_reports_paired_test():
    rng = np.random.default_rng(4)
    c1, k1 = rng.normal(1, 1, (6, 12)), rng.normal(0, 1, (6, 9))
    c2, k2 = (rng.random((6, 12)) < 0.7) * 1.0, (rng.random((6, 9)) < 0.3) * 1.0
    d, p = rankstats.delong_paired_rows(c1, k1, c2, k2)
    case = np.r_[np.ones(12), np.zeros(9)]
    for i in range(6):
        ref = stats.delong_paired_test(case, np.r_[c1[i], k1[i]], np.r_[c2[i], k2[i]]).iloc[0]
        assert d[i] == pytest.approx(ref.auc_difference) and p[i] == pytest.approx(ref.p_value)


def test_pooled_spearman_rho_is_scipys_and_its_se_matches_the_spread():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((4000, 60, 2))
    x, y = z[..., 0], 0.5 * z[..., 0] + math.sqrt(0.75) * z[..., 1]
    r = rankstats.pooled_spearman_rows(x[..., None], y[..., None])   # K = 1: independent pairs
    assert r["rho"][7] == pytest.approx(st.spearmanr(x[7], y[7]).statistic)
    # influence-function SE against the Monte-Carlo SD of rho (SE of an SD: ~1.1 %)
    assert r["se_cluster"].mean() == pytest.approx(r["rho"].std(), rel=0.05)


def _clustered(rng, n_sim, g, k, icc, slope):
    ux, uy = rng.standard_normal((n_sim, g, 1)), rng.standard_normal((n_sim, g, 1))
    x = math.sqrt(icc) * ux + math.sqrt(1 - icc) * rng.standard_normal((n_sim, g, k))
    y = math.sqrt(icc) * uy + math.sqrt(1 - icc) * rng.standard_normal((n_sim, g, k)) + slope * x
    return x, np.round(2 * y)      # a score with ties, like the UMN score


def test_cluster_robust_test_keeps_its_size_where_the_naive_one_does_not():
    x, y = _clustered(np.random.default_rng(6), N_SIM, 40, 6, 0.6, 0.0)
    r = rankstats.pooled_spearman_rows(x, y)
    size_cluster, size_naive = np.mean(r["p_cluster"] < 0.05), np.mean(r["p_naive"] < 0.05)
    # the sandwich is slightly liberal with 40 patients (measured: 6.4 %); stated bound 3.5-7.5 %
    assert 0.035 <= size_cluster <= 0.075
    assert size_naive > 0.15


# ----------------------------------------------------- simulated power vs closed forms
def test_mann_whitney_power_agrees_with_noether_within_monte_carlo_error():
    rng = np.random.default_rng(7)
    # a large pilot stands for a continuous normal shift (theta ~ 0.60)
    m = models.TwoGroupShift(rng.normal(0.36, 1, 5000), rng.normal(0, 1, 5000))
    theta = m.effect(0.0)
    p_sim = np.mean(m.pvalues(np.random.default_rng(8), N_SIM, 60, 0.0) < 0.05)
    p_closed = float(closed.noether_power(theta, 60, 60, 0.05))
    assert 0.3 < p_closed < 0.7
    assert abs(p_sim - p_closed) <= K_SE * mc_se(p_closed)


def test_spearman_power_agrees_with_bonett_wright_within_monte_carlo_error():
    rng = np.random.default_rng(9)
    r = 2 * math.sin(math.pi * 0.3 / 6)           # Pearson r of a normal with Spearman rho 0.3
    z = rng.standard_normal((8000, 2))
    m = models.PairMixture(z[:, 0], r * z[:, 0] + math.sqrt(1 - r * r) * z[:, 1])
    rho = m.effect(1.0)
    p_sim = np.mean(m.pvalues(np.random.default_rng(10), N_SIM, 80, 1.0) < 0.05)
    p_closed = float(closed.spearman_power(rho, 80, 0.05))
    assert 0.5 < p_closed < 0.9
    assert abs(p_sim - p_closed) <= K_SE * mc_se(p_closed)


def test_paired_auc_power_agrees_with_the_delong_closed_form_within_monte_carlo_error():
    rng = np.random.default_rng(11)
    case = rng.normal(0.8, 1, 3000)
    ctrl = rng.normal(0, 1, 3000)
    case_call = (rng.random(3000) < 0.55) * 1.0
    ctrl_call = (rng.random(3000) < 0.35) * 1.0
    m = models.PairedAUCShift(case, case_call, ctrl, ctrl_call)
    s10, s01 = closed.delong_unit_variance(case, ctrl, case_call, ctrl_call)
    p_closed = float(closed.delong_power(m.effect(0.0), s10, s01, 80, 80, 0.05))
    p_sim = np.mean(m.pvalues(np.random.default_rng(12), N_SIM, 80, 0.0) < 0.05)
    assert 0.3 < p_closed < 0.9
    assert abs(p_sim - p_closed) <= K_SE * mc_se(p_closed)


def test_mixture_models_have_the_effect_they_claim():
    rng = np.random.default_rng(13)
    z = rng.standard_normal((400, 2))
    m = models.PairMixture(z[:, 0], 0.5 * z[:, 0] + z[:, 1])
    for w in (0.0, 0.5, 1.5):
        i, j = models._mixed_pairs(np.random.default_rng(14), m.x, m.y, 1, 200_000, w, m.direction)
        big = st.spearmanr(m.x[i[0]], m.y[j[0]]).statistic
        assert big == pytest.approx(m.effect(w), abs=0.01)
        assert m.strength_for(m.effect(w)) == pytest.approx(w)


def test_cluster_aware_power_is_lower_than_the_naive_pooled_power_when_limbs_correlate():
    x, y = _clustered(np.random.default_rng(15), 1, 300, 6, 0.7, 0.25)
    cluster = models.ClusterMixture(x[0], y[0], test="cluster")
    naive = models.ClusterMixture(x[0], y[0], test="naive")
    p_cluster = np.mean(cluster.pvalues(np.random.default_rng(16), N_SIM, 12, 1.0) < 0.05)
    p_naive = np.mean(naive.pvalues(np.random.default_rng(16), N_SIM, 12, 1.0) < 0.05)
    assert closed.design_effect(x[0], y[0]) > 2          # limbs of a patient are alike
    assert p_naive - p_cluster > K_SE * math.sqrt(mc_se(p_naive) ** 2 + mc_se(p_cluster) ** 2)


# -------------------------------------------------------------- the dataset's endpoints
def _tables(n_als=16, n_hs=12, seed=0):
    rng = np.random.default_rng(seed)
    p = _participants(n_als, n_hs)
    rows = []
    for pid, g in zip(p["participant_id"], p["group"]):
        base = rng.normal(2.0 if g == "HS" else 1.7, 0.15)
        for h in ("L", "R"):
            for a in ("foot", "leg", "hand", "face"):
                rows.append((pid, h, a, base + rng.normal(0, 0.1), rng.normal(0.8, 0.03)))
    m = pd.DataFrame(rows, columns=["participant_id", "hemisphere", "area", "thickness_mm", "intensity"])
    reads = pd.DataFrame([(pid, r, "ALS" if (g == "ALS") == (rng.random() < 0.75) else "normal")
                          for pid, g in zip(p["participant_id"], p["group"]) for r in ("reader1", "reader2")],
                         columns=["participant_id", "reader", "call"])
    return p, m, reads


@pytest.fixture(scope="module")
def planned():
    p, m, reads = _tables()
    eps = plan_endpoints(p, m, reads, n_boot=300, seed=5)
    curves = power_curves(eps, n_grid=[6, 12, 24, 48], n_sim=200, seed=5)
    return eps, curves, sample_size_table(eps, curves)


def test_every_endpoint_of_the_issue_is_planned(planned):
    eps, curves, table = planned
    keys = {e.key for e in eps}
    assert {"group_thickness_mm", "group_intensity", "corr_thickness_mm_dpr", "corr_intensity_alsfrs_r",
            "limb_thickness_mm", "limb_intensity", "auc_thickness_mm_vs_reader1",
            "auc_thickness_mm_vs_reader2", "dpr_split_thickness_mm", "dpr_split_intensity"} <= keys
    assert len(curves) == len(eps) * 3 * 4
    for e in eps:   # the central scenario is the pilot itself
        assert e.model.effect(e.model.observed_strength) == pytest.approx(e.estimate, abs=0.05)


def test_same_seed_same_table_and_another_seed_another(planned):
    eps, curves, table = planned
    p, m, reads = _tables()
    eps2 = plan_endpoints(p, m, reads, n_boot=300, seed=5)
    curves2 = power_curves(eps2, n_grid=[6, 12, 24, 48], n_sim=200, seed=5)
    table2 = sample_size_table(eps2, curves2)
    assert curves.to_csv(index=False) == curves2.to_csv(index=False)
    assert table.to_csv(index=False) == table2.to_csv(index=False)
    curves3 = power_curves(eps2, n_grid=[6, 12, 24, 48], n_sim=200, seed=6)
    assert not curves3["power"].equals(curves2["power"])


def test_registry_keys_are_catalogued(planned):
    reg = power_registry(planned[2], settings=dict(n_sim=200, n_min=6, n_max=48, controls_per_patient=1.0))
    assert results.undocumented_keys(reg) == []
    assert "power.limb_thickness_mm.n_80_pessimistic" in reg


def test_the_table_holds_only_simulated_sizes(planned):
    eps, curves, table = planned
    grid = set(curves["n"])
    for col in [c for c in table.columns if re.fullmatch(r"n_\d+(_optimistic|_pessimistic)?", c)]:
        assert set(table[col].dropna()) <= grid


# ------------------------------------------------------------------------- sentences
def _row(**kw):
    row = dict(endpoint="ep", label="thickness vs DPR (Spearman)", effect_name="rho", estimate=-0.45,
               ci_low=-0.79, ci_high=-0.10, conf_level=0.95, n_pilot="18 ALS", unit="ALS patients",
               second="", null_in_ci=False, effect_optimistic=-0.79, effect_central=-0.45,
               effect_pessimistic=-0.10, n_min=6, n_max=120, n_80=40.0, n_80_optimistic=10.0,
               n_80_pessimistic=np.nan, second_80=np.nan, n_80_closed=36.0, closed_method="Fisher z")
    row.update(kw)
    return pd.DataFrame([row])


def _numbers(text: str) -> set[float]:
    return {float(v) for v in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?", text)}


@pytest.mark.parametrize("changes, must, must_not", [
    ({}, ["80% power needs 40 ALS patients", "optimistic 10", "pessimistic not reached (more than 120)"],
     ["at most"]),
    ({"n_80": np.nan}, ["80% power is not reached within the sizes simulated (up to 120 ALS patients)"],
     ["needs"]),
    ({"n_80": 6.0}, ["needs at most 6 ALS patients (the smallest size simulated)"], []),
    ({"null_in_ci": True, "ci_high": 0.05, "effect_pessimistic": 0.0},
     ["pessimistic none (the interval includes no effect)"], ["not reached (more"]),
    ({"second": "HS", "second_80": 40.0}, ["needs 40 ALS patients and 40 HS"], []),
    ({"n_80_closed": np.nan}, ["(closed form, Fisher z: not reached)"], []),
])
def test_sentences_follow_the_table(changes, must, must_not):
    table = _row(**changes)
    text = words.sentences(table, targets=[0.8])["ep"]
    for m in must:
        assert m in text
    for m in must_not:
        assert m not in text
    # every number in the sentence is a value of the table (or the CI level / target)
    row = table.iloc[0]
    allowed = {float(v) for v in row.values
               if isinstance(v, (int, float, np.integer, np.floating)) and np.isfinite(v)}
    allowed |= {round(float(v), 2) for v in allowed} | {95.0, 80.0} | _numbers(row["n_pilot"])
    assert _numbers(text) <= allowed, _numbers(text) - allowed


def test_overview_counts_the_reached_endpoints():
    t = pd.concat([_row(endpoint="a", label="A"), _row(endpoint="b", label="B", n_80=np.nan)])
    assert words.overview(t) == ("1 of 2 endpoints reach 80% power within 120 ALS patients at the "
                                 "observed effect; not reached: B.")


# ------------------------------------------------------------------------ bad input
def test_bad_settings_are_one_line_data_errors(planned):
    eps = planned[0][:1]
    with pytest.raises(DataError, match="n_grid must be >= 4"):
        check_grid([2, 10])
    with pytest.raises(DataError, match="whole numbers"):
        check_grid(["ten"])
    with pytest.raises(DataError, match="whole percentage"):
        target_label(1.2)
    with pytest.raises(DataError, match="n_sim must be at least 100"):
        power_curves(eps, n_grid=[6], n_sim=10)
    p, m, reads = _tables()
    with pytest.raises(DataError, match="unknown endpoint kind"):
        plan_endpoints(p, m, reads, kinds=["group", "anova"])
    with pytest.raises(DataError, match="no r2star_s"):
        plan_endpoints(p, m, reads, measures=["r2star_s"])
    with pytest.raises(DataError, match="no shoe_size to correlate with"):
        plan_endpoints(p, m, reads, kinds=["corr"], variables=["dpr", "shoe_size"])
    with pytest.raises(DataError, match="need the visual reads"):
        plan_endpoints(p, m, None, kinds=["auc"])
    with pytest.raises(DataError, match="at least 4 patients with every limb pair"):
        plan_endpoints(p, m[~((m["participant_id"] > "sub-ALS03") & (m["area"] == "hand"))], reads,
                       kinds=["limb"])


def test_patients_left_out_of_the_per_limb_model_are_said():
    p, m, reads = _tables()
    drop = (m["participant_id"] == "sub-ALS02") & (m["area"] == "leg") & (m["hemisphere"] == "L")
    ep = plan_endpoints(p, m[~drop], reads, kinds=["limb"], measures=["thickness_mm"], n_boot=50)[0]
    assert ep.n_pilot == "15 ALS with all 6 limb pairs (1 with a missing pair left out)"


def test_the_reading_table_shows_each_size_as_the_table_holds_it(planned):
    """result_tables.power_table: integers as the table's n, '≤ n_min' at the grid's
    smallest size, '> n_max' where not reached, 'none' where the interval holds no effect."""
    from m1lib import result_tables

    _, _, table = planned
    shown = result_tables.power_table(table, [0.8])
    assert len(shown) == len(table) and "PosixPath" not in shown.to_string()
    for (_, r), (_, s) in zip(table.iterrows(), shown.iterrows()):
        n = r["n_80"]
        want = (f"> {r['n_max']}" if n != n else f"≤ {int(n)}" if n <= r["n_min"] else f"{int(n)}")
        assert s["n, 80 % power"] == want
        pess = s["n, 80 %: optimistic–pessimistic"].split(" – ")[1]
        if r["n_80_pessimistic"] != r["n_80_pessimistic"]:
            assert pess == ("none" if r["null_in_ci"] else f"> {r['n_max']}")
