"""The explorer's words: clinical summary, the measurement table, the live readout.

HTML for the widgets and fixed-width text for the static snapshot, from the
same tables (:meth:`Explorer.participant_table`, :meth:`Annotator.readout`).
"""
from __future__ import annotations

import html

import numpy as np

from .. import contract as C

__all__ = ["fmt", "clinical_text", "table_html", "table_text", "readout_html", "message_html",
           "TABLE_NOTE"]

#: What the columns of the measurement table are (shown under it).
TABLE_NOTE = ("slice: the acquisition slice the caliper lies on (0-based). caliper: the rater's "
              "thickness; profile: the thickness fitted to the intensity profile; intensity: mean of "
              "the deep-layer ROI over mean of the precuneus reference ROI, on the intensity echo; "
              "R2*: from the ROI means of the echoes.")
_COLUMNS = (("thickness_mm", "caliper<br>mm", ".2f"), ("profile_thickness_mm", "profile<br>mm", ".2f"),
            ("intensity", "intensity<br>ratio", ".3f"), ("r2star_s", "R2*<br>1/s", ".1f"))


def fmt(v, spec: str) -> str:
    """``v`` formatted with ``spec``; ``n/a`` for None and NaN."""
    try:
        return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, spec)
    except (TypeError, ValueError):
        return str(v)


def clinical_text(ex, sep: str = " · ") -> str:
    """Key clinical values; ``sep="\\n"`` puts the scores on a second line."""
    c = ex.clinical()
    head = f"{c['participant_id']} ({c.get('group', '?')})"
    if "age" in c:
        head += f", {c['age']:g} y {c.get('sex', '')}".rstrip()
    bits = []
    for key, name, spec in (("alsfrs_r", "ALSFRS-R", "g"), ("disease_duration_months", "duration (months)", "g"),
                            ("dpr", "DPR", ".2f"), ("umn_total", "UMN", "g"), ("mrc", "MRC", "g")):
        if key in c:
            bits.append(f"{name} {fmt(c[key], spec)}")
    if "excluded" in c:
        bits.append(f"EXCLUDED ({c['excluded']})")
    return head + (sep + " · ".join(bits) if bits else "")


def table_html(ex) -> str:
    """The participant's measurements (the table the analyses use) as an HTML table."""
    t = ex.participant_table()
    head = f"<b>Measurements</b> of {html.escape(str(ex.state.participant_id))} ({ex.source} table)"
    if t.empty:
        return head + "<br><i>not in the measurement table</i>"
    here = set(ex.labels_on_slice()) if ex.has_images() else set()
    rows = []
    for r in t.itertuples(index=False):
        style = "font-weight:bold;" if r.label in here else ""
        if r.label == ex.state.label:
            style += "background:#fff3b0;"
        cells = "".join(f"<td>{fmt(getattr(r, c, np.nan), spec)}</td>" for c, _, spec in _COLUMNS)
        rows.append(f"<tr style='{style}'><td>{r.label}</td><td>{fmt(r.slice, '.0f')}</td>{cells}</tr>")
    stale = ("<br><i>annotations saved since: these values change at the next report</i>"
             if ex.stale else "")
    return (head + "<table class='m1lib-table'><tr><th>label</th><th>slice</th>"
            + "".join(f"<th>{name}</th>" for _, name, _ in _COLUMNS) + "</tr>" + "".join(rows)
            + f"</table><div class='m1lib-note'>bold: on the shown slice; yellow: being edited. "
            f"{TABLE_NOTE}</div>" + stale)


def table_text(ex) -> str:
    """The participant's measurements as a fixed-width table (the static snapshot)."""
    lines = [clinical_text(ex, sep="\n"), ""]
    t = ex.participant_table()
    if t.empty:
        lines.append("not in the measurement table")
    else:
        lines.append(f"{'label':10s} {'slice':>5s} {'caliper':>8s} {'profile':>8s} {'intens.':>8s} {'R2*':>6s}")
        lines.append(f"{'':10s} {'':>5s} {'mm':>8s} {'mm':>8s} {'ratio':>8s} {'1/s':>6s}")
        here = set(ex.labels_on_slice()) if ex.has_images() else set()
        for r in t.itertuples(index=False):
            mark = "*" if r.label in here else " "
            lines.append(f"{r.label:9s}{mark} {fmt(r.slice, '5.0f'):>5s} "
                         f"{fmt(getattr(r, 'thickness_mm', np.nan), '8.2f'):>8s} "
                         f"{fmt(getattr(r, 'profile_thickness_mm', np.nan), '8.2f'):>8s} "
                         f"{fmt(getattr(r, 'intensity', np.nan), '8.3f'):>8s} "
                         f"{fmt(getattr(r, 'r2star_s', np.nan), '6.1f'):>6s}")
        lines += ["* on the shown slice; slice = acquisition slice (0-based)",
                  "caliper: the rater's thickness",
                  "profile: thickness fitted to the intensity profile",
                  "intensity: deep-layer ROI mean / reference ROI mean"]
    if ex.stale:
        lines.append("annotations saved since: values change at the next report")
    return "\n".join(lines)


def readout_html(r: dict) -> str:
    """The live measurement of the edited markup (:meth:`Annotator.readout`)."""
    lab = r["label"]
    if r.get("error"):
        return f"<b>{lab}</b>: <span style='color:#b00'>{html.escape(r['error'])}</span>"
    flag = " <b style='color:#b60'>(unsaved)</b>" if r.get("unsaved") else ""
    if lab == C.REFERENCE_LABEL:
        ints = ", ".join(f"{k[10:]} {fmt(v, '.3f')}" for k, v in r.items() if k.startswith("intensity_"))
        return (f"<b>{lab}</b> slice {r['slice']}{flag}: ROI mean {fmt(r['ref_mean'], '.1f')}; "
                f"intensity {ints}")

    def cell(c, spec):
        now, old = fmt(r.get(c), spec), r.get(f"stored_{c}")
        return now if old is None else f"{now} <span style='color:#666'>(was {fmt(old, spec)})</span>"

    fit = "profile fit ok" if r.get("fit_ok") else f"profile fit: {html.escape(str(r.get('fit_reason', '')))}"
    return (f"<b>{lab}</b> slice {r['slice']}{flag}: caliper {cell('thickness_mm', '.2f')} mm · "
            f"profile {cell('profile_thickness_mm', '.2f')} mm · intensity {cell('intensity', '.3f')} · "
            f"R2* {cell('r2star_s', '.1f')} 1/s · <span style='color:#555'>{fit}</span>")


def message_html(text: str, *, error: bool = False) -> str:
    """A message that wraps (never cut off), red for a refusal."""
    if not text:
        return ""
    colour = "#b00" if error else "#262"
    mark = "⚠ " if error else ""
    return f"<div class='m1lib-msg' style='color:{colour}'>{mark}{html.escape(text)}</div>"
