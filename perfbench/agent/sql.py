"""The SQL capture that runs inside the service: hooks, request binding, cache events, ring buffers.

Installed by ``perfbench.agent`` (nothing in the service's code changes). It imports only the standard
library and :mod:`perfbench.sqltext`, and each driver when its hooks are installed, never the analysis
stack (Polars, pyarrow), which a service has no use for. What it hooks:

- SQLAlchemy, sync and async engines: class-level ``before/after_cursor_execute`` and ``handle_error``
  listeners on ``sqlalchemy.engine.Engine`` (an ``AsyncEngine``'s ``sync_engine`` is one), so engines
  created before or after installing are all seen. One row per cursor execution (an ``executemany``
  is one row). BEGIN/COMMIT/ROLLBACK issued by the DBAPI itself are not statements here.
- the standard ``sqlite3`` module: ``sqlite3.connect`` is wrapped so new connections are a traced
  subclass (``execute``, ``executemany``, ``executescript`` on the connection and its cursors).
  Code that bound ``connect`` before installing (``from sqlite3 import connect``) is not seen.
  Duration is the time inside ``execute`` (SQLite runs a SELECT to its first row there; rows fetched
  later are not counted).
- asyncpg: ``Connection._execute``/``_executemany``/``execute`` (simple queries) and
  ``PreparedStatement`` executions (what SQLAlchemy's asyncpg dialect uses). Cursors and COPY are
  not seen.
- psycopg (3), sync and async: ``execute``/``executemany`` of ``Cursor`` and ``AsyncCursor`` (and so
  of ``Connection.execute``, client-side and raw cursors) and ``execute`` of the server-side cursors
  (the time to declare them; rows fetched later are not counted). ``COPY`` and ``stream`` are not seen.
- Django's ORM: recorded by ``perfbench.agent.django`` through ``connection.execute_wrapper``; while it
  records a statement (``OUTER`` set), the driver-level hooks here skip it.

A connection opened by a SQLAlchemy engine is recorded by the SQLAlchemy listeners only: the
driver-level hooks skip it (marked on the pool's ``connect`` event), so nothing is counted twice.

Attribution: ``REQUEST`` is a ContextVar holding the current :class:`RequestTag` (request id,
endpoint); the agent's middleware binds it per request. Context does not follow work into thread
pools (``loop.run_in_executor``, ``executor.submit``) nor into aiosqlite's worker thread, so
installing the capture also carries the tag into ``ThreadPoolExecutor.submit`` and aiosqlite's
queue (only the tag, never the caller's whole context). Statements outside any request are kept,
with a null request id.

Every statement is stored fingerprinted and redacted (:mod:`perfbench.sqltext`). The analyses over the
collected ``queries.parquet`` live in :mod:`perfbench.analysis.queries`.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import inspect
import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..sqltext import fingerprint_and_text

DEFAULT_CAPACITY = 100_000

# --- fingerprints, memoised ----------------------------------------------------------------------------


class _FingerprintCache:
    """Bounded memo of raw SQL -> (fingerprint, text): drivers repeat the same texts all the time."""

    def __init__(self, size: int = 4096):
        self.size = size
        self._d: dict[str, tuple[str, str]] = {}

    def get(self, sql: str) -> tuple[str, str]:
        hit = self._d.get(sql)
        if hit is None:
            hit = fingerprint_and_text(sql)
            if len(self._d) >= self.size:
                self._d.clear()  # cheap and bounded; texts with inline literals would grow it forever
            self._d[sql] = hit
        return hit


_FP = _FingerprintCache()

# --- attribution ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class RequestTag:
    """What a statement is attributed to. ``request_id`` is None when the header was missing/malformed."""

    log: QueryLog | None
    request_id: int | None
    endpoint: str | None
    status: str = "ok"  # ok | missing | malformed
    start_ns: int = field(default_factory=time.perf_counter_ns)
    scope: dict | None = None  # an ASGI request's scope, where Starlette's router puts the matched route

    def route(self) -> str | None:
        """The endpoint as known now: Starlette's matched route once routed (records drained while the
        request still runs get it too), else ``endpoint``."""
        if self.scope is not None:
            path = getattr(self.scope.get("route"), "path", None)
            if isinstance(path, str):
                self.endpoint = f"{self.scope.get('method', 'WS')} {path}"
                self.scope = None
        return self.endpoint


REQUEST: contextvars.ContextVar[RequestTag | None] = contextvars.ContextVar("perfbench_request", default=None)
# set while a higher layer (Django's execute wrapper) records a statement: the driver hooks then skip it
OUTER: contextvars.ContextVar[bool] = contextvars.ContextVar("perfbench_outer", default=False)

_INT64 = re.compile(r"^-?[0-9]{1,19}$")


def parse_request_id(value: str | bytes | None) -> tuple[int | None, str]:
    """``(id, status)`` from an ``X-Request-Id`` header: an int64, else ``(None, missing|malformed)``."""
    if value is None:
        return None, "missing"
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None, "malformed"
    value = value.strip()
    if not _INT64.match(value):
        return None, "malformed"
    n = int(value)
    if not -(2**63) <= n < 2**63:
        return None, "malformed"
    return n, "ok"


# --- the bounded record store ------------------------------------------------------------------------

# a query record: (tag, fingerprint, text, start perf_counter_ns, duration ns, source, error)
# a cache record: (tag, kind, name, perf_counter_ns)


class QueryLog:
    """The service-side store: ring buffers of statements and cache events, a dropped counter each.

    Memory is bounded by ``capacity`` records per buffer: when full, the oldest record is dropped and
    counted (``dropped``), and ``drain`` reports the count. Thread-safe.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        if capacity < 1:
            raise ConfigError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._queries: collections.deque = collections.deque(maxlen=capacity)
        self._cache: collections.deque = collections.deque(maxlen=capacity)
        self.dropped_queries = 0
        self.dropped_cache = 0
        self.recorded_queries = 0

    def add_query(self, tag: RequestTag | None, sql: str, start_ns: int, duration_ns: int, source: str,
                  error: bool = False) -> None:
        fp, text = _FP.get(sql)
        rec = (tag, fp, text, start_ns, duration_ns, source, error)
        with self._lock:
            if len(self._queries) == self.capacity:
                self.dropped_queries += 1
            self._queries.append(rec)
            self.recorded_queries += 1

    def add_cache(self, tag: RequestTag | None, kind: str, name: str | None) -> None:
        rec = (tag, kind, name, time.perf_counter_ns())
        with self._lock:
            if len(self._cache) == self.capacity:
                self.dropped_cache += 1
            self._cache.append(rec)

    def pending(self) -> dict[str, int]:
        with self._lock:
            return {"queries": len(self._queries), "cache": len(self._cache),
                    "dropped_queries": self.dropped_queries, "dropped_cache": self.dropped_cache}

    def reset(self) -> int:
        """Forget everything (records and dropped counters); how many records were thrown away."""
        with self._lock:
            n = len(self._queries) + len(self._cache)
            self._queries.clear()
            self._cache.clear()
            self.dropped_queries = self.dropped_cache = 0
        return n

    def drain(self, limit: int | None = None) -> dict[str, Any]:
        """Take (and remove) up to ``limit`` records of each kind, oldest first, as columnar JSON-ready data.

        ``{"queries": {column: [...]}, "statements": {fingerprint: text}, "cache": {column: [...]},
        "dropped": {"queries": n, "cache": m}, "more": bool}``. Dropped counters are reported and reset.
        """
        with self._lock:
            qn = len(self._queries) if limit is None else min(limit, len(self._queries))
            cn = len(self._cache) if limit is None else min(limit, len(self._cache))
            queries = [self._queries.popleft() for _ in range(qn)]
            cache = [self._cache.popleft() for _ in range(cn)]
            dropped = {"queries": self.dropped_queries, "cache": self.dropped_cache}
            self.dropped_queries = self.dropped_cache = 0
            more = bool(self._queries or self._cache)
        statements: dict[str, str] = {}
        q: dict[str, list] = {k: [] for k in ("request_id", "request_id_status", "endpoint", "fingerprint",
                                              "start_ns", "duration_ns", "source", "error")}
        for tag, fp, text, start, dur, source, error in queries:
            statements.setdefault(fp, text)
            q["request_id"].append(tag.request_id if tag else None)
            q["request_id_status"].append(tag.status if tag else "outside")
            q["endpoint"].append(tag.route() if tag else None)
            q["fingerprint"].append(fp)
            q["start_ns"].append(start)
            q["duration_ns"].append(dur)
            q["source"].append(source)
            q["error"].append(error)
        c: dict[str, list] = {k: [] for k in ("request_id", "request_id_status", "endpoint", "kind", "name",
                                              "t_ns")}
        for tag, kind, name, t in cache:
            c["request_id"].append(tag.request_id if tag else None)
            c["request_id_status"].append(tag.status if tag else "outside")
            c["endpoint"].append(tag.route() if tag else None)
            c["kind"].append(kind)
            c["name"].append(name)
            c["t_ns"].append(t)
        return {"queries": q, "statements": statements, "cache": c, "dropped": dropped, "more": more}


# --- capture: where statements come from ---------------------------------------------------------------

_logs: list[QueryLog] = []  # installed logs; unattributed statements go to each of them
_install_lock = threading.Lock()
_undo: list[Callable[[], object]] = []


def _emit(sql: Any, start_ns: int, duration_ns: int, source: str, error: bool = False) -> None:
    tag = REQUEST.get()
    if not isinstance(sql, str):
        sql = sql.decode("utf-8", "replace") if isinstance(sql, bytes | bytearray) else str(sql)
    if tag is not None and tag.log is not None:
        tag.log.add_query(tag, sql, start_ns, duration_ns, source, error)
        return
    for log in list(_logs):
        log.add_query(tag, sql, start_ns, duration_ns, source, error)


emit = _emit  # for the framework integrations (perfbench.agent.django)


def record_cache(kind: str, name: str | None = None) -> None:
    """Count a cache ``hit`` or ``miss`` against the current request (see ``perfbench.agent.cache_hit``)."""
    tag = REQUEST.get()
    if tag is not None and tag.log is not None:
        tag.log.add_cache(tag, kind, name)
        return
    for log in list(_logs):
        log.add_cache(tag, kind, name)


# SQLAlchemy ----------------------------------------------------------------------------------------


_SA_KEY = "_perfbench_query_start"


def _sa_before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
    conn.info.setdefault(_SA_KEY, []).append(time.perf_counter_ns())


def _sa_after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
    stack = conn.info.get(_SA_KEY)
    if not stack:
        return
    start = stack.pop()
    _emit(statement, start, time.perf_counter_ns() - start, "sqlalchemy")


def _sa_error(exception_context):  # noqa: ANN001
    conn = exception_context.connection
    stack = conn.info.get(_SA_KEY) if conn is not None else None
    if not stack or exception_context.statement is None:
        return
    start = stack.pop()
    _emit(exception_context.statement, start, time.perf_counter_ns() - start, "sqlalchemy", error=True)


_owned: weakref.WeakSet = weakref.WeakSet()


def _sa_pool_connect(dbapi_connection, connection_record):  # noqa: ANN001
    """Mark the raw driver connection under a SQLAlchemy pool, so driver-level hooks skip it."""
    seen = 0
    obj = dbapi_connection
    while obj is not None and seen < 4:
        seen += 1
        if isinstance(obj, _TracedConnectionMixin):
            obj._perfbench_skip = True
            return
        cls = type(obj)
        if cls.__module__.startswith(("asyncpg", "psycopg")):
            with contextlib.suppress(TypeError):
                _owned.add(obj)
            return
        nxt = None
        for attr in ("driver_connection", "_connection", "_conn"):
            cand = getattr(obj, attr, None)
            if cand is not None and cand is not obj and not inspect.isroutine(cand):
                nxt = cand
                break
        obj = nxt


def _install_sqlalchemy() -> None:
    try:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
        from sqlalchemy.pool import Pool
    except ImportError:  # the service does not use SQLAlchemy
        return
    pairs: list[tuple[type, str, Callable[..., Any]]] = [
        (Engine, "before_cursor_execute", _sa_before), (Engine, "after_cursor_execute", _sa_after),
        (Engine, "handle_error", _sa_error), (Pool, "connect", _sa_pool_connect)]
    for target, name, fn in pairs:
        if name == "connect":
            event.listen(target, name, fn, insert=True)
        else:
            event.listen(target, name, fn)

    def remove() -> None:
        for t, n, f in pairs:
            event.remove(t, n, f)

    _undo.append(remove)


# sqlite3 ---------------------------------------------------------------------------------------------


class _TracedConnectionMixin:
    _perfbench_skip = False


def _timed(source: str, sql: Any, call, *args, **kwargs):  # noqa: ANN001
    if OUTER.get():
        return call(*args, **kwargs)
    start = time.perf_counter_ns()
    try:
        result = call(*args, **kwargs)
    except BaseException:
        _emit(sql, start, time.perf_counter_ns() - start, source, error=True)
        raise
    _emit(sql, start, time.perf_counter_ns() - start, source)
    return result


def _make_sqlite_classes():
    import sqlite3

    class TracedCursor(sqlite3.Cursor):
        def execute(self, sql, parameters=(), /):  # noqa: ANN001
            if getattr(self.connection, "_perfbench_skip", True):
                return super().execute(sql, parameters)
            return _timed("sqlite3", sql, super().execute, sql, parameters)

        def executemany(self, sql, seq_of_parameters, /):  # noqa: ANN001
            if getattr(self.connection, "_perfbench_skip", True):
                return super().executemany(sql, seq_of_parameters)
            return _timed("sqlite3", sql, super().executemany, sql, seq_of_parameters)

        def executescript(self, sql_script, /):  # noqa: ANN001
            if getattr(self.connection, "_perfbench_skip", True):
                return super().executescript(sql_script)
            return _timed("sqlite3", sql_script, super().executescript, sql_script)

    class TracedConnection(_TracedConnectionMixin, sqlite3.Connection):
        def cursor(self, factory=TracedCursor):  # noqa: ANN001
            cur = super().cursor(factory)
            return cur

        def execute(self, sql, parameters=(), /):  # noqa: ANN001
            return self.cursor().execute(sql, parameters)

        def executemany(self, sql, seq_of_parameters, /):  # noqa: ANN001
            return self.cursor().executemany(sql, seq_of_parameters)

        def executescript(self, sql_script, /):  # noqa: ANN001
            return self.cursor().executescript(sql_script)

    return TracedConnection, TracedCursor


def _install_sqlite3() -> None:
    import sqlite3

    traced, _cursor = _make_sqlite_classes()
    original = sqlite3.connect
    subclasses: dict[type, type] = {}

    @functools.wraps(original)
    def connect(*args, **kwargs):
        factory = kwargs.get("factory")
        if factory is None:
            kwargs["factory"] = traced
        elif isinstance(factory, type) and issubclass(factory, sqlite3.Connection) and not issubclass(
                factory, _TracedConnectionMixin):
            if factory not in subclasses:
                subclasses[factory] = type("Traced" + factory.__name__, (traced, factory), {})
            kwargs["factory"] = subclasses[factory]
        return original(*args, **kwargs)

    connect.__perfbench_original__ = original  # type: ignore[attr-defined]
    sqlite3.connect = connect
    _undo.append(lambda: setattr(sqlite3, "connect", original))


# asyncpg ---------------------------------------------------------------------------------------------


def _install_asyncpg() -> None:
    try:
        import asyncpg.connection as apc
        import asyncpg.prepared_stmt as aps
    except ImportError:  # the service does not use asyncpg
        return
    Conn = apc.Connection
    PS = aps.PreparedStatement
    originals = {
        (Conn, "_execute"): Conn._execute,
        (Conn, "_executemany"): Conn._executemany,
        (Conn, "execute"): Conn.execute,
        (PS, "_PreparedStatement__do_execute"): PS._PreparedStatement__do_execute,
    }

    async def timed(conn, sql, coro):  # noqa: ANN001
        if conn in _owned or OUTER.get():
            return await coro
        start = time.perf_counter_ns()
        try:
            result = await coro
        except BaseException:
            _emit(sql, start, time.perf_counter_ns() - start, "asyncpg", error=True)
            raise
        _emit(sql, start, time.perf_counter_ns() - start, "asyncpg")
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

    _undo.append(undo)


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


def _install_psycopg() -> None:
    try:
        import psycopg
    except ImportError:  # the service does not use psycopg
        return

    def sync(orig):  # noqa: ANN001, ANN202
        @functools.wraps(orig)
        def method(self, query, *args, **kwargs):  # noqa: ANN001, ANN202
            if OUTER.get() or self.connection in _owned:
                return orig(self, query, *args, **kwargs)
            start = time.perf_counter_ns()
            try:
                result = orig(self, query, *args, **kwargs)
            except BaseException:
                _emit(_psycopg_text(query, self), start, time.perf_counter_ns() - start, "psycopg", error=True)
                raise
            _emit(_psycopg_text(query, self), start, time.perf_counter_ns() - start, "psycopg")
            return result

        return method

    def asynchronous(orig):  # noqa: ANN001, ANN202
        @functools.wraps(orig)
        async def method(self, query, *args, **kwargs):  # noqa: ANN001, ANN202
            if OUTER.get() or self.connection in _owned:
                return await orig(self, query, *args, **kwargs)
            start = time.perf_counter_ns()
            try:
                result = await orig(self, query, *args, **kwargs)
            except BaseException:
                _emit(_psycopg_text(query, self), start, time.perf_counter_ns() - start, "psycopg", error=True)
                raise
            _emit(_psycopg_text(query, self), start, time.perf_counter_ns() - start, "psycopg")
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

    _undo.append(undo)


# context into threads ----------------------------------------------------------------------------------


def _carry(fn):  # noqa: ANN001
    """``fn`` wrapped to run with the caller's request tag bound (or ``fn`` itself outside a request)."""
    tag = REQUEST.get()
    if tag is None:
        return fn

    @functools.wraps(fn)
    def run(*args, **kwargs):
        token = REQUEST.set(tag)
        try:
            return fn(*args, **kwargs)
        finally:
            REQUEST.reset(token)

    return run


def _install_thread_carry() -> None:
    from concurrent.futures import ThreadPoolExecutor

    original: Callable[..., Any] = ThreadPoolExecutor.submit

    @functools.wraps(original)
    def submit(self, fn, /, *args, **kwargs):  # noqa: ANN001
        return original(self, _carry(fn), *args, **kwargs)

    # setattr: mypy rejects assigning to a method, and this patch is deliberate (undone by uninstall)
    setattr(ThreadPoolExecutor, "submit", submit)  # noqa: B010
    _undo.append(lambda: setattr(ThreadPoolExecutor, "submit", original))
    try:
        import aiosqlite.core as aic
    except ImportError:  # pragma: no cover
        return
    orig_aio = aic.Connection._execute

    @functools.wraps(orig_aio)
    async def _execute(self, fn, *args, **kwargs):  # noqa: ANN001
        return await orig_aio(self, _carry(functools.partial(fn, *args, **kwargs)))

    # setattr: mypy rejects assigning to a method, and this patch is deliberate (undone by uninstall)
    setattr(aic.Connection, "_execute", _execute)  # noqa: B010
    _undo.append(lambda: setattr(aic.Connection, "_execute", orig_aio))


def install(log: QueryLog) -> None:
    """Start recording into ``log`` (hooks are installed once per process, shared by every log)."""
    with _install_lock:
        if log in _logs:
            return
        if not _logs:
            _install_sqlalchemy()
            _install_sqlite3()
            _install_asyncpg()
            _install_psycopg()
            _install_thread_carry()
        _logs.append(log)


def uninstall(log: QueryLog) -> None:
    """Stop recording into ``log``; the hooks go when the last log is uninstalled."""
    with _install_lock:
        if log not in _logs:
            return
        _logs.remove(log)
        if not _logs:
            while _undo:
                _undo.pop()()


def installed() -> bool:
    return bool(_logs)
