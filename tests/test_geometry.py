"""Affines, slice planes and slice assignment, on analytic geometries."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from m1lib.errors import DataError
from m1lib.geometry import (Geometry, affine_disagreement_mm, assign_slice, check_orientation,
                            image_geometry, lps_to_ras, slice_axis_of)


def rotation(axis, angle) -> np.ndarray:
    """Rodrigues' rotation matrix."""
    a = np.asarray(axis, float)
    a /= np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def oblique_affine(voxel=(0.25, 0.3, 2.0), angle=0.5, origin=(-10.0, 5.0, 20.0)) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = rotation([1, 2, 3], angle) * np.asarray(voxel)
    a[:3, 3] = origin
    return a


def test_lps_ras_is_an_involution():
    p = np.array([[1.5, -2.0, 3.0], [0.0, 4.0, -1.0]])
    assert np.allclose(lps_to_ras(lps_to_ras(p)), p)
    assert np.allclose(lps_to_ras(p)[:, 2], p[:, 2])


def test_voxel_sizes_come_from_the_affine_not_pixdim():
    aff = oblique_affine()
    img = nib.Nifti1Image(np.zeros((8, 8, 3), np.float32), aff)
    img.header["pixdim"][1:4] = [9.0, 9.0, 9.0]  # a lying pixdim
    g = image_geometry(img)
    assert g.source == "sform"
    assert np.allclose(g.voxel_sizes, [0.25, 0.3, 2.0])
    assert g.slice_spacing_mm == pytest.approx(2.0)


def test_world_voxel_round_trip():
    g = Geometry(oblique_affine(), (30, 30, 5), "sform")
    ijk = np.array([[1.2, 3.4, 2.0], [29.0, 0.0, 4.4]])
    assert np.allclose(g.world_to_voxel(g.voxel_to_world(ijk)), ijk)


def test_qform_used_when_sform_unset_and_disagreement_refused():
    aff = oblique_affine()
    img = nib.Nifti1Image(np.zeros((8, 8, 3), np.float32), None)
    img.set_qform(aff, code=1)
    img.set_sform(np.eye(4), code=0)
    g = image_geometry(img)
    assert g.source == "qform"
    assert np.allclose(g.affine, aff, atol=1e-5)
    # both set and agreeing: sform, with the (tiny) disagreement reported
    img.set_sform(aff, code=1)
    g = image_geometry(img)
    assert g.source == "sform" and g.disagreement_mm < 1e-3
    # both set, 0.5 mm apart: refused, naming participant and file
    moved = aff.copy()
    moved[0, 3] += 0.5
    img.set_sform(moved, code=1)
    with pytest.raises(DataError, match=r"sub-X: affine: sform and qform disagree by up to 0\.5"):
        image_geometry(img, participant="sub-X")
    # a tolerance that accepts it
    assert image_geometry(img, tol_mm=1.0).source == "sform"


def test_no_affine_code_is_refused():
    img = nib.Nifti1Image(np.zeros((4, 4, 2), np.float32), None)
    with pytest.raises(DataError, match="neither sform nor qform"):
        image_geometry(img)


def test_affine_disagreement_of_a_rotation_about_the_centre():
    shape = (10, 10, 10)
    a = np.eye(4)
    b = np.eye(4)
    b[:3, :3] = rotation([0, 0, 1], 1e-3)
    # largest corner displacement ~ angle * largest corner radius (origin at voxel 0)
    assert affine_disagreement_mm(a, b, shape) == pytest.approx(1e-3 * np.hypot(9.5, 9.5), rel=1e-3)


def test_slice_plane_is_true_mm_on_a_sheared_oblique_grid():
    aff = oblique_affine()
    aff[:3, 1] += 0.1 * aff[:3, 0]  # in-plane shear
    g = Geometry(aff, (40, 40, 5), "sform")
    plane = g.plane(3)
    ij = np.array([[1.0, 2.0], [17.5, 30.25], [5.0, 5.0]])
    world = g.voxel_to_world(np.c_[ij, [3.0, 3.0, 3.0]])
    uv = plane.ij_to_uv(ij)
    for a in range(3):
        for b in range(3):
            assert np.linalg.norm(uv[a] - uv[b]) == pytest.approx(np.linalg.norm(world[a] - world[b]))
    assert np.allclose(plane.uv_to_world(uv), world)
    assert np.allclose(plane.uv_to_ij(uv), ij)
    assert plane.pixel_area_mm2 == pytest.approx(np.linalg.norm(np.cross(aff[:3, 0], aff[:3, 1])))


def test_point_within_half_a_slice_is_assigned_and_beyond_is_an_error():
    g = Geometry(oblique_affine(), (40, 40, 5), "sform")
    n = g.plane_normal
    centre = g.voxel_to_world([[10.0, 12.0, 4.0]])[0]  # last slice
    k, ij = assign_slice(g, centre + 0.49 * 2.0 * n)
    assert k == 4 and np.allclose(ij, [[10.0, 12.0]])
    k, _ = assign_slice(g, centre - 0.49 * 2.0 * n)
    assert k == 4
    with pytest.raises(DataError) as err:
        assign_slice(g, centre + 0.51 * 2.0 * n, participant="sub-ALS01", label="L_hand")
    msg = str(err.value)
    assert msg.startswith("sub-ALS01: L_hand: point 1") and "half a slice" in msg
    # below the first slice likewise
    first = g.voxel_to_world([[10.0, 12.0, 0.0]])[0]
    with pytest.raises(DataError, match="L_leg"):
        assign_slice(g, first - 0.51 * 2.0 * n, participant="sub-1", label="L_leg")


def test_slice_gap_makes_the_space_between_slices_unmeasurable():
    g = Geometry(np.diag([0.25, 0.25, 3.0, 1.0]), (40, 40, 5), "sform")
    assert assign_slice(g, [[2.0, 2.0, 6.4]], slice_thickness_mm=1.0)[0] == 2
    with pytest.raises(DataError, match=r"0\.6 mm from the centre"):
        assign_slice(g, [[2.0, 2.0, 6.6]], slice_thickness_mm=1.0)


def test_outside_the_field_of_view_and_split_slices_are_errors():
    g = Geometry(np.diag([0.25, 0.25, 2.0, 1.0]), (40, 40, 5), "sform")
    with pytest.raises(DataError, match="sub-HS01: R_face: point 2 .* outside the image"):
        assign_slice(g, [[1.0, 1.0, 2.0], [10.2, 1.0, 2.0]], participant="sub-HS01", label="R_face")
    with pytest.raises(DataError, match="different slices"):
        assign_slice(g, [[1.0, 1.0, 2.0], [1.0, 1.5, 4.0]], label="R_face")


# ------------------------------------------------------------------ orientation, slice axis


def _brain_points():
    """Calipers either side of a midline at x = 2 mm; reference in the left precuneus."""
    pts = {}
    for n, a in enumerate(("foot", "leg", "hand", "face")):
        pts[f"L_{a}"] = [[2 - 10 - 5 * n, -20.0, 60 - 5 * n], [2 - 11 - 5 * n, -20.0, 60 - 5 * n]]
        pts[f"R_{a}"] = [[2 + 10 + 5 * n, -20.0, 60 - 5 * n], [2 + 11 + 5 * n, -20.0, 60 - 5 * n]]
    pts["ref_precuneus"] = [[2 - 4.0, -60.0, 50.0]]
    return pts


def _geom():
    aff = np.diag([0.5, 0.5, 2.0, 1.0])
    aff[:3, 3] = [-60.0, -80.0, 20.0]
    return Geometry(aff, (240, 200, 30), "sform")


def test_orientation_of_plausible_annotations_passes():
    assert check_orientation(_geom(), _brain_points(), ("foot", "leg", "hand", "face")) == []


def test_lps_numbers_read_as_ras_are_named_as_a_mixup():
    lps = {k: (np.asarray(v) * [-1, -1, 1]).tolist() for k, v in _brain_points().items()}
    problems = check_orientation(_geom(), lps, ("foot", "leg", "hand", "face"), participant="sub-01")
    assert len(problems) == 1
    text = str(problems[0])
    assert text.startswith("sub-01: coordinateSystem:") and "LPS" in text and "RAS" in text


def test_reference_right_of_the_midline_is_caught():
    pts = _brain_points()
    pts["ref_precuneus"] = [[2 + 6.0, -60.0, 50.0]]      # past the 4 mm margin (MIDLINE_MARGIN_MM)
    (p,) = check_orientation(_geom(), pts, ("hand",))
    assert p.field == "ref_precuneus" and "left precuneus" in p.message


def test_slice_axis_from_sidecar_then_dim_info_then_default():
    h = nib.Nifti1Header()
    assert slice_axis_of(h) == (2, "default")
    h.set_dim_info(slice=1)
    assert slice_axis_of(h) == (1, "dim_info")
    assert slice_axis_of(h, {"SliceEncodingDirection": "i-"}) == (0, "SliceEncodingDirection")


def test_geometry_in_acquisition_order_for_slices_along_i():
    aff = np.diag([2.0, 0.5, 0.25, 1.0])  # slices along i (2 mm)
    img = nib.Nifti1Image(np.zeros((5, 40, 30), np.float32), aff)
    g = image_geometry(img, slice_axis=0)
    assert g.axes == (1, 2, 0) and g.shape == (40, 30, 5)
    assert g.slice_spacing_mm == pytest.approx(2.0)
    assert np.allclose(g.voxel_sizes, [0.5, 0.25, 2.0])


def test_orientation_midline_follows_a_turned_head():
    """Yaw of 20 degrees: the precuneus reference, 3 mm left of the midsagittal plane but
    60 mm behind the motor strip, lies at a larger RAS x than the pairs' mid-points. The
    plane through the pairs (their L->R direction its normal) keeps it on the left; a
    reference 8 mm right of the plane (past the 3 mm margin) is still caught."""
    yaw = np.deg2rad(20.0)
    rot = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    centre = np.array([100.0, 100.0, 50.0])
    head = {"L_hand": [-30, 10, 10], "R_hand": [30, 10, 10], "L_face": [-45, 5, -5], "R_face": [45, 5, -5],
            "L_leg": [-12, 0, 25], "R_leg": [12, 0, 25], "ref_precuneus": [-3, -60, 15]}
    pts = {k: [rot @ np.array(v, float) + centre] for k, v in head.items()}
    g = Geometry(np.eye(4), (200, 200, 100), "sform")
    assert pts["ref_precuneus"][0][0] > np.median([(pts[f"L_{a}"][0][0] + pts[f"R_{a}"][0][0]) / 2
                                                    for a in ("hand", "face", "leg")])
    assert check_orientation(g, pts, ["hand", "face", "leg"]) == []
    pts["ref_precuneus"] = [rot @ np.array([8.0, -60, 15]) + centre]
    problems = check_orientation(g, pts, ["hand", "face", "leg"])
    assert len(problems) == 1 and problems[0].field == "ref_precuneus"
