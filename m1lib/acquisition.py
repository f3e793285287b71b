"""One participant's inputs to a measurement, read and checked: echoes, geometry, annotations.

:func:`load` reads the echo headers and metadata (given by :mod:`m1lib.dataset`, or
the JSON beside each image), chooses the affine and the slice axis
(:mod:`m1lib.geometry`), reads the annotations (Slicer markups, closed curves, a
label image), checks them against the image's world coordinates (orientation,
field of view, one slice each) and reads only the slices they lie in
(:mod:`m1lib.slices`). Every problem is a :class:`~m1lib.errors.DataError` naming
the participant and the label.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import nibabel as nib
import numpy as np

from . import contract as C
from .errors import DataError, Problem
from .geometry import affine_disagreement_mm, assign_slice, check_orientation, image_geometry, slice_axis_of
from .markups import read_markups
from .roi import label_region, label_slices_present
from .slices import read_slices

_PE_AXES = {"i": 0, "i-": 0, "j": 1, "j-": 1, "k": 2, "k-": 2}


@dataclass(frozen=True)
class Echo:
    """An echo as plain, picklable data: file, echo time, 4-D volume, merged sidecar."""

    path: Path
    echo_time_s: float | None = None
    volume: int | None = None
    metadata: dict | None = None


def echo_inputs(echoes) -> list[Echo]:
    """Normalize echoes: :class:`m1lib.dataset.EchoImage`-like objects, or paths.

    A single path to a 4-D file stands for all its echoes (``EchoTime`` a list in
    its sidecar).
    """
    out = []
    for e in echoes:
        if hasattr(e, "path"):
            meta = getattr(e, "metadata", None) or None
            out.append(Echo(Path(e.path), getattr(e, "echo_time_s", None), getattr(e, "volume", None), meta))
        else:
            out.append(Echo(Path(e)))
    if len(out) == 1 and out[0].volume is None and out[0].metadata is None:
        tes = read_sidecar(out[0].path, None).get("EchoTime")
        if isinstance(tes, list):
            out = [Echo(out[0].path, None, v) for v in range(len(tes))]
    return out


def sidecar_path(path: Path) -> Path:
    name = path.name
    stem = name[:-7] if name.endswith(".nii.gz") else name[:-4] if name.endswith(".nii") else name
    return path.with_name(stem + ".json")


def read_sidecar(path: Path, participant: str | None) -> dict:
    sc = sidecar_path(path)
    if not sc.is_file():
        return {}
    try:
        return json.loads(sc.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"unreadable sidecar ({exc})", file=sc, participant=participant) from None


def echo_time(meta: dict, echo: Echo, participant: str) -> float:
    te = echo.echo_time_s if echo.echo_time_s is not None else meta.get("EchoTime")
    if isinstance(te, list) and echo.volume is not None and echo.volume < len(te):
        te = te[echo.volume]
    where = dict(file=sidecar_path(echo.path), participant=participant, field="EchoTime")
    if te is None or isinstance(te, list):
        raise DataError("no EchoTime (the sidecar JSON must give it, in seconds)", **where)
    te = float(te)
    if not (0 < te <= 1):
        raise DataError(f"EchoTime {te:g} is not in seconds (expected 0 < TE <= 1 s)", **where)
    return te


@dataclass
class Annotation:
    label: str
    hemisphere: str | None
    area: str | None
    k: int
    ij: np.ndarray          # points, in-plane voxel coordinates
    roi_ij: np.ndarray | None = None
    roi_type: str | None = None
    roi_region: object = None


def labels(settings) -> list[tuple[str, str, str]]:
    return [(f"{h}_{a}", h, a) for h in C.HEMISPHERES for a in settings.areas]


def _open_echoes(participant_id, inputs: list[Echo], settings):
    imgs, geoms, tes, metas, sources = [], [], [], [], []
    cache = {}
    for e in inputs:
        if e.path not in cache:
            try:
                cache[e.path] = nib.load(str(e.path))
            except Exception as exc:  # nibabel raises many types for a bad file
                raise DataError(f"cannot read image ({type(exc).__name__}: {exc})", file=e.path,
                                participant=participant_id) from None
        img = cache[e.path]
        meta = e.metadata if e.metadata is not None else read_sidecar(e.path, participant_id)
        axis, source = slice_axis_of(img.header, meta)
        g = image_geometry(img, tol_mm=settings.affine_tol_mm, participant=participant_id,
                           file=e.path, slice_axis=axis, volume=e.volume)
        imgs.append(img)
        geoms.append(g)
        metas.append(meta)
        sources.append(source)
        tes.append(echo_time(meta, e, participant_id))
    g0 = geoms[0]
    for e, g in zip(inputs[1:], geoms[1:]):
        if (g.shape != g0.shape or g.axes != g0.axes
                or affine_disagreement_mm(g.affine, g0.affine, g0.shape) > settings.affine_tol_mm):
            raise DataError("echo images differ in grid (shape, slice axis or affine) from echo 1",
                            file=e.path, participant=participant_id)
    if np.any(np.diff(tes) <= 0):
        raise DataError(f"echo times {tes} are not increasing with the echo number",
                        participant=participant_id, field="EchoTime")
    return imgs, g0, tes, metas, sources[0]


def _read_label_map(label_map, participant_id):
    """``(labels array, affine, {name: index}, path)`` of a :class:`m1lib.dataset.LabelMap`."""
    try:
        img = nib.load(str(label_map.path))
        g = image_geometry(img, participant=participant_id, file=label_map.path)
        data = np.asanyarray(img.dataobj)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read label image ({type(exc).__name__}: {exc})", file=label_map.path,
                        participant=participant_id, field="label map") from None
    if data.ndim != 3 or not (np.issubdtype(data.dtype, np.integer) or np.all(np.mod(data, 1) == 0)):
        raise DataError("a label image must be 3-D with integer labels", file=label_map.path,
                        participant=participant_id, field="label map")
    return data.astype(np.int64, copy=False), g.affine, {n: i for i, n in label_map.labels}, label_map.path


def load(participant_id, echoes, markups_path, settings, label_map=None):
    """Read headers, annotations and the needed slices; check everything against the contract."""
    inputs = echo_inputs(echoes)
    if len(inputs) < 2:
        raise DataError(f"{len(inputs)} echo image(s); two or more are needed (R2*)",
                        participant=participant_id)
    if not 1 <= settings.intensity_echo <= len(inputs):
        raise DataError(f"intensity_echo {settings.intensity_echo} but only {len(inputs)} echoes",
                        participant=participant_id, field="intensity_echo")
    imgs, g0, tes, metas, axis_source = _open_echoes(participant_id, inputs, settings)
    thick = metas[0].get("SliceThickness")
    thick = float(thick) if isinstance(thick, (int, float)) and thick > 0 else None
    try:
        if isinstance(markups_path, Mapping):  # edited in memory (m1lib.widgets)
            marks, markups_path = dict(markups_path), "<edited markups>"
        else:
            marks = read_markups(markups_path)
    except DataError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot read markups ({exc})", file=markups_path,
                        participant=participant_id) from None
    lm = _read_label_map(label_map, participant_id) if label_map is not None else None
    where = dict(file=markups_path, participant=participant_id)
    wanted = labels(settings) + [(C.REFERENCE_LABEL, None, None)]
    pts = {lab: np.asarray(marks[lab].points, float).reshape(-1, 3) for lab, _, _ in wanted if lab in marks}
    problems = check_orientation(g0, pts, settings.areas, reference=C.REFERENCE_LABEL, **where)
    if problems:
        raise DataError(problems)
    anns: dict[str, Annotation] = {}
    for lab, h, a in wanted:
        ann = _annotation(lab, h, a, marks, lm, g0, thick, where, problems)
        if ann is not None:
            anns[lab] = ann
    if problems:
        raise DataError(problems)
    rois = {f"{lab}_roi": _roi_centre(g0, ann) for lab, ann in anns.items() if ann.roi_type}
    problems = check_orientation(g0, {**pts, **rois}, settings.areas, reference=C.REFERENCE_LABEL,
                                 **{**where, "file": label_map.path if label_map is not None else where["file"]})
    if problems:
        raise DataError(problems)
    ks = {a.k for a in anns.values()}
    if settings.obliquity:
        # and their neighbours, for the thickness along the layer's 3-D normal
        ks |= {k + d for k in ks for d in (-1, 1) if 0 <= k + d < g0.shape[2]}
    ks = sorted(ks)
    # only the slices used of each echo (a 4-D file is opened once)
    slabs = [None] * len(inputs)
    by_path: dict[Path, list[int]] = {}
    for n, e in enumerate(inputs):
        by_path.setdefault(e.path, []).append(n)
    for path, ns in by_path.items():
        vols = [inputs[n].volume for n in ns]
        got = read_slices(imgs[ns[0]], path, ks, g0.axes, vols, participant_id)
        for n, arr in zip(ns, got):
            slabs[n] = arr
    pe = _PE_AXES.get(metas[0].get("PhaseEncodingDirection"))
    if pe is None:
        phase = imgs[0].header.get_dim_info()[1]
        pe = phase if phase in (0, 1, 2) else None
    pe = g0.axes.index(pe) if pe is not None and g0.axes.index(pe) < 2 else None
    return dict(geom=g0, tes=tes, slabs=slabs, kpos={k: i for i, k in enumerate(ks)}, anns=anns,
                pe_axis=pe, thickness=thick, imgs=imgs, slice_axis_source=axis_source)


def _roi_centre(g0, ann: Annotation) -> np.ndarray:
    """RAS of a drawn ROI's centre (label voxels' mean, or the drawn points' mean)."""
    if ann.roi_region is not None:
        return ann.roi_region.plane.uv_to_world(ann.roi_region.centre[None])
    plane = g0.plane(ann.k)
    return plane.uv_to_world(plane.ij_to_uv(ann.roi_ij).mean(axis=0)[None])


def _annotation(lab, h, a, marks, lm, g0, thick, where, problems) -> Annotation | None:
    """One label's annotation: its slice, points, and explicit ROI (markup or label image)."""
    pid, file = where["participant"], where["file"]
    roi_name = f"{lab}_roi"
    in_map = lm is not None and roi_name in lm[2]
    m = marks.get(lab)
    if m is None and not (lab == C.REFERENCE_LABEL and in_map):
        problems.append(Problem("annotation missing", field=lab, **where))
        return None
    if m is not None:
        pts = np.asarray(m.points, float).reshape(-1, 3)
        need = 1 if lab == C.REFERENCE_LABEL else 2
        if len(pts) != need:
            problems.append(Problem(f"{m.type} with {len(pts)} point(s) (expected {need})", field=lab, **where))
            return None
        try:
            k, ij = assign_slice(g0, pts, slice_thickness_mm=thick, participant=pid, label=lab, file=file)
        except DataError as exc:
            problems.extend(exc.problems)
            return None
    ann = None if m is None else Annotation(lab, h, a, k, ij)
    roi = marks.get(roi_name)
    if roi is not None and in_map:
        problems.append(Problem(f"{roi_name} is drawn twice (in the markups and in the label image "
                                f"{Path(lm[3]).name}); keep one", field=roi_name, **where))
        return None
    if in_map:
        labels_, affine, index, path = lm
        if ann is None:  # a reference drawn only as a label: its best-covered slice
            present = label_slices_present(labels_, affine, g0, index[roi_name])
            if not present:
                problems.append(Problem("label has no voxel in the image's field of view",
                                        file=path, participant=pid, field=roi_name))
                return None
            k = present[0]
            ann = Annotation(lab, h, a, k, np.zeros((0, 2)))
        region = label_region(roi_name, index[roi_name], labels_, affine, g0, ann.k)
        if not len(region.ii):
            problems.append(Problem(f"label has no voxel in slice {ann.k}, where {lab} is (nearest-"
                                    "neighbour resampling onto the image grid)", file=path,
                                    participant=pid, field=roi_name))
            return None
        ann.roi_region, ann.roi_type = region, "label_image"
        if not len(ann.ij):
            ann.ij = region.plane.uv_to_ij(region.centre[None])
        return ann
    if roi is not None:
        rp = np.asarray(roi.points, float).reshape(-1, 3)
        try:
            kr, rij = assign_slice(g0, rp, slice_thickness_mm=thick, participant=pid,
                                   label=roi_name, file=file)
        except DataError as exc:
            problems.extend(exc.problems)
            return None
        need = 3 if roi.type == "ClosedCurve" else 5
        if kr != ann.k or len(rij) < need:
            problems.append(Problem(
                f"explicit ROI must have at least {need} points in the annotation's slice "
                f"(has {len(rij)} in slice {kr}, annotation in slice {ann.k})", field=roi_name, **where))
            return None
        ann.roi_ij, ann.roi_type = rij, roi.type
    return ann
