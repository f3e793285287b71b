"""The report: run every notebook with papermill into figures, tables, HTML and results.json.

One run, in order: validate the dataset once (a problem: exit 2 before any notebook
starts), generate the replica or measure (cached by content), refuse when analysed
participants could not be measured (exit 3, unless allowed), freeze the tables into
the run's snapshot, then run the notebooks on that snapshot. The run is built in a
staging folder beside the target, under a lock, and swapped into place only when it
is complete, so a failed, interrupted or killed run leaves the previous report as it
was. Each notebook records what it produced through :class:`Recorder`; a notebook
that "succeeds" without that record, or whose listed files are missing, has failed.

Exit codes of :func:`run_report`: 0 success; 1 a notebook failed (a bug); 2 a problem
with the data, manifest or arguments (also a ``DataError`` raised inside a notebook);
3 participants that could not be measured.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import __version__
from .errors import DataError
from .execute import (KERNEL_NAME, NotebookRun, describe_failure, ensure_kernel, execute,
                      export_html, notebooks, packaged_notebooks, strip_papermill_metadata)
from .fsutil import RunLock, recover_dir, replace_dir, staging_dir
from .manifest import load_manifest
from .memo import MEMO_DIR, Memo
from .narrative import write_index
from .paper import paper_comparison
from .pipeline import build_tables, run_record
from .progress import Progress
from .provenance import git_state, package_fingerprint, package_versions
from .results import key_part, registry_from_json, registry_to_json
from .snapshot import SNAPSHOT_DIR, freeze

NOTEBOOK_DIR = packaged_notebooks()
OUTPUTS = "_outputs"          # per-notebook records inside the report
EXIT_OK, EXIT_BUG, EXIT_DATA, EXIT_UNMEASURED = 0, 1, 2, 3
_execute = execute            # the benchmark's floor runs notebooks through the same call


# --------------------------------------------------------------------------- recording
@dataclass
class Recorder:
    """What one notebook produced: files and registry entries, written at :meth:`finish`.

    Parameters
    ----------
    name : str
        Notebook name, e.g. ``"04_correlations"``.
    out_dir : str or Path
        The report folder (the notebook's working directory).
    figure_formats : sequence of str
        Formats each figure is saved in.
    memo : Memo, optional
        Where :meth:`draw` keeps rendered figures (default: none, everything drawn).
    """

    name: str
    out_dir: Path = Path(".")
    figure_formats: tuple[str, ...] = ("png", "pdf")
    memo: Memo | None = None
    files: list[str] = field(default_factory=list)
    registry: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)
        self.figure_formats = tuple(self.figure_formats)
        if self.memo is None:
            self.memo = Memo(None)

    def figure(self, fig, stem: str) -> list[Path]:
        """Save ``fig`` as ``figures/<stem>.<fmt>`` for every format (deterministic bytes)."""
        from .figures import save_figure  # matplotlib: only where a notebook draws

        paths = save_figure(fig, self.out_dir / "figures" / stem, self.figure_formats)
        self.files += [str(p.relative_to(self.out_dir)) for p in paths]
        return paths

    def draw(self, stem: str, make, *args, **kwargs):
        """Draw ``make(*args, **kwargs)`` (a function of :mod:`m1lib.figures` or alike),
        save it as ``figures/<stem>.<fmt>`` and return the image to display.

        With a :class:`~m1lib.memo.Memo`, the rendered bytes are kept under a key of
        the function, its arguments' content, its code, the formats and matplotlib's
        settings, so an unchanged figure is neither drawn nor rendered again.
        """
        from . import figures  # matplotlib: only where a notebook draws (the runner starts fast)

        rendered = figures.render_memo(self.memo, make, args, kwargs, self.figure_formats)
        paths = figures.write_rendered(rendered, self.out_dir / "figures" / stem, self.figure_formats)
        self.files += [str(p.relative_to(self.out_dir)) for p in paths]
        return figures.display_image(rendered["display"])

    def table(self, df: pd.DataFrame, stem: str) -> Path:
        """Write ``tables/<stem>.csv`` (deterministic: fixed float format, ``\\n`` endings)."""
        path = self.out_dir / "tables" / f"{stem}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(path, index=False, lineterminator="\n", float_format="%.10g")
        self.files.append(str(path.relative_to(self.out_dir)))
        return path

    def file(self, path) -> Path:
        """Register a file that other code wrote inside the report (e.g. an audit figure)."""
        path = Path(path)
        self.files.append(str(path.relative_to(self.out_dir) if path.is_absolute() else path))
        return path

    def record(self, registry: dict[str, float]) -> None:
        """Add registry entries (flat dotted keys -> numbers)."""
        clash = set(registry) & set(self.registry)
        if clash:
            raise ValueError(f"registry keys recorded twice: {sorted(clash)}")
        self.registry.update(registry)

    def finish(self) -> Path:
        """Write the record the runner checks; call it last in the notebook."""
        missing = [f for f in self.files if not (self.out_dir / f).is_file()]
        if missing:
            raise RuntimeError(f"{self.name}: outputs missing: {missing}")
        rec = {"name": self.name, "files": sorted(self.files),
               "registry": json.loads(registry_to_json(self.registry)),
               "memo": {"hits": self.memo.hits, "misses": self.memo.misses}}
        path = self.out_dir / OUTPUTS / f"{self.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
        return path


# --------------------------------------------------------------------------- the run
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _err(msg: str) -> None:
    print(f"m1lib: {msg}", file=sys.stderr)


def run_report(manifest: str | Path = "data_manifest.yaml", out: str | Path = "reports/latest",
               only: list[str] | None = None, jobs: int | None = None, force: bool = False,
               notebook_dir: Path | None = None, allow_unmeasured: bool | None = None,
               scheduler: str | None = None, no_cache: bool = False, log=print) -> int:
    """Build the report; return the exit code (0, 1, 2 or 3; see the module docstring).

    Parameters
    ----------
    manifest : path
        Data manifest.
    out : path
        Report folder; replaced only when the new run is complete.
    only : list of str, optional
        Notebook names (``04_correlations`` or ``04``) to run. The others are carried
        over from the previous report only when their inputs (snapshot, code,
        parameters) are unchanged; otherwise they are re-run too.
    jobs : int, optional
        Notebooks executed at once, and measurement workers (default: number of cores).
    force : bool
        Re-run notebooks whose inputs did not change.
    notebook_dir : path, optional
        Another folder of notebooks (tests); default: the installed ``m1lib.notebooks``.
    allow_unmeasured : bool, optional
        Run without participants that could not be measured (default:
        ``settings.allow_unmeasured``).
    scheduler : str, optional
        dask scheduler address to measure on (default: ``settings.scheduler``).
    no_cache : bool
        Run the notebooks without their memo (:mod:`m1lib.memo`, kept in
        ``<output folder>/memo/``): every bootstrap, simulation and figure is computed
        again. The measurement cache is not affected.

    Raises
    ------
    DataError
        A problem with the manifest, the dataset or the arguments (the CLI: exit 2).
    """
    t0 = time.perf_counter()
    manifest = Path(manifest).resolve()
    out = Path(out).resolve()
    folder = Path(notebook_dir) if notebook_dir is not None else NOTEBOOK_DIR
    every = notebooks(None, folder)
    if not every:
        _err(f"no notebooks found in {folder}; the installation is incomplete (reinstall m1lib)")
        return EXIT_BUG
    selected = notebooks(only, folder)
    m = load_manifest(manifest)
    jobs = max(1, jobs or os.cpu_count() or 1)
    with RunLock(out, wait_s=3600, log=log):
        recover_dir(out, log=log)
        tables = build_tables(m, jobs=jobs, scheduler=scheduler, log=log)
        record = run_record(tables)
        allow = m.settings.allow_unmeasured if allow_unmeasured is None else bool(allow_unmeasured)
        if record["unmeasured"] and not allow:
            for r in record["unmeasured"]:
                _err(f"{r['participant_id']}: {r['label']}: could not be measured: {r['reason']}")
            n = len({r["participant_id"] for r in record["unmeasured"]})
            _err(f"{n} analysed participant(s) could not be measured, so no notebook was run; fix the "
                 "above, or report without them with --allow-unmeasured (or settings.allow_unmeasured: "
                 f"true in {manifest.name})")
            return EXIT_UNMEASURED
        if record["unmeasured"]:
            log(f"running WITHOUT {len(record['unmeasured'])} unmeasured participant/label(s) "
                "(allowed); the report says so")
        stage = staging_dir(out)
        try:
            params = _params(m, manifest, no_cache)
            return _run_in_stage(tables, {**record, "allow_unmeasured": allow}, m, params, manifest, out,
                                 stage, every, selected, jobs, force, t0, log)
        finally:
            if stage.exists():
                shutil.rmtree(stage, ignore_errors=True)


def _params(m, manifest: Path, no_cache: bool = False) -> dict:
    s = m.settings
    return {"manifest": str(manifest), "out_dir": ".", "figure_formats": ["png", "pdf"],
            "alpha": s.alpha, "n_boot": s.n_bootstrap, "seed": s.seed,
            "cache_dir": None if no_cache else str(m.output_dir / MEMO_DIR)}


def _notebook_key(nb: Path, params: dict, snapshot_hash: str, code: str) -> str:
    # the memo's folder is not an input: a memo only ever returns what would be computed
    return _sha(json.dumps({"nb": _sha(nb.read_bytes()), "params": {**params, "manifest": None,
                                                                    "cache_dir": None},
                            "snapshot": snapshot_hash, "m1lib": code}, sort_keys=True).encode())


def _plan(every, selected, keys, previous, out, force, log) -> tuple[list[Path], list[str]]:
    """Which notebooks to run and which to carry over from the previous report."""
    chosen = {p.stem for p in selected}
    todo, carry = [], []
    for nb in every:
        prev = previous.get("notebooks", {}).get(nb.stem, {})
        current = prev.get("key") == keys[nb.stem] and prev.get("status") in ("ok", "cached") \
            and _outputs_present(out, nb.stem)
        if nb.stem in chosen:
            if current and not force:
                carry.append(nb.stem)
            else:
                todo.append(nb)
        elif current:
            carry.append(nb.stem)
        elif _outputs_present(out, nb.stem):
            log(f"{nb.stem}: its inputs changed since the previous report; re-running it too")
            todo.append(nb)
    return todo, carry


def _run_in_stage(tables, record, m, params, manifest, out, stage, every, selected, jobs, force, t0,
                  log) -> int:
    meta = freeze(tables, stage / SNAPSHOT_DIR, {**record, "origin": "report"})
    code = package_fingerprint()
    keys = {nb.stem: _notebook_key(nb, params, meta["hash"], code) for nb in every}
    previous = _previous_provenance(out)
    todo, carry = _plan(every, selected, keys, previous, out, force, log)
    if not todo and previous.get("snapshot", {}).get("hash") == meta["hash"] \
            and previous.get("allow_unmeasured") == record["allow_unmeasured"] \
            and set(previous.get("notebooks", {})) == set(carry):
        log(f"report is up to date: {out / 'index.html'} (nothing changed; --force re-runs)")
        return EXIT_OK
    runs: dict[str, NotebookRun] = {}
    for name in carry:
        _copy_outputs(out, stage, name)
        runs[name] = NotebookRun(name, "cached", key=keys[name])
    (stage / "notebooks").mkdir(exist_ok=True)
    if todo:
        # longest first (by the previous run's times), so the last notebook to start is a short one
        took = {n: v.get("seconds", 0.0) for n, v in previous.get("notebooks", {}).items()}
        todo.sort(key=lambda nb: -took.get(nb.stem, 0.0))
        kernel = ensure_kernel()
        n_jobs = min(jobs, len(todo))
        log(f"running {len(todo)} notebook(s) with {n_jobs} job(s); {len(carry)} unchanged")
        bar = Progress(len(todo), "notebooks")
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            futs = [pool.submit(_run_one, nb, keys[nb.stem], stage, params, kernel) for nb in todo]
            for fut in as_completed(futs):
                r = fut.result()
                runs[r.name] = r
                mark = "ok" if r.status == "ok" else "FAILED"
                bar.advance(note=f"{r.name}: {mark} ({r.seconds:.1f} s)")
    else:
        kernel = KERNEL_NAME
        log(f"running 0 notebook(s); {len(carry)} unchanged")
    failed = [r for r in runs.values() if r.status == "failed"]
    if failed:
        return _report_failures(failed, stage, out)
    return _assemble(runs, stage, out, tables, record, meta, params, kernel, manifest, t0, log)


def _report_failures(failed, stage: Path, out: Path) -> int:
    data = [r for r in failed if r.data_error]
    if data:  # the user's data, found by a notebook: one line each, like any other
        for r in data:
            for line in r.data_error:
                _err(f"{line} (found by notebook {r.name})")
        _err(f"the previous report in {out} is untouched")
        return EXIT_DATA
    failed_dir = out.parent / f"{out.name}-failed"
    shutil.rmtree(failed_dir, ignore_errors=True)
    failed_dir.mkdir(parents=True)
    for r in failed:
        src = stage / "notebooks" / f"{r.name}.ipynb"
        if src.is_file():
            shutil.copy2(src, failed_dir / src.name)
        _err(f"notebook {r.name} failed: {r.error} (kept in {failed_dir / (r.name + '.ipynb')})")
    _err(f"{len(failed)} notebook(s) failed; the previous report in {out} is untouched")
    return EXIT_BUG


def _assemble(runs, stage, out, tables, record, meta, params, kernel, manifest, t0, log) -> int:
    registry = {}
    for rec in sorted((stage / OUTPUTS).glob("*.json")):
        part = json.dumps(json.loads(rec.read_text())["registry"])
        registry.update(registry_from_json(part))  # null -> NaN, as written by Recorder
    n_unmeasured = len({r["participant_id"] for r in record["unmeasured"]})
    if registry.setdefault("cohort.n_unmeasured", n_unmeasured) != n_unmeasured:
        raise RuntimeError(f"cohort.n_unmeasured: a notebook recorded {registry['cohort.n_unmeasured']}, "
                           f"the run counted {n_unmeasured}")
    (stage / "results.json").write_text(registry_to_json(registry))
    s = tables.manifest.settings
    paper_comparison(registry, replica=record["dataset_kind"] == "replica").to_csv(
        stage / "paper_comparison.csv", index=False, lineterminator="\n", float_format="%.10g")
    prov = {"m1lib": __version__, "git": git_state(), "python": sys.version.split()[0],
            "interpreter": sys.executable, "platform": platform.platform(),
            "packages": package_versions(), "kernel": kernel,
            "manifest": str(manifest), "dataset": str(tables.manifest.root),
            "dataset_kind": record["dataset_kind"], "measurement_source": tables.source,
            "output_dir": record["output_dir"], "output_dir_inside_dataset": record["output_dir_inside_dataset"],
            "unmeasured": record["unmeasured"], "allow_unmeasured": record["allow_unmeasured"],
            "snapshot": {"folder": SNAPSHOT_DIR, "hash": meta["hash"],
                         "tables": {n: t["sha256"] for n, t in meta["tables"].items()}},
            "inputs": {"manifest": _sha(manifest.read_bytes()),
                       **{n: t["sha256"] for n, t in meta["tables"].items()}},
            "parameters": {**params}, "seed": s.seed,
            "notebooks": {n: {"status": r.status, "seconds": round(r.seconds, 2), "key": r.key,
                              "memo": _memo_counts(stage, n)}
                          for n, r in sorted(runs.items())},
            "memo": params.get("cache_dir"),
            "total_seconds": round(time.perf_counter() - t0, 2),
            "labels": {key_part(g): g for g in (s.patient_group, *s.comparison_groups)}}
    (stage / "provenance.json").write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n")
    write_index(stage, registry, prov)
    replace_dir(stage, out)
    shutil.rmtree(out.parent / f"{out.name}-failed", ignore_errors=True)
    log(f"report: {out / 'index.html'} ({time.perf_counter() - t0:.1f} s)")
    return EXIT_OK


def _run_one(nb: Path, key: str, stage: Path, params: dict, kernel: str) -> NotebookRun:
    t = time.perf_counter()
    out_nb = stage / "notebooks" / nb.name
    try:
        execute(nb, out_nb, params, stage, kernel)
        rec_path = stage / OUTPUTS / f"{nb.stem}.json"
        if not rec_path.is_file():
            raise RuntimeError("the notebook finished without recording its outputs "
                               "(Recorder.finish() was not reached)")
        rec = json.loads(rec_path.read_text())
        missing = [f for f in rec["files"] if not (stage / f).is_file()]
        if missing:
            raise RuntimeError(f"expected outputs are missing: {missing}")
        strip_papermill_metadata(out_nb)
        export_html(out_nb, stage / f"{nb.stem}.html")
        return NotebookRun(nb.stem, "ok", time.perf_counter() - t, key=key)
    except Exception as exc:  # reported per notebook; the others go on
        error, data_error = describe_failure(exc)
        return NotebookRun(nb.stem, "failed", time.perf_counter() - t, error, key, data_error)


def _memo_counts(stage: Path, name: str) -> dict:
    """Memo hits and misses the notebook recorded (none for a notebook carried over)."""
    try:
        return json.loads((stage / OUTPUTS / f"{name}.json").read_text()).get("memo", {})
    except (OSError, json.JSONDecodeError):
        return {}


def _previous_provenance(out: Path) -> dict:
    try:
        return json.loads((out / "provenance.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _outputs_present(report: Path, name: str) -> bool:
    rec = report / OUTPUTS / f"{name}.json"
    if not rec.is_file():
        return False
    files = json.loads(rec.read_text())["files"]
    return all((report / f).is_file() for f in files) and (report / f"{name}.html").is_file()


def _copy_outputs(src: Path, dst: Path, name: str) -> None:
    rec = src / OUTPUTS / f"{name}.json"
    files = json.loads(rec.read_text())["files"] + [f"{OUTPUTS}/{name}.json", f"{name}.html",
                                                    f"notebooks/{name}.ipynb"]
    for f in files:
        if (src / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / f, dst / f)


