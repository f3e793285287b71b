"""Power curves by simulation, the sample-size table read off them, and its registry entries.

For every endpoint, scenario (optimistic / central / pessimistic effect) and
sample size of the grid, :func:`power_curves` draws ``n_sim`` studies from the
endpoint's model at once and counts the P values below alpha; the closed form of
:mod:`m1lib.power.closed` sits beside each simulated power. :func:`sample_size_table`
reads off the smallest n of the grid that reaches each target power (and keeps it
at every larger n of the grid), so the table never holds a size that was not simulated.
"""
from __future__ import annotations

import math
import zlib
from typing import Sequence

import numpy as np
import pandas as pd

from m1lib.errors import DataError
from m1lib.power.endpoints import Endpoint
from m1lib.results import add_record, validate_registry

__all__ = ["SCENARIOS", "DEFAULT_N_GRID", "power_curves", "power_curves_loop",
           "sample_size_table", "power_registry", "target_label", "check_grid"]

SCENARIOS: tuple[str, ...] = ("optimistic", "central", "pessimistic")
#: Patients per study simulated by default (10 sizes).
DEFAULT_N_GRID: tuple[int, ...] = (6, 8, 10, 15, 20, 30, 40, 60, 80, 120)
#: Largest n searched by the closed forms.
CLOSED_N_MAX = 100_000


def target_label(target: float) -> str:
    """``0.8 -> '80'``; the suffix of the table columns and registry keys.

    Examples
    --------
    >>> target_label(0.8), target_label(0.9), target_label(0.95)
    ('80', '90', '95')
    """
    pct = round(float(target) * 100, 6)
    if not 0 < pct < 100 or pct != int(pct):
        raise DataError(f"power: target power must be a whole percentage between 0 and 1, got {target}")
    return str(int(pct))


def check_grid(n_grid: Sequence[int]) -> list[int]:
    """The n grid sorted, as ints; each n must be at least 4 (one message for every bad value)."""
    try:
        grid = sorted({int(n) for n in n_grid})
    except (TypeError, ValueError):
        raise DataError(f"power: n_grid must be whole numbers, got {list(n_grid)!r}") from None
    bad = [n for n in grid if n < 4]
    if bad or not grid:
        raise DataError(f"power: every n of n_grid must be >= 4, got {bad or 'an empty grid'}")
    return grid


def _stream(seed: int, endpoint: str, n: int) -> np.random.Generator:
    # One stream per endpoint and n, shared by the scenarios (common random numbers),
    # so the three curves differ by the effect, not by the draw.
    return np.random.default_rng([int(seed), zlib.crc32(f"power|{endpoint}|{n}".encode())])


def _curve_rows(ep: Endpoint, grid, n_sim, alpha, seed, simulate) -> list[dict]:
    rows = []
    strengths = ep.scenario_strengths()
    for scen in SCENARIOS:
        s = strengths[scen]
        closed_pw = ep.closed_power(np.array(grid), s, alpha) if np.isfinite(s) else np.full(len(grid), np.nan)
        for k, n in enumerate(grid):
            n1, n2 = ep.model.sizes(n)
            if np.isfinite(s):
                p = simulate(ep.model, _stream(seed, ep.key, n), n_sim, n, s)
                power = float(np.mean(p < alpha))
            else:
                power = np.nan
            rows.append(dict(endpoint=ep.key, scenario=scen, n=int(n), n_first=int(n1), n_second=int(n2),
                             effect=float(ep.model.effect(s)) if np.isfinite(s) else np.nan,
                             strength=s, n_sim=int(n_sim), power=power,
                             mc_se=math.sqrt(power * (1 - power) / n_sim) if np.isfinite(power) else np.nan,
                             power_closed=float(closed_pw[k])))
    return rows


def _vectorised(model, rng, n_sim, n, s):
    return model.pvalues(rng, n_sim, n, s)


def _looped(model, rng, n_sim, n, s):
    # The baseline of benchmarks/bench_power.py: one simulated study per call.
    return np.array([model.pvalues(rng, 1, n, s)[0] for _ in range(n_sim)])


def power_curves(endpoints: Sequence[Endpoint], n_grid: Sequence[int] = DEFAULT_N_GRID,
                 n_sim: int = 2000, alpha: float = 0.05, seed: int = 20160301) -> pd.DataFrame:
    """Simulated (and closed-form) power of every endpoint, scenario and n.

    Parameters
    ----------
    endpoints : sequence of Endpoint
        From :func:`m1lib.power.plan_endpoints`.
    n_grid : sequence of int
        Patients per simulated study (two-group endpoints add
        ``ceil(controls_per_patient * n)`` controls; the DPR split halves n).
    n_sim : int
        Simulated studies per point, drawn at once.
    alpha : float
        Two-sided significance level of every test.
    seed : int
        Seed; each endpoint and n draws from its own stream.

    Returns
    -------
    DataFrame
        One row per endpoint, scenario and n: ``endpoint, scenario, n, n_first,
        n_second`` (group sizes), ``effect`` (the model's), ``strength``, ``n_sim``,
        ``power`` (fraction of P < alpha), ``mc_se`` (:math:`\\sqrt{p(1-p)/n_{sim}}`)
        and ``power_closed``. Deterministic for a given seed.
    """
    return _curves(endpoints, n_grid, n_sim, alpha, seed, _vectorised)


def power_curves_loop(endpoints, n_grid=DEFAULT_N_GRID, n_sim=2000, alpha=0.05, seed=20160301):
    """:func:`power_curves` with a plain Python loop over the simulations (benchmark baseline)."""
    return _curves(endpoints, n_grid, n_sim, alpha, seed, _looped)


def _curves(endpoints, n_grid, n_sim, alpha, seed, simulate) -> pd.DataFrame:
    if not 0 < alpha < 1:
        raise DataError(f"power: alpha must be between 0 and 1, got {alpha}")
    if int(n_sim) < 100:
        raise DataError(f"power: n_sim must be at least 100, got {n_sim}")
    grid = check_grid(n_grid)
    rows = []
    for ep in endpoints:
        rows += _curve_rows(ep, grid, int(n_sim), float(alpha), int(seed), simulate)
    return pd.DataFrame(rows)


def _first_reaching(n: np.ndarray, power: np.ndarray, target: float) -> float:
    """Smallest n from which the power stays >= target over the rest of the grid (NaN if none)."""
    ok = np.asarray(power, float) >= target
    if not ok[-1]:
        return np.nan
    last_fail = np.flatnonzero(~ok)
    i = 0 if last_fail.size == 0 else int(last_fail[-1]) + 1
    return float(n[i])


def _closed_n(ep: Endpoint, strength: float, target: float, alpha: float) -> float:
    """Smallest n (any integer up to CLOSED_N_MAX) with closed-form power >= target."""
    if not np.isfinite(strength):
        return np.nan
    lo, hi = 4, 4
    while hi <= CLOSED_N_MAX and ep.closed_power(np.array([hi]), strength, alpha)[0] < target:
        lo, hi = hi, hi * 2
    if hi > CLOSED_N_MAX:
        return np.nan
    while lo < hi:   # power grows with n: bisection
        mid = (lo + hi) // 2
        if ep.closed_power(np.array([mid]), strength, alpha)[0] >= target:
            hi = mid
        else:
            lo = mid + 1
    return float(hi)


def sample_size_table(endpoints: Sequence[Endpoint], curves: pd.DataFrame,
                      targets: Sequence[float] = (0.8, 0.9), alpha: float = 0.05) -> pd.DataFrame:
    """Patients needed for each target power, per endpoint, with the interval's range.

    Returns
    -------
    DataFrame
        One row per endpoint: ``endpoint, label, effect_name, estimate, ci_low,
        ci_high, conf_level, ci_method, n_pilot, unit, second, effect_optimistic,
        effect_central, effect_pessimistic`` (the interval's ends and the estimate),
        ``model_effect_*`` (the effect of the model simulated for each scenario: it
        differs where the target is out of the model's reach, e.g. an AUC above 1, or
        where theta is a step function of the shift), ``null_in_ci`` (the interval
        holds no effect), ``n_min, n_max`` (the grid), ``n_sim``, ``test, closed_method`` and
        for each target T (e.g. ``80``): ``n_T`` (central), ``n_T_optimistic``,
        ``n_T_pessimistic`` (patients; NaN = not reached within the grid),
        ``second_T`` (controls at ``n_T``, two-group endpoints) and ``n_T_closed``
        (closed form, central, any n up to 100000).
    """
    rows = []
    for ep in endpoints:
        c = curves[curves["endpoint"] == ep.key]
        if c.empty:
            raise ValueError(f"no power curve for endpoint {ep.key!r}")
        eff = ep.scenario_effects()
        strengths = ep.scenario_strengths()
        row = dict(endpoint=ep.key, label=ep.label, effect_name=ep.effect_name, estimate=ep.estimate,
                   ci_low=ep.ci_low, ci_high=ep.ci_high, conf_level=ep.conf_level, ci_method=ep.ci_method,
                   n_pilot=ep.n_pilot,
                   unit=ep.unit, second=ep.second,
                   **{f"effect_{s}": eff[s] for s in SCENARIOS},
                   **{f"model_effect_{s}": (float(ep.model.effect(strengths[s])) if np.isfinite(strengths[s])
                                            else np.nan) for s in SCENARIOS},
                   null_in_ci=bool(np.isfinite(ep.ci_low) and np.isfinite(ep.ci_high)
                                   and (ep.ci_low - ep.neutral) * (ep.ci_high - ep.neutral) <= 0),
                   n_min=int(c["n"].min()), n_max=int(c["n"].max()), n_sim=int(c["n_sim"].iloc[0]),
                   closed_method=ep.closed_method)
        for t in targets:
            lab = target_label(t)
            for scen in SCENARIOS:
                cs = c[c["scenario"] == scen].sort_values("n")
                n_t = _first_reaching(cs["n"].to_numpy(), cs["power"].to_numpy(), t)
                row[f"n_{lab}" if scen == "central" else f"n_{lab}_{scen}"] = n_t
            n_c = row[f"n_{lab}"]
            row[f"second_{lab}"] = (float(ep.model.sizes(int(n_c))[1])
                                    if ep.second and np.isfinite(n_c) else np.nan)
            row[f"n_{lab}_closed"] = _closed_n(ep, strengths["central"], t, alpha)
        rows.append(row)
    return pd.DataFrame(rows)


def power_registry(table: pd.DataFrame, settings: dict | None = None) -> dict[str, float]:
    """Registry entries ``power.<endpoint>.*`` (and ``power.settings.*``) of the table.

    Keys: ``estimate, ci_low, ci_high`` of the effect, and per target T ``n_T``,
    ``n_T_optimistic``, ``n_T_pessimistic``, ``n_T_closed`` (NaN: not reached).
    """
    reg: dict[str, float] = {}
    if settings:
        add_record(reg, "power.settings", settings)
    targets = sorted({c.split("_")[1] for c in table.columns if c.startswith("n_") and c.endswith("_closed")})
    for r in table.to_dict("records"):
        rec = {"estimate": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}
        for t in targets:
            for suffix in ("", "_optimistic", "_pessimistic", "_closed"):
                rec[f"n_{t}{suffix}"] = r[f"n_{t}{suffix}"]
        add_record(reg, f"power.{r['endpoint']}", rec)
    validate_registry(reg)
    return dict(sorted(reg.items()))
