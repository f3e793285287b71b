"""From a manifest to analysable tables: generate the replica, validate, measure (cached).

:func:`build_tables` does it once per run; :func:`open_snapshot` is what every
notebook calls: it reads the snapshot the report runner froze for this run, or,
for a notebook opened by hand, builds one the same way. Measurements and their
failures go to the manifest's output folder (:attr:`Manifest.output_dir`), cached
by content (:mod:`m1lib.cache`).

:mod:`m1lib.measure` and :mod:`m1lib.synth` (scipy's optimisers and distributions:
seconds to import) are imported only when something is measured or generated, so a
report with nothing to redo, and every notebook, start without them.
"""
from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from . import __version__, cache
from .dataset import Dataset, load_dataset, validate
from .errors import DataError
from .fsutil import (RunLock, recover_dir, replace_dir, sha256_file, staging_dir, to_tsv,
                     write_atomic)
from .manifest import DERIVATIVES_OUTPUT, Manifest, load_manifest
from .progress import Progress
from .snapshot import SNAPSHOT_DIR, Tables, freeze, read_meta, roundtrip, thaw

__all__ = ["Tables", "build_tables", "load_tables", "open_snapshot", "unmeasured", "ensure_replica",
           "measure_cached", "measure_from_manifest", "audit_figures", "to_tsv", "write_atomic",
           "sha256_file", "measurement_code_hash"]

MEASURE_NAME = "measurements.tsv"
REPLICA_RECORD = ".m1lib-replica.json"
measurement_code_hash = cache.measurement_code_hash
UNMEASURED_COLUMNS = ["participant_id", "label", "reason"]


# --------------------------------------------------------------------------- the replica
#: The replica's generator: the subpackage (all its files) and what it imports. ``synth``
#: is only a compatibility name now, and the import scan does not enter subpackages.
GENERATOR_ROOTS = ("synth", "replica")


def replica_record(manifest: Manifest) -> dict:
    """What a replica generated for ``manifest`` is: its seed, sizes and generator code."""
    r = manifest.replica
    return {"seed": r.seed, "n_als": r.n_als, "n_hs": r.n_hs, "oblique": r.oblique,
            "anatomy": r.anatomy, "generator": cache.code_hash(GENERATOR_ROOTS)}


def _read_record(root: Path) -> dict | None:
    try:
        return json.loads((root / REPLICA_RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _made_by_synth(root: Path) -> str | None:
    """synth's own note of what it generated ("seed=.. n_als=.. ..."), or None."""
    try:
        desc = json.loads((root / "dataset_description.json").read_text())
        return next(g.get("Description", "") for g in desc.get("GeneratedBy", [])
                    if g.get("Name") == "m1lib synth")
    except (OSError, json.JSONDecodeError, StopIteration, AttributeError):
        return None


def _adoptable(manifest: Manifest) -> bool:
    """A replica generated without the runner (``m1lib synth``, a test) is taken as it is
    when synth's note matches the manifest and the dataset is complete (every image read
    to its end): what an interrupted generation cannot be."""
    r = manifest.replica
    note = _made_by_synth(manifest.root)
    want = f"seed={r.seed} n_als={r.n_als} n_hs={r.n_hs} oblique={str(bool(r.oblique)).lower()}"
    want += "" if r.anatomy == "flat" else f" anatomy={r.anatomy}"
    if note != want:
        return False
    _, problems = validate(manifest, full=True)
    return not problems


def ensure_replica(manifest: Manifest, log=print) -> None:
    """Generate the replica when the manifest asks for one and it is missing, incomplete or
    made with another seed, size or generator.

    It is generated into a staging folder beside the dataset and renamed into place
    (the old one survives a crash), under a lock; the record of what was generated
    (:data:`REPLICA_RECORD`) is written last.
    """
    if manifest.replica is None:
        return
    root = manifest.root
    want = replica_record(manifest)
    have = _read_record(root)
    if have == want:
        return
    if root.is_dir() and have is None and _adoptable(manifest):
        try:
            write_atomic(root / REPLICA_RECORD, json.dumps(want, indent=1, sort_keys=True) + "\n")
        except OSError:
            pass  # a read-only replica: adopted again (validated) next time
        return
    with RunLock(root, wait_s=1800, log=log):
        recover_dir(root, log=log)
        have = _read_record(root)
        if have == want:
            return  # another run generated it meanwhile
        if root.is_dir() and any(root.iterdir()) and have is None and _made_by_synth(root) is None:
            raise DataError("the manifest asks for a replica here, but this folder holds something "
                            "else; point 'dataset' elsewhere or remove 'replica:' to analyse it",
                            file=root, field="replica")
        why = "missing" if have is None and not root.exists() else \
            "incomplete" if have is None else "made with other settings"
        r = manifest.replica
        log(f"generating the replica ({why}; seed {r.seed}, {r.n_als} ALS + {r.n_hs} HS) into {root} ...")
        from . import synth  # slow import, only when generating

        stage = staging_dir(root)
        synth.generate(stage, seed=r.seed, n_als=r.n_als, n_hs=r.n_hs, oblique=r.oblique,
                       anatomy=r.anatomy)
        write_atomic(stage / REPLICA_RECORD, json.dumps(want, indent=1, sort_keys=True) + "\n")
        replace_dir(stage, root)


# --------------------------------------------------------------------------- measuring
def dask_client(address: str):
    """A ``dask.distributed.Client`` of the scheduler at ``address`` (dask is optional)."""
    try:
        from dask.distributed import Client  # optional dependency: m1lib[dask]
    except ImportError:
        raise DataError("a dask scheduler was given but dask.distributed is not installed "
                        "(pip install 'm1lib[dask]')", field="scheduler") from None
    try:
        return Client(address, timeout="15s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise DataError(f"cannot reach the dask scheduler at {address!r}: {exc}", field="scheduler") from None


def _measure(ds: Dataset, jobs, executor, scheduler, log) -> tuple[pd.DataFrame, pd.DataFrame]:
    from . import measure  # slow import, only when measuring

    s = ds.manifest.settings
    n = sum(1 for pid in ds.images if pid in ds.annotations)
    client = own = None
    if executor is None and scheduler:
        executor = client = dask_client(scheduler)
        log(f"measuring {len(ds.images)} participants on the dask cluster at {scheduler} ...")
    else:
        log(f"measuring {len(ds.images)} participants ...")
    if executor is None:
        workers = min(jobs or os.cpu_count() or 1, max(n, 1))
        executor = own = cache._Serial() if workers == 1 else ProcessPoolExecutor(workers)
    bar = Progress(n, "measuring")
    try:
        return measure.measure_dataset(
            **ds.measure_inputs(), executor=cache.CountingExecutor(executor, bar.advance),
            areas=s.areas, roi_area_mm2=s.roi_area_mm2, intensity_echo=s.intensity_echo, roi_shape=s.roi_shape)
    finally:
        if own is not None:
            own.shutdown()
        if client is not None:
            client.close()


def measure_cached(ds: Dataset, *, jobs: int | None = None, executor=None, scheduler: str | None = None,
                   force: bool = False, out: Path | None = None, log=print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measure every participant with images, reusing the cached table when its key holds.

    Parameters
    ----------
    ds : Dataset
    jobs : int, optional
        Worker processes (default: CPU count). Ignored with ``executor``/``scheduler``.
    executor : concurrent.futures.Executor, optional
        Any executor, e.g. a ``dask.distributed.Client``.
    scheduler : str, optional
        Address of a dask scheduler to measure on (default: ``settings.scheduler``).
    force : bool
        Measure even when the cache is current.
    out : Path, optional
        The measurement table (default: ``measurements.tsv`` in the output folder).

    Returns
    -------
    measurements, failures : DataFrame
        As written and read back, so a first and a cached run see identical tables.
    """
    out_dir = ds.manifest.output_dir
    table_path = Path(out) if out else out_dir / MEASURE_NAME
    scheduler = scheduler or ds.manifest.settings.scheduler
    ok, key, files = cache.cached(ds, table_path)
    if ok and not force:
        return cache.read_measured(table_path)
    with RunLock(table_path, wait_s=1800, log=log):
        ok, key, files = cache.cached(ds, table_path)  # another run may have measured meanwhile
        if not (ok and not force):
            table, failures = _measure(ds, jobs, executor, scheduler, log)
            desc = None
            if table_path.parent == ds.manifest.root / DERIVATIVES_OUTPUT:
                desc = {"Name": "m1lib measurements", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
                        "GeneratedBy": [{"Name": "m1lib", "Version": __version__}]}
            cache.store(table_path, table, failures, key, files, desc)
    return cache.read_measured(table_path)


# --------------------------------------------------------------------------- the tables
def _read_truth(root: Path):
    tdir = root / "derivatives" / "truth"
    if not (tdir / "truth_areas.tsv").is_file():
        return None, None
    t = pd.read_csv(tdir / "truth_areas.tsv", sep="\t", na_values=["n/a"])
    tp = pd.read_csv(tdir / "truth_participants.tsv", sep="\t", na_values=["n/a"]) \
        if (tdir / "truth_participants.tsv").is_file() else None
    return t, tp


def _as_manifest(manifest) -> Manifest:
    return manifest if isinstance(manifest, Manifest) else load_manifest(manifest)


def build_tables(manifest: Manifest | str | Path = "data_manifest.yaml", *, jobs: int | None = None,
                 executor=None, scheduler: str | None = None, log=print) -> Tables:
    """Validate once (:class:`DataError` listing every problem), generate the replica or
    measure as needed (cached), and return the tables a run analyses."""
    manifest = _as_manifest(manifest)
    ensure_replica(manifest, log=log)
    ds = load_dataset(manifest)
    failures = None
    if ds.measurements is not None:
        meas, source = ds.measurements, "precomputed"
        failures = cache.normalise_failures(pd.DataFrame(columns=list(cache.FAILURE_COLUMNS)))
    else:
        meas, failures = measure_cached(ds, jobs=jobs, executor=executor, scheduler=scheduler, log=log)
        failures = cache.normalise_failures(failures)
        source = "measured"
    # the analyses use the areas the settings name (a precomputed table may hold more)
    meas = meas[meas["area"].isin(manifest.settings.areas)].reset_index(drop=True)
    _one_session_each(meas, manifest)
    truth, truth_p = _read_truth(manifest.root)
    return Tables(manifest=manifest, participants=ds.participants, reads=ds.reads, measurements=meas,
                  source=source, truth=truth, truth_participants=truth_p, failures=failures)


def _one_session_each(meas: pd.DataFrame, manifest: Manifest) -> None:
    """The paper's analyses are cross-sectional: one session per participant. With
    ``files.session: all`` a participant measured in several sessions would count
    twice in every comparison, so the report refuses rather than guess which one."""
    if "session" not in meas.columns or meas.empty:
        return
    n = meas.dropna(subset=["session"]).groupby("participant_id")["session"].nunique()
    several = sorted(n[n > 1].index)
    if several:
        who = ", ".join(several[:5]) + (f" and {len(several) - 5} more" if len(several) > 5 else "")
        raise DataError(f"{len(several)} participant(s) were measured in several sessions ({who}); "
                        "the report analyses one session per participant: choose it with "
                        "files.session (files.session: all is for 'm1lib measure')",
                        file=manifest.path, field="files.session")


def run_record(tables: Tables) -> dict:
    """What a snapshot records beside its tables: dataset kind, output folder, unmeasured."""
    m = tables.manifest
    out = m.output_dir if tables.source == "measured" else None
    inside = out is not None and Path(out).is_relative_to(Path(m.root).absolute())
    return {"dataset_kind": "replica" if m.replica is not None else "user",
            "dataset": str(m.root),
            "output_dir": str(out) if out is not None else None,
            "output_dir_inside_dataset": inside,
            "unmeasured": unmeasured(tables).to_dict("records")}


def load_tables(manifest: Manifest | str | Path = "data_manifest.yaml", *, jobs: int | None = None,
                log=print) -> Tables:
    """Everything the notebooks analyse, exactly as a notebook reads it from its snapshot."""
    tables = build_tables(manifest, jobs=jobs, log=log)
    return roundtrip(tables, run_record(tables))


def open_snapshot(manifest: str | Path = "data_manifest.yaml", out_dir: str | Path = ".", *,
                  log=print) -> Tables:
    """The tables a notebook analyses: the run's snapshot in ``out_dir``.

    Under ``m1lib report`` the runner has frozen it there before any notebook
    started; a notebook opened by hand builds one with :func:`build_tables` and
    freezes it into ``out_dir`` the same way.
    """
    folder = Path(out_dir) / SNAPSHOT_DIR
    meta = read_meta(folder)
    if meta and meta.get("origin") == "report" and meta.get("manifest_path") == str(Path(manifest).resolve()):
        return thaw(folder)
    tables = build_tables(manifest, log=log)
    freeze(tables, folder, {**run_record(tables), "origin": "notebook"})
    return thaw(folder)


def unmeasured(tables: Tables) -> pd.DataFrame:
    """Analysed participants (and labels) with no measurement: ``participant_id, label, reason``.

    Failures of excluded participants (measured only for the motion QC) are not
    counted; an analysed participant with neither rows nor a failure is.
    """
    p = tables.participants
    analysed = set(p.loc[~p["excluded"].astype(bool), "participant_id"])
    f = tables.failures if tables.failures is not None else pd.DataFrame(columns=cache.FAILURE_COLUMNS)
    rows = [(r.participant_id, r.label, r.reason) for r in f.itertuples(index=False)
            if r.participant_id in analysed]
    named = {r[0] for r in rows}
    have = set(tables.measurements["participant_id"])
    rows += [(pid, "n/a", "no measurement rows") for pid in sorted(analysed - have - named)]
    return pd.DataFrame(sorted(rows), columns=UNMEASURED_COLUMNS)


# --------------------------------------------------------------------------- commands
def audit_figures(ds: Dataset, participants, folder: Path, stem: str = "{pid}_audit",
                  formats=("png",)) -> list[Path]:
    """Draw the audit figure (slice crops with ROI, caliper and fitted edges; each profile with
    its fitted model) of each participant into ``folder`` in each format, with the manifest's
    settings. Returns the paths written."""
    from . import audit  # slow import, only when drawing

    s = ds.manifest.settings
    paths = []
    for pid in participants:
        for fmt in formats:
            path = Path(folder) / f"{stem.format(pid=pid)}.{fmt}"
            paths.append(audit.audit_figure(pid, ds.images[pid], ds.annotations[pid], out_path=path,
                                              label_map=ds.label_maps.get(pid), areas=s.areas,
                                              roi_area_mm2=s.roi_area_mm2,
                                              intensity_echo=s.intensity_echo, roi_shape=s.roi_shape))
    return paths


def measure_from_manifest(manifest_path, *, out: Path | None = None, jobs: int | None = None,
                          audit: bool = False, scheduler: str | None = None, log=print) -> int:
    """The ``m1lib measure`` command: 0 when every participant was measured, 3 when some failed."""
    manifest = load_manifest(manifest_path)
    ensure_replica(manifest, log=log)
    ds = load_dataset(manifest)
    if ds.measurements is not None:
        raise DataError(f"the dataset has precomputed measurements ({manifest.files.measurements}); "
                        "nothing to measure from images", file=manifest.path, field="files.measurements")
    table, failures = measure_cached(ds, jobs=jobs, force=True, out=out, scheduler=scheduler, log=log)
    target = Path(out) if out else manifest.output_dir / MEASURE_NAME
    if audit:
        adir = target.parent / "audit"
        audit_figures(ds, sorted(ds.images), adir)
        log(f"audit figures in {adir}")
    log(f"wrote {target} ({len(table)} rows)")
    if len(failures):
        for r in failures.itertuples(index=False):
            print(f"m1lib: {r.participant_id}: {r.label}: could not be measured: {r.reason}", file=sys.stderr)
        return 3
    return 0
