"""Fixtures shared by the explorer's tests: a tiny measured replica, copied per test.

Expected values in the tests are computed from the files (nibabel affines, the
markups as written, the measurement table), not taken from m1lib.explorer.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from m1lib import explorer as E
from m1lib import synth
from m1lib.markups import read_markups
from m1lib.pipeline import load_tables


@pytest.fixture(scope="session")
def pristine(tmp_path_factory) -> Path:
    """A tiny replica (2 patients, 1 healthy subject), measured once per session."""
    root = tmp_path_factory.mktemp("explorer") / "replica"
    synth.generate(root, seed=7, n_als=2, n_hs=1)
    (root / "data_manifest.yaml").write_text("dataset: .\n")
    load_tables(root / "data_manifest.yaml", jobs=2, log=lambda *a: None)
    return root


@pytest.fixture
def manifest(pristine, tmp_path) -> Path:
    """A private copy of the replica (tests edit its annotations)."""
    root = tmp_path / "replica"
    shutil.copytree(pristine, root)
    return root / "data_manifest.yaml"


@pytest.fixture
def ex(manifest) -> E.Explorer:
    return E.Explorer.from_manifest(manifest, log=lambda *a: None)


@pytest.fixture
def an(ex) -> E.Annotator:
    return E.Annotator(ex)


def voxels(ex, pid, label):
    """Voxel coordinates of a markup's points, from nibabel's affine (independent of the explorer)."""
    img = nib.load(ex.images[pid][0].path)
    pts = read_markups(ex.annotations[pid])[label].points
    inv = np.linalg.inv(img.affine)
    return pts @ inv[:3, :3].T + inv[:3, 3]


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes (to show that nothing else was written)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
