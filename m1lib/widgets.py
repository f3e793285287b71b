"""Interactive exploration: subject browser, linked Fig 2 scatter plots, measurement annotator.

The paper's measurements were placed by hand, and the first question about an
outlier is "show me that subject's motor cortex". This module answers it in
JupyterLab (``notebooks/07_explorer.ipynb``):

- **Browser.** Choose a participant (ALS first, then healthy subjects, with the
  key clinical values), a slice, an echo or a voxelwise R2* map, window and level,
  and zoom to a Penfield area; overlays of the oval ROIs, the caliper lines, the
  reference ROI and the fitted profile edges, each switchable; the participant's
  measurements beside the image.
- **Linked views.** The Fig 2 scatter plots (thickness and intensity against the
  per-limb UMN score, DPR and ALSFRS-R); picking a point shows that participant's
  area in the browser.
- **Annotator.** Place or move a caliper line or the reference point by clicking
  on the image or with fine controls; thickness, intensity and R2* are
  re-measured as you move; saving writes the participant's Slicer markups file
  atomically, keeps a backup of the previous file and refuses to overwrite a file
  that changed on disk since it was opened.

Design: :class:`Explorer` is the state model (pure Python, no widgets): every
user action is a method, and what is shown (image, overlays, readouts) are
methods returning arrays and tables, so it is tested without a browser.
:class:`ExplorerView` renders it with ipywidgets; with ``%matplotlib widget``
(ipympl) the figures are live canvases that take clicks, otherwise they are
static PNGs (headless runs, papermill). :class:`AnnotationFile` owns the file on
disk. Measurements come from :mod:`m1lib.measure` (never re-implemented here);
the overlays are drawn from the same ROI ellipses and profile fits it measures.

Display convention: the acquisition plane with voxel axis i to the right and j
up (origin lower left), the edges labelled with the anatomical direction each
axis points to (from the affine), so a radiological or neurological layout is
read off the labels, not assumed.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import contract as C
from .errors import DataError, Problem

__all__ = [
    "OVERLAYS", "PANELS", "BrowserState", "Overlay", "Detail", "AnnotationConflict",
    "AnnotationFile", "Explorer", "ExplorerView", "draw_browser", "draw_scatter",
    "use_widget_backend", "as_image",
]

#: Switchable overlays, in drawing order.
OVERLAYS: tuple[str, ...] = ("roi", "caliper", "reference", "edges")
#: The Fig 2 panels: (measure, clinical variable); per-limb UMN pairs each area
#: with the contralateral limb (:func:`m1lib.analyses.limb_pairs`), DPR and
#: ALSFRS-R use the per-subject means (:func:`m1lib.analyses.subject_table`).
PANELS: tuple[tuple[str, str], ...] = (
    ("thickness_mm", "umn_score"), ("thickness_mm", "dpr"), ("thickness_mm", "alsfrs_r"),
    ("intensity", "umn_score"), ("intensity", "dpr"), ("intensity", "alsfrs_r"),
)
_AXIS_LABELS = {"thickness_mm": "thickness (mm)", "intensity": "intensity (norm.)",
                "umn_score": "UMN score (contralateral limb)", "dpr": "DPR (points/month)",
                "alsfrs_r": "ALSFRS-R"}
#: Overlay colours (those of the audit figure of :mod:`m1lib.measure`).
COLOURS = {"roi": "#1f77b4", "caliper": "#ff7f0e", "edit": "#ffdd00", "reference": "#17becf",
           "edge_outer": "#2ca02c", "edge_inner": "#d62728", "selected": "#d62728"}
R2STAR = "R2*"
_MM_PER_UNIT = {"mm": 1.0, "um": 1e-3}   # Slicer's coordinateUnits


# ============================================================================ the file

class AnnotationConflict(DataError):
    """The markups file changed on disk since it was opened: saving would lose that change."""


def _fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


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
    overwrite the file when its content no longer has that SHA-256 (someone saved
    it in Slicer, or another notebook, meanwhile), writes atomically (temporary
    file + rename) and first keeps the previous file as
    ``<name>.<UTC time>.bak`` beside it, so no version is ever lost. Only the
    edited control points change in the file (see :meth:`text`).

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
        from .markups import parse_markups

        self.path = Path(path)
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise DataError(Problem("annotation file not found", file=self.path)) from None
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(Problem(f"not valid JSON ({exc})", file=self.path)) from None
        self.original = parse_markups(doc, source=self.path)
        self.markups = copy.deepcopy(self.original)
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
        from .markups import markups_document, ras_to_lps

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

    def save(self) -> Path:
        """Write the working copy; return the backup of the previous file.

        Raises
        ------
        AnnotationConflict
            When the file changed on disk since it was opened (nothing is written).
        """
        from .markups import parse_markups

        why = self.changed_on_disk()
        if why:
            raise AnnotationConflict(Problem(
                f"not saved: the file changed on disk since it was opened ({why}); reload it "
                "(your edits are discarded) or copy your edits by hand", file=self.path))
        text = self.text()
        parse_markups(json.loads(text), source=self.path)   # what we write reads back
        previous = self.path.read_bytes()
        stat_before = _stat(self.path)
        if _fingerprint(previous) != self.sha256:  # changed in the last instant
            raise AnnotationConflict(Problem("not saved: the file changed on disk while saving",
                                             file=self.path))
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        backup = self.path.with_name(f"{self.path.name}.{stamp}.bak")
        n = 1
        while backup.exists():
            backup = self.path.with_name(f"{self.path.name}.{stamp}-{n}.bak")
            n += 1
        backup.write_bytes(previous)
        mode = os.stat(self.path).st_mode & 0o7777
        if _stat(self.path) != stat_before:
            backup.unlink(missing_ok=True)
            raise AnnotationConflict(Problem("not saved: the file changed on disk while saving",
                                             file=self.path))
        _atomic_write(self.path, text, mode)
        self.sha256 = _fingerprint(text.encode("utf-8"))
        self.mtime_ns, self.size = _stat(self.path)
        self._doc = json.loads(text)
        self.original = parse_markups(self._doc, source=self.path)
        self.markups = copy.deepcopy(self.original)
        return backup

    def revert(self) -> None:
        """Discard the working copy's edits."""
        self.markups = copy.deepcopy(self.original)


# ============================================================================ measurement

@dataclass(frozen=True)
class Detail:
    """What :mod:`m1lib.measure` used for one label: slice, plane, ROI, caliper, profile fit."""

    k: int
    plane: object            # geometry.SlicePlane
    ellipse: object          # measure.Ellipse (slice-plane mm)
    ij: np.ndarray           # caliper / reference point(s), in-plane voxel coordinates
    profile: object = None   # profile.Profile (None for the reference)
    fit: object = None       # profile.EdgeFit


def _measure_details(participant_id: str, echoes, markups, settings):
    """The table and per-label :class:`Detail` of one participant (``markups``: a path
    or the ``{name: Markup}`` being edited), via :func:`m1lib.measure.participant_details`."""
    from . import measure

    table, details = measure.participant_details(participant_id, echoes, markups, settings=settings)
    return table, {lab: Detail(int(d["k"]), d["plane"], d["ellipse"], np.asarray(d["ij"], float),
                               d.get("profile"), d.get("fit")) for lab, d in details.items()}


# ============================================================================ images

class _Volume:
    """One participant's echoes in memory (float32) with their geometry."""

    def __init__(self, participant_id: str, echoes: Sequence):
        import nibabel as nib

        from .geometry import image_geometry

        self.paths, self.tes, self.data = [], [], []
        for e in echoes:
            path = Path(getattr(e, "path", e))
            te = getattr(e, "echo_time_s", None)
            if te is None:
                side = path.with_name(path.name.split(".nii")[0] + ".json")
                te = json.loads(side.read_text()).get("EchoTime") if side.is_file() else None
            img = nib.load(str(path))
            if not self.data:
                self.geometry = image_geometry(img, participant=participant_id, file=path)
            self.paths.append(path)
            self.tes.append(float(te) if te is not None else float("nan"))
            self.data.append(np.asarray(img.dataobj, dtype=np.float32))
        self.shape = self.data[0].shape
        self._r2s: dict[int, np.ndarray] = {}

    def r2star(self, k: int) -> np.ndarray:
        """Voxelwise R2* (1/s) of slice k, for display only: the measurement takes
        R2* from ROI means (CONVENTIONS trap 11). NaN in air (echo-1 signal below 5 %
        of its 99th percentile) and where a signal is not positive."""
        if k not in self._r2s:
            s = np.stack([d[:, :, k] for d in self.data]).astype(np.float64)
            te = np.asarray(self.tes, float)
            with np.errstate(all="ignore"):
                logs = np.log(np.where(s > 0, s, np.nan))
                if len(te) == 2:
                    r = (logs[0] - logs[1]) / (te[1] - te[0])
                else:  # slope of the log-linear fit, every echo
                    tc = te - te.mean()
                    r = -np.tensordot(tc, logs - logs.mean(axis=0), axes=1) / (tc @ tc)
            air = s[0] < 0.05 * np.percentile(self.data[0], 99)
            self._r2s[k] = np.where(air, np.nan, r).astype(np.float32)
        return self._r2s[k]


# ============================================================================ the model

@dataclass
class BrowserState:
    """Everything the view shows; changed only through :class:`Explorer`'s methods."""

    participant_id: str | None = None
    slice: int = 0
    image: str = "echo 2"             # "echo <n>" or "R2*"
    window: float = 1.0
    level: float = 0.5
    zoom: str | None = None           # a markup label, or None for the whole slice
    zoom_centre: tuple[float, float] | None = None   # (i, j), fixed when zoom is chosen
    zoom_mm: float = 6.0              # half side of the zoom box
    overlays: dict = field(default_factory=lambda: dict.fromkeys(OVERLAYS, True))
    label: str = "L_hand"             # the markup being edited
    point: int = 0                    # its control point being placed (0 = first)


@dataclass(frozen=True)
class Overlay:
    """A drawable overlay in in-plane voxel coordinates (i, j) of the shown slice."""

    kind: str        # "roi", "caliper", "reference", "edge_outer", "edge_inner"
    label: str
    ij: np.ndarray   # (n, 2)
    style: str = "-"  # "-" or "--" (a fit that did not pass its checks)
    active: bool = False


class Explorer:
    """State model of the explorer: browser, linked scatter plots and annotator.

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
    settings : measure.MeasureSettings, optional
        Areas, ROI area and intensity echo (default: the paper's).
    source : str
        Where ``measurements`` came from (``measured`` / ``precomputed``).

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
                 settings=None, source: str = "measured", manifest=None):
        from .measure import MeasureSettings

        p = participants.copy()
        if "dpr" not in p.columns or "umn_total" not in p.columns:
            if {"alsfrs_r", "disease_duration_months"} <= set(p.columns):
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
        self.status = ""                      # last message for the user
        self._volumes: OrderedDict[str, _Volume] = OrderedDict()
        self._files: dict[str, AnnotationFile] = {}
        self._details: dict[tuple, tuple] = {}
        self._saved: set[str] = set()        # edited since the measurement table was made
        self._scatter: pd.DataFrame | None = None
        #: the area last looked at: the reference's readout shows its intensities
        self._focus_area = "hand" if "hand" in self.settings.areas else self.settings.areas[0]
        # the default view: the hand knob of the left hemisphere
        self.state.zoom = "L_hand" if "L_hand" in self.labels() else self.labels()[0]
        first = self._default_participant()
        if first is not None:
            self.set_participant(first)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_manifest(cls, manifest="data_manifest.yaml", *, log: Callable = print) -> "Explorer":
        """Load tables as the report does (generating / measuring as needed) and every
        participant's images and annotations found on disk (excluded ones too)."""
        from .dataset import annotation_path, check_images
        from .measure import MeasureSettings
        from .pipeline import load_tables

        tables = load_tables(manifest, log=log)
        m = tables.manifest
        images, annotations = {}, {}
        for pid in tables.participants["participant_id"]:
            echoes, problems = check_images(m.root, pid, False, m.settings.intensity_echo)
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
        """The key clinical values of a participant (NaN-free: missing values omitted)."""
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
        if "alsfrs_r" in c:
            parts.append(f"ALSFRS-R {c['alsfrs_r']:g}")
        if "dpr" in c:
            parts.append(f"DPR {c['dpr']:.2f}")
        if "umn_total" in c:
            parts.append(f"UMN {c['umn_total']:g}")
        if "excluded" in c:
            parts.append(f"excluded: {c['excluded']}")
        if pid not in self.images:
            parts.append("no images")
        return " · ".join(parts)

    def has_images(self, pid: str | None = None) -> bool:
        return (pid or self.state.participant_id) in self.images

    def volume(self, pid: str | None = None) -> _Volume | None:
        pid = pid or self.state.participant_id
        if pid not in self.images:
            return None
        if pid not in self._volumes:
            self._volumes[pid] = _Volume(pid, self.images[pid])
            while len(self._volumes) > 3:   # a few participants in memory, ~40 MB each
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

    # ------------------------------------------------------------------ browser actions
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
        if zoom is not None and self.label_position(zoom) is not None:
            self.set_zoom(zoom)
        else:
            self.state.zoom, self.state.zoom_centre = None, None
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
        if vol is None:
            return
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
            lo, hi = max(float(lo), 0.0), min(float(hi), 300.0)
        if not hi > lo:
            hi = lo + 1.0
        self.state.window, self.state.level = float(hi - lo), float(0.5 * (hi + lo))
        return self.state.window, self.state.level

    def set_zoom(self, label: str | None, half_mm: float | None = None) -> None:
        """Zoom to a markup (its slice, a box of ``2 * half_mm`` around it) or to the whole slice."""
        if half_mm is not None:
            self.state.zoom_mm = float(half_mm)
        if label is None:
            self.state.zoom, self.state.zoom_centre = None, None
        else:
            pos = self.label_position(label)
            if pos is None:
                raise KeyError(f"{label!r} is not annotated for {self.state.participant_id}")
            k, ij = pos
            self.state.zoom = label
            self._focus_area = self._area_of(label) or self._focus_area
            self.state.zoom_centre = tuple(float(x) for x in ij.mean(axis=0))
            self.state.slice = k
        self.auto_window()

    def set_overlay(self, name: str, on: bool) -> None:
        if name not in OVERLAYS:
            raise ValueError(f"overlay must be one of {OVERLAYS}, got {name!r}")
        self.state.overlays[name] = bool(on)

    # ------------------------------------------------------------------ what is shown
    def image_slice(self) -> np.ndarray | None:
        """The shown slice, shape (ni, nj): an echo's magnitude or the R2* map."""
        vol = self.volume()
        if vol is None:
            return None
        k = self.state.slice
        if self.state.image == R2STAR:
            return vol.r2star(k)
        e = int(self.state.image.split()[-1]) - 1
        return vol.data[e][:, :, k]

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

    def labels_on_slice(self, k: int | None = None) -> list[str]:
        k = self.state.slice if k is None else k
        out = []
        for lab in self.labels():
            pos = self.label_position(lab)
            if pos is not None and pos[0] == k:
                out.append(lab)
        return out

    def details(self, area: str) -> tuple[pd.DataFrame | None, dict, str]:
        """Measure one area (both hemispheres) and the reference from the working markups.

        Cached on the points, so moving a caliper back and forth re-measures only
        new positions. Returns ``(table, {label: Detail}, error)``; on a problem
        with the annotation (e.g. an ROI outside the image) the table is None and
        ``error`` says why.
        """
        pid = self.state.participant_id
        f = self.annotation_file()
        if f is None or not self.has_images():
            return None, {}, "no images or annotations"
        names = [f"{h}_{area}" for h in C.HEMISPHERES] + [C.REFERENCE_LABEL]
        names += [f"{n}_roi" for n in names]
        key = (pid, area, tuple((n, np.round(f.markups[n].points, 6).tobytes())
                                for n in names if n in f.markups))
        if key not in self._details:
            s = replace(self.settings, areas=(area,))
            try:
                table, det = _measure_details(pid, self.images[pid], f.markups, s)
                self._details[key] = (table, det, "")
            except DataError as exc:
                self._details[key] = (None, {}, "; ".join(p.message + (f" ({p.field})" if p.field else "")
                                                          for p in exc.problems))
            if len(self._details) > 256:
                self._details.pop(next(iter(self._details)))
        return self._details[key]

    def _area_of(self, label: str) -> str | None:
        return label.split("_", 1)[1] if label != C.REFERENCE_LABEL else None

    def overlays(self) -> list[Overlay]:
        """Overlays on the shown slice, those switched off left out."""
        if not self.has_images() or self.annotation_file() is None:
            return []
        on = self.state.overlays
        k = self.state.slice
        here = self.labels_on_slice(k)
        out: list[Overlay] = []
        areas = sorted({self._area_of(lab) for lab in here if self._area_of(lab)},
                       key=list(self.settings.areas).index)
        need_measure = on["roi"] or on["edges"] or (on["reference"] and C.REFERENCE_LABEL in here)
        det: dict = {}
        if need_measure:
            for a in areas or ([self.settings.areas[0]] if C.REFERENCE_LABEL in here else []):
                det.update(self.details(a)[1])
        for lab in here:
            active = lab == self.state.label
            d = det.get(lab)
            if lab == C.REFERENCE_LABEL:
                if not on["reference"]:
                    continue
                if d is not None and d.k == k:
                    out.append(Overlay("reference", lab, d.plane.uv_to_ij(d.ellipse.outline()), active=active))
                out.append(Overlay("reference", lab, self.label_position(lab)[1], active=active))
                continue
            if on["roi"] and d is not None and d.k == k:
                out.append(Overlay("roi", lab, d.plane.uv_to_ij(d.ellipse.outline()), active=active))
            if on["edges"] and d is not None and d.k == k and d.fit is not None:
                out += _edge_overlays(lab, d, active)
            if on["caliper"]:
                out.append(Overlay("caliper", lab, self.label_position(lab)[1], active=active))
        return out

    def participant_table(self) -> pd.DataFrame:
        """The shown participant's measurements as the analyses have them (one row per
        label, with its slice); empty when the participant was not measured."""
        m = self.measurements
        pid = self.state.participant_id
        cols = ["thickness_mm", "profile_thickness_mm", "intensity", "r2star_s", "fit_ok"]
        if m.empty or "participant_id" not in m.columns:
            return pd.DataFrame(columns=["label", "slice"] + cols)
        rows = m[m["participant_id"] == pid].copy()
        rows.insert(0, "label", rows["hemisphere"] + "_" + rows["area"])
        if "slice" not in rows.columns:
            rows["slice"] = np.nan
        keep = ["label", "slice"] + [c for c in cols if c in rows.columns]
        return rows[keep].reset_index(drop=True)

    def readout(self) -> dict:
        """Live measurement of the edited markup from the working annotations.

        For a caliper: ``thickness_mm`` (caliper), ``profile_thickness_mm``,
        ``intensity``, ``r2star_s``, the fit's verdict and, from the measurement
        table, the ``stored_*`` values. For the reference: its ROI mean and the live
        intensities of the calipers of the area last zoomed to (which it normalizes).
        """
        lab = self.state.label
        out = {"label": lab, "error": ""}
        pos = self.label_position(lab)
        if pos is None:
            out["error"] = "not annotated" if self.has_images() else "no images"
            return out
        out["slice"] = pos[0]
        f = self.annotation_file()
        out["points_ras"] = f.markups[lab].points.round(3).tolist()
        out["unsaved"] = bool(f.dirty)
        area = self._area_of(lab) or self._focus_area
        table, det, err = self.details(area)
        if err:
            out["error"] = err
            return out
        if lab == C.REFERENCE_LABEL:
            t = table.set_index(["hemisphere", "area"])
            out["ref_mean"] = float(table["ref_mean"].iloc[0])
            for h in C.HEMISPHERES:
                out[f"intensity_{h}_{area}"] = float(t.loc[(h, area), "intensity"])
            return out
        h = lab.split("_", 1)[0]
        row = table.set_index(["hemisphere", "area"]).loc[(h, area)]
        for c in ("thickness_mm", "profile_thickness_mm", "intensity", "r2star_s", "fit_ok",
                  "fit_reason", "roi_source", "roi_area_mm2"):
            v = row[c]
            out[c] = v.item() if hasattr(v, "item") else v
        st = self.participant_table()
        st = st[st["label"] == lab]
        for c in ("thickness_mm", "profile_thickness_mm", "intensity", "r2star_s"):
            if c in st.columns and len(st):
                out[f"stored_{c}"] = float(st[c].iloc[0])
        return out

    # ------------------------------------------------------------------ annotator actions
    def select_label(self, label: str, *, go: bool = True) -> None:
        """Choose the markup to edit (and, with ``go``, zoom to it)."""
        if label not in self.labels():
            raise ValueError(f"label must be one of {self.labels()}, got {label!r}")
        self.state.label, self.state.point = label, 0
        if go and self.label_position(label) is not None:
            self.set_zoom(label)

    def set_active_point(self, point: int) -> None:
        """Which control point a click places: 0 = the first (superficial side), 1 = the second."""
        n = 1 if self.state.label == C.REFERENCE_LABEL else 2
        if point not in range(n):
            raise ValueError(f"{self.state.label} has {n} point(s)")
        self.state.point = int(point)

    def set_point_ij(self, i: float, j: float, point: int | None = None) -> None:
        """Place a control point of the edited markup at (i, j) on the shown slice.

        A caliper must lie in one slice, so its other point follows to this slice
        (keeping its in-plane position).
        """
        f, vol = self.annotation_file(), self.volume()
        if f is None or vol is None:
            raise DataError("nothing to annotate: no images or no annotation file",
                            participant=self.state.participant_id)
        lab = self.state.label
        point = self.state.point if point is None else int(point)
        k = self.state.slice
        m = f.markups.get(lab)
        if m is None:  # placing a markup the file does not have yet
            from .markups import fiducial, line

            here = vol.geometry.voxel_to_world([[i, j, k]])[0]
            m = fiducial(lab, here) if lab == C.REFERENCE_LABEL else line(lab, here, here)
            f.markups[lab] = m
        vox = vol.geometry.world_to_voxel(m.points)
        vox[:, 2] = k
        vox[point, :2] = (i, j)
        m.points = vol.geometry.voxel_to_world(vox)

    def click(self, i: float, j: float) -> None:
        """A click on the image: place the active point there, then make the other
        point active (two clicks draw a new caliper: superficial side first)."""
        self.set_point_ij(i, j)
        if self.state.label != C.REFERENCE_LABEL:
            self.state.point = 1 - self.state.point

    def nudge(self, du_mm: float, dv_mm: float) -> None:
        """Move the active point by (du, dv) mm in the slice plane (u along voxel axis i)."""
        pos = self.label_position(self.state.label)
        if pos is None:
            raise DataError(f"{self.state.label} is not annotated", participant=self.state.participant_id)
        k, ij = pos
        self.state.slice = k
        plane = self.volume().geometry.plane(k)
        uv = plane.ij_to_uv(ij[self.state.point]) + np.array([du_mm, dv_mm])
        self.set_point_ij(*plane.uv_to_ij(uv)[0])

    def revert(self) -> None:
        f = self.annotation_file()
        if f is not None:
            f.revert()
            self.status = f"{self.state.participant_id}: edits discarded"

    def check_annotations(self) -> list[Problem]:
        """Problems that would make the next measurement fail (checked before saving)."""
        from .geometry import assign_slice

        f, vol = self.annotation_file(), self.volume()
        problems = []
        for lab in self.labels():
            m = f.markups.get(lab)
            want = ("Fiducial", 1) if lab == C.REFERENCE_LABEL else ("Line", 2)
            if m is None or m.type != want[0] or len(m.points) != want[1]:
                problems.append(Problem(f"expected a {want[0]} with {want[1]} point(s)", file=f.path,
                                        participant=self.state.participant_id, field=lab))
                continue
            if vol is not None:
                try:
                    assign_slice(vol.geometry, m.points, participant=self.state.participant_id,
                                 label=lab, file=f.path)
                except DataError as exc:
                    problems += exc.problems
                if lab != C.REFERENCE_LABEL and m.length_mm <= 0:
                    problems.append(Problem("caliper of zero length", file=f.path,
                                            participant=self.state.participant_id, field=lab))
        return problems

    def save(self) -> Path | None:
        """Save the shown participant's annotations; return the backup's path
        (None, and nothing written, when there is no edit to save).

        Raises
        ------
        DataError
            When an annotation would not measure (nothing is written).
        AnnotationConflict
            When the file changed on disk since it was opened.
        """
        f = self.annotation_file()
        if f is None:
            raise DataError("no annotation file to save", participant=self.state.participant_id)
        if not f.dirty:
            self.status = f"{f.path.name}: no changes to save"
            return None
        problems = self.check_annotations()
        if problems:
            raise DataError(problems)
        backup = f.save()
        self._saved.add(self.state.participant_id)
        self._scatter = None
        after = ("the next `m1lib report` re-measures it" if self.source != "precomputed" else
                 "note: this dataset's analyses use its precomputed measurement table, "
                 "which the edit does not change")
        self.status = f"saved {f.path.name} (previous version kept as {backup.name}); {after}"
        return backup

    def reload(self) -> None:
        """Re-open the shown participant's file from disk (discarding unsaved edits)."""
        pid = self.state.participant_id
        self._files.pop(pid, None)
        self.annotation_file()
        self.status = f"{pid}: reloaded from disk"

    @property
    def stale(self) -> bool:
        """The shown participant's annotations were saved after the measurement table was made."""
        return self.state.participant_id in self._saved

    # ------------------------------------------------------------------ linked scatter
    def scatter_points(self) -> pd.DataFrame:
        """Points of the Fig 2 panels: ``panel`` (index into :data:`PANELS`), ``x``, ``y``,
        ``participant_id`` and, for the per-limb panels, ``hemisphere`` and ``area``."""
        if self._scatter is None:
            self._scatter = _scatter_points(self.participants, self.measurements)
        return self._scatter

    def panel_points(self, panel: int) -> pd.DataFrame:
        pts = self.scatter_points()
        return pts[pts["panel"] == panel].reset_index(drop=True)

    def pick(self, panel: int, index: int) -> None:
        """A point picked in a scatter panel: show that participant's area in the browser."""
        row = self.panel_points(panel).iloc[int(index)]
        self.set_participant(row["participant_id"])
        if not self.has_images():
            return
        if isinstance(row.get("area"), str):
            label = f"{row['hemisphere']}_{row['area']}"
        else:
            label = self.state.zoom if self.state.zoom and self.state.zoom != C.REFERENCE_LABEL else None
            label = label or ("L_hand" if "L_hand" in self.labels() else self.labels()[0])
        if self.label_position(label) is not None:
            self.state.label, self.state.point = label, 0
            self.set_zoom(label)

    def selected_points(self, panel: int) -> np.ndarray:
        """Indices of the shown participant's points in a panel."""
        pts = self.panel_points(panel)
        return np.flatnonzero(pts["participant_id"].to_numpy() == self.state.participant_id)

    # ------------------------------------------------------------------ static output
    def snapshot_figure(self, *, dpi: int = 150):
        """A static figure of the current view: the image with its overlays and the
        participant's measurements (deterministic bytes: Agg, fixed size and fonts)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10.0, 5.2), dpi=dpi)
        ax_img, ax_txt = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1.0]})
        draw_browser(ax_img, self)
        ax_txt.axis("off")
        ax_txt.text(0.0, 1.0, _table_text(self), family="DejaVu Sans Mono", fontsize=7.5,
                    va="top", ha="left", transform=ax_txt.transAxes)
        fig.subplots_adjust(left=0.03, right=0.99, top=0.9, bottom=0.06, wspace=0.08)
        return fig


def _edge_overlays(label: str, d: Detail, active: bool) -> list[Overlay]:
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


def _scatter_points(participants: pd.DataFrame, measurements: pd.DataFrame) -> pd.DataFrame:
    from . import analyses

    cols = ["panel", "x", "y", "participant_id", "hemisphere", "area"]
    if measurements is None or measurements.empty:
        return pd.DataFrame(columns=cols)
    try:
        pairs = analyses.limb_pairs(participants, measurements)
        subj = analyses.subject_table(participants, measurements)
    except (DataError, KeyError, ValueError):
        return pd.DataFrame(columns=cols)
    subj = subj[subj["group"] == "ALS"]
    frames = []
    for n, (measure, var) in enumerate(PANELS):
        src = pairs if var == "umn_score" else subj
        if measure not in src.columns or var not in src.columns:
            continue
        d = pd.DataFrame({"panel": n, "x": pd.to_numeric(src[var], errors="coerce"),
                          "y": pd.to_numeric(src[measure], errors="coerce"),
                          "participant_id": src["participant_id"],
                          "hemisphere": src["hemisphere"] if "hemisphere" in src else None,
                          "area": src["area"] if "area" in src else None})
        frames.append(d.dropna(subset=["x", "y"]))
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


def _fmt(v, spec: str) -> str:
    try:
        return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, spec)
    except (TypeError, ValueError):
        return str(v)


def _clinical_text(ex: Explorer, sep: str = " · ") -> str:
    """Key clinical values; ``sep="\n"`` puts the scores on a second line."""
    c = ex.clinical()
    head = f"{c['participant_id']} ({c.get('group', '?')})"
    if "age" in c:
        head += f", {c['age']:g} y {c.get('sex', '')}".rstrip()
    bits = []
    for key, name, spec in (("alsfrs_r", "ALSFRS-R", "g"), ("disease_duration_months", "duration (months)", "g"),
                            ("dpr", "DPR", ".2f"), ("umn_total", "UMN", "g"), ("mrc", "MRC", "g")):
        if key in c:
            bits.append(f"{name} {_fmt(c[key], spec)}")
    if "excluded" in c:
        bits.append(f"EXCLUDED ({c['excluded']})")
    return head + (sep + " · ".join(bits) if bits else "")


def _table_text(ex: Explorer) -> str:
    """The participant's measurements as a fixed-width table (snapshot and fallback)."""
    lines = [_clinical_text(ex, sep="\n"), ""]
    t = ex.participant_table()
    if t.empty:
        lines.append("not in the measurement table")
    else:
        lines.append(f"{'label':10s} {'k':>3s} {'caliper':>8s} {'profile':>8s} {'intens.':>8s} {'R2*':>6s}")
        lines.append(f"{'':10s} {'':>3s} {'mm':>8s} {'mm':>8s} {'norm.':>8s} {'1/s':>6s}")
        here = set(ex.labels_on_slice()) if ex.has_images() else set()
        for r in t.itertuples(index=False):
            mark = "*" if r.label in here else " "
            lines.append(f"{r.label:9s}{mark} {_fmt(r.slice, '3.0f'):>3s} "
                         f"{_fmt(getattr(r, 'thickness_mm', np.nan), '8.2f'):>8s} "
                         f"{_fmt(getattr(r, 'profile_thickness_mm', np.nan), '8.2f'):>8s} "
                         f"{_fmt(getattr(r, 'intensity', np.nan), '8.3f'):>8s} "
                         f"{_fmt(getattr(r, 'r2star_s', np.nan), '6.1f'):>6s}")
        lines.append("* on the shown slice")
    if ex.stale:
        lines.append("annotations saved since: values change at the next report")
    return "\n".join(lines)


# ============================================================================ drawing

def _orientation_letters(affine) -> tuple[str, str, str, str]:
    """(left, right, bottom, top) screen edges of an i-right, j-up display."""
    import nibabel as nib

    codes = nib.orientations.aff2axcodes(affine)
    opposite = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}
    return opposite[codes[0]], codes[0], opposite[codes[1]], codes[1]


def draw_browser(ax, ex: Explorer, *, limits: bool = True) -> None:
    """Draw the browser's image and overlays into ``ax`` (any backend)."""
    ax.clear()
    ax.set_xticks([])
    ax.set_yticks([])
    pid = ex.state.participant_id
    img = ex.image_slice()
    if img is None:
        ax.text(0.5, 0.5, f"{pid}: no images in this dataset\n(measurements only)",
                ha="center", va="center", transform=ax.transAxes, fontsize=10)
        ax.set_title(_clinical_text(ex) if pid else "", fontsize=8)
        return
    vol = ex.volume()
    ni, nj = img.shape
    px = ex.pixel_mm()
    vmin, vmax = ex.clim()
    import matplotlib

    cmap = matplotlib.colormaps["magma" if ex.state.image == R2STAR else "gray"].with_extremes(bad="black")
    ax.imshow(np.ma.masked_invalid(img.T), cmap=cmap, origin="lower", interpolation="nearest",
              vmin=vmin, vmax=vmax, extent=(-0.5, ni - 0.5, -0.5, nj - 0.5),
              aspect=float(px[1] / px[0]))
    for ov in ex.overlays():
        colour = COLOURS["edit"] if ov.active and ov.kind == "caliper" else COLOURS.get(ov.kind, "w")
        lw = 1.8 if ov.active else 1.4
        if ov.kind == "caliper":
            ax.plot(ov.ij[:, 0], ov.ij[:, 1], color=colour, lw=lw, marker="o", ms=3.5)
            if ov.active:  # which end is which: 1 superficial, 2 white matter
                for n, (x, y) in enumerate(ov.ij):
                    ax.annotate(str(n + 1), (x, y), xytext=(4, 4), textcoords="offset points",
                                color=colour, fontsize=8, fontweight="bold")
        elif ov.kind == "reference" and len(ov.ij) == 1:
            ax.plot(ov.ij[:, 0], ov.ij[:, 1], color=COLOURS["reference"], marker="+", ms=9, mew=1.5)
        else:
            ax.plot(ov.ij[:, 0], ov.ij[:, 1], color=colour, lw=lw, ls=ov.style)
    if limits:
        (i0, i1), (j0, j1) = ex.view_limits()
        ax.set_xlim(i0, i1)
        ax.set_ylim(j0, j1)
    # a scale bar: 1 mm zoomed in, 10 mm on the whole slice
    (i0, i1), (j0, j1) = ax.get_xlim(), ax.get_ylim()
    bar_mm = 1.0 if (i1 - i0) * px[0] <= 30 else 10.0
    x0, y0 = i0 + 0.05 * (i1 - i0), j0 + 0.05 * (j1 - j0)
    ax.plot([x0, x0 + bar_mm / px[0]], [y0, y0], color="w", lw=2.5, solid_capstyle="butt")
    ax.text(x0, y0 + 0.02 * (j1 - j0), f"{bar_mm:g} mm", color="w", fontsize=8)
    left, right, bottom, top = _orientation_letters(vol.geometry.affine)
    for x, y, s in ((0.01, 0.5, left), (0.99, 0.5, right), (0.5, 0.01, bottom), (0.5, 0.99, top)):
        ax.text(x, y, s, transform=ax.transAxes, color="#ffff66", fontsize=9, fontweight="bold",
                ha="left" if x < 0.2 else "right" if x > 0.8 else "center",
                va="bottom" if y < 0.2 else "top" if y > 0.8 else "center")
    zoom = f" · {ex.state.zoom}" if ex.state.zoom else ""
    ax.set_title(f"{pid} · slice {ex.state.slice} · {ex.state.image}{zoom} · "
                 f"W {ex.state.window:.0f} L {ex.state.level:.0f}", fontsize=9)


def draw_scatter(fig, ex: Explorer) -> dict:
    """Draw the six Fig 2 panels into ``fig``; return ``{artist: panel}`` for picking."""
    fig.clear()
    axes = fig.subplots(2, 3)
    artists = {}
    for n, (measure, var) in enumerate(PANELS):
        ax = axes[n // 3, n % 3]
        pts = ex.panel_points(n)
        if pts.empty:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        else:
            x = pts["x"].to_numpy(float)
            if var == "umn_score":  # integer scores: spread the pairs a little to see them
                key = pts["hemisphere"].astype(str) + pts["area"].astype(str)
                codes = pd.factorize(key, sort=True)[0]
                x = x + 0.06 * (codes - codes.max() / 2)
            art = ax.scatter(x, pts["y"], s=16, color="#555555", alpha=0.8, picker=True, pickradius=5)
            art.set_gid(f"panel{n}")
            artists[art] = n
            sel = ex.selected_points(n)
            if len(sel):
                ax.scatter(x[sel], pts["y"].to_numpy()[sel], s=60, facecolors="none",
                           edgecolors=COLOURS["selected"], linewidths=1.5)
        ax.set_title(f"{'ABCDEF'[n]}", loc="left", fontsize=9, fontweight="bold")
        ax.set_xlabel(_AXIS_LABELS[var], fontsize=8)
        ax.set_ylabel(_AXIS_LABELS[measure], fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("Fig 2: patients (click a point to show that participant; red: shown)", fontsize=9)
    fig.tight_layout()
    return artists


# ============================================================================ the view

def use_widget_backend() -> bool:
    """Switch matplotlib to ipympl (``%matplotlib widget``) when running in IPython.

    Returns whether the figures will be live canvases. Headless runs (papermill,
    nbconvert) work either way: the canvases are built and nothing waits for a click.
    """
    try:
        from IPython import get_ipython

        ip = get_ipython()
        if ip is None or not hasattr(ip, "kernel"):
            return False
        ip.run_line_magic("matplotlib", "widget")
        return _interactive()
    except Exception:  # no ipympl: static figures
        return False


def as_image(fig, dpi: int | None = None, alt: str = "explorer snapshot"):
    """A figure as an ``IPython.display.Image`` (PNG): shown the same under any backend."""
    from IPython.display import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi, metadata={"Software": None})
    return Image(data=buf.getvalue(), format="png", alt=alt)


def _interactive() -> bool:
    import matplotlib

    b = matplotlib.get_backend().lower()
    return "ipympl" in b or b == "widget"


class ExplorerView:
    """The ipywidgets face of an :class:`Explorer` (``.widget`` is the whole app).

    Every control calls one model method and redraws. With ipympl the image and
    the scatter plots are live canvases (clicks place points / pick participants);
    without it they are PNG images (``interactive=False``), which is also what the
    tests use.
    """

    def __init__(self, explorer: Explorer, *, interactive: bool | None = None,
                 image_size: tuple[float, float] = (5.4, 5.4)):
        import ipywidgets as W

        self.ex = explorer
        self.interactive = _interactive() if interactive is None else bool(interactive)
        self._syncing = False
        self._limits_key = None
        ex = explorer
        lay = W.Layout

        # ---- browser controls (a 370 px column: the app fits a ~1200 px notebook)
        d60 = {"description_width": "62px"}
        col = lay(width="370px")
        self.participant = W.Dropdown(options=[(ex.participant_label(p), p) for p in ex.participant_order()],
                                      layout=col)
        self.clinical = W.HTML(layout=col)
        self.slice = W.IntSlider(description="Slice", min=0, max=0, continuous_update=False, style=d60,
                                 layout=col)
        self.image = W.ToggleButtons(options=["echo 1"], style={"button_width": "70px"},
                                     layout=lay(width="250px"))
        self.auto = W.Button(description="Auto W/L", layout=lay(width="100px"))
        self.window = W.FloatSlider(description="Window", min=1e-3, max=1.0, continuous_update=False,
                                    style=d60, readout_format=".0f", layout=col)
        self.level = W.FloatSlider(description="Level", min=0.0, max=1.0, continuous_update=False,
                                   style=d60, readout_format=".0f", layout=col)
        self.zoom = W.Dropdown(description="Zoom to", options=[("whole slice", None)], style=d60,
                               layout=lay(width="220px"))
        self.zoom_mm = W.BoundedFloatText(description="± mm", value=ex.state.zoom_mm, min=1.0, max=60.0,
                                          step=0.5, style={"description_width": "52px"},
                                          layout=lay(width="140px"))
        self.overlay = {name: W.Checkbox(value=ex.state.overlays[name], description=text, indent=False,
                                         layout=lay(width="180px"))
                        for name, text in (("roi", "oval ROIs"), ("caliper", "calipers"),
                                           ("reference", "reference ROI"), ("edges", "fitted edges"))}
        self.table = W.HTML(layout=lay(width="290px"))

        # ---- annotator controls
        self.label = W.Dropdown(description="Edit", options=ex.labels(), value=ex.state.label,
                                style={"description_width": "40px"}, layout=lay(width="200px"))
        self.point = W.ToggleButtons(options=[("1 superficial", 0), ("2 white matter", 1)],
                                     style={"button_width": "125px"}, layout=lay(width="270px"))
        self.click_edits = W.ToggleButton(value=False, description="click on image places point",
                                          icon="crosshairs", layout=lay(width="260px"))
        self.step = W.BoundedFloatText(value=0.05, min=0.01, max=2.0, step=0.01, description="step mm",
                                       style={"description_width": "60px"}, layout=lay(width="140px"))
        arrows = {"◀": (-1, 0), "▶": (1, 0), "▲": (0, 1), "▼": (0, -1)}
        self.arrows = {k: W.Button(description=k, tooltip="move the point by one step", layout=lay(width="34px"))
                       for k in arrows}
        for k, (du, dv) in arrows.items():
            self.arrows[k].on_click(lambda _b, du=du, dv=dv: self._act(
                lambda: ex.nudge(du * self.step.value, dv * self.step.value)))
        self.readout = W.HTML()
        self.readout.layout = lay(width="560px")
        self.save_btn = W.Button(description="Save annotations", button_style="primary", icon="save",
                                 layout=lay(width="170px"))
        self.revert_btn = W.Button(description="Discard edits", layout=lay(width="120px"))
        self.reload_btn = W.Button(description="Reload from disk", layout=lay(width="140px"))
        self.status = W.HTML(layout=lay(width="560px"))

        # ---- figures
        if self.interactive:
            import matplotlib.pyplot as plt

            with plt.ioff():
                self.fig = plt.figure(figsize=image_size)
                self.sfig = plt.figure(figsize=(9.0, 5.0))
            for f in (self.fig, self.sfig):
                f.canvas.header_visible = False
                f.canvas.footer_visible = False
                f.canvas.resizable = False
            self.image_out, self.scatter_out = self.fig.canvas, self.sfig.canvas
            self.image_out.add_class("m1lib-image")
            self.scatter_out.add_class("m1lib-scatter")
        else:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            self.fig, self.sfig = Figure(figsize=image_size, dpi=100), Figure(figsize=(9.0, 5.0), dpi=100)
            FigureCanvasAgg(self.fig)
            FigureCanvasAgg(self.sfig)
            self.image_out = W.Image(format="png", layout=lay(width=f"{int(image_size[0] * 100)}px"))
            self.scatter_out = W.Image(format="png", layout=lay(width="900px"))
            self.image_out.add_class("m1lib-image")
            self.scatter_out.add_class("m1lib-scatter")
        self.ax = self.fig.add_subplot(1, 1, 1)
        self.fig.subplots_adjust(left=0.02, right=0.98, top=0.94, bottom=0.02)
        self._artists: dict = {}
        self.fig.canvas.mpl_connect("button_press_event", self._on_click)
        self.sfig.canvas.mpl_connect("pick_event", self._on_pick)

        # ---- wiring
        self.participant.observe(lambda ch: self._act(lambda: ex.set_participant(ch["new"])), "value")
        self.slice.observe(lambda ch: self._act(lambda: ex.set_slice(ch["new"])), "value")
        self.image.observe(lambda ch: self._act(lambda: ex.set_image(ch["new"])), "value")
        self.window.observe(lambda ch: self._act(lambda: ex.set_window(window=ch["new"])), "value")
        self.level.observe(lambda ch: self._act(lambda: ex.set_window(level=ch["new"])), "value")
        self.auto.on_click(lambda _b: self._act(ex.auto_window))
        self.zoom.observe(lambda ch: self._act(lambda: ex.set_zoom(ch["new"])), "value")
        self.zoom_mm.observe(lambda ch: self._act(lambda: ex.set_zoom(ex.state.zoom, ch["new"])), "value")
        for name, box in self.overlay.items():
            box.observe(lambda ch, name=name: self._act(lambda: ex.set_overlay(name, ch["new"])), "value")
        self.label.observe(lambda ch: self._act(lambda: ex.select_label(ch["new"])), "value")
        self.point.observe(lambda ch: self._act(lambda: ex.set_active_point(ch["new"])), "value")
        self.save_btn.on_click(lambda _b: self._act(ex.save))
        self.revert_btn.on_click(lambda _b: self._act(ex.revert))
        self.reload_btn.on_click(lambda _b: self._act(ex.reload))

        # ---- layout: controls | image | measurements, then the annotator, then Fig 2
        H, V = W.HBox, W.VBox
        fixed = lay(flex="0 0 auto")
        controls = V([self.participant, self.clinical, self.slice, H([self.image, self.auto]),
                      self.window, self.level, H([self.zoom, self.zoom_mm]),
                      H([self.overlay["roi"], self.overlay["caliper"]]),
                      H([self.overlay["reference"], self.overlay["edges"]])],
                     layout=lay(width="380px", flex="0 0 auto"))
        annot = V([W.HTML("<b>Annotator</b> — move a caliper (point 1 on the superficial side, point 2 "
                          "on the white-matter side) or the reference point: click on the image or "
                          "use the arrows; values update as you move"),
                   H([V([H([self.label]), self.point, self.click_edits], layout=lay(width="280px", flex="0 0 auto")),
                      V([self.step, H([self.arrows["◀"], self.arrows["▶"]]),
                         H([self.arrows["▲"], self.arrows["▼"]])], layout=lay(width="150px", flex="0 0 auto")),
                      V([self.readout, H([self.save_btn, self.revert_btn, self.reload_btn]), self.status])])])
        self.image_out.layout.flex = "0 0 auto"
        self.widget = V([
            H([controls, self.image_out, self.table], layout=fixed),
            annot,
            W.HTML("<b>Linked views</b> — Fig 2 of the paper; click a point to show that "
                   "participant's area above"),
            self.scatter_out,
        ])
        self.widget.add_class("m1lib-explorer")
        self.refresh(scatter=True)

    # ------------------------------------------------------------------ plumbing
    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _act(self, action: Callable) -> None:
        """Run a model action from a control, report a user error, redraw."""
        if self._syncing:
            return
        before = self.ex.state.participant_id
        try:
            action()
            if self.ex.status.startswith("saved") and action != self.ex.save:
                self.ex.status = ""
        except DataError as exc:
            self.ex.status = "⚠ " + "; ".join(str(p) for p in exc.problems)
        except (KeyError, ValueError) as exc:
            self.ex.status = f"⚠ {exc}"
        self.refresh(scatter=self.ex.state.participant_id != before or action == self.ex.save)

    def _on_click(self, event) -> None:
        if event.inaxes is not self.ax or event.xdata is None or not self.click_edits.value:
            return
        toolbar = getattr(self.fig.canvas, "toolbar", None)
        if toolbar is not None and getattr(toolbar, "mode", ""):
            return  # the pan/zoom tool owns the click
        self._act(lambda: self.ex.click(event.xdata, event.ydata))

    def _on_pick(self, event) -> None:
        panel = self._artists.get(event.artist)
        if panel is None or not len(getattr(event, "ind", [])):
            return
        self._act(lambda: self.ex.pick(panel, int(event.ind[0])))

    # ------------------------------------------------------------------ rendering
    def _sync_controls(self) -> None:
        ex, st = self.ex, self.ex.state
        self._syncing = True
        try:
            self.participant.value = st.participant_id
            self.clinical.value = (f"<div style='font-size:90%;line-height:1.35'>"
                                   f"{_clinical_text(ex, sep='<br>')}</div>")
            vol = ex.volume()
            has = vol is not None
            for w in (self.slice, self.image, self.window, self.level, self.zoom, self.zoom_mm,
                      self.label, self.point, self.save_btn, self.revert_btn, *self.arrows.values()):
                w.disabled = not has
            if not has:
                return
            self.slice.max = vol.shape[2] - 1
            self.slice.value = st.slice
            self.image.options = ex.image_kinds()
            self.image.value = st.image
            img = ex.image_slice()
            finite = img[np.isfinite(img)]
            top = float(max(np.nanmax(finite) if finite.size else 1.0, st.level + st.window / 2, 1.0))
            self.window.max = max(top, st.window)
            self.level.max = max(top, st.level)
            self.window.step = self.level.step = top / 500
            self.window.value, self.level.value = st.window, st.level
            labels = [lab for lab in ex.labels() if ex.label_position(lab) is not None]
            self.zoom.options = [("whole slice", None)] + [(lab, lab) for lab in labels]
            self.zoom.value = st.zoom if st.zoom in labels else None
            self.zoom_mm.value = st.zoom_mm
            self.label.value = st.label
            self.point.options = ([("reference point", 0)] if st.label == C.REFERENCE_LABEL
                                  else [("1 superficial", 0), ("2 white matter", 1)])
            self.point.value = st.point
            for name, box in self.overlay.items():
                box.value = st.overlays[name]
        finally:
            self._syncing = False

    def refresh(self, scatter: bool = False) -> None:
        """Bring every control, the image, the tables and (optionally) the scatter up to date."""
        ex = self.ex
        self._sync_controls()
        key = (ex.state.participant_id, ex.state.zoom, ex.state.zoom_centre, ex.state.zoom_mm)
        keep = self.interactive and key == self._limits_key
        lims = (self.ax.get_xlim(), self.ax.get_ylim())
        draw_browser(self.ax, ex, limits=not keep)
        if keep:  # the user's own pan/zoom survives a redraw
            self.ax.set_xlim(*lims[0])
            self.ax.set_ylim(*lims[1])
        self._limits_key = key
        self.table.value = _table_html(ex)
        self.readout.value = _readout_html(ex)
        self.status.value = f"<span style='font-size:90%'>{ex.status}</span>"
        if scatter:
            self._artists = draw_scatter(self.sfig, ex)
        self._show(self.fig, self.image_out)
        if scatter:
            self._show(self.sfig, self.scatter_out)

    def _show(self, fig, out) -> None:
        if self.interactive:
            fig.canvas.draw_idle()
        else:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100)
            out.value = buf.getvalue()


def _table_html(ex: Explorer) -> str:
    t = ex.participant_table()
    head = f"<b>Measurements</b> ({ex.source})<br>"
    if t.empty:
        return head + "<i>not in the measurement table</i>"
    here = set(ex.labels_on_slice()) if ex.has_images() else set()
    rows = []
    for r in t.itertuples(index=False):
        style = "font-weight:bold;" if r.label in here else ""
        if r.label == ex.state.label:
            style += "background:#fff3b0;"
        rows.append(f"<tr style='{style}'><td>{r.label}</td><td>{_fmt(r.slice, '.0f')}</td>"
                    f"<td>{_fmt(getattr(r, 'thickness_mm', np.nan), '.2f')}</td>"
                    f"<td>{_fmt(getattr(r, 'profile_thickness_mm', np.nan), '.2f')}</td>"
                    f"<td>{_fmt(getattr(r, 'intensity', np.nan), '.3f')}</td>"
                    f"<td>{_fmt(getattr(r, 'r2star_s', np.nan), '.1f')}</td></tr>")
    note = ("<br><i>annotations saved since: these values change at the next report</i>"
            if ex.stale else "")
    return (head + "<table style='font-size:85%'><tr><th>label</th><th>k</th><th>caliper<br>mm</th>"
            "<th>profile<br>mm</th><th>intensity</th><th>R2*<br>1/s</th></tr>" + "".join(rows)
            + "</table><span style='font-size:80%'>bold: on the shown slice; yellow: being edited</span>"
            + note)


def _readout_html(ex: Explorer) -> str:
    if not ex.has_images():
        return ""
    r = ex.readout()
    lab = r["label"]
    if r.get("error"):
        return f"<b>{lab}</b>: <span style='color:#b00'>{r['error']}</span>"
    flag = " <b style='color:#b60'>(unsaved)</b>" if r.get("unsaved") else ""
    if lab == C.REFERENCE_LABEL:
        ints = ", ".join(f"{k[10:]} {_fmt(v, '.3f')}" for k, v in r.items() if k.startswith("intensity_"))
        return f"<b>{lab}</b> slice {r['slice']}: ROI mean {_fmt(r['ref_mean'], '.1f')}; intensity {ints}{flag}"

    def cell(c, spec):
        now = _fmt(r.get(c), spec)
        old = r.get(f"stored_{c}")
        return now if old is None else f"{now} <span style='color:#777'>(was {_fmt(old, spec)})</span>"

    fit = "fit ok" if r.get("fit_ok") else f"fit: {r.get('fit_reason', '')}"
    return (f"<b>{lab}</b> slice {r['slice']}{flag}: caliper {cell('thickness_mm', '.2f')} mm · "
            f"profile {cell('profile_thickness_mm', '.2f')} mm · intensity {cell('intensity', '.3f')} · "
            f"R2* {cell('r2star_s', '.1f')} 1/s · <span style='font-size:85%'>{fit}</span>")
