"""Participant-level QC: magnitude noise and motion."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from .settings import MeasureSettings

__all__ = ["estimate_noise", "sharpness_ratio", "cohort_motion_flags"]


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


def _flag_motion(table: pd.DataFrame, settings: MeasureSettings, reference: float) -> pd.DataFrame:
    rel = table["qc_sharpness_ratio"].astype(float) / reference
    table["qc_sharpness_relative"] = rel
    table["qc_motion"] = (rel < settings.motion_threshold).fillna(False).astype(bool)
    return table


def cohort_motion_flags(table: pd.DataFrame, settings: MeasureSettings | None = None,
                        min_participants: int = 5) -> pd.DataFrame:
    """Set ``qc_sharpness_relative`` and ``qc_motion`` against the cohort's median ratio.

    With fewer than ``min_participants`` finite ratios the reference stays 1
    (isotropic anatomy). Returns a copy.
    """
    s = settings or MeasureSettings()
    keys = ["participant_id"] + (["session"] if "session" in table and table["session"].notna().any() else [])
    per = table.groupby(keys)["qc_sharpness_ratio"].first().astype(float)
    per = per[np.isfinite(per)]
    reference = float(per.median()) if len(per) >= min_participants else 1.0
    return _flag_motion(table.copy(), s, reference)

