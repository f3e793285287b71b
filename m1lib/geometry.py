"""Affines, world <-> voxel mapping and slice assignment for 2D multi-slice slabs.

The affine of an image maps voxel indices (voxel centres at integers) to RAS+ mm.
Which affine: the **sform** when its code is set, else the **qform**; when both
are set they must agree (every corner of the field of view within ``tol_mm``),
otherwise the image is refused, since one of them misplaces the annotations.
An image with neither code set has no known orientation and is refused too.
Voxel sizes are the column norms of the affine, never ``pixdim``.

A 2D multi-slice acquisition is measured in its acquisition plane: the first two
voxel axes span the plane, the third is the slice axis (``docs/data.md``). Each
annotation point is assigned to the slice whose centre is nearest along the slice
axis; a point farther than half a slice thickness from that centre, or outside the
field of view in the plane, is a :class:`~m1lib.errors.DataError`. Inside a slice,
positions are expressed in mm in an orthonormal basis of the plane (``uv``), so
oblique, anisotropic and even sheared in-plane grids are measured in true mm.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DataError

__all__ = [
    "Geometry", "SlicePlane", "image_geometry", "lps_to_ras", "assign_slice",
    "affine_disagreement_mm",
]


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
        Spatial shape (i, j, k); k is the slice axis of a 2D acquisition.
    source : str
        ``'sform'`` or ``'qform'``: which header affine this is.
    disagreement_mm : float
        Largest corner distance between sform and qform when both are set, else NaN.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    source: str
    disagreement_mm: float = float("nan")

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


def image_geometry(img, *, tol_mm: float = 0.01, participant: str | None = None,
                   file=None) -> Geometry:
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
    if len(img.shape) != 3:
        raise DataError(f"image has shape {img.shape} (expected a 3D slab, one echo per file)",
                        file=file, participant=participant)
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
    return Geometry(affine, shape, source, float(dis))


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
