"""ROI shapes in slice-plane mm (ovals, discs, fitted ellipses), their partial-voxel
weights on a slice grid, and weighted statistics."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..geometry import SlicePlane

__all__ = ["Ellipse", "caliper_oval", "layer_oval", "disc", "ellipse_from_points",
           "roi_weights", "weighted_stats"]


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

