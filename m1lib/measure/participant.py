"""Measurement of one participant: every caliper's profile fit, ROI, intensity and R2*."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import contract as C
from ..acquisition import labels as _labels
from ..acquisition import load as _load
from ..errors import DataError
from ..geometry import Geometry, SlicePlane
from ..roi import Polygon
from .profile import sample_profile
from .profile_fit import fit_profile
from .layer_roi import layer_roi
from .obliquity import obliquity_corrected
from .qc import _flag_motion, estimate_noise, ghost_ratio, sharpness_ratio
from .r2star import r2star
from .settings import TABLE_COLUMNS, MeasureSettings, _settings
from .shapes import Ellipse, caliper_oval, disc, ellipse_from_points, layer_oval, roi_weights, weighted_stats

__all__ = ["measure_participant", "participant_details"]

nan = float("nan")


def _layer_roi(follow, echoes, plane, prof, fit, settings: MeasureSettings) -> dict:
    """The layer-following ROI of one caliper and its weighted means on every echo; NaN
    with a reason when the fit failed or the layer was lost before half the area."""
    out = {"roi": None, "means": np.full(len(echoes), nan), "sds": np.full(len(echoes), nan),
           "area_mm2": nan, "n_voxels": 0}
    if not fit.ok:
        return {**out, "reason": "no layer to follow (the profile fit failed)"}
    roi = layer_roi(follow, plane, prof, fit, area_mm2=settings.roi_area_mm2)
    if roi.area_mm2 < 0.5 * settings.roi_area_mm2:
        return {**out, "area_mm2": roi.area_mm2,
                "reason": f"{roi.reason}: {roi.area_mm2:.2f} of {settings.roi_area_mm2:g} mm²"}
    stats = [weighted_stats(e[roi.ii, roi.jj], roi.w) for e in echoes]
    reason = "ok" if roi.complete else f"{roi.reason}: {roi.area_mm2:.2f} mm²"
    return {"roi": roi, "means": np.array([m for m, _ in stats]), "sds": np.array([s for _, s in stats]),
            "area_mm2": roi.area_mm2, "n_voxels": int(len(roi.w)), "reason": reason}


def _obliquity(fit, slabs, kpos, geom: Geometry, ann, settings: MeasureSettings) -> dict:
    """The caliper's line fitted again on the neighbouring slices, and the thickness along
    the layer's 3-D normal (:func:`~m1lib.measure.obliquity.obliquity_corrected`).

    A layer tilted by ``a`` out of the slice plane drifts by ``spacing x tan(a)`` along
    the caliper from one slice to the next (0.9 mm at 25 deg, 2 mm slices), beyond the
    in-plane fit's search window: the neighbours are searched that much wider (up to
    ``max_tilt_deg``), and a neighbour counts only when its thickness is within 30 %
    of the annotated slice's (the same layer, not the next edge)."""
    if not fit.ok:
        return obliquity_corrected(fit, {}, geom.slice_spacing_mm)
    st = settings.profile
    drift = geom.slice_spacing_mm * np.tan(np.deg2rad(settings.max_tilt_deg))
    wide = replace(st, search_mm=st.search_mm + drift, extend_mm=st.extend_mm + drift)
    nb = {}
    for dk in (-1, 1):
        k = ann.k + dk
        if k in kpos:
            imgs = [sl[:, :, kpos[k]] for sl in slabs]
            # the annotated slice's model variant only: a third of the cost, and the same layer
            f = fit_profile(sample_profile(imgs, geom.plane(k), ann.ij[0], ann.ij[1], wide), wide,
                            models=[(fit.params["with_csf"], fit.params["with_u"])])
            if f.ok and abs(f.thickness_mm - fit.thickness_mm) <= 0.3 * fit.thickness_mm:
                nb[dk] = f
    return obliquity_corrected(fit, nb, geom.slice_spacing_mm)


def _choose_roi(row: dict, shape: str, layer: dict, ie: int) -> dict:
    """Keep both ROIs' values under their own names; ``intensity``, ``r2star_s`` and the
    ``roi_*`` columns are those of ``shape`` (the analyses read ``intensity``)."""
    row["intensity_oval"], row["r2star_s_oval"] = row["intensity"], row["r2star_s"]
    row["roi_shape"] = shape
    if shape == "layer":
        row.update(intensity=row["intensity_layer"], r2star_s=row["r2star_s_layer"],
                   roi_mean=row["roi_layer_mean"], roi_sd=float(layer["sds"][ie]),
                   roi_area_mm2=row["roi_layer_area_mm2"], roi_n_voxels=layer["n_voxels"],
                   roi_source="layer")
    return row


def _measure_loaded(participant_id, data, settings: MeasureSettings, keep_details=False):
    geom: Geometry = data["geom"]
    slabs, kpos, tes, anns = data["slabs"], data["kpos"], data["tes"], data["anns"]
    ie = settings.intensity_echo - 1
    ks_used = sorted({kpos[a.k] for a in anns.values()})
    # three annotated slices (bottom, middle, top) are plenty for noise and QC
    ks_qc = sorted({ks_used[0], ks_used[len(ks_used) // 2], ks_used[-1]})
    qc_slices = slabs[0][:, :, ks_qc]
    sigma = estimate_noise(qc_slices)
    pe_axis = data["pe_axis"]
    sharp = (sharpness_ratio(qc_slices, pe_axis, sigma if np.isfinite(sigma) else 0.0)
             if pe_axis is not None else nan)
    ghost = ghost_ratio(qc_slices, pe_axis) if pe_axis is not None else nan
    details = {}

    def roi_measure(label: str, k: int, roi, plane: SlicePlane):
        if isinstance(roi, Ellipse):
            ii, jj, w, inside = roi_weights(roi, plane, settings.supersample)
        else:  # a drawn polygon or a label image's region
            ii, jj, w, inside = roi.weights(plane, settings.supersample)
        if not inside:
            raise DataError("ROI extends outside the image", participant=participant_id,
                            field=label)
        stats = [weighted_stats(sl[ii, jj, kpos[k]], w) for sl in slabs]
        return stats, float(w.sum() * plane.pixel_area_mm2), int(len(w))

    ref = anns[C.REFERENCE_LABEL]
    ref_plane = geom.plane(ref.k)
    if ref.roi_type is not None:
        ref_ell, _ = _explicit_roi(participant_id, C.REFERENCE_LABEL, ref, ref_plane)
    else:
        ref_ell = disc(ref_plane.ij_to_uv(ref.ij)[0], settings.roi_area_mm2)
    ref_stats, ref_area, _ = roi_measure(C.REFERENCE_LABEL, ref.k, ref_ell, ref_plane)
    ref_mean = ref_stats[ie][0]
    details[C.REFERENCE_LABEL] = dict(k=ref.k, plane=ref_plane, ellipse=ref_ell, ij=ref.ij,
                                      image=slabs[ie][:, :, kpos[ref.k]])
    pe = settings.profile_echo

    rows = []
    for lab, h, a in _labels(settings):
        ann = anns[lab]
        plane = geom.plane(ann.k)
        uv = plane.ij_to_uv(ann.ij)
        caliper_mm = float(np.hypot(*(uv[1] - uv[0])))
        if caliper_mm <= 0:
            raise DataError("caliper of zero length", participant=participant_id, field=lab)
        imgs = [sl[:, :, kpos[ann.k]] for sl in slabs] if pe is None \
            else [slabs[pe - 1][:, :, kpos[ann.k]]]
        prof = sample_profile(imgs, plane, ann.ij[0], ann.ij[1], settings.profile)
        fit = fit_profile(prof, settings.profile)
        if ann.roi_type is not None:
            ell, source = _explicit_roi(participant_id, lab, ann, plane)
        elif settings.roi_centre == "profile" and fit.ok:
            # the fitted layer: centre between the fitted edges on the caliper line,
            # minor axis along the fitted normal
            ang = np.deg2rad(fit.angle_deg)
            normal = np.cos(ang) * prof.direction + np.sin(ang) * prof.normal
            centre = prof.p1_uv + 0.5 * (fit.e_outer + fit.e_inner) / np.cos(ang) * prof.direction
            ell = layer_oval(centre, normal, fit.thickness_mm, settings.roi_area_mm2,
                             settings.roi_minor_fraction)
            source = "profile_oval"
        else:
            ell = caliper_oval(uv[0], uv[1], settings.roi_area_mm2, settings.roi_minor_fraction)
            source = "caliper_oval"
        stats, area, nvox = roi_measure(lab, ann.k, ell, plane)
        means = [m for m, _ in stats]
        layer = _layer_roi(imgs[0], [sl[:, :, kpos[ann.k]] for sl in slabs], plane, prof, fit, settings)
        corr = (_obliquity(fit, slabs if pe is None else [slabs[pe - 1]], kpos, geom, ann, settings)
                if settings.obliquity else {"thickness_mm": nan, "se_mm": nan, "tilt_deg": nan,
                                            "reason": "not asked (settings.obliquity false)"})
        lm = layer["means"]
        row = {
            "participant_id": participant_id, "hemisphere": h, "area": a,
            "thickness_mm": caliper_mm,
            "intensity": stats[ie][0] / ref_mean if ref_mean > 0 else nan,
            "profile_thickness_mm": fit.thickness_mm, "profile_thickness_se_mm": fit.se_mm,
            "fit_ok": bool(fit.ok), "fit_reason": fit.reason, "fit_rmse": fit.rmse,
            "fit_r2": fit.r2, "fit_sigma_mm": fit.sigma_mm, "fit_angle_deg": fit.angle_deg,
            "r2star_s": r2star(means, tes),
            "r2star_low_signal": bool(means[-1] < settings.snr_floor * sigma),
            "roi_mean": stats[ie][0], "roi_sd": stats[ie][1], "roi_area_mm2": area,
            "roi_n_voxels": nvox, "roi_source": source, "ref_mean": ref_mean,
            "ref_area_mm2": ref_area, "slice": int(ann.k),
            "snr_last_echo": means[-1] / sigma if sigma > 0 else nan,
            "noise_sigma": sigma, "qc_sharpness_ratio": sharp, "qc_ghost_ratio": ghost,
            "affine_source": geom.source,
            "intensity_layer": lm[ie] / ref_mean if ref_mean > 0 else nan,
            "r2star_s_layer": r2star(lm, tes) if np.all(np.isfinite(lm)) else nan,
            "roi_layer_mean": lm[ie], "roi_layer_area_mm2": layer["area_mm2"],
            "roi_layer_reason": layer["reason"],
            "thickness_3d_mm": corr["thickness_mm"], "thickness_3d_se_mm": corr["se_mm"],
            "tilt_deg": corr["tilt_deg"], "thickness_3d_reason": corr["reason"],
        }
        rows.append(_choose_roi(row, settings.roi_shape, layer, ie))
        if keep_details:
            details[lab] = dict(k=ann.k, plane=plane, ellipse=ell, ij=ann.ij, profile=prof, fit=fit,
                                image=slabs[ie][:, :, kpos[ann.k]], layer_roi=layer["roi"])
    table = _flag_motion(pd.DataFrame(rows, columns=list(TABLE_COLUMNS)), settings, 1.0)
    return (table, details) if keep_details else table


def _explicit_roi(participant_id, lab, ann, plane: SlicePlane):
    """A drawn ROI: a closed curve as drawn, a label image's voxels, or an ellipse fitted
    to another markup's points (>= 5)."""
    if ann.roi_type == "label_image":
        return ann.roi_region, "label_image"
    uv = plane.ij_to_uv(ann.roi_ij)
    if ann.roi_type == "ClosedCurve":
        return Polygon(uv), "closed_curve"
    try:
        return ellipse_from_points(uv), "markup_ellipse"
    except ValueError as exc:
        raise DataError(f"explicit ROI: {exc}", participant=participant_id,
                        field=f"{lab}_roi") from None


def measure_participant(participant_id: str, echoes: Sequence, markups_path, *,
                        settings: MeasureSettings | None = None, areas=None,
                        roi_area_mm2: float | None = None, intensity_echo: int | None = None,
                        roi_shape: str | None = None,
                        label_map=None, session: str | None = None) -> pd.DataFrame:
    """Measure one participant (one session).

    Parameters
    ----------
    participant_id : str
        ``sub-<label>``, named in every error.
    echoes : sequence
        The echo images in echo order: paths, or objects with ``.path`` and
        ``.echo_time_s`` (e.g. :class:`m1lib.dataset.EchoImage`). Without an echo
        time, ``EchoTime`` is read from the JSON sidecar beside the image.
    markups_path : path
        The participant's Slicer markups file.
    settings : MeasureSettings, optional
        ``areas``, ``roi_area_mm2``, ``intensity_echo`` and ``roi_shape`` override its fields.
    label_map : m1lib.dataset.LabelMap, optional
        ROIs drawn as a label image (``<label>_roi`` names in its lookup table).
    session : str, optional
        ``ses-<label>``, written to the ``session`` column.

    Returns
    -------
    DataFrame
        One row per hemisphere and area, columns :data:`TABLE_COLUMNS`.

    Raises
    ------
    DataError
        For any problem with the inputs (naming the participant and label).
    """
    s = _settings(settings, areas=areas, roi_area_mm2=roi_area_mm2, intensity_echo=intensity_echo,
                  roi_shape=roi_shape)
    data = _load(participant_id, echoes, Path(markups_path), s, label_map)
    return _measure_loaded(participant_id, data, s).assign(session=session)


def participant_details(participant_id: str, echoes: Sequence, markups, *,
                        settings: MeasureSettings | None = None, label_map=None, **overrides):
    """Measure one participant and keep what was drawn: per label, the slice, plane,
    ROI ellipse, caliper points, sampled profile and edge fit.

    Parameters
    ----------
    participant_id : str
    echoes : sequence
        As in :func:`measure_participant`.
    markups : path or mapping
        The markups file, or ``{name: Markup}`` already in memory (an annotation
        being edited, not yet saved).
    settings : MeasureSettings, optional
        ``areas``, ``roi_area_mm2`` and ``intensity_echo`` may be overridden by keyword.

    Returns
    -------
    table : DataFrame
        As :func:`measure_participant`.
    details : dict
        ``label -> {"k", "plane", "ellipse", "ij", "profile", "fit", "image"}`` for
        the measured labels (the reference: no profile or fit); ``image`` is the
        slice of the intensity echo.
    """
    s = _settings(settings, **overrides)
    src = markups if isinstance(markups, Mapping) else Path(markups)
    data = _load(participant_id, echoes, src, s, label_map)
    return _measure_loaded(participant_id, data, s, keep_details=True)

