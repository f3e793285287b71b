"""The report end to end: one snapshot per run, exit codes, atomic replacement, --only."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from conftest import N_BOOT, build_dataset, run_checked, tree_digest, wheel_env
from m1lib import analyses, cli, report, synth
from m1lib.errors import DataError
from m1lib.fsutil import RunLock, recover_dir
from m1lib.markups import read_markups, write_markups
from m1lib.pipeline import load_tables
from m1lib.results import registry_from_json, undocumented_keys

pytestmark = pytest.mark.slow
QUIET = dict(log=lambda *a: None)


def _notebooks_with(tmp_path: Path, name: str, code: str, drop: str | None = None) -> Path:
    """A copy of the report's notebooks with ``code`` inserted after the load cell of ``name``."""
    nbdir = tmp_path / "notebooks"
    shutil.copytree(report.NOTEBOOK_DIR, nbdir)
    nb = nbformat.read(nbdir / f"{name}.ipynb", as_version=4)
    if drop:
        nb.cells = [c for c in nb.cells if drop not in c.source]
    if code:
        at = next(i for i, c in enumerate(nb.cells) if "open_snapshot" in c.source) + 1
        nb.cells.insert(at, nbformat.v4.new_code_cell(code))
    nbformat.write(nb, nbdir / f"{name}.ipynb")
    return nbdir


# --------------------------------------------------------------------------- a dataset with its own table
def test_measurement_table_only_dataset_runs(measured_report):
    manifest, out = measured_report
    for name in ("index.html", "results.json", "paper_comparison.csv", "provenance.json"):
        assert (out / name).is_file()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["measurement_source"] == "precomputed" and prov["dataset_kind"] == "user"
    assert prov["unmeasured"] == [] and prov["allow_unmeasured"] is False
    assert all(v["status"] == "ok" for v in prov["notebooks"].values())
    assert len(prov["notebooks"]) == len(report.notebooks()) == len(list(report.NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")))


def test_every_notebook_read_the_one_snapshot_provenance_names(measured_report):
    _, out = measured_report
    prov = json.loads((out / "provenance.json").read_text())
    meta = json.loads((out / "snapshot" / "snapshot.json").read_text())
    assert prov["snapshot"]["hash"] == meta["hash"] and meta["origin"] == "report"
    for name in ("01_cohort", "04_correlations"):
        nb = nbformat.read(out / "notebooks" / f"{name}.ipynb", as_version=4)
        assert any("pipeline.open_snapshot(manifest, out_dir)" in c.source for c in nb.cells)
        # the notebook built nothing itself: no "measuring"/"generating" in its outputs
        text = json.dumps([c.get("outputs", []) for c in nb.cells])
        assert "measuring" not in text and "generating" not in text


def test_results_json_equals_direct_registry(measured_report):
    manifest, out = measured_report
    t = load_tables(manifest, **QUIET)
    direct = analyses.run_all(t.participants, t.reads, t.measurements, n_boot=N_BOOT, seed=20160301).registry
    direct["cohort.n_unmeasured"] = 0.0
    got = registry_from_json((out / "results.json").read_text())
    assert undocumented_keys(got) == []          # the runner's and notebook 08's keys are documented too
    # power.* comes from notebook 08's simulations, not run_all (tests/test_power.py)
    got = {k: v for k, v in got.items() if not k.startswith("power.")}
    assert set(got) == set(direct)
    for k, v in direct.items():
        assert (v != v and got[k] != got[k]) or got[k] == v, k


def test_every_paper_figure_and_table_exists(measured_report):
    _, out = measured_report
    for stem in ("fig2_correlations", "online_fig1AB_umn_correct_vs_missed", "online_fig1CD_als_vs_hs",
                 "online_fig2_dpr_subgroups", "roc_measures_vs_readers"):
        assert (out / "figures" / f"{stem}.png").is_file() and (out / "figures" / f"{stem}.pdf").is_file()
    for stem in ("online_table1_cohort", "visual_reading", "visual_reading_paper_style", "reader_agreement",
                 "correct_vs_missed", "group_comparison", "roc", "correlations", "limb_correlations",
                 "dpr_subgroups"):
        assert (out / "tables" / f"{stem}.csv").is_file(), stem
    html = (out / "index.html").read_text()
    assert "fig2_correlations.png" in html and "Paper vs this run" in html


def test_html_has_no_code_input(measured_report):
    _, out = measured_report
    html = (out / "04_correlations.html").read_text()
    assert "analyses.correlations(" not in html
    assert "Spearman" in html


def test_rerun_with_nothing_changed_leaves_the_report_as_it_is(measured_report, wheel_venv):
    manifest, out = measured_report
    before = tree_digest(out)
    # the same command again, with the same installation that made the report
    run = run_checked([wheel_venv / "bin" / "m1lib", "report", "--manifest", manifest.name, "--out", out.name],
                      cwd=manifest.parent, env=wheel_env(wheel_venv))
    assert "report is up to date" in run.stdout
    assert tree_digest(out) == before


# --------------------------------------------------------------------------- exit codes
@pytest.fixture(scope="module")
def failing_run(measured_report, tmp_path_factory):
    """One run over a copy of the shared report with two broken notebooks: 05 raises,
    01 never records its outputs."""
    manifest, shared = measured_report
    base = tmp_path_factory.mktemp("failing")
    out = base / "reports" / "latest"
    shutil.copytree(shared, out)
    before = tree_digest(out)
    nbdir = _notebooks_with(base, "05_dpr_subgroups", "raise ValueError('deliberate failure for the test')")
    nb = nbformat.read(nbdir / "01_cohort.ipynb", as_version=4)
    nb.cells = [c for c in nb.cells if "rec.finish()" not in c.source]
    nbformat.write(nb, nbdir / "01_cohort.ipynb")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = report.run_report(manifest, out, jobs=2, force=True, only=["01", "05"], notebook_dir=nbdir, **QUIET)
    return code, err.getvalue(), out, before


def test_exit_1_when_a_notebook_raises(failing_run):
    code, err, _, _ = failing_run
    assert code == 1
    assert "05_dpr_subgroups" in err and "cell " in err and "raise ValueError" in err and "deliberate failure" in err


def test_exit_1_when_a_notebook_skips_its_record(failing_run):
    code, err, _, _ = failing_run
    assert code == 1 and "01_cohort failed: RuntimeError: the notebook finished without recording" in err


def test_a_failed_run_leaves_the_previous_report_byte_identical(failing_run):
    _, _, out, before = failing_run
    assert tree_digest(out) == before
    assert (out.parent / f"{out.name}-failed" / "05_dpr_subgroups.ipynb").is_file()
    assert not list(out.parent.glob(f".{out.name}.staging-*"))


def test_exit_1_when_there_is_no_notebook(measured_report, tmp_path, capsys):
    manifest, _ = measured_report
    (tmp_path / "empty").mkdir()
    assert report.run_report(manifest, tmp_path / "r", notebook_dir=tmp_path / "empty", **QUIET) == 1
    assert "no notebooks found" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_exit_2_data_error_inside_a_notebook_is_one_line(measured_report, tmp_path, capsys):
    manifest, _ = measured_report
    nbdir = _notebooks_with(tmp_path, "01_cohort", "from m1lib.errors import DataError\n"
                            "raise DataError('deliberate problem', file='participants.tsv', "
                            "participant='sub-ALS01', field='age')")
    code = report.run_report(manifest, tmp_path / "r", only=["01"], jobs=1, notebook_dir=nbdir, **QUIET)
    err = capsys.readouterr().err
    assert code == 2
    assert "participants.tsv: sub-ALS01: age: deliberate problem (found by notebook 01_cohort)" in err
    assert "Traceback" not in err and "cell " not in err
    assert not (tmp_path / "r").exists()


def test_exit_2_bad_data_before_any_notebook(tmp_path, capsys):
    manifest = build_dataset(tmp_path / "study", images=False, measurements=True)
    p = tmp_path / "study" / "participants.tsv"
    p.write_text(p.read_text().replace("\t55\t", "\tfifty-five\t").replace("\t56\t", "\t-3\t"))
    code = cli.main(["report", "--manifest", str(manifest), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert any("participants.tsv:2: sub-ALS01: age: not a number: 'fifty-five'" in e for e in err)
    assert any("sub-ALS02: age" in e for e in err)
    assert all(e.startswith("m1lib: ") for e in err)
    assert not (tmp_path / "r").exists() and not list(tmp_path.glob(".r.staging-*"))


def test_exit_2_unknown_notebook_and_bad_options(measured_report, capsys):
    manifest, out = measured_report
    assert cli.main(["report", "--manifest", str(manifest), "--out", str(out), "--only", "99_nope"]) == 2
    assert "unknown notebook(s) ['99_nope']" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", "--jobs", "0"])
    assert exc.value.code == 2 and "must be >= 1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def unmeasurable(tmp_path_factory):
    """A small replica where one analysed patient's annotation lies outside the image."""
    root = tmp_path_factory.mktemp("unmeasurable") / "replica"
    synth.generate(root, seed=7, n_als=3, n_hs=2)
    manifest = root / "data_manifest.yaml"
    manifest.write_text(manifest.read_text() + f"settings:\n  n_bootstrap: {N_BOOT}\n")
    parts = pd.read_csv(root / "participants.tsv", sep="\t")
    pid = parts.loc[(parts.group == "ALS") & (parts.excluded.astype(str).str.lower() == "false"),
                    "participant_id"].iloc[0]
    path = root / "derivatives" / "annotations" / f"{pid}_desc-m1_markups.mrk.json"
    marks = read_markups(path)
    marks["L_hand"].points[:, 0] += 400.0  # far outside the slab
    write_markups(path, marks)
    return manifest, pid


def test_exit_3_refuses_unmeasured_participants_before_any_notebook(unmeasurable, tmp_path, capsys):
    manifest, pid = unmeasurable
    code = cli.main(["report", "--manifest", str(manifest), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert any(e.startswith(f"m1lib: {pid}: L_hand: could not be measured: ") for e in err), err
    assert "--allow-unmeasured" in err[-1] and "1 analysed participant(s)" in err[-1]
    assert not (tmp_path / "r").exists()


def test_allow_unmeasured_runs_without_them_and_says_so(unmeasurable, tmp_path):
    manifest, pid = unmeasurable
    out = tmp_path / "r"
    assert cli.main(["report", "--manifest", str(manifest), "--out", str(out), "--only", "01",
                     "--allow-unmeasured"]) == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["allow_unmeasured"] is True and prov["dataset_kind"] == "replica"
    assert [(u["participant_id"], u["label"]) for u in prov["unmeasured"]] == [(pid, "L_hand")]
    assert registry_from_json((out / "results.json").read_text())["cohort.n_unmeasured"] == 1
    failures = pd.read_csv(out / "snapshot" / "failures.tsv", sep="\t")
    assert list(failures.columns) == ["participant_id", "label", "kind", "reason"]


# --------------------------------------------------------------------------- --only, atomicity
def test_only_reruns_notebooks_whose_data_changed(tmp_path, capsys):
    manifest = build_dataset(tmp_path / "study", n_als=6, n_hs=5, images=False, measurements=True)
    manifest.write_text("dataset: .\nsettings:\n  n_bootstrap: 200\n")
    out = tmp_path / "r"
    assert report.run_report(manifest, out, only=["05"], jobs=2) == 0
    old = json.loads((out / "provenance.json").read_text())
    table = tmp_path / "study" / "phenotype" / "m1_measurements.tsv"
    df = pd.read_csv(table, sep="\t")
    df.loc[0, "thickness_mm"] += 0.5
    df.to_csv(table, sep="\t", index=False, lineterminator="\n")
    capsys.readouterr()
    assert report.run_report(manifest, out, only=["01"], jobs=2) == 0
    assert "05_dpr_subgroups: its inputs changed" in capsys.readouterr().out
    new = json.loads((out / "provenance.json").read_text())
    assert new["snapshot"]["hash"] != old["snapshot"]["hash"]
    assert {n: v["status"] for n, v in new["notebooks"].items()} == {"01_cohort": "ok", "05_dpr_subgroups": "ok"}


def test_kill_9_leaves_the_previous_report_and_the_next_run_succeeds(measured_report, tmp_path):
    manifest, shared = measured_report
    out = tmp_path / "reports" / "latest"
    shutil.copytree(shared, out)
    before = tree_digest(out)
    proc = subprocess.Popen([sys.executable, "-m", "m1lib", "report", "--manifest", str(manifest),
                             "--out", str(out), "--only", "04", "--force", "--jobs", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(".latest.staging-*/notebooks/*.ipynb")):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert tree_digest(out) == before
    assert list(out.parent.glob(".latest.staging-*"))  # what a killed run leaves ...
    assert report.run_report(manifest, out, only=["04"], force=True, jobs=1, **QUIET) == 0
    assert not list(out.parent.glob(".latest.*-*"))    # ... the next run cleans
    assert json.loads((out / "provenance.json").read_text())["notebooks"]["04_correlations"]["status"] == "ok"


def test_a_second_run_on_the_same_output_is_locked_out(tmp_path):
    out = tmp_path / "latest"
    with RunLock(out):
        with pytest.raises(DataError, match="in use by another m1lib run"):
            with RunLock(out, wait_s=0):
                pass
    with RunLock(out, wait_s=0):  # released
        pass


def test_a_run_killed_between_the_two_renames_gets_its_report_back(tmp_path):
    out = tmp_path / "latest"
    (tmp_path / ".latest.old-x1y2").mkdir()
    (tmp_path / ".latest.old-x1y2" / "index.html").write_text("previous")
    (tmp_path / ".latest.staging-abc").mkdir()
    recover_dir(out, log=lambda *a: None)
    assert (out / "index.html").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]


# --------------------------------------------------------------------------- the replica
def test_replica_report_reproduces_reader_table_exactly(replica_report):
    _, out = replica_report
    t = pd.read_csv(out / "tables" / "visual_reading_paper_style.csv", dtype=str).set_index("reader")
    assert t.loc["reader1", ["sensitivity", "specificity", "PPV", "NPV", "accuracy"]].tolist() == \
        ["67%", "77%", "80%", "63%", "71%"]
    assert t.loc["reader2", ["sensitivity", "specificity", "PPV", "NPV", "accuracy"]].tolist() == \
        ["50%", "100%", "100%", "59%", "71%"]
    assert t.loc["reader1", "Cohen kappa"] == "0.61"


def test_replica_report_is_deterministic(replica_report, tmp_path):
    manifest, out = replica_report
    again = tmp_path / "again"
    # the notebook with bootstrap resampling and Fig 2, re-run from scratch
    assert report.run_report(manifest, again, only=["04"], jobs=2, **QUIET) == 0
    for sub in ("tables", "figures"):
        new = tree_digest(again, sub)
        assert new and all(tree_digest(out, sub)[k] == v for k, v in new.items())
    assert (again / "snapshot" / "snapshot.json").read_bytes() == (out / "snapshot" / "snapshot.json").read_bytes()


def test_replica_results_json_equals_direct_registry(replica_report):
    manifest, out = replica_report
    t = load_tables(manifest, **QUIET)
    direct = analyses.run_all(t.participants, t.reads, t.measurements, n_boot=N_BOOT, seed=20160301).registry
    direct.update(analyses.measurement_registry(
        analyses.measurement_accuracy(t.measurements, t.truth, t.truth_participants),
        analyses.motion_qc(t.participants, t.measurements, t.truth_participants)))
    direct["cohort.n_unmeasured"] = 0.0
    got = registry_from_json((out / "results.json").read_text())
    assert undocumented_keys(got) == []          # the runner's and notebook 08's keys are documented too
    # power.* comes from notebook 08's simulations, not run_all (tests/test_power.py)
    got = {k: v for k, v in got.items() if not k.startswith("power.")}
    assert set(got) == set(direct)
    for k, v in direct.items():
        assert (v != v and got[k] != got[k]) or got[k] == v, k
    # the measured replica reproduces the paper's pattern (issue 3's calibration, end to end)
    assert got["group.als_vs_hs.thickness_mm.p_value"] < 0.001 and got["group.als_vs_hs.intensity.p_value"] > 0.05
    for key, paper in (("corr.intensity.umn_limb.rho", -0.47), ("corr.intensity.dpr.rho", -0.60),
                       ("corr.intensity.alsfrs_r.rho", 0.45)):
        assert abs(got[key] - paper) <= 0.15, key
    # the caliper thickness carries the simulated rater's error, drawn after the calibration:
    # its correlations are measured, not set; only their direction is the truth's
    for key, paper in (("corr.thickness_mm.umn_limb.rho", -0.59), ("corr.thickness_mm.dpr.rho", -0.47),
                       ("corr.thickness_mm.alsfrs_r.rho", 0.49)):
        assert np.sign(got[key]) == np.sign(paper), key
    assert got["dpr_subgroups.intensity.p_value"] < 0.05
    assert got["qc.flag_matches_truth"] == 1.0
    assert got["measurement.profile_thickness_mm.mae"] <= 0.10
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["dataset_kind"] == "replica" and prov["output_dir_inside_dataset"] is True


def test_replica_pages_say_what_they_are_and_show_their_figures(replica_report):
    _, out = replica_report
    index = (out / "index.html").read_text()
    assert "SYNTHETIC DATA" in index and "calibration target" in index
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["dataset_kind"] == "replica" and prov["unmeasured"] == []
    for page in sorted(out.glob("0[1-8]_*.html")):
        text = page.read_text()
        assert "SYNTHETIC DATA" in text, page.name
        assert "&lt;Figure size" not in text and "PosixPath" not in text, page.name
    assert (out / "04_correlations.html").read_text().count("data:image/png") >= 1
    assert oct((out).stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m
