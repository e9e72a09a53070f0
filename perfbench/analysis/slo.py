"""Service level objectives on a run: ``p95<300ms``, ``errors<1%``, ``posts:p99<=50ms``, ``rps>=95``.

Grammar: ``[ENDPOINT:]METRIC OP VALUE[UNIT]``

- METRIC: a latency percentile ``p50 p90 p95 p99 p99.9``, ``max`` or ``mean`` (latency from the
  planned send time, exact over every request), ``errors`` (error rate), ``rps`` (throughput).
- OP: ``<  <=  >  >=``; UNIT: ``ms``, ``s`` or ``us`` for latency (default ms), ``%`` for errors
  (or a fraction: ``errors<0.01``).
- ENDPOINT: a request name of the scenario; without it the SLO applies to all requests.

An SLO is evaluated against ``summary.json`` (``evaluate``); a broken one makes ``perfbench run``
exit with code 10, distinct from a broken configuration (2).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_PATTERN = re.compile(
    r"^(?:(?P<scope>.+):)?\s*(?P<metric>p\d+(?:\.\d+)?|max|mean|errors|rps)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|us|s|%)?$")
_LATENCY_KEYS = {"p50": "p50", "p90": "p90", "p95": "p95", "p99": "p99", "p99.9": "p99_9", "max": "max",
                 "mean": "mean"}
_UNIT_MS = {"ms": 1.0, "s": 1000.0, "us": 0.001, None: 1.0}


@dataclass(frozen=True)
class SLO:
    text: str
    scope: str | None  # endpoint name, or None for all requests
    metric: str
    op: str
    threshold: float  # ms for latency, a fraction for errors, req/s for rps

    def actual(self, summary: dict[str, Any]) -> float | None:
        block = summary.get("overall", {}) if self.scope is None else summary.get("endpoints", {}).get(self.scope)
        if block is None:
            return None
        if self.metric == "errors":
            return block.get("error_rate")
        if self.metric == "rps":
            return block.get("rps")
        return block.get("latency_ms", {}).get(_LATENCY_KEYS[self.metric])

    def check(self, summary: dict[str, Any]) -> dict[str, Any]:
        value = self.actual(summary)
        if value is None:
            ok, note = False, ("no such endpoint in the run" if self.scope else "no requests")
        else:
            ok, note = _OPS[self.op](value, self.threshold), None
        out = {"slo": self.text, "scope": self.scope or "*", "metric": self.metric, "op": self.op,
               "threshold": self.threshold, "actual": value, "ok": ok}
        if note:
            out["note"] = note
        return out


def parse(text: str) -> SLO:
    m = _PATTERN.match(text.strip())
    if not m:
        raise ConfigError(f"SLO {text!r} is not [ENDPOINT:]METRIC OP VALUE[UNIT], e.g. 'p95<300ms', "
                          f"'errors<1%', 'posts:p99<=50ms' or 'rps>=95'")
    metric, unit, value = m["metric"], m["unit"], float(m["value"])
    if metric.startswith("p") and metric not in _LATENCY_KEYS:
        raise ConfigError(f"SLO {text!r}: percentile {metric} is not one of {', '.join(k for k in _LATENCY_KEYS if k.startswith('p'))}")
    if metric in _LATENCY_KEYS:
        if unit == "%":
            raise ConfigError(f"SLO {text!r}: a latency takes ms, s or us, not %")
        value *= _UNIT_MS[unit]
    elif metric == "errors":
        if unit in ("ms", "s", "us"):
            raise ConfigError(f"SLO {text!r}: an error rate takes % or a fraction, not {unit}")
        value = value / 100 if unit == "%" else value
        if value > 1:
            raise ConfigError(f"SLO {text!r}: an error rate above 100% means nothing; use e.g. errors<1%")
    elif unit is not None:
        raise ConfigError(f"SLO {text!r}: rps takes no unit")
    return SLO(text.strip(), m["scope"].strip() if m["scope"] else None, metric, m["op"], value)


def parse_all(texts: Iterable[str]) -> list[SLO]:
    """Parse every SLO, reporting every bad one at once."""
    slos, problems = [], []
    for t in texts:
        try:
            slos.append(parse(t))
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("bad SLO", problems)
    return slos


def scope_problems(slos: Iterable[SLO], endpoints: Iterable[str]) -> list[str]:
    """The SLOs whose ENDPOINT is none of ``endpoints`` (a typo would otherwise be found only after the load)."""
    names = sorted(set(endpoints))
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return [f"SLO {s.text!r}: no endpoint {s.scope!r} in the scenario (its endpoints: {shown})"
            for s in slos if s.scope is not None and s.scope not in names]


def check_scopes(slos: Iterable[SLO], endpoints: Iterable[str]) -> None:
    """Raise a ConfigError naming every SLO whose ENDPOINT is none of ``endpoints``."""
    problems = scope_problems(slos, endpoints)
    if problems:
        raise ConfigError("bad SLO", problems)


def evaluate(slos: Iterable[SLO], summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [s.check(summary) for s in slos]


def broken(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if not r["ok"]]


def format_results(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        actual = r["actual"]
        if actual is None:
            shown = r.get("note", "no value")
        elif r["metric"] == "errors":
            shown = f"{actual * 100:.2f}%"
        elif r["metric"] == "rps":
            shown = f"{actual:.1f} req/s"
        else:
            shown = f"{actual:.2f} ms"
        lines.append(f"{'ok    ' if r['ok'] else 'BROKEN'}  {r['slo']:30}  actual {shown}")
    return "\n".join(lines)
