"""The explorer's state: what is shown, changed only through methods (no widgets).

:class:`Explorer` holds the dataset (participants, measurement table, images,
annotations), the :class:`BrowserState` and the working copies of the
annotation files; every browsing action is a method and everything shown
(image, window, overlays, the participant's measurements) is a method
returning arrays and tables, so it is tested without a browser. Editing is
:class:`m1lib.explorer.annotator.Annotator`'s, the Fig 2 plots
:class:`m1lib.explorer.linked.LinkedPlots`'.

Display convention: the acquisition plane with voxel axis i to the right and j
up (origin lower left); :mod:`m1lib.explorer.views` labels each edge with the
anatomical direction from the affine.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import contract as C
from ..dataset import annotation_path, check_images
from ..measure import MeasureSettings
from ..pipeline import load_tables
from .annotation_file import AnnotationFile
from .overlays import OVERLAYS, Detail, LiveMeasurement, Overlay, area_of, label_overlays
from .volume import Volume

__all__ = ["BrowserState", "Explorer", "R2STAR", "WHOLE_SLICE"]

R2STAR = "R2*"
#: The zoom choice that shows the whole slice.
WHOLE_SLICE = "whole slice"
#: Upper end (1/s) of the automatic window on the R2* map.
R2STAR_MAX_S = 300.0


@dataclass
class BrowserState:
    """Everything the view shows; changed only through the explorer's methods."""

    participant_id: str | None = None
    slice: int = 0
    image: str = "echo 2"             # "echo <n>" or "R2*"
    window: float = 1.0
    level: float = 0.5
    zoom: str = WHOLE_SLICE           # a markup label, or WHOLE_SLICE
    zoom_centre: tuple[float, float] | None = None   # (i, j), fixed when zoom is chosen
    zoom_mm: float = 6.0              # half side of the zoom box
    overlays: dict = field(default_factory=lambda: dict.fromkeys(OVERLAYS, True))
    label: str = "L_hand"             # the markup being edited
    point: int = 0                    # its control point a click places (0 = first)


class Explorer:
    """State model of the explorer.

    Parameters
    ----------
    participants : DataFrame
        One row per participant (``participants.tsv`` typed; derived ``dpr`` and
        ``umn_total`` are added when missing).
    measurements : DataFrame
        The measurement table the analyses use (may be empty).
    images : mapping
        ``participant_id -> echoes`` (:class:`m1lib.dataset.EchoImage` or paths).
    annotations : mapping
        ``participant_id -> markups path``.
    settings : MeasureSettings, optional
        Areas, ROI area and intensity echo (default: the paper's).
    source : str
        Where ``measurements`` came from (``measured`` / ``precomputed``).
    manifest : Manifest, optional
        The dataset's manifest (its ``output_dir`` holds the annotation backups).

    Examples
    --------
    >>> import pandas as pd
    >>> p = pd.DataFrame({"participant_id": ["sub-HS01"], "group": ["HS"], "excluded": [False]})
    >>> ex = Explorer(p, pd.DataFrame(), {}, {})
    >>> ex.state.participant_id, ex.has_images()
    ('sub-HS01', False)
    """

    def __init__(self, participants: pd.DataFrame, measurements: pd.DataFrame,
                 images: Mapping[str, Sequence], annotations: Mapping[str, object], *,
                 settings: MeasureSettings | None = None, source: str = "measured", manifest=None):
        p = participants.copy()
        if ("dpr" not in p.columns or "umn_total" not in p.columns) and \
                {"alsfrs_r", "disease_duration_months"} <= set(p.columns):
            p = C.with_derived(p)
        if "excluded" not in p.columns:
            p["excluded"] = False
        self.participants = p.reset_index(drop=True)
        self.measurements = measurements if measurements is not None else pd.DataFrame()
        self.images = {k: list(v) for k, v in images.items()}
        self.annotations = {k: Path(v) for k, v in annotations.items()}
        self.settings = settings or MeasureSettings()
        self.source = source
        self.manifest = manifest
        self.state = BrowserState()
        self.status = ""                      # last browsing message for the user
        self.live = LiveMeasurement(self.settings)
        self.saved_since_table: set[str] = set()   # annotations saved after the table was made
        self._volumes: OrderedDict[str, Volume] = OrderedDict()
        self._files: dict[str, AnnotationFile] = {}
        #: the area last looked at: the reference's readout shows its intensities
        self.focus_area = "hand" if "hand" in self.settings.areas else self.settings.areas[0]
        self.state.zoom = "L_hand" if "L_hand" in self.labels() else self.labels()[0]
        first = self._default_participant()
        if first is not None:
            self.set_participant(first)

    @classmethod
    def from_manifest(cls, manifest="data_manifest.yaml", *, tables=None, log: Callable = print) -> "Explorer":
        """Load tables as the report does (generating / measuring as needed), or take the
        run's ``tables`` (its snapshot), and every participant's images and annotations
        found on disk (excluded ones too)."""
        tables = tables if tables is not None else load_tables(manifest, log=log)
        m = tables.manifest
        images, annotations = {}, {}
        # the session the report analyses (one per participant; see pipeline.build_tables)
        session = m.files.session if m.files.session not in (None, "all") else None
        for pid in tables.participants["participant_id"]:
            echoes, problems = check_images(m.root, pid, False, m.settings.intensity_echo,
                                            session=session, entities=m.files.entities)
            if echoes and not problems:
                images[pid] = echoes
            path = annotation_path(m, pid)
            if path.is_file():
                annotations[pid] = path
        s = m.settings
        settings = MeasureSettings(areas=tuple(s.areas), roi_area_mm2=s.roi_area_mm2,
                                   intensity_echo=s.intensity_echo)
        return cls(tables.participants, tables.measurements, images, annotations,
                   settings=settings, source=tables.source, manifest=m)

    def _default_participant(self) -> str | None:
        order = self.participant_order()
        with_images = [pid for pid in order if pid in self.images]
        return (with_images or order or [None])[0]

    # ------------------------------------------------------------------ participants
    def participant_order(self) -> list[str]:
        """Participant ids grouped ALS then HS (analysed before excluded), by id."""
        p = self.participants
        grp = p["group"].map({g: i for i, g in enumerate(C.GROUPS)}).fillna(len(C.GROUPS))
        exc = p["excluded"].astype(bool).astype(int)
        order = np.lexsort((p["participant_id"].to_numpy(), exc.to_numpy(), grp.to_numpy()))
        return p["participant_id"].iloc[order].tolist()

    def clinical(self, pid: str | None = None) -> dict:
        """The key clinical values of a participant (missing values omitted)."""
        pid = pid or self.state.participant_id
        row = self.participants.set_index("participant_id").loc[pid]
        out = {"participant_id": pid}
        for col in ("group", "age", "sex", "alsfrs_r", "dpr", "umn_total",
                    "disease_duration_months", "mrc"):
            v = row.get(col)
            if v is not None and not (isinstance(v, float) and np.isnan(v)):
                out[col] = v
        if bool(row.get("excluded", False)):
            out["excluded"] = str(row.get("exclusion_reason", "")) or "yes"
        return out

    def participant_label(self, pid: str) -> str:
        """Dropdown text: group, id and the key clinical values."""
        c = self.clinical(pid)
        parts = [f"{c.get('group', '?'):3s} {pid}"]
        for key, name, spec in (("alsfrs_r", "ALSFRS-R", "g"), ("dpr", "DPR", ".2f"), ("umn_total", "UMN", "g")):
            if key in c:
                parts.append(f"{name} {c[key]:{spec}}")
        if "excluded" in c:
            parts.append(f"excluded: {c['excluded']}")
        if pid not in self.images:
            parts.append("no images")
        return " · ".join(parts)

    def has_images(self, pid: str | None = None) -> bool:
        return (pid or self.state.participant_id) in self.images

    def volume(self, pid: str | None = None) -> Volume | None:
        """The participant's echoes in memory (the last three participants are kept)."""
        pid = pid or self.state.participant_id
        if pid not in self.images:
            return None
        if pid not in self._volumes:
            self._volumes[pid] = Volume(pid, self.images[pid])
            while len(self._volumes) > 3:   # ~40 MB each on the replica
                self._volumes.popitem(last=False)
        self._volumes.move_to_end(pid)
        return self._volumes[pid]

    def annotation_file(self, pid: str | None = None) -> AnnotationFile | None:
        """The participant's markups, opened once; unsaved edits survive switching."""
        pid = pid or self.state.participant_id
        if pid not in self.annotations:
            return None
        if pid not in self._files:
            self._files[pid] = AnnotationFile(self.annotations[pid])
        return self._files[pid]

    def forget_file(self, pid: str) -> None:
        """Drop the working copy (the next access re-opens the file from disk)."""
        self._files.pop(pid, None)

    @property
    def stale(self) -> bool:
        """The shown participant's annotations were saved after the measurement table was made."""
        return self.state.participant_id in self.saved_since_table

    # ------------------------------------------------------------------ labels
    def labels(self) -> list[str]:
        """Editable markups: one caliper per hemisphere and area, then the reference."""
        return [f"{h}_{a}" for h in C.HEMISPHERES for a in self.settings.areas] + [C.REFERENCE_LABEL]

    def label_position(self, label: str) -> tuple[int, np.ndarray] | None:
        """(slice, in-plane voxel coordinates of the points) of a working markup."""
        f, vol = self.annotation_file(), self.volume()
        if f is None or vol is None or label not in f.markups:
            return None
        v = vol.geometry.world_to_voxel(f.markups[label].points)
        k = int(np.clip(np.round(v[:, 2].mean()), 0, vol.shape[2] - 1))
        return k, v[:, :2]

    def labels_on_slice(self, k: int | None = None) -> list[str]:
        k = self.state.slice if k is None else k
        return [lab for lab in self.labels()
                if (pos := self.label_position(lab)) is not None and pos[0] == k]

    # ------------------------------------------------------------------ browsing
    def set_participant(self, pid: str) -> None:
        """Show a participant: keeps the zoomed area (on its slice) and the image kind."""
        if pid not in set(self.participants["participant_id"]):
            raise KeyError(f"unknown participant {pid!r}")
        self.state.participant_id = pid
        vol = self.volume()
        if vol is None:
            self.state.slice = 0
            self.status = f"{pid}: no images in this dataset (only its measurements are shown)"
            return
        self.status = ""
        if self.state.image not in self.image_kinds():
            self.state.image = f"echo {self.settings.intensity_echo}"
        zoom = self.state.zoom
        if zoom != WHOLE_SLICE and self.label_position(zoom) is not None:
            self.set_zoom(zoom)
        else:
            self.state.zoom, self.state.zoom_centre = WHOLE_SLICE, None
            self.state.slice = min(self.state.slice, vol.shape[2] - 1)
            self.auto_window()

    def image_kinds(self) -> list[str]:
        vol = self.volume()
        n = len(vol.data) if vol is not None else 0
        return [f"echo {e + 1}" for e in range(n)] + ([R2STAR] if n >= 2 else [])

    def set_image(self, kind: str) -> None:
        if kind not in self.image_kinds():
            raise ValueError(f"image must be one of {self.image_kinds()}, got {kind!r}")
        self.state.image = kind
        self.auto_window()

    def set_slice(self, k: int) -> None:
        vol = self.volume()
        if vol is not None:
            self.state.slice = int(np.clip(k, 0, vol.shape[2] - 1))

    def set_window(self, window: float | None = None, level: float | None = None) -> None:
        if window is not None:
            self.state.window = max(float(window), 1e-6)
        if level is not None:
            self.state.level = float(level)

    def auto_window(self, low: float = 1.0, high: float = 99.5) -> tuple[float, float]:
        """Window and level from percentiles of the shown region (the zoom box if any)."""
        img = self.image_slice()
        if img is None:
            return self.state.window, self.state.level
        (i0, i1), (j0, j1) = self.view_limits()
        sub = img[max(int(np.floor(i0 + 0.5)), 0):max(int(np.ceil(i1 + 0.5)), 1),
                  max(int(np.floor(j0 + 0.5)), 0):max(int(np.ceil(j1 + 0.5)), 1)]
        vals = sub[np.isfinite(sub)]
        if vals.size == 0:
            vals = img[np.isfinite(img)]
        lo, hi = (np.percentile(vals, [low, high]) if vals.size else (0.0, 1.0))
        if self.state.image == R2STAR:
            lo, hi = max(float(lo), 0.0), min(float(hi), R2STAR_MAX_S)
        if not hi > lo:
            hi = lo + 1.0
        self.state.window, self.state.level = float(hi - lo), float(0.5 * (hi + lo))
        return self.state.window, self.state.level

    def zoom_choices(self) -> list[str]:
        """What the view can zoom to: the whole slice, then every annotated label."""
        return [WHOLE_SLICE] + [lab for lab in self.labels() if self.label_position(lab) is not None]

    def set_zoom(self, label: str | None, half_mm: float | None = None) -> None:
        """Zoom to a markup (its slice, a box of ``2 * half_mm`` around it) or to the
        whole slice (``WHOLE_SLICE`` or None)."""
        if half_mm is not None:
            self.state.zoom_mm = float(half_mm)
        if label is None or label == WHOLE_SLICE:
            self.state.zoom, self.state.zoom_centre = WHOLE_SLICE, None
        else:
            pos = self.label_position(label)
            if pos is None:
                raise KeyError(f"{label!r} is not annotated for {self.state.participant_id}")
            k, ij = pos
            self.state.zoom = label
            self.focus_area = area_of(label) or self.focus_area
            self.state.zoom_centre = tuple(float(x) for x in ij.mean(axis=0))
            self.state.slice = k
        self.auto_window()

    def set_overlay(self, name: str, on: bool) -> None:
        if name not in OVERLAYS:
            raise ValueError(f"overlay must be one of {OVERLAYS}, got {name!r}")
        self.state.overlays[name] = bool(on)

    # ------------------------------------------------------------------ what is shown
    def image_slice(self) -> np.ndarray | None:
        """The shown slice, shape (ni, nj): an echo's magnitude or the R2* map (1/s)."""
        vol = self.volume()
        if vol is None:
            return None
        k = self.state.slice
        if self.state.image == R2STAR:
            return vol.r2star(k)
        return vol.data[int(self.state.image.split()[-1]) - 1][:, :, k]

    def image_units(self) -> str:
        """What the shown image's values are, with units (the colour bar's label)."""
        if self.state.image == R2STAR:
            return "R2* (1/s)"
        return f"{self.state.image} magnitude (scanner units)"

    def clim(self) -> tuple[float, float]:
        return (self.state.level - self.state.window / 2, self.state.level + self.state.window / 2)

    def pixel_mm(self) -> np.ndarray:
        vol = self.volume()
        return vol.geometry.plane(self.state.slice).pixel_sizes if vol is not None else np.ones(2)

    def view_limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((i0, i1), (j0, j1)) shown: the zoom box, or the whole slice."""
        vol = self.volume()
        if vol is None:
            return (-0.5, 0.5), (-0.5, 0.5)
        ni, nj = vol.shape[:2]
        if self.state.zoom_centre is None:
            return (-0.5, ni - 0.5), (-0.5, nj - 0.5)
        ci, cj = self.state.zoom_centre
        hi, hj = self.state.zoom_mm / self.pixel_mm()
        return (ci - hi, ci + hi), (cj - hj, cj + hj)

    def details(self, area: str) -> tuple[pd.DataFrame | None, dict[str, Detail], str]:
        """Measure one area (both hemispheres) and the reference from the working markups
        (see :class:`LiveMeasurement`); ``(None, {}, why)`` when that is not possible."""
        pid, f = self.state.participant_id, self.annotation_file()
        if f is None or not self.has_images():
            return None, {}, "no images or annotations"
        return self.live.area(pid, self.images[pid], f.markups, area)

    def overlays(self) -> list[Overlay]:
        """Overlays on the shown slice, those switched off left out."""
        if not self.has_images() or self.annotation_file() is None:
            return []
        on, k = self.state.overlays, self.state.slice
        here = self.labels_on_slice(k)
        det: dict = {}
        if on["roi"] or on["edges"] or (on["reference"] and C.REFERENCE_LABEL in here):
            areas = sorted({area_of(lab) for lab in here if area_of(lab)}, key=list(self.settings.areas).index)
            for a in areas or ([self.settings.areas[0]] if C.REFERENCE_LABEL in here else []):
                det.update(self.details(a)[1])
        out: list[Overlay] = []
        for lab in here:
            out += label_overlays(lab, k, self.label_position(lab)[1], det.get(lab), on,
                                  active=lab == self.state.label)
        return out

    def participant_table(self) -> pd.DataFrame:
        """The shown participant's measurements as the analyses have them (one row per
        label, with its slice); empty when the participant was not measured."""
        m = self.measurements
        cols = ["thickness_mm", "profile_thickness_mm", "intensity", "r2star_s", "fit_ok"]
        if m.empty or "participant_id" not in m.columns:
            return pd.DataFrame(columns=["label", "slice"] + cols)
        rows = m[m["participant_id"] == self.state.participant_id].copy()
        rows.insert(0, "label", rows["hemisphere"] + "_" + rows["area"])
        if "slice" not in rows.columns:
            rows["slice"] = np.nan
        keep = ["label", "slice"] + [c for c in cols if c in rows.columns]
        return rows[keep].reset_index(drop=True)
