"""Load a dataset that follows the data contract (``docs/data.md``) and check it.

:func:`validate` collects *every* problem (one :class:`~m1lib.errors.Problem` a
line); :func:`load_dataset` raises them all at once as a
:class:`~m1lib.errors.DataError`, or returns a :class:`Dataset` of tidy tables.
"""
from __future__ import annotations

import gzip
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from . import contract as C
from .errors import DataError, Problem
from .manifest import Manifest

MISSING = "n/a"
_ID = re.compile(r"^sub-[A-Za-z0-9]+$")
_ECHO = re.compile(r"_echo-(\d+)_part-mag_MEGRE\.nii(\.gz)?$")


@dataclass(frozen=True)
class EchoImage:
    """One echo of a participant's MEGRE acquisition."""

    echo: int
    path: Path
    echo_time_s: float


@dataclass
class Dataset:
    """A checked dataset: tidy tables plus the paths of images and annotations.

    Attributes
    ----------
    participants : DataFrame
        ``participants.tsv`` typed (numbers as float, ``excluded`` as bool) with the
        derived ``umn_total`` and ``dpr``; unknown extra columns are kept.
    reads : DataFrame
        ``participant_id, reader, call``.
    measurements : DataFrame or None
        Precomputed measurements when the dataset has them.
    images : dict
        ``participant_id -> [EchoImage, ...]`` ordered by echo.
    annotations : dict
        ``participant_id -> Path`` of the markups file.
    """

    manifest: Manifest
    participants: pd.DataFrame
    reads: pd.DataFrame
    measurements: pd.DataFrame | None
    images: dict[str, list[EchoImage]] = field(default_factory=dict)
    annotations: dict[str, Path] = field(default_factory=dict)

    @property
    def analysed(self) -> pd.DataFrame:
        """Participants not excluded."""
        return self.participants[~self.participants["excluded"]]


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def read_tsv(path: Path, root: Path, problems: list[Problem]) -> pd.DataFrame | None:
    """Read a BIDS TSV as text (``n/a`` kept verbatim); None and a problem if unreadable."""
    name = _rel(path, root)
    if not path.is_file():
        problems.append(Problem("file not found", file=name))
        return None
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        problems.append(Problem(f"not a readable tab-separated table: {str(exc).splitlines()[0]}",
                                file=name))
        return None
    df.columns = [c.strip() for c in df.columns]
    return df.apply(lambda s: s.str.strip())


def _number(value: str) -> float | None:
    if value == MISSING or value == "":
        return np.nan
    try:
        x = float(value)
    except ValueError:
        return None
    return x if np.isfinite(x) else None


def _require_columns(df, cols, name, problems) -> bool:
    missing = [c for c in cols if c not in df.columns]
    for c in missing:
        problems.append(Problem("required column is missing", file=name, field=c))
    return not missing


def check_participants(df: pd.DataFrame, name: str) -> tuple[pd.DataFrame, list[Problem]]:
    """Type and check ``participants.tsv`` (already read as text).

    Returns the typed table (numbers as float, ``excluded`` as bool) and the problems.
    """
    problems: list[Problem] = []
    base = ["participant_id", "group", "age", "sex", "excluded"]
    if not _require_columns(df, base, name, problems):
        return df, problems
    out = df.copy()
    numeric = [c for c in (*C.ALS_REQUIRED, *C.OPTIONAL_NUMERIC, "age") if c in df.columns]
    values = {c: np.full(len(df), np.nan) for c in numeric}
    excluded = np.zeros(len(df), dtype=bool)
    seen: dict[str, int] = {}
    for i, row in enumerate(df.itertuples(index=False)):
        r = row._asdict()
        line = i + 2
        pid = r["participant_id"]
        where = dict(file=name, line=line, participant=pid or None)
        if not _ID.match(pid):
            problems.append(Problem(f"invalid participant_id {pid!r} (expected 'sub-<alphanumeric label>')",
                                    field="participant_id", **where))
        if pid in seen:
            problems.append(Problem(f"duplicate participant_id (first on line {seen[pid]})",
                                    field="participant_id", **where))
        else:
            seen[pid] = line
        if r["group"] not in C.GROUPS:
            problems.append(Problem(f"group {r['group']!r} is not one of {', '.join(C.GROUPS)}",
                                    field="group", **where))
        if r["sex"] not in C.SEXES:
            problems.append(Problem(f"sex {r['sex']!r} is not one of {', '.join(C.SEXES)}",
                                    field="sex", **where))
        ex = r["excluded"].lower()
        if ex not in ("true", "false"):
            problems.append(Problem(f"excluded {r['excluded']!r} is not 'true' or 'false'",
                                    field="excluded", **where))
        excluded[i] = ex == "true"
        for c in numeric:
            x = _number(r[c])
            if x is None:
                problems.append(Problem(f"not a number: {r[c]!r}", field=c, **where))
                continue
            values[c][i] = x
            lo_hi = C.RANGES.get(c)
            if lo_hi and not np.isnan(x) and not (lo_hi[0] <= x <= lo_hi[1]):
                problems.append(Problem(f"{x:g} is out of range (expected {lo_hi[0]:g}-{lo_hi[1]:g})",
                                        field=c, **where))
        if r["group"] == "ALS" and not excluded[i]:
            for c in C.ALS_REQUIRED:
                if c not in df.columns:
                    continue  # reported once as a missing column below
                if r[c] in (MISSING, ""):
                    problems.append(Problem("missing; required for every analysed ALS participant",
                                            field=c, **where))
            dd = values.get("disease_duration_months")
            if dd is not None and not np.isnan(dd[i]) and dd[i] <= 0:
                problems.append(Problem(f"disease duration {dd[i]:g} must be > 0 months "
                                        "(DPR = (48 - ALSFRS-R) / duration is undefined)",
                                        field="disease_duration_months", **where))
    if (df["group"] == "ALS").any():
        for c in C.ALS_REQUIRED:
            if c not in df.columns:
                problems.append(Problem("required column is missing (needed for ALS participants)",
                                        file=name, field=c))
    for c in numeric:
        out[c] = values[c]
    out["excluded"] = excluded
    if "exclusion_reason" in out.columns:
        out["exclusion_reason"] = out["exclusion_reason"].replace({MISSING: ""})
    return C.with_derived(out) if not any(c not in out for c in C.ALS_REQUIRED) else out, problems


def check_reads(reads: pd.DataFrame, participants: pd.DataFrame, name: str) -> list[Problem]:
    """Check ``visual_reads.tsv`` against the participants."""
    problems: list[Problem] = []
    if not _require_columns(reads, ["participant_id", "reader", "call"], name, problems):
        return problems
    known = set(participants["participant_id"])
    seen = {}
    bad_calls: dict[str, list[int]] = {}
    for i, r in enumerate(reads.itertuples(index=False)):
        where = dict(file=name, line=i + 2, participant=r.participant_id)
        if r.participant_id not in known:
            problems.append(Problem("read for a participant not in participants.tsv",
                                    field="participant_id", **where))
        if r.call not in C.CALLS:
            bad_calls.setdefault(r.call, []).append(i + 2)
        if not r.reader:
            problems.append(Problem("empty reader", field="reader", **where))
        key = (r.participant_id, r.reader)
        if key in seen:
            problems.append(Problem(f"second read by {r.reader} (first on line {seen[key]})",
                                    field="reader", **where))
        seen.setdefault(key, i + 2)
    # Repeated problems are grouped: one line per bad call value, one per reader.
    for call, lines in bad_calls.items():
        at = ", ".join(map(str, lines[:8])) + (" ..." if len(lines) > 8 else "")
        where = dict(line=lines[0]) if len(lines) == 1 else {}
        problems.append(Problem(f"call {call!r} is not one of {', '.join(C.CALLS)} "
                                f"({len(lines)} read(s), line(s) {at})", file=name, field="call", **where))
    analysed = participants.loc[~participants["excluded"], "participant_id"]
    for reader in sorted(set(reads["reader"]) - {""}):
        done = set(reads.loc[reads["reader"] == reader, "participant_id"])
        missing = [pid for pid in analysed if pid not in done]
        if missing:
            who = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
            problems.append(Problem(f"{len(missing)} analysed participant(s) with no read by {reader}: "
                                    f"{who}", file=name, field="reader"))
    return problems


def check_measurements(meas: pd.DataFrame, participants: pd.DataFrame,
                       name: str) -> tuple[pd.DataFrame, list[Problem]]:
    """Type and check a long measurement table."""
    problems: list[Problem] = []
    if not _require_columns(meas, [*C.MEASUREMENT_KEY, *C.MEASUREMENT_VALUES], name, problems):
        return meas, problems
    known = set(participants["participant_id"])
    out = meas.copy()
    vals = {c: np.full(len(meas), np.nan) for c in C.MEASUREMENT_VALUES}
    seen = {}
    for i, r in enumerate(meas.itertuples(index=False)):
        where = dict(file=name, line=i + 2, participant=r.participant_id)
        if r.participant_id not in known:
            problems.append(Problem("measurement for a participant not in participants.tsv",
                                    field="participant_id", **where))
        if r.hemisphere not in C.HEMISPHERES:
            problems.append(Problem(f"hemisphere {r.hemisphere!r} is not one of L, R",
                                    field="hemisphere", **where))
        if r.area not in C.AREAS:
            problems.append(Problem(f"area {r.area!r} is not one of {', '.join(C.AREAS)}",
                                    field="area", **where))
        key = (r.participant_id, r.hemisphere, r.area)
        if key in seen:
            problems.append(Problem(f"duplicate row for {r.hemisphere} {r.area} (first on line {seen[key]})",
                                    field="area", **where))
        seen.setdefault(key, i + 2)
        for c in C.MEASUREMENT_VALUES:
            x = _number(getattr(r, c))
            if x is None:
                problems.append(Problem(f"not a number: {getattr(r, c)!r}", field=c, **where))
            else:
                vals[c][i] = x
        if vals["thickness_mm"][i] <= 0:
            problems.append(Problem(f"thickness {vals['thickness_mm'][i]:g} mm must be > 0",
                                    field="thickness_mm", **where))
    for c in C.MEASUREMENT_VALUES:
        out[c] = vals[c]
    extra = [c for c in out.columns if c not in (*C.MEASUREMENT_KEY, *C.MEASUREMENT_VALUES)]
    for c in extra:  # keep extra numeric columns numeric (e.g. r2star_s)
        num = pd.to_numeric(out[c].replace({MISSING: np.nan}), errors="coerce")
        if num.notna().sum() == (out[c] != MISSING).sum():
            out[c] = num
    return out, problems


def find_images(root: Path, pid: str) -> list[Path]:
    """The MEGRE magnitude echoes of ``pid`` (sorted by echo number)."""
    anat = root / pid / "anat"
    files = [p for p in anat.glob(f"{pid}_echo-*_part-mag_MEGRE.nii*") if _ECHO.search(p.name)]
    return sorted(files, key=lambda p: int(_ECHO.search(p.name).group(1)))


def _sidecar(img: Path) -> Path:
    return img.with_name(re.sub(r"\.nii(\.gz)?$", ".json", img.name))


def check_nifti(path: Path, name: str, pid: str, full: bool = True) -> list[Problem]:
    """Check that a NIfTI opens and (``full``) that its data can be read to the end."""
    where = dict(file=name, participant=pid, field="image")
    try:
        img = nib.load(str(path))
        shape = img.shape
    except Exception as exc:  # nibabel raises many types for a bad header
        return [Problem(f"unreadable NIfTI: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                        **where)]
    if len(shape) < 3:
        return [Problem(f"expected a 3D image, got shape {shape}", **where)]
    if not full:
        return []
    try:
        if str(path).endswith(".gz"):
            # Stream the whole gzip member: a truncated download fails here, cheaply.
            with gzip.open(path, "rb") as fh:
                n = 0
                while chunk := fh.read(1 << 22):
                    n += len(chunk)
            need = int(img.dataobj.offset) + int(np.prod(shape)) * img.get_data_dtype().itemsize
            if n < need:
                raise EOFError(f"{n} bytes, header needs {need}")
        else:
            np.asarray(img.dataobj[..., -1])
    except (EOFError, OSError, zlib.error, ValueError) as exc:
        return [Problem(f"truncated or corrupt NIfTI data ({exc})", **where)]
    return []


def check_images(root: Path, pid: str, full: bool, intensity_echo: int) -> tuple[list[EchoImage], list[Problem]]:
    """Find and check a participant's echoes and their sidecars."""
    problems: list[Problem] = []
    files = find_images(root, pid)
    if not files:
        return [], [Problem(f"no image: expected {pid}/anat/{pid}_echo-<n>_part-mag_MEGRE.nii.gz",
                            file=f"{pid}/anat", participant=pid, field="image")]
    echoes = []
    for f in files:
        name = _rel(f, root)
        problems += check_nifti(f, name, pid, full=full)
        side = _sidecar(f)
        sname = _rel(side, root)
        te = np.nan
        if not side.is_file():
            problems.append(Problem("JSON sidecar not found", file=sname, participant=pid, field="EchoTime"))
        else:
            try:
                meta = json.loads(side.read_text(encoding="utf-8"))
                te = meta["EchoTime"]
                if not isinstance(te, (int, float)) or isinstance(te, bool) or not np.isfinite(te) or te <= 0:
                    problems.append(Problem(f"EchoTime {te!r} is not a positive number of seconds",
                                            file=sname, participant=pid, field="EchoTime"))
                    te = np.nan
                elif te > 1:
                    problems.append(Problem(f"EchoTime {te:g} looks like milliseconds; BIDS wants seconds "
                                            f"(e.g. {te / 1000:g})", file=sname, participant=pid, field="EchoTime"))
                    te = np.nan
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                problems.append(Problem(f"not valid JSON: {exc}", file=sname, participant=pid, field="EchoTime"))
            except (KeyError, TypeError):
                problems.append(Problem("EchoTime is missing", file=sname, participant=pid, field="EchoTime"))
        echoes.append(EchoImage(int(_ECHO.search(f.name).group(1)), f, float(te)))
    tes = [e.echo_time_s for e in echoes]
    if len(echoes) < max(2, intensity_echo):
        problems.append(Problem(f"{len(echoes)} echo(es) found; need at least {max(2, intensity_echo)} "
                                "(two for R2*, and the intensity echo)", file=f"{pid}/anat",
                                participant=pid, field="echo"))
    elif not np.isnan(tes).any() and any(b <= a for a, b in zip(tes, tes[1:])):
        problems.append(Problem(f"echo times {tes} do not increase with the echo number",
                                file=f"{pid}/anat", participant=pid, field="EchoTime"))
    return echoes, problems


def annotation_path(manifest: Manifest, pid: str) -> Path:
    return manifest.file("annotations") / f"{pid}_desc-m1_markups.mrk.json"


def required_labels(areas) -> list[str]:
    return [f"{h}_{a}" for h in C.HEMISPHERES for a in areas] + [C.REFERENCE_LABEL]


def check_annotation(path: Path, name: str, pid: str, areas) -> list[Problem]:
    """Check a participant's markups file opens and has every required label."""
    from .markups import read_markups  # markups owns the Slicer format

    if not path.is_file():
        return [Problem("annotation file not found", file=name, participant=pid, field="annotations")]
    try:
        marks = read_markups(path)
    except DataError as err:
        return [Problem(p.message, file=name, participant=pid, field=p.field) for p in err.problems]
    problems = []
    for label in required_labels(areas):
        if label not in marks:
            problems.append(Problem("required markup is missing", file=name, participant=pid, field=label))
            continue
        m = marks[label]
        want = ("Fiducial", 1) if label == C.REFERENCE_LABEL else ("Line", 2)
        if m.type != want[0] or len(m.points) < want[1]:
            problems.append(Problem(f"expected a {want[0]} with {want[1]} point(s), got a {m.type} with "
                                    f"{len(m.points)}", file=name, participant=pid, field=label))
    return problems


def validate(manifest: Manifest, *, full: bool = True) -> tuple[Dataset | None, list[Problem]]:
    """Load the dataset the manifest names and collect every problem.

    Parameters
    ----------
    manifest : Manifest
    full : bool
        Also read every image to its end (catches truncated files).

    Returns
    -------
    dataset : Dataset or None
        None when the tables could not be read at all.
    problems : list of Problem
    """
    root = manifest.root
    problems: list[Problem] = []
    if not root.is_dir():
        return None, [Problem("dataset folder not found", file=str(root), field="dataset")]
    pname = manifest.files.participants
    raw = read_tsv(manifest.file("participants"), root, problems)
    if raw is None:
        return None, problems
    participants, p = check_participants(raw, pname)
    problems += p
    if "participant_id" not in participants.columns or "excluded" not in participants.columns:
        return None, problems
    reads = read_tsv(manifest.file("visual_reads"), root, problems)
    if reads is not None:
        problems += check_reads(reads, participants, manifest.files.visual_reads)
    measurements = None
    mpath = manifest.file("measurements")
    if mpath.is_file():
        mraw = read_tsv(mpath, root, problems)
        if mraw is not None:
            measurements, p = check_measurements(mraw, participants, manifest.files.measurements)
            problems += p
    ds = Dataset(manifest, participants, reads if reads is not None else pd.DataFrame(
        columns=["participant_id", "reader", "call"]), measurements)
    if measurements is None:
        areas = manifest.settings.areas
        for pid, excluded in zip(participants["participant_id"], participants["excluded"]):
            if not _ID.match(str(pid)):
                continue
            if excluded and not find_images(root, pid):
                continue
            echoes, p = check_images(root, pid, full, manifest.settings.intensity_echo)
            apath = annotation_path(manifest, pid)
            p += check_annotation(apath, _rel(apath, root), pid, areas)
            if excluded:
                # Excluded participants are measured only for the motion QC (the
                # analyses leave them out); their files are optional, so a problem
                # there keeps them out of the QC instead of stopping the run.
                if not p:
                    ds.images[pid], ds.annotations[pid] = echoes, apath
                continue
            problems += p
            ds.images[pid], ds.annotations[pid] = echoes, apath
    return ds, problems


def load_dataset(manifest: Manifest, *, full: bool = False) -> Dataset:
    """Load a dataset; raise :class:`DataError` with every problem if it is not valid."""
    ds, problems = validate(manifest, full=full)
    if problems:
        raise DataError(problems)
    return ds
