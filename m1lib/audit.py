"""The audit figure of one participant: what :mod:`m1lib.measure` measured, drawn.

Measurement never draws (CONVENTIONS): this module takes the details
:func:`m1lib.measure.participant_details` returns and draws them.
"""
from __future__ import annotations

import math
from pathlib import Path
from dataclasses import replace
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure  # the Figure API needs no backend (headless, Agg)

from . import contract as C
from .acquisition import labels as _labels
from .geometry import SlicePlane
from .figures import save_figure
from .measure import CENTRAL_MM, MeasureSettings, participant_details

__all__ = ["audit_figure", "draw_audit"]


def audit_figure(participant_id: str, echoes: Sequence, markups_path, table=None,
                 out_path=None, *, settings: MeasureSettings | None = None, label_map=None,
                 **overrides):
    """Write the audit figure of one participant (PNG): every caliper's slice crop
    with its ROI, caliper and fitted edges, and the fitted profile beneath it.

    ``table`` is accepted for symmetry with the CLI and ignored: the figure is drawn
    from a fresh (deterministic) measurement, so it shows exactly what was measured.
    Returns the path written.
    """
    if out_path is None:
        raise ValueError("out_path is required")
    s = replace(settings or MeasureSettings(),
                **{k: (tuple(v) if k == "areas" else v) for k, v in overrides.items() if v is not None})
    table, details = participant_details(participant_id, echoes, markups_path, settings=s,
                                         label_map=label_map)
    return draw_audit(participant_id, table, details, s, Path(out_path))


def _crop_axes(ax, img, plane: SlicePlane, centre_ij, half_mm: float = 4.0) -> None:
    """Show a square crop (``half_mm`` each way) of a slice in voxel coordinates."""
    half = half_mm / plane.pixel_sizes
    lo = np.maximum(np.floor(centre_ij - half).astype(int), 0)
    hi = np.minimum(np.ceil(centre_ij + half).astype(int) + 1, np.asarray(img.shape))
    crop = img[lo[0]:hi[0], lo[1]:hi[1]]
    # display: x = voxel i, y = voxel j, with the voxels' true aspect ratio
    ax.imshow(crop.T, cmap="gray", origin="lower", interpolation="nearest",
              extent=(lo[0] - 0.5, hi[0] - 0.5, lo[1] - 0.5, hi[1] - 0.5),
              aspect=float(plane.pixel_sizes[1] / plane.pixel_sizes[0]))
    ax.set_xticks([])
    ax.set_yticks([])


def draw_audit(participant_id, table, details, settings, out_path: Path) -> Path:
    """Draw a participant's measured ``table`` and ``details`` (from
    :func:`m1lib.measure.participant_details`) into ``out_path`` (format from the suffix)."""
    labels = [lab for lab, _, _ in _labels(settings)]
    ncol = 4
    nrow = 2 * math.ceil(len(labels) / ncol) + 1
    fig = Figure(figsize=(3.0 * ncol, 2.6 * nrow + 0.4), dpi=100)
    fig.suptitle(f"{participant_id}: deep layer of M1 (echo {settings.intensity_echo}); "
                 "ROI blue, caliper orange, fitted outer / inner edge green / red",
                 fontsize=10, fontfamily="DejaVu Sans")
    ie = settings.intensity_echo - 1
    rows = table.set_index(["hemisphere", "area"])
    for n, lab in enumerate(labels):
        d = details[lab]
        r, c = 2 * (n // ncol), n % ncol
        ax = fig.add_subplot(nrow, ncol, r * ncol + c + 1)
        axp = fig.add_subplot(nrow, ncol, (r + 1) * ncol + c + 1)
        plane, prof, fit = d["plane"], d["profile"], d["fit"]
        _crop_axes(ax, d["image"], plane, 0.5 * (d["ij"][0] + d["ij"][1]))
        out = plane.uv_to_ij(d["ellipse"].outline())
        ax.plot(out[:, 0], out[:, 1], color="#1f77b4", lw=1)
        ax.plot(d["ij"][:, 0], d["ij"][:, 1], color="#ff7f0e", lw=1, marker="o", ms=2)
        if np.isfinite(fit.e_outer):
            ang = np.deg2rad(fit.angle_deg)
            for e, col in ((fit.e_outer, "#2ca02c"), (fit.e_inner, "#d62728")):
                # the fitted edge: the points where s cos(a) + o sin(a) = e
                o = np.array([prof.offsets[0], prof.offsets[-1]]) * 2
                s = (e - o * np.sin(ang)) / np.cos(ang)
                ij = plane.uv_to_ij(prof.p1_uv + s[:, None] * prof.direction
                                    + o[:, None] * prof.normal)
                ax.plot(ij[:, 0], ij[:, 1], color=col, lw=1, ls="-" if fit.ok else "--")
        row = rows.loc[tuple(lab.split("_", 1))]
        ax.set_title(f"{lab} (slice {d['k']}): caliper {row.thickness_mm:.2f}, profile "
                     f"{row.profile_thickness_mm:.2f} mm", fontsize=7)
        # the central lines' mean profile and the fitted model over the same lines
        e_idx = ie if settings.profile_echo is None else 0
        central = np.abs(prof.offsets) <= CENTRAL_MM + 1e-9
        axp.plot(prof.s, np.nanmean(prof.values[e_idx][central], axis=0), color="k", lw=0.8)
        if fit.params:
            model = np.mean([fit.model(prof.s, o, e_idx) for o in prof.offsets[central]], axis=0)
            axp.plot(prof.s, model, color="#d62728", lw=0.8)
        for x in (0.0, prof.length_mm):
            axp.axvline(x, color="#ff7f0e", lw=0.6)
        axp.set_xlabel("mm along the caliper", fontsize=6)
        axp.tick_params(labelsize=6)
        axp.set_title(fit.reason if len(fit.reason) < 45 else fit.reason[:42] + "...", fontsize=6)
    # the reference ROI and the participant's QC
    d = details[C.REFERENCE_LABEL]
    ax = fig.add_subplot(nrow, ncol, (nrow - 1) * ncol + 1)
    _crop_axes(ax, d["image"], d["plane"], d["ij"][0])
    out = d["plane"].uv_to_ij(d["ellipse"].outline())
    ax.plot(out[:, 0], out[:, 1], color="#1f77b4", lw=1)
    ax.set_title(f"{C.REFERENCE_LABEL} (slice {d['k']})", fontsize=7)
    axt = fig.add_subplot(nrow, ncol, (nrow - 1) * ncol + 2)
    axt.axis("off")
    first = table.iloc[0]
    axt.text(0.0, 0.9, "\n".join([
        f"reference mean {first.ref_mean:.1f} ({first.ref_area_mm2:.2f} mm²)",
        f"noise sigma {first.noise_sigma:.1f}",
        f"sharpness ratio {first.qc_sharpness_ratio:.2f} "
        f"(relative {first.qc_sharpness_relative:.2f}) -> motion flag {bool(first.qc_motion)}",
        f"affine: {first.affine_source}",
        f"profile fits ok: {int(table.fit_ok.sum())} of {len(table)}"]),
        fontsize=7, va="top", fontfamily="DejaVu Sans")
    fig.tight_layout()
    # fixed style, no timestamps
    save_figure(fig, out_path.with_suffix(""), (out_path.suffix.lstrip(".") or "png",))
    return out_path
