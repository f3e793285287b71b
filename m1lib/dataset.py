"""Load a dataset that follows the data contract (``docs/data.md``) and check it, once.

:func:`validate` collects *every* problem (one :class:`~m1lib.errors.Problem` a
line, repeated kinds folded into one line by :func:`~m1lib.errors.group_problems});
:func:`load_dataset` raises them all at once as a :class:`~m1lib.errors.DataError`,
or returns a :class:`Dataset`. Files are found by :mod:`m1lib.bids` (sessions,
optional entities, ``.nii``/``.nii.gz``, sidecar inheritance, annotations flat or
in the derivatives layout); the tables are checked by :mod:`m1lib.tables`.
Nothing here writes: a read-only dataset validates.
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from . import bids
from . import contract as C
from .errors import DataError, Problem, group_problems
from .manifest import Manifest
from .markups import read_markups
from .tables import (ID, MISSING, check_measurements, check_participants, check_reads,  # noqa: F401
                     read_tsv, rel)

_rel = rel  # the name other modules used


@dataclass(frozen=True)
class EchoImage:
    """One echo of a participant's MEGRE acquisition.

    ``volume`` is the echo's index in the 4th dimension of a 4-D multi-echo file
    (None: one file per echo). ``metadata`` is the merged sidecar (inheritance
    principle) and ``sidecars`` the JSON files it came from, least specific first.
    """

    echo: int
    path: Path
    echo_time_s: float
    volume: int | None = None
    metadata: dict = field(default_factory=dict, compare=False, repr=False)
    sidecars: tuple[Path, ...] = ()


@dataclass(frozen=True)
class LabelMap:
    """A participant's ROI label image and its ``dseg.tsv`` lookup (``index -> name``)."""

    path: Path
    lookup: Path
    labels: tuple[tuple[int, str], ...]


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
        ``key -> [EchoImage, ...]`` ordered by echo. The key is the participant id,
        or ``sub-<label>_ses-<label>`` when the manifest measures ``all`` sessions.
    annotations : dict
        ``key -> Path`` of the markups file.
    label_maps : dict
        ``key -> LabelMap`` for participants whose ROIs are drawn as a label image.
    sessions : dict
        ``key -> 'ses-<label>'`` (None when the dataset has no sessions).
    """

    manifest: Manifest
    participants: pd.DataFrame
    reads: pd.DataFrame
    measurements: pd.DataFrame | None
    images: dict[str, list[EchoImage]] = field(default_factory=dict)
    annotations: dict[str, Path] = field(default_factory=dict)
    label_maps: dict[str, LabelMap] = field(default_factory=dict)
    sessions: dict[str, str | None] = field(default_factory=dict)

    @property
    def analysed(self) -> pd.DataFrame:
        """Participants not excluded."""
        return self.participants[~self.participants["excluded"]]

    def measure_inputs(self) -> dict:
        """Keyword arguments of :func:`m1lib.measure.measure_dataset` for this dataset."""
        return dict(images=self.images, annotations=self.annotations,
                    label_maps=self.label_maps, sessions=self.sessions)


# ----------------------------------------------------------------------------- images

def find_images(root: Path, pid: str, session: str | None = None, entities=None) -> list[Path]:
    """The MEGRE magnitude files of ``pid``'s one series (sorted by echo); [] if none or several."""
    series, _ = bids.megre_series(Path(root), pid, session, entities or {})
    if len(series) != 1:
        return []
    return [f for _, f in sorted(series[0].files, key=lambda nf: int(nf[0].entities.get("echo", 0)))]


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
            np.asarray(img.dataobj[(slice(None),) * 2 + (-1,) * (len(shape) - 2)])
    except (EOFError, OSError, zlib.error, ValueError) as exc:
        return [Problem(f"truncated or corrupt NIfTI data ({exc})", **where)]
    return []


def _echo_time(te, sname: str, pid: str) -> tuple[float, list[Problem]]:
    where = dict(file=sname, participant=pid, field="EchoTime")
    if not isinstance(te, (int, float)) or isinstance(te, bool) or not np.isfinite(te) or te <= 0:
        return np.nan, [Problem(f"EchoTime {te!r} is not a positive number of seconds", **where)]
    if te > 1:
        return np.nan, [Problem(f"EchoTime {te:g} looks like milliseconds; BIDS wants seconds "
                                f"(e.g. {te / 1000:g})", **where)]
    return float(te), []


def _expected_name(root, pid, session) -> str:
    anat = rel(bids.anat_folder(root, pid, session), root)
    ses = f"_{session}" if session else ""
    return f"{anat}/{pid}{ses}[_acq-<label>]_echo-<n>[_part-mag]_MEGRE.nii[.gz]"


def check_images(root: Path, pid: str, full: bool, intensity_echo: int, *, session: str | None = None,
                 entities=None) -> tuple[list[EchoImage], list[Problem]]:
    """Find and check a participant's echoes and their (inherited) sidecars.

    ``session`` None: the participant's only session if it has one (several: pass one).
    """
    root = Path(root)
    if session is None and len(bids.sessions_of(root, pid)) == 1:
        session = bids.sessions_of(root, pid)[0]
    where = dict(file=rel(bids.anat_folder(root, pid, session), root), participant=pid)
    series, other = bids.megre_series(root, pid, session, entities or {})
    if not series:
        hint = (f"; found {', '.join(sorted(f.name for f in other)[:3])}, which the manifest's "
                "files.entities or the part/session entities exclude") if other else ""
        return [], [Problem(f"no image: expected {_expected_name(root, pid, session)}{hint}",
                            field="image", **where)]
    if len(series) > 1:
        return [], [Problem(f"{len(series)} MEGRE series ({', '.join(s.label() for s in series)}); "
                            "choose one with `files.entities` in the manifest (e.g. "
                            f"{{{series[0].key[0][0]}: {series[0].key[0][1]}}})", field="image", **where)]
    files = series[0].files
    with_echo = [(int(n.entities["echo"]), f) for n, f in files if "echo" in n.entities]
    if with_echo and len(with_echo) != len(files):
        return [], [Problem("some MEGRE files have an echo entity and some do not", field="echo", **where)]
    problems: list[Problem] = []
    echoes: list[EchoImage] = []
    if with_echo:
        nums = [e for e, _ in with_echo]
        dup = sorted({e for e in nums if nums.count(e) > 1})
        if dup:
            return [], [Problem(f"echo {dup[0]} is stored twice (e.g. both .nii and .nii.gz)",
                                field="echo", **where)]
        for e, f in sorted(with_echo):
            problems += check_nifti(f, rel(f, root), pid, full=full)
            meta, chain, p = bids.merged_sidecar(f, root)
            problems += _tag(p, pid)
            te, p = _sidecar_echo_time(meta, chain, f, root, pid)
            problems += p
            echoes.append(EchoImage(e, f, te, None, meta, tuple(chain)))
    else:
        echoes, p = _four_d_echoes(files[0][1], root, pid, full)
        problems += p
    tes = [e.echo_time_s for e in echoes]
    if len(echoes) < max(2, intensity_echo) and not problems:
        problems.append(Problem(f"{len(echoes)} echo(es) found; need at least {max(2, intensity_echo)} "
                                "(two for R2*, and the intensity echo)", field="echo", **where))
    elif not np.isnan(tes).any() and any(b <= a for a, b in zip(tes, tes[1:])):
        problems.append(Problem(f"echo times {tes} do not increase with the echo number",
                                field="EchoTime", **where))
    return echoes, problems


def _tag(problems, pid):
    return [Problem(p.message, file=p.file, line=p.line, participant=pid, field=p.field or "sidecar")
            for p in problems]


def _sidecar_echo_time(meta, chain, image: Path, root: Path, pid: str):
    twin = image.with_name(image.name.split(".nii")[0] + ".json")
    sname = rel(chain[-1] if chain else twin, root)
    if not chain:
        return np.nan, [Problem("JSON sidecar not found (none beside the image nor inherited from "
                                "a folder above)", file=rel(twin, root), participant=pid, field="EchoTime")]
    if "EchoTime" not in meta:
        return np.nan, [Problem("EchoTime is missing", file=sname, participant=pid, field="EchoTime")]
    return _echo_time(meta["EchoTime"], sname, pid)


def _four_d_echoes(path: Path, root: Path, pid: str, full: bool):
    """A 4-D multi-echo file: echoes along the 4th axis, ``EchoTime`` a list in the sidecar."""
    name = rel(path, root)
    problems = check_nifti(path, name, pid, full=full)
    if problems:
        return [], problems
    shape = nib.load(str(path)).shape
    meta, chain, p = bids.merged_sidecar(path, root)
    problems += _tag(p, pid)
    tes = meta.get("EchoTime")
    sname = rel(chain[-1], root) if chain else name
    if len(shape) != 4:
        return [], [Problem(f"a MEGRE file without an echo entity must be 4-D (echoes along the 4th "
                            f"axis); got shape {shape}", file=name, participant=pid, field="echo")]
    if not isinstance(tes, list) or len(tes) != shape[3]:
        return [], [Problem(f"EchoTime must list one time per volume ({shape[3]}) for a 4-D "
                            f"multi-echo file; got {tes!r}", file=sname, participant=pid, field="EchoTime")]
    echoes = []
    for v, te in enumerate(tes):
        t, p = _echo_time(te, sname, pid)
        problems += p
        echoes.append(EchoImage(v + 1, path, t, v, meta, tuple(chain)))
    return echoes, problems


# ----------------------------------------------------------------------------- annotations

def annotation_path(manifest: Manifest, pid: str, session: str | None = None) -> Path:
    """The participant's markups file: the one found (flat or derivatives layout), else
    where a new one goes (``<annotations>/<pid>[_<ses>]_desc-m1_markups.mrk.json``).

    ``session`` None: the manifest's ``files.session``, else the participant's only one."""
    if session is None:
        chosen = manifest.files.session
        have = bids.sessions_of(manifest.root, pid)
        session = chosen if chosen not in (None, "all") else (have[0] if len(have) == 1 else None)
    found = _markups_candidates(manifest, pid, session,
                                single_session=len(bids.sessions_of(manifest.root, pid)) <= 1)
    if len(found) == 1:
        return found[0]
    ses = f"_{session}" if session else ""
    return manifest.file("annotations") / f"{pid}{ses}_desc-m1_markups.mrk.json"


def _markups_candidates(manifest, pid, session, single_session: bool = True):
    folder = manifest.file("annotations")
    found = bids.annotation_candidates(folder, pid, session, bids.MARKUPS_SUFFIX, (bids.MARKUPS_EXT,))
    if not found and session and single_session:
        # a one-session dataset whose annotations do not name the session
        found = bids.annotation_candidates(folder, pid, None, bids.MARKUPS_SUFFIX, (bids.MARKUPS_EXT,))
    return found


def required_labels(areas) -> list[str]:
    return [f"{h}_{a}" for h in C.HEMISPHERES for a in areas] + [C.REFERENCE_LABEL]


def check_annotation(path: Path, name: str, pid: str, areas, roi_labels=()) -> list[Problem]:
    """Check a participant's markups file opens and has every required label.

    ``roi_labels``: ROIs drawn elsewhere (a label image); a reference ROI there makes
    the ``ref_precuneus`` point optional.
    """
    if not path.is_file():
        return [Problem("annotation file not found", file=name, participant=pid, field="annotations")]
    try:
        marks = read_markups(path)
    except DataError as err:
        return [Problem(p.message, file=name, participant=pid, field=p.field) for p in err.problems]
    problems = []
    for label in required_labels(areas):
        if label not in marks:
            if label == C.REFERENCE_LABEL and (f"{label}_roi" in roi_labels or f"{label}_roi" in marks):
                continue
            problems.append(Problem("required markup is missing", file=name, participant=pid, field=label))
            continue
        m = marks[label]
        want = ("Fiducial", 1) if label == C.REFERENCE_LABEL else ("Line", 2)
        if m.type != want[0] or len(m.points) < want[1]:
            problems.append(Problem(f"expected a {want[0]} with {want[1]} point(s), got a {m.type} with "
                                    f"{len(m.points)}", file=name, participant=pid, field=label))
    return problems


def find_label_map(manifest: Manifest, pid: str, session: str | None,
                   single_session: bool = True) -> tuple[LabelMap | None, list[Problem]]:
    """The participant's ``*_dseg.nii[.gz]`` and its lookup table, if there is one."""
    folder = manifest.file("annotations")
    root = manifest.root
    exts = tuple(bids.IMAGE_EXTENSIONS)
    found = bids.annotation_candidates(folder, pid, session, bids.LABEL_SUFFIX, exts)
    if not found and session and single_session:
        found = bids.annotation_candidates(folder, pid, None, bids.LABEL_SUFFIX, exts)
    if not found:
        return None, []
    where = dict(participant=pid, field="label map")
    if len(found) > 1:
        return None, [Problem(f"{len(found)} label images ({', '.join(f.name for f in found)}); "
                              "keep one per participant and session", file=rel(folder, root), **where)]
    path = found[0]
    name = rel(path, root)
    problems = check_nifti(path, name, pid, full=False)
    twin = path.with_name(path.name.split(".nii")[0] + ".tsv")
    chain, p = bids.inherited(twin, folder, bids.LABEL_SUFFIX, ".tsv")
    problems += _tag(p, pid)
    lookup = twin if twin.is_file() else (chain[-1] if chain else None)
    if lookup is None:
        return None, problems + [Problem(f"no dseg.tsv lookup table (expected {rel(twin, root)} or a "
                                         f"dseg.tsv in {rel(folder, root)})", file=name, **where)]
    labels, p = read_lookup(lookup, root, pid)
    return (LabelMap(path, lookup, labels) if not (p or problems) else None), problems + p


def read_lookup(path: Path, root: Path, pid: str | None = None) -> tuple[tuple[tuple[int, str], ...], list[Problem]]:
    """Read a BIDS ``dseg.tsv`` (columns ``index``, ``name``) into ``((index, name), ...)``."""
    problems: list[Problem] = []
    df = read_tsv(path, root, problems)
    name = rel(path, root)
    if df is None:
        return (), problems
    missing = [c for c in ("index", "name") if c not in df.columns]
    if missing:
        return (), [Problem(f"required column is missing (a dseg.tsv has index and name)", file=name,
                            participant=pid, field=c) for c in missing]
    out, seen = [], set()
    for i, (idx, lab) in enumerate(zip(df["index"], df["name"])):
        where = dict(file=name, line=i + 2, participant=pid)
        if not idx.isdigit() or int(idx) == 0:
            problems.append(Problem(f"index {idx!r} is not a positive integer (0 is background)",
                                    field="index", **where))
            continue
        if lab in seen:
            problems.append(Problem(f"name {lab!r} is used twice", field="name", **where))
        seen.add(lab)
        out.append((int(idx), lab))
    return tuple(out), problems


# ----------------------------------------------------------------------------- dataset

def _acquisitions(manifest: Manifest, pid: str) -> tuple[list[str | None], list[Problem]]:
    """The sessions of ``pid`` to measure, by the manifest's ``files.session``."""
    root = manifest.root
    have = bids.sessions_of(root, pid)
    want = manifest.files.session
    if want == "all":
        return (have or [None]), []
    if want is None:
        if len(have) > 1:  # never guessed; reported once for the dataset by _validate
            return [], [Problem("several sessions", participant=pid, field="session")]
        return (have or [None]), []
    return [want], []  # a participant without it: "no image" in that session


def key_of(pid: str, session: str | None, all_sessions: bool) -> str:
    """The key of one acquisition in :class:`Dataset` (``sub-X`` or ``sub-X_ses-Y``)."""
    return f"{pid}_{session}" if all_sessions and session else pid


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
        Repeated kinds folded into one line each.
    """
    ds, problems = _validate(manifest, full=full)
    return ds, group_problems(problems)


def _validate(manifest: Manifest, *, full: bool) -> tuple[Dataset | None, list[Problem]]:
    bids.clear_cache()
    root = manifest.root
    problems: list[Problem] = []
    if not root.is_dir():
        return None, [Problem("dataset folder not found", file=str(root), field="dataset")]
    files, s = manifest.files, manifest.settings
    raw = read_tsv(manifest.file("participants"), root, problems)
    if raw is None:
        return None, problems
    participants, p = check_participants(raw, files.participants, missing_values=files.missing_values,
                                         patient_group=s.patient_group,
                                         comparison_groups=s.comparison_groups)
    problems += p
    if "participant_id" not in participants.columns or "excluded" not in participants.columns:
        return None, problems
    reads = read_tsv(manifest.file("visual_reads"), root, problems)
    if reads is not None:
        problems += check_reads(reads, participants, files.visual_reads)
    measurements = None
    mpath = manifest.file("measurements")
    if mpath.is_file():
        mraw = read_tsv(mpath, root, problems)
        if mraw is not None:
            measurements, p = check_measurements(mraw, participants, files.measurements,
                                                 missing_values=files.missing_values)
            problems += p
    ds = Dataset(manifest, participants, reads if reads is not None else pd.DataFrame(
        columns=["participant_id", "reader", "call"]), measurements)
    if measurements is None:
        several: dict[str, list[str]] = {}
        for pid, excluded in zip(participants["participant_id"], participants["excluded"]):
            if ID.match(str(pid)):
                for q in _check_participant_files(ds, pid, bool(excluded), full):
                    if q.field == "session" and q.message == "several sessions":
                        several[pid] = bids.sessions_of(root, pid)
                    else:
                        problems.append(q)
        if several:
            names = sorted({x for v in several.values() for x in v})
            who = list(several)
            problems.append(Problem(
                f"{len(who)} participant(s) have several sessions ({', '.join(names)}: "
                f"{', '.join(who[:3])}{' and more' if len(who) > 3 else ''}) and the manifest "
                "chooses none; set `files.session` to one of them, or to `all` (one row per "
                "session in the measurement table)", file=str(manifest.path.name), field="files.session"))
    return ds, problems


def _check_participant_files(ds: Dataset, pid: str, excluded: bool, full: bool) -> list[Problem]:
    manifest = ds.manifest
    root, files, s = manifest.root, manifest.files, manifest.settings
    sessions, problems = _acquisitions(manifest, pid)
    if problems:
        return [] if excluded else problems
    if excluded and (problems or not any(find_images(root, pid, ses, files.entities) for ses in sessions)):
        return []
    single = len(bids.sessions_of(root, pid)) <= 1
    for ses in sessions:
        echoes, p = check_images(root, pid, full, s.intensity_echo, session=ses, entities=files.entities)
        lmap, lp = find_label_map(manifest, pid, ses, single)
        p += lp
        cands = _markups_candidates(manifest, pid, ses, single)
        if len(cands) > 1:
            p.append(Problem(f"{len(cands)} markups files ({', '.join(c.name for c in cands)}); keep one "
                             "per participant and session", file=rel(manifest.file("annotations"), root),
                             participant=pid, field="annotations"))
            apath = cands[0]
        else:
            apath = annotation_path(manifest, pid, ses)
            p += check_annotation(apath, rel(apath, root), pid, s.areas,
                                  [n for _, n in lmap.labels] if lmap else ())
        key = key_of(pid, ses, files.session == "all")
        if excluded:
            # Excluded participants are measured only for the motion QC (the
            # analyses leave them out); their files are optional, so a problem
            # there keeps them out of the QC instead of stopping the run.
            if p:
                continue
        else:
            problems += p
        ds.images[key], ds.annotations[key], ds.sessions[key] = echoes, apath, ses
        if lmap is not None:
            ds.label_maps[key] = lmap
    return problems


def load_dataset(manifest: Manifest, *, full: bool = False) -> Dataset:
    """Load a dataset; raise :class:`DataError` with every problem if it is not valid."""
    ds, problems = validate(manifest, full=full)
    if problems:
        raise DataError(problems)
    return ds
