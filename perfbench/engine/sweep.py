"""The request timeout of both HTTP paths: one periodic sweep, not a timer per request.

Arming and cancelling a timer per request is a large share of a fast client's CPU, and the
clock need not be read per request either. A sweep runs every ``timeout / 4`` (at least every
5 ms, at most every 100 ms); the first sweep that sees a request in flight notes the time (the
request was sent before it), and a later sweep expires the request once that note is
``timeout`` old. Precision: ``timeout`` to ``timeout`` plus two sweep periods (30 s to 30.2 s
by default): sent just after one sweep, seen at the next, expired at the first sweep a timeout
after that. What expiring means is the sender's: the lean path fails the connection, the aiohttp
path cancels the request's task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Sweep(Generic[K]):
    """The periodic timer and the aging rule; ``expire(in_flight_keys)`` is the sender's.

    ``in_flight()`` yields ``(key, token)`` for every request in flight: ``key`` is what the
    sender expires (a connection, a task) and ``token`` is the request on it (a new request on
    the same key is a new token, and starts aging afresh).
    """

    def __init__(self, timeout: float, in_flight: Callable[[], Iterable[tuple[K, object]]],
                 expire: Callable[[list[K]], None]):
        self.period = min(max(timeout / 4, 0.005), 0.1)
        self.timeout_ns = round(timeout * 1e9)
        self._in_flight = in_flight
        self._expire = expire
        # key -> (token, the first sweep's time that saw it in flight)
        self._seen: dict[K, tuple[object, int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(self.period, self._run)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._seen.clear()

    def _run(self) -> None:
        assert self._loop is not None  # set by start(), which schedules this
        self._handle = self._loop.call_later(self.period, self._run)
        now = time.perf_counter_ns()
        limit = now - self.timeout_ns
        seen = self._seen
        noted: dict[K, tuple[object, int]] = {}
        old: list[K] = []
        for key, token in self._in_flight():
            note = seen.get(key)
            if note is None or note[0] is not token:  # sent since the last sweep: at most this old now
                note = (token, now)
            elif note[1] <= limit:
                old.append(key)
            noted[key] = note
        self._seen = noted
        if old:
            self._expire(old)
