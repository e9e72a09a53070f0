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
- asyncpg (hooks in :mod:`perfbench.agent.drivers`): ``Connection._execute``/``_executemany``/
  ``execute`` (simple queries) and ``PreparedStatement`` executions (what SQLAlchemy's asyncpg dialect
  uses). Cursors and COPY are not seen.
- psycopg (3), sync and async (:mod:`perfbench.agent.drivers`): ``execute``/``executemany`` of
  ``Cursor`` and ``AsyncCursor`` (and so of ``Connection.execute``, client-side and raw cursors) and ``execute`` of the server-side cursors
  (the time to declare them; rows fetched later are not counted). ``COPY`` and ``stream`` are not seen.
- Django's ORM: recorded by ``perfbench.agent.django`` through ``connection.execute_wrapper``; while it
  records a statement (``OUTER`` set), the driver-level hooks here skip it.

A connection opened by a SQLAlchemy engine is recorded by the SQLAlchemy listeners only: the
driver-level hooks skip it (marked on the pool's ``connect`` event, or on its first statement when it
was pooled before the hooks were installed), so nothing is counted twice.

The hooks are installed while something listens: an agent's log (:func:`install`) or an open
``capture()`` block (:func:`open_capture`); the last one to leave removes them all. More hook sets
register in ``INSTALLERS`` (:mod:`perfbench.agent.drivers`, :mod:`perfbench.agent.events`).

Attribution: ``REQUEST`` is a ContextVar holding the current :class:`RequestTag` (request id,
endpoint); the agent's middleware binds it per request. Context does not follow work into thread
pools (``loop.run_in_executor``, ``executor.submit``) nor into aiosqlite's worker thread, so
installing the capture also carries the tag into ``ThreadPoolExecutor.submit`` and aiosqlite's
queue (only the tag and the open captures, never the caller's whole context). Statements outside any
request are kept, with a null request id. ``CAPTURES`` holds the open ``capture()`` blocks of the
context (:mod:`perfbench.agent.inprocess`): each statement also goes to every one of them.

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
from . import callsite

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
fingerprinted = _FP.get  # raw SQL -> (fingerprint, redacted text), memoised

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
    pool_wait_ns: int = 0  # time this request waited for a SQLAlchemy pool's connection (perfbench.agent.pools)

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
# the open ``perfbench.agent.capture()`` blocks of this context, innermost last (perfbench.agent.capture)
CAPTURES: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar("perfbench_captures", default=())

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

# a query record: (tag, fingerprint, text, start perf_counter_ns, duration ns, source, error, call site)
# a cache record: (tag, kind, name, perf_counter_ns, source, command, key, duration ns)
# a downstream record: (tag, method, host, path, status, start perf_counter_ns, duration ns, error)
CACHE_COLUMNS = ("kind", "name", "t_ns", "source", "command", "key", "duration_ns")
DOWNSTREAM_COLUMNS = ("method", "host", "path", "status", "start_ns", "duration_ns", "error")
MAX_SITES = 10_000  # (endpoint, fingerprint) pairs whose call site was sampled, before the set starts over


class QueryLog:
    """The service-side store: ring buffers of statements, cache events and downstream calls, a dropped
    counter each. A statement's call site (:mod:`perfbench.agent.callsite`) is sampled once per
    fingerprint per endpoint (since the last reset) and carried by that statement's record.

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
        self._downstream: collections.deque = collections.deque(maxlen=capacity)
        self._sited: set[tuple[str | None, str]] = set()
        self.dropped_queries = 0
        self.dropped_cache = 0
        self.dropped_downstream = 0
        self.recorded_queries = 0

    def add_query(self, tag: RequestTag | None, sql: str, start_ns: int, duration_ns: int, source: str,
                  error: bool = False) -> None:
        fp, text = _FP.get(sql)
        key = (tag.endpoint if tag is not None else None, fp)
        site = None
        if key not in self._sited:  # the first of its kind: where in the service did it come from?
            if len(self._sited) >= MAX_SITES:
                self._sited.clear()
            self._sited.add(key)
            site = callsite.find(2)
        rec = (tag, fp, text, start_ns, duration_ns, source, error, site)
        with self._lock:
            if len(self._queries) == self.capacity:
                self.dropped_queries += 1
            self._queries.append(rec)
            self.recorded_queries += 1

    def add_cache(self, tag: RequestTag | None, kind: str, name: str | None, source: str = "app",
                  command: str | None = None, key: str | None = None, duration_ns: int | None = None,
                  t_ns: int | None = None) -> None:
        rec = (tag, kind, name, time.perf_counter_ns() if t_ns is None else t_ns, source, command, key, duration_ns)
        with self._lock:
            if len(self._cache) == self.capacity:
                self.dropped_cache += 1
            self._cache.append(rec)

    def add_downstream(self, tag: RequestTag | None, rec: tuple) -> None:
        """A downstream call: ``rec`` = (method, host, path, status, start_ns, duration_ns, error)."""
        with self._lock:
            if len(self._downstream) == self.capacity:
                self.dropped_downstream += 1
            self._downstream.append((tag, *rec))

    def pending(self) -> dict[str, int]:
        with self._lock:
            return {"queries": len(self._queries), "cache": len(self._cache), "downstream": len(self._downstream),
                    "dropped_queries": self.dropped_queries, "dropped_cache": self.dropped_cache,
                    "dropped_downstream": self.dropped_downstream}

    def reset(self) -> int:
        """Forget everything (records and dropped counters); how many records were thrown away."""
        with self._lock:
            n = len(self._queries) + len(self._cache) + len(self._downstream)
            self._queries.clear()
            self._cache.clear()
            self._downstream.clear()
            self._sited.clear()
            self.dropped_queries = self.dropped_cache = self.dropped_downstream = 0
        return n

    def drain(self, limit: int | None = None) -> dict[str, Any]:
        """Take (and remove) up to ``limit`` records of each kind, oldest first, as columnar JSON-ready data.

        ``{"queries": {column: [...]}, "statements": {fingerprint: text}, "cache": {column: [...]},
        "downstream": {column: [...]}, "dropped": {"queries": n, "cache": m, "downstream": k}, "more": bool}``.
        Dropped counters are reported and reset. Each kind has request_id, request_id_status and endpoint,
        then its own columns (queries: ... call_site, call_function; CACHE_COLUMNS; DOWNSTREAM_COLUMNS).
        """
        with self._lock:
            qn = len(self._queries) if limit is None else min(limit, len(self._queries))
            cn = len(self._cache) if limit is None else min(limit, len(self._cache))
            dn = len(self._downstream) if limit is None else min(limit, len(self._downstream))
            queries = [self._queries.popleft() for _ in range(qn)]
            cache = [self._cache.popleft() for _ in range(cn)]
            downstream = [self._downstream.popleft() for _ in range(dn)]
            dropped = {"queries": self.dropped_queries, "cache": self.dropped_cache,
                       "downstream": self.dropped_downstream}
            self.dropped_queries = self.dropped_cache = self.dropped_downstream = 0
            more = bool(self._queries or self._cache or self._downstream)
        statements: dict[str, str] = {}
        q: dict[str, list] = {k: [] for k in ("request_id", "request_id_status", "endpoint", "fingerprint",
                                              "start_ns", "duration_ns", "source", "error", "call_site",
                                              "call_function")}
        for tag, fp, text, start, dur, source, error, site in queries:
            statements.setdefault(fp, text)
            q["request_id"].append(tag.request_id if tag else None)
            q["request_id_status"].append(tag.status if tag else "outside")
            q["endpoint"].append(tag.route() if tag else None)
            q["fingerprint"].append(fp)
            q["start_ns"].append(start)
            q["duration_ns"].append(dur)
            q["source"].append(source)
            q["error"].append(error)
            q["call_site"].append(site[0] if site else None)
            q["call_function"].append(site[1] if site else None)
        return {"queries": q, "statements": statements, "cache": _columns(cache, CACHE_COLUMNS),
                "downstream": _columns(downstream, DOWNSTREAM_COLUMNS), "dropped": dropped, "more": more}


def _columns(records: list[tuple], names: tuple[str, ...]) -> dict[str, list]:
    """Records ``(tag, *values)`` as columns: the request's three, then ``names``."""
    out: dict[str, list] = {k: [] for k in ("request_id", "request_id_status", "endpoint", *names)}
    for tag, *values in records:
        out["request_id"].append(tag.request_id if tag else None)
        out["request_id_status"].append(tag.status if tag else "outside")
        out["endpoint"].append(tag.route() if tag else None)
        for name, value in zip(names, values, strict=True):
            out[name].append(value)
    return out


# --- capture: where statements come from ---------------------------------------------------------------

_logs: list[QueryLog] = []  # installed logs; unattributed statements go to each of them
_install_lock = threading.Lock()
_undo: list[Callable[[], object]] = []


def _emit(sql: Any, start_ns: int, duration_ns: int, source: str, error: bool = False,
          rows: int | None = None) -> None:
    tag = REQUEST.get()
    if not isinstance(sql, str):
        sql = sql.decode("utf-8", "replace") if isinstance(sql, bytes | bytearray) else str(sql)
    if tag is not None and tag.log is not None:
        tag.log.add_query(tag, sql, start_ns, duration_ns, source, error)
    else:
        for log in list(_logs):
            log.add_query(tag, sql, start_ns, duration_ns, source, error)
    for capture in CAPTURES.get():  # rows: known to in-process captures only
        capture.add_statement(sql, start_ns, duration_ns, source, error, rows)


emit = _emit  # for the framework integrations (perfbench.agent.django)


def record_cache(kind: str, name: str | None = None, **details: Any) -> None:
    """Count a cache ``hit`` or ``miss`` against the current request (see ``perfbench.agent.cache_hit``);
    ``details``: a hooked client's source, command, key, duration_ns and t_ns (QueryLog.add_cache)."""
    tag = REQUEST.get()
    if tag is not None and tag.log is not None:
        tag.log.add_cache(tag, kind, name, **details)
    else:
        for log in list(_logs):
            log.add_cache(tag, kind, name, **details)
    for capture in CAPTURES.get():
        capture.add_cache(kind, name, details)


def record_downstream(method: str, host: str, path: str, status: int | None, start_ns: int, duration_ns: int,
                      error: str | None) -> None:
    """A call the service made to another service, attributed to the current request (or capture)."""
    tag = REQUEST.get()
    rec = (method, host, path, status, start_ns, duration_ns, error)
    if tag is not None and tag.log is not None:
        tag.log.add_downstream(tag, rec)
    for capture in CAPTURES.get():
        capture.add_downstream(rec)


# SQLAlchemy ----------------------------------------------------------------------------------------


_SA_KEY = "_perfbench_query_start"
_SA_OWNED = "_perfbench_owned"


def _sa_before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
    info = conn.info
    if _SA_OWNED not in info:  # pooled before the hooks were installed: mark it now (see _sa_pool_connect)
        info[_SA_OWNED] = True
        with contextlib.suppress(Exception):
            _sa_pool_connect(conn.connection.dbapi_connection, None)
    info.setdefault(_SA_KEY, []).append(time.perf_counter_ns())


def _sa_after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
    stack = conn.info.get(_SA_KEY)
    if not stack:
        return
    start = stack.pop()
    rows = getattr(cursor, "rowcount", -1)
    _emit(statement, start, time.perf_counter_ns() - start, "sqlalchemy",
          rows=rows if isinstance(rows, int) and rows >= 0 else None)


def _sa_error(exception_context):  # noqa: ANN001
    conn = exception_context.connection
    stack = conn.info.get(_SA_KEY) if conn is not None else None
    if not stack or exception_context.statement is None:
        return
    start = stack.pop()
    _emit(exception_context.statement, start, time.perf_counter_ns() - start, "sqlalchemy", error=True)


owned: weakref.WeakSet = weakref.WeakSet()  # driver connections under a SQLAlchemy pool (recorded there)


def _sa_pool_connect(dbapi_connection, connection_record):  # noqa: ANN001
    """Mark the raw driver connection under a SQLAlchemy pool, so driver-level hooks skip it."""
    seen = 0
    obj = dbapi_connection
    while obj is not None and seen < 4:
        seen += 1
        if isinstance(obj, _TracedConnectionMixin):
            obj._perfbench_skip = True
            return
        if type(obj).__module__ == "sqlite3":  # opened before the hooks: not traced anyway
            return
        cls = type(obj)
        if cls.__module__.startswith(("asyncpg", "psycopg")):
            with contextlib.suppress(TypeError):
                owned.add(obj)
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
    rows = getattr(result, "rowcount", -1)  # sqlite3's execute returns its cursor; -1 for a SELECT
    _emit(sql, start, time.perf_counter_ns() - start, source, rows=rows if isinstance(rows, int) and rows >= 0 else None)
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


# context into threads ----------------------------------------------------------------------------------


def _run_bound(tag: RequestTag | None, captures: tuple[Any, ...], fn: Callable[..., Any], /, *args: Any,
               **kwargs: Any) -> Any:
    token, ctoken = REQUEST.set(tag), CAPTURES.set(captures)
    try:
        return fn(*args, **kwargs)
    finally:
        CAPTURES.reset(ctoken)
        REQUEST.reset(token)


def _carry(fn):  # noqa: ANN001
    """``fn`` wrapped to run with the caller's request tag and open captures bound (or ``fn`` itself
    outside both). A partial, not a ``functools.wraps`` closure: aiosqlite sends every cursor operation
    through here, so it must be cheap."""
    tag = REQUEST.get()
    captures = CAPTURES.get()
    if tag is None and not captures:
        return fn
    return functools.partial(_run_bound, tag, captures, fn)


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


# more hook sets, registered by their modules (perfbench.agent.drivers, perfbench.agent.events): each
# installs its hooks when its library is importable and returns how to undo them (None: nothing installed)
INSTALLERS: list[Callable[[], Callable[[], object] | None]] = []
_open_captures = 0  # perfbench.agent.capture() blocks open in the process: they need the hooks too


def _install_hooks() -> None:
    _install_sqlalchemy()
    _install_sqlite3()
    for installer in INSTALLERS:
        undo = installer()
        if undo is not None:
            _undo.append(undo)
    _install_thread_carry()


def _remove_hooks_if_unused() -> None:
    if not _logs and not _open_captures:
        while _undo:
            _undo.pop()()


def install(log: QueryLog) -> None:
    """Start recording into ``log`` (hooks are installed once per process, shared by every log)."""
    with _install_lock:
        if log in _logs:
            return
        if not _logs and not _open_captures:
            _install_hooks()
        _logs.append(log)


def uninstall(log: QueryLog) -> None:
    """Stop recording into ``log``; the hooks go when the last log is uninstalled (and no capture is open)."""
    with _install_lock:
        if log not in _logs:
            return
        _logs.remove(log)
        _remove_hooks_if_unused()


def open_capture() -> None:
    """A ``capture()`` block starts: the hooks are installed if nothing else installed them."""
    global _open_captures
    with _install_lock:
        if not _logs and not _open_captures:
            _install_hooks()
        _open_captures += 1


def close_capture() -> None:
    """A ``capture()`` block ends: the hooks go if it was the last user."""
    global _open_captures
    with _install_lock:
        _open_captures = max(0, _open_captures - 1)
        _remove_hooks_if_unused()


def installed() -> bool:
    """Whether an agent records (its endpoints say ``capturing``)."""
    return bool(_logs)


def active() -> bool:
    """Whether the hooks are in place: an agent records or a capture is open."""
    return bool(_logs) or _open_captures > 0
