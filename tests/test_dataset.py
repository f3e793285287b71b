"""The data contract: a valid dataset passes; each kind of bad input is one clear line."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from m1lib import cli
from m1lib.dataset import load_dataset
from m1lib.errors import DataError
from m1lib.manifest import load_manifest


def run_validate(manifest: Path, capsys) -> tuple[int, list[str]]:
    code = cli.main(["validate", str(manifest)])
    err = capsys.readouterr().err
    return code, [l for l in err.splitlines() if l.strip()]


def edit_tsv(path: Path, fn) -> None:
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    df = fn(df)
    df.to_csv(path, sep="\t", index=False, lineterminator="\n")


def set_cell(path: Path, pid: str, col: str, value: str) -> None:
    def fn(df):
        df.loc[df.participant_id == pid, col] = value
        return df
    edit_tsv(path, fn)


def test_valid_dataset_with_images(dataset_dir, capsys):
    code = cli.main(["validate", str(dataset_dir)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "valid" in out.out and "5 participants" in out.out


def test_valid_dataset_with_measurements_only(measured_dataset_dir, capsys):
    code = cli.main(["validate", str(measured_dataset_dir)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "precomputed measurements" in out.out


def test_load_dataset_types_and_derived(dataset_dir):
    ds = load_dataset(load_manifest(dataset_dir))
    p = ds.participants.set_index("participant_id")
    assert p.loc["sub-ALS02", "umn_total"] == 1 + 1 + 2 + 2 + 4  # bulbar, arms L/R, legs L/R
    assert p.loc["sub-ALS02", "dpr"] == pytest.approx((48 - 39) / 12)
    assert p["excluded"].dtype == bool
    assert [e.echo_time_s for e in ds.images["sub-ALS01"]] == [0.010, 0.020]


def test_unknown_extra_columns_are_kept(dataset_dir):
    root = dataset_dir.parent
    edit_tsv(root / "participants.tsv", lambda df: df.assign(site=["pisa"] * len(df)))
    ds = load_dataset(load_manifest(dataset_dir))
    assert (ds.participants["site"] == "pisa").all()


# Each case: (what it breaks, function(root) that breaks it, [substrings the one line must hold])
def _missing_manifest(root):
    (root / "data_manifest.yaml").unlink()
    return ["data_manifest.yaml", "manifest not found"]


def _bad_yaml(root):
    (root / "data_manifest.yaml").write_text("dataset: .\nsettings: [alpha: 0.05\n")
    return ["data_manifest.yaml", "malformed YAML"]


def _misspelled_key(root):
    (root / "data_manifest.yaml").write_text("dataset: .\nsettings:\n  roi_area: 4\n")
    return ["data_manifest.yaml", "settings.roi_area", "did you mean 'roi_area_mm2'"]


def _absolute_file(root):
    (root / "data_manifest.yaml").write_text("dataset: .\nfiles:\n  participants: /etc/passwd\n")
    return ["files.participants", "absolute path"]


def _escaping_file(root):
    (root / "data_manifest.yaml").write_text("dataset: .\nfiles:\n  visual_reads: ../reads.tsv\n")
    return ["files.visual_reads", "escapes the dataset root"]


def _missing_file(root):
    (root / "phenotype" / "visual_reads.tsv").unlink()
    return ["phenotype/visual_reads.tsv", "file not found"]


def _duplicate_id(root):
    edit_tsv(root / "participants.tsv", lambda df: pd.concat([df, df.iloc[[0]]]))
    return ["participants.tsv:7", "sub-ALS01", "participant_id", "duplicate"]


def _bad_group(root):
    set_cell(root / "participants.tsv", "sub-HS01", "group", "n/a")
    return ["participants.tsv:5", "sub-HS01", "group", "missing"]


def _no_comparison_group(root):
    edit_tsv(root / "participants.tsv", lambda df: df.assign(group=df.group.replace({"HS": "control"})))
    return ["participants.tsv", "group", "no analysed participant is in a comparison group", "control"]


def _out_of_range(root):
    set_cell(root / "participants.tsv", "sub-ALS02", "alsfrs_r", "52")
    return ["participants.tsv:3", "sub-ALS02", "alsfrs_r", "out of range", "0-48"]


def _not_a_number(root):
    set_cell(root / "participants.tsv", "sub-ALS03", "umn_arm_left", "three")
    return ["participants.tsv:4", "sub-ALS03", "umn_arm_left", "not a number"]


def _missing_clinical(root):
    set_cell(root / "participants.tsv", "sub-ALS01", "mrc", "n/a")
    return ["participants.tsv:2", "sub-ALS01", "mrc", "required for every analysed ALS"]


def _zero_duration(root):
    set_cell(root / "participants.tsv", "sub-ALS01", "disease_duration_months", "0")
    return ["participants.tsv:2", "sub-ALS01", "disease_duration_months", "DPR"]


def _read_unknown(root):
    p = root / "phenotype" / "visual_reads.tsv"
    edit_tsv(p, lambda df: pd.concat([df, pd.DataFrame([["sub-X9", "reader1", "ALS"]], columns=df.columns)]))
    return ["visual_reads.tsv:12", "sub-X9", "participant_id", "not in participants.tsv"]


def _unread(root):
    p = root / "phenotype" / "visual_reads.tsv"
    edit_tsv(p, lambda df: df[~((df.participant_id == "sub-HS02") & (df.reader == "reader2"))])
    return ["visual_reads.tsv", "sub-HS02", "reader", "no read by reader2"]


def _bad_area(root):
    from conftest import build_dataset
    build_dataset(root, measurements=True)
    edit_tsv(root / "phenotype" / "m1_measurements.tsv",
             lambda df: df.assign(area=df.area.where(df.index != 3, "toe")))
    return ["m1_measurements.tsv:5", "sub-ALS01", "area", "'toe'"]


def _bad_hemisphere(root):
    from conftest import build_dataset
    build_dataset(root, measurements=True)
    edit_tsv(root / "phenotype" / "m1_measurements.tsv",
             lambda df: df.assign(hemisphere=df.hemisphere.where(df.index != 0, "left")))
    return ["m1_measurements.tsv:2", "sub-ALS01", "hemisphere", "'left'"]


def _duplicate_measurement(root):
    from conftest import build_dataset
    build_dataset(root, measurements=True)
    edit_tsv(root / "phenotype" / "m1_measurements.tsv", lambda df: pd.concat([df, df.iloc[[1]]]))
    return ["m1_measurements.tsv:42", "sub-ALS01", "area", "duplicate"]


def _no_image(root):
    for f in (root / "sub-HS01" / "anat").iterdir():
        f.unlink()
    return ["sub-HS01/anat", "sub-HS01", "image", "no image"]


def _no_annotation(root):
    (root / "derivatives" / "annotations" / "sub-ALS02_desc-m1_markups.mrk.json").unlink()
    return ["sub-ALS02_desc-m1_markups.mrk.json", "sub-ALS02", "annotations", "not found"]


def _missing_label(root):
    p = root / "derivatives" / "annotations" / "sub-ALS03_desc-m1_markups.mrk.json"
    doc = json.loads(p.read_text())
    doc["markups"] = [m for m in doc["markups"] if m["name"] != "R_hand"]
    p.write_text(json.dumps(doc))
    return ["sub-ALS03_desc-m1_markups.mrk.json", "sub-ALS03", "R_hand", "missing"]


def _unreadable_nifti(root):
    (root / "sub-HS02" / "anat" / "sub-HS02_echo-1_part-mag_MEGRE.nii.gz").write_bytes(b"not a nifti at all")
    return ["sub-HS02_echo-1_part-mag_MEGRE.nii.gz", "sub-HS02", "image", "unreadable NIfTI"]


def _truncated_nifti(root):
    p = root / "sub-ALS01" / "anat" / "sub-ALS01_echo-2_part-mag_MEGRE.nii.gz"
    raw = gzip.decompress(p.read_bytes())
    p.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    return ["sub-ALS01_echo-2_part-mag_MEGRE.nii.gz", "sub-ALS01", "image", "truncated"]


def _echo_time_ms(root):
    p = root / "sub-ALS03" / "anat" / "sub-ALS03_echo-2_part-mag_MEGRE.json"
    p.write_text(json.dumps({"EchoTime": 20}))
    return ["sub-ALS03_echo-2_part-mag_MEGRE.json", "sub-ALS03", "EchoTime", "milliseconds"]


CASES = [_missing_manifest, _bad_yaml, _misspelled_key, _absolute_file, _escaping_file, _missing_file,
         _duplicate_id, _bad_group, _no_comparison_group, _out_of_range, _not_a_number, _missing_clinical, _zero_duration,
         _read_unknown, _unread, _bad_area, _bad_hemisphere, _duplicate_measurement, _no_image,
         _no_annotation, _missing_label, _unreadable_nifti, _truncated_nifti, _echo_time_ms]


@pytest.mark.parametrize("breaker", CASES, ids=[c.__name__.strip("_") for c in CASES])
def test_bad_input_is_one_clear_line(dataset_dir, capsys, breaker):
    expected = breaker(dataset_dir.parent)
    code, lines = run_validate(dataset_dir, capsys)
    assert code == 2
    assert not any("Traceback" in l for l in lines)
    hits = [l for l in lines if all(s in l for s in expected)]
    assert hits, f"no line holds {expected}:\n" + "\n".join(lines)


def test_every_problem_is_reported_not_just_the_first(dataset_dir, capsys):
    root = dataset_dir.parent
    _bad_group(root)
    _zero_duration(root)
    _echo_time_ms(root)
    code, lines = run_validate(dataset_dir, capsys)
    assert code == 2
    assert sum("group" in l for l in lines) == 1
    assert any("disease_duration_months" in l for l in lines)
    assert any("EchoTime" in l for l in lines)


def test_load_dataset_raises_all_problems(dataset_dir):
    root = dataset_dir.parent
    _bad_group(root)
    _out_of_range(root)
    with pytest.raises(DataError) as info:
        load_dataset(load_manifest(dataset_dir))
    assert len(info.value.problems) == 2


def test_console_script_exit_code_and_no_traceback(dataset_dir):
    _bad_group(dataset_dir.parent)
    proc = subprocess.run([sys.executable, "-m", "m1lib", "validate", str(dataset_dir)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "sub-HS01: group:" in proc.stderr


def _many(root, value, n_cols=("age", "cmct_ms", "frap")):
    def fn(df):
        for c in n_cols:
            df[c] = value
        return df
    edit_tsv(root / "participants.tsv", fn)


@pytest.mark.parametrize("token, declared", [("NA", "[NA]"), ("N/A", "[N/A]"), ("", '[""]')])
def test_missing_value_spellings_are_one_line_and_can_be_declared(dataset_dir, capsys, token, declared):
    root = dataset_dir.parent
    _many(root, token)
    code, lines = run_validate(dataset_dir, capsys)
    assert code == 2
    hits = [l for l in lines if l.startswith("participants.tsv:") and "cells" in l]
    assert len(hits) == 1, lines
    what = "are empty" if token == "" else f"hold {token!r}"
    assert f"participants.tsv: 15 cells {what} (columns age, cmct_ms, frap, lines 2, 3, 4, 5, 6)" in hits[0]
    assert f"`files.missing_values: [{token or chr(34) * 2}]`" in hits[0]
    assert len(lines) == 2  # that line and the count; age 'NA' is not also "not a number"
    (root / "data_manifest.yaml").write_text(f"dataset: .\nfiles:\n  missing_values: {declared}\n")
    code, lines = run_validate(dataset_dir, capsys)
    assert code == 0, lines
    ds = load_dataset(load_manifest(dataset_dir))
    assert ds.participants["age"].isna().all()


def test_repeated_problems_are_grouped_still_naming_file_and_field(tmp_path, capsys):
    from conftest import build_dataset
    manifest = build_dataset(tmp_path / "big", n_als=8, n_hs=3)
    for f in (tmp_path / "big").glob("sub-*/anat/*echo-2*.json"):
        f.write_text(json.dumps({"EchoTime": 20}))
    code, lines = run_validate(manifest, capsys)
    assert code == 2
    hits = [l for l in lines if "milliseconds" in l]
    assert len(hits) == 1
    assert hits[0].startswith("sub-<label>/anat/sub-<label>_echo-2_part-mag_MEGRE.json: EchoTime: ")
    assert "(11 participants: sub-ALS01, sub-ALS02, sub-ALS03 and 8 more)" in hits[0]


def test_groups_other_than_als_and_hs(dataset_dir, capsys):
    root = dataset_dir.parent
    set_cell(root / "participants.tsv", "sub-HS01", "group", "PLS")
    set_cell(root / "participants.tsv", "sub-HS02", "group", "mimic")
    code, lines = run_validate(dataset_dir, capsys)
    assert code == 2 and any("comparison group (HS; groups found: ALS, PLS, mimic)" in l for l in lines)
    (root / "data_manifest.yaml").write_text("dataset: .\nsettings:\n  comparison_groups: [mimic]\n")
    code, lines = run_validate(dataset_dir, capsys)
    assert code == 0, lines
    assert set(load_dataset(load_manifest(dataset_dir)).participants.group) == {"ALS", "PLS", "mimic"}


def test_reads_problems_are_grouped_one_line_each(dataset_dir):
    """A reader who skipped analysed participants, and calls outside ALS/normal: one line per kind."""
    root = dataset_dir.parent
    p = root / "phenotype" / "visual_reads.tsv"
    edit_tsv(p, lambda df: df[~((df.reader == "reader2") & df.participant_id.isin(["sub-ALS01", "sub-HS02"]))])
    edit_tsv(p, lambda df: df.assign(call=df.call.where(~((df.reader == "reader1") & (df.call == "normal")), "neg")))
    proc = subprocess.run([sys.executable, "-m", "m1lib", "validate", str(dataset_dir)],
                          capture_output=True, text=True)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    reads = [l for l in lines if "visual_reads.tsv" in l]
    assert len(reads) == 2, reads
    # reader1 called 'normal' on sub-ALS01 and on sub-HS02 (fixture): 2 bad calls, by hand
    assert any("call: call 'neg' is not one of ALS, normal (2 read(s)" in l for l in reads), reads
    assert any("reader: 2 analysed participant(s) with no read by reader2: sub-ALS01, sub-HS02" in l
               for l in reads), reads
