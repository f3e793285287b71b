"""An MR acquisition of the replica's anatomy that is not the fitter's model.

:func:`m1lib.measure.fit_profile` fits piecewise-constant layers blurred by one Gaussian. This
module images the folded anatomy of :mod:`m1lib.replica.anatomy` the way a 2D
multi-echo GRE does, so that a measurement is validated on images it was not
built from:

1. **Tissue on a fine grid.** Each slice is sampled on ``sub_slices`` planes
   through its thickness (0.25 mm apart for 2 mm slices) and, in plane, at half
   the voxel size. Tissue fractions change smoothly (logistic transitions,
   ``tissue_width_mm`` between tissues and the wider ``layer_width_mm`` between
   the superficial and deep layers): no step, no Gaussian edge. The deep layer is
   the shell ``0 < d_white < t(x)`` with ``t`` varying smoothly between the
   Penfield areas; its R2* likewise. The U-fibre line under the white surface
   varies in width (a smooth random field) and is absent where that field is
   low; white matter can be brighter or darker than the deep layer; pial veins
   are dark tubes lying on the pial surface.
2. **Through-slice partial volume**: the sub-slice planes are averaged (a 2 mm
   box slice profile); the cortex crosses them at its own obliquity.
3. **k-space**: the in-plane image is Fourier transformed and only the
   acquired matrix is kept (a sinc point-spread function: Gibbs ringing), with an
   optional Tukey filter; a receive-bias field multiplies the object.
4. **Motion** (participants excluded for it): for a random subset of
   phase-encode lines the object was shifted rigidly in plane, i.e. those
   k-space lines carry the shift's linear phase.
5. **Noise**: complex Gaussian, its SD scaled by a smooth g-factor map
   (parallel imaging: worst at the centre of the field of view along the
   phase-encode axis), then the magnitude.

Coordinates are MNI mm ("slab mm" = MNI; the slab is axial). Arrays are indexed
``[e, k, y, x]`` with x and y ascending; :func:`slab_affine` stores them LAS as
the flat phantom does (voxel i from right to left, j posterior to anterior).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, sparse, special
from scipy.signal import windows

from .anatomy import Anatomy

__all__ = ["Acquisition", "SubjectSpec", "render_subject", "tissue_signal", "slab_affine",
           "smooth_random_field", "bias_field"]


@dataclass(frozen=True)
class Acquisition:
    """Slab geometry and acquisition settings (lengths in mm, times in s)."""

    voxel_mm: float = 0.25
    slice_mm: float = 2.0
    n_slices: int = 12
    z0: float = 43.0                      # centre of slice 0
    x_range: tuple[float, float] = (-60.0, 60.0)
    y_range: tuple[float, float] = (-76.0, 36.0)
    sub_slices: int = 8
    oversample: int = 2
    kspace_filter: str = "tukey"          # "tukey" or "none" (unfiltered: full Gibbs ringing)
    tukey_alpha: float = 0.3
    echo_times_s: tuple[float, ...] = (0.010, 0.020)
    tissue_width_mm: float = 0.05
    layer_width_mm: float = 0.12

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) of a slice."""
        return (int(round((self.y_range[1] - self.y_range[0]) / self.voxel_mm)),
                int(round((self.x_range[1] - self.x_range[0]) / self.voxel_mm)))

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Voxel-centre x, y (ascending) and slice-centre z."""
        ny, nx = self.shape
        x = self.x_range[0] + self.voxel_mm * (np.arange(nx) + 0.5)
        y = self.y_range[0] + self.voxel_mm * (np.arange(ny) + 0.5)
        z = self.z0 + self.slice_mm * np.arange(self.n_slices)
        return x, y, z


def slab_affine(acq: Acquisition, z_shift_mm: float = 0.0) -> np.ndarray:
    """Voxel (i, j, k) -> MNI/RAS mm, storage LAS (i runs from right to left)."""
    x, y, z = acq.axes()
    return np.array([
        [-acq.voxel_mm, 0, 0, x[-1]],
        [0, acq.voxel_mm, 0, y[0]],
        [0, 0, acq.slice_mm, z[0] + z_shift_mm],
        [0, 0, 0, 1.0],
    ])


@dataclass
class SubjectSpec:
    """One participant's tissue, layer, vessel, coil and motion parameters.

    ``tissues`` maps ``csf, superficial, deep, u_fibre, white_matter, vein`` to
    (M0, R2* in 1/s) in image units (gain included). ``anchors`` (n, 3) are the
    Penfield areas' points (MNI mm) with their deep-layer distance level
    ``t_level`` (mm of ``d_white``) and deep-layer R2* ``r2_deep``; far from
    every anchor (``anchor_sd_mm``) the layer is ``t_background`` thick and the
    deep layer not distinct from the superficial one (the hypointense deep layer
    is M1's). ``u_width_mm`` and ``u_absent`` set the U-fibre line (mean width,
    and the share of the surface where it is missing); ``veins`` rows are (nx,
    ny, nz, offset, radius, cx, cy, cz): a tube of that radius lying on the pial
    surface along the plane ``n . x = offset``, 12 mm long around ``c``. ``bias`` 5 coefficients of
    :func:`bias_field`; ``sigma`` the noise SD at g = 1; ``g_max`` the g-factor
    at the centre; ``motion_lines`` the share of phase-encode lines acquired
    shifted by ``motion_shift_mm`` (up to, per line, uniform); ``z_shift_mm``
    moves the slab along z (participants are not positioned identically).
    """

    tissues: dict
    anchors: np.ndarray
    t_level: np.ndarray
    r2_deep: np.ndarray
    t_background: float = 1.8
    anchor_sd_mm: float = 6.0
    u_width_mm: float = 0.35
    u_absent: float = 0.25
    veins: np.ndarray = field(default_factory=lambda: np.zeros((0, 8)))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(5))
    sigma: float = 0.0
    g_max: float = 1.4
    motion_lines: float = 0.0
    motion_shift_mm: float = 0.0
    z_shift_mm: float = 0.0
    seed: int = 0


def tissue_signal(m0_r2, te: float):
    """GRE magnitude ``M0 exp(-TE R2*)`` (T1 weighting folded into M0)."""
    m0, r2 = m0_r2
    return m0 * np.exp(-te * np.asarray(r2))


def smooth_random_field(rng: np.random.Generator, shape, sd_vox: float) -> np.ndarray:
    """Zero-mean, unit-SD Gaussian random field (Gaussian-smoothed white noise)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sd_vox, mode="wrap")
    return (f - f.mean()) / max(f.std(), 1e-12)


def bias_field(coef, x, y, z, centre=(0.0, -20.0, 55.0)) -> np.ndarray:
    """Receive field ``exp(c0 X + c1 Y + c2 Z + c3 X^2 + c4 Y^2)`` (X, Y over 56 mm, Z over 20 mm)."""
    X = (np.asarray(x) - centre[0]) / 56.0
    Y = (np.asarray(y) - centre[1]) / 56.0
    Z = (np.asarray(z) - centre[2]) / 20.0
    c = np.asarray(coef, dtype=float)
    return np.exp(c[0] * X + c[1] * Y + c[2] * Z + c[3] * X * X + c[4] * Y * Y)


# ------------------------------------------------------------------ fields
def _smooth_step(x, out=None):
    """Logistic transition: 0 -> 1 as x goes from -inf to +inf (x in widths).

    ``expit(x) = (1 + tanh(x / 2)) / 2``, computed in place in float32 (numpy's
    tanh is vectorised; scipy's expit is about twice as slow here).
    """
    out = np.multiply(x, np.float32(0.5), out=out, dtype=np.float32)
    np.tanh(out, out=out)
    out *= np.float32(0.5)
    out += np.float32(0.5)
    return out


def _linear_matrix(t: np.ndarray, n: int) -> sparse.csr_matrix:
    """Sparse linear-interpolation weights (len(t), n) at fractional indices t."""
    t = np.clip(t, 0, n - 1)
    i0 = np.minimum(np.floor(t).astype(int), n - 2)
    f = t - i0
    rows = np.r_[np.arange(len(t)), np.arange(len(t))]
    # float32 weights: the planes are float32 and the products stay in single precision
    return sparse.csr_matrix((np.r_[1 - f, f].astype(np.float32), (rows, np.r_[i0, i0 + 1])),
                             shape=(len(t), n))


class _Planes:
    """Anatomy fields on the fine in-plane grid of any plane z (cached interpolators)."""

    def __init__(self, anat: Anatomy, acq: Acquisition):
        self.anat, self.acq = anat, acq
        x, y, _ = acq.axes()
        h = acq.voxel_mm / acq.oversample
        off = (np.arange(acq.oversample) + 0.5) * h - acq.voxel_mm / 2
        self.xf = (x[:, None] + off[None, :]).ravel()
        self.yf = (y[:, None] + off[None, :]).ravel()
        b = anat.box
        self.mx = _linear_matrix((self.xf - b.origin[0]) / b.step, b.shape[0])
        self.my = _linear_matrix((self.yf - b.origin[1]) / b.step, b.shape[1])

    def field(self, name: str, z: float) -> np.ndarray:
        """(ny_f, nx_f) float32 of a field on the plane z (linear in x, y and z)."""
        b = self.anat.box
        t = np.clip((z - b.origin[2]) / b.step, 0, b.shape[2] - 1)
        k = min(int(np.floor(t)), b.shape[2] - 2)
        f = t - k
        vol = getattr(self.anat, name)
        if f < 1e-6:              # a plane of the grid (sub-slices 0.25 mm apart are)
            plane = np.asarray(vol[:, :, k], dtype=np.float32)
        else:
            plane = (1 - f) * vol[:, :, k] + f * vol[:, :, k + 1]      # (nx_a, ny_a)
        return self.interpolate(plane)

    def interpolate(self, plane: np.ndarray, stride: int = 1) -> np.ndarray:
        """A plane on the anatomy grid (nx_a, ny_a), or every ``stride``-th point of
        it, onto the fine grid (ny_f, nx_f)."""
        if stride == 1:
            return np.asarray(self.my @ (self.mx @ plane).T, dtype=np.float32)
        if getattr(self, "_stride", None) != stride:
            b = self.anat.box
            self._stride = stride
            self._mxs = _linear_matrix((self.xf - b.origin[0]) / (b.step * stride), plane.shape[0])
            self._mys = _linear_matrix((self.yf - b.origin[1]) / (b.step * stride), plane.shape[1])
        return np.asarray(self._mys @ (self._mxs @ plane).T, dtype=np.float32)

    def coarse_xy(self):
        """Fine-grid x, y as 2-D float32 arrays (ny_f, nx_f)."""
        if not hasattr(self, "_xy"):
            self._xy = tuple(a.astype(np.float32) for a in np.meshgrid(self.xf, self.yf))
        return self._xy


def anchor_weights(spec: SubjectSpec, xyz: np.ndarray, sd: float) -> np.ndarray:
    """(n_anchor, ...) Gaussian weights of each anchor, each confined to its hemisphere."""
    a = np.asarray(spec.anchors, dtype=float)
    d2 = sum((xyz[..., c][None] - a[:, c].reshape((-1,) + (1,) * (xyz.ndim - 1))) ** 2
             for c in range(3))
    side = np.sign(a[:, 0]).reshape((-1,) + (1,) * (xyz.ndim - 1))
    return np.exp(-0.5 * d2 / sd ** 2) * special.ndtr(side * xyz[..., 0][None] / 0.5)


def layer_fields(spec: SubjectSpec, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deep-layer level ``t`` (mm of d_white) and deep-layer R2* at points (..., 3).

    ``t = t_bg + sum_a phi_a (t_a - t_bg)``, ``phi_a = w_a / max(1, sum_b w_b)``
    (Gaussian weights of SD ``anchor_sd_mm``), and R2* alike with twice the SD
    around the superficial layers' R2*: both equal the anchor's values at an
    anchor far from the others, and the deep layer is distinct only in M1.
    """
    w = anchor_weights(spec, xyz, spec.anchor_sd_mm)
    phi = w / np.maximum(1.0, w.sum(axis=0))
    t = spec.t_background + np.tensordot(np.asarray(spec.t_level) - spec.t_background, phi, 1)
    w2 = anchor_weights(spec, xyz, 2 * spec.anchor_sd_mm)
    phi2 = w2 / np.maximum(1.0, w2.sum(axis=0))
    r2_sup = spec.tissues["superficial"][1]
    r2 = r2_sup + np.tensordot(np.asarray(spec.r2_deep) - r2_sup, phi2, 1)
    return t, r2


def solve_anchor_values(spec: SubjectSpec, points: np.ndarray, targets: np.ndarray,
                        which: str) -> np.ndarray:
    """Anchor values whose blended field (:func:`layer_fields`) equals ``targets`` at ``points``.

    The blend is linear in the anchor values, so this is one small linear solve
    (``which`` is ``"t"`` or ``"r2"``).
    """
    pts = np.asarray(points, dtype=float)
    sd = spec.anchor_sd_mm if which == "t" else 2 * spec.anchor_sd_mm
    base = spec.t_background if which == "t" else spec.tissues["superficial"][1]
    w = anchor_weights(spec, pts, sd)                         # (n_anchor, n_points)
    phi = w / np.maximum(1.0, w.sum(axis=0))
    return base + np.linalg.solve(phi.T, np.asarray(targets, dtype=float) - base)


def u_fibre_field(spec: SubjectSpec, anat: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """The U-fibre line's width (mm) on a 1 mm grid of the anatomy box, and that grid's origin.

    A smooth random field (SD 3 mm) thresholded so that the line is missing on
    ``u_absent`` of the grid and ramps up to about ``u_width_mm`` elsewhere.
    """
    b = anat.box
    stride = int(round(1.0 / b.step))
    shape = tuple(int(np.ceil(s / stride)) + 1 for s in b.shape)
    f = smooth_random_field(np.random.default_rng([spec.seed, 7]), shape, 3.0)
    q = np.quantile(f, spec.u_absent)
    u = spec.u_width_mm * np.clip((f - q) / 0.6, 0.0, 1.6)
    return u.astype(np.float32), np.asarray(b.origin)


def _sample_grid(vol: np.ndarray, origin, step: float, xyz: np.ndarray) -> np.ndarray:
    idx = [(xyz[..., c] - origin[c]) / step for c in range(3)]
    return ndimage.map_coordinates(vol, [i.ravel() for i in idx], order=1,
                                   mode="nearest").reshape(xyz.shape[:-1])


def vein_fraction(spec: SubjectSpec, d_pial: np.ndarray, x, y, z: float, width: float,
                  half_length_mm: float = 6.0):
    """Share of each point inside a pial vein, or None without veins.

    A vein is the tube of radius ``r`` around the curve where the surface
    ``d_pial = -r`` (lying on the pial surface) meets the plane ``n . p = c``,
    within ``half_length_mm`` of its centre point. ``x`` and ``y`` are the
    plane's (ascending) grid coordinates, 2-D; only the box within
    ``half_length_mm + 3`` mm of a vein's centre is evaluated (beyond it the
    fraction is below 0.003).
    """
    if not len(spec.veins):
        return None
    out = np.zeros(d_pial.shape, np.float32)
    inv_w = np.float32(1 / width)
    xs, ys = x[0], y[:, 0]
    reach_mm = half_length_mm + 3.0
    for nx_, ny_, nz_, c, r, cx, cy, cz in np.asarray(spec.veins, dtype=float):
        if abs(z - cz) >= reach_mm:
            continue
        i0, i1 = np.searchsorted(xs, [cx - reach_mm, cx + reach_mm])
        j0, j1 = np.searchsorted(ys, [cy - reach_mm, cy + reach_mm])
        if i1 <= i0 or j1 <= j0:
            continue
        win = (slice(j0, j1), slice(i0, i1))
        xw, yw = x[win], y[win]
        across = (xw * np.float32(nx_) + yw * np.float32(ny_)) + np.float32(z * nz_ - c)
        dist = np.sqrt((d_pial[win] + np.float32(r)) ** 2 + across ** 2)
        reach = np.sqrt((xw - np.float32(cx)) ** 2 + (yw - np.float32(cy)) ** 2
                        + np.float32((z - cz) ** 2))
        f = _smooth_step((np.float32(r) - dist) * inv_w)
        f *= _smooth_step((np.float32(half_length_mm) - reach) * np.float32(2.0))
        np.maximum(out[win], f, out=out[win])
    return out


_PLANES: dict = {}


def _planes(anat: Anatomy, acq: Acquisition) -> _Planes:
    key = (id(anat), acq)
    if key not in _PLANES:
        _PLANES.clear()
        _PLANES[key] = _Planes(anat, acq)
    return _PLANES[key]


def object_slice(anat: Anatomy, acq: Acquisition, spec: SubjectSpec, k: int,
                 u_grid=None) -> np.ndarray:
    """Noise-free, bias-free signal of slice ``k`` on the fine in-plane grid,
    averaged through the slice: (n_echo, ny_f, nx_f) float32.

    The slowly varying fields (layer level, deep R2*, U-fibre width) are
    evaluated on the slice's central plane on a 1 mm grid and interpolated
    (their scales are 3-12 mm); the distances to the surfaces on every sub-slice plane.
    """
    pl = _planes(anat, acq)
    zc = acq.z0 + acq.slice_mm * k + spec.z_shift_mm
    b = anat.box
    ax, ay, _ = b.axes()
    AX, AY = np.meshgrid(ax[::4], ay[::4], indexing="ij")                # 1 mm
    xyz_a = np.stack([AX, AY, np.full(AX.shape, zc)], axis=-1)         # (nx_a, ny_a, 3)
    t_a, r2_a = layer_fields(spec, xyz_a)
    if u_grid is None:
        u_grid = u_fibre_field(spec, anat)
    u_a = _sample_grid(u_grid[0], u_grid[1], 1.0, xyz_a)
    t, r2, u = (pl.interpolate(f, 4) for f in (t_a, r2_a, u_a))
    X, Y = pl.coarse_xy()
    te = np.asarray(acq.echo_times_s)
    T = spec.tissues
    wt, wl = np.float32(1 / acq.tissue_width_mm), np.float32(1 / acq.layer_width_mm)
    u_on = np.clip(u * np.float32(10.0), 0.0, 1.0)
    # The tissue signals are constant through the slice (R2* of the deep layer is
    # taken on the central plane), so the through-slice average of the signal is
    # that of each tissue's fraction times its signal: accumulate the fractions.
    shape = X.shape
    f_deep, f_sup, f_uf, f_brain, f_vein = (np.zeros(shape, np.float32) for _ in range(5))
    a, b_, c = (np.empty(shape, np.float32) for _ in range(3))
    for m in range(acq.sub_slices):
        z = zc + ((m + 0.5) / acq.sub_slices - 0.5) * acq.slice_mm
        dw = pl.field("d_white", z)
        dp = pl.field("d_pial", z)
        brain = _smooth_step(np.multiply(dp, wt, out=a), out=a)
        ctx = _smooth_step(np.multiply(dw, wt, out=b_), out=b_)
        ctx *= brain                                   # brain and cortex
        f_brain += brain
        f_sup += ctx
        deep = _smooth_step(np.multiply(np.subtract(t, dw, out=c), wl, out=c), out=c)
        deep *= ctx
        f_deep += deep
        np.subtract(brain, ctx, out=ctx)               # brain and white matter
        uf = _smooth_step(np.multiply(np.add(dw, u, out=c), wt, out=c), out=c)
        uf *= u_on
        uf *= ctx
        f_uf += uf
        vein = vein_fraction(spec, dp, X, Y, z, acq.tissue_width_mm)
        if vein is not None:
            np.subtract(np.float32(1.0), brain, out=brain)
            brain *= vein
            f_vein += brain
    n = np.float32(acq.sub_slices)
    f_wm = f_brain - f_sup                             # white matter incl. U-fibre line
    f_out = np.float32(acq.sub_slices) - f_brain       # outside the brain incl. veins
    f_sup -= f_deep
    f_wm -= f_uf
    f_out -= f_vein
    acc = np.empty((len(te),) + shape, np.float32)
    for e, echo in enumerate(te):
        s = {name: np.float32(tissue_signal(T[name], echo))
             for name in ("csf", "superficial", "u_fibre", "white_matter", "vein")}
        deep_sig = (T["deep"][0] * np.exp(-echo * r2)).astype(np.float32)
        out = acc[e]
        np.multiply(f_deep, deep_sig, out=out)
        out += f_sup * s["superficial"]
        out += f_uf * s["u_fibre"]
        out += f_wm * s["white_matter"]
        out += f_out * s["csf"]
        out += f_vein * s["vein"]
        out /= n
    return acc


def _kspace_window(acq: Acquisition, n: int) -> np.ndarray:
    if acq.kspace_filter == "none":
        return np.ones(n)
    if acq.kspace_filter != "tukey":
        raise ValueError(f"unknown k-space filter {acq.kspace_filter!r}")
    return np.fft.ifftshift(windows.tukey(n, acq.tukey_alpha, sym=False))


def acquire(obj: np.ndarray, acq: Acquisition, spec: SubjectSpec, bias: np.ndarray,
            rng: np.random.Generator | None, magnitude: bool = True) -> np.ndarray:
    """k-space sampling of one slice's fine object: (n_echo, ny_f, nx_f) -> (n_echo, ny, nx).

    The fine object times the receive field is Fourier transformed; the central
    ``ny x nx`` coefficients are kept (shifted by half a fine sample so that the
    voxels land on their centres), windowed, corrupted by motion (shifted
    phase-encode lines, the same in every echo) and transformed back; complex
    noise with SD ``sigma * g`` is added and the magnitude taken (``magnitude=False``:
    the complex image).
    """
    ny, nx = acq.shape
    os_ = acq.oversample
    F = np.fft.fft2(obj * bias[None], axes=(-2, -1))
    ky_f = np.fft.fftfreq(ny * os_)
    kx_f = np.fft.fftfreq(nx * os_)
    keep_y = np.r_[0:(ny + 1) // 2, ny * os_ - ny // 2:ny * os_]
    keep_x = np.r_[0:(nx + 1) // 2, nx * os_ - nx // 2:nx * os_]
    F = F[:, keep_y][:, :, keep_x]
    # fine sample 0 sits (os - 1) / 2 fine samples before voxel 0's centre
    delta = (os_ - 1) / 2
    ph = np.exp(2j * np.pi * (ky_f[keep_y][:, None] + kx_f[keep_x][None, :]) * delta)
    win = _kspace_window(acq, ny)[:, None] * _kspace_window(acq, nx)[None, :]
    F = F * (ph * win)[None]
    if spec.motion_lines > 0 and rng is not None:
        ky = np.fft.fftfreq(ny, d=acq.voxel_mm)
        kx = np.fft.fftfreq(nx, d=acq.voxel_mm)
        moved = rng.random(ny) < spec.motion_lines
        shifts = rng.uniform(-1, 1, (ny, 2)) * spec.motion_shift_mm
        for j in np.flatnonzero(moved):
            F[:, j, :] *= np.exp(-2j * np.pi * (kx * shifts[j, 0] + ky[j] * shifts[j, 1]))[None]
    img = np.fft.ifft2(F, axes=(-2, -1)) / os_ ** 2
    if rng is not None and spec.sigma > 0:
        g = g_factor(acq, spec)
        scale = (spec.sigma * g).astype(np.float32)
        noise = rng.standard_normal((2,) + img.shape, dtype=np.float32) * scale
        img = img + (noise[0] + 1j * noise[1])
    return np.abs(img).astype(np.float32) if magnitude else img


def g_factor(acq: Acquisition, spec: SubjectSpec) -> np.ndarray:
    """Parallel-imaging g-factor map (ny, nx): ``g_max`` at the centre of the phase-encode
    axis and of the head, 1 at the edges."""
    x, y, _ = acq.axes()
    yc = 0.5 * (acq.y_range[0] + acq.y_range[1])
    xc = 0.5 * (acq.x_range[0] + acq.x_range[1])
    # widths relative to the field of view (22 and 35 mm for the default slab)
    gy = np.exp(-0.5 * ((y - yc) / (0.2 * (acq.y_range[1] - acq.y_range[0]))) ** 2)
    gx = np.exp(-0.5 * ((x - xc) / (0.3 * (acq.x_range[1] - acq.x_range[0]))) ** 2)
    return 1.0 + (spec.g_max - 1.0) * gy[:, None] * gx[None, :]


def render_subject(anat: Anatomy, acq: Acquisition, spec: SubjectSpec,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """All slices of one participant: float32 (n_echo, n_slices, ny, nx), x and y ascending.

    ``rng=None``: noise-free and motion-free (the object through the acquisition's
    resolution and filter only).
    """
    ny, nx = acq.shape
    out = np.empty((len(acq.echo_times_s), acq.n_slices, ny, nx), np.float32)
    pl = _planes(anat, acq)
    X, Y = pl.coarse_xy()
    u_grid = u_fibre_field(spec, anat)
    for k in range(acq.n_slices):
        obj = object_slice(anat, acq, spec, k, u_grid)
        zc = acq.z0 + acq.slice_mm * k + spec.z_shift_mm
        bias = bias_field(spec.bias, X, Y, zc).astype(np.float32)
        out[:, k] = acquire(obj, acq, spec, bias, rng)
    return out
