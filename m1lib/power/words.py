"""Sentences from the sample-size table: every number and every claim read off the table.

A size is stated only when the table holds it; a power the grid never reached is
said to be not reached (with the largest size simulated), and a pessimistic
scenario whose interval holds "no effect" is said to have no sample size at all.
"""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from m1lib.power.simulate import target_label

__all__ = ["sentences", "overview"]


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _size(row: dict, n, second) -> str:
    """``'24 ALS patients'`` or ``'24 ALS patients and 24 HS'``; 'at most' at the grid's start."""
    text = f"{int(n)} {row['unit']}"
    if row.get("second") and _finite(second):
        text += f" and {int(second)} {row['second']}"
    if int(n) == int(row["n_min"]):
        text = f"at most {text} (the smallest size simulated)"
    return text


def _end(row: dict, lab: str, scen: str) -> str:
    n = row[f"n_{lab}_{scen}"]
    if _finite(n):
        return f"{'at most ' if int(n) == int(row['n_min']) else ''}{int(n)}"
    if scen == "pessimistic" and bool(row["null_in_ci"]):
        return "none (the interval includes no effect)"
    if not _finite(row[f"effect_{scen}"]):
        return "not available (no interval)"
    return f"not reached (more than {int(row['n_max'])})"


def _effect(row: dict) -> str:
    text = f"{row['effect_name']} = {float(row['estimate']):.2f}"
    if _finite(row["ci_low"]) and _finite(row["ci_high"]):
        level = round(100 * float(row.get("conf_level", 0.95)))
        text += f" ({level}% CI {float(row['ci_low']):.2f} to {float(row['ci_high']):.2f})"
    return text


def sentences(table: pd.DataFrame, targets: Sequence[float] = (0.8, 0.9)) -> dict[str, str]:
    """One sentence per endpoint, keyed by ``endpoint``, from :func:`m1lib.power.sample_size_table`.

    Examples
    --------
    >>> row = dict(endpoint="corr_thickness_mm_dpr", label="thickness vs DPR (Spearman)",
    ...            effect_name="rho", estimate=-0.45, ci_low=-0.79, ci_high=0.01, conf_level=0.95,
    ...            n_pilot="18 ALS", unit="ALS patients", second="", null_in_ci=True,
    ...            effect_optimistic=-0.79, effect_central=-0.45, effect_pessimistic=0.0,
    ...            n_min=6, n_max=160, n_80=40.0, n_80_optimistic=10.0, n_80_pessimistic=float("nan"),
    ...            second_80=float("nan"), n_80_closed=36.0, closed_method="Fisher z")
    >>> print(sentences(pd.DataFrame([row]), targets=[0.8])["corr_thickness_mm_dpr"])
    thickness vs DPR (Spearman), pilot of 18 ALS: rho = -0.45 (95% CI -0.79 to 0.01). 80% power needs 40 ALS patients at the observed effect (closed form, Fisher z: 36); at the ends of the interval, optimistic 10, pessimistic none (the interval includes no effect).
    """
    out = {}
    for row in table.to_dict("records"):
        parts = [f"{row['label']}, pilot of {row['n_pilot']}: {_effect(row)}."]
        for t in targets:
            lab = target_label(t)
            n = row[f"n_{lab}"]
            closed = row.get(f"n_{lab}_closed")
            closed_text = (f" (closed form, {row['closed_method']}: {int(closed)})" if _finite(closed)
                           else f" (closed form, {row['closed_method']}: not reached)")
            if _finite(n):
                head = f"{lab}% power needs {_size(row, n, row.get(f'second_{lab}'))} at the observed effect"
            else:
                head = (f"{lab}% power is not reached within the sizes simulated (up to "
                        f"{int(row['n_max'])} {row['unit']}) at the observed effect")
            parts.append(f"{head}{closed_text}; at the ends of the interval, optimistic "
                         f"{_end(row, lab, 'optimistic')}, pessimistic {_end(row, lab, 'pessimistic')}.")
        out[row["endpoint"]] = " ".join(parts)
    return out


def overview(table: pd.DataFrame, target: float = 0.8) -> str:
    """How many endpoints reach ``target`` within the grid at the observed effect, and which do not.

    Examples
    --------
    >>> t = pd.DataFrame({"endpoint": ["a", "b"], "label": ["A", "B"], "n_80": [12.0, float("nan")],
    ...                   "n_max": [160, 160], "unit": ["patients", "patients"]})
    >>> overview(t)
    '1 of 2 endpoints reach 80% power within 160 patients at the observed effect; not reached: B.'
    """
    lab = target_label(target)
    reached = table[f"n_{lab}"].map(_finite)
    n_max = sorted(set(int(v) for v in table["n_max"]))
    within = f"{n_max[0]} {table['unit'].iloc[0]}" if len(n_max) == 1 and table["unit"].nunique() == 1 \
        else "the sizes simulated"
    text = (f"{int(reached.sum())} of {len(table)} endpoint{'s' if len(table) != 1 else ''} "
            f"reach{'es' if len(table) == 1 else ''} {lab}% power within {within} at the observed effect")
    missing = table.loc[~reached, "label"].tolist()
    return text + (f"; not reached: {', '.join(missing)}." if missing else ".")
