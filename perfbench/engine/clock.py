"""The engine's clock, injected so schedules and stop logic can be tested without real time."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """What the engines read of a clock: a monotonic reading in ns, and a sleep."""

    def now_ns(self) -> int: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """Real time: ``time.perf_counter_ns`` (monotonic) and ``asyncio.sleep``."""

    @staticmethod
    def now_ns() -> int:
        return time.perf_counter_ns()

    @staticmethod
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """Virtual time for tests: ``sleep`` advances the clock at once (trio's autojump idea)."""

    def __init__(self, start_ns: int = 0, yields: int = 4):
        self.t = start_ns
        self.yields = yields

    def now_ns(self) -> int:
        return self.t

    async def sleep(self, seconds: float) -> None:
        # as in a real loop, tasks that are ready run before time passes
        for _ in range(self.yields):
            await asyncio.sleep(0)
        self.t += max(0, round(seconds * 1e9))

    def advance(self, seconds: float) -> None:
        self.t += round(seconds * 1e9)
