"""The warm-up: the first part of a run, sent and recorded like the rest, left out of its figures.

``Warmup.parse("30s")`` is the first 30 seconds of the run (by each request's intended send time);
``Warmup.parse(500)`` or ``"500"`` the first 500 requests (by intended send time; requests due at
the same instant as the 500th's successor stay out of the warm-up, so it holds at most 500). A time
takes a unit (``ms``, ``s``, ``m``, ``h``): a bare number is a count of requests.

The warm-up is a part of the run's duration, not added to it. Which rows it holds is decided by one
number, ``until_ns``: the rows whose ``intended_ns`` is below it. ``meta.json`` records the warm-up
as asked (``seconds`` or ``requests``) and, once known (a count: when the run ends), ``until_ns``
and ``until_s``; ``perfbench.analysis.warmup`` applies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

MAX_WARMUP_REQUESTS = 10**12


@dataclass(frozen=True)
class Warmup:
    """The warm-up asked for: ``seconds`` or ``requests`` (exactly one is set)."""

    seconds: float | None = None
    requests: int | None = None

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.requests is None):
            raise ConfigError("warmup: give a time (e.g. '30s') or a number of requests (e.g. 500), not both")
        if self.seconds is not None and not (self.seconds >= 0 and math.isfinite(self.seconds)):
            raise ConfigError(f"warmup: a time >= 0 s, got {self.seconds!r}")
        if self.requests is not None and not 0 <= self.requests <= MAX_WARMUP_REQUESTS:
            raise ConfigError(f"warmup: a number of requests from 0 to {MAX_WARMUP_REQUESTS:g}, got {self.requests!r}")

    @classmethod
    def parse(cls, value: Warmup | str | int | float | None) -> Warmup | None:
        """A warm-up from a CLI or TOML value (``"30s"``, ``"2m"``, ``500``, ``"500"``); None or 0: none."""
        if value is None or isinstance(value, Warmup):
            return value
        if isinstance(value, bool):
            raise ConfigError(f"warmup {value!r}: a time with a unit (30s, 2m) or a number of requests (500)")
        if isinstance(value, int):
            return cls(requests=value) if value else None
        if isinstance(value, float):
            if value.is_integer():
                return cls(requests=int(value)) if value else None
            raise ConfigError(f"warmup {value!r}: a time takes a unit (e.g. '30s'); a bare number is requests")
        text = str(value).strip().lower()
        if text.isdigit():
            return cls(requests=int(text)) if int(text) else None
        for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
            if text.endswith(suffix):
                try:
                    seconds = float(text[: -len(suffix)]) * factor
                except ValueError:
                    break
                if not (seconds >= 0 and math.isfinite(seconds)):
                    break
                return cls(seconds=seconds) if seconds else None
        raise ConfigError(f"warmup {str(value)[:40]!r}: a time with a unit (500ms, 30s, 2m, 1h) or a number of "
                          f"requests (500)")

    @property
    def until_ns(self) -> int | None:
        """The end of a timed warm-up (ns from the run's start); None for a count (known when the run ends)."""
        return None if self.seconds is None else round(self.seconds * 1e9)

    def describe(self) -> dict[str, Any]:
        """meta.json's ``warmup`` as the run starts."""
        out: dict[str, Any] = {"seconds": self.seconds, "requests": self.requests}
        if self.until_ns is not None:
            out.update(until_ns=self.until_ns, until_s=self.seconds)
        return out

    def problem(self, duration_s: float, expected: float | None = None) -> str | None:
        """Why this warm-up does not fit a run of ``duration_s`` seconds and ``expected`` requests (an open
        plan's; None: not known ahead), or None when it fits."""
        if self.seconds is not None and self.seconds >= duration_s:
            return (f"--warmup {self.seconds:g} s is not shorter than the run ({duration_s:g} s): nothing would be "
                    f"measured (the warm-up is a part of the duration)")
        if self.requests is not None and expected is not None and self.requests >= expected:
            return (f"--warmup {self.requests} requests is not fewer than the {expected:.0f} the plan sends: nothing "
                    f"would be measured")
        return None
