"""A region of interest that follows the fitted deep layer between its edges.

The paper's ROI is an oval of 4 mm² placed on the deep layer. Where a 1.2-2 mm
layer curves with a radius of 3-10 mm, a straight oval takes in the neighbouring
layers. This ROI has the same area but stays inside the layer: starting from the
profile fit (:func:`m1lib.measure.profile_fit.fit_profile`) at the caliper, it walks along
the layer in both directions in steps of ``step_mm``; at each station it samples
the image along the current normal, locates the layer's two edges (the fitted
edge model with its levels and widths held, only the two edge positions free),
and keeps the band between them inset by ``margin_fraction`` of the local
thickness on each side; the next station follows the mid-line's direction. It
stops when the band's area reaches ``area_mm2`` or when an edge cannot be found
(then the ROI is smaller and says so).

Voxel weights are the band's area in each voxel (sub-sampled every
``sample_mm``), so means are area-weighted like the oval's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize

from .edge_model import edge_model, edge_model_jacobian
from .profile import EdgeFit, Profile

__all__ = ["LayerROI", "layer_roi"]


@dataclass
class LayerROI:
    """Voxels (``ii``, ``jj``) with weights ``w`` (fraction of a voxel's area) of the band,
    its ``area_mm2``, the stations' mid-line points ``mid_uv`` and local thicknesses, and
    ``complete`` (the target area was reached) with ``reason`` otherwise."""

    ii: np.ndarray
    jj: np.ndarray
    w: np.ndarray
    area_mm2: float
    mid_uv: np.ndarray
    thickness_mm: np.ndarray
    complete: bool
    reason: str = ""

    def mean(self, image: np.ndarray) -> float:
        """Area-weighted mean of a 2-D slice (i, j) over the ROI."""
        return float(np.sum(self.w * image[self.ii, self.jj]) / np.sum(self.w))


def _sample(image, plane, uv):
    ij = plane.uv_to_ij(uv)
    return ndimage.map_coordinates(np.asarray(image, dtype=float), ij.T, order=1, mode="nearest")


def _local_edges(image, plane, centre, normal, fit: EdgeFit, half: float, t0: float):
    """Outer and inner edge positions along ``normal`` from ``centre`` (mm), or None."""
    r = np.arange(-half, half + 1e-9, 0.05)
    y = _sample(image, plane, centre[None, :] + r[:, None] * normal[None, :])
    lev = np.asarray(fit.params["levels_all"][0], dtype=float)
    sig = np.asarray(fit.params.get("sigmas", [fit.sigma_mm] * (len(lev) - 1)), dtype=float)
    off = 1 if fit.params.get("with_csf") else 0
    lev, sig = lev[off:], sig[off:]                      # no CSF edge inside the layer
    rest = list(np.asarray(fit.params["edges"])[off + 2:] - fit.e_inner)

    def edges(p):
        return [p[0], p[1]] + [p[1] + d for d in rest]

    def resid(p):
        return edge_model(r, edges(p), lev, sig) + p[2] - y

    def jac(p):  # analytic: a numerical one made this search half of a participant's time
        g = edge_model_jacobian(r, edges(p), lev, sig)
        return np.column_stack([g[:, 0], g[:, 1:].sum(axis=1), np.ones_like(r)])

    res = optimize.least_squares(resid, [-t0 / 2, t0 / 2, 0.0], jac=jac, method="lm")
    eo, ei = res.x[:2]
    if not res.success or not (0.3 * t0 < ei - eo < 2.0 * t0) or abs(eo + ei) > t0:
        return None
    return float(eo), float(ei)


def layer_roi(image, plane, profile: Profile, fit: EdgeFit, *, area_mm2: float = 4.0,
              margin_fraction: float = 0.25, step_mm: float = 0.25, sample_mm: float = 0.05,
              max_stations: int = 80) -> LayerROI:
    """The layer-following ROI of one caliper (see the module notes).

    Parameters
    ----------
    image : array (ni, nj)
        The slice to follow the layer on (the echo the fit's first levels belong to).
    plane : m1lib.geometry.SlicePlane
    profile, fit : the caliper's sampled profile and its fit (``fit.ok`` required).

    Raises
    ------
    ValueError
        When the fit is not ok (misuse: there is no layer to follow).
    """
    if not fit.ok:
        raise ValueError("layer_roi needs a fit that passed its checks")
    a = np.deg2rad(fit.angle_deg)
    n0 = np.cos(a) * profile.direction + np.sin(a) * profile.normal
    centre = profile.p1_uv + 0.5 * (fit.e_outer + fit.e_inner) / np.cos(a) * profile.direction
    t = fit.thickness_mm
    half = 0.5 * t + 0.75
    stations = [(centre, n0, t)]
    area = (1 - 2 * margin_fraction) * t * step_mm
    reason = ""
    fronts = {+1: (centre, n0), -1: (centre, n0)}
    prev = {+1: centre, -1: centre}
    side = +1
    while area < area_mm2 and len(stations) < max_stations:
        c, n = fronts[side]
        tg = side * np.array([-n[1], n[0]])
        guess = c + step_mm * tg
        found = _local_edges(image, plane, guess, n, fit, half, t)
        if found is None:
            reason = "an edge was lost while following the layer"
            if fronts[-side] is None:
                break
            fronts[side] = None
            side = -side
            continue
        eo, ei = found
        mid = guess + 0.5 * (eo + ei) * n
        d = mid - prev[side]
        tg_new = side * d / np.linalg.norm(d)
        n_new = np.array([tg_new[1], -tg_new[0]])
        if n_new @ n < 0:
            n_new = -n_new
        stations.append((mid, n_new, ei - eo))
        area += (1 - 2 * margin_fraction) * (ei - eo) * step_mm
        prev[side], fronts[side] = mid, (mid, n_new)
        if fronts[-side] is not None:
            side = -side
    # the band, sub-sampled
    pts, wts = [], []
    us = (np.arange(int(round(step_mm / sample_mm))) + 0.5) * sample_mm - step_mm / 2
    for mid, n, tk in stations:
        tg = np.array([-n[1], n[0]])
        w = (1 - 2 * margin_fraction) * tk
        vs = (np.arange(max(1, int(np.ceil(w / sample_mm)))) + 0.5) * (w / max(1, int(np.ceil(w / sample_mm)))) - w / 2
        U, V = np.meshgrid(us, vs, indexing="ij")
        pts.append(mid[None, :] + U.reshape(-1, 1) * tg[None, :] + V.reshape(-1, 1) * n[None, :])
        wts.append(np.full(U.size, sample_mm * (w / len(vs))))
    uv = np.concatenate(pts)
    ij = np.rint(plane.uv_to_ij(uv)).astype(int)
    shape = np.asarray(plane.shape)
    ok = np.all((ij >= 0) & (ij < shape), axis=1)
    flat = ij[ok, 0] * shape[1] + ij[ok, 1]
    acc = np.bincount(flat, weights=np.concatenate(wts)[ok], minlength=int(np.prod(shape)))
    idx = np.flatnonzero(acc)
    w_vox = acc[idx] / plane.pixel_area_mm2
    return LayerROI(idx // shape[1], idx % shape[1], w_vox, float(acc.sum()),
                    np.array([s[0] for s in stations]), np.array([s[2] for s in stations]),
                    bool(area >= area_mm2 - 1e-9), reason if area < area_mm2 else "")
