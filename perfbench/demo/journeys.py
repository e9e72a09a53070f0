"""The demo's endpoints for user journeys: registration, and the posts feed paged by cursor.

- `POST /auth/register` `{"email", "password", "username"?}` -> 201 `{"user_id", "email"}`; 409
  when the email (or username) is taken, 400 on a bad field. The account can log in at once.
- `GET /api/feed?limit=&cursor=` (limit 1..50, default 10): posts newest first, keyset-paged:
  `{"posts": [{"id", "title", "author_id", "created_at"}], "page": {"next_cursor", "has_more"}}`;
  `next_cursor` is an opaque string, null on the last page. A cursor that does not decode is 400.
- `POST /graphql`: a stand-in that answers one query, `posts(first: Int, after: String)`, with
  the GraphQL connection shape `{"data": {"posts": {"edges": [{"node": {...}, "cursor"}],
  "pageInfo": {"hasNextPage", "endCursor"}}}}` (the same keyset cursors). Any other query gets
  HTTP 200 with an `errors` list, as a GraphQL server answers.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import or_, select, tuple_

from .auth import hash_password
from .models import Post, User, iso_utc, utcnow
from .state import get_state
from .validation import ApiError, read_json_object, require_str

routes = web.RouteTableDef()

FEED_MAX = 50


@routes.post("/auth/register")
async def register(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    email = require_str(data, "email", max_length=255).strip().lower()
    password = require_str(data, "password", max_length=1_000)
    if "@" not in email:
        raise ApiError(400, "field 'email' must be an email address")
    if len(password) < 8:
        raise ApiError(400, "field 'password' must have at least 8 characters")
    username = require_str(data, "username", max_length=64, required=False).strip() or email.split("@")[0][:40] \
        + "-" + secrets.token_hex(4)
    state = get_state(request)
    encoded = await asyncio.to_thread(hash_password, password, salt=secrets.token_bytes(16),
                                      iterations=state.password_iterations)
    async with state.sessions.begin() as session:
        taken = (await session.execute(select(User.id).where(or_(User.email == email, User.username == username)))
                 ).first()
        if taken is not None:
            raise ApiError(409, "email or username already registered")
        user = User(username=username, email=email, first_name="", last_name="", password_hash=encoded,
                    created_at=utcnow())
        session.add(user)
        await session.flush()
        user_id = user.id
    return web.json_response({"user_id": user_id, "email": email}, status=201)


def _cursor(post: Post) -> str:
    raw = f"{post.created_at.isoformat()}|{post.id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode(cursor: str) -> tuple[datetime, int]:
    try:
        when, _, pid = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(when), int(pid)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "cursor is not one this feed gave") from None


async def _page(request: web.Request, limit: int, cursor: str | None) -> tuple[list[Post], bool]:
    stmt = select(Post).order_by(Post.created_at.desc(), Post.id.desc()).limit(limit + 1)
    if cursor:
        when, pid = _decode(cursor)
        stmt = stmt.where(tuple_(Post.created_at, Post.id) < tuple_(when, pid))
    async with get_state(request).sessions() as session:
        posts = list((await session.scalars(stmt)).all())
    return posts[:limit], len(posts) > limit


def _post(p: Post) -> dict[str, Any]:
    return {"id": p.id, "title": p.title, "author_id": p.author_id, "created_at": iso_utc(p.created_at)}


def _limit(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"{name} must be an integer from 1 to {FEED_MAX}") from None
    if not 1 <= n <= FEED_MAX:
        raise ApiError(400, f"{name} must be an integer from 1 to {FEED_MAX}")
    return n


@routes.get("/api/feed")
async def feed(request: web.Request) -> web.Response:
    limit = _limit(request.query.get("limit"), "limit", 10)
    posts, more = await _page(request, limit, request.query.get("cursor") or None)
    nxt = _cursor(posts[-1]) if more and posts else None
    return web.json_response({"posts": [_post(p) for p in posts], "page": {"next_cursor": nxt, "has_more": more}})


@routes.post("/graphql")
async def graphql(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    query, variables = data.get("query"), data.get("variables") or {}
    if not isinstance(query, str) or "posts" not in query or not isinstance(variables, dict):
        return web.json_response({"data": None, "errors": [{"message": "this stand-in answers posts(first, after)"}]})
    try:
        first = _limit(variables.get("first"), "first", 10)
        after = variables.get("after")
        posts, more = await _page(request, first, after if isinstance(after, str) and after else None)
    except ApiError as exc:
        return web.json_response({"data": None, "errors": [{"message": exc.message}]})
    edges = [{"node": _post(p), "cursor": _cursor(p)} for p in posts]
    return web.json_response({"data": {"posts": {"edges": edges, "pageInfo": {
        "hasNextPage": more, "endCursor": edges[-1]["cursor"] if edges else None}}}})
