"""perfbench explain: where a request's time went (perfbench.analysis.explain), its text and chart, the command,
and end to end on the demo: a run with --agent against the N+1 endpoint is explained as an N+1.

The pure functions are checked on synthetic runs built from plain Python lists, against a recomputation
from those lists (not through Polars), and each cause is produced by a run made to have it.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from perfbench.analysis import explain as ex
from perfbench.report.charts.explain import time_breakdown
from perfbench.report.text import explain_text

MS = 1_000_000


def build(reqs: list[dict[str, Any]]) -> dict[str, Any]:
    """Frames of a synthetic run. Each request: endpoint, latency (ms), and, when the agent timed it
    (``wall`` given): wall, cpu, gc, lag (ms), sql [(fingerprint, ms)] run one after the other with ``gap`` ms
    between them, misses, cache_ms, downstream [ms]."""
    requests, server, queries, cache, downstream = [], [], [], [], []
    for rid, r in enumerate(reqs):
        requests.append({"request_id": rid, "endpoint": r["endpoint"], "latency_ns": int(r["latency"] * MS)})
        if "wall" not in r:
            continue
        server.append({"request_id": rid, "request_id_status": "ok", "endpoint": "GET /" + r["endpoint"],
                       "t_ns": rid * 1000, "wall_ns": int(r["wall"] * MS),
                       "cpu_ns": None if r.get("cpu") is None else int(r["cpu"] * MS),
                       "gc_ns": int(r.get("gc", 0) * MS), "gc_pauses": 1 if r.get("gc") else 0,
                       "lag_ns": None if r.get("lag") is None else int(r["lag"] * MS),
                       "mode": "sync" if r.get("cpu") is not None else "asyncio",
                       "pool_ns": int(r.get("pool", 0) * MS)})
        t = rid * 10_000 * MS
        for fp, ms in r.get("sql", []):
            queries.append({"request_id": rid, "fingerprint": fp, "statement": f"SELECT {fp}",
                            "duration_ns": int(ms * MS), "t_ns": t})
            t += int((ms + r.get("gap", 0)) * MS)
        for i in range(r.get("misses", 0)):
            cache.append({"request_id": rid, "kind": "miss", "duration_ns": int(r.get("cache_ms", 0) * MS) if i == 0
                          else 0})
        for ms in r.get("downstream", []):
            downstream.append({"request_id": rid, "duration_ns": int(ms * MS)})
    schema_q = {"request_id": pl.Int64, "fingerprint": pl.String, "statement": pl.String, "duration_ns": pl.Int64,
                "t_ns": pl.Int64}
    return {
        "requests": pl.DataFrame(requests, schema={"request_id": pl.Int64, "endpoint": pl.String,
                                                   "latency_ns": pl.Int64}).lazy(),
        "server": pl.DataFrame(server, schema={"request_id": pl.Int64, "request_id_status": pl.String,
                                               "endpoint": pl.String, "t_ns": pl.Int64, "wall_ns": pl.Int64,
                                               "cpu_ns": pl.Int64, "gc_ns": pl.Int64, "gc_pauses": pl.Int64,
                                               "lag_ns": pl.Int64, "mode": pl.String,
                                               "pool_ns": pl.Int64}).lazy(),
        "queries": pl.DataFrame(queries, schema=schema_q).lazy(),
        "cache": pl.DataFrame(cache, schema={"request_id": pl.Int64, "kind": pl.String, "duration_ns": pl.Int64}).lazy(),
        "downstream": pl.DataFrame(downstream, schema={"request_id": pl.Int64, "duration_ns": pl.Int64}).lazy(),
        "raw": reqs,
    }


def run_explain(reqs: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    frames = build(reqs)
    return ex.explain_run(frames["requests"], {k: frames[k] for k in ("server", "queries", "cache", "downstream")},
                          **kw)


def finding(result: dict[str, Any], endpoint: str) -> dict[str, Any]:
    return next(f for f in result["findings"] if f["endpoint"] == endpoint and f["scope"] == "p99")


# --- the per-request split, against a recomputation ------------------------------------------------------------


def recompute(r: dict[str, Any]) -> dict[str, float]:
    """The parts of one synthetic request, computed from its plain numbers."""
    measured = {"db": sum(ms for _, ms in r.get("sql", [])), "cache": r.get("cache_ms", 0.0) if r.get("misses") else 0.0,
                "downstream": sum(r.get("downstream", [])), "loop": r.get("lag") or 0.0, "gc": r.get("gc", 0.0),
                "pool": r.get("pool", 0.0)}
    total = sum(measured.values())
    scale = r["wall"] / total if total > r["wall"] else 1.0
    parts = {k: v * scale for k, v in measured.items()}
    rest = r["wall"] - sum(parts.values())
    gap = r.get("gap", 0)
    gaps = gap * (len(r.get("sql", [])) - 1) if r.get("sql") and gap <= ex.GAP_MAX_MS else 0.0
    parts["gaps"] = min(gaps, rest)
    parts["own"] = rest - parts["gaps"]
    parts["outside"] = max(r["latency"] - r["wall"], 0.0)
    return parts


MIXED = [
    {"endpoint": "a", "latency": 50, "wall": 40, "lag": 3, "gc": 1, "sql": [("f1", 5), ("f2", 7)], "misses": 2,
     "cache_ms": 2, "downstream": [6, 4], "pool": 3},
    {"endpoint": "a", "latency": 30, "wall": 29.5, "cpu": 20, "gc": 0.5, "sql": [("f1", 2), ("f3", 1), ("f1", 1)],
     "gap": 2},  # the code between statements
    {"endpoint": "a", "latency": 30, "wall": 29.5, "sql": [("f1", 2), ("f3", 1)], "gap": 7},  # a long gap: own code
    {"endpoint": "a", "latency": 20, "wall": 12, "lag": 10, "sql": [("f1", 6), ("f1", 6)]},  # overlapping parts
    {"endpoint": "b", "latency": 9, "wall": 10, "lag": 0},  # server longer than the client saw (clocks)
    {"endpoint": "b", "latency": 15},  # not timed by the agent
]


def test_parts_add_up_to_the_server_time_and_match_a_recomputation() -> None:
    frames = build(MIXED)
    per = ex.request_breakdown(frames["requests"], frames["server"], frames["queries"], frames["cache"],
                               frames["downstream"])
    assert per.height == len(MIXED)  # no request lost
    for row, raw in zip(per.iter_rows(named=True), MIXED, strict=True):
        if "wall" not in raw:
            assert row["timed"] is False and row["own_ms"] is None and row["outside_ms"] is None
            continue
        want = recompute(raw)
        for part, value in want.items():
            assert row[f"{part}_ms"] == pytest.approx(value, abs=1e-6), (raw, part)
        server_parts = sum(row[f"{p}_ms"] for p in ex.SERVER_PARTS)
        assert server_parts == pytest.approx(row["server_ms"], rel=0.05)  # within 5%: here exactly
        assert row["statements"] == len(raw.get("sql", []))
    assert per.row(1, named=True)["gaps_ms"] == pytest.approx(4.0)
    assert per.row(2, named=True)["gaps_ms"] == 0.0
    third = per.row(3, named=True)
    assert third["overlap_ms"] == pytest.approx(10.0) and third["own_ms"] == pytest.approx(0.0)
    assert third["top_repetitions"] == 2 and third["top_fingerprint"] == "f1"


def test_breakdown_shares_add_up_and_match_a_recomputation() -> None:
    frames = build(MIXED)
    per = ex.request_breakdown(frames["requests"], frames["server"], frames["queries"], frames["cache"],
                               frames["downstream"])
    table = ex.breakdown_table(per, fraction=0.5)
    assert table.filter(pl.col("scope") == "all")["endpoint"].to_list() == ["a", "b"]
    a = table.filter((pl.col("scope") == "all") & (pl.col("endpoint") == "a")).row(0, named=True)
    timed = [r for r in MIXED if r["endpoint"] == "a"]
    parts = [recompute(r) for r in timed]
    total = sum(p["outside"] + r["wall"] for p, r in zip(parts, timed, strict=True))
    for part in ex.PARTS:
        assert a[f"{part}_share"] == pytest.approx(sum(p[part] for p in parts) / total)
        assert a[f"{part}_ms"] == pytest.approx(sum(p[part] for p in parts) / len(parts))
    assert sum(a[f"{p}_share"] for p in ex.PARTS) == pytest.approx(1.0)
    assert sum(a[f"{p}_share"] for p in ex.SERVER_PARTS) == pytest.approx(a["server_share"], rel=0.05)
    b = table.filter((pl.col("scope") == "all") & (pl.col("endpoint") == "b")).row(0, named=True)
    assert (b["requests"], b["timed"], b["coverage"]) == (2, 1, 0.5)
    slow = table.filter(pl.col("scope") == "slowest 50%").row(0, named=True)
    n = math.ceil(len(MIXED) * 0.5)
    assert slow["requests"] == n and slow["threshold_ms"] == sorted((r["latency"] for r in MIXED), reverse=True)[n - 1]
    assert ex.breakdown_table(per, fraction=0.015)["scope"].to_list()[-1] == "slowest 1.5%"
    with pytest.raises(ValueError, match="fraction"):
        ex.breakdown_table(per, fraction=0)


# --- each cause, from a run made to have it -----------------------------------------------------------------------


def many(n: int = 20, **r: Any) -> list[dict[str, Any]]:
    return [dict(r) for _ in range(n)]


@pytest.mark.parametrize(("reqs", "cause", "words"), [
    (many(endpoint="posts", latency=100, wall=95, lag=1, sql=[("list", 3)] + [("author", 2)] * 40),
     "n_plus_one", ["41 statements per request, 40 of one fingerprint", "an N+1", "SELECT author"]),
    (many(endpoint="orm", latency=100, wall=95, lag=1, sql=[("list", 0.3)] + [("author", 0.2)] * 40, gap=1.5),
     "n_plus_one", ["% database (8.30 % in the statements, 60.00 % in the code between them; 41 statements per request"]),
    (many(endpoint="page", latency=100, wall=95, lag=0, sql=[(f"f{i}", 6) for i in 12 * [0, 1, 2, 3]][:12]
          + [(f"g{i}", 6) for i in range(2)]),
     "chatty_sql", ["chatty SQL"]),
    (many(endpoint="report", latency=100, wall=95, lag=0, sql=[("big", 80), ("small", 2)]),
     "slow_statement", ["one statement took", "SELECT big"]),
    (many(endpoint="missed", latency=100, wall=95, lag=0, sql=[("report", 85)], misses=1),  # a miss runs the query
     "slow_statement", ["one statement per request, 85.00 ms: SELECT report; 1.0 cache misses per request"]),
    (many(endpoint="cached", latency=100, wall=95, lag=0, misses=3, cache_ms=80),
     "cache_misses", ["3.0 cache misses per request"]),
    (many(endpoint="proxy", latency=100, wall=95, lag=0, downstream=[40, 40]),
     "downstream", ["2.0 calls per request"]),
    (many(endpoint="blocked", latency=100, wall=95, lag=80),
     "event_loop", ["the loop was blocked 80.00 ms per request"]),
    (many(endpoint="garbage", latency=100, wall=95, lag=0, gc=70),
     "gc", ["collections per request"]),
    (many(endpoint="compute", latency=100, wall=95, cpu=90),
     "cpu", ["CPU in the service"]),
    (many(endpoint="sleepy", latency=100, wall=95, cpu=5),
     "own_code", ["only 5.00 ms of it CPU"]),
    (many(endpoint="async", latency=100, wall=95, lag=0),
     "own_code", ["CPU is not measured per request in an asyncio service"]),
    (many(endpoint="queued", latency=100, wall=5, lag=0),
     "outside", ["queueing before the handler", "the handler took 5.00 ms of 100.0 ms on average"]),
])
def test_each_cause_is_named_with_its_evidence(reqs: list[dict[str, Any]], cause: str, words: list[str]) -> None:
    result = run_explain(reqs)
    f = finding(result, reqs[0]["endpoint"])
    assert f["cause"] == cause, f["text"]
    for w in words:
        assert w in f["text"], f["text"]
    assert sum(f["parts"].values()) == pytest.approx(1.0)
    assert f["text"].startswith(f"{reqs[0]['endpoint']} p99 100.0 ms: ")  # as the tables write it


def test_an_n_plus_one_names_its_call_site_when_the_agent_sampled_one() -> None:
    frames = build(many(endpoint="posts", latency=100, wall=95, lag=0, sql=[("list", 3)] + [("author", 2)] * 40))
    queries = frames["queries"].with_columns(
        pl.when(pl.col("fingerprint") == "author").then(pl.lit("app/posts.py:57")).alias("call_site"),
        pl.when(pl.col("fingerprint") == "author").then(pl.lit("list_posts")).alias("call_function"))
    texts, sites = ex.statement_texts(queries)
    assert sites == {"author": "app/posts.py:57 (list_posts)"} and texts["list"] == "SELECT list"
    result = ex.explain_run(frames["requests"], {"server": frames["server"], "queries": queries})
    assert "40 of one fingerprint issued from app/posts.py:57 (list_posts) — an N+1" in finding(result, "posts")["text"]


def test_an_n_plus_one_comes_before_own_code_and_the_loop() -> None:
    """An asyncio ORM's work around each statement is own code: the N+1 (25% of the time) is still the cause."""
    result = run_explain(many(endpoint="posts", latency=100, wall=100, lag=30,
                              sql=[("list", 1)] + [("author", 0.6)] * 40))
    f = finding(result, "posts")
    assert f["cause"] == "n_plus_one" and f["part"] == "db"
    assert f["text"].index("the service's own code") < f["text"].index("database")  # listed largest first


def test_cache_time_and_misses_from_both_sources_count_a_lookup_once() -> None:
    """The service's own cache_miss() and the hooked Redis GET both record one lookup; only the command has a
    round trip. Downstream calls add up."""
    requests = pl.DataFrame({"request_id": [1, 2], "endpoint": ["r", "r"], "latency_ns": [50 * MS, 50 * MS]})
    server = pl.DataFrame({"request_id": [1, 2], "endpoint": ["GET /r"] * 2, "t_ns": [0, 0], "wall_ns": [40 * MS] * 2,
                           "cpu_ns": [None, None], "gc_ns": [0, 0], "gc_pauses": [0, 0], "lag_ns": [0, 0],
                           "mode": ["asyncio"] * 2}, schema_overrides={"cpu_ns": pl.Int64})
    cache = pl.DataFrame({"request_id": [1, 1, 2, 2], "kind": ["miss", "miss", "hit", "command"],
                          "source": ["app", "redis", "redis", "redis"], "duration_ns": [None, 3 * MS, MS, 2 * MS]},
                         schema_overrides={"duration_ns": pl.Int64})
    downstream = pl.DataFrame({"request_id": [2, 2], "duration_ns": [5 * MS, 7 * MS]})
    per = ex.request_breakdown(requests, server, None, cache, downstream)
    assert per.select("cache_ms", "cache_misses", "downstream_ms", "downstream_calls").rows() == [
        (3.0, 1, 0.0, 0), (3.0, 0, 12.0, 2)]
    assert per["own_ms"].to_list() == [37.0, 25.0]


def test_no_agent_data_and_inconclusive_are_said() -> None:
    reqs = many(endpoint="x", latency=10) + many(5, endpoint="y", latency=10, wall=5, lag=0) + \
        many(15, endpoint="y", latency=10)
    result = run_explain(reqs)
    assert finding(result, "x")["cause"] == "no_agent_data"
    assert "no agent data" in finding(result, "x")["text"]
    y = run_explain(reqs)["table"].filter((pl.col("scope") == "all") & (pl.col("endpoint") == "y"))
    assert y["coverage"].item() == 0.25
    # y's slowest request is untimed (all latencies tie; the tail is every request): 5 of 20 timed
    assert finding(result, "y")["cause"] == "inconclusive"
    assert "inconclusive: the agent timed only 5 of these 20 requests" in finding(result, "y")["text"]
    frames = build(reqs)
    none = ex.explain_run(frames["requests"], {"server": None, "queries": None})
    assert none["agent"] is False and {f["cause"] for f in none["findings"]} == {"no_agent_data"}


def test_routes_in_flight_while_the_loop_was_blocked() -> None:
    server = pl.DataFrame({"request_id": [1, 2, 3], "endpoint": ["GET /a", "GET /b", "GET /c"],
                           "t_ns": [90 * MS, 120 * MS, 400 * MS], "wall_ns": [70 * MS, 180 * MS, 10 * MS]})
    blocks = pl.DataFrame({"t_ns": [100 * MS], "duration_ns": [50 * MS]})  # 100..150 ms: /a throughout, /b 30 ms
    found = ex.block_suspects(server, blocks)
    assert found.to_dicts() == [{"route": "GET /a", "blocked_ms": 50.0, "blocks": 1, "share": 1.0},
                                {"route": "GET /b", "blocked_ms": 30.0, "blocks": 1, "share": 0.6}]
    assert ex.suspects_text(found) == ("in flight during the loop's blocks of 5 ms or more (50.00 ms in all): "
                                       "GET /a 100.0 %, GET /b 60.00 %")
    assert ex.block_suspects(server, None).height == 0 and ex.suspects_text(ex.block_suspects(None, blocks)) == ""
    result = ex.explain(*_explained(many(endpoint="blocked", latency=100, wall=95, lag=80)), suspects=found)
    assert result[0]["cause"] == "event_loop" and "GET /a 100.0 %, GET /b 60.00 %)" in result[0]["text"]


def _explained(reqs: list[dict[str, Any]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    frames = build(reqs)
    per = ex.request_breakdown(frames["requests"], frames["server"], frames["queries"])
    return per, ex.breakdown_table(per)


def test_text_and_chart_render_the_breakdown() -> None:
    result = run_explain(MIXED)
    text = explain_text({**result, "run_id": "r1"})
    assert text.splitlines()[0] == "where the time went (run r1): the agent timed 5 of 6 requests"
    assert "outside %" in text and "gaps %" in text and "own %" in text
    chart = time_breakdown(result["table"]).to_dict()
    values = next(iter(chart["datasets"].values()))
    assert {v["part"] for v in values} == {"database", "between SQL statements", "waiting for a database connection",
                                           "cache", "downstream calls", "waiting for the event loop",
                                           "garbage collection", "the service's own code", "outside the service"}
    empty = time_breakdown(run_explain(many(endpoint="x", latency=10))["table"]).to_dict()
    assert "no request was timed" in json.dumps(empty)
    with pytest.raises(ValueError, match="missing column"):
        time_breakdown(pl.DataFrame({"scope": ["all"]}))


# --- end to end: the demo with the agent, through the CLI ------------------------------------------------------------


TOKEN = "explain-token-" + "x" * 16


def perfbench(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    root = str(Path(__file__).resolve().parent.parent)
    return subprocess.run([sys.executable, "-m", "perfbench", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": root, **(env or {})})


def test_demo_run_with_the_agent_is_explained_as_an_n_plus_one(demo_target, demo_agent_token, runs_dir: Path) -> None:
    """The demo served by ``perfbench serve-demo`` (a child process, the agent on), a run through the CLI."""
    run = perfbench("run", demo_target.url, "--agent", "--rate", "20", "--duration", "2", "--quiet",
                    "--path", "posts_naive=GET /api/posts?limit=20", "--path", "health=GET /health",
                    "--runs-dir", str(runs_dir), env={"PERFBENCH_AGENT_TOKEN": demo_agent_token})
    assert run.returncode == 0, run.stderr
    assert "where the time went, request by request: perfbench explain " in run.stdout
    path = next(runs_dir.iterdir())
    report = json.loads((path / "meta.json").read_text())["collectors"]["agent"]
    assert report["timed_requests"] == report["requests_seen"] > 0 and report["dropped_timings"] == 0
    out = perfbench("explain", str(path), "--json")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["agent"] is True and body["timed"] == body["requests"]
    naive = next(f for f in body["findings"] if f["endpoint"] == "posts_naive" and f["scope"] == "p99")
    assert naive["cause"] == "n_plus_one", naive["text"]
    assert "41 statements per request, 20 of one fingerprint" in naive["text"]
    # the breakdown adds up to the server time the agent measured, recomputed from the raw files
    server = pl.read_parquet(path / "server_requests.parquet")
    queries = pl.read_parquet(path / "queries.parquet")
    requests = pl.read_parquet(path / "requests.parquet")
    row = next(r for r in body["table"] if r["endpoint"] == "posts_naive" and r["scope"] == "all")
    ids = set(requests.filter(pl.col("endpoint") == "posts_naive")["request_id"].to_list())
    walls = {r["request_id"]: r["wall_ns"] / MS for r in server.iter_rows(named=True) if r["request_id"] in ids}
    assert len(walls) == len(ids) == row["timed"]
    assert row["server_ms"] == pytest.approx(sum(walls.values()) / len(walls))
    parts_ms = sum(row[f"{p}_ms"] for p in ex.SERVER_PARTS)
    assert parts_ms == pytest.approx(row["server_ms"], rel=0.05)
    db = queries.filter(pl.col("request_id").is_in(list(ids)))["duration_ns"].sum() / MS / len(ids)
    assert row["db_ms"] <= db + 1e-6 and row["statements"] == 41  # scaled down only where parts overlapped
    gaps = 0.0  # the short gaps between one statement's end and the next one's start, from the raw rows
    for rid in ids:
        end = None
        for t, d in sorted(queries.filter(pl.col("request_id") == rid).select("t_ns", "duration_ns").iter_rows()):
            if end is not None and 0 < t - end <= ex.GAP_MAX_MS * MS:
                gaps += (t - end) / MS
            end = t + d if end is None else max(end, t + d)
    assert 0 < row["gaps_ms"] <= gaps / len(ids) + 1e-6  # at most the raw gaps: taken out of the remainder only
    health = next(f for f in body["findings"] if f["endpoint"] == "health" and f["scope"] == "p99")
    assert health["parts"]["db"] == 0
    text = perfbench("explain", str(path))
    assert text.returncode == 0 and "an N+1" in text.stdout and "where the time went" in text.stdout


def test_cli_says_when_a_run_has_no_agent_data_and_refuses_bad_input(demo_db_copy, runs_dir: Path) -> None:
    from perfbench import shapes
    from perfbench.demo import create_app
    from perfbench.load import run_load
    from tests.conftest import ThreadServer

    server = ThreadServer(create_app(db_path=demo_db_copy())).start()
    try:
        result = run_load(server.url, shapes.constant(rate=20, duration=0.3), None, runs_dir=runs_dir,
                          progress=False, announce=lambda line: None)
    finally:
        server.stop()
    out = perfbench("explain", str(result.path))
    assert out.returncode == 0 and out.stdout.startswith("no agent data in ") and out.stdout.count("\n") == 1
    assert json.loads(perfbench("explain", str(result.path), "--json").stdout)["agent"] is False
    bad = perfbench("explain", str(result.path), "--fraction", "1.5")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--fraction" in bad.stderr
    missing = perfbench("explain", str(runs_dir / "nope"))
    assert missing.returncode == 3 and "no such run directory" in missing.stderr
    assert "where each request's time went" in perfbench("--help").stdout


@pytest.mark.slow
@pytest.mark.postgres
def test_demo_on_postgresql_is_explained_as_an_n_plus_one(runs_dir: Path) -> None:
    """The demo on PostgreSQL (asyncpg: each statement a network round trip) with the agent, a real run."""
    import asyncio
    import uuid

    import asyncpg

    from perfbench import shapes
    from perfbench.agent import AgentCollector
    from perfbench.demo import create_app
    from perfbench.load import run_load
    from perfbench.scenario import Request, Scenario
    from tests.conftest import ThreadServer

    schema = f"perfbench_explain_test_{uuid.uuid4().hex[:10]}"
    try:
        server = ThreadServer(create_app(db_url="postgresql+asyncpg://postgres@127.0.0.1:5432/test", db_schema=schema,
                                         agent_token=TOKEN)).start()
        try:
            scenario = Scenario(name="posts", seed=1, requests=[Request("posts_naive", "GET", "/api/posts?limit=20"),
                                                                Request("posts_eager", "GET", "/api/v2/posts?limit=20")])
            result = run_load(server.url, shapes.constant(rate=20, duration=2.0), scenario, runs_dir=runs_dir,
                              progress=False, announce=lambda line: None,
                              collectors=[AgentCollector(TOKEN, poll_s=0.5)])
        finally:
            server.stop()
    finally:
        async def drop() -> None:
            conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()

        asyncio.run(drop())
    explained = ex.explain_path(result.path)
    naive = next(f for f in explained["findings"] if f["endpoint"] == "posts_naive" and f["scope"] == "p99")
    assert naive["cause"] == "n_plus_one", naive["text"]
    eager = next(f for f in explained["findings"] if f["endpoint"] == "posts_eager" and f["scope"] == "p99")
    assert eager["cause"] != "n_plus_one" and "an N+1" not in eager["text"]
    table = explained["table"].filter(pl.col("scope") == "all")
    for row in table.iter_rows(named=True):
        assert row["timed"] == row["requests"] > 0
        assert sum(row[f"{p}_ms"] for p in ex.SERVER_PARTS) == pytest.approx(row["server_ms"], rel=0.05)


WSGI_SERVICE = '''
import logging, sqlite3, sys, time
from flask import Flask
from werkzeug.serving import make_server
from perfbench.agent import Agent

db = sys.argv[1]
with sqlite3.connect(db) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, grp INTEGER, name TEXT)")
    conn.executemany("INSERT INTO rows (grp, name) VALUES (?, ?)", [(i % 50, f"row {i}") for i in range(5000)])

app = Flask(__name__)

@app.get("/cpu")
def cpu():
    end = time.thread_time_ns() + 20_000_000  # 20 ms of this thread's CPU
    while time.thread_time_ns() < end:
        pass
    return "ok"

@app.get("/sleep")
def sleep():
    time.sleep(0.03)
    return "ok"

@app.get("/groups")
def groups():  # an N+1: one unindexed scan per group
    conn = sqlite3.connect(db)
    try:
        return [conn.execute("SELECT count(*) FROM rows WHERE grp = ?", (g,)).fetchone()[0] for g in range(15)]
    finally:
        conn.close()

app.wsgi_app = Agent().wrap_wsgi(app.wsgi_app)  # README's three lines
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = make_server("127.0.0.1", 0, app, threaded=True)
print(server.server_port, flush=True)
server.serve_forever(poll_interval=0.05)
'''


@pytest.mark.slow
def test_a_flask_service_in_its_own_process_cpu_sleep_and_n_plus_one(tmp_path: Path, runs_dir: Path) -> None:
    """A sync service: CPU time is measured per request, so CPU-bound and waiting handlers are told apart."""
    script = tmp_path / "service.py"
    script.write_text(WSGI_SERVICE)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "PERFBENCH_AGENT_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "rows.db")], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        run = perfbench("run", f"http://127.0.0.1:{port}", "--agent", "--rate", "15", "--duration", "2", "--quiet",
                        "--path", "cpu=GET /cpu", "--path", "sleep=GET /sleep", "--path", "groups=GET /groups",
                        "--runs-dir", str(runs_dir), env={"PERFBENCH_AGENT_TOKEN": TOKEN})
        assert run.returncode == 0, run.stderr
    finally:
        proc.terminate()
        proc.wait(30)
    path = next(runs_dir.iterdir())
    explained = ex.explain_path(path)
    per = explained["requests"]
    assert per["timed"].all() and set(per["mode"]) == {"sync"}
    findings = {f["endpoint"]: f for f in explained["findings"] if f["scope"] == "p99"}
    groups = findings["groups"]  # its slowest request may have queued behind a /cpu one (the GIL): then that wins
    # (with the call site when the agent samples one: "... of one fingerprint issued from service.py:30 (...)")
    assert re.search(r"15 statements per request, 15 of one fingerprint( issued from \S+ \(.+?\))? — an N\+1",
                     groups["text"]), groups["text"]
    sql = groups["parts"]["db"] + groups["parts"]["gaps"]
    assert groups["cause"] == "n_plus_one" or groups["share"] > sql, groups["text"]
    server = pl.read_parquet(path / "server_requests.parquet")
    requests = pl.read_parquet(path / "requests.parquet")
    for name in ("cpu", "sleep"):
        ids = requests.filter(pl.col("endpoint") == name)["request_id"].to_list()
        rows = server.filter(pl.col("request_id").is_in(ids))
        cpu_ms = rows["cpu_ns"].mean() / MS
        assert (cpu_ms >= 20) == (name == "cpu")  # the spin burns 20 ms of CPU; a sleep burns almost none
        # the verdict is the rule applied to the raw rows of its group (the slowest requests)
        f = findings[name]
        tail = per.filter((pl.col("endpoint") == name) & (pl.col("latency_ms") >= f["latency_ms"]))
        raw = rows.filter(pl.col("request_id").is_in(tail["request_id"].to_list()))
        own = (raw["wall_ns"] - raw["gc_ns"]).mean() / MS  # no SQL, no lag in a sync handler: the rest is own code
        expected = "cpu" if raw["cpu_ns"].mean() / MS >= ex.CPU_BOUND * own else "own_code"
        if f["part"] == "own":
            assert f["cause"] == expected, f["text"]
    assert findings["sleep"]["cause"] in ("own_code", "outside"), findings["sleep"]["text"]


def test_an_n_plus_one_in_part_of_a_group_says_in_how_many() -> None:
    reqs = many(3, endpoint="mix", latency=100, wall=95, lag=0, sql=[("list", 2)] + [("author", 2)] * 30) + \
        many(3, endpoint="mix", latency=100, wall=95, lag=0, sql=[("big", 60), ("other", 1)]) + \
        many(1, endpoint="mix", latency=100, wall=95, lag=0, sql=[("big", 60)])
    f = finding(run_explain(reqs), "mix")
    assert f["cause"] != "n_plus_one" and "an N+1" not in f["text"], f["text"]  # 3 of 7 ran it: not the cause
    half = finding(run_explain(reqs[:6]), "mix")
    assert half["cause"] == "n_plus_one" and "30 of one fingerprint (in 3 of these 6 requests)" in half["text"]
