"""The ORM guide's load test of async ORM calls, in process: the demo's naive and eager post listings as a
callable target, each call a row, its SQL attributed to it by perfbench's in-process capture.

    perfbench run examples/orm_calls.py --rate 50 --duration 10 --capture
    perfbench explain data/runs/<run-id>          # database time against the rest, call by call

The file defines ``calls`` (a table of names to async functions) and ``scenario`` (their weights). Each
call's latency counts from its planned start, like a request's; what a call raises is a row of kind
``client``. With ``--capture`` the summary has the statements per call and names the N+1 patterns
(the naive listing: 1 + 2 x 20 statements a call; the eager one: 2).
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker

from perfbench.demo.db import make_engine
from perfbench.demo.posts import posts_eager, posts_naive
from perfbench.demo.seed import SeedSizes, seed_database
from perfbench.scenario import Request, Scenario

PAGE = 20
_dir = Path(tempfile.mkdtemp(prefix="perfbench-orm-calls-"))
atexit.register(shutil.rmtree, _dir, ignore_errors=True)
DB = _dir / "demo.db"


async def _seed() -> None:
    engine = make_engine(db_path=DB)
    await seed_database(engine, sizes=SeedSizes(users=50, posts=200, comments=600, notifications_per_user=(0, 1)),
                        iterations=1)
    await engine.dispose()


asyncio.run(_seed())  # before the run, on a loop of its own
_sessions: list[async_sessionmaker] = []


def sessions() -> async_sessionmaker:
    """The run's session maker, made on first use in the run's own event loop."""
    if not _sessions:
        _sessions.append(async_sessionmaker(make_engine(db_path=DB), expire_on_commit=False))
    return _sessions[0]


async def list_posts_naive() -> int:
    async with sessions()() as session:
        return len(await posts_naive(session, limit=PAGE, offset=0))


async def list_posts_eager() -> int:
    async with sessions()() as session:
        return len(await posts_eager(session, limit=PAGE, offset=0))


calls = {"posts_naive": list_posts_naive, "posts_eager": list_posts_eager}
scenario = Scenario([Request("posts_naive", "CALL", "/posts_naive", weight=1),
                     Request("posts_eager", "CALL", "/posts_eager", weight=3)], name="orm_calls", cookies=False)
