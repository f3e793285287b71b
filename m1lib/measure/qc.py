"""Participant-level QC: magnitude noise and motion.

Motion QC
---------
In a 2D acquisition the object moves between phase-encode lines, so some lines
of k-space carry the phase of a shifted object: k-space becomes inconsistent
from one phase-encode line to the next (ghosts along the phase-encode axis).
:func:`ghost_ratio` measures that inconsistency in the magnitude image's
power spectrum: the line-to-line roughness of the log power profile along the
phase-encode axis over the same along the readout axis. Anatomy makes the
envelope of a spectrum, not its line-to-line roughness, so the ratio is about 1
without motion whatever way the cortex runs (swap the axes and the number is
the same) and ``qc_motion`` is ``qc_ghost_ratio > ghost_threshold`` on each
participant alone, no cohort reference needed. The older edge-sharpness ratio
(:func:`sharpness_ratio`, relative to the cohort median) is still reported as
``qc_sharpness_ratio`` / ``qc_sharpness_relative``; it depends on the anatomy's
orientation (about 2 where layers all run across the phase axis) and no longer
sets the flag.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from .settings import MeasureSettings

__all__ = ["estimate_noise", "sharpness_ratio", "ghost_ratio", "cohort_motion_flags"]


def estimate_noise(slices: np.ndarray, *, block: int = 4, tissue_fraction: float = 0.2) -> float:
    """Noise sigma of magnitude images: the mode of the local variance in tissue.

    Parameters
    ----------
    slices : array (ni, nj[, nk])
        Magnitude slices (an echo of the slab).
    block : int
        Side of the non-overlapping in-plane blocks whose variance is taken.
    tissue_fraction : float
        Blocks whose mean is below this fraction of the 99th percentile (air,
        skull) are ignored: there the magnitude is Rayleigh, not Gaussian.

    Returns
    -------
    float
        sigma. For a homogeneous block the variance is ``sigma² chi²(m-1)/(m-1)``
        (``m = block²``), whose logarithm has its mode exactly at ``log sigma²``;
        blocks holding edges only add a tail above it. So the mode of the
        histogram of log block variances (0.05 bins, Gaussian-smoothed) gives
        sigma, with or without air around the head (a targeted slab may have
        none). NaN with fewer than 50 tissue blocks.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = 100 + 5 * rng.standard_normal((256, 256, 4))
    >>> abs(estimate_noise(x) / 5 - 1) < 0.05
    True
    """
    x = np.asarray(slices, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    ni, nj = (x.shape[0] // block) * block, (x.shape[1] // block) * block
    # every other block row and column (a quarter of the blocks is plenty), made
    # contiguous so the per-block reductions are fast
    b = x[:ni, :nj].reshape(ni // block, block, nj // block, block, -1)[::2, :, ::2]
    b = np.ascontiguousarray(b.transpose(0, 2, 4, 1, 3)).reshape(-1, block * block)
    mean = b.mean(axis=1)
    var = b.var(axis=1, ddof=1)
    v = var[(mean > tissue_fraction * float(np.percentile(mean, 99))) & (var > 0)]
    if v.size < 50:
        return float("nan")
    lv = np.log(v)
    bins = np.arange(lv.min(), lv.max() + 0.1, 0.05)
    h, edges = np.histogram(lv, bins=bins)
    h = ndimage.gaussian_filter1d(h.astype(float), 2.0)
    mode = edges[int(np.argmax(h))] + 0.025
    return float(np.exp(0.5 * mode))


def sharpness_ratio(slices: np.ndarray, pe_axis: int, sigma: float, *,
                    tissue_fraction: float = 0.3, stride: int = 4) -> float:
    """Edge energy along the phase-encode axis relative to the readout axis.

    ``(E_pe - 2 sigma²) / (E_ro - 2 sigma²)`` where ``E`` is the mean squared
    difference of neighbouring voxels inside the head (both above
    ``tissue_fraction`` of the 99th percentile; every ``stride``-th line) and
    ``2 sigma²`` its noise part.
    Motion during a 2D acquisition smears the image along the phase-encode axis,
    so the ratio drops; anatomy alone keeps it near its cohort value (about 1 for
    isotropic anatomy; higher here, where the M1 layers run across the phase
    axis).
    """
    x = np.asarray(slices, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    thr = tissue_fraction * float(np.percentile(x[::stride, ::stride], 99))
    e = []
    # every ``stride``-th line of each axis: a sample of the edges, 1/stride of the cost
    for a, b in ((x[1:, ::stride], x[:-1, ::stride]), (x[::stride, 1:], x[::stride, :-1])):
        head = (a > thr) & (b > thr)
        if head.sum() < 100:
            return float("nan")
        d = (a - b)[head]
        e.append(float(np.mean(np.square(d, dtype=np.float64))) - 2 * sigma ** 2)
    e_pe, e_ro = e[pe_axis], e[1 - pe_axis]
    return float(e_pe / e_ro) if e_ro > 0 else float("nan")


def _line_roughness(logp: np.ndarray, axis: int, lo: int, frac: float, window: int) -> float:
    """RMS of the log power profile along ``axis`` about its running median.

    The profile is the mean of ``logp`` over the other axis' band (``lo`` to
    ``frac`` x n frequency samples); only positive frequencies of ``axis`` are
    used (a real image's spectrum is Hermitian).
    """
    n, m = logp.shape[axis], logp.shape[1 - axis]
    k = np.fft.fftfreq(n) * n
    ko = np.abs(np.fft.fftfreq(m) * m)
    band_o = (ko >= lo) & (ko <= frac * m)
    prof = np.take(logp, np.flatnonzero(band_o), axis=1 - axis).mean(axis=1 - axis)
    v = prof[np.flatnonzero((k >= lo) & (k <= frac * n))]
    if v.size < 2 * window:
        return float("nan")
    r = v - ndimage.median_filter(v, window, mode="nearest")
    return float(np.sqrt(np.mean(r * r)))


def ghost_ratio(slices: np.ndarray, pe_axis: int, *, lo: int = 4, frac: float = 0.25,
                window: int = 9) -> float:
    """Line-to-line inconsistency of k-space along the phase-encode axis over the readout axis.

    Parameters
    ----------
    slices : array (ni, nj[, nk])
        Magnitude slices.
    pe_axis : int
        In-plane axis (0 or 1) of phase encoding.
    lo, frac : int, float
        Frequencies used on each axis: from ``lo`` samples to ``frac`` x the
        matrix (where the anatomy's signal stands above the noise).
    window : int
        Running-median window (samples) that takes out the spectrum's envelope.

    Returns
    -------
    float
        ``sum_k R_pe(k)² / sum_k R_ro(k)²`` square-rooted over the slices ``k``,
        where ``R`` is :func:`_line_roughness` of ``log |FFT2(slice)|²``. About 1
        without motion (noise and anatomy alike make smooth profiles); motion
        between phase-encode lines scales the power of the lines it corrupted
        (in the magnitude, by ``cos²`` of half the shift's phase), so the
        profile along the phase axis becomes jagged and the ratio grows (2-3 on
        the replica's motion participants, 25 % of lines shifted by up to 1 mm).
        NaN for a matrix too small for the bands.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noise = rng.standard_normal((128, 128))
    >>> 0.7 < ghost_ratio(100 + noise, 0) < 1.4
    True
    """
    x = np.asarray(slices, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    num = den = 0.0
    for k in range(x.shape[2]):
        s = x[:, :, k]
        f = np.fft.fft2(s - s.mean())
        logp = np.log(np.abs(f) ** 2 + 1e-30)
        r_pe = _line_roughness(logp, pe_axis, lo, frac, window)
        r_ro = _line_roughness(logp, 1 - pe_axis, lo, frac, window)
        if not (np.isfinite(r_pe) and np.isfinite(r_ro)):
            return float("nan")
        num, den = num + r_pe ** 2, den + r_ro ** 2
    return float(np.sqrt(num / den)) if den > 0 else float("nan")


def _flag_motion(table: pd.DataFrame, settings: MeasureSettings, reference: float) -> pd.DataFrame:
    table["qc_sharpness_relative"] = table["qc_sharpness_ratio"].astype(float) / reference
    ghost = table["qc_ghost_ratio"].astype(float)
    table["qc_motion"] = (ghost > settings.ghost_threshold).fillna(False).astype(bool)
    return table


def cohort_motion_flags(table: pd.DataFrame, settings: MeasureSettings | None = None,
                        min_participants: int = 5) -> pd.DataFrame:
    """Set ``qc_sharpness_relative`` against the cohort's median sharpness ratio (a
    diagnostic), and ``qc_motion`` from each participant's ``qc_ghost_ratio``.

    With fewer than ``min_participants`` finite ratios the reference stays 1
    (isotropic anatomy). Returns a copy.
    """
    s = settings or MeasureSettings()
    keys = ["participant_id"] + (["session"] if "session" in table and table["session"].notna().any() else [])
    per = table.groupby(keys)["qc_sharpness_ratio"].first().astype(float)
    per = per[np.isfinite(per)]
    reference = float(per.median()) if len(per) >= min_participants else 1.0
    return _flag_motion(table.copy(), s, reference)
