"""The analysis-ready tables of one run, frozen to files and hashed.

A report run builds its tables once (:func:`m1lib.pipeline.build_tables`), freezes
them into ``<report>/snapshot/`` and every notebook thaws that folder, so all
notebooks analyse the same tables whatever happens to the dataset meanwhile, and
``provenance.json`` names them by hash. Tables are stored as TSV with full float
precision (``repr``) and their dtypes, so thawing gives back exactly what was frozen.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import __version__
from .fsutil import replace_dir, sha256_bytes, sha256_file, staging_dir, write_atomic
from .manifest import Manifest

SNAPSHOT_DIR = "snapshot"
META = "snapshot.json"
#: The tables of a snapshot (``truth*`` only for the replica).
TABLES = ("participants", "reads", "measurements", "failures", "truth", "truth_participants")


@dataclass
class Tables:
    """What the analyses need, as tidy tables.

    Attributes
    ----------
    manifest : Manifest
    participants, reads, measurements : DataFrame
    source : str
        ``"precomputed"`` (the dataset's own measurement table) or ``"measured"``.
    truth, truth_participants : DataFrame or None
        The replica's ground truth.
    failures : DataFrame or None
        ``participant_id, label, kind, reason`` of what could not be measured.
    meta : dict
        The snapshot's record (hash, dataset kind, output folder ...), when frozen.
    """

    manifest: Manifest
    participants: pd.DataFrame
    reads: pd.DataFrame
    measurements: pd.DataFrame
    source: str
    truth: pd.DataFrame | None = None
    truth_participants: pd.DataFrame | None = None
    failures: pd.DataFrame | None = None
    meta: dict = field(default_factory=dict)

    @property
    def snapshot_hash(self) -> str | None:
        return self.meta.get("hash")


# --------------------------------------------------------------------------- one table
def _column_kind(s: pd.Series) -> str:
    kind = str(s.dtype)
    if kind == "object":
        values = s.dropna()
        return "str" if all(isinstance(v, str) for v in values) else "mixed"
    if kind in ("bool", "int64", "Int64", "float64", "boolean"):
        return kind
    raise TypeError(f"column {s.name!r}: dtype {kind} cannot be frozen in a snapshot")


def encode_table(df: pd.DataFrame) -> tuple[bytes, dict[str, str]]:
    """TSV bytes (``n/a`` for missing, floats at full precision) and the column kinds."""
    kinds = {str(c): _column_kind(df[c]) for c in df.columns}
    text = df.to_csv(sep="\t", index=False, na_rep="n/a", lineterminator="\n")
    return text.encode("utf-8"), kinds


def _literal(v):
    if v is None or isinstance(v, float):
        return v
    if v in ("True", "False"):
        return v == "True"
    try:
        return float(v)
    except ValueError:
        return v


def decode_table(data: bytes, kinds: dict[str, str]) -> pd.DataFrame:
    """Inverse of :func:`encode_table`."""
    df = pd.read_csv(io.BytesIO(data), sep="\t", dtype=str, keep_default_na=False, na_values=["n/a"])
    for c, kind in kinds.items():
        col = df[c]
        if kind == "float64":
            df[c] = col.astype("float64")
        elif kind == "int64":
            df[c] = col.astype("int64")
        elif kind == "Int64":
            df[c] = col.astype("float64").astype("Int64")
        elif kind == "bool":
            df[c] = (col == "True").astype(bool)
        elif kind == "boolean":
            df[c] = col.map({"True": True, "False": False}).astype("boolean")
        elif kind == "mixed":
            df[c] = col.map(_literal).astype(object)
        else:
            df[c] = col.astype(object)
    return df


# --------------------------------------------------------------------------- a snapshot
def encode(tables: Tables, extra: dict | None = None) -> tuple[dict[str, bytes], dict]:
    """The files of a snapshot and its record (with the content hash)."""
    files, record = {}, {}
    for name in TABLES:
        df = getattr(tables, name)
        if df is None:
            continue
        data, kinds = encode_table(df)
        files[f"{name}.tsv"] = data
        record[name] = {"file": f"{name}.tsv", "sha256": sha256_bytes(data), "columns": kinds}
    content = {"tables": {n: r["sha256"] for n, r in record.items()},
               "manifest": tables.manifest.model_dump(mode="json"), "source": tables.source}
    meta = {**(extra or {}), "tables": record, "manifest": content["manifest"],
            "manifest_path": str(Path(tables.manifest.path).resolve()), "source": tables.source,
            "m1lib": __version__,
            "hash": sha256_bytes(json.dumps(content, sort_keys=True).encode())}
    return files, meta


def decode(files: dict[str, bytes], meta: dict) -> Tables:
    """Inverse of :func:`encode`."""
    manifest = Manifest.model_validate({**meta["manifest"], "path": Path(meta["manifest_path"])})
    kw = {name: decode_table(files[r["file"]], r["columns"]) for name, r in meta["tables"].items()}
    return Tables(manifest=manifest, source=meta["source"], meta=meta, **kw)


def roundtrip(tables: Tables, extra: dict | None = None) -> Tables:
    """``tables`` as a notebook reading their snapshot sees them (nothing written)."""
    return decode(*encode(tables, extra))


def freeze(tables: Tables, folder: Path, extra: dict | None = None) -> dict:
    """Write ``tables`` to ``folder`` (replaced as a whole); return the snapshot's record."""
    folder = Path(folder)
    files, meta = encode(tables, extra)
    stage = staging_dir(folder)
    for name, data in files.items():
        (stage / name).write_bytes(data)
    write_atomic(stage / META, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    replace_dir(stage, folder)
    return meta


def read_meta(folder: Path) -> dict | None:
    """The record of the snapshot in ``folder``, or None when there is none."""
    try:
        return json.loads((Path(folder) / META).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def thaw(folder: Path) -> Tables:
    """Read the snapshot in ``folder``, checking every table against its recorded hash."""
    folder = Path(folder)
    meta = read_meta(folder)
    if meta is None:
        raise FileNotFoundError(f"no snapshot in {folder}")
    files = {}
    for name, r in meta["tables"].items():
        path = folder / r["file"]
        if sha256_file(path) != r["sha256"]:
            raise RuntimeError(f"{path} changed after the snapshot was frozen (hash differs)")
        files[r["file"]] = path.read_bytes()
    return decode(files, meta)
