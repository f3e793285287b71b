"""Running one notebook: where the notebooks are, the project's kernel, papermill, HTML.

The notebooks are package data (``m1lib.notebooks``, mapped from the repository's
top-level ``notebooks/`` folder by ``pyproject.toml``), so a regular ``pip install``
runs the same notebooks as a clone.

papermill, nbformat, nbconvert and jupyter_client are imported where a notebook is
actually run, so a report with nothing to re-run (and ``m1lib --help``) stays fast.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import DataError

KERNEL_NAME = "m1lib"
CELL_TIMEOUT_S = 600          # a hung cell cannot hang CI
KERNEL_START_RETRIES = 3      # parallel kernel starts can race for ports (papermill#511)


def packaged_notebooks() -> Path:
    """The folder of the report's notebooks: ``m1lib.notebooks`` wherever it is installed
    (the repository's ``notebooks/`` in an editable install or a source tree)."""
    try:
        # m1lib.notebooks has no __init__.py: a namespace package, whose files() is a
        # MultiplexedPath; its entries are real paths (wheels install unzipped)
        found = [Path(str(t)) for t in resources.files("m1lib.notebooks").iterdir()
                 if t.name.endswith(".ipynb")]
        if found and found[0].is_file():
            return found[0].parent
    except (ModuleNotFoundError, TypeError, FileNotFoundError, NotADirectoryError):
        pass
    return Path(__file__).resolve().parents[1] / "notebooks"  # a source tree, not installed


def notebooks(only: list[str] | None = None, folder: Path | None = None) -> list[Path]:
    """The report's notebooks in the paper's order (``NN_name.ipynb``), optionally a subset."""
    folder = Path(folder) if folder is not None else packaged_notebooks()
    all_nb = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return all_nb
    by_name = {p.stem: p for p in all_nb}
    by_name.update({p.stem.split("_", 1)[0]: p for p in all_nb})
    unknown = [n for n in only if n.removesuffix(".ipynb") not in by_name]
    if unknown:
        raise DataError(f"unknown notebook(s) {unknown}; available: {', '.join(p.stem for p in all_nb)}",
                        field="--only")
    return list(dict.fromkeys(by_name[n.removesuffix(".ipynb")] for n in only))


def ensure_kernel() -> str:
    """Make sure the project's kernel runs *this* interpreter (installing it if missing).

    A user-level kernelspec of the same name would win over ours, so it is checked,
    not assumed (CONVENTIONS trap 1).
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel  # slow import: only when running

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


@dataclass
class NotebookRun:
    name: str
    status: str              # "ok", "cached", "failed"
    seconds: float = 0.0
    error: str = ""
    key: str = ""
    data_error: list[str] | None = None   # a DataError raised in the notebook: its lines


def _any_cell_ran(path: Path) -> bool:
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:
        return False
    return any(c.get("execution_count") for c in nb.cells if c.cell_type == "code")


def execute(nb: Path, out_nb: Path, params: dict, cwd: Path, kernel: str) -> None:
    """Run ``nb`` into ``out_nb`` with papermill, the kernel started in ``cwd``."""
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


def describe_failure(exc: BaseException) -> tuple[str, list[str] | None]:
    """One line for a failed notebook, and the problems when it raised a DataError."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        if exc.ename == "DataError":
            lines = [" ".join(x.split()) for x in str(exc.evalue).splitlines() if x.strip()]
            return "; ".join(lines), lines
        src = " ".join(exc.source.strip().splitlines()[:1])[:80]
        return (f"cell {exc.cell_index} (execution count {exc.exec_count}: {src!r}) raised "
                f"{exc.ename}: {' '.join(str(exc.evalue).split())}"), None
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}", None


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
