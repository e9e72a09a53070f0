"""The request timeouts of both HTTP paths: one timer, armed at the earliest deadline.

Arming and cancelling a timer per request is a large share of a fast client's CPU, so there is
one timer for all the requests in flight. Each request carries its send time (read once, when it
is sent, as the engine does anyway) and its limits (``reading.Timeouts``); the timer is armed at
the earliest deadline it knows of, and a send only re-arms it when its own earliest possible
deadline (send time plus the smallest of its limits) comes sooner. When it fires, the sender's
``check(now)`` ends every request past a deadline and returns the next deadline, and the timer
is armed again there. In a healthy run it fires about once per timeout, since the oldest request
in flight is then young; a request is ended within about 2 ms of its deadline.

A check looks at every request in flight (cheap for hundreds, not for tens of thousands), so the
timer never fires again sooner than ten times the last check's cost: against a stalled target
with thousands of requests in flight, precision degrades gracefully instead of spending the
generator's CPU on checks.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Final

NEVER: Final = 1 << 62
MIN_GAP_NS: Final = 1_000_000  # the timer never fires again sooner than this after a check


class Deadlines:
    """One timer over many deadlines; ``check(now_ns)`` is the sender's and returns the next
    deadline (ns, ``time.perf_counter_ns``'s clock) or ``NEVER``."""

    __slots__ = ("armed", "_check", "_loop", "_handle", "_gap")

    def __init__(self, check: Callable[[int], int]):
        self.armed = NEVER  # the time the timer fires at (NEVER: not armed); read by the hot path
        self._check = check
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._gap = MIN_GAP_NS

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.armed = NEVER
        self._loop = None

    def arm(self, due: int) -> None:
        """Make sure the timer fires by ``due``."""
        if due >= self.armed or self._loop is None:
            return
        if self._handle is not None:
            self._handle.cancel()
        self.armed = due
        # the loop's timers have millisecond resolution (uvloop's): round up, never fire early
        delay = math.ceil(max(due - time.perf_counter_ns(), 0) / 1e6) / 1e3
        self._handle = self._loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self.armed = NEVER
        now = time.perf_counter_ns()
        nxt = self._check(now)
        cost = time.perf_counter_ns() - now
        self._gap = max(MIN_GAP_NS, 10 * cost)
        if nxt < NEVER:
            self.arm(max(nxt, now + self._gap))
