"""A content-keyed memo of deterministic computations (bootstrap CIs, power simulations,
measured crops, rendered figures), so a re-run report does not redo them.

A result is reused only when its key is unchanged. The key holds:

- the function (module and qualified name);
- a digest of every argument by *content*: tables by their full-precision TSV and
  column kinds (as a snapshot stores them), arrays by dtype, shape and bytes,
  dataclasses field by field, files (:class:`~pathlib.Path`) by the SHA-256 of their
  bytes; an argument of any other type is a ``TypeError`` (never a guess);
- the source of every m1lib module the function's module imports, followed
  transitively (subpackages included), and the versions of the third-party
  distributions those modules import, and Python's;
- :data:`FORMAT`, bumped when the stored layout changes.

Values are pickled to ``<folder>/<key[:2]>/<key>.pkl`` (written atomically, the key
stored inside and checked on reading). A :class:`Memo` without a folder computes
every call: ``m1lib report --no-cache`` runs the notebooks that way. The report keeps
its memo in ``<output folder>/memo/`` (:data:`MEMO_DIR`); deleting it is always safe.
"""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import pickle
import sys
from functools import lru_cache
from pathlib import Path, PurePath

import numpy as np
import pandas as pd

from .cache import versions_of
from .fsutil import sha256_file, write_atomic
from .snapshot import encode_table

__all__ = ["Memo", "digest", "code_closure", "code_hash", "MEMO_DIR", "FORMAT"]

#: The memo's folder inside the manifest's output folder.
MEMO_DIR = "memo"
#: Version of the stored layout (part of every key).
FORMAT = 1
PACKAGE_DIR = Path(__file__).resolve().parent


# --------------------------------------------------------------------------- arguments
def _feed(h, obj) -> None:
    """Update hash ``h`` with a type-tagged, content-based encoding of ``obj``."""
    if obj is None or isinstance(obj, (bool, int, str)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, float):
        h.update(f"float:{obj!r};".encode())       # repr round-trips exactly
    elif isinstance(obj, bytes):
        h.update(b"bytes:%d:" % len(obj) + obj)
    elif isinstance(obj, np.generic):
        _feed(h, obj.item())
    elif isinstance(obj, PurePath):
        p = Path(obj)
        if not p.is_file():
            raise TypeError(f"memo: {p} is not a file; only files can be keyed by content")
        h.update(f"file:{sha256_file(p)};".encode())
    elif isinstance(obj, np.ndarray):
        if obj.dtype == object:
            h.update(f"objarray:{obj.shape};".encode())
            for v in obj.ravel():
                _feed(h, v)
        else:
            a = np.ascontiguousarray(obj)
            h.update(f"array:{a.dtype.str}:{a.shape};".encode() + a.tobytes())
    elif isinstance(obj, pd.Series):
        h.update(b"series:")
        _feed(h, obj.name)
        _feed(h, obj.to_frame(name="__value__"))
    elif isinstance(obj, pd.DataFrame):
        data, kinds = encode_table(obj)         # raises TypeError on a dtype it cannot store
        h.update(b"frame:")
        _feed(h, json.dumps(kinds, sort_keys=False))
        _feed(h, data)
        _feed(h, np.asarray(obj.index, dtype=object))
        _feed(h, list(obj.index.names))
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}:{len(obj)};".encode())
        for v in obj:
            _feed(h, v)
    elif isinstance(obj, dict):
        items = sorted((digest(k), k, v) for k, v in obj.items())
        h.update(f"dict:{len(items)};".encode())
        for dk, _, v in items:
            h.update(dk.encode())
            _feed(h, v)
    elif isinstance(obj, (set, frozenset)):
        _feed(h, sorted(digest(v) for v in obj))
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        h.update(f"dataclass:{cls.__module__}.{cls.__qualname__};".encode())
        for f in dataclasses.fields(obj):
            h.update(f.name.encode() + b"=")
            _feed(h, getattr(obj, f.name))
    elif isinstance(obj, np.random.Generator):
        h.update(b"generator:")
        _feed(h, obj.bit_generator.state)
    else:
        raise TypeError(f"memo: cannot key an argument of type {type(obj).__module__}."
                        f"{type(obj).__qualname__} by content")


def digest(obj) -> str:
    """SHA-256 of ``obj``'s content (see the module docstring for what is supported).

    Examples
    --------
    >>> a = pd.DataFrame({"x": [0.1, 0.2]})
    >>> digest(a) == digest(a.copy()), digest(a) == digest(a.assign(x=[0.1, 0.2000001]))
    (True, False)
    """
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


# --------------------------------------------------------------------------- code
def _source(module: str) -> Path | None:
    """The file of m1lib module ``module`` (``"stats.groups"``, ``"stats"``), or None."""
    base = PACKAGE_DIR.joinpath(*module.split(".")) if module else PACKAGE_DIR
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _imports(module: str) -> tuple[set[str], set[str]]:
    """m1lib modules (dotted, relative to m1lib) and third-party top-level names
    imported anywhere in ``module`` (statements inside functions count too)."""
    path = _source(module)
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    inner, outer = set(), set()

    def add(name: str) -> None:  # name relative to m1lib; keep the longest that is a module
        parts = name.split(".") if name else []
        while parts and _source(".".join(parts)) is None:
            parts.pop()
        inner.add(".".join(parts))

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for a in node.names:
                top, _, rest = a.name.partition(".")
                (add(rest) if top == "m1lib" else outer.add(top))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "m1lib":
                mod = node.module.partition(".")[2]
            else:
                outer.add((node.module or "").split(".")[0])
                continue
            add(mod)
            for a in node.names:  # "from m1lib import stats": a submodule, or a name in mod
                sub = f"{mod}.{a.name}" if mod else a.name
                if _source(sub) is not None:
                    add(sub)
    outer = {m for m in outer if m} - set(sys.stdlib_module_names) - {"__future__", "m1lib"}
    return inner, outer


@lru_cache(maxsize=None)
def code_closure(module: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """m1lib modules that ``module`` (e.g. ``"m1lib.power.simulate"``) imports,
    transitively and with the packages they sit in, and the third-party top-level
    modules those import."""
    start = module.partition(".")[2] if module.split(".")[0] == "m1lib" else module
    todo, seen, libs = [start], set(), set()
    while todo:
        m = todo.pop()
        if m in seen or _source(m) is None:
            continue
        seen.add(m)
        parent = m.rpartition(".")[0]
        todo.append(parent)  # importing m1lib.a.b runs m1lib/a/__init__.py (and m1lib's)
        inner, outer = _imports(m)
        libs |= outer
        todo += sorted(inner - seen)
    return tuple(sorted(seen)), tuple(sorted(libs))


@lru_cache(maxsize=None)
def code_hash(module: str) -> str:
    """SHA-256 over the source of :func:`code_closure` of ``module`` and the versions of
    the libraries it imports."""
    mods, libs = code_closure(module)
    h = hashlib.sha256()
    for m in mods:
        h.update(m.encode() + b"\0" + _source(m).read_bytes())
    h.update(json.dumps(versions_of(libs), sort_keys=True).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- the memo
class Memo:
    """Call deterministic functions through a content-keyed store.

    Parameters
    ----------
    folder : path or None
        Where results are kept; None computes every call (nothing read or written).

    Attributes
    ----------
    hits, misses : int
        Calls served from the store, and calls computed (and stored).

    Examples
    --------
    >>> import tempfile
    >>> memo = Memo(tempfile.mkdtemp())
    >>> memo(np.add, np.arange(3), 1), memo(np.add, np.arange(3), 1), (memo.hits, memo.misses)
    (array([1, 2, 3]), array([1, 2, 3]), (1, 1))
    """

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder is not None else None
        self.hits = self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def key(self, fn, args: tuple = (), kwargs: dict | None = None, *, code: tuple[str, ...] = (),
            extra=None) -> str:
        """The key of ``fn(*args, **kwargs)``; ``code`` names further modules whose code
        closure decides the result, ``extra`` any further content (e.g. settings)."""
        mod = getattr(fn, "__module__", None) or ""
        name = getattr(fn, "__qualname__", None) or repr(fn)
        h = hashlib.sha256()
        h.update(f"memo{FORMAT}:{mod}.{name};".encode())
        for m in sorted({mod, *code}):
            h.update(f"code:{m}={code_hash(m)};".encode())
        _feed(h, list(args))
        _feed(h, dict(kwargs or {}))
        _feed(h, extra)
        return h.hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.pkl"

    def get(self, key: str):
        """``(True, value)`` when ``key`` is stored, else ``(False, None)``."""
        if self.folder is None:
            return False, None
        try:
            stored_key, value = pickle.loads(self._path(key).read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                ImportError):
            return False, None   # missing, truncated or from a removed class: recompute
        return (True, value) if stored_key == key else (False, None)

    def put(self, key: str, value) -> None:
        """Store ``value`` under ``key`` (atomically; nothing when disabled)."""
        if self.folder is not None:
            path = self._path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, pickle.dumps((key, value), protocol=pickle.HIGHEST_PROTOCOL))

    def __call__(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, from the store when its key is there."""
        if self.folder is None:
            self.misses += 1
            return fn(*args, **kwargs)
        key = self.key(fn, args, kwargs)
        found, value = self.get(key)
        if found:
            self.hits += 1
            return value
        self.misses += 1
        value = fn(*args, **kwargs)
        self.put(key, value)
        return value
