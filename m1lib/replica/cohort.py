"""The calibrated cohort on the folded anatomy: per-participant specs and truth.

The cohort's calibration is :func:`m1lib.replica.tables.make_cohort`'s, unchanged: the
participants, clinical values, visual reads and each area's true deep-layer
thickness and normalized intensity are taken from it. Only where the areas lie
and what the images look like change:

* each participant's slab sits at its own height (``z_shift_mm``, a multiple of
  0.25 mm within +-0.75 mm) and each area's seed is jittered (SD 1.5 mm in
  plane), so the same brain is cut at different places and obliquities;
* the deep layer's thickness level and R2* are solved so that, at each area,
  the layer is as thick along its 3-D normal and as dark (echo 2, over the
  precuneus reference, receive field included) as the calibration says;
* the rater's calipers are drawn perpendicular to the layer in the slice, from
  the true outer to the true inner edge, each end displaced by the calibrated
  rater draws (the same numbers as the flat replica's, re-expressed along the
  local normal and tangent);
* white matter is randomly brighter or darker than the deep layer (echo 2), the
  U-fibre line's width and absence vary, pial veins lie next to about a third
  of the areas, and the motion-excluded participants get k-space motion.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import contract
from .tables import make_cohort
from . import acquisition as acqm
from .anatomy import AREA_SEEDS_MM, REFERENCE_SEED_MM, Anatomy, crossing, locate_area

__all__ = ["ReplicaCohort", "build_cohort", "subject_truth"]

_STREAM = 1313          # this module's random streams (seed, _STREAM, participant)


@dataclass
class ReplicaCohort:
    """The tables of :func:`m1lib.replica.tables.make_cohort` with the folded replica's truth.

    ``truth_areas`` keeps the calibrated columns (``thickness_mm`` is the
    thickness along the 3-D normal) and replaces the geometry: ``edge_*``,
    ``midpoint_*``, ``normal_*`` (in-plane unit normal), ``caliper_*`` and adds
    ``thickness_plane_mm`` (apparent, in the slice plane), ``obliquity_deg``,
    ``cortex_mm``, ``depth_outer`` (equidistant normalized cortical depth of the
    outer edge, 0 at the white and 1 at the pial surface), ``u_fibre_mm`` (the line's width under the inner edge, 0 =
    absent), ``vein_mm`` (distance from the layer to the nearest pial vein),
    ``wm_over_deep`` (echo-2 white matter over deep-layer signal).
    """

    participants: pd.DataFrame
    visual_reads: pd.DataFrame
    truth_areas: pd.DataFrame
    truth_participants: pd.DataFrame
    specs: list
    acquisition: acqm.Acquisition


def _rater_components(row: pd.Series) -> np.ndarray:
    """The flat replica's rater displacements (2 ends x [normal, tangent]) of one area."""
    n = np.array([row["normal_x"], row["normal_y"]])
    n = n / np.linalg.norm(n)
    t = np.array([-n[1], n[0]])
    out = np.zeros((2, 2))
    for e, (edge, cal) in enumerate((("edge_outer", "caliper_outer"), ("edge_inner", "caliper_inner"))):
        d = np.array([row[f"{cal}_x"] - row[f"{edge}_x"], row[f"{cal}_y"] - row[f"{edge}_y"]])
        out[e] = [d @ n, d @ t]
    return out


def _tissues(tp: pd.Series, rng: np.random.Generator, te2: float, r2_deep_mean: float) -> dict:
    gain = float(tp["gain"])
    r2_ctx = float(tp["ref_r2star_s"])
    r2_wm = float(tp["r2star_wm_s"])
    # white matter brighter or darker than the deep layer at echo 2, at random
    ratio = rng.uniform(0.82, 1.2)
    deep_e2 = float(tp["m0_deep"]) * math.exp(-te2 * r2_deep_mean)
    m0_wm = ratio * deep_e2 / math.exp(-te2 * r2_wm)
    return {
        "csf": (float(tp["m0_csf"]), 6.0), "superficial": (gain * 1.0, r2_ctx),
        "deep": (float(tp["m0_deep"]), r2_deep_mean),
        "u_fibre": (gain * rng.uniform(0.66, 0.78), 70.0), "white_matter": (m0_wm, r2_wm),
        "vein": (gain * 0.9, rng.uniform(120.0, 200.0)),
    }


def _reference(anat: Anatomy, acq: acqm.Acquisition, z_shift: float, jitter) -> tuple[np.ndarray, int]:
    """Mid-cortex point of the left precuneus on its slice, and the slice."""
    seed = np.asarray(REFERENCE_SEED_MM, dtype=float) + np.r_[0.0, jitter, 0.0]
    k = int(np.clip(round((seed[2] - acq.z0 - z_shift) / acq.slice_mm), 0, acq.n_slices - 1))
    z = acq.z0 + acq.slice_mm * k + z_shift
    tr = locate_area(anat, seed, (1.0, 0.0), z, 1.0, radius=8.0)
    return tr.inner + 0.5 * tr.cortex_mm * tr.normal_plane, k


def subject_truth(anat: Anatomy, spec: acqm.SubjectSpec, inner: np.ndarray,
                  n_plane: np.ndarray) -> dict:
    """The deep layer of ``spec`` at an inner-edge point: thicknesses and edges."""
    def level(pts):
        return acqm.layer_fields(spec, pts)[0]

    t_plane = crossing(anat, inner, n_plane, level)
    g = anat.gradient("d_white", inner)
    n3 = g / np.linalg.norm(g)
    t_3d = crossing(anat, inner, n3, level)
    return {"outer": inner + t_plane * n_plane, "thickness_plane_mm": t_plane,
            "thickness_3d_mm": t_3d, "normal_3d": n3,
            "obliquity_deg": float(np.rad2deg(np.arcsin(min(1.0, abs(n3[2])))))}


def _place_areas(anat, acq, rows: pd.DataFrame, z_shift: float, rng) -> list[dict]:
    placed = []
    for _, row in rows.iterrows():
        seed, facing = AREA_SEEDS_MM[row["area"]]
        side = -1.0 if row["hemisphere"] == "L" else 1.0
        s = np.array([side * seed[0], seed[1], seed[2]]) + np.r_[rng.normal(0, 1.5, 2), 0.0]
        if row["area"] == "foot":            # stay on the medial surface
            s[0] = side * seed[0]
        k = int(np.clip(round((seed[2] - acq.z0 - z_shift) / acq.slice_mm), 0, acq.n_slices - 1))
        z = acq.z0 + acq.slice_mm * k + z_shift
        tr = locate_area(anat, s, (side * facing[0], facing[1]), z, float(row["thickness_mm"]))
        placed.append({"k": k, "inner": tr.inner, "n_plane": tr.normal_plane,
                       "mid": tr.inner + 0.5 * tr.thickness_plane_mm * tr.normal_plane,
                       "t": float(row["thickness_mm"])})
    return placed


def _veins(placed: list[dict], rng: np.random.Generator, share: float) -> np.ndarray:
    """Pial veins next to about ``share`` of the areas (planes through a point beside them)."""
    rows = []
    for p in placed:
        if rng.random() >= share:
            continue
        n = p["n_plane"]
        tang = np.array([-n[1], n[0], 0.0])
        centre = p["inner"] + (p["t"] + 1.5) * n + rng.uniform(-2.0, 2.0) * tang
        # the tube runs through-slice (plane normal along the tangent) or along
        # the sulcus in the slice (plane normal near z)
        normal = tang if rng.random() < 0.6 else np.array([0.0, 0.0, 1.0]) + 0.3 * tang
        normal = normal / np.linalg.norm(normal)
        rows.append([*normal, float(normal @ centre), rng.uniform(0.15, 0.4), *centre])
    return np.array(rows).reshape(-1, 8)


def build_cohort(anat: Anatomy, acq: acqm.Acquisition = acqm.Acquisition(), *,
                 seed: int = 20160301, n_als: int = 22, n_hs: int = 14,
                 participants: list[str] | None = None, vein_share: float = 0.35,
                 motion_lines: float = 0.25, motion_shift_mm: float = 1.0,
                 cohort: dict | None = None) -> ReplicaCohort:
    """The calibrated cohort placed on ``anat`` (optionally only some participants).

    Returns a :class:`ReplicaCohort` whose ``specs[i]`` renders participant ``i``
    of ``truth_participants`` with :func:`m1lib.replica.acquisition.render_subject`.
    ``cohort``: the tables of :func:`~m1lib.replica.tables.make_cohort` for this
    seed and size, when the caller has them already.
    """
    c = make_cohort(seed, n_als, n_hs) if cohort is None else cohort
    tp_all, ta_all = c["truth_participants"], c["truth_areas"]
    ids = list(tp_all["participant_id"]) if participants is None else list(participants)
    te1, te2 = acq.echo_times_s[0], acq.echo_times_s[-1]
    n_area = len(contract.HEMISPHERES) * len(contract.AREAS)
    specs, areas, tps = [], [], []
    for pid in ids:
        i = int(np.flatnonzero(tp_all["participant_id"].to_numpy() == pid)[0])
        tp = tp_all.iloc[i]
        rows = ta_all.iloc[i * n_area:(i + 1) * n_area]
        rng = np.random.default_rng([seed, _STREAM, i])
        z_shift = 0.25 * int(rng.integers(-3, 4))
        placed = _place_areas(anat, acq, rows, z_shift, rng)
        ref, k_ref = _reference(anat, acq, z_shift, rng.normal(0, 1.0))
        bias = np.array([tp[f"bias_c{j}"] for j in range(5)], float)
        ref_bias = float(acqm.bias_field(bias, *ref))
        ref_s2 = float(tp["gain"]) * ref_bias * math.exp(-te2 * float(tp["ref_r2star_s"]))
        mids = np.array([p["mid"] for p in placed])
        b_mid = acqm.bias_field(bias, mids[:, 0], mids[:, 1], mids[:, 2])
        target = rows["intensity"].to_numpy(float)
        r2_mid = (np.log(float(tp["m0_deep"]) * b_mid) - np.log(target * ref_s2)) / te2
        tissues = _tissues(tp, rng, te2, float(r2_mid.mean()))
        spec = acqm.SubjectSpec(
            tissues=tissues, anchors=mids, t_level=np.array([p["t"] for p in placed]),
            r2_deep=r2_mid, bias=bias, sigma=float(tp["sigma"]),
            g_max=rng.uniform(1.2, 1.6), z_shift_mm=z_shift, seed=int(seed) * 1000 + i,
            u_width_mm=rng.uniform(0.25, 0.45), u_absent=rng.uniform(0.1, 0.4),
            motion_lines=motion_lines if bool(tp["motion"]) else 0.0,
            motion_shift_mm=motion_shift_mm if bool(tp["motion"]) else 0.0)
        spec.veins = _veins(placed, rng, vein_share)
        # the blended fields equal the calibrated values at the areas
        spec.r2_deep = acqm.solve_anchor_values(spec, mids, r2_mid, "r2")
        _calibrate_thickness(anat, spec, placed)
        u_grid = acqm.u_fibre_field(spec, anat)
        for p, (_, row) in zip(placed, rows.iterrows()):
            areas.append(_area_row(anat, spec, p, row, u_grid, te1, te2))
        tps.append(_participant_row(tp, ref, k_ref, ref_bias, spec, te1, te2))
        specs.append(spec)
    truth_areas = pd.DataFrame(areas)
    truth_p = pd.DataFrame(tps)
    keep = c["participants"]["participant_id"].isin(ids)
    reads = c["visual_reads"][c["visual_reads"]["participant_id"].isin(ids)]
    return ReplicaCohort(c["participants"][keep].reset_index(drop=True),
                         reads.reset_index(drop=True), truth_areas, truth_p, specs, acq)


def _calibrate_thickness(anat, spec, placed, iterations: int = 3) -> None:
    """Adjust the anchors' levels until the 3-D thickness at each area is the calibrated one."""
    target = np.array([p["t"] for p in placed])
    mids = np.array([p["mid"] for p in placed])
    levels = target.copy()
    for _ in range(iterations):
        spec.t_level = acqm.solve_anchor_values(spec, mids, levels, "t")
        got = np.array([subject_truth(anat, spec, p["inner"], p["n_plane"])["thickness_3d_mm"]
                        for p in placed])
        if np.all(np.abs(got - target) < 0.002):
            break
        levels = levels + (target - got)


def _area_row(anat, spec, p, row, u_grid, te1, te2) -> dict:
    tr = subject_truth(anat, spec, p["inner"], p["n_plane"])
    n = p["n_plane"]
    tang = np.array([-n[1], n[0], 0.0])
    jit = _rater_components(row)
    ends = [tr["outer"] + jit[0, 0] * n + jit[0, 1] * tang,
            p["inner"] + jit[1, 0] * n + jit[1, 1] * tang]
    mid = 0.5 * (tr["outer"] + p["inner"])
    bias = float(acqm.bias_field(spec.bias, *mid))
    _, r2 = acqm.layer_fields(spec, mid[None])
    s0 = spec.tissues["deep"][0] * bias
    u_mm = float(acqm._sample_grid(u_grid[0], u_grid[1], 1.0, p["inner"][None])[0])
    dp = float(anat.sample("d_pial", tr["outer"][None])[0])
    vein = np.inf
    for nx_, ny_, nz_, c, r, *centre in spec.veins:
        if np.linalg.norm(tr["outer"] - np.asarray(centre)) > 6.0:
            continue
        across = tr["outer"] @ np.array([nx_, ny_, nz_]) - c
        vein = min(vein, math.hypot(dp + r, across) - r)
    wm = spec.tissues["white_matter"]
    out = {k: row[k] for k in ("participant_id", "group", "hemisphere", "area", "thickness_mm",
                               "intensity", "m0", "umn_drive") if k in row}
    out.update({
        "slice_index": p["k"], "r2star_s": float(r2[0]), "bias": bias,
        "signal_echo1": s0 * math.exp(-te1 * float(r2[0])),
        "thickness_3d_mm": tr["thickness_3d_mm"], "thickness_plane_mm": tr["thickness_plane_mm"],
        "obliquity_deg": tr["obliquity_deg"], "cortex_mm": float(anat.sample("d_pial", p["inner"][None])[0]),
        # equidistant normalized cortical depth of the outer edge (0 white, 1 pial surface)
        "depth_outer": float(anat.depth(tr["outer"][None])[0]),
        "u_fibre_mm": u_mm, "vein_mm": float(vein),
        "wm_over_deep": float(wm[0] * math.exp(-te2 * wm[1]) / (spec.tissues["deep"][0] * math.exp(-te2 * float(r2[0])))),
        "caliper_length_mm": float(np.linalg.norm(ends[1] - ends[0])),
    })
    out["signal_echo2"] = s0 * math.exp(-te2 * float(r2[0]))
    for key, v in (("edge_outer", tr["outer"]), ("edge_inner", p["inner"]), ("midpoint", mid),
                   ("normal", n), ("caliper_outer", ends[0]), ("caliper_inner", ends[1])):
        out.update({f"{key}_{ax}": float(x) for ax, x in zip("xyz", v)})
    return out


def _participant_row(tp, ref, k_ref, ref_bias, spec, te1, te2) -> dict:
    out = {k: tp[k] for k in ("participant_id", "group", "excluded", "motion", "snr", "sigma",
                              "gain", "ref_r2star_s", "m0_deep")}
    out.update({"ref_x": ref[0], "ref_y": ref[1], "ref_z": ref[2], "ref_slice_index": k_ref,
                "ref_bias": ref_bias,
                "ref_signal_echo1": float(tp["gain"]) * ref_bias * math.exp(-te1 * float(tp["ref_r2star_s"])),
                "ref_signal_echo2": float(tp["gain"]) * ref_bias * math.exp(-te2 * float(tp["ref_r2star_s"])),
                "z_shift_mm": spec.z_shift_mm, "g_max": spec.g_max, "n_veins": len(spec.veins),
                "motion_lines": spec.motion_lines, "motion_shift_mm": spec.motion_shift_mm,
                "u_width_mm": spec.u_width_mm, "u_absent": spec.u_absent})
    # the rater's reference point (the flat replica's draw, added in plane)
    dx, dy = tp["ref_marked_x"] - tp["ref_x"], tp["ref_marked_y"] - tp["ref_y"]
    out.update({"ref_marked_x": ref[0] + dx, "ref_marked_y": ref[1] + dy, "ref_marked_z": ref[2]})
    return out
