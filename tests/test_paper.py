"""The paper comparison: where each row comes from, and verdicts against a registry built to disagree."""
from __future__ import annotations

import yaml

from m1lib import paper


def test_every_row_has_an_origin_and_keys_follow_the_readers_labels():
    t = paper.paper_comparison({})
    assert set(t["origin"]) == set(paper.ORIGINS)
    assert "agreement.reader1_vs_reader2.kappa" in set(t["registry_key"])
    assert (t.loc[t["registry_key"].str.startswith("cohort."), "origin"] == "calibration target").all()
    assert t.set_index("registry_key").loc["group.als_vs_hs.thickness_mm.p_value", "origin"] == \
        "emerges from measurement"
    # on a user's dataset nothing was calibrated
    assert set(paper.paper_comparison({}, replica=False)["origin"]) == {"emerges from measurement"}


def test_verdicts_against_a_registry_built_to_disagree_with_the_paper():
    reg = {"settings.alpha": 0.05,
           "group.als_vs_hs.thickness_mm.p_value": 0.40,      # paper: < .001
           "group.als_vs_hs.intensity.p_value": 0.01,         # paper: no significant difference
           "corr.intensity.dpr.p_value": 0.003,               # paper: .009, agrees
           "corr.thickness_mm.dpr.p_value": 0.2}              # paper: .051, agrees (both n.s.)
    t = paper.paper_comparison(reg).set_index("registry_key")
    v = t["verdicts_agree"]
    assert v["group.als_vs_hs.thickness_mm.p_value"] == "no"
    assert v["group.als_vs_hs.intensity.p_value"] == "no"
    assert v["corr.intensity.dpr.p_value"] == "yes" and v["corr.thickness_mm.dpr.p_value"] == "yes"
    assert t.loc["group.als_vs_hs.intensity.p_value", "paper_significant"] == "no"
    assert t.loc["group.als_vs_hs.intensity.p_value", "this_run_significant"] == "yes"
    assert v["corr.intensity.alsfrs_r.p_value"] == "n/a"          # not in this registry
    assert t.loc["cohort.n_als", "verdicts_agree"] == ""           # not a P row
    # the run's alpha decides: at .001 the paper's .009 is not significant any more
    t2 = paper.paper_comparison({**reg, "settings.alpha": 0.001}).set_index("registry_key")
    assert t2.loc["corr.intensity.dpr.p_value", "paper_significant"] == "no"


def test_comparison_file_names_only_known_origins():
    rows = yaml.safe_load((paper.DATA / "paper_comparison.yaml").read_text())["comparisons"]
    assert {r["origin"] for r in rows} <= set(paper.ORIGINS)
