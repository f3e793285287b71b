"""Files written so that an interrupted run never leaves half of anything.

- :func:`write_atomic`: a file is written beside its target and renamed over it.
- :class:`RunLock`: one writer per output; the lock is an ``fcntl`` lock the kernel
  releases when its process dies, so a ``kill -9`` never leaves a lock to clear by hand.
- :func:`replace_dir`: a folder is built elsewhere and swapped into place with two
  renames; :func:`recover_dir` puts the previous one back if a run died between them.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pandas as pd

from .errors import DataError


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename: never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        if isinstance(text, bytes):
            with os.fdopen(fd, "wb") as fh:
                fh.write(text)
        else:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; honour the user's umask
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def to_tsv(df: pd.DataFrame) -> str:
    """Deterministic TSV text (``n/a`` for missing, full float precision)."""
    return df.to_csv(sep="\t", index=False, na_rep="n/a", lineterminator="\n", float_format="%.10g")


class RunLock:
    """An exclusive lock on ``<folder>/.<name>.lock`` held for a ``with`` block.

    The lock file records who holds it (pid, host, start time) for the message a
    second run prints; the lock itself is ``fcntl.flock``, which the kernel drops
    when the holder exits or is killed, so a stale lock recovers by itself.

    Parameters
    ----------
    target : Path
        What is protected (a report folder, an output folder); the lock file sits
        beside it.
    wait_s : float
        How long to wait for another run before giving up with a :class:`DataError`.
    """

    def __init__(self, target: Path, wait_s: float = 0.0, log=print):
        target = Path(target)
        self.path = target.parent / f".{target.name}.lock"
        self.wait_s = wait_s
        self.log = log
        self._fh = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        deadline = time.monotonic() + self.wait_s
        told = False
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                if time.monotonic() >= deadline:
                    fh.close()
                    raise DataError(f"in use by another m1lib run ({holder}); wait for it to "
                                    "finish or choose another output folder", file=self.path.parent)
                if not told:
                    self.log(f"waiting for another m1lib run ({holder}) ...")
                    told = True
                time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def staging_dir(target: Path) -> Path:
    """A new, uniquely named folder beside ``target`` to build its replacement in."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; the folder it becomes follows the umask
    return stage


def _leftovers(target: Path, kind: str) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.{kind}-*"))


def recover_dir(target: Path, log=print) -> None:
    """Clean what killed runs left beside ``target``; call it while holding its lock.

    A run killed between the two renames of :func:`replace_dir` left no ``target``
    but its previous version as ``.NAME.old-*``: that is put back. Staging folders and
    other old versions are removed (only lock holders create them, so none is live).
    """
    target = Path(target)
    olds = _leftovers(target, "old")
    if not target.exists() and olds:
        newest = max(olds, key=lambda p: p.stat().st_mtime_ns)
        os.replace(newest, target)
        log(f"restored {target} (a run was interrupted while replacing it)")
        olds.remove(newest)
    stale = _leftovers(target, "staging") + olds
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    if stale:
        log(f"removed {len(stale)} folder(s) left by interrupted runs beside {target}")


def replace_dir(new: Path, target: Path) -> None:
    """Put folder ``new`` in place of ``target`` (two renames; the old one survives a crash)."""
    new, target = Path(new), Path(target)
    old = None
    if target.exists():
        # a unique name (two runs on one output never share it), freed for the rename
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        old.rmdir()
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
