"""Analyses of experiments, as pure functions on the frames of ``perfbench.analysis.results``.

- :func:`spike_recovery`: baseline, spike, recovery: how long until latency is back to baseline?
- :func:`drift`: does latency creep up over a long run (a soak)? slope with a confidence interval.
- :func:`stage_table`: latency, throughput and errors per stage of a plan.
- :func:`warmup_for` / :func:`after_warmup` / :func:`summary_after_warmup`: the warm-up every experiment
  leaves out of its verdict (connections, caches, JIT-less interpreters filling their own caches).
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from ..errors import ConfigError
from ..scalars import optional_number
from .results import pct, with_ms

WARMUP_S = 5.0  # the default warm-up of the experiments, seconds (never more than a quarter of the run)


def warmup_for(warmup_s: float, duration_s: float) -> float:
    """The warm-up actually left out: ``warmup_s``, but at most a quarter of the run (a short run keeps
    three quarters of its requests to judge)."""
    if warmup_s < 0:
        raise ConfigError(f"warm-up must be >= 0 s, got {warmup_s!r}")
    return max(0.0, min(float(warmup_s), float(duration_s) / 4))


def after_warmup(lf: pl.LazyFrame, warmup_s: float) -> pl.LazyFrame:
    """The requests planned at or after ``warmup_s`` seconds into the run."""
    return with_ms(lf).filter(pl.col("t_s") >= warmup_s)


def effective_warmup(run: Any, warmup_s: float) -> float:
    """The warm-up a verdict on ``run`` (a ``results.Run``) leaves out: the run's own (``meta.warmup``,
    ``perfbench run --warmup``: its summary.json already leaves it out), else :func:`warmup_for`."""
    from .warmup import until_ns

    own = until_ns(run.meta)
    return own / 1e9 if own else warmup_for(warmup_s, run.duration_s)


def summary_after_warmup(run: Any, warmup_s: float) -> dict[str, Any]:
    """The summary (``results.summarize``, the same numbers as summary.json) of a run's requests after
    its warm-up: what SLOs and verdicts are judged on. ``run`` is a ``results.Run``; a run with its own
    warm-up recorded (``meta.warmup``) has it left out of summary.json already, which is returned."""
    from .results import DEFAULT_LAG_BOUND_MS, summarize
    from .warmup import until_ns

    if warmup_s <= 0 or until_ns(run.meta):
        return run.summary()
    engine = {k: v for k, v in (run.meta.get("engine_stats") or {}).items() if k != "planned"}
    return summarize(after_warmup(run.requests, warmup_s), duration_s=max(run.duration_s - warmup_s, 1e-9),
                     engine=engine, model=(run.meta.get("shape") or {}).get("model", "open"),
                     lag_bound_ms=run.meta.get("parameters", {}).get("lag_bound_ms", DEFAULT_LAG_BOUND_MS))


def side_without_warmup(side: Any, warmup_s: float) -> Any:
    """One side of a comparison (``importers.Measurements``) without its first ``warmup_s`` seconds of
    samples (at most a quarter of its span), with a note saying so; a side without raw samples (only
    aggregates) is returned as it is, with a note that its warm-up could not be left out."""
    import dataclasses

    if warmup_s <= 0 or side.source == "bench" or any(n.startswith("the warm-up (") for n in side.notes):
        return side  # a micro-benchmark has no warm-up in time; a run's own warm-up is out already
    if side.requests is None or not side.duration_s:
        return dataclasses.replace(side, notes=[*side.notes, "no raw samples: its warm-up could not be left out"])
    warm = warmup_for(warmup_s, side.duration_s)
    kept = side.requests.filter(pl.col("intended_ns") >= int(warm * 1e9))
    counts = None if side.counts is None else dict(kept.group_by("endpoint").len().iter_rows())
    return dataclasses.replace(side, requests=kept, duration_s=side.duration_s - warm, counts=counts,
                               notes=[*side.notes, f"the first {round(warm, 2):g} s (warm-up) left out"])


def stage_table(lf: pl.LazyFrame, meta: dict[str, Any], warmup_s: float = 0.0) -> pl.DataFrame:
    """Per stage of the run's plan: name, start/end (s), offered and achieved req/s, p50/p95/p99, errors.

    ``warmup_s`` > 0: the requests planned before it (in the first stage) are a row of their own, named
    "<first stage> (warm-up)", so the first stage's row is what a verdict that leaves the warm-up out sees,
    and every request is in exactly one row."""
    stages = (meta.get("shape") or {}).get("stages", [])
    names = [s.get("name") or f"stage {i}" for i, s in enumerate(stages)]
    bounds, t = [], 0.0
    for s in stages:
        bounds.append((t, t + s["duration_s"]))
        t += s["duration_s"]
    cut = min(warmup_s, bounds[0][1]) if warmup_s > 0 and bounds else 0.0
    warm = (pl.col("stage") == 0) & (pl.col("t_s") < cut) if cut else pl.lit(False)
    per = (with_ms(lf).with_columns(warm.alias("_warm")).group_by("stage", "_warm").agg(
        pl.len().alias("requests"),
        pl.col("error").is_not_null().sum().alias("errors"),
        pct("latency_ms", 0.50).alias("p50_ms"), pct("latency_ms", 0.95).alias("p95_ms"),
        pct("latency_ms", 0.99).alias("p99_ms"), pl.col("latency_ms").max().alias("max_ms"),
    ).sort("stage", pl.col("_warm").not_()).collect())

    def offered(i: int, lo: float, hi: float) -> float | None:
        """The mean offered rate of stage ``i`` (a linear ramp from start_rps to end_rps) over [lo, hi]."""
        st = stages[i] if i < len(stages) else {}
        if "start_rps" not in st:
            return None
        a, b = float(st.get("start_rps", 0)), float(st.get("end_rps", 0))
        s0, s1 = bounds[i]
        return a + (b - a) * (((lo + hi) / 2 - s0) / (s1 - s0) if s1 > s0 else 0.0)

    rows = []
    for r in per.iter_rows(named=True):
        i = r["stage"]
        start, end = bounds[i] if i < len(bounds) else (None, None)
        name = names[i] if i < len(names) else str(i)
        if i == 0 and cut and start is not None and end is not None:
            start, end, name = ((start, cut, f"{name} (warm-up)") if r["_warm"] else (cut, end, name))
        rate = offered(i, start, end) if start is not None and end is not None else None
        dur = (end - start) if start is not None and end is not None else None
        rows.append({"stage": i, "name": name, "start_s": start, "end_s": end, "offered_rps": rate,
                     "achieved_rps": r["requests"] / dur if dur else None, **{k: r[k] for k in
                     ("requests", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms")}})
    return pl.DataFrame(rows)


def spike_recovery(ts: pl.DataFrame, *, spike_start_s: float, spike_end_s: float, metric: str = "p95_ms",
                   tolerance: float = 0.2, hold: int = 3, warmup_s: float = 0.0) -> dict[str, Any]:
    """When did latency come back after a spike?

    ``ts`` is ``results.latency_timeseries`` (buckets by planned send time). The baseline is the
    median of ``metric`` over the buckets before the spike and after the warm-up (``warmup_s``: the
    run's first seconds, which would inflate it); the service has recovered at the
    first bucket after the spike's end from which ``hold`` consecutive buckets stay within
    ``(1 + tolerance) x baseline``. ``recovery_s`` counts from the spike's end (0: no visible
    after-effect; None: not within the run).
    """
    need = {"t_s", metric, "errors", "requests"}
    if not need <= set(ts.columns):
        raise ConfigError(f"spike_recovery: needs columns {sorted(need)} (results.latency_timeseries), "
                         f"got {ts.columns}")
    before = ts.filter((pl.col("t_s") >= min(warmup_s, spike_start_s / 2)) & (pl.col("t_s") < spike_start_s))
    during = ts.filter((pl.col("t_s") >= spike_start_s) & (pl.col("t_s") < spike_end_s))
    after = ts.filter(pl.col("t_s") >= spike_end_s).sort("t_s")
    baseline = optional_number(before[metric].median()) if before.height else None
    peak = during[metric].max() if during.height else None
    recovery = None
    limit = None if baseline is None else baseline * (1 + tolerance)
    if limit is not None:
        values = after[metric].to_list()
        times = after["t_s"].to_list()
        for i in range(len(values)):
            window = values[i:i + hold]
            if len(window) == hold and all(v is not None and v <= limit for v in window):
                recovery = max(0.0, times[i] - spike_end_s)
                break

    def errors(frame: pl.DataFrame) -> int:
        return int(frame["errors"].sum()) if frame.height else 0

    return {"metric": metric, "baseline_ms": baseline, "spike_peak_ms": peak, "limit_ms": limit,
            "recovery_s": recovery, "recovered": recovery is not None, "tolerance": tolerance, "hold": hold,
            "warmup_s": min(warmup_s, spike_start_s / 2),
            "errors_before": errors(before), "errors_during": errors(during), "errors_after": errors(after),
            "requests_during": int(during["requests"].sum()) if during.height else 0}


DRIFT_TOLERANCE = 0.10  # a rise of 10 % of the starting level over the fitted span is drift


def drift(ts: pl.DataFrame, *, metric: str = "p95_ms", warmup_s: float = 0.0, confidence: float = 0.95,
          tolerance: float = DRIFT_TOLERANCE) -> dict[str, Any]:
    """Latency drift over a long run: the least-squares slope of ``metric`` against time.

    Returns the slope in ms per hour with a confidence interval (normal approximation of the OLS
    standard error; with fewer than 10 buckets the interval is wide and says so), after dropping the
    first ``warmup_s`` seconds. The tolerance is a change of ``tolerance`` times the starting level over
    the fitted span, as a slope: ``tolerance_ms_per_h``. ``outcome``:

    - "no drift": the whole interval lies within plus or minus the tolerance;
    - "drift": the whole interval lies above the tolerance;
    - "falls": the whole interval lies below minus the tolerance (latency improves over the run);
    - "inconclusive": anything else (the interval is too wide to decide, or straddles a bound).

    ``drifting`` is ``outcome == "drift"``.
    """
    def undecided(n: int, note: str) -> dict[str, Any]:
        return {"metric": metric, "n": n, "slope_ms_per_h": None, "ci": None, "drifting": False,
                "outcome": "inconclusive", "tolerance": tolerance, "tolerance_ms_per_h": None,
                "warmup_s": warmup_s, "note": note}

    if not tolerance > 0:
        raise ConfigError(f"drift tolerance must be > 0 (a fraction of the starting level), got {tolerance!r}")
    pts = ts.filter((pl.col("t_s") >= warmup_s) & pl.col(metric).is_not_null()).select("t_s", metric)
    n = pts.height
    if n < 3:
        return undecided(n, "too few time buckets to fit a trend")
    x = pts["t_s"].to_list()
    y = pts[metric].to_list()
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    if sxx == 0:
        return undecided(n, "all buckets at one time")
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sxx
    intercept = my - slope * mx
    resid = sum((b - (intercept + slope * a)) ** 2 for a, b in zip(x, y, strict=True))
    se = math.sqrt(resid / (n - 2) / sxx) if n > 2 else float("inf")
    z = _z(confidence)
    lo, hi = slope - z * se, slope + z * se
    span = x[-1] - x[0]
    start_level = intercept + slope * x[0]
    rise = slope * span
    bound = tolerance * start_level / span if start_level > 0 and span > 0 else None
    if bound is None:
        outcome = "inconclusive"
    elif lo > bound:
        outcome = "drift"
    elif hi < -bound:
        outcome = "falls"
    elif -bound <= lo and hi <= bound:
        outcome = "no drift"
    else:
        outcome = "inconclusive"
    return {"metric": metric, "n": n, "slope_ms_per_h": slope * 3600, "ci": [lo * 3600, hi * 3600],
            "confidence": confidence, "intercept_ms": intercept, "start_ms": start_level, "rise_ms": rise,
            "tolerance": tolerance, "tolerance_ms_per_h": None if bound is None else bound * 3600,
            "warmup_s": warmup_s, "outcome": outcome, "drifting": outcome == "drift",
            "method": "OLS slope, normal-approximation interval",
            "note": "few buckets: a wide interval" if n < 10 else None}


def drift_verdict(fit: dict[str, Any]) -> tuple[bool, str, str]:
    """``(ok, outcome, text)`` of a :func:`drift` fit, for a report's verdict: ok unless it drifts."""
    outcome = fit["outcome"]
    tol = fit.get("tolerance_ms_per_h")
    if fit["slope_ms_per_h"] is None or tol is None:
        return True, "inconclusive", f"no verdict on drift: {fit.get('note') or 'no starting level to judge against'}"
    lo, hi = fit["ci"]
    interval = (f"slope {fit['slope_ms_per_h']:+,.2f} ms/h, {fit['confidence']:.0%} interval {lo:+,.2f} to "
                f"{hi:+,.2f} ms/h; tolerance ±{tol:,.2f} ms/h ({fit['tolerance']:.0%} of {fit['start_ms']:,.1f} ms "
                f"over the run)")
    text = {"drift": "p95 latency drifts upward", "no drift": "no latency drift",
            "falls": "p95 latency falls over the run",
            "inconclusive": "no verdict on drift: the slope's interval reaches beyond the tolerance"}[outcome]
    return outcome != "drift", ("failed" if outcome == "drift" else "inconclusive" if outcome == "inconclusive"
                                else "ok"), f"{text} ({interval})"


def _z(confidence: float) -> float:
    """The two-sided normal quantile for ``confidence`` (no scipy: bisection on erf)."""
    target = 1 - (1 - confidence) / 2
    lo, hi = 0.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
