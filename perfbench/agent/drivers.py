"""The asyncpg and psycopg 3 hooks of the SQL capture (:mod:`perfbench.agent.sql` describes what they see).

Each installer patches its driver's classes when the driver is importable and returns how to undo it;
:mod:`perfbench.agent.sql` runs them with its own hooks (``sql.INSTALLERS``). Besides the statement,
each reports the rows it returned or changed when the driver says (``rows``, for in-process captures).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any

from . import sql

# asyncpg ---------------------------------------------------------------------------------------------


def _status_rows(status: Any) -> int | None:
    """The row count at the end of a command tag (``SELECT 5``, ``INSERT 0 1``), None without one."""
    if isinstance(status, bytes | bytearray):
        status = status.decode("ascii", "replace")
    last = status.rsplit(" ", 1)[-1] if isinstance(status, str) else ""
    return int(last) if last.isdigit() else None


def _asyncpg_rows(result: Any) -> int | None:
    if isinstance(result, list):
        return len(result)
    if isinstance(result, tuple) and len(result) >= 2:  # (records, status, completed)
        n = _status_rows(result[1])
        return n if n is not None or not isinstance(result[0], list) else len(result[0])
    return _status_rows(result)


def install_asyncpg() -> Callable[[], None] | None:
    try:
        import asyncpg.connection as apc
        import asyncpg.prepared_stmt as aps
    except ImportError:  # the service does not use asyncpg
        return None
    Conn = apc.Connection
    PS = aps.PreparedStatement
    originals = {
        (Conn, "_execute"): Conn._execute,
        (Conn, "_executemany"): Conn._executemany,
        (Conn, "execute"): Conn.execute,
        (PS, "_PreparedStatement__do_execute"): PS._PreparedStatement__do_execute,
    }

    async def timed(conn, query, coro):  # noqa: ANN001
        if conn in sql.owned or sql.OUTER.get():
            return await coro
        start = time.perf_counter_ns()
        try:
            result = await coro
        except BaseException:
            sql.emit(query, start, time.perf_counter_ns() - start, "asyncpg", error=True)
            raise
        sql.emit(query, start, time.perf_counter_ns() - start, "asyncpg", rows=_asyncpg_rows(result))
        return result

    orig_execute = originals[(Conn, "_execute")]
    orig_many = originals[(Conn, "_executemany")]
    orig_simple = originals[(Conn, "execute")]
    orig_ps = originals[(PS, "_PreparedStatement__do_execute")]

    @functools.wraps(orig_execute)
    async def _execute(self, query, args, limit, timeout, **kwargs):  # noqa: ANN001, ASYNC109 - asyncpg's signature
        return await timed(self, query, orig_execute(self, query, args, limit, timeout, **kwargs))

    @functools.wraps(orig_many)
    async def _executemany(self, query, args, timeout, **kwargs):  # noqa: ANN001, ASYNC109 - asyncpg's signature
        return await timed(self, query, orig_many(self, query, args, timeout, **kwargs))

    @functools.wraps(orig_simple)
    async def execute(self, query, *args, timeout=None):  # noqa: ANN001, ASYNC109 - asyncpg's signature
        if args:  # goes through _execute, timed there
            return await orig_simple(self, query, *args, timeout=timeout)
        return await timed(self, query, orig_simple(self, query, timeout=timeout))

    @functools.wraps(orig_ps)
    async def do_execute(self, executor):  # noqa: ANN001
        return await timed(self._connection, self._query, orig_ps(self, executor))

    Conn._execute = _execute
    Conn._executemany = _executemany
    Conn.execute = execute
    PS._PreparedStatement__do_execute = do_execute

    def undo() -> None:
        for (cls, name), fn in originals.items():
            setattr(cls, name, fn)

    return undo


# psycopg 3 ---------------------------------------------------------------------------------------------


def _psycopg_text(query: Any, cursor: Any) -> Any:
    """The SQL of a psycopg query: a string, bytes, or a ``psycopg.sql.Composable`` rendered for ``cursor``."""
    if isinstance(query, str | bytes):
        return query
    as_string = getattr(query, "as_string", None)
    if as_string is not None:
        with contextlib.suppress(Exception):
            return as_string(cursor)
    return str(query)


def _rowcount(cursor: Any) -> int | None:
    n = getattr(cursor, "rowcount", -1)
    return n if isinstance(n, int) and n >= 0 else None


def install_psycopg() -> Callable[[], None] | None:
    try:
        import psycopg
    except ImportError:  # the service does not use psycopg
        return None

    def sync(orig):  # noqa: ANN001, ANN202
        @functools.wraps(orig)
        def method(self, query, *args, **kwargs):  # noqa: ANN001, ANN202
            if sql.OUTER.get() or self.connection in sql.owned:
                return orig(self, query, *args, **kwargs)
            start = time.perf_counter_ns()
            try:
                result = orig(self, query, *args, **kwargs)
            except BaseException:
                sql.emit(_psycopg_text(query, self), start, time.perf_counter_ns() - start, "psycopg", error=True)
                raise
            sql.emit(_psycopg_text(query, self), start, time.perf_counter_ns() - start, "psycopg",
                     rows=_rowcount(self))
            return result

        return method

    def asynchronous(orig):  # noqa: ANN001, ANN202
        @functools.wraps(orig)
        async def method(self, query, *args, **kwargs):  # noqa: ANN001, ANN202
            if sql.OUTER.get() or self.connection in sql.owned:
                return await orig(self, query, *args, **kwargs)
            start = time.perf_counter_ns()
            try:
                result = await orig(self, query, *args, **kwargs)
            except BaseException:
                sql.emit(_psycopg_text(query, self), start, time.perf_counter_ns() - start, "psycopg", error=True)
                raise
            sql.emit(_psycopg_text(query, self), start, time.perf_counter_ns() - start, "psycopg",
                     rows=_rowcount(self))
            return result

        return method

    # each class's own methods: subclasses (client-side, raw cursors) inherit the wrapped ones
    targets = [(psycopg.Cursor, "execute", sync), (psycopg.Cursor, "executemany", sync),
               (psycopg.ServerCursor, "execute", sync), (psycopg.AsyncCursor, "execute", asynchronous),
               (psycopg.AsyncCursor, "executemany", asynchronous), (psycopg.AsyncServerCursor, "execute", asynchronous)]
    originals = [(cls, name, cls.__dict__[name]) for cls, name, _ in targets]
    for cls, name, wrap in targets:
        setattr(cls, name, wrap(cls.__dict__[name]))

    def undo() -> None:
        for cls, name, fn in originals:
            setattr(cls, name, fn)

    return undo


sql.INSTALLERS.extend([install_asyncpg, install_psycopg])
