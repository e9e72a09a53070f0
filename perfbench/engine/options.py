"""The settings of one load run, as one frozen object checked once.

``run_load``'s keyword arguments (bounds, timeouts, HTTP path, hooks) become a
:class:`LoadOptions` at the top and travel as that object: to the local run, to the
coordinator of a distributed run, and (its share, :meth:`LoadOptions.shard`) to every shard.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..analysis.slo import SLO
from ..analysis.slo import parse_all as parse_slos
from ..errors import ConfigError
from ..shapes.warmup import Warmup
from .collectors import Collector
from .progress import TerminalProgress
from .senders import DNS_POLICIES, HTTP_PATHS


def default_grace(timeout: float) -> float:
    """A second beyond the timeout (at most 10 s): a request still in flight at the end times out by
    itself rather than being cut off as aborted a moment before."""
    return min(timeout, 10.0) + 1.0


def stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def split_budget(total: int | None, count: int) -> list[int | None]:
    """``max_requests`` split so the shares add up to it (the first shards take the remainder)."""
    if total is None:
        return [None] * count
    return [total // count + (1 if i < total % count else 0) for i in range(count)]


@dataclass(frozen=True)
class LoadOptions:
    """How a run is bounded and reported (see ``perfbench.load.run_load`` for each setting).

    Given as the caller's values, stored resolved: ``grace`` None becomes :func:`default_grace`,
    ``progress`` True a :class:`TerminalProgress` and False None, ``announce`` None a line on
    stderr, ``slos`` texts parsed SLOs. Every bad value is reported at once (ConfigError).
    """

    max_in_flight: int = 10_000
    max_requests: int | None = None
    timeout: float = 30.0
    grace: float | None = None
    lag_bound_ms: float = 10.0
    http_path: str = "auto"
    handle_signals: bool = False
    slos: tuple[SLO, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    code_dir: str | None = None
    progress: Callable[[dict[str, Any]], None] | bool | None = None
    announce: Callable[[str], None] = stderr_line  # None: the same
    collectors: tuple[Collector, ...] = ()
    allow_hosts: tuple[str, ...] = ()  # hosts beyond loopback a redirect may lead to (as the target's)
    dns: str = "once"  # resolve each host once for the run, or "per-connection" (see senders.make_sender)
    warmup: Warmup | str | int | None = None  # left out of the figures (None: the scenario's, else none)

    def __post_init__(self) -> None:
        # texts are parsed, SLOs kept (a shard's options are made from parsed ones)
        items: list[SLO | str] = list(self.slos)
        parsed = iter(parse_slos([s for s in items if not isinstance(s, SLO)]))
        slos = tuple(s if isinstance(s, SLO) else next(parsed) for s in items)
        problems: list[str] = []
        if not self.max_in_flight >= 1:
            problems.append(f"max_in_flight must be >= 1, got {self.max_in_flight!r}")
        if self.max_requests is not None and not self.max_requests >= 0:
            problems.append(f"max_requests must be None or >= 0, got {self.max_requests!r}")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            problems.append(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        if self.grace is not None and not (self.grace >= 0 and math.isfinite(self.grace)):
            problems.append(f"grace must be a number of seconds >= 0, got {self.grace!r}")
        if not self.lag_bound_ms >= 0:
            problems.append(f"lag_bound_ms must be >= 0, got {self.lag_bound_ms!r}")
        if self.dns not in DNS_POLICIES:
            problems.append(f"dns {self.dns!r} is not one of {', '.join(DNS_POLICIES)}")
        if self.http_path not in HTTP_PATHS:
            problems.append(f"http path {self.http_path!r} is not one of {', '.join(HTTP_PATHS)}")
        warmup = None
        try:
            warmup = Warmup.parse(self.warmup)
        except ConfigError as exc:
            problems.append(str(exc))
        if problems:
            raise ConfigError("invalid load options", problems)
        progress = self.progress
        if progress is True:
            progress = TerminalProgress()
        elif progress is False:
            progress = None
        resolved = {
            "grace": default_grace(self.timeout) if self.grace is None else self.grace,
            "slos": slos,
            "parameters": dict(self.parameters),
            "progress": progress,
            "announce": stderr_line if self.announce is None else self.announce,
            "collectors": tuple(self.collectors),
            "allow_hosts": tuple(self.allow_hosts),
            "warmup": warmup,
        }
        for name, value in resolved.items():
            object.__setattr__(self, name, value)

    @property
    def progress_hook(self) -> Callable[[dict[str, Any]], None] | None:
        """``progress`` as resolved: the callable live progress goes to, or None."""
        return self.progress if callable(self.progress) else None

    def shard(self, index: int, count: int) -> LoadOptions:
        """What shard ``index`` of ``count`` runs with: its share of the in-flight cap (rounded up)
        and of ``max_requests``; the hooks (progress, collectors, signals) stay with the coordinator."""
        return replace(self, max_in_flight=max(1, math.ceil(self.max_in_flight / count)),
                       max_requests=split_budget(self.max_requests, count)[index], handle_signals=False,
                       slos=(), parameters={}, progress=None, announce=stderr_line, collectors=())

