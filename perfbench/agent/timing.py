"""Server-side time per request: what the agent's middlewares measure around each handler.

Standard library only (this runs inside the service). Per request the middleware calls
:meth:`RequestTimings.begin` before the handler and :meth:`RequestTimings.finish` after it (after the
response body was produced: for WSGI when the server closes the response iterable). One record each:

- ``wall_ns``: the handler's wall time (``perf_counter_ns``), from the middleware's start to its end;
- ``cpu_ns``: CPU time of the thread that ran a synchronous handler (WSGI, Django):
  ``time.thread_time_ns()`` at both ends. None for asyncio handlers: every request of an asyncio
  service runs on the loop's one thread, so its CPU time is not the request's own;
- ``gc_ns``/``gc_pauses``: garbage-collection pauses that overlapped the request, from a
  ``gc.callbacks`` hook keeping a running total (a collection holds the GIL, so it pauses every
  request in flight: each of them counts it);
- ``lag_ns``: for asyncio handlers, how long the event loop was blocked while the request was in
  flight. A sampler (:class:`LagSampler`, one per loop, started on the first request) schedules
  itself every ``LAG_INTERVAL_S`` with ``call_later`` and adds its own lateness beyond
  ``LAG_SLACK_NS`` to a running total; a request takes the growth of that total between its two
  ends, counting the lateness still accruing at each end. It sees blocks longer than the slack (a
  synchronous call on the loop: this request's code or another's), not the ordinary interleaving of
  short steps, and misses up to one interval at the start of each block. None for synchronous handlers.
  Each lateness of ``BLOCK_NS`` or more is also kept as a block (its start and length), so the analysis
  can say which endpoints were in flight while the loop was blocked.

- ``pool_ns``: the time the request waited for a connection from a SQLAlchemy pool
  (:mod:`perfbench.agent.pools`); 0 when it took none or never waited.

DB, cache and downstream time are not repeated here: they are the sums of the request's own SQL,
cache and downstream records, joined by request id in the analysis (``perfbench.analysis.explain``).
Records stay in a bounded ring buffer (the oldest dropped and counted), drained with the SQL records.
"""

from __future__ import annotations

import collections
import gc
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported by an asyncio service already; a WSGI service need not load it
    import asyncio

from ..errors import ConfigError
from . import pools

LAG_INTERVAL_S = 0.01  # 100 wake-ups a second: about 0.5% of a core on an idle service (benchmarks/agent_timing.py)
LAG_SLACK_NS = 1_000_000  # lateness under 1 ms is the loop's ordinary work, not a block
BLOCK_NS = 5_000_000  # a lateness of 5 ms or more is also kept as a block (when, how long) for the analysis

COLUMNS = ("request_id", "request_id_status", "endpoint", "start_ns", "wall_ns", "cpu_ns", "gc_ns", "gc_pauses",
           "lag_ns", "mode", "pool_ns")


# --- garbage collection: a running total of pause time ------------------------------------------------------


class _GCClock:
    """Total GC pause time and count since installed (``gc.callbacks``); cheap to read."""

    def __init__(self) -> None:
        self.total_ns = 0
        self.pauses = 0
        self._started = 0
        self.users = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
        elif self._started:
            self.total_ns += time.perf_counter_ns() - self._started
            self.pauses += 1
            self._started = 0


_GC = _GCClock()
_gc_lock = threading.Lock()


def _gc_install() -> None:
    with _gc_lock:
        if _GC.users == 0 and _GC not in gc.callbacks:
            gc.callbacks.append(_GC)
        _GC.users += 1


def _gc_uninstall() -> None:
    with _gc_lock:
        _GC.users = max(0, _GC.users - 1)
        if _GC.users == 0 and _GC in gc.callbacks:
            gc.callbacks.remove(_GC)


# --- event-loop lag -------------------------------------------------------------------------------------------


class LagSampler:
    """Measures how late the loop runs a callback it scheduled every ``interval_s``: the running total
    of lateness beyond ``slack_ns`` is how long the loop was blocked (see the module's docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval_s: float = LAG_INTERVAL_S,
                 slack_ns: int = LAG_SLACK_NS, on_block: Any = None):
        self._loop = weakref.ref(loop)  # not a strong one: the samplers are kept by loop, weakly
        self.on_block = on_block  # called with a (start_ns, duration_ns) tuple for a lateness of BLOCK_NS or more
        self.interval_ns = int(interval_s * 1e9)
        self.interval_s = interval_s
        self.slack_ns = slack_ns
        self.total_ns = 0
        self.samples = 0
        self._due_ns = 0
        # weak: a handle holds its loop, and the samplers are kept by loop, weakly
        self._handle: weakref.ref[asyncio.TimerHandle] | None = None

    def start(self) -> LagSampler:
        loop = self._loop()
        if loop is not None:
            self._due_ns = time.perf_counter_ns() + self.interval_ns
            self._handle = weakref.ref(loop.call_later(self.interval_s, self._tick))
        return self

    def stop(self) -> None:
        handle = self._handle() if self._handle is not None else None
        if handle is not None:
            handle.cancel()
        self._handle = None

    def _tick(self) -> None:
        now = time.perf_counter_ns()
        due, self._due_ns = self._due_ns, now + self.interval_ns
        loop = self._loop()
        if loop is not None:  # first: nothing below can stop it
            self._handle = weakref.ref(loop.call_later(self.interval_s, self._tick))
        late = now - due - self.slack_ns
        self.samples += 1
        if late > 0:
            self.total_ns += late
            if late + self.slack_ns >= BLOCK_NS and self.on_block is not None:
                self.on_block((due, now - due))

    def reading(self, now: int) -> int:
        """The total so far, with the lateness of the tick still due counted up to ``now``."""
        pending = now - self._due_ns - self.slack_ns
        return self.total_ns + (pending if pending > 0 else 0)


# --- the records -----------------------------------------------------------------------------------------------


class RequestTimings:
    """The per-request timing records of one agent: a ring buffer of ``capacity`` records (the oldest
    dropped and counted), the lag sampler of each loop it saw requests on, thread-safe."""

    def __init__(self, capacity: int, *, lag_interval_s: float = LAG_INTERVAL_S, lag_slack_ns: int = LAG_SLACK_NS):
        if capacity < 1:
            raise ConfigError(f"capacity must be at least 1, got {capacity}")
        if not 0 < lag_interval_s <= 1:
            raise ConfigError(f"lag_interval_s must be in (0, 1] seconds, got {lag_interval_s}")
        self.capacity = capacity
        self.lag_interval_s = lag_interval_s
        self.lag_slack_ns = lag_slack_ns
        self._lock = threading.Lock()
        self._records: collections.deque = collections.deque(maxlen=capacity)
        self._blocks: collections.deque = collections.deque(maxlen=capacity)  # the loop's blocks: (start, duration)
        self.dropped = 0
        self._samplers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LagSampler] = weakref.WeakKeyDictionary()
        self.installed = False

    def install(self) -> None:
        if not self.installed:
            _gc_install()
            self.installed = True

    def uninstall(self) -> None:
        if self.installed:
            _gc_uninstall()
            self.installed = False
        for sampler in list(self._samplers.values()):
            sampler.stop()
        self._samplers.clear()

    def sampler(self) -> LagSampler | None:
        """The running loop's lag sampler (started on first use), or None outside a running loop."""
        aio = sys.modules.get("asyncio")  # an asyncio handler runs with asyncio imported
        if aio is None:
            return None
        try:
            loop = aio.get_running_loop()
        except RuntimeError:
            return None
        s = self._samplers.get(loop)
        if s is None:
            s = self._samplers[loop] = LagSampler(loop, self.lag_interval_s, self.lag_slack_ns,
                                                  self._blocks.append).start()
            pools.watch_loop(loop)  # its ready queue is sampled as a gauge
        return s

    def begin(self, asynchronous: bool) -> tuple:
        """The state to pass to :meth:`finish`, read at the handler's start."""
        now = time.perf_counter_ns()
        if asynchronous:
            s = self.sampler()
            return (now, None, _GC.total_ns, _GC.pauses, s, s.reading(now) if s is not None else None)
        return (now, time.thread_time_ns(), _GC.total_ns, _GC.pauses, None, None)

    def finish(self, tag: Any, state: tuple) -> None:
        """Record the request ``tag`` (a ``RequestTag``) begun with ``state``."""
        end = time.perf_counter_ns()
        start, cpu0, gc0, pauses0, sampler, lag0 = state
        cpu = time.thread_time_ns() - cpu0 if cpu0 is not None else None
        lag = sampler.reading(end) - lag0 if sampler is not None else None
        rec = (tag, start, end - start, cpu, _GC.total_ns - gc0, _GC.pauses - pauses0, lag,
               "sync" if cpu0 is not None else "asyncio", tag.pool_wait_ns if tag is not None else None)
        with self._lock:
            if len(self._records) == self.capacity:
                self.dropped += 1
            self._records.append(rec)

    def pending(self) -> int:
        with self._lock:
            return len(self._records)

    def reset(self) -> int:
        with self._lock:
            n = len(self._records) + len(self._blocks)
            self._records.clear()
            self._blocks.clear()
            self.dropped = 0
        return n

    def drain(self, limit: int | None = None) -> dict[str, Any]:
        """Take up to ``limit`` records, oldest first: ``{"columns": {name: [...]}, "dropped": n, "more": bool,
        "blocks": {"start_ns": [...], "duration_ns": [...]}}`` (the dropped counter is reported and reset;
        ``blocks``: the event loop's blocks of BLOCK_NS or more, from its lag sampler)."""
        with self._lock:
            n = len(self._records) if limit is None else min(limit, len(self._records))
            taken = [self._records.popleft() for _ in range(n)]
            b = len(self._blocks) if limit is None else min(limit, len(self._blocks))
            blocks = [self._blocks.popleft() for _ in range(b)]
            dropped, self.dropped = self.dropped, 0
            more = bool(self._records or self._blocks)
        cols: dict[str, list] = {k: [] for k in COLUMNS}
        for tag, start, wall, cpu, gc_ns, pauses, lag, mode, pool_ns in taken:
            cols["request_id"].append(tag.request_id if tag is not None else None)
            cols["request_id_status"].append(tag.status if tag is not None else "outside")
            cols["endpoint"].append(tag.route() if tag is not None else None)
            cols["start_ns"].append(start)
            cols["wall_ns"].append(wall)
            cols["cpu_ns"].append(cpu)
            cols["gc_ns"].append(gc_ns)
            cols["gc_pauses"].append(pauses)
            cols["lag_ns"].append(lag)
            cols["mode"].append(mode)
            cols["pool_ns"].append(pool_ns)
        return {"columns": cols, "dropped": dropped, "more": more,
                "blocks": {"start_ns": [b[0] for b in blocks], "duration_ns": [b[1] for b in blocks]}}
