"""Benchmark: generating the replica vs nibabel writing the same files, and peak memory.

Run as ``.venv/bin/python benchmarks/bench_synth.py [--anatomy flat|folded]
[--seed N] [--n-als N --n-hs N] [--workers N]``.

Target (issue 13): generating the replica takes at most 3x the time nibabel
needs to write the same NIfTI files, measured in the same run. The baseline
writes the replica's own image arrays (same shape, dtype, content, hence the
same compression work) with ``nibabel.save`` to ``.nii.gz``, one file at a
time; loading them back is not timed. Prints the time of each step of the
generation (cohort calibration, anatomy, placing the areas, rendering, writing),
the ratio and the peak resident memory (``ru_maxrss`` of this process, which
includes building the anatomy when its disk cache is cold: ``--cold`` empties a
private cache first to show that). Exits 1 when the ratio exceeds the limit.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from m1lib.replica import generate as G
from m1lib.replica.targets import DEFAULT_N_ALS, DEFAULT_N_HS, DEFAULT_SEED

LIMIT = 3.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--anatomy", choices=G.ANATOMIES, default=G.DEFAULT_ANATOMY)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--n-als", type=int, default=DEFAULT_N_ALS)
    ap.add_argument("--n-hs", type=int, default=DEFAULT_N_HS)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--cold", action="store_true",
                    help="start from an empty anatomy cache (a private XDG_CACHE_HOME)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="m1lib-bench-") as tmp:
        if args.cold:
            os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")
        out = Path(tmp) / "replica"
        steps: dict = {}
        t0 = time.perf_counter()
        G.generate(out, args.seed, args.n_als, args.n_hs, workers=args.workers,
                   anatomy=args.anatomy, timings=steps)
        t_gen = time.perf_counter() - t0
        rss_gen = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        files = sorted(out.glob("sub-*/anat/*.nii.gz"))
        size = sum(f.stat().st_size for f in files)
        base_dir = Path(tmp) / "nibabel"
        base_dir.mkdir()
        t_nib = 0.0
        for n, f in enumerate(files):
            img = nib.load(f)
            data = np.asarray(img.dataobj)           # not timed
            t0 = time.perf_counter()
            nib.save(nib.Nifti1Image(data, img.affine), base_dir / f"f{n:05d}.nii.gz")
            t_nib += time.perf_counter() - t0
        shape = nib.load(files[0]).shape
    ratio = t_gen / t_nib
    load = os.getloadavg()
    print(f"anatomy             : {args.anatomy}{' (cold cache)' if args.cold else ''}")
    print(f"participants        : {args.n_als + args.n_hs} ({args.n_als} ALS, {args.n_hs} HS)")
    print(f"NIfTI files         : {len(files)} x {shape} int16, {size / 1e6:.1f} MB gzipped")
    print(f"m1lib synth         : {t_gen:8.2f} s  (everything: cohort, images, annotations, truth)")
    for k, v in steps.items():
        print(f"  {k:<18}: {v:8.2f} s")
    print(f"nibabel.save only   : {t_nib:8.2f} s  (same arrays, same number of .nii.gz files)")
    print(f"ratio               : {ratio:8.2f}  (limit {LIMIT:.1f}) -> {'ok' if ratio <= LIMIT else 'TOO SLOW'}")
    print(f"peak memory         : {rss_gen:8.0f} MB (ru_maxrss after generating)")
    print(f"load average        : {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores)")
    return 0 if ratio <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
