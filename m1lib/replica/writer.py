"""Write a replica as a dataset in the data contract (``docs/data.md``).

The tables (participants, visual reads, the truth in ``derivatives/truth/``, the
simulated rater's annotations in ``derivatives/annotations/``) are written the
same way for both replicas (:func:`write_tables`); the images come from the
flat phantom (:func:`write_flat_images`) or from the folded anatomy's
acquisition (:func:`write_dataset`, :func:`write_folded_images`). Images are
int16 NIfTI-1 (LAS, qform = sform) from a deterministic writer: the same seed
gives byte-identical files.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .. import contract
from .. import markups as mk
from . import acquisition as acqm
from . import flat
from . import phantom as ph
from .anatomy import Anatomy
from .calibration import _S_NOISE, _rng
from .cohort import ReplicaCohort
from .files import (derivative_description, nifti_gz_bytes, package_version, prepare_out_dir,
                    sidecar, to_int16, write_json, write_tsv)
from .targets import OPTIONAL_MARGINALS

__all__ = ["write_tables", "write_flat_images", "write_dataset", "write_folded_images",
           "to_storage", "rater_markups", "PARTICIPANTS_JSON"]

_STREAM = 1414      # the folded replica's noise streams (seed, _STREAM, participant)

PARTICIPANTS_JSON = {
    "participant_id": {"Description": "Participant label (sub-ALSnn patients, sub-HSnn healthy)."},
    "group": {"Description": "Diagnostic group.",
              "Levels": {"ALS": "definite ALS (revised El Escorial)", "HS": "healthy subject"}},
    "age": {"Description": "Age at MRI.", "Units": "year"},
    "sex": {"Description": "Sex.", "Levels": {"F": "female", "M": "male"}},
    "excluded": {"Description": "Excluded from the analysis.",
                 "Levels": {"true": "excluded", "false": "analysed"}},
    "exclusion_reason": {"Description": "Why the participant was excluded (n/a if analysed)."},
    "alsfrs_r": {"Description": "ALS Functional Rating Scale-Revised (0-48)."},
    "disease_duration_months": {"Description": "Months from first symptom to MRI.",
                                "Units": "month"},
    "mrc": {"Description": "Medical Research Council sum score of muscle strength (0-130)."},
    "umn_bulbar": {"Description": "Bulbar upper motor neuron score (0-1)."},
    "umn_arm_left": {"Description": "Upper motor neuron score, left arm (0-8)."},
    "umn_arm_right": {"Description": "Upper motor neuron score, right arm (0-8)."},
    "umn_leg_left": {"Description": "Upper motor neuron score, left leg (0-8)."},
    "umn_leg_right": {"Description": "Upper motor neuron score, right leg (0-8)."},
    "cmct_ms": {"Description": "Central motor conduction time (MEP).", "Units": "ms"},
    "cortical_latency_ms": {"Description": "Cortical MEP latency.", "Units": "ms"},
    "cortical_silent_period_ms": {"Description": "Cortical silent period.", "Units": "ms"},
    "frap": {"Description": "Ferric-reducing ability of plasma.", "Units": "mmol/L"},
    "aopp": {"Description": "Advanced oxidation protein products (plasma).", "Units": "umol/L"},
    "thiols": {"Description": "Plasma thiols.", "Units": "umol/L"},
}
_INT_COLUMNS = ("age", "alsfrs_r", "disease_duration_months", "mrc") + contract.UMN_COLUMNS


def fmt_participants(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in _INT_COLUMNS:
        out[c] = pd.array(np.where(out[c].notna(), out[c], np.nan), dtype="Float64").round(0)
        out[c] = out[c].astype("Int64")
    for c, (_, _, dec) in OPTIONAL_MARGINALS.items():
        if dec == 0:
            out[c] = pd.array(out[c], dtype="Float64").round(0).astype("Int64")
    out["excluded"] = np.where(df["excluded"], "true", "false")
    return out



def rater_markups(truth_areas: pd.DataFrame, truth_participant: pd.Series) -> list:
    """The simulated rater's calipers and reference point for one participant.

    Each caliper runs from the true outer (superficial) edge to the true inner
    (white-matter side) edge of the deep layer, both endpoints displaced in the
    slice plane by ``N(0, RATER_SD_MM)`` per axis (drawn in :func:`make_cohort`,
    columns ``caliper_*`` of the truth); the reference point likewise
    (``ref_marked_*``).
    """
    out = []
    for _, row in truth_areas.iterrows():
        pts = [[row[f"{key}_{ax}"] for ax in "xyz"] for key in ("caliper_outer", "caliper_inner")]
        out.append(mk.line(f"{row['hemisphere']}_{row['area']}", pts[0], pts[1]))
    ref = [truth_participant[f"ref_marked_{ax}"] for ax in "xyz"]
    out.append(mk.fiducial(contract.REFERENCE_LABEL, ref))
    return out



def write_tables(out: Path, tables: dict, *, name: str, generated: str, acknowledge: str,
                 manifest_text: str, truth_text: str, annotations_text: str) -> None:
    """Write everything but the images and markups into ``out`` (which exists).

    ``tables`` holds ``participants``, ``visual_reads``, ``truth_areas`` and
    ``truth_participants``; the texts describe the dataset (``name``,
    ``generated`` for ``GeneratedBy``, ``acknowledge``), its manifest, and the
    two derivative folders.
    """
    write_json(out / "dataset_description.json", {
        "Name": name, "BIDSVersion": "1.8.0", "DatasetType": "raw", "License": "CC0",
        "Authors": ["m1lib synth"], "HowToAcknowledge": acknowledge,
        "GeneratedBy": [{"Name": "m1lib synth", "Version": package_version(),
                         "Description": generated}],
    })
    (out / "data_manifest.yaml").write_text(manifest_text, encoding="utf-8")
    write_tsv(out / "participants.tsv", fmt_participants(tables["participants"]))
    write_json(out / "participants.json", PARTICIPANTS_JSON)
    write_tsv(out / "phenotype" / "visual_reads.tsv", tables["visual_reads"])
    truth_dir = out / "derivatives" / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    write_json(truth_dir / "dataset_description.json", derivative_description(
        f"{name.split(' of ')[0]} ground truth", truth_text))
    write_tsv(truth_dir / "truth_areas.tsv", tables["truth_areas"], float_format="%.6f")
    write_tsv(truth_dir / "truth_participants.tsv", tables["truth_participants"],
              float_format="%.6f")
    ann_dir = out / "derivatives" / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    write_json(ann_dir / "dataset_description.json", derivative_description(
        f"{name.split(' of ')[0]} annotations", annotations_text))


def _write_participant(out: Path, pid: str, vol: np.ndarray, affine: np.ndarray,
                       sidecars: list[dict], markups: list) -> None:
    anat = out / pid / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    for e in range(vol.shape[0]):
        stem = f"{pid}_echo-{e + 1}_part-mag_MEGRE"
        (anat / f"{stem}.nii.gz").write_bytes(nifti_gz_bytes(vol[e], affine))
        write_json(anat / f"{stem}.json", sidecars[e])
    mk.write_markups(out / "derivatives" / "annotations" / f"{pid}_desc-m1_markups.mrk.json",
                     markups)


def _run(one, n: int, workers: int | None) -> None:
    """``one(i)`` for every participant, ``workers`` at a time (the output does not depend on it)."""
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    if workers <= 1:
        for i in range(n):
            one(i)
        return
    # numpy's FFTs and random fills and zlib release the GIL; at most `workers`
    # participants are in memory at once
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for _ in ex.map(one, range(n)):
            pass


def write_flat_images(out: Path, cohort: dict, seed: int, oblique: bool,
                      workers: int | None = None) -> None:
    """Render the flat replica's participants (:mod:`m1lib.replica.phantom`) and their markups."""
    affine = ph.slab_affine(oblique)
    tp, ta = cohort["truth_participants"], cohort["truth_areas"]
    n_area = len(contract.HEMISPHERES) * len(contract.AREAS)
    ids = list(cohort["participants"]["participant_id"])

    def one(i: int) -> None:
        # everything for participant i, from its own random streams: order-free
        img = ph.render(flat.image_spec(cohort, i), noise_rng=_rng(seed, _S_NOISE, i))
        vol = to_int16(img)
        del img
        _write_participant(out, ids[i], vol, affine, [sidecar(e) for e in range(vol.shape[0])],
                           rater_markups(ta.iloc[i * n_area:(i + 1) * n_area], tp.iloc[i]))

    _run(one, len(ids), workers)


def to_storage(img: np.ndarray) -> np.ndarray:
    """(n_echo, k, y, x ascending) float -> (n_echo, k, j, i) int16, i from right to left."""
    return to_int16(img[..., ::-1])


def folded_sidecars(acq: acqm.Acquisition) -> list[dict]:
    """The JSON sidecars of the folded replica's echoes."""
    out = []
    for e in range(len(acq.echo_times_s)):
        side = sidecar(e, acq.echo_times_s)
        side["SliceThickness"] = side["SpacingBetweenSlices"] = acq.slice_mm
        side["GeneratedBy"] = "m1lib.replica (folded replica; synthetic data)"
        out.append(side)
    return out


def write_folded_images(out: Path, cohort: ReplicaCohort, anat: Anatomy, seed: int,
                        workers: int | None = 1, timings: dict | None = None) -> None:
    """Render the folded replica's participants (:mod:`m1lib.replica.acquisition`) and markups.

    ``timings`` (optional) receives ``render_s`` and ``write_s``, summed over participants.
    """
    acq = cohort.acquisition
    n_area = len(contract.HEMISPHERES) * len(contract.AREAS)
    sides = folded_sidecars(acq)
    spent = {"render_s": 0.0, "write_s": 0.0}

    def one(i: int) -> None:
        spec = cohort.specs[i]
        tp = cohort.truth_participants.iloc[i]
        t0 = time.perf_counter()
        img = acqm.render_subject(anat, acq, spec, np.random.default_rng([seed, _STREAM, i]))
        t1 = time.perf_counter()
        vol = to_storage(img)
        del img
        rows = cohort.truth_areas.iloc[i * n_area:(i + 1) * n_area]
        _write_participant(out, tp["participant_id"], vol, acqm.slab_affine(acq, spec.z_shift_mm),
                           sides, rater_markups(rows, tp))
        spent["render_s"] += t1 - t0
        spent["write_s"] += time.perf_counter() - t1

    _run(one, len(cohort.specs), workers)
    if timings is not None:
        timings.update(spent)


FOLDED_TRUTH_TEXT = (
    "Deep-layer thickness along the 3-D normal (thickness_mm, = thickness_3d_mm) and in the "
    "slice plane (thickness_plane_mm), obliquity, U-fibre width, vein distance, R2*, noise-free "
    "normalized intensity (echo 2) and edges (RAS mm) per participant, hemisphere, area. "
    "Cortical depth is equidistant from the white surface.")
FOLDED_ANNOTATIONS_TEXT = (
    "Simulated rater: calipers across the deep layer of M1, perpendicular to it in the "
    "slice (first point on the superficial side), and the left precuneus reference.")


def write_dataset(out_dir, cohort: ReplicaCohort, anat: Anatomy, *, seed: int = 20160301,
                  timings: dict | None = None, manifest_text: str | None = None,
                  workers: int | None = 1, generated: str | None = None) -> Path:
    """Render every participant of the folded ``cohort`` and write the dataset into ``out_dir``.

    ``timings`` (optional dict) receives ``render_s`` and ``write_s`` (time
    rendering and encoding/writing the images, summed over participants).
    ``manifest_text`` is the dataset's ``data_manifest.yaml`` (default: a plain
    manifest, read like any user's dataset: a subset of a cohort is not the
    replica its seed and sizes would regenerate). ``generated``: the note under
    ``GeneratedBy`` in ``dataset_description.json``.
    """
    out = Path(out_dir)
    prepare_out_dir(out)
    acq = cohort.acquisition
    if manifest_text is None:
        manifest_text = ("# Written by m1lib.replica: a folded replica (synthetic) dataset.\n"
                         "dataset: .\n")
    write_tables(out, {"participants": cohort.participants,
                       "visual_reads": cohort.visual_reads,
                       "truth_areas": cohort.truth_areas,
                       "truth_participants": cohort.truth_participants},
                 name="m1lib folded replica of Cosottini et al. 2016 (synthetic)",
                 generated=generated or (f"m1lib.replica seed={seed} voxel={acq.voxel_mm} "
                                         f"filter={acq.kspace_filter}"),
                 acknowledge="Synthetic data on the ICBM152 2009a template's folding.",
                 manifest_text=manifest_text, truth_text=FOLDED_TRUTH_TEXT,
                 annotations_text=FOLDED_ANNOTATIONS_TEXT)
    write_folded_images(out, cohort, anat, seed, workers=workers, timings=timings)
    return out
