"""A callable target joined with the agent's in-process capture (``run_load(fn, capture=True)``):
each call's SQL (async SQLAlchemy on aiosqlite) attributed to the call's request id, in
queries.parquet, the summary's ``sql`` block and ``perfbench explain``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite  # noqa: F401 - the async SQLite driver the engine below loads
import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from perfbench import shapes
from perfbench.errors import ConfigError
from perfbench.load import run_load

AUTHORS = 6  # an N+1 of 6: over the threshold of 5 repetitions


def _db(path: Path):  # noqa: ANN202
    async def setup() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT)"))
            await conn.execute(sa.text("CREATE TABLE books (id INTEGER PRIMARY KEY, author_id INTEGER, title TEXT)"))
            for a in range(1, AUTHORS + 1):
                await conn.execute(sa.text("INSERT INTO authors VALUES (:i, :n)"), {"i": a, "n": f"a{a}"})
                for b in range(3):
                    await conn.execute(sa.text("INSERT INTO books (author_id, title) VALUES (:a, :t)"),
                                       {"a": a, "t": f"b{b}"})
        await engine.dispose()

    asyncio.run(setup())


def _calls(path: Path):  # noqa: ANN202
    state: dict[str, object] = {}

    def engine():  # noqa: ANN202 - made in the run's own loop, on first use
        if "engine" not in state:
            state["engine"] = create_async_engine(f"sqlite+aiosqlite:///{path}")
        return state["engine"]

    async def n_plus_one() -> int:
        async with engine().connect() as conn:
            authors = (await conn.execute(sa.text("SELECT id, name FROM authors ORDER BY id"))).all()
            n = 0
            for a in authors:  # one query per author: the N+1
                n += len((await conn.execute(sa.text("SELECT title FROM books WHERE author_id = :a"),
                                             {"a": a.id})).all())
        return n

    async def eager() -> int:
        async with engine().connect() as conn:
            rows = (await conn.execute(sa.text(
                "SELECT authors.id, books.title FROM authors JOIN books ON books.author_id = authors.id"))).all()
        return len(rows)

    return {"n_plus_one": n_plus_one, "eager": eager}


@pytest.mark.parametrize("model", ["open", "closed"])
def test_each_call_s_statements_are_attributed_to_its_request(tmp_path: Path, model: str) -> None:
    db = tmp_path / "books.db"
    _db(db)
    plan = shapes.constant(rate=40, duration=0.5) if model == "open" else shapes.users(2, 10.0)  # ends at the budget
    res = run_load(_calls(db), plan, runs_dir=tmp_path / "runs", progress=False, capture=True,
                   slos=["queries_per_request<2"], max_requests=20)
    run = Path(res.path)
    rows = pl.read_parquet(run / "requests.parquet")
    assert rows.height == 20 and rows["error"].null_count() == 20, rows.select("endpoint", "error", "error_detail")
    queries = pl.read_parquet(run / "queries.parquet")
    assert queries["request_id"].null_count() == 0  # every statement ran inside a call
    per = queries.group_by("request_id").agg(pl.len().alias("statements"), pl.col("endpoint").first())
    joined = rows.select("request_id", "endpoint").join(per, on="request_id", how="left", suffix="_agent")
    want = {"n_plus_one": 1 + AUTHORS, "eager": 1}
    for name, n in want.items():  # every call, its own statements: 1 + N for the N+1, 1 for the eager one
        mine = joined.filter(pl.col("endpoint") == name)
        assert mine.height > 0 and set(mine["statements"]) == {n}, mine
        assert set(mine["endpoint_agent"]) == {f"CALL {name}"}
    sql = res.summary["sql"]
    for name, n in want.items():  # the summary's sql block, recomputed from the rows above
        count = rows.filter(pl.col("endpoint") == name).height
        assert sql["endpoints"][name]["requests"] == count and sql["endpoints"][name]["total"] == n * count
    n1 = [p for p in sql["n_plus_one"] if p["endpoint"] == "n_plus_one"]
    assert n1 and n1[0]["repetitions_max"] == AUTHORS and "books" in n1[0]["statement"]
    assert not [p for p in sql["n_plus_one"] if p["endpoint"] == "eager"]
    (slo,) = res.summary["slo"]  # the agent's SLOs gate a callable target's run too
    assert slo["actual"] == pytest.approx(queries.height / rows.height) and slo["ok"] is (slo["actual"] < 2)
    # each call timed as the agent times a handler: explain splits its latency
    server = pl.read_parquet(run / "server_requests.parquet")
    assert set(server["request_id"]) == set(rows["request_id"])
    from perfbench.analysis.explain import explain_path

    ex = explain_path(run)
    assert ex["agent"] is True
    per_req = ex["requests"].filter(pl.col("endpoint") == "n_plus_one")
    assert (per_req["statements"] == 1 + AUTHORS).all() and per_req["timed"].all()


def test_without_capture_nothing_is_captured(tmp_path: Path) -> None:
    db = tmp_path / "books.db"
    _db(db)
    res = run_load(_calls(db), shapes.constant(rate=20, duration=0.2), runs_dir=tmp_path / "runs", progress=False)
    assert not (Path(res.path) / "queries.parquet").exists() and "sql" not in res.summary


def test_capture_is_for_a_callable_target() -> None:
    with pytest.raises(ConfigError, match="capture=True is for a callable target"):
        run_load("http://127.0.0.1:9", shapes.constant(rate=1, duration=0.1), progress=False, capture=True)
