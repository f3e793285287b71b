"""The annotator: move a caliper or the reference point, undo, and save only what measures.

Edits change the working copy of the participant's markups
(:class:`~m1lib.explorer.annotation_file.AnnotationFile`); every edit can be
undone, last first. A click places the active control point and then makes the
other point of the caliper active (two clicks draw a caliper, superficial side
first); that automatic switch is reported in :attr:`Annotator.last_switch`, so
the user sees which point the next click moves.

Saving runs :func:`m1lib.explorer.validation.check_before_save` on the exact
text to be written and refuses (nothing written, the reasons in
:attr:`Annotator.refusal`) when ``m1lib measure`` would not measure it or the
caliper is degenerate or across the midline. The previous file goes to
``manifest.output_dir / "explorer_backups"``, never into the annotation folder.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import contract as C
from ..errors import DataError, Problem
from ..markups import Markup, fiducial, line
from .overlays import area_of
from .validation import check_before_save, degenerate_calipers, midline_crossings

__all__ = ["Annotator", "Edit", "POINT_NAMES"]

#: What each control point of a caliper marks (the paper's convention).
POINT_NAMES = ("point 1 (superficial side)", "point 2 (white-matter side)")
_READOUT_COLUMNS = ("thickness_mm", "profile_thickness_mm", "intensity", "r2star_s", "fit_ok",
                    "fit_reason", "roi_source", "roi_area_mm2")


@dataclass(frozen=True)
class Edit:
    """One undoable edit: the markup as it was before (None: it did not exist)."""

    participant_id: str
    label: str
    before: Markup | None
    point: int
    slice: int


class Annotator:
    """Edit and save the annotations of the participant an explorer shows.

    Parameters
    ----------
    explorer : m1lib.explorer.state.Explorer
    backup_dir : path, optional
        Where the previous version of a saved file goes; default
        ``explorer.manifest.output_dir / "explorer_backups"``.
    """

    def __init__(self, explorer, backup_dir=None):
        self.ex = explorer
        self._backup_dir = Path(backup_dir) if backup_dir is not None else None
        self._undo: dict[str, list[Edit]] = {}
        self.last_switch = ""          #: the last automatic change of the active point
        self.message = ""              #: the last save's outcome, shown beside Save
        self.refusal: list[Problem] = []   #: why the last save was refused

    @property
    def backup_dir(self) -> Path:
        if self._backup_dir is not None:
            return self._backup_dir
        if self.ex.manifest is None:
            raise DataError("no backup folder: pass backup_dir= (no manifest to take output_dir from)")
        return Path(self.ex.manifest.output_dir) / "explorer_backups"

    # ------------------------------------------------------------------ choosing what to edit
    def n_points(self, label: str | None = None) -> int:
        return 1 if (label or self.ex.state.label) == C.REFERENCE_LABEL else 2

    def select_label(self, label: str, *, go: bool = True) -> None:
        """Choose the markup to edit (and, with ``go``, zoom to it); point 1 becomes active."""
        if label not in self.ex.labels():
            raise ValueError(f"label must be one of {self.ex.labels()}, got {label!r}")
        self.ex.state.label, self.ex.state.point = label, 0
        if go and self.ex.label_position(label) is not None:
            self.ex.set_zoom(label)

    def set_active_point(self, point: int) -> None:
        """Which control point a click places: 0 = the first (superficial side), 1 = the second."""
        n = self.n_points()
        if point not in range(n):
            raise ValueError(f"{self.ex.state.label} has {n} point(s)")
        self.ex.state.point = int(point)

    # ------------------------------------------------------------------ edits
    def _working(self):
        ex = self.ex
        f, vol = ex.annotation_file(), ex.volume()
        if f is None or vol is None:
            raise DataError("nothing to annotate: no images or no annotation file",
                            participant=ex.state.participant_id)
        return f, vol

    def set_point_ij(self, i: float, j: float, point: int | None = None) -> None:
        """Place a control point of the edited markup at (i, j) on the shown slice.

        A caliper lies in one slice, so its other point follows to this slice
        (keeping its in-plane position). The edit can be undone.
        """
        f, vol = self._working()
        st = self.ex.state
        lab, k = st.label, st.slice
        point = st.point if point is None else int(point)
        m = f.markups.get(lab)
        self._undo.setdefault(st.participant_id, []).append(
            Edit(st.participant_id, lab, copy.deepcopy(m), st.point, k))
        if m is None:  # placing a markup the file does not have yet
            here = vol.geometry.voxel_to_world([[i, j, k]])[0]
            m = fiducial(lab, here) if lab == C.REFERENCE_LABEL else line(lab, here, here)
            f.markups[lab] = m
        vox = vol.geometry.world_to_voxel(m.points)
        vox[:, 2] = k
        vox[point, :2] = (i, j)
        m.points = vol.geometry.voxel_to_world(vox)
        self.message, self.refusal = "", []

    def click(self, i: float, j: float) -> None:
        """A click on the image: place the active point there, then make the other point
        active (reported in :attr:`last_switch`)."""
        self.set_point_ij(i, j)
        st = self.ex.state
        if self.n_points() == 2:
            placed, st.point = st.point, 1 - st.point
            self.last_switch = (f"{st.label}: {POINT_NAMES[placed]} placed; the next click places "
                                f"{POINT_NAMES[st.point]}")

    def nudge(self, du_mm: float, dv_mm: float) -> None:
        """Move the active point by (du, dv) mm in the slice plane (u along voxel axis i)."""
        ex = self.ex
        pos = ex.label_position(ex.state.label)
        if pos is None:
            raise DataError(f"{ex.state.label} is not annotated", participant=ex.state.participant_id)
        k, ij = pos
        ex.state.slice = k
        plane = ex.volume().geometry.plane(k)
        uv = plane.ij_to_uv(ij[ex.state.point]) + np.array([du_mm, dv_mm])
        self.set_point_ij(*plane.uv_to_ij(uv)[0])

    def can_undo(self) -> bool:
        return bool(self._undo.get(self.ex.state.participant_id))

    def undo(self) -> str:
        """Undo the shown participant's last edit; return what was undone."""
        ex = self.ex
        stack = self._undo.get(ex.state.participant_id)
        if not stack:
            raise DataError("nothing to undo", participant=ex.state.participant_id)
        e = stack.pop()
        f = ex.annotation_file()
        if e.before is None:
            f.markups.pop(e.label, None)
        else:
            f.markups[e.label] = copy.deepcopy(e.before)
        ex.state.label, ex.state.point, ex.state.slice = e.label, e.point, e.slice
        self.message, self.refusal = f"undid the last edit of {e.label}", []
        return self.message

    def revert(self) -> None:
        """Discard every unsaved edit of the shown participant."""
        f = self.ex.annotation_file()
        if f is not None:
            f.revert()
            self._undo.pop(self.ex.state.participant_id, None)
            self.message, self.refusal = f"{self.ex.state.participant_id}: edits discarded", []

    def reload(self) -> None:
        """Re-open the shown participant's file from disk (discarding unsaved edits)."""
        pid = self.ex.state.participant_id
        self.ex.forget_file(pid)
        self.ex.annotation_file()
        self._undo.pop(pid, None)
        self.message, self.refusal = f"{pid}: reloaded from disk", []

    # ------------------------------------------------------------------ checks and saving
    def quick_problems(self, label: str | None = None) -> list[Problem]:
        """The cheap checks (degenerate, across the midline) for one label of the working copy."""
        ex = self.ex
        f, vol = ex.annotation_file(), ex.volume()
        if f is None or vol is None:
            return []
        label = label or ex.state.label
        found = (degenerate_calipers(f.markups, vol.geometry, ex.settings.areas)
                 + midline_crossings(f.markups, ex.settings.areas))
        return [p for p in found if p.field == label]

    def problems(self) -> list[Problem]:
        """Why the working copy would not be saved (empty: it would measure)."""
        f, vol = self._working()
        pid = self.ex.state.participant_id
        return check_before_save(pid, self.ex.images[pid], f.text(), f.path, vol.geometry,
                                 self.ex.settings)

    def save(self) -> Path | None:
        """Save the shown participant's annotations; return the backup's path
        (None, and nothing written, when there is no edit to save).

        Raises
        ------
        DataError
            When the annotation would not measure, or the dataset is not writable
            (nothing is written; the reasons are in :attr:`refusal`).
        AnnotationConflict
            When the file changed on disk since it was opened.
        """
        ex = self.ex
        f = ex.annotation_file()
        if f is None:
            raise DataError("no annotation file to save", participant=ex.state.participant_id)
        if not f.dirty:
            self.message, self.refusal = f"{f.path.name}: no changes to save", []
            return None
        try:
            why = f.changed_on_disk()
            if why is None:
                f.check_writable()
            problems = self.problems() if why is None else []
            if problems:
                raise DataError(problems)
            backup = f.save(self.backup_dir)
        except DataError as exc:
            self.refusal = list(exc.problems)
            self.message = "not saved: " + "; ".join(_short(p) for p in exc.problems)
            raise
        ex.saved_since_table.add(ex.state.participant_id)
        self.refusal = []
        after = ("the next `m1lib report` re-measures it" if ex.source != "precomputed" else
                 "note: this dataset's analyses use its precomputed measurement table, "
                 "which the edit does not change")
        self.message = f"saved {f.path.name} (previous version kept as {backup}); {after}"
        return backup

    # ------------------------------------------------------------------ live readout
    def readout(self) -> dict:
        """Live measurement of the edited markup from the working annotations.

        For a caliper: ``thickness_mm`` (caliper), ``profile_thickness_mm``,
        ``intensity``, ``r2star_s``, the fit's verdict and, from the measurement
        table, the ``stored_*`` values. For the reference: its ROI mean and the live
        intensities of the calipers of the area last zoomed to (which it normalizes).
        ``error`` says why there is no measurement (a degenerate or misplaced caliper
        first, then the measurement's own reason).
        """
        ex = self.ex
        lab = ex.state.label
        out = {"label": lab, "error": ""}
        pos = ex.label_position(lab)
        if pos is None:
            out["error"] = "not annotated" if ex.has_images() else "no images"
            return out
        out["slice"] = pos[0]
        f = ex.annotation_file()
        out["points_ras"] = f.markups[lab].points.round(3).tolist()
        out["unsaved"] = bool(f.dirty)
        quick = self.quick_problems(lab)
        if quick:
            out["error"] = "; ".join(p.message for p in quick)
            return out
        area = area_of(lab) or ex.focus_area
        table, _, err = ex.details(area)
        if err:
            out["error"] = err
            return out
        if lab == C.REFERENCE_LABEL:
            t = table.set_index(["hemisphere", "area"])
            out["ref_mean"] = float(table["ref_mean"].iloc[0])
            for h in C.HEMISPHERES:
                out[f"intensity_{h}_{area}"] = float(t.loc[(h, area), "intensity"])
            return out
        row = table.set_index(["hemisphere", "area"]).loc[(lab.split("_", 1)[0], area)]
        for c in _READOUT_COLUMNS:
            v = row[c]
            out[c] = v.item() if hasattr(v, "item") else v
        st = ex.participant_table()
        st = st[st["label"] == lab]
        for c in ("thickness_mm", "profile_thickness_mm", "intensity", "r2star_s"):
            if c in st.columns and len(st):
                out[f"stored_{c}"] = float(st[c].iloc[0])
        return out


def _short(p: Problem) -> str:
    """A problem without the file path (the Save button is beside the participant)."""
    return f"{p.field}: {p.message}" if p.field else p.message
