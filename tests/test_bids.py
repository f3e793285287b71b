"""Datasets as labs store them: every layout gives the numbers of the flat layout.

A small replica is generated once (flat layout: ``sub-X/anat/``, one sidecar per
echo, annotations flat in ``derivatives/annotations/``) and rewritten into each
layout the BIDS specification allows: sessions, optional entities, uncompressed
``.nii``, inherited sidecars, the derivatives layout for annotations, one 4-D
multi-echo file, slices along the first voxel axis. Each must measure to the
same numbers, and none may write into the dataset.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from m1lib import cli, synth
from m1lib import measure as M
from m1lib.dataset import load_dataset, validate
from m1lib.errors import DataError
from m1lib.manifest import load_manifest

AREAS = ("hand", "face")  # two areas keep the test quick; all code paths are the same


@pytest.fixture(scope="module")
def replica(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bids") / "flat"
    synth.generate(root, seed=7, n_als=3, n_hs=2)
    return root


def measure(root: Path, manifest_text: str):
    (root / "data_manifest.yaml").write_text(manifest_text)
    ds = load_dataset(load_manifest(root / "data_manifest.yaml"))
    table, failures = M.measure_dataset(**ds.measure_inputs(), areas=AREAS, jobs=1)
    assert failures.empty, failures.to_string()
    return ds, table


FLAT = "dataset: .\nsettings:\n  areas: [hand, face]\n"


@pytest.fixture(scope="module")
def flat_table(replica, tmp_path_factory):
    root = tmp_path_factory.mktemp("flatcopy") / "ds"
    shutil.copytree(replica, root)
    _, table = measure(root, FLAT)
    assert table["session"].isna().all()
    return table


def pids(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob("sub-*") if p.is_dir())


def copy_tables(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    for name in ("participants.tsv", "participants.json", "dataset_description.json"):
        shutil.copy(src / name, dst / name)
    shutil.copytree(src / "phenotype", dst / "phenotype")


def same_numbers(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a = a.drop(columns="session").reset_index(drop=True)
    b = b.drop(columns="session").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def _session_layout(src: Path, dst: Path, sessions=("ses-01",), *, entities="", ext=".nii.gz",
                    part=True, inherit=False, derivatives="derivatives/m1") -> None:
    """Rewrite the flat replica: sessions, entities, extension, inherited sidecars,
    annotations in the derivatives layout."""
    copy_tables(src, dst)
    for pid in pids(src):
        for ses in sessions:
            anat = dst / pid / ses / "anat"
            anat.mkdir(parents=True)
            for e in (1, 2):
                stem = f"{pid}_echo-{e}_part-mag_MEGRE"
                new = f"{pid}_{ses}{entities}_echo-{e}{'_part-mag' if part else ''}_MEGRE"
                img = nib.load(src / pid / "anat" / f"{stem}.nii.gz")
                if ext == ".nii.gz":
                    shutil.copy(src / pid / "anat" / f"{stem}.nii.gz", anat / f"{new}{ext}")
                else:
                    nib.save(img, anat / f"{new}{ext}")
                meta = json.loads((src / pid / "anat" / f"{stem}.json").read_text())
                if not inherit:
                    (anat / f"{new}.json").write_text(json.dumps(meta))
            ann = dst / derivatives / pid / ses / "anat"
            ann.mkdir(parents=True)
            shutil.copy(src / "derivatives" / "annotations" / f"{pid}_desc-m1_markups.mrk.json",
                        ann / f"{pid}_{ses}_desc-m1_markups.mrk.json")
    (dst / derivatives / "dataset_description.json").write_text(json.dumps(
        {"Name": "M1 annotations", "BIDSVersion": "1.9.0", "DatasetType": "derivative"}))
    if inherit:  # BIDS inheritance: common fields at the top, echo times per echo
        meta = json.loads((src / pids(src)[0] / "anat" / f"{pids(src)[0]}_echo-1_part-mag_MEGRE.json").read_text())
        common = {k: v for k, v in meta.items() if k not in ("EchoTime", "EchoNumber")}
        (dst / "MEGRE.json").write_text(json.dumps(common))
        for e, te in ((1, 0.010), (2, 0.020)):
            (dst / f"echo-{e}_MEGRE.json").write_text(json.dumps({"EchoTime": te, "EchoNumber": e}))


def test_sessions_entities_and_derivatives_layout(replica, flat_table, tmp_path):
    root = tmp_path / "ses"
    _session_layout(replica, root, entities="_acq-hires_run-1")
    ds, table = measure(root, FLAT + "files:\n  annotations: derivatives/m1\n")
    assert set(ds.sessions.values()) == {"ses-01"}  # the only session: no choice to make
    assert (table["session"] == "ses-01").all()
    same_numbers(table, flat_table)


def test_uncompressed_nii_without_part_and_inherited_sidecars(replica, flat_table, tmp_path):
    root = tmp_path / "nii"
    _session_layout(replica, root, ext=".nii", part=False, inherit=True)
    ds, table = measure(root, FLAT + "files:\n  annotations: derivatives/m1\n")
    e1 = ds.images[pids(replica)[0]][0]
    assert e1.path.name.endswith("_echo-1_MEGRE.nii") and e1.echo_time_s == 0.010
    assert [p.name for p in e1.sidecars] == ["MEGRE.json", "echo-1_MEGRE.json"]
    assert e1.metadata["SliceThickness"] == 2.0
    same_numbers(table, flat_table)


def test_several_sessions_must_be_chosen_then_all_carries_the_session(replica, flat_table, tmp_path, capsys):
    root = tmp_path / "two"
    _session_layout(replica, root, sessions=("ses-01", "ses-02"))
    (root / "data_manifest.yaml").write_text(FLAT + "files:\n  annotations: derivatives/m1\n")
    assert cli.main(["validate", str(root / "data_manifest.yaml")]) == 2
    err = capsys.readouterr().err
    line = [l for l in err.splitlines() if "files.session" in l]
    assert line and "have several sessions (ses-01, ses-02" in line[0] and "files.session" in line[0]
    assert len(line) == 1  # five participants, one line (grouped)
    _, one = measure(root, FLAT + "files:\n  annotations: derivatives/m1\n  session: ses-02\n")
    assert (one["session"] == "ses-02").all()
    same_numbers(one, flat_table)
    ds, both = measure(root, FLAT + "files:\n  annotations: derivatives/m1\n  session: all\n")
    assert sorted(ds.images)[:2] == [f"{pids(replica)[0]}_ses-01", f"{pids(replica)[0]}_ses-02"]
    for ses in ("ses-01", "ses-02"):
        same_numbers(both[both["session"] == ses], flat_table)
    avg = M.hemisphere_average(both)
    assert len(avg) == 2 * len(pids(replica)) and set(avg["session"]) == {"ses-01", "ses-02"}


def test_the_report_refuses_to_analyse_several_sessions_per_participant(replica, tmp_path):
    """`session: all` measures every session; the cross-sectional analyses would count each
    participant twice, so building the report's tables is a DataError naming files.session."""
    from m1lib import pipeline

    root = tmp_path / "two"
    _session_layout(replica, root, sessions=("ses-01", "ses-02"))
    (root / "data_manifest.yaml").write_text(FLAT + "files:\n  annotations: derivatives/m1\n  session: all\n")
    with pytest.raises(DataError, match="several sessions .*files.session") as err:
        pipeline.build_tables(root / "data_manifest.yaml", jobs=1, log=lambda *a: None)
    assert f"{len(pids(replica))} participant(s)" in str(err.value)


def test_two_series_are_never_guessed(replica, tmp_path, capsys):
    root = tmp_path / "runs"
    _session_layout(replica, root, entities="_run-1")
    pid = pids(replica)[1]  # an analysed participant (the replica excludes sub-ALS01)
    anat = root / pid / "ses-01" / "anat"
    for f in list(anat.iterdir()):
        shutil.copy(f, anat / f.name.replace("_run-1_", "_run-2_"))
    text = FLAT + "files:\n  annotations: derivatives/m1\n"
    (root / "data_manifest.yaml").write_text(text)
    assert cli.main(["validate", str(root / "data_manifest.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"{pid}: image: 2 MEGRE series (run-1, run-2); choose one with `files.entities`" in err
    # the choice applies to every participant (no one's series is picked silently)
    (root / "data_manifest.yaml").write_text(text + "  entities: {run: 2}\n")
    with pytest.raises(DataError, match="no image.*run-1_echo-1.*files.entities"):
        load_dataset(load_manifest(root / "data_manifest.yaml"))
    for other in pids(replica):
        for f in list((root / other / "ses-01" / "anat").glob("*_run-1_*")):
            shutil.copy(f, f.with_name(f.name.replace("_run-1_", "_run-2_")))
    ds = load_dataset(load_manifest(root / "data_manifest.yaml"))
    assert "_run-2_" in ds.images[pid][0].path.name


def _four_d(src: Path, dst: Path) -> None:
    """One 4-D file per participant, echoes along the 4th axis, EchoTime a list."""
    copy_tables(src, dst)
    shutil.copytree(src / "derivatives" / "annotations", dst / "derivatives" / "annotations")
    for pid in pids(src):
        imgs = [nib.load(src / pid / "anat" / f"{pid}_echo-{e}_part-mag_MEGRE.nii.gz") for e in (1, 2)]
        data = np.stack([np.asanyarray(i.dataobj) for i in imgs], axis=3)
        out = nib.Nifti1Image(data, imgs[0].affine, imgs[0].header)
        out.set_sform(imgs[0].get_sform(), code=int(imgs[0].header["sform_code"]))
        out.set_qform(imgs[0].get_qform(), code=int(imgs[0].header["qform_code"]))
        (dst / pid / "anat").mkdir(parents=True)
        nib.save(out, dst / pid / "anat" / f"{pid}_part-mag_MEGRE.nii.gz")
        meta = json.loads((src / pid / "anat" / f"{pid}_echo-1_part-mag_MEGRE.json").read_text())
        meta["EchoTime"] = [0.010, 0.020]
        (dst / pid / "anat" / f"{pid}_part-mag_MEGRE.json").write_text(json.dumps(meta))


def test_four_d_multi_echo_file(replica, flat_table, tmp_path):
    root = tmp_path / "4d"
    _four_d(replica, root)
    ds, table = measure(root, FLAT)
    e = ds.images[pids(replica)[0]]
    assert [x.volume for x in e] == [0, 1] and e[0].path == e[1].path
    same_numbers(table, flat_table)


def _slices_first(src: Path, dst: Path, how: str) -> None:
    """The same images stored with the slice axis first (i), said by the header or sidecar."""
    shutil.copytree(src, dst)
    for pid in pids(src):
        for e in (1, 2):
            stem = dst / pid / "anat" / f"{pid}_echo-{e}_part-mag_MEGRE"
            img = nib.load(f"{stem}.nii.gz")
            data = np.asanyarray(img.dataobj).transpose(2, 0, 1)
            aff = img.affine[:, [2, 0, 1, 3]]
            out = nib.Nifti1Image(data, aff)
            out.set_sform(aff, code=1)
            out.set_qform(aff, code=1)
            meta = json.loads(Path(f"{stem}.json").read_text())
            meta["PhaseEncodingDirection"] = "k"
            if how == "dim_info":
                out.header.set_dim_info(freq=1, phase=2, slice=0)
            elif how == "sidecar":
                meta["SliceEncodingDirection"] = "i"
            nib.save(out, f"{stem}.nii.gz")
            Path(f"{stem}.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("how", ["dim_info", "sidecar"])
def test_slice_axis_comes_from_the_header(replica, flat_table, tmp_path, how):
    root = tmp_path / how
    _slices_first(replica, root, how)
    _, table = measure(root, FLAT)
    same_numbers(table, flat_table)


def test_slice_axis_not_stated_is_not_assumed_silently(replica, tmp_path):
    root = tmp_path / "none"
    _slices_first(replica, root, "none")
    (root / "data_manifest.yaml").write_text(FLAT)
    ds = load_dataset(load_manifest(root / "data_manifest.yaml"))
    _, failures = M.measure_dataset(**ds.measure_inputs(), areas=AREAS, jobs=1)
    # slices taken along k (the default) put each caliper across several "slices"
    assert len(failures) == len(pids(replica)) and (failures.kind == "data").all()


# ------------------------------------------------------------------ read-only

_GUARDED: list[Path] = []


def _no_writes(event, args):
    if not _GUARDED:
        return
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if writing and isinstance(path, (str, bytes, os.PathLike)):
            p = Path(os.fsdecode(path)).resolve()
            if any(p == g or g in p.parents for g in _GUARDED):
                raise PermissionError(f"read-only dataset: {p}")
    elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.unlink",
                   "os.chmod", "os.truncate", "os.utime"):
        p = Path(os.fsdecode(args[0])).resolve()
        if any(p == g or g in p.parents for g in _GUARDED):
            raise PermissionError(f"read-only dataset: {event} {p}")


sys.addaudithook(_no_writes)  # audit hooks cannot be removed: it acts only while _GUARDED is set


@pytest.fixture
def read_only():
    """Any write under the guarded folders raises PermissionError (as on a read-only mount;
    root ignores file modes, so the permission error is raised at the open() boundary)."""
    yield _GUARDED
    _GUARDED.clear()


def test_read_only_dataset_validates_and_measures(replica, flat_table, tmp_path, read_only):
    root = tmp_path / "ro"
    _session_layout(replica, root, inherit=True, ext=".nii")
    (root / "data_manifest.yaml").write_text(FLAT + "files:\n  annotations: derivatives/m1\n")
    read_only.append(root.resolve())
    with pytest.raises(PermissionError):  # the guard works
        (root / "x.txt").write_text("x")
    ds, problems = validate(load_manifest(root / "data_manifest.yaml"), full=True)
    assert problems == []
    table, failures = M.measure_dataset(**ds.measure_inputs(), areas=AREAS, jobs=1)
    assert failures.empty
    same_numbers(table, flat_table)


# ------------------------------------------------------------------ annotations

def test_lps_numbers_declared_ras_are_caught(replica, tmp_path):
    root = tmp_path / "mixup"
    shutil.copytree(replica, root)
    pid = pids(replica)[2]
    mk = root / "derivatives" / "annotations" / f"{pid}_desc-m1_markups.mrk.json"
    mk.write_text(mk.read_text().replace('"coordinateSystem": "LPS"', '"coordinateSystem": "RAS"'))
    (root / "data_manifest.yaml").write_text(FLAT)
    ds = load_dataset(load_manifest(root / "data_manifest.yaml"))
    table, failures = M.measure_dataset(**ds.measure_inputs(), areas=AREAS, jobs=1)
    assert failures.participant_id.tolist() == [pid] and pid not in set(table.participant_id)
    reason = failures.reason.iloc[0]
    assert "LPS" in reason and "coordinateSystem" in reason and mk.name in reason


def test_swapped_hemisphere_names_are_caught(replica, tmp_path):
    root = tmp_path / "swap"
    shutil.copytree(replica, root)
    pid = pids(replica)[2]
    mk = root / "derivatives" / "annotations" / f"{pid}_desc-m1_markups.mrk.json"
    text = mk.read_text().replace('"L_hand"', '"X_hand"').replace('"R_hand"', '"L_hand"')
    mk.write_text(text.replace('"X_hand"', '"R_hand"'))
    with pytest.raises(DataError, match=r"L_hand: L_hand \(x=.*\) lies right of R_hand"):
        ds = load_dataset(load_manifest(root / "data_manifest.yaml"))
        M.measure_participant(pid, ds.images[pid], ds.annotations[pid], areas=AREAS)


def _label_map_layout(src: Path, dst: Path, shift=(3, -2, 0)) -> dict:
    """ROIs as label images in derivatives/m1/sub-X/anat/ (ses-less), one dseg.tsv at the
    top; each label image is on another grid (shifted by whole voxels, bigger) than the
    image. Returns, per participant, the image voxels (i, j, k) each label covers."""
    shutil.copytree(src, dst)
    lookup = "index\tname\n1\tL_hand_roi\n2\tR_hand_roi\n3\tref_precuneus_roi\n"
    (dst / "derivatives" / "m1").mkdir(parents=True)
    (dst / "derivatives" / "m1" / "desc-m1_dseg.tsv").write_text(lookup)
    (dst / "derivatives" / "m1" / "dataset_description.json").write_text(json.dumps(
        {"Name": "M1 ROIs", "BIDSVersion": "1.9.0", "DatasetType": "derivative"}))
    truth = {}
    for pid in pids(src):
        img = nib.load(src / pid / "anat" / f"{pid}_echo-1_part-mag_MEGRE.nii.gz")
        ds = load_dataset(load_manifest(src / "data_manifest.yaml"))
        _, details = M.participant_details(pid, ds.images[pid], ds.annotations[pid], areas=AREAS)
        shape = np.asarray(img.shape) + np.array([10, 10, 2])
        labels = np.zeros(shape, np.uint8)
        cover = {}
        for index, lab in ((1, "L_hand"), (2, "R_hand"), (3, "ref_precuneus")):
            d = details[lab]
            c = np.rint(d["plane"].uv_to_ij(d["ellipse"].centre[None])[0]).astype(int)
            ij = [(c[0] + a, c[1] + b, d["k"]) for a in (-1, 0, 1) for b in (0, 1)]
            for i, j, k in ij:  # label voxel = image voxel + shift
                labels[i + shift[0], j + shift[1], k + shift[2]] = index
            cover[lab] = ij
        aff = img.affine.copy()
        aff[:3, 3] -= aff[:3, :3] @ np.asarray(shift, float)
        out = nib.Nifti1Image(labels, aff)
        out.set_sform(aff, code=1)
        out.set_qform(aff, code=1)
        (dst / "derivatives" / "m1" / pid / "anat").mkdir(parents=True)
        nib.save(out, dst / "derivatives" / "m1" / pid / "anat" / f"{pid}_desc-m1_dseg.nii.gz")
        truth[pid] = cover
    return truth


def test_label_image_rois_against_hand_computed_means(replica, tmp_path):
    root = tmp_path / "labels"
    truth = _label_map_layout(replica, root)
    (root / "data_manifest.yaml").write_text(FLAT + "files:\n  annotations: derivatives/m1\n")
    # calipers (markups) and ROIs (label images) live in the one annotations folder
    for pid in pids(replica):
        shutil.copy(root / "derivatives" / "annotations" / f"{pid}_desc-m1_markups.mrk.json",
                    root / "derivatives" / "m1" / pid / "anat" / f"{pid}_desc-m1_markups.mrk.json")
    ds = load_dataset(load_manifest(root / "data_manifest.yaml"))
    assert set(ds.label_maps) == set(ds.images)
    table, failures = M.measure_dataset(**ds.measure_inputs(), areas=AREAS, jobs=1)
    assert failures.empty, failures.to_string()
    for pid, cover in truth.items():
        if pid not in ds.images:
            continue
        echo2 = np.asanyarray(nib.load(ds.images[pid][1].path).dataobj).astype(float)
        hand = {lab: np.mean([echo2[v] for v in cover[lab]]) for lab in cover}
        rows = table[table.participant_id == pid].set_index("hemisphere")
        for h in ("L", "R"):
            r = rows.loc[h][rows.loc[h].area == "hand"].iloc[0]
            assert r.roi_source == "label_image" and r.roi_n_voxels == 6
            assert r.roi_mean == pytest.approx(hand[f"{h}_hand"], rel=1e-6)
            assert r.ref_mean == pytest.approx(hand["ref_precuneus"], rel=1e-6)
            assert r.intensity == pytest.approx(hand[f"{h}_hand"] / hand["ref_precuneus"], rel=1e-6)
        face = rows[rows.area == "face"]
        assert (face.roi_source != "label_image").all()  # no label drawn: the default oval


def test_label_image_without_lookup_table_is_one_clear_line(replica, tmp_path, capsys):
    root = tmp_path / "nolookup"
    _label_map_layout(replica, root)
    (root / "derivatives" / "m1" / "desc-m1_dseg.tsv").unlink()
    for pid in pids(replica):
        shutil.copy(root / "derivatives" / "annotations" / f"{pid}_desc-m1_markups.mrk.json",
                    root / "derivatives" / "m1" / pid / "anat" / f"{pid}_desc-m1_markups.mrk.json")
    (root / "data_manifest.yaml").write_text(FLAT + "files:\n  annotations: derivatives/m1\n")
    assert cli.main(["validate", str(root / "data_manifest.yaml")]) == 2
    err = capsys.readouterr().err
    assert "sub-ALS02_desc-m1_dseg.nii.gz: sub-ALS02: label map: no dseg.tsv lookup table" in err


def test_streamed_slices_of_a_large_gzip_give_the_same_numbers(replica, flat_table, tmp_path, monkeypatch):
    """Above WHOLE_FILE_BYTES a .nii.gz is streamed (slices read forward, never whole)."""
    from m1lib import slices

    monkeypatch.setattr(slices, "WHOLE_FILE_BYTES", 0)
    root = tmp_path / "stream"
    shutil.copytree(replica, root)
    _, table = measure(root, FLAT)
    same_numbers(table, flat_table)


def test_label_image_with_left_and_right_swapped_is_caught(replica, tmp_path):
    root = tmp_path / "labelswap"
    _label_map_layout(replica, root)
    (root / "derivatives" / "m1" / "desc-m1_dseg.tsv").write_text(
        "index\tname\n1\tR_hand_roi\n2\tL_hand_roi\n3\tref_precuneus_roi\n")
    pid = pids(replica)[1]
    shutil.copy(root / "derivatives" / "annotations" / f"{pid}_desc-m1_markups.mrk.json",
                root / "derivatives" / "m1" / pid / "anat" / f"{pid}_desc-m1_markups.mrk.json")
    (root / "data_manifest.yaml").write_text(FLAT + "files:\n  annotations: derivatives/m1\n")
    ds, problems = validate(load_manifest(root / "data_manifest.yaml"), full=False)
    with pytest.raises(DataError, match=r"dseg.nii.gz: .*: L_hand_roi: the ROI's centre lies right of the midline"):
        M.measure_participant(pid, ds.images[pid], ds.annotations[pid], areas=AREAS,
                              label_map=ds.label_maps[pid])


def test_manifest_session_and_entities_are_checked(tmp_path):
    m = tmp_path / "m.yaml"
    m.write_text("dataset: .\nfiles:\n  session: '01'\n  entities: {run: 2, acq: hires}\n")
    man = load_manifest(m)
    assert man.files.session == "ses-01" and man.files.entities == {"run": "2", "acq": "hires"}
    m.write_text("dataset: .\nfiles:\n  entities: {echo: 1}\n")
    with pytest.raises(DataError, match="files.entities.*sub, ses and echo are not series choices"):
        load_manifest(m)


def test_an_echo_stored_twice_is_an_error(replica, tmp_path, capsys):
    root = tmp_path / "twice"
    shutil.copytree(replica, root)
    pid = pids(replica)[1]
    gz = root / pid / "anat" / f"{pid}_echo-2_part-mag_MEGRE.nii.gz"
    nib.save(nib.load(gz), gz.with_name(gz.name[:-3]))
    (root / "data_manifest.yaml").write_text(FLAT)
    assert cli.main(["validate", str(root / "data_manifest.yaml")]) == 2
    assert f"{pid}/anat: {pid}: echo: echo 2 is stored twice (e.g. both .nii and .nii.gz)" in capsys.readouterr().err
