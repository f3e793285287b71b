"""One error class for problems in a user's data or settings.

The CLI prints a :class:`DataError` as one line and exits 2; anything else is a
bug and is allowed to show its traceback (exit 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable


@dataclass(frozen=True)
class Problem:
    """One problem found in a dataset, formatted as a single line.

    Parameters
    ----------
    message : str
        What is wrong and what was expected.
    file : str or Path, optional
        The file the problem is in.
    line : int, optional
        1-based line (for TSV files, the header is line 1).
    participant : str, optional
        ``sub-<label>`` the problem concerns.
    field : str, optional
        Column, key or label concerned.

    Examples
    --------
    >>> str(Problem("not a number: 'x'", file="participants.tsv", line=3,
    ...             participant="sub-01", field="age"))
    "participants.tsv:3: sub-01: age: not a number: 'x'"
    """

    message: str
    file: str | Path | None = None
    line: int | None = None
    participant: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.file is not None:
            loc = str(self.file)
            if self.line is not None:
                loc += f":{self.line}"
            parts.append(loc)
        if self.participant:
            parts.append(str(self.participant))
        if self.field:
            parts.append(str(self.field))
        parts.append(" ".join(str(self.message).split()))  # always one line
        return ": ".join(parts)


class DataError(Exception):
    """A problem with the user's input (data, annotations, manifest).

    Carries one or more :class:`Problem`; ``str()`` gives one line per problem.
    """

    def __init__(self, problems: Problem | str | Iterable[Problem], **where):
        if isinstance(problems, str):
            problems = [Problem(problems, **where)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def first(self) -> Problem:
        return self.problems[0]


def group_problems(problems: Iterable[Problem], limit: int = 5) -> list[Problem]:
    """Fold repeated problems of one kind into one line each, keeping file and field.

    Problems are of one kind when they differ only by participant and line: the
    participant's id is replaced by ``sub-<label>`` in the file and the message.
    A kind seen more than ``limit`` times becomes one problem naming how many and
    the first few participants (or lines); rarer kinds are kept as they are, in
    order of first appearance.

    Examples
    --------
    >>> ps = [Problem("no image", file=f"sub-{i}/anat", participant=f"sub-{i}", field="image")
    ...       for i in range(1, 8)]
    >>> [str(p) for p in group_problems(ps)]
    ['sub-<label>/anat: image: no image (7 participants: sub-1, sub-2, sub-3 and 4 more)']
    """
    problems = list(problems)
    kinds: dict[tuple, list[Problem]] = {}
    for p in problems:
        pid = p.participant or ""
        file = str(p.file) if p.file is not None else None
        msg = str(p.message)
        if pid:
            file = file.replace(pid, "sub-<label>") if file else file
            msg = msg.replace(pid, "sub-<label>")
        kinds.setdefault((file, p.field, msg), []).append(p)
    out: list[Problem] = []
    for (file, fld, msg), members in kinds.items():
        if len(members) <= limit:
            out.extend(members)
            continue
        pids = list(dict.fromkeys(m.participant for m in members if m.participant))
        if pids:
            who = f"{len(pids)} participants: " + _first(pids)
        else:
            lines = [str(m.line) for m in members if m.line is not None]
            who = f"{len(members)} times" + (f", lines {_first(lines)}" if lines else "")
        out.append(Problem(f"{msg} ({who})", file=file, field=fld))
    return out


def _first(items: list[str], n: int = 3) -> str:
    head = ", ".join(items[:n])
    return head if len(items) <= n else f"{head} and {len(items) - n} more"
