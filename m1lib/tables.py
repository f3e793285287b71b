"""The dataset's tables: ``participants.tsv``, the visual reads, precomputed measurements.

Each is read as text (``n/a`` verbatim) and checked cell by cell; every problem is
collected (one :class:`~m1lib.errors.Problem` a line). Missing values are ``n/a``
(BIDS) plus whatever the manifest declares (``files.missing_values``); a cell that
holds a common spelling of "missing" that was not declared (``NA`` from R or
Excel, an empty cell) is reported once per spelling, not once per cell.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import contract as C
from .errors import Problem

MISSING = "n/a"
ID = re.compile(r"^sub-[A-Za-z0-9]+$")
#: Spellings of "missing" that are not BIDS's ``n/a``: reported unless declared.
MISSING_LOOKALIKES = ("", "NA", "N/A", "na", "NaN", "nan", "NULL", "null", "None", "-", ".")


def rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def read_tsv(path: Path, root: Path, problems: list[Problem]) -> pd.DataFrame | None:
    """Read a BIDS TSV as text (``n/a`` kept verbatim); None and a problem if unreadable."""
    name = rel(path, root)
    if not path.is_file():
        problems.append(Problem("file not found", file=name))
        return None
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        problems.append(Problem(f"not a readable tab-separated table: {str(exc).splitlines()[0]}",
                                file=name))
        return None
    except PermissionError:
        problems.append(Problem("cannot be read (permission denied)", file=name))
        return None
    df.columns = [c.strip() for c in df.columns]
    return df.apply(lambda s: s.str.strip())


def normalize_missing(df: pd.DataFrame, columns, name: str,
                      missing_values=()) -> tuple[pd.DataFrame, dict, list[Problem]]:
    """Turn declared missing values into ``n/a``; report undeclared look-alikes once each.

    Returns
    -------
    table : DataFrame
        A copy with declared missing values replaced by ``n/a``.
    reported : dict
        ``column -> bool array``: cells already reported (an undeclared look-alike);
        callers skip them.
    problems : list of Problem
        One per undeclared spelling, naming how many cells, which columns and rows.

    Examples
    --------
    >>> df = pd.DataFrame({"age": ["NA", "40", "NA"]})
    >>> _, rep, ps = normalize_missing(df, ["age"], "participants.tsv")
    >>> str(ps[0]).split(";")[0]
    "participants.tsv: 2 cells hold 'NA' (column age, lines 2, 4)"
    >>> normalize_missing(df, ["age"], "p.tsv", ["NA"])[0]["age"].tolist()
    ['n/a', '40', 'n/a']
    """
    out = df.copy()
    cols = [c for c in df.columns if c in set(columns)]  # in the file's order
    reported = np.zeros((len(df), len(cols)), dtype=bool)
    declared = {str(v) for v in missing_values}
    for c in cols:
        out.loc[out[c].isin(declared), c] = MISSING
    problems = []
    for token in MISSING_LOOKALIKES:
        if token in declared:
            continue
        hit = np.column_stack([(out[c] == token).to_numpy() for c in cols]) if cols else reported
        if not hit.any():
            continue
        reported |= hit
        rows = np.flatnonzero(hit.any(axis=1))
        hit_cols = [c for c, h in zip(cols, hit.any(axis=0)) if h]
        shown = ", ".join(str(r + 2) for r in rows[:5]) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
        what = "are empty" if token == "" else f"hold {token!r}"
        yaml_token = '""' if token == "" else token
        problems.append(Problem(
            f"{int(hit.sum())} cells {what} (column{'s' if len(hit_cols) > 1 else ''} "
            f"{', '.join(hit_cols)}, lines {shown}); write missing values as n/a, or set "
            f"`files.missing_values: [{yaml_token}]` in the manifest", file=name))
    return out, {c: reported[:, n] for n, c in enumerate(cols)}, problems


def _number(value: str) -> float | None:
    if value == MISSING:
        return np.nan
    try:
        x = float(value)
    except ValueError:
        return None
    return x if np.isfinite(x) else None


def require_columns(df, cols, name, problems) -> bool:
    missing = [c for c in cols if c not in df.columns]
    for c in missing:
        problems.append(Problem("required column is missing", file=name, field=c))
    return not missing


def check_participants(df: pd.DataFrame, name: str, *, missing_values=(),
                       patient_group: str = "ALS",
                       comparison_groups=("HS",)) -> tuple[pd.DataFrame, list[Problem]]:
    """Type and check ``participants.tsv`` (already read as text).

    Groups may be any labels; the patient group and at least one comparison group
    must be among the analysed participants. The clinical columns of
    :data:`m1lib.contract.ALS_REQUIRED` are required for the analysed patients.

    Returns the typed table (numbers as float, ``excluded`` as bool) and the problems.
    """
    problems: list[Problem] = []
    base = ["participant_id", "group", "age", "sex", "excluded"]
    if not require_columns(df, base, name, problems):
        return df, problems
    numeric = [c for c in (*C.ALS_REQUIRED, *C.OPTIONAL_NUMERIC, "age") if c in df.columns]
    checked = ["group", "sex", "excluded", *numeric]
    df, reported, problems = normalize_missing(df, checked, name, missing_values)
    skip = reported
    out = df.copy()
    values = {c: np.full(len(df), np.nan) for c in numeric}
    excluded = np.zeros(len(df), dtype=bool)
    seen: dict[str, int] = {}
    for i, row in enumerate(df.itertuples(index=False)):
        r = row._asdict()
        line = i + 2
        pid = r["participant_id"]
        where = dict(file=name, line=line, participant=pid or None)
        if not ID.match(pid):
            problems.append(Problem(f"invalid participant_id {pid!r} (expected 'sub-<alphanumeric label>')",
                                    field="participant_id", **where))
        if pid in seen:
            problems.append(Problem(f"duplicate participant_id (first on line {seen[pid]})",
                                    field="participant_id", **where))
        else:
            seen[pid] = line
        if r["group"] == MISSING and not skip["group"][i]:
            problems.append(Problem("group is missing (every participant needs one)", field="group", **where))
        if r["sex"] not in C.SEXES and not skip["sex"][i]:
            problems.append(Problem(f"sex {r['sex']!r} is not one of {', '.join(C.SEXES)}",
                                    field="sex", **where))
        ex = r["excluded"].lower()
        if ex not in ("true", "false") and not skip["excluded"][i]:
            problems.append(Problem(f"excluded {r['excluded']!r} is not 'true' or 'false'",
                                    field="excluded", **where))
        excluded[i] = ex == "true"
        for c in numeric:
            if skip[c][i]:
                continue
            x = _number(r[c])
            if x is None:
                problems.append(Problem(f"not a number: {r[c]!r}", field=c, **where))
                continue
            values[c][i] = x
            lo_hi = C.RANGES.get(c)
            if lo_hi and not np.isnan(x) and not (lo_hi[0] <= x <= lo_hi[1]):
                problems.append(Problem(f"{x:g} is out of range (expected {lo_hi[0]:g}-{lo_hi[1]:g})",
                                        field=c, **where))
        if r["group"] == patient_group and not excluded[i]:
            for c in C.ALS_REQUIRED:
                if c in df.columns and r[c] == MISSING and not skip[c][i]:
                    problems.append(Problem(f"missing; required for every analysed {patient_group} "
                                            "participant", field=c, **where))
            dd = values.get("disease_duration_months")
            if dd is not None and not np.isnan(dd[i]) and dd[i] <= 0:
                problems.append(Problem(f"disease duration {dd[i]:g} must be > 0 months "
                                        "(DPR = (48 - ALSFRS-R) / duration is undefined)",
                                        field="disease_duration_months", **where))
    problems += _check_groups(df["group"][~excluded], name, patient_group, comparison_groups)
    if (df["group"] == patient_group).any():
        for c in C.ALS_REQUIRED:
            if c not in df.columns:
                problems.append(Problem(f"required column is missing (needed for {patient_group} "
                                        "participants)", file=name, field=c))
    for c in numeric:
        out[c] = values[c]
    out["excluded"] = excluded
    if "exclusion_reason" in out.columns:
        out["exclusion_reason"] = out["exclusion_reason"].replace({MISSING: ""})
    return C.with_derived(out) if not any(c not in out for c in C.ALS_REQUIRED) else out, problems


def _check_groups(groups: pd.Series, name, patient_group, comparison_groups) -> list[Problem]:
    found = sorted(set(groups) - {MISSING})
    problems = []
    if patient_group not in found:
        problems.append(Problem(
            f"no analysed participant is in the patient group {patient_group!r} (groups found: "
            f"{', '.join(found) or 'none'}); set `settings.patient_group` in the manifest",
            file=name, field="group"))
    if not set(comparison_groups) & set(found):
        problems.append(Problem(
            f"no analysed participant is in a comparison group ({', '.join(comparison_groups)}; "
            f"groups found: {', '.join(found) or 'none'}); set `settings.comparison_groups` "
            "in the manifest", file=name, field="group"))
    return problems


def check_reads(reads: pd.DataFrame, participants: pd.DataFrame, name: str) -> list[Problem]:
    """Check ``visual_reads.tsv`` against the participants."""
    problems: list[Problem] = []
    if not require_columns(reads, ["participant_id", "reader", "call"], name, problems):
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


def check_measurements(meas: pd.DataFrame, participants: pd.DataFrame, name: str, *,
                       missing_values=()) -> tuple[pd.DataFrame, list[Problem]]:
    """Type and check a long measurement table (an optional ``session`` column is a key)."""
    problems: list[Problem] = []
    if not require_columns(meas, [*C.MEASUREMENT_KEY, *C.MEASUREMENT_VALUES], name, problems):
        return meas, problems
    meas, reported, problems = normalize_missing(meas, C.MEASUREMENT_VALUES, name, missing_values)
    known = set(participants["participant_id"])
    out = meas.copy()
    vals = {c: np.full(len(meas), np.nan) for c in C.MEASUREMENT_VALUES}
    has_session = "session" in meas.columns
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
        key = (r.participant_id, r.session if has_session else None, r.hemisphere, r.area)
        if key in seen:
            problems.append(Problem(f"duplicate row for {r.hemisphere} {r.area} (first on line {seen[key]})",
                                    field="area", **where))
        seen.setdefault(key, i + 2)
        for c in C.MEASUREMENT_VALUES:
            if reported[c][i]:
                continue
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
