"""Where a request's time went: the client's latency joined to the agent's server-side records.

Pure Polars functions over a run's frames (``read_inputs`` is the one that reads files):

- ``requests``: the engine's rows (request_id, endpoint, latency_ns);
- ``server``: server_requests.parquet, the agent's timing of each handler (wall_ns, cpu_ns, gc_ns,
  lag_ns; see ``perfbench.agent.timing``);
- ``queries``: queries.parquet (request_id, fingerprint, statement, duration_ns; ``call_site`` when the
  agent records one); ``cache``: cache.parquet (its ``duration_ns`` when the agent records one, else
  cache time is 0); ``downstream``: outbound calls the service made (request_id, duration_ns), when
  the agent records them.

Per request (:func:`request_breakdown`) the latency splits into ``outside_ms`` (latency minus the
handler's wall time: the network, queueing before the handler, the load generator) and the server
time ``server_ms`` = ``db_ms + gaps_ms + pool_ms + cache_ms + downstream_ms + loop_ms + gc_ms + own_ms``: the
statements' own time, the short gaps (up to ``GAP_MAX_MS``) between one statement's end and the next
one's start (the code around each statement: in an N+1 loop, the ORM building the next statement and
reading rows into objects; taken out of the remainder, never out of a measured part), waiting for a
connection from a SQLAlchemy pool (``pool_ns`` of server_requests.parquet), cache, downstream
calls, the event loop blocked, GC, and ``own_ms`` (the service's own code), what remains. The sentences
count the statements and the gaps between them together as "database", and say how it divides. The
measured parts can overlap (a GC pause inside a
statement, statements run concurrently): when they add up to more than the wall time they are scaled
down to it, in proportion, and ``overlap_ms`` says by how much, so the parts always add up to the
server time. Per endpoint, for the endpoint's slowest requests (at or above its p99) and for the
slowest 1% of all requests, :func:`breakdown_table` gives the mean of each part and its share, and
:func:`explain` names the dominant cause with its evidence.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import ConfigError
from ..numbers import ms_text, number_text
from ..rundir import CACHE, DOWNSTREAM, GAUGES, LOOP_BLOCKS, QUERIES, SERVER_REQUESTS
from . import pools
from .results import N_PLUS_ONE_THRESHOLD, pct

# the parts of a request's latency, in the order they are shown, and their names in sentences
PARTS: dict[str, str] = {
    "db": "database",
    "gaps": "between SQL statements",
    "pool": "waiting for a database connection",
    "cache": "cache",
    "downstream": "downstream calls",
    "loop": "waiting for the event loop",
    "gc": "garbage collection",
    "own": "the service's own code",
    "outside": "outside the service",
}
SERVER_PARTS = ("db", "gaps", "pool", "cache", "downstream", "loop", "gc", "own")
CHATTY_STATEMENTS = 10  # this many statements per request (no N+1 among them) is chatty SQL
SLOW_STATEMENT_SHARE = 0.5  # one statement taking this share of a request's DB time is "one slow statement"
CPU_BOUND = 0.7  # own code that is this much CPU is CPU in the service
MIN_COVERAGE = 0.5  # under this share of requests timed by the agent, the verdict is inconclusive
LIST_SHARE = 0.05  # parts under this share of the latency are left out of the sentence
SQL_CAUSE_SHARE = 0.2  # an N+1 or chatty SQL with this share is the cause even when own code or the loop is larger
DEFAULT_FRACTION = 0.01
GAP_MAX_MS = 5.0  # a gap between two statements up to this long is the code around them (an ORM's work per row)


def read_inputs(path: str | Path) -> dict[str, pl.LazyFrame | None]:
    """The agent's files of a run directory as LazyFrames (None for a file the run does not have):
    ``server``, ``queries``, ``cache``, ``downstream``, ``blocks`` (the event loop's blocks), ``gauges``
    (pools and queues over time)."""
    p = Path(path)

    def scan(name: str) -> pl.LazyFrame | None:
        return pl.scan_parquet(p / name) if (p / name).exists() else None

    return {"server": scan(SERVER_REQUESTS), "queries": scan(QUERIES), "cache": scan(CACHE),
            "downstream": scan(DOWNSTREAM), "blocks": scan(LOOP_BLOCKS), "gauges": scan(GAUGES)}


def _sum_by_request(lf: pl.LazyFrame | None, name: str, count_name: str, *, where: pl.Expr | None = None
                    ) -> pl.LazyFrame | None:
    """Per request id: the summed ``duration_ns`` (ms, as ``name``; 0 without the column or where it is null)
    and the rows (those ``where`` says). With a ``source`` column (cache events: the service's own
    hit/miss and a hooked client's command can both record one lookup), the count is the largest of any
    one source's, so a lookup is not counted twice."""
    if lf is None:
        return None
    cols = lf.collect_schema().names()
    src = lf.filter(pl.col("request_id").is_not_null())
    dur = (pl.col("duration_ns").sum() / 1e6) if "duration_ns" in cols else pl.lit(0.0)
    count = (where.sum() if where is not None else pl.len()).cast(pl.Int64)
    if "source" not in cols:
        return src.group_by("request_id").agg(dur.cast(pl.Float64).alias(name), count.alias(count_name))
    return (src.group_by("request_id", "source").agg(dur.cast(pl.Float64).alias(name), count.alias(count_name))
            .group_by("request_id").agg(pl.col(name).sum(), pl.col(count_name).max()))


def _sql_by_request(queries: pl.LazyFrame | None) -> pl.LazyFrame | None:
    """Per request id: db_ms, gaps_ms (the gaps of at most GAP_MAX_MS between its statements),
    statements, fingerprints, the most repeated fingerprint (top_fingerprint,
    top_repetitions) and the slowest statement's ms (slowest_ms, slowest_fingerprint)."""
    if queries is None:
        return None
    q = queries.filter(pl.col("request_id").is_not_null())
    per_fp = (q.group_by("request_id", "fingerprint").agg(pl.len().cast(pl.Int64).alias("n"))
              .sort(["request_id", "n", "fingerprint"], descending=[False, True, False])
              .group_by("request_id", maintain_order=True)
              .agg(pl.col("fingerprint").first().alias("top_fingerprint"), pl.col("n").first().alias("top_repetitions")))
    if "t_ns" in q.collect_schema().names():
        # the short gaps between one statement's end and the next one's start: the code around each statement
        ends = (pl.col("t_ns") + pl.col("duration_ns")).cum_max().shift(1).over("request_id")
        gap = (pl.col("t_ns") - ends).clip(lower_bound=0).fill_null(0)
        q = q.sort("request_id", "t_ns").with_columns(
            pl.when(gap <= GAP_MAX_MS * 1e6).then(gap).otherwise(0).alias("_gap_ns"))
        gaps = (pl.col("_gap_ns").sum() / 1e6).alias("gaps_ms")
    else:
        gaps = pl.lit(0.0).alias("gaps_ms")
    totals = q.group_by("request_id").agg(
        (pl.col("duration_ns").sum() / 1e6).alias("db_ms"), gaps, pl.len().cast(pl.Int64).alias("statements"),
        pl.col("fingerprint").n_unique().cast(pl.Int64).alias("fingerprints"),
        (pl.col("duration_ns").max() / 1e6).alias("slowest_ms"),
        pl.col("fingerprint").sort_by("duration_ns", descending=True).first().alias("slowest_fingerprint"))
    return totals.join(per_fp, on="request_id", how="left")


def request_breakdown(requests: pl.LazyFrame | pl.DataFrame, server: pl.LazyFrame | pl.DataFrame | None,
                      queries: pl.LazyFrame | pl.DataFrame | None = None, cache: pl.LazyFrame | pl.DataFrame | None = None,
                      downstream: pl.LazyFrame | pl.DataFrame | None = None) -> pl.DataFrame:
    """Every request the engine sent (a left join: none lost) with its latency split into parts, in ms.

    Columns: request_id, endpoint, route (the server's), latency_ms, timed (the agent timed it),
    server_ms (the handler's wall time), outside_ms, db_ms, gaps_ms, pool_ms (waiting for a pooled
    connection), statements, fingerprints, top_fingerprint,
    top_repetitions, slowest_ms, slowest_fingerprint, cache_ms, cache_misses, downstream_ms,
    downstream_calls, loop_ms, gc_ms, gc_pauses, own_ms, cpu_ms (sync handlers), overlap_ms, mode.
    The part columns are null for a request the agent did not time.
    """
    req = requests.lazy().select("request_id", "endpoint", (pl.col("latency_ns") / 1e6).alias("latency_ms"))
    if server is None:
        srv = pl.LazyFrame(schema={"request_id": pl.Int64, "route": pl.String, "wall_ns": pl.Int64,
                                   "cpu_ns": pl.Int64, "gc_ns": pl.Int64, "gc_pauses": pl.Int64,
                                   "lag_ns": pl.Int64, "mode": pl.String, "pool_ns": pl.Int64})
    else:  # a request id seen twice (a retried request id) keeps its first timing
        srv = server.lazy()
        if "pool_ns" not in srv.collect_schema().names():  # an agent without pool timing
            srv = srv.with_columns(pl.lit(None, pl.Int64).alias("pool_ns"))
        srv = (srv.filter(pl.col("request_id").is_not_null()).sort("t_ns")
               .unique("request_id", keep="first")
               .select("request_id", pl.col("endpoint").alias("route"), "wall_ns", "cpu_ns", "gc_ns", "gc_pauses",
                       "lag_ns", "mode", "pool_ns"))
    out = req.join(srv, on="request_id", how="left").with_columns(pl.col("wall_ns").is_not_null().alias("timed"))
    joins = [(_sql_by_request(None if queries is None else queries.lazy()),
              {"db_ms": 0.0, "gaps_ms": 0.0, "statements": 0, "fingerprints": 0, "slowest_ms": 0.0}),
             (_sum_by_request(None if cache is None else cache.lazy(), "cache_ms", "cache_misses",
                              where=pl.col("kind") == "miss"), {"cache_ms": 0.0, "cache_misses": 0}),
             (_sum_by_request(None if downstream is None else downstream.lazy(), "downstream_ms", "downstream_calls"),
              {"downstream_ms": 0.0, "downstream_calls": 0})]
    for frame, zeros in joins:
        if frame is not None:
            out = out.join(frame, on="request_id", how="left")
        else:
            out = out.with_columns(*[pl.lit(None, pl.Float64 if isinstance(v, float) else pl.Int64).alias(k)
                                     for k, v in zeros.items()])
        out = out.with_columns(*[pl.col(k).fill_null(v) for k, v in zeros.items()])
    for col in ("top_fingerprint", "slowest_fingerprint"):
        if col not in out.collect_schema().names():
            out = out.with_columns(pl.lit(None, pl.String).alias(col))
    if "top_repetitions" not in out.collect_schema().names():
        out = out.with_columns(pl.lit(None, pl.Int64).alias("top_repetitions"))
    wall = pl.col("wall_ns") / 1e6
    out = out.with_columns(
        wall.alias("server_ms"), (pl.col("lag_ns").fill_null(0) / 1e6).alias("loop_ms"),
        (pl.col("gc_ns") / 1e6).alias("gc_ms"), (pl.col("cpu_ns") / 1e6).alias("cpu_ms"),
        (pl.col("pool_ns").fill_null(0) / 1e6).alias("pool_ms"))
    parts = ["db_ms", "pool_ms", "cache_ms", "downstream_ms", "loop_ms", "gc_ms"]
    measured = pl.sum_horizontal(*parts)
    scale = pl.when(measured > pl.col("server_ms")).then(pl.col("server_ms") / measured).otherwise(1.0)
    out = out.with_columns(measured.alias("_measured"), scale.alias("_scale")).with_columns(
        *[(pl.col(p) * pl.col("_scale")).alias(p) for p in parts],
        (pl.col("_measured") - pl.col("server_ms")).clip(lower_bound=0).alias("overlap_ms"),
    ).with_columns(
        (pl.col("server_ms") - pl.sum_horizontal(*parts)).clip(lower_bound=0).alias("_rest"),
        (pl.col("latency_ms") - pl.col("server_ms")).clip(lower_bound=0).alias("outside_ms"),
    ).with_columns(  # the gaps between statements come out of the remainder (never out of a measured part)
        pl.min_horizontal("gaps_ms", "_rest").alias("gaps_ms"),
    ).with_columns((pl.col("_rest") - pl.col("gaps_ms")).alias("own_ms"))
    # an untimed request has no parts: its zeros would read as "no time there"
    untimed = [p for p in (*parts, "gaps_ms", "own_ms", "outside_ms", "overlap_ms", "gc_pauses")]
    out = out.with_columns(*[pl.when(pl.col("timed")).then(pl.col(c)).otherwise(None).alias(c) for c in untimed])
    return (out.select("request_id", "endpoint", "route", "latency_ms", "timed", "server_ms", "outside_ms", "db_ms",
                       "gaps_ms", "pool_ms", "statements", "fingerprints", "top_fingerprint", "top_repetitions", "slowest_ms",
                       "slowest_fingerprint", "cache_ms", "cache_misses", "downstream_ms", "downstream_calls",
                       "loop_ms", "gc_ms", "gc_pauses", "own_ms", "cpu_ms", "overlap_ms", "mode")
            .sort("request_id").collect())


def block_suspects(server: pl.LazyFrame | pl.DataFrame | None, blocks: pl.LazyFrame | pl.DataFrame | None
                   ) -> pl.DataFrame:
    """Which server routes were in flight while the event loop was blocked (loop_blocks.parquet: blocks of
    5 ms or more): per route, ``blocked_ms`` (the blocked time during which one of its requests was in
    flight), ``blocks`` (how many blocks it overlapped) and ``share`` of all blocked time, largest first.

    The loop's blocker is in flight during each of its own blocks, so it tends to the top; a route that
    only waited through blocks shows a smaller share. A hint, not a proof: the sampler cannot see who ran.
    """
    schema = {"route": pl.String, "blocked_ms": pl.Float64, "blocks": pl.UInt32, "share": pl.Float64}
    if server is None or blocks is None:
        return pl.DataFrame(schema=schema)
    b = (blocks.lazy().with_row_index("block").select("block", pl.col("t_ns").alias("b_start"),
                                                       (pl.col("t_ns") + pl.col("duration_ns")).alias("b_end"))
         .collect())
    total = float((b["b_end"] - b["b_start"]).sum()) if b.height else 0.0
    if not total:
        return pl.DataFrame(schema=schema)
    r = (server.lazy().filter(pl.col("endpoint").is_not_null())
         .select(pl.col("endpoint").alias("route"), pl.col("t_ns").alias("r_start"),
                 (pl.col("t_ns") + pl.col("wall_ns")).alias("r_end")).collect())
    overlap = (b.join_where(r, pl.col("r_start") < pl.col("b_end"), pl.col("r_end") > pl.col("b_start"))
               .with_columns((pl.min_horizontal("b_end", "r_end") - pl.max_horizontal("b_start", "r_start"))
                             .alias("ns"))
               .group_by("block", "route").agg(pl.col("ns").max()))
    return (overlap.group_by("route").agg((pl.col("ns").sum() / 1e6).alias("blocked_ms"),
                                          pl.len().cast(pl.UInt32).alias("blocks"))
            .with_columns((pl.col("blocked_ms") * 1e6 / total).alias("share"))
            .sort(["blocked_ms", "route"], descending=[True, False]).select(list(schema)))


def _group_rows(per: pl.DataFrame, fraction: float) -> list[tuple[str, str, pl.DataFrame, Any]]:
    """(scope, endpoint, its requests, the latency threshold) for each group the table shows."""
    groups: list[tuple[str, str, pl.DataFrame, Any]] = []
    for (endpoint,), rows in sorted(per.group_by("endpoint"), key=lambda g: str(g[0][0])):
        groups.append(("all", str(endpoint), rows, None))
        p99 = rows.select(pct("latency_ms", 0.99)).item()
        groups.append(("p99", str(endpoint), rows.filter(pl.col("latency_ms") >= p99), p99))
    if per.height:
        n = max(1, math.ceil(per.height * fraction))
        slow = per.sort(["latency_ms", "request_id"], descending=[True, False]).head(n)
        groups.append((f"slowest {fraction * 100:g}%", "ALL", slow, slow["latency_ms"].min()))
    return groups


def breakdown_table(per: pl.DataFrame, fraction: float = DEFAULT_FRACTION) -> pl.DataFrame:
    """Per endpoint (``scope`` "all"), its slowest requests (``scope`` "p99": at or above its p99) and
    the slowest ``fraction`` of all requests (``scope`` "slowest 1%", endpoint "ALL"):

    requests, timed (by the agent), coverage, latency_p50_ms, latency_p99_ms, threshold_ms (the
    group's lowest latency for a tail), then per part the mean ms of the timed requests (``<part>_ms``)
    and its share of their total latency (``<part>_share``; the shares add up to 1), server_ms (mean),
    server_share, statements (mean per request), cpu_ms (mean; sync handlers) and overlap_ms (mean).
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    rows = []
    for scope, endpoint, g, threshold in _group_rows(per, fraction):
        t = g.filter(pl.col("timed"))
        row: dict[str, Any] = {"scope": scope, "endpoint": endpoint, "requests": g.height, "timed": t.height,
                               "coverage": t.height / g.height if g.height else 0.0,
                               "latency_p50_ms": g.select(pct("latency_ms", 0.5)).item(),
                               "latency_p99_ms": g.select(pct("latency_ms", 0.99)).item(),
                               "threshold_ms": threshold}
        # the total a timed request's parts add up to: its latency, or the server time when that is longer
        total = float((t["outside_ms"] + t["server_ms"]).sum()) if t.height else 0.0
        for part in PARTS:
            s = float(t[f"{part}_ms"].sum()) if t.height else 0.0
            row[f"{part}_ms"] = s / t.height if t.height else None
            row[f"{part}_share"] = s / total if total else None
        server = float(t["server_ms"].sum()) if t.height else 0.0
        row["server_ms"] = server / t.height if t.height else None
        row["server_share"] = server / total if total else None
        row["statements"] = t["statements"].mean() if t.height else None
        row["cpu_ms"] = t["cpu_ms"].mean() if t.height and t["cpu_ms"].null_count() < t.height else None
        row["overlap_ms"] = t["overlap_ms"].mean() if t.height else None
        rows.append(row)
    schema = {"scope": pl.String, "endpoint": pl.String, "requests": pl.Int64, "timed": pl.Int64,
              "coverage": pl.Float64, "latency_p50_ms": pl.Float64, "latency_p99_ms": pl.Float64,
              "threshold_ms": pl.Float64, **{f"{p}_{k}": pl.Float64 for p in PARTS for k in ("ms", "share")},
              "server_ms": pl.Float64, "server_share": pl.Float64, "statements": pl.Float64, "cpu_ms": pl.Float64,
              "overlap_ms": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


# --- the verdict ------------------------------------------------------------------------------------------------


def _pct_text(share: float) -> str:
    return number_text(share, percent=True)  # as the report's tables write a share


def _ms_text(ms: float) -> str:
    return ms_text(ms)  # as the report's tables write a latency


def _statement(statements: dict[str, str], fp: str | None, limit: int = 70) -> str:
    text = statements.get(fp or "", "") or (fp or "?")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _group_stats(t: pl.DataFrame) -> dict[str, Any]:
    """The figures the evidence quotes, for a group's timed requests (means per request)."""
    stats: dict[str, Any] = t.select(
        pl.len().alias("n"), pl.col("statements").mean().alias("statements"),
        pl.col("fingerprints").mean().alias("fingerprints"),
        (pl.col("top_repetitions") >= N_PLUS_ONE_THRESHOLD).sum().alias("n_plus_requests"),
        pl.col("top_repetitions").filter(pl.col("top_repetitions") >= N_PLUS_ONE_THRESHOLD).median()
        .alias("top_repetitions"),
        pl.col("top_fingerprint").filter(pl.col("top_repetitions") >= N_PLUS_ONE_THRESHOLD).mode().sort().first()
        .alias("top_fingerprint"),
        pl.col("db_ms").sum().alias("db_total"), pl.col("slowest_ms").sum().alias("slowest_total"),
        pl.col("slowest_ms").mean().alias("slowest_ms"),
        pl.col("slowest_fingerprint").sort_by("slowest_ms", descending=True).first().alias("slowest_fingerprint"),
        pl.col("cache_misses").mean().alias("cache_misses"), pl.col("downstream_calls").mean().alias("downstream_calls"),
        pl.col("loop_ms").mean().alias("loop_ms"), pl.col("gc_pauses").mean().alias("gc_pauses"),
        pl.col("own_ms").mean().alias("own_ms"), pl.col("cpu_ms").mean().alias("cpu_ms"),
        pl.col("server_ms").mean().alias("server_ms"), pl.col("latency_ms").mean().alias("latency_ms"),
        pl.col("pool_ms").mean().alias("pool_ms"),
    ).row(0, named=True)
    return stats


def _db_evidence(g: dict[str, Any], statements: dict[str, str], sites: dict[str, str]) -> tuple[str, str]:
    """(cause, evidence) for a group whose time went to the database (with its cache misses, when it had any:
    what a miss costs is often the statement it runs)."""
    cause, text = _sql_evidence(g, statements, sites)
    misses = g["cache_misses"] or 0.0
    return cause, text + (f"; {misses:.1f} cache misses per request" if misses > 0 else "")


def _sql_evidence(g: dict[str, Any], statements: dict[str, str], sites: dict[str, str]) -> tuple[str, str]:
    per_req = g["statements"] or 0.0
    with_n1 = g["n_plus_requests"] or 0
    if with_n1 and with_n1 * 2 >= g["n"]:  # at least half of the group's requests ran an N+1
        fp = g["top_fingerprint"]
        site = sites.get(fp or "")
        where = f" issued from {site}" if site else ""
        some = f" (in {with_n1} of these {g['n']} requests)" if with_n1 < g["n"] else ""
        return "n_plus_one", (f"{per_req:.0f} statements per request, {g['top_repetitions']:.0f} of one "
                              f"fingerprint{where}{some} — an N+1: {_statement(statements, fp)}")
    if per_req >= CHATTY_STATEMENTS:
        return "chatty_sql", (f"{per_req:.0f} statements per request of {g['fingerprints'] or 0:.0f} "
                              "fingerprints — chatty SQL")
    db, slowest = g["db_total"] or 0.0, g["slowest_total"] or 0.0
    fp = g["slowest_fingerprint"]
    if db and per_req > 1 and slowest / db >= SLOW_STATEMENT_SHARE:
        return "slow_statement", (f"one statement took {_pct_text(slowest / db)} of it, "
                                  f"{_ms_text(g['slowest_ms'] or 0.0)} per request: {_statement(statements, fp)}")
    if db and per_req <= 1:
        return "slow_statement", (f"one statement per request, {_ms_text(db / g['n'])}: "
                                  f"{_statement(statements, fp)}")
    return "database", f"{per_req:.1f} statements per request"


def _evidence(part: str, g: dict[str, Any], statements: dict[str, str], sites: dict[str, str],
              suspects: str = "", pool: dict[str, Any] | None = None) -> tuple[str, str]:
    """(cause, evidence) for a part of a group's time (``g``: :func:`_group_stats`; ``suspects``: the routes in
    flight while the loop was blocked, as a phrase; ``pool``: the most exhausted pool's finding)."""
    if part == "db":
        return _db_evidence(g, statements, sites)
    if part == "pool":
        waited = f"waited {_ms_text(g['pool_ms'] or 0.0)} per request for a connection from a SQLAlchemy pool"
        if pool is not None and pool["exhausted"]:
            return "pool_exhausted", f"{waited} — {pool['text']}"
        return "pool_wait", waited + (f"; {pool['text']}" if pool is not None else "")
    if part == "cache":
        return "cache_misses", f"{g['cache_misses'] or 0:.1f} cache misses per request"
    if part == "downstream":
        return "downstream", f"{g['downstream_calls'] or 0:.1f} calls per request"
    if part == "loop":
        return "event_loop", (f"the loop was blocked {_ms_text(g['loop_ms'] or 0.0)} per request: a "
                              "synchronous call on the loop, by this request or another one in flight"
                              + (f"; {suspects}" if suspects else ""))
    if part == "gc":
        return "gc", f"{g['gc_pauses'] or 0:.1f} collections per request"
    if part == "own":
        own, cpu = g["own_ms"] or 0.0, g["cpu_ms"]
        if cpu is None:
            return "own_code", "CPU is not measured per request in an asyncio service"
        if own and cpu >= CPU_BOUND * own:
            return "cpu", f"{_ms_text(cpu)} of CPU per request — CPU in the service"
        return "own_code", (f"only {_ms_text(cpu)} of it CPU: waiting on something the agent does not see "
                            "(a lock, a sleep, an uncaptured call)")
    return "outside", ("queueing before the handler, the network or the load generator; the handler took "
                       f"{_ms_text(g['server_ms'] or 0.0)} of {_ms_text(g['latency_ms'] or 0.0)} on average")


def suspects_text(suspects: pl.DataFrame, top: int = 2) -> str:
    """The routes most in flight while the loop was blocked, as a phrase for the evidence ("" without any)."""
    if suspects.height == 0:
        return ""
    first = suspects.row(0, named=True)  # share = blocked_ms / all the blocked time
    total = first["blocked_ms"] / first["share"] if first["share"] else 0.0
    names = ", ".join(f"{r['route']} {_pct_text(r['share'])}" for r in suspects.head(top).iter_rows(named=True))
    return f"in flight during the loop's blocks of 5 ms or more ({_ms_text(total)} in all): {names}"


def explain(per: pl.DataFrame, table: pl.DataFrame, statements: dict[str, str] | None = None,
            sites: dict[str, str] | None = None, *, fraction: float = DEFAULT_FRACTION,
            suspects: pl.DataFrame | None = None, pools: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One finding per endpoint (its slowest requests, scope "p99") and for the slowest ``fraction``:
    ``{"scope", "endpoint", "latency_ms", "requests", "timed", "cause", "part", "share", "parts": {part: share},
    "text"}``; the text lists every part of at least 5% of the time, largest first, each with its evidence
    ("database" counts the statements and the gaps between them: ``share`` too; ``parts`` has each part apart).

    ``cause`` is the dominant part's cause (an N+1 or chatty SQL with at least 20% of the time comes
    before own code and the loop's lag, where an asyncio ORM's work around each statement shows): n_plus_one, chatty_sql, slow_statement, database,
    pool_exhausted (waiting for a connection, with a pool that was exhausted: ``pools``, from
    ``perfbench.analysis.pools.pool_findings``), pool_wait,
    cache_misses, downstream, event_loop, gc, cpu, own_code, outside; or ``inconclusive`` (the agent
    timed under half of the requests) and ``no_agent_data`` (none). ``statements``: fingerprint ->
    text; ``sites``: fingerprint -> call site, when the agent recorded them.
    """
    statements, sites = statements or {}, sites or {}
    blocked = suspects_text(suspects) if suspects is not None else ""
    pool = pools[0] if pools else None
    out = []
    groups = {(s, e): g for s, e, g, _ in _group_rows(per, fraction)}
    for row in table.filter(pl.col("scope") != "all").iter_rows(named=True):
        g = groups[(row["scope"], row["endpoint"])]
        t = g.filter(pl.col("timed"))
        label = f"{row['endpoint']} p99" if row["scope"] == "p99" else f"the {row['scope']} of requests"
        head = (f"{label} {_ms_text(row['latency_p99_ms'])}" if row["scope"] == "p99"
                else f"{label} ({_ms_text(row['threshold_ms'])} and slower)")
        base = {"scope": row["scope"], "endpoint": row["endpoint"], "latency_ms": row["latency_p99_ms"],
                "requests": row["requests"], "timed": row["timed"]}
        if row["timed"] == 0:
            out.append({**base, "cause": "no_agent_data", "part": None, "share": None, "parts": {},
                        "text": f"{head}: no agent data (the agent timed none of these {row['requests']} requests)"})
            continue
        if row["coverage"] < MIN_COVERAGE:
            out.append({**base, "cause": "inconclusive", "part": None, "share": None, "parts": {},
                        "text": f"{head}: inconclusive: the agent timed only {row['timed']} of these "
                                f"{row['requests']} requests"})
            continue
        shares = {p: row[f"{p}_share"] or 0.0 for p in PARTS}
        # "database" in the sentence: the statements and the code between them
        said = {p: v for p, v in shares.items() if p != "gaps"} | {"db": shares["db"] + shares["gaps"]}
        ranked = sorted(said, key=lambda p: (-said[p], list(PARTS).index(p)))
        stats = _group_stats(t)
        found = {p: _evidence(p, stats, statements, sites, blocked, pool) for p in ranked
                 if said[p] >= LIST_SHARE or p == ranked[0]}
        top = ranked[0]
        # the remainder (own code) and the loop's lag are where an asyncio ORM's work per statement shows: an
        # N+1 or chatty SQL with a real share of the time is the cause to act on, ahead of them
        if top in ("own", "loop") and said["db"] >= SQL_CAUSE_SHARE and \
                _evidence("db", stats, statements, sites)[0] in ("n_plus_one", "chatty_sql"):
            top = "db"
            found.setdefault("db", _evidence("db", stats, statements, sites))
        if "db" in found and shares["gaps"] >= LIST_SHARE:
            found["db"] = (found["db"][0], f"{_pct_text(shares['db'])} in the statements, {_pct_text(shares['gaps'])} "
                                           f"in the code between them; {found['db'][1]}")
        listed = [f"{_pct_text(said[p])} {PARTS[p]} ({found[p][1]})" for p in ranked if p in found]
        out.append({**base, "cause": found[top][0], "part": top, "share": said[top], "parts": shares,
                    "text": f"{head}: " + ", ".join(listed)})
    return out


def statement_texts(queries: pl.LazyFrame | pl.DataFrame | None) -> tuple[dict[str, str], dict[str, str]]:
    """(fingerprint -> statement text, fingerprint -> call site) from queries.parquet (call sites when the
    agent recorded a ``call_site`` column: ``file.py:57``, with `` (function)`` when it recorded one)."""
    if queries is None:
        return {}, {}
    lf = queries.lazy()
    names = lf.collect_schema().names()
    texts = dict(lf.group_by("fingerprint").agg(pl.col("statement").first()).collect().iter_rows())
    sites: dict[str, str] = {}
    if "call_site" in names:
        site = pl.col("call_site")
        if "call_function" in names:
            site = pl.when(pl.col("call_function").is_not_null()).then(
                pl.concat_str(site, pl.lit(" ("), pl.col("call_function"), pl.lit(")"))).otherwise(site)
        sites = dict(lf.filter(pl.col("call_site").is_not_null()).group_by("fingerprint")
                     .agg(site.mode().sort().first()).collect().iter_rows())
    return texts, sites


def explain_run(requests: pl.LazyFrame, inputs: dict[str, pl.LazyFrame | None], *,
                fraction: float = DEFAULT_FRACTION) -> dict[str, Any]:
    """Everything ``perfbench explain`` shows for a run's frames: ``{"requests": per-request frame,
    "table": breakdown table, "findings": [...], "suspects": routes in flight while the loop was blocked
    (:func:`block_suspects`), "pools": per pool (``perfbench.analysis.pools.pool_findings``), "agent": bool}``
    (``agent``: the run has server timing)."""
    per = request_breakdown(requests, inputs.get("server"), inputs.get("queries"), inputs.get("cache"),
                            inputs.get("downstream"))
    table = breakdown_table(per, fraction)
    texts, sites = statement_texts(inputs.get("queries"))
    suspects = block_suspects(inputs.get("server"), inputs.get("blocks"))
    found = pools.pool_findings(pools.pool_per_second(inputs.get("gauges")))
    return {"requests": per, "table": table, "suspects": suspects, "agent": inputs.get("server") is not None,
            "pools": found,
            "findings": explain(per, table, texts, sites, fraction=fraction, suspects=suspects, pools=found)}


def explain_path(path: str | Path, *, fraction: float = DEFAULT_FRACTION) -> dict[str, Any]:
    """:func:`explain_run` for a run directory (the notebooks' and ``perfbench explain``'s entry point),
    with ``run_id``: ``ex = explain_path(run.path); ex["table"]; ex["findings"]``."""
    from .results import Run

    run = Run.load(path)
    out = explain_run(run.requests, read_inputs(run.path), fraction=fraction)
    return {**out, "run_id": run.run_id, "path": str(run.path)}
