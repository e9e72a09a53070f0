"""A known slowdown to test against: the demo made slower on one path, on purpose.

``perfbench serve-demo --slowdown /api/posts=15%`` makes every response on paths starting with
``/api/posts`` 15 % slower: by 15 % of the median CPU time the demo spent in that path's handler over
its last ``WINDOW`` requests (each of the first ``WARM`` requests is stretched by 15 % of its own).
``--slowdown /health=2ms`` adds 2 ms. Not a share of each request's own time: under load a request's
time includes the other requests the event loop ran meanwhile, so the extra would vary with the
load; and the handler's time excludes the extra CPU work itself (of this request or of others run
meanwhile), so the extra never feeds on itself. A running median, not one taken once: a process's
first requests are slower (cold caches), and its CPU per request moves when another process shares
its CPU; calibrated once, on the first 50 requests, the same ``15%`` read between +3% and +54% at
p50 over 20 A/B trials of fresh pairs of processes, twice the spread of the same trials without a
slowdown (benchmarks/README.md). The extra is CPU work, measured on the
thread's CPU clock (``time.thread_time``), as slower code would be: on a quiet machine it is that
much more wall time; when other processes compete for the CPU it takes longer, as the rest of the
handler does, so the slowdown stays the same share of the handler's time whatever the machine does.
Spent busy, not asleep: a sleep is rounded to the event loop's millisecond timers. Two demo
instances, one with a slowdown, are an A/B test whose answer is known (``perfbench ab``).
"""

from __future__ import annotations

import bisect
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from ..errors import ConfigError

WINDOW = 201  # a percentage's extra: of the median handler CPU time over this many of the path's last requests
WARM = 11  # below this many, each request is stretched by the percentage of its own time
_SPEC = re.compile(r"^\s*(?P<path>/[^=\s]*)\s*=\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>%|ms)\s*$")


@dataclass(frozen=True)
class Slowdown:
    """Responses to paths starting with ``prefix`` take ``fraction`` longer plus ``fixed_ms``."""

    prefix: str
    fraction: float = 0.0
    fixed_ms: float = 0.0

    def extra_s(self, took_s: float) -> float:
        return took_s * self.fraction + self.fixed_ms / 1000


def parse_slowdown(text: str) -> Slowdown:
    """``"/api/posts=15%"`` (15 % longer) or ``"/api/posts=2ms"`` (2 ms longer)."""
    m = _SPEC.match(text)
    if not m:
        raise ConfigError(f"--slowdown {text!r}: expected PATH=N% or PATH=Nms, e.g. /api/posts=15% or /health=2ms")
    num = float(m["num"])
    if m["unit"] == "%":
        return Slowdown(m["path"], fraction=num / 100)
    return Slowdown(m["path"], fixed_ms=num)


class RunningMedian:
    """The median of the last ``size`` values added (a sorted copy kept beside the window)."""

    def __init__(self, size: int = WINDOW):
        self.window: deque[float] = deque()
        self.sorted: list[float] = []
        self.size = size

    def add(self, value: float) -> None:
        self.window.append(value)
        bisect.insort(self.sorted, value)
        if len(self.window) > self.size:
            del self.sorted[bisect.bisect_left(self.sorted, self.window.popleft())]

    def __len__(self) -> int:
        return len(self.window)

    def median(self) -> float:
        return self.sorted[len(self.sorted) // 2]


def slowdown_middleware(rules: Iterable[Slowdown]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """An aiohttp middleware applying the first rule whose prefix the request's path starts with."""
    table = tuple(rules)
    handler_cpu = {r: RunningMedian() for r in table}  # a percentage rule's recent handler CPU times
    spun = [0.0]  # CPU seconds of extra work done so far, by every request: not a handler's own time

    @web.middleware
    async def slowdown(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                       ) -> web.StreamResponse:
        rule = next((r for r in table if request.path.startswith(r.prefix)), None)
        if rule is None:
            return await handler(request)
        started, spun_before = time.thread_time(), spun[0]
        response = await handler(request)
        took = time.thread_time() - started - (spun[0] - spun_before)  # others' extra work meanwhile: not ours
        extra = rule.fixed_ms / 1000
        if rule.fraction:
            recent = handler_cpu[rule]
            recent.add(took)
            extra = rule.extra_s(took if len(recent) < WARM else recent.median())
        begin = time.thread_time()
        until = begin + extra
        while time.thread_time() < until:  # CPU work on purpose, see the module docstring
            pass
        spun[0] += time.thread_time() - begin
        return response

    return slowdown
