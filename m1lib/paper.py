"""The paper beside this run: each number Cosottini et al. 2016 report, this run's value,
where the value comes from on the replica, and whether the two verdicts agree.

Reads the project's own data files (``m1lib/data/paper_values.yaml`` and the key map
``paper_comparison.yaml``); the analyses never read them.

``origin`` says what a row can prove on the replica:

- ``calibration target``: the generator set the data to reproduce this number
  (cohort counts and clinical scores, the readers' counts and kappa, the
  correct-vs-missed means, the truth's thickness means and the Spearman r of the
  truth); agreement shows only that the generator works;
- ``derived``: computed from calibration targets alone, without measuring any image
  (the readers' percentages, P values of the calibrated clinical contrasts);
- ``emerges from measurement``: the generator did not aim at it; it comes out of the
  images through the measurement (group P values, the thickness DPR split).

On a user's dataset every row emerges from that dataset.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import pandas as pd
import yaml

from m1lib.findings import alpha_of
from m1lib.formats import p_text

__all__ = ["ORIGINS", "paper_comparison", "paper_verdict"]

ORIGINS: tuple[str, ...] = ("calibration target", "derived", "emerges from measurement")
DATA = Path(__file__).parent / "data"


def _paper_number(values: dict, path: str):
    node = values
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def paper_verdict(value, alpha: float) -> bool | None:
    """Whether the paper's reported P passes ``alpha`` (``'<0.001'``, ``0.024`` or words).

    Examples
    --------
    >>> paper_verdict("<0.001", 0.05), paper_verdict(0.061, 0.05), paper_verdict("no significant difference", 0.05)
    (True, False, False)
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text.startswith("<"):
            return float(text[1:]) <= alpha
        if "no significant" in text:
            return False
        try:
            return float(text) < alpha
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value) < alpha
    return None


def _display(key: str, value: float) -> str:
    """This run's value as the paper prints it: P values as ``<.001``/``.024``, others 3 digits."""
    if value != value:
        return "n/a"
    if key.endswith("p_value"):
        return p_text(value).removeprefix("P ").removeprefix("= ")
    return f"{value:.3g}" if abs(value) < 1e3 else f"{value:.0f}"


def paper_comparison(registry: Mapping[str, float], *, replica: bool = True,
                     alpha: float | None = None) -> pd.DataFrame:
    """Each number the paper reports beside this run's value.

    Parameters
    ----------
    registry : mapping
        This run's results registry.
    replica : bool
        Whether the run is on the replica (``origin`` is then the row's role in the
        calibration; otherwise every row ``emerges from measurement`` of the user's data).
    alpha : float, optional
        Significance level of the verdicts (default: the registry's ``settings.alpha``).

    Returns
    -------
    DataFrame
        ``result, registry_key, paper, this_run, this_run_display, origin, note,
        paper_significant, this_run_significant, verdicts_agree``: the verdict columns
        are filled for P rows (``yes``/``no``; ``n/a`` when this run has no value) and
        empty for others.
    """
    alpha = alpha_of(registry) if alpha is None else alpha
    values = yaml.safe_load((DATA / "paper_values.yaml").read_text())
    rows = yaml.safe_load((DATA / "paper_comparison.yaml").read_text())["comparisons"]
    out = []
    for r in rows:
        run = registry.get(r["key"])
        run = float("nan") if run is None else float(run)
        paper = _paper_number(values, r["paper"])
        row = {"result": r["label"], "registry_key": r["key"], "paper": paper, "this_run": run,
               "this_run_display": _display(r["key"], run),
               "origin": r["origin"] if replica else "emerges from measurement",
               "note": r.get("note", "") if replica else "",
               "paper_significant": "", "this_run_significant": "", "verdicts_agree": ""}
        if r["key"].endswith("p_value"):
            pv = paper_verdict(paper, alpha)
            row["paper_significant"] = "" if pv is None else ("yes" if pv else "no")
            if run == run and pv is not None:
                mine = run < alpha
                row["this_run_significant"] = "yes" if mine else "no"
                row["verdicts_agree"] = "yes" if mine == pv else "no"
            else:
                row["verdicts_agree"] = "n/a"
        out.append(row)
    bad = sorted({r["origin"] for r in out} - set(ORIGINS))
    if bad:
        raise ValueError(f"paper_comparison.yaml: unknown origin(s) {bad}")
    return pd.DataFrame(out)
