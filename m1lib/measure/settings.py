"""Settings of a measurement and the columns of its table."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from .. import contract as C
from ..errors import DataError, Problem
from .profile import ProfileSettings

__all__ = ["MeasureSettings", "TABLE_COLUMNS", "FAILURE_COLUMNS"]


#: Columns of the measurement table, in order (the contract's key and values first).
TABLE_COLUMNS: tuple[str, ...] = C.MEASUREMENT_KEY + C.MEASUREMENT_VALUES + (
    "profile_thickness_mm", "profile_thickness_se_mm", "fit_ok", "fit_reason",
    "fit_rmse", "fit_r2", "fit_sigma_mm", "fit_angle_deg",
    "r2star_s", "r2star_low_signal", "roi_mean", "roi_sd", "roi_area_mm2", "roi_n_voxels",
    "roi_source", "ref_mean", "ref_area_mm2", "slice", "snr_last_echo",
    "noise_sigma", "qc_sharpness_ratio", "qc_sharpness_relative", "qc_ghost_ratio", "qc_motion",
    "affine_source",
    # the two ROIs side by side (``intensity`` / ``r2star_s`` / ``roi_*`` are those of
    # ``roi_shape``), and the thickness along the layer's 3-D normal
    "roi_shape", "intensity_oval", "r2star_s_oval", "intensity_layer", "r2star_s_layer",
    "roi_layer_mean", "roi_layer_area_mm2", "roi_layer_reason",
    "thickness_3d_mm", "thickness_3d_se_mm", "tilt_deg", "thickness_3d_reason",
    "session",
)
FAILURE_COLUMNS = ("participant_id", "label", "kind", "reason")


@dataclass(frozen=True)
class MeasureSettings:
    """Settings of a measurement (defaults: the paper's values).

    Attributes
    ----------
    areas : tuple of str
        Penfield areas measured in each hemisphere.
    roi_area_mm2 : float
        Area of the deep-layer oval and of the reference disc.
    intensity_echo : int
        1-based echo giving ``roi_mean`` / ``intensity`` (the later, T2*-weighted one).
    profile_echo : int or None
        1-based echo for the profile fit; None (default): all echoes jointly.
    roi_centre : {'profile', 'caliper'}
        Where the default oval goes: ``'profile'`` on the fitted deep layer
        (falling back to the caliper when the fit fails), ``'caliper'`` always on
        the caliper (the literal rule).
    roi_minor_fraction : float
        Minor axis of the oval as a fraction of the layer's thickness (the fitted
        one, or the caliper's length).
    supersample : int
        Sub-samples per voxel side for the partial-voxel weights of boundary voxels.
    affine_tol_mm : float
        Largest sform/qform disagreement accepted (see :mod:`m1lib.geometry`).
    snr_floor : float
        ROI mean of the last echo below ``snr_floor * sigma`` flags R2*.
    ghost_threshold : float
        ``qc_ghost_ratio`` above it flags motion (:mod:`m1lib.measure.qc`).
    roi_shape : {'oval', 'layer'}
        Which ROI gives ``intensity`` (and R2*): the paper's oval (default) or
        the layer-following ROI (:mod:`m1lib.measure.layer_roi`); the other is
        kept under its own name (``intensity_oval`` / ``intensity_layer``).
    obliquity : bool
        Also fit the caliper's line on the neighbouring slices for the
        obliquity-corrected thickness (``thickness_3d_mm``; three fits per area).
    max_tilt_deg : float
        Largest tilt of the layer out of the slice plane the neighbouring fits
        search for (it sets how far the layer may drift between slices).
    profile : ProfileSettings
        Profile sampling and fitting.
    """

    areas: tuple[str, ...] = C.AREAS
    roi_area_mm2: float = 4.0
    intensity_echo: int = 2
    profile_echo: int | None = None
    roi_centre: str = "profile"
    roi_minor_fraction: float = 0.5
    supersample: int = 10
    affine_tol_mm: float = 0.01
    snr_floor: float = 5.0
    ghost_threshold: float = 1.6
    roi_shape: str = "oval"
    obliquity: bool = True
    max_tilt_deg: float = 40.0
    profile: ProfileSettings = field(default_factory=ProfileSettings)

    def __post_init__(self):
        problems = []
        if self.roi_centre not in ("profile", "caliper"):
            problems.append(Problem(f"{self.roi_centre!r} (expected 'profile' or 'caliper')",
                                    field="roi_centre"))
        if self.roi_shape not in ("oval", "layer"):
            problems.append(Problem(f"{self.roi_shape!r} (expected 'oval' or 'layer')",
                                    field="roi_shape"))
        if not self.roi_area_mm2 > 0:
            problems.append(Problem(f"{self.roi_area_mm2} (expected > 0)", field="roi_area_mm2"))
        if not 0 < self.roi_minor_fraction <= 1:
            problems.append(Problem(f"{self.roi_minor_fraction} (expected in (0, 1])",
                                    field="roi_minor_fraction"))
        if self.intensity_echo < 1:
            problems.append(Problem(f"{self.intensity_echo} (expected >= 1)", field="intensity_echo"))
        unknown = set(self.areas) - set(C.AREAS)
        if unknown:
            problems.append(Problem(f"unknown areas {sorted(unknown)} (expected some of "
                                    f"{list(C.AREAS)})", field="areas"))
        if problems:
            raise DataError(problems)



def _settings(settings: MeasureSettings | None, **overrides) -> MeasureSettings:
    s = settings or MeasureSettings()
    over = {k: (tuple(v) if k == "areas" else v) for k, v in overrides.items() if v is not None}
    return replace(s, **over) if over else s

