"""Intensity profiles across the deep layer: sampling the image on a caliper-aligned grid,
and the result of an edge fit (:mod:`m1lib.measure.profile_fit`)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .edge_model import edge_model

__all__ = ["ProfileSettings", "Profile", "EdgeFit", "sample_profile", "CENTRAL_MM"]

#: Half-width (mm) of the central lines whose mean starts the fit (a tilted layer
#: smears the mean of wider patches).
CENTRAL_MM = 0.3


@dataclass(frozen=True)
class ProfileSettings:
    """How profiles are sampled and fitted (all lengths in mm).

    Attributes
    ----------
    extend_mm : float
        Sampling extends this far beyond both caliper points (at least; see
        ``extend_fraction``).
    extend_fraction : float
        ... or this fraction of the caliper length, whichever is larger.
    step_mm : float
        Sample spacing along the caliper.
    n_lines : int
        Number of parallel lines (odd; centred on the caliper).
    line_spacing_mm : float
        Distance between neighbouring parallel lines.
    search_mm : float
        Each deep-layer edge is searched within this distance of its caliper point.
    fit_angle : bool
        Fit the layer's orientation (else edges are taken perpendicular to the caliper).
    max_angle_deg : float
        Largest tilt between the layer normal and the caliper allowed.
    sigma_range_mm : tuple
        Plausible range of the shared blur width.
    min_edge_cnr : float
        Smallest edge contrast, in units of its standard error, for an edge to count.
    max_se_mm : float
        Largest standard error of the thickness for a fit to count.
    order : int
        Spline order of the image interpolation (1 = bilinear).
    min_u_fibre_voxels : float
        Narrowest U-fibre line the model allows, in voxels. A line not much wider
        than a voxel is unresolved: its width and depth trade off, and a fit free
        to shrink it moves the inner edge towards the line's centre (a thickness
        bias of up to half the true width). 1.5 voxels (0.375 mm at 0.25 mm) is
        narrower than the U-fibre line at 7T.
    max_u_fibre_mm : float
        Widest U-fibre line the model allows. Without it, where the line is
        absent, a model with one can take the deep layer itself for a wide
        "U-fibre line" and the superficial layers' edge for the deep layer's
        (the deep layer then measured a third of its thickness).
    min_superficial_mm : float
        Thinnest superficial layers (I-III, between a CSF edge and the deep
        layer) the model allows. M1's are over 1 mm thick; allowing 0.3 mm let a
        "CSF" edge take the real outer edge and a noise step in the deep layer be
        called its outer edge (thickness 0.45 mm short on the folded replica).
    min_u_dip_z : float
        A U-fibre line counts only where it is darker than the deep layer in
        every echo, its dip area beyond this many standard errors.
    optional_edge_bic : float
        BIC gain a model with an optional edge (U-fibre line, CSF) must show
        over the one without to be chosen (see :func:`~m1lib.measure.fit_profile`).
    outer_width : bool
        Give the outer (intracortical) edge its own blur width. Layer transitions
        are wider than tissue ones, but on the folded replica the extra freedom
        made the fit unstable (SD 0.26 mm at a quarter of the replica's noise):
        off by default.
    """

    extend_mm: float = 1.25
    extend_fraction: float = 0.5
    step_mm: float = 0.125
    n_lines: int = 7
    line_spacing_mm: float = 0.25
    search_mm: float = 0.75
    fit_angle: bool = True
    max_angle_deg: float = 35.0
    sigma_range_mm: tuple[float, float] = (0.01, 0.8)
    min_edge_cnr: float = 3.0
    max_se_mm: float = 0.25
    order: int = 1
    min_u_fibre_voxels: float = 1.5
    max_u_fibre_mm: float = 0.8
    min_superficial_mm: float = 1.0
    min_u_dip_z: float = 0.0
    optional_edge_bic: float = 100.0
    outer_width: bool = False


@dataclass
class Profile:
    """Image samples on a grid aligned with a caliper.

    ``values[e, o, n]`` is image ``e`` (an echo) at ``p1 + s[n] * d + offsets[o] *
    n_perp`` (mm in the slice plane), NaN outside the image. ``length_mm`` is the
    caliper length, ``pixel_mm`` the in-plane voxel size (geometric mean).
    """

    s: np.ndarray
    offsets: np.ndarray
    values: np.ndarray
    p1_uv: np.ndarray
    direction: np.ndarray
    normal: np.ndarray
    length_mm: float
    pixel_mm: float

    @property
    def mean(self) -> np.ndarray:
        """The profiles averaged across the parallel lines, (n_echo, n_s)."""
        with np.errstate(all="ignore"):
            return np.nanmean(self.values, axis=1)

    def to_uv(self, s, offset=0.0) -> np.ndarray:
        """Plane mm of positions along (``s``) and across (``offset``) the caliper."""
        s = np.atleast_1d(np.asarray(s, dtype=float))
        off = np.broadcast_to(np.asarray(offset, dtype=float), s.shape)
        return self.p1_uv + s[:, None] * self.direction + off[:, None] * self.normal


@dataclass
class EdgeFit:
    """Result of an edge fit (positions along the caliper from its first point, mm).

    ``e_outer`` / ``e_inner`` are positions along the fitted layer normal ``r``
    (``r = s cos(angle) + offset sin(angle)``), so ``thickness_mm = e_inner -
    e_outer`` is perpendicular to the layer. ``levels`` are those of the first
    fitted echo.
    """

    thickness_mm: float
    se_mm: float
    e_outer: float
    e_inner: float
    sigma_mm: float
    angle_deg: float
    levels: dict = field(default_factory=dict)
    rmse: float = float("nan")
    r2: float = float("nan")
    noise: float = float("nan")
    ok: bool = False
    reason: str = ""
    params: dict = field(default_factory=dict)

    @classmethod
    def failed(cls, reason: str) -> "EdgeFit":
        nan = float("nan")
        return cls(nan, nan, nan, nan, nan, nan, ok=False, reason=reason)

    def model(self, s, offset=0.0, echo: int = 0) -> np.ndarray:
        """The fitted model along the caliper (for plots)."""
        if not self.params:
            return np.full(np.shape(s), np.nan)
        a = np.deg2rad(self.angle_deg)
        r = np.asarray(s) * np.cos(a) + np.asarray(offset) * np.sin(a)
        return edge_model(r, self.params["edges"], self.params["levels_all"][echo],
                          self.params.get("sigmas", self.sigma_mm))


def sample_profile(images, plane, p1_ij, p2_ij,
                   settings: ProfileSettings = ProfileSettings()) -> Profile:
    """Sample one or more co-registered 2D slices on a caliper-aligned grid.

    Parameters
    ----------
    images : array (ni, nj) or sequence of them
        One slice per echo (the same slice of each echo).
    plane : m1lib.geometry.SlicePlane
        Its in-plane mm frame.
    p1_ij, p2_ij : array (2,)
        Caliper points in continuous in-plane voxel coordinates (first point on
        the superficial side).
    """
    imgs = [images] if np.ndim(images) == 2 else list(images)
    p1 = plane.ij_to_uv(p1_ij)[0]
    p2 = plane.ij_to_uv(p2_ij)[0]
    vec = p2 - p1
    length = float(np.hypot(*vec))
    if length <= 0:
        raise ValueError("caliper of zero length")
    d = vec / length
    nrm = np.array([-d[1], d[0]])
    ext = max(settings.extend_mm, settings.extend_fraction * length)
    n = int(np.ceil((length + 2 * ext) / settings.step_mm)) + 1
    s = -ext + settings.step_mm * np.arange(n)
    half = (settings.n_lines - 1) / 2
    offsets = settings.line_spacing_mm * (np.arange(settings.n_lines) - half)
    uv = p1 + s[None, :, None] * d + offsets[:, None, None] * nrm      # (o, n, 2)
    ij = plane.uv_to_ij(uv.reshape(-1, 2))
    inside = plane.inside(ij)
    vals = np.empty((len(imgs), ij.shape[0]))
    if settings.order == 1:
        # bilinear, by hand: the four neighbours of each sample (edges clamped)
        shape = np.asarray(imgs[0].shape)
        f = np.clip(ij, 0, shape - 1)
        i0 = np.minimum(np.floor(f).astype(int), shape - 2)
        t = f - i0
        w00 = (1 - t[:, 0]) * (1 - t[:, 1])
        w10 = t[:, 0] * (1 - t[:, 1])
        w01 = (1 - t[:, 0]) * t[:, 1]
        w11 = t[:, 0] * t[:, 1]
        a, b = i0[:, 0], i0[:, 1]
        for e, im in enumerate(imgs):
            vals[e] = (w00 * im[a, b] + w10 * im[a + 1, b] + w01 * im[a, b + 1]
                       + w11 * im[a + 1, b + 1])
    else:
        # spline interpolation in a crop around the samples
        lo = np.maximum(np.floor(ij.min(axis=0)).astype(int) - 3, 0)
        hi = np.minimum(np.ceil(ij.max(axis=0)).astype(int) + 4, np.asarray(imgs[0].shape))
        for e, im in enumerate(imgs):
            crop = np.asarray(im[lo[0]:hi[0], lo[1]:hi[1]], dtype=np.float64)
            vals[e] = ndimage.map_coordinates(crop, (ij - lo).T, order=settings.order,
                                              mode="nearest")
    vals[:, ~inside] = np.nan
    return Profile(s, offsets, vals.reshape(len(imgs), len(offsets), n), p1, d, nrm, length,
                   float(np.sqrt(plane.pixel_area_mm2)))


