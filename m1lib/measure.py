"""Per-participant measurement of the deep layer of M1, and the batch over a cohort.

From a participant's MEGRE echoes and Slicer markups (``docs/data.md``) this module
computes, for every hemisphere and Penfield area (columns of :data:`TABLE_COLUMNS`):

- ``thickness_mm``: the caliper's length in the acquisition plane (the paper's
  method; both points are projected onto their slice along the slice axis, so an
  out-of-plane click does not lengthen it);
- ``profile_thickness_mm``: a rater-independent thickness from an edge fit to the
  intensity profiles of all echoes across the layer (:mod:`m1lib.profile`), NaN
  with ``fit_reason`` when the fit does not pass its checks;
- ``roi_mean``, ``roi_sd``, ``roi_area_mm2``, ``roi_n_voxels``: an oval ROI in the
  deep layer on the intensity echo, and ``intensity`` = ROI mean / reference mean
  (a disc of the same area centred on ``ref_precuneus``);
- ``r2star_s``: R2* (1/s) from the ROI means of the echoes;
- participant-level QC, repeated on each row: ``noise_sigma``,
  ``qc_sharpness_ratio`` and ``qc_motion``.

Geometry (:mod:`m1lib.geometry`): the sform when set, else the qform; both set
and disagreeing by more than ``affine_tol_mm`` at the corners of the field of
view is an error. Each annotation is assigned to its slice; more than half a
slice (``SliceThickness`` of the sidecar, else the spacing) from the slice
centre, or outside the image, is a :class:`~m1lib.errors.DataError` naming the
participant and the label.

ROI rule
--------
An oval of ``roi_area_mm2`` (4 mm²) with its **minor axis across the layer**:
the minor axis is ``roi_minor_fraction`` (0.5) of the layer's thickness, so a
quarter of the layer stays clear on each side (room for a voxel of error plus
blur), and the major axis gives the area (``a = area / (pi b)``). Where it sits:

- ``roi_centre='profile'`` (default): on the deep layer the profile fit found -
  centred between the fitted edges on the caliper line, minor axis along the
  fitted layer normal and 0.5 x the fitted thickness (``roi_source``
  ``profile_oval``). When the fit fails it falls back to the caliper rule.
- ``roi_centre='caliper'`` (the literal rule, and the fallback): centred on the
  caliper's midpoint, minor axis along the caliper, 0.5 x its length
  (``caliper_oval``). A rater's click is about a voxel off, which on a 1.2 mm
  ALS layer puts part of the oval in the neighbouring layers (up to ~15 % error
  in intensity on the replica); the fitted layer does not.
- An explicit ROI overrides both: a markup named ``<label>_roi`` (any type, e.g.
  a ``ClosedCurve``, with at least 5 points in the annotation's slice) is
  replaced by the least-squares ellipse through its points (Halir & Flusser
  1998), with the area the rater drew (``markup``). The reference likewise
  (``ref_precuneus_roi``).

Voxels are weighted by the fraction of their area inside the ellipse
(``supersample``² sub-samples for voxels on the boundary), so the ROI's area is
right in mm² on any grid; the area achieved (sum of weights x voxel area) and
the number of voxels touched are reported. Mean and SD are weighted (reliability
weights).

R2* and its noise floor
-----------------------
``R2* = ln(S1 / S2) / (TE2 - TE1)`` on ROI means (a log-linear fit when there are
more than two echoes), echo times from the JSON sidecars (seconds), the same
weights on every echo. The magnitude noise ``sigma`` is the mode of the local
variance of 4 x 4 blocks of tissue on the first echo (:func:`estimate_noise`;
the slab may have no air around the head, as the replica's does not).
``r2star_low_signal`` is set where the last echo's ROI mean is below
``snr_floor`` (5) x sigma, where the Rician floor biases S2 up and R2* down;
``snr_last_echo`` reports the margin.

Motion QC
---------
Motion during a 2D acquisition smears the image along the phase-encode axis
(and ghosts it there). ``qc_sharpness_ratio`` is the edge energy along the
phase-encode axis over that along the readout axis, noise removed
(:func:`sharpness_ratio`; phase axis from the sidecar's
``PhaseEncodingDirection``, else the header's ``dim_info``). Anatomy alone keeps
it near the value its anatomy gives (about 1 for a whole brain slice, whose
cortex folds every way; about 2 on the replica, whose layers all run across the
phase axis), so the flag is relative: ``qc_sharpness_relative`` = the ratio over
the cohort's median ratio (participants measured together by
:func:`measure_dataset`, at least 5 with a ratio; else over 1, isotropic
anatomy), and ``qc_motion`` is ``qc_sharpness_relative < motion_threshold``
(0.6). It is reported, never used to drop anyone. (A ghost-to-signal ratio in
the air was tried first: the replica's targeted slab has no air beside the head
along the phase axis, and autocorrelation at ghost-like lags overlapped between
groups.)
"""
from __future__ import annotations

import math
import os
import traceback
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from . import contract as C
from .errors import DataError, Problem
from .acquisition import echo_inputs as _echo_inputs
from .acquisition import labels as _labels
from .acquisition import load as _load
from .bids import split_key
from .geometry import Geometry, SlicePlane
from .profile import CENTRAL_MM, ProfileSettings, fit_profile, sample_profile
from .roi import Polygon

__all__ = [
    "MeasureSettings", "Ellipse", "caliper_oval", "layer_oval", "disc", "ellipse_from_points",
    "roi_weights", "weighted_stats", "r2star", "estimate_noise", "sharpness_ratio",
    "measure_participant", "measure_dataset", "hemisphere_average", "cohort_motion_flags",
    "audit_figure",
    "TABLE_COLUMNS", "participant_details",
]

#: Columns of the measurement table, in order (the contract's key and values first).
TABLE_COLUMNS: tuple[str, ...] = C.MEASUREMENT_KEY + C.MEASUREMENT_VALUES + (
    "profile_thickness_mm", "profile_thickness_se_mm", "fit_ok", "fit_reason",
    "fit_rmse", "fit_r2", "fit_sigma_mm", "fit_angle_deg",
    "r2star_s", "r2star_low_signal", "roi_mean", "roi_sd", "roi_area_mm2", "roi_n_voxels",
    "roi_source", "ref_mean", "ref_area_mm2", "slice", "snr_last_echo",
    "noise_sigma", "qc_sharpness_ratio", "qc_sharpness_relative", "qc_motion",
    "affine_source", "session",
)
FAILURE_COLUMNS = ("participant_id", "label", "kind", "reason")


@dataclass(frozen=True)
class MeasureSettings:
    """Settings of a measurement (defaults: the paper's values).

    Attributes
    ----------
    areas : tuple of str
        Penfield areas measured in each hemisphere.
    roi_area_mm2 : float
        Area of the deep-layer oval and of the reference disc.
    intensity_echo : int
        1-based echo giving ``roi_mean`` / ``intensity`` (the later, T2*-weighted one).
    profile_echo : int or None
        1-based echo for the profile fit; None (default): all echoes jointly.
    roi_centre : {'profile', 'caliper'}
        Where the default oval goes: ``'profile'`` on the fitted deep layer
        (falling back to the caliper when the fit fails), ``'caliper'`` always on
        the caliper (the literal rule).
    roi_minor_fraction : float
        Minor axis of the oval as a fraction of the layer's thickness (the fitted
        one, or the caliper's length).
    supersample : int
        Sub-samples per voxel side for the partial-voxel weights of boundary voxels.
    affine_tol_mm : float
        Largest sform/qform disagreement accepted (see :mod:`m1lib.geometry`).
    snr_floor : float
        ROI mean of the last echo below ``snr_floor * sigma`` flags R2*.
    motion_threshold : float
        ``qc_sharpness_relative`` below it flags motion (see Motion QC).
    profile : ProfileSettings
        Profile sampling and fitting.
    """

    areas: tuple[str, ...] = C.AREAS
    roi_area_mm2: float = 4.0
    intensity_echo: int = 2
    profile_echo: int | None = None
    roi_centre: str = "profile"
    roi_minor_fraction: float = 0.5
    supersample: int = 10
    affine_tol_mm: float = 0.01
    snr_floor: float = 5.0
    motion_threshold: float = 0.6
    profile: ProfileSettings = field(default_factory=ProfileSettings)

    def __post_init__(self):
        problems = []
        if self.roi_centre not in ("profile", "caliper"):
            problems.append(Problem(f"{self.roi_centre!r} (expected 'profile' or 'caliper')",
                                    field="roi_centre"))
        if not self.roi_area_mm2 > 0:
            problems.append(Problem(f"{self.roi_area_mm2} (expected > 0)", field="roi_area_mm2"))
        if not 0 < self.roi_minor_fraction <= 1:
            problems.append(Problem(f"{self.roi_minor_fraction} (expected in (0, 1])",
                                    field="roi_minor_fraction"))
        if self.intensity_echo < 1:
            problems.append(Problem(f"{self.intensity_echo} (expected >= 1)", field="intensity_echo"))
        unknown = set(self.areas) - set(C.AREAS)
        if unknown:
            problems.append(Problem(f"unknown areas {sorted(unknown)} (expected some of "
                                    f"{list(C.AREAS)})", field="areas"))
        if problems:
            raise DataError(problems)


# ----------------------------------------------------------------------------- ROIs

@dataclass(frozen=True)
class Ellipse:
    """An ellipse in slice-plane mm: centre, semi-axes and the major axis' angle (rad)."""

    centre: np.ndarray
    semi_major: float
    semi_minor: float
    angle: float

    @property
    def area_mm2(self) -> float:
        return math.pi * self.semi_major * self.semi_minor

    def contains(self, uv) -> np.ndarray:
        uv = np.asarray(uv, dtype=float).reshape(-1, 2) - self.centre
        c, s = math.cos(self.angle), math.sin(self.angle)
        x = uv[:, 0] * c + uv[:, 1] * s
        y = -uv[:, 0] * s + uv[:, 1] * c
        return (x / self.semi_major) ** 2 + (y / self.semi_minor) ** 2 <= 1.0

    def outline(self, n: int = 128) -> np.ndarray:
        t = np.linspace(0, 2 * np.pi, n)
        c, s = math.cos(self.angle), math.sin(self.angle)
        x, y = self.semi_major * np.cos(t), self.semi_minor * np.sin(t)
        return self.centre + np.c_[x * c - y * s, x * s + y * c]


def caliper_oval(p1_uv, p2_uv, area_mm2: float = 4.0, minor_fraction: float = 0.5) -> Ellipse:
    """The default deep-layer oval: centred on the caliper, minor axis along it.

    Examples
    --------
    >>> e = caliper_oval([0, 0], [2, 0], 4.0, 0.5)
    >>> round(e.semi_minor, 3), round(e.semi_major, 3), round(e.area_mm2, 6)
    (0.5, 2.546, 4.0)
    """
    p1, p2 = np.asarray(p1_uv, float), np.asarray(p2_uv, float)
    d = p2 - p1
    length = float(np.hypot(*d))
    b = 0.5 * minor_fraction * length
    a = area_mm2 / (math.pi * b)
    if a < b:  # very long caliper: a disc is the most compact oval of that area
        a = b = math.sqrt(area_mm2 / math.pi)
    # the major axis is perpendicular to the caliper
    angle = math.atan2(d[1], d[0]) + math.pi / 2
    return Ellipse(0.5 * (p1 + p2), a, b, angle)


def layer_oval(centre_uv, normal_uv, thickness_mm: float, area_mm2: float = 4.0,
               minor_fraction: float = 0.5) -> Ellipse:
    """An oval with its minor axis (``minor_fraction`` x thickness) along ``normal_uv``.

    Examples
    --------
    >>> e = layer_oval([0, 1], [0, 1], 2.0)
    >>> round(e.semi_minor, 3), round(e.area_mm2, 6)
    (0.5, 4.0)
    """
    c = np.asarray(centre_uv, float)
    n = np.asarray(normal_uv, float)
    n = n / np.hypot(*n)
    half = 0.5 * thickness_mm * n
    return caliper_oval(c - half, c + half, area_mm2, minor_fraction)


def disc(centre_uv, area_mm2: float = 4.0) -> Ellipse:
    """A disc of the given area (the reference ROI)."""
    r = math.sqrt(area_mm2 / math.pi)
    return Ellipse(np.asarray(centre_uv, float), r, r, 0.0)


def ellipse_from_points(uv) -> Ellipse:
    """Least-squares ellipse through >= 5 points (Halir & Flusser 1998).

    Examples
    --------
    >>> t = np.linspace(0, 2 * np.pi, 9)[:-1]
    >>> e = ellipse_from_points(np.c_[1 + 3 * np.cos(t), 2 + np.sin(t)])
    >>> np.round([*e.centre, e.semi_major, e.semi_minor], 6).tolist()
    [1.0, 2.0, 3.0, 1.0]
    """
    p = np.asarray(uv, float).reshape(-1, 2)
    if len(p) < 5:
        raise ValueError("an ellipse needs at least 5 points")
    m = p.mean(axis=0)
    sc = p.std() or 1.0
    x, y = ((p - m) / sc).T
    d1 = np.c_[x * x, x * y, y * y]
    d2 = np.c_[x, y, np.ones_like(x)]
    s1, s2, s3 = d1.T @ d1, d1.T @ d2, d2.T @ d2
    t = -np.linalg.solve(s3, s2.T)
    mm = s1 + s2 @ t
    mm = np.array([mm[2] / 2, -mm[1], mm[0] / 2])
    _, v = np.linalg.eig(mm)
    v = np.real(v)
    cond = 4 * v[0] * v[2] - v[1] ** 2
    idx = np.where(cond > 0)[0]
    if len(idx) == 0:
        raise ValueError("points do not lie on an ellipse")
    a1 = v[:, idx[0]]
    A, B, Cc, D, E, F = np.r_[a1, t @ a1]
    # centre, axes, angle of A x² + B xy + C y² + D x + E y + F = 0
    den = B * B - 4 * A * Cc
    x0 = (2 * Cc * D - B * E) / den
    y0 = (2 * A * E - B * D) / den
    q = 2 * (A * E * E + Cc * D * D - B * D * E + den * F)
    r = math.sqrt((A - Cc) ** 2 + B * B)
    ax1 = -math.sqrt(q * (A + Cc + r)) / den
    ax2 = -math.sqrt(q * (A + Cc - r)) / den
    if abs(B) < 1e-15:
        theta = 0.0 if A < Cc else math.pi / 2
    else:
        theta = math.atan2(Cc - A - r, B)
    a, b = max(ax1, ax2), min(ax1, ax2)
    if ax2 > ax1:
        theta += math.pi / 2
    return Ellipse(m + sc * np.array([x0, y0]), sc * a, sc * b, theta)


def roi_weights(ellipse: Ellipse, plane: SlicePlane, supersample: int = 10):
    """Partial-voxel weights of an ellipse on a slice grid.

    Voxels farther from the boundary than their half-diagonal are wholly in or
    out; only the others are sub-sampled (``supersample``² points each).

    Returns
    -------
    ii, jj : int arrays
        Voxel indices touched by the ellipse (weight > 0).
    w : float array
        Fraction of each voxel's area inside the ellipse.
    inside_image : bool
        Whether the whole ellipse lies inside the field of view.
    """
    a = ellipse.semi_major
    corners = ellipse.centre + np.array([[-a, -a], [-a, a], [a, -a], [a, a]])
    ij = plane.uv_to_ij(corners)
    lo = np.floor(ij.min(axis=0)).astype(int) - 1
    hi = np.ceil(ij.max(axis=0)).astype(int) + 1
    inside_image = bool(np.all(lo >= 0) and np.all(hi < np.asarray(plane.shape)))
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.asarray(plane.shape) - 1)
    gi = np.arange(lo[0], hi[0] + 1)
    gj = np.arange(lo[1], hi[1] + 1)
    I, J = np.meshgrid(gi, gj, indexing="ij")
    I, J = I.ravel(), J.ravel()
    q = _ellipse_radius(ellipse, plane.ij_to_uv(np.c_[I, J]))
    # |q - 1| * b bounds the distance to the boundary from below
    half_diag = 0.5 * max(np.linalg.norm(plane.m @ np.array([1.0, 1.0])),
                  np.linalg.norm(plane.m @ np.array([1.0, -1.0])))
    margin = (q - 1.0) * ellipse.semi_minor
    w = np.where(margin < -half_diag, 1.0, 0.0)
    edge = np.abs(margin) <= half_diag
    if edge.any():
        n = int(supersample)
        sub = (np.arange(n) + 0.5) / n - 0.5
        du, dv = np.meshgrid(sub, sub, indexing="ij")
        pts = np.c_[I[edge], J[edge]][:, None, :] + np.c_[du.ravel(), dv.ravel()][None]
        qq = _ellipse_radius(ellipse, plane.ij_to_uv(pts.reshape(-1, 2)))
        w[edge] = (qq <= 1.0).reshape(-1, n * n).mean(axis=1)
    sel = w > 0
    return I[sel], J[sel], w[sel], inside_image


def _ellipse_radius(ellipse: Ellipse, uv) -> np.ndarray:
    """Normalized radius: < 1 inside the ellipse, 1 on it."""
    d = np.asarray(uv, float).reshape(-1, 2) - ellipse.centre
    c, s = math.cos(ellipse.angle), math.sin(ellipse.angle)
    x = (d[:, 0] * c + d[:, 1] * s) / ellipse.semi_major
    y = (-d[:, 0] * s + d[:, 1] * c) / ellipse.semi_minor
    return np.sqrt(x * x + y * y)


def weighted_stats(values, w) -> tuple[float, float]:
    """Weighted mean and SD (reliability weights: unbiased for fractional coverage).

    Examples
    --------
    >>> m, s = weighted_stats([1.0, 3.0], [1.0, 1.0])
    >>> m, round(s, 6)
    (2.0, 1.414214)
    """
    v = np.asarray(values, float)
    w = np.asarray(w, float)
    v1 = w.sum()
    mean = float((w * v).sum() / v1)
    v2 = (w * w).sum()
    denom = v1 - v2 / v1
    sd = float(np.sqrt((w * (v - mean) ** 2).sum() / denom)) if denom > 0 else float("nan")
    return mean, sd


def r2star(means, echo_times_s) -> float:
    """R2* (1/s) from mean signals at two or more echo times.

    Notes
    -----
    Two echoes: ``R2* = ln(S1 / S2) / (TE2 - TE1)``; more: the slope of a
    least-squares line through ``(TE, -ln S)``. NaN when a signal is not positive.

    Examples
    --------
    >>> round(r2star([100 * np.exp(-0.01 * 40), 100 * np.exp(-0.02 * 40)], [0.01, 0.02]), 9)
    40.0
    """
    s = np.asarray(means, float)
    te = np.asarray(echo_times_s, float)
    if np.any(~(s > 0)):
        return float("nan")
    if len(s) == 2:
        return float(np.log(s[0] / s[1]) / (te[1] - te[0]))
    slope = np.polyfit(te, np.log(s), 1)[0]
    return float(-slope)


# ----------------------------------------------------------------------------- QC

def estimate_noise(slices: np.ndarray, *, block: int = 4, tissue_fraction: float = 0.2) -> float:
    """Noise sigma of magnitude images: the mode of the local variance in tissue.

    Parameters
    ----------
    slices : array (ni, nj[, nk])
        Magnitude slices (an echo of the slab).
    block : int
        Side of the non-overlapping in-plane blocks whose variance is taken.
    tissue_fraction : float
        Blocks whose mean is below this fraction of the 99th percentile (air,
        skull) are ignored: there the magnitude is Rayleigh, not Gaussian.

    Returns
    -------
    float
        sigma. For a homogeneous block the variance is ``sigma² chi²(m-1)/(m-1)``
        (``m = block²``), whose logarithm has its mode exactly at ``log sigma²``;
        blocks holding edges only add a tail above it. So the mode of the
        histogram of log block variances (0.05 bins, Gaussian-smoothed) gives
        sigma, with or without air around the head (a targeted slab may have
        none). NaN with fewer than 50 tissue blocks.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = 100 + 5 * rng.standard_normal((256, 256, 4))
    >>> abs(estimate_noise(x) / 5 - 1) < 0.05
    True
    """
    x = np.asarray(slices, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    ni, nj = (x.shape[0] // block) * block, (x.shape[1] // block) * block
    # every other block row and column (a quarter of the blocks is plenty), made
    # contiguous so the per-block reductions are fast
    b = x[:ni, :nj].reshape(ni // block, block, nj // block, block, -1)[::2, :, ::2]
    b = np.ascontiguousarray(b.transpose(0, 2, 4, 1, 3)).reshape(-1, block * block)
    mean = b.mean(axis=1)
    var = b.var(axis=1, ddof=1)
    v = var[(mean > tissue_fraction * float(np.percentile(mean, 99))) & (var > 0)]
    if v.size < 50:
        return float("nan")
    lv = np.log(v)
    bins = np.arange(lv.min(), lv.max() + 0.1, 0.05)
    h, edges = np.histogram(lv, bins=bins)
    h = ndimage.gaussian_filter1d(h.astype(float), 2.0)
    mode = edges[int(np.argmax(h))] + 0.025
    return float(np.exp(0.5 * mode))


def sharpness_ratio(slices: np.ndarray, pe_axis: int, sigma: float, *,
                    tissue_fraction: float = 0.3, stride: int = 4) -> float:
    """Edge energy along the phase-encode axis relative to the readout axis.

    ``(E_pe - 2 sigma²) / (E_ro - 2 sigma²)`` where ``E`` is the mean squared
    difference of neighbouring voxels inside the head (both above
    ``tissue_fraction`` of the 99th percentile; every ``stride``-th line) and
    ``2 sigma²`` its noise part.
    Motion during a 2D acquisition smears the image along the phase-encode axis,
    so the ratio drops; anatomy alone keeps it near its cohort value (about 1 for
    isotropic anatomy; higher here, where the M1 layers run across the phase
    axis).
    """
    x = np.asarray(slices, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    thr = tissue_fraction * float(np.percentile(x[::stride, ::stride], 99))
    e = []
    # every ``stride``-th line of each axis: a sample of the edges, 1/stride of the cost
    for a, b in ((x[1:, ::stride], x[:-1, ::stride]), (x[::stride, 1:], x[::stride, :-1])):
        head = (a > thr) & (b > thr)
        if head.sum() < 100:
            return float("nan")
        d = (a - b)[head]
        e.append(float(np.mean(np.square(d, dtype=np.float64))) - 2 * sigma ** 2)
    e_pe, e_ro = e[pe_axis], e[1 - pe_axis]
    return float(e_pe / e_ro) if e_ro > 0 else float("nan")


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
             if pe_axis is not None else float("nan"))
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
    details[C.REFERENCE_LABEL] = dict(k=ref.k, plane=ref_plane, ellipse=ref_ell, ij=ref.ij)
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
        r2s = r2star(means, tes)
        rows.append({
            "participant_id": participant_id, "hemisphere": h, "area": a,
            "thickness_mm": caliper_mm,
            "intensity": stats[ie][0] / ref_mean if ref_mean > 0 else float("nan"),
            "profile_thickness_mm": fit.thickness_mm, "profile_thickness_se_mm": fit.se_mm,
            "fit_ok": bool(fit.ok), "fit_reason": fit.reason, "fit_rmse": fit.rmse,
            "fit_r2": fit.r2, "fit_sigma_mm": fit.sigma_mm, "fit_angle_deg": fit.angle_deg,
            "r2star_s": r2s, "r2star_low_signal": bool(means[-1] < settings.snr_floor * sigma),
            "roi_mean": stats[ie][0], "roi_sd": stats[ie][1], "roi_area_mm2": area,
            "roi_n_voxels": nvox, "roi_source": source, "ref_mean": ref_mean,
            "ref_area_mm2": ref_area, "slice": int(ann.k),
            "snr_last_echo": means[-1] / sigma if sigma > 0 else float("nan"),
            "noise_sigma": sigma, "qc_sharpness_ratio": sharp,
            "affine_source": geom.source,
        })
        if keep_details:
            details[lab] = dict(k=ann.k, plane=plane, ellipse=ell, ij=ann.ij, profile=prof, fit=fit)
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


def _flag_motion(table: pd.DataFrame, settings: MeasureSettings, reference: float) -> pd.DataFrame:
    rel = table["qc_sharpness_ratio"].astype(float) / reference
    table["qc_sharpness_relative"] = rel
    table["qc_motion"] = (rel < settings.motion_threshold).fillna(False).astype(bool)
    return table


def cohort_motion_flags(table: pd.DataFrame, settings: MeasureSettings | None = None,
                        min_participants: int = 5) -> pd.DataFrame:
    """Set ``qc_sharpness_relative`` and ``qc_motion`` against the cohort's median ratio.

    With fewer than ``min_participants`` finite ratios the reference stays 1
    (isotropic anatomy). Returns a copy.
    """
    s = settings or MeasureSettings()
    keys = ["participant_id"] + (["session"] if "session" in table and table["session"].notna().any() else [])
    per = table.groupby(keys)["qc_sharpness_ratio"].first().astype(float)
    per = per[np.isfinite(per)]
    reference = float(per.median()) if len(per) >= min_participants else 1.0
    return _flag_motion(table.copy(), s, reference)


def _settings(settings: MeasureSettings | None, **overrides) -> MeasureSettings:
    s = settings or MeasureSettings()
    over = {k: (tuple(v) if k == "areas" else v) for k, v in overrides.items() if v is not None}
    return replace(s, **over) if over else s


def measure_participant(participant_id: str, echoes: Sequence, markups_path, *,
                        settings: MeasureSettings | None = None, areas=None,
                        roi_area_mm2: float | None = None, intensity_echo: int | None = None,
                        audit_path=None, label_map=None, session: str | None = None) -> pd.DataFrame:
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
        ``areas``, ``roi_area_mm2`` and ``intensity_echo`` override its fields.
    audit_path : path, optional
        Also write the audit figure there (PNG).
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
    s = _settings(settings, areas=areas, roi_area_mm2=roi_area_mm2, intensity_echo=intensity_echo)
    data = _load(participant_id, echoes, Path(markups_path), s, label_map)
    if audit_path is None:
        return _measure_loaded(participant_id, data, s).assign(session=session)
    table, details = _measure_loaded(participant_id, data, s, keep_details=True)
    _draw_audit(participant_id, data, table, details, s, Path(audit_path))
    return table.assign(session=session)


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
        ``label -> {"k", "plane", "ellipse", "ij", "profile", "fit"}``, for the
        measured labels and the reference.
    """
    s = _settings(settings, **overrides)
    src = markups if isinstance(markups, Mapping) else Path(markups)
    data = _load(participant_id, echoes, src, s, label_map)
    return _measure_loaded(participant_id, data, s, keep_details=True)


def _safe_measure(participant_id, echoes, markups_path, settings, audit_path, label_map=None,
                  session=None):
    """Worker: never raises, so one participant cannot stop the batch."""
    ses = f"{session}: " if session else ""
    try:
        return measure_participant(participant_id, echoes, markups_path, settings=settings,
                                   audit_path=audit_path, label_map=label_map, session=session), None
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
                    audit_dir=None, label_maps: Mapping | None = None,
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
    settings, areas, roi_area_mm2, intensity_echo :
        As in :func:`measure_participant`.
    audit_dir : path, optional
        Write ``<key>_audit.png`` there for each participant.
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
    s = _settings(settings, areas=areas, roi_area_mm2=roi_area_mm2, intensity_echo=intensity_echo)
    pids = sorted(images)
    tasks, failures = [], []
    label_maps, sessions = label_maps or {}, sessions or {}
    for key in pids:
        pid, ses = split_key(key)
        ses = sessions.get(key, ses)
        if key not in annotations:
            failures.append((pid, "n/a", "data", f"{key}: no annotations file"))
            continue
        audit = str(Path(audit_dir) / f"{key}_audit.png") if audit_dir else None
        tasks.append((key, (pid, _echo_inputs(images[key]), str(annotations[key]), s, audit,
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


# ----------------------------------------------------------------------------- audit

def audit_figure(participant_id: str, echoes: Sequence, markups_path, table=None,
                 out_path=None, *, settings: MeasureSettings | None = None, label_map=None,
                 **overrides):
    """Write the audit figure of one participant (PNG): every caliper's slice crop
    with its ROI, caliper and fitted edges, and the fitted profile beneath it.

    ``table`` is accepted for symmetry with the CLI and ignored: the figure is drawn
    from a fresh (deterministic) measurement, so it shows exactly what was measured.
    Returns the path written.
    """
    if out_path is None:
        raise ValueError("out_path is required")
    measure_participant(participant_id, echoes, markups_path, label_map=label_map,
                        settings=_settings(settings, **overrides), audit_path=out_path)
    return Path(out_path)


def _crop_axes(ax, img, plane: SlicePlane, centre_ij, half_mm: float = 4.0) -> None:
    """Show a square crop (``half_mm`` each way) of a slice in voxel coordinates."""
    half = half_mm / plane.pixel_sizes
    lo = np.maximum(np.floor(centre_ij - half).astype(int), 0)
    hi = np.minimum(np.ceil(centre_ij + half).astype(int) + 1, np.asarray(img.shape))
    crop = img[lo[0]:hi[0], lo[1]:hi[1]]
    # display: x = voxel i, y = voxel j, with the voxels' true aspect ratio
    ax.imshow(crop.T, cmap="gray", origin="lower", interpolation="nearest",
              extent=(lo[0] - 0.5, hi[0] - 0.5, lo[1] - 0.5, hi[1] - 0.5),
              aspect=float(plane.pixel_sizes[1] / plane.pixel_sizes[0]))
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_audit(participant_id, data, table, details, settings, out_path: Path):
    from matplotlib.figure import Figure  # the Figure API needs no backend (headless, Agg)


    labels = [lab for lab, _, _ in _labels(settings)]
    ncol = 4
    nrow = 2 * math.ceil(len(labels) / ncol) + 1
    fig = Figure(figsize=(3.0 * ncol, 2.6 * nrow + 0.4), dpi=100)
    fig.suptitle(f"{participant_id}: deep layer of M1 (echo {settings.intensity_echo}); "
                 "ROI blue, caliper orange, fitted outer / inner edge green / red",
                 fontsize=10, fontfamily="DejaVu Sans")
    slabs, kpos = data["slabs"], data["kpos"]
    ie = settings.intensity_echo - 1
    rows = table.set_index(["hemisphere", "area"])
    for n, lab in enumerate(labels):
        d = details[lab]
        r, c = 2 * (n // ncol), n % ncol
        ax = fig.add_subplot(nrow, ncol, r * ncol + c + 1)
        axp = fig.add_subplot(nrow, ncol, (r + 1) * ncol + c + 1)
        plane, prof, fit = d["plane"], d["profile"], d["fit"]
        _crop_axes(ax, slabs[ie][:, :, kpos[d["k"]]], plane, 0.5 * (d["ij"][0] + d["ij"][1]))
        out = plane.uv_to_ij(d["ellipse"].outline())
        ax.plot(out[:, 0], out[:, 1], color="#1f77b4", lw=1)
        ax.plot(d["ij"][:, 0], d["ij"][:, 1], color="#ff7f0e", lw=1, marker="o", ms=2)
        if np.isfinite(fit.e_outer):
            ang = np.deg2rad(fit.angle_deg)
            for e, col in ((fit.e_outer, "#2ca02c"), (fit.e_inner, "#d62728")):
                # the fitted edge: the points where s cos(a) + o sin(a) = e
                o = np.array([prof.offsets[0], prof.offsets[-1]]) * 2
                s = (e - o * np.sin(ang)) / np.cos(ang)
                ij = plane.uv_to_ij(prof.p1_uv + s[:, None] * prof.direction
                                    + o[:, None] * prof.normal)
                ax.plot(ij[:, 0], ij[:, 1], color=col, lw=1, ls="-" if fit.ok else "--")
        row = rows.loc[tuple(lab.split("_", 1))]
        ax.set_title(f"{lab} (slice {d['k']}): caliper {row.thickness_mm:.2f}, profile "
                     f"{row.profile_thickness_mm:.2f} mm", fontsize=7)
        # the central lines' mean profile and the fitted model over the same lines
        e_idx = ie if settings.profile_echo is None else 0
        central = np.abs(prof.offsets) <= CENTRAL_MM + 1e-9
        axp.plot(prof.s, np.nanmean(prof.values[e_idx][central], axis=0), color="k", lw=0.8)
        if fit.params:
            model = np.mean([fit.model(prof.s, o, e_idx) for o in prof.offsets[central]], axis=0)
            axp.plot(prof.s, model, color="#d62728", lw=0.8)
        for x in (0.0, prof.length_mm):
            axp.axvline(x, color="#ff7f0e", lw=0.6)
        axp.set_xlabel("mm along the caliper", fontsize=6)
        axp.tick_params(labelsize=6)
        axp.set_title(fit.reason if len(fit.reason) < 45 else fit.reason[:42] + "...", fontsize=6)
    # the reference ROI and the participant's QC
    d = details[C.REFERENCE_LABEL]
    ax = fig.add_subplot(nrow, ncol, (nrow - 1) * ncol + 1)
    _crop_axes(ax, slabs[ie][:, :, kpos[d["k"]]], d["plane"], d["ij"][0])
    out = d["plane"].uv_to_ij(d["ellipse"].outline())
    ax.plot(out[:, 0], out[:, 1], color="#1f77b4", lw=1)
    ax.set_title(f"{C.REFERENCE_LABEL} (slice {d['k']})", fontsize=7)
    axt = fig.add_subplot(nrow, ncol, (nrow - 1) * ncol + 2)
    axt.axis("off")
    first = table.iloc[0]
    axt.text(0.0, 0.9, "\n".join([
        f"reference mean {first.ref_mean:.1f} ({first.ref_area_mm2:.2f} mm²)",
        f"noise sigma {first.noise_sigma:.1f}",
        f"sharpness ratio {first.qc_sharpness_ratio:.2f} "
        f"(relative {first.qc_sharpness_relative:.2f}) -> motion flag {bool(first.qc_motion)}",
        f"affine: {first.affine_source}",
        f"profile fits ok: {int(table.fit_ok.sum())} of {len(table)}"]),
        fontsize=7, va="top", fontfamily="DejaVu Sans")
    fig.tight_layout()
    from .figures import save_figure  # fixed style, no timestamps; format from the suffix

    save_figure(fig, out_path.with_suffix(""), (out_path.suffix.lstrip(".") or "png",))
    return out_path
