"""Per-participant measurement of the deep layer of M1, and the batch over a cohort.

The steps, one module each: :mod:`.settings` (settings and the table's columns),
:mod:`.shapes` (ROI shapes and their partial-voxel weights), :mod:`.profile`
(sampling a profile across the layer), :mod:`.edge_model` and :mod:`.profile_fit`
(the edge fit), :mod:`.obliquity` (thickness along the 3-D normal),
:mod:`.layer_roi` (the layer-following ROI), :mod:`.r2star`, :mod:`.qc` (noise,
motion), :mod:`.participant` (one participant) and :mod:`.batch` (a cohort).
Nothing here draws: the audit figure is :mod:`m1lib.audit`.

From a participant's MEGRE echoes and Slicer markups (``docs/data.md``) this module
computes, for every hemisphere and Penfield area (columns of :data:`TABLE_COLUMNS`):

- ``thickness_mm``: the caliper's length in the acquisition plane (the paper's
  method; both points are projected onto their slice along the slice axis, so an
  out-of-plane click does not lengthen it);
- ``profile_thickness_mm``: a rater-independent thickness from an edge fit to the
  intensity profiles of all echoes across the layer (:mod:`.profile_fit`), NaN
  with ``fit_reason`` when the fit does not pass its checks;
- ``thickness_3d_mm`` (``_se_mm``, ``tilt_deg``): the same along the layer's 3-D
  normal, from fits of the caliper's line on the neighbouring slices
  (:mod:`.obliquity`), NaN with ``thickness_3d_reason`` where they do not allow it;
- ``roi_mean``, ``roi_sd``, ``roi_area_mm2``, ``roi_n_voxels``: an oval ROI in the
  deep layer on the intensity echo, and ``intensity`` = ROI mean / reference mean
  (a disc of the same area centred on ``ref_precuneus``);
- ``r2star_s``: R2* (1/s) from the ROI means of the echoes;
- ``intensity_layer``, ``r2star_s_layer``, ``roi_layer_*``: the same from a region
  of the same area that follows the fitted layer (:mod:`.layer_roi`), beside the
  oval's ``intensity_oval`` / ``r2star_s_oval``; ``settings.roi_shape`` (``oval``
  by default) says which of the two fills ``intensity``, ``r2star_s`` and ``roi_*``;
- participant-level QC, repeated on each row: ``noise_sigma``,
  ``qc_ghost_ratio`` and ``qc_motion`` (and the diagnostic ``qc_sharpness_*``).

Geometry (:mod:`m1lib.geometry`): the sform when set, else the qform; both set
and disagreeing by more than ``affine_tol_mm`` at the corners of the field of
view is an error. Each annotation is assigned to its slice; more than half a
slice (``SliceThickness`` of the sidecar, else the spacing) from the slice
centre, or outside the image, is a :class:`~m1lib.errors.DataError` naming the
participant and the label.

ROI rule
--------
An oval of ``roi_area_mm2`` (4 mm²) with its **minor axis across the layer**:
the minor axis is ``roi_minor_fraction`` (0.5) of the layer's thickness, so a
quarter of the layer stays clear on each side (room for a voxel of error plus
blur), and the major axis gives the area (``a = area / (pi b)``). Where it sits:

- ``roi_centre='profile'`` (default): on the deep layer the profile fit found -
  centred between the fitted edges on the caliper line, minor axis along the
  fitted layer normal and 0.5 x the fitted thickness (``roi_source``
  ``profile_oval``). When the fit fails it falls back to the caliper rule.
- ``roi_centre='caliper'`` (the literal rule, and the fallback): centred on the
  caliper's midpoint, minor axis along the caliper, 0.5 x its length
  (``caliper_oval``). A rater's click is about a voxel off, which on a 1.2 mm
  ALS layer puts part of the oval in the neighbouring layers (up to ~15 % error
  in intensity on the replica); the fitted layer does not.
- An explicit ROI overrides both: a markup named ``<label>_roi`` (any type, e.g.
  a ``ClosedCurve``, with at least 5 points in the annotation's slice) is
  replaced by the least-squares ellipse through its points (Halir & Flusser
  1998), with the area the rater drew (``markup``). The reference likewise
  (``ref_precuneus_roi``).

Voxels are weighted by the fraction of their area inside the ellipse
(``supersample``² sub-samples for voxels on the boundary), so the ROI's area is
right in mm² on any grid; the area achieved (sum of weights x voxel area) and
the number of voxels touched are reported. Mean and SD are weighted (reliability
weights).

R2* and its noise floor
-----------------------
``R2* = ln(S1 / S2) / (TE2 - TE1)`` on ROI means (a log-linear fit when there are
more than two echoes), echo times from the JSON sidecars (seconds), the same
weights on every echo. The magnitude noise ``sigma`` is the mode of the local
variance of 4 x 4 blocks of tissue on the first echo (:func:`estimate_noise`;
the slab may have no air around the head, as the replica's does not).
``r2star_low_signal`` is set where the last echo's ROI mean is below
``snr_floor`` (5) x sigma, where the Rician floor biases S2 up and R2* down;
``snr_last_echo`` reports the margin.

Motion QC
---------
``qc_motion`` is ``qc_ghost_ratio > ghost_threshold`` (1.6): the line-to-line
inconsistency of k-space along the phase-encode axis over the readout axis
(:func:`ghost_ratio`; phase axis from the sidecar's ``PhaseEncodingDirection``,
else the header's ``dim_info``). It does not depend on how the anatomy runs
(about 1 without motion either way) and needs no cohort reference; it is
reported, never used to drop anyone. The older edge-sharpness ratio
(``qc_sharpness_ratio``, and ``qc_sharpness_relative`` to the cohort median) is
still reported; it depends on the anatomy's orientation and no longer sets the flag.
"""
from __future__ import annotations

from .batch import hemisphere_average, measure_dataset
from .edge_model import edge_model
from .layer_roi import LayerROI, layer_roi
from .obliquity import obliquity_corrected
from .participant import measure_participant, participant_details
from .profile import CENTRAL_MM, EdgeFit, Profile, ProfileSettings, sample_profile
from .profile_fit import fit_profile
from .qc import cohort_motion_flags, estimate_noise, ghost_ratio, sharpness_ratio
from .r2star import r2star
from .settings import FAILURE_COLUMNS, TABLE_COLUMNS, MeasureSettings
from .shapes import (Ellipse, caliper_oval, disc, ellipse_from_points, layer_oval, roi_weights,
                     weighted_stats)

__all__ = [
    "MeasureSettings", "Ellipse", "caliper_oval", "layer_oval", "disc", "ellipse_from_points",
    "roi_weights", "weighted_stats", "r2star", "estimate_noise", "sharpness_ratio", "ghost_ratio",
    "measure_participant", "measure_dataset", "hemisphere_average", "cohort_motion_flags",
    "TABLE_COLUMNS", "FAILURE_COLUMNS", "participant_details",
    "ProfileSettings", "Profile", "EdgeFit", "sample_profile", "fit_profile", "edge_model",
    "obliquity_corrected", "CENTRAL_MM", "LayerROI", "layer_roi",
]
