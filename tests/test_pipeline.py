"""From manifest to tables: the content-keyed cache, the replica, the output folder, the snapshot."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from conftest import build_dataset, tree_digest
from m1lib import cache, cli, manifest as manifest_mod, pipeline, snapshot, synth
from m1lib.manifest import load_manifest
from m1lib.markups import read_markups, write_markups

QUIET = dict(log=lambda *a: None)


def test_settings_areas_select_measurement_rows(tmp_path):
    manifest = build_dataset(tmp_path / "study", images=False, measurements=True)
    manifest.write_text("dataset: .\nsettings:\n  areas: [hand, leg]\n")
    t = pipeline.load_tables(manifest, **QUIET)
    assert set(t.measurements["area"]) == {"hand", "leg"}
    assert t.source == "precomputed"


# --------------------------------------------------------------------------- snapshot
def test_snapshot_roundtrip_is_exact(tmp_path):
    df = pd.DataFrame({"pid": ["sub-01", "sub-02", "sub-03"], "x": [0.1 + 0.2, 1 / 3, float("nan")],
                       "n": [1, 2, 3], "ok": [True, False, True], "why": ["", "a\tb".replace("\t", " "), None],
                       "mixed": [True, "n/a", 2.5]})
    data, kinds = snapshot.encode_table(df)
    back = snapshot.decode_table(data, kinds)
    assert back["x"].tolist()[:2] == [0.1 + 0.2, 1 / 3] and back["x"].isna().iloc[2]
    assert back["n"].dtype == "int64" and back["ok"].dtype == bool and back["why"].tolist()[:2] == ["", "a b"]
    assert back["mixed"].tolist()[0] is True and back["mixed"].tolist()[2] == 2.5
    assert snapshot.encode_table(back)[0] == data


def test_notebook_opened_by_hand_builds_the_same_snapshot(tmp_path):
    manifest = build_dataset(tmp_path / "study", images=False, measurements=True)
    direct = pipeline.load_tables(manifest, **QUIET)
    by_hand = pipeline.open_snapshot(manifest, tmp_path / "scratch", **QUIET)
    assert by_hand.meta["origin"] == "notebook" and by_hand.snapshot_hash == direct.snapshot_hash
    for name in snapshot.TABLES:
        a, b = getattr(direct, name), getattr(by_hand, name)
        assert (a is None and b is None) or a.equals(b), name
    # a frozen table edited afterwards is refused, not analysed
    (tmp_path / "scratch" / "snapshot" / "reads.tsv").write_text("participant_id\treader\tcall\n")
    with pytest.raises(RuntimeError, match="changed after the snapshot was frozen"):
        snapshot.thaw(tmp_path / "scratch" / "snapshot")


# --------------------------------------------------------------------------- the measurement cache
@pytest.fixture(scope="module")
def small_replica(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe") / "replica"
    synth.generate(root, seed=7, n_als=3, n_hs=2)
    return root / "data_manifest.yaml"


def _caliper(t, pid):
    m = t.measurements
    return m.loc[(m.participant_id == pid) & (m.hemisphere == "L") & (m.area == "hand"), "thickness_mm"].iloc[0]


def test_measurement_is_cached_and_an_edited_annotation_is_remeasured(small_replica):
    logs = []
    first = pipeline.load_tables(small_replica, log=logs.append)
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
    assert _caliper(edited, pid) == pytest.approx(1.2 * _caliper(first, pid), rel=0.02)


def test_an_edit_keeping_size_and_mtime_is_remeasured(small_replica):
    """``cp -p`` / ``rsync -a`` of an edited annotation: same size, same mtime, new content."""
    first = pipeline.load_tables(small_replica, **QUIET)
    pid = first.measurements["participant_id"].iloc[-1]
    path = small_replica.parent / "derivatives" / "annotations" / f"{pid}_desc-m1_markups.mrk.json"
    st = path.stat()
    text = path.read_text()
    at = text.index('"position"', text.index('"L_hand"'))
    at = text.index(".", at) + 1                         # first decimal digit of the first point
    text = text[:at] + str((int(text[at]) + 5) % 10) + text[at + 1:]
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    logs = []
    again = pipeline.load_tables(small_replica, log=logs.append)
    assert any("measuring" in m for m in logs)
    assert again.snapshot_hash != first.snapshot_hash


def test_large_files_use_the_racy_clean_rule(tmp_path, monkeypatch):
    big = tmp_path / "image.nii.gz"
    big.write_bytes(os.urandom(cache.ALWAYS_HASH_BYTES + 10))
    old = 1_600_000_000_000_000_000
    os.utime(big, ns=(old, old))
    first = cache.fingerprint_files(tmp_path, [big])
    first["image.nii.gz"]["recorded_ns"] += 10 * 10**9  # recorded well after its last change (ctime)
    # unchanged, not racy: the digest is reused without reading the file
    monkeypatch.setattr(cache, "sha256_file", lambda p: pytest.fail(f"{p} was read again"))
    assert cache.fingerprint_files(tmp_path, [big], first) == first
    monkeypatch.undo()
    # same size, same mtime, different bytes: ctime moved, so it is hashed again
    data = bytearray(big.read_bytes())
    data[100] ^= 0xFF
    big.write_bytes(bytes(data))
    os.utime(big, ns=(old, old))
    again = cache.fingerprint_files(tmp_path, [big], first)
    assert again["image.nii.gz"]["sha256"] != first["image.nii.gz"]["sha256"]
    # a file changed right when its signature was recorded is hashed again (racy)
    fresh = cache.fingerprint_files(tmp_path, [tmp_path / "image.nii.gz"], {})
    fresh["image.nii.gz"]["recorded_ns"] = old
    calls = []
    monkeypatch.setattr(cache, "sha256_file", lambda p: calls.append(p) or "x")
    cache.fingerprint_files(tmp_path, [big], fresh)
    assert calls == [big]


def test_key_holds_all_measurement_code_and_library_versions():
    modules, libs = cache.measurement_code()
    for m in ("measure", "geometry", "acquisition", "markups", "contract", "dataset", "manifest"):
        assert m in modules
    assert {"numpy", "scipy", "nibabel", "pandas"} <= set(libs)
    versions = cache.library_versions()
    assert versions["numpy"] and versions["scipy"] and versions["nibabel"] and versions["python"]


def test_measure_command_writes_the_table_and_audit(small_replica, tmp_path, capsys):
    out = tmp_path / "m.tsv"
    code = cli.main(["measure", str(small_replica), "--out", str(out), "--jobs", "1", "--audit"])
    assert code == 0, capsys.readouterr().err
    assert out.is_file() and (tmp_path / "audit").is_dir()
    assert len(list((tmp_path / "audit").glob("*_audit.png"))) == 5
    key = json.loads(out.with_name("m.inputs.json").read_text())
    assert set(key) == {"key", "files"} and key["key"]["code"] == pipeline.measurement_code_hash()
    assert list(pd.read_csv(out.with_name("m_failures.tsv"), sep="\t").columns) == \
        ["participant_id", "label", "kind", "reason"]


# --------------------------------------------------------------------------- the replica, atomically
def _replica_manifest(base: Path, seed: int) -> Path:
    m = base / "m.yaml"
    m.write_text(f"dataset: rep\nreplica:\n  seed: {seed}\n  n_als: 2\n  n_hs: 2\n")
    return m


def test_replica_is_generated_atomically_and_regenerated_when_the_seed_changes(tmp_path):
    m = load_manifest(_replica_manifest(tmp_path, 3))
    (tmp_path / ".rep.staging-killed").mkdir()          # what a killed generation leaves
    logs = []
    pipeline.ensure_replica(m, log=logs.append)
    root = tmp_path / "rep"
    record = json.loads((root / pipeline.REPLICA_RECORD).read_text())
    assert record["seed"] == 3 and record["n_als"] == 2 and record["n_hs"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".rep.lock", "m.yaml", "rep"]
    logs.clear()
    pipeline.ensure_replica(m, log=logs.append)
    assert logs == []                                    # present and complete: nothing to do
    m2 = load_manifest(_replica_manifest(tmp_path, 4))
    pipeline.ensure_replica(m2, log=logs.append)
    assert any("made with other settings" in x for x in logs)
    assert json.loads((root / pipeline.REPLICA_RECORD).read_text())["seed"] == 4


def test_an_interrupted_replica_is_redone(tmp_path):
    root = tmp_path / "rep"
    synth.generate(root, seed=3, n_als=2, n_hs=2)        # as synth leaves it when killed midway:
    img = next(root.glob("sub-*/anat/*_echo-2_*.nii.gz"))  # participants.tsv there, an image cut short
    img.write_bytes(img.read_bytes()[:1000])
    m = load_manifest(_replica_manifest(tmp_path, 3))
    logs = []
    t = pipeline.build_tables(m, jobs=1, log=logs.append)
    assert any("generating the replica (incomplete" in x for x in logs)
    assert len(t.measurements) and pipeline.unmeasured(t).empty


def test_a_replica_made_by_synth_is_adopted_without_regenerating(small_replica):
    logs = []
    pipeline.ensure_replica(load_manifest(small_replica), log=logs.append)
    assert not any("generating" in x for x in logs)
    assert (small_replica.parent / pipeline.REPLICA_RECORD).is_file()


def test_a_user_folder_is_never_replaced_by_a_replica(tmp_path):
    build_dataset(tmp_path / "rep", images=False, measurements=True)
    m = load_manifest(_replica_manifest(tmp_path, 3))
    with pytest.raises(manifest_mod.DataError, match="holds something else"):
        pipeline.ensure_replica(m, **QUIET)
    assert (tmp_path / "rep" / "participants.tsv").is_file()


# --------------------------------------------------------------------------- outputs outside the dataset
def test_a_read_only_dataset_is_measured_into_the_user_cache(small_replica, tmp_path, monkeypatch):
    root = small_replica.parent
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kw):  # the file system refuses writes inside the dataset
        if dir is not None and Path(dir).resolve().is_relative_to(root.resolve()):
            raise PermissionError(13, "Read-only file system", str(dir))
        return real(*args, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    m = load_manifest(small_replica)
    assert not m.output_dir.is_relative_to(root) and m.output_dir.is_relative_to(tmp_path / "cache")
    before = tree_digest(root)
    t = pipeline.load_tables(small_replica, **QUIET)
    assert len(t.measurements) and (m.output_dir / "measurements.tsv").is_file()
    assert t.meta["output_dir"] == str(m.output_dir) and t.meta["output_dir_inside_dataset"] is False
    assert tree_digest(root) == before


def test_outputs_key_chooses_the_output_folder(tmp_path):
    manifest = build_dataset(tmp_path / "study")
    manifest.write_text("dataset: .\noutputs: ../derived\n")
    assert load_manifest(manifest).output_dir == (tmp_path / "study" / ".." / "derived").absolute()
    manifest.write_text("dataset: .\n")
    assert load_manifest(manifest).output_dir == (tmp_path / "study" / "derivatives" / "m1lib").absolute()


# --------------------------------------------------------------------------- dask
@pytest.mark.slow
def test_a_dask_scheduler_measures_identical_tables(small_replica, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    local = pipeline.build_tables(small_replica, jobs=1, **QUIET)
    copy = tmp_path / "m.yaml"
    copy.write_text(small_replica.read_text().replace("dataset: .", f"dataset: {small_replica.parent}")
                    + f"outputs: {tmp_path / 'out'}\n")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        logs = []
        remote = pipeline.build_tables(copy, scheduler=cluster.scheduler_address, log=logs.append)
    assert any("dask cluster" in x for x in logs)
    assert remote.measurements.equals(local.measurements)
    hashes = [{n: r["sha256"] for n, r in snapshot.encode(t)[1]["tables"].items()} for t in (local, remote)]
    assert hashes[0] == hashes[1]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root to run as another (non-root) user")
def test_a_read_only_dataset_for_a_non_root_user(small_replica):
    """The same, for real: a dataset a non-root user cannot write to, measured as that user."""
    pipeline.ensure_replica(load_manifest(small_replica), **QUIET)  # complete, with its record
    base = Path(tempfile.mkdtemp(prefix="m1lib-readonly-"))
    try:
        os.chmod(base, 0o755)
        data = base / "replica"
        shutil.copytree(small_replica.parent, data, ignore=shutil.ignore_patterns("derivatives/m1lib", "m1lib"))
        for p in [data, *data.rglob("*")]:
            os.chmod(p, 0o555 if p.is_dir() else 0o444)
        home = base / "home"
        home.mkdir()
        os.chown(home, 65534, 65534)
        before = tree_digest(data)
        code = ("from m1lib import pipeline; t = pipeline.load_tables('replica/data_manifest.yaml', jobs=1); "
                "print(len(t.measurements), t.meta['output_dir'])")
        run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                              "-c", code], cwd=base, capture_output=True, text=True,
                             env={**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"),
                                  "MPLCONFIGDIR": str(home / "mpl")})
        assert run.returncode == 0, run.stderr[-2000:]
        rows, out = run.stdout.split()[-2:]
        assert int(rows) > 0 and Path(out).is_relative_to(home / "cache" / "m1lib" / "derived")
        assert tree_digest(data) == before
    finally:
        for p in [base, *base.rglob("*")]:
            if p.is_dir():
                os.chmod(p, 0o755)
        shutil.rmtree(base, ignore_errors=True)




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


def _ast_imports(path: Path) -> tuple[set[str], set[str]]:
    """The reference: what Python's own parser says a module imports."""
    import ast

    inner, outer = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                top, _, rest = a.name.partition(".")
                (inner.add(rest.split(".")[0]) if top == "m1lib" and rest else outer.add(top))
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level and mod:
                inner.add(mod.split(".")[0])
            elif node.level:
                inner.update(a.name for a in node.names)
            elif mod.split(".")[0] == "m1lib":
                inner.add(mod.split(".")[1]) if "." in mod else inner.update(a.name for a in node.names)
            else:
                outer.add(mod.split(".")[0])
    inner = {m for m in inner if (cache.PACKAGE_DIR / f"{m}.py").is_file()}
    return inner, outer - set(sys.stdlib_module_names) - {"__future__", "m1lib"}


@pytest.mark.parametrize("module", sorted(p.stem for p in cache.PACKAGE_DIR.glob("*.py")))
def test_the_import_scan_agrees_with_the_parser(module):
    path = cache.PACKAGE_DIR / f"{module}.py"
    assert cache._imports(path) == _ast_imports(path)


def test_folders_built_beside_their_target_follow_the_umask(tmp_path):
    from m1lib.fsutil import staging_dir

    old = os.umask(0o027)
    try:
        assert staging_dir(tmp_path / "latest").stat().st_mode & 0o777 == 0o750
    finally:
        os.umask(old)
