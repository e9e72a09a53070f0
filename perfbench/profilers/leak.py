"""Leak detection for soak runs: from memory over time to a verdict with its evidence, and a run's verdict.

    v = assess(rss=resources, requests_end_ns=ends, snapshots=tracemalloc_rows)
    v.verdict      # "leak" | "no leak" | "inconclusive"
    v.reason       # one sentence saying why
    v.series       # per series (rss, traced): growth per request and per minute with 95 % CIs
    v.sites        # top growing allocation sites (file, line) with bytes per request and their CIs

**Method.** Each memory series (RSS from the resource sampler; the total traced by tracemalloc;
each tracemalloc allocation site) is fitted by ordinary least squares against the number of
requests completed so far (bytes per request) and against time (bytes per minute). Memory
samples are autocorrelated (a sample is its predecessor plus a little), which makes the textbook
OLS standard error too small, so the standard error is Newey–West (HAC, Bartlett weights, lag
``floor(4 (n/100)^(2/9))``, at least 1) and the 95 % interval uses Student's t with n-2 degrees
of freedom.

**Verdict**, per series, with a minimum effect size (``min_bytes_per_request``, default 256 B, and
``min_growth_bytes``, default 1 MiB over the analysed window, so that allocator granularity,
pymalloc arenas of 1 MiB and page-sized RSS steps do not count):

- *leak*: the whole CI of the per-request slope is above the minimum effect, the growth it
  predicts over the window is above ``min_growth_bytes``, and growth persists in the window's
  second half (its slope's CI is above zero): a cache that fills up and then plateaus is not a leak;
- *no leak*: the CI's upper end is below the minimum effect (or the growth it allows over the
  window is below ``min_growth_bytes``, unless the whole CI is above the minimum per request: a
  window too short to show the growth is inconclusive, not clean);
- *inconclusive*: neither (too few samples or too noisy: run longer).

Before fitting, the first ``warmup`` share of the run (default 20 %) is dropped: imports, caches,
connection pools and allocator arenas grow at first in every healthy service. The overall
verdict is *leak* if any series says leak (RSS alone: growth outside Python objects, or
fragmentation), *no leak* if every series says so, else *inconclusive*.

**A run's verdict**: :func:`verdict_for_run` reads a run directory's ``resources.parquet``,
``requests.parquet`` and ``memory/tracemalloc_snapshots.parquet`` and assesses them;
:func:`write_verdict` writes ``memory/leak_verdict.json`` and ``memory/leak_sites.parquet``;
:func:`growth_points` is the memory-over-requests series the leak chart draws.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ..scalars import number

MIN_BYTES_PER_REQUEST = 256.0
MIN_GROWTH_BYTES = float(2**20)
WARMUP = 0.2


@dataclass(frozen=True)
class Fit:
    """OLS line y = intercept + slope * x with a Newey–West standard error and a 95 % CI."""

    slope: float
    intercept: float
    se: float
    lo: float
    hi: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"slope": self.slope, "ci95": [self.lo, self.hi], "se": self.se, "n": self.n}


def t_quantile(df: int, p: float = 0.975) -> float:
    """Student's t quantile (Cornish–Fisher expansion around the normal; good to ~1e-3 for df ≥ 3)."""
    z = _norm_ppf(p)
    if df <= 0:
        return math.inf
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        a = 4 * p * (1 - p)
        return (2 * p - 1) * math.sqrt(2 / a)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


def _norm_ppf(p: float) -> float:
    # Acklam's rational approximation (|error| < 1.2e-9)
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    if p < 0.02425:
        q = math.sqrt(-2 * math.log(p))
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    if p > 1 - 0.02425:
        return -_norm_ppf(1 - p)
    q = p - 0.5
    r = q * q
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)


def ols_hac(x: Sequence[float], y: Sequence[float], lag: int | None = None) -> Fit | None:
    """OLS slope of ``y`` on ``x`` with a Newey–West (HAC) standard error; None with < 3 points or constant x."""
    n = len(x)
    if n < 3 or n != len(y):
        return None
    mx, my = sum(x) / n, sum(y) / n
    xc = [xi - mx for xi in x]
    sxx = sum(v * v for v in xc)
    if sxx <= 0:
        return None
    slope = sum(a * (yi - my) for a, yi in zip(xc, y, strict=True)) / sxx
    intercept = my - slope * mx
    u = [a * (yi - intercept - slope * xi) for a, xi, yi in zip(xc, x, y, strict=True)]
    if lag is None:
        lag = max(1, math.floor(4 * (n / 100) ** (2 / 9)))
    lag = min(lag, n - 1)
    s = sum(v * v for v in u)
    for j in range(1, lag + 1):
        w = 1 - j / (lag + 1)
        s += 2 * w * sum(u[i] * u[i - j] for i in range(j, n))
    # small-sample correction n/(n-2), as the classic OLS variance has
    var = max(s, 0.0) / sxx**2 * n / (n - 2)
    se = math.sqrt(var)
    t = t_quantile(n - 2)
    return Fit(slope, intercept, se, slope - t * se, slope + t * se, n)


def completed_before(times_ns: Sequence[int], end_ns_sorted: Sequence[int]) -> list[int]:
    """How many requests had completed at each of ``times_ns`` (``end_ns_sorted`` ascending)."""
    return [bisect_right(end_ns_sorted, t) for t in times_ns]


@dataclass
class SeriesGrowth:
    """Growth of one memory series: per request and per minute, and its verdict."""

    name: str
    per_request: Fit | None
    per_minute: Fit | None
    second_half: Fit | None
    window_requests: int
    window_s: float
    start_bytes: float | None
    end_bytes: float | None
    verdict: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"series": self.name, "verdict": self.verdict, "reason": self.reason,
                "bytes_per_request": self.per_request.to_dict() if self.per_request else None,
                "bytes_per_minute": self.per_minute.to_dict() if self.per_minute else None,
                "second_half_bytes_per_request": self.second_half.to_dict() if self.second_half else None,
                "window_requests": self.window_requests, "window_s": self.window_s,
                "start_bytes": self.start_bytes, "end_bytes": self.end_bytes}


@dataclass
class LeakVerdict:
    verdict: str
    reason: str
    series: dict[str, SeriesGrowth] = field(default_factory=dict)
    sites: pl.DataFrame | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.verdict == "leak"

    @property
    def top_site(self) -> dict[str, Any] | None:
        if self.sites is None or self.sites.height == 0:
            return None
        return self.sites.row(0, named=True)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reason": self.reason,
                "series": {k: v.to_dict() for k, v in self.series.items()},
                "top_sites": [] if self.sites is None else self.sites.head(10).to_dicts(),
                "params": self.params}


def series_growth(name: str, t_ns: Sequence[int], values: Sequence[float], requests_done: Sequence[int], *,
                  min_bytes_per_request: float = MIN_BYTES_PER_REQUEST,
                  min_growth_bytes: float = MIN_GROWTH_BYTES) -> SeriesGrowth:
    """Fit one (already warm-up-trimmed) series and decide: leak, no leak or inconclusive."""
    pts = sorted(zip(t_ns, values, requests_done, strict=True))
    t = [p[0] for p in pts]
    v = [float(p[1]) for p in pts]
    r = [float(p[2]) for p in pts]
    per_req = ols_hac(r, v)
    per_min = ols_hac([ti / 6e10 for ti in t], v)
    half = len(pts) // 2
    second = ols_hac(r[half:], v[half:]) if len(pts) - half >= 3 else None
    window_requests = int(r[-1] - r[0]) if pts else 0
    window_s = (t[-1] - t[0]) / 1e9 if pts else 0.0
    start, end = (v[0], v[-1]) if pts else (None, None)
    if per_req is None:
        why = "too few samples after warm-up" if len(pts) < 3 else "no requests completed during the window"
        if per_min is not None and window_requests == 0:
            why = "no requests completed during the window; cannot fit bytes per request"
        return SeriesGrowth(name, per_req, per_min, second, window_requests, window_s, start, end, "inconclusive",
                            why)
    allowed_growth_hi = per_req.hi * window_requests
    shown = (f"{per_req.slope:,.0f} B/request (95 % CI {per_req.lo:,.0f} to {per_req.hi:,.0f}, "
             f"n={per_req.n})")
    if (per_req.lo > min_bytes_per_request and per_req.lo * window_requests > min_growth_bytes
            and second is not None and second.lo > 0):
        verdict, why = "leak", (f"grows {shown} over {window_requests} requests, also in the window's "
                                f"second half; above the {min_bytes_per_request:g} B/request minimum")
    elif per_req.lo > min_bytes_per_request and allowed_growth_hi < min_growth_bytes:
        # every request grows memory, but the window is too short for that to reach the minimum growth:
        # neither a leak nor its absence is shown
        verdict, why = "inconclusive", (f"{shown}, above the {min_bytes_per_request:g} B/request minimum, but "
                                        f"{window_requests} requests are too few to grow "
                                        f"{min_growth_bytes / 2**20:g} MiB; run longer")
    elif per_req.hi < min_bytes_per_request or allowed_growth_hi < min_growth_bytes:
        verdict, why = "no leak", (f"{shown}: below the {min_bytes_per_request:g} B/request minimum effect "
                                   f"or under {min_growth_bytes / 2**20:g} MiB over the window")
    elif per_req.lo > min_bytes_per_request and (second is None or second.lo <= 0):
        verdict, why = "inconclusive", f"{shown}, but the growth did not persist into the second half (a plateau?)"
    else:
        verdict, why = "inconclusive", f"{shown}: the interval straddles the minimum effect; run longer"
    return SeriesGrowth(name, per_req, per_min, second, window_requests, window_s, start, end, verdict, why)


def _warm(run_end_ns: int, warmup: float) -> int:
    return int(max(0, run_end_ns) * warmup)


def site_growth(snapshots: pl.DataFrame, requests_end_ns: Sequence[int], *, by: str = "site", warmup: float = WARMUP,
                run_end_ns: int | None = None, top: int = 20) -> pl.DataFrame:
    """Per allocation site: growth in bytes per request over the snapshots (OLS, HAC CI), top ``top`` first.

    ``snapshots``: rows of ``memory/tracemalloc_snapshots.parquet`` (``snapshot, t_ns, size, count`` and
    ``site_file, site_line`` for ``by="site"`` or ``file, line`` for ``by="lineno"``).
    Columns: file, line, bytes_per_request, ci_lo, ci_hi, count_per_request, growth_bytes (last minus
    first kept snapshot), size_last, monotone (share of snapshot-to-snapshot steps that grew).
    """
    fcol, lcol = ("site_file", "site_line") if by == "site" else ("file", "line")
    ends = sorted(requests_end_ns)
    times = snapshots.group_by("snapshot").agg(pl.col("t_ns").first()).sort("snapshot")
    end = run_end_ns if run_end_ns is not None else (ends[-1] if ends else int(number(times["t_ns"].max() or 0)))
    cut = _warm(end, warmup)
    times = times.filter(pl.col("t_ns") >= cut)
    schema = {"file": pl.String, "line": pl.Int32, "bytes_per_request": pl.Float64, "ci_lo": pl.Float64,
              "ci_hi": pl.Float64, "count_per_request": pl.Float64, "growth_bytes": pl.Int64,
              "size_last": pl.Int64, "monotone": pl.Float64}
    if times.height < 3:
        return pl.DataFrame(schema=schema)
    done = completed_before(times["t_ns"].to_list(), ends)
    times = times.with_columns(requests=pl.Series(done, dtype=pl.Int64))
    per = (snapshots.join(times.select("snapshot", "requests"), on="snapshot")
           .group_by(fcol, lcol, "snapshot", "requests").agg(pl.col("size").sum(), pl.col("count").sum()))
    grid = times.select("snapshot", "requests").join(per.select(fcol, lcol).unique(), how="cross")
    per = grid.join(per.drop("requests"), on=[fcol, lcol, "snapshot"], how="left").with_columns(
        pl.col("size", "count").fill_null(0)).sort(fcol, lcol, "snapshot")
    agg = per.group_by(fcol, lcol, maintain_order=True).agg(
        pl.col("requests"), pl.col("size"), pl.col("count"))
    # cheap pre-rank: only fit the sites that grew at all between the first and last snapshot
    agg = agg.with_columns(growth=pl.col("size").list.last() - pl.col("size").list.first()).filter(
        pl.col("growth") > 0).sort("growth", descending=True).head(max(top * 5, 50))
    rows = []
    for f, ln, req, size, count, growth in agg.iter_rows():
        fit = ols_hac(req, size)
        cfit = ols_hac(req, count)
        if fit is None:
            continue
        steps = [b - a for a, b in zip(size, size[1:], strict=False)]
        rows.append({"file": f, "line": ln, "bytes_per_request": fit.slope, "ci_lo": fit.lo, "ci_hi": fit.hi,
                     "count_per_request": cfit.slope if cfit else None, "growth_bytes": growth,
                     "size_last": size[-1], "monotone": sum(s > 0 for s in steps) / len(steps) if steps else None})
    out = pl.DataFrame(rows, schema=schema)
    return out.sort("bytes_per_request", descending=True).head(top)


def assess(*, rss: pl.DataFrame | None = None, requests_end_ns: Sequence[int] = (),
           snapshots: pl.DataFrame | None = None, warmup: float = WARMUP,
           min_bytes_per_request: float = MIN_BYTES_PER_REQUEST, min_growth_bytes: float = MIN_GROWTH_BYTES,
           site_by: str = "site", top: int = 20, run_end_ns: int | None = None) -> LeakVerdict:
    """The leak verdict of a soak from RSS samples (``t_ns, rss``) and/or tracemalloc snapshot rows.

    ``requests_end_ns``: the end times of the run's requests (ns on the run's time base);
    ``run_end_ns``: the run's end (defaults to the last request's end). See the module docstring.
    """
    ends = sorted(requests_end_ns)
    end = run_end_ns if run_end_ns is not None else (ends[-1] if ends else 0)
    cut = _warm(end, warmup)
    params = {"warmup": warmup, "warmup_until_s": cut / 1e9, "min_bytes_per_request": min_bytes_per_request,
              "min_growth_bytes": min_growth_bytes,
              "method": "OLS on requests completed (and on minutes), Newey-West HAC SE, 95 % t interval"}
    series: dict[str, SeriesGrowth] = {}
    if rss is not None and rss.height:
        r = rss.filter(pl.col("t_ns") >= cut).drop_nulls("rss").sort("t_ns")
        t = r["t_ns"].to_list()
        series["rss"] = series_growth("rss", t, r["rss"].to_list(), completed_before(t, ends),
                                      min_bytes_per_request=min_bytes_per_request, min_growth_bytes=min_growth_bytes)
    sites = None
    if snapshots is not None and snapshots.height:
        tot = (snapshots.group_by("snapshot").agg(pl.col("t_ns").first(), pl.col("size").sum())
               .filter(pl.col("t_ns") >= cut).sort("t_ns"))
        t = tot["t_ns"].to_list()
        series["traced"] = series_growth("traced", t, tot["size"].to_list(), completed_before(t, ends),
                                         min_bytes_per_request=min_bytes_per_request,
                                         min_growth_bytes=min_growth_bytes)
        sites = site_growth(snapshots, ends, by=site_by, warmup=warmup, run_end_ns=end, top=top)
    if not series:
        return LeakVerdict("inconclusive", "no memory series to judge (no RSS samples, no snapshots)", series,
                           sites, params)
    verdicts = {k: s.verdict for k, s in series.items()}
    leaking = [k for k, v in verdicts.items() if v == "leak"]
    if leaking:
        first = series["traced" if "traced" in leaking else leaking[0]]
        reason = f"{first.name}: {first.reason}"
        if leaking == ["rss"] and "traced" in series:
            reason += " (RSS only: growth outside Python objects, or fragmentation)"
        top_site = sites.row(0, named=True) if sites is not None and sites.height else None
        if top_site and "traced" in leaking:
            reason += (f"; top growing site {top_site['file']}:{top_site['line']} "
                       f"(+{top_site['bytes_per_request']:,.0f} B/request)")
        return LeakVerdict("leak", reason, series, sites, params)
    if all(v == "no leak" for v in verdicts.values()):
        return LeakVerdict("no leak", "; ".join(f"{s.name}: {s.reason}" for s in series.values()), series, sites,
                           params)
    return LeakVerdict("inconclusive", "; ".join(f"{s.name}: {s.reason}" for s in series.values()), series, sites,
                       params)


# --- a run's verdict: reading a run directory and writing memory/ ------------------------------------------


def verdict_for_run(run_dir: str | Path, **kwargs) -> LeakVerdict:
    """Read a run's RSS samples, requests and tracemalloc snapshots; :func:`assess` on them."""
    from .resources import RESOURCES
    from .tracemalloc import MEMORY_DIR, SNAPSHOTS

    run_dir = Path(run_dir)
    ends = pl.read_parquet(run_dir / "requests.parquet", columns=["end_ns"])["end_ns"].sort().to_list()
    rss = pl.read_parquet(run_dir / RESOURCES, columns=["t_ns", "rss"]) if (run_dir / RESOURCES).exists() else None
    snaps_path = run_dir / MEMORY_DIR / SNAPSHOTS
    snaps = pl.read_parquet(snaps_path) if snaps_path.exists() else None
    return assess(rss=rss, requests_end_ns=ends, snapshots=snaps, **kwargs)


def growth_points(run_dir: str | Path) -> pl.DataFrame:
    """Memory series of a run for ``charts.leak_growth``: ``series`` (rss, traced), ``t_s``, ``requests``, ``bytes``."""
    from .resources import RESOURCES
    from .tracemalloc import MEMORY_DIR, SNAPSHOTS, read_snapshots

    run_dir = Path(run_dir)
    ends = pl.read_parquet(run_dir / "requests.parquet", columns=["end_ns"])["end_ns"].sort().to_list()
    parts = []
    if (run_dir / RESOURCES).exists():
        parts.append(pl.read_parquet(run_dir / RESOURCES, columns=["t_ns", "rss"]).drop_nulls().rename(
            {"rss": "bytes"}).with_columns(series=pl.lit("rss")))
    if (run_dir / MEMORY_DIR / SNAPSHOTS).exists():
        parts.append(read_snapshots(run_dir).group_by("snapshot").agg(pl.col("t_ns").first(), bytes=pl.col("size").sum())
                     .drop("snapshot").with_columns(series=pl.lit("traced")))
    if not parts:
        return pl.DataFrame(schema={"series": pl.String, "t_s": pl.Float64, "requests": pl.Int64, "bytes": pl.Int64})
    df = pl.concat([p.select("series", "t_ns", pl.col("bytes").cast(pl.Int64)) for p in parts]).sort("series", "t_ns")
    return df.with_columns(requests=pl.Series(completed_before(df["t_ns"].to_list(), ends), dtype=pl.Int64),
                           t_s=pl.col("t_ns") / 1e9).select("series", "t_s", "requests", "bytes")


def write_verdict(verdict: LeakVerdict, run_dir: str | Path) -> Path:
    """``memory/leak_verdict.json`` and ``memory/leak_sites.parquet``."""
    from .tracemalloc import MEMORY_DIR

    out_dir = Path(run_dir) / MEMORY_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "leak_verdict.json").write_text(json.dumps(verdict.to_dict(), indent=2, default=str) + "\n")
    if verdict.sites is not None:
        verdict.sites.write_parquet(out_dir / "leak_sites.parquet")
    return out_dir / "leak_verdict.json"
