"""``settings.roi_shape`` in the manifest: parsed and checked (its effect: tests/test_measure.py)."""
from __future__ import annotations

import pytest

from m1lib import measure as M
from m1lib.errors import DataError
from m1lib.manifest import load_manifest


def manifest(tmp_path, settings: str = ""):
    path = tmp_path / "m.yaml"
    path.write_text("dataset: study\n" + (f"settings:\n{settings}" if settings else ""))
    return path


def test_default_is_the_papers_oval(tmp_path):
    m = load_manifest(manifest(tmp_path))
    assert m.settings.roi_shape == "oval"
    assert M.MeasureSettings().roi_shape == m.settings.roi_shape


def test_layer_is_accepted_and_anything_else_is_a_data_error(tmp_path):
    assert load_manifest(manifest(tmp_path, "  roi_shape: layer\n")).settings.roi_shape == "layer"
    with pytest.raises(DataError, match="roi_shape"):
        load_manifest(manifest(tmp_path, "  roi_shape: disc\n"))
