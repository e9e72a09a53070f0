"""The demo's database engine: SQLite (embedded, the default) or PostgreSQL.

`make_engine()` turns the user's choice into an `AsyncEngine` configured for many
concurrent async requests; `prepare_database()` creates and seeds it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..errors import ConfigError
from .auth import DEFAULT_ITERATIONS
from .seed import DEFAULT_SEED, seed_database

# Relative to the working directory; `data/demo/` is git-ignored in this project.
DEFAULT_DB_PATH = Path("data/demo/demo.sqlite3")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def database_url(db_url: str | None = None, db_path: str | Path | None = None) -> str:
    """The SQLAlchemy async URL to use.

    `db_url` None means SQLite at `db_path` (default `data/demo/demo.sqlite3`).
    `postgresql://` and `postgres://` URLs get the asyncpg driver, `sqlite://` URLs
    the aiosqlite driver; anything else is refused with ValueError.
    """
    if db_url is None:
        return f"sqlite+aiosqlite:///{Path(db_path or DEFAULT_DB_PATH)}"
    url = make_url(db_url)
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgresql", "postgres") and driver in ("", "asyncpg"):
        return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    if backend == "sqlite" and driver in ("", "aiosqlite"):
        return url.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    raise ConfigError(
        f"unsupported demo database URL scheme {url.drivername!r}: "
        "use postgresql+asyncpg://user@host/db, sqlite+aiosqlite:///path, or no URL for the default SQLite file"
    )


def _checked_schema(name: str) -> str:
    if not _SCHEMA_NAME.match(name):
        raise ConfigError(f"db_schema must be a lower-case SQL identifier (letters, digits, _), got {name!r}")
    return name


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run while one writer writes; without it every write
    # blocks every read of the file. busy_timeout makes a second writer wait for
    # the lock instead of failing at once with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(
    db_url: str | None = None, *, db_path: str | Path | None = None, db_schema: str | None = None
) -> AsyncEngine:
    """An AsyncEngine for the demo; see `database_url` for what `db_url`/`db_path` mean.

    SQLite: the parent directory of the file is created; every connection runs in
    WAL mode with a busy timeout. PostgreSQL: `db_schema` (optional) is put first
    on the search path, so the demo's tables live in that schema.
    """
    url = database_url(db_url, db_path)
    if url.startswith("sqlite"):
        if db_schema is not None:
            raise ConfigError("db_schema is only supported with PostgreSQL")
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # A handful of connections is plenty: SQLite serialises writers anyway,
        # and each aiosqlite connection is a thread.
        engine = create_async_engine(url, pool_size=5, max_overflow=5, pool_timeout=30)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    if db_schema is not None:
        connect_args["server_settings"] = {"search_path": _checked_schema(db_schema)}
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_timeout=30, connect_args=connect_args)


async def prepare_database(
    engine: AsyncEngine,
    *,
    seed: int = DEFAULT_SEED,
    db_schema: str | None = None,
    iterations: int = DEFAULT_ITERATIONS,
) -> bool:
    """Create the schema (PostgreSQL, if given) and tables, then seed; True if it seeded."""
    if db_schema is not None:
        # Identifiers cannot be bound parameters, hence the strict name check.
        schema = _checked_schema(db_schema)
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return await seed_database(engine, seed=seed, iterations=iterations)
