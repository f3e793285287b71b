"""Notebooks are stored clean: no outputs, no papermill metadata, a tagged parameters cell."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    names = [p.stem for p in NOTEBOOKS]
    for expected in ("01_cohort", "02_visual_reading", "03_group_comparison", "04_correlations",
                     "05_dpr_subgroups"):
        assert expected in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    assert "papermill" not in nb.get("metadata", {})
    for cell in nb["cells"]:
        assert "papermill" not in cell.get("metadata", {})
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_first_code_cell_is_parameters_and_uses_project_kernel(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", [])
    assert nb["metadata"]["kernelspec"]["name"] == "m1lib"
    src = "".join("".join(c["source"]) for c in code)
    assert "/work/" not in src and "/home/" not in src  # no absolute paths


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem[:2].isdigit()],
                         ids=lambda p: p.stem)
def test_report_notebooks_record_their_outputs(path):
    src = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    assert f'Recorder("{path.stem}"' in src and "rec.finish()" in src
