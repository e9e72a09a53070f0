"""The expensive activity report, behind a cache.

`GET /api/reports/activity?months=12&top=10` (bearer token required) covers the
last `months` months of the data (months 1..48, default 12; top 1..50, default 10):
posts and comments per month, top authors by comments received, top
commenters, the distribution of comments per post, and the most frequent
keywords in the window's posts.

The cost is real: seven queries (mostly aggregates), then tokenising every post
in the window on the event loop — about 80 ms for 12 months and 150 ms for 48 on
a 2-core test machine, much of it CPU that a sampling profiler will show. The result is cached
per (months, top) for the app's TTL; the response says `"cached": true|false`
and carries `X-Cache: HIT|MISS`. Concurrent misses all compute the report (no
stampede protection), as a naive cache would.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement, desc, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from . import words
from .models import Comment, Post, User, iso_utc, utcnow
from .state import get_state, require_user
from .validation import query_int

routes = web.RouteTableDef()

_WORD = re.compile(r"[a-z][a-z'+-]*[a-z+]")


def _month_of(column: Any, dialect: str) -> ColumnElement[str]:
    """`YYYY-MM` of a timestamp column, in the database's own dialect."""
    if dialect == "postgresql":
        return func.to_char(column, "YYYY-MM")
    return func.strftime("%Y-%m", column)


def _month_starts(end: datetime, months: int) -> list[datetime]:
    """First instants of the `months` calendar months ending with `end`'s month, oldest first."""
    index = end.year * 12 + end.month - 1
    return [datetime(i // 12, i % 12 + 1, 1) for i in range(index - months + 1, index + 1)]


def _percentile(sorted_values: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of an ascending sequence (0 for an empty one)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _slope(values: Sequence[int]) -> float:
    """Least-squares slope of `values` against 0, 1, 2, ... (0 for fewer than two points)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    variance = sum((x - mean_x) ** 2 for x in range(n))
    return covariance / variance


def _keywords(texts: Sequence[str], top: int) -> list[dict[str, Any]]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in words.STOPWORDS)
    return [{"word": word, "count": count} for word, count in counts.most_common(top)]


def _person(row: Any, count_name: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "username": row.username,
        "name": f"{row.first_name} {row.last_name}",
        count_name: row.n,
    }


async def build_activity_report(session: AsyncSession, *, months: int, top: int) -> dict[str, Any]:
    """The report as a JSON-ready dict; see the module docstring for what it holds."""
    started = time.perf_counter()
    assert session.bind is not None  # the demo's sessions are bound to its engine
    dialect = session.bind.dialect.name
    last = await session.scalar(select(func.max(Post.created_at)))
    if last is None:
        return {"window": None, "months": [], "top_authors": [], "top_commenters": [], "keywords": []}
    month_starts = _month_starts(last, months)
    since = month_starts[0]

    post_month = _month_of(Post.created_at, dialect)
    posts_by_month = dict(
        (await session.execute(
            select(post_month, func.count()).where(Post.created_at >= since).group_by(post_month)
        )).all()
    )
    comment_month = _month_of(Comment.created_at, dialect)
    comments_by_month = dict(
        (await session.execute(
            select(comment_month, func.count()).where(Comment.created_at >= since).group_by(comment_month)
        )).all()
    )

    received = func.count(Comment.id).label("n")
    top_authors = (
        await session.execute(
            select(User.id, User.username, User.first_name, User.last_name, received)
            .join(Post, Post.author_id == User.id)
            .join(Comment, Comment.post_id == Post.id)
            .where(Comment.created_at >= since)
            .group_by(User.id, User.username, User.first_name, User.last_name)
            .order_by(desc("n"), User.id)
            .limit(top)
        )
    ).all()
    written = func.count(Comment.id).label("n")
    top_commenters = (
        await session.execute(
            select(User.id, User.username, User.first_name, User.last_name, written)
            .join(Comment, Comment.author_id == User.id)
            .where(Comment.created_at >= since)
            .group_by(User.id, User.username, User.first_name, User.last_name)
            .order_by(desc("n"), User.id)
            .limit(top)
        )
    ).all()
    per_post = sorted(
        (
            await session.scalars(
                select(func.count(Comment.id))
                .select_from(Post)
                .outerjoin(Comment, Comment.post_id == Post.id)
                .where(Post.created_at >= since)
                .group_by(Post.id)
            )
        ).all()
    )
    texts = (await session.execute(select(Post.title, Post.body).where(Post.created_at >= since))).all()

    # The honest CPU part: tokenise and count every word written in the window.
    keywords = _keywords([f"{title}\n{body}" for title, body in texts], top)
    labels = [start.strftime("%Y-%m") for start in month_starts]
    series: list[dict[str, Any]] = [
        {"month": label, "posts": posts_by_month.get(label, 0), "comments": comments_by_month.get(label, 0)}
        for label in labels
    ]
    return {
        "window": {"from": labels[0], "to": labels[-1], "months": months},
        "months": series,
        "trend": {
            "posts_per_month_slope": round(_slope([m["posts"] for m in series]), 4),
            "comments_per_month_slope": round(_slope([m["comments"] for m in series]), 4),
        },
        "top_authors": [_person(row, "comments_received") for row in top_authors],
        "top_commenters": [_person(row, "comments_written") for row in top_commenters],
        "comments_per_post": {
            "posts": len(per_post),
            "mean": round(sum(per_post) / len(per_post), 3) if per_post else 0.0,
            "p50": _percentile(per_post, 0.50),
            "p90": _percentile(per_post, 0.90),
            "p99": _percentile(per_post, 0.99),
            "max": per_post[-1] if per_post else 0,
        },
        "keywords": keywords,
        "generated_at": iso_utc(utcnow()),
        "compute_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def _cache_key(months: int, top: int) -> str:
    # Built from the validated values, so ?top=010 and ?top=10 share an entry.
    return f"report:activity:v1:months={months}:top={top}"


@routes.get("/api/reports/activity")
async def activity_report(request: web.Request) -> web.Response:
    require_user(request)
    months = query_int(request, "months", default=12, minimum=1, maximum=48)
    top = query_int(request, "top", default=10, minimum=1, maximum=50)
    state = get_state(request)
    key = _cache_key(months, top)
    report_text = await state.cache.get(key)
    hit = report_text is not None
    if report_text is None:
        async with state.sessions() as session:
            report = await build_activity_report(session, months=months, top=top)
        report_text = json.dumps(report)
        await state.cache.set(key, report_text, state.report_ttl)
    # The cached text is spliced in as is: a hit costs no JSON parsing.
    body = f'{{"report": {report_text}, "cached": {"true" if hit else "false"}}}'
    return web.Response(
        text=body, content_type="application/json", headers={"X-Cache": "HIT" if hit else "MISS"}
    )
