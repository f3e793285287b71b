"""Number formats of the report's text and tables (APA style, the paper's rounding)."""
from __future__ import annotations

from m1lib.results import format_percent

__all__ = ["pct", "p_text", "r_text", "rho_text", "ci_text"]


def pct(x: float) -> str:
    """A fraction as the paper prints it, halves rounded up: ``0.625 -> '63%'``."""
    return "n/a" if x is None or x != x else format_percent(x)


def p_text(p: float) -> str:
    """``P < .001`` or ``P = .024`` (APA: no leading zero, three decimals)."""
    if p is None or p != p:
        return "P = n/a"
    if p < 0.001:
        return "P < .001"
    if p >= 1:
        return "P = 1"
    return ("P = " + f"{p:.3f}".lstrip("0")) if p < 0.9995 else "P > .999"


def r_text(r: float) -> str:
    return "r = n/a" if r is None or r != r else f"r = {r:.2f}"


def _signed(x: float, digits: int) -> str:
    """``x`` with a true minus sign; a value that rounds to zero prints unsigned."""
    if x is None or x != x:
        return "n/a"
    text = f"{x:.{digits}f}"
    if float(text) == 0:
        text = text.lstrip("-")
    return text.replace("-", "−")


def rho_text(r: float) -> str:
    """``ρ = −0.45`` (Spearman's rho, two decimals, a true minus sign)."""
    return f"ρ = {_signed(r, 2)}"


def ci_text(lo: float, hi: float, digits: int = 2, level: float = 0.95) -> str:
    """``95% CI −0.61 to −0.12`` (``to`` rather than a dash, as signs may be negative)."""
    if lo != lo or hi != hi:
        return f"{level:.0%} CI n/a"
    return f"{round(100 * level):d}% CI {_signed(lo, digits)} to {_signed(hi, digits)}"


