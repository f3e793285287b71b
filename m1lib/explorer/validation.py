"""Save only what can be measured: the checks an edited annotation passes before it is written.

:func:`check_before_save` runs on the exact text that would be written (written
to a scratch file outside the dataset) what ``m1lib measure`` runs on a
participant: :func:`m1lib.dataset.check_annotation` (every required markup, of
the right type) and :func:`m1lib.measure.participant_details` (slice
assignment, field of view, ROIs, profiles). Before it, two checks the
measurement does not make, because a measurement would still produce a number:

- a **degenerate caliper**, shorter than one voxel of the slice: its two points
  nearly coincide (a stray click), and its oval ROI collapses to a sliver;
- a caliper that **crosses the midline** or lies in the other hemisphere: its
  thickness and intensity would be filed under the wrong hemisphere, and the
  per-limb analyses pair each hemisphere with the contralateral limb.

The midline is estimated from the annotations themselves: for each Penfield
area with both calipers, the midpoint of the left and right calipers'
centroids, and the left-to-right direction between them. A caliper is judged
against the median midpoint and mean direction of the *other* areas (its own
pair only when there is no other), so the caliper being moved cannot move the
midline it is judged by. A point counts as across the midline when it is more
than ``tol_mm`` (1 mm) plus the spread of those midpoints past it.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .. import contract as C
from ..dataset import check_annotation
from ..errors import DataError, Problem
from ..geometry import Geometry
from ..markups import Markup, read_markups
from ..measure import MeasureSettings, participant_details

__all__ = ["check_before_save", "degenerate_calipers", "midline_crossings", "MIDLINE_TOL_MM"]

#: Allowance (mm) past the estimated midline before a caliper point counts as across it.
MIDLINE_TOL_MM = 1.0


def _caliper_labels(areas) -> list[tuple[str, str, str]]:
    return [(f"{h}_{a}", h, a) for h in C.HEMISPHERES for a in areas]


def degenerate_calipers(markups: Mapping[str, Markup], geometry: Geometry, areas, *,
                        participant: str | None = None, file=None) -> list[Problem]:
    """Calipers shorter than one voxel in the slice plane.

    The length is taken in voxel units (``|delta i, delta j|`` after mapping the
    points through the affine), so "one voxel" follows the caliper's direction
    on an anisotropic grid.

    Examples
    --------
    >>> from m1lib.markups import line
    >>> g = Geometry(np.diag([0.25, 0.25, 2.0, 1.0]), (40, 40, 3), "sform")
    >>> m = {"L_hand": line("L_hand", [2.0, 2.0, 2.0], [2.1, 2.0, 2.0])}
    >>> [p.message[:40] for p in degenerate_calipers(m, g, ["hand"])]
    ['caliper is 0.1 mm long (0.4 voxel), shor']
    """
    out = []
    for label, _, _ in _caliper_labels(areas):
        m = markups.get(label)
        if m is None or len(m.points) != 2:
            continue
        vox = geometry.world_to_voxel(m.points)
        ij = vox[:, :2]
        n_vox = float(np.hypot(*(ij[1] - ij[0])))
        if n_vox < 1.0:
            k = int(np.clip(np.rint(vox[:, 2].mean()), 0, geometry.shape[2] - 1))
            uv = geometry.plane(k).ij_to_uv(ij)
            mm = float(np.hypot(*(uv[1] - uv[0])))
            out.append(Problem(
                f"caliper is {mm:.2g} mm long ({n_vox:.2g} voxel), shorter than one voxel: its two "
                "points nearly coincide (place point 1 on the superficial side and point 2 on the "
                "white-matter side of the deep layer)", file=file, participant=participant,
                field=label))
    return out


def _midline(centroids: dict, areas) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(point, unit left-to-right normal, spread mm) from the L/R caliper pairs of ``areas``."""
    mids, dirs = [], []
    for a in areas:
        cl, cr = centroids.get(("L", a)), centroids.get(("R", a))
        if cl is None or cr is None or np.linalg.norm(cr - cl) < 1e-6:
            continue
        mids.append(0.5 * (cl + cr))
        dirs.append((cr - cl) / np.linalg.norm(cr - cl))
    if not mids:
        return None
    n = np.mean(dirs, axis=0)
    if np.linalg.norm(n) < 1e-6:
        return None
    n = n / np.linalg.norm(n)
    point = np.median(np.asarray(mids), axis=0)
    spread = float(max(abs((m - point) @ n) for m in mids))
    return point, n, spread


def midline_crossings(markups: Mapping[str, Markup], areas, *, tol_mm: float = MIDLINE_TOL_MM,
                      participant: str | None = None, file=None) -> list[Problem]:
    """Calipers with a point across the midline (see the module's notes).

    Examples
    --------
    >>> from m1lib.markups import line
    >>> m = {f"{h}_{a}": line(f"{h}_{a}", [s * x, 0, 0], [s * (x + 1), 0, 0])
    ...      for h, s in (("L", -1), ("R", 1)) for a, x in (("leg", 20), ("hand", 30))}
    >>> midline_crossings(m, ["leg", "hand"])
    []
    >>> m["L_hand"] = line("L_hand", [-5.0, 0, 0], [4.0, 0, 0])   # dragged across
    >>> [p.field for p in midline_crossings(m, ["leg", "hand"])]
    ['L_hand']
    """
    centroids = {}
    for label, h, a in _caliper_labels(areas):
        m = markups.get(label)
        if m is not None and len(m.points):
            centroids[(h, a)] = np.asarray(m.points, float).mean(axis=0)
    out = []
    for label, h, a in _caliper_labels(areas):
        if (h, a) not in centroids:
            continue
        others = [x for x in areas if x != a]
        est = _midline(centroids, others) or _midline(centroids, [a])
        if est is None:
            continue
        point, n, spread = est
        side = (np.asarray(markups[label].points, float) - point) @ n   # > 0: towards the right
        wrong = side > tol_mm + spread if h == "L" else side < -(tol_mm + spread)
        if not wrong.any():
            continue
        own, other = ("left", "right") if h == "L" else ("right", "left")
        k = int(np.argmax(np.abs(side) * wrong))
        what = (f"lies in the {other} hemisphere" if wrong.all()
                else f"crosses the midline (point {k + 1} is {abs(side[k]):.1f} mm into the {other} hemisphere)")
        out.append(Problem(
            f"caliper {what}; a {label} caliper must stay in the {own} hemisphere (midline "
            "estimated from the other areas' calipers)", file=file, participant=participant,
            field=label))
    return out


def check_before_save(participant_id: str, echoes: Sequence, text: str, path: Path,
                      geometry: Geometry, settings: MeasureSettings | None = None) -> list[Problem]:
    """Every reason the annotation ``text`` would not be measured as ``m1lib measure`` does.

    Parameters
    ----------
    participant_id : str
    echoes : sequence
        The participant's echoes (as for :func:`m1lib.measure.participant_details`).
    text : str
        The markups file exactly as it would be written.
    path : Path
        Where it would be written (named in the problems).
    geometry : Geometry
        The grid of echo 1 (for the voxel-length check).
    settings : MeasureSettings, optional
        The manifest's measurement settings.

    Returns
    -------
    list of Problem
        Empty when the file would measure. The measurement's problems are
        not repeated for a caliper already found degenerate.
    """
    s = settings or MeasureSettings()
    with tempfile.TemporaryDirectory(prefix="m1lib-explorer-") as tmp:
        scratch = Path(tmp) / path.name
        scratch.write_text(text, encoding="utf-8")
        found = check_annotation(scratch, path.name, participant_id, s.areas)
        if found:
            return [_renamed(p, path) for p in found]
        marks = read_markups(scratch)
        found = degenerate_calipers(marks, geometry, s.areas, participant=participant_id, file=path)
        # a degenerate caliper's oval collapses to a sliver that the measurement reports as
        # "outside the image": its own reason is the one to show
        flagged = {p.field for p in found}
        found += midline_crossings(marks, s.areas, participant=participant_id, file=path)
        try:
            participant_details(participant_id, echoes, scratch, settings=s)
        except DataError as exc:
            found += [_renamed(p, path) for p in exc.problems if p.field not in flagged]
    return found


def _renamed(p: Problem, path: Path) -> Problem:
    """The problem, naming the annotation file rather than the scratch copy."""
    return Problem(p.message, file=path, line=p.line, participant=p.participant, field=p.field)
