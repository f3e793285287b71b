"""A participant's Slicer markups file opened for editing, and saved safely.

Saving never loses a version and never writes into a dataset that is not meant
to be written: the previous file is copied to a backup folder *outside* the
annotation folder (the manifest's ``output_dir / "explorer_backups"``), the
file is replaced atomically (temporary file, fsync, rename), a file that
changed on disk since it was opened is not overwritten, and a read-only file or
folder, or a git-annex/DataLad symlink, is refused before anything is written.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from ..errors import DataError, Problem
from ..markups import Markup, markups_document, parse_markups, ras_to_lps

__all__ = ["AnnotationConflict", "AnnotationFile", "not_writable_reason"]

_MM_PER_UNIT = {"mm": 1.0, "um": 1e-3}   # Slicer's coordinateUnits


class AnnotationConflict(DataError):
    """The markups file changed on disk since it was opened: saving would lose that change."""


def _fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def not_writable_reason(path: Path) -> str | None:
    """Why ``path`` (an existing file) must not be rewritten in place, or None.

    Mode bits are read as well as :func:`os.access`, so a read-only file is
    refused even for root (who may write anything).
    """
    if path.is_symlink():
        return (f"it is a symbolic link (to {os.readlink(path)}), as git-annex/DataLad store "
                "files; unlock it first (`datalad unlock` or `git annex unlock`)")
    mode = path.stat().st_mode
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(path, os.W_OK):
        return "the file is read-only"
    folder = path.parent
    if (not folder.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
            or not os.access(folder, os.W_OK | os.X_OK)):
        return f"its folder {folder} is read-only"
    return None


def _atomic_write(path: Path, text: str, mode: int | None = None) -> None:
    """Write via a temporary file in the same folder, fsync, rename: never half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable (POSIX; harmless where unsupported)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


class AnnotationFile:
    """A participant's Slicer markups file opened for editing.

    Opening records the file's SHA-256, mtime and size; :meth:`save` refuses to
    overwrite the file when its content no longer has that SHA-256 (saved in
    Slicer or another notebook meanwhile). Only the edited control points change
    in the file (see :meth:`text`).

    Parameters
    ----------
    path : path
        ``derivatives/annotations/sub-<label>_desc-m1_markups.mrk.json``.

    Attributes
    ----------
    markups : dict of str to Markup
        The working copy (RAS points); edit it, then :meth:`save`.
    original : dict of str to Markup
        What the file held when opened (or last saved).
    sha256, mtime_ns, size :
        The file as opened.
    """

    def __init__(self, path):
        self.path = Path(path)
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise DataError(Problem("annotation file not found", file=self.path)) from None
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(Problem(f"not valid JSON ({exc})", file=self.path)) from None
        self.original: dict[str, Markup] = parse_markups(doc, source=self.path)
        self.markups: dict[str, Markup] = copy.deepcopy(self.original)
        self._doc = doc
        self.sha256 = _fingerprint(data)
        self.mtime_ns, self.size = _stat(self.path)
        systems = [m.coordinate_system for m in self.original.values()]
        #: written back in the system the file used (Slicer's default LPS otherwise)
        self.coordinate_system = systems[0] if systems else "LPS"

    @property
    def dirty(self) -> bool:
        """Whether the working copy differs from the file as opened."""
        if self.markups.keys() != self.original.keys():
            return True
        return not all(self.markups[k].allclose(self.original[k], atol=1e-6) for k in self.markups)

    def changed_on_disk(self) -> str | None:
        """Why the file on disk is no longer the one opened, or None when it is.

        The content (SHA-256) decides; mtime and size are reported with it.
        """
        try:
            data = self.path.read_bytes()
            mtime, size = _stat(self.path)
        except FileNotFoundError:
            return "the file was deleted"
        if _fingerprint(data) != self.sha256:
            when = datetime.fromtimestamp(mtime / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            return (f"its content changed (SHA-256 {self.sha256[:12]} when opened, "
                    f"{_fingerprint(data)[:12]} now; modified {when}, {size} bytes)")
        return None

    def text(self) -> str:
        """The file text :meth:`save` writes.

        The document as opened, with only the edited markups' control-point
        positions replaced (in each markup's own ``coordinateSystem`` and units,
        rounded to 0.1 um) and a Line's stored ``length`` updated; everything else
        the rater's file holds (ids, labels, descriptions, display) is kept.
        A markup the file did not have is added as :mod:`m1lib.markups` writes it.
        """
        doc = copy.deepcopy(self._doc)
        items = doc["markups"]
        where = {it.get("name"): n for n, it in enumerate(items) if isinstance(it, dict)}
        for name, m in self.markups.items():
            old = self.original.get(name)
            if old is not None and old.allclose(m, atol=0.0) and name in where:
                continue
            n = where.get(name)
            cps = items[n].get("controlPoints") if n is not None else None
            if n is None or not isinstance(cps, list) or len(cps) != len(m.points):
                fresh = markups_document([m], self.coordinate_system)["markups"][0]
                if n is None:
                    items.append(fresh)
                else:
                    items[n] = fresh
                continue
            it = items[n]
            units = it.get("coordinateUnits", "mm")
            scale = _MM_PER_UNIT[units[0] if isinstance(units, list) else units]
            pts = m.points if it.get("coordinateSystem", "LPS") == "RAS" else ras_to_lps(m.points)
            for cp, p in zip(cps, pts):
                cp["position"] = [round(float(v) / scale, 4 if scale == 1.0 else 1) + 0.0 for v in p]
                cp["positionStatus"] = "defined"
            for meas in it.get("measurements") or []:
                if isinstance(meas, dict) and meas.get("name") == "length" and "value" in meas:
                    meas["value"] = round(m.length_mm / scale, 4)
        return json.dumps(doc, indent=2, allow_nan=False) + "\n"

    def check_writable(self) -> None:
        """Raise :class:`DataError` when the file cannot or must not be rewritten in place."""
        why = not_writable_reason(self.path)
        if why:
            raise DataError(Problem(
                f"not saved: the dataset is not writable here ({why}); nothing was written",
                file=self.path))

    def save(self, backup_dir) -> Path:
        """Write the working copy; return the backup of the previous file.

        Parameters
        ----------
        backup_dir : path
            Folder for the backup (created when missing), outside the annotation
            folder: ``<name>.<UTC time>.bak``.

        Raises
        ------
        AnnotationConflict
            When the file changed on disk since it was opened (nothing is written).
        DataError
            When the file or its folder is read-only, a DataLad/git-annex symlink,
            or the backup cannot be written (nothing is written).
        """
        why = self.changed_on_disk()
        if why:
            raise AnnotationConflict(Problem(
                f"not saved: the file changed on disk since it was opened ({why}); reload it "
                "(your edits are discarded) or copy your edits by hand", file=self.path))
        self.check_writable()
        text = self.text()
        parse_markups(json.loads(text), source=self.path)   # what we write reads back
        previous = self.path.read_bytes()
        stat_before = _stat(self.path)
        if _fingerprint(previous) != self.sha256:  # changed in the last instant
            raise AnnotationConflict(Problem("not saved: the file changed on disk while saving",
                                             file=self.path))
        backup = self._write_backup(Path(backup_dir), previous)
        mode = os.stat(self.path).st_mode & 0o7777
        if _stat(self.path) != stat_before:
            backup.unlink(missing_ok=True)
            raise AnnotationConflict(Problem("not saved: the file changed on disk while saving",
                                             file=self.path))
        try:
            _atomic_write(self.path, text, mode)
        except OSError as exc:
            backup.unlink(missing_ok=True)
            raise DataError(Problem(f"not saved: cannot write the annotation ({exc.strerror or exc}); "
                                    "the dataset is not writable here", file=self.path)) from None
        self.sha256 = _fingerprint(text.encode("utf-8"))
        self.mtime_ns, self.size = _stat(self.path)
        self._doc = json.loads(text)
        self.original = parse_markups(self._doc, source=self.path)
        self.markups = copy.deepcopy(self.original)
        return backup

    def _write_backup(self, folder: Path, previous: bytes) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            backup = folder / f"{self.path.name}.{stamp}.bak"
            n = 1
            while backup.exists():
                backup = folder / f"{self.path.name}.{stamp}-{n}.bak"
                n += 1
            backup.write_bytes(previous)
        except OSError as exc:
            raise DataError(Problem(f"not saved: cannot write the backup of the previous file "
                                    f"({exc.strerror or exc})", file=folder)) from None
        return backup

    def revert(self) -> None:
        """Discard the working copy's edits."""
        self.markups = copy.deepcopy(self.original)
