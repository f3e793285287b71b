"""Benchmark of the BIDS layer: indexing and validating a 300-participant dataset.

Run: ``python benchmarks/bench_bids.py [--n 300] [--out DIR]``.

Writes a BIDS dataset of ``--n`` participants as labs store them (two sessions,
an ``acq`` entity, one file per echo with inherited sidecars: common fields in a
top-level ``MEGRE.json``, echo times in ``echo-<n>_MEGRE.json``; annotations in the
derivatives layout), with small images (the cost measured is finding and
checking files, not reading voxels), then times, each best of ``--repeats``:

- m1lib's index alone (``m1lib.bids``: sessions, each participant's echo files,
  their merged sidecars and annotation files; what pybids' index does), and
  ``m1lib.dataset.validate`` (index + checks: every NIfTI header opened, every
  markups file parsed, the tables typed; and full: every image read to its end);
- pybids' ``BIDSLayout`` indexing the same folder (with ``validate=False``; and the
  time to query one participant's echoes and their merged metadata), when pybids is
  installed (it is not a dependency of m1lib; ``pip install pybids`` to compare);
- the import cost of each (a fresh interpreter, ``-X importtime`` free: wall time).

This decided m1lib's choice (see ``m1lib/bids.py`` and ``docs/data.md``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from m1lib import bids as B  # noqa: E402
from m1lib import contract as C  # noqa: E402
from m1lib.dataset import validate  # noqa: E402
from m1lib.manifest import load_manifest  # noqa: E402
from m1lib.markups import fiducial, line, write_markups  # noqa: E402


def write_dataset(root: Path, n: int) -> Path:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "bench", "BIDSVersion": "1.9.0"}))
    (root / "MEGRE.json").write_text(json.dumps({"RepetitionTime": 0.5, "FlipAngle": 15,
                                                 "SliceThickness": 2.0, "MRAcquisitionType": "2D"}))
    for e, te in ((1, 0.01), (2, 0.02)):
        (root / f"echo-{e}_MEGRE.json").write_text(json.dumps({"EchoTime": te}))
    rows = ["participant_id\tgroup\tage\tsex\texcluded\texclusion_reason\t" + "\t".join(C.ALS_REQUIRED)]
    reads = ["participant_id\treader\tcall"]
    aff = np.diag([0.5, 0.5, 2.0, 1.0])
    aff[:3, 3] = [-4.0, -4.0, 0.0]
    data = (1000 * np.ones((16, 16, 4))).astype(np.int16)
    img = nib.Nifti1Image(data, aff)
    img.set_sform(aff, code=1)
    der = root / "derivatives" / "m1"
    der.mkdir(parents=True)
    (der / "dataset_description.json").write_text(json.dumps(
        {"Name": "annotations", "BIDSVersion": "1.9.0", "DatasetType": "derivative"}))
    marks = [line(f"{h}_{a}", [sx * (1 + k), 0.0, 2.0 * k], [sx * (1 + k), 1.0, 2.0 * k])
             for h, sx in (("L", -1.0), ("R", 1.0)) for k, a in enumerate(C.AREAS)]
    marks.append(fiducial(C.REFERENCE_LABEL, [-0.5, -2.0, 2.0]))
    for i in range(n):
        pid = f"sub-{i + 1:03d}"
        als = i % 2 == 0
        clin = "\t".join(["40", "12", "120", "1", "2", "3", "4", "5"] if als else ["n/a"] * 8)
        rows.append(f"{pid}\t{'ALS' if als else 'HS'}\t{40 + i % 40}\t{'FM'[i % 2]}\tfalse\tn/a\t{clin}")
        reads.append(f"{pid}\treader1\t{'ALS' if als else 'normal'}")
        for ses in ("ses-01", "ses-02"):
            anat = root / pid / ses / "anat"
            anat.mkdir(parents=True)
            for e in (1, 2):
                nib.save(img, anat / f"{pid}_{ses}_acq-m1_echo-{e}_part-mag_MEGRE.nii.gz")
            ann = der / pid / ses / "anat"
            ann.mkdir(parents=True)
            write_markups(ann / f"{pid}_{ses}_desc-m1_markups.mrk.json", marks)
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    (root / "phenotype").mkdir()
    (root / "phenotype" / "visual_reads.tsv").write_text("\n".join(reads) + "\n")
    manifest = root / "data_manifest.yaml"
    manifest.write_text("dataset: .\nfiles:\n  annotations: derivatives/m1\n  session: ses-01\n")
    return manifest


def m1lib_index(manifest) -> int:
    """What pybids' index gives: every participant's echoes, merged metadata, annotations."""
    B.clear_cache()
    root, n = manifest.root, 0
    for sub in (d for d, is_dir in B._listdir(str(root)) if is_dir and d.startswith("sub-")):
        for ses in B.sessions_of(root, sub) or [None]:
            (series,), _ = B.megre_series(root, sub, ses, {})
            for _, f in series.files:
                meta, _, _ = B.merged_sidecar(f, root)
                n += "EchoTime" in meta
            B.annotation_candidates(manifest.file("annotations"), sub, ses, B.MARKUPS_SUFFIX,
                                    (B.MARKUPS_EXT,))
    return n


def best(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def import_time(module: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "m1lib_bench_bids")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    manifest = load_manifest(write_dataset(args.root, args.n))
    n_files = sum(1 for _ in args.root.rglob("*") if _.is_file())
    res = {"participants": args.n, "files": n_files}
    t_idx, n_echo = best(lambda: m1lib_index(manifest), args.repeats)
    assert n_echo == 4 * args.n, n_echo
    res["m1lib_index_s"] = t_idx
    quick, (ds, problems) = best(lambda: validate(manifest, full=False), args.repeats)
    assert not problems, problems[:3]
    assert len(ds.images) == args.n and ds.images["sub-001"][0].echo_time_s == 0.01
    full, _ = best(lambda: validate(manifest, full=True), args.repeats)
    res["m1lib_validate_quick_s"], res["m1lib_validate_full_s"] = quick, full
    res["m1lib_import_s"] = import_time("m1lib.dataset")
    print(f"== {args.n} participants x 2 sessions, {n_files} files")
    print(f"m1lib index (files, sidecars merged): {t_idx:7.2f} s")
    print(f"m1lib validate (headers):            {quick:7.2f} s")
    print(f"m1lib validate (full, read to end):  {full:7.2f} s")
    try:
        import bids  # noqa: F401
    except ImportError:
        print("pybids: not installed (pip install pybids to compare)")
        res["pybids"] = None
    else:
        from bids import BIDSLayout

        def index():
            return BIDSLayout(str(args.root), validate=False, derivatives=False)

        t_index, layout = best(index, args.repeats)

        def query():
            files = layout.get(subject="001", session="01", suffix="MEGRE", part="mag",
                               extension=".nii.gz")
            return [f.get_metadata()["EchoTime"] for f in files]

        t_query, tes = best(query, args.repeats)
        assert sorted(tes) == [0.01, 0.02], tes
        res["pybids"] = {"version": bids.__version__, "index_s": t_index, "query_one_s": t_query,
                         "import_s": import_time("bids")}
        print(f"pybids {bids.__version__} BIDSLayout index:   {t_index:7.2f} s "
              f"(ratio to m1lib's index {t_index / t_idx:.1f}, to its validation {t_index / quick:.2f}); "
              "one participant's "
              f"echoes + metadata {t_query * 1000:.0f} ms")
        print(f"import: m1lib.dataset {res['m1lib_import_s']:.2f} s, bids {res['pybids']['import_s']:.2f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_bids.json").write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
