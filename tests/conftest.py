"""Shared fixtures: a small, valid dataset built on disk, to be broken by tests."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from m1lib import contract as C

HEADER = list(C.PARTICIPANT_COLUMNS)


def _participants(n_als: int, n_hs: int) -> pd.DataFrame:
    rows = []
    for i in range(n_als):
        rows.append(dict(participant_id=f"sub-ALS{i + 1:02d}", group="ALS", age=55 + i, sex="MF"[i % 2],
                         excluded="false", exclusion_reason="n/a", alsfrs_r=40 - i,
                         disease_duration_months=10 + 2 * i, mrc=118 + i, umn_bulbar=i % 2,
                         umn_arm_left=i % 9, umn_arm_right=(i + 1) % 9, umn_leg_left=(2 * i) % 9, umn_leg_right=(3 + i) % 9,
                         cmct_ms=8.5 + i, cortical_latency_ms=20 + i, cortical_silent_period_ms=130 + i,
                         frap=0.9, aopp=100 + i, thiols=300 + i))
    for i in range(n_hs):
        rows.append(dict(participant_id=f"sub-HS{i + 1:02d}", group="HS", age=50 + i, sex="FM"[i % 2],
                         excluded="false", exclusion_reason="n/a"))
    df = pd.DataFrame(rows).reindex(columns=HEADER)
    return df.fillna("n/a").astype(str)


def _markups(points: dict[str, list[list[float]]]) -> dict:
    marks = []
    for name, pts in points.items():
        marks.append({
            "type": "Fiducial" if name == C.REFERENCE_LABEL else "Line",
            "name": name, "coordinateSystem": "LPS", "coordinateUnits": "mm",
            "controlPoints": [
                {"id": str(k + 1), "label": name if name == C.REFERENCE_LABEL else f"{name}-{k + 1}",
                 "position": [-p[0], -p[1], p[2]], "positionStatus": "defined"}
                for k, p in enumerate(pts)],
        })
    return {"@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/"
                       "Markups/Resources/Schema/markups-schema-v1.0.3.json#", "markups": marks}


def write_tsv(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, sep="\t", index=False, lineterminator="\n")


def build_dataset(root: Path, n_als: int = 3, n_hs: int = 2, *, images: bool = True,
                  measurements: bool = False) -> Path:
    """Write a small valid dataset under ``root``; return its manifest path."""
    root.mkdir(parents=True, exist_ok=True)
    parts = _participants(n_als, n_hs)
    write_tsv(parts, root / "participants.tsv")
    (root / "dataset_description.json").write_text(json.dumps({"Name": "test", "BIDSVersion": "1.9.0"}))
    def call(pid: str, reader: str) -> str:
        # Reader 1 misses the first patient and over-calls the first healthy subject;
        # reader 2 misses the first two patients: both groups exist for every test.
        if pid.startswith("sub-ALS"):
            k = int(pid[7:])
            return "normal" if k == 1 or (reader == "reader2" and k == 2) else "ALS"
        return "ALS" if (reader == "reader1" and pid == "sub-HS01") else "normal"

    reads = pd.DataFrame([(pid, r, call(pid, r)) for pid in parts.participant_id for r in ("reader1", "reader2")],
                         columns=["participant_id", "reader", "call"])
    write_tsv(reads, root / "phenotype" / "visual_reads.tsv")
    if measurements:
        rows = [(pid, h, a, round(1.4 + 0.07 * ((3 * i + k) % 9), 3), round(0.82 + 0.013 * ((5 * i + 2 * k) % 11), 4))
                for i, pid in enumerate(parts.participant_id)
                for k, (h, a) in enumerate((h, a) for h in C.HEMISPHERES for a in C.AREAS)]
        write_tsv(pd.DataFrame(rows, columns=["participant_id", "hemisphere", "area", "thickness_mm", "intensity"]),
                  root / "phenotype" / "m1_measurements.tsv")
    if images:
        affine = np.diag([0.25, 0.25, 2.0, 1.0])
        shape = (40, 40, 4)
        for pid in parts.participant_id:
            anat = root / pid / "anat"
            anat.mkdir(parents=True, exist_ok=True)
            for echo, te in ((1, 0.010), (2, 0.020)):
                data = (1000 * np.exp(-te * 30) * np.ones(shape)).astype(np.int16)
                img = nib.Nifti1Image(data, affine)
                img.set_qform(affine, code=1)
                img.set_sform(affine, code=1)
                nib.save(img, anat / f"{pid}_echo-{echo}_part-mag_MEGRE.nii.gz")
                (anat / f"{pid}_echo-{echo}_part-mag_MEGRE.json").write_text(
                    json.dumps({"EchoTime": te, "RepetitionTime": 0.5}))
            pts = {}
            for k, (h, a) in enumerate((h, a) for h in C.HEMISPHERES for a in C.AREAS):
                z = 2.0 * (k % 4)
                pts[f"{h}_{a}"] = [[2.0 + k, 3.0, z], [2.0 + k, 4.5, z]]
            pts[C.REFERENCE_LABEL] = [[5.0, 5.0, 2.0]]
            ann = root / "derivatives" / "annotations"
            ann.mkdir(parents=True, exist_ok=True)
            (ann / f"{pid}_desc-m1_markups.mrk.json").write_text(json.dumps(_markups(pts), indent=2))
    manifest = root / "data_manifest.yaml"
    manifest.write_text("dataset: .\n")
    return manifest


@pytest.fixture
def dataset_dir(tmp_path) -> Path:
    """Manifest of a valid dataset with images and annotations (no measurement table)."""
    return build_dataset(tmp_path / "study")


@pytest.fixture
def measured_dataset_dir(tmp_path) -> Path:
    """Manifest of a valid dataset with only a precomputed measurement table."""
    return build_dataset(tmp_path / "study", images=False, measurements=True)


# ----------------------------------------------------------------------------- shared reports
# Each end-to-end report runs once per test session and is shared (read-only) by the
# tests that look at it; a test that changes data or reports works on its own copy.
N_BOOT = 1000


@pytest.fixture(scope="session")
def measured_report(tmp_path_factory):
    """A dataset with only a measurement table (10 ALS + 8 HS, no images) and its report."""
    from m1lib import report

    root = tmp_path_factory.mktemp("measured") / "study"
    manifest = build_dataset(root, n_als=10, n_hs=8, images=False, measurements=True)
    manifest.write_text(f"dataset: .\nsettings:\n  n_bootstrap: {N_BOOT}\n")
    out = root.parent / "reports" / "latest"
    assert report.run_report(manifest, out, jobs=2, log=lambda *a: None) == 0
    return manifest, out


@pytest.fixture(scope="session")
def replica_report(tmp_path_factory):
    """The default replica (generated on first use), measured from its images, and its report."""
    from m1lib import report

    base = tmp_path_factory.mktemp("replica")
    manifest = base / "data_manifest.yaml"
    manifest.write_text(f"dataset: cache/replica\nreplica:\n  seed: 20160301\nsettings:\n  n_bootstrap: {N_BOOT}\n")
    out = base / "reports" / "latest"
    assert report.run_report(manifest, out, jobs=2, log=lambda *a: None) == 0
    return manifest, out


def tree_digest(root: Path, sub: str = ".") -> dict[str, str]:
    """SHA-256 of every file under ``root/sub`` by relative path (byte-identity checks)."""
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / sub).rglob("*")) if p.is_file()}
