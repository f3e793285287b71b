"""The measurement of a cohort: one task per participant through an Executor."""
from __future__ import annotations

import os
import traceback
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import contract as C
from ..acquisition import echo_inputs as _echo_inputs
from ..bids import split_key
from ..errors import DataError
from .participant import measure_participant
from .qc import cohort_motion_flags
from .settings import FAILURE_COLUMNS, TABLE_COLUMNS, MeasureSettings, _settings

__all__ = ["measure_dataset", "hemisphere_average"]


def _safe_measure(participant_id, echoes, markups_path, settings, label_map=None,
                  session=None):
    """Worker: never raises, so one participant cannot stop the batch."""
    ses = f"{session}: " if session else ""
    try:
        return measure_participant(participant_id, echoes, markups_path, settings=settings,
                                   label_map=label_map, session=session), None
    except DataError as exc:
        labels = {p.field for p in exc.problems}
        label = labels.pop() if len(labels) == 1 and None not in labels else "n/a"
        return None, (participant_id, label, "data", ses + " | ".join(str(p) for p in exc.problems))
    except Exception as exc:  # a bug: keep where it happened for the failures table
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(last.filename).name}:{last.lineno} in {last.name}"
        return None, (participant_id, "n/a", "error", f"{ses}{type(exc).__name__}: {exc} (at {where})")


def measure_dataset(images: Mapping[str, Sequence], annotations: Mapping[str, object], *,
                    executor: Executor | None = None, jobs: int | None = None,
                    settings: MeasureSettings | None = None, areas=None,
                    roi_area_mm2: float | None = None, intensity_echo: int | None = None,
                    roi_shape: str | None = None,
                    label_maps: Mapping | None = None,
                    sessions: Mapping | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measure every participant, one task per participant, through an Executor.

    Parameters
    ----------
    images : mapping
        ``key -> echoes`` (see :func:`measure_participant`); the key is the
        participant id, or ``sub-<label>_ses-<label>`` for one session of several
        (as :attr:`m1lib.dataset.Dataset.images`).
    annotations : mapping
        ``key -> markups path``. A participant with images but no annotations is a
        failure.
    executor : concurrent.futures.Executor, optional
        Any executor (``.submit`` returning futures with ``.result()``), e.g. a
        ``dask.distributed.Client`` (or ``client.get_executor()``). Default: a
        process pool of ``jobs`` workers (``jobs=1``: run in this process).
    jobs : int, optional
        Workers of the default pool (default: CPU count, at most the cohort size).
    settings, areas, roi_area_mm2, intensity_echo, roi_shape :
        As in :func:`measure_participant`.
    label_maps : mapping, optional
        ``key -> LabelMap`` (:attr:`m1lib.dataset.Dataset.label_maps`).
    sessions : mapping, optional
        ``key -> 'ses-<label>'`` for the ``session`` column; default: from the key.
        ``Dataset.measure_inputs()`` gives all four mappings.

    Returns
    -------
    table : DataFrame
        All participants' rows, sorted by participant, hemisphere and area.
    failures : DataFrame
        ``participant_id, label, kind, reason`` (``label`` n/a when not one label):
        ``kind`` is ``data`` (a problem with the
        inputs) or ``error`` (a bug or a crashed worker). Nobody is dropped
        silently; the caller decides the exit status.
    """
    s = _settings(settings, areas=areas, roi_area_mm2=roi_area_mm2, intensity_echo=intensity_echo,
                  roi_shape=roi_shape)
    pids = sorted(images)
    tasks, failures = [], []
    label_maps, sessions = label_maps or {}, sessions or {}
    for key in pids:
        pid, ses = split_key(key)
        ses = sessions.get(key, ses)
        if key not in annotations:
            failures.append((pid, "n/a", "data", f"{key}: no annotations file"))
            continue
        tasks.append((key, (pid, _echo_inputs(images[key]), str(annotations[key]), s,
                            label_maps.get(key), ses)))
    results = {}
    if executor is None and (jobs == 1 or len(tasks) <= 1):
        for key, t in tasks:
            results[key] = _safe_measure(*t)
    else:
        own = executor is None
        if own:
            n = min(jobs or os.cpu_count() or 1, max(len(tasks), 1))
            executor = ProcessPoolExecutor(max_workers=n)
        try:
            futures = {key: executor.submit(_safe_measure, *t) for key, t in tasks}
            for key, fut in futures.items():
                try:
                    results[key] = fut.result()
                except Exception as exc:  # the worker died (e.g. out of memory)
                    results[key] = (None, (split_key(key)[0], "n/a", "error",
                                           f"{type(exc).__name__}: {exc}"))
        finally:
            if own:
                executor.shutdown()
    tables = []
    for pid in pids:
        if pid not in results:
            continue
        table, fail = results[pid]
        if fail is not None:
            failures.append(fail)
        else:
            tables.append(table)
    table = (pd.concat(tables, ignore_index=True) if tables
             else pd.DataFrame(columns=list(TABLE_COLUMNS)))
    table = _sort(cohort_motion_flags(table, s)) if len(table) else _sort(table)
    fails = pd.DataFrame(sorted(failures), columns=list(FAILURE_COLUMNS))
    return table, fails


def _sort(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return table.reset_index(drop=True)
    h = table["hemisphere"].map({h: i for i, h in enumerate(C.HEMISPHERES)})
    a = table["area"].map({a: i for i, a in enumerate(C.AREAS)})
    ses = (table["session"].fillna("").astype(str) if "session" in table
           else pd.Series("", index=table.index))
    order = np.lexsort((a.to_numpy(), h.to_numpy(), ses.to_numpy(), table["participant_id"].to_numpy()))
    return table.iloc[order].reset_index(drop=True)


def hemisphere_average(table: pd.DataFrame, *, by_area: bool = False,
                       columns=("thickness_mm", "profile_thickness_mm", "intensity", "r2star_s")
                       ) -> pd.DataFrame:
    """Per-participant values averaged over both hemispheres (the paper's summary).

    Parameters
    ----------
    table : DataFrame
        Measurement table (one row per participant, hemisphere, area).
    by_area : bool
        False: one row per participant, the mean over every hemisphere and area
        (the paper's "mean values from both cerebral hemispheres"); True: one row
        per participant and area, the mean of L and R.
    columns : sequence of str
        Columns averaged (those present); NaN values are skipped, and ``n_<col>``
        counts the values that went into each mean.

    Examples
    --------
    >>> t = pd.DataFrame({"participant_id": ["s"] * 2, "hemisphere": ["L", "R"],
    ...                   "area": ["hand"] * 2, "thickness_mm": [1.0, 2.0]})
    >>> hemisphere_average(t, columns=["thickness_mm"])["thickness_mm"].tolist()
    [1.5]
    """
    # one session's values are never averaged with another's
    ses = ["session"] if "session" in table and table["session"].notna().any() else []
    keys = ["participant_id"] + ses + (["area"] if by_area else [])
    cols = [c for c in columns if c in table.columns]
    g = table.groupby(keys, sort=True)[cols]
    out = g.mean()
    counts = g.count().add_prefix("n_")
    return pd.concat([out, counts], axis=1).reset_index()

