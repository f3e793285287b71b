"""One participant's echo images held in memory for browsing, and a voxelwise R2* map.

Display only: every number the explorer reports comes from :mod:`m1lib.measure`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np

from ..geometry import Geometry, image_geometry

__all__ = ["Volume", "R2STAR_AIR_FRACTION"]

#: Voxels whose echo-1 signal is below this fraction of its 99th percentile are air (NaN in R2*).
R2STAR_AIR_FRACTION = 0.05


def _echo_time(path: Path, given) -> float:
    """Echo time (s): the one given, else ``EchoTime`` of the JSON sidecar, else NaN."""
    if given is not None:
        return float(given)
    side = path.with_name(path.name.split(".nii")[0] + ".json")
    te = json.loads(side.read_text()).get("EchoTime") if side.is_file() else None
    return float(te) if te is not None else float("nan")


class Volume:
    """A participant's echoes as float32 arrays with the geometry of echo 1.

    Parameters
    ----------
    participant_id : str
        Named in geometry errors.
    echoes : sequence
        Paths, or objects with ``.path`` and ``.echo_time_s``
        (:class:`m1lib.dataset.EchoImage`), in echo order.
    """

    def __init__(self, participant_id: str, echoes: Sequence):
        self.paths: list[Path] = []
        self.tes: list[float] = []
        self.data: list[np.ndarray] = []
        self.geometry: Geometry | None = None
        for e in echoes:
            path = Path(getattr(e, "path", e))
            img = nib.load(str(path))
            if self.geometry is None:
                self.geometry = image_geometry(img, participant=participant_id, file=path)
            self.paths.append(path)
            self.tes.append(_echo_time(path, getattr(e, "echo_time_s", None)))
            self.data.append(np.asarray(img.dataobj, dtype=np.float32))
        self.shape = self.data[0].shape
        self._r2s: dict[int, np.ndarray] = {}

    def r2star(self, k: int) -> np.ndarray:
        """Voxelwise R2* (1/s) of slice ``k``, for display only.

        Two echoes: ``ln(S1 / S2) / (TE2 - TE1)``; more: the slope of the
        log-linear fit over every echo. The measurement takes R2* from ROI means
        instead (CONVENTIONS trap 11). NaN in air (echo-1 signal below
        :data:`R2STAR_AIR_FRACTION` of its 99th percentile) and where a signal is
        not positive.
        """
        if k not in self._r2s:
            s = np.stack([d[:, :, k] for d in self.data]).astype(np.float64)
            te = np.asarray(self.tes, float)
            with np.errstate(all="ignore"):
                logs = np.log(np.where(s > 0, s, np.nan))
                if len(te) == 2:
                    r = (logs[0] - logs[1]) / (te[1] - te[0])
                else:
                    tc = te - te.mean()
                    r = -np.tensordot(tc, logs - logs.mean(axis=0), axes=1) / (tc @ tc)
            air = s[0] < R2STAR_AIR_FRACTION * np.percentile(self.data[0], 99)
            self._r2s[k] = np.where(air, np.nan, r).astype(np.float32)
        return self._r2s[k]
