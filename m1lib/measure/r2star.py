"""R2* from ROI means of the echoes."""
from __future__ import annotations

import numpy as np

__all__ = ["r2star"]


def r2star(means, echo_times_s) -> float:
    """R2* (1/s) from mean signals at two or more echo times.

    Notes
    -----
    Two echoes: ``R2* = ln(S1 / S2) / (TE2 - TE1)``; more: the slope of a
    least-squares line through ``(TE, -ln S)``. NaN when a signal is not positive.

    Examples
    --------
    >>> round(r2star([100 * np.exp(-0.01 * 40), 100 * np.exp(-0.02 * 40)], [0.01, 0.02]), 9)
    40.0
    """
    s = np.asarray(means, float)
    te = np.asarray(echo_times_s, float)
    if np.any(~(s > 0)):
        return float("nan")
    if len(s) == 2:
        return float(np.log(s[0] / s[1]) / (te[1] - te[0]))
    slope = np.polyfit(te, np.log(s), 1)[0]
    return float(-slope)

