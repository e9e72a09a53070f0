"""Paired A/B verdicts: baseline and candidate measured in alternating blocks of one run.

Pure functions over Polars frames, no I/O. The rows of an A/B run (``perfbench ab``) carry a
``side`` ("baseline" or "candidate") and a ``block`` column; blocks ``2k`` and ``2k + 1`` form
pair ``k``, one block of each side, the order within the pair chosen at random (ABBA or BAAB for
every two pairs). Both blocks of a pair saw the same machine (the same noisy neighbour, CPU
frequency and cache state), so what differs within a pair is the code, and the noise both share
cancels in the ratio.

Statistics, per endpoint and percentile (p50, p95, p99 by default):

- **units**: consecutive pairs are merged until both sides of each unit have enough requests for
  the percentile, so at a high rate every pair is a unit and at a low rate the tail percentiles are
  compared over a few pairs at a time. A tail percentile needs ``MIN_TAIL`` requests beyond it (p95
  200, p99 1000): the p95 of a few dozen requests is mostly its largest one. A central one needs
  ``CENTRAL_TAIL`` on each side (p50: 6): the median of a handful is already a fair estimate of where
  the unit's latencies lie, and smaller units lie closer in time, so more of the noise reaches both
  sides. Under a CPU hog switched on and off at random, 60 s at 50 req/s, the p50 intervals' half-width
  had a median of 0.040 (log) at 6 requests a side against 0.044 at 20, and a maximum of 0.047
  against 0.115 (benchmarks/README.md);
- a unit never holds pairs of two segments (``segment``: the services were restarted between them), so
  each unit compares one pair of processes;
- per unit, the log of candidate / baseline of the percentile of its requests;
- the estimate is the Hodges-Lehmann estimate of those log-ratios (the median of their pairwise
  averages) and the interval the exact Wilcoxon signed-rank interval. It assumes only that each
  log-ratio is as likely to come out above the true change as below it. Which side ran first in a
  pair is random, so with no change that holds whatever the machine does, also when a neighbour
  starts during one side's block: such a unit is an outlier, and the rank statistic gives an
  outlier no more weight than any other unit. Fewer than ``MIN_UNITS`` units give no verdict.

The decision is ``perfbench.compare``'s (``decide``): a regression is an interval wholly beyond
``1 + threshold`` (and beyond ``min_change_ms``). The defaults differ from ``compare``'s because
the pairing removes what those are there for: ``compare``'s 10 % threshold and 1 ms floor tolerate
the drift between two runs, which here both sides share; the threshold is the smallest change
worth a verdict (5 %), and there is no floor.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ..errors import ConfigError
from . import stats as st
from .core import (
    DEFAULT_CONFIDENCE,
    IMPROVEMENT,
    INCONCLUSIVE,
    NO_CHANGE,
    PERCENTILES,
    REGRESSION,
    Comparison,
    Row,
    Rule,
    decide,
)

BASELINE, CANDIDATE = "baseline", "candidate"
SIDES = (BASELINE, CANDIDATE)
AB_STATS = ("p50", "p95", "p99")
AB_THRESHOLD = 0.05
AB_MIN_CHANGE_MS = 0.0
MIN_UNITS = 6  # below this the signed-rank interval cannot reach 95 %: [min, max] of 6 covers 96.9 %
INTERVAL = "signed-rank CI"


CENTRAL = (0.25, 0.75)  # percentiles in this range are central: CENTRAL_TAIL requests either side of them
CENTRAL_TAIL = 3


def need_for(p: float) -> int:
    """Requests a unit needs on each side for its own p-percentile: CENTRAL_TAIL either side of a central
    one (p50: 6), MIN_TAIL beyond a tail one (p95: 200)."""
    tail = CENTRAL_TAIL if CENTRAL[0] <= p <= CENTRAL[1] else st.MIN_TAIL
    return math.ceil(round(tail / min(p, 1 - p), 9))  # round: 1 - 0.9 is 0.09999...


def units(pair_counts: list[tuple[int, int, int]], need: int,
          segment_of: dict[int, int] | None = None) -> list[list[int]]:
    """Consecutive pairs merged until both sides of each unit have ``need`` requests.

    ``pair_counts``: (pair, baseline requests, candidate requests) in time order. A short last unit is
    merged into the one before it (dropped if it is the only one). ``segment_of``: each pair's segment
    (an A/B run whose services were restarted between segments): no unit holds pairs of two segments,
    so each unit compares one pair of processes; a segment too short for a unit of its own joins the
    unit before it (the first segment: the unit after it).
    """
    if segment_of and len({segment_of.get(p, 0) for p, _, _ in pair_counts}) > 1:
        out: list[list[int]] = []
        runs: dict[int, list[tuple[int, int, int]]] = {}
        for pc in pair_counts:
            runs.setdefault(segment_of.get(pc[0], 0), []).append(pc)
        pending: list[int] = []  # pairs of a leading segment too short for a unit
        for _segment, run in sorted(runs.items()):
            got = units(run, need)
            if got:
                got[0][:0], pending = pending, []
                out += got
            elif out:
                out[-1].extend(p for p, _, _ in run)
            else:
                pending.extend(p for p, _, _ in run)
        return out
    out = []
    cur: list[int] = []
    nb = nc = 0
    for pair, b, c in pair_counts:
        cur.append(pair)
        nb, nc = nb + b, nc + c
        if nb >= need and nc >= need:
            out.append(cur)
            cur, nb, nc = [], 0, 0
    if cur and out:
        out[-1].extend(cur)
    return out


def signed_rank_cdf(m: int) -> np.ndarray:
    """P(T+ <= t) for t = 0..m(m+1)/2: the null distribution of Wilcoxon's signed-rank statistic
    over ``m`` independent differences symmetric about 0 (exact, by the recurrence over ranks)."""
    dist = np.zeros(m * (m + 1) // 2 + 1)
    dist[0] = 1.0
    top = 0
    for rank in range(1, m + 1):
        top += rank
        shifted = np.zeros_like(dist)
        shifted[rank:top + 1] = dist[:top + 1 - rank]
        dist = (dist + shifted) / 2
    return np.cumsum(dist)


def hodges_lehmann(diffs: list[float] | np.ndarray, confidence: float) -> tuple[float, float, float]:
    """(estimate, low, high) of the centre of symmetric differences: the median of the Walsh
    averages, and the exact Wilcoxon signed-rank interval at ``confidence`` (or above: the
    statistic is discrete, and the interval never covers less than asked)."""
    d = np.asarray(diffs, dtype=np.float64)
    m = len(d)
    if m < 1:
        raise ConfigError("the signed-rank interval needs at least one difference")
    i, j = np.triu_indices(m)
    walsh = np.sort((d[i] + d[j]) / 2)
    cdf = signed_rank_cdf(m)
    # k - 1 = the largest t with P(T+ <= t) <= alpha / 2; the interval is [W(k), W(M + 1 - k)], 1-based
    k = max(int(np.searchsorted(cdf, (1 - confidence) / 2 + 1e-12, side="right")), 1)
    return float(np.median(walsh)), float(walsh[k - 1]), float(walsh[len(walsh) - k])


def _percentile(sorted_values: np.ndarray, p: float) -> float:
    n = len(sorted_values)
    return float(sorted_values[max(math.ceil(n * p), 1) - 1])  # as stats.percentile


@dataclass
class EndpointRows:
    """One endpoint's latencies (ms) by side and pair (a side without requests in a pair: an empty array)."""

    by_pair: dict[int, dict[str, np.ndarray]]
    segment_of: dict[int, int] = field(default_factory=dict)  # pair -> segment (empty: one segment)

    def pair_counts(self) -> list[tuple[int, int, int]]:
        return [(k, len(v[BASELINE]), len(v[CANDIDATE])) for k, v in sorted(self.by_pair.items())]

    def side(self, side: str, pairs: list[int] | None = None) -> np.ndarray:
        keys = sorted(self.by_pair) if pairs is None else pairs
        return np.sort(np.concatenate([self.by_pair[k][side] for k in keys]))


def endpoint_rows(rows: pl.DataFrame | pl.LazyFrame) -> dict[str, EndpointRows]:
    """Per endpoint, its latencies by pair and side (``rows``: ``endpoint``, ``side``, ``block``, ``latency_ns``;
    ``segment`` if the services were restarted between segments)."""
    lf = rows.lazy()
    segment = pl.col("segment") if "segment" in lf.collect_schema().names() else pl.lit(0)
    df = lf.select("endpoint", "side", (pl.col("block") // 2).alias("pair"),
                   (pl.col("latency_ns") / 1e6).alias("ms"), segment.cast(pl.Int64).alias("segment")).collect()
    bad = set(df["side"].unique().to_list()) - set(SIDES)
    if bad:
        raise ConfigError(f"an A/B run's side is {' or '.join(SIDES)}; found {', '.join(sorted(map(str, bad)))}")
    segment_of = {int(k): int(v) for k, v in df.group_by("pair").agg(pl.col("segment").min()).iter_rows()}
    if len(set(segment_of.values())) < 2:
        segment_of = {}
    out: dict[str, EndpointRows] = {}
    grouped = df.group_by("endpoint", "pair", "side").agg(pl.col("ms")).sort("endpoint", "pair", "side")
    for endpoint, pair, side, ms in grouped.iter_rows():
        out.setdefault(str(endpoint), EndpointRows({}, segment_of)).by_pair.setdefault(int(pair), {})[side] = (
            np.asarray(ms, dtype=np.float64))
    empty = np.zeros(0, dtype=np.float64)
    for e in list(out):  # a pair with requests on one side only (short blocks, a light request) is kept:
        pairs = {k: {s: v.get(s, empty) for s in SIDES} for k, v in out[e].by_pair.items()}
        out[e].by_pair = pairs  # units merge pairs until both sides have enough
        if not any(len(v[BASELINE]) for v in pairs.values()) or not any(len(v[CANDIDATE]) for v in pairs.values()):
            del out[e]
    return out


def unit_log_ratios(rows: EndpointRows, p: float) -> tuple[list[list[int]], list[float]]:
    """The units for percentile p and, per unit, log(candidate / baseline) of its percentile."""
    us = units(rows.pair_counts(), need_for(p), rows.segment_of)
    logs = []
    for u in us:
        b, c = _percentile(rows.side(BASELINE, u), p), _percentile(rows.side(CANDIDATE, u), p)
        logs.append(math.log(max(c, st.EPS_MS)) - math.log(max(b, st.EPS_MS)))
    return us, logs


def unit_frame(rows: pl.DataFrame | pl.LazyFrame, stat: str = "p50") -> pl.DataFrame:
    """Per endpoint, the units the verdict compares for ``stat`` (``unit_log_ratios``) in time order: when the
    unit starts (``t_s``, s since the run's start, its first request's intended time; null without
    ``intended_ns``), its first pair and number of pairs, each side's requests and percentile (ms), and the
    ratio candidate / baseline whose logs the signed-rank interval is taken over."""
    if stat not in PERCENTILES:
        raise ConfigError(f"unknown statistic {stat!r} for an A/B run; use {', '.join(PERCENTILES)}")
    p = PERCENTILES[stat]
    lf = rows.lazy()
    starts: dict[int, int] = {}
    if "intended_ns" in lf.collect_schema().names():
        starts = {int(k): int(v) for k, v in lf.group_by((pl.col("block") // 2).alias("pair")).agg(
            pl.col("intended_ns").min()).collect().iter_rows()}
    out = []
    for endpoint, er in endpoint_rows(lf).items():
        us, logs = unit_log_ratios(er, p)
        for i, (u, lg) in enumerate(zip(us, logs, strict=True)):
            b, c = er.side(BASELINE, u), er.side(CANDIDATE, u)
            t0 = starts.get(u[0])
            out.append({"endpoint": endpoint, "unit": i, "segment": er.segment_of.get(u[0], 0),
                        "first_pair": u[0], "pairs": len(u),
                        "t_s": None if t0 is None else t0 / 1e9, "n_baseline": len(b), "n_candidate": len(c),
                        "baseline_ms": _percentile(b, p), "candidate_ms": _percentile(c, p), "ratio": math.exp(lg)})
    schema = {"endpoint": pl.String, "unit": pl.Int64, "segment": pl.Int64, "first_pair": pl.Int64,
              "pairs": pl.Int64, "t_s": pl.Float64, "n_baseline": pl.Int64, "n_candidate": pl.Int64, "baseline_ms": pl.Float64,
              "candidate_ms": pl.Float64, "ratio": pl.Float64}
    return pl.DataFrame(out, schema=schema).with_columns(stat=pl.lit(stat)).sort("endpoint", "unit")


def block_ratios(rows: pl.DataFrame | pl.LazyFrame, stats: tuple[str, ...] = AB_STATS) -> pl.DataFrame:
    """Per pair of blocks, endpoint and statistic: each side's requests and percentile (ms) and the
    ratio candidate / baseline (null where a block has too few requests for that percentile)."""
    out = []
    for endpoint, er in endpoint_rows(rows).items():
        for pair, sides in sorted(er.by_pair.items()):
            b, c = np.sort(sides[BASELINE]), np.sort(sides[CANDIDATE])
            for stat in stats:
                p = PERCENTILES[stat]
                vb = _percentile(b, p) if st.enough_for(len(b), p) else None
                vc = _percentile(c, p) if st.enough_for(len(c), p) else None
                out.append({"pair": pair, "endpoint": endpoint, "stat": stat, "n_baseline": len(b),
                            "n_candidate": len(c), "baseline_ms": vb, "candidate_ms": vc,
                            "ratio": vc / vb if vb and vc is not None else None})
    schema = {"pair": pl.Int64, "endpoint": pl.String, "stat": pl.String, "n_baseline": pl.Int64,
              "n_candidate": pl.Int64, "baseline_ms": pl.Float64, "candidate_ms": pl.Float64, "ratio": pl.Float64}
    return pl.DataFrame(out, schema=schema).sort("endpoint", "stat", "pair")


@dataclass
class ABComparison:
    """The paired comparison: ``comparison`` (rows as ``perfbench compare`` makes them, so every
    renderer works), the four-way ``verdict``, and the per-pair ratios in ``blocks``."""

    comparison: Comparison
    blocks: pl.DataFrame  # pair, endpoint, stat, n_*, baseline_ms, candidate_ms, ratio
    pairs: int
    design: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        c = self.comparison
        if c.refused:
            return INCONCLUSIVE
        if c.regressions:
            return REGRESSION
        if c.improvements:
            return IMPROVEMENT
        if any(r.gating and not r.conclusive for r in c.rows):
            return INCONCLUSIVE
        return NO_CHANGE

    @property
    def exit_code(self) -> int:
        return self.comparison.exit_code

    def to_dict(self) -> dict[str, Any]:
        return {**self.comparison.to_dict(), "verdict": self.verdict, "pairs": self.pairs, "design": self.design,
                "blocks": self.blocks.to_dicts()}


def from_dict(d: dict[str, Any]) -> ABComparison:
    """The ``ABComparison`` an A/B run wrote (``ab.json``, ``ABComparison.to_dict``): its verdict as judged then."""
    from dataclasses import fields

    from .core import parse_rule

    try:
        names = {f.name for f in fields(Row)}
        rows = [Row(**{k: v for k, v in r.items() if k in names}) for r in d["rows"]]
        comparison = Comparison(d["baseline"]["label"], d["current"]["label"], d["baseline"]["source"],
                                d["current"]["source"], rows, list(d.get("warnings") or []),
                                list(d.get("notes") or []), [parse_rule(r) for r in d.get("rules") or []],
                                float(d["threshold"]), float(d["confidence"]), int(d.get("n_boot") or 0),
                                int(d.get("seed") or 0), str(d.get("method") or ""), dict(d.get("machines") or {}),
                                list(d.get("noisy") or []), bool(d.get("judge_noisy")))
        blocks = pl.DataFrame(d.get("blocks") or [], schema={
            "pair": pl.Int64, "endpoint": pl.String, "stat": pl.String, "n_baseline": pl.Int64,
            "n_candidate": pl.Int64, "baseline_ms": pl.Float64, "candidate_ms": pl.Float64, "ratio": pl.Float64})
        return ABComparison(comparison, blocks, int(d["pairs"]), dict(d.get("design") or {}))
    except (KeyError, TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        raise ConfigError(f"not an A/B verdict (ab.json as perfbench ab writes it): {type(exc).__name__}: "
                          f"{str(exc)[:200]}") from None


def _check(threshold: float, confidence: float, min_change_ms: float) -> None:
    problems = []
    if not 0 <= threshold < 10:
        problems.append(f"threshold must be a fraction between 0 and 10 (0.05 = 5%), got {threshold}")
    if not 0.5 <= confidence < 1:
        problems.append(f"confidence must be between 0.5 and 1 (e.g. 0.95), got {confidence}")
    if min_change_ms < 0:
        problems.append(f"min_change_ms must be >= 0, got {min_change_ms}")
    if problems:
        raise ConfigError("cannot compare the A/B run", problems)


def paired_compare(rows: pl.DataFrame | pl.LazyFrame, *, baseline: str = BASELINE, candidate: str = CANDIDATE,
                   stats: tuple[str, ...] = AB_STATS, threshold: float = AB_THRESHOLD,
                   confidence: float = DEFAULT_CONFIDENCE, rules: list[Rule] | None = None,
                   min_change_ms: float = AB_MIN_CHANGE_MS, warnings: list[str] | None = None,
                   notes: list[str] | None = None, design: dict[str, Any] | None = None,
                   noisy: list[str] | None = None, judge_noisy: bool = False) -> ABComparison:
    """The paired verdict of an A/B run's rows (see the module docstring). Deterministic.

    ``rules`` as in ``perfbench.compare``, on percentiles only (both sides of an A/B run are sent the
    same rate, so throughput says nothing). Without rules every statistic gates at ``threshold``.
    ``noisy``: why the run is compromised (``perfbench.compare.noise``): no verdict unless ``judge_noisy``.
    """
    _check(threshold, confidence, min_change_ms)
    ruled = {r.stat: r for r in rules or []}
    for stat, rule in ruled.items():
        if stat not in PERCENTILES:
            raise ConfigError(f"--fail-on {rule}: an A/B run gates on latency percentiles "
                              f"({', '.join(PERCENTILES)}); both sides are sent the same rate")
    for stat in stats:
        if stat not in PERCENTILES:
            raise ConfigError(f"unknown statistic {stat!r} for an A/B run; use {', '.join(PERCENTILES)}")
    wanted = list(dict.fromkeys([*stats, *ruled]))
    per_endpoint = endpoint_rows(rows)
    if not per_endpoint:
        raise ConfigError("nothing to compare: no endpoint has requests on both sides of one pair of blocks")
    out_rows: list[Row] = []
    pairs_seen = 0
    for endpoint, er in per_endpoint.items():
        pairs_seen = max(pairs_seen, len(er.by_pair))
        xb, xc = er.side(BASELINE), er.side(CANDIDATE)
        for stat in wanted:
            p = PERCENTILES[stat]
            limit = ruled[stat].limit if stat in ruled else threshold
            gating = stat in ruled if ruled else True
            vb, vc = _percentile(xb, p), _percentile(xc, p)
            us, logs = unit_log_ratios(er, p)
            if len(us) < MIN_UNITS:
                note = (f"too few requests for {stat}: {len(er.by_pair)} pairs of blocks make {len(us)} units of "
                        f"{need_for(p)} requests a side; need {MIN_UNITS} (a longer run, a higher rate or longer "
                        "blocks)")
                out_rows.append(Row(endpoint, stat, vb, vc, vc / vb if vb else None, None, None, "none", NO_CHANGE,
                                    limit, gating, False, len(xb), len(xc), note))
                continue
            est, lo, hi = hodges_lehmann(logs, confidence)
            ratio, low, high = math.exp(est), math.exp(lo), math.exp(hi)
            verdict, conclusive = decide(stat, low, high, limit, baseline=vb, floor=min_change_ms)
            note = f"{len(us)} units of {len(er.by_pair) / len(us):.3g} pairs" if len(us) < len(er.by_pair) else ""
            if not conclusive:
                note = (note + "; " if note else "") + "inconclusive: the interval reaches beyond the threshold"
            out_rows.append(Row(endpoint, stat, vb, vc, ratio, low, high, INTERVAL, verdict, limit, gating,
                                conclusive, len(xb), len(xc), note))
    method = (f"paired A/B over {pairs_seen} pairs of alternating blocks: per unit of pairs the log-ratio of the "
              f"percentiles, Hodges-Lehmann estimate, exact Wilcoxon signed-rank interval; confidence "
              f"{confidence:g}" + (f"; latency changes under {min_change_ms:g} ms get no verdict"
                                   if min_change_ms else ""))
    comparison = Comparison(baseline, candidate, "perfbench ab", "perfbench ab", out_rows, list(warnings or []),
                            list(notes or []), list(ruled.values()) or [Rule(s, threshold) for s in wanted],
                            threshold, confidence, 0, 0, method, noisy=list(noisy or []), judge_noisy=judge_noisy)
    return ABComparison(comparison, block_ratios(rows, tuple(wanted)), pairs_seen, dict(design or {}))


def headline(ab: ABComparison) -> str:
    """The verdict in one line (``compare``'s headline, and the paired verdict's fourth case)."""
    from .render import headline as compare_headline

    if ab.comparison.refused:
        return compare_headline(ab.comparison)
    if ab.verdict == INCONCLUSIVE:
        rows = [r for r in ab.comparison.rows if r.gating and not r.conclusive]
        where = ", ".join(f"{r.endpoint} {r.stat}" for r in rows[:6]) + (" ..." if len(rows) > 6 else "")
        return f"INCONCLUSIVE: {where}: the interval reaches beyond the threshold, or too few requests"
    return compare_headline(ab.comparison)


def to_text(ab: ABComparison) -> str:
    """``compare``'s table, headed by the paired verdict and the design."""
    from .render import noise_line
    from .render import to_text as compare_text

    c = ab.comparison
    body = compare_text(c).splitlines()[len(c.warnings) + 2:]  # its warnings, labels and headline: replaced
    block = ab.design.get("block_s")
    head = [f"A/B: candidate {c.current} against baseline {c.baseline}: {ab.pairs} pairs of blocks"
            + (f" of {block:g} s" if isinstance(block, int | float) else "") + ", order random (ABBA or BAAB)"
            + _segments_text(ab.design.get("segments")),
            headline(ab)]
    noise = noise_line(c)
    if noise:
        head.append(noise)
        body = body[1:] if body and body[0] == noise else body
    return "\n".join([*(f"WARNING: {w}" for w in c.warnings), *head, *body])


def _segments_text(segments: Any) -> str:
    """", in 2 segments, both services restarted between them, each started first in turn" (or "")."""
    if not isinstance(segments, list) or len(segments) < 2:
        return ""
    return f", in {len(segments)} segments, both services restarted between them, each started first in turn"


def to_markdown(ab: ABComparison) -> str:
    from .render import to_markdown as compare_markdown

    icon = {REGRESSION: "🔴", IMPROVEMENT: "🟢", NO_CHANGE: "⚪", INCONCLUSIVE: "🟡"}
    lines = compare_markdown(ab.comparison).splitlines()
    lines[0] = f"### perfbench ab: {icon[ab.verdict]} {headline(ab)}"
    return "\n".join(lines) + "\n"


def to_json(ab: ABComparison) -> str:
    return json.dumps(ab.to_dict(), indent=2, default=str) + "\n"
