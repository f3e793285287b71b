"""Words follow numbers: findings and sentences from reversed, null, mixed and partial registries.

The registries are built here by hand (numbers chosen to disagree with the paper), or
computed by m1lib.analyses from a cohort built here whose effect runs the other way;
the tests read the sentences.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from m1lib import analyses, findings, narrative, result_tables


@pytest.mark.parametrize("p, text", [(0.0004, "P < .001"), (0.024, "P = .024"), (0.0505, "P = .051"),
                                     (1.0, "P = 1"), (float("nan"), "P = n/a")])
def test_p_values_print_as_in_the_paper(p, text):
    assert narrative.p_text(p) == text


def test_percentages_round_half_up():
    assert narrative.pct(10 / 16) == "63%" and narrative.pct(2 / 3) == "67%"


def _group(reg, a, b, measure, *, med_a, med_b, p, n_a=18, n_b=13, shift=None):
    k = f"group.{a}_vs_{b}.{measure}"
    shift = med_a - med_b if shift is None else shift
    reg.update({f"{k}.n_{a}": n_a, f"{k}.n_{b}": n_b, f"{k}.median_{a}": med_a, f"{k}.median_{b}": med_b,
                f"{k}.p_value": p, f"{k}.hl_shift": shift, f"{k}.hl_ci_low": shift - 0.1,
                f"{k}.hl_ci_high": shift + 0.1, f"{k}.u": 10.0})
    return reg


def _corr(reg, measure, var, rho, p, n=18, cluster_p=None):
    k = f"corr.{measure}.{var}"
    reg.update({f"{k}.rho": rho, f"{k}.p_value": p, f"{k}.n": n, f"{k}.ci_low": rho - 0.2, f"{k}.ci_high": rho + 0.2})
    if cluster_p is not None:
        reg.update({f"{k}.cluster_p_value": cluster_p, f"{k}.n_patients": n // 6,
                    f"{k}.cluster_ci_low": rho - 0.3, f"{k}.cluster_ci_high": rho + 0.3})
    return reg


def test_reversed_registry_says_the_opposite_of_the_paper():
    reg = {"settings.alpha": 0.05}
    _group(reg, "als", "hs", "thickness_mm", med_a=2.3, med_b=2.0, p=0.002)
    _corr(reg, "thickness_mm", "dpr", 0.52, 0.01)
    _corr(reg, "intensity", "alsfrs_r", -0.61, 0.004)
    f = findings.findings(reg, labels={"als": "ALS", "hs": "HS"}).set_index("key")
    assert f.loc["group.als_vs_hs.thickness_mm", "direction"] == "higher"
    assert bool(f.loc["group.als_vs_hs.thickness_mm", "significant"])
    s = narrative.sentences(reg, labels={"als": "ALS", "hs": "HS"})
    assert "Deep-layer thickness was higher in ALS than in HS" in s["group"]
    assert "lower" not in s["group"]
    assert "Deep-layer thickness correlated positively with DPR (ρ = 0.52" in s["correlations"]
    assert "Deep-layer signal intensity correlated negatively with ALSFRS-R (ρ = −0.61" in s["correlations"]


def test_null_registry_asserts_no_direction():
    reg = {"settings.alpha": 0.05}
    _group(reg, "als", "hs", "thickness_mm", med_a=1.9, med_b=2.0, p=0.40)
    _corr(reg, "thickness_mm", "dpr", -0.45, 0.060)     # the paper's own non-significant r
    s = narrative.sentences(reg)
    assert "did not differ significantly between als and hs" in s["group"]
    assert "was lower" not in s["group"] and "was higher" not in s["group"]
    assert "did not correlate significantly with DPR (ρ = −0.45" in s["correlations"]
    assert "P = .060" in s["correlations"] and "correlated negatively" not in s["correlations"]


def test_alpha_is_the_runs_not_a_constant():
    reg = {"settings.alpha": 0.01}
    _group(reg, "als", "hs", "thickness_mm", med_a=1.5, med_b=2.0, p=0.03)
    assert "did not differ significantly" in narrative.sentences(reg)["group"]
    reg["settings.alpha"] = 0.05
    assert "was lower in als than in hs" in narrative.sentences(reg)["group"]


def test_mixed_registry_pooled_significant_but_not_clustered():
    reg = {"settings.alpha": 0.05}
    _corr(reg, "thickness_mm", "umn_limb", -0.40, 0.0004, n=108, cluster_p=0.21)
    _corr(reg, "intensity", "umn_limb", -0.35, 0.001, n=108, cluster_p=0.004)
    _corr(reg, "intensity", "dpr", 0.05, 0.8)
    f = findings.findings(reg).set_index("key")
    t = f.loc["corr.thickness_mm.umn_limb"]
    assert bool(t.significant) and not bool(t.cluster_significant) and t.n_a == 18
    text = narrative.sentences(reg)["correlations"]
    assert ("Deep-layer thickness correlated negatively with the limb UMN score when limbs are treated as "
            "independent") in text
    assert "but not significantly when the limbs of each patient are treated as clustered" in text
    assert "Deep-layer signal intensity correlated negatively with the limb UMN score (ρ = −0.35" in text
    assert "also when the limbs of each patient are treated as clustered" in text
    assert "did not correlate significantly with DPR" in text


def test_not_computable_results_say_why():
    reg = {"settings.alpha": 0.05}
    _group(reg, "als", "mimic", "thickness_mm", med_a=1.5, med_b=float("nan"), p=float("nan"), n_b=1,
           shift=float("nan"))
    reg.update({"corr.thickness_mm.dpr.rho": float("nan"), "corr.thickness_mm.dpr.p_value": float("nan"),
                "corr.thickness_mm.dpr.n": 2.0, "agreement.n_readers": 1})
    f = findings.findings(reg, labels={"als": "ALS", "mimic": "mimic"}).set_index("key")
    assert f.loc["group.als_vs_mimic.thickness_mm", "status"] == "not computable"
    assert f.loc["group.als_vs_mimic.thickness_mm", "reason"] == "fewer than 2 values in mimic (n = 1)"
    assert f.loc["corr.thickness_mm.dpr", "reason"] == "fewer than 3 complete pairs (n = 2)"
    s = narrative.sentences(reg, labels={"als": "ALS", "mimic": "mimic"})
    assert "could not be compared between ALS and mimic: fewer than 2 values in mimic (n = 1)" in s["group"]
    assert "correlation not computable (fewer than 3 complete pairs (n = 2))" in s["correlations"]


def _reads_from_counts():
    """31 subjects with the paper's reader counts (12/18 and 3/13; 9/18 and 0/13)."""
    rows, parts = [], []
    for i in range(18):
        pid = f"sub-ALS{i:02d}"
        parts.append((pid, "ALS"))
        rows += [(pid, "reader1", "ALS" if i < 12 else "normal"), (pid, "reader2", "ALS" if i < 9 else "normal")]
    for i in range(13):
        pid = f"sub-HS{i:02d}"
        parts.append((pid, "HS"))
        rows += [(pid, "reader1", "ALS" if i < 3 else "normal"), (pid, "reader2", "normal")]
    p = pd.DataFrame(parts, columns=["participant_id", "group"]).assign(excluded=False)
    return p, pd.DataFrame(rows, columns=["participant_id", "reader", "call"])


def test_reader_table_reproduces_the_paper_from_its_counts():
    p, r = _reads_from_counts()
    t = narrative.reader_table(analyses.visual_reading(p, r), analyses.reader_agreement(r, p)).set_index("reader")
    cols = ["sensitivity", "specificity", "PPV", "NPV", "accuracy"]
    assert t.loc["reader1", cols].tolist() == ["67%", "77%", "80%", "63%", "71%"]
    assert t.loc["reader2", cols].tolist() == ["50%", "100%", "100%", "59%", "71%"]
    assert t.loc["reader1", "Cohen kappa"] == "0.61"
    assert t.loc["reader1", "positive patients"] == "12 of 18" and t.loc["reader2", "positive comparison"] == "0 of 13"


def test_sentences_fill_numbers_and_skip_absent_results():
    p, r = _reads_from_counts()
    reg = analyses.registry_from_tables({"visual_reading": analyses.visual_reading(p, r),
                                         "reader_agreement": analyses.reader_agreement(r, p)})
    s = narrative.sentences(reg)
    assert set(s) == {"visual_reading"}
    assert "reader1 called ALS in 12 of 18 patients and 3 of 13 comparison subjects" in s["visual_reading"]
    assert "sensitivity 67% (44%–84%)" in s["visual_reading"]
    assert "Cohen κ, reader1 vs reader2 = 0.61 (95% CI 0.35 to 0.87; n = 31)" in s["visual_reading"]


def test_sentences_from_an_analysis_whose_effect_runs_the_other_way():
    """run_all on a cohort where patients have the THICKER deep layer: the words follow."""
    rng = np.random.default_rng(5)
    ids = [f"sub-P{i:02d}" for i in range(10)] + [f"sub-C{i:02d}" for i in range(8)]
    p = pd.DataFrame({"participant_id": ids, "group": ["ALS"] * 10 + ["HS"] * 8, "excluded": False})
    thick = np.r_[rng.normal(2.4, 0.05, 10), rng.normal(2.0, 0.05, 8)]
    m = pd.DataFrame({"participant_id": ids, "hemisphere": "L", "area": "hand", "thickness_mm": thick,
                      "intensity": rng.normal(0.8, 0.02, 18)})
    t = analyses.group_comparison(p, m)
    reg = analyses.registry_from_tables({"group_comparison": t})
    text = narrative.sentences(reg, labels={"als": "ALS", "hs": "HS"})["group"]
    assert "Deep-layer thickness was higher in ALS than in HS" in text
    assert "P < .001" in text and "n = 10 and 8" in text


def test_index_has_banner_unmeasured_notice_captions_and_disagreements(tmp_path):
    (tmp_path / "figures").mkdir()
    for stem in ("roc_measures_vs_readers", "fig2_correlations", "fig1_measurement"):
        (tmp_path / "figures" / f"{stem}.png").write_bytes(b"png")
    pd.DataFrame({"result": ["Thickness ALS vs HS, P", "ALS enrolled"], "paper": ["0.001", "22"],
                  "this_run_display": [".40", "22"], "origin": ["emerges from measurement", "calibration target"],
                  "verdicts_agree": ["no", ""], "registry_key": ["k1", "k2"]}).to_csv(
        tmp_path / "paper_comparison.csv", index=False)
    prov = {"dataset_kind": "replica", "allow_unmeasured": True,
            "unmeasured": [{"participant_id": "sub-ALS07", "label": "L_hand", "reason": "point outside the image"}]}
    reg = {"cohort.n_als": 17, "cohort.n_als_enrolled": 22, "cohort.n_als_excluded": 4,
           "cohort.n_hs": 13, "cohort.n_hs_enrolled": 14, "cohort.n_hs_excluded": 1}
    page = narrative.write_index(tmp_path, reg, prov).read_text()
    assert page.index("SYNTHETIC DATA") < page.index("<h2>Results")
    assert "1 measurement(s) failed" in page and "sub-ALS07" in page and "point outside the image" in page
    assert page.index("fig1_measurement.png") < page.index("fig2_correlations.png") < page.index("roc_measures")
    assert "Fig 2. Thickness and intensity vs clinical scores" in page
    assert "<tr class='disagree'><td>Thickness ALS vs HS, P" in page
    assert "analysed: 17 als and 13 hs" in page and "18" not in page.split("<h2>Results")[1].split("<h2>")[0]
    assert "1 analysed participant could not be measured and is left out of every quantitative analysis" in page
    plain = narrative.write_index(tmp_path, reg, {"dataset_kind": "user", "unmeasured": []}).read_text()
    assert "SYNTHETIC" not in plain and "failed" not in plain


def test_display_tables_have_named_columns_and_apa_numbers():
    p, r = _reads_from_counts()
    t = result_tables.agreement_table(analyses.reader_agreement(r, p))
    assert t.columns.tolist() == ["readers", "statistic", "n", "agreement", "κ", "SE", "95% CI"]
    assert t.iloc[0]["κ"] == "0.61" and t.iloc[0]["95% CI"] == "0.35 to 0.87"
    row = pd.DataFrame([{"measure": "thickness_mm", "variable": "dpr", "n": 18, "rho": -0.451, "ci_low": -0.71,
                         "ci_high": -0.02, "p_value": 3.965283e-11, "q_value": 0.06, "method": "t", "conf_level": 0.95}])
    c = result_tables.correlation_table(row).iloc[0]
    assert (c["ρ"], c["P"], c["95% CI (BCa)"], c["q (BH)"]) == ("−0.45", "< .001", "−0.71 to −0.02", ".060")
    assert "PosixPath" not in result_tables.html(result_tables.correlation_table(row)).data
    assert json.dumps(result_tables.correlation_table(row).to_dict("records"), ensure_ascii=False)
