"""How a figure is written for people, one rule everywhere: a report's tables, its headline and the sentences
that explain a run say the same number the same way (``number_text``)."""

from __future__ import annotations

import math


def number_text(v: float | int, percent: bool = False) -> str:
    """Thousands separators; two decimals under 100, one under 10,000, none above; ``percent``: x100 and ``%``."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if percent:
        x = float(v) * 100
        return f"{x:,.2f} %" if abs(x) < 100 else f"{x:,.1f} %"
    if isinstance(v, int):
        return f"{v:,}"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if abs(v) < 100:
        return f"{v:,.2f}"
    return f"{v:,.1f}" if abs(v) < 10_000 else f"{v:,.0f}"


def ms_text(v: float | int) -> str:
    """A duration in milliseconds as the tables write it, with its unit: ``116.3 ms``."""
    return f"{number_text(v)} ms"
