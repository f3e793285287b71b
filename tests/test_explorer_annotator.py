"""The annotator without a browser: edits, undo, the automatic point switch, and saving
only what `m1lib measure` can measure, never into a dataset that is not writable."""
from __future__ import annotations

import json
import os
import re
import stat

import numpy as np
import pytest

from explorer_fixtures import an, ex, files_under, manifest, pristine, voxels  # noqa: F401 (fixtures)
from m1lib import contract as C
from m1lib import explorer as E
from m1lib import synth
from m1lib.dataset import check_annotation
from m1lib.errors import DataError
from m1lib.geometry import Geometry
from m1lib.markups import line, read_markups
from m1lib.measure import measure_participant


def _annotation_dir(ex):
    return ex.annotations["sub-ALS01"].parent


def _assert_refused(ex, an, match):
    """Save is refused with ``match`` in the reason shown beside Save; nothing is written anywhere."""
    root = ex.manifest.root
    before = files_under(root)
    with pytest.raises(DataError, match=match):
        an.save()
    assert an.refusal and an.message.startswith("not saved") and match.split("|")[0] in an.message
    assert files_under(root) == before      # no annotation change, no backup, no temporary file


# ----------------------------------------------------------------------------- live readout and edits

def test_readout_equals_measurement_of_the_current_annotation(an, ex):
    r = an.readout()
    v = voxels(ex, "sub-ALS01", "L_hand")
    assert r["thickness_mm"] == pytest.approx(0.25 * np.hypot(*(v[1, :2] - v[0, :2])), rel=1e-9)
    assert r["stored_thickness_mm"] == pytest.approx(r["thickness_mm"], rel=1e-6)
    assert np.isfinite(r["intensity"]) and 20 < r["r2star_s"] < 80
    assert not r["unsaved"]


def test_click_moves_the_active_point_says_so_and_readouts_update(an, ex):
    v = voxels(ex, "sub-ALS01", "L_hand")
    before = an.readout()
    roi_before = next(o for o in ex.overlays() if o.kind == "roi" and o.label == "L_hand").ij
    an.set_active_point(1)
    d = (v[1, :2] - v[0, :2]) / np.hypot(*(v[1, :2] - v[0, :2]))
    target = v[1, :2] + 2 * d               # 2 voxels (0.5 mm) deeper, along the caliper
    assert an.last_switch == ""
    an.click(*target)
    assert ex.state.point == 0             # the next click places the other end ...
    assert an.last_switch.startswith("L_hand: point 2 (white-matter side) placed; the next click "
                                      "places point 1 (superficial side)")   # ... and the user is told
    r = an.readout()
    assert r["thickness_mm"] == pytest.approx(before["thickness_mm"] + 0.5, abs=3e-4)  # 0.1 um rounding
    assert r["unsaved"] and r["intensity"] != before["intensity"]
    roi_after = next(o for o in ex.overlays() if o.kind == "roi" and o.label == "L_hand").ij
    assert not np.allclose(roi_after, roi_before)
    cal = next(o for o in ex.overlays() if o.kind == "caliper" and o.label == "L_hand")
    assert np.allclose(cal.ij[1], target)


def test_two_clicks_draw_a_caliper_and_nudges_move_in_mm(an, ex):
    k = ex.state.slice
    an.select_label("R_hand")
    c = np.asarray(ex.state.zoom_centre)
    an.click(*(c + [0, -3]))
    an.click(*(c + [4, 1]))
    assert an.readout()["thickness_mm"] == pytest.approx(0.25 * np.hypot(4, 4), abs=3e-4)
    an.set_active_point(0)
    an.nudge(0.25, 0.0)                     # one voxel along i
    assert an.readout()["thickness_mm"] == pytest.approx(0.25 * np.hypot(3, 4), abs=3e-4)
    assert ex.label_position("R_hand")[0] == k
    with pytest.raises(ValueError):
        an.select_label("R_toe")
    with pytest.raises(ValueError):
        an.set_active_point(2)


def test_moving_the_reference_changes_every_intensity(an, ex):
    an.select_label(C.REFERENCE_LABEL)
    assert ex.state.zoom == C.REFERENCE_LABEL
    before = an.readout()
    an.nudge(0.0, 2.0)
    after = an.readout()
    assert after["ref_mean"] != before["ref_mean"]
    ratio = after["intensity_L_hand"] / before["intensity_L_hand"]
    assert ratio == pytest.approx(before["ref_mean"] / after["ref_mean"], rel=1e-9)


def test_undo_takes_back_edits_last_first(an, ex):
    f = ex.annotation_file()
    original = f.markups["L_hand"].points.copy()
    assert not an.can_undo()
    with pytest.raises(DataError, match="nothing to undo"):
        an.undo()
    an.set_active_point(1)
    an.nudge(0.0, 0.5)
    after_one = f.markups["L_hand"].points.copy()
    an.click(*ex.state.zoom_centre)         # places point 2 again, switches to point 1
    assert ex.state.point == 0
    an.undo()
    assert np.array_equal(f.markups["L_hand"].points, after_one) and ex.state.point == 1
    an.undo()
    assert np.array_equal(f.markups["L_hand"].points, original) and not f.dirty
    assert not an.can_undo() and "undid the last edit of L_hand" in an.message


def test_undo_removes_a_markup_the_edit_created(an, ex):
    f = ex.annotation_file()
    f.markups.pop(C.REFERENCE_LABEL)                  # as if the file had no reference yet
    an.select_label(C.REFERENCE_LABEL, go=False)
    an.click(*ex.state.zoom_centre)
    assert C.REFERENCE_LABEL in f.markups
    an.undo()
    assert C.REFERENCE_LABEL not in f.markups


# ----------------------------------------------------------------------------- saving

def test_save_writes_valid_markups_and_keeps_the_backup_outside_the_annotations(an, ex):
    path = ex.annotations["sub-ALS01"]
    original = path.read_bytes()
    listing = sorted(p.name for p in path.parent.iterdir())
    an.set_active_point(1)
    an.nudge(0.0, 0.3)
    moved = ex.annotation_file().markups["L_hand"].points.copy()
    backup = an.save()
    assert backup.parent == ex.manifest.output_dir / "explorer_backups"
    assert backup.parent == ex.manifest.root / "derivatives" / "m1lib" / "explorer_backups"
    assert backup.name.startswith(path.name) and backup.suffix == ".bak"
    assert backup.read_bytes() == original
    assert sorted(p.name for p in path.parent.iterdir()) == listing   # nothing new beside the annotation
    marks = read_markups(path)
    assert np.allclose(marks["L_hand"].points, moved, atol=1e-4)
    old, new = json.loads(original), json.loads(path.read_text())   # only the moved point changed
    assert [m["name"] for m in new["markups"]] == [m["name"] for m in old["markups"]]
    for a, b in zip(old["markups"], new["markups"]):
        if a["name"] != "L_hand":
            assert a == b
            continue
        assert a["coordinateSystem"] == b["coordinateSystem"] == "LPS"
        assert a["controlPoints"][0] == b["controlPoints"][0]
        pa, pb = a["controlPoints"][1].pop("position"), b["controlPoints"][1].pop("position")
        assert a["controlPoints"][1] == b["controlPoints"][1]
        assert np.allclose(np.subtract(pb, pa), [0.0, -0.3, 0.0], atol=2e-4)  # +0.3 mm anterior, in LPS
    assert check_annotation(path, path.name, "sub-ALS01", ex.settings.areas) == []
    assert not ex.annotation_file().dirty and ex.stale and "saved" in an.message
    an.nudge(0.0, 0.3)                                # a second save backs up the first
    second = an.save()
    assert second != backup and read_markups(second)["L_hand"].allclose(marks["L_hand"], atol=1e-4)


def test_explicit_backup_folder(ex, tmp_path):
    an = E.Annotator(ex, backup_dir=tmp_path / "elsewhere")
    an.set_active_point(1)
    an.nudge(0.0, 0.3)
    assert an.save().parent == tmp_path / "elsewhere"


def test_saving_without_edits_writes_nothing(an, ex):
    before = files_under(ex.manifest.root)
    assert an.save() is None and "no changes" in an.message
    assert files_under(ex.manifest.root) == before


def test_save_refuses_a_file_changed_on_disk(an, ex):
    path = ex.annotations["sub-ALS01"]
    ex.annotation_file()                              # opened (SHA-256 recorded)
    an.set_active_point(1)
    an.nudge(0.0, 0.3)
    theirs = path.read_text().replace('"L_hand-1"', '"L_hand-1 (checked)"')
    path.write_text(theirs)
    with pytest.raises(E.AnnotationConflict, match="changed on disk"):
        an.save()
    assert path.read_text() == theirs and "changed on disk" in an.message
    assert not (ex.manifest.output_dir / "explorer_backups").exists()
    an.reload()                                       # take theirs; edits discarded
    assert not ex.annotation_file().dirty and not an.can_undo()
    assert ex.annotation_file().original["L_hand"].labels[0] == "L_hand-1 (checked)"


def test_save_refuses_a_degenerate_caliper(an, ex):
    """The issue's case: one click puts point 1 a fraction of a voxel from point 2."""
    v = voxels(ex, "sub-ALS01", "L_hand")
    an.click(*(v[1, :2] + [0.4, 0.3]))                # 0.5 voxel = 0.125 mm from point 2
    assert "point 2" in an.last_switch
    assert "shorter than one voxel" in an.readout()["error"]
    _assert_refused(ex, an, "shorter than one voxel")
    assert an.refusal[0].field == "L_hand" and "mm long (0.5 voxel)" in an.message


def test_save_refuses_a_caliper_outside_the_image(an, ex):
    an.click(-40.0, 10.0)
    _assert_refused(ex, an, "outside the image")


def test_save_refuses_a_caliper_off_its_slice(an, ex):
    f, vol = ex.annotation_file(), ex.volume()
    m = f.markups["L_hand"]
    vox = vol.geometry.world_to_voxel(m.points)
    vox[1, 2] += 1                                    # point 2 on the next slice
    f.markups["L_hand"] = line("L_hand", *vol.geometry.voxel_to_world(vox))
    _assert_refused(ex, an, "different slices")


def test_save_refuses_a_caliper_across_the_midline(an, ex):
    f = ex.annotation_file()
    p = f.markups["L_hand"].points.copy()
    p[1, 0] = -p[1, 0]                                # point 2 mirrored into the right hemisphere
    f.markups["L_hand"] = line("L_hand", p[0], p[1])
    assert "crosses the midline" in an.readout()["error"]
    _assert_refused(ex, an, "crosses the midline")
    p[0, 0] = -p[0, 0]                                # both points: the wrong hemisphere
    f.markups["L_hand"] = line("L_hand", p[0], p[1])
    _assert_refused(ex, an, "lies in the right hemisphere")


def test_every_replica_annotation_passes_the_checks(an, ex):
    """No false refusals: the rater's files (the replica's) save as they are."""
    for pid in ex.participant_order():
        ex.set_participant(pid)
        assert an.problems() == [], pid


def test_the_explorer_refuses_what_m1lib_measure_would_fail(an, ex):
    """Independent check: the file refused is one the batch's per-participant measurement fails."""
    an.click(-40.0, 10.0)
    assert an.problems()
    path = ex.annotations["sub-ALS01"]
    path.write_text(ex.annotation_file().text())       # write it anyway, behind the explorer's back
    with pytest.raises(DataError, match="L_hand"):
        measure_participant("sub-ALS01", ex.images["sub-ALS01"], path)


# ----------------------------------------------------------------------------- datasets not to be written

def _edit(an):
    an.set_active_point(1)
    an.nudge(0.0, 0.3)


def test_read_only_annotation_folder_is_refused_and_gets_no_files(an, ex):
    folder = _annotation_dir(ex)
    _edit(an)
    mode = folder.stat().st_mode
    os.chmod(folder, 0o555)
    try:
        _assert_refused(ex, an, "not writable")
        assert "read-only" in an.message
    finally:
        os.chmod(folder, stat.S_IMODE(mode))


def test_read_only_annotation_file_is_refused(an, ex):
    path = ex.annotations["sub-ALS01"]
    _edit(an)
    os.chmod(path, 0o444)
    _assert_refused(ex, an, "not writable")
    assert "the file is read-only" in an.message


def test_datalad_annexed_annotation_is_refused_and_stays_a_symlink(manifest, tmp_path):
    """A DataLad dataset stores files as read-only symlinks into .git/annex: never replace one."""
    root = manifest.parent
    path = root / "derivatives" / "annotations" / "sub-ALS01_desc-m1_markups.mrk.json"
    obj = root / ".git" / "annex" / "objects" / "XX" / "SHA256E-s1--x.json" / "SHA256E-s1--x.json"
    obj.parent.mkdir(parents=True)
    obj.write_bytes(path.read_bytes())
    os.chmod(obj, 0o444)
    path.unlink()
    path.symlink_to(os.path.relpath(obj, path.parent))
    ex = E.Explorer.from_manifest(manifest, log=lambda *a: None)
    an = E.Annotator(ex)
    _edit(an)
    _assert_refused(ex, an, "symbolic link")
    assert path.is_symlink() and "datalad unlock" in an.message


def test_the_next_measurement_measures_the_saved_annotation(an, ex):
    path = ex.annotations["sub-ALS01"]
    before = measure_participant("sub-ALS01", ex.images["sub-ALS01"], path).set_index(["hemisphere", "area"])
    an.set_active_point(1)
    an.nudge(0.0, 0.5)
    live = an.readout()
    an.save()
    after = measure_participant("sub-ALS01", ex.images["sub-ALS01"], path).set_index(["hemisphere", "area"])
    assert after.loc[("L", "hand"), "thickness_mm"] == pytest.approx(live["thickness_mm"], abs=1e-3)
    assert after.loc[("L", "hand"), "intensity"] == pytest.approx(live["intensity"], rel=1e-3)
    assert after.loc[("L", "hand"), "thickness_mm"] != pytest.approx(before.loc[("L", "hand"), "thickness_mm"], abs=1e-3)
    assert after.loc[("R", "leg"), "thickness_mm"] == before.loc[("R", "leg"), "thickness_mm"]


# ----------------------------------------------------------------------------- the checks themselves

def _head(yaw_deg: float, shift_x: float, x_of: dict, y_jitter: dict | None = None):
    """Calipers of a head turned by ``yaw_deg`` about S and shifted by ``shift_x`` (RAS mm):
    each area's caliper ``x_of[area]`` mm from the midline, 2 mm long, pointing posterior."""
    t = np.deg2rad(yaw_deg)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    marks = {}
    for h, s in (("L", -1.0), ("R", 1.0)):
        for a, x in x_of.items():
            y = (y_jitter or {}).get((h, a), 0.0)
            p1, p2 = np.array([s * x, y, 50.0]), np.array([s * x, y - 2.0, 50.0])
            marks[f"{h}_{a}"] = line(f"{h}_{a}", rot @ p1 + [shift_x, 0, 0], rot @ p2 + [shift_x, 0, 0])
    return marks, rot


def test_midline_check_follows_a_turned_and_shifted_head():
    areas = ("foot", "leg", "hand")
    x_of = {"foot": 3.0, "leg": 20.0, "hand": 31.0}          # a foot caliper 3 mm from the midline
    marks, rot = _head(25.0, 7.0, x_of, {("R", "hand"): 4.0, ("L", "leg"): -3.0})
    assert E.validation.midline_crossings(marks, areas) == []   # no false refusal
    p = marks["L_foot"].points.copy()
    p[1] = rot @ np.array([2.5, -2.0, 50.0]) + [7.0, 0, 0]    # point 2 dragged 2.5 mm into the right
    marks["L_foot"] = line("L_foot", p[0], p[1])
    found = E.validation.midline_crossings(marks, areas)
    assert [q.field for q in found] == ["L_foot"]
    # 2.5 mm, within what the pairs' own asymmetry (the jitter above) tilts the estimate
    mm = float(re.search(r"is ([\d.]+) mm into the right hemisphere", found[0].message).group(1))
    assert mm == pytest.approx(2.5, abs=0.2)


def test_degenerate_means_under_one_voxel_along_the_caliper():
    g = Geometry(np.diag([0.25, 0.5, 2.0, 1.0]), (40, 40, 3), "sform")   # anisotropic in-plane
    along_j = {"L_hand": line("L_hand", [2.0, 2.0, 2.0], [2.0, 2.45, 2.0])}   # 0.45 mm = 0.9 voxel in j
    along_i = {"L_hand": line("L_hand", [2.0, 2.0, 2.0], [2.45, 2.0, 2.0])}   # 0.45 mm = 1.8 voxels in i
    assert [p.field for p in E.validation.degenerate_calipers(along_j, g, ["hand"])] == ["L_hand"]
    assert E.validation.degenerate_calipers(along_i, g, ["hand"]) == []


def test_no_false_refusal_on_an_oblique_slab(tmp_path):
    """The replica acquired oblique (tilted 14, -6 and 9 degrees): every rater file saves."""
    root = tmp_path / "oblique"
    synth.generate(root, seed=5, n_als=2, n_hs=1, oblique=True)
    (root / "data_manifest.yaml").write_text("dataset: .\n")
    ex = E.Explorer.from_manifest(root / "data_manifest.yaml", log=lambda *a: None)
    an = E.Annotator(ex)
    for pid in ex.participant_order():
        ex.set_participant(pid)
        assert an.problems() == [], pid
    p = ex.annotation_file().markups["R_leg"].points.copy()
    p[:, 0] = -p[:, 0]                                     # the right leg caliper mirrored to the left
    ex.annotation_file().markups["R_leg"] = line("R_leg", p[0], p[1])
    assert any(q.field == "R_leg" and "left hemisphere" in q.message for q in an.problems())
