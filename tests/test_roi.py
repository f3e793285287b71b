"""Drawn ROIs: polygons weighted by exact partial-voxel areas, label images resampled
by nearest neighbour in world coordinates (answers computed by hand)."""
from __future__ import annotations

import numpy as np
import pytest

from m1lib.geometry import Geometry
from m1lib.roi import Polygon, label_region, label_slice, polygon_weights, shoelace_area


def test_square_on_voxel_corners_has_quarter_weights():
    ii, jj, w, inside = polygon_weights([[0, 0], [1, 0], [1, 1], [0, 1]], (4, 4))
    assert inside and sorted(zip(ii.tolist(), jj.tolist())) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert np.allclose(w, 0.25)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_polygon_area_equals_the_shoelace_formula_on_a_sheared_oblique_grid(seed):
    """Sum of weights x pixel area is the polygon's shoelace area in mm², on any grid."""
    rng = np.random.default_rng(seed)
    aff = np.eye(4)
    aff[:3, :3] = np.array([[0.25, 0.07, 0.0], [0.02, 0.3, 0.1], [0.0, 0.05, 2.0]])
    geom = Geometry(aff, (64, 64, 3), "sform")
    plane = geom.plane(1)
    # a star-shaped (non-convex) polygon of 11 vertices around (4, 4) mm
    ang = np.sort(rng.uniform(0, 2 * np.pi, 11))
    rad = rng.uniform(0.8, 2.5, 11)
    uv = np.c_[4 + rad * np.cos(ang), 4 + rad * np.sin(ang)]
    poly = Polygon(uv)
    ii, jj, w, inside = poly.weights(plane)
    assert inside
    x, y = uv[:, 0], uv[:, 1]
    by_hand = 0.5 * abs(sum(x[i] * y[(i + 1) % 11] - x[(i + 1) % 11] * y[i] for i in range(11)))
    assert shoelace_area(uv) == pytest.approx(by_hand, rel=1e-12)
    assert w.sum() * plane.pixel_area_mm2 == pytest.approx(by_hand, rel=1e-9)
    assert ((w > 0) & (w <= 1 + 1e-12)).all()


def test_label_image_on_a_coarser_shifted_grid_resamples_by_nearest_neighbour():
    """Image: 0.5 mm voxels from 0 mm; label image: 1 mm voxels from -1 mm.

    Image voxel i (centre 0.5 i mm) takes label voxel floor(0.5 i + 1 + 0.5), so label
    voxel 2 covers image voxels 1 and 2 (0.5 and 1.0 mm), and label voxel 3 in y
    covers image voxels 3 and 4.
    """
    img_aff = np.diag([0.5, 0.5, 1.0, 1.0])
    geom = Geometry(img_aff, (8, 8, 1), "sform")
    lab_aff = np.diag([1.0, 1.0, 1.0, 1.0])
    lab_aff[:3, 3] = [-1.0, -1.0, 0.0]
    labels = np.zeros((6, 6, 1), np.int16)
    labels[2, 3, 0] = 7
    sl = label_slice(labels, lab_aff, geom, 0)
    # i: x = 0.5 i -> label index floor(0.5 i + 1 + 0.5) == 2 for i in {1, 2}
    # j: y = 0.5 j -> label index floor(0.5 j + 1.5) == 3 for j in {3, 4}
    assert sorted(zip(*np.nonzero(sl == 7))) == [(1, 3), (1, 4), (2, 3), (2, 4)]
    values = np.arange(64, dtype=float).reshape(8, 8)
    region = label_region("L_hand_roi", 7, labels, lab_aff, geom, 0)
    ii, jj, w, _ = region.weights(geom.plane(0))
    mean = float(np.average(values[ii, jj], weights=w))
    assert mean == pytest.approx((values[1, 3] + values[1, 4] + values[2, 3] + values[2, 4]) / 4)
    assert mean == pytest.approx((11 + 12 + 19 + 20) / 4)


def test_label_region_outline_encloses_its_voxels():
    geom = Geometry(np.diag([0.5, 0.5, 1.0, 1.0]), (8, 8, 1), "sform")
    labels = np.zeros((8, 8, 1), np.int16)
    labels[2:4, 3:6, 0] = 1
    region = label_region("L_hand_roi", 1, labels, geom.affine, geom, 0)
    ring = region.outline()
    assert np.allclose(ring[0], ring[-1])
    assert shoelace_area(ring[:-1]) == pytest.approx(6 * 0.25)  # 2 x 3 voxels of 0.25 mm²
