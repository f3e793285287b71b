"""The ``m1lib`` command: ``validate``, ``synth``, ``measure``, ``report``.

Exit codes: 0 success; 2 a problem with the user's data, manifest or arguments (one
line per problem on stderr, never a traceback); 3 participants that could not be
measured; 1 a bug (a traceback). Every numeric option is range-checked here.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .dataset import validate
from .errors import DataError
from .manifest import DEFAULT_REPLICA_ANATOMY, REPLICA_ANATOMIES, load_manifest

DEFAULT_MANIFEST = "data_manifest.yaml"


def _cmd_validate(args) -> int:
    manifest = load_manifest(args.manifest)
    if manifest.replica is not None and not manifest.root.exists():
        r = manifest.replica
        print(f"{manifest.root}: the replica has not been generated yet; run "
              f"'m1lib report --manifest {args.manifest}' (generates it, then reports) or "
              f"'m1lib synth --out {manifest.root} --seed {r.seed} --n-als {r.n_als} --n-hs {r.n_hs}"
              f"{' --oblique' if r.oblique else ''} --anatomy {r.anatomy}'", file=sys.stderr)
        return 2
    ds, problems = validate(manifest, full=not args.quick)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        print(f"{len(problems)} problem(s) in {manifest.root}", file=sys.stderr)
        return 2
    n = len(ds.participants)
    na = int((~ds.participants["excluded"]).sum())
    source = "precomputed measurements" if ds.measurements is not None else "images + annotations"
    print(f"valid: {manifest.root} — {n} participants ({na} analysed), measurements from {source}")
    return 0


def _cmd_synth(args) -> int:
    from .replica import generate  # slow imports (scipy, the template), only when generating

    argv = ["--out", str(args.out), "--seed", str(args.seed),
            "--n-als", str(args.n_als), "--n-hs", str(args.n_hs), "--anatomy", args.anatomy]
    if args.oblique:
        argv.append("--oblique")
    return generate.main(argv)


def _cmd_measure(args) -> int:
    from .pipeline import measure_from_manifest

    return measure_from_manifest(args.manifest, out=args.out, jobs=args.jobs,
                                 audit=args.audit, scheduler=args.scheduler)


def _cmd_report(args) -> int:
    from .report import run_report

    return run_report(manifest=args.manifest, out=args.out, only=args.only,
                      jobs=args.jobs, force=args.force, scheduler=args.scheduler,
                      allow_unmeasured=True if args.allow_unmeasured else None, no_cache=args.no_cache)


def _int_at_least(low: int):
    """An argparse type: an integer >= ``low`` (argparse prints the error and exits 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="m1lib",
        description="Deep-layer M1 measurement on 7T GRE and the analyses of "
                    "Cosottini et al. 2016 (AJNR 37:455-61).")
    parser.add_argument("--version", action="version", version=f"m1lib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("validate", help="check a dataset against the data contract (every problem, one line each)")
    p.add_argument("manifest", nargs="?", default=DEFAULT_MANIFEST, help="data manifest (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="do not read images to the end (skips the truncation check)")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("synth", help="generate the replica cohort (images, annotations, reads, truth)")
    p.add_argument("--out", type=Path, required=True, help="folder to write the dataset into")
    p.add_argument("--seed", type=_int_at_least(0), default=20160301)
    p.add_argument("--n-als", type=_int_at_least(2), default=22)
    p.add_argument("--n-hs", type=_int_at_least(2), default=14)
    p.add_argument("--oblique", action="store_true", help="tilt the slab's affine (flat anatomy only)")
    p.add_argument("--anatomy", choices=REPLICA_ANATOMIES, default=DEFAULT_REPLICA_ANATOMY,
                   help="the replica's cortex: real folding from the MNI152 template (folded) "
                        "or concentric-arc stripes (flat, legacy) (default: %(default)s)")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("measure", help="measure thickness, intensity and R2* from images and annotations")
    p.add_argument("manifest", nargs="?", default=DEFAULT_MANIFEST, help="data manifest (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None,
                   help="measurement table (default: measurements.tsv in the output folder: the "
                        "dataset's derivatives/m1lib/ when writable, see 'outputs' in docs/data.md)")
    p.add_argument("--jobs", type=_int_at_least(1), default=None, help="worker processes (default: number of cores)")
    p.add_argument("--audit", action="store_true", help="also draw an audit figure per participant")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="measure on a running dask.distributed cluster (e.g. tcp://host:8786; "
                        "default: settings.scheduler)")
    p.set_defaults(func=_cmd_measure)

    p = sub.add_parser("report", help="run every notebook with papermill into figures, tables, HTML and results.json")
    p.add_argument("--manifest", default=DEFAULT_MANIFEST, help="data manifest (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("reports/latest"), help="report folder (default: %(default)s)")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="run only these notebooks (e.g. 04_correlations)")
    p.add_argument("--jobs", type=_int_at_least(1), default=None,
                   help="notebooks run at once, and measurement workers (default: number of cores)")
    p.add_argument("--force", action="store_true", help="re-run notebooks whose inputs did not change")
    p.add_argument("--no-cache", action="store_true",
                   help="run notebooks without their memo of bootstraps, simulations and figures "
                        "(<output folder>/memo/); with --force, everything is computed again")
    p.add_argument("--allow-unmeasured", action="store_true",
                   help="report without participants that could not be measured (and say so); "
                        "default: refuse with exit 3 (or settings.allow_unmeasured)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="measure on a running dask.distributed cluster (default: settings.scheduler)")
    p.set_defaults(func=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``m1lib`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DataError as err:
        for p in err.problems:
            print(f"m1lib: {p}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("m1lib: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
