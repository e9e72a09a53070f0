"""Pools and queues (perfbench.agent.pools, perfbench.analysis.pools): SQLAlchemy pool checkouts timed per
request, the pools and the loop's ready queue sampled as gauges, and a real run against a service whose pool
is too small explained as "connection pool exhausted".

Real SQLAlchemy on SQLite and on PostgreSQL (127.0.0.1:5432, db ``test``); real servers on 127.0.0.1 port 0.
Waits are made by holding connections until another caller is seen waiting (no fixed sleeps).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from perfbench.agent import Agent, pools, sql
from perfbench.agent.collector import GAUGE_SCHEMA, SERVER_SCHEMA, gauges_table, server_requests_table
from perfbench.analysis import explain as ex
from perfbench.analysis import pools as apools
from perfbench.errors import ConfigError

TOKEN = "pool-test-token-0123456789"
PG_SYNC = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_ASYNC = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _until(check: Any, what: str, timeout: float = 20.0) -> None:
    """Poll ``check()`` until true (bounded); the sampler and the threads decide when, not a sleep."""
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def _rows(agent: Agent, into: list[tuple]) -> list[tuple]:
    d = agent.gauges.drain()["columns"]
    into += list(zip(d["t_ns"], d["name"], d["target"], d["value"], strict=True))
    return into


def _total(rows: list[tuple], name: str, target: str) -> float:
    return sum(v for _, n, t, v in rows if n == name and t == target)


@pytest.mark.parametrize("url", ["sqlite", PG_SYNC])
def test_a_full_pool_makes_a_checkout_wait_and_the_gauges_and_the_request_show_it(url: str, tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    agent = Agent(endpoints=False).install()
    engine = create_engine(f"sqlite:///{tmp_path / 'p.db'}" if url == "sqlite" else url, pool_size=2,
                           max_overflow=0, pool_timeout=30)
    release = threading.Event()
    tags: list[sql.RequestTag] = []

    def request(rid: int, hold: bool) -> None:
        tag = agent.bind(str(rid), "GET /x")
        tags.append(tag)
        token = sql.REQUEST.set(tag)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                if hold:
                    release.wait(20)
        finally:
            sql.REQUEST.reset(token)

    try:
        holders = [threading.Thread(target=request, args=(i, True)) for i in (1, 2)]
        for t in holders:
            t.start()
        _until(lambda: engine.pool.checkedout() == 2, "both connections checked out")
        waiter = threading.Thread(target=request, args=(3, False))
        waiter.start()
        figures = pools.figures(engine.pool)
        _until(lambda: figures.waiting == 1, "the third caller waiting on the full pool")
        rows: list[tuple] = []
        _until(lambda: any(n == "pool.waiting_max" and v >= 1 for _, n, _t, v in _rows(agent, rows)),
               "a sample taken while it waited")
        release.set()
        for t in [*holders, waiter]:
            t.join(20)
        _until(lambda: _total(_rows(agent, rows), "pool.checkouts", figures.label) >= 3, "the checkouts sampled")
    finally:
        release.set()
        agent.uninstall()
        engine.dispose()
    target = figures.label
    assert target.startswith("sqlite#" if url == "sqlite" else "postgresql#")
    waits = {t.request_id: t.pool_wait_ns for t in tags}
    assert waits[3] > 0
    # every wait the gauges summed is one a request recorded: the same numbers, two ways
    assert _total(rows, "pool.wait_ms", target) == pytest.approx(sum(waits.values()) / 1e6)
    assert max(v for _, n, t, v in rows if n == "pool.wait_max_ms" and t == target) == pytest.approx(
        max(waits.values()) / 1e6)
    assert max(v for _, n, t, v in rows if n == "pool.checked_out_max" and t == target) == 2
    assert {v for _, n, t, v in rows if n in ("pool.capacity", "pool.size") and t == target} == {2.0}
    assert _total(rows, "pool.checkouts", target) == 3
    assert _total(rows, "pool.connects", target) == 2
    per_second = apools.pool_per_second(pl.DataFrame(rows, schema=["t_ns", "name", "target", "value"], orient="row"))
    found = apools.pool_findings(per_second.filter(pl.col("target") == target))
    assert found[0]["exhausted"] and "connection pool exhausted" in found[0]["text"]
    assert found[0]["wait_ms"] == pytest.approx(sum(waits.values()) / 1e6)


def test_async_engine_waits_are_attributed_to_each_task_on_postgresql() -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    agent = Agent(endpoints=False).install()
    tags: dict[int, sql.RequestTag] = {}

    async def main() -> None:
        engine = create_async_engine(PG_ASYNC, pool_size=2, max_overflow=0)
        release = asyncio.Event()

        async def request(rid: int, hold: bool) -> None:
            tags[rid] = agent.bind(str(rid), "GET /x")
            sql.REQUEST.set(tags[rid])  # the task's own context
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                if hold:
                    await asyncio.wait_for(release.wait(), 20)

        try:
            holders = [asyncio.create_task(request(i, True)) for i in (1, 2)]
            while engine.pool.checkedout() < 2:  # noqa: ASYNC110 - polling the pool, bounded by the test's timeout
                await asyncio.sleep(0.005)
            waiters = [asyncio.create_task(request(i, False)) for i in (3, 4)]
            figures = pools.figures(engine.pool)
            while figures.waiting < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            release.set()
            await asyncio.wait_for(asyncio.gather(*holders, *waiters), 20)
        finally:
            await engine.dispose()

    try:
        asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        agent.uninstall()
    assert tags[3].pool_wait_ns > 0 and tags[4].pool_wait_ns > 0
    assert sql.REQUEST.get() is None


def test_the_gauge_buffer_is_bounded_and_becomes_the_parquet_schema() -> None:
    g = pools.Gauges(3)
    g.add([(i, "pool.wait_ms", "sqlite#1", float(i)) for i in range(5)])
    assert g.pending() == 3
    first = g.drain(2)
    assert first["dropped"] == 2 and first["more"] is True and first["columns"]["t_ns"] == [2, 3]
    rest = g.drain()
    assert rest["dropped"] == 0 and rest["more"] is False and rest["columns"]["value"] == [4.0]
    table = gauges_table(first, shift_ns=1)
    assert table.schema == GAUGE_SCHEMA and table.column("t_ns").to_pylist() == [1, 2]
    with pytest.raises(ConfigError, match="capacity"):
        pools.Gauges(0)
    # an older agent's timings (no pool_ns) still read, as null
    old = {"columns": {"request_id": [1], "request_id_status": ["ok"], "endpoint": ["GET /"], "start_ns": [5],
                       "wall_ns": [10], "cpu_ns": [None], "gc_ns": [0], "gc_pauses": [0], "lag_ns": [0],
                       "mode": ["asyncio"]}}
    t = server_requests_table(old)
    assert t.schema == SERVER_SCHEMA and t.column("pool_ns").to_pylist() == [None]


def test_no_gauge_sampler_runs_without_an_agent() -> None:
    agent = Agent(endpoints=False).install()
    assert any(t.name == "perfbench-gauges" for t in threading.enumerate())
    agent.uninstall()
    _until(lambda: not any(t.name == "perfbench-gauges" and t.is_alive() for t in threading.enumerate()),
           "the sampler thread to end")


def _pool_app(db_url: str, hold: str) -> Any:
    """An aiohttp service whose one endpoint holds one of only two pooled connections for a while."""
    from aiohttp import web
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import AsyncAdaptedQueuePool

    app = web.Application()
    Agent(TOKEN).install_aiohttp(app)
    state: dict[str, Any] = {}

    async def start(_app: web.Application) -> None:
        state["engine"] = create_async_engine(db_url, pool_size=2, max_overflow=0, pool_timeout=60,
                                              poolclass=AsyncAdaptedQueuePool)

    async def stop(_app: web.Application) -> None:
        await state["engine"].dispose()

    async def item(request: web.Request) -> web.Response:
        async with state["engine"].connect() as conn:
            await conn.execute(text(hold))
            if "sqlite" in db_url:  # SQLite cannot sleep: the connection is held by the handler instead
                await asyncio.sleep(0.03)
        return web.Response(text="ok")

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_get("/item", item)
    return app


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_a_pool_too_small_for_the_load_is_explained_as_the_cause(db: str, tmp_path: Path, runs_dir: Path) -> None:
    """pool_size=2, max_overflow=0 under 20 concurrent users: explain names the exhausted pool."""
    from perfbench import shapes
    from perfbench.agent import AgentCollector
    from perfbench.load import run_load
    from perfbench.report.charts import gauges_over_time
    from perfbench.scenario import Request, Scenario
    from tests.conftest import ThreadServer

    url, hold = ((f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}", "SELECT 1") if db == "sqlite"
                 else (PG_ASYNC, "SELECT pg_sleep(0.03)"))
    server = ThreadServer(_pool_app(url, hold)).start()
    try:
        scenario = Scenario(name="pool", seed=1, requests=[Request("item", "GET", "/item")])
        result = run_load(server.url, shapes.users(20, duration=1.5), scenario, runs_dir=runs_dir, progress=False,
                          announce=lambda line: None, collectors=[AgentCollector(TOKEN, poll_s=0.5)])
    finally:
        server.stop()
    run = Path(result.path)
    gauges = pl.read_parquet(run / "gauges.parquet")
    assert gauges.height and set(gauges.columns) == {"t_ns", "name", "target", "value"}
    assert gauges.filter(pl.col("name") == "loop.ready").height > 0  # the service's loop was sampled too
    explained = ex.explain_path(run)
    finding = next(f for f in explained["findings"] if f["endpoint"] == "item" and f["scope"] == "p99")
    assert finding["cause"] == "pool_exhausted", finding["text"]
    assert "connection pool exhausted" in finding["text"] and "waiting for a database connection" in finding["text"]
    # the request's pool wait, recomputed from server_requests.parquet, is the breakdown's part
    srv = pl.read_parquet(run / "server_requests.parquet")
    per = explained["requests"].filter(pl.col("timed"))
    assert per.height == srv.height > 0
    want = srv.select("request_id", (pl.col("pool_ns") / 1e6).alias("want")).join(per, on="request_id")
    exact = want.filter(pl.col("overlap_ms") == 0)  # where measured parts overlapped they are scaled down
    assert exact.height and (exact["pool_ms"] - exact["want"]).abs().max() < 1e-6
    assert (want["pool_ms"] <= want["want"] + 1e-6).all()
    row = explained["table"].filter(pl.col("scope") == "all").row(0, named=True)
    assert sum(row[f"{p}_ms"] for p in ex.SERVER_PARTS) == pytest.approx(row["server_ms"], rel=0.05)
    # the gauges joined to the load by second: the pool full while requests were sent
    per_second = apools.pool_per_second(gauges)
    joined = apools.pool_vs_load(per_second, pl.scan_parquet(run / "requests.parquet"))
    busy = joined.filter(pl.col("sent") > 0)
    assert busy.height and busy["exhausted"].fill_null(False).any()
    assert explained["pools"][0]["capacity"] == 2 and explained["pools"][0]["checked_out_max"] == 2
    chart = gauges_over_time(gauges)
    assert "at most 2 of 2 connections" in chart.description and chart.to_dict()["vconcat"]


def test_waiting_for_a_connection_without_gauges_is_its_own_part_and_cause() -> None:
    """A run whose requests mostly waited for a pooled connection, from an agent that sent no gauges: the part
    is named (pool_wait, not "exhausted": nothing shows the pool full); the text and the JSON view say it."""
    from perfbench.report.text import explain_text
    from tests.test_explain import build, recompute

    reqs = [{"endpoint": "a", "latency": 60, "wall": 55, "pool": 40, "sql": [("f1", 3)]} for _ in range(10)]
    frames = build(reqs)
    out = ex.explain_run(frames["requests"], {k: frames[k] for k in ("server", "queries", "cache", "downstream")})
    f = next(x for x in out["findings"] if x["scope"] == "p99")
    assert f["cause"] == "pool_wait" and f["part"] == "pool", f["text"]
    assert "waited 40.00 ms per request for a connection" in f["text"] and "exhausted" not in f["text"]
    assert out["requests"]["pool_ms"].to_list() == [recompute(r)["pool"] for r in reqs]
    assert out["pools"] == []
    assert "pool %" in explain_text({**out, "run_id": "r"})
    # the same with gauges showing the pool full: exhausted, and the text ends with the pool's line
    gauges = pl.DataFrame({"t_ns": [0] * 3, "name": ["pool.checked_out_max", "pool.capacity", "pool.wait_max_ms"],
                           "target": ["postgresql#1"] * 3, "value": [5.0, 5.0, 40.0]})
    out = ex.explain_run(frames["requests"], {**{k: frames[k] for k in ("server", "queries", "cache", "downstream")},
                                              "gauges": gauges.lazy()})
    assert next(x for x in out["findings"] if x["scope"] == "p99")["cause"] == "pool_exhausted"
    assert explain_text({**out, "run_id": "r"}).splitlines()[-1].startswith(
        "Connection pool exhausted: all 5 connections of postgresql#1")


def test_a_forked_worker_has_its_own_sampler() -> None:
    """A pre-forking server (gunicorn --preload) installs the agent before forking: each worker samples."""
    import os

    agent = Agent(endpoints=False).install()
    try:
        pid = os.fork()
        if pid == 0:  # the child: its sampler thread, and a sample reaching the same agent's buffer
            code = 1
            try:
                agent.gauges.reset()
                pools.watch_loop(loop := asyncio.new_event_loop())
                end = time.monotonic() + 20
                while time.monotonic() < end and not agent.gauges.pending():
                    time.sleep(0.01)
                alive = any(t.name == "perfbench-gauges" and t.is_alive() for t in threading.enumerate())
                code = 0 if alive and agent.gauges.pending() else 1
                loop.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        agent.uninstall()
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_pool_benchmark_runs(tmp_path: Path) -> None:
    """benchmarks/agent_pools.py keeps working (tiny sizes: its figures are not checked here, only its form)."""
    import os
    import re
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "agent_pools.py"), "300", "1", "0.3"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"^checkout: [\d.]+ µs without the pool watch, [\d.]+ µs with it: [+-][\d.]+ µs per checkout",
                     out.stdout, re.M), out.stdout
    assert re.search(r"^gauge sampler, idle: [\d.]+ ms of CPU in 0.3 s without it", out.stdout, re.M), out.stdout


@pytest.mark.slow  # papermill runs the notebook
def test_the_load_test_report_shows_the_exhausted_pool(tmp_path: Path, runs_dir: Path) -> None:
    """load_test's "Where the time went" on a run whose pool was too small: the pool's line and its chart."""
    from perfbench import shapes
    from perfbench.agent import AgentCollector
    from perfbench.experiments.runner import run_experiment
    from perfbench.load import run_load
    from perfbench.scenario import Request, Scenario
    from tests.conftest import ThreadServer

    server = ThreadServer(_pool_app(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}", "SELECT 1")).start()
    try:
        result = run_load(server.url, shapes.users(20, duration=1.0),
                          Scenario(name="pool", seed=1, requests=[Request("item", "GET", "/item")]), runs_dir=runs_dir,
                          progress=False, announce=lambda line: None, collectors=[AgentCollector(TOKEN, poll_s=0.5)])
    finally:
        server.stop()
    report = run_experiment("load_test", {"run_dir": str(result.path)}, reports_dir=tmp_path / "reports")
    html = Path(report.report).read_text()
    assert "Connection pool exhausted" in html or "connection pool exhausted: all 2 connections" in html
    assert "Pools and queues in the service" in html  # the gauges chart's title
