"""Headline figures of the experiments whose headline is not a run's summary (``nb.headline``): a stress
search, a spike, a comparison. Each is a pure function of the frame the report's table shows, and writes
its numbers as the table writes them (``tables.number_text``): a figure in the headline is a cell of a
table below it.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from .tables import number_text


def _ms(v: Any) -> str:
    return "-" if v is None else f"{number_text(v)} ms"


def comparison(shown: pl.DataFrame, *, top: int = 3) -> str:
    """A regression report's headline: the statistics that changed beyond the threshold (else the largest
    changes), each with its baseline, current value, change and interval: cells of the report's table
    (``compare.render.table_frame``), written as the table writes them."""
    if not getattr(shown, "height", 0):
        return "Nothing to compare: no endpoint and statistic in common."
    rows = shown.to_dicts()
    decided = [r for r in rows if r["verdict"] in ("regression", "improvement")]
    picked = decided or sorted((r for r in rows if r["change"] is not None),
                               key=lambda r: -abs(r["change"]))[:top]

    def value(r, v):
        return "-" if v is None else f"{number_text(v)} {'req/s' if r['stat'] == 'rps' else 'ms'}"

    def item(r):
        interval = ("no interval" if r["change_low"] is None else
                    f"interval {number_text(r['change_low'], percent=True)} to "
                    f"{number_text(r['change_high'], percent=True)}")
        change = "-" if r["change"] is None else number_text(r["change"], percent=True)
        return (f"- `{r['endpoint']}` {r['stat']}: {value(r, r['baseline'])} → {value(r, r['current'])}, "
                f"change **{change}** ({interval}): {r['verdict']}")

    head = ("Beyond the threshold:" if decided else
            f"No statistic changed beyond the threshold; the largest change{'s' if len(picked) != 1 else ''}:")
    return "\n".join([head, "", *(item(r) for r in picked)])


def stress(steps: pl.DataFrame, verdict: dict[str, Any]) -> str:
    """The headline of a stress report: the highest step that held and the step that ended the search, each
    with its offered and achieved rate, p99 and error rate: cells of ``experiments.stress.steps_frame``
    (``steps``, the table *Evidence per step*)."""
    rows = steps.to_dicts() if steps.height else []
    if not rows:
        return "No step ran."

    def step(r: dict[str, Any]) -> str:
        return (f"step {r['step']}: **{number_text(r['offered_rps'])} req/s** offered, "
                f"{'-' if r['achieved_rps'] is None else number_text(r['achieved_rps'])} req/s achieved, "
                f"p99 **{_ms(r['p99_ms'])}**, errors {number_text(r['error_rate'] or 0, percent=True)}")

    held = [r for r in rows if not r["broken"] and not r["saturated"]]
    ended = next((r for r in rows if r["broken"] or r["saturated"]), None)
    first, last = rows[0]["offered_rps"], rows[-1]["offered_rps"]
    span = (f"at {number_text(first)} req/s" if len(rows) == 1 else
            f"from {number_text(first)} to {number_text(last)} req/s")
    lines = [f"{len(rows)} step{'s' if len(rows) != 1 else ''} of {rows[0]['duration_s']:g} s measured "
             f"(after each step's warm-up of {verdict.get('warmup_s') or 0:g} s), {span} offered (the table "
             "*Evidence per step* below).", ""]
    lines.append("Highest rate that held: " + (step(held[-1]) if held else "none") + ".")
    if ended is not None:
        why = (f"broke {ended['broken']}" if ended["broken"] else "the load generator saturated")
        lines += ["", f"Ended the search ({why}): " + step(ended) + "."]
    return "\n".join(lines)


def spike(stages: pl.DataFrame, recovery: dict[str, Any], bucket_s: float) -> str:
    """A spike report's headline: the recovery (``analysis.trends.spike_recovery``), then the p95 and errors
    of the baseline (after the warm-up), the spike and the recovery: cells of ``analysis.trends.stage_table``
    (``stages``, the table *Per stage*)."""
    rec = recovery
    if rec["baseline_ms"] is None:
        first = "No baseline before the spike: nothing to recover to."
    elif rec["recovered"]:
        first = (f"Recovered **{rec['recovery_s']:g} s** after the spike ended: the p95 of each "
                 f"{bucket_s:g} s bucket back under {_ms(rec['limit_ms'])} (the median bucket p95 before the spike, "
                 f"{_ms(rec['baseline_ms'])}, + {rec['tolerance']:.0%}) for {rec['hold']} buckets in a row.")
    else:
        first = (f"**Not recovered** by the end of the run: the p95 of each {bucket_s:g} s bucket did not stay "
                 f"under {_ms(rec['limit_ms'])} (the median bucket p95 before the spike, {_ms(rec['baseline_ms'])}, "
                 f"+ {rec['tolerance']:.0%}) for {rec['hold']} buckets in a row.")
    rows = [r for r in stages.to_dicts() if not str(r["name"]).endswith("(warm-up)")] if stages.height else []
    if not rows:
        return first
    parts = ", ".join(f"{r['name']} {_ms(r['p95_ms'])}" for r in rows)
    errors = " / ".join(number_text(r["errors"]) for r in rows)
    warm = [r for r in stages.to_dicts() if str(r["name"]).endswith("(warm-up)")] if stages.height else []
    left = (f"; the first {warm[0]['end_s']:g} s, the warm-up, are a row of their own" if warm else "")
    return (first + "\n\n" + f"Per stage (the table *Per stage* below{left}): p95 {parts}; errors "
            + " / ".join(str(r["name"]) for r in rows) + f": {errors}.")
