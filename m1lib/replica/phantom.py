"""Phantom images of the replica: a 2D multi-slice axial GRE slab of the central region.

Geometry (after Fig 1 of Cosottini et al. 2016), in the slab's own frame
("slab mm": x to the right, y anterior, z superior; equal to RAS when the slab
is not tilted):

* Per hemisphere and slice, the central region is a set of sulci and gyri that
  run medio-laterally as concentric arcs of large radius (60-75 mm) around a
  centre anterior to the central sulcus: the signal is a 1-D profile of the
  radial coordinate ``rho = |p - C| - Rc`` (``rho`` = 0 in the middle of the
  central sulcus, positive posteriorly). From the central sulcus forward: the
  precentral gyrus (M1) - hyperintense superficial layers, the slightly
  hypointense deep layer, a thin dark U-fibre line at the grey-white junction,
  a white-matter core, and the same layers mirrored on its anterior wall -
  then the precentral sulcus and generic frontal gyri. Backward: the
  postcentral gyrus (S1) with its thin intracortical hypointense line
  (external band of Baillarger), its U-fibre lines and core, the postcentral
  sulcus and generic parietal gyri. CSF fills the sulci.
* Near the midline, the interhemispheric fissure and the medial cortex; in a
  posterior stretch it is the precuneus, whose superficial cortex is 4 mm thick
  (the reference region).
* Above, the brain, CSF rim, skull and scalp of an ellipsoidal head.

Each structure is constant through the 2 mm slice (2-D anatomy extruded), so there
is no through-slice partial volume. In-plane, each 1-D profile is convolved
exactly with the voxel footprint (a 0.25 mm box) and a Gaussian PSF
(FWHM 0.2 mm) and looked up on a 4 um grid, which is what supersampling would
approach. Signal per tissue: ``S = gain * M0 * exp(-TE * R2*)``, times a smooth
receive-bias field; then Rician noise (and, for the participants excluded for
motion, blur and ghosting along the phase-encoding axis).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage, special

from m1lib.contract import AREAS

# ----------------------------------------------------------------- acquisition
NX = NY = 448                     # FOV 112 mm at 0.25 mm
VOXEL_MM = 0.25
SLICE_MM = 2.0
N_SLICES = 12
ECHO_TIMES_S = (0.010, 0.020)
REPETITION_TIME_S = 0.5
FLIP_ANGLE_DEG = 15
FOV_CENTRE = (0.0, -15.0)         # slab x, y of the FOV centre (mm)
Z0 = 40.0                         # slab z of the centre of slice 0 (mm)
PSF_FWHM_MM = 0.2
PHASE_AXIS = 1                    # voxel axis j (anterior-posterior) is phase-encoded
#: Slice (0-based, inferior to superior) on which each Penfield area is annotated.
AREA_SLICE = {"face": 1, "hand": 4, "leg": 7, "foot": 10}
#: Distance from the midline (mm) of each area's caliper along the precentral gyrus.
AREA_X_MM = {"foot": 12.0, "leg": 20.0, "hand": 31.0, "face": 42.0}
REF_SLICE = 6
PRECUNEUS_Y = (-64.0, -42.0)      # posterior stretch of medial cortex that is precuneus
REF_Y = -53.0
MIDLINE = {"csf": 0.9, "cortex": 2.4, "precuneus_cortex": 4.0, "ufibre": 0.3,
           "band": 5.5, "band_precuneus": 7.0}
HEAD = {"centre_y": -18.0, "semi_axes": (70.0, 88.0, 78.0), "csf": 1.5, "skull": 5.0,
        "scalp": 4.0}
# Slab rotation of --oblique (degrees about x, then y, then z, about the FOV centre).
OBLIQUE_DEG = (14.0, -6.0, 9.0)

# ------------------------------------------------------------------- tissues
#: Tissue codes of the layer profiles.
TISSUES = ("air", "csf", "cortex", "deep", "ufibre", "wm", "s1line", "skull", "scalp")
T = {name: i for i, name in enumerate(TISSUES)}
#: Default (M0 relative to superficial cortex, R2* in 1/s) at 7T, TR 500 ms, FA 15 deg.
TISSUE_DEFAULTS = {
    "air": (0.0, 0.0), "csf": (1.15, 6.0), "cortex": (1.0, 31.0), "deep": (0.93, 43.0),
    "ufibre": (0.72, 70.0), "wm": (0.86, 40.0), "s1line": (0.84, 58.0),
    "skull": (0.08, 150.0), "scalp": (1.25, 25.0),
}
U_FIBRE_MM = 0.4
S1_LAYERS = ((T["cortex"], 0.85), (T["s1line"], 0.25), (T["cortex"], 0.9), (T["ufibre"], 0.35))
GENERIC_CORTEX_MM = 2.4


# ------------------------------------------------------------------- geometry
def slab_axes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slab-frame x (per voxel i), y (per j) and z (per slice k) of voxel centres, mm.

    Storage is LAS: voxel index i runs from the right to the left.
    """
    half = (NX - 1) / 2 * VOXEL_MM
    x = FOV_CENTRE[0] + half - VOXEL_MM * np.arange(NX)
    y = FOV_CENTRE[1] - half + VOXEL_MM * np.arange(NY)
    z = Z0 + SLICE_MM * np.arange(N_SLICES)
    return x, y, z


def _rotation(deg: tuple[float, float, float]) -> np.ndarray:
    ax, ay, az = np.deg2rad(deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def slab_to_world_matrix(oblique: bool = False) -> np.ndarray:
    """4x4 map from slab mm to world RAS mm (identity unless ``oblique``)."""
    m = np.eye(4)
    if oblique:
        x, y, z = slab_axes()
        centre = np.array([FOV_CENTRE[0], FOV_CENTRE[1], z.mean()])
        r = _rotation(OBLIQUE_DEG)
        m[:3, :3] = r
        m[:3, 3] = centre - r @ centre
    return m


def slab_affine(oblique: bool = False) -> np.ndarray:
    """Voxel (i, j, k) -> world RAS mm affine of the images."""
    x, y, z = slab_axes()
    vox_to_slab = np.array([
        [-VOXEL_MM, 0, 0, x[0]],
        [0, VOXEL_MM, 0, y[0]],
        [0, 0, SLICE_MM, z[0]],
        [0, 0, 0, 1.0],
    ])
    return slab_to_world_matrix(oblique) @ vox_to_slab


def to_world(points_slab: np.ndarray, oblique: bool = False) -> np.ndarray:
    """Slab mm -> world RAS mm for an (..., 3) array."""
    m = slab_to_world_matrix(oblique)
    p = np.asarray(points_slab, dtype=float)
    return p @ m[:3, :3].T + m[:3, 3]


def head_semi_axes(z: float) -> tuple[float, float] | None:
    """In-plane semi-axes (x, y) of the brain at slab height ``z`` (None above it)."""
    a, b, c = HEAD["semi_axes"]
    f = 1 - (z / c) ** 2
    if f <= 0:
        return None
    return a * math.sqrt(f), b * math.sqrt(f)


# ------------------------------------------------------------- layer profiles
def stripe_layers(g: dict) -> tuple[np.ndarray, np.ndarray]:
    """Boundaries (rho, mm) and tissue codes of one hemisphere's gyri in one slice.

    ``g`` holds ``gap_cs, t_sup, t_deep, core_pre, gap_pre, core_post, gap_post,
    core_gen``. Returns ``bounds`` (m,) increasing and ``codes`` (m + 1,), code
    ``codes[i]`` filling ``(bounds[i-1], bounds[i])``.
    """
    half = g["gap_cs"] / 2
    m1_wall = [(T["cortex"], g["t_sup"]), (T["deep"], g["t_deep"]), (T["ufibre"], U_FIBRE_MM)]
    generic = [(T["cortex"], GENERIC_CORTEX_MM), (T["ufibre"], 0.3), (T["wm"], g["core_gen"]),
               (T["ufibre"], 0.3), (T["cortex"], GENERIC_CORTEX_MM), (T["csf"], 1.2)]
    anterior = (m1_wall + [(T["wm"], g["core_pre"])] + m1_wall[::-1]
                + [(T["csf"], g["gap_pre"])] + generic * 12)
    posterior = (list(S1_LAYERS) + [(T["wm"], g["core_post"])] + list(S1_LAYERS[::-1])
                 + [(T["csf"], g["gap_post"])] + generic * 12)
    ant_b = -half - np.cumsum([w for _, w in anterior])
    post_b = half + np.cumsum([w for _, w in posterior])
    bounds = np.concatenate([ant_b[::-1], [-half, half], post_b])
    codes = np.array([c for c, _ in anterior][::-1] + [T["csf"]]
                     + [c for c, _ in posterior] + [T["wm"]])
    # codes: one before the outermost anterior bound ... one after the last posterior
    codes = np.concatenate([[T["wm"]], codes])
    return bounds, codes


def midline_layers(precuneus: bool) -> tuple[np.ndarray, np.ndarray]:
    """Boundaries in |x| (mm) and codes of the interhemispheric fissure profile."""
    cortex = MIDLINE["precuneus_cortex"] if precuneus else MIDLINE["cortex"]
    b = np.cumsum([MIDLINE["csf"], cortex, MIDLINE["ufibre"]])
    return b, np.array([T["csf"], T["cortex"], T["ufibre"], T["wm"]])


def head_layers() -> tuple[np.ndarray, np.ndarray]:
    """Boundaries in distance outside the brain (mm) and codes of CSF rim, skull, scalp."""
    b = np.cumsum([0.0, HEAD["csf"], HEAD["skull"], HEAD["scalp"]])
    return b, np.array([T["air"], T["csf"], T["skull"], T["scalp"], T["air"]])


# ------------------------------------------------------------------ rendering
_STEP = 0.004                     # LUT grid, mm
_SIGMA = PSF_FWHM_MM / (2 * math.sqrt(2 * math.log(2)))
_KERNEL_HALF = 0.5 * VOXEL_MM + 5 * _SIGMA


def edge_response(d: np.ndarray, box: float = VOXEL_MM, sigma: float = _SIGMA) -> np.ndarray:
    """Response to a unit step at 0 of a ``box``-wide voxel and a Gaussian PSF.

    Notes
    -----
    The convolution of a step with a box of width ``a`` and a Gaussian of sd
    ``s`` is ``[G(d + a/2) - G(d - a/2)] / a`` with ``G(t) = t Phi(t/s) + s phi(t/s)``.
    """
    def g(t):
        u = t / sigma
        return t * special.ndtr(u) + sigma * np.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)

    d = np.asarray(d, dtype=float)
    return (g(d + box / 2) - g(d - box / 2)) / box


def profile_lut(bounds: np.ndarray, values: np.ndarray, lo: float, hi: float,
                step: float = _STEP) -> tuple[np.ndarray, float]:
    """Blurred piecewise-constant profile sampled on a regular grid.

    Parameters
    ----------
    bounds : (m,) increasing boundary positions
    values : (m + 1, n_echo) signal of each interval (``values[i]`` fills
        ``bounds[i-1] <= t < bounds[i]``)
    lo, hi : range to cover

    Returns
    -------
    lut : (n_echo, N) float32, ``lut[:, i]`` the value at ``lo + i * step``
    lo : the grid origin
    """
    bounds = np.asarray(bounds, dtype=float)
    values = np.asarray(values, dtype=float)
    n = int(math.ceil((hi - lo) / step)) + 2
    # interval index of each grid point = number of bounds at or below it
    pos = np.clip(np.ceil((bounds - lo) / step), 0, n).astype(np.int64)
    marks = np.zeros(n + 1, dtype=np.int32)
    np.add.at(marks, pos, 1)
    seg = np.cumsum(marks[:n])
    lut = np.empty((values.shape[1], n), dtype=np.float32)
    for e in range(values.shape[1]):
        lut[e] = values[:, e].astype(np.float32)[seg]
    # replace each hard step by the voxel-box x PSF edge response, near the step only
    keep = (bounds > lo - _KERNEL_HALF) & (bounds < hi + _KERNEL_HALF)
    if keep.any():
        w = int(math.ceil(_KERNEL_HALF / step)) + 1
        b = bounds[keep]
        jump = values[1:][keep] - values[:-1][keep]          # (mb, n_echo)
        centre = np.floor((b - lo) / step).astype(np.int64)
        idx = centre[:, None] + np.arange(-w, w + 1)[None, :]
        d = lo + step * idx - b[:, None]
        soft = edge_response(d) - (d >= 0)
        ok = (idx >= 0) & (idx < n)
        flat = idx[ok]
        for e in range(values.shape[1]):
            add = (soft * jump[:, e][:, None])[ok]
            lut[e] += np.bincount(flat, weights=add, minlength=n).astype(np.float32)
    return lut, lo


def _lookup(lut: np.ndarray, lo: float, coord: np.ndarray) -> np.ndarray:
    idx = ((coord - lo) * (1.0 / _STEP) + 0.5).astype(np.int32)
    np.clip(idx, 0, lut.shape[1] - 1, out=idx)
    return np.stack([row.take(idx) for row in lut])


@dataclass
class ParticipantImageSpec:
    """Everything needed to render one participant's two-echo slab.

    ``hemi`` maps ``'L'``/``'R'`` to arrays over slices of the stripe geometry
    (keys of :func:`stripe_layers` plus ``cx, cy, rc`` and ``r2star_deep``);
    ``tissues`` maps tissue name to (M0, R2*); ``bias`` the 5 coefficients of
    :func:`bias_field`.
    """

    hemi: dict
    tissues: dict
    m0_deep: float
    gain: float
    bias: np.ndarray
    sigma: float
    motion: bool = False
    motion_blur: float = 0.0
    motion_ghost: float = 0.0


def bias_field(coef: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray):
    """Separable smooth receive field ``exp(c0 X + c1 Y + c2 Z + c3 X^2 + c4 Y^2)``.

    ``X, Y`` are slab x, y relative to the FOV centre over 56 mm, ``Z`` is z
    relative to the slab centre over 20 mm. Returns the x, y and z factors.
    """
    zc = Z0 + SLICE_MM * (N_SLICES - 1) / 2
    X = (np.asarray(x) - FOV_CENTRE[0]) / 56.0
    Y = (np.asarray(y) - FOV_CENTRE[1]) / 56.0
    Z = (np.asarray(z) - zc) / 20.0
    return (np.exp(coef[0] * X + coef[3] * X * X), np.exp(coef[1] * Y + coef[4] * Y * Y),
            np.exp(coef[2] * Z))


def bias_at(coef: np.ndarray, p_slab: np.ndarray) -> np.ndarray:
    """Bias field at slab points (..., 3)."""
    p = np.asarray(p_slab, dtype=float)
    bx, by, bz = bias_field(coef, p[..., 0], p[..., 1], p[..., 2])
    return bx * by * bz


def tissue_signals(tissues: dict, echo_times=ECHO_TIMES_S) -> np.ndarray:
    """(n_tissue, n_echo) noise-free signal of each tissue code (bias and gain excluded)."""
    te = np.asarray(echo_times)
    out = np.zeros((len(TISSUES), len(te)))
    for name, (m0, r2) in tissues.items():
        out[T[name]] = m0 * np.exp(-te * r2)
    return out


def render(spec: ParticipantImageSpec, echo_times=ECHO_TIMES_S, noise_rng=None,
           bias: bool = True) -> np.ndarray:
    """Render a participant's slab: float32 array (n_echo, n_slices, NY, NX) in image units.

    With ``noise_rng=None`` the image is noise-free (and free of motion artefacts);
    otherwise motion (if any) and Rician noise of sd ``spec.sigma`` are applied.
    Index ``[e, k, j, i]`` is echo e, voxel (i, j, k).
    """
    x, y, z = slab_axes()
    n_e = len(echo_times)
    base = tissue_signals(spec.tissues, echo_times) * spec.gain
    out = np.empty((n_e, N_SLICES, NY, NX), dtype=np.float32)
    right = x > 0
    cols = {"R": np.flatnonzero(right), "L": np.flatnonzero(~right)}
    xf = x.astype(np.float32)
    yf = y.astype(np.float32)
    band = np.flatnonzero(np.abs(x) < MIDLINE["band_precuneus"] + 1.5)
    ax_band = np.abs(x[band])
    w_pc = special.ndtr((np.minimum(y - PRECUNEUS_Y[0], PRECUNEUS_Y[1] - y)) / 0.5)
    x_m = MIDLINE["band"] * (1 - w_pc) + MIDLINE["band_precuneus"] * w_pc
    w_mid = special.ndtr((x_m[:, None] - ax_band[None, :]) / 0.15).astype(np.float32)
    mids = []
    for pc in (False, True):
        b, c = midline_layers(pc)
        lut, lo = profile_lut(b, base[c], 0.0, ax_band.max() + 1)
        mids.append(_lookup(lut, lo, ax_band))            # (n_e, nb)
    mid = (mids[0][:, None, :] * (1 - w_pc)[None, :, None]
           + mids[1][:, None, :] * w_pc[None, :, None]).astype(np.float32)
    hc = head_layers()[1]
    deep_code = T["deep"]
    for k in range(N_SLICES):
        sl = out[:, k]
        for h, cidx in cols.items():
            g = {key: float(val[k]) for key, val in spec.hemi[h].items()}
            vals = base.copy()
            vals[deep_code] = spec.gain * spec.m0_deep * np.exp(
                -np.asarray(echo_times) * g["r2star_deep"])
            bounds, codes = stripe_layers(g)
            dx = xf[cidx] - np.float32(g["cx"])
            dy = yf - np.float32(g["cy"])
            rho = np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2) - np.float32(g["rc"])
            lut, lo = profile_lut(bounds, vals[codes], float(rho.min()) - 0.01,
                                  float(rho.max()) + 0.01)
            sl[:, :, cidx] = _lookup(lut, lo, rho)
        sl[:, :, band] = w_mid * mid + (1 - w_mid) * sl[:, :, band]
        head = _head_fractions(k)
        if head is not None:
            idx, frac = head
            flat = sl.reshape(n_e, -1)
            outer = base[hc[1:4]].T.astype(np.float32) @ frac[1:4]       # (n_e, n)
            flat[:, idx] = flat[:, idx] * frac[0] + outer
    if bias:
        bx, by, bz = bias_field(spec.bias, x, y, z)
        out *= (bz[:, None, None] * by[None, :, None] * bx[None, None, :]).astype(np.float32)
    if noise_rng is not None:
        if spec.motion:
            out = apply_motion(out, spec.motion_blur, spec.motion_ghost)
        out = add_rician_noise(out, spec.sigma, noise_rng)
    return out


@lru_cache(maxsize=N_SLICES)
def _head_fractions(k: int):
    """Voxels of slice ``k`` touched by the head's edge and their tissue fractions.

    Returns ``None`` when the brain fills the slice, else ``(flat_index, frac)``
    with ``frac`` (5, n): brain, CSF rim, skull, scalp, air. The head is the same
    for every participant, so this is computed once per slice.
    """
    x, y, z = slab_axes()
    axes = head_semi_axes(z[k])
    if axes is None:
        return None
    a, b = axes
    xx = x[None, :]
    yy = (y - HEAD["centre_y"])[:, None]
    f = (xx / a) ** 2 + (yy / b) ** 2
    near = f > (1 - 3.5 / max(a, b)) ** 2
    if not near.any():
        return None
    idx = np.flatnonzero(near)
    fx = np.broadcast_to(xx, f.shape).ravel()[idx]
    fy = np.broadcast_to(yy, f.shape).ravel()[idx]
    fv = f.ravel()[idx]
    grad = 2 * np.sqrt((fx / a ** 2) ** 2 + (fy / b ** 2) ** 2)
    # first-order distance to the ellipse (mm, positive outside)
    dist = np.clip((fv - 1) / np.maximum(grad, 1e-9), -3.0, 40.0)
    hb, hc = head_layers()
    lut, lo = profile_lut(hb, np.eye(len(hc)), float(dist.min()) - 0.01, float(dist.max()) + 0.01)
    frac = _lookup(lut, lo, dist.astype(np.float32))
    inside = frac[0] > 1 - 1e-6
    return idx[~inside].astype(np.int64), np.ascontiguousarray(frac[:, ~inside])


def apply_motion(img: np.ndarray, blur_vox: float, ghost: float) -> np.ndarray:
    """Blur along the phase-encoding axis and add ghosts displaced by a third of the FOV."""
    axis = 2 if PHASE_AXIS == 1 else 3                   # j is axis 2 of (e, k, j, i)
    if blur_vox > 0:
        img = ndimage.gaussian_filter1d(img, blur_vox, axis=axis, mode="wrap")
    if ghost > 0:
        shift = img.shape[axis] // 3
        img = img + ghost * 0.5 * (np.roll(img, shift, axis=axis) + np.roll(img, -shift, axis=axis))
    return img.astype(np.float32, copy=False)


def add_rician_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise of sd ``sigma`` per channel."""
    s = np.float32(sigma)
    re = rng.standard_normal(img.shape, dtype=np.float32)
    re *= s
    re += img
    im = rng.standard_normal(img.shape, dtype=np.float32)
    im *= s
    return np.hypot(re, im, out=re)


# -------------------------------------------------------------- truth helpers
def caliper_points(g: dict, side: float, x_abs: float, z: float) -> dict:
    """True deep-layer edges of the M1 posterior wall at distance ``x_abs`` from the midline.

    ``g``: one hemisphere's geometry on the slice (``cx, cy`` the arcs' centre in
    slab mm, ``rc`` the central sulcus radius, layer widths); ``side`` +1 for the
    right hemisphere, -1 for the left. Returns slab points ``outer``
    (superficial/deep boundary), ``inner`` (deep/U-fibre boundary), ``mid``, and
    the unit in-plane ``normal`` pointing from the superficial side to white
    matter, each of shape (3,).
    """
    c = np.array([g["cx"], g["cy"]])
    x = side * x_abs
    # the central sulcus arc |p - C| = rc, on its posterior side (y < C_y)
    dy = math.sqrt(max(g["rc"] ** 2 - (x - c[0]) ** 2, 0.0))
    u = (np.array([x, c[1] - dy]) - c) / g["rc"]        # radial unit, posterior-pointing
    r_outer = g["rc"] - g["gap_cs"] / 2 - g["t_sup"]
    r_inner = r_outer - g["t_deep"]
    outer, inner = c + r_outer * u, c + r_inner * u
    pts = {"outer": outer, "inner": inner, "mid": (outer + inner) / 2}
    out = {k: np.array([v[0], v[1], z]) for k, v in pts.items()}
    out["normal"] = np.array([-u[0], -u[1], 0.0])
    return out


__all__ = [
    "AREAS", "AREA_SLICE", "AREA_X_MM", "ECHO_TIMES_S", "N_SLICES", "NX", "NY",
    "ParticipantImageSpec", "render", "slab_affine", "to_world", "caliper_points",
    "bias_at", "tissue_signals",
]
