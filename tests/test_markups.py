"""Slicer markups JSON: read (to RAS), write (deterministic), malformed input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from m1lib import markups as mk
from m1lib.errors import DataError

SCHEMA = mk.SCHEMA_URL


def _doc(*items):
    return {"@schema": SCHEMA, "markups": list(items)}


def _line(name="L_hand", system="LPS", p1=(31.2, 14.8, 52.0), p2=(32.6, 14.9, 52.0), **kw):
    item = {"type": "Line", "name": name, "coordinateSystem": system, "coordinateUnits": "mm",
            "controlPoints": [
                {"id": "1", "label": f"{name}-1", "position": list(p1), "positionStatus": "defined"},
                {"id": "2", "label": f"{name}-2", "position": list(p2), "positionStatus": "defined"}]}
    item.update(kw)
    return item


def _write(tmp_path, doc, name="a.mrk.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_lps_file_is_read_as_ras(tmp_path):
    # the example of docs/data.md: LPS (Slicer's default) -> negate x and y
    ref = {"type": "Fiducial", "name": "ref_precuneus", "coordinateSystem": "LPS",
           "coordinateUnits": "mm", "controlPoints": [
               {"id": "1", "label": "ref_precuneus", "position": [-4.0, 50.5, 40.0],
                "positionStatus": "defined"}]}
    m = mk.read_markups(_write(tmp_path, _doc(_line(), ref)))
    assert list(m) == ["L_hand", "ref_precuneus"]
    np.testing.assert_allclose(m["L_hand"].points, [[-31.2, -14.8, 52.0], [-32.6, -14.9, 52.0]])
    np.testing.assert_allclose(m["ref_precuneus"].points, [[4.0, -50.5, 40.0]])
    assert m["L_hand"].type == "Line" and m["ref_precuneus"].type == "Fiducial"
    assert m["L_hand"].coordinate_system == "LPS"
    assert m["L_hand"].length_mm == pytest.approx(np.hypot(1.4, 0.1))


def test_ras_file_is_read_unchanged_and_default_system_is_lps(tmp_path):
    m = mk.read_markups(_write(tmp_path, _doc(_line(system="RAS"))))
    np.testing.assert_allclose(m["L_hand"].points[0], [31.2, 14.8, 52.0])
    item = _line()
    del item["coordinateSystem"]                 # schema default: LPS
    m = mk.read_markups(_write(tmp_path, _doc(item), "b.mrk.json"))
    np.testing.assert_allclose(m["L_hand"].points[0], [-31.2, -14.8, 52.0])


def test_micrometre_units_are_converted(tmp_path):
    item = _line(system="RAS", p1=(1000.0, 2000.0, 3000.0), p2=(1000.0, 2500.0, 3000.0),
                 coordinateUnits="um")
    m = mk.read_markups(_write(tmp_path, _doc(item)))
    np.testing.assert_allclose(m["L_hand"].points, [[1, 2, 3], [1, 2.5, 3]])


@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_round_trip(tmp_path, system):
    rng = np.random.default_rng(0)
    items = [mk.line(f"{h}_{a}", rng.normal(0, 30, 3), rng.normal(0, 30, 3))
             for h in "LR" for a in ("foot", "leg", "hand", "face")]
    items.append(mk.fiducial("ref_precuneus", [-2.9, -53.0, 52.0]))
    path = tmp_path / "x.mrk.json"
    mk.write_markups(path, items, coordinate_system=system)
    back = mk.read_markups(path)
    assert list(back) == [m.name for m in items]
    for m in items:
        assert back[m.name].allclose(m, atol=1e-4)        # written to 0.1 um
        assert back[m.name].coordinate_system == system
    doc = json.loads(path.read_text())
    assert doc["@schema"] == SCHEMA
    first = doc["markups"][0]
    assert first["coordinateSystem"] == system and first["coordinateUnits"] == "mm"
    assert [c["positionStatus"] for c in first["controlPoints"]] == ["defined", "defined"]
    if system == "LPS":   # stored negated
        np.testing.assert_allclose(first["controlPoints"][0]["position"][:2],
                                   -np.round(items[0].points[0][:2], 4))


def test_write_is_deterministic_with_sorted_keys(tmp_path):
    items = {"L_hand": mk.line("L_hand", [1, 2, 3], [1, 3, 3]),
             "ref_precuneus": mk.fiducial("ref_precuneus", [0.1, 0.2, 0.3])}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    mk.write_markups(a, items)
    mk.write_markups(b, items)
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def _problems(path):
    with pytest.raises(DataError) as err:
        mk.read_markups(path)
    return err.value


def test_not_json_names_the_file(tmp_path):
    path = tmp_path / "bad.mrk.json"
    path.write_text("{not json", encoding="utf-8")
    err = _problems(path)
    assert "bad.mrk.json" in str(err) and "JSON" in str(err)


def test_missing_file_and_missing_markups_list(tmp_path):
    assert "not found" in str(_problems(tmp_path / "nope.mrk.json"))
    assert "markups" in str(_problems(_write(tmp_path, {"@schema": SCHEMA})))


@pytest.mark.parametrize("item, needle", [
    (_line(controlPoints=[{"id": "1", "position": [1, 2, 3]}]), "2"),       # Line with 1 point
    (_line(p1=(1, 2)), "3 finite numbers"),
    (_line(p1=(1, float("nan"), 3)), "3 finite numbers"),
    (_line(p1=(1, "a", 3)), "3 finite numbers"),
    (_line(coordinateSystem="XYZ"), "coordinateSystem"),
    (_line(coordinateUnits="cm"), "coordinateUnits"),
    (_line(type="Blob"), "type"),
    (_line(controlPoints=[]), "control points"),
])
def test_malformed_markup_names_file_and_label(tmp_path, item, needle):
    text = json.dumps(_doc(item))          # NaN is written as the JSON extension NaN
    path = tmp_path / "m.mrk.json"
    path.write_text(text, encoding="utf-8")
    err = _problems(path)
    assert err.first.file == path
    assert err.first.field == "L_hand"
    assert needle in str(err)
    assert str(err).startswith(f"{path}: L_hand: ")


def test_position_status_must_be_defined(tmp_path):
    item = _line()
    item["controlPoints"][1]["positionStatus"] = "undefined"
    err = _problems(_write(tmp_path, _doc(item)))
    assert "positionStatus" in str(err) and err.first.field == "L_hand"


def test_every_problem_is_reported_at_once(tmp_path):
    doc = _doc(_line("L_hand", p1=(1, 2)), _line("R_hand", coordinateSystem="IJK"),
               _line("L_leg"), _line("L_leg"))
    err = _problems(_write(tmp_path, doc))
    fields = [p.field for p in err.problems]
    assert fields == ["L_hand", "R_hand", "L_leg"]         # the duplicate is the third
    assert len(str(err).splitlines()) == 3


def test_unnamed_markup(tmp_path):
    item = _line()
    del item["name"]
    err = _problems(_write(tmp_path, _doc(item)))
    assert "no name" in str(err)
