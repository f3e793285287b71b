"""``generate(..., anatomy="folded")``: a complete dataset the pipeline validates and measures.

The folded replica's images come from :mod:`m1lib.replica.acquisition` on the
MNI152 folding; these tests check it end to end on a small cohort (3 ALS + 2
HS): the contract's files, the truth on cortical depth, the rater's calipers,
``m1lib validate`` and ``m1lib measure``, and byte-identical regeneration.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from m1lib import cli, contract
from m1lib.errors import DataError
from m1lib.manifest import load_manifest
from m1lib.replica.generate import generate

SMALL = dict(seed=7, n_als=3, n_hs=2)
KEY = ["participant_id", "hemisphere", "area"]


def _digest(root) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def folded(tmp_path_factory):
    out = tmp_path_factory.mktemp("folded") / "replica"
    generate(out, **SMALL, anatomy="folded", workers=2)
    return out


@pytest.fixture(scope="module")
def truth(folded):
    return pd.read_csv(folded / "derivatives/truth/truth_areas.tsv", sep="\t")


def test_the_contract_files_are_all_there(folded):
    p = pd.read_csv(folded / "participants.tsv", sep="\t")
    assert len(p) == SMALL["n_als"] + SMALL["n_hs"]
    for pid in p["participant_id"]:
        for e in (1, 2):
            assert (folded / pid / "anat" / f"{pid}_echo-{e}_part-mag_MEGRE.nii.gz").is_file()
            assert (folded / pid / "anat" / f"{pid}_echo-{e}_part-mag_MEGRE.json").is_file()
        assert (folded / "derivatives/annotations" / f"{pid}_desc-m1_markups.mrk.json").is_file()
    assert (folded / "phenotype/visual_reads.tsv").is_file()
    m = load_manifest(folded / "data_manifest.yaml")
    assert m.replica is not None and m.replica.anatomy == "folded"
    assert (m.replica.seed, m.replica.n_als, m.replica.n_hs) == (7, 3, 2)


def test_truth_is_defined_on_depth_and_keeps_the_calibration(folded, truth):
    from m1lib.replica.tables import make_cohort
    flat = make_cohort(**SMALL)["truth_areas"]
    merged = truth.merge(flat, on=KEY, suffixes=("", "_flat"), validate="one_to_one")
    assert len(truth) == (SMALL["n_als"] + SMALL["n_hs"]) * len(contract.AREAS) * 2
    # the calibrated thickness is the deep layer's along its 3-D normal, intensity unchanged
    assert np.allclose(merged["thickness_3d_mm"], merged["thickness_mm_flat"], atol=0.01)
    assert np.allclose(merged["intensity"], merged["intensity_flat"])
    # a layer cut obliquely looks thicker in the slice: t_plane ~ t_3d / cos(obliquity)
    assert (truth["thickness_plane_mm"] >= truth["thickness_3d_mm"] - 0.01).all()
    assert truth["obliquity_deg"].between(0, 40).all()
    expected = truth["thickness_3d_mm"] / np.cos(np.deg2rad(truth["obliquity_deg"]))
    assert np.median(np.abs(truth["thickness_plane_mm"] - expected)) < 0.1
    # the deep layer is the inner part of the cortex (equidistant depth from the white surface)
    assert truth["depth_outer"].between(0.2, 0.9).all()
    assert (truth["cortex_mm"] > truth["thickness_3d_mm"]).all()


def test_calipers_lie_across_the_curved_layer_in_the_slice(truth):
    d = np.c_[truth["caliper_inner_x"] - truth["caliper_outer_x"],
              truth["caliper_inner_y"] - truth["caliper_outer_y"]]
    dz = truth["caliper_inner_z"] - truth["caliper_outer_z"]
    assert np.allclose(dz, 0.0) and np.allclose(truth["caliper_outer_z"], truth["midpoint_z"])
    n = np.c_[truth["normal_x"], truth["normal_y"]]
    # from the superficial side inwards, along the in-plane normal (voxel-sized jitter)
    cos = -(d * n).sum(axis=1) / np.linalg.norm(d, axis=1)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 35
    err = truth["caliper_length_mm"] - truth["thickness_plane_mm"]
    assert 0.1 < err.abs().mean() < 0.35                   # about a voxel (0.25 mm)
    assert abs(err.mean()) < 0.15


def test_validate_and_measure_run_on_it(folded, truth, capsys):
    manifest = str(folded / "data_manifest.yaml")
    assert cli.main(["validate", manifest]) == 0
    assert cli.main(["measure", manifest, "--jobs", "1"]) == 0
    m = pd.read_csv(folded / "derivatives/m1lib/measurements.tsv", sep="\t")
    assert len(m) == len(truth)
    x = m.merge(truth, on=KEY, suffixes=("", "_true"), validate="one_to_one")
    # the caliper is read back from the markups: its truth is the rater's own caliper
    assert np.allclose(x["thickness_mm"], x["caliper_length_mm"], atol=0.02)
    assert x["intensity"].notna().all() and x["r2star_s"].notna().all()
    # every participant has a motion QC verdict (whether it is right on this replica is
    # measured by benchmarks/bench_replica.py, not asserted here)
    assert m.groupby("participant_id")["qc_motion"].first().notna().all()
    tp = pd.read_csv(folded / "derivatives/truth/truth_participants.tsv", sep="\t")
    assert tp["motion"].any() and set(tp["participant_id"]) == set(m["participant_id"])


def test_same_seed_same_bytes_whatever_the_workers(folded, tmp_path):
    again = generate(tmp_path / "again", **SMALL, anatomy="folded", workers=1)
    a = _digest(folded)
    # leave out what measuring it added (its outputs, the runner's record of the replica)
    a = {k: v for k, v in a.items()
         if not k.startswith(("derivatives/m1lib", ".m1lib-replica"))}
    assert _digest(again) == a


def test_folded_refuses_what_it_cannot_do(tmp_path, capsys):
    with pytest.raises(DataError, match="oblique"):
        generate(tmp_path / "x", **SMALL, oblique=True, anatomy="folded")
    with pytest.raises(DataError, match="anatomy"):
        generate(tmp_path / "y", **SMALL, anatomy="curved")
    with pytest.raises(SystemExit) as exc:
        cli.main(["synth", "--out", str(tmp_path / "z"), "--anatomy", "curved"])
    assert exc.value.code == 2


def test_manifest_anatomy_is_checked(tmp_path):
    (tmp_path / "m.yaml").write_text("dataset: r\nreplica:\n  anatomy: foldd\n")
    with pytest.raises(DataError, match="anatomy"):
        load_manifest(tmp_path / "m.yaml")
    (tmp_path / "m.yaml").write_text("dataset: r\nreplica:\n  seed: 3\n")
    assert load_manifest(tmp_path / "m.yaml").replica.anatomy in ("flat", "folded")
