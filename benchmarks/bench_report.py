"""Benchmark: the whole report vs the floor of running as many notebooks that only import.

Both are measured in the same run, with the same kernel and the same number of jobs,
on an already generated and measured replica (both warmed once first):

- report: ``m1lib.report.run_report(force=True)`` (every notebook executed, HTML,
  results.json, provenance, index);
- floor: the same number of notebooks whose one cell imports m1lib's dependencies,
  executed by papermill through the runner's own ``_execute`` with the same jobs.

Run: ``.venv/bin/python benchmarks/bench_report.py [--jobs N] [--repeats R]``.
Target (issue 6): report <= 1.5 x floor. Prints the figures; never asserts timings in tests.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from m1lib import report  # noqa: E402
from m1lib.pipeline import load_tables  # noqa: E402

IMPORTS = ("import numpy, scipy.stats, pandas, statsmodels.api, nibabel, matplotlib, seaborn\n"
           "import matplotlib.pyplot as plt\n")


def floor_run(n: int, jobs: int, work: Path, kernel: str) -> float:
    nbdir = work / "floor_nb"
    nbdir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(IMPORTS)]
    paths = []
    for i in range(n):
        p = nbdir / f"{i:02d}_floor.ipynb"
        nbformat.write(nb, p)
        paths.append(p)
    out = work / "floor_out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(lambda p: report._execute(p, out / p.name, {}, out, kernel), paths))
    return time.perf_counter() - t


def report_run(manifest: Path, out: Path, jobs: int) -> float:
    t = time.perf_counter()
    code = report.run_report(manifest, out, jobs=jobs, force=True, log=lambda *a: None)
    if code != 0:
        raise SystemExit("the report failed; see above")
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--manifest", type=Path, default=ROOT / "data_manifest.yaml")
    args = ap.parse_args(argv)
    kernel = report.ensure_kernel()
    t = time.perf_counter()
    load_tables(args.manifest, log=print)  # generate + measure once if missing (not timed below)
    prep = time.perf_counter() - t
    n = len(report.notebooks())
    work = Path(tempfile.mkdtemp(prefix="m1lib-bench-report-"))
    try:
        out = work / "report"
        report_run(args.manifest, out, args.jobs)      # warm-up (imports, caches)
        floor_run(n, args.jobs, work, kernel)
        rep, flo = [], []
        for _ in range(args.repeats):  # interleaved, so machine load hits both alike
            rep.append(report_run(args.manifest, out, args.jobs))
            flo.append(floor_run(n, args.jobs, work, kernel))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r, f = statistics.median(rep), statistics.median(flo)
    res = {"notebooks": n, "jobs": args.jobs, "repeats": args.repeats, "data_prep_s": round(prep, 2),
           "report_s": round(r, 2), "floor_s": round(f, 2), "ratio": round(r / f, 3),
           "report_runs_s": [round(x, 2) for x in rep], "floor_runs_s": [round(x, 2) for x in flo],
           "target_ratio": 1.5}
    print(f"notebooks: {n}, jobs: {args.jobs}, repeats: {args.repeats} (median)")
    print(f"report on a generated and measured replica: {r:6.2f} s")
    print(f"floor (same number of import-only notebooks): {f:6.2f} s")
    print(f"ratio: {r / f:.2f} (target <= 1.5)")
    outdir = ROOT / "benchmarks" / "results"
    outdir.mkdir(exist_ok=True)
    (outdir / "bench_report.json").write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
