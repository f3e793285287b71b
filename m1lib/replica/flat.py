"""The flat replica: concentric-arc stripes rendered by :mod:`m1lib.replica.phantom`.

The legacy replica, kept as a test fixture and as ``anatomy="flat"`` of
:func:`m1lib.replica.generate.generate`: per hemisphere and slice the central
region is a set of concentric arcs (60-75 mm radius) whose layers are rendered
with the same piecewise-constant, blurred model the profile fit assumes. The
folded replica (:mod:`m1lib.replica.anatomy`, :mod:`m1lib.replica.acquisition`)
is the one that is not the fitter's model.

This module draws the arcs' geometry, places the true deep-layer edges and the
rater's calipers on them (:func:`area_rows`) and turns a cohort's row into the
phantom's :class:`~m1lib.replica.phantom.ParticipantImageSpec`.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import contract
from . import phantom as ph

__all__ = ["draw_anatomy", "slice_profile", "area_rows", "anatomy_table", "image_spec"]


def draw_anatomy(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per participant (P), hemisphere (2: L, R) and slice (K) stripe geometry."""
    K = ph.N_SLICES
    k = np.arange(K) - (K - 1) / 2
    shape = (n, 2, K)
    side = np.array([-1.0, 1.0])[None, :, None]
    cx_abs = rng.normal(26.0, 2.0, (n, 2, 1)) + 0.25 * k
    rc = rng.uniform(62.0, 75.0, (n, 2, 1)) + rng.normal(0.0, 0.8, shape)
    y_cs = rng.normal(-12.0, 1.5, (n, 2, 1)) - 0.6 * k + rng.normal(0.0, 0.4, shape)
    t_sup = np.clip(rng.normal(1.35, 0.08, (n, 2, 1)), 1.15, 1.6) + np.zeros(shape)
    return {
        "cx": side * cx_abs, "cy": y_cs + rc, "rc": rc,
        "gap_cs": rng.uniform(1.3, 2.0, shape), "t_sup": t_sup,
        "core_pre": rng.uniform(3.5, 5.0, shape), "gap_pre": rng.uniform(1.2, 1.8, shape),
        "core_post": rng.uniform(2.8, 4.0, shape), "gap_post": rng.uniform(1.2, 1.8, shape),
        "core_gen": rng.uniform(3.5, 5.5, shape),
        "x_area": np.stack([rng.normal(ph.AREA_X_MM[a], 1.2, (n, 2)) for a in contract.AREAS],
                           axis=-1),
    }


def slice_profile(per_area: np.ndarray) -> np.ndarray:
    """(P, 2, 4 areas) -> (P, 2, K) by linear interpolation between area slices."""
    order = sorted(contract.AREAS, key=lambda a: ph.AREA_SLICE[a])
    ks = np.array([ph.AREA_SLICE[a] for a in order], float)
    idx = [contract.AREAS.index(a) for a in order]
    vals = per_area[..., idx]
    kk = np.arange(ph.N_SLICES)
    flat = vals.reshape(-1, len(idx))
    out = np.stack([np.interp(kk, ks, row) for row in flat])
    return out.reshape(per_area.shape[:2] + (ph.N_SLICES,))



def area_rows(p: pd.DataFrame, thick: np.ndarray, inten: np.ndarray, drive: np.ndarray,
              rater: np.ndarray, an: dict, bias: np.ndarray, gain: np.ndarray,
              m0_deep: np.ndarray, ref_s2: np.ndarray, oblique: bool) -> list[dict]:
    """Truth rows (participant x hemisphere x area) of the flat replica.

    Places each area's true deep-layer edges on the posterior wall of the
    precentral arc (:func:`m1lib.replica.phantom.caliper_points`), solves the
    deep layer's R2* so that the noise-free echo-2 intensity over the reference
    equals ``inten``, and displaces the rater's caliper ends by ``rater``
    (P, 8, 2 ends, [normal, tangent]). Adds ``t_deep`` and ``r2star_deep``
    (per slice) to ``an``.
    """
    P = len(p)
    te1, te2 = ph.ECHO_TIMES_S
    _, _, z_s = ph.slab_axes()
    area_idx = {a: j for j, a in enumerate(contract.AREAS)}
    t_area = thick.reshape(P, 2, len(contract.AREAS))
    an["t_deep"] = slice_profile(t_area)

    rows = []
    r2_area = np.zeros((P, 2, len(contract.AREAS)))
    for i in range(P):
        for hi, h in enumerate(contract.HEMISPHERES):
            side = -1.0 if h == "L" else 1.0
            for a in contract.AREAS:
                j = area_idx[a]
                k = ph.AREA_SLICE[a]
                g = {key: float(an[key][i, hi, k]) for key in
                     ("cx", "cy", "rc", "gap_cs", "t_sup", "t_deep")}
                cp = caliper = ph.caliper_points(g, side, float(an["x_area"][i, hi, j]), z_s[k])
                b_mid = float(ph.bias_at(bias[i], cp["mid"]))
                target = float(inten[i, hi * len(contract.AREAS) + j])
                s0 = gain[i] * m0_deep[i] * b_mid
                r2 = (math.log(s0) - math.log(target * ref_s2[i])) / te2
                r2_area[i, hi, j] = r2
                w = {nm: ph.to_world(caliper[nm], oblique) for nm in ("outer", "inner", "mid")}
                nrm = ph.to_world(caliper["normal"], oblique) - ph.to_world(np.zeros(3), oblique)
                row = {
                    "participant_id": p.at[i, "participant_id"], "group": p.at[i, "group"],
                    "hemisphere": h, "area": a, "slice_index": k,
                    "thickness_mm": float(t_area[i, hi, j]), "r2star_s": r2,
                    "m0": gain[i] * m0_deep[i], "intensity": target,
                    "superficial_thickness_mm": g["t_sup"], "bias": b_mid,
                    "signal_echo1": s0 * math.exp(-te1 * r2), "signal_echo2": s0 * math.exp(-te2 * r2),
                    "umn_drive": float(drive[i, hi * len(contract.AREAS) + j]),
                }
                for nm, key in (("outer", "edge_outer"), ("inner", "edge_inner"), ("mid", "midpoint")):
                    row.update({f"{key}_{ax}": float(v) for ax, v in zip("xyz", w[nm])})
                row.update({f"normal_{ax}": float(v) for ax, v in zip("xyz", nrm)})
                # the rater's caliper: each true edge displaced in the slice plane
                n_s = caliper["normal"]
                t_s = np.array([-n_s[1], n_s[0], 0.0])
                jit = rater[i, hi * len(contract.AREAS) + j]
                ends = [caliper[nm] + jit[e, 0] * n_s + jit[e, 1] * t_s
                        for e, nm in enumerate(("outer", "inner"))]
                for nm, pt in zip(("caliper_outer", "caliper_inner"), ends):
                    row.update({f"{nm}_{ax}": float(v)
                                for ax, v in zip("xyz", ph.to_world(pt, oblique))})
                row["caliper_length_mm"] = float(np.linalg.norm(ends[1] - ends[0]))
                rows.append(row)
    an["r2star_deep"] = slice_profile(r2_area)
    truth_areas = pd.DataFrame(rows)
    return rows


def anatomy_table(an: dict, p: pd.DataFrame) -> pd.DataFrame:
    """The arcs' geometry, one row per participant, hemisphere and slice."""
    P = len(p)
    K = ph.N_SLICES
    keys_geom = ("cx", "cy", "rc", "gap_cs", "t_sup", "t_deep", "r2star_deep", "core_pre",
                 "gap_pre", "core_post", "gap_post", "core_gen")
    pid = np.repeat(p["participant_id"].to_numpy(), 2 * K)
    hem = np.tile(np.repeat(np.array(contract.HEMISPHERES), K), P)
    sl = np.tile(np.arange(K), 2 * P)
    return pd.DataFrame({"participant_id": pid, "hemisphere": hem, "slice_index": sl,
                         **{key: an[key].reshape(-1) for key in keys_geom}})


def image_spec(cohort: dict, index: int):
    """The :class:`~m1lib.replica.phantom.ParticipantImageSpec` of participant ``index``."""
    tp = cohort["truth_participants"].iloc[index]
    K = ph.N_SLICES
    an = cohort["anatomy"].iloc[index * 2 * K:(index + 1) * 2 * K]
    hemi = {}
    for hi, h in enumerate(contract.HEMISPHERES):
        block = an.iloc[hi * K:(hi + 1) * K]
        hemi[h] = {c: block[c].to_numpy(float) for c in an.columns
                   if c not in ("participant_id", "hemisphere", "slice_index")}
    tissues = dict(ph.TISSUE_DEFAULTS)
    tissues["cortex"] = (tissues["cortex"][0], float(tp["ref_r2star_s"]))
    tissues["wm"] = (tissues["wm"][0], float(tp["r2star_wm_s"]))
    tissues["csf"] = (float(tp["m0_csf"] / tp["gain"]), tissues["csf"][1])
    tissues.pop("deep")
    return ph.ParticipantImageSpec(
        hemi=hemi, tissues=tissues, m0_deep=float(tp["m0_deep"] / tp["gain"]),
        gain=float(tp["gain"]), bias=np.array([tp[f"bias_c{c}"] for c in range(5)], float),
        sigma=float(tp["sigma"]), motion=bool(tp["motion"]),
        motion_blur=float(tp["motion_blur_vox"]), motion_ghost=float(tp["motion_ghost"]))

