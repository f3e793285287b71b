"""The flat phantom (compatibility name): see :mod:`m1lib.replica.phantom`.

The flat, concentric-arc phantom is now :mod:`m1lib.replica.phantom` (the
renderer) and :mod:`m1lib.replica.files` (its deterministic NIfTI and JSON
writers); this module keeps the old import path working.
"""
from __future__ import annotations

from m1lib.replica import phantom as _impl
from m1lib.replica.files import nifti_gz_bytes, sidecar, to_int16, write_json

__all__ = list(_impl.__all__) + ["nifti_gz_bytes", "sidecar", "to_int16", "write_json"]


def __getattr__(name: str):
    """Every other name is the renderer's (PEP 562)."""
    return getattr(_impl, name)
