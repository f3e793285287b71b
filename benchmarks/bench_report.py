"""Benchmark: the report against floors measured in the same run.

Figures (issue 14, point 6), each with its floor:

1. warm report: ``run_report(force=True)`` on a generated and measured replica
   (every notebook executed, HTML, results.json, provenance, index) vs the floor of
   as many notebooks that only import m1lib's dependencies, run through the runner's
   own ``execute`` with the same jobs; also vs a floor whose notebook saves a figure.
   Target: <= 1.3 x the import-only floor.
2. re-run with nothing changed: ``m1lib report`` (a new process) on an up-to-date
   report vs the floor of starting the interpreter and importing ``m1lib.report``.
   Target: <= 2 s.
3. first report: a new replica generated, measured and reported from nothing (a fresh
   cache folder) in a new process vs the warm report floor. Target: <= 60 s.

With ``--scale N`` (e.g. 10: 360 distinct participants) it also reports the time and
peak memory (largest process, ``ru_maxrss``) of a first report at 1 x and N x, and
with ``--dask`` the measurement of the 1 x replica on a ``dask.distributed``
LocalCluster against the local process pool (identical tables checked).

Run: ``.venv/bin/python benchmarks/bench_report.py [--jobs N] [--repeats R] [--scale 10] [--dask]``.
Prints the figures and writes ``benchmarks/results/bench_report.json``; never asserts timings.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from m1lib import pipeline, report  # noqa: E402
from m1lib.execute import ensure_kernel, execute, notebooks  # noqa: E402

IMPORTS = ("import numpy, scipy.stats, pandas, statsmodels.api, nibabel, matplotlib, seaborn\n"
           "import matplotlib.pyplot as plt\n")
FIGURE = ("fig, ax = plt.subplots(figsize=(7, 4.6))\nax.plot([0, 1], [0, 1])\n"
          "fig.savefig('floor.png', dpi=300)\nfig.savefig('floor.pdf')\n")
QUIET = dict(log=lambda *a: None)


def floor_run(n: int, jobs: int, work: Path, kernel: str, figure: bool = False) -> float:
    nbdir = work / ("floor_fig_nb" if figure else "floor_nb")
    nbdir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(IMPORTS + (FIGURE if figure else ""))]
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
        list(pool.map(lambda p: execute(p, out / p.name, {}, out, kernel), paths))
    return time.perf_counter() - t


def report_run(manifest: Path, out: Path, jobs: int) -> float:
    t = time.perf_counter()
    code = report.run_report(manifest, out, jobs=jobs, force=True, **QUIET)
    if code != 0:
        raise SystemExit("the report failed; see above")
    return time.perf_counter() - t


def process(argv: list[str], cwd: Path | None = None) -> tuple[float, int]:
    """Wall time of a new process and the peak RSS (KiB) of it or any of its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    run = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{run.stderr[-3000:]}")
    return dt, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def first_report(work: Path, n_als: int, n_hs: int, jobs: int, tag: str) -> dict:
    """Generate, measure and report a replica from nothing, in a new process."""
    base = work / tag
    base.mkdir(parents=True)
    m = base / "m.yaml"
    m.write_text(f"dataset: rep\nreplica:\n  n_als: {n_als}\n  n_hs: {n_hs}\n")
    # each scale in its own process so ru_maxrss is that run's
    code = ("import resource, sys, time; from m1lib import report; t = time.perf_counter(); "
            f"c = report.run_report({str(m)!r}, {str(base / 'report')!r}, jobs={jobs}, log=lambda *a: None); "
            "r = resource.getrusage; "
            "print(time.perf_counter() - t, max(r(resource.RUSAGE_SELF).ru_maxrss, "
            "r(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(c)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"first report ({tag}) failed:\n{run.stderr[-3000:]}")
    seconds, rss = run.stdout.split()[-2:]
    return {"participants": n_als + n_hs, "seconds": round(float(seconds), 1),
            "peak_rss_mib": round(int(rss) / 1024, 1)}


def dask_table(manifest: Path, jobs: int) -> dict:
    from dask.distributed import LocalCluster

    from m1lib.dataset import load_dataset
    from m1lib.manifest import load_manifest

    ds = load_dataset(load_manifest(manifest))
    t = time.perf_counter()
    local, _ = pipeline.measure_cached(ds, jobs=jobs, force=True, out=Path(tempfile.mkdtemp()) / "m.tsv", **QUIET)
    t_local = time.perf_counter() - t
    with LocalCluster(n_workers=jobs, threads_per_worker=1, dashboard_address=None) as cluster:
        t = time.perf_counter()
        remote, _ = pipeline.measure_cached(ds, scheduler=cluster.scheduler_address, force=True,
                                            out=Path(tempfile.mkdtemp()) / "m.tsv", **QUIET)
        t_dask = time.perf_counter() - t
    return {"local_pool_s": round(t_local, 2), "dask_localcluster_s": round(t_dask, 2),
            "ratio": round(t_dask / t_local, 2), "identical_tables": bool(local.equals(remote))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--manifest", type=Path, default=ROOT / "data_manifest.yaml")
    ap.add_argument("--scale", type=int, default=0, help="also time a first report at 1 x and this many x")
    ap.add_argument("--dask", action="store_true", help="also measure on a dask LocalCluster")
    ap.add_argument("--skip-first", action="store_true", help="skip the first-report figure")
    ap.add_argument("--skip-warm", action="store_true",
                    help="skip the warm-report and re-run figures (e.g. for a scaling-only run)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "bench_report.json",
                    help="where to write the figures")
    args = ap.parse_args(argv)
    kernel = ensure_kernel()
    t = time.perf_counter()
    pipeline.load_tables(args.manifest, jobs=args.jobs, log=print)  # generate + measure once if needed
    prep = time.perf_counter() - t
    n = len(notebooks())
    work = Path(tempfile.mkdtemp(prefix="m1lib-bench-report-"))
    res: dict = {"notebooks": n, "jobs": args.jobs, "repeats": args.repeats, "data_prep_s": round(prep, 2)}
    try:
        out = work / "report"
        if not args.skip_warm:
            warm(args, res, out, n, work, kernel)
        f = res.get("floor_import_only_s")
        if not args.skip_first:
            first = first_report(work, 22, 14, args.jobs, "first")
            res["first_report"] = {**first, "target_s": 60, "floor_warm_import_only_s": f}
            print(f"first report from nothing:   {first['seconds']:6.1f} s   (target <= 60 s; "
                  f"peak RSS {first['peak_rss_mib']} MiB)")
        if args.scale:
            one = res.get("first_report") or first_report(work, 22, 14, args.jobs, "x1")
            big = first_report(work, 22 * args.scale, 14 * args.scale, args.jobs, f"x{args.scale}")
            res["scaling"] = {"x1": one, f"x{args.scale}": big,
                              "time_ratio": round(big["seconds"] / one["seconds"], 2),
                              "memory_ratio": round(big["peak_rss_mib"] / one["peak_rss_mib"], 2)}
            print(f"scale 1 x:  {one['participants']:4d} participants {one['seconds']:7.1f} s "
                  f"peak {one['peak_rss_mib']:7.1f} MiB")
            print(f"scale {args.scale} x: {big['participants']:4d} participants {big['seconds']:7.1f} s "
                  f"peak {big['peak_rss_mib']:7.1f} MiB  (time x{res['scaling']['time_ratio']}, "
                  f"memory x{res['scaling']['memory_ratio']})")
        if args.dask:
            res["dask"] = dask_table(args.manifest, args.jobs)
            d = res["dask"]
            print(f"measure 1 x: local pool {d['local_pool_s']} s, dask LocalCluster {d['dask_localcluster_s']} s "
                  f"(x{d['ratio']}), identical tables: {d['identical_tables']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


def warm(args, res: dict, out: Path, n: int, work: Path, kernel: str) -> None:
    """The warm-report and unchanged re-run figures, each against its floor (interleaved)."""
    report_run(args.manifest, out, args.jobs)      # warm-up (imports, caches)
    floor_run(n, args.jobs, work, kernel)
    rep, flo, flo_fig, nochange, start = [], [], [], [], []
    for _ in range(args.repeats):  # interleaved, so machine load hits all alike
        rep.append(report_run(args.manifest, out, args.jobs))
        flo.append(floor_run(n, args.jobs, work, kernel))
        flo_fig.append(floor_run(n, args.jobs, work, kernel, figure=True))
        nochange.append(process([sys.executable, "-m", "m1lib", "report", "--manifest",
                                 str(args.manifest), "--out", str(out)])[0])
        start.append(process([sys.executable, "-c", "import m1lib.report"])[0])
    r, f, ff = statistics.median(rep), statistics.median(flo), statistics.median(flo_fig)
    nc, st = statistics.median(nochange), statistics.median(start)
    res.update({"warm_report_s": round(r, 2), "floor_import_only_s": round(f, 2),
                "floor_with_figure_s": round(ff, 2), "warm_ratio": round(r / f, 3),
                "warm_ratio_vs_figure_floor": round(r / ff, 3), "warm_target_ratio": 1.3,
                "unchanged_rerun_s": round(nc, 2), "import_floor_s": round(st, 2),
                "unchanged_rerun_target_s": 2.0,
                "runs": {"report": rep, "floor": flo, "floor_figure": flo_fig,
                         "unchanged": nochange, "import": start}})
    print(f"notebooks: {n}, jobs: {args.jobs}, repeats: {args.repeats} (median)")
    print(f"warm report:                 {r:6.2f} s")
    print(f"floor (import-only):         {f:6.2f} s   ratio {r / f:.2f} (target <= 1.3)")
    print(f"floor (import + one figure): {ff:6.2f} s   ratio {r / ff:.2f}")
    print(f"re-run, nothing changed:     {nc:6.2f} s   (floor: python + import m1lib.report {st:.2f} s; "
          "target <= 2 s)")


if __name__ == "__main__":
    sys.exit(main())
