"""The service agent on the demo (SQLite and PostgreSQL), the AgentCollector in a real run, and the
agent in a third-party ASGI application (Datasette, served by uvicorn on 127.0.0.1).

Query counts are checked against counters that do not go through the agent: SQLite's own trace
callback on the raw connections, and a test-local wrapper around asyncpg's execution methods.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import event

from perfbench import shapes, sqltext
from perfbench.agent import Agent, AgentCollector, AgentError, cache_hit
from perfbench.agent import sql as capture
from perfbench.agent.collector import records_to_tables
from perfbench.analysis import queries as analysis
from perfbench.analysis import results
from perfbench.demo import create_app
from perfbench.demo.app import AGENT
from perfbench.demo.state import STATE
from perfbench.load import run_load
from perfbench.scenario import Request, Scenario
from tests.conftest import UvicornThread

TOKEN = "test-token-" + "x" * 16
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DML = ("select", "insert", "update", "delete", "with")


@pytest.fixture(scope="module")
def seeded_db(demo_db_copy) -> Path:
    return demo_db_copy()


def drained_frame(agent: Agent) -> pl.DataFrame:
    queries, _cache = records_to_tables(agent.log.drain())
    return pl.from_arrow(queries)


# --- independent counters ------------------------------------------------------------------------------


def sqlite_trace(app: web.Application) -> list[str]:
    """SQLite's own trace callback on every raw connection the app's pool hands out."""
    seen: list[str] = []

    async def attach(app: web.Application) -> None:
        def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            raw = dbapi_connection._connection._connection  # aiosqlite adapter -> aiosqlite -> sqlite3
            assert isinstance(raw, sqlite3.Connection)
            raw.set_trace_callback(seen.append)

        event.listen(app[STATE].engine.sync_engine.pool, "checkout", checkout)

    app.on_startup.append(attach)
    return seen


class AsyncpgCounter:
    """Counts what asyncpg really executes (prepared statements and plain queries), test-local."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __enter__(self) -> AsyncpgCounter:
        import asyncpg.connection as apc
        import asyncpg.prepared_stmt as aps

        self._saved = (aps.PreparedStatement._PreparedStatement__bind_execute, apc.Connection._execute)
        bind, conn_execute = self._saved
        statements = self.statements

        async def bind_execute(ps: Any, *args: Any) -> Any:
            statements.append(ps.get_query())
            return await bind(ps, *args)

        async def execute(conn: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            statements.append(query)
            return await conn_execute(conn, query, *args, **kwargs)

        aps.PreparedStatement._PreparedStatement__bind_execute = bind_execute
        apc.Connection._execute = execute
        return self

    def __exit__(self, *exc: Any) -> None:
        import asyncpg.connection as apc
        import asyncpg.prepared_stmt as aps

        aps.PreparedStatement._PreparedStatement__bind_execute, apc.Connection._execute = self._saved

    def dml(self, start: int = 0) -> list[str]:
        return [s for s in self.statements[start:] if s.lstrip().lower().startswith(DML)]


# --- the agent's rules -------------------------------------------------------------------------------------


def test_endpoints_need_a_token() -> None:
    with pytest.raises(AgentError, match="need a token"):
        Agent(endpoints=True)
    with pytest.raises(AgentError, match="at least 16"):
        Agent("short", endpoints=True)
    assert "x" * 16 not in repr(Agent(TOKEN, endpoints=True))
    off = Agent(TOKEN, endpoints=False)
    assert not off.is_agent_path("/_perfbench/status")


def test_endpoints_answer_only_loopback_with_the_token() -> None:
    agent = Agent(TOKEN, endpoints=True)
    assert agent.handle("GET", "/_perfbench/status", {}, "10.1.2.3", TOKEN)[0] == 403
    assert agent.handle("GET", "/_perfbench/status", {}, None, TOKEN)[0] == 403
    assert agent.handle("GET", "/_perfbench/status", {}, "127.0.0.1", None)[0] == 401
    assert agent.handle("GET", "/_perfbench/status", {}, "127.0.0.1", TOKEN + "y")[0] == 401
    assert agent.handle("GET", "/_perfbench/status", {}, "::1", TOKEN)[0] == 200
    assert agent.handle("GET", "/_perfbench/records", {}, "127.0.0.1", TOKEN)[0] == 405
    assert agent.handle("POST", "/_perfbench/records", {"limit": "x"}, "127.0.0.1", TOKEN)[0] == 400
    assert agent.handle("GET", "/_perfbench/nope", {}, "127.0.0.1", TOKEN)[0] == 404


# --- the demo on SQLite --------------------------------------------------------------------------------------


def test_demo_naive_posts_is_an_n_plus_one_and_eager_is_not(seeded_db: Path) -> None:
    async def main() -> tuple[pl.DataFrame, dict[int, int], list[dict]]:
        app = create_app(db_path=seeded_db, agent_token=TOKEN)
        trace = sqlite_trace(app)
        truth: dict[int, int] = {}
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            agent: Agent = app[AGENT]
            agent.log.reset()
            plan = [(1, "/api/posts?limit=7"), (2, "/api/posts?limit=7&eager=1"), (3, "/api/v2/posts?limit=20"),
                    (4, "/api/posts"), (5, "/api/posts?limit=3&offset=40"), (6, "/health")]
            for rid, path in plan:
                start = len(trace)
                resp = await client.get(path, headers={"X-Request-Id": str(rid)})
                assert resp.status == 200
                truth[rid] = sum(1 for s in trace[start:] if s.lstrip().lower().startswith(DML))
            # malformed ids: recorded unattributed, the service answers normally
            for bad in ("abc", "12abc; DROP TABLE x", "99999999999999999999999", ""):
                resp = await client.get("/api/posts?limit=2", headers={"X-Request-Id": bad})
                assert resp.status == 200
            frame = drained_frame(agent)
            denied = await client.post("/_perfbench/records")
            assert denied.status == 401
            ok = await client.get("/_perfbench/status", headers={"X-Perfbench-Token": TOKEN})
            assert ok.status == 200 and (await ok.json())["capturing"] is True
            pages = []
        return frame, truth, pages

    frame, truth, _ = asyncio.run(main())
    per = analysis.queries_per_request(frame)
    counts = dict(zip(per["request_id"].to_list(), per["queries"].to_list(), strict=True))
    # what the driver really ran, request by request (a request with no SQL has no row)
    assert {rid: counts.get(rid, 0) for rid in truth} == truth
    assert truth[1] == 1 + 2 * 7 and truth[4] == 1 + 2 * 20 and truth[5] == 1 + 2 * 3
    assert truth[2] == truth[3] == 2 and truth[6] == 0
    findings = analysis.n_plus_one(frame, threshold=5)
    flagged = {(r["request_id"], r["repetitions"]) for r in findings.iter_rows(named=True)}
    # two fingerprints per naive page (author and comments), each once per post on the page
    assert flagged == {(1, 7), (4, 20)}
    assert findings.height == 4
    statements = set(findings["statement"])
    assert any("FROM users WHERE users.id = ?" in s for s in statements)
    assert any("FROM comments WHERE comments.post_id = ?" in s for s in statements)
    assert set(findings["endpoint"]) == {"GET /api/posts"}
    assert analysis.n_plus_one(frame, threshold=3).filter(pl.col("request_id") == 5)["repetitions"].to_list() == [3, 3]
    # the eager page's comments come from one IN query whose fingerprint does not depend on the page size
    eager_fps = frame.filter(pl.col("request_id").is_in([2, 3]))
    assert eager_fps["fingerprint"].n_unique() == 2
    # malformed ids: unattributed, marked as such, and nothing else was lost
    bad = frame.filter(pl.col("request_id_status") == "malformed")
    assert bad["request_id"].null_count() == bad.height == 4 * (1 + 2 * 2)  # an empty value is malformed too
    assert not frame["statement"].str.contains("'").any()


def test_cache_hits_and_misses_are_attributed(seeded_db: Path) -> None:
    async def main() -> pl.DataFrame:
        from perfbench.demo.seed import credentials

        app = create_app(db_path=seeded_db, agent_token=TOKEN)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            email, password = credentials(3)
            token = (await (await client.post("/auth/login", json={"email": email, "password": password})).json())
            headers = {"Authorization": f"Bearer {token['token']}"}
            for rid in (10, 11):
                resp = await client.get("/api/reports/activity?months=2", headers={**headers, "X-Request-Id": str(rid)})
                assert resp.status == 200
            _queries, cache = records_to_tables(app[AGENT].log.drain())
            return pl.from_arrow(cache)

    cache = asyncio.run(main())
    assert cache.select("request_id", "kind", "name").rows() == [(10, "miss", "memory"), (11, "hit", "memory")]
    assert set(cache["endpoint"]) == {"GET /api/reports/activity"}


def test_context_follows_into_executor_threads() -> None:
    """A service that runs sqlite3 in run_in_executor (as Datasette does) still gets attribution."""
    agent = Agent().install()
    try:
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        conn.execute("CREATE TABLE t (a INTEGER)")

        async def handler(rid: int) -> None:
            token = capture.REQUEST.set(agent.bind(str(rid), "GET /x"))
            try:
                loop = asyncio.get_running_loop()
                for i in range(rid):
                    await loop.run_in_executor(None, conn.execute, "SELECT a FROM t WHERE a = ?", (i,))
                cache_hit("x")
            finally:
                capture.REQUEST.reset(token)

        async def main() -> None:
            await asyncio.gather(*(handler(rid) for rid in (2, 3, 5)))

        asyncio.run(main())
        body = agent.log.drain()
    finally:
        agent.uninstall()
    frame = pl.from_arrow(records_to_tables(body)[0])
    per = frame.filter(pl.col("request_id").is_not_null()).group_by("request_id").len().sort("request_id")
    assert per.rows() == [(2, 2), (3, 3), (5, 5)]
    assert set(frame.filter(pl.col("request_id").is_not_null())["source"]) == {"sqlite3"}
    assert body["cache"]["request_id"] == [2, 3, 5] or sorted(body["cache"]["request_id"]) == [2, 3, 5]
    assert not capture.installed()


# --- the demo on PostgreSQL ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
def test_demo_on_postgresql_counts_match_the_driver() -> None:
    import asyncpg

    schema = f"perfbench_agent_test_{uuid.uuid4().hex[:10]}"

    async def main() -> tuple[pl.DataFrame, dict[int, int]]:
        truth: dict[int, int] = {}
        try:
            app = create_app(db_url=PG_URL, db_schema=schema, agent_token=TOKEN)
            async with TestClient(TestServer(app, host="127.0.0.1")) as client:
                agent: Agent = app[AGENT]
                agent.log.reset()
                with AsyncpgCounter() as counter:
                    for rid, path in [(1, "/api/posts?limit=6"), (2, "/api/posts?limit=6&eager=1"),
                                      (3, "/api/posts?limit=12&offset=5"), (4, "/api/v2/posts?limit=12")]:
                        start = len(counter.statements)
                        assert (await client.get(path, headers={"X-Request-Id": str(rid)})).status == 200
                        truth[rid] = len(counter.dml(start))
                    resp = await client.get("/api/posts?limit=2", headers={"X-Request-Id": "not-a-number"})
                    assert resp.status == 200
                frame = drained_frame(agent)
        finally:
            conn = await asyncpg.connect(PG_DSN)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()
        return frame, truth

    frame, truth = asyncio.run(main())
    assert truth == {1: 1 + 2 * 6, 2: 2, 3: 1 + 2 * 12, 4: 2}
    per = analysis.queries_per_request(frame)
    assert dict(zip(per["request_id"].to_list(), per["queries"].to_list(), strict=True)) == truth
    findings = analysis.n_plus_one(frame)
    assert sorted(set(zip(findings["request_id"], findings["repetitions"], strict=True))) == [(1, 6), (3, 12)]
    assert findings.height == 4
    assert set(frame["source"]) == {"sqlalchemy"}  # the asyncpg hook skipped SQLAlchemy's connections
    assert frame.filter(pl.col("request_id_status") == "malformed").height == 1 + 2 * 2


@pytest.mark.postgres
def test_raw_asyncpg_is_captured_and_fingerprinted() -> None:
    import asyncpg

    agent = Agent().install()

    async def main() -> None:
        conn = await asyncpg.connect(PG_DSN)
        try:
            token = capture.REQUEST.set(agent.bind("77", "GET /raw"))
            try:
                await conn.fetch("SELECT $1::int + 1", 41)
                await conn.fetchval("SELECT $1::int + 1", 1)
                stmt = await conn.prepare("SELECT generate_series(1, $1::int)")
                await stmt.fetch(3)
                await conn.execute("SELECT 1")
                await conn.fetch("SELECT x FROM unnest(ARRAY[1,2,3]) AS x WHERE x IN (1, 2)")
                with pytest.raises(asyncpg.PostgresError):
                    await conn.fetch("SELECT * FROM no_such_table_here WHERE a = 'secret'")
            finally:
                capture.REQUEST.reset(token)
        finally:
            await conn.close()

    try:
        asyncio.run(main())
        frame = drained_frame(agent)
    finally:
        agent.uninstall()
    mine = frame.filter(pl.col("request_id") == 77)
    assert mine.height == 6 and set(mine["source"]) == {"asyncpg"}
    assert mine["fingerprint"].n_unique() == 5  # the two "$1::int + 1" share one
    assert mine["error"].sum() == 1
    assert not mine["statement"].str.contains("secret").any()


# --- a real run: engine -> agent -> queries.parquet -> joins -------------------------------------------------


def test_run_with_agent_collector_writes_queries_and_joins(seeded_db: Path, runs_dir: Path) -> None:
    from tests.conftest import ThreadServer

    server = ThreadServer(create_app(db_path=seeded_db, agent_token=TOKEN)).start()
    try:
        scenario = Scenario(name="posts", seed=1, requests=[
            Request("posts_naive", "GET", "/api/posts?limit=6", weight=1),
            Request("posts_eager", "GET", "/api/posts?limit=6&eager=1", weight=1),
            Request("health", "GET", "/health", weight=1),
        ])
        collector = AgentCollector(TOKEN, poll_s=0.2, batch=50)
        result = run_load(server.url, shapes.constant(rate=60, duration=1.0), scenario, runs_dir=runs_dir,
                          progress=False, announce=lambda line: None, collectors=[collector])
    finally:
        server.stop()
    meta = results.Run.load(result.path).meta
    report = meta["collectors"]["agent"]
    assert "error" not in report, report
    assert report["dropped_queries"] == 0 and report["fetches"] >= 2
    run = results.Run.load(result.path)
    per = analysis.request_queries(run.requests, run.queries)
    n_requests = run.requests.select(pl.len()).collect().item()
    assert per.height == n_requests > 0  # the join loses no request
    by = dict(per.group_by("endpoint").agg(pl.col("queries").unique().sort()).iter_rows())
    assert by == {"posts_naive": [13], "posts_eager": [2], "health": [0]}
    assert per.filter(pl.col("queries") > 0)["db_ms"].min() > 0
    stats = analysis.query_count_stats(per)
    assert stats.filter(pl.col("endpoint") == "posts_naive")["p50"].item() == 13
    qs = run.queries.collect()
    assert qs.height == report["queries"] and report["unattributed_queries"] == 0
    assert qs["t_ns"].min() >= -1_000_000_000 and qs["t_ns"].max() < 30e9  # the run's time base
    joined = analysis.queries_with_requests(run.requests, run.queries).collect()
    findings = analysis.n_plus_one(joined, endpoint="endpoint")
    assert set(findings["endpoint"]) == {"posts_naive"} and set(findings["repetitions"]) == {6}
    assert findings["call_site"].str.starts_with("perfbench/demo/posts.py:").all()  # the line that loops
    assert set(analysis.n_plus_one_summary(findings)["call_function"]) == {"posts_naive"}
    slow, fps = analysis.slowest_requests_queries(run.requests, run.queries, fraction=0.5)
    assert slow.height >= 1 and fps["share"].sum() == pytest.approx(1.0)
    assert (result.path / "cache.parquet").exists()


def test_collector_refuses_a_wrong_token(seeded_db: Path, runs_dir: Path) -> None:
    from tests.conftest import ThreadServer

    server = ThreadServer(create_app(db_path=seeded_db, agent_token=TOKEN)).start()
    try:
        result = run_load(server.url, shapes.constant(rate=10, duration=0.3), None, runs_dir=runs_dir,
                          progress=False, announce=lambda line: None,
                          collectors=[AgentCollector("wrong-token-" + "z" * 10)])
    finally:
        server.stop()
    meta = results.Run.load(result.path).meta
    assert "401" in meta["collectors"]["agent"]["error"]
    assert not (result.path / "queries.parquet").exists()


# --- a third-party ASGI application: Datasette on uvicorn ----------------------------------------------------


def test_agent_in_datasette(tmp_path: Path) -> None:
    import aiohttp
    import datasette.app as datasette_app

    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        conn.executemany("INSERT INTO items VALUES (?, ?, ?)", [(i, f"item {i}", i * 1.5) for i in range(1, 51)])
    conn.close()

    agent = Agent(TOKEN, endpoints=True)
    traced: list[tuple[int | None, str]] = []

    # Datasette's own plugin hook gives us its raw connections: SQLite's trace callback there is
    # the independent count (it runs in Datasette's executor threads, so it records the tag we carried).
    import types

    from datasette import hookimpl
    from datasette.plugins import pm

    @hookimpl
    def prepare_connection(conn: sqlite3.Connection, database: str) -> None:
        if database == "shop":
            conn.set_trace_callback(lambda sql: traced.append((getattr(capture.REQUEST.get(), "request_id", None), sql)))

    plugin = types.ModuleType("perfbench_test_trace")
    plugin.prepare_connection = prepare_connection  # type: ignore[attr-defined]
    pm.register(plugin, name="perfbench-test-trace")
    try:
        ds = datasette_app.Datasette([str(db)])
        app = agent.wrap_asgi(ds.app())
        try:
            with UvicornThread(app) as url:
                async def main() -> list[int]:
                    async with aiohttp.ClientSession() as session:
                        statuses = []
                        for rid, path in [(101, "/shop/items.json?_shape=array&id=7"),
                                          (102, "/shop.json?sql=select+name+from+items+where+price+>+30"),
                                          (103, "/shop/items/3.json")]:
                            async with session.get(url + path, headers={"X-Request-Id": str(rid)}) as resp:
                                statuses.append(resp.status)
                        async with session.get(url + "/shop/items.json", headers={"X-Request-Id": "x1"}) as resp:
                            statuses.append(resp.status)
                        async with session.post(url + "/_perfbench/records",
                                                headers={"X-Perfbench-Token": TOKEN}) as resp:
                            statuses.append(resp.status)
                            body = await resp.json()
                        return statuses, body

                statuses, body = asyncio.run(main())
        finally:
            agent.uninstall()
    finally:
        pm.unregister(plugin)
    assert statuses == [200, 200, 200, 200, 200]
    frame = pl.from_arrow(records_to_tables(body)[0])
    for rid in (101, 102, 103):
        # every statement SQLite ran on the shop database for this request is in the agent's record,
        # fingerprint for fingerprint and count for count
        truth = sorted(sqltext.fingerprint(sql) for r, sql in traced if r == rid)
        assert truth, rid
        mine = frame.filter(pl.col("request_id") == rid)
        got = sorted(mine["fingerprint"].to_list())
        missing = [fp for fp in set(truth) if truth.count(fp) > got.count(fp)]
        assert not missing, (rid, missing)
    ran = frame.filter(pl.col("request_id") == 102)["statement"].to_list()
    assert any("from items where price > ?" in s for s in ran)
    assert set(frame.filter(pl.col("request_id") == 101)["endpoint"]) == {"GET /shop/items.json"}
    assert frame.filter(pl.col("request_id_status") == "malformed").height > 0
    assert set(frame.filter(pl.col("request_id").is_not_null())["source"]) == {"sqlite3"}


# --- perfbench run --agent: the SQL in brief, on the terminal and in summary.json ------------------------------


def test_cli_run_with_agent_prints_and_keeps_the_sql_summary(seeded_db: Path, runs_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from perfbench.cli import main
    from tests.conftest import ThreadServer

    monkeypatch.setenv("PERFBENCH_AGENT_TOKEN", TOKEN)
    server = ThreadServer(create_app(db_path=seeded_db, agent_token=TOKEN)).start()
    try:
        code = main(["run", server.url, "--agent", "--rate", "40", "--duration", "1", "--quiet", "--runs-dir",
                     str(runs_dir), "--path", "naive=GET /api/posts?limit=6", "--path", "eager=GET /api/posts?limit=6&eager=1",
                     "--path", "health=GET /health"])
    finally:
        server.stop()
    out = capsys.readouterr().out
    assert code == 0, out
    (run_dir,) = runs_dir.iterdir()
    sql = json.loads((run_dir / "summary.json").read_text())["sql"]
    run = results.Run.load(run_dir)
    queries = run.queries.collect()
    # every figure recomputed from the rows
    assert sql["statements"] == queries.height and sql["unattributed"] == 0
    per = analysis.request_queries(run.requests, run.queries)
    for name, want in (("naive", 13), ("eager", 2), ("health", 0)):
        mine = per.filter(pl.col("endpoint") == name)
        got = sql["endpoints"][name]
        assert got["requests"] == mine.height > 0 and got["p50"] == got["max"] == want
        assert got["total"] == mine["queries"].sum() and got["per_request_mean"] == pytest.approx(want)
    # the naive listing's two per-post statements (its author, its comments), six times each
    assert sql["n_plus_one_patterns"] == len(sql["n_plus_one"]) == 2
    for finding in sql["n_plus_one"]:
        assert finding["endpoint"] == "naive" and finding["repetitions_max"] == 6
        assert finding["requests"] == sql["endpoints"]["naive"]["requests"]
    # and on the terminal, after the latency table
    assert out.index("p99 ms") < out.index("server-side SQL (the agent): ") < out.index("run directory:")
    assert f"{queries.height} statements, 0 unattributed" in out
    assert "N+1: 2 patterns (a statement 5+ times in one request):" in out
    assert "  naive: up to 6x in " in out
    # each N+1 named by the line of the demo that loops (the agent sampled it once per route)
    import inspect

    from perfbench.demo import posts

    lines, first = inspect.getsourcelines(posts.posts_naive)
    author = first + next(i for i, line in enumerate(lines) if "select(User).where(User.id == post.author_id)" in line)
    comments = first + next(i for i, line in enumerate(lines) if "comments = (" in line)
    sites = sorted(f["call_site"] for f in sql["n_plus_one"])
    assert sites[0] == f"perfbench/demo/posts.py:{author}" and {f["call_function"] for f in sql["n_plus_one"]} == {
        "posts_naive"}
    assert comments <= int(sites[1].rsplit(":", 1)[1]) <= comments + 4
    assert f"requests, issued from perfbench/demo/posts.py:{author} (posts_naive): SELECT" in out
    sampled = queries.filter(pl.col("call_site").is_not_null())
    assert sampled.height == sampled.select("endpoint", "fingerprint").n_unique()  # once per fingerprint per route
    # recomputing the summary keeps it
    assert results.Run.load(run_dir).write_summary()["sql"] == sql
    # perfbench summary prints the same SQL block as the run did
    assert main(["summary", str(run_dir)]) == 0
    printed = capsys.readouterr().out
    block = out[out.index("server-side SQL (the agent): "):out.index("run directory:")].rstrip()
    assert block and block in printed
