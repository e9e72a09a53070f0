"""A known slowdown to test against: the demo made slower on one path, on purpose.

``perfbench serve-demo --slowdown /api/posts=15%`` makes every response on paths starting with
``/api/posts`` 15 % slower: by 15 % of the median CPU time the demo spent on that path's first
``CALIBRATION`` requests (a fixed amount from then on; each of those first requests is stretched by
15 % of its own). ``--slowdown /health=2ms`` adds 2 ms. Not a share of each request's own time:
under load a request's time includes the other requests the event loop ran meanwhile, so the
extra would feed on itself. The extra is CPU work, measured on the thread's CPU clock
(``time.thread_time``), as slower code would be: on a quiet machine it is that much more wall time;
when other processes compete for the CPU it takes longer, as the rest of the handler does, so the
slowdown stays the same share of the handler's time whatever the machine does (a wall-clock delay
would be a smaller share on a busy machine, and a larger one if it was calibrated while busy). Spent
busy, not asleep: a sleep is rounded to the event loop's millisecond timers. Two demo instances,
one with a slowdown, are an A/B test whose answer is known (``perfbench ab``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from ..errors import ConfigError

CALIBRATION = 50  # requests whose median time sets a percentage's fixed delay
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


def slowdown_middleware(rules: Iterable[Slowdown]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """An aiohttp middleware applying the first rule whose prefix the request's path starts with."""
    table = tuple(rules)
    seen: dict[Slowdown, list[float]] = {r: [] for r in table}  # a percentage rule's first handler times
    fixed: dict[Slowdown, float] = {}  # a percentage rule's delay once calibrated (s)

    @web.middleware
    async def slowdown(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                       ) -> web.StreamResponse:
        rule = next((r for r in table if request.path.startswith(r.prefix)), None)
        if rule is None:
            return await handler(request)
        started = time.thread_time()
        response = await handler(request)
        took = time.thread_time() - started
        extra = fixed.get(rule)
        if extra is None:
            extra = rule.extra_s(took)
            if rule.fraction:
                times = seen[rule]
                times.append(took)
                if len(times) >= CALIBRATION:
                    fixed[rule] = rule.extra_s(sorted(times)[len(times) // 2])
        until = time.thread_time() + extra
        while time.thread_time() < until:  # CPU work on purpose, see the module docstring
            pass
        return response

    return slowdown
