"""The BIDS layer: where a participant's echoes, metadata and annotations are.

A small parser of the BIDS specification (1.9) rather than pybids: m1lib needs one
datatype (``anat``), one suffix (``MEGRE``), the inheritance principle for JSON
sidecars and two annotation layouts, and pybids costs a heavy dependency tree
(SQLAlchemy, formulaic, bids-validator, ...) and an indexing pass over the whole
dataset into a database. ``benchmarks/bench_bids.py`` measures both on a
300-participant dataset; the numbers are in ``docs/data.md``.

What is followed from the specification:

- file names: ``key-value`` entities joined by ``_``, then the suffix, then the
  extension (everything from the first ``.``); ``.nii`` and ``.nii.gz`` alike;
- sessions: ``sub-<label>/ses-<label>/anat/`` (and ``ses-`` in the file name), or
  ``sub-<label>/anat/`` when the dataset has none;
- optional entities (``acq``, ``ce``, ``rec``, ``run``, ``part``, ...): any may be
  present; ``part`` must be absent or ``mag``; several series of one participant
  and session (two runs, two acquisitions) must be told apart by the manifest's
  ``files.entities``, never guessed;
- the inheritance principle: every JSON at the file's level or above (dataset
  root, subject, session, datatype folder) whose entities are a subset of the
  image's and whose suffix is the image's applies; they are merged from the top
  down, the most specific last;
- derivatives: ``<pipeline>/sub-<label>/[ses-<label>/]anat/<entities>_<suffix>``
  for annotations, or all in one flat folder.

Only this module walks the dataset's folders; nothing here writes.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from .errors import Problem

_NAME = re.compile(r"^(?P<ents>(?:[A-Za-z0-9]+-[A-Za-z0-9]+_)*)(?P<suffix>[A-Za-z0-9]+)(?P<ext>\..+)?$")
IMAGE_EXTENSIONS = (".nii.gz", ".nii")
IMAGE_SUFFIX = "MEGRE"
MARKUPS_SUFFIX, MARKUPS_EXT = "markups", ".mrk.json"
LABEL_SUFFIX = "dseg"


@dataclass(frozen=True)
class BidsName:
    """A parsed BIDS file name.

    Examples
    --------
    >>> n = parse_name("sub-01_ses-2_acq-hr_echo-1_part-mag_MEGRE.nii.gz")
    >>> n.entities["ses"], n.suffix, n.extension
    ('2', 'MEGRE', '.nii.gz')
    >>> parse_name("README") is None or parse_name("README").entities == {}
    True
    """

    entities: Mapping[str, str]
    suffix: str
    extension: str

    def without(self, *keys) -> tuple:
        """The entities except ``keys``, as a sortable key."""
        return tuple(sorted((k, v) for k, v in self.entities.items() if k not in keys))


@lru_cache(maxsize=65536)
def parse_name(name: str) -> BidsName | None:
    """Parse ``name`` into entities, suffix and extension; None if it is not a BIDS name."""
    m = _NAME.match(name)
    if m is None:
        return None
    ents = {}
    for part in filter(None, m["ents"].split("_")):
        k, v = part.split("-", 1)
        if k in ents:
            return None
        ents[k] = v
    return BidsName(ents, m["suffix"], m["ext"] or "")


@lru_cache(maxsize=1 << 17)
def _listdir(folder: str) -> tuple[tuple[str, bool], ...]:
    """(name, is_dir) of a folder's entries, sorted; empty when it does not exist."""
    try:
        with os.scandir(folder) as it:
            return tuple(sorted((e.name, e.is_dir()) for e in it))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return ()


@lru_cache(maxsize=4096)
def _read_json(path: str):
    """A JSON file's content, or the exception reading it raised (a top-level sidecar is
    read once per indexing, not once per image)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return exc


@lru_cache(maxsize=1 << 17)
def _named_files(folder: str, extension: str) -> tuple[tuple[str, BidsName], ...]:
    """The BIDS-named files of a folder with this extension, parsed."""
    out = []
    for name, is_dir in _listdir(folder):
        if not is_dir and name.endswith(extension):
            n = parse_name(name)
            if n is not None and n.extension == extension:
                out.append((name, n))
    return tuple(out)


def clear_cache() -> None:
    """Forget folder listings and sidecars (call before indexing a dataset that may have changed)."""
    _listdir.cache_clear()
    _named_files.cache_clear()
    _read_json.cache_clear()


def files_in(folder: Path) -> list[Path]:
    return [folder / n for n, d in _listdir(str(folder)) if not d]


def sessions_of(root: Path, pid: str) -> list[str]:
    """The ``ses-<label>`` folders of a participant (empty: no sessions)."""
    return [n for n, d in _listdir(str(root / pid)) if d and n.startswith("ses-")]


def anat_folder(root: Path, pid: str, session: str | None) -> Path:
    return root / pid / session / "anat" if session else root / pid / "anat"


def _applies(name: BidsName, target: BidsName, suffix: str, extension: str) -> bool:
    return (name.suffix == suffix and name.extension == extension
            and all(target.entities.get(k) == v for k, v in name.entities.items()))


def inherited(path: Path, root: Path, suffix: str, extension: str) -> tuple[list[Path], list[Problem]]:
    """Files that apply to ``path`` by the inheritance principle, least specific first.

    Candidates are at ``path``'s level and every level above it up to ``root``; at
    one level several may apply (``dseg.tsv`` and ``desc-m1_dseg.tsv``), ordered
    by how many entities they name; two naming as many are ambiguous.
    """
    target = parse_name(path.name)
    if target is None:
        return [], []
    levels = []
    folder, top = str(path.parent), str(Path(root))
    while True:
        levels.append(folder)
        parent = os.path.dirname(folder)
        if folder == top or not folder.startswith(top + os.sep) or parent == folder:
            break
        folder = parent
    out, problems = [], []
    for folder in reversed(levels):
        here = []
        for name, n in _named_files(folder, extension):
            if _applies(n, target, suffix, extension) and not (
                    folder == str(path.parent) and name == path.name):
                here.append((len(n.entities), Path(folder) / name))
        here.sort()
        for (a, fa), (b, fb) in zip(here, here[1:]):
            if a == b:
                problems.append(Problem(f"{fa.name} and {fb.name} both apply at this level "
                                        "(BIDS inheritance: at most one per level and specificity)",
                                        file=str(folder)))
        out += [f for _, f in here]
    return out, problems


def merged_sidecar(image: Path, root: Path) -> tuple[dict, list[Path], list[Problem]]:
    """The image's metadata: every applicable JSON merged from the top down.

    Returns
    -------
    metadata : dict
    sources : list of Path
        The JSON files merged, least specific first (what a cache must hash).
    problems : list of Problem
        Unreadable or ambiguous sidecars.
    """
    name = parse_name(image.name)
    if name is None:
        return {}, [], []
    ext = name.extension
    json_twin = image.with_name(image.name[: -len(ext)] + ".json")
    chain, problems = inherited(json_twin, root, name.suffix, ".json")
    if json_twin.is_file():
        chain.append(json_twin)
    meta: dict = {}
    for f in chain:
        doc = _read_json(str(f))
        if isinstance(doc, Exception):
            problems.append(Problem(f"not valid JSON: {doc}", file=str(f)))
            continue
        if not isinstance(doc, dict):
            problems.append(Problem("expected a JSON object", file=str(f)))
            continue
        meta.update(doc)
    return meta, chain, problems


@dataclass
class Series:
    """The magnitude files of one MEGRE series (one participant, session, acq, run ...)."""

    key: tuple
    files: list[tuple[BidsName, Path]] = field(default_factory=list)

    def label(self) -> str:
        return "_".join(f"{k}-{v}" for k, v in self.key if k not in ("sub", "ses")) or "(no entities)"


def megre_series(root: Path, pid: str, session: str | None,
                 entities: Mapping[str, str]) -> tuple[list[Series], list[Path]]:
    """The MEGRE magnitude series of a participant's session matching ``entities``.

    Returns the series (each with its echo files) and the other ``MEGRE`` files seen
    (phase, real ... parts), for messages.
    """
    series: dict[tuple, Series] = {}
    other = []
    for f in files_in(anat_folder(root, pid, session)):
        n = parse_name(f.name)
        if n is None or n.suffix != IMAGE_SUFFIX or n.extension not in IMAGE_EXTENSIONS:
            continue
        if n.entities.get("sub") != pid[4:] or n.entities.get("ses") != (session[4:] if session else None):
            other.append(f)
            continue
        if n.entities.get("part", "mag") != "mag":
            other.append(f)
            continue
        if any(n.entities.get(k) != str(v) for k, v in entities.items()):
            other.append(f)
            continue
        key = n.without("echo", "part")
        series.setdefault(key, Series(key)).files.append((n, f))
    return [series[k] for k in sorted(series)], other


def annotation_candidates(folder: Path, pid: str, session: str | None, suffix: str,
                          extensions: tuple[str, ...]) -> list[Path]:
    """Annotation files of a participant's session in ``folder``: flat or derivatives layout.

    Flat: ``folder/sub-X[_ses-Y]_..._<suffix><ext>``; derivatives:
    ``folder/sub-X/[ses-Y/]anat/sub-X[_ses-Y]_..._<suffix><ext>``. A file matches when
    its ``sub`` is the participant and its ``ses`` is the session (none when the
    image has none).
    """
    places = [folder, folder / pid / "anat"]
    if session:
        places.insert(1, folder / pid / session / "anat")
    out = []
    ses = session[4:] if session else None
    for place in places:
        for f in files_in(place):
            n = parse_name(f.name)
            if (n is not None and n.suffix == suffix and n.extension in extensions
                    and n.entities.get("sub") == pid[4:] and n.entities.get("ses") == ses):
                out.append(f)
    return out


def split_key(key: str) -> tuple[str, str | None]:
    """``sub-X`` or ``sub-X_ses-Y`` (a dataset's acquisition key) -> (participant, session).

    Examples
    --------
    >>> split_key("sub-01_ses-2"), split_key("sub-01")
    (('sub-01', 'ses-2'), ('sub-01', None))
    """
    pid, _, ses = str(key).partition("_")
    return pid, (ses or None)
