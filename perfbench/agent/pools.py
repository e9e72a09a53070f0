"""Pools and queues: SQLAlchemy's connection pools and the asyncio loop's ready queue, sampled as gauges.

Standard library only (this runs inside the service); SQLAlchemy is hooked only when it is installed,
and only while an agent runs (the hook set is one of ``perfbench.agent.sql.INSTALLERS``).

- **Waiting for a connection.** The agent times every checkout from a SQLAlchemy pool
  (``_ConnectionRecord.checkout``, which calls the pool's ``_do_get``: the wait on a full pool, or the
  opening of a new connection), sync and async engines alike. The time is added to the current
  request's ``pool_wait_ns`` (so the request's server time has it as its own part), and to the pool's
  running figures: callers waiting now and at most, checkouts, total and longest wait. The pool's
  ``connect`` event counts the connections it opens.
- **Gauges.** One sampler thread per process (running while an agent is installed) reads, every
  ``GAUGE_INTERVAL_S``, each pool seen so far and each asyncio loop the agent served requests on, and
  appends a ``(t_ns, name, target, value)`` row per gauge to every installed agent's :class:`Gauges`
  buffer (bounded: the oldest dropped and counted), drained with the other records. ``target`` names
  the pool (``postgresql#1``: its dialect, numbered in the order seen) or the loop (``loop#1``).

Gauge names (per pool unless said): ``pool.checked_out`` (now), ``pool.checked_out_max`` (the most at
once since the last sample), ``pool.size``, ``pool.capacity`` (size + max_overflow; absent when
overflow is unlimited), ``pool.overflow`` (connections open beyond the size), ``pool.waiting_max`` (the
most callers waiting at once), ``pool.checkouts``, ``pool.wait_ms`` (the summed waits of the checkouts
since the last sample), ``pool.wait_max_ms``, ``pool.connects`` (new connections opened);
``loop.ready`` (per loop: callbacks in its ready queue, ``len(loop._ready)``, where the loop has one).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from . import sql

GAUGE_INTERVAL_S = 0.1  # ten samples a second
COLUMNS = ("t_ns", "name", "target", "value")


class PoolFigures:
    """One pool's running figures (the sampler takes and resets the per-interval ones)."""

    __slots__ = ("label", "lock", "waiting", "waiting_max", "checkouts", "wait_ns", "wait_max_ns", "out_max",
                 "connects")

    def __init__(self, label: str) -> None:
        self.label = label
        self.lock = threading.Lock()
        self.waiting = 0
        self.waiting_max = 0
        self.checkouts = 0
        self.wait_ns = 0
        self.wait_max_ns = 0
        self.out_max = 0
        self.connects = 0


_pools: weakref.WeakKeyDictionary[Any, PoolFigures] = weakref.WeakKeyDictionary()
_loops: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()
_pool_numbers = itertools.count(1)
_loop_numbers = itertools.count(1)


def figures(pool: Any) -> PoolFigures:
    """The running figures of ``pool`` (registered on first sight)."""
    f = _pools.get(pool)
    if f is None:
        with _registry_lock:
            f = _pools.get(pool)
            if f is None:
                dialect = getattr(getattr(pool, "_dialect", None), "name", None)
                name = dialect if isinstance(dialect, str) and dialect != "default" else type(pool).__name__
                f = _pools[pool] = PoolFigures(f"{name}#{next(_pool_numbers)}")
    return f


def watch_loop(loop: Any) -> None:
    """Sample ``loop``'s ready queue from now on (kept weakly: a closed, dropped loop goes)."""
    if loop not in _loops:
        with _registry_lock:
            if loop not in _loops:
                _loops[loop] = f"loop#{next(_loop_numbers)}"


def checked_out(pool: Any) -> int | None:
    fn = getattr(pool, "checkedout", None)
    if fn is None:
        return None
    try:
        return int(fn())
    except Exception:  # a pool being disposed
        return None


# --- the SQLAlchemy hooks ----------------------------------------------------------------------------------


def _timed_checkout(original: Callable[..., Any]) -> Callable[..., Any]:
    def checkout(cls: Any, pool: Any) -> Any:
        f = figures(pool)
        with f.lock:
            f.waiting += 1
            if f.waiting > f.waiting_max:
                f.waiting_max = f.waiting
        start = time.perf_counter_ns()
        try:
            return original(cls, pool)
        finally:
            waited = time.perf_counter_ns() - start
            out = checked_out(pool)
            with f.lock:
                f.waiting -= 1
                f.checkouts += 1
                f.wait_ns += waited
                if waited > f.wait_max_ns:
                    f.wait_max_ns = waited
                if out is not None and out > f.out_max:
                    f.out_max = out
            tag = sql.REQUEST.get()
            if tag is not None:
                tag.pool_wait_ns += waited

    return checkout


def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    pool = getattr(connection_record, "_ConnectionRecord__pool", None)
    if pool is not None:
        f = figures(pool)
        with f.lock:
            f.connects += 1


def install_sqlalchemy_pools() -> Callable[[], None] | None:
    """Time checkouts from every SQLAlchemy pool and count the connections opened; returns the undo."""
    try:
        from sqlalchemy import event
        from sqlalchemy.pool import Pool
        from sqlalchemy.pool.base import _ConnectionRecord
    except ImportError:  # the service does not use SQLAlchemy
        return None
    original = _ConnectionRecord.__dict__["checkout"]
    # setattr: mypy rejects assigning to a method, and this patch is deliberate (undone below)
    setattr(_ConnectionRecord, "checkout", classmethod(_timed_checkout(original.__func__)))  # noqa: B010
    event.listen(Pool, "connect", _on_connect)

    def undo() -> None:
        setattr(_ConnectionRecord, "checkout", original)  # noqa: B010
        event.remove(Pool, "connect", _on_connect)

    return undo


sql.INSTALLERS.append(install_sqlalchemy_pools)


# --- the gauges ---------------------------------------------------------------------------------------------


def sample(now: int | None = None) -> list[tuple[int, str, str, float]]:
    """One reading of every pool and loop: ``(t_ns, name, target, value)`` rows; takes (resets) the
    pools' per-interval figures."""
    now = time.perf_counter_ns() if now is None else now
    rows: list[tuple[int, str, str, float]] = []
    for pool, f in list(_pools.items()):
        out = checked_out(pool)
        with f.lock:
            peak = max(f.out_max, out or 0)
            taken = (f.waiting_max, f.checkouts, f.wait_ns, f.wait_max_ns, f.connects)
            f.out_max = out or 0
            f.waiting_max = f.waiting
            f.checkouts = f.wait_ns = f.wait_max_ns = f.connects = 0
        waiting_max, checkouts, wait_ns, wait_max_ns, connects = taken
        values: dict[str, float] = {}
        if out is not None:
            values["pool.checked_out"] = out
            values["pool.checked_out_max"] = peak
        with contextlib.suppress(Exception):  # QueuePool and its async form; the others have no size
            size = int(pool.size())
            values["pool.size"] = size
            max_overflow = getattr(pool, "_max_overflow", None)
            if isinstance(max_overflow, int) and max_overflow >= 0:
                values["pool.capacity"] = size + max_overflow
            overflow = getattr(pool, "overflow", None)
            if overflow is not None:
                values["pool.overflow"] = max(0, int(overflow()))
        values.update({"pool.waiting_max": waiting_max, "pool.checkouts": checkouts, "pool.wait_ms": wait_ns / 1e6,
                       "pool.wait_max_ms": wait_max_ns / 1e6, "pool.connects": connects})
        rows += [(now, name, f.label, float(v)) for name, v in values.items()]
    for loop, label in list(_loops.items()):
        ready = getattr(loop, "_ready", None)  # asyncio's own loops; uvloop and others keep it elsewhere
        if ready is None or loop.is_closed():
            continue
        with contextlib.suppress(TypeError):
            rows.append((now, "loop.ready", label, float(len(ready))))
    return rows


class Gauges:
    """One agent's gauge rows: a ring buffer of ``capacity`` rows (the oldest dropped and counted), filled
    by the process's sampler while the agent is installed."""

    def __init__(self, capacity: int, interval_s: float = GAUGE_INTERVAL_S):
        if capacity < 1:
            raise ConfigError(f"capacity must be at least 1, got {capacity}")
        if not 0 < interval_s <= 10:
            raise ConfigError(f"the gauges' interval_s must be in (0, 10] seconds, got {interval_s}")
        self.capacity = capacity
        self.interval_s = interval_s
        self._rows: collections.deque = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, rows: list[tuple[int, str, str, float]]) -> None:
        with self._lock:
            over = len(self._rows) + len(rows) - self.capacity
            if over > 0:
                self.dropped += over
            self._rows.extend(rows)

    def install(self) -> None:
        _Sampler.add(self)

    def uninstall(self) -> None:
        _Sampler.remove(self)

    def pending(self) -> int:
        with self._lock:
            return len(self._rows)

    def reset(self) -> int:
        with self._lock:
            n = len(self._rows)
            self._rows.clear()
            self.dropped = 0
        return n

    def drain(self, limit: int | None = None) -> dict[str, Any]:
        """Take up to ``limit`` rows, oldest first: ``{"columns": {t_ns, name, target, value}, "dropped": n,
        "more": bool}`` (``t_ns``: the agent's ``perf_counter_ns``; the dropped counter is reported and reset)."""
        with self._lock:
            n = len(self._rows) if limit is None else min(limit, len(self._rows))
            taken = [self._rows.popleft() for _ in range(n)]
            dropped, self.dropped = self.dropped, 0
            more = bool(self._rows)
        cols: dict[str, list] = {k: [r[i] for r in taken] for i, k in enumerate(COLUMNS)}
        return {"columns": cols, "dropped": dropped, "more": more}


class _Sampler:
    """The process's one sampler thread: runs while a :class:`Gauges` is installed."""

    sinks: list[Gauges] = []
    lock = threading.Lock()
    thread: threading.Thread | None = None
    stop: threading.Event | None = None

    @classmethod
    def add(cls, gauges: Gauges) -> None:
        with cls.lock:
            if gauges in cls.sinks:
                return
            cls.sinks.append(gauges)
            if cls.thread is None:
                cls.stop = threading.Event()
                cls.thread = threading.Thread(target=cls.run, args=(cls.stop,), name="perfbench-gauges", daemon=True)
                cls.thread.start()

    @classmethod
    def remove(cls, gauges: Gauges) -> None:
        ended = None
        with cls.lock:
            if gauges in cls.sinks:
                cls.sinks.remove(gauges)
            if not cls.sinks and cls.stop is not None:
                cls.stop.set()
                ended, cls.thread, cls.stop = cls.thread, None, None
        if ended is not None and ended is not threading.current_thread():
            ended.join(5)  # it wakes at once: when the agent is uninstalled no thread of it is left

    @classmethod
    def run(cls, stop: threading.Event) -> None:
        while True:
            with cls.lock:
                sinks = list(cls.sinks)
            interval = min((g.interval_s for g in sinks), default=GAUGE_INTERVAL_S)
            if stop.wait(interval):
                return
            rows = sample()
            if rows:
                for g in sinks:
                    g.add(rows)


def _after_fork_in_child() -> None:
    """A forked worker (gunicorn's preloaded app) has no sampler thread: start its own for the same agents."""
    _Sampler.lock = threading.Lock()
    _Sampler.thread = _Sampler.stop = None
    sinks, _Sampler.sinks = list(_Sampler.sinks), []
    for gauges in sinks:
        _Sampler.add(gauges)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
