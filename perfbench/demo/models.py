"""SQLAlchemy 2.0 declarative models of the demo blog.

Tables: `users`, `posts`, `comments`, `notifications`, plus `demo_meta`, a small
key/value table whose `seed` row marks a database as already seeded.

Timestamps are naive datetimes that mean UTC (`TIMESTAMP WITHOUT TIME ZONE`), so
SQLite and PostgreSQL give back the same values; `iso_utc()` turns them into
ISO 8601 with an explicit `+00:00` for JSON.

Relationships are `lazy="raise"`: under asyncio an implicit lazy load cannot run
anyway, and the naive posts endpoint must do its N+1 with explicit queries that a
SQL profiler sees, not by accident.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NOTIFICATION_KINDS = ("comment", "like", "follow", "mention", "digest", "security")


class Base(DeclarativeBase):
    """Declarative base of every demo table."""


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    first_name: Mapped[str] = mapped_column(String(64))
    last_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime)

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Post(Base):
    __tablename__ = "posts"
    # The posts page is ordered newest first.
    __table_args__ = (Index("ix_posts_created_at_id", "created_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    author: Mapped[User] = relationship(lazy="raise")
    comments: Mapped[list[Comment]] = relationship(
        lazy="raise", order_by=lambda: [Comment.created_at, Comment.id]
    )


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Notification(Base):
    __tablename__ = "notifications"
    # Every notification query is "this user's, newest first".
    __table_args__ = (Index("ix_notifications_user_created", "user_id", "created_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    read: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class DemoMeta(Base):
    """Key/value facts about the database itself (the seed it was built from)."""

    __tablename__ = "demo_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def utcnow() -> datetime:
    """The current time as a naive UTC datetime, the way the tables store it."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso_utc(value: datetime) -> str:
    """ISO 8601 text of a stored (naive UTC) timestamp, e.g. `2024-03-05T14:07:00+00:00`."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()
