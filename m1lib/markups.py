"""Read and write 3D Slicer markups JSON (schema v1.0.3).

The annotations of the data contract (``docs/data.md``) are Slicer markups files:
one ``Line`` per hemisphere and Penfield area (the electronic caliper, first point
on the superficial side) and one ``Fiducial`` at the precuneus reference.

Coordinates inside m1lib are always RAS+ millimetres (nibabel's world space).
Slicer stores points in the ``coordinateSystem`` the markup declares, ``LPS`` by
default; the reader converts to RAS (LPS -> RAS negates x and y) and the writer
converts back. Problems are collected and raised together as one
:class:`m1lib.errors.DataError`, each naming the file and the markup label.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from m1lib.errors import DataError, Problem

SCHEMA_URL = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/"
    "Markups/Resources/Schema/markups-schema-v1.0.3.json#"
)
#: Markup types of schema v1.0.3.
MARKUP_TYPES: tuple[str, ...] = (
    "Fiducial", "Line", "Angle", "Curve", "ClosedCurve", "Plane", "ROI",
)
COORDINATE_SYSTEMS: tuple[str, ...] = ("LPS", "RAS")
#: Control-point counts a markup type must have (others: any number >= 1).
_N_POINTS = {"Line": 2, "Angle": 3}
_UNIT_SCALE = {"mm": 1.0, "um": 1e-3}
# RAS <-> LPS is its own inverse: negate x and y.
_FLIP = np.array([-1.0, -1.0, 1.0])


@dataclass(eq=False)
class Markup:
    """One markup: a named set of control points in RAS+ millimetres.

    Parameters
    ----------
    name : str
        Markup name (``L_hand``, ``ref_precuneus``, ...).
    type : str
        Slicer markup type (``Line``, ``Fiducial``, ...).
    points : array, shape (n, 3)
        Control-point positions, **RAS** mm, in file order.
    labels : tuple of str
        Control-point labels (defaults to ``"{name}-{i}"`` when written).
    coordinate_system : str
        The system the file declared (informational; ``points`` are RAS).
    description : str
        Free text carried in the markup's control points.
    """

    name: str
    type: str
    points: np.ndarray
    labels: tuple[str, ...] = ()
    coordinate_system: str = "RAS"
    description: str = ""
    extra: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, dtype=float).reshape(-1, 3)
        self.points = pts
        self.labels = tuple(self.labels) if self.labels else tuple(
            f"{self.name}-{i + 1}" for i in range(len(pts)))

    @property
    def length_mm(self) -> float:
        """Length of a line (first to last point), mm."""
        return float(np.linalg.norm(self.points[-1] - self.points[0]))

    def allclose(self, other: "Markup", atol: float = 1e-6) -> bool:
        """Same name, type and points (within ``atol`` mm)."""
        return (self.name == other.name and self.type == other.type
                and self.points.shape == other.points.shape
                and bool(np.allclose(self.points, other.points, atol=atol, rtol=0)))


def line(name: str, first_ras, second_ras) -> Markup:
    """A ``Line`` markup from two RAS points (first = superficial side)."""
    return Markup(name, "Line", np.vstack([first_ras, second_ras]))


def fiducial(name: str, point_ras) -> Markup:
    """A one-point ``Fiducial`` markup (its control point is labelled ``name``)."""
    return Markup(name, "Fiducial", np.reshape(point_ras, (1, 3)), labels=(name,))


def ras_to_lps(points) -> np.ndarray:
    """Convert RAS points to LPS (negate x and y); the inverse is the same map.

    Examples
    --------
    >>> ras_to_lps([[1.0, 2.0, 3.0]]).tolist()
    [[-1.0, -2.0, 3.0]]
    """
    return np.asarray(points, dtype=float) * _FLIP


lps_to_ras = ras_to_lps


def _number_triplet(value) -> np.ndarray | None:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    arr = np.array(value, dtype=float)
    return arr if np.all(np.isfinite(arr)) else None


def parse_markups(doc, source: str | Path = "<markups>") -> dict[str, Markup]:
    """Parse a loaded markups JSON document; see :func:`read_markups`."""
    problems: list[Problem] = []

    def bad(msg: str, label: str | None = None) -> None:
        problems.append(Problem(msg, file=source, field=label))

    if not isinstance(doc, dict):
        raise DataError(Problem("not a markups document (expected a JSON object)",
                                file=source))
    schema = doc.get("@schema")
    if schema is not None and not (isinstance(schema, str) and "markups" in schema):
        bad(f"@schema is {schema!r} (expected the Slicer markups schema URL)")
    items = doc.get("markups")
    if not isinstance(items, list):
        raise DataError(Problem("no 'markups' list (expected a Slicer markups JSON file)",
                                file=source))
    out: dict[str, Markup] = {}
    for k, item in enumerate(items):
        if not isinstance(item, dict):
            bad(f"markup #{k + 1} is not an object", f"markups[{k}]")
            continue
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            bad(f"markup #{k + 1} has no name (expected e.g. 'L_hand')", f"markups[{k}]")
            continue
        mtype = item.get("type")
        if mtype not in MARKUP_TYPES:
            bad(f"type is {mtype!r} (expected one of {', '.join(MARKUP_TYPES)})", name)
            continue
        system = item.get("coordinateSystem", "LPS")
        if system not in COORDINATE_SYSTEMS:
            bad(f"coordinateSystem is {system!r} (expected 'LPS' or 'RAS')", name)
            continue
        units = item.get("coordinateUnits", "mm")
        if isinstance(units, list) and units:
            units = units[0]
        if units not in _UNIT_SCALE:
            bad(f"coordinateUnits is {units!r} (expected 'mm' or 'um')", name)
            continue
        cps = item.get("controlPoints")
        if not isinstance(cps, list) or not cps:
            bad("no control points (expected a non-empty 'controlPoints' list)", name)
            continue
        pts, labels, ok = [], [], True
        for i, cp in enumerate(cps):
            where = f"{name} point {i + 1}"
            if not isinstance(cp, dict):
                bad(f"{where}: not an object", name)
                ok = False
                continue
            pos = _number_triplet(cp.get("position"))
            if pos is None:
                bad(f"{where}: position is {cp.get('position')!r} "
                    "(expected 3 finite numbers)", name)
                ok = False
                continue
            status = cp.get("positionStatus", "defined")
            if status != "defined":
                bad(f"{where}: positionStatus is {status!r} (expected 'defined')", name)
                ok = False
                continue
            pts.append(pos * _UNIT_SCALE[units])
            label = cp.get("label")
            labels.append(label if isinstance(label, str) and label else f"{name}-{i + 1}")
        if not ok:
            continue
        need = _N_POINTS.get(mtype)
        if need is not None and len(pts) != need:
            bad(f"{mtype} has {len(pts)} control points (expected {need})", name)
            continue
        if name in out:
            bad("name used by more than one markup (expected unique names)", name)
            continue
        points = np.vstack(pts)
        if system == "LPS":
            points = lps_to_ras(points)
        desc = cps[0].get("description", "") if isinstance(cps[0], dict) else ""
        out[name] = Markup(name, mtype, points, tuple(labels), system,
                           desc if isinstance(desc, str) else "")
    if problems:
        raise DataError(problems)
    return out


def read_markups(path: str | Path) -> dict[str, Markup]:
    """Read a Slicer markups JSON file into ``{name: Markup}`` with RAS points.

    Parameters
    ----------
    path : str or Path
        A ``.mrk.json`` file (schema v1.0.3; older v1.0.x files read the same).

    Returns
    -------
    dict of str to Markup
        Keyed by markup name, in file order. Points are converted from the
        declared ``coordinateSystem`` (``LPS`` by default) to RAS+ mm.

    Raises
    ------
    DataError
        When the file is missing, not JSON, or a markup is malformed (unknown type
        or coordinate system, a position that is not 3 finite numbers, a point
        whose ``positionStatus`` is not ``defined``, a ``Line`` without exactly two
        points, duplicate names). All problems are reported at once, each naming
        the file and the markup.

    Notes
    -----
    LPS -> RAS: ``(x, y, z) -> (-x, -y, z)``.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "a.mrk.json")
    >>> write_markups(p, [line("L_hand", [1, 2, 3], [1, 3.5, 3])])
    >>> m = read_markups(p)
    >>> m["L_hand"].points.tolist(), round(m["L_hand"].length_mm, 3)
    ([[1.0, 2.0, 3.0], [1.0, 3.5, 3.0]], 1.5)
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(Problem("file not found", file=path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(Problem(f"cannot read ({exc})", file=path)) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(Problem(f"not valid JSON ({exc.msg})", file=path,
                                line=exc.lineno)) from None
    return parse_markups(doc, source=path)


def _fmt(x: float) -> float:
    # Round away float noise so files are stable and readable (0.1 um).
    v = round(float(x), 4)
    return 0.0 if v == 0 else v


def markups_document(markups: Iterable[Markup] | Mapping[str, Markup],
                     coordinate_system: str = "LPS") -> dict:
    """The JSON document (a dict) :func:`write_markups` writes."""
    if coordinate_system not in COORDINATE_SYSTEMS:
        raise ValueError(f"coordinate_system must be 'LPS' or 'RAS', got {coordinate_system!r}")
    if isinstance(markups, Mapping):
        markups = markups.values()
    items = []
    orient = ([-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0]
              if coordinate_system == "LPS" else [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    for m in markups:
        pts = m.points if coordinate_system == "RAS" else ras_to_lps(m.points)
        cps = []
        for i, (p, label) in enumerate(zip(pts, m.labels)):
            if not np.all(np.isfinite(p)):
                raise ValueError(f"{m.name}: point {i + 1} is not finite")
            cps.append({
                "id": str(i + 1), "label": label, "description": m.description,
                "associatedNodeID": "", "position": [_fmt(v) for v in p],
                "orientation": orient, "selected": True, "locked": False,
                "visibility": True, "positionStatus": "defined",
            })
        items.append({
            "type": m.type, "name": m.name, "coordinateSystem": coordinate_system,
            "coordinateUnits": "mm", "locked": False,
            "fixedNumberOfControlPoints": m.type in _N_POINTS,
            "labelFormat": "%N-%d", "lastUsedControlPointNumber": len(cps),
            "controlPoints": cps, "measurements": [],
            "display": {"visibility": True, "opacity": 1.0, "color": [0.4, 1.0, 1.0],
                        "selectedColor": [1.0, 0.5, 0.5], "propertiesLabelVisibility":
                        m.type == "Line", "pointLabelsVisibility": False,
                        "textScale": 3.0, "glyphType": "Sphere3D", "glyphScale": 1.0,
                        "glyphSize": 5.0, "useGlyphScale": True, "lineThickness": 0.2},
        })
    return {"@schema": SCHEMA_URL, "markups": items}


def write_markups(path: str | Path, markups: Iterable[Markup] | Mapping[str, Markup],
                  coordinate_system: str = "LPS") -> None:
    """Write markups (RAS points) as one Slicer markups JSON file.

    Deterministic: keys sorted, coordinates rounded to 0.1 um, markups in the
    order given, a trailing newline.

    Parameters
    ----------
    path : str or Path
        Output ``.mrk.json`` file; parent folders are created.
    markups : iterable of Markup or mapping name -> Markup
        Points in RAS mm.
    coordinate_system : {'LPS', 'RAS'}
        System to store the points in (``LPS`` is Slicer's default).
    """
    doc = markups_document(markups, coordinate_system)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"
    path.write_text(text, encoding="utf-8")
