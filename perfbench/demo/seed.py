"""Deterministic, realistic demo data and the bulk insert that loads it.

Everything derives from one integer seed: the same seed gives the same users,
passwords, posts, comments and notifications on any machine, so a load test can
log in as many different users with `credentials(n)` without asking the server.

Each table draws from its own RNG stream (`random.Random("perfbench-demo:<seed>:<table>")`),
so the users, and with them `credentials()`, do not depend on how many posts exist.

Seeding is one transaction and is recorded in `demo_meta`; seeding a database
that is already seeded is a no-op, so a SQLite file can be reused between runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import words
from .auth import DEFAULT_ITERATIONS, hash_password
from .models import NOTIFICATION_KINDS, Base, Comment, DemoMeta, Notification, Post, User

DEFAULT_SEED = 42
# Bump when the generated data changes shape, so an old database is not mistaken
# for a current one.
DATA_VERSION = 1
# The data lives in a fixed window, not relative to "now": a report over "the
# last 12 months of posts" must give the same answer next year.
USERS_FROM = datetime(2021, 1, 1)
USERS_UNTIL = datetime(2023, 12, 31)
DATA_END = datetime(2024, 12, 31, 23, 59, 59)


@dataclass(frozen=True)
class SeedSizes:
    """How many rows to generate; notifications are a per-user range, inclusive."""

    users: int = 1_000
    posts: int = 5_000
    comments: int = 10_000
    notifications_per_user: tuple[int, int] = (5, 20)


DEFAULT_SIZES = SeedSizes()


class SeedMismatchError(RuntimeError):
    """The database holds demo data built from a different seed or size, or foreign data."""


@dataclass(frozen=True)
class UserSpec:
    """One generated user, including the plain-text password a load test logs in with."""

    id: int
    first_name: str
    last_name: str
    username: str
    email: str
    password: str
    salt: bytes
    created_at: datetime


def _rng(seed: int, stream: str) -> random.Random:
    # A str seed is hashed with SHA-512 by random.Random: stable across runs and
    # platforms, unlike hash().
    return random.Random(f"perfbench-demo:{seed}:{stream}")


def _ascii_slug(name: str) -> str:
    """`"Wiśniewski"` -> `"wisniewski"`, `"O'Brien"` -> `"obrien"`: a name as it appears in an email."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(ch for ch in decomposed.lower() if ch.isascii() and ch.isalnum())


def _moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A uniformly random whole second in [start, end]."""
    return start + timedelta(seconds=rng.randint(0, int((end - start).total_seconds())))


@lru_cache(maxsize=8)
def generate_users(seed: int = DEFAULT_SEED, count: int = DEFAULT_SIZES.users) -> tuple[UserSpec, ...]:
    """The first `count` users for `seed`, ids from 1. Usernames and emails are unique.

    User n is the same whatever `count` is, so `credentials(n)` is stable.
    """
    rng = _rng(seed, "users")
    taken: set[str] = set()
    users = []
    for index in range(count):
        first = rng.choice(words.FIRST_NAMES)
        last = rng.choice(words.LAST_NAMES)
        base = f"{_ascii_slug(first)}.{_ascii_slug(last)}"
        username = f"{base}{rng.randint(1, 99)}"
        while username in taken:
            username = f"{base}{rng.randint(100, 9999)}"
        taken.add(username)
        password = (
            f"{rng.choice(words.PASSWORD_WORDS)}-{rng.choice(words.PASSWORD_WORDS)}-{rng.randint(10, 99)}"
        )
        users.append(
            UserSpec(
                id=index + 1,
                first_name=first,
                last_name=last,
                username=username,
                email=f"{username}@example.com",
                password=password,
                salt=rng.randbytes(16),
                created_at=_moment(rng, USERS_FROM, USERS_UNTIL),
            )
        )
    return tuple(users)


def credentials(n: int, *, seed: int = DEFAULT_SEED) -> tuple[str, str]:
    """`(email, password)` of the n-th seeded user (n from 0), for logging in.

    Needs no database: it regenerates the users from the seed (cached after the
    first call). Raises IndexError outside 0..999 for the default 1,000 users.

    >>> credentials(0)[0].endswith("@example.com")
    True
    """
    users = generate_users(seed, DEFAULT_SIZES.users)
    if not 0 <= n < len(users):
        raise IndexError(f"credentials(n) needs 0 <= n < {len(users)} (the demo seeds {len(users)} users), got {n}")
    user = users[n]
    return user.email, user.password


def _title(rng: random.Random) -> str:
    topic = rng.choice(words.TOPICS)
    tool, tool2 = rng.sample(words.TOOLS, 2)
    title = rng.choice(words.TITLE_TEMPLATES).format(
        verb=rng.choice(words.VERBS_PAST),
        thing=rng.choice(words.THINGS),
        n=rng.randint(2, 12),
        gerund=rng.choice(words.GERUNDS),
        topic=topic,
        Topic=topic[0].upper() + topic[1:],
        adj=rng.choice(words.ADJECTIVES),
        tool=tool,
        tool2=tool2,
        year=rng.randint(2021, 2025),
    )
    return title[0].upper() + title[1:]


def _sentence(rng: random.Random) -> str:
    opener = f"{rng.choice(words.SENTENCE_OPENERS)}, " if rng.random() < 0.45 else ""
    closer = f" {rng.choice(words.CLOSERS)}" if rng.random() < 0.6 else ""
    sentence = (
        f"{opener}{rng.choice(words.SUBJECTS)} {rng.choice(words.VERBS_PAST)} {rng.choice(words.OBJECTS)}{closer}."
    )
    if rng.random() < 0.2:
        sentence += f" It all came down to {rng.choice(words.TOPICS)}."
    return sentence[0].upper() + sentence[1:]


def _post_body(rng: random.Random) -> str:
    return "\n\n".join(
        " ".join(_sentence(rng) for _ in range(rng.randint(2, 4))) for _ in range(rng.randint(2, 4))
    )


def _comment_sentence(rng: random.Random) -> str:
    return rng.choice(words.COMMENT_SENTENCES).format(
        thing=rng.choice(words.THINGS),
        topic=rng.choice(words.TOPICS),
        tool=rng.choice(words.TOOLS),
        metric=rng.choice(words.METRICS),
    )


def _posts(seed: int, users: Sequence[UserSpec], count: int) -> list[dict[str, Any]]:
    rng = _rng(seed, "posts")
    # A heavy tail: a few prolific authors, many who wrote once or never.
    activity = [rng.paretovariate(1.2) for _ in users]
    authors = rng.choices(users, weights=activity, k=count)
    posts: list[dict[str, Any]] = [
        {
            "author_id": author.id,
            "title": _title(rng),
            "body": _post_body(rng),
            "created_at": _moment(rng, author.created_at, DATA_END),
        }
        for author in authors
    ]
    # Ids grow with time, as they would in a real table.
    posts.sort(key=lambda row: row["created_at"])
    for index, row in enumerate(posts):
        row["id"] = index + 1
    return posts


def _comments(seed: int, users: Sequence[UserSpec], posts: Sequence[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    rng = _rng(seed, "comments")
    popularity = [rng.paretovariate(1.1) for _ in posts]
    chattiness = [rng.paretovariate(1.5) for _ in users]
    targets = rng.choices(posts, weights=popularity, k=count)
    authors = rng.choices(users, weights=chattiness, k=count)
    comments = []
    for post, author in zip(targets, authors, strict=True):
        # Most comments come within days of the post; none before it or after the data ends.
        delay = timedelta(seconds=int(rng.expovariate(1 / (3 * 86_400))) + 60)
        comments.append(
            {
                "post_id": post["id"],
                "author_id": author.id,
                "body": " ".join(_comment_sentence(rng) for _ in range(rng.randint(1, 3))),
                "created_at": min(post["created_at"] + delay, DATA_END),
            }
        )
    comments.sort(key=lambda row: row["created_at"])
    for index, row in enumerate(comments):
        row["id"] = index + 1
    return comments


def _notification_text(rng: random.Random, kind: str, actor: UserSpec, post_title: str) -> tuple[str, str]:
    actor_name = f"{actor.first_name} {actor.last_name}"
    if kind == "comment":
        return f"{actor_name} commented on your post", f"“{_comment_sentence(rng)}” on “{post_title}”"
    if kind == "like":
        return f"{actor_name} liked your post", f"“{post_title}” now has {rng.randint(2, 250)} likes."
    if kind == "follow":
        return f"{actor_name} started following you", f"You now have {rng.choice(words.FOLLOWER_COUNTS)} followers."
    if kind == "mention":
        return f"{actor_name} mentioned you in a comment", f"“{_comment_sentence(rng)}” on “{post_title}”"
    if kind == "digest":
        return (
            f"{rng.randint(3, 25)} new posts about {rng.choice(words.TOPICS)}",
            f"This week's most read: “{post_title}”.",
        )
    return (
        f"New sign-in from {rng.choice(words.DEVICES)}",
        "If this wasn't you, change your password and review your active sessions.",
    )


def _notifications(
    seed: int, users: Sequence[UserSpec], posts: Sequence[dict[str, Any]], per_user: tuple[int, int]
) -> list[dict[str, Any]]:
    rng = _rng(seed, "notifications")
    low, high = per_user
    recent = DATA_END - timedelta(days=30)
    rows: list[dict[str, Any]] = []
    for user in users:
        for _ in range(rng.randint(low, high)):
            kind = rng.choices(NOTIFICATION_KINDS, weights=(30, 25, 15, 10, 10, 10))[0]
            title, body = _notification_text(rng, kind, rng.choice(users), rng.choice(posts)["title"])
            created_at = _moment(rng, user.created_at, DATA_END)
            # Old notifications have mostly been read; the last month's mostly not.
            read = rng.random() < (0.9 if created_at < recent else 0.25)
            rows.append(
                {"user_id": user.id, "kind": kind, "title": title, "body": body, "read": read, "created_at": created_at}
            )
    rows.sort(key=lambda row: row["created_at"])
    for index, row in enumerate(rows):
        row["id"] = index + 1
    return rows


def build_dataset(
    seed: int = DEFAULT_SEED, sizes: SeedSizes = DEFAULT_SIZES, *, iterations: int = DEFAULT_ITERATIONS
) -> dict[str, list[dict[str, Any]]]:
    """All rows to insert, by table name, with explicit ids. CPU-bound: call it in a thread.

    Password hashing (hashlib releases the GIL) runs on worker threads while this
    thread writes the posts and comments.
    """
    users = generate_users(seed, sizes.users)
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="demo-seed-hash") as pool:
        hashes = pool.map(lambda u: hash_password(u.password, salt=u.salt, iterations=iterations), users)
        posts = _posts(seed, users, sizes.posts)
        comments = _comments(seed, users, posts, sizes.comments)
        notifications = _notifications(seed, users, posts, sizes.notifications_per_user)
        user_rows = [
            {
                "id": user.id,
                "username": user.username,
                "email": user.email,
                "first_name": user.first_name,
                "last_name": user.last_name,
                "password_hash": password_hash,
                "created_at": user.created_at,
            }
            for user, password_hash in zip(users, hashes, strict=True)
        ]
    return {"users": user_rows, "posts": posts, "comments": comments, "notifications": notifications}


def _marker(seed: int, sizes: SeedSizes) -> dict[str, Any]:
    return {"version": DATA_VERSION, "seed": seed, **asdict(sizes)}


async def _read_marker(conn: AsyncConnection) -> dict[str, Any] | None:
    value = await conn.scalar(select(DemoMeta.value).where(DemoMeta.key == "seed"))
    return None if value is None else json.loads(value)


async def seed_database(
    engine: AsyncEngine,
    *,
    seed: int = DEFAULT_SEED,
    sizes: SeedSizes = DEFAULT_SIZES,
    iterations: int = DEFAULT_ITERATIONS,
) -> bool:
    """Create the demo tables if missing and fill them; True if it seeded, False if
    the database was already seeded with this seed and sizes (a no-op).

    Raises SeedMismatchError if the database was seeded differently (its users
    would not match `credentials()`) or its tables hold rows but no seed marker.
    """
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    wanted = json.loads(json.dumps(_marker(seed, sizes)))  # tuples -> lists, as stored
    async with engine.connect() as conn:
        found = await _read_marker(conn)
        users = await conn.scalar(select(func.count()).select_from(User))
    if found is not None:
        if found != wanted:
            raise SeedMismatchError(
                f"the demo database was seeded with {found}, not {wanted}; "
                "pass the same seed, or point the demo at a fresh database"
            )
        return False
    if users:
        raise SeedMismatchError(
            f"the demo tables already hold {users} users but no seed marker; "
            "refusing to seed over data this demo did not write"
        )

    data = await asyncio.to_thread(build_dataset, seed, sizes, iterations=iterations)
    async with engine.begin() as conn:
        for model in (User, Post, Comment, Notification):
            await conn.execute(insert(model), data[model.__tablename__])
        # Inserting the marker last, in the same transaction: a crash leaves no
        # half-seeded database, and a concurrent seeder fails on the primary key.
        await conn.execute(insert(DemoMeta), [{"key": "seed", "value": json.dumps(wanted)}])
        if conn.dialect.name == "postgresql":
            # Explicit ids do not advance PostgreSQL's sequences; without this the
            # first notification created through the API would collide with id 1.
            for model in (User, Post, Comment, Notification):
                table = model.__tablename__
                await conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
                )
    return True
