"""How many participants would a confirmatory study need? Power from the data's own effect sizes.

The steps, one module each:

- :mod:`~m1lib.power.endpoints`: the report's endpoints, each effect size estimated
  on the dataset with a BCa bootstrap interval, and a generative model fitted to it;
- :mod:`~m1lib.power.models`: the models, which resample participants (whole
  patients for the per-limb analysis) with one knob that sets the effect size;
- :mod:`~m1lib.power.rankstats`: the report's rank tests on ``(n_sim, n)`` arrays;
- :mod:`~m1lib.power.closed`: closed-form power (Noether, Fisher z / Bonett-Wright,
  Obuchowski / DeLong) to cross-check the simulations;
- :mod:`~m1lib.power.simulate`: power curves, the sample-size table and its registry;
- :mod:`~m1lib.power.words`: sentences generated from the table;
- :mod:`~m1lib.power.plot`: the power-curve figure.
"""
from m1lib.power.endpoints import ENDPOINT_KINDS, Endpoint, plan_endpoints
from m1lib.power.simulate import (DEFAULT_N_GRID, SCENARIOS, power_curves, power_curves_loop,
                                  power_registry, sample_size_table, target_label)

__all__ = ["ENDPOINT_KINDS", "Endpoint", "plan_endpoints", "DEFAULT_N_GRID", "SCENARIOS",
           "power_curves", "power_curves_loop", "power_registry", "sample_size_table", "target_label"]
