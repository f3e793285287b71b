"""The replica's tables, built from one seed: participants, reads and the truth.

Construction, in order (all from one seed, each part from its own stream):

1. **Cohort.** Enrolled / excluded counts, sex and age as in the paper (scaled to
   other cohort sizes). Marginals of the clinical scores are exact standardized
   quantiles of skewed distributions with the paper's mean and SD.
2. **Joint structure** (:mod:`m1lib.replica.calibration`): Iman-Conover towards
   the reported Spearman r, refined by rank swaps towards every calibration
   target at once (marginals stay exact).
3. **Areas.** Per hemisphere and Penfield area, thickness and intensity are the
   subject mean plus a within-subject deviation driven by the contralateral
   limb's UMN score and a small area-to-area noise, centred within subject so the
   subject mean is exact. Thickness targets are met by the truth (what a
   rater-independent profile measurement sees). The simulated rater's endpoint
   error (about a voxel) is drawn afterwards from its own stream, independently
   of the calibration, so what a caliper-based analysis finds is measured, not
   set. Deep-layer R2* (iron) is then solved so the noise-free normalized
   intensity on echo 2 equals the target.
4. **Readers.** A latent visibility of thinning and hypointensity (from the
   truth, plus a small per-reader perception noise); each reader calls the
   top-k of each group, k being the paper's counts scaled; reader 2's positives
   are taken from reader 1's, which gives 25/31 agreements (kappa 0.61).
5. **Geometry** of the flat replica (:mod:`m1lib.replica.flat`): where the edges
   and the rater's calipers lie on the concentric arcs. The folded replica
   (:mod:`m1lib.replica.cohort`) keeps every calibrated column and re-places the
   areas on real folding.
"""
from __future__ import annotations


import numpy as np
import pandas as pd
from scipy import stats

from .. import contract
from ..errors import DataError
from . import flat
from . import phantom as ph
from .calibration import (_S_ALS, _S_ANATOMY, _S_AREAS, _S_COHORT, _S_HS, _S_RATER,
                          _als_subject_table, _area_keys, _area_values, _drive, _excluded_als,
                          _ids, _reader_calls, _rng, _split_umn, visibility)
from .rank_stats import _mw_p, _std_quantiles, iman_conover
from .targets import (AREA_SD_INTENSITY, AREA_SD_THICKNESS, BETA_INTENSITY, BETA_THICKNESS,
                      DEFAULT_N_ALS, DEFAULT_N_HS, DEFAULT_SEED, INTENSITY_HS, INTENSITY_RANGE,
                      OPTIONAL_MARGINALS, RATER_SD_MM, READERS, THICKNESS_HS, THICKNESS_RANGE,
                      _targets, cohort_counts)

__all__ = ["make_cohort", "truth_summary"]


def make_cohort(seed: int = DEFAULT_SEED, n_als: int = DEFAULT_N_ALS,
                n_hs: int = DEFAULT_N_HS, oblique: bool = False, *,
                rater_seed: int | None = None) -> dict[str, pd.DataFrame]:
    """Build the replica's tables (no images): participants, reads, truth, anatomy.

    Parameters
    ----------
    seed : int
        Seed of every random draw (each part uses its own stream of it).
    n_als, n_hs : int
        Enrolled patients and healthy subjects (>= 1 each).
    oblique : bool
        Whether the slab is tilted (changes world coordinates only).
    rater_seed : int, optional
        Seed of the simulated rater's caliper errors (default ``seed``). They are
        drawn after the calibration; another ``rater_seed`` changes the calipers and
        nothing else.

    Returns
    -------
    dict of DataFrame
        ``participants`` (the contract's ``participants.tsv``), ``visual_reads``,
        ``truth_areas``, ``truth_participants`` and ``anatomy`` (the phantom's
        per participant, hemisphere and slice geometry).

    Notes
    -----
    ``truth_areas`` (one row per participant, hemisphere, area): ``slice_index``
    (0-based), ``thickness_mm``, ``r2star_s``, ``m0`` (image units, bias
    excluded), ``intensity`` (noise-free deep-layer signal at the caliper
    midpoint / noise-free signal at the precuneus reference, echo 2, bias field
    included), ``signal_echo1/2`` and ``bias`` at the midpoint, the true edges
    ``edge_outer_*`` (superficial/deep) and ``edge_inner_*`` (deep/U-fibre
    onset), ``midpoint_*``, the unit ``normal_*`` (superficial to white matter)
    and the rater's caliper ``caliper_outer_*``, ``caliper_inner_*``,
    ``caliper_length_mm`` — coordinates in world RAS mm. ``truth_participants``:
    ``motion``, ``snr`` (superficial cortex, echo 1, over the noise sd),
    ``sigma`` (noise sd, image units), the reference point (``ref_*`` true,
    ``ref_marked_*`` as annotated) and its signals, tissue and bias parameters.
    """
    if int(n_als) < 1 or int(n_hs) < 1:
        raise DataError(f"the replica needs at least one patient and one healthy subject "
                        f"(got n_als={n_als}, n_hs={n_hs})")
    t = _targets()
    clin = t["clinical"]
    counts = cohort_counts(n_als, n_hs)
    rng = _rng(seed, _S_COHORT)
    age_ms = t["cohort"]["age_enrolled_mean_sd"]

    parts = []
    for g, prefix in (("ALS", "ALS"), ("HS", "HS")):
        n = counts["enrolled"][g]
        ids = _ids(prefix, n)
        excl = np.zeros(n, bool)
        excl[rng.choice(n, counts["excluded"][g], replace=False)] = True
        female = np.zeros(n, bool)
        female[rng.choice(n, counts["female"][g], replace=False)] = True
        age = np.clip(np.rint(rng.permutation(
            _std_quantiles(stats.norm, n, *age_ms[g]))), 18, 95).astype(int)
        parts.append(pd.DataFrame({
            "participant_id": ids, "group": g, "age": age,
            "sex": np.where(female, "F", "M"), "excluded": excl,
            "exclusion_reason": np.where(excl, "motion artifacts", "n/a"),
        }))
    p = pd.concat(parts, ignore_index=True)
    is_als = (p["group"] == "ALS").to_numpy()
    analysed = ~p["excluded"].to_numpy()

    # --- ALS subject level (calibrated), excluded patients (not calibrated)
    arng = _rng(seed, _S_ALS)
    k1 = counts["positive"]["reader1"]["ALS"]
    k2 = counts["positive"]["reader2"]["ALS"]
    sub, draws = _als_subject_table(counts["analysed"]["ALS"], arng, t, k1, k2)
    exc = _excluded_als(counts["excluded"]["ALS"], arng, clin)
    als_rows = np.flatnonzero(is_als & analysed)
    exc_rows = np.flatnonzero(is_als & ~analysed)
    subj_cols = ["alsfrs_r", "disease_duration_months", "mrc", "umn_total", "thickness",
                 "intensity"] + list(OPTIONAL_MARGINALS)
    for c in subj_cols:
        p[c] = np.nan
    p.loc[als_rows, subj_cols] = sub[subj_cols].to_numpy()
    p.loc[exc_rows, subj_cols] = exc[subj_cols].to_numpy()
    umn = _split_umn(p.loc[exc_rows, "umn_total"].to_numpy(int), arng)
    for c in contract.UMN_COLUMNS:
        p[c] = np.nan
        p.loc[als_rows, c] = sub[c].to_numpy()
        p.loc[exc_rows, c] = umn[c]

    # --- HS subject level
    hrng = _rng(seed, _S_HS)
    hs_rows = np.flatnonzero(~is_als & analysed)
    hs_exc = np.flatnonzero(~is_als & ~analysed)
    m = np.column_stack([_std_quantiles(stats.norm, len(hs_rows), *THICKNESS_HS),
                         _std_quantiles(stats.norm, len(hs_rows), *INTENSITY_HS)])
    m = iman_conover(m, np.array([[1.0, 0.3], [0.3, 1.0]]), hrng)
    p.loc[hs_rows, "thickness"] = m[:, 0]
    p.loc[hs_rows, "intensity"] = m[:, 1]
    p.loc[hs_exc, "thickness"] = hrng.normal(*THICKNESS_HS, size=len(hs_exc))
    p.loc[hs_exc, "intensity"] = hrng.normal(*INTENSITY_HS, size=len(hs_exc))
    hs_noise = hrng.normal(0.0, 0.5, size=(2, len(hs_rows)))

    # --- readers' calls (analysed participants only)
    p["visibility"] = visibility(p["thickness"], p["intensity"])
    calls = {r: np.full(len(p), "", dtype=object) for r in READERS}
    for rows, noise, g in ((als_rows, draws["reader_noise"], "ALS"), (hs_rows, hs_noise, "HS")):
        r1, r2 = _reader_calls(p.loc[rows, "visibility"].to_numpy(), noise,
                               counts["positive"]["reader1"][g], counts["positive"]["reader2"][g])
        calls["reader1"][rows] = np.where(r1, "ALS", "normal")
        calls["reader2"][rows] = np.where(r2, "ALS", "normal")
    reads = pd.DataFrame([
        {"participant_id": pid, "reader": r, "call": calls[r][i]}
        for i, pid in enumerate(p["participant_id"]) if analysed[i] for r in READERS])

    # --- areas: thickness and intensity per hemisphere and Penfield area
    P = len(p)
    keys = _area_keys()
    drive = _drive(p)
    drive[~is_als] = 0.0
    ar = _rng(seed, _S_AREAS)
    eps_t = ar.normal(0.0, AREA_SD_THICKNESS, (P, len(keys)))
    eps_i = ar.normal(0.0, AREA_SD_INTENSITY, (P, len(keys)))
    eps_t[als_rows] = draws["eps_t"]      # the draws the calibration used
    eps_i[als_rows] = draws["eps_i"]
    # the simulated rater's endpoint errors: drawn after the calibration, from a stream
    # of their own (``rater_seed``), so they are independent of everything calibrated
    rseed = seed if rater_seed is None else rater_seed
    rater = _rng(rseed, _S_RATER).normal(0.0, RATER_SD_MM, (P, len(keys), 2, 2))
    rater_ref = _rng(rseed, _S_RATER, 1).normal(0.0, RATER_SD_MM, (P, 2))
    thick = _area_values(p["thickness"].to_numpy(float), drive, BETA_THICKNESS, eps_t,
                         *THICKNESS_RANGE)
    inten = _area_values(p["intensity"].to_numpy(float), drive, BETA_INTENSITY, eps_i,
                         *INTENSITY_RANGE)

    # --- anatomy, tissues, bias, noise level
    an = flat.draw_anatomy(_rng(seed, _S_ANATOMY), P)
    prng = _rng(seed, _S_ANATOMY, 1)
    gain = 2000.0 * prng.uniform(0.85, 1.15, P)
    r2_ctx = ph.TISSUE_DEFAULTS["cortex"][1] + prng.normal(0.0, 0.8, P)
    r2_wm = ph.TISSUE_DEFAULTS["wm"][1] + prng.normal(0.0, 1.2, P)
    m0_csf = ph.TISSUE_DEFAULTS["csf"][0] * (1 + prng.normal(0.0, 0.02, P))
    m0_deep = ph.TISSUE_DEFAULTS["deep"][0] * (1 + prng.normal(0.0, 0.01, P))
    bias = np.clip(prng.normal(0.0, 0.04, (P, 5)), -0.08, 0.08)
    snr = np.clip(prng.normal(28.0, 2.0, P), 23.0, 34.0)
    m0_ctx = ph.TISSUE_DEFAULTS["cortex"][0]
    te1, te2 = ph.ECHO_TIMES_S
    sigma = gain * m0_ctx * np.exp(-te1 * r2_ctx) / snr
    motion = ~analysed
    motion_blur = np.where(motion, prng.uniform(1.0, 2.5, P), 0.0)
    motion_ghost = np.where(motion, prng.uniform(0.15, 0.35, P), 0.0)
    x_s, y_s, z_s = ph.slab_axes()
    ref_slab = np.column_stack([
        np.full(P, -(ph.MIDLINE["csf"] + ph.MIDLINE["precuneus_cortex"] / 2)),
        ph.REF_Y + prng.uniform(-1.5, 1.5, P), np.full(P, z_s[ph.REF_SLICE])])
    ref_bias = np.array([ph.bias_at(bias[i], ref_slab[i]) for i in range(P)])
    ref_s = gain * m0_ctx * ref_bias
    ref_s1, ref_s2 = ref_s * np.exp(-te1 * r2_ctx), ref_s * np.exp(-te2 * r2_ctx)

    rows = flat.area_rows(p, thick, inten, drive, rater, an, bias, gain, m0_deep, ref_s2,
                          oblique)
    truth_areas = pd.DataFrame(rows)
    ref_world = ph.to_world(ref_slab, oblique)
    ref_marked = ph.to_world(ref_slab + np.column_stack([rater_ref, np.zeros(P)]), oblique)
    truth_p = pd.DataFrame({
        "participant_id": p["participant_id"], "group": p["group"], "excluded": p["excluded"],
        "motion": motion, "snr": snr, "sigma": sigma, "gain": gain,
        "thickness_mean_mm": thick.mean(axis=1), "intensity_mean": inten.mean(axis=1),
        "visibility": p["visibility"],
        "ref_x": ref_world[:, 0], "ref_y": ref_world[:, 1], "ref_z": ref_world[:, 2],
        "ref_slice_index": ph.REF_SLICE, "ref_m0": gain * m0_ctx, "ref_r2star_s": r2_ctx,
        "ref_bias": ref_bias, "ref_signal_echo1": ref_s1, "ref_signal_echo2": ref_s2,
        "m0_deep": gain * m0_deep, "r2star_wm_s": r2_wm, "m0_csf": gain * m0_csf,
        "motion_blur_vox": motion_blur, "motion_ghost": motion_ghost,
        **{f"bias_c{c}": bias[:, c] for c in range(5)},
        **{f"ref_slab_{ax}": ref_slab[:, c] for c, ax in enumerate("xyz")},
        **{f"ref_marked_{ax}": ref_marked[:, c] for c, ax in enumerate("xyz")},
    })
    anatomy = flat.anatomy_table(an, p)

    participants = p[list(contract.PARTICIPANT_COLUMNS)].copy()
    return {"participants": participants, "visual_reads": reads, "truth_areas": truth_areas,
            "truth_participants": truth_p, "anatomy": anatomy}



# ----------------------------------------------------------------- self-check
def _mean_sd(v: np.ndarray) -> tuple[float, float]:
    v = np.asarray(v, dtype=float)
    return (float(v.mean()) if len(v) else float("nan"),
            float(v.std(ddof=1)) if len(v) > 1 else float("nan"))


def truth_summary(cohort: dict) -> dict:
    """The paper's statistics computed on the replica's truth (analysed participants).

    For checking the calibration: subject-level means over the 8 areas, Spearman r
    (scipy), Mann-Whitney P (scipy, two-sided), the readers' counts and Cohen's
    kappa. The analyses proper live in :mod:`m1lib.analyses`; this only checks
    that the replica was built as intended.
    """
    p = contract.with_derived(cohort["participants"])
    p = p[~p["excluded"].astype(bool)].set_index("participant_id")
    ta = cohort["truth_areas"]
    ta = ta[ta["participant_id"].isin(p.index)]
    subj = ta.groupby("participant_id")[["thickness_mm", "intensity"]].mean()
    als = p.index[p["group"] == "ALS"]
    hs = p.index[p["group"] == "HS"]
    out: dict = {"n": {"ALS": len(als), "HS": len(hs)}}
    clin = {}
    for c in ("alsfrs_r", "umn_total", "mrc", "disease_duration_months", "dpr"):
        clin[c] = _mean_sd(p.loc[als, c].astype(float).to_numpy())
    out["clinical"] = clin
    for q in ("thickness_mm", "intensity"):
        a, h = subj.loc[als, q], subj.loc[hs, q]
        out[q] = {"mean_ALS": float(a.mean()), "mean_HS": float(h.mean()),
                  "p_ALS_vs_HS": _mw_p(a.to_numpy(), h.to_numpy())}
        for c in ("dpr", "alsfrs_r"):
            out[q][f"r_{c}"] = float(stats.spearmanr(a, p.loc[als, c].astype(float)).statistic)
        lim = contract.limb_umn(p.reset_index(), ta[ta["participant_id"].isin(als)
                                                    & (ta["area"] != "face")])
        out[q]["r_umn_limb"] = float(stats.spearmanr(lim[q], lim["umn_score"]).statistic)
        d = p.loc[als, "dpr"].astype(float)
        fast = (d > d.median()).to_numpy()
        out[q]["p_faster_vs_slower"] = _mw_p(a.to_numpy()[fast], a.to_numpy()[~fast])
    reads = cohort["visual_reads"].pivot(index="participant_id", columns="reader", values="call")
    reads = reads.loc[p.index]
    pos = reads == "ALS"
    out["reads"] = {r: {"ALS": int(pos.loc[als, r].sum()), "HS": int(pos.loc[hs, r].sum())}
                    for r in READERS}
    agree = (reads["reader1"] == reads["reader2"])
    p1, p2 = pos["reader1"].mean(), pos["reader2"].mean()
    pe = p1 * p2 + (1 - p1) * (1 - p2)
    out["reads"]["agreements"] = int(agree.sum())
    out["reads"]["kappa"] = float((agree.mean() - pe) / (1 - pe)) if pe < 1 else float("nan")
    cvm = {}
    for r in READERS:
        ok = pos.loc[als, r].to_numpy()
        for c in ("umn_total", "dpr"):
            v = p.loc[als, c].astype(float).to_numpy()
            cvm[f"{c}_{r}"] = {"correct": _mean_sd(v[ok]), "missed": _mean_sd(v[~ok]),
                               "p": _mw_p(v[ok], v[~ok])}
    out["correct_vs_missed"] = cvm
    return out
