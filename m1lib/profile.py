"""Intensity profiles across the deep layer of M1 and the edge fit that measures it.

A rater's caliper says roughly where the deep layer is; this module measures where
it actually is. The image is sampled on a small grid aligned with the caliper
(``n_lines`` parallel lines, extended ``extend_mm`` beyond both ends) and fitted
with a layered model: piecewise-constant tissue levels blurred by one Gaussian,
i.e. a sum of error-function edges with a **shared blur width** ``sigma``. From the
outside in (``s`` grows from the caliper's first, superficial point to its
second, white-matter point)::

    [CSF] | superficial layers | deep layer | U-fibre line | white matter
          e_csf               e_outer      e_inner        e_wm

The deep-layer thickness is ``e_inner - e_outer`` measured along the fitted layer
normal: the edges are modelled as straight and parallel across the small patch,
with their common orientation ``angle`` relative to the caliper a fitted
parameter, so the thickness depends neither on where the rater clicked nor on the
caliper's tilt. A CSF edge is added where the window reaches it (model chosen by
BIC). The echoes are fitted jointly: the geometry (edges, blur, angle) is shared,
each echo has its own levels.

Fitting is two-stage: an exhaustive search over edge positions on the mean of
the central lines (levels solved linearly for each candidate, contrasts required
to have the expected signs) gives the start, then
:func:`scipy.optimize.least_squares` (Levenberg-Marquardt, analytic Jacobian)
refines every parameter on all samples.

A fit is reported ``ok`` only when it converged, both deep-layer edges lie
within ``search_mm`` of the caliper's points, both have contrast of the expected
sign beyond noise (superficial brighter than deep; deep brighter than the
U-fibre line), no level is negative, the blur and tilt are plausible and the
thickness's standard error is small; otherwise thickness is NaN and ``reason``
says why. No number is returned silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, optimize, special

__all__ = ["ProfileSettings", "Profile", "EdgeFit", "sample_profile", "fit_profile",
           "edge_model", "obliquity_corrected"]


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
    outer_width : bool
        Give the outer (intracortical) edge its own blur width. Layer transitions
        are wider than tissue ones, but on the folded replica the extra freedom
        made the fit unstable (SD 0.26 mm at a quarter of the replica's noise):
        off by default.
    """

    extend_mm: float = 1.0
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
    max_u_fibre_mm: float = 0.6
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


# --------------------------------------------------------------------------- model

_SQRT2 = np.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def _phi(x):
    return 0.5 * (1.0 + special.erf(x / _SQRT2))


def edge_model(r, edges, levels, sigma):
    """Piecewise-constant levels separated at ``edges``, blurred by a Gaussian.

    ``f(r) = L0 + sum_k (L_{k+1} - L_k) * Phi((r - e_k) / sigma_k)`` (``sigma`` one
    width or one per edge).

    Examples
    --------
    >>> round(float(edge_model(0.0, [0.0], [1.0, 3.0], 0.1)), 6)
    2.0
    """
    r = np.asarray(r, dtype=float)
    sig = np.broadcast_to(np.asarray(sigma, dtype=float), (len(edges),))
    out = np.full(r.shape, float(levels[0]))
    for k, e in enumerate(edges):
        out = out + (levels[k + 1] - levels[k]) * _phi((r - e) / sig[k])
    return out


class _Model:
    """The layered model on all samples of all echoes, with its analytic Jacobian.

    Parameters ``x = [e_outer, t, (u), sigma, (angle), (gap), L_0 .. L_K per echo]``
    where the edges are ``[e_outer - gap], e_outer, e_outer + t, [e_outer + t + u]``
    and ``L`` the tissue levels (bounded below by 0: magnitude images). Without a
    U-fibre line (``with_u`` False) the deep layer meets white matter directly.
    """

    def __init__(self, s, o, y, with_csf: bool, fit_angle: bool, with_u: bool = True,
                 outer_width: bool = False):
        self.s, self.o, self.y = s, o, y            # y: (n_echo, n)
        self.n_e = y.shape[0]
        self.with_csf = with_csf
        self.fit_angle = fit_angle
        self.with_u = with_u
        self.i_u = 2 if with_u else None
        self.i_sigma = 2 + int(with_u)
        self.outer_width = outer_width
        self.i_sigma_outer = self.i_sigma + int(outer_width)
        nxt = self.i_sigma_outer + 1
        self.i_angle = nxt if fit_angle else None
        self.i_gap = nxt + int(fit_angle) if with_csf else None
        self.n_geo = nxt + int(fit_angle) + int(with_csf)
        self.i_outer_edge = 1 if with_csf else 0
        self.n_edges = 2 + int(with_u) + int(with_csf)

    def unpack(self, x):
        e_outer, t = float(x[0]), float(x[1])
        sigma = np.full(self.n_edges, float(x[self.i_sigma]))
        sigma[self.i_outer_edge] = float(x[self.i_sigma_outer])
        angle = float(x[self.i_angle]) if self.fit_angle else 0.0
        edges = [e_outer, e_outer + t]
        if self.with_u:
            edges.append(e_outer + t + float(x[self.i_u]))
        if self.with_csf:
            edges = [e_outer - float(x[self.i_gap])] + edges
        lev = np.reshape(x[self.n_geo:], (self.n_e, self.n_edges + 1))
        coef = lev.copy()                                         # level, then jumps
        coef[:, 1:] -= lev[:, :-1]
        return edges, sigma, angle, coef

    def r(self, angle):
        return self.s * np.cos(angle) + self.o * np.sin(angle)

    def basis(self, edges, sigma, angle):
        key = (tuple(edges), tuple(sigma), angle)
        if getattr(self, "_key", None) == key:        # resid and jac share x
            return self._basis
        r = self.r(angle)
        z = (r[None, :] - np.asarray(edges)[:, None]) / sigma[:, None]   # (K, n)
        self._key, self._basis = key, (r, z, _phi(z))
        return self._basis

    def resid(self, x):
        edges, sigma, angle, coef = self.unpack(x)
        _, _, P = self.basis(edges, sigma, angle)
        f = coef[:, :1] + coef[:, 1:] @ P                          # (n_e, n)
        return (f - self.y).ravel()

    def jac(self, x):
        edges, sigma, angle, coef = self.unpack(x)
        r, z, P = self.basis(edges, sigma, angle)
        g = np.exp(-0.5 * z * z) * (_INV_SQRT_2PI / sigma[:, None])  # dPhi/dr, (K, n)
        n = r.size
        J = np.zeros((self.n_e, n, len(x)))
        # d f / d e_k = -c_k g_k
        de = -coef[:, 1:, None] * g[None]                           # (n_e, K, n)
        off = 1 if self.with_csf else 0
        J[:, :, 0] = de.sum(axis=1)                                 # every edge moves with e_outer
        J[:, :, 1] = de[:, off + 1:].sum(axis=1)                    # t moves the inner edges
        if self.with_u:
            J[:, :, self.i_u] = de[:, off + 2]
        dz = de * z[None]                                           # d/d sigma_k = -c g z
        if self.outer_width:
            J[:, :, self.i_sigma] = dz.sum(axis=1) - dz[:, self.i_outer_edge]
            J[:, :, self.i_sigma_outer] = dz[:, self.i_outer_edge]
        else:
            J[:, :, self.i_sigma] = dz.sum(axis=1)
        if self.fit_angle:
            drda = -self.s * np.sin(angle) + self.o * np.cos(angle)
            J[:, :, self.i_angle] = -(de.sum(axis=1)) * drda[None]
        if self.with_csf:
            J[:, :, self.i_gap] = -de[:, 0]
        # d f / d L_j = Phi_{j-1} - Phi_j  (Phi_{-1} = 1, Phi_K = 0)
        ext = np.vstack([np.ones((1, n)), P, np.zeros((1, n))])
        dl = (ext[:-1] - ext[1:]).T                                 # (n, K + 1)
        for e in range(self.n_e):
            c0 = self.n_geo + e * (self.n_edges + 1)
            J[e, :, c0:c0 + self.n_edges + 1] = dl
        return J.reshape(self.n_e * n, len(x))


def _softplus(z):
    return np.logaddexp(0.0, z)


def _softplus_inv(x):
    x = np.maximum(x, 1e-9)
    return x + np.log(-np.expm1(-x))


class _Transformed:
    """Unconstrained parameters ``z`` for Levenberg-Marquardt: ``u = umin + (umax -
    umin) expit(z_u)``, ``sigma = exp(z_sigma)``, ``gap = gmin + softplus(z_gap)``."""

    def __init__(self, model: _Model, umin: float, gmin: float, umax: float = 0.6):
        self.m, self.umin, self.gmin, self.umax = model, umin, gmin, umax
        self.i_u, self.i_gap = model.i_u, model.i_gap
        self.i_s = sorted({model.i_sigma, model.i_sigma_outer})

    def to_x(self, z):
        x = np.array(z, dtype=float)
        if self.i_u is not None:
            x[self.i_u] = self.umin + (self.umax - self.umin) * special.expit(z[self.i_u])
        x[self.i_s] = np.exp(np.asarray(z)[self.i_s])
        if self.i_gap is not None:
            x[self.i_gap] = self.gmin + _softplus(z[self.i_gap])
        return x

    def to_z(self, x):
        z = np.array(x, dtype=float)
        if self.i_u is not None:
            f = np.clip((x[self.i_u] - self.umin) / (self.umax - self.umin), 1e-6, 1 - 1e-6)
            z[self.i_u] = special.logit(f)
        z[self.i_s] = np.log(np.asarray(x)[self.i_s])
        if self.i_gap is not None:
            z[self.i_gap] = _softplus_inv(x[self.i_gap] - self.gmin)
        return z

    def resid(self, z):
        return self.m.resid(self.to_x(z))

    def jac(self, z):
        J = self.m.jac(self.to_x(z))
        if self.i_u is not None:
            e = special.expit(z[self.i_u])
            J[:, self.i_u] *= (self.umax - self.umin) * e * (1 - e)
        J[:, self.i_s] *= np.exp(np.asarray(z)[self.i_s])[None, :]
        if self.i_gap is not None:
            J[:, self.i_gap] *= special.expit(z[self.i_gap])
        return J


def _grid_init(s, Y, length, search, sigma, step=0.15, min_gap=0.3,
               widths=(0.2, 0.4, 0.7)):
    """Starting edges from an exhaustive search on the line-averaged profiles.

    For edges on a grid (outer within ``search`` of 0, inner within ``search`` of
    ``length``, a few U-fibre line widths and, optionally, a CSF edge at least
    ``min_gap`` outside the outer one) the levels of every echo are solved by
    least squares (batched normal equations); the candidate with the smallest
    residual whose contrasts have the expected signs in every echo (superficial >
    deep > U-fibre < white matter; CSF edge the strongest) wins.

    Without a U-fibre line the deep layer meets white matter directly, and that
    contrast may have either sign (white matter brighter or darker than the deep
    layer) but must be the same in every echo.

    Returns ``{(with_csf, with_u): (rss, n_params, (e_outer, t, u, gap), levels)}``.
    """
    good = np.all(np.isfinite(Y), axis=0)
    s, Y = s[good], Y[:, good]
    h = step / 2
    grid = np.arange(s[0] - h, s[-1] + h + 1e-9, h)
    P = np.c_[np.ones_like(s), _phi((s[:, None] - grid[None, :]) / sigma)]   # (n, 1+G)
    S = P.T @ P
    Q = P.T @ Y.T                                                            # (1+G, n_e)
    yy = (Y * Y).sum(axis=1)

    def gi(e):
        return np.clip(np.rint((e - grid[0]) / h).astype(int), 0, len(grid) - 1) + 1

    eo = np.arange(-search, search + 1e-9, step)
    ei = length + np.arange(-search, search + 1e-9, step)
    out = {}
    for with_u in (True, False):
        EO, EI, UU = (a.ravel() for a in np.meshgrid(
            eo, ei, np.asarray(widths) if with_u else np.zeros(1), indexing="ij"))
        keep = EI - EO > 0.1
        EO, EI, UU = EO[keep], EI[keep], UU[keep]
        inner_cols = [gi(EI)] + ([gi(EI + UU)] if with_u else [])
        for with_csf in (False, True):
            if with_csf:
                gaps = np.arange(min_gap, max(min_gap, EO.max() - s[0]) + 1e-9, 2 * step)
                EO2, G2 = np.repeat(EO, len(gaps)), np.tile(gaps, len(EO))
                EI2, UU2 = np.repeat(EI, len(gaps)), np.repeat(UU, len(gaps))
                ok = EO2 - G2 > s[0] + step
                if not ok.any():
                    continue
                EO2, G2, EI2, UU2 = EO2[ok], G2[ok], EI2[ok], UU2[ok]
                cols = [gi(EO2 - G2), gi(EO2), gi(EI2)] + ([gi(EI2 + UU2)] if with_u else [])
                idx = np.c_[np.zeros(len(EO2), int), np.column_stack(cols)]
                params = np.c_[EO2, EI2 - EO2, UU2, G2]
            else:
                idx = np.c_[np.zeros(len(EO), int), gi(EO), np.column_stack(inner_cols)]
                params = np.c_[EO, EI - EO, UU, np.full(len(EO), np.nan)]
            off = 1 if with_csf else 0
            A = S[idx[:, :, None], idx[:, None, :]] + 1e-9 * np.eye(idx.shape[1])
            B = Q[idx]                                                       # (N, m, n_e)
            coef = np.linalg.solve(A, B)                                     # (N, m, n_e)
            rss = (yy[None, :] - np.einsum("imk,imk->ik", coef, B)).sum(axis=1)
            signs = np.all(coef[:, off + 1] < 0, axis=1)
            if with_u:
                signs &= np.all((coef[:, off + 2] < 0) & (coef[:, off + 3] > 0), axis=1)
            else:
                signs &= np.all(coef[:, off + 2] > 0, axis=1) | np.all(coef[:, off + 2] < 0, axis=1)
            if with_csf:
                signs &= np.all(np.abs(coef[:, 1]) >= np.abs(coef[:, off + 1]), axis=1)
            if signs.any():
                rss = np.where(signs, rss, np.inf)
            j = int(np.argmin(rss))
            n_geo = 2 + int(with_u) + off
            out[(with_csf, with_u)] = (float(rss[j]), idx.shape[1] * Y.shape[0] + n_geo,
                                       tuple(float(v) for v in params[j]),
                                       np.maximum(np.cumsum(coef[j].T, axis=1), 0.0))
    return out


MIN_SUPERFICIAL_MM = 0.3   # the superficial layers (I-III) are never thinner than this
MIN_U_MM = 0.1


def fit_profile(profile: Profile, settings: ProfileSettings = ProfileSettings()) -> EdgeFit:
    """Fit the layered edge model to a sampled profile (all its echoes jointly).

    Returns an :class:`EdgeFit`; ``thickness_mm`` is NaN unless ``ok``.

    Notes
    -----
    Parameters: outer edge ``e_outer`` (within ``search_mm`` of the caliper's first
    point), deep-layer thickness ``t`` (inner edge within ``search_mm`` of the
    second point), U-fibre line width ``u``, shared blur ``sigma``, the layer tilt
    ``angle``, when the window reaches it the CSF gap, and each echo's levels.
    ``r = s cos(angle) + offset sin(angle)`` is the position along the layer
    normal, so ``t`` is the perpendicular thickness. The model with or without
    the CSF edge is the one the grid search prefers by BIC, unless it fails its
    checks and the other passes. Levenberg-Marquardt works on unconstrained
    parameters (``u = umin + softplus``, ``sigma = exp``, ``gap = 0.3 mm +
    softplus``); the search windows, blur range and tilt limit are checked
    afterwards. Standard errors come from the Jacobian at the solution (a
    parameter pinned at its lower bound held fixed), scaled by the residual
    variance and inflated by the oversampling of the interpolated samples (about
    ``sqrt(pixel / step)`` along and ``sqrt(pixel / line spacing)`` across the
    caliper); they are approximate, for screening fits. The inner edge's contrast
    is tested on the U-fibre dip's area ((deep - U level) x width) as well as its
    depth, since an unresolved line's depth alone is poorly determined.
    """
    st = settings
    vals = profile.values
    good = np.all(np.isfinite(vals), axis=0)
    if good.mean() < 0.9:
        return EdgeFit.failed("profile leaves the image")
    s2d = np.broadcast_to(profile.s[None, :], good.shape)
    o2d = np.broadcast_to(profile.offsets[:, None], good.shape)
    s, o = s2d[good], o2d[good]
    y = vals[:, good]
    L = profile.length_mm
    pix = profile.pixel_mm
    smin = float(profile.s[0])
    w = st.search_mm
    sig0 = float(np.clip(0.5 * pix, st.sigma_range_mm[0] * 2, st.sigma_range_mm[1] / 2))
    # start from the central lines: a tilted layer smears the mean of wide patches
    central = np.abs(profile.offsets) <= CENTRAL_MM + 1e-9
    with np.errstate(all="ignore"):
        mean_c = np.nanmean(vals[:, central], axis=1)
    # an unresolved U-fibre line's width and depth trade off; letting it shrink
    # would move the inner edge towards the line's centre (see ProfileSettings)
    umin = max(MIN_U_MM, st.min_u_fibre_voxels * pix)
    umax = max(st.max_u_fibre_mm, umin + 0.05)
    inits = _grid_init(profile.s, mean_c, L, w, sig0, min_gap=MIN_SUPERFICIAL_MM,
                       widths=tuple(u for u in (0.2, 0.35, 0.5) if umin <= u <= umax) or (umin,))
    if not inits:
        return EdgeFit.failed("no starting point")
    along = max(1.0, pix / st.step_mm)
    across = max(1.0, pix / st.line_spacing_mm) if st.n_lines > 1 else 1.0
    inflate = float(np.sqrt(along * across))

    def refine(model, x0):
        tr = _Transformed(model, umin, MIN_SUPERFICIAL_MM, umax)
        x0 = np.array(x0, dtype=float)
        if model.with_u:
            x0[model.i_u] = min(max(x0[model.i_u], umin + 1e-3), umax - 1e-3)
        x0[model.i_sigma] = max(x0[model.i_sigma], 1e-3)
        x0[model.i_sigma_outer] = max(x0[model.i_sigma_outer], 1e-3)
        if model.with_csf:
            x0[model.i_gap] = max(x0[model.i_gap], MIN_SUPERFICIAL_MM + 1e-3)
        try:
            # a diverging step may overflow; such a fit fails its checks below
            with np.errstate(all="ignore"):
                res = optimize.least_squares(tr.resid, tr.to_z(x0), jac=tr.jac, method="lm",
                                             x_scale="jac", max_nfev=100, ftol=1e-5, xtol=1e-5)
        except (ValueError, np.linalg.LinAlgError):  # pragma: no cover
            return None
        if not np.all(np.isfinite(res.x)):
            return None
        x = tr.to_x(res.x)
        return res, x, model.jac(x)

    def start(key):
        with_csf, with_u = key
        _, _, (e0, t0, u0, g0), lev0 = inits[key]
        geo = ([e0, t0] + ([u0] if with_u else []) + [sig0] * (1 + int(st.outer_width))
               + ([0.0] if st.fit_angle else [])
               + ([g0] if with_csf else []))
        return np.r_[geo, lev0.ravel()]

    def warm_csf(x_0, m0, m1):
        """CSF-model start from a no-CSF fit: its geometry and the best CSF gap."""
        e_out0 = x_0[0]
        if not (abs(e_out0) <= w and e_out0 - MIN_SUPERFICIAL_MM > smin + st.step_mm):
            return None
        geo = list(x_0[:m0.n_geo])
        best = None
        for gap in np.arange(MIN_SUPERFICIAL_MM, e_out0 - smin, 2 * st.step_mm):
            x = np.r_[geo, gap, np.zeros(m1.n_e * (m1.n_edges + 1))]
            edges, sig, ang, _ = m1.unpack(x)
            _, _, P = m1.basis(edges, sig, ang)
            B = np.c_[np.ones(P.shape[1]), P.T]
            coef, *_ = np.linalg.lstsq(B, y.T, rcond=None)
            rss = float(((B @ coef - y.T) ** 2).sum())
            if best is None or rss < best[0]:
                best = (rss, np.r_[geo, gap, np.maximum(np.cumsum(coef.T, axis=1), 0.0).ravel()])
        return None if best is None else best[1]

    # Refine the models in the order the grid search prefers them (BIC), until
    # one passes its checks; the best passing one (BIC) is reported. A CSF
    # model also starts from the matching no-CSF fit's geometry.
    n_s = mean_c.shape[1]
    order = sorted(inits, key=lambda k: n_s * np.log(max(inits[k][0], 1e-300) / n_s)
                   + inits[k][1] * np.log(n_s))
    fits, nocsf = [], {}
    for key in order:
        with_csf, with_u = key
        model = _Model(s, o, y, with_csf, st.fit_angle, with_u, st.outer_width)
        starts = [start(key)]
        if with_csf and with_u in nocsf:
            ws = warm_csf(nocsf[with_u][0], nocsf[with_u][1], model)
            if ws is not None:
                starts.append(ws)
        results = [r for r in (refine(model, x0) for x0 in starts) if r is not None]
        if not results:
            continue
        best = min(results, key=lambda r: r[0].cost)
        if not with_csf:
            nocsf[with_u] = (best[1], model)
        fits.append(_evaluate(*best, model, L, inflate, st, umin))
        if fits[-1].ok and len([f for f in fits if f.ok]) >= 1 and len(fits) >= 2:
            break
    if not fits:
        return EdgeFit.failed("least_squares failed")
    valid = [f for f in fits if f.ok]
    return min(valid or fits, key=lambda f: f.params["bic"])


CENTRAL_MM = 0.3


def _evaluate(res, x, jac, model: _Model, L, inflate, st, umin) -> EdgeFit:
    """Turn a least-squares result into an :class:`EdgeFit` with its checks."""
    edges, sigma, angle, coef = model.unpack(x)
    resid = res.fun
    n = resid.size
    p = len(x)
    rss = float(resid @ resid)
    noise = np.sqrt(rss / max(n - p, 1))
    yc = model.y - model.y.mean(axis=1, keepdims=True)
    tss = float((yc * yc).sum())
    r2 = 1.0 - rss / tss if tss > 0 else float("nan")
    bic = n * np.log(max(rss, 1e-300) / n) + p * np.log(n)
    # a parameter pinned at its lower bound (the U-fibre width, the CSF gap) is
    # held fixed: the curvature there says nothing about its uncertainty
    free = np.ones(p, bool)
    if model.with_u:
        free[model.i_u] = umin + 1e-3 < x[model.i_u] < max(st.max_u_fibre_mm, umin + 0.05) - 1e-3
    if model.with_csf:
        free[model.i_gap] = x[model.i_gap] > MIN_SUPERFICIAL_MM + 1e-3
    cov = np.zeros((p, p))
    try:
        jf = jac[:, free]
        cov[np.ix_(free, free)] = np.linalg.pinv(jf.T @ jf) * noise ** 2 * inflate ** 2
        se = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:  # pragma: no cover
        cov = np.full((p, p), np.nan)
        se = np.full(p, np.nan)
    se_t = float(se[1])
    off = 1 if model.with_csf else 0
    names = ((["csf"] if model.with_csf else []) + ["superficial", "deep"]
             + (["u_fibre"] if model.with_u else []) + ["white_matter"])
    lev_all = np.cumsum(coef, axis=1)
    levels = dict(zip(names, map(float, lev_all[0])))
    # standard errors of the jumps L_{k+1} - L_k, from the levels' covariance
    g0 = model.n_geo
    nl = model.n_edges + 1
    finite = bool(np.all(np.isfinite(se)))
    se_c = np.zeros(coef.shape)
    for e in range(model.n_e):
        base = g0 + e * nl
        for k in range(1, nl):
            i, j = base + k, base + k - 1
            v = cov[i, i] + cov[j, j] - 2 * cov[i, j] if finite else np.nan
            se_c[e, k] = np.sqrt(max(v, 0.0))
    d_outer, d_inner = coef[:, 1 + off], coef[:, 2 + off]
    u = float(x[model.i_u]) if model.with_u else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        cnr_outer = float(np.sum(-d_outer / se_c[:, 1 + off]) / np.sqrt(model.n_e))
        z_inner = d_inner / se_c[:, 2 + off]
    if model.with_u:
        # The U-fibre line's width and depth trade off when it is thin, so its
        # jump alone is poorly determined; its dip area (deep - U level) x width is not.
        dip = np.zeros(model.n_e)
        se_dip = np.zeros(model.n_e)
        for e in range(model.n_e):
            i_deep, i_u = g0 + e * nl + off + 2, g0 + e * nl + off + 3
            grad = np.zeros(len(x))
            grad[i_deep], grad[i_u], grad[model.i_u] = u, -u, -d_inner[e]
            dip[e] = -d_inner[e] * u
            se_dip[e] = np.sqrt(max(float(grad @ cov @ grad), 0.0)) if finite else np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            cnr_inner = float(max(np.sum(dip / se_dip), np.sum(-z_inner)) / np.sqrt(model.n_e))
        inner_ok = bool(np.all(d_inner < 0))
    else:
        # deep layer straight onto white matter: either sign, the same in every echo
        dip = se_dip = np.zeros(0)
        cnr_inner = float(abs(np.sum(z_inner)) / np.sqrt(model.n_e))
        inner_ok = bool(np.all(d_inner > 0) or np.all(d_inner < 0))
    e_outer, e_inner = edges[off], edges[off + 1]
    fit = EdgeFit(
        thickness_mm=float(e_inner - e_outer), se_mm=se_t,
        e_outer=float(e_outer), e_inner=float(e_inner), sigma_mm=float(sigma[-1]),
        angle_deg=float(np.rad2deg(angle)), levels=levels, rmse=float(noise),
        r2=float(r2), noise=float(noise), ok=True, reason="ok",
        params=dict(edges=[float(e) for e in edges], with_csf=model.with_csf, bic=float(bic),
                    levels_all=lev_all.tolist(), cnr_outer=cnr_outer, cnr_inner=cnr_inner,
                    dip=dip.tolist(), se_dip=se_dip.tolist(), u=float(u),
                    with_u=model.with_u, sigmas=[float(v) for v in sigma],
                    mid_mm=float(e_outer + 0.5 * (e_inner - e_outer)),
                    se_mid_mm=float(np.sqrt(max(cov[0, 0] + 0.25 * cov[1, 1] + cov[0, 1], 0.0))),
                    sigma_outer_mm=float(sigma[model.i_outer_edge]),
                    nfev=int(res.nfev), status=int(res.status)))
    reasons = []
    if res.status <= 0:
        reasons.append(f"not converged ({res.message})")
    w = st.search_mm
    if abs(e_outer) > w:
        reasons.append(f"outer edge {e_outer:+.2f} mm from the caliper's first point "
                       f"(searched within {w:g} mm)")
    if abs(e_inner - L) > w:
        reasons.append(f"inner edge {e_inner - L:+.2f} mm from the caliper's second point "
                       f"(searched within {w:g} mm)")
    for nm, sg in (("blur width", sigma[-1]), ("outer edge width", sigma[model.i_outer_edge])):
        if not (st.sigma_range_mm[0] < sg < st.sigma_range_mm[1]):
            reasons.append(f"{nm} {sg:.3g} mm outside {st.sigma_range_mm}")
    if abs(np.rad2deg(angle)) > st.max_angle_deg:
        reasons.append(f"layer tilt {np.rad2deg(angle):.0f} deg beyond {st.max_angle_deg:g}")
    if np.any(lev_all < 0):
        reasons.append("a fitted tissue level is negative")
    # a CSF edge inside the window must be the stronger one (else the model has
    # taken the real outer edge for CSF); beyond the window it is a nuisance
    if model.with_csf and edges[0] > float(np.min(model.r(angle))) + sigma[0]:
        if not np.all(np.abs(coef[:, 1]) >= np.abs(d_outer)):
            reasons.append("CSF edge weaker than the deep-layer edge")
    if not (np.all(d_outer < 0) and cnr_outer > st.min_edge_cnr):
        reasons.append("no contrast at the outer edge (superficial not brighter than deep)")
    if not (inner_ok and cnr_inner > st.min_edge_cnr):
        reasons.append("no contrast at the inner edge (deep layer neither brighter than a "
                       "U-fibre line nor distinct from white matter)" if not model.with_u else
                       "no contrast at the inner edge (deep layer not brighter than the U-fibre line)")
    if not np.isfinite(se_t) or se_t > st.max_se_mm:
        reasons.append(f"thickness uncertain (se {se_t:.3g} mm > {st.max_se_mm:g} mm)")
    if reasons:
        fit.ok = False
        fit.reason = "; ".join(reasons)
        fit.params["thickness_unchecked_mm"] = fit.thickness_mm
        fit.thickness_mm = float("nan")
    return fit


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
