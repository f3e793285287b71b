"""Affines, world <-> voxel mapping and slice assignment for 2D multi-slice slabs.

The affine of an image maps voxel indices (voxel centres at integers) to RAS+ mm.
Which affine: the **sform** when its code is set, else the **qform**; when both
are set they must agree (every corner of the field of view within ``tol_mm``),
otherwise the image is refused, since one of them misplaces the annotations.
An image with neither code set has no known orientation and is refused too.
Voxel sizes are the column norms of the affine, never ``pixdim``.

A 2D multi-slice acquisition is measured in its acquisition plane. The slice axis
comes from the header: the sidecar's ``SliceEncodingDirection`` when given, else the
NIfTI ``dim_info`` slice field, else the third voxel axis (:func:`slice_axis_of`).
A :class:`Geometry` works in *acquisition order*: its affine's columns are the two
in-plane voxel axes (in file order) and then the slice axis, and ``axes`` says which
file axes they are, so every function below sees the slice axis third. Each
annotation point is assigned to the slice whose centre is nearest along the slice
axis; a point farther than half a slice thickness from that centre, or outside the
field of view in the plane, is a :class:`~m1lib.errors.DataError`. Inside a slice,
positions are expressed in mm in an orthonormal basis of the plane (``uv``), so
oblique, anisotropic and even sheared in-plane grids are measured in true mm.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DataError, Problem

__all__ = [
    "Geometry", "SlicePlane", "image_geometry", "lps_to_ras", "assign_slice",
    "affine_disagreement_mm", "slice_axis_of", "check_orientation",
]

_AXIS = {"i": 0, "j": 1, "k": 2}


def lps_to_ras(points) -> np.ndarray:
    """Convert LPS (Slicer, DICOM) coordinates to RAS (NIfTI, nibabel).

    Examples
    --------
    >>> lps_to_ras([[1.0, 2.0, 3.0]]).tolist()
    [[-1.0, -2.0, 3.0]]
    """
    out = np.array(points, dtype=float, copy=True).reshape(-1, 3)
    out[:, :2] *= -1.0
    return out


def _corners(shape) -> np.ndarray:
    """The 8 outer corners of the voxel grid (voxel centres at integers)."""
    lo = -0.5
    hi = np.asarray(shape[:3], dtype=float) - 0.5
    grid = np.array(np.meshgrid(*[(lo, h) for h in hi], indexing="ij")).reshape(3, -1).T
    return grid


def affine_disagreement_mm(a: np.ndarray, b: np.ndarray, shape) -> float:
    """Largest distance (mm) between the positions two affines give to the grid's corners.

    Examples
    --------
    >>> a = np.eye(4); b = np.eye(4); b[0, 3] = 0.3
    >>> round(affine_disagreement_mm(a, b, (10, 10, 10)), 6)
    0.3
    """
    c = np.c_[_corners(shape), np.ones(8)]
    return float(np.max(np.linalg.norm((c @ a.T - c @ b.T)[:, :3], axis=1)))


@dataclass(frozen=True)
class Geometry:
    """Where an image's voxels are in RAS+ mm.

    Attributes
    ----------
    affine : (4, 4) array
        Voxel index -> RAS+ mm.
    shape : tuple of int
        Spatial shape in acquisition order (in-plane a, in-plane b, slice).
    source : str
        ``'sform'`` or ``'qform'``: which header affine this is.
    disagreement_mm : float
        Largest corner distance between sform and qform when both are set, else NaN.
    axes : tuple of int
        The file's voxel axes in acquisition order (``(0, 1, 2)``: slices along k).
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    source: str
    disagreement_mm: float = float("nan")
    axes: tuple[int, int, int] = (0, 1, 2)

    @property
    def voxel_sizes(self) -> np.ndarray:
        """Voxel edge lengths in mm along the three voxel axes (from the affine)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def plane_normal(self) -> np.ndarray:
        """Unit normal of the acquisition plane (spanned by voxel axes i and j)."""
        n = np.cross(self.affine[:3, 0], self.affine[:3, 1])
        return n / np.linalg.norm(n)

    @property
    def slice_spacing_mm(self) -> float:
        """Distance between neighbouring slice centres along the plane normal."""
        return float(abs(self.affine[:3, 2] @ self.plane_normal))

    def world_to_voxel(self, ras) -> np.ndarray:
        """Continuous voxel coordinates (N, 3) of RAS+ points (N, 3)."""
        ras = np.asarray(ras, dtype=float).reshape(-1, 3)
        inv = np.linalg.inv(self.affine)
        return ras @ inv[:3, :3].T + inv[:3, 3]

    def voxel_to_world(self, ijk) -> np.ndarray:
        """RAS+ mm (N, 3) of continuous voxel coordinates (N, 3)."""
        ijk = np.asarray(ijk, dtype=float).reshape(-1, 3)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def plane(self, k: int) -> "SlicePlane":
        """The in-plane mm frame of slice ``k``."""
        return SlicePlane.from_geometry(self, k)


@dataclass(frozen=True)
class SlicePlane:
    """Orthonormal mm coordinates ``uv`` in one slice of a 2D acquisition.

    ``uv = M @ (i, j)``: ``u`` runs along voxel axis i, ``v`` is orthogonal to it
    in the plane (Gram-Schmidt), so distances and areas in ``uv`` are true mm and
    mm², whatever the voxel sizes, obliquity or in-plane shear.
    """

    k: int
    origin: np.ndarray      # RAS of voxel (0, 0, k)
    basis: np.ndarray       # (3, 2): e_u, e_v in RAS
    m: np.ndarray           # (2, 2): (i, j) -> (u, v)
    shape: tuple[int, int]

    @classmethod
    def from_geometry(cls, geom: Geometry, k: int) -> "SlicePlane":
        a1, a2 = geom.affine[:3, 0], geom.affine[:3, 1]
        e1 = a1 / np.linalg.norm(a1)
        w = a2 - (a2 @ e1) * e1
        e2 = w / np.linalg.norm(w)
        basis = np.c_[e1, e2]
        m = basis.T @ np.c_[a1, a2]
        origin = geom.voxel_to_world([[0.0, 0.0, float(k)]])[0]
        return cls(int(k), origin, basis, m, tuple(int(s) for s in geom.shape[:2]))

    @property
    def pixel_area_mm2(self) -> float:
        """Area of one voxel of the plane in mm²."""
        return float(abs(np.linalg.det(self.m)))

    @property
    def pixel_sizes(self) -> np.ndarray:
        """In-plane voxel edge lengths (mm)."""
        return np.linalg.norm(self.m, axis=0)

    def ij_to_uv(self, ij) -> np.ndarray:
        return np.asarray(ij, dtype=float).reshape(-1, 2) @ self.m.T

    def uv_to_ij(self, uv) -> np.ndarray:
        return np.asarray(uv, dtype=float).reshape(-1, 2) @ np.linalg.inv(self.m).T

    def uv_to_world(self, uv) -> np.ndarray:
        return np.asarray(uv, dtype=float).reshape(-1, 2) @ self.basis.T + self.origin

    def inside(self, ij, margin: float = 0.0) -> np.ndarray:
        """Whether in-plane voxel coordinates fall inside the field of view."""
        ij = np.asarray(ij, dtype=float).reshape(-1, 2)
        hi = np.asarray(self.shape, dtype=float) - 0.5
        return np.all((ij >= -0.5 - margin) & (ij <= hi + margin), axis=1)


def slice_axis_of(header, metadata=None) -> tuple[int, str]:
    """The voxel axis slices were acquired along, and where that was read.

    ``SliceEncodingDirection`` (BIDS sidecar: ``i``, ``j``, ``k``, optionally with
    ``-``) wins; else the NIfTI header's ``dim_info`` slice field; else axis 2.

    Examples
    --------
    >>> import nibabel as nib
    >>> h = nib.Nifti1Header(); h.set_dim_info(slice=0)
    >>> slice_axis_of(h), slice_axis_of(h, {"SliceEncodingDirection": "k-"})
    ((0, 'dim_info'), (2, 'SliceEncodingDirection'))
    """
    sed = (metadata or {}).get("SliceEncodingDirection")
    if isinstance(sed, str) and sed.rstrip("-") in _AXIS:
        return _AXIS[sed.rstrip("-")], "SliceEncodingDirection"
    try:
        s = header.get_dim_info()[2]
    except Exception:  # headers without dim_info (NIfTI-2 converted, Analyze)
        s = None
    if s in (0, 1, 2):
        return int(s), "dim_info"
    return 2, "default"


def image_geometry(img, *, tol_mm: float = 0.01, participant: str | None = None,
                   file=None, slice_axis: int = 2, volume: int | None = None) -> Geometry:
    """The geometry of a NIfTI image, choosing the affine by the policy above.

    Parameters
    ----------
    img : nibabel image
        A NIfTI-1/2 image (only its header is read).
    tol_mm : float
        Largest allowed distance between the positions sform and qform give to
        any corner of the field of view when both are set.
    participant, file : optional
        Named in the error message.
    slice_axis : int
        The file's voxel axis of the slices (:func:`slice_axis_of`).
    volume : int, optional
        For a 4-D multi-echo file, the echo's volume (the image must then be 4-D).

    Returns
    -------
    Geometry

    Raises
    ------
    DataError
        When sform and qform disagree beyond ``tol_mm``, when neither is set, or
        when the image is not 3D.

    Examples
    --------
    >>> import nibabel as nib
    >>> img = nib.Nifti1Image(np.zeros((4, 4, 3), np.float32), np.diag([0.25, 0.25, 2, 1]))
    >>> g = image_geometry(img)
    >>> g.source, g.voxel_sizes.tolist()
    ('sform', [0.25, 0.25, 2.0])
    """
    hdr = img.header
    shape = tuple(int(s) for s in img.shape[:3])
    if len(img.shape) != (3 if volume is None else 4):
        raise DataError(f"image has shape {img.shape} (expected 3D, one echo per file, or 4-D "
                        "with echoes along the 4th axis)", file=file, participant=participant)
    sform, scode = hdr.get_sform(coded=True)
    qform, qcode = hdr.get_qform(coded=True)
    scode, qcode = int(scode or 0), int(qcode or 0)
    if scode > 0 and qcode > 0:
        dis = affine_disagreement_mm(sform, qform, shape)
        if dis > tol_mm:
            raise DataError(
                f"sform and qform disagree by up to {dis:.3g} mm at the corners of the "
                f"field of view (tolerance {tol_mm:g} mm); fix the header so they agree "
                "or unset one of them", file=file, participant=participant, field="affine")
        affine, source = sform, "sform"
    elif scode > 0:
        affine, source, dis = sform, "sform", float("nan")
    elif qcode > 0:
        affine, source, dis = qform, "qform", float("nan")
    else:
        raise DataError("neither sform nor qform is set (codes 0): the image's "
                        "orientation in RAS+ mm is unknown", file=file,
                        participant=participant, field="affine")
    affine = np.asarray(affine, dtype=float)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise DataError("the affine is singular or not finite", file=file,
                        participant=participant, field="affine")
    axes = tuple(a for a in range(3) if a != slice_axis) + (int(slice_axis),)
    perm = np.eye(4)
    perm[:3, :3] = np.eye(3)[:, list(axes)]
    return Geometry(affine @ perm, tuple(shape[a] for a in axes), source, float(dis), axes)


def assign_slice(geom: Geometry, ras, *, slice_thickness_mm: float | None = None,
                 participant: str | None = None, label: str | None = None,
                 file=None) -> tuple[int, np.ndarray]:
    """Assign annotation points to one slice and return their in-plane coordinates.

    Parameters
    ----------
    geom : Geometry
    ras : array (N, 3)
        Points of one annotation in RAS+ mm.
    slice_thickness_mm : float, optional
        Thickness of a slice (e.g. the sidecar's ``SliceThickness``); defaults to
        the slice spacing. A slice gap (thickness < spacing) makes the space
        between slices unmeasurable.
    participant, label, file : optional
        Named in the error message.

    Returns
    -------
    k : int
        The slice index.
    ij : array (N, 2)
        Continuous in-plane voxel coordinates of the points, projected onto the
        slice along the slice axis.

    Raises
    ------
    DataError
        When a point is more than half a slice thickness from the nearest slice
        centre, outside the field of view, or when the points of one annotation
        fall in different slices.

    Examples
    --------
    >>> g = Geometry(np.diag([0.5, 0.5, 2.0, 1.0]), (20, 20, 5), "sform")
    >>> k, ij = assign_slice(g, [[1.0, 2.0, 4.3]])
    >>> k, ij.tolist()
    (2, [[2.0, 4.0]])
    """
    ras = np.asarray(ras, dtype=float).reshape(-1, 3)
    ijk = geom.world_to_voxel(ras)
    spacing = geom.slice_spacing_mm
    half = 0.5 * (slice_thickness_mm if slice_thickness_mm else spacing)
    nk = geom.shape[2]
    ks = np.clip(np.rint(ijk[:, 2]), 0, nk - 1).astype(int)
    off_mm = np.abs(ijk[:, 2] - ks) * spacing
    where = dict(participant=participant, field=label, file=file)
    tol = 1e-6
    bad = off_mm > half + tol
    if bad.any():
        n = int(np.argmax(bad))
        raise DataError(
            f"point {n + 1} at RAS {np.round(ras[n], 3).tolist()} is {off_mm[n]:.3g} mm from the "
            f"centre of the nearest slice ({ks[n]}); at most half a slice ({half:.3g} mm) is "
            f"allowed (slab of {nk} slices)", **where)
    if len(set(ks.tolist())) > 1:
        raise DataError(
            f"points fall in different slices {sorted(set(ks.tolist()))}; a 2D acquisition is "
            "measured in its acquisition plane, so one annotation must lie in one slice", **where)
    k = int(ks[0])
    plane = geom.plane(k)
    ij = ijk[:, :2]
    out = ~plane.inside(ij)
    if out.any():
        n = int(np.argmax(out))
        raise DataError(
            f"point {n + 1} at RAS {np.round(ras[n], 3).tolist()} is outside the image "
            f"(voxel {np.round(ijk[n], 2).tolist()}, grid {list(geom.shape)})", **where)
    return k, ij


def _inside_fov(geom: Geometry, ras) -> np.ndarray:
    ijk = geom.world_to_voxel(ras)
    hi = np.asarray(geom.shape, dtype=float) - 0.5
    return np.all((ijk >= -0.5) & (ijk <= hi), axis=1)


_MIXUP = ("the markups were probably written in LPS but declared RAS, or the reverse (an LPS/RAS "
          "mix-up negates x and y; Slicer writes LPS): check each markup's coordinateSystem")


#: How far past the midline a medial annotation must lie to be called on the wrong
#: side. The midline comes from hand-placed calipers (about a voxel of error each) and
#: is extrapolated several cm to the precuneus, where the reference sits only 2-5 mm
#: off the midline: a head turned in the scanner (or an oblique slab) puts a straight
#: midline off by 5 mm there, and the tilted plane through four noisy pairs is off by a
#: few mm too. So this catches a reference clearly across both estimates, not one a few
#: millimetres either side (a full LPS/RAS mix-up is caught by the L/R pairs).
MIDLINE_MARGIN_MM = 4.0


def _midline(pairs):
    """The midline's x at a point, from mirrored L/R annotations: two estimates.

    A mirrored pair's mid-point lies on the midsagittal plane and its L->R direction is
    the plane's normal. Returns a function of a RAS point giving ``(low, high)``: the
    smaller and larger of (a) the median mid-point's x, right for a straight head, and
    (b) the x at the point's (y, z) of the plane through the mean mid-point normal to
    the pairs' mean direction, right for a turned head but noisy. A point right of
    ``high`` is right of the midline whichever holds; left of ``low``, left of it.
    """
    left = np.array([l for l, _ in pairs], float)
    right = np.array([r for _, r in pairs], float)
    mids = (left + right) / 2
    d = right - left
    n = (d / np.linalg.norm(d, axis=1, keepdims=True)).mean(axis=0)
    n = n / np.linalg.norm(n)
    flat = float(np.median(mids[:, 0]))
    if n[0] <= 0.5:  # the pairs do not run left-right: only the straight estimate
        return lambda p: (flat, flat)
    centre = mids.mean(axis=0)

    def at(p):
        plane = float(centre[0] - ((p[1] - centre[1]) * n[1] + (p[2] - centre[2]) * n[2]) / n[0])
        return min(flat, plane), max(flat, plane)
    return at


def check_orientation(geom: Geometry, points: dict, areas, *, reference: str = "ref_precuneus",
                      participant: str | None = None, file=None) -> list:
    """Check annotations against the image's world coordinates (RAS+ mm).

    Parameters
    ----------
    geom : Geometry
    points : dict
        ``label -> (N, 3)`` RAS points (``L_hand``, ``R_hand``, ..., the reference).
    areas : sequence of str
        Penfield areas annotated in each hemisphere.

    Returns
    -------
    list of Problem
        Empty when: every ``L_<area>`` lies left (lower RAS x) of its ``R_<area>``;
        the reference lies left of the brain's midline (the plane through the L/R
        pairs' mid-points, see :func:`_midline`: the annotations straddle it by
        construction; not more than :data:`MIDLINE_MARGIN_MM` past it); and the
        annotations lie in the field of view. When they do not, and negating x and
        y (LPS <-> RAS) would put them right, the problem says so.

    Examples
    --------
    >>> g = Geometry(np.diag([1.0, 1.0, 1.0, 1.0]), (100, 100, 10), "sform")
    >>> pts = {"L_hand": [[60.0, 50, 5]], "R_hand": [[30.0, 50, 5]], "ref_precuneus": [[44.0, 20, 5]]}
    >>> "LPS" in str(check_orientation(g, pts, ["hand"])[0])
    True
    """

    where = dict(participant=participant, file=file)
    pts = {k: np.asarray(v, float).reshape(-1, 3) for k, v in points.items()}
    out = []
    allp = np.vstack(list(pts.values())) if pts else np.zeros((0, 3))
    if len(allp):
        inside = _inside_fov(geom, allp)
        flipped = _inside_fov(geom, allp * np.array([-1.0, -1.0, 1.0]))
        if inside.mean() < 0.5 and flipped.mean() > 0.5 and flipped.sum() > inside.sum():
            return [Problem(f"{int((~inside).sum())} of {len(allp)} annotation points lie outside the "
                            f"image, but all would lie inside with x and y negated: {_MIXUP}",
                            field="coordinateSystem", **where)]
    pairs = [(a, pts[f"L_{a}"][:, 0].mean(), pts[f"R_{a}"][:, 0].mean())
             for a in areas if f"L_{a}" in pts and f"R_{a}" in pts]
    swapped = [a for a, xl, xr in pairs if xl >= xr]
    if pairs and len(swapped) == len(pairs):
        return [Problem(f"every L_* annotation lies right of its R_* (RAS x, e.g. L_{pairs[0][0]} at "
                        f"x={pairs[0][1]:.1f}, R_{pairs[0][0]} at x={pairs[0][2]:.1f} mm): {_MIXUP}; or "
                        "the L_/R_ names were swapped", field="coordinateSystem", **where)]
    for a in swapped:
        xl, xr = next((xl, xr) for b, xl, xr in pairs if b == a)
        out.append(Problem(f"L_{a} (x={xl:.1f} mm) lies right of R_{a} (x={xr:.1f} mm) in RAS; "
                           "left-hemisphere annotations have the lower x: are the names swapped?",
                           field=f"L_{a}", **where))
    midline_at = _midline([(pts[f"L_{a}"].mean(axis=0), pts[f"R_{a}"].mean(axis=0))
                           for a, _, _ in pairs]) if pairs else None
    if pairs and reference in pts:
        ref = pts[reference].mean(axis=0)
        xref, (_, midline) = float(ref[0]), midline_at(ref)
        if xref > midline + MIDLINE_MARGIN_MM:
            out.append(Problem(f"the reference lies right of the midline (RAS x={xref:.1f} mm, midline "
                               f"x={midline:.1f} mm between the L/R annotations); it belongs in the "
                               "left precuneus", field=reference, **where))
    if pairs:  # drawn ROIs (``<label>_roi``: their centres) on their label's side
        for name, p in sorted(pts.items()):
            if not name.endswith("_roi"):
                continue
            left = not name.startswith("R_")  # L_* and the (left) reference
            x, (low, high) = float(p[:, 0].mean()), midline_at(p.mean(axis=0))
            midline = high if left else low
            if (x > midline + MIDLINE_MARGIN_MM) if left else (x < midline - MIDLINE_MARGIN_MM):
                out.append(Problem(
                    f"the ROI's centre lies {'right' if left else 'left'} of the midline (RAS x="
                    f"{x:.1f} mm, midline x={midline:.1f} mm) but its name says "
                    f"{'left' if left else 'right'}: are L/R swapped in the lookup table or the names?",
                    field=name, **where))
    return out
