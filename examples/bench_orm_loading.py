"""Eager against lazy loading on the demo's models: time per call and SQL statements per call in one table.

A page of posts with their authors and comments, loaded the way the demo's naive endpoint does it (one query
for the posts, then one per post for its author and one for its comments: 1 + 2N) and the way its eager one
does (a join and one IN query: 2). ``sql=True`` counts the statements of each call through perfbench's
in-process capture and names the N+1 groups.

    pytest examples/bench_orm_loading.py             # async tests on anyio's pytest plugin (asyncio)
    python examples/bench_orm_loading.py

Where perfbench is not installed (a source checkout), add ``-p perfbench.bench.plugin`` to pytest.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from perfbench.demo.db import make_engine
from perfbench.demo.posts import posts_eager, posts_naive
from perfbench.demo.seed import SeedSizes, seed_database

SIZES = SeedSizes(users=50, posts=200, comments=600, notifications_per_user=(0, 1))
PAGE = 20


async def demo_database(path: Path):
    """The demo's engine on a SQLite file, seeded small (password hashing at 1 iteration: seeding stays fast)."""
    engine = make_engine(db_path=path)
    await seed_database(engine, sizes=SIZES, iterations=1)
    return engine, async_sessionmaker(engine, expire_on_commit=False)


def page_loader(sessions, fetch):
    async def load_page():
        async with sessions() as session:
            return await fetch(session, limit=PAGE, offset=0)
    load_page.__name__ = fetch.__name__
    return load_page


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
async def sessions(tmp_path):
    engine, maker = await demo_database(tmp_path / "demo.db")
    yield maker
    await engine.dispose()


@pytest.mark.anyio
@pytest.mark.bench(sql=True)
async def test_posts_lazy(bench, sessions):
    page = await bench.async_(page_loader(sessions, posts_naive))
    assert len(page) == PAGE
    assert bench.result.sql["statements_per_call"] == 1 + 2 * PAGE


@pytest.mark.anyio
@pytest.mark.bench(sql=True)
async def test_posts_eager(bench, sessions):
    page = await bench.async_(page_loader(sessions, posts_eager))
    assert len(page) == PAGE
    assert bench.result.sql["statements_per_call"] == 2 and bench.result.sql["n_plus_one"] == []


async def main() -> None:
    from perfbench import bench

    with tempfile.TemporaryDirectory() as tmp:
        engine, sessions = await demo_database(Path(tmp) / "demo.db")
        s = bench.Session("orm_loading", max_time=1.0, sql=True)
        await s.arun(page_loader(sessions, posts_naive), name="posts_lazy")
        await s.arun(page_loader(sessions, posts_eager), name="posts_eager")
        await engine.dispose()
    print(s)
    for r in s.results:
        for group in r.sql["n_plus_one"]:
            print(f"{r.name}: N+1, {group['repetitions']} x {group['statement'][:90]}")


if __name__ == "__main__":
    asyncio.run(main())
