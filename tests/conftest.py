"""Shared fixtures: a small, valid dataset built on disk, to be broken by tests."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from filelock import FileLock

from m1lib import contract as C

ROOT = Path(__file__).resolve().parents[1]

HEADER = list(C.PARTICIPANT_COLUMNS)


def _participants(n_als: int, n_hs: int) -> pd.DataFrame:
    rows = []
    for i in range(n_als):
        rows.append(dict(participant_id=f"sub-ALS{i + 1:02d}", group="ALS", age=55 + i, sex="MF"[i % 2],
                         excluded="false", exclusion_reason="n/a", alsfrs_r=40 - i,
                         disease_duration_months=10 + 2 * i, mrc=118 + i, umn_bulbar=i % 2,
                         umn_arm_left=i % 9, umn_arm_right=(i + 1) % 9, umn_leg_left=(2 * i) % 9, umn_leg_right=(3 + i) % 9,
                         cmct_ms=8.5 + i, cortical_latency_ms=20 + i, cortical_silent_period_ms=130 + i,
                         frap=0.9, aopp=100 + i, thiols=300 + i))
    for i in range(n_hs):
        rows.append(dict(participant_id=f"sub-HS{i + 1:02d}", group="HS", age=50 + i, sex="FM"[i % 2],
                         excluded="false", exclusion_reason="n/a"))
    df = pd.DataFrame(rows).reindex(columns=HEADER)
    return df.fillna("n/a").astype(str)


def _markups(points: dict[str, list[list[float]]]) -> dict:
    marks = []
    for name, pts in points.items():
        marks.append({
            "type": "Fiducial" if name == C.REFERENCE_LABEL else "Line",
            "name": name, "coordinateSystem": "LPS", "coordinateUnits": "mm",
            "controlPoints": [
                {"id": str(k + 1), "label": name if name == C.REFERENCE_LABEL else f"{name}-{k + 1}",
                 "position": [-p[0], -p[1], p[2]], "positionStatus": "defined"}
                for k, p in enumerate(pts)],
        })
    return {"@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/"
                       "Markups/Resources/Schema/markups-schema-v1.0.3.json#", "markups": marks}


def write_tsv(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, sep="\t", index=False, lineterminator="\n")


def build_dataset(root: Path, n_als: int = 3, n_hs: int = 2, *, images: bool = True,
                  measurements: bool = False) -> Path:
    """Write a small valid dataset under ``root``; return its manifest path."""
    root.mkdir(parents=True, exist_ok=True)
    parts = _participants(n_als, n_hs)
    write_tsv(parts, root / "participants.tsv")
    (root / "dataset_description.json").write_text(json.dumps({"Name": "test", "BIDSVersion": "1.9.0"}))
    def call(pid: str, reader: str) -> str:
        # Reader 1 misses the first patient and over-calls the first healthy subject;
        # reader 2 misses the first two patients: both groups exist for every test.
        if pid.startswith("sub-ALS"):
            k = int(pid[7:])
            return "normal" if k == 1 or (reader == "reader2" and k == 2) else "ALS"
        return "ALS" if (reader == "reader1" and pid == "sub-HS01") else "normal"

    reads = pd.DataFrame([(pid, r, call(pid, r)) for pid in parts.participant_id for r in ("reader1", "reader2")],
                         columns=["participant_id", "reader", "call"])
    write_tsv(reads, root / "phenotype" / "visual_reads.tsv")
    if measurements:
        rows = [(pid, h, a, round(1.4 + 0.07 * ((3 * i + k) % 9), 3), round(0.82 + 0.013 * ((5 * i + 2 * k) % 11), 4))
                for i, pid in enumerate(parts.participant_id)
                for k, (h, a) in enumerate((h, a) for h in C.HEMISPHERES for a in C.AREAS)]
        write_tsv(pd.DataFrame(rows, columns=["participant_id", "hemisphere", "area", "thickness_mm", "intensity"]),
                  root / "phenotype" / "m1_measurements.tsv")
    if images:
        affine = np.diag([0.25, 0.25, 2.0, 1.0])
        shape = (40, 40, 4)
        for pid in parts.participant_id:
            anat = root / pid / "anat"
            anat.mkdir(parents=True, exist_ok=True)
            for echo, te in ((1, 0.010), (2, 0.020)):
                data = (1000 * np.exp(-te * 30) * np.ones(shape)).astype(np.int16)
                img = nib.Nifti1Image(data, affine)
                img.set_qform(affine, code=1)
                img.set_sform(affine, code=1)
                nib.save(img, anat / f"{pid}_echo-{echo}_part-mag_MEGRE.nii.gz")
                (anat / f"{pid}_echo-{echo}_part-mag_MEGRE.json").write_text(
                    json.dumps({"EchoTime": te, "RepetitionTime": 0.5}))
            pts = {}
            for k, (h, a) in enumerate((h, a) for h in C.HEMISPHERES for a in C.AREAS):
                z = 2.0 * (k % 4)
                pts[f"{h}_{a}"] = [[2.0 + k, 3.0, z], [2.0 + k, 4.5, z]]
            pts[C.REFERENCE_LABEL] = [[5.0, 5.0, 2.0]]
            ann = root / "derivatives" / "annotations"
            ann.mkdir(parents=True, exist_ok=True)
            (ann / f"{pid}_desc-m1_markups.mrk.json").write_text(json.dumps(_markups(pts), indent=2))
    manifest = root / "data_manifest.yaml"
    manifest.write_text("dataset: .\n")
    return manifest


@pytest.fixture
def dataset_dir(tmp_path) -> Path:
    """Manifest of a valid dataset with images and annotations (no measurement table)."""
    return build_dataset(tmp_path / "study")


@pytest.fixture
def measured_dataset_dir(tmp_path) -> Path:
    """Manifest of a valid dataset with only a precomputed measurement table."""
    return build_dataset(tmp_path / "study", images=False, measurements=True)


# ----------------------------------------------------------------------------- built once per run
def build_once(tmp_path_factory, name: str, build) -> Path:
    """Call ``build(folder)`` once per test run and return ``folder``, also under pytest-xdist.

    The pattern pytest-xdist documents for session fixtures: the workers' temporary folders
    share one parent; the first worker to take the lock builds there, any other waits and
    reuses the result. A failed build is recorded, so another worker fails at once with its
    reason instead of building it again.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder = base / name
    done, failed = base / f"{name}.done", base / f"{name}.failed"
    with FileLock(str(base / f"{name}.lock")):
        if failed.exists():
            pytest.fail(f"building the shared {name} failed in another worker: {failed.read_text()}")
        if not done.exists():
            try:
                build(folder)
            except BaseException as exc:
                failed.write_text(f"{type(exc).__name__}: {exc}"[:2000])
                raise
            done.write_text("")
    return folder


# ----------------------------------------------------------------------------- a wheel install
def run_checked(cmd, **kw) -> subprocess.CompletedProcess:
    """Run ``cmd``; on failure, fail the test with its output (not just its exit code)."""
    run = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if run.returncode:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {run.returncode}:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")
    return run


def _install_wheel(folder: Path) -> None:
    # built from a clean copy of what the wheel is made of: an in-tree build would leave
    # build/ in the repository and pack stale modules that build/lib still holds
    src = folder / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("m1lib", "notebooks"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    dist = folder / "dist"
    # .venv holds the build backend (the dev extra), so nothing is downloaded to build
    run_checked([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                 "-w", dist, src])
    wheel = next(dist.glob("m1lib-*.whl"))
    venv = folder / "venv"
    run_checked([sys.executable, "-m", "venv", "--without-pip", venv])
    # a regular (not editable) install of the wheel into the new venv, by pip targeting that
    # venv's interpreter (so our editable m1lib in .venv is never touched)
    run_checked([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps",
                 "--no-index", "--no-compile", "-q", wheel])
    site = Path(run_checked([venv / "bin" / "python", "-c",
                             "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # the dependencies come from .venv (nothing downloaded), AFTER the wheel's m1lib on
    # sys.path: .pth lines are appended to sys.path; the editable m1lib's own .pth is not read
    deps = Path(sysconfig.get_paths()["purelib"])
    (site / "zz_m1lib_test_deps.pth").write_text(f"{deps}\n")
    # ... and so do their data files (nbconvert's templates), but not our own kernelspec
    shared = folder / "jupyter"
    shared.mkdir()
    (shared / "nbconvert").symlink_to(Path(sys.prefix) / "share" / "jupyter" / "nbconvert")


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory) -> Path:
    """A venv with m1lib installed from its wheel (not editable); its dependencies are .venv's."""
    return build_once(tmp_path_factory, "wheel", _install_wheel) / "venv"


def wheel_env(venv: Path) -> dict:
    """Environment to run the wheel install's ``m1lib`` in: Jupyter data files but no kernelspec of .venv."""
    return {**os.environ, "JUPYTER_PATH": str(venv.parent / "jupyter")}


# ----------------------------------------------------------------------------- shared reports
# Each end-to-end report runs once per test session and is shared (read-only) by the
# tests that look at it; a test that changes data or reports works on its own copy.
N_BOOT = 1000


@pytest.fixture(scope="session")
def measured_report(tmp_path_factory, wheel_venv):
    """A user's dataset with only a measurement table (10 ALS + 8 HS, no images) and its report,
    made by ``m1lib report`` of the regular wheel install, run in a folder of its own.

    Returns the manifest (in that folder; its ``dataset`` is the absolute path of the data)
    and the report folder."""
    def build(base: Path) -> None:
        data = base / "study"
        build_dataset(data, n_als=10, n_hs=8, images=False, measurements=True)
        work = base / "elsewhere"
        work.mkdir()
        (work / "my.yaml").write_text(f"dataset: {data}\nsettings:\n  n_bootstrap: {N_BOOT}\n")
        run_checked([wheel_venv / "bin" / "m1lib", "report", "--manifest", "my.yaml", "--out", "my_report"],
                    cwd=work, env=wheel_env(wheel_venv))

    base = build_once(tmp_path_factory, "measured", build)
    return base / "elsewhere" / "my.yaml", base / "elsewhere" / "my_report"


@pytest.fixture(scope="session")
def replica_report(tmp_path_factory):
    """The default replica (generated on first use), measured from its images, and its report."""
    from m1lib import report

    def build(base: Path) -> None:
        base.mkdir()
        manifest = base / "data_manifest.yaml"
        manifest.write_text(f"dataset: cache/replica\nreplica:\n  seed: 20160301\nsettings:\n  n_bootstrap: {N_BOOT}\n")
        assert report.run_report(manifest, base / "reports" / "latest", jobs=2, log=lambda *a: None) == 0

    base = build_once(tmp_path_factory, "replica", build)
    return base / "data_manifest.yaml", base / "reports" / "latest"


# ----------------------------------------------------------------------------- pytest-xdist groups
# `make test` runs on worker processes (pytest-xdist, --dist loadgroup). Tests that share a
# fixture wider than one test (module or session scope, defined in tests/) go to the same
# worker, so no such fixture is built twice; the groups around the shared reports start first.
FIRST = ("replica_report", "measured_report")


def _shared_fixtures(item) -> list[str]:
    """Keys of the module/session-scoped fixtures of tests/ that ``item`` uses (transitively)."""
    info = getattr(item, "_fixtureinfo", None)
    keys = []
    for name in getattr(item, "fixturenames", ()):
        defs = info.name2fixturedefs.get(name) if info else None
        if not defs or not defs[-1].baseid or defs[-1].scope == "function":
            continue  # pytest's and plugins' own fixtures have no baseid
        scope = defs[-1].scope
        owner = item.nodeid.split("::")[0] if scope in ("module", "class", "package") else ""
        keys.append(f"{Path(owner).stem}.{name}" if owner else name)
    return keys


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    if not hasattr(config, "workerinput"):
        return  # not a pytest-xdist worker: nothing to group
    parent: dict[str, str] = {}

    def root(k: str) -> str:
        while parent.setdefault(k, k) != k:
            k = parent[k]
        return k

    uses = {id(item): _shared_fixtures(item) for item in items}
    for keys in uses.values():
        for k in keys:
            parent[root(k)] = root(keys[0])
    groups: dict[str, list[str]] = {}
    for k in list(parent):
        groups.setdefault(root(k), []).append(k)
    name = {r: next((f for f in FIRST if f in ks), sorted(ks)[0]) for r, ks in groups.items()}
    for item in items:
        if uses[id(item)]:
            item.add_marker(pytest.mark.xdist_group(name[root(uses[id(item)][0])]))
    # the scheduler hands out groups in collection order (--no-loadscope-reorder)
    rank = {f: i for i, f in enumerate(FIRST)}
    items.sort(key=lambda it: rank.get(name[root(uses[id(it)][0])], len(FIRST)) if uses[id(it)] else len(FIRST))


def pytest_collection_finish(session):
    """Say so when pytest-xdist did not group the tests (a pytest it does not work with):
    the suite still passes, but slower, with module fixtures built on every worker."""
    config = session.config
    grouped = [it for it in session.items if it.get_closest_marker("xdist_group")]
    if hasattr(config, "workerinput") and config.getvalue("loadgroup") and grouped \
            and "@" not in grouped[0].nodeid:
        warnings.warn(pytest.PytestWarning(
            f"pytest-xdist ignored the test groups with pytest {pytest.__version__} (pytest-xdist#1386): "
            "shared fixtures are built on every worker; install the dev extra (make setup) or run -n 0"))


def tree_digest(root: Path, sub: str = ".") -> dict[str, str]:
    """SHA-256 of every file under ``root/sub`` by relative path (byte-identity checks)."""
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / sub).rglob("*")) if p.is_file()}
