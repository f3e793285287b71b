"""The report: run every notebook with papermill into figures, tables, HTML and results.json.

The run is built in a staging folder beside the target and swapped into place only
when it is complete, so a failed or interrupted run leaves the previous report as
it was. Each notebook records what it produced through :class:`Recorder`; a
notebook that "succeeds" without that record, or whose listed files are missing,
has failed.
"""
from __future__ import annotations

import hashlib
import html
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from . import __version__
from .errors import DataError
from .paper import paper_comparison
from .results import key_part

KERNEL_NAME = "m1lib"
NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
OUTPUTS = "_outputs"          # per-notebook records inside the report
CELL_TIMEOUT_S = 600          # a hung cell cannot hang CI
KERNEL_START_RETRIES = 3      # parallel kernel starts can race for ports (papermill#511)
PACKAGES = ("numpy", "scipy", "pandas", "statsmodels", "nibabel", "matplotlib", "seaborn",
            "papermill", "nbconvert", "nbclient", "ipykernel", "pydantic", "PyYAML")


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
    """

    name: str
    out_dir: Path = Path(".")
    figure_formats: tuple[str, ...] = ("png", "pdf")
    files: list[str] = field(default_factory=list)
    registry: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)
        self.figure_formats = tuple(self.figure_formats)

    def figure(self, fig, stem: str) -> list[Path]:
        """Save ``fig`` as ``figures/<stem>.<fmt>`` for every format (deterministic bytes)."""
        from .figures import save_figure

        paths = save_figure(fig, self.out_dir / "figures" / stem, self.figure_formats)
        self.files += [str(p.relative_to(self.out_dir)) for p in paths]
        return paths

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
        from .results import registry_to_json

        missing = [f for f in self.files if not (self.out_dir / f).is_file()]
        if missing:
            raise RuntimeError(f"{self.name}: outputs missing: {missing}")
        rec = {"name": self.name, "files": sorted(self.files),
               "registry": json.loads(registry_to_json(self.registry))}
        path = self.out_dir / OUTPUTS / f"{self.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
        return path


# --------------------------------------------------------------------------- helpers
def notebooks(only: list[str] | None = None, folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The report's notebooks in the paper's order (``NN_name.ipynb``), optionally a subset."""
    all_nb = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return all_nb
    by_name = {p.stem: p for p in all_nb}
    by_name.update({p.stem.split("_", 1)[0]: p for p in all_nb})
    unknown = [n for n in only if n not in by_name and n.removesuffix(".ipynb") not in by_name]
    if unknown:
        raise DataError(f"unknown notebook(s) {unknown}; available: {', '.join(p.stem for p in all_nb)}",
                        field="--only")
    return [by_name[n.removesuffix(".ipynb")] for n in only]


def ensure_kernel() -> str:
    """Make sure the project's kernel runs *this* interpreter (installing it if missing).

    A user-level kernelspec of the same name would win over ours, so it is checked,
    not assumed (CONVENTIONS trap 1).
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    ksm = KernelSpecManager()
    try:
        spec = ksm.get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        from ipykernel.kernelspec import install

        install(kernel_name=KERNEL_NAME, display_name="m1lib (project .venv)", prefix=sys.prefix)
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    exe = spec.argv[0]
    if exe not in ("python", "python3", "{python}") and \
            Path(exe).resolve() != Path(sys.executable).resolve():
        raise DataError(f"Jupyter kernel '{KERNEL_NAME}' runs {exe}, not this environment's "
                        f"{sys.executable}; remove the other kernelspec ({spec.resource_dir}) "
                        "or run 'make setup'", field="kernel")
    return KERNEL_NAME


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def package_fingerprint() -> str:
    """Hash of m1lib's own source, so a code change re-runs the notebooks."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def data_fingerprint(tables) -> dict[str, str]:
    """Hashes of what the notebooks read (tables as analysed, and the manifest)."""
    from .pipeline import to_tsv

    out = {"manifest": _sha(tables.manifest.path.read_bytes()),
           "participants": _sha(to_tsv(tables.participants).encode()),
           "reads": _sha(to_tsv(tables.reads).encode()),
           "measurements": _sha(to_tsv(tables.measurements).encode())}
    if tables.truth is not None:
        out["truth"] = _sha(to_tsv(tables.truth).encode())
    return out


def git_state(repo: Path = NOTEBOOK_DIR.parent) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                    capture_output=True, text=True, check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


@dataclass
class NotebookRun:
    name: str
    status: str              # "ok", "cached", "failed"
    seconds: float = 0.0
    error: str = ""
    key: str = ""


def _any_cell_ran(path: Path) -> bool:
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:
        return False
    return any(c.get("execution_count") for c in nb.cells if c.cell_type == "code")


def _execute(nb: Path, out_nb: Path, params: dict, cwd: Path, kernel: str) -> None:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    for attempt in range(1, KERNEL_START_RETRIES + 1):
        try:
            # Not papermill's cwd=: it chdirs the whole process, which races between threads.
            # nbclient starts the kernel in resources["metadata"]["path"] instead.
            pm.execute_notebook(str(nb), str(out_nb), parameters=params, kernel_name=kernel,
                                resources={"metadata": {"path": str(cwd)}},
                                progress_bar=False, execution_timeout=CELL_TIMEOUT_S,
                                start_timeout=120,
                                # the kernel's own start-up chatter is not the user's business
                                extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
            return
        except PapermillExecutionError:
            raise
        except Exception:
            # A kernel that failed to start (e.g. a ZMQ port race) ran no cell: retry it.
            # Anything that happened after a cell ran is a real failure.
            if attempt == KERNEL_START_RETRIES or _any_cell_ran(out_nb):
                raise
            time.sleep(1.0 * attempt)


def _describe_failure(exc: BaseException, out_nb: Path) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        src = " ".join(exc.source.strip().splitlines()[:1])[:80]
        return (f"cell {exc.cell_index} (execution count {exc.exec_count}: {src!r}) raised "
                f"{exc.ename}: {' '.join(str(exc.evalue).split())}")
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def export_html(executed: Path, target: Path) -> None:
    """HTML of an executed notebook without code input (nbconvert ``exclude_input``)."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    target.write_text(body, encoding="utf-8")


def strip_papermill_metadata(path: Path) -> None:
    """Drop run-specific papermill timings from an executed notebook (stable diffs)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)


# --------------------------------------------------------------------------- the run
def run_report(manifest: str | Path = "data_manifest.yaml", out: str | Path = "reports/latest",
               only: list[str] | None = None, jobs: int | None = None, force: bool = False,
               notebook_dir: Path = NOTEBOOK_DIR, log=print) -> int:
    """Build the report. Returns 0 on success, 1 when any notebook failed.

    Parameters
    ----------
    manifest : path
        Data manifest.
    out : path
        Report folder; replaced only when the new run is complete.
    only : list of str, optional
        Notebook names (``04_correlations`` or ``04``) to run; others are kept from
        the previous report when present.
    jobs : int, optional
        Notebooks executed at once (default: number of cores).
    force : bool
        Re-run notebooks whose inputs did not change.
    """
    from .pipeline import load_tables
    from .results import registry_from_json, registry_to_json

    t0 = time.perf_counter()
    manifest = Path(manifest).resolve()
    out = Path(out).resolve()
    kernel = ensure_kernel()
    tables = load_tables(manifest, log=log)
    nbs = notebooks(only, notebook_dir)
    jobs = max(1, jobs or os.cpu_count() or 1)
    data_fp = data_fingerprint(tables)
    pkg_fp = package_fingerprint()
    s = tables.manifest.settings
    params = {"manifest": str(manifest), "out_dir": ".", "figure_formats": ["png", "pdf"],
              "alpha": s.alpha, "n_boot": s.n_bootstrap, "seed": s.seed}
    previous = _previous_provenance(out)

    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    # mkdtemp creates 0700; the report is for the group too (honour the umask)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)
    failed_dir = out.parent / f"{out.name}-failed"
    runs: dict[str, NotebookRun] = {}
    try:
        # Notebooks not selected by --only are carried over from the previous report.
        selected = {p.stem for p in nbs}
        todo = []
        for nb in notebooks(None, notebook_dir):
            key = _sha(json.dumps({"nb": _sha(nb.read_bytes()), "params": {**params, "manifest": None},
                                   "data": data_fp, "m1lib": pkg_fp}, sort_keys=True).encode())
            prev = previous.get("notebooks", {}).get(nb.stem, {})
            reusable = prev.get("key") == key and prev.get("status") in ("ok", "cached") and \
                _outputs_present(out, nb.stem)
            if nb.stem in selected and (force or not reusable):
                todo.append((nb, key))
            elif _outputs_present(out, nb.stem):
                _copy_outputs(out, stage, nb.stem)
                runs[nb.stem] = NotebookRun(nb.stem, "cached", key=prev.get("key", ""))
            elif nb.stem in selected:
                todo.append((nb, key))
        log(f"running {len(todo)} notebook(s) with {min(jobs, max(1, len(todo)))} job(s); "
            f"{len(runs)} unchanged")
        (stage / "notebooks").mkdir(exist_ok=True)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futs = {pool.submit(_run_one, nb, key, stage, params, kernel): nb for nb, key in todo}
            for k, fut in enumerate(as_completed(futs), 1):
                r = fut.result()
                runs[r.name] = r
                mark = "ok" if r.status == "ok" else "FAILED"
                log(f"[{k}/{len(todo)}] {r.name}: {mark} ({r.seconds:.1f} s){'  ' + r.error if r.error else ''}")
        failures = [r for r in runs.values() if r.status == "failed"]
        if failures:
            if failed_dir.exists():
                shutil.rmtree(failed_dir)
            failed_dir.mkdir(parents=True)
            for r in failures:
                src = stage / "notebooks" / f"{r.name}.ipynb"
                if src.is_file():
                    shutil.copy2(src, failed_dir / src.name)
                print(f"m1lib: notebook {r.name} failed: {r.error} (kept in {failed_dir / (r.name + '.ipynb')})",
                      file=sys.stderr)
            print(f"m1lib: {len(failures)} notebook(s) failed; the previous report in {out} is untouched",
                  file=sys.stderr)
            return 1
        registry = {}
        for rec in sorted((stage / OUTPUTS).glob("*.json")):
            part = json.dumps(json.loads(rec.read_text())["registry"])
            registry.update(registry_from_json(part))  # null -> NaN, as written by Recorder
        (stage / "results.json").write_text(registry_to_json(registry))
        paper_comparison(registry, replica=tables.manifest.replica is not None).to_csv(
            stage / "paper_comparison.csv", index=False,
                                           lineterminator="\n", float_format="%.10g")
        prov = {"m1lib": __version__, "git": git_state(), "python": sys.version.split()[0],
                "interpreter": sys.executable, "platform": platform.platform(),
                "packages": package_versions(), "kernel": kernel,
                "manifest": str(manifest), "dataset": str(tables.manifest.root),
                "measurement_source": tables.source, "inputs": data_fp,
                "parameters": {**params}, "seed": s.seed,
                "notebooks": {n: {"status": r.status, "seconds": round(r.seconds, 2), "key": r.key}
                              for n, r in sorted(runs.items())},
                "total_seconds": round(time.perf_counter() - t0, 2),
                # what the index must say loudly (issue 10; the run engine owns the refusal)
                "dataset_kind": "replica" if tables.manifest.replica is not None else "user",
                "unmeasured": [{k: (None if v != v else v) for k, v in r.items()}
                               for r in tables.failures.reindex(columns=["participant_id", "label", "reason"])
                               .to_dict("records")],
                "allow_unmeasured": bool(getattr(s, "allow_unmeasured", False)),
                "labels": {key_part(g): g for g in (s.patient_group, *s.comparison_groups)}}
        (stage / "provenance.json").write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n")
        from .narrative import write_index

        write_index(stage, registry, prov)
        _swap_into_place(stage, out)
        if failed_dir.exists():
            shutil.rmtree(failed_dir)
        log(f"report: {out / 'index.html'} ({time.perf_counter() - t0:.1f} s)")
        return 0
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def _run_one(nb: Path, key: str, stage: Path, params: dict, kernel: str) -> NotebookRun:
    t = time.perf_counter()
    out_nb = stage / "notebooks" / nb.name
    try:
        _execute(nb, out_nb, params, stage, kernel)
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
        return NotebookRun(nb.stem, "failed", time.perf_counter() - t, _describe_failure(exc, out_nb), key)


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


def _swap_into_place(stage: Path, out: Path) -> None:
    """Replace ``out`` by ``stage`` with two renames (the old report survives a crash)."""
    old = out.with_name(f".{out.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        os.replace(out, old)
    os.replace(stage, out)
    if old.exists():
        shutil.rmtree(old)
