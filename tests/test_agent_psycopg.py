"""psycopg 3, sync and async, against the real PostgreSQL on 127.0.0.1:5432: every statement once, attributed
to its request, redacted; nothing counted twice under SQLAlchemy or under a higher layer (Django's wrapper)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import polars as pl
import psycopg
import pytest
from psycopg import sql as pgsql

from perfbench.agent import Agent
from perfbench.agent import sql as capture
from perfbench.agent.collector import records_to_tables

DSN = "postgresql://postgres@127.0.0.1:5432/test"
pytestmark = pytest.mark.postgres


@pytest.fixture
def agent() -> Iterator[Agent]:
    agent = Agent(endpoints=False).install()
    try:
        yield agent
    finally:
        agent.uninstall()


def frame(agent: Agent) -> pl.DataFrame:
    return pl.from_arrow(records_to_tables(agent.log.drain())[0])


def test_sync_statements_are_attributed_once_each(agent: Agent) -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        token = capture.REQUEST.set(agent.bind("21", "GET /sync"))
        try:
            conn.execute("CREATE TEMP TABLE t (id int, name text)")                    # 1
            conn.execute("INSERT INTO t VALUES (%s, %s)", (1, "secret-one"))            # 2
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO t VALUES (%s, %s)", [(i, "x") for i in range(2, 6)])  # 3: one row
                cur.execute(pgsql.SQL("SELECT {} FROM t WHERE id = %s").format(pgsql.Identifier("name")), (1,))  # 4
                assert cur.fetchone() == ("secret-one",)
            with psycopg.ClientCursor(conn) as cur:
                cur.execute("SELECT count(*) FROM t WHERE name <> %s", ("x",))          # 5
            with conn.transaction(), conn.cursor(name="named") as cur:  # a server-side cursor
                cur.execute("SELECT id FROM t ORDER BY id")                              # 6 (+ BEGIN/COMMIT)
                assert len(cur.fetchall()) == 5
            with pytest.raises(psycopg.errors.UndefinedTable):
                conn.execute("SELECT * FROM no_such_table WHERE a = 'secret-two'")      # 7, failed
        finally:
            capture.REQUEST.reset(token)
        conn.execute("SELECT 1")  # outside any request
    got = frame(agent)
    mine = got.filter(pl.col("request_id") == 21)
    assert mine.height == 7 and set(mine["source"]) == {"psycopg"} and set(mine["endpoint"]) == {"GET /sync"}
    assert mine["error"].to_list() == [False] * 6 + [True]
    assert any('select "name" from t where id = ' in s.lower() for s in mine["statement"])  # the Composed, rendered
    assert not mine["statement"].str.contains("secret").any()
    outside = got.filter(pl.col("request_id").is_null())
    assert outside["request_id_status"].to_list() == ["outside"]


def test_async_statements_are_attributed_per_task(agent: Agent) -> None:
    async def request(conn: psycopg.AsyncConnection, rid: int, n: int) -> None:
        token = capture.REQUEST.set(agent.bind(str(rid), "GET /async"))
        try:
            for i in range(n):
                await conn.execute("SELECT %s::int", (i,))
            async with conn.cursor() as cur:
                await cur.executemany("SELECT %s::int", [(1,), (2,)])
        finally:
            capture.REQUEST.reset(token)

    async def main() -> None:
        conns = [await psycopg.AsyncConnection.connect(DSN, autocommit=True) for _ in range(2)]
        try:  # two requests at once, on two connections, interleaved on one event loop
            await asyncio.gather(request(conns[0], 31, 3), request(conns[1], 32, 5))
            with pytest.raises(psycopg.errors.DivisionByZero):  # outside any request from here on
                await conns[0].execute("SELECT 1 / 0")
            async with conns[1].transaction(), conns[1].cursor(name="srv") as cur:  # a server-side cursor
                await cur.execute("SELECT generate_series(1, 3)")
                assert len(await cur.fetchall()) == 3
        finally:
            for conn in conns:
                await conn.close()

    asyncio.run(main())
    got = frame(agent)
    per = dict(got.filter(pl.col("request_id").is_not_null()).group_by("request_id").len().iter_rows())
    assert per == {31: 3 + 1, 32: 5 + 1}
    outside = got.filter(pl.col("request_id").is_null())
    assert outside["error"].to_list() == [True, False]  # the division, then the server-side cursor
    assert set(got["source"]) == {"psycopg"}


def test_sqlalchemy_on_psycopg_counts_each_statement_once(agent: Agent) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    token = capture.REQUEST.set(agent.bind("41", "GET /sa"))
    try:
        with engine.connect() as conn:
            for i in range(3):
                conn.execute(text("SELECT :i"), {"i": i})
    finally:
        capture.REQUEST.reset(token)
        engine.dispose()

    async def main() -> None:
        aengine = create_async_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
        token = capture.REQUEST.set(agent.bind("42", "GET /sa-async"))
        try:
            async with aengine.connect() as conn:
                for i in range(4):
                    await conn.execute(text("SELECT :i"), {"i": i})
        finally:
            capture.REQUEST.reset(token)
            await aengine.dispose()

    asyncio.run(main())
    got = frame(agent).filter(pl.col("request_id").is_not_null())
    mine = got.filter(pl.col("statement").str.starts_with("SELECT %(i)s") | pl.col("statement").str.starts_with("SELECT ?"))
    assert dict(mine.group_by("request_id").len().iter_rows()) == {41: 3, 42: 4}
    assert set(got["source"]) == {"sqlalchemy"}  # the psycopg hook skipped SQLAlchemy's connections


def test_a_higher_layer_recording_a_statement_hides_it_from_the_driver_hook(agent: Agent) -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        outer = capture.OUTER.set(True)  # what Django's execute wrapper does around each statement
        try:
            conn.execute("SELECT 1")
        finally:
            capture.OUTER.reset(outer)
        conn.execute("SELECT 2")
    assert frame(agent)["statement"].to_list() == ["SELECT ?"]
