"""Tests of m1lib.analyses and m1lib.results on a synthetic cohort built here.

The cohort has the paper's design (22 ALS and 14 HS enrolled, 4 + 1 excluded) and
the paper's visual-reading counts, so the reader table and kappa must come out as
printed; everything else is checked against computations written out in the test
with SciPy directly (not through m1lib).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from m1lib import analyses, results
from m1lib.errors import DataError

N_BOOT = 500
CONTRA = {  # written out here, independently of m1lib.contract.limb_umn
    ("L", "hand"): "umn_arm_right", ("R", "hand"): "umn_arm_left",
    ("L", "leg"): "umn_leg_right", ("R", "leg"): "umn_leg_left",
    ("L", "foot"): "umn_leg_right", ("R", "foot"): "umn_leg_left",
}


def make_dataset(seed: int = 1, r2star: bool = True):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(22):
        excluded = i >= 18
        rows.append(dict(
            participant_id=f"sub-ALS{i + 1:02d}", group="ALS", age=int(rng.integers(45, 78)),
            sex="F" if i < 5 else "M", excluded=excluded,
            exclusion_reason="motion artifacts" if excluded else "n/a",
            alsfrs_r=float(rng.integers(30, 47)), disease_duration_months=float(rng.integers(4, 40)),
            mrc=float(rng.integers(95, 131)), umn_bulbar=float(rng.integers(0, 2)),
            umn_arm_left=float(rng.integers(0, 9)), umn_arm_right=float(rng.integers(0, 9)),
            umn_leg_left=float(rng.integers(0, 9)), umn_leg_right=float(rng.integers(0, 9)),
            cmct_ms=rng.normal(9, 1.5), cortical_latency_ms=rng.normal(21, 2),
            cortical_silent_period_ms=rng.normal(140, 20), frap=rng.normal(0.9, 0.1),
            aopp=rng.normal(110, 20), thiols=rng.normal(300, 30)))
    for i in range(14):
        excluded = i == 13
        rows.append(dict(
            participant_id=f"sub-HS{i + 1:02d}", group="HS", age=int(rng.integers(40, 75)),
            sex="F" if i < 8 else "M", excluded=excluded,
            exclusion_reason="motion artifacts" if excluded else "n/a"))
    participants = pd.DataFrame(rows)
    # Reads with the paper's counts among the analysed: reader 1 calls ALS in 12/18
    # patients and 3/13 controls, reader 2 in 9/18 and 0/13, every reader-2 positive
    # also a reader-1 positive (25 of 31 agree, kappa 48/79).
    reads = []
    for i, pid in enumerate(participants["participant_id"]):
        if pid.startswith("sub-ALS"):
            c1, c2 = (i < 12 or i >= 18), i < 9
        else:
            j = i - 22
            c1, c2 = j < 3, False
        reads.append(dict(participant_id=pid, reader="reader1", call="ALS" if c1 else "normal"))
        reads.append(dict(participant_id=pid, reader="reader2", call="ALS" if c2 else "normal"))
    reads = pd.DataFrame(reads)
    # Measurements: deep-layer thickness thinner with more limb UMN signs, intensity
    # darker with faster progression; the excluded participants have wild values.
    p = participants.set_index("participant_id")
    meas = []
    for pid, row in p.iterrows():
        dpr = (48 - row["alsfrs_r"]) / row["disease_duration_months"] if row["group"] == "ALS" else 0
        for hemi in ("L", "R"):
            for area in ("foot", "leg", "hand", "face"):
                umn = 0.0
                if row["group"] == "ALS":
                    umn = row["umn_bulbar"] * 4 if area == "face" else row[CONTRA[(hemi, area)]]
                th = 2.0 - 0.07 * umn + rng.normal(0, 0.12)
                it = 1.0 - 0.08 * dpr - 0.004 * umn + rng.normal(0, 0.03)
                rec = dict(participant_id=pid, hemisphere=hemi, area=area,
                           thickness_mm=th, intensity=it, roi_area_mm2=4.0)
                if r2star:
                    rec["r2star_s"] = 40 + 1.5 * umn + rng.normal(0, 3)
                if row["excluded"]:
                    rec["thickness_mm"], rec["intensity"] = 99.0, -99.0
                meas.append(rec)
    return participants, reads, pd.DataFrame(meas)


@pytest.fixture(scope="module")
def data():
    return make_dataset()


@pytest.fixture(scope="module")
def result(data):
    return analyses.run_all(*data, n_boot=N_BOOT, seed=123)


def _analysed_means(data):
    participants, _, meas = data
    keep = participants.loc[~participants["excluded"], ["participant_id", "group"]]
    means = meas.groupby("participant_id")[["thickness_mm", "intensity", "r2star_s"]].mean()
    return keep.merge(means.reset_index(), on="participant_id")


# --------------------------------------------------------------------------- run_all
def test_run_all_returns_every_table_and_key(result):
    assert list(result.tables) == list(analyses.TABLE_NAMES)
    for name, table in result.tables.items():
        assert isinstance(table, pd.DataFrame) and len(table), name
    reg = result.registry
    for key in ["cohort.n_als", "visual_reading.reader1.sensitivity", "agreement.reader1_vs_reader2.kappa",
                "group.als_vs_hs.thickness_mm.p_value", "corr.intensity.dpr.rho",
                "corr.thickness_mm.umn_limb.p_value", "corr.thickness_mm.umn_limb.cluster_p_value",
                "dpr_subgroups.intensity.p_value", "roc.als_vs_hs.r2star_s.auc", "roc.als_vs_hs.reader2.auc",
                "roc.als_vs_hs.thickness_mm.vs_reader1.p_value", "correct_vs_missed.reader1.umn_total.p_value",
                "corr.thickness_mm.thiols.q_value", "settings.seed"]:
        assert key in reg, key
    assert result.params == dict(alpha=0.05, n_boot=N_BOOT, seed=123, ci_method="wilson",
                                 patient_group="ALS", comparison_groups=["HS"])


def test_run_all_is_deterministic(data, result):
    again = analyses.run_all(*data, n_boot=N_BOOT, seed=123)
    for name in analyses.TABLE_NAMES:
        a = result.tables[name].to_csv(index=False).encode()
        b = again.tables[name].to_csv(index=False).encode()
        assert a == b, name
    assert results.registry_to_json(result.registry) == results.registry_to_json(again.registry)
    other = analyses.run_all(*data, n_boot=N_BOOT, seed=124)
    assert other.registry["corr.intensity.dpr.ci_low"] != result.registry["corr.intensity.dpr.ci_low"]
    assert other.registry["corr.intensity.dpr.rho"] == result.registry["corr.intensity.dpr.rho"]


def test_every_key_is_catalogued_and_docs_are_current(result):
    assert results.undocumented_keys(result.registry) == []
    used = {results.catalogue_entry(k).pattern for k in result.registry}
    unused = [e.pattern for e in results.CATALOGUE if e.pattern not in used]
    # not exercised here: Fleiss' kappa (three or more readers, test_readers), the
    # measurement checks against a phantom's truth (test_measurement_checks) and power.*,
    # notebook 08's (tests/test_power.py), and cohort.n_unmeasured, the runner's (tests/test_report.py)
    assert all(p.startswith(("measurement.", "qc.", "agreement.fleiss", "power.", "cohort.n_unmeasured"))
               for p in unused), unused
    doc = Path(__file__).resolve().parents[1] / "docs" / "results.md"
    assert doc.read_text() == results.catalogue_markdown(), \
        "docs/results.md is stale: python -m m1lib.results > docs/results.md"


def test_registry_json_round_trip(result):
    text = results.registry_to_json(result.registry)
    back = results.registry_from_json(text)
    assert list(back) == sorted(result.registry)
    for k, v in result.registry.items():
        assert (np.isnan(v) and np.isnan(back[k])) or back[k] == v, k
    assert "NaN" not in text and text.endswith("\n")


# -------------------------------------------------------------------- cohort/reading
def test_cohort(result):
    reg = result.registry
    assert (reg["cohort.n_als"], reg["cohort.n_hs"]) == (18, 13)
    assert (reg["cohort.n_als_enrolled"], reg["cohort.n_hs_enrolled"]) == (22, 14)
    assert (reg["cohort.n_als_excluded"], reg["cohort.n_hs_excluded"]) == (4, 1)
    assert (reg["cohort.enrolled.als.n_female"], reg["cohort.enrolled.hs.n_female"]) == (5, 8)
    t = result.tables["cohort"]
    reasons = t.query("variable == 'exclusion_reason' and group == 'ALS'")
    assert reasons[["level", "count"]].values.tolist() == [["motion artifacts", 4]]


def test_paper_reader_table_and_kappa(result):
    reg = result.registry
    pct = lambda r: [results.round_half_up(100 * reg[f"visual_reading.{r}.{s}"]) for s in
                     ("sensitivity", "specificity", "ppv", "npv", "accuracy")]
    assert pct("reader1") == [67, 77, 80, 63, 71]
    assert pct("reader2") == [50, 100, 100, 59, 71]
    assert [reg[f"visual_reading.reader1.{s}"] for s in ("tp", "fp", "tn", "fn")] == [12, 3, 10, 6]
    assert reg["agreement.reader1_vs_reader2.kappa"] == pytest.approx(48 / 79, rel=1e-14)
    assert results.round_half_up(reg["agreement.reader1_vs_reader2.kappa"], 2) == 0.61
    assert reg["agreement.reader1_vs_reader2.n_agree"] == 25
    assert reg["visual_reading.reader1.sensitivity_ci_low"] == pytest.approx(0.437494672959451, rel=1e-12)


def test_clopper_pearson_on_request(data):
    participants, reads, _ = data
    t = analyses.visual_reading(participants, reads, ci_method="clopper-pearson")
    row = t.query("reader == 'reader1' and statistic == 'sensitivity'").iloc[0]
    assert row.ci_method == "clopper-pearson"
    lo, hi = st.beta.ppf(0.025, 12, 7), st.beta.ppf(0.975, 13, 6)
    assert (row.ci_low, row.ci_high) == pytest.approx((lo, hi), rel=1e-10)


def test_correct_vs_missed(data, result):
    participants, reads, _ = data
    t = result.tables["correct_vs_missed"].set_index(["reader", "variable"])
    p = participants[~participants["excluded"] & (participants["group"] == "ALS")].copy()
    umn = p[["umn_bulbar", "umn_arm_left", "umn_arm_right", "umn_leg_left", "umn_leg_right"]].sum(axis=1)
    called = reads.query("reader == 'reader1'").set_index("participant_id")["call"].reindex(p["participant_id"])
    correct = umn[(called == "ALS").to_numpy()]
    missed = umn[(called != "ALS").to_numpy()]
    row = t.loc[("reader1", "umn_total")]
    assert (row.n_x, row.n_y, row.group_x) == (12, 6, "correct")
    method = "exact" if len(set(umn)) == len(umn) else "asymptotic"
    assert row.method == method
    assert row.p_value == pytest.approx(st.mannwhitneyu(correct, missed, method=method).pvalue, rel=1e-12)
    assert row.mean_x == pytest.approx(correct.mean())


def test_correct_vs_missed_when_a_reader_misses_nobody(data):
    participants, reads, _ = data
    reads = reads.copy()
    is_als = reads["participant_id"].str.startswith("sub-ALS")
    reads.loc[is_als & (reads["reader"] == "reader2"), "call"] = "ALS"
    t = analyses.correct_vs_missed(participants, reads).set_index(["reader", "variable"])
    row = t.loc[("reader2", "dpr")]
    assert row.n_y == 0 and np.isnan(row.p_value) and row.method.startswith("not computed")


# ---------------------------------------------------------------------- quantitative
def test_group_comparison_uses_subject_means_of_analysed(data, result):
    m = _analysed_means(data)
    t = result.tables["group_comparison"].set_index("variable")
    assert list(t.index) == ["thickness_mm", "intensity", "r2star_s"]
    for var in t.index:
        x = m.loc[m.group == "ALS", var]
        y = m.loc[m.group == "HS", var]
        row = t.loc[var]
        assert (row.n_x, row.n_y, row.method) == (18, 13, "exact")
        assert row.U == st.mannwhitneyu(x, y).statistic
        assert row.p_value == pytest.approx(st.mannwhitneyu(x, y, method="exact").pvalue, rel=1e-12)
        assert row.median_x == pytest.approx(np.median(x))
    assert result.registry["group.als_vs_hs.thickness_mm.p_value"] < 0.01
    assert result.registry["group.als_vs_hs.thickness_mm.p_exact"] == 1


def test_subject_level_correlations_and_bh(data, result):
    participants, _, _ = data
    m = _analysed_means(data).merge(participants, on=["participant_id", "group"])
    als = m[m.group == "ALS"]
    dpr = (48 - als.alsfrs_r) / als.disease_duration_months
    t = result.tables["correlations"]
    row = t.query("measure == 'intensity' and variable == 'dpr'").iloc[0]
    ref = st.spearmanr(als.intensity, dpr)
    assert row.rho == pytest.approx(ref.statistic, rel=1e-12)
    assert row.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert row.n == 18 and row.ci_low < row.rho < row.ci_high
    assert list(t.query("measure == 'thickness_mm'").variable) == list(analyses.CLINICAL_VARIABLES)
    fam = t[t.family == "thickness_mm"]
    p = fam.p_value.to_numpy()
    order = np.argsort(p)
    bh = np.minimum.accumulate((p[order] * len(p) / np.arange(1, len(p) + 1))[::-1])[::-1]
    q = np.empty_like(p)
    q[order] = np.minimum(bh, 1)
    np.testing.assert_allclose(fam.q_value, q, rtol=1e-12)


def test_optional_variables_only_when_present(data):
    participants, reads, meas = data
    res = analyses.run_all(participants.drop(columns=["frap", "aopp", "thiols"]), reads,
                           meas.drop(columns=["r2star_s"]), n_boot=200, seed=1)
    assert not any(".frap." in k or "r2star" in k for k in res.registry)
    assert "r2star_s" not in set(res.tables["group_comparison"]["variable"])


def test_limb_correlation_pools_six_limbs_per_patient(data, result):
    participants, _, meas = data
    p = participants[~participants["excluded"] & (participants["group"] == "ALS")].set_index("participant_id")
    limb = meas[meas.participant_id.isin(p.index) & meas.area.isin(["hand", "leg", "foot"])]
    umn = [p.loc[r.participant_id, CONTRA[(r.hemisphere, r.area)]] for r in limb.itertuples()]
    row = result.tables["limb_correlations"].set_index("measure").loc["thickness_mm"]
    ref = st.spearmanr(limb.thickness_mm, umn)
    assert (row.n, row.n_patients) == (108, 18)
    assert row.rho == pytest.approx(ref.statistic, rel=1e-12)
    assert row.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert row.cluster_ci_low < row.rho < row.cluster_ci_high
    assert row.cluster_p_value >= 1 / (N_BOOT + 1)
    assert row.n_perm == N_BOOT and row.cluster_ci_method == "cluster bootstrap BCa"


def test_limb_correlation_tolerates_a_missing_area(data):
    participants, reads, meas = data
    meas = meas.copy()
    drop = (meas.participant_id == "sub-ALS01") & (meas.hemisphere == "L") & (meas.area == "hand")
    meas.loc[drop, "thickness_mm"] = np.nan
    t = analyses.limb_correlations(participants, meas, n_boot=200, seed=1).set_index("measure")
    assert t.loc["thickness_mm", "n"] == 107 and t.loc["intensity", "n"] == 108
    assert np.isfinite(t.loc["thickness_mm", "cluster_p_value"])


def test_dpr_subgroups_split_at_median():
    # Five patients: DPR 0.1, 0.2, 0.3 (the median), 0.4, 0.5 -> faster 2, slower 3.
    ids = [f"sub-A{i}" for i in range(5)] + ["sub-H1", "sub-H2"]
    participants = pd.DataFrame(dict(
        participant_id=ids, group=["ALS"] * 5 + ["HS"] * 2, excluded=False,
        alsfrs_r=[47, 46, 45, 44, 43, np.nan, np.nan],
        disease_duration_months=[10.0] * 5 + [np.nan] * 2))
    meas = pd.DataFrame(dict(participant_id=ids, hemisphere="L", area="hand",
                             thickness_mm=[2.0, 1.9, 1.8, 1.7, 1.6, 2.0, 2.1],
                             intensity=[1.0, 0.9, 0.95, 0.8, 0.85, 1.0, 1.0]))
    t = analyses.dpr_subgroups(participants, meas).set_index("variable")
    row = t.loc["thickness_mm"]
    assert row.dpr_median == pytest.approx(0.3)
    assert (row.n_x, row.n_y, row.group_x, row.group_y) == (2, 3, "faster", "slower")
    assert row.mean_x == pytest.approx(1.65) and row.mean_y == pytest.approx(1.9)
    assert row.p_value == pytest.approx(st.mannwhitneyu([1.7, 1.6], [2.0, 1.9, 1.8], method="exact").pvalue)


def test_roc_table(data, result):
    t = result.tables["roc"].set_index("predictor")
    reg = result.registry
    # a reader's AUC is the balanced accuracy: (12/18 + 10/13) / 2
    assert t.loc["reader1", "auc"] == pytest.approx((12 / 18 + 10 / 13) / 2, rel=1e-12)
    assert t.loc["reader1", "accuracy"] == pytest.approx(22 / 31)
    m = _analysed_means(data)
    x, y = m.loc[m.group == "ALS", "thickness_mm"], m.loc[m.group == "HS", "thickness_mm"]
    u = st.mannwhitneyu(y, x).statistic  # controls above cases: AUC for "lower in ALS"
    assert t.loc["thickness_mm", "auc"] == pytest.approx(u / (len(x) * len(y)), rel=1e-12)
    assert t.loc["thickness_mm", "direction"] == "lower" and t.loc["r2star_s", "direction"] == "higher"
    assert np.isnan(t.loc["reader1", "p_value_vs_reader2"])
    assert 0 <= reg["roc.als_vs_hs.thickness_mm.vs_reader2.p_value"] <= 1
    assert reg["roc.als_vs_hs.thickness_mm.auc_ci_low"] <= reg["roc.als_vs_hs.thickness_mm.auc"] <= reg["roc.als_vs_hs.thickness_mm.auc_ci_high"]


# ---------------------------------------------------------------------- boundaries
def test_excluded_participants_are_ignored(data, result):
    participants, reads, meas = data
    meas = meas.copy()
    meas.loc[meas.participant_id == "sub-ALS20", "thickness_mm"] = -5.0
    reads = reads.copy()
    reads.loc[reads.participant_id == "sub-HS14", "call"] = "ALS"
    again = analyses.run_all(participants, reads, meas, n_boot=N_BOOT, seed=123)
    assert again.registry == result.registry


def test_subject_means_and_string_excluded_flags(data):
    participants, reads, meas = data
    sm = analyses.subject_means(meas)
    assert len(sm) == 36 and list(sm.columns[:3]) == ["participant_id", "thickness_mm", "intensity"]
    one = meas[meas.participant_id == "sub-HS01"]
    assert sm.set_index("participant_id").loc["sub-HS01", "intensity"] == pytest.approx(one.intensity.mean())
    text = participants.assign(excluded=participants["excluded"].map({True: "true", False: "false"}))
    t = analyses.cohort_table(text)
    assert t.query("subset == 'analysed' and variable == 'n'")["count"].tolist() == [18, 13]


def test_user_data_problems_raise_data_error(data):
    participants, reads, meas = data
    few_hs = participants.assign(excluded=participants["excluded"] | (participants["participant_id"] != "sub-HS01")
                                 & participants["group"].eq("HS"))
    row = analyses.group_comparison(few_hs, meas).iloc[0]
    assert np.isnan(row.p_value) and row.method == "not computed: fewer than 2 values in HS (n = 1)"
    with pytest.raises(DataError, match="did not read"):
        analyses.visual_reading(participants, reads[reads.participant_id != "sub-ALS03"])
    with pytest.raises(DataError, match="call must be"):
        analyses.visual_reading(participants, reads.replace({"call": {"normal": "no"}}))
    with pytest.raises(DataError, match="repeat"):
        analyses.subject_means(pd.concat([meas, meas.iloc[:1]]))
    with pytest.raises(DataError, match="lacks column"):
        analyses.cohort_table(participants.drop(columns=["group"]))
    with pytest.raises(DataError, match="excluded"):
        analyses.cohort_table(participants.assign(excluded="maybe"))
    with pytest.raises(DataError, match="thickness_mm is not a number"):
        analyses.subject_means(meas.astype({"thickness_mm": object}).replace({"thickness_mm": {meas.thickness_mm.iloc[0]: "thin"}}))
    with pytest.raises(DataError, match="alsfrs_r is not a number"):
        analyses.cohort_table(participants.astype({"alsfrs_r": object}).replace({"alsfrs_r": {participants.alsfrs_r.iloc[0]: "x"}}))
    text = analyses.subject_means(meas.astype({"thickness_mm": str}))
    np.testing.assert_allclose(text["thickness_mm"], analyses.subject_means(meas)["thickness_mm"], rtol=1e-12)
    with pytest.raises(DataError, match="not in participants"):
        analyses.group_comparison(participants, meas.replace({"participant_id": {"sub-HS02": "sub-XX"}}))


# --------------------------------------------------------------------------- results
def test_registry_helpers():
    reg = results.add_record({}, "visual_reading.reader1", {"sensitivity": 2 / 3, "tp": np.int64(12)})
    text = results.registry_to_json({**reg, "a.b": float("nan")})
    assert '"a.b": null' in text and '"visual_reading.reader1.tp": 12' in text
    assert '"visual_reading.reader1.sensitivity": 0.6666666666666666' in text
    with pytest.raises(ValueError):
        results.validate_registry({"Bad Key": 1.0})
    with pytest.raises(ValueError):
        results.validate_registry({"a.b": "x"})
    with pytest.raises(ValueError):
        results.add_record(reg, "visual_reading.reader1", {"tp": 1})
    assert results.key_part("Reader-2") == "reader_2"
    assert results.format_percent(10 / 16) == "63%" and results.format_percent(9 / 22) == "41%"
    assert io.StringIO(results.catalogue_markdown()).readline().startswith("# Results registry")


def test_measurement_checks_against_known_errors():
    key = dict(participant_id=["sub-a", "sub-a", "sub-b", "sub-b"], hemisphere=["L", "R", "L", "R"],
               area=["hand"] * 4)
    truth = pd.DataFrame(dict(key, thickness_mm=[1.5, 2.0, 1.8, 1.6], intensity=0.8, r2star_s=40.0))
    meas = pd.DataFrame(dict(key, thickness_mm=[1.75, 2.0, 1.8, 1.6], profile_thickness_mm=[1.6, 1.9, np.nan, 1.6],
                             intensity=[0.8, 0.816, 0.8, 0.8], r2star_s=[40.0, 40.0, 44.0, 40.0],
                             qc_ghost_ratio=[1.1, 1.2, 2.7, 2.7], qc_sharpness_ratio=[2.0, 2.0, 0.9, 0.9],
                             qc_sharpness_relative=[1.0, 1.0, 0.45, 0.45],
                             qc_motion=[False, False, True, True]))
    tp = pd.DataFrame({"participant_id": ["sub-a", "sub-b"], "motion": [False, True]})
    acc = analyses.measurement_accuracy(meas, truth, tp).set_index(["quantity", "subset"])
    prof = acc.loc[("profile_thickness_mm", "included")]
    assert prof["n"] == 2 and prof["mae"] == pytest.approx(0.1) and prof["bias"] == pytest.approx(0.0)
    assert acc.loc[("profile_thickness_mm", "motion"), "n_failed"] == 1
    assert acc.loc[("intensity", "included"), "max_abs"] == pytest.approx(0.02)
    assert acc.loc[("r2star_s", "motion"), "bias"] == pytest.approx(0.05)
    assert acc.loc[("thickness_mm", "included"), "within_tolerance"] == 1.0
    parts = pd.DataFrame({"participant_id": ["sub-a", "sub-b"], "group": ["HS", "ALS"], "excluded": [False, True]})
    qc = analyses.motion_qc(parts, meas, tp)
    reg = analyses.measurement_registry(acc.reset_index(), qc)
    assert reg["qc.n_flagged"] == 1 and reg["qc.flag_matches_exclusion"] == 1.0 and reg["qc.flag_matches_truth"] == 1.0
    assert reg["measurement.profile_thickness_mm.mae"] == pytest.approx(0.1)
    assert results.undocumented_keys(reg) == []



def test_slice_thicknesses_are_checked_against_the_in_plane_truth_when_there_is_one():
    # the folded replica's layer crosses the slab obliquely: 3-D 1.5 mm, 1.8 mm in the slice
    key = dict(participant_id=["sub-a", "sub-a"], hemisphere=["L", "R"], area=["hand"] * 2)
    truth = pd.DataFrame(dict(key, thickness_mm=[1.5, 1.5], thickness_plane_mm=[1.8, 1.6], intensity=0.8,
                              r2star_s=40.0))
    meas = pd.DataFrame(dict(key, thickness_mm=[1.8, 1.7], profile_thickness_mm=[1.85, 1.6], intensity=0.8,
                             r2star_s=40.0))
    err = analyses.measurement_errors(meas, truth).set_index(["quantity", "hemisphere"])["error"]
    assert err[("profile_thickness_mm", "L")] == pytest.approx(0.05)
    assert err[("thickness_mm", "R")] == pytest.approx(0.1)
    flat = analyses.measurement_errors(meas, truth.drop(columns="thickness_plane_mm"))
    assert flat.set_index(["quantity", "hemisphere"])["error"][("profile_thickness_mm", "L")] == pytest.approx(0.35)


# --------------------------------------------------------------- any readers, any groups
def _three_readers():
    """Nine subjects read by readers labelled by initials, as clinical sites label them."""
    ids = [f"sub-{g}{i}" for g, n in (("A", 5), ("H", 4)) for i in range(n)]
    p = pd.DataFrame({"participant_id": ids, "group": ["ALS"] * 5 + ["HS"] * 4, "excluded": False})
    calls = {"JD": "AAANN" + "NNNA", "MK": "AANNN" + "NNNN", "Dr. Lee": "AAAAN" + "NNAA"}
    reads = pd.DataFrame([(pid, rd, "ALS" if c[i] == "A" else "normal")
                          for rd, c in calls.items() for i, pid in enumerate(ids)],
                         columns=["participant_id", "reader", "call"])
    return p, reads, calls


def test_any_readers_by_their_own_labels_with_fleiss_kappa():
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    p, reads, calls = _three_readers()
    tables = {"visual_reading": analyses.visual_reading(p, reads),
              "reader_agreement": analyses.reader_agreement(reads, p),
              "fleiss_agreement": analyses.fleiss_agreement(reads, p),
              "correct_vs_missed": analyses.correct_vs_missed(p, reads)}
    reg = analyses.registry_from_tables(tables)
    # hand counts: JD calls A,A,A of 5 patients and 1 of 4 controls ALS
    assert [reg[f"visual_reading.jd.{s}"] for s in ("tp", "fn", "fp", "tn")] == [3, 2, 1, 3]
    assert [reg[f"visual_reading.dr_lee.{s}"] for s in ("tp", "fn", "fp", "tn")] == [4, 1, 2, 2]
    assert reg["agreement.n_readers"] == 3
    assert sorted(k.split(".")[1] for k in reg if k.endswith(".kappa") and "_vs_" in k) == \
        ["dr_lee_vs_jd", "dr_lee_vs_mk", "jd_vs_mk"]
    # JD vs MK by hand: they agree on 7 of 9 (JD alone calls sub-A2 and sub-H3 ALS);
    # JD calls 4 ALS, MK 2: po = 7/9, pe = (4*2 + 5*7)/81, kappa = 20/38
    po, pe = 7 / 9, (4 * 2 + 5 * 7) / 81
    assert reg["agreement.jd_vs_mk.kappa"] == pytest.approx((po - pe) / (1 - pe), rel=1e-12) == 20 / 38
    table = np.array([[1 if c[i] == "A" else 0 for c in calls.values()] for i in range(9)])
    ref = fleiss_kappa(aggregate_raters(table)[0], method="fleiss")
    assert reg["agreement.fleiss.kappa"] == pytest.approx(ref, rel=1e-12)
    assert reg["agreement.fleiss.n_readers"] == 3 and results.undocumented_keys(reg) == []
    assert "correct_vs_missed.dr_lee.umn_total.p_value" in reg


def test_a_single_reader_is_not_computable_agreement_not_a_crash():
    p, reads, _ = _three_readers()
    one = reads[reads.reader == "MK"]
    assert analyses.reader_agreement(one, p).empty
    assert analyses.fleiss_agreement(one, p)["method"].iloc[0].startswith("not computed")
    reg = analyses.registry_from_tables({"visual_reading": analyses.visual_reading(p, one),
                                         "reader_agreement": analyses.reader_agreement(one, p),
                                         "fleiss_agreement": analyses.fleiss_agreement(one, p)})
    assert reg["agreement.n_readers"] == 1 and not any(k.endswith("kappa") for k in reg)


def test_mimics_are_a_comparison_group_like_any_other(data):
    participants, reads, meas = data
    p = participants.copy()
    hs = p.index[p.group == "HS"]
    p.loc[hs[:7], "group"] = "mimic"       # 7 enrolled mimics (all analysed), 7 HS (1 excluded)
    res = analyses.run_all(p, reads, meas, n_boot=200, seed=1, comparison=("mimic", "HS"))
    reg = res.registry
    m = _analysed_means((p, reads, meas))
    for other, n_other in (("mimic", 7), ("HS", 6)):
        x = m.loc[m.group == "ALS", "thickness_mm"]
        y = m.loc[m.group == other, "thickness_mm"]
        k = f"group.als_vs_{other.lower()}.thickness_mm"
        assert reg[f"{k}.n_{other.lower()}"] == n_other
        assert reg[f"{k}.p_value"] == pytest.approx(st.mannwhitneyu(x, y, method="exact").pvalue, rel=1e-12)
        u = st.mannwhitneyu(y, x).statistic
        assert reg[f"roc.als_vs_{other.lower()}.thickness_mm.auc"] == pytest.approx(u / (len(x) * len(y)))
    assert reg["cohort.n_mimic"] == 7 and results.undocumented_keys(reg) == []
    # a named comparison group with nobody in it is "not computed", not an exception
    none = analyses.group_comparison(participants, meas, comparison=("PLS",))
    assert none["method"].str.startswith("not computed").all()
