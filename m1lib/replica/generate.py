"""Generate a replica dataset: ``generate`` and the ``m1lib synth`` command.

Two anatomies share one calibrated cohort (:func:`m1lib.replica.tables.make_cohort`):

* ``"flat"``: concentric-arc stripes rendered with the fitter's own model
  (:mod:`m1lib.replica.flat`); the legacy replica, kept as a test fixture.
* ``"folded"``: the MNI152 2009a central region (:mod:`m1lib.replica.anatomy`),
  imaged by an acquisition that is not the fitter's model
  (:mod:`m1lib.replica.acquisition`), with the truth on cortical depth
  (:mod:`m1lib.replica.cohort`).

Which one is the default is :data:`m1lib.manifest.DEFAULT_REPLICA_ANATOMY` (one line).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import DataError
from ..manifest import DEFAULT_REPLICA_ANATOMY, REPLICA_ANATOMIES
from . import acquisition as acqm
from .anatomy import cached_anatomy
from .cohort import build_cohort
from .files import prepare_out_dir
from .tables import make_cohort
from .targets import DEFAULT_N_ALS, DEFAULT_N_HS, DEFAULT_SEED
from .writer import write_dataset, write_flat_images, write_tables

__all__ = ["generate", "main", "ANATOMIES", "DEFAULT_ANATOMY"]

ANATOMIES = REPLICA_ANATOMIES
#: The replica's default anatomy (``m1lib synth``, ``replica.anatomy`` of the manifest):
#: set in :mod:`m1lib.manifest`, one line.
DEFAULT_ANATOMY = DEFAULT_REPLICA_ANATOMY


def replica_note(seed: int, n_als: int, n_hs: int, oblique: bool, anatomy: str) -> str:
    """What ``dataset_description.json`` records under ``GeneratedBy`` (the flat replica's
    note is unchanged, so replicas generated before the folded one are still recognised)."""
    note = f"seed={int(seed)} n_als={int(n_als)} n_hs={int(n_hs)} oblique={str(bool(oblique)).lower()}"
    return note if anatomy == "flat" else note + f" anatomy={anatomy}"


def _manifest_text(seed: int, n_als: int, n_hs: int, oblique: bool, anatomy: str) -> str:
    text = ("# Written by `m1lib synth`: this folder is a replica (synthetic) dataset.\n"
            "dataset: .\n"
            f"replica:\n  seed: {int(seed)}\n  n_als: {int(n_als)}\n  n_hs: {int(n_hs)}\n"
            f"  oblique: {str(bool(oblique)).lower()}\n")
    return text if anatomy == "flat" else text + f"  anatomy: {anatomy}\n"


def generate(out_dir, seed: int = DEFAULT_SEED, n_als: int = DEFAULT_N_ALS,
             n_hs: int = DEFAULT_N_HS, oblique: bool = False, *,
             workers: int | None = None, anatomy: str | None = None,
             timings: dict | None = None) -> Path:
    """Generate the replica dataset in ``out_dir`` (see ``docs/data.md``).

    Parameters
    ----------
    out_dir : str or Path
        Folder to write (created; a previous replica there is replaced; any other
        non-empty folder is refused).
    seed : int
        The same seed gives byte-identical files.
    n_als, n_hs : int
        Enrolled patients and healthy subjects.
    oblique : bool
        Tilt the slab's affine (the flat replica only).
    workers : int, optional
        Participants rendered concurrently (threads; default ``min(2, cpus)``).
        The output does not depend on it.
    anatomy : {"flat", "folded"}, optional
        The replica's anatomy (default :data:`DEFAULT_ANATOMY`).
    timings : dict, optional
        Receives the wall time (s) of each step: ``cohort_s``, and for the folded
        replica ``anatomy_s``, ``placement_s``, ``render_s`` and ``write_s``
        (the last two summed over participants, so over threads).

    Returns
    -------
    Path
        ``out_dir``.
    """
    anatomy = DEFAULT_ANATOMY if anatomy is None else anatomy
    if anatomy not in ANATOMIES:
        raise DataError(f"unknown replica anatomy {anatomy!r} (expected one of {', '.join(ANATOMIES)})")
    if anatomy == "folded" and oblique:
        raise DataError("--oblique tilts the flat replica's slab only; the folded replica's "
                        "cortex already crosses its slices at 0-40 degrees")
    out = Path(out_dir)
    spent = {} if timings is None else timings
    t0 = time.perf_counter()
    cohort = make_cohort(seed, n_als, n_hs, oblique)
    spent["cohort_s"] = time.perf_counter() - t0
    note = replica_note(seed, n_als, n_hs, oblique, anatomy)
    manifest = _manifest_text(seed, n_als, n_hs, oblique, anatomy)
    if anatomy == "folded":
        t0 = time.perf_counter()
        anat = cached_anatomy()
        t1 = time.perf_counter()
        folded = build_cohort(anat, acqm.Acquisition(), seed=seed, n_als=n_als, n_hs=n_hs,
                              cohort=cohort)
        spent.update(anatomy_s=t1 - t0, placement_s=time.perf_counter() - t1)
        return write_dataset(out, folded, anat, seed=seed, manifest_text=manifest,
                             workers=workers, generated=note, timings=spent)
    prepare_out_dir(out)
    write_tables(out, cohort, name="m1lib replica of Cosottini et al. 2016 (synthetic)",
                 generated=note,
                 acknowledge="Synthetic data: a replica shaped like AJNR 2016;37:455-61.",
                 manifest_text=manifest,
                 truth_text="True deep-layer thickness, R2*, M0, noise-free normalized intensity "
                            "(echo 2) and edge positions (RAS mm) per participant, hemisphere and "
                            "Penfield area.",
                 annotations_text="Simulated rater: electronic calipers across the deep layer of "
                                  "M1 (first point on the superficial side) and the left precuneus "
                                  "reference point (3D Slicer markups).")
    write_flat_images(out, cohort, seed, oblique, workers)
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="m1lib synth", description=(
        "Generate the replica: a synthetic cohort shaped like Cosottini et al. 2016, "
        "written as a dataset in the data contract, with its ground truth."))
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--n-als", type=int, default=DEFAULT_N_ALS, help="patients enrolled")
    ap.add_argument("--n-hs", type=int, default=DEFAULT_N_HS, help="healthy subjects enrolled")
    ap.add_argument("--oblique", action="store_true", help="tilt the slab's affine (flat only)")
    ap.add_argument("--anatomy", choices=ANATOMIES, default=DEFAULT_ANATOMY,
                    help="flat stripes (legacy) or real folding (default: %(default)s)")
    return ap


def main(argv=None) -> int:
    """``m1lib synth --out DIR [--seed N] [--n-als N --n-hs N] [--oblique] [--anatomy A]``."""
    args = build_parser().parse_args(argv)
    try:
        path = generate(args.out, args.seed, args.n_als, args.n_hs, args.oblique,
                        anatomy=args.anatomy)
    except DataError as exc:
        print(f"m1lib synth: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0
