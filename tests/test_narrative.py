"""Sentences and display tables in the paper's style, from the registry."""
from __future__ import annotations

import pandas as pd
import pytest

from m1lib import analyses, narrative


@pytest.mark.parametrize("p, text", [(0.0004, "P < .001"), (0.024, "P = .024"), (0.0505, "P = .051"),
                                     (1.0, "P = 1"), (float("nan"), "P = n/a")])
def test_p_values_print_as_in_the_paper(p, text):
    assert narrative.p_text(p) == text


def test_percentages_round_half_up():
    assert narrative.pct(10 / 16) == "63%" and narrative.pct(2 / 3) == "67%"


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
    assert t.loc["reader1", "positive ALS"] == "12 of 18" and t.loc["reader2", "positive HS"] == "0 of 13"


def test_sentences_fill_numbers_and_skip_absent_results():
    p, r = _reads_from_counts()
    reg = analyses.registry_from_tables({"visual_reading": analyses.visual_reading(p, r),
                                         "reader_agreement": analyses.reader_agreement(r, p)})
    s = narrative.sentences(reg)
    assert set(s) == {"visual_reading"}
    assert "Reader 1 called 12 of 18 patients and 3 of 13 healthy subjects abnormal" in s["visual_reading"]
    assert "67%, 77%, 80%, 63% and 71%" in s["visual_reading"] and "κ = 0.61" in s["visual_reading"]
