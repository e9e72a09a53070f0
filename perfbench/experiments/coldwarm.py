"""Cold versus warm cache: is the cache worth having?

``cold_warm(target, scenario, plan)`` clears the service's cache and runs the load (the *cold*
run), clearing it again every ``clear_every_s`` seconds so that it stays cold; then it runs the
same load again on the warm cache without clearing (the *warm* run). Hit rates come from the
agent's per-request cache events when the service runs the perfbench agent, else from the
service's counters around each run. Verdict per endpoint, on the ratio of medians warm / cold
with a bootstrap confidence interval (``perfbench.compare``): *effective* when the whole interval
is below ``ratio`` (default 0.5: "warm p50 below half of cold", as the seed tests ask), *not
effective* when it is wholly above, *inconclusive* otherwise.

A cold run warms its own cache after the first misses, so its median mixes misses and hits and
understates the cache's effect (the seed guides' test has this flaw: with a cache that fills
at once, "cold" and "warm" medians are both mostly hits). When the service runs the perfbench
agent, each request's own cache events are known, and the verdict uses them instead
(:func:`miss_hit_verdicts`): per endpoint, the median latency of requests that hit against
those that missed, over both runs, with a bootstrap interval. That is the cache's real effect
per request. ``coldwarm.json["judged"]`` says which evidence each verdict rests on.

Layout (``data/runs/<id>/``): ``meta.json`` (kind ``cold_warm``), ``coldwarm.json`` (verdicts,
ratios, hit rates), ``cold/`` and ``warm/`` (run directories).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import ConfigError, TargetError
from ..load import run_load
from ..rundir import RunDir, machine_info, new_run_id, read_json, utc_now_iso, write_json
from ..safety import check_target
from ..scenario import Scenario
from ..shapes import OpenPlan

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


class CacheClearer:
    """Collector: POST the cache-clear endpoint every ``interval_s`` seconds while the load runs."""

    name = "cache-clearer"

    def __init__(self, url: str, interval_s: float):
        self.url = url
        self.interval_s = interval_s
        self.clears = 0
        self.errors = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self, ctx) -> None:
        import aiohttp

        async def loop() -> None:
            async with aiohttp.ClientSession() as session:
                while True:  # cancelled by stop(); bounded by the run's deadline
                    await asyncio.sleep(self.interval_s)
                    try:
                        async with session.post(self.url) as resp:
                            await resp.read()
                            self.clears += 1
                    except aiohttp.ClientError:
                        self.errors += 1

        self._task = asyncio.get_running_loop().create_task(loop())

    async def stop(self, ctx) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return {"clears": self.clears, "errors": self.errors, "interval_s": self.interval_s}


def agent_hit_rate(run_dir: Path) -> dict[str, Any] | None:
    """Hits, misses and hit rate from the agent's per-request cache events; None without them."""
    cache = Path(run_dir) / "cache.parquet"
    if not cache.exists():
        return None
    from ..analysis.queries import cache_lookups

    kinds = cache_lookups(pl.scan_parquet(cache)).select("kind").collect()["kind"]
    hits = int((kinds == "hit").sum())
    misses = int((kinds == "miss").sum())
    return {"hits": hits, "misses": misses, "hit_rate": hits / (hits + misses) if hits + misses else None,
            "source": "agent"}


def cold_warm(target: str, scenario: Scenario | None, plan: OpenPlan, *, clear_path: str = "/api/cache/clear",
              stats_path: str | None = "/api/cache/stats", ratio: float = 0.5, confidence: float = 0.95,
              clear_every_s: float | None = 1.0,
              runs_dir: str | Path = "data/runs", run_id: str | None = None, allow_hosts: Iterable[str] = (),
              collectors: Callable[[], list] | None = None, progress=False,
              announce: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the cold and the warm load and judge the cache; returns (and writes) coldwarm.json."""
    from ..compare import compare
    from ..importers import from_run

    if not 0 < ratio < 1:
        raise ConfigError(f"ratio must be between 0 and 1 (warm p50 below ratio x cold p50), got {ratio!r}")
    rd = RunDir.create(runs_dir, run_id or new_run_id("cold_warm"))
    rd.write_meta({"kind": "cold_warm", "target": target, "scenario": scenario.describe() if scenario else None,
                   "shape": plan.describe(), "parameters": {"clear_path": clear_path, "stats_path": stats_path,
                                                            "ratio": ratio, "confidence": confidence,
                                                            "clear_every_s": clear_every_s},
                   "started_at": utc_now_iso(), "machine": machine_info()})
    http_json(target, "POST", clear_path, allow_hosts=allow_hosts)
    readings = [http_json(target, "GET", stats_path, allow_hosts=allow_hosts) if stats_path else None]
    runs = {}
    base = check_target(target, allow_hosts)
    for phase in ("cold", "warm"):
        announce(f"perfbench: {phase} run" + (f" (clearing the cache every {clear_every_s:g} s)"
                                              if phase == "cold" and clear_every_s else ""))
        extra = [CacheClearer(base + clear_path, clear_every_s)] if phase == "cold" and clear_every_s else []
        res = run_load(target, plan, scenario, runs_dir=rd.path, run_id=phase, allow_hosts=allow_hosts,
                       progress=progress, announce=lambda line: None,
                       collectors=[*(collectors() if collectors else ()), *extra])
        runs[phase] = res.path
        readings.append(http_json(target, "GET", stats_path, allow_hosts=allow_hosts) if stats_path else None)
    comparison = compare(from_run(runs["cold"]), from_run(runs["warm"]), stats=("p50",), confidence=confidence,
                         threshold=0.0)
    rows = verdicts(comparison, ratio)
    per_request = miss_hit_verdicts([runs["cold"], runs["warm"]], ratio=ratio, confidence=confidence)
    by_endpoint = {r["endpoint"]: r for r in per_request}
    judged = [by_endpoint.get(r["endpoint"], {**r, "basis": "run medians, warm against cold"}) for r in rows]
    out = {
        "ratio": ratio, "confidence": confidence, "method": comparison.method,
        "endpoints": rows, "per_request": per_request, "judged": judged,
        "effective": [r["endpoint"] for r in judged if r["verdict"] == "effective"],
        "hit_rate": {
            "cold": agent_hit_rate(runs["cold"]) or (hit_rate(readings[0], readings[1]) if not clear_every_s
                                                     else {"hits": None, "misses": None, "hit_rate": None}),
            "warm": agent_hit_rate(runs["warm"]) or hit_rate(readings[1], readings[2])},
        "cache_stats": readings, "warnings": [phase_warning(w) for w in comparison.warnings],
        "runs": {k: str(v.relative_to(rd.path)) for k, v in runs.items()},
    }
    write_json(rd.path / COLDWARM, out)
    rd.update_meta(ended_at=utc_now_iso(), end_reason="completed")
    return out | {"path": str(rd.path)}


def load_cold_warm(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if RunDir(path).meta().get("kind") != "cold_warm":
        raise ConfigError(f"{path} is not a cold/warm directory (no kind 'cold_warm' in its meta.json)")
    found = read_json(path / COLDWARM)
    found["warnings"] = [phase_warning(w) for w in found.get("warnings", [])]
    return found | {"path": str(path)}


def _cache_requests(run_dirs: list[Path]) -> pl.DataFrame:
    """The requests of ``run_dirs`` that have the agent's cache events, without errors: ``endpoint,
    missed, latency_ms`` (a request missed when any of its lookups did). Empty without ``cache.parquet``."""
    from ..analysis.results import Run

    frames = []
    for rd in run_dirs:
        cache = Path(rd) / "cache.parquet"
        if not cache.exists():
            continue
        kinds = (pl.scan_parquet(cache).filter(pl.col("request_id").is_not_null())
                 .group_by("request_id").agg(pl.col("kind").str.contains("miss").any().alias("missed")))
        frames.append(Run.load(rd).requests.join(kinds, on="request_id", how="inner")
                      .filter(pl.col("error").is_null()).select("endpoint", "missed", "latency_ms").collect())
    if not frames:
        return pl.DataFrame(schema={"endpoint": pl.String, "missed": pl.Boolean, "latency_ms": pl.Float64})
    return pl.concat(frames)


def per_request_effect(run_dirs: str | Path | list[str | Path]) -> pl.DataFrame:
    """With the agent's cache events: per endpoint, the latency of requests that missed against those
    that hit (requests, p50 and p95 in ms), pooled over ``run_dirs`` (both runs, as the verdict of
    :func:`miss_hit_verdicts` is: its ``miss_p50_ms`` and ``hit_p50_ms`` are this table's p50s). Empty
    without ``cache.parquet``."""
    from ..analysis.results import pct

    dirs = [Path(d) for d in (run_dirs if isinstance(run_dirs, list) else [run_dirs])]
    df = _cache_requests(dirs)
    if not df.height:
        return pl.DataFrame()
    return (df.with_columns(pl.when(pl.col("missed")).then(pl.lit("miss")).otherwise(pl.lit("hit")).alias("cache"))
            .group_by("endpoint", "cache").agg(pl.len().alias("requests"), pct("latency_ms", 0.5).alias("p50_ms"),
                                               pct("latency_ms", 0.95).alias("p95_ms"))
            .sort("endpoint", "cache"))


def _ratio_interval(numerator: list[float], denominator: list[float], confidence: float, n_boot: int = 4000,
                    seed: int = 0) -> tuple[float, float, float]:
    """median(numerator) / median(denominator) and its bootstrap interval (independent samples)."""
    import math
    import random

    from ..compare.stats import bootstrap_log_percentile, percentile

    rng = random.Random(seed)
    a, b = sorted(numerator), sorted(denominator)
    la = bootstrap_log_percentile(a, 0.5, n_boot, rng)
    lb = bootstrap_log_percentile(b, 0.5, n_boot, rng)
    diffs = sorted(x - y for x, y in zip(la, lb, strict=True))
    alpha = (1 - confidence) / 2
    lo = math.exp(diffs[int(alpha * (n_boot - 1))])
    hi = math.exp(diffs[int((1 - alpha) * (n_boot - 1))])
    return percentile(a, 0.5) / max(percentile(b, 0.5), 1e-9), lo, hi


def miss_hit_verdicts(run_dirs: list[Path], *, ratio: float, confidence: float, min_each: int = 3
                      ) -> list[dict[str, Any]]:
    """Per endpoint with cache events (the agent's ``cache.parquet``): median latency of the requests
    that hit against those that missed, pooled over ``run_dirs``, with a bootstrap interval; the
    verdict against ``ratio``. Endpoints with fewer than ``min_each`` hits or misses are left out.
    ``miss_p50_ms`` / ``hit_p50_ms`` (also as ``cold_p50_ms`` / ``warm_p50_ms``, the columns every
    verdict row has) are :func:`per_request_effect`'s p50s over the same requests."""
    from ..compare.stats import percentile

    df = _cache_requests([Path(d) for d in run_dirs])
    out = []
    for (endpoint,), g in df.group_by("endpoint"):
        hits = sorted(g.filter(~pl.col("missed"))["latency_ms"].to_list())
        misses = sorted(g.filter(pl.col("missed"))["latency_ms"].to_list())
        if len(hits) < min_each or len(misses) < min_each:
            continue
        r, lo, hi = _ratio_interval(hits, misses, confidence)
        verdict = "effective" if hi < ratio else "not effective" if lo > ratio else "inconclusive"
        miss_p50, hit_p50 = percentile(misses, 0.5), percentile(hits, 0.5)
        out.append({"endpoint": endpoint, "cold_p50_ms": miss_p50, "warm_p50_ms": hit_p50, "miss_p50_ms": miss_p50,
                    "hit_p50_ms": hit_p50, "ratio": r, "low": lo, "high": hi,
                    "verdict": verdict, "n_cold": len(misses), "n_warm": len(hits),
                    "interval": "bootstrap CI", "basis": "per request (agent): hits against misses, both runs"})
    return sorted(out, key=lambda r: r["endpoint"])


PHASE_WORDS = ((r"\bthe baseline run\b", "the cold run"), (r"\bthe current run\b", "the warm run"),
               (r"\bthe baseline\b", "the cold run"), (r"\bthe current\b", "the warm run"),
               (r"\bbaseline\b", "cold run"), (r"\bcurrent\b", "warm run"))


def phase_warning(text: str) -> str:
    """A comparison's warning in this experiment's words: the cold and the warm run, not a baseline
    and a current run."""
    import re

    for pattern, words in PHASE_WORDS:
        text = re.sub(pattern, words, text)
    return text
