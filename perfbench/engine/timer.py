"""A timer with sub-millisecond resolution for the open model's scheduler: a Linux ``timerfd``.

uvloop's own timers have millisecond resolution and run anything under 0.5 ms at once (a
spinning core); a timerfd registered as a reader wakes the loop at an exact monotonic time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import sys
import time
from collections.abc import Callable

_now = time.perf_counter_ns


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class PreciseTimer:
    """Wake the scheduler on a sub-millisecond tick through a Linux timerfd.

    uvloop (libuv) rounds timers to whole milliseconds and runs anything under 0.5 ms at once.
    A timerfd registered as a reader has nanosecond resolution. Reprogramming a timer is a
    costly system call in a VM (about 30 us measured on a Firecracker guest, against about
    15 us for a whole wake-up), so while arrivals are close together the timer runs periodically
    every ``tick_ns`` (armed once) and the scheduler sends whatever is due on each tick (lag at
    most one tick plus the kernel's wake-up); only a far-off arrival gets a one-shot timer.
    Two ways to use it: ``await sleep_until(t)``, or set ``callback`` and call ``arm_at(t)``
    (the callback then runs from the event loop on the wake-up, with no Future or Task step).
    ``PreciseTimer.create()`` returns None where timerfd is not available (the engine then
    ticks on the event loop's timers, as before).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, settime: Callable[..., int], spec: _Itimerspec,
                 tick_ns: int):
        self._loop = loop
        self._fd = fd
        self._settime = settime
        self._spec = spec
        self.tick_ns = tick_ns
        self._periodic = 0  # the period (ns) the timer runs at; 0: one-shot or disarmed
        self._fut: asyncio.Future[None] | None = None
        self.callback: Callable[[], None] | None = None
        self.wakeups = 0
        loop.add_reader(fd, self._fired)

    @classmethod
    def create(cls, tick_ns: int = 500_000) -> PreciseTimer | None:
        if not sys.platform.startswith("linux"):
            return None
        try:
            if time.get_clock_info("perf_counter").implementation != "clock_gettime(CLOCK_MONOTONIC)":
                return None
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.timerfd_create(1, 0o4000 | 0o2000000)  # CLOCK_MONOTONIC; NONBLOCK | CLOEXEC
            if fd < 0:
                return None
            settime = libc.timerfd_settime
            settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
            return cls(asyncio.get_running_loop(), fd, settime, _Itimerspec(), tick_ns)
        except (OSError, AttributeError, RuntimeError):
            return None

    def _fired(self) -> None:
        try:  # noqa: SIM105 - not contextlib.suppress: this runs on every tick
            os.read(self._fd, 8)
        except BlockingIOError:
            pass
        self.wakeups += 1
        if self.callback is not None:
            self.callback()
            return
        fut, self._fut = self._fut, None
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _arm(self, value_ns: int, interval_ns: int, absolute: bool) -> None:
        spec = self._spec
        spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(max(value_ns, 1), 1_000_000_000)
        spec.it_interval.tv_sec, spec.it_interval.tv_nsec = divmod(interval_ns, 1_000_000_000)
        self._settime(self._fd, 1 if absolute else 0, ctypes.byref(spec), None)

    def arm_at(self, when_ns: int) -> None:
        """Fire at about ``when_ns`` (a ``perf_counter_ns`` reading): on the next tick when it is
        near (the caller re-checks and arms again if woken early), or exactly when it is far."""
        if when_ns - _now() <= 2 * self.tick_ns:
            if self._periodic != self.tick_ns:
                self._arm(self.tick_ns, self.tick_ns, absolute=False)
                self._periodic = self.tick_ns
        else:
            self._arm(when_ns, 0, absolute=True)
            self._periodic = 0

    def every_from(self, first_ns: int, period_ns: int) -> None:
        """Fire at ``first_ns`` (a ``perf_counter_ns`` reading; at once if it has passed) and every
        ``period_ns`` after it, on the same phase (one system call; the caller re-aligns)."""
        self._arm(first_ns, period_ns, absolute=True)
        self._periodic = -1  # an aligned period: arm_at and every re-arm on their next call

    def every(self, period_ns: int) -> None:
        """Fire every ``period_ns`` (re-armed only when the period changes)."""
        if self._periodic != period_ns:
            self._arm(period_ns, period_ns, absolute=False)
            self._periodic = period_ns

    async def sleep_until(self, when_ns: int) -> None:
        """Sleep until about ``when_ns`` (see :meth:`arm_at`)."""
        self.arm_at(when_ns)
        fut = self._fut = self._loop.create_future()
        await fut

    def close(self) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._fd)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = -1
