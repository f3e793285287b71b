"""Measurement checks: errors against a phantom's ground truth, and motion QC."""
from __future__ import annotations

import numpy as np
import pandas as pd

from m1lib import contract
from m1lib.analyses._common import _participants
from m1lib.results import add_record, validate_registry

__all__ = ["ACCURACY_TARGETS", "measurement_errors", "measurement_accuracy", "motion_qc",
           "measurement_registry"]


#: Measured column -> (truth column, error scale, tolerance) for :func:`measurement_accuracy`.
#: Thicknesses measured in the slice are compared with the truth's in-plane thickness
#: (``thickness_plane_mm``) where the truth has one (the folded replica, whose layer
#: crosses the slab obliquely), else with ``thickness_mm``.
ACCURACY_TARGETS: dict[str, tuple[str, str, float]] = {
    "profile_thickness_mm": ("thickness_mm", "absolute", 0.10),
    "thickness_mm": ("thickness_mm", "absolute", 0.25),
    "intensity": ("intensity", "relative", 0.02),
    "r2star_s": ("r2star_s", "relative", 0.05),
}


def _in_plane_truth(truth: pd.DataFrame) -> pd.DataFrame:
    """``truth`` with ``thickness_mm`` replaced by the in-plane thickness when it has one."""
    if "thickness_plane_mm" not in truth.columns:
        return truth
    return truth.drop(columns="thickness_mm", errors="ignore").rename(
        columns={"thickness_plane_mm": "thickness_mm"})


def measurement_errors(measurements: pd.DataFrame, truth: pd.DataFrame,
                       truth_participants: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-ROI error of each measured quantity against a phantom's ground truth.

    Returns
    -------
    DataFrame
        One row per ROI and quantity: the measurement key, ``quantity``, ``scale``
        (``absolute``: measured - true in the quantity's unit; ``relative``:
        measured/true - 1), ``measured``, ``true``, ``error`` (NaN where the
        measurement failed), ``subset`` (``motion`` for the motion-corrupted
        participants of ``truth_participants``, else ``included``) and ``snr``
        when the truth has it.
    """
    key = list(contract.MEASUREMENT_KEY)
    truth = _in_plane_truth(truth)
    true_cols = sorted({c[0] for c in ACCURACY_TARGETS.values() if c[0] in truth.columns})
    t = truth[key + true_cols].rename(columns={c: c + "_true" for c in true_cols})
    m = measurements.merge(t, on=key, how="inner", validate="one_to_one")
    subset = pd.Series("included", index=m.index)
    snr = pd.Series(np.nan, index=m.index)
    if truth_participants is not None:
        tp = truth_participants.set_index("participant_id")
        if "motion" in tp.columns:
            motion = m["participant_id"].map(tp["motion"].astype(str).str.lower() == "true")
            subset = subset.where(~motion.fillna(False).astype(bool), "motion")
        if "snr" in tp.columns:
            snr = m["participant_id"].map(tp["snr"]).astype(float)
    parts = []
    for quantity, (true_col, scale, _) in ACCURACY_TARGETS.items():
        if quantity not in m.columns or true_col + "_true" not in m.columns:
            continue
        val = pd.to_numeric(m[quantity], errors="coerce").astype(float)
        ref = m[true_col + "_true"].astype(float)
        err = val - ref if scale == "absolute" else val / ref - 1.0
        parts.append(m[key].assign(quantity=quantity, scale=scale, measured=val, true=ref, error=err,
                                   subset=subset, snr=snr))
    return pd.concat(parts, ignore_index=True)


def measurement_accuracy(measurements: pd.DataFrame, truth: pd.DataFrame,
                         truth_participants: pd.DataFrame | None = None) -> pd.DataFrame:
    """Error of each measured quantity against a phantom's ground truth, summarised.

    Parameters
    ----------
    measurements : DataFrame
        :func:`m1lib.measure.measure_dataset` output (``profile_thickness_mm``,
        ``thickness_mm`` = caliper, ``intensity``, ``r2star_s``).
    truth : DataFrame
        ``derivatives/truth/truth_areas.tsv`` of the replica. Thicknesses are compared
        with its ``thickness_plane_mm`` (the thickness in the slice plane) when present.
    truth_participants : DataFrame, optional
        With ``motion``: errors are then reported separately for the
        motion-corrupted participants (subset ``motion``).

    Returns
    -------
    DataFrame
        One row per quantity and subset: ``quantity``, ``subset``, ``scale``, ``n``,
        ``n_failed`` (failed measurements, left out), ``bias``, ``sd``, ``mae``,
        ``max_abs``, ``tolerance`` and ``within_tolerance`` (fraction with
        |error| <= tolerance), from :func:`measurement_errors`.

    Examples
    --------
    >>> m = pd.DataFrame({"participant_id": ["sub-a"] * 2, "hemisphere": ["L", "R"], "area": "hand",
    ...                   "thickness_mm": [1.5, 2.0], "profile_thickness_mm": [1.55, 1.9],
    ...                   "intensity": [0.8, 0.9], "r2star_s": [40.0, 30.0]})
    >>> t = m[["participant_id", "hemisphere", "area"]].assign(thickness_mm=[1.5, 2.0], intensity=0.8,
    ...                                                     r2star_s=40.0)
    >>> a = measurement_accuracy(m, t).set_index("quantity")
    >>> round(float(a.loc["profile_thickness_mm", "mae"]), 3), round(float(a.loc["intensity", "max_abs"]), 3)
    (0.075, 0.125)
    """
    errors = measurement_errors(measurements, truth, truth_participants)
    rows = []
    for (quantity, subset), g in errors.groupby(["quantity", "subset"], sort=False):
        e = g["error"].to_numpy(float)
        ok = np.isfinite(e)
        e = e[ok]
        tol = ACCURACY_TARGETS[quantity][2]
        rows.append(dict(quantity=quantity, subset=subset, scale=g["scale"].iloc[0], n=int(ok.sum()),
                         n_failed=int((~ok).sum()),
                         bias=float(e.mean()) if e.size else np.nan,
                         sd=float(e.std(ddof=1)) if e.size > 1 else np.nan,
                         mae=float(np.abs(e).mean()) if e.size else np.nan,
                         max_abs=float(np.abs(e).max()) if e.size else np.nan,
                         tolerance=tol,
                         within_tolerance=float((np.abs(e) <= tol).mean()) if e.size else np.nan))
    out = pd.DataFrame(rows)
    order = {q: i for i, q in enumerate(ACCURACY_TARGETS)}
    return out.sort_values(["quantity", "subset"], key=lambda c: c.map(order) if c.name == "quantity" else c,
                           ignore_index=True)


def motion_qc(participants: pd.DataFrame, measurements: pd.DataFrame,
              truth_participants: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each measured participant's motion QC beside the exclusion (and the phantom's truth).

    Returns
    -------
    DataFrame
        ``participant_id``, ``group``, ``excluded``, ``qc_ghost_ratio`` (what sets
        the flag, see :mod:`m1lib.measure.qc`), the diagnostic ``qc_sharpness_ratio`` and
        ``qc_sharpness_relative`` where measured, ``qc_motion`` (the flag), and
        ``motion_truth`` when ``truth_participants`` is given. The flag is reported,
        never used to drop anyone.
    """
    p = _participants(participants)[["participant_id", "group", "excluded"]]
    cols = [c for c in ("qc_ghost_ratio", "qc_sharpness_ratio", "qc_sharpness_relative", "qc_motion")
            if c in measurements.columns]
    q = measurements.groupby("participant_id", sort=True)[cols].first().reset_index()
    q["qc_motion"] = q["qc_motion"].astype(str).str.lower() == "true"
    out = p.merge(q, on="participant_id", how="inner")
    if truth_participants is not None and "motion" in truth_participants.columns:
        tm = truth_participants[["participant_id", "motion"]].copy()
        tm["motion_truth"] = tm.pop("motion").astype(str).str.lower() == "true"
        out = out.merge(tm, on="participant_id", how="left")
    return out.sort_values("participant_id", ignore_index=True)


def measurement_registry(accuracy: pd.DataFrame | None, qc: pd.DataFrame | None) -> dict[str, float]:
    """Registry entries of the measurement checks (``measurement.*``, ``qc.*``)."""
    reg: dict[str, float] = {}
    if accuracy is not None and len(accuracy):
        for r in accuracy[accuracy["subset"] == "included"].itertuples(index=False):
            add_record(reg, f"measurement.{r.quantity}", dict(
                n=r.n, n_failed=r.n_failed, bias=r.bias, sd=r.sd, mae=r.mae, max_abs=r.max_abs,
                within_tolerance=r.within_tolerance))
    if qc is not None and len(qc):
        rec = dict(n_measured=len(qc), n_flagged=int(qc["qc_motion"].sum()),
                   n_excluded=int(qc["excluded"].sum()),
                   n_flagged_excluded=int((qc["qc_motion"] & qc["excluded"]).sum()),
                   flag_matches_exclusion=float((qc["qc_motion"] == qc["excluded"]).mean()))
        if "motion_truth" in qc.columns:
            rec["flag_matches_truth"] = float((qc["qc_motion"] == qc["motion_truth"].astype(bool)).mean())
        add_record(reg, "qc", rec)
    validate_registry(reg)
    return dict(sorted(reg.items()))
