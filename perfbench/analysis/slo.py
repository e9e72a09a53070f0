"""Service level objectives on a run: ``p95<300ms``, ``errors<1%``, ``timeout==0``, ``cpu<70%``, ``hit_rate>0.8``.

Grammar: ``[ENDPOINT:]METRIC OP VALUE[UNIT]``, OP one of ``<  <=  >  >=  ==``.

====================  =========================================================  ==================
METRIC                what (from summary.json; the warm-up left out)              VALUE[UNIT]
====================  =========================================================  ==================
p50 p90 p95 p99       latency percentile from the planned send time (exact)      ms (default), s, us
p99.9 max mean
ttfb:p50 ttfb:p95     time to the first byte of the response, percentile          ms, s, us
ttfb:p99
errors                share of requests that failed (any kind)                   % or a fraction
rps                   requests per second                                        a number
KIND                  errors of one kind: timeout connect dns tls reset           % (a share of the
                      incomplete too_large protocol http_4xx http_5xx check       requests) or a
                      redirect aborted client slow                                count (no unit)
status_5xx            responses of a status class (status_2xx ... status_5xx)    % or a count
status_503            or of one status (whole run only)
concurrency           the most requests in flight at once (from the rows)        a number
cpu  cpu_max          the target's CPU, mean over the run / highest sample,      % of one core
                      (needs the resource sampler: --resources)
rss  rss_growth       the target's largest RSS / its growth over the run         MB (default), KB,
                      (--resources; MB are MiB)                                   GB, B
fds threads           the target's most open files / threads / connections       a number
connections           (--resources)
hit_rate              cache hits / (hits + misses) the agent recorded (--agent)  % or a fraction
queries_per_request   SQL statements per request, mean (--agent)                 a number
n_plus_one            N+1 patterns found (--agent; whole run only)               a number
====================  =========================================================  ==================

ENDPOINT: a request name of the scenario (a flow's name, once flows record their total as a row
of their own); without it the SLO applies to all requests. The target's resources, status
counts, concurrency and ``n_plus_one`` are for the whole run only.

Every name is checked before any load (:func:`parse`: an unknown metric; :func:`scope_problems`:
an unknown endpoint; :func:`requirement_problems`: a metric whose collector the run lacks). An SLO
is evaluated against ``summary.json`` (:func:`evaluate`); a broken one makes ``perfbench run``
exit with code 10, distinct from a broken configuration (2).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..rundir import ERROR_KINDS

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}
_PATTERN = re.compile(
    r"^(?:(?P<scope>.+?):)??\s*(?P<metric>(?:ttfb:)?[A-Za-z][A-Za-z0-9_.]*)\s*(?P<op><=|>=|==|<|>)\s*"
    r"(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|us|s|%|b|kb|mb|gb)?$", re.I)
_LATENCY_KEYS = {"p50": "p50", "p90": "p90", "p95": "p95", "p99": "p99", "p99.9": "p99_9", "max": "max",
                 "mean": "mean"}
_TTFB_KEYS = ("ttfb:p50", "ttfb:p95", "ttfb:p99")
_UNIT_MS = {"ms": 1.0, "s": 1000.0, "us": 0.001, None: 1.0}
_UNIT_MB = {"b": 1 / 2**20, "kb": 1 / 1024, "mb": 1.0, "gb": 1024.0, None: 1.0}
KINDS = ERROR_KINDS
_STATUS = re.compile(r"^status_(?:[1-5]xx|[1-5]\d\d)$")
RESOURCE_METRICS = {"cpu": "cpu_percent_mean", "cpu_max": "cpu_percent_max", "rss": "rss_mb_max",
                    "rss_growth": "rss_growth_mb", "fds": "fds_max", "threads": "threads_max",
                    "connections": "connections_max"}
AGENT_METRICS = ("hit_rate", "queries_per_request", "n_plus_one")
_PLAIN = ("rps", "concurrency", "fds", "threads", "connections", "queries_per_request", "n_plus_one")
_WHOLE_RUN = ("concurrency", "n_plus_one", *RESOURCE_METRICS)


def metric_names() -> list[str]:
    """Every METRIC an SLO may name (``status_NNN`` and ``status_Nxx`` stand for a family)."""
    return [*_LATENCY_KEYS, *_TTFB_KEYS, "errors", "rps", *KINDS, "status_Nxx", "status_NNN", "concurrency",
            *RESOURCE_METRICS, *AGENT_METRICS]


def _family(metric: str) -> str:
    if metric in _LATENCY_KEYS or metric in _TTFB_KEYS:
        return "latency"
    if metric in KINDS or _STATUS.match(metric):
        return "share"  # a rate with %, else a count
    if metric in ("errors", "hit_rate"):
        return "fraction"
    if metric in ("cpu", "cpu_max"):
        return "percent"
    if metric in ("rss", "rss_growth"):
        return "memory"
    if metric in _PLAIN:
        return "plain"
    return ""


@dataclass(frozen=True)
class SLO:
    text: str
    scope: str | None  # endpoint name, or None for all requests
    metric: str
    op: str
    threshold: float  # ms (latency), a fraction (errors, rates), % (cpu), MB (rss), else a number
    count: bool = False  # an error kind or status as a count of requests (no unit), not a rate

    def actual(self, summary: dict[str, Any]) -> float | None:
        m = self.metric
        if m in RESOURCE_METRICS:
            return (summary.get("resources") or {}).get(RESOURCE_METRICS[m])
        if m == "concurrency":
            return (summary.get("concurrency") or {}).get("max")
        if m == "n_plus_one":
            return (summary.get("sql") or {}).get("n_plus_one_patterns")
        if m == "queries_per_request":
            sql = summary.get("sql") or {}
            return sql.get("per_request_mean") if self.scope is None else \
                ((sql.get("endpoints") or {}).get(self.scope) or {}).get("per_request_mean")
        if m == "hit_rate":
            cache = summary.get("cache") or {}
            return cache.get("hit_rate") if self.scope is None else \
                ((cache.get("endpoints") or {}).get(self.scope) or {}).get("hit_rate")
        if _STATUS.match(m):
            return _status(summary, m[len("status_"):], self.count)
        block = summary.get("overall", {}) if self.scope is None else summary.get("endpoints", {}).get(self.scope)
        if block is None:
            return None
        if m == "errors":
            return block.get("error_rate")
        if m == "rps":
            return block.get("rps")
        if m in KINDS:
            n = (block.get("errors_by_kind") or {}).get(m, 0)
            count = block.get("count")
            return float(n) if self.count else (n / count if count else None)
        if m in _TTFB_KEYS:
            return (block.get("ttfb_ms") or {}).get(m.split(":")[1])
        return block.get("latency_ms", {}).get(_LATENCY_KEYS[m])

    def check(self, summary: dict[str, Any]) -> dict[str, Any]:
        value = self.actual(summary)
        if value is None:
            ok, note = False, self._missing(summary)
        else:
            ok, note = _OPS[self.op](value, self.threshold), None
        out = {"slo": self.text, "scope": self.scope or "*", "metric": self.metric, "op": self.op,
               "threshold": self.threshold, "actual": value, "ok": ok}
        if self.count:
            out["count"] = True
        if note:
            out["note"] = note
        return out

    def _missing(self, summary: dict[str, Any]) -> str:
        m = self.metric
        if m in RESOURCE_METRICS:
            return "no resource samples in this run (run with --resources)"
        if m in AGENT_METRICS:
            return "no agent records in this run (run with --agent against a service with the agent)"
        if m == "concurrency" and "concurrency" not in summary:
            return "not in this summary (perfbench summary --recompute adds it)"
        if self.scope and self.scope not in (summary.get("endpoints") or {}):
            return "no such endpoint in the run"
        if m in _TTFB_KEYS:
            return "no response had a first byte"
        return "no requests"


def _status(summary: dict[str, Any], which: str, count: bool) -> float | None:
    counts = summary.get("status_counts") or {}
    total = (summary.get("overall") or {}).get("count") or 0
    n = sum(v for k, v in counts.items() if k.isdigit() and (k == which or (which.endswith("xx") and len(k) == 3
                                                                             and k[0] == which[0])))
    return float(n) if count else (n / total if total else None)


def parse(text: str) -> SLO:
    m = _PATTERN.match(text.strip())
    if not m:
        raise ConfigError(f"SLO {text!r} is not [ENDPOINT:]METRIC OP VALUE[UNIT], e.g. 'p95<300ms', "
                          f"'errors<1%', 'posts:p99<=50ms', 'timeout==0' or 'rps>=95'")
    metric, op, value = m["metric"].lower(), m["op"], float(m["value"])
    unit = m["unit"].lower() if m["unit"] else None
    scope = m["scope"].strip() if m["scope"] else None
    family = _family(metric)
    if not family:
        if metric.startswith("p") and metric[1:].replace(".", "").isdigit():
            raise ConfigError(f"SLO {text!r}: percentile {metric} is not one of "
                              f"{', '.join(k for k in _LATENCY_KEYS if k.startswith('p'))}")
        raise ConfigError(f"SLO {text!r}: unknown metric {metric!r}; valid: {', '.join(metric_names())}")
    if scope is not None and (metric in _WHOLE_RUN or _STATUS.match(metric)):
        raise ConfigError(f"SLO {text!r}: {metric} is measured for the whole run; drop {scope + ':'!r}")
    count = False

    def refuse(allowed: str) -> ConfigError:
        return ConfigError(f"SLO {text!r}: {metric} takes {allowed}, not {unit}")

    if family == "latency":
        if unit not in _UNIT_MS:
            raise refuse("ms, s or us")
        value *= _UNIT_MS[unit]
    elif family in ("fraction", "share"):
        if unit not in ("%", None):
            raise ConfigError(f"SLO {text!r}: {'an error rate' if metric == 'errors' else metric} takes % or "
                              f"{'a count' if family == 'share' else 'a fraction'}, not {unit}")
        count = family == "share" and unit is None
        value = value / 100 if unit == "%" else value
        if not count and value > 1:
            raise ConfigError(f"SLO {text!r}: a rate above 100% means nothing; use e.g. {metric}<1%")
    elif family == "percent":
        if unit not in ("%", None):
            raise refuse("% (of one core)")
    elif family == "memory":
        if unit not in _UNIT_MB:
            raise refuse("MB, KB, GB or B")
        value *= _UNIT_MB[unit]
    elif unit is not None:
        raise ConfigError(f"SLO {text!r}: {metric} takes no unit")
    return SLO(text.strip(), scope, metric, op, value, count)


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


def requirement_problems(slos: Iterable[SLO], *, resources: bool, agent: bool) -> list[str]:
    """The SLOs on a figure the run will not measure: the target's resources without the resource
    sampler, the agent's figures without the agent."""
    out = []
    for s in slos:
        if s.metric in RESOURCE_METRICS and not resources:
            out.append(f"SLO {s.text!r}: {s.metric} is the target's, sampled with --resources "
                       f"(run_load: collectors=[ResourceSampler(pid)]); add it")
        elif s.metric in AGENT_METRICS and not agent:
            out.append(f"SLO {s.text!r}: {s.metric} comes from the perfbench agent in the service: add --agent "
                       f"(run_load: collectors=[AgentCollector(token)])")
    return out


def check_scopes(slos: Iterable[SLO], endpoints: Iterable[str]) -> None:
    """Raise a ConfigError naming every SLO whose ENDPOINT is none of ``endpoints``."""
    problems = scope_problems(slos, endpoints)
    if problems:
        raise ConfigError("bad SLO", problems)


def evaluate(slos: Iterable[SLO], summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [s.check(summary) for s in slos]


def broken(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if not r["ok"]]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a share ``k / n`` (95% for z = 1.96): the shares p0 whose score test
    ``|k/n - p0| / sqrt(p0 (1 - p0) / n)`` stays within z. Sound for the few failures of a short step,
    where the normal approximation's interval would reach below zero."""
    if n <= 0:
        return 0.0, 1.0
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (0.0 if k <= 0 else max(0.0, centre - half)), (1.0 if k >= n else min(1.0, centre + half))


def within_noise(result: dict[str, Any], summary: dict[str, Any]) -> str | None:
    """For a broken upper limit on a share of requests (``errors<1%``, ``http_5xx<0.5%``, ``status_5xx<1%``): a
    sentence when the limit lies inside the share's 95% interval over the requests it counts, so the break may
    be chance (8 failures in 675 requests, 1.19%, do not show a rate above 1%); else None."""
    metric, actual = result["metric"], result["actual"]
    if result["ok"] or actual is None or result.get("count") or result["op"] not in ("<", "<="):
        return None
    if metric != "errors" and metric not in KINDS and not _STATUS.match(metric):
        return None
    scope = result.get("scope", "*")
    block = summary.get("overall", {}) if scope == "*" or _STATUS.match(metric) else \
        (summary.get("endpoints") or {}).get(scope) or {}
    n = int(block.get("count") or 0)
    if n <= 0:
        return None
    k = round(actual * n)
    low, high = wilson(k, n)
    if low > result["threshold"]:
        return None
    return (f"{result['slo']}: {k} of {n:,} requests ({100 * actual:.2f}%), 95% interval "
            f"{100 * low:.2f}-{100 * high:.2f}%, which holds the limit")


def shown(result: dict[str, Any]) -> str:
    """An SLO result's actual value, with its unit."""
    actual, metric = result["actual"], result["metric"]
    if actual is None:
        return str(result.get("note", "no value"))
    family = _family(metric)
    if result.get("count"):
        return f"{actual:.0f} requests"
    if family in ("fraction", "share"):
        return f"{actual * 100:.2f}%"
    if family == "latency":
        return f"{actual:.2f} ms"
    if family == "percent":
        return f"{actual:.1f}% of one core"
    if family == "memory":
        return f"{actual:.2f} MB"
    if metric == "rps":
        return f"{actual:.1f} req/s"
    return f"{actual:g}"


def format_results(results: list[dict[str, Any]]) -> str:
    return "\n".join(f"{'ok    ' if r['ok'] else 'BROKEN'}  {r['slo']:30}  actual {shown(r)}" for r in results)
