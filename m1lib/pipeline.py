"""From a manifest to analysable tables: generate the replica, validate, measure (cached).

The measurement cache lives in the dataset's ``derivatives/m1lib/`` and is keyed on
the SHA-256 of every input file (images, sidecars, annotations) and of the
measurement settings, so an edited annotation is picked up by the next run.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import __version__
from .dataset import Dataset, load_dataset
from .errors import DataError
from .manifest import Manifest, load_manifest

MEASURE_DIR = Path("derivatives") / "m1lib"
MEASURE_FILE = MEASURE_DIR / "measurements.tsv"
FAILURES_FILE = MEASURE_DIR / "measurement_failures.tsv"
KEY_FILE = MEASURE_DIR / "measurements.inputs.json"


@dataclass
class Tables:
    """What the analyses need, as tidy tables."""

    manifest: Manifest
    participants: pd.DataFrame
    reads: pd.DataFrame
    measurements: pd.DataFrame
    source: str  # "precomputed" or "measured"
    truth: pd.DataFrame | None = None
    truth_participants: pd.DataFrame | None = None
    #: What could not be measured: participant_id, label (may be missing), kind, reason.
    failures: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["participant_id", "label", "kind", "reason"]))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def measurement_inputs(ds: Dataset, known: dict | None = None) -> dict[str, dict]:
    """SHA-256, size and mtime of every file a measurement reads, by dataset-relative path.

    A file whose size and mtime (ns) equal those recorded in ``known`` keeps its recorded
    digest instead of being read again (as git and make do); any write, such as the
    explorer saving an annotation, changes the mtime and so the file is hashed anew.
    """
    root = ds.manifest.root
    files = []
    for echoes in ds.images.values():
        for e in echoes:
            files += [e.path, e.path.with_name(e.path.name.split(".nii")[0] + ".json")]
    files += list(ds.annotations.values())
    known = known or {}
    out = {}
    for p in sorted(files):
        rel = str(p.relative_to(root))
        st = p.stat()
        prev = known.get(rel) or {}
        same = prev.get("size") == st.st_size and prev.get("mtime_ns") == st.st_mtime_ns
        out[rel] = {"sha256": prev["sha256"] if same and "sha256" in prev else sha256_file(p),
                    "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return out


#: Modules whose code decides the measured numbers: a change to any re-measures.
MEASUREMENT_CODE = ("measure.py", "profile.py", "geometry.py", "markups.py")


def measurement_code_hash() -> str:
    h = hashlib.sha256()
    for name in MEASUREMENT_CODE:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()


def measurement_key(ds: Dataset, known: dict | None = None) -> tuple[dict, dict]:
    """The cache key of a measurement (content digests, settings, code) and the file stats."""
    s = ds.manifest.settings
    files = measurement_inputs(ds, known)
    key = {"m1lib": __version__, "code": measurement_code_hash(),
           "settings": {"areas": list(s.areas), "roi_area_mm2": s.roi_area_mm2,
                        "intensity_echo": s.intensity_echo},
           "inputs": {rel: f["sha256"] for rel, f in files.items()}}
    return key, files


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_tsv(df: pd.DataFrame) -> str:
    """Deterministic TSV text (``n/a`` for missing, full float precision)."""
    return df.to_csv(sep="\t", index=False, na_rep="n/a", lineterminator="\n", float_format="%.10g")


def ensure_replica(manifest: Manifest, log=print) -> None:
    """Generate the replica into the dataset folder when the manifest asks and it is missing."""
    if manifest.replica is None or (manifest.root / "participants.tsv").is_file():
        return
    from . import synth

    r = manifest.replica
    log(f"generating the replica (seed {r.seed}, {r.n_als} ALS + {r.n_hs} HS) into {manifest.root} ...")
    synth.generate(manifest.root, seed=r.seed, n_als=r.n_als, n_hs=r.n_hs, oblique=r.oblique)


def measure_cached(ds: Dataset, *, jobs: int | None = None, executor=None, force: bool = False,
                   out: Path | None = None, log=print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measure every analysed participant, reusing the cached table when inputs are unchanged.

    Returns
    -------
    measurements, failures : DataFrame
    """
    from . import measure

    root = ds.manifest.root
    table_path = out or root / MEASURE_FILE
    key_path = table_path.with_name(table_path.stem + ".inputs.json")
    fail_path = table_path.with_name(table_path.stem + "_failures.tsv")
    try:
        stored = json.loads(key_path.read_text())
    except (OSError, json.JSONDecodeError):
        stored = {}
    key, files = measurement_key(ds, stored.get("files"))
    if not force and table_path.is_file() and stored.get("key") == key:
        return _read_measured(table_path, fail_path)
    s = ds.manifest.settings
    log(f"measuring {len(ds.images)} participants ...")
    table, failures = measure.measure_dataset(
        ds.images, ds.annotations, areas=s.areas, roi_area_mm2=s.roi_area_mm2,
        intensity_echo=s.intensity_echo, jobs=jobs, executor=executor)
    if table_path == root / MEASURE_FILE:
        desc = root / MEASURE_DIR / "dataset_description.json"
        write_atomic(desc, json.dumps({"Name": "m1lib measurements", "BIDSVersion": "1.9.0",
                                       "DatasetType": "derivative",
                                       "GeneratedBy": [{"Name": "m1lib", "Version": __version__}]},
                                      indent=2, sort_keys=True) + "\n")
    write_atomic(table_path, to_tsv(table))
    write_atomic(fail_path, to_tsv(failures))
    # last: the key vouches for a complete table
    write_atomic(key_path, json.dumps({"key": key, "files": files}, sort_keys=True, indent=1))
    # Analyse what was written, so a first run and a cached run see identical numbers.
    return _read_measured(table_path, fail_path)


def _read_measured(table_path: Path, fail_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    table = pd.read_csv(table_path, sep="\t", keep_default_na=False, na_values=["n/a"])
    failures = (pd.read_csv(fail_path, sep="\t", keep_default_na=False, na_values=["n/a"])
                if fail_path.is_file() else pd.DataFrame(columns=["participant_id", "kind", "reason"]))
    return table, failures


def _read_truth(root: Path):
    tdir = root / "derivatives" / "truth"
    if not (tdir / "truth_areas.tsv").is_file():
        return None, None
    t = pd.read_csv(tdir / "truth_areas.tsv", sep="\t", na_values=["n/a"])
    tp = pd.read_csv(tdir / "truth_participants.tsv", sep="\t", na_values=["n/a"]) \
        if (tdir / "truth_participants.tsv").is_file() else None
    return t, tp


def load_tables(manifest: Manifest | str | Path = "data_manifest.yaml", *, jobs: int | None = None,
                log=print) -> Tables:
    """Everything the notebooks analyse, from a manifest (generating and measuring as needed)."""
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    ensure_replica(manifest, log=log)
    ds = load_dataset(manifest)
    failures = None
    if ds.measurements is not None:
        meas, source = ds.measurements, "precomputed"
    else:
        meas, failures = measure_cached(ds, jobs=jobs, log=log)
        source = "measured"
    # the analyses use the areas the settings name (a precomputed table may hold more)
    meas = meas[meas["area"].isin(manifest.settings.areas)].reset_index(drop=True)
    truth, truth_p = _read_truth(manifest.root)
    tables = Tables(manifest, ds.participants, ds.reads, meas, source, truth, truth_p)
    if failures is not None and len(failures):
        tables.failures = failures.reindex(columns=["participant_id", "label", "kind", "reason"]).reset_index(drop=True)
    return tables


def audit_figures(ds: Dataset, participants, folder: Path, stem: str = "{pid}_audit",
                  formats=("png",)) -> list[Path]:
    """Draw the audit figure (slice crops with ROI, caliper and fitted edges; each profile with
    its fitted model) of each participant into ``folder`` in each format, with the manifest's
    settings. Returns the paths written."""
    from . import measure

    s = ds.manifest.settings
    paths = []
    for pid in participants:
        for fmt in formats:
            path = Path(folder) / f"{stem.format(pid=pid)}.{fmt}"
            paths.append(measure.audit_figure(pid, ds.images[pid], ds.annotations[pid], out_path=path,
                                              areas=s.areas, roi_area_mm2=s.roi_area_mm2,
                                              intensity_echo=s.intensity_echo))
    return paths


def measure_from_manifest(manifest_path, *, out: Path | None = None, jobs: int | None = None,
                          audit: bool = False, log=print) -> int:
    """The ``m1lib measure`` command: 0 when every participant was measured, 3 when some failed."""
    manifest = load_manifest(manifest_path)
    ensure_replica(manifest, log=log)
    ds = load_dataset(manifest)
    if ds.measurements is not None:
        raise DataError(f"the dataset has precomputed measurements ({manifest.files.measurements}); "
                        "nothing to measure from images", file=manifest.path, field="files.measurements")
    table, failures = measure_cached(ds, jobs=jobs, force=True, out=out, log=log)
    target = out or manifest.root / MEASURE_FILE
    if audit:
        adir = target.parent / "audit"
        audit_figures(ds, sorted(ds.images), adir)
        log(f"audit figures in {adir}")
    log(f"wrote {target} ({len(table)} rows)")
    if len(failures):
        for r in failures.itertuples(index=False):
            print(f"m1lib: {r.participant_id}: measurement failed: {r.reason}", file=sys.stderr)
        return 3
    return 0
