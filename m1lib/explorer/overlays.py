"""What is drawn over the image: the measurement's own ROIs, calipers and edge fits.

:class:`LiveMeasurement` measures the working (possibly unsaved) annotations
with :func:`m1lib.measure.participant_details` and caches the result on the
points; :func:`slice_overlays` turns what the measurement used on the shown
slice into :class:`Overlay` polylines in voxel coordinates. Nothing here is
re-derived: the ovals are the measurement's ellipses, the edges its profile fit.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import contract as C
from ..errors import DataError
from ..markups import Markup
from ..measure import MeasureSettings, participant_details

__all__ = ["OVERLAYS", "Detail", "Overlay", "LiveMeasurement", "edge_overlays", "area_of"]

#: Switchable overlays, in drawing order.
OVERLAYS: tuple[str, ...] = ("roi", "caliper", "reference", "edges")


@dataclass(frozen=True)
class Detail:
    """What :mod:`m1lib.measure` used for one label: slice, plane, ROI, caliper, profile fit."""

    k: int
    plane: object            # geometry.SlicePlane
    ellipse: object          # measure.Ellipse (slice-plane mm)
    ij: np.ndarray           # caliper / reference point(s), in-plane voxel coordinates
    profile: object = None   # profile.Profile (None for the reference)
    fit: object = None       # profile.EdgeFit


@dataclass(frozen=True)
class Overlay:
    """A drawable overlay in in-plane voxel coordinates (i, j) of the shown slice."""

    kind: str        # "roi", "caliper", "reference", "edge_outer", "edge_inner"
    label: str
    ij: np.ndarray   # (n, 2)
    style: str = "-"  # "-" or "--" (a fit that did not pass its checks)
    active: bool = False


def area_of(label: str) -> str | None:
    """The Penfield area of a caliper label (``L_hand`` -> ``hand``); None for the reference."""
    return label.split("_", 1)[1] if label != C.REFERENCE_LABEL else None


class LiveMeasurement:
    """Measure one area (both hemispheres) and the reference from working markups, cached.

    The cache key holds the points of every markup the area's measurement
    reads, so moving a caliper back and forth re-measures only new positions.

    Parameters
    ----------
    settings : MeasureSettings
    max_entries : int
        Oldest results are dropped beyond this many.
    """

    def __init__(self, settings: MeasureSettings, max_entries: int = 256):
        self.settings = settings
        self.max_entries = max_entries
        self._cache: dict[tuple, tuple] = {}

    def area(self, participant_id: str, echoes: Sequence, markups: Mapping[str, Markup],
             area: str) -> tuple[pd.DataFrame | None, dict, str]:
        """``(table, {label: Detail}, error)``; on a problem the table is None and
        ``error`` says why (one line per problem, naming the label)."""
        names = [f"{h}_{area}" for h in C.HEMISPHERES] + [C.REFERENCE_LABEL]
        names += [f"{n}_roi" for n in names]
        key = (participant_id, area, tuple((n, np.round(markups[n].points, 6).tobytes())
                                           for n in names if n in markups))
        if key not in self._cache:
            s = replace(self.settings, areas=(area,))
            try:
                table, det = participant_details(participant_id, echoes, dict(markups), settings=s)
                self._cache[key] = (table, {lab: _detail(d) for lab, d in det.items()}, "")
            except DataError as exc:
                self._cache[key] = (None, {}, "; ".join(
                    p.message + (f" ({p.field})" if p.field else "") for p in exc.problems))
            if len(self._cache) > self.max_entries:
                self._cache.pop(next(iter(self._cache)))
        return self._cache[key]


def _detail(d: dict) -> Detail:
    return Detail(int(d["k"]), d["plane"], d["ellipse"], np.asarray(d["ij"], float),
                  d.get("profile"), d.get("fit"))


def edge_overlays(label: str, d: Detail, active: bool) -> list[Overlay]:
    """The fitted outer and inner edges of the deep layer, as in the audit figure:
    points where ``s cos(a) + o sin(a) = e`` across the sampled patch."""
    fit, prof = d.fit, d.profile
    if prof is None or not np.isfinite(getattr(fit, "e_outer", np.nan)):
        return []
    ang = np.deg2rad(fit.angle_deg if np.isfinite(fit.angle_deg) else 0.0)
    o = np.array([prof.offsets[0], prof.offsets[-1]]) * 1.5
    out = []
    for e, kind in ((fit.e_outer, "edge_outer"), (fit.e_inner, "edge_inner")):
        s = (e - o * np.sin(ang)) / np.cos(ang)
        out.append(Overlay(kind, label, d.plane.uv_to_ij(prof.to_uv(s, o)),
                           style="-" if fit.ok else "--", active=active))
    return out


def label_overlays(label: str, k: int, points_ij: np.ndarray, detail: Detail | None,
                   on: Mapping[str, bool], active: bool) -> list[Overlay]:
    """The overlays of one label on slice ``k`` (those switched off in ``on`` left out)."""
    d = detail if detail is not None and detail.k == k else None
    out: list[Overlay] = []
    if label == C.REFERENCE_LABEL:
        if not on["reference"]:
            return out
        if d is not None:
            out.append(Overlay("reference", label, d.plane.uv_to_ij(d.ellipse.outline()), active=active))
        out.append(Overlay("reference", label, points_ij, active=active))
        return out
    if on["roi"] and d is not None:
        out.append(Overlay("roi", label, d.plane.uv_to_ij(d.ellipse.outline()), active=active))
    if on["edges"] and d is not None and d.fit is not None:
        out += edge_overlays(label, d, active)
    if on["caliper"]:
        out.append(Overlay("caliper", label, points_ij, active=active))
    return out
