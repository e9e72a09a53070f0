"""The demo web service: `create_app()`, its middleware, lifecycle and small endpoints.

Endpoints (JSON everywhere; errors are `{"error": "..."}` with a fitting status):

| method | path | auth | what |
| --- | --- | --- | --- |
| GET | /health | - | `{"status": "ok"}`, touches nothing |
| POST | /auth/login | - | `{"email", "password"}` -> `{"token", "user_id"}`; 401, 400 |
| POST | /auth/register | - | `{"email", "password"}` -> 201 `{"user_id", "email"}`; 409, 400; see `journeys.py` |
| GET | /api/feed?limit=&cursor= | - | posts paged by cursor (`page.next_cursor`), see `journeys.py` |
| POST | /graphql | - | a stand-in answering `posts(first, after)` with cursors, see `journeys.py` |
| GET/POST | /api/notifications[...] | bearer | see `notifications.py` |
| GET | /api/posts, /api/v2/posts | - | N+1 and eager versions, see `posts.py` |
| GET | /api/reports/activity | bearer | cached expensive report, see `reports.py` |
| GET | /api/cache/stats | - | `{"hits", "misses", "backend", "keys"}` |
| POST | /api/cache/clear | - | empty the cache and reset the counters |
| POST | /api/leak | - | leak ~10 KB on purpose, see `leak.py`; `{"count": n}` |

Every response echoes the request's `X-Request-Id` header when it has one.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from ..errors import ConfigError
from ..wire import REQUEST_ID_HEADER
from . import journeys, leak, notifications, posts, reports
from .auth import DEFAULT_ITERATIONS, TokenSigner, hash_password, verify_password
from .cache import DEFAULT_PREFIX, make_cache
from .db import database_url, make_engine, prepare_database
from .models import User
from .seed import DEFAULT_SEED
from .slowdown import parse_slowdown, slowdown_middleware
from .state import STATE, DemoState, get_state
from .validation import ApiError, read_json_object, require_str

log = logging.getLogger("perfbench.demo")

AGENT: web.AppKey[Any] = web.AppKey("perfbench_agent", object)
routes = web.RouteTableDef()


def create_app(
    *,
    db_url: str | None = None,
    cache_url: str | None = None,
    seed: int = DEFAULT_SEED,
    secret: bytes | None = None,
    db_path: str | Path | None = None,
    db_schema: str | None = None,
    cache_prefix: str = DEFAULT_PREFIX,
    report_ttl: float = 60.0,
    token_ttl: float = 3600.0,
    password_iterations: int = DEFAULT_ITERATIONS,
    agent_token: str | None = None,
    slowdown: Sequence[str] = (),
) -> web.Application:
    """The demo service as an aiohttp Application; nothing is opened until it starts.

    - `db_url`: None for SQLite at `db_path` (default `data/demo/demo.sqlite3`,
      relative to the working directory), or `postgresql+asyncpg://user@host/db`.
    - `db_schema`: PostgreSQL only; the demo's tables go in this schema (created if missing).
    - `cache_url`: None for the in-process cache, or `redis://host:port/db`;
      Redis keys start with `cache_prefix`, and clearing touches only those.
    - `seed`: the data set; startup creates the tables and seeds them, or does
      nothing if the database is already seeded with this seed.
    - `secret`: the token-signing key (random per app if None, so tokens die
      with the process); `token_ttl` their lifetime in seconds.
    - `report_ttl`: seconds a cached report lives.
    - `password_iterations`: PBKDF2 iterations for newly seeded users.
    - `agent_token`: run with the perfbench agent on (`perfbench.agent`): every SQL
      statement and cache hit/miss is attributed to the engine's `X-Request-Id`, and the
      records are served, with this token, on `/_perfbench/*` to loopback clients.
      None (the default): no agent. The agent is then `app[AGENT]`.
    - `slowdown`: specs such as `"/api/posts=15%"` or `"/health=2ms"`: those paths made slower
      on purpose (see `perfbench.demo.slowdown`), a known answer for an A/B test.

    Bad arguments raise ValueError here, not at startup. After startup,
    `app[perfbench.demo.state.STATE]` holds the engine, cache and signer.
    """
    database_url(db_url, db_path)  # validates the URL now rather than at startup
    if cache_url is not None and not cache_url.startswith(("redis://", "rediss://", "unix://")):
        make_cache(cache_url)  # raises the ValueError that explains the accepted URLs
    if report_ttl <= 0:
        raise ConfigError(f"report_ttl must be positive, got {report_ttl}")
    signer = TokenSigner(secret if secret is not None else secrets.token_bytes(32), ttl=token_ttl)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        engine = make_engine(db_url, db_path=db_path, db_schema=db_schema)
        cache = make_cache(cache_url, prefix=cache_prefix)
        try:
            started = time.perf_counter()
            seeded_now = await prepare_database(
                engine, seed=seed, db_schema=db_schema, iterations=password_iterations
            )
            if seeded_now:
                log.info("seeded the demo database in %.2f s", time.perf_counter() - started)
            await cache.check()
        except BaseException:
            await cache.close()
            await engine.dispose()
            raise
        app[STATE] = DemoState(
            engine=engine,
            # expire_on_commit=False: handlers serialise rows after the commit.
            sessions=async_sessionmaker(engine, expire_on_commit=False),
            cache=cache,
            signer=signer,
            report_ttl=report_ttl,
            password_iterations=password_iterations,
            seeded_now=seeded_now,
        )
        try:
            yield
        finally:
            await cache.close()
            await engine.dispose()

    slow = [parse_slowdown(spec) for spec in slowdown]
    app = web.Application(middlewares=[*([slowdown_middleware(slow)] if slow else []), error_middleware])
    if agent_token is not None:
        from ..agent import Agent

        app[AGENT] = Agent(agent_token, endpoints=True).install_aiohttp(app)
    app.on_response_prepare.append(_echo_request_id)
    app.cleanup_ctx.append(lifecycle)
    for table in (routes, notifications.routes, posts.routes, reports.routes, journeys.routes):
        app.add_routes(table)
    # tracemalloc snapshots for the memory profiler: off unless PERFBENCH_MEMORY_TOKEN is set
    from ..agent.memory import install_from_env

    install_from_env(app)
    return app


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn every error into `{"error": "..."}` JSON with the right status."""
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response({"error": exc.message}, status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = {404: f"not found: {request.method} {request.path}"}.get(exc.status, (exc.reason or "").lower())
        if exc.status == 405:
            message = f"method {request.method} not allowed on {request.path}"
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return web.json_response({"error": message}, status=exc.status, headers=headers)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.json_response({"error": "internal server error"}, status=500)


async def _echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    # The load engine tags every request; echoing the tag lets it join client and
    # server records. Length-capped so a client cannot bloat every response.
    request_id = request.headers.get(REQUEST_ID_HEADER)
    if request_id is not None and len(request_id) <= 200:
        response.headers[REQUEST_ID_HEADER] = request_id


@lru_cache(maxsize=4)
def _decoy_hash(iterations: int) -> str:
    return hash_password("not a real password", salt=secrets.token_bytes(16), iterations=iterations)


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.post("/auth/login")
async def login(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    email = require_str(data, "email", max_length=255).strip().lower()
    password = require_str(data, "password", max_length=1_000)
    state = get_state(request)
    async with state.sessions() as session:
        row = (await session.execute(select(User.id, User.password_hash).where(User.email == email))).first()
    # An unknown email still costs one hash, so response time does not reveal
    # which emails exist. PBKDF2 runs in a thread: it would stall the event loop.
    encoded = row.password_hash if row is not None else _decoy_hash(state.password_iterations)
    valid = await asyncio.to_thread(verify_password, password, encoded)
    if row is None or not valid:
        raise ApiError(401, "invalid email or password")
    return web.json_response({"token": state.signer.issue(row.id), "user_id": row.id})


@routes.get("/api/cache/stats")
async def cache_stats(request: web.Request) -> web.Response:
    cache = get_state(request).cache
    return web.json_response(
        {"hits": cache.hits, "misses": cache.misses, "backend": cache.backend, "keys": await cache.size()}
    )


@routes.post("/api/cache/clear")
async def cache_clear(request: web.Request) -> web.Response:
    cache = get_state(request).cache
    removed = await cache.clear()
    return web.json_response(
        {
            "cleared": removed,
            "hits": cache.hits,
            "misses": cache.misses,
            "backend": cache.backend,
            "keys": await cache.size(),
        }
    )


@routes.post("/api/leak")
async def leak_memory(request: web.Request) -> web.Response:
    count = leak.remember_request(
        request.method, request.path, request.headers.get(REQUEST_ID_HEADER), request.headers.get("User-Agent")
    )
    return web.json_response({"count": count})
