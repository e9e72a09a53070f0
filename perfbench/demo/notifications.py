"""Notification endpoints: every one needs a bearer token and sees only its user's rows.

- `GET  /api/notifications` newest first; `?limit=` 1..100 (default 20), `?unread=1`
- `GET  /api/notifications/{id}` 404 for an unknown id or another user's
- `POST /api/notifications` create one: `{"kind", "title", "body"?, "read"?}`, 201 with it
- `POST /api/notifications/{id}/read` mark as read, 200 with it
- `POST /api/notifications/batch` `{"items": [...]}` of 10 to 100, 201 with the ids in order

Writes are single statements (INSERT/UPDATE ... RETURNING) rather than
read-then-write, so concurrent requests on SQLite wait for the write lock instead
of failing on a stale read snapshot.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import insert, select, update

from .models import NOTIFICATION_KINDS, Notification, iso_utc, utcnow
from .state import get_state, require_user
from .validation import (
    ApiError,
    optional_bool,
    query_flag,
    query_int,
    read_json_object,
    reject_unknown,
    require_str,
)

routes = web.RouteTableDef()

BATCH_MIN = 10
BATCH_MAX = 100
_FIELDS = frozenset({"kind", "title", "body", "read"})
# Ids are 32-bit in PostgreSQL (SERIAL); a larger id cannot exist, and binding it would be a 500.
_MAX_ID = 2**31 - 1


def notification_json(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.id,
        "kind": notification.kind,
        "title": notification.title,
        "body": notification.body,
        "read": notification.read,
        "created_at": iso_utc(notification.created_at),
    }


def parse_notification(data: Any, *, where: str = "") -> dict[str, Any]:
    """Validated column values from a client's notification object, or ApiError 400 naming the field."""
    if not isinstance(data, dict):
        raise ApiError(400, f"'{where.rstrip('.') or 'body'}' must be a JSON object")
    reject_unknown(data, _FIELDS, where=where)
    kind = data.get("kind")
    if kind not in NOTIFICATION_KINDS:
        raise ApiError(400, f"field '{where}kind' must be one of {', '.join(NOTIFICATION_KINDS)}, got {kind!r}")
    return {
        "kind": kind,
        "title": require_str(data, "title", where=where, max_length=200),
        "body": require_str(data, "body", where=where, max_length=2_000, required=False),
        "read": optional_bool(data, "read", default=False, where=where),
    }


def _notification_id(request: web.Request) -> int:
    # The route only matches digits; an id this large cannot exist.
    value = int(request.match_info["id"])
    if value > _MAX_ID:
        raise ApiError(404, f"notification {value} not found")
    return value


@routes.get("/api/notifications")
async def list_notifications(request: web.Request) -> web.Response:
    user_id = require_user(request)
    limit = query_int(request, "limit", default=20, minimum=1, maximum=100)
    unread = query_flag(request, "unread")
    stmt = select(Notification).where(Notification.user_id == user_id)
    if unread:
        stmt = stmt.where(Notification.read.is_(False))
    stmt = stmt.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    async with get_state(request).sessions() as session:
        rows = (await session.scalars(stmt)).all()
    return web.json_response({"notifications": [notification_json(n) for n in rows], "count": len(rows)})


@routes.get(r"/api/notifications/{id:\d+}")
async def get_notification(request: web.Request) -> web.Response:
    user_id = require_user(request)
    notification_id = _notification_id(request)
    stmt = select(Notification).where(Notification.id == notification_id, Notification.user_id == user_id)
    async with get_state(request).sessions() as session:
        notification = await session.scalar(stmt)
    if notification is None:
        # Someone else's notification is "not found" too: no hint that the id exists.
        raise ApiError(404, f"notification {notification_id} not found")
    return web.json_response(notification_json(notification))


@routes.post("/api/notifications")
async def create_notification(request: web.Request) -> web.Response:
    user_id = require_user(request)
    values = parse_notification(await read_json_object(request))
    notification = Notification(user_id=user_id, created_at=utcnow(), **values)
    async with get_state(request).sessions.begin() as session:
        session.add(notification)
    return web.json_response(notification_json(notification), status=201)


@routes.post(r"/api/notifications/{id:\d+}/read")
async def mark_read(request: web.Request) -> web.Response:
    user_id = require_user(request)
    notification_id = _notification_id(request)
    stmt = (
        update(Notification)
        .where(Notification.id == notification_id, Notification.user_id == user_id)
        .values(read=True)
        .returning(Notification)
        .execution_options(synchronize_session=False)
    )
    async with get_state(request).sessions.begin() as session:
        notification = await session.scalar(stmt)
    if notification is None:
        raise ApiError(404, f"notification {notification_id} not found")
    return web.json_response(notification_json(notification))


@routes.post("/api/notifications/batch")
async def create_batch(request: web.Request) -> web.Response:
    user_id = require_user(request)
    data = await read_json_object(request)
    reject_unknown(data, frozenset({"items"}))
    items = data.get("items")
    if not isinstance(items, list) or not BATCH_MIN <= len(items) <= BATCH_MAX:
        got = f"{len(items)} items" if isinstance(items, list) else "no list" if items is None else "not a list"
        raise ApiError(400, f"field 'items' must be a list of {BATCH_MIN} to {BATCH_MAX} notifications, got {got}")
    now = utcnow()
    rows = [
        {"user_id": user_id, "created_at": now, **parse_notification(item, where=f"items[{index}].")}
        for index, item in enumerate(items)
    ]
    stmt = insert(Notification).returning(Notification.id, sort_by_parameter_order=True)
    async with get_state(request).sessions.begin() as session:
        ids = list(await session.scalars(stmt, rows))
    return web.json_response({"ids": ids, "count": len(ids)}, status=201)
