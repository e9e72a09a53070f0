"""Polars scalars as typed Python numbers.

``Series.min()``/``max()``/``median()``/``item()`` are typed as a wide union (numbers, dates, durations,
strings, None) because a column's dtype is only known at run time. These helpers narrow the value of a
numeric column to the number the caller computes with; the value itself is returned unchanged (an int
stays an int), and anything else (None of an empty column, a date) raises TypeError as arithmetic on it
would have.
"""

from __future__ import annotations

from .errors import FrameError


def number(value: object) -> float:
    """``value`` (an int or a float) as it is; TypeError for None or any other type."""
    if isinstance(value, int | float):
        return value
    raise FrameError(f"expected a number, got {type(value).__name__}")


def integer(value: object) -> int:
    """``value`` (an int, e.g. the max of an integer column) as it is; TypeError for None or any other type."""
    if isinstance(value, int):
        return value
    raise FrameError(f"expected an integer, got {type(value).__name__}")


def optional_number(value: object) -> float | None:
    """``value`` as :func:`number` does, None (an empty or all-null column) passed through."""
    return None if value is None else number(value)
