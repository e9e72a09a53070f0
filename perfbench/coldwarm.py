"""Cold versus warm cache: is the cache worth having?

``cold_warm(target, scenario, plan)`` clears the service's cache, runs the load (the *cold* run),
then runs the same load again on the now warm cache (the *warm* run), reading the service's
hit and miss counters around each. Verdict per endpoint, on the ratio of medians warm / cold
with a bootstrap confidence interval (``perfbench.compare``): *effective* when the whole interval
is below ``ratio`` (default 0.5: "warm p50 below half of cold", as the seed tests ask), *not
effective* when it is wholly above, *inconclusive* otherwise.

A cold run warms its own cache after the first misses, so its median mixes misses and hits and
understates the cache's effect (the seed guides' test has this flaw). When the service runs the
perfbench agent, each request's own cache events are known: :func:`per_request_effect` then
compares the latency of requests that missed with those that hit, in the same run, which is
the cache's real effect per request.

Layout (``data/runs/<id>/``): ``meta.json`` (kind ``cold_warm``), ``coldwarm.json`` (verdicts,
ratios, hit rates), ``cold/`` and ``warm/`` (run directories).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import polars as pl

from .engine import run_load
from .errors import ConfigError, TargetError
from .rundir import RunDir, machine_info, new_run_id, read_json, utc_now_iso, write_json
from .safety import check_target
from .scenario import Scenario
from .shapes import OpenPlan

COLDWARM = "coldwarm.json"


def http_json(target: str, method: str, path: str, *, allow_hosts: Iterable[str] = (), timeout: float = 10) -> Any:
    """One small JSON call to the service (cache clear or stats), loopback-checked like the load."""
    base = check_target(target, allow_hosts)
    req = urllib.request.Request(base + path, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback-checked above
            body = resp.read()
    except OSError as exc:
        raise TargetError(f"{method} {path} failed: {exc}") from None
    try:
        return json.loads(body) if body else None
    except ValueError:
        raise TargetError(f"{method} {path} did not answer JSON") from None


def hit_rate(before: dict | None, after: dict | None) -> dict[str, Any]:
    """Hits, misses and the hit rate between two readings of the service's counters."""
    if not before or not after:
        return {"hits": None, "misses": None, "hit_rate": None}
    hits = after.get("hits", 0) - before.get("hits", 0)
    misses = after.get("misses", 0) - before.get("misses", 0)
    total = hits + misses
    return {"hits": hits, "misses": misses, "hit_rate": hits / total if total else None}


def verdicts(comparison, ratio: float) -> list[dict[str, Any]]:
    """Per endpoint: the warm/cold ratio of medians, its interval and the verdict against ``ratio``."""
    out = []
    for r in comparison.rows:
        if r.stat != "p50" or r.endpoint in ("*", "ALL"):
            continue
        if r.low is None or r.high is None:
            verdict = "inconclusive"
        elif r.high < ratio:
            verdict = "effective"
        elif r.low > ratio:
            verdict = "not effective"
        else:
            verdict = "inconclusive"
        out.append({"endpoint": r.endpoint, "cold_p50_ms": r.baseline, "warm_p50_ms": r.current,
                    "ratio": r.ratio, "low": r.low, "high": r.high, "interval": r.interval,
                    "verdict": verdict, "n_cold": r.n_baseline, "n_warm": r.n_current})
    return out


def cold_warm(target: str, scenario: Scenario | None, plan: OpenPlan, *, clear_path: str = "/api/cache/clear",
              stats_path: str | None = "/api/cache/stats", ratio: float = 0.5, confidence: float = 0.95,
              runs_dir: str | Path = "data/runs", run_id: str | None = None, allow_hosts: Iterable[str] = (),
              collectors: Callable[[], list] | None = None, progress=False,
              announce: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the cold and the warm load and judge the cache; returns (and writes) coldwarm.json."""
    from .compare import compare
    from .importers import from_run

    if not 0 < ratio < 1:
        raise ConfigError(f"ratio must be between 0 and 1 (warm p50 below ratio x cold p50), got {ratio!r}")
    rd = RunDir.create(runs_dir, run_id or new_run_id("cold_warm"))
    rd.write_meta({"kind": "cold_warm", "target": target, "scenario": scenario.describe() if scenario else None,
                   "shape": plan.describe(), "parameters": {"clear_path": clear_path, "stats_path": stats_path,
                                                            "ratio": ratio, "confidence": confidence},
                   "started_at": utc_now_iso(), "machine": machine_info()})
    http_json(target, "POST", clear_path, allow_hosts=allow_hosts)
    readings = [http_json(target, "GET", stats_path, allow_hosts=allow_hosts) if stats_path else None]
    runs = {}
    for phase in ("cold", "warm"):
        announce(f"perfbench: {phase} run")
        res = run_load(target, plan, scenario, runs_dir=rd.path, run_id=phase, allow_hosts=allow_hosts,
                       progress=progress, announce=lambda line: None,
                       collectors=collectors() if collectors else ())
        runs[phase] = res.path
        readings.append(http_json(target, "GET", stats_path, allow_hosts=allow_hosts) if stats_path else None)
    comparison = compare(from_run(runs["cold"]), from_run(runs["warm"]), stats=("p50",), confidence=confidence,
                         threshold=0.0)
    rows = verdicts(comparison, ratio)
    out = {
        "ratio": ratio, "confidence": confidence, "method": comparison.method,
        "endpoints": rows,
        "effective": [r["endpoint"] for r in rows if r["verdict"] == "effective"],
        "hit_rate": {"cold": hit_rate(readings[0], readings[1]), "warm": hit_rate(readings[1], readings[2])},
        "cache_stats": readings, "warnings": comparison.warnings,
        "runs": {k: str(v.relative_to(rd.path)) for k, v in runs.items()},
    }
    write_json(rd.path / COLDWARM, out)
    rd.update_meta(ended_at=utc_now_iso(), end_reason="completed")
    return out | {"path": str(rd.path)}


def load_cold_warm(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if RunDir(path).meta().get("kind") != "cold_warm":
        raise ConfigError(f"{path} is not a cold/warm directory (no kind 'cold_warm' in its meta.json)")
    return read_json(path / COLDWARM) | {"path": str(path)}


def per_request_effect(run_dir: str | Path) -> pl.DataFrame:
    """With the agent's cache events: per endpoint, the latency of requests that missed against
    those that hit (p50 and p95, ms), from one run. Empty without ``cache.parquet``."""
    from .results import Run, pct

    run = Run.load(run_dir)
    cache = Path(run_dir) / "cache.parquet"
    if not cache.exists():
        return pl.DataFrame()
    kinds = (pl.scan_parquet(cache).filter(pl.col("request_id").is_not_null())
             .group_by("request_id").agg(pl.col("kind").str.contains("miss").any().alias("missed")))
    joined = run.requests.join(kinds, on="request_id", how="inner").with_columns(
        pl.when(pl.col("missed")).then(pl.lit("miss")).otherwise(pl.lit("hit")).alias("cache"))
    return (joined.group_by("endpoint", "cache").agg(pl.len().alias("requests"),
                                                     pct("latency_ms", 0.5).alias("p50_ms"),
                                                     pct("latency_ms", 0.95).alias("p95_ms"))
            .sort("endpoint", "cache").collect())
