"""What the measurement figures show, read from a participant's images: for each
annotated area, a crop of the measured slice around the caliper, the caliper, the
ROI that was measured and the profile with its fitted edges.

Figures never read files (CONVENTIONS): this module reads the images the caller
names (``Dataset.images`` and ``Dataset.annotations``, so any file layout and
``.nii`` or ``.nii.gz`` work) and measures them with :func:`m1lib.measure.participant_details`,
so the ROI drawn is the one :mod:`m1lib.measure` used; :mod:`m1lib.figures` draws
the result.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import nibabel as nib
import numpy as np

from m1lib import measure
from m1lib.measure import CENTRAL_MM

__all__ = ["Crop", "participant_crops"]


@dataclass
class Crop:
    """One annotated area of one participant, in slice-plane mm centred on the caliper.

    Attributes
    ----------
    participant_id, label : str
        ``sub-<label>`` and the annotation (``L_hand`` ...).
    image : ndarray, (rows, cols)
        The crop, rows along voxel axis j and columns along voxel axis i.
    extent : tuple of float
        ``(left, right, bottom, top)`` in mm for ``imshow(origin='lower')``.
    caliper : ndarray, (2, 2)
        Caliper end points (mm).
    roi : ndarray, (n, 2)
        Outline of the ROI that was measured (mm).
    edges : list of ndarray (2, 2)
        The fitted outer and inner layer edges as short segments (mm); empty if the
        profile fit failed.
    profile_s, profile_mean, profile_model : ndarray
        Distance along the caliper (mm), the central lines' mean signal and the
        fitted model over the same lines (NaN when the fit failed).
    caliper_mm, profile_mm : float
        Caliper length and the profile fit's thickness (NaN when it failed).
    fit_ok : bool
    slice_index : int
    """

    participant_id: str
    label: str
    image: np.ndarray
    extent: tuple
    caliper: np.ndarray
    roi: np.ndarray
    edges: list
    profile_s: np.ndarray
    profile_mean: np.ndarray
    profile_model: np.ndarray
    caliper_mm: float
    profile_mm: float
    fit_ok: bool
    slice_index: int


def _edges(prof, fit, to_mm) -> list:
    if not np.isfinite(fit.e_outer):
        return []
    ang = np.deg2rad(fit.angle_deg)
    out = []
    for e in (fit.e_outer, fit.e_inner):
        # the fitted edge: the points where s cos(a) + o sin(a) = e
        o = np.array([prof.offsets[0], prof.offsets[-1]]) * 2
        s = (e - o * np.sin(ang)) / np.cos(ang)
        out.append(to_mm(prof.p1_uv + s[:, None] * prof.direction + o[:, None] * prof.normal))
    return out


def participant_crops(participant_id: str, echoes: Sequence, markups, *, labels: Sequence[str] | None = None,
                      echo: int = 2, crop_mm: float = 8.0, **settings) -> list[Crop]:
    """Measure one participant and cut the crops the figures show.

    Parameters
    ----------
    participant_id : str
    echoes : sequence
        The participant's echo images (``Dataset.images[pid]``: paths or
        :class:`~m1lib.dataset.EchoImage`), in echo order.
    markups : path or mapping
        The participant's annotations (``Dataset.annotations[pid]``).
    labels : sequence of str, optional
        Annotated areas to crop (default: every measured one, in measurement order).
    echo : int
        1-based echo shown.
    crop_mm : float
        Side of the square crop.
    **settings
        ``areas``, ``roi_area_mm2``, ``intensity_echo`` for the measurement.

    Returns
    -------
    list of Crop
    """
    table, details = measure.participant_details(participant_id, echoes, markups, **settings)
    rows = table.set_index(["hemisphere", "area"])
    path = getattr(echoes[echo - 1], "path", echoes[echo - 1])
    img = nib.load(str(path))
    labels = [lab for lab in details if lab != "ref_precuneus"] if labels is None else list(labels)
    out = []
    for lab in labels:
        d = details[lab]
        plane, prof, fit = d["plane"], d["profile"], d["fit"]
        px = np.asarray(plane.pixel_sizes, float)
        c_ij = 0.5 * (d["ij"][0] + d["ij"][1])
        half = np.ceil(crop_mm / 2 / px).astype(int)
        lo = np.maximum(np.round(c_ij).astype(int) - half, 0)
        hi = np.minimum(np.round(c_ij).astype(int) + half + 1, np.asarray(img.shape[:2]))
        # the measured slice (measure reads slices along the third voxel axis)
        crop = np.asarray(img.dataobj[lo[0]:hi[0], lo[1]:hi[1], d["k"]], dtype=np.float32).T

        def to_mm(uv, plane=plane, c_ij=c_ij, px=px):
            return (plane.uv_to_ij(np.atleast_2d(uv)) - c_ij) * px

        extent = ((lo[0] - 0.5 - c_ij[0]) * px[0], (hi[0] - 0.5 - c_ij[0]) * px[0],
                  (lo[1] - 0.5 - c_ij[1]) * px[1], (hi[1] - 0.5 - c_ij[1]) * px[1])
        central = np.abs(prof.offsets) <= CENTRAL_MM + 1e-9
        e_idx = echo - 1 if prof.values.shape[0] > echo - 1 else 0
        with np.errstate(all="ignore"):
            mean = np.nanmean(prof.values[e_idx][central], axis=0)
        model = (np.mean([fit.model(prof.s, o, e_idx) for o in prof.offsets[central]], axis=0)
                 if fit.params else np.full(prof.s.shape, np.nan))
        row = rows.loc[tuple(lab.split("_", 1))]
        out.append(Crop(participant_id, lab, crop, extent, (d["ij"] - c_ij) * px,
                        to_mm(d["ellipse"].outline()), _edges(prof, fit, to_mm), prof.s, mean, model,
                        float(row.thickness_mm), float(row.get("profile_thickness_mm", np.nan)),
                        bool(fit.ok), int(d["k"])))
    return out
