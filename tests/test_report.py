"""The report end to end: papermill runs every notebook into figures, tables, results.json."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from conftest import build_dataset
from m1lib import analyses, report
from m1lib.pipeline import load_tables
from m1lib.results import registry_from_json

pytestmark = pytest.mark.slow
N_BOOT = 1000


def _tree_digest(root: Path, sub: str) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / sub).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A dataset with only a measurement table (no images), and its report."""
    root = tmp_path_factory.mktemp("measured") / "study"
    manifest = build_dataset(root, n_als=10, n_hs=8, images=False, measurements=True)
    manifest.write_text(f"dataset: .\nsettings:\n  n_bootstrap: {N_BOOT}\n")
    out = root.parent / "reports" / "latest"
    code = report.run_report(manifest, out, jobs=2)
    assert code == 0
    return manifest, out


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    """The default replica (generated on first use), measured from its images, and its report."""
    base = tmp_path_factory.mktemp("replica")
    manifest = base / "data_manifest.yaml"
    manifest.write_text(f"dataset: cache/replica\nreplica:\n  seed: 20160301\nsettings:\n  n_bootstrap: {N_BOOT}\n")
    out = base / "reports" / "latest"
    assert report.run_report(manifest, out, jobs=2) == 0
    return manifest, out


def test_measurement_table_only_dataset_runs(measured):
    manifest, out = measured
    for name in ("index.html", "results.json", "paper_comparison.csv", "provenance.json"):
        assert (out / name).is_file()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["measurement_source"] == "precomputed"
    assert all(v["status"] == "ok" for v in prov["notebooks"].values())


def test_results_json_equals_direct_registry(measured):
    manifest, out = measured
    t = load_tables(manifest, log=lambda *a: None)
    direct = analyses.run_all(t.participants, t.reads, t.measurements, n_boot=N_BOOT, seed=20160301).registry
    got = registry_from_json((out / "results.json").read_text())
    # power.* comes from notebook 08's simulations, not run_all (tests/test_power.py)
    got = {k: v for k, v in got.items() if not k.startswith("power.")}
    assert set(got) == set(direct)
    for k, v in direct.items():
        assert (v != v and got[k] != got[k]) or got[k] == v, k


def test_every_paper_figure_and_table_exists(measured):
    _, out = measured
    for stem in ("fig2_correlations", "online_fig1AB_umn_correct_vs_missed", "online_fig1CD_als_vs_hs",
                 "online_fig2_dpr_subgroups", "roc_measures_vs_readers"):
        assert (out / "figures" / f"{stem}.png").is_file() and (out / "figures" / f"{stem}.pdf").is_file()
    for stem in ("online_table1_cohort", "visual_reading", "visual_reading_paper_style", "reader_agreement",
                 "correct_vs_missed", "group_comparison", "roc", "correlations", "limb_correlations",
                 "dpr_subgroups"):
        assert (out / "tables" / f"{stem}.csv").is_file(), stem
    html = (out / "index.html").read_text()
    assert "fig2_correlations.png" in html and "Paper vs this run" in html


def test_html_has_no_code_input(measured):
    _, out = measured
    html = (out / "04_correlations.html").read_text()
    assert "analyses.correlations(" not in html
    assert "Spearman" in html


def test_unchanged_notebooks_are_not_rerun(measured, capsys):
    manifest, out = measured
    assert report.run_report(manifest, out, jobs=2) == 0
    assert "running 0 notebook(s)" in capsys.readouterr().out
    prov = json.loads((out / "provenance.json").read_text())
    assert {v["status"] for v in prov["notebooks"].values()} == {"cached"}


def test_failing_notebook_leaves_previous_report_intact(measured, tmp_path, capsys):
    manifest, out = measured
    before = _tree_digest(out, ".")
    nbdir = tmp_path / "notebooks"
    shutil.copytree(report.NOTEBOOK_DIR, nbdir)
    nb = nbformat.read(nbdir / "05_dpr_subgroups.ipynb", as_version=4)
    nb.cells.insert(4, nbformat.v4.new_code_cell("raise ValueError('deliberate failure for the test')"))
    nbformat.write(nb, nbdir / "05_dpr_subgroups.ipynb")
    code = report.run_report(manifest, out, jobs=2, force=True, notebook_dir=nbdir)
    err = capsys.readouterr().err
    assert code == 1
    assert "05_dpr_subgroups" in err and "cell " in err and "raise ValueError" in err and "deliberate failure" in err
    assert _tree_digest(out, ".") == before
    kept = out.parent / f"{out.name}-failed" / "05_dpr_subgroups.ipynb"
    assert kept.is_file()


def test_notebook_that_skips_its_record_is_a_failure(measured, tmp_path, capsys):
    manifest, out = measured
    nbdir = tmp_path / "notebooks"
    shutil.copytree(report.NOTEBOOK_DIR, nbdir)
    nb = nbformat.read(nbdir / "01_cohort.ipynb", as_version=4)
    nb.cells = [c for c in nb.cells if "rec.finish()" not in c.source]
    nbformat.write(nb, nbdir / "01_cohort.ipynb")
    code = report.run_report(manifest, tmp_path / "r", only=["01"], jobs=1, notebook_dir=nbdir)
    assert code == 1
    assert "without recording its outputs" in capsys.readouterr().err


def test_replica_report_reproduces_reader_table_exactly(replica):
    _, out = replica
    t = pd.read_csv(out / "tables" / "visual_reading_paper_style.csv", dtype=str).set_index("reader")
    assert t.loc["reader1", ["sensitivity", "specificity", "PPV", "NPV", "accuracy"]].tolist() == \
        ["67%", "77%", "80%", "63%", "71%"]
    assert t.loc["reader2", ["sensitivity", "specificity", "PPV", "NPV", "accuracy"]].tolist() == \
        ["50%", "100%", "100%", "59%", "71%"]
    assert t.loc["reader1", "Cohen kappa"] == "0.61"


def test_replica_report_is_deterministic(replica, tmp_path):
    manifest, out = replica
    again = tmp_path / "again"
    assert report.run_report(manifest, again, jobs=2, force=True) == 0
    assert (again / "results.json").read_bytes() == (out / "results.json").read_bytes()
    assert _tree_digest(again, "tables") == _tree_digest(out, "tables")
    assert _tree_digest(again, "figures") == _tree_digest(out, "figures")


def test_replica_results_json_equals_direct_registry(replica):
    manifest, out = replica
    t = load_tables(manifest, log=lambda *a: None)
    direct = analyses.run_all(t.participants, t.reads, t.measurements, n_boot=N_BOOT, seed=20160301).registry
    direct.update(analyses.measurement_registry(
        analyses.measurement_accuracy(t.measurements, t.truth, t.truth_participants),
        analyses.motion_qc(t.participants, t.measurements, t.truth_participants)))
    got = registry_from_json((out / "results.json").read_text())
    # power.* comes from notebook 08's simulations, not run_all (tests/test_power.py)
    got = {k: v for k, v in got.items() if not k.startswith("power.")}
    assert set(got) == set(direct)
    for k, v in direct.items():
        assert (v != v and got[k] != got[k]) or got[k] == v, k
    # the measured replica reproduces the paper's pattern (issue 3's calibration, end to end)
    assert got["group.thickness_mm.p_value"] < 0.001 and got["group.intensity.p_value"] > 0.05
    for key, paper in (("corr.thickness_mm.umn_limb.rho", -0.59), ("corr.thickness_mm.dpr.rho", -0.47),
                       ("corr.thickness_mm.alsfrs_r.rho", 0.49), ("corr.intensity.umn_limb.rho", -0.47),
                       ("corr.intensity.dpr.rho", -0.60), ("corr.intensity.alsfrs_r.rho", 0.45)):
        assert abs(got[key] - paper) <= 0.15, key
    assert got["dpr_subgroups.intensity.p_value"] < 0.05
    assert got["qc.flag_matches_truth"] == 1.0
    assert got["measurement.profile_thickness_mm.mae"] <= 0.10
