"""Where the time went: the breakdown of ``perfbench.analysis.explain.breakdown_table`` as stacked bars.

    ex = explain.explain_path(run.path)
    time_breakdown(ex["table"])

One bar per endpoint (all its requests), per endpoint's slowest requests (at or above its p99) and for the
slowest 1% of all requests: the mean time per request of each part (outside the service, database, the
code between SQL statements, waiting for a pooled database connection, cache, downstream calls, waiting for the event loop, garbage collection, the service's own code), stacked, so a
bar's length is the mean latency of the requests the agent timed. The tooltip gives each part's share.
"""

from __future__ import annotations

import altair as alt
import polars as pl

from .base import WIDTH, _empty, _frame, _title

# the parts in stacking order and their colours (perfbench.analysis.explain.PARTS)
PART_COLOURS: dict[str, str] = {
    "database": "#4c78a8",
    "between SQL statements": "#9ecae9",
    "waiting for a database connection": "#54a24b",
    "cache": "#72b7b2",
    "downstream calls": "#b279a2",
    "waiting for the event loop": "#e45756",
    "garbage collection": "#eeca3b",
    "the service's own code": "#f58518",
    "outside the service": "#bab0ac",
}
_KEYS = {"db": "database", "gaps": "between SQL statements", "pool": "waiting for a database connection", "cache": "cache", "downstream": "downstream calls", "loop": "waiting for the event loop",
         "gc": "garbage collection", "own": "the service's own code", "outside": "outside the service"}


def time_breakdown(table: pl.DataFrame, *, title: str = "Where the time went (mean per request)",
                   width: int = WIDTH) -> alt.Chart:
    """Stacked horizontal bars of the mean ms per part for each group of ``table`` (the frame of
    ``perfbench.analysis.explain.breakdown_table``); groups the agent timed no request of are left out."""
    cols = ["scope", "endpoint", "timed", *(f"{k}_ms" for k in _KEYS), *(f"{k}_share" for k in _KEYS)]
    df = _frame(table, cols, "time_breakdown", source="the frame perfbench.analysis.explain.breakdown_table() returns")
    if df is None or df.filter(pl.col("timed") > 0).height == 0:
        return _empty("no request was timed by the agent", title, width)
    groups = df.filter(pl.col("timed") > 0).with_columns(
        pl.when(pl.col("scope") == "all").then(pl.col("endpoint"))
        .when(pl.col("scope") == "p99").then(pl.col("endpoint") + " (p99 and above)")
        .otherwise(pl.lit("ALL (") + pl.col("scope") + pl.lit(")")).alias("group"))
    order = groups["group"].to_list()
    long = pl.concat([groups.select("group", pl.lit(name).alias("part"), pl.col(f"{key}_ms").alias("ms"),
                                    (pl.col(f"{key}_share") * 100).alias("share_pct"))
                      for key, name in _KEYS.items()])
    parts = list(PART_COLOURS)
    long = long.with_columns(pl.col("part").replace_strict({p: i for i, p in enumerate(parts)}).alias("order"))
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("group:N", sort=order, title=None),
        x=alt.X("ms:Q", stack="zero", title="mean time per request (ms)"),
        color=alt.Color("part:N", scale=alt.Scale(domain=parts, range=[PART_COLOURS[p] for p in parts]), sort=parts,
                        legend=alt.Legend(title="part")),
        order=alt.Order("order:Q"),
        tooltip=["group:N", "part:N", alt.Tooltip("ms:Q", format=".2f"), alt.Tooltip("share_pct:Q", format=".1f",
                                                                                   title="share %")],
    ).properties(width=width, height=max(60, 22 * len(order)), title=_title(title))
