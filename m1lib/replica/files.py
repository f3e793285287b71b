"""Deterministic files of the replica: NIfTI, JSON sidecars, TSV tables, the output folder.

Everything written here is byte-identical run to run (no timestamps: the gzip
header's mtime is 0; JSON keys sorted; TSV floats formatted explicitly).
"""
from __future__ import annotations

import gzip
import io
import json
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..errors import DataError
from .phantom import ECHO_TIMES_S, FLIP_ANGLE_DEG, PHASE_AXIS, REPETITION_TIME_S, SLICE_MM

__all__ = ["to_int16", "nifti_gz_bytes", "sidecar", "write_json", "write_tsv",
           "package_version", "derivative_description", "prepare_out_dir"]


def to_int16(img: np.ndarray) -> np.ndarray:
    """Round and clip to int16 (image units are already scaled by the gain)."""
    return np.clip(np.rint(img), 0, 32767).astype(np.int16)


def nifti_gz_bytes(vol_kji: np.ndarray, affine: np.ndarray, compresslevel: int = 1) -> bytes:
    """A gzipped NIfTI-1 of a (k, j, i) int16 volume, byte-identical run to run.

    qform and sform both hold ``affine`` (code 1, scanner), units are mm and s,
    the slice axis is the third. The gzip header's mtime is 0 and its file name
    empty (nibabel's own writer stamps the current time). ``compresslevel`` 1 is
    nibabel's default.
    """
    data = vol_kji.T                                      # (i, j, k), Fortran-contiguous
    img = nib.Nifti1Image(data, affine)
    hdr = img.header
    hdr.set_data_dtype(np.int16)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    hdr.set_xyzt_units("mm", "sec")
    hdr.set_dim_info(freq=0, phase=PHASE_AXIS, slice=2)
    hdr["descrip"] = b"m1lib replica (synthetic)"
    raw = img.to_bytes()
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0,
                       compresslevel=compresslevel) as gz:
        gz.write(raw)
    return buf.getvalue()


def sidecar(echo_index: int, echo_times=ECHO_TIMES_S) -> dict:
    """BIDS JSON sidecar of one echo (times in seconds)."""
    return {
        "EchoNumber": echo_index + 1,
        "EchoTime": float(echo_times[echo_index]),
        "RepetitionTime": REPETITION_TIME_S,
        "FlipAngle": FLIP_ANGLE_DEG,
        "MagneticFieldStrength": 7,
        "Manufacturer": "GE",
        "ManufacturersModelName": "MR950 (simulated)",
        "ReceiveCoilName": "2CH-TX/32CH-RX (simulated)",
        "MRAcquisitionType": "2D",
        "SliceThickness": SLICE_MM,
        "SpacingBetweenSlices": SLICE_MM,
        "NumberOfAverages": 2,
        "PhaseEncodingDirection": "j",
        "ImageType": ["ORIGINAL", "PRIMARY", "M"],
        "SeriesDescription": "2D multi-echo GRE T2*, axial, targeted to M1",
        "GeneratedBy": "m1lib synth (replica; synthetic data)",
    }


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n",
                    encoding="utf-8")


def write_tsv(path: Path, df: pd.DataFrame, float_format: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == bool:
            df[c] = np.where(df[c], "true", "false")
    text = df.to_csv(sep="\t", index=False, na_rep="n/a", float_format=float_format,
                     lineterminator="\n")
    path.write_text(text, encoding="utf-8")


def package_version() -> str:
    try:
        return version("m1lib")
    except PackageNotFoundError:  # pragma: no cover - not installed
        return "unknown"


def derivative_description(name: str, description: str) -> dict:
    return {"Name": name, "BIDSVersion": "1.8.0", "DatasetType": "derivative",
            "Description": description,
            "GeneratedBy": [{"Name": "m1lib synth", "Version": package_version()}]}


def prepare_out_dir(out: Path) -> None:
    """Create ``out``; clear a previous replica there; refuse other non-empty folders."""
    if out.exists() and any(out.iterdir()):
        desc = out / "dataset_description.json"
        try:
            ours = "m1lib synth" in desc.read_text(encoding="utf-8")
        except OSError:
            ours = False
        if not ours:
            raise DataError(f"{out}: folder is not empty and does not hold a replica "
                            "(expected an empty or missing folder)")
        for child in out.iterdir():
            if child.is_dir() and (child.name.startswith("sub-")
                                   or child.name in ("derivatives", "phenotype")):
                shutil.rmtree(child)
    out.mkdir(parents=True, exist_ok=True)

