"""From manifest to tables: the areas setting, the measurement cache and the measure command."""
from __future__ import annotations

import json

import pytest

from conftest import build_dataset
from m1lib import cli, pipeline, synth
from m1lib.markups import read_markups, write_markups


def test_settings_areas_select_measurement_rows(tmp_path):
    manifest = build_dataset(tmp_path / "study", images=False, measurements=True)
    manifest.write_text("dataset: .\nsettings:\n  areas: [hand, leg]\n")
    t = pipeline.load_tables(manifest, log=lambda *a: None)
    assert set(t.measurements["area"]) == {"hand", "leg"}
    assert t.source == "precomputed"


@pytest.fixture(scope="module")
def small_replica(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe") / "replica"
    synth.generate(root, seed=7, n_als=3, n_hs=2)
    return root / "data_manifest.yaml"


def test_measurement_is_cached_and_an_edited_annotation_is_remeasured(small_replica):
    logs = []
    first = pipeline.load_tables(small_replica, log=logs.append)
    assert any("measuring" in m for m in logs)
    logs.clear()
    again = pipeline.load_tables(small_replica, log=logs.append)
    assert not any("measuring" in m for m in logs)  # served from the cache
    assert again.measurements.equals(first.measurements)
    pid = first.measurements["participant_id"].iloc[0]
    path = small_replica.parent / "derivatives" / "annotations" / f"{pid}_desc-m1_markups.mrk.json"
    marks = read_markups(path)
    line = marks["L_hand"]
    line.points[1] = line.points[0] + 1.2 * (line.points[1] - line.points[0])  # lengthen the caliper
    write_markups(path, marks)
    logs.clear()
    edited = pipeline.load_tables(small_replica, log=logs.append)
    assert any("measuring" in m for m in logs)
    def caliper(t):
        m = t.measurements
        return m.loc[(m.participant_id == pid) & (m.hemisphere == "L") & (m.area == "hand"), "thickness_mm"].iloc[0]

    assert caliper(edited) == pytest.approx(1.2 * caliper(first), rel=0.02)


def test_measure_command_writes_the_table_and_audit(small_replica, tmp_path, capsys):
    out = tmp_path / "m.tsv"
    code = cli.main(["measure", str(small_replica), "--out", str(out), "--jobs", "1", "--audit"])
    assert code == 0, capsys.readouterr().err
    assert out.is_file() and (tmp_path / "audit").is_dir()
    assert len(list((tmp_path / "audit").glob("*_audit.png"))) == 5
    key = json.loads(out.with_name("m.inputs.json").read_text())
    assert set(key) == {"key", "files"} and key["key"]["code"] == pipeline.measurement_code_hash()


def test_tables_carry_the_failures(tmp_path, monkeypatch):
    """Failures are a table with the data: empty for a precomputed table, measure's rows otherwise."""
    import pandas as pd

    t = pipeline.load_tables(build_dataset(tmp_path / "pre", images=False, measurements=True), log=lambda *a: None)
    assert t.failures.empty and list(t.failures.columns) == ["participant_id", "label", "kind", "reason"]
    fails = pd.DataFrame([("sub-ALS02", "data", "L_hand: point outside the image")],
                         columns=["participant_id", "kind", "reason"])
    monkeypatch.setattr(pipeline, "measure_cached",
                        lambda ds, **kw: (pd.DataFrame(columns=["participant_id", "hemisphere", "area"]), fails))
    t = pipeline.load_tables(build_dataset(tmp_path / "img"), log=lambda *a: None)
    assert t.failures["participant_id"].tolist() == ["sub-ALS02"] and t.failures["label"].isna().all()
    assert t.failures["reason"].tolist() == ["L_hand: point outside the image"]
