"""Benchmark: the power notebook's simulations, vectorised vs a plain loop, and its share of the report.

Measured in one run, on the dataset of the manifest (the replica by default, generated
and measured beforehand, not timed):

1. simulations: :func:`m1lib.power.power_curves` on every endpoint of the notebook
   (``--n-sim`` studies x the notebook's 10 sizes x 3 scenarios), drawn and tested
   as ``(n_sim, n)`` arrays, against :func:`m1lib.power.power_curves_loop`, the same
   draws and tests one simulated study at a time in a Python loop. The loop runs
   ``--loop-sims`` studies per point (it is slow); the ratio is per simulated study.
2. report: ``run_report(force=True)`` with the report's notebooks without
   ``08_power`` and with it (same jobs, same kernel; ``--repeats`` each, the fastest
   kept); the notebook's share = (with - without) / without. Target (issue 15): <= 20 %.

Run: ``.venv/bin/python benchmarks/bench_power.py [--n-sim 2000] [--loop-sims 100]
[--repeats 1] [--jobs N] [--skip-report]``. Prints the figures; never asserts timings.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from m1lib import power, report  # noqa: E402
from m1lib.pipeline import load_tables  # noqa: E402

N_GRID = [6, 8, 10, 15, 20, 30, 40, 60, 80, 120]   # the notebook's default grid


def bench_simulations(tables, n_sim: int, loop_sims: int, seed: int = 20160301) -> dict:
    plan = power.plan_endpoints(tables.participants, tables.measurements, tables.reads,
                                n_boot=2000, seed=seed)
    t = time.perf_counter()
    power.power_curves(plan, n_grid=N_GRID, n_sim=n_sim, seed=seed)
    vec = time.perf_counter() - t
    t = time.perf_counter()
    power.power_curves_loop(plan, n_grid=N_GRID, n_sim=loop_sims, seed=seed)
    loop = time.perf_counter() - t
    studies = len(plan) * len(N_GRID) * len(power.SCENARIOS)
    return dict(endpoints=len(plan), points=studies, vec_s=vec, vec_us_per_study=1e6 * vec / (studies * n_sim),
                loop_s=loop, loop_us_per_study=1e6 * loop / (studies * loop_sims),
                ratio=(loop / loop_sims) / (vec / n_sim))


def _report_time(manifest: Path, nb_dir: Path, out: Path, jobs: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    code = report.run_report(manifest, out, jobs=jobs, force=True, notebook_dir=nb_dir, log=lambda *a: None)
    if code != 0:
        raise SystemExit("the report failed; see above")
    return time.perf_counter() - t


def bench_report(manifest: Path, jobs: int, repeats: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="m1lib-bench-power-"))
    try:
        without = work / "without_08"
        without.mkdir()
        for nb in report.notebooks():
            if nb.stem != "08_power":
                shutil.copy2(nb, without / nb.name)
        t_without, t_with = [], []
        for _ in range(repeats):   # interleaved, so that load drifts hit both
            t_without.append(_report_time(manifest, without, work / "out_without", jobs))
            t_with.append(_report_time(manifest, report.NOTEBOOK_DIR, work / "out_with", jobs))
        # the notebook alone, in the complete report of the last run
        t = time.perf_counter()
        report.run_report(manifest, work / "out_with", only=["08_power"], jobs=1, force=True, log=lambda *a: None)
        alone = time.perf_counter() - t
        a, b = min(t_without), min(t_with)
        return dict(without_s=a, with_s=b, added_fraction=(b - a) / a, notebook_alone_s=alone,
                    notebooks_without=len(list(without.glob("*.ipynb"))))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=ROOT / "data_manifest.yaml")
    ap.add_argument("--n-sim", type=int, default=2000)
    ap.add_argument("--loop-sims", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip-report", action="store_true")
    args = ap.parse_args(argv)
    tables = load_tables(args.manifest, log=print)   # generate + measure once if missing (not timed)
    s = bench_simulations(tables, args.n_sim, args.loop_sims)
    print(f"simulations: {s['endpoints']} endpoints x {len(N_GRID)} sizes x 3 scenarios = {s['points']} points")
    print(f"  vectorised: {args.n_sim} studies/point in {s['vec_s']:.2f} s ({s['vec_us_per_study']:.1f} us/study)")
    print(f"  loop:       {args.loop_sims} studies/point in {s['loop_s']:.2f} s "
          f"({s['loop_us_per_study']:.1f} us/study)")
    print(f"  loop / vectorised, per simulated study: {s['ratio']:.1f}x")
    if not args.skip_report:
        report.ensure_kernel()
        r = bench_report(args.manifest, args.jobs, args.repeats)
        print(f"report ({args.jobs} jobs, fastest of {args.repeats}): without 08_power "
              f"({r['notebooks_without']} notebooks) {r['without_s']:.1f} s, with it {r['with_s']:.1f} s: "
              f"+{100 * r['added_fraction']:.1f} % (target <= 20 %); 08_power alone {r['notebook_alone_s']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
