"""Deep-layer thickness along the 3-D normal, from in-plane fits on neighbouring slices."""
from __future__ import annotations

import numpy as np

from .profile import EdgeFit

__all__ = ["obliquity_corrected"]


def obliquity_corrected(fit: EdgeFit, neighbours: dict, spacing_mm: float) -> dict:
    """Thickness along the layer's 3-D normal from the in-plane fit and its neighbours.

    Parameters
    ----------
    fit : EdgeFit
        The fit on the annotated slice (``ok``).
    neighbours : dict
        ``{slice offset (+-1): EdgeFit}`` of the same caliper line sampled on the
        neighbouring slices (failed fits are ignored).
    spacing_mm : float
        Distance between slice centres.

    Returns
    -------
    dict
        ``thickness_mm``, ``se_mm``, ``tilt_deg`` (angle between the layer normal
        and the slice plane) and ``n_neighbours``; NaN with ``reason`` when no
        neighbour was fitted.

    Notes
    -----
    A planar layer ``n . p = c`` cut by slices ``z = const`` appears in each slice
    at a position ``r(z)`` along its in-plane normal with ``dr/dz = -tan(tilt)``,
    and with in-plane thickness ``t / cos(tilt)``. The mid-depth positions of the
    fits (along each fit's own normal, from the same caliper point) give
    ``tan(tilt)`` by least squares over the slices; then ``t = t_plane cos(tilt)``,
    its SE by the delta method from the thickness's and the positions' SEs. The
    layer is taken as straight over the slices used (4 mm): curvature through the
    slab biases the tilt.
    """
    nan = float("nan")
    if not fit.ok:
        return {"thickness_mm": nan, "se_mm": nan, "tilt_deg": nan, "n_neighbours": 0,
                "reason": "the in-plane fit failed"}
    pts = [(0.0, fit.params["mid_mm"], fit.params["se_mid_mm"])]
    for dk, f in sorted(neighbours.items()):
        if f is not None and f.ok:
            pts.append((dk * spacing_mm, f.params["mid_mm"], f.params["se_mid_mm"]))
    if len(pts) < 2:
        return {"thickness_mm": nan, "se_mm": nan, "tilt_deg": nan, "n_neighbours": 0,
                "reason": "no neighbouring slice could be fitted"}
    z, r, se = (np.array(v) for v in zip(*pts))
    w = 1.0 / np.maximum(se, 1e-3) ** 2
    zb = np.sum(w * z) / w.sum()
    slope = float(np.sum(w * (z - zb) * r) / np.sum(w * (z - zb) ** 2))
    se_slope = float(np.sqrt(1.0 / np.sum(w * (z - zb) ** 2)))
    k = 1.0 + slope * slope
    t = fit.thickness_mm / np.sqrt(k)
    dt_dslope = -fit.thickness_mm * abs(slope) / k ** 1.5
    se_t = float(np.sqrt((fit.se_mm / np.sqrt(k)) ** 2 + (dt_dslope * se_slope) ** 2))
    return {"thickness_mm": float(t), "se_mm": se_t,
            "tilt_deg": float(np.rad2deg(np.arctan(abs(slope)))),
            "n_neighbours": len(pts) - 1, "reason": "ok"}
