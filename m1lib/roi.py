"""ROIs drawn by researchers: closed curves (polygons) and label images.

A Slicer ``ClosedCurve`` named ``<label>_roi`` is measured as drawn: the polygon
through its control points, each voxel weighted by the exact fraction of its area
inside the polygon (so the ROI's area is the shoelace area of the polygon). A
label image (``*_dseg.nii[.gz]``, names from its ``dseg.tsv``) gives whole voxels:
each voxel centre of the measured slice is mapped to the label image through both
affines (world coordinates) and takes the label of the nearest label voxel, so a
label image on another grid is resampled exactly, without interpolating labels.

The clipping below is Sutherland-Hodgman against a convex voxel: 20 lines, exact
for any simple polygon, and no new dependency (shapely would do the same).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull

from .geometry import Geometry, SlicePlane

__all__ = ["shoelace_area", "Polygon", "polygon_weights", "LabelRegion", "label_region"]


def shoelace_area(xy) -> float:
    """Area of a simple polygon (vertices in order, not repeated), by the shoelace formula.

    Examples
    --------
    >>> shoelace_area([[0, 0], [2, 0], [2, 1], [0, 1]])
    2.0
    """
    p = np.asarray(xy, float).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def _clip(poly: list, axis: int, bound: float, keep_below: bool) -> list:
    """Clip a polygon by the half-plane ``x[axis] <= bound`` (or ``>=``)."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        ina = (a[axis] <= bound) if keep_below else (a[axis] >= bound)
        inb = (b[axis] <= bound) if keep_below else (b[axis] >= bound)
        if ina:
            out.append(a)
        if ina != inb:
            t = (bound - a[axis]) / (b[axis] - a[axis])
            out.append((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])))
    return out


def polygon_weights(poly_ij, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Fraction of each voxel's area inside a polygon given in voxel coordinates.

    Voxel ``(i, j)`` is the unit square centred on ``(i, j)``; a linear map keeps
    area ratios, so the fractions are the same in mm.

    Returns
    -------
    ii, jj : int arrays
        Voxels with a weight > 0.
    w : float array
        Their fractions (sum x voxel area = the polygon's area, inside the image).
    inside_image : bool
        Whether the polygon lies wholly in the field of view.

    Examples
    --------
    >>> ii, jj, w, ok = polygon_weights([[0, 0], [1, 0], [1, 1], [0, 1]], (4, 4))
    >>> float(w.sum()), sorted(w.tolist())
    (1.0, [0.25, 0.25, 0.25, 0.25])
    """
    p = np.asarray(poly_ij, float).reshape(-1, 2)
    lo = np.floor(p.min(axis=0) + 0.5).astype(int)
    hi = np.floor(p.max(axis=0) + 0.5).astype(int)
    inside_image = bool(np.all(p >= -0.5) and np.all(p <= np.asarray(shape[:2]) - 0.5))
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.asarray(shape[:2]) - 1)
    verts = [tuple(v) for v in p]
    ii, jj, ww = [], [], []
    for i in range(lo[0], hi[0] + 1):
        # clip to the column once, then each voxel of it
        col = _clip(_clip(verts, 0, i - 0.5, False), 0, i + 0.5, True)
        if len(col) < 3:
            continue
        for j in range(lo[1], hi[1] + 1):
            cell = _clip(_clip(col, 1, j - 0.5, False), 1, j + 0.5, True)
            if len(cell) >= 3:
                a = shoelace_area(cell)
                if a > 1e-12:
                    ii.append(i)
                    jj.append(j)
                    ww.append(a)
    return (np.asarray(ii, int), np.asarray(jj, int), np.asarray(ww, float), inside_image)


@dataclass(frozen=True)
class Polygon:
    """A drawn ROI in slice-plane mm (vertices in drawing order)."""

    uv: np.ndarray

    @property
    def area_mm2(self) -> float:
        return shoelace_area(self.uv)

    @property
    def centre(self) -> np.ndarray:
        return np.asarray(self.uv, float).mean(axis=0)

    def weights(self, plane: SlicePlane, supersample: int = 10):
        """``(ii, jj, w, inside_image)`` on the slice grid (exact; ``supersample`` unused)."""
        return polygon_weights(plane.uv_to_ij(self.uv), plane.shape)

    def outline(self, n: int = 0) -> np.ndarray:
        p = np.asarray(self.uv, float)
        return np.vstack([p, p[:1]])


@dataclass(frozen=True)
class LabelRegion:
    """Whole voxels of one slice that carry one label (from a label image)."""

    name: str
    ii: np.ndarray
    jj: np.ndarray
    plane: SlicePlane

    @property
    def centre(self) -> np.ndarray:
        return self.plane.ij_to_uv(np.c_[self.ii, self.jj]).mean(axis=0)

    def weights(self, plane: SlicePlane, supersample: int = 10):
        return self.ii, self.jj, np.ones(len(self.ii)), True

    def outline(self, n: int = 0) -> np.ndarray:
        """A closed outline for display: the convex hull of the labelled voxels' corners."""
        corners = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
        pts = self.plane.ij_to_uv((np.c_[self.ii, self.jj][:, None, :] + corners[None]).reshape(-1, 2))
        hull = ConvexHull(pts)
        ring = pts[hull.vertices]
        return np.vstack([ring, ring[:1]])


def label_slice(labels: np.ndarray, label_affine: np.ndarray, geom: Geometry, k: int) -> np.ndarray:
    """The label of every voxel of slice ``k`` (acquisition order), nearest label voxel.

    Voxel centres of the image are mapped to RAS+ mm by the image's affine and to
    the label image's voxels by the inverse of its affine; the nearest voxel is
    ``floor(x + 0.5)`` (exact halves round up, deterministically); outside the
    label image is 0.
    """
    na, nb = geom.shape[:2]
    ia, ib = np.meshgrid(np.arange(na), np.arange(nb), indexing="ij")
    ijk = np.c_[ia.ravel(), ib.ravel(), np.full(ia.size, float(k))]
    ras = geom.voxel_to_world(ijk)
    inv = np.linalg.inv(label_affine)
    lv = np.floor(ras @ inv[:3, :3].T + inv[:3, 3] + 0.5).astype(np.int64)
    shape = np.asarray(labels.shape[:3])
    ok = np.all((lv >= 0) & (lv < shape), axis=1)
    out = np.zeros(ia.size, dtype=labels.dtype)
    out[ok] = labels[lv[ok, 0], lv[ok, 1], lv[ok, 2]]
    return out.reshape(na, nb)


def label_region(name: str, index: int, labels: np.ndarray, label_affine: np.ndarray,
                 geom: Geometry, k: int) -> LabelRegion:
    """The voxels of slice ``k`` whose nearest label voxel is ``index``."""
    sl = label_slice(labels, label_affine, geom, k)
    ii, jj = np.nonzero(sl == index)
    return LabelRegion(name, ii, jj, geom.plane(k))


def label_slices_present(labels: np.ndarray, label_affine: np.ndarray, geom: Geometry,
                         index: int) -> list[int]:
    """Slices (acquisition order) that hold at least one voxel of ``index``, most voxels first.

    Only the slices near the label's own voxels are resampled (a whole-brain image has
    hundreds of slices).
    """
    vox = np.argwhere(labels == index)
    if not len(vox):
        return []
    ras = vox @ label_affine[:3, :3].T + label_affine[:3, 3]
    near = np.unique(np.clip(np.rint(geom.world_to_voxel(ras)[:, 2]), 0, geom.shape[2] - 1).astype(int))
    cand = sorted({int(k + d) for k in near for d in (-1, 0, 1) if 0 <= k + d < geom.shape[2]})
    counts = []
    for k in cand:
        n = int((label_slice(labels, label_affine, geom, k) == index).sum())
        if n:
            counts.append((-n, k))
    return [k for _, k in sorted(counts)]
