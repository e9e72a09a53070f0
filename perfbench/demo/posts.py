"""The public posts page, in a naive (N+1) and an eager version with identical JSON.

- `GET /api/posts?limit=&offset=` (limit 1..100, default 20): NAIVE on purpose.
  One query for the page, then for each post one query for its author and one
  for its comments: 1 + 2N statements per request, the N+1 pattern a SQL
  profiler should flag.
- `GET /api/posts?eager=1` and `GET /api/v2/posts`: the same page in two
  statements (posts joined to authors, then all their comments with one IN query).

Posts are newest first (created_at, then id, descending); comments oldest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from .models import Comment, Post, User, iso_utc
from .state import get_state
from .validation import query_flag, query_int

routes = web.RouteTableDef()

MAX_OFFSET = 1_000_000


def post_json(post: Post, author: User, comments: Sequence[Comment]) -> dict[str, Any]:
    return {
        "id": post.id,
        "title": post.title,
        "body": post.body,
        "created_at": iso_utc(post.created_at),
        "author": {"id": author.id, "username": author.username, "name": author.name},
        "comments": [
            {"id": c.id, "body": c.body, "author_id": c.author_id, "created_at": iso_utc(c.created_at)}
            for c in comments
        ],
        "comment_count": len(comments),
    }


def _page(limit: int, offset: int) -> Select[Any]:
    return select(Post).order_by(Post.created_at.desc(), Post.id.desc()).limit(limit).offset(offset)


async def posts_naive(session: AsyncSession, *, limit: int, offset: int) -> list[dict[str, Any]]:
    """The page with 1 + 2N queries: what an ORM user writes before looking at the SQL log."""
    posts = (await session.scalars(_page(limit, offset))).all()
    page = []
    for post in posts:
        # Deliberately not session.get(): the identity map would hide repeated
        # authors, and the point is one author query per post.
        author = (await session.scalars(select(User).where(User.id == post.author_id))).one()
        comments = (
            await session.scalars(
                select(Comment).where(Comment.post_id == post.id).order_by(Comment.created_at, Comment.id)
            )
        ).all()
        page.append(post_json(post, author, comments))
    return page


async def posts_eager(session: AsyncSession, *, limit: int, offset: int) -> list[dict[str, Any]]:
    """The same page in two queries: a join for the authors, one IN query for all comments."""
    stmt = _page(limit, offset).options(joinedload(Post.author), selectinload(Post.comments))
    posts = (await session.scalars(stmt)).all()
    return [post_json(post, post.author, post.comments) for post in posts]


async def _respond(request: web.Request, *, eager: bool) -> web.Response:
    limit = query_int(request, "limit", default=20, minimum=1, maximum=100)
    offset = query_int(request, "offset", default=0, minimum=0, maximum=MAX_OFFSET)
    fetch = posts_eager if eager else posts_naive
    async with get_state(request).sessions() as session:
        page = await fetch(session, limit=limit, offset=offset)
    return web.json_response({"posts": page, "limit": limit, "offset": offset})


@routes.get("/api/posts")
async def list_posts(request: web.Request) -> web.Response:
    return await _respond(request, eager=query_flag(request, "eager"))


@routes.get("/api/v2/posts")
async def list_posts_v2(request: web.Request) -> web.Response:
    return await _respond(request, eager=True)
