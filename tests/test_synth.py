"""The replica: cohort calibration, readers, images vs truth, files, determinism."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from m1lib import contract, synth
from m1lib import phantom as ph
from m1lib.errors import DataError
from m1lib.markups import read_markups

PAPER = synth.paper_values()
SMALL = dict(seed=7, n_als=4, n_hs=3)


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def cohort():
    return synth.make_cohort()


@pytest.fixture(scope="module")
def summary(cohort):
    return synth.truth_summary(cohort)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("replica") / "small"
    synth.generate(out, **SMALL)
    return out


@pytest.fixture(scope="module")
def small_cohort():
    return synth.make_cohort(**SMALL)


# -------------------------------------------------------------- the cohort
def test_enrolment_sex_and_age_as_in_the_paper(cohort):
    p = cohort["participants"]
    co = PAPER["cohort"]
    for g in ("ALS", "HS"):
        grp = p[p["group"] == g]
        assert len(grp) == co["enrolled"][g]
        assert grp["excluded"].sum() == co["excluded_motion_artifacts"][g]
        assert (grp["sex"] == "F").sum() == co["sex_enrolled"][g]["F"]
        m, s = co["age_enrolled_mean_sd"][g]
        assert abs(grp["age"].mean() - m) <= 0.1 * s
        assert abs(grp["age"].std() - s) <= 0.1 * s
    assert set(p.loc[p["excluded"], "exclusion_reason"]) == {"motion artifacts"}
    assert list(p.columns) == list(contract.PARTICIPANT_COLUMNS)


def test_clinical_scores_match_mean_and_sd_within_a_tenth_of_the_sd(summary):
    target = PAPER["cohort"]["als_clinical_mean_sd"]
    names = {"umn_total": "umn_score"}
    assert summary["n"] == PAPER["cohort"]["analysed"]
    for col, (mean, sd) in summary["clinical"].items():
        m, s = target[names.get(col, col)]
        assert abs(mean - m) <= 0.1 * s, (col, mean, m)
        assert abs(sd - s) <= 0.1 * s, (col, sd, s)


def test_umn_scores_are_built_from_limb_and_bulbar_scores(cohort):
    p = cohort["participants"]
    als = p[p["group"] == "ALS"]
    for c in contract.UMN_LIMB_COLUMNS:
        assert als[c].between(0, 8).all() and (als[c] % 1 == 0).all()
    assert als["umn_bulbar"].isin([0, 1]).all()
    assert p.loc[p["group"] == "HS", list(contract.UMN_COLUMNS)].isna().all().all()
    for c in ("alsfrs_r", "mrc", "disease_duration_months"):
        assert (als[c] % 1 == 0).all()
    assert (als["disease_duration_months"] > 0).all()


def test_readers_counts_are_exactly_the_papers(summary, cohort):
    vr = PAPER["visual_reading"]
    for r in synth.READERS:
        assert summary["reads"][r] == vr[r]["positive"]
    assert summary["reads"]["agreements"] == 25
    assert round(summary["reads"]["kappa"], 2) == vr["cohen_kappa"]
    reads = cohort["visual_reads"].pivot(index="participant_id", columns="reader", values="call")
    # reader 2's positives are a subset of reader 1's
    assert not ((reads["reader2"] == "ALS") & (reads["reader1"] != "ALS")).any()
    analysed = cohort["participants"].loc[~cohort["participants"]["excluded"], "participant_id"]
    assert set(reads.index) == set(analysed)


def test_correctly_diagnosed_patients_have_higher_umn_and_dpr(summary):
    cvm = summary["correct_vs_missed"]
    for key, v in cvm.items():
        assert v["correct"][0] > v["missed"][0], key
    assert cvm["umn_total_reader1"]["p"] < 0.05


def test_truth_reproduces_the_papers_pattern(summary):
    q = PAPER["quantitative"]
    th, it = summary["thickness_mm"], summary["intensity"]
    assert th["mean_ALS"] == pytest.approx(q["thickness_mm"]["mean"]["ALS"], abs=0.05)
    assert th["mean_HS"] == pytest.approx(q["thickness_mm"]["mean"]["HS"], abs=0.05)
    assert th["p_ALS_vs_HS"] < 0.001
    assert it["p_ALS_vs_HS"] > 0.05
    # truth-level r well inside the +-0.15 the measured values are allowed
    for res, key in ((th, "thickness_mm"), (it, "intensity_normalized")):
        sp = q[key]["spearman"]
        assert res["r_dpr"] == pytest.approx(sp["dpr"]["r"], abs=0.05)
        assert res["r_alsfrs_r"] == pytest.approx(sp["alsfrs_r"]["r"], abs=0.05)
        assert res["r_umn_limb"] == pytest.approx(sp["umn_limb"]["r"], abs=0.05)
    assert 0.01 <= it["p_faster_vs_slower"] <= 0.05
    assert th["p_faster_vs_slower"] > 0.05


def test_caliper_error_is_drawn_after_and_independently_of_the_calibration():
    """Another rater seed changes the calipers and nothing the calibration set."""
    a = synth.make_cohort(**SMALL)
    b = synth.make_cohort(**SMALL, rater_seed=SMALL["seed"] + 1)
    pd.testing.assert_frame_equal(a["participants"], b["participants"])
    pd.testing.assert_frame_equal(a["visual_reads"], b["visual_reads"])
    for col in ("thickness_mm", "intensity", "r2star_s"):
        np.testing.assert_array_equal(a["truth_areas"][col], b["truth_areas"][col])
    assert not np.allclose(a["truth_areas"]["caliper_length_mm"], b["truth_areas"]["caliper_length_mm"])


def test_caliper_error_is_about_a_voxel(cohort):
    ta = cohort["truth_areas"]
    err = ta["caliper_length_mm"] - ta["thickness_mm"]
    assert 0.15 < err.std() < 0.35 and abs(err.mean()) < 0.05


def test_optional_measures_are_unrelated_to_imaging(cohort):
    from scipy import stats
    p = cohort["participants"].set_index("participant_id")
    ta = cohort["truth_areas"]
    als = p.index[(p["group"] == "ALS") & ~p["excluded"]]
    subj = ta[ta["participant_id"].isin(als)].groupby("participant_id")[
        ["thickness_mm", "intensity"]].mean().loc[als]
    for c in contract.OPTIONAL_NUMERIC:
        assert p.loc[als, c].notna().all()
        for q in subj:
            assert stats.spearmanr(subj[q], p.loc[als, c]).pvalue > 0.05, (c, q)


def test_counts_scale_with_cohort_size():
    c = synth.cohort_counts(44, 28)
    assert c["excluded"] == {"ALS": 8, "HS": 2}
    assert c["positive"] == {"reader1": {"ALS": 24, "HS": 6}, "reader2": {"ALS": 18, "HS": 0}}
    small = synth.make_cohort(**SMALL)
    s = synth.truth_summary(small)
    expect = synth.cohort_counts(SMALL["n_als"], SMALL["n_hs"])["positive"]
    for r in synth.READERS:
        assert s["reads"][r] == expect[r]


def test_truth_tables_have_the_contract_columns(small_cohort):
    ta = small_cohort["truth_areas"]
    need = ["participant_id", "hemisphere", "area", "slice_index", "thickness_mm", "r2star_s",
            "m0", "intensity"] + [f"edge_{s}_{ax}" for s in ("outer", "inner") for ax in "xyz"]
    assert set(need) <= set(ta.columns)
    n = len(small_cohort["participants"])
    assert len(ta) == n * 8
    assert not ta.duplicated(list(contract.MEASUREMENT_KEY)).any()
    # the edges are thickness apart, along the normal, in one slice
    d = ta[[f"edge_inner_{a}" for a in "xyz"]].to_numpy() - ta[[f"edge_outer_{a}" for a in "xyz"]].to_numpy()
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), ta["thickness_mm"], atol=1e-9)
    tp = small_cohort["truth_participants"]
    assert (tp["motion"] == tp["excluded"]).all()
    assert tp["snr"].between(20, 40).all()


def test_bad_sizes_are_a_data_error(tmp_path):
    with pytest.raises(DataError):
        synth.make_cohort(1, 0, 3)


# ------------------------------------------------------------ images vs truth
def _profile(img2d, inv, mid, nrm, t):
    pts = mid[None, :] + t[:, None] * nrm[None, :]
    vox = pts @ inv[:3, :3].T + inv[:3, 3]
    return ndimage.map_coordinates(img2d, [vox[:, 1], vox[:, 0]], order=3), vox


def _crossing(t, prof, level, lo, hi):
    m = (t > lo) & (t < hi)
    tt, pp = t[m], prof[m] - level
    j = np.flatnonzero(np.sign(pp[:-1]) != np.sign(pp[1:]))[0]
    return tt[j] - pp[j] * (tt[j + 1] - tt[j]) / (pp[j + 1] - pp[j])


@pytest.mark.parametrize("oblique", [False, True])
def test_noise_free_image_puts_the_deep_layer_where_the_truth_says(oblique):
    c = synth.make_cohort(seed=3, n_als=2, n_hs=1, oblique=oblique)
    inv = np.linalg.inv(ph.slab_affine(oblique))
    ta = c["truth_areas"]
    tp = c["truth_participants"]
    t = np.arange(-2.5, 2.5, 0.005)
    for i in range(len(c["participants"])):
        spec = synth.image_spec(c, i)
        img = ph.render(spec)                      # noise-free, bias included
        rows = ta.iloc[i * 8:(i + 1) * 8]
        for _, r in rows.iterrows():
            o = r[[f"edge_outer_{a}" for a in "xyz"]].to_numpy(float)
            n = r[[f"edge_inner_{a}" for a in "xyz"]].to_numpy(float)
            nrm = r[[f"normal_{a}" for a in "xyz"]].to_numpy(float)
            mid = (o + n) / 2
            t_o, t_i = float((o - mid) @ nrm), float((n - mid) @ nrm)
            assert t_i - t_o == pytest.approx(r["thickness_mm"], abs=1e-9)
            for e in (0, 1):
                prof, vox = _profile(img[e, int(r["slice_index"])], inv, mid, nrm, t)
                np.testing.assert_allclose(vox[:, 2], r["slice_index"], atol=1e-6)
                sup = prof[np.argmin(abs(t - (t_o - 0.6)))]
                deep = prof[np.argmin(abs(t))]
                # deep-layer signal at the caliper midpoint is the truth's
                assert deep == pytest.approx(r[f"signal_echo{e + 1}"], rel=0.005)
                assert sup > 1.08 * deep                       # superficial brighter
                u_true = spec.gain * 0.72 * np.exp(-ph.ECHO_TIMES_S[e] * 70.0) * r["bias"]
                assert prof[(t > t_i) & (t < t_i + 0.4)].min() < 0.85 * deep  # U-fibre darker
                # half-way crossings sit on the true edges
                assert _crossing(t, prof, (sup + deep) / 2, t_o - 0.4, t_o + 0.4) == \
                    pytest.approx(t_o, abs=0.03)
                assert _crossing(t, prof, (deep + u_true) / 2, t_i - 0.3, t_i + 0.3) == \
                    pytest.approx(t_i, abs=0.03)
        # the reference: precuneus superficial cortex, signal as the truth says
        ref = tp.iloc[i][["ref_x", "ref_y", "ref_z"]].to_numpy(float)
        v = ref @ inv[:3, :3].T + inv[:3, 3]
        k = int(round(v[2]))
        for e in (0, 1):
            val = ndimage.map_coordinates(img[e, k], [[v[1]], [v[0]]], order=3)[0]
            assert val == pytest.approx(tp.iloc[i][f"ref_signal_echo{e + 1}"], rel=0.005)
        # normalized intensity = deep / reference on echo 2
        np.testing.assert_allclose(rows["signal_echo2"] / tp.iloc[i]["ref_signal_echo2"],
                                   rows["intensity"], rtol=1e-9)


# ------------------------------------------------------------------- files
def test_dataset_layout_follows_the_contract(small):
    p = pd.read_csv(small / "participants.tsv", sep="\t", keep_default_na=False, dtype=str)
    assert list(p.columns) == list(contract.PARTICIPANT_COLUMNS)
    assert set(p["excluded"]) <= {"true", "false"}
    assert (p.loc[p["group"] == "HS", "alsfrs_r"] == "n/a").all()
    assert json.loads((small / "participants.json").read_text()).keys() >= set(p.columns)
    assert (small / "dataset_description.json").exists()
    reads = pd.read_csv(small / "phenotype" / "visual_reads.tsv", sep="\t")
    assert list(reads.columns) == ["participant_id", "reader", "call"]
    assert set(reads["call"]) <= set(contract.CALLS)
    assert not (small / "phenotype" / "m1_measurements.tsv").exists()   # images are measured
    for d in ("annotations", "truth"):
        desc = json.loads((small / "derivatives" / d / "dataset_description.json").read_text())
        assert desc["DatasetType"] == "derivative"
    for pid in p["participant_id"]:
        for e in (1, 2):
            stem = small / pid / "anat" / f"{pid}_echo-{e}_part-mag_MEGRE"
            assert Path(f"{stem}.nii.gz").exists()
            side = json.loads(Path(f"{stem}.json").read_text())
            assert side["EchoTime"] == ph.ECHO_TIMES_S[e - 1] < 1
            assert side["MRAcquisitionType"] == "2D" and side["SliceThickness"] == 2.0
        assert (small / "derivatives" / "annotations" / f"{pid}_desc-m1_markups.mrk.json").exists()
    tp = pd.read_csv(small / "derivatives" / "truth" / "truth_participants.tsv", sep="\t")
    assert {"participant_id", "motion", "snr"} <= set(tp.columns)


def test_nifti_headers(small):
    f = sorted(small.glob("sub-*/anat/*echo-2*.nii.gz"))[0]
    img = nib.load(f)
    hdr = img.header
    assert img.shape == (ph.NX, ph.NY, ph.N_SLICES)
    assert img.get_data_dtype() == np.int16
    assert hdr.get_xyzt_units() == ("mm", "sec")
    assert int(hdr["qform_code"]) > 0 and int(hdr["sform_code"]) > 0
    np.testing.assert_allclose(hdr.get_qform(), hdr.get_sform(), atol=1e-4)
    np.testing.assert_allclose(img.affine, ph.slab_affine(False))
    np.testing.assert_allclose(np.sqrt((img.affine[:3, :3] ** 2).sum(0)), [0.25, 0.25, 2.0])
    assert hdr.get_dim_info()[2] == 2
    with open(f, "rb") as fh:
        assert fh.read(8)[4:8] == b"\0\0\0\0"            # gzip mtime 0
    # round trip: what is written is what the phantom rendered (noise included)
    c = synth.make_cohort(**SMALL)
    i = list(c["participants"]["participant_id"]).index(f.name.split("_")[0])
    img2 = ph.render(synth.image_spec(c, i), noise_rng=synth._rng(SMALL["seed"], synth._S_NOISE, i))
    np.testing.assert_array_equal(np.asarray(img.dataobj), ph.to_int16(img2[1]).T)


def test_stored_image_agrees_with_truth_in_an_roi(small):
    ta = pd.read_csv(small / "derivatives" / "truth" / "truth_areas.tsv", sep="\t")
    tp = pd.read_csv(small / "derivatives" / "truth" / "truth_participants.tsv", sep="\t")
    pid = tp.loc[~tp["motion"], "participant_id"].iloc[0]
    img = nib.load(small / pid / "anat" / f"{pid}_echo-2_part-mag_MEGRE.nii.gz")
    data = np.asarray(img.dataobj, dtype=float)
    inv = np.linalg.inv(img.affine)
    sigma = float(tp.loc[tp["participant_id"] == pid, "sigma"].iloc[0])
    for _, r in ta[ta["participant_id"] == pid].iterrows():
        o = r[[f"edge_outer_{a}" for a in "xyz"]].to_numpy(float)
        n = r[[f"edge_inner_{a}" for a in "xyz"]].to_numpy(float)
        nrm = (n - o) / np.linalg.norm(n - o)
        tan = np.array([-nrm[1], nrm[0], 0.0])
        # a 2.4 mm x 0.5 mm strip in the middle of the deep layer
        pts = [(o + n) / 2 + a * tan + b * nrm for a in np.linspace(-1.2, 1.2, 13)
               for b in np.linspace(-0.25, 0.25, 3)]
        vox = np.rint(np.array(pts) @ inv[:3, :3].T + inv[:3, 3]).astype(int)
        vox = np.unique(vox, axis=0)
        vals = data[vox[:, 0], vox[:, 1], vox[:, 2]]
        assert vals.mean() == pytest.approx(r["signal_echo2"], abs=4 * sigma / np.sqrt(len(vals)) + 0.02 * r["signal_echo2"])


def test_markups_are_the_raters_calipers(small):
    ta = pd.read_csv(small / "derivatives" / "truth" / "truth_areas.tsv", sep="\t")
    tp = pd.read_csv(small / "derivatives" / "truth" / "truth_participants.tsv", sep="\t")
    errs = []
    for pid in tp["participant_id"]:
        m = read_markups(small / "derivatives" / "annotations" / f"{pid}_desc-m1_markups.mrk.json")
        assert set(m) == {f"{h}_{a}" for h in "LR" for a in contract.AREAS} | {"ref_precuneus"}
        for _, r in ta[ta["participant_id"] == pid].iterrows():
            line = m[f"{r['hemisphere']}_{r['area']}"]
            assert line.type == "Line" and line.points.shape == (2, 3)
            for point, key in zip(line.points, ("edge_outer", "edge_inner")):
                truth = r[[f"{key}_{a}" for a in "xyz"]].to_numpy(float)
                errs.append(point - truth)
            marked = r[[f"caliper_{k}_{a}" for k in ("outer", "inner") for a in "xyz"]]
            np.testing.assert_allclose(line.points.ravel(), marked.to_numpy(float), atol=1e-3)
            assert line.length_mm == pytest.approx(r["caliper_length_mm"], abs=1e-3)
        ref = m["ref_precuneus"]
        assert ref.type == "Fiducial"
        t = tp.loc[tp["participant_id"] == pid, ["ref_x", "ref_y", "ref_z"]].to_numpy(float)[0]
        assert np.linalg.norm(ref.points[0] - t) < 1.5
    errs = np.array(errs)
    np.testing.assert_allclose(errs[:, 2], 0, atol=1e-3)    # in the slice plane
    rms = np.sqrt((errs[:, :2] ** 2).sum(axis=1).mean())
    assert 0.12 < rms < 0.45                                # about one voxel


def test_same_seed_gives_identical_bytes(small, tmp_path):
    again = synth.generate(tmp_path / "again", workers=1, **SMALL)

    def digest(root):
        return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
                for f in sorted(root.rglob("*")) if f.is_file()}

    a, b = digest(small), digest(again)
    assert a == b and len(a) > 30


def test_generate_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "x.txt").write_text("mine")
    with pytest.raises(DataError):
        synth.generate(tmp_path, **SMALL)


def test_cli_main(tmp_path, capsys):
    out = tmp_path / "cli"
    assert synth.main(["--out", str(out), "--seed", "5", "--n-als", "1", "--n-hs", "1",
                       "--oblique"]) == 0
    img = nib.load(next(out.glob("sub-*/anat/*echo-1*.nii.gz")))
    assert not np.allclose(img.affine[:3, :3], np.diag(np.diag(img.affine[:3, :3])))
    assert synth.main(["--out", str(tmp_path / "cli" / "sub-ALS01")]) == 2
    assert "not empty" in capsys.readouterr().err


def test_fig1_draws_the_roi_that_was_measured(small):
    """Fig 1 C/F and the profile figure draw the measured ROI (its area by the shoelace
    formula is the measured 4 mm2 oval), from images the caller names."""
    import matplotlib
    matplotlib.use("Agg")
    from m1lib import crops, figures

    p = pd.read_csv(small / "participants.tsv", sep="\t")
    pids = [p.participant_id[p.group == g].iloc[0] for g in ("HS", "ALS")]
    cut = []
    for pid in pids:
        echoes = [small / pid / "anat" / f"{pid}_echo-{e}_part-mag_MEGRE.nii.gz" for e in (1, 2)]
        cut.append(crops.participant_crops(pid, echoes, small / "derivatives" / "annotations"
                                           / f"{pid}_desc-m1_markups.mrk.json"))
    hand = [next(c for c in cs if c.label == "L_hand") for cs in cut]
    x, y = hand[0].roi[:, 0], hand[0].roi[:, 1]
    shoelace = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    assert shoelace == pytest.approx(4.0, rel=0.01)
    fig = figures.fig1(*hand)
    assert len(fig.axes) == 6
    drawn = [l.get_xydata() for l in fig.axes[2].lines if len(l.get_xydata()) == len(hand[0].roi)]
    assert any(np.allclose(d, hand[0].roi) for d in drawn)
    assert fig.axes[0].images[0].get_array().shape[0] >= 30       # full-resolution crop (0.25 mm voxels)
    prof = figures.profiles_figure(cut[1], pids[1])
    assert prof.get_figwidth() == pytest.approx(180 / 25.4)
    sizes = [t.get_fontsize() for ax in prof.axes for t in [ax.title, ax.xaxis.label, ax.yaxis.label]
             + ax.get_xticklabels() + ax.get_yticklabels() if t.get_text()]
    assert min(sizes) >= 7
