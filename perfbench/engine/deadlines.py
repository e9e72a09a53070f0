"""The request timeouts of both HTTP paths: one timer, armed at the earliest deadline.

Arming and cancelling a timer per request is a large share of a fast client's CPU, so there is
one timer for all the requests in flight. Each request carries its send time (read once, when it
is sent, as the engine does anyway) and its limits (``reading.Timeouts``); the timer is armed at
the earliest deadline it knows of, and a send only re-arms it when its own earliest possible
deadline (send time plus the smallest of its limits) comes sooner. When it fires, the sender's
``check(now)`` finds the requests past a deadline and the next deadline, ``expire`` ends them,
and the timer is armed again at the next deadline. In a healthy run it fires about once per timeout, since the oldest request
in flight is then young; a request is ended within about 2 ms of its deadline.

A check looks at every request in flight (cheap for hundreds, not for tens of thousands), so the
timer never fires again sooner than ten times the last check's CPU time: against a stalled target
with thousands of requests in flight, precision degrades gracefully instead of spending the
generator's CPU on checks.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, Final

NEVER: Final = 1 << 62
MIN_GAP_NS: Final = 1_000_000  # the timer never fires again sooner than this after a check


# what a check found: the next deadline of the requests not late (or NEVER), and the late ones
Found = tuple[int, list[Any]]


class Deadlines:
    """One timer over many deadlines. ``check(now_ns)`` and ``expire(late)`` are the sender's:
    the check returns the next deadline (ns, ``time.perf_counter_ns``'s clock, or ``NEVER``) and
    the requests past theirs, which ``expire`` then ends."""

    __slots__ = ("armed", "_check", "_expire", "_loop", "_handle", "_gap")

    def __init__(self, check: Callable[[int], Found], expire: Callable[[list[Any]], None]):
        self.armed = NEVER  # the time the timer fires at (NEVER: not armed); read by the hot path
        self._check = check
        self._expire = expire
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
        cpu = time.thread_time_ns()  # the check's own CPU: a wait for the GIL or a preemption is not its cost
        nxt, late = self._check(now)
        cost = time.thread_time_ns() - cpu  # what ending the late requests costs is theirs, not the check's
        self._gap = max(MIN_GAP_NS, 10 * cost)
        if late:
            self._expire(late)
        if nxt < NEVER:
            self.arm(max(nxt, now + self._gap))
