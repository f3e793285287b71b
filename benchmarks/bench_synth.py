"""Benchmark: generating the default replica vs nibabel writing the same files.

Run as ``.venv/bin/python benchmarks/bench_synth.py [--seed N] [--n-als N --n-hs N]``.

Target (issue "m1lib synth"): generating the replica takes at most 3x the time
nibabel needs to write the same number of same-size NIfTI files, measured in the
same run. The baseline writes the replica's own image arrays (same shape, dtype,
content, hence the same compression work) with ``nibabel.save`` to ``.nii.gz``,
one file at a time; loading them back is not timed. Prints the figures and the
ratio; exits 1 when the ratio exceeds the limit.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from m1lib import synth

LIMIT = 3.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=synth.DEFAULT_SEED)
    ap.add_argument("--n-als", type=int, default=synth.DEFAULT_N_ALS)
    ap.add_argument("--n-hs", type=int, default=synth.DEFAULT_N_HS)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="m1lib-bench-") as tmp:
        out = Path(tmp) / "replica"
        t0 = time.perf_counter()
        synth.generate(out, args.seed, args.n_als, args.n_hs, workers=args.workers)
        t_gen = time.perf_counter() - t0
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
    print(f"participants        : {args.n_als + args.n_hs} ({args.n_als} ALS, {args.n_hs} HS)")
    print(f"NIfTI files         : {len(files)} x {shape} int16, {size / 1e6:.1f} MB gzipped")
    print(f"m1lib synth         : {t_gen:8.2f} s  (everything: cohort, images, annotations, truth)")
    print(f"nibabel.save only   : {t_nib:8.2f} s  (same arrays, same number of .nii.gz files)")
    print(f"ratio               : {ratio:8.2f}  (limit {LIMIT:.1f}) -> {'ok' if ratio <= LIMIT else 'TOO SLOW'}")
    return 0 if ratio <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
