"""perfbench.agent.capture(): the statements of a block of code, on real sqlite3, SQLAlchemy (sync and async),
asyncpg and psycopg against the PostgreSQL on 127.0.0.1:5432; nothing installed outside a capture; nested
captures; N+1 groups named by the line that loops (the demo's posts.py among them).

Counts are checked against what the drivers report by other means (SQLite's trace callback, the loops'
own arithmetic) and call sites against the line numbers of this file, read from its source.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest

import perfbench.agent
from perfbench.agent import Agent, capture
from perfbench.agent import sql as hooks
from perfbench.agent.inprocess import Capture, fingerprint_stats, report_text
from perfbench.errors import ConfigError
from perfbench.sqltext import fingerprint_and_text

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
HERE = Path(__file__).name


def red(statement: str) -> str:
    """A statement as the agent stores it: redacted (perfbench.sqltext)."""
    return fingerprint_and_text(statement)[1]


def line_of(fn, needle: str) -> int:  # noqa: ANN001
    """The line of this file where ``needle`` appears inside ``fn``'s source."""
    lines, first = inspect.getsourcelines(fn)
    (index,) = [i for i, line in enumerate(lines) if needle in line]
    return first + index


def originals() -> dict[str, object]:
    import asyncpg.connection
    import psycopg
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    return {"sqlite3.connect": sqlite3.connect, "submit": ThreadPoolExecutor.submit,
            "asyncpg._execute": asyncpg.connection.Connection._execute,
            "psycopg.Cursor.execute": psycopg.Cursor.__dict__["execute"],
            "sqlalchemy": event.contains(Engine, "before_cursor_execute", hooks._sa_before)}


# --- sqlite3 ------------------------------------------------------------------------------------------------


def n_plus_one_sqlite(conn: sqlite3.Connection, ids: list[int]) -> list[tuple]:
    out = []
    for i in ids:
        out.append(conn.execute("SELECT a, b FROM t WHERE a = ?", (i,)).fetchone())  # the loop's statement
    return out


def test_sqlite3_block_statements_n_plus_one_and_call_site() -> None:
    before = originals()
    assert before["sqlalchemy"] is False  # the starting point: nothing installed
    traced: list[str] = []
    with capture() as c:
        conn = sqlite3.connect(":memory:")
        conn.set_trace_callback(traced.append)  # SQLite's own account of what ran
        conn.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"secret-{i}") for i in range(12)])
        n_plus_one_sqlite(conn, list(range(9)))
        conn.execute("UPDATE t SET b = 'x' WHERE a < 4")
    assert originals() == before  # nothing left installed after the block

    assert c.count == 1 + 1 + 9 + 1
    ran = [t for t in traced if not t.startswith("BEGIN")]  # the implicit BEGIN is the module's, not ours
    assert len(ran) == 1 + 12 + 9 + 1  # executemany: one statement for us, each row for SQLite
    assert [s.text for s in c.statements][:2] == [red("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)"),
                                                 red("INSERT INTO t VALUES (?, ?)")]
    assert not any("secret" in s.text for s in c.statements) and "'x'" not in c.statements[-1].text
    assert c.statements[1].rows == 12 and c.statements[-1].rows == 4 and c.statements[2].rows is None
    assert c.db_ms == pytest.approx(sum(s.duration_ns for s in c.statements) / 1e6)
    assert 0 < c.db_ms <= c.elapsed_ms

    (n1,) = c.n_plus_one
    loop_line = line_of(n_plus_one_sqlite, "the loop's statement")
    assert (n1.count, n1.call_site, n1.call_function) == (9, f"tests/{HERE}:{loop_line}", "n_plus_one_sqlite")
    assert n1.text == red("SELECT a, b FROM t WHERE a = ?")
    counts = {f.text: f.count for f in c.fingerprints}
    assert counts == {red("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)"): 1, red("INSERT INTO t VALUES (?, ?)"): 1,
                      red("SELECT a, b FROM t WHERE a = ?"): 9, red("UPDATE t SET b = 'x' WHERE a < 4"): 1}
    assert [s.duration_ns for s in c.slowest(3)] == sorted((s.duration_ns for s in c.statements), reverse=True)[:3]

    text = c.report()
    assert text.splitlines()[0].startswith("capture: 12 statements, 4 fingerprints, DB ")
    assert f"9 of one fingerprint issued from tests/{HERE}:{loop_line} (n_plus_one_sqlite)" in text
    assert "slowest statements:" in text
    frame = c.frame()
    assert isinstance(frame, pl.DataFrame) and frame.height == 12
    assert frame.group_by("fingerprint").len()["len"].sort().to_list() == [1, 1, 1, 9]
    assert frame["duration_ns"].sum() == sum(s.duration_ns for s in c.statements)


def test_nested_captures_count_in_both_and_restore_at_the_end() -> None:
    before = originals()
    with capture() as outer:
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE t (a INTEGER)")
        with capture() as inner:
            conn.execute("INSERT INTO t VALUES (1)")
            conn.execute("INSERT INTO t VALUES (2)")
        assert sqlite3.connect is not before["sqlite3.connect"]  # the outer capture still needs the hooks
        conn.execute("SELECT a FROM t").fetchall()
    assert originals() == before
    assert [s.text for s in inner.statements] == [red("INSERT INTO t VALUES (1)")] * 2
    assert outer.count == 4 and [s.text for s in outer.statements][1:3] == [s.text for s in inner.statements]
    conn.execute("SELECT a FROM t")  # after the blocks: recorded nowhere
    assert outer.count == 4 and inner.count == 2
    with pytest.raises(ConfigError, match="used once"), outer:
        pass


def test_only_the_blocks_context_is_captured_threads_carried() -> None:
    """Another thread's statements are not the block's; work submitted to an executor is."""
    conn = None
    with capture() as c:
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        conn.execute("CREATE TABLE t (a INTEGER)")
        go, done = threading.Event(), threading.Event()

        def elsewhere() -> None:
            go.wait(10)
            for _ in range(3):
                conn.execute("SELECT 1")
            done.set()

        thread = threading.Thread(target=elsewhere)
        thread.start()
        go.set()
        assert done.wait(10)
        thread.join(10)
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(conn.execute, "SELECT a FROM t WHERE a = ?", (i,)) for i in range(4)]
            concurrent.futures.wait(futures, timeout=10)

        async def with_executor() -> None:
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(None, conn.execute, "SELECT 2") for _ in range(2)))

        asyncio.run(with_executor())
    texts = [s.text for s in c.statements]
    assert texts.count(red("SELECT a FROM t WHERE a = ?")) == 4 and texts.count(red("SELECT 2")) == 2
    assert len(texts) == 1 + 4 + 2  # the other thread's three SELECT 1 are not here


def test_inside_an_agents_request_both_see_the_statement() -> None:
    agent = Agent(endpoints=False).install()
    try:
        conn = sqlite3.connect(":memory:")
        token = hooks.REQUEST.set(agent.bind("7", "GET /x"))
        try:
            with capture() as c:
                conn.execute("SELECT 1")
        finally:
            hooks.REQUEST.reset(token)
        assert sqlite3.connect is not sqlite3.connect.__dict__.get("__perfbench_original__")
        assert hooks.installed()  # the capture's exit left the agent's hooks alone
        records = agent.log.drain()["queries"]
    finally:
        agent.uninstall()
    assert c.count == 1 and records["request_id"] == [7]
    assert not hooks.active()


# --- SQLAlchemy, sync and async ------------------------------------------------------------------------------


def sa_authors(session, post_ids: list[int]) -> list:  # noqa: ANN001
    from sqlalchemy import text

    return [session.execute(text("SELECT :i AS id"), {"i": i}).one() for i in post_ids]  # sa loop


def test_sqlalchemy_sync_engine_created_before_the_capture(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as c0:
        c0.execute(text("CREATE TABLE t (a INTEGER)"))
    with Session(engine) as session, capture() as c:
        sa_authors(session, list(range(6)))
        session.execute(text("INSERT INTO t VALUES (1), (2)"))
    engine.dispose()
    assert c.count == 7 and {s.source for s in c.statements} == {"sqlalchemy"}  # once each: not also sqlite3
    (n1,) = c.n_plus_one
    assert n1.count == 6 and n1.call_site == f"tests/{HERE}:{line_of(sa_authors, '# sa loop')}"
    assert c.statements[-1].rows == 2


def test_demo_posts_n_plus_one_named_with_its_line(seeded_demo_db: Path) -> None:
    """The demo's naive page under SQLAlchemy's asyncio layer (aiosqlite): the call site crosses the greenlet."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from perfbench.demo import posts
    from perfbench.demo.db import make_engine

    async def main() -> Capture:
        engine = make_engine(db_path=seeded_demo_db)
        try:
            sessions = async_sessionmaker(engine, expire_on_commit=False)
            async with sessions() as session, capture() as c:
                await posts.posts_naive(session, limit=8, offset=0)
            async with sessions() as session, capture() as eager:
                await posts.posts_eager(session, limit=8, offset=0)
        finally:
            await engine.dispose()
        assert eager.count == 2 and eager.n_plus_one == []
        return c

    c = asyncio.run(main())
    assert c.count == 1 + 2 * 8
    groups = {f.call_function: f for f in c.n_plus_one}
    assert set(groups) == {"posts_naive"} or len(c.n_plus_one) == 2
    sites = sorted(f.call_site for f in c.n_plus_one)
    author_line = line_of(posts.posts_naive, "select(User).where(User.id == post.author_id)")
    comments_first = line_of(posts.posts_naive, "comments = (")
    assert sites[0] == f"perfbench/demo/posts.py:{author_line}"
    assert sites[1].startswith("perfbench/demo/posts.py:")
    assert comments_first <= int(sites[1].rsplit(":", 1)[1]) <= comments_first + 4
    assert all(f.count == 8 for f in c.n_plus_one)
    assert f"8 of one fingerprint issued from perfbench/demo/posts.py:{author_line} (posts_naive)" in c.report()


# --- PostgreSQL: asyncpg, SQLAlchemy on asyncpg, psycopg ---------------------------------------------------


@pytest.mark.postgres
def test_asyncpg_and_sqlalchemy_async_on_postgresql() -> None:
    import asyncpg
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    before = originals()

    async def main() -> tuple[Capture, Capture]:
        conn = await asyncpg.connect(PG_DSN)
        engine = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/test")
        try:
            async with capture() as raw:
                await conn.execute("CREATE TEMP TABLE cap_t (a int)")
                await conn.executemany("INSERT INTO cap_t VALUES ($1)", [(i,) for i in range(5)])
                rows = await conn.fetch("SELECT a FROM cap_t WHERE a < $1", 3)
                assert len(rows) == 3
                await conn.execute("UPDATE cap_t SET a = a + 1 WHERE a >= $1", 2)
            async with engine.connect() as sa_conn, capture() as orm:
                for i in range(5):
                    await sa_conn.execute(text("SELECT CAST(:i AS int) AS x"), {"i": i})  # orm loop
        finally:
            await conn.close()
            await engine.dispose()
        return raw, orm

    raw, orm = asyncio.run(main())
    assert originals() == before
    assert [s.source for s in raw.statements] == ["asyncpg"] * 4
    assert [s.rows for s in raw.statements][2:] == [3, 3]
    assert orm.count == 5 and {s.source for s in orm.statements} == {"sqlalchemy"}
    (n1,) = orm.n_plus_one
    assert n1.call_function == "main" and n1.call_site.startswith(f"tests/{HERE}:")


@pytest.mark.postgres
def test_psycopg_sync_and_async() -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn, capture() as c:
        conn.execute("CREATE TEMP TABLE cap_p (a int)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO cap_p VALUES (%s)", [(i,) for i in range(4)])
            cur.execute("SELECT a FROM cap_p WHERE a >= %s", (1,))
            assert len(cur.fetchall()) == 3

    async def main() -> Capture:
        async with await psycopg.AsyncConnection.connect(PG_DSN) as aconn, capture() as ac:
            for i in range(5):
                await aconn.execute("SELECT %s::int", (i,))
        return ac

    ac = asyncio.run(main())
    assert [s.source for s in c.statements] == ["psycopg"] * 3
    assert c.statements[2].rows == 3
    assert ac.count == 5 and ac.n_plus_one[0].count == 5
    assert not hooks.active()


# --- the pure parts ------------------------------------------------------------------------------------------


def test_report_and_stats_are_pure_functions_of_the_statements() -> None:
    from perfbench.agent.inprocess import Statement

    sts = [Statement("SELECT ?", "f1", 2_000_000, None, "sqlite3", False, i, "app.py:3", "view") for i in range(5)]
    sts.append(Statement("UPDATE t SET a = ?", "f2", 9_000_000, 4, "sqlite3", True, 10, None, None))
    c = Capture(statements=sts, start_ns=0, end_ns=20_000_000)
    (f1, f2) = fingerprint_stats(sts)  # by total time: 5 x 2 ms, then 9 ms
    assert (f2.fingerprint, f2.total_ms, f2.rows, f1.count, f1.mean_ms) == ("f2", 9.0, 4, 5, 2.0)
    text = report_text(c)
    assert text.splitlines()[0] == "capture: 6 statements, 2 fingerprints, DB 19.00 ms of 20.00 ms"
    assert "  5 of one fingerprint issued from app.py:3 (view): SELECT ?" in text
    assert "9.000 ms  UPDATE t SET a = ? (error)" in text
    with pytest.raises(ConfigError, match="at least 2"):
        capture(n_plus_one=1)
    assert perfbench.agent.capture is capture and "capture" in perfbench.agent.__all__
    assert repr(c) == "<Capture closed: 6 statements, 0 cache events, 0 downstream calls>"


def test_sql_summary_names_the_call_site_of_each_n_plus_one_and_reads_older_files() -> None:
    from perfbench.analysis.results import sql_summary
    from perfbench.report.text import sql_summary_text

    requests = pl.LazyFrame({"request_id": [1, 2, 3], "endpoint": ["list", "list", "home"]})
    rows = 6 * [(1, "GET /l", "fa", "SELECT a FROM t WHERE id = ?")] + 6 * [(2, "GET /l", "fa", "SELECT a FROM t WHERE id = ?")]
    rows += [(3, "GET /", "fb", "SELECT 1"), (None, None, "fb", "SELECT 1")]
    base = {"request_id": [r[0] for r in rows], "endpoint": [r[1] for r in rows],
            "fingerprint": [r[2] for r in rows], "statement": [r[3] for r in rows],
            "duration_ns": [1_000_000] * len(rows)}
    sites = [None] * len(rows)
    sites[3] = "app/views.py:57"  # sampled once for (GET /l, fa), on any of its rows
    functions = [None] * len(rows)
    functions[3] = "list_view"
    new = pl.LazyFrame({**base, "call_site": sites, "call_function": functions})
    got = sql_summary(requests, new)
    (finding,) = got["n_plus_one"]
    assert (finding["endpoint"], finding["requests"], finding["repetitions_max"]) == ("list", 2, 6)
    assert (finding["call_site"], finding["call_function"]) == ("app/views.py:57", "list_view")
    assert got["unattributed"] == 1 and got["statements"] == len(rows)
    text = sql_summary_text({"sql": got})
    assert "  list: up to 6x in 2 requests, issued from app/views.py:57 (list_view): SELECT a FROM t" in text
    old = sql_summary(requests, pl.LazyFrame(base))  # queries.parquet of an agent that did not sample
    assert old["n_plus_one"][0]["call_site"] is None
    assert "  list: up to 6x in 2 requests: SELECT" in sql_summary_text({"sql": old})


def test_the_overhead_benchmark_finds_every_original_in_place_when_off() -> None:
    """benchmarks/agent_overhead.py --only off: the originals read before perfbench is imported are the same
    objects after the import, after a capture() block and after an Agent uninstalled (it exits 1 if not)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "agent_overhead.py"), "--only", "off"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    assert proc.stdout.startswith("nothing installed when off: after import perfbench.agent: every original in "
                                  "place; after a capture() block: every original in place; after Agent()")


# --- Django's ORM ----------------------------------------------------------------------------------------------

DJANGO_SCRIPT = '''
import json, sys
import django
from django.conf import settings

settings.configure(DEBUG=True, DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1]}},
                   INSTALLED_APPS=["django.contrib.contenttypes"], USE_TZ=True)
django.setup()
from django.db import connection, models, reset_queries

class Author(models.Model):
    name = models.CharField(max_length=50)
    class Meta:
        app_label = "shop"

class Book(models.Model):
    title = models.CharField(max_length=50)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    class Meta:
        app_label = "shop"

with connection.schema_editor() as editor:  # the connection is open before any hook exists
    editor.create_model(Author)
    editor.create_model(Book)
for i in range(6):
    Book.objects.create(title=f"b{i}", author=Author.objects.create(name=f"a{i}"))

from perfbench.agent import capture

def titles_and_authors():
    return [(b.title, b.author.name) for b in Book.objects.all()]  # the N+1: one author query per book

reset_queries()
with capture() as c:
    titles_and_authors()
    list(Book.objects.select_related("author"))
django_saw = [q["sql"] for q in connection.queries]  # Django's own record of what it ran (DEBUG=True)
with capture() as after:  # the hooks came off with the block: a second block still sees the ORM
    Author.objects.count()
print(json.dumps({"count": c.count, "sources": sorted({s.source for s in c.statements}), "django": len(django_saw),
                  "n_plus_one": [[f.count, f.call_site, f.call_function] for f in c.n_plus_one],
                  "after": after.count, "wrappers": len(connection.execute_wrappers)}))
'''


def test_django_orm_inside_a_capture_block(tmp_path: Path) -> None:
    """Django set up in a child process (settings are configured once per process), its SQLite connection opened
    before the block: capture() sees every statement the ORM ran, as Django's own DEBUG log does, once each."""
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "orm.py"
    script.write_text(DJANGO_SCRIPT)
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "shop.sqlite3")], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": root})
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout.strip().splitlines()[-1])
    assert body["count"] == body["django"] == 1 + 6 + 1  # the books, one author each, the joined listing
    assert body["sources"] == ["django"]  # recorded once, by the ORM's wrapper (not again by sqlite3's hook)
    line = next(i for i, text in enumerate(DJANGO_SCRIPT.splitlines(), 1) if "the N+1" in text)
    [(count, site, _function)] = body["n_plus_one"]
    assert count == 6 and site.endswith(f"orm.py:{line}"), body["n_plus_one"]
    assert body["after"] == 1
    assert body["wrappers"] == 0  # no capture open: the wrapper is gone again
