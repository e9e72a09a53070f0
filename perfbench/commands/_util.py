"""Small helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import math
import sys


def positive(kind):
    """An argparse type: a number of ``kind`` that must be > 0."""

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if kind is int and not 0 < v <= 10**12:  # compared as ints: a huge one is no float
            raise argparse.ArgumentTypeError(f"must be from 1 to 1e+12, got {text if len(text) < 30 else text[:27] + '...'}")
        if not math.isfinite(v) or v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0 and finite, got {text}")
        if v < 1e-9 or v > 1e12:
            raise argparse.ArgumentTypeError(f"must be from 1e-09 to 1e+12, got {text}")
        return v

    return parse


def param_value(text: str):
    """-p values: JSON where it parses (numbers, true/false, lists), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


SLO_HELP = ("a service level objective, repeatable: [ENDPOINT:]METRIC OP VALUE[UNIT], OP one of < <= > >= ==, "
            "e.g. 'p95<300ms', 'errors<1%%', 'posts:p99<=50ms', 'rps>=95', 'timeout==0', 'http_5xx<0.1%%', "
            "'status_5xx<1%%', 'ttfb:p95<200ms', 'concurrency<50', 'cpu<70%%', 'rss_growth<10MB', 'hit_rate>0.8', "
            "'queries_per_request<5'. METRIC: a latency (p50 p90 p95 p99 p99.9 max mean; ttfb:p50 ttfb:p95 "
            "ttfb:p99; ms, s or us); errors (%% or a fraction); rps; an error kind (timeout connect dns tls reset "
            "incomplete too_large protocol http_4xx http_5xx check redirect aborted client slow) or a status "
            "(status_5xx, status_503): with %% a share of the requests, without a unit a count; concurrency (most "
            "requests in flight); the target's cpu, cpu_max (%% of one core), rss, rss_growth (MB), fds, threads, "
            "connections (need --resources); the agent's hit_rate, queries_per_request, n_plus_one (need --agent). "
            "The warm-up is left out. Every name is checked before the load (exit 2); a broken SLO exits with "
            "code 10")


def check_slos(results: list[dict]) -> None:
    """Print SLO verdicts; raise SLOBreached (exit 10) when any is broken."""
    if not results:
        return
    from ..analysis.slo import broken, format_results
    from ..errors import SLOBreached

    print(format_results(results))
    bad = broken(results)
    if bad:
        raise SLOBreached(", ".join(r["slo"] for r in bad))


class Problems:
    """The problems found while checking a command's input, reported together (one ConfigError)."""

    def __init__(self, problems: list[str] | None = None):
        self.items: list[str] = []
        self.extend(problems or [])

    def add(self, problem: str | None) -> None:
        if problem and problem not in self.items:  # the same problem found by two checks is said once
            self.items.append(problem)

    def extend(self, problems: list[str]) -> None:
        for p in problems:
            self.add(p)

    def attempt(self, fn, *args):
        """``fn(*args)``, or None with its ConfigError kept as a problem."""
        from ..errors import ConfigError

        try:
            return fn(*args)
        except ConfigError as exc:
            self.add(str(exc))
            return None

    def raise_any(self) -> None:
        from ..errors import ConfigError

        if len(self.items) == 1:
            raise ConfigError(self.items[0])
        if self.items:
            raise ConfigError(f"{len(self.items)} problems", self.items)


def writable_dir_problem(path: str, option: str) -> str | None:
    """Why ``path`` cannot be (or become) a directory perfbench writes into; None when it can."""
    import os
    import tempfile
    from pathlib import Path

    try:
        probe = Path(path)
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            return f"{option} {path!r}: {str(probe)!r} is not a directory"
        if not os.access(probe, os.W_OK | os.X_OK):
            return f"{option} {path!r}: {str(probe)!r} is not writable"
        os.rmdir(tempfile.mkdtemp(prefix=".perfbench-probe-", dir=probe))  # what access() cannot tell (/proc)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        return f"{option} {path!r}: not a usable directory ({getattr(exc, 'strerror', None) or exc})"
    return None
