"""What a running demo app holds, and how a handler gets at it.

`STATE` is set during the app's startup (see `app.create_app`); before that the
app has no database. Code that wants to observe the demo, e.g. a SQL profiler
attaching SQLAlchemy event listeners, can read `app[STATE].engine` from an
`on_startup` hook appended after `create_app()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from .auth import TokenSigner
from .cache import Cache
from .validation import ApiError


@dataclass
class DemoState:
    """The running app's resources and settings."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    cache: Cache
    signer: TokenSigner
    report_ttl: float
    password_iterations: int
    seeded_now: bool
    """True if this startup seeded the database, False if it found it seeded."""


STATE: web.AppKey[DemoState] = web.AppKey("perfbench_demo_state", DemoState)


def get_state(request: web.Request) -> DemoState:
    return request.app[STATE]


def require_user(request: web.Request) -> int:
    """The user id of the request's valid bearer token, or ApiError 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "authentication required: send 'Authorization: Bearer <token>' with a token from POST /auth/login",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user_id = get_state(request).signer.verify(token.strip())
    if user_id is None:
        raise ApiError(401, "invalid or expired token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return user_id
