"""Write the folded replica as a BIDS dataset (the same layout as ``m1lib synth``).

Participants, visual reads and truth tables come from a
:class:`~m1lib.replica.cohort.ReplicaCohort`; images from
:func:`~m1lib.replica.acquisition.render_subject`, stored as int16 NIfTI-1 (LAS,
qform = sform) through the flat replica's deterministic writer; annotations are
the simulated rater's calipers and reference point (3D Slicer markups, RAS).
Everything is byte-identical for the same seed.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import contract
from .. import markups as mk
from .. import phantom as ph
from .. import synth
from . import acquisition as acqm
from .anatomy import Anatomy
from .cohort import ReplicaCohort

__all__ = ["write_dataset", "to_storage"]

_STREAM = 1414


def to_storage(img: np.ndarray) -> np.ndarray:
    """(n_echo, k, y, x ascending) float -> (n_echo, k, j, i) int16, i from right to left."""
    return ph.to_int16(img[..., ::-1])


def write_dataset(out_dir, cohort: ReplicaCohort, anat: Anatomy, *, seed: int = 20160301,
                  timings: dict | None = None) -> Path:
    """Render every participant of ``cohort`` and write the dataset into ``out_dir``.

    ``timings`` (optional dict) receives ``render_s`` and ``write_s`` (wall
    time rendering and encoding/writing the images).
    """
    out = Path(out_dir)
    synth._prepare_out_dir(out)
    acq = cohort.acquisition
    ph.write_json(out / "dataset_description.json", {
        "Name": "m1lib folded replica of Cosottini et al. 2016 (synthetic)",
        "BIDSVersion": "1.8.0", "DatasetType": "raw", "License": "CC0",
        "Authors": ["m1lib synth"],
        "HowToAcknowledge": "Synthetic data on the ICBM152 2009a template's folding.",
        "GeneratedBy": [{"Name": "m1lib synth", "Version": synth._version(),
                         "Description": f"m1lib.replica seed={seed} voxel={acq.voxel_mm} "
                                        f"filter={acq.kspace_filter}"}],
    })
    # a plain manifest: the folded replica is read like any user's dataset (its
    # `replica:` block would make the report regenerate the flat replica)
    (out / "data_manifest.yaml").write_text(
        "# Written by m1lib.replica: a folded replica (synthetic) dataset.\ndataset: .\n",
        encoding="utf-8")
    synth._write_tsv(out / "participants.tsv", synth._fmt_participants(cohort.participants))
    ph.write_json(out / "participants.json", synth._PARTICIPANTS_JSON)
    synth._write_tsv(out / "phenotype" / "visual_reads.tsv", cohort.visual_reads)
    truth = out / "derivatives" / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    ph.write_json(truth / "dataset_description.json", synth._derivative_description(
        "m1lib folded replica ground truth",
        "Deep-layer thickness along the 3-D normal (thickness_mm) and in the slice plane "
        "(thickness_plane_mm), obliquity, U-fibre width, vein distance, R2*, noise-free "
        "normalized intensity (echo 2) and edges (RAS mm) per participant, hemisphere, area."))
    synth._write_tsv(truth / "truth_areas.tsv", cohort.truth_areas, float_format="%.6f")
    synth._write_tsv(truth / "truth_participants.tsv", cohort.truth_participants,
                     float_format="%.6f")
    ann = out / "derivatives" / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    ph.write_json(ann / "dataset_description.json", synth._derivative_description(
        "m1lib folded replica annotations",
        "Simulated rater: calipers across the deep layer of M1, perpendicular to it in the "
        "slice (first point on the superficial side), and the left precuneus reference."))
    n_area = len(contract.HEMISPHERES) * len(contract.AREAS)
    t_render = t_write = 0.0
    for i, spec in enumerate(cohort.specs):
        tp = cohort.truth_participants.iloc[i]
        pid = tp["participant_id"]
        t0 = time.perf_counter()
        img = acqm.render_subject(anat, acq, spec, np.random.default_rng([seed, _STREAM, i]))
        t1 = time.perf_counter()
        vol = to_storage(img)
        affine = acqm.slab_affine(acq, spec.z_shift_mm)
        d = out / pid / "anat"
        d.mkdir(parents=True, exist_ok=True)
        for e in range(vol.shape[0]):
            stem = f"{pid}_echo-{e + 1}_part-mag_MEGRE"
            (d / f"{stem}.nii.gz").write_bytes(ph.nifti_gz_bytes(vol[e], affine))
            side = ph.sidecar(e, acq.echo_times_s)
            side["SliceThickness"] = side["SpacingBetweenSlices"] = acq.slice_mm
            side["GeneratedBy"] = "m1lib.replica (folded replica; synthetic data)"
            ph.write_json(d / f"{stem}.json", side)
        t_render += t1 - t0
        t_write += time.perf_counter() - t1
        rows = cohort.truth_areas.iloc[i * n_area:(i + 1) * n_area]
        mk.write_markups(ann / f"{pid}_desc-m1_markups.mrk.json", synth.rater_markups(rows, tp))
    if timings is not None:
        timings.update(render_s=t_render, write_s=t_write)
    return out
