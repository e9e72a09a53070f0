"""A small aiohttp service whose SQLAlchemy pool is too small for its load: ``perfbench explain`` names it.

Each request to ``/item`` holds one of only two pooled connections (``pool_size=2, max_overflow=0``) for
about 30 ms; under 20 concurrent users the rest wait for a connection. Serve it with the agent's token
and load it:

    export PERFBENCH_AGENT_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe())')
    python examples/pool_exhaustion.py --port 8081 &          # SQLite (aiosqlite); --db URL for another
    perfbench run http://127.0.0.1:8081 --users 20 --duration 3 --path item="GET /item" --agent
    perfbench explain data/runs/<that run>                      # "... connection pool exhausted ..."
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from perfbench.agent import Agent


def create_app(db_url: str, hold_s: float = 0.03) -> web.Application:
    app = web.Application()
    Agent().install_aiohttp(app)  # the token from $PERFBENCH_AGENT_TOKEN
    engine = create_async_engine(db_url, pool_size=2, max_overflow=0, pool_timeout=60,
                                 poolclass=AsyncAdaptedQueuePool)

    async def item(request: web.Request) -> web.Response:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await asyncio.sleep(hold_s)  # work done while holding the connection (a slow query, a transaction)
        return web.Response(text="ok")

    async def dispose(_app: web.Application) -> None:
        await engine.dispose()

    app.router.add_get("/item", item)
    app.on_cleanup.append(dispose)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--db", default=None, help="an async SQLAlchemy URL (default: a SQLite file in a temp dir)")
    args = p.parse_args()
    db = args.db or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'pool.db'}"
    web.run_app(create_app(db), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
