"""The measurement cache, keyed by content.

A cached measurement table is reused only when its key is unchanged. The key holds:

- the SHA-256 of every file a measurement reads. Annotations, sidecars and every
  other small file are hashed on every run. Images (large) keep their recorded
  digest only while their whole ``stat`` signature (size, mtime, ctime, inode,
  device) is unchanged *and* they were not modified within :data:`RACY_S` of the
  moment that signature was recorded: git's racy-clean rule. ``cp -p`` and
  ``rsync -a`` preserve mtime but not ctime, which no user tool can set back;
- the settings the measurement uses;
- the source of every m1lib module the measurement imports, found by following
  imports from :mod:`m1lib.measure` (not a hand-kept list), and the versions of
  every third-party distribution those modules import.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from concurrent.futures import Future
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from . import __version__
from .fsutil import sha256_file, to_tsv, write_atomic

PACKAGE_DIR = Path(__file__).resolve().parent
#: Modules whose code (and everything they import from m1lib) decides measured numbers.
MEASUREMENT_ROOTS = ("measure", "dataset", "cache")
#: Imported by measure only to draw the optional audit figure, never for a number
#: (figures never compute: CONVENTIONS), so not followed.
DRAWING_ONLY = frozenset({"figures"})
#: Files up to this size are hashed on every run, whatever their stat says.
ALWAYS_HASH_BYTES = 1 << 20
#: Files modified this close to the time their signature was recorded are re-hashed
#: (timestamps on some file systems have a resolution of 1-2 s).
RACY_S = 2.0
FAILURE_COLUMNS = ("participant_id", "label", "kind", "reason")


# --------------------------------------------------------------------------- code + libraries
_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(?:\(([^)]*)\)|([\w \t,]+))", re.M)
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w.]+(?:[ \t]+as[ \t]+\w+)?(?:[ \t]*,[ \t]*[\w.]+(?:[ \t]+as[ \t]+\w+)?)*)",
                     re.M)


def _sources(module: str) -> list[Path]:
    """Source files of a top-level m1lib module: ``<m>.py``, or every file of the subpackage ``<m>/``."""
    single = PACKAGE_DIR / f"{module}.py"
    return [single] if single.is_file() else sorted((PACKAGE_DIR / module).rglob("*.py"))


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """m1lib modules and top-level third-party modules imported anywhere in ``path``
    (a file of m1lib or of one of its subpackages: its relative imports within the
    subpackage stay inside the subpackage's unit).

    A line scan, not ``ast``: parsing every module on every run costs more than the
    whole up-to-date check. Statements inside functions count too.
    """
    text = path.read_text(encoding="utf-8")
    depth = len(path.relative_to(PACKAGE_DIR).parts) - 1      # 0: m1lib/x.py, 1: m1lib/sub/x.py
    inner, outer = set(), set()
    for dots, mod, grouped, plain in _FROM.findall(text):
        names = (grouped or plain).replace("\n", " ")
        top, _, rest = mod.partition(".")
        if dots and len(dots) <= depth:
            continue                                             # a sibling in the same subpackage
        if dots:
            if top:
                inner.add(top)
            else:  # from . import a, b
                inner.update(n.split()[0] for n in names.split(",") if n.strip())
        elif top == "m1lib":
            if rest:
                inner.add(rest.split(".")[0])
            else:
                inner.update(n.split()[0] for n in names.split(",") if n.strip())
        else:
            outer.add(top)
    for group in _IMPORT.findall(text):
        for item in group.split(","):
            top, _, rest = item.split()[0].partition(".")
            (inner.add(rest.split(".")[0]) if top == "m1lib" and rest else outer.add(top))
    # top-level modules only: a subpackage (measure/) enters the closure as a root
    inner = {m for m in inner if (PACKAGE_DIR / f"{m}.py").is_file()}
    return inner, outer - set(sys.stdlib_module_names) - {"__future__", "m1lib"}


@lru_cache(maxsize=None)
def code_closure(roots: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The m1lib modules ``roots`` import (transitively, themselves included) and the
    third-party top-level modules those import."""
    todo, seen, libs = list(roots), set(), set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for path in _sources(m):
            inner, outer = _imports(path)
            libs |= outer
            todo += sorted(inner - seen - DRAWING_ONLY)
    return tuple(sorted(seen)), tuple(sorted(libs))


def code_hash(roots: tuple[str, ...]) -> str:
    """SHA-256 over the source of :func:`code_closure` of ``roots``."""
    h = hashlib.sha256()
    for m in code_closure(tuple(roots))[0]:
        for path in _sources(m):
            h.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def measurement_code() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The m1lib modules and third-party top-level modules that measurement depends on."""
    return code_closure(MEASUREMENT_ROOTS)


def measurement_code_hash() -> str:
    """SHA-256 over the source of every m1lib module measurement depends on."""
    return code_hash(MEASUREMENT_ROOTS)


#: Import names whose distribution is named otherwise (``packages_distributions()`` would
#: find them all, but scans every installed package: seconds on a busy machine).
DISTRIBUTIONS = {"yaml": "PyYAML", "sklearn": "scikit-learn", "skimage": "scikit-image", "PIL": "Pillow"}


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str | None]:
    """Installed versions of the distributions measurement code imports (and Python's).

    A module whose distribution is not found is recorded as None (and, should it be
    installed later, the key changes).
    """
    return versions_of(measurement_code()[1])


def versions_of(modules) -> dict[str, str | None]:
    """Python's version and the installed version of the distribution behind each
    top-level module in ``modules`` (None where none is found)."""
    out = {"python": sys.version.split()[0]}
    for top in modules:
        dist = DISTRIBUTIONS.get(top, top)
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- input files
def _paths(value) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [Path(value)]
    if isinstance(value, dict):
        value = value.values()
    out = []
    for v in value:
        out += _paths(getattr(v, "path", v))
    return out


def input_files(ds) -> list[Path]:
    """Every file a measurement of ``ds`` reads: images, every sidecar they inherit from
    (BIDS inheritance, as :mod:`m1lib.dataset` resolved it), annotations and label maps
    with their lookup tables."""
    files = set()
    for echoes in ds.images.values():
        for e in echoes:
            files.add(Path(e.path))
            files.update(Path(p) for p in e.sidecars)
    for value in ds.annotations.values():
        files.update(p for p in _paths(value) if p.is_file())
    for lm in ds.label_maps.values():
        files.update((Path(lm.path), Path(lm.lookup)))
    return sorted(files)


def _signature(st) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def fingerprint_files(root: Path, files, known: dict | None = None) -> dict[str, dict]:
    """``{relative path: {"sha256", "stat", "recorded_ns"}}`` for ``files``.

    A file keeps its digest from ``known`` only when it is larger than
    :data:`ALWAYS_HASH_BYTES`, its stat signature is unchanged, and it was last
    changed at least :data:`RACY_S` before that signature was recorded.
    """
    known = known or {}
    now = time.time_ns()
    out = {}
    for p in files:
        p = Path(p)
        try:
            rel = str(p.relative_to(root))
        except ValueError:
            rel = str(p)
        st = p.stat()
        sig = _signature(st)
        prev = known.get(rel) or {}
        racy = max(st.st_mtime_ns, st.st_ctime_ns) >= prev.get("recorded_ns", 0) - RACY_S * 1e9
        if st.st_size > ALWAYS_HASH_BYTES and prev.get("stat") == sig and not racy and "sha256" in prev:
            digest, recorded = prev["sha256"], prev["recorded_ns"]
        else:
            digest, recorded = sha256_file(p), now
        out[rel] = {"sha256": digest, "stat": sig, "recorded_ns": recorded}
    return out


def measurement_key(ds, known: dict | None = None) -> tuple[dict, dict]:
    """The cache key of a measurement of ``ds`` and the file records behind it."""
    s = ds.manifest.settings
    files = fingerprint_files(Path(ds.manifest.root), input_files(ds), known)
    settings = {k: v for k, v in s.model_dump(mode="json").items()
                if k not in ("alpha", "n_bootstrap", "seed", "allow_unmeasured", "scheduler")}
    key = {"m1lib": __version__, "code": measurement_code_hash(), "libraries": library_versions(),
           "settings": settings, "inputs": {rel: f["sha256"] for rel, f in files.items()}}
    return key, files


# --------------------------------------------------------------------------- executors
class _Serial:
    """An executor that runs each task at once in this process (``jobs=1``)."""

    def submit(self, fn, *args, **kwargs) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through .result(), as a pool would
            fut.set_exception(exc)
        return fut

    def shutdown(self, wait: bool = True) -> None:
        pass


class CountingExecutor:
    """Wrap an executor (a process pool, a dask Client, ...) to report each finished task."""

    def __init__(self, inner, on_done):
        self.inner, self.on_done = inner, on_done

    def submit(self, fn, *args, **kwargs):
        fut = self.inner.submit(fn, *args, **kwargs)
        fut.add_done_callback(lambda _f: self.on_done())
        return fut


def normalise_failures(failures: pd.DataFrame) -> pd.DataFrame:
    """The failures table with columns ``participant_id, label, kind, reason`` (label n/a
    when the whole participant failed)."""
    f = failures.copy()
    if "label" not in f.columns:
        f.insert(1, "label", "n/a")
    f["label"] = f["label"].fillna("n/a").replace("", "n/a")
    extra = [c for c in f.columns if c not in FAILURE_COLUMNS]
    return f[list(FAILURE_COLUMNS) + extra].reset_index(drop=True)


# --------------------------------------------------------------------------- the cache
def cache_paths(table_path: Path) -> tuple[Path, Path, Path]:
    """Measurement table, failures table and key file that belong together."""
    table_path = Path(table_path)
    return (table_path, table_path.with_name(table_path.stem + "_failures.tsv"),
            table_path.with_name(table_path.stem + ".inputs.json"))


def read_measured(table_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The measurement and failures tables as written (so fresh and cached runs agree)."""
    table_path, fail_path, _ = cache_paths(table_path)
    table = pd.read_csv(table_path, sep="\t", keep_default_na=False, na_values=["n/a"])
    failures = (pd.read_csv(fail_path, sep="\t", keep_default_na=False, na_values=["n/a"], dtype=str)
                if fail_path.is_file() else pd.DataFrame(columns=list(FAILURE_COLUMNS)))
    return table, normalise_failures(failures)


def cached(ds, table_path: Path) -> tuple[bool, dict, dict]:
    """Whether the table at ``table_path`` is current for ``ds``; the key and file records."""
    table_path, _, key_path = cache_paths(table_path)
    try:
        stored = json.loads(key_path.read_text())
    except (OSError, json.JSONDecodeError):
        stored = {}
    key, files = measurement_key(ds, stored.get("files"))
    return table_path.is_file() and stored.get("key") == key, key, files


def store(table_path: Path, table: pd.DataFrame, failures: pd.DataFrame, key: dict, files: dict,
          description: dict | None = None) -> None:
    """Write the tables, then the key that vouches for them (last, so a crash leaves no key)."""
    table_path, fail_path, key_path = cache_paths(table_path)
    key_path.unlink(missing_ok=True)
    if description is not None:
        write_atomic(table_path.parent / "dataset_description.json",
                     json.dumps(description, indent=2, sort_keys=True) + "\n")
    write_atomic(table_path, to_tsv(table))
    write_atomic(fail_path, to_tsv(normalise_failures(failures)))
    write_atomic(key_path, json.dumps({"key": key, "files": files}, sort_keys=True, indent=1))
