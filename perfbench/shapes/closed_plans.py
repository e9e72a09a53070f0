"""Closed-model plans: virtual users, their spans and their think time between requests."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ..errors import ConfigError
from .open_plans import NS, Stage, check_shard, stage_problems

# the most virtual users a plan may have (whole plan): each costs about 12 KiB while its request is
# in flight (benchmarks/vu_memory.py), so this bounds the users' state near 600 MB; a user also holds
# a connection, so a run in one process is bounded by its open-file limit too (perfbench.load)
MAX_USERS = 50_000


@dataclass(frozen=True)
class Constant:
    """Think ``seconds`` between a user's requests."""

    seconds: float

    def draw(self, rng: random.Random) -> float:
        return self.seconds


@dataclass(frozen=True)
class Uniform:
    """Think a uniformly random time between ``low`` and ``high`` seconds (Locust's ``between``)."""

    low: float
    high: float

    def draw(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)


@dataclass(frozen=True)
class Pacing:
    """Start an iteration every ``interval`` seconds (Locust's ``constant_pacing``, k6's
    constant-arrival per user). Each request's intended time is its slot, so a slow response that
    makes the user late counts against latency instead of quietly lowering the load."""

    interval: float

    def draw(self, rng: random.Random) -> float:
        return self.interval


Think = Constant | Uniform | Pacing


@dataclass(frozen=True)
class UserSpan:
    """Virtual user ``vu`` is active from ``start_ns`` to ``stop_ns`` (ns from the run's start)."""

    vu: int
    start_ns: int
    stop_ns: int
    stage: int


@dataclass(frozen=True)
class ClosedPlan:
    """A closed-model plan: how many virtual users are active over time, and their think time.

    Stages move the user count linearly from ``start`` to ``end`` users (like k6's ramping-vus
    executor); user k (0-based) is active while the count is above k (so a ramp from 0 starts
    its first user at once, as Locust does), and the spans of :meth:`user_spans` are exact. A closed model waits for each response before the
    next request, so a stalled server also slows the load: its summaries say so.
    """

    stages: tuple[Stage, ...]
    think: Think = Constant(0.0)
    seed: int = 0
    kind: str = "users"
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    model: ClassVar[Literal["closed"]] = "closed"

    def __post_init__(self) -> None:
        problems = stage_problems(self.stages, "{name} users must be >= 0")
        if not problems and self.max_users < 1:
            problems.append("the plan has no user: give at least 1 user")
        if not problems and self.max_users > MAX_USERS:
            problems.append(f"{self.max_users:,} users is above the limit of {MAX_USERS:,} users per plan "
                            f"(about 12 KiB and one connection each)")
        t = self.think
        if isinstance(t, Uniform) and not (0 <= t.low <= t.high):
            problems.append(f"think time: uniform needs 0 <= low <= high, got {t.low!r}..{t.high!r}")
        elif isinstance(t, Constant) and not t.seconds >= 0:
            problems.append(f"think time must be >= 0 s, got {t.seconds!r}")
        elif isinstance(t, Pacing) and not t.interval > 0:
            problems.append(f"pacing interval must be > 0 s, got {t.interval!r}")
        if problems:
            raise ConfigError("invalid load plan", problems)

    @property
    def duration(self) -> float:
        return sum(st.duration for st in self.stages)

    @property
    def max_users(self) -> int:
        return int(max(max(st.start, st.end) for st in self.stages))

    def users_at(self, t: float) -> int:
        """Active users at ``t`` seconds (the count rounded up: user k runs while it is above k)."""
        begin = 0.0
        for st in self.stages:
            if t < begin + st.duration:
                return math.ceil(st.start + (st.end - st.start) * (t - begin) / st.duration)
            begin += st.duration
        return 0

    def user_spans(self) -> list[UserSpan]:
        """When each user is active (while the user count is above its index k), sorted by start.

        A user may have several spans when the count falls and rises again.
        """
        spans: list[UserSpan] = []
        for k in range(self.max_users):
            current: tuple[float, int, float] | None = None  # (start_s, stage, end_s) of the open span
            begin = 0.0
            for si, st in enumerate(self.stages):
                lo, hi, end = st.start, st.end, begin + st.duration
                span: tuple[float, float] | None  # (start_s, end_s) of the user in this stage
                if lo > k and hi > k:
                    span = begin, end
                elif hi > lo and lo <= k < hi:
                    span = begin + (k - lo) / (hi - lo) * st.duration, end
                elif lo > hi and hi <= k < lo:
                    span = begin, begin + (k - lo) / (hi - lo) * st.duration
                else:
                    span = None
                if span is not None and current is not None and abs(span[0] - begin) < 1e-12 and current[2] == begin:
                    current = (current[0], current[1], span[1])  # contiguous with the previous stage's span
                else:
                    if current is not None:
                        spans.append(UserSpan(k, round(current[0] * NS), round(current[2] * NS), current[1]))
                        current = None
                    if span is not None:
                        current = (span[0], si, span[1])
                if current is not None and current[2] < end:
                    spans.append(UserSpan(k, round(current[0] * NS), round(current[2] * NS), current[1]))
                    current = None
                begin = end
            if current is not None:
                spans.append(UserSpan(k, round(current[0] * NS), round(current[2] * NS), current[1]))
        return sorted(spans, key=lambda sp: (sp.start_ns, sp.vu))

    def stage_at(self, t: float) -> int:
        begin = 0.0
        for i, st in enumerate(self.stages):
            if t < begin + st.duration:
                return i
            begin += st.duration
        return len(self.stages) - 1

    def describe(self) -> dict[str, Any]:
        return {
            "model": "closed",
            "kind": self.kind,
            "params": self.params,
            "think": {"type": type(self.think).__name__.lower(), **self.think.__dict__},
            "seed": self.seed,
            "duration_s": self.duration,
            "max_users": self.max_users,
            "expected_requests": None,
            "stages": [{"duration_s": s.duration, "start_users": s.start, "end_users": s.end, "name": s.name}
                       for s in self.stages],
        }

    def shard(self, index: int, count: int) -> ClosedShard:
        """Shard ``index`` of ``count``: user k goes to shard ``k % count`` (see :class:`ClosedShard`)."""
        return ClosedShard(self, index, count)


@dataclass(frozen=True)
class ClosedShard:
    """Shard ``index`` of ``count`` of a closed plan: the users k with ``k % count == index``, each
    with all its spans; think time, seed and duration are the plan's (a user's requests do not
    depend on which shard runs it)."""

    whole: ClosedPlan
    index: int
    count: int
    model: ClassVar[Literal["closed"]] = "closed"

    def __post_init__(self) -> None:
        check_shard(self.index, self.count)

    @property
    def think(self) -> Think:
        return self.whole.think

    @property
    def seed(self) -> int:
        return self.whole.seed

    @property
    def kind(self) -> str:
        return self.whole.kind

    @property
    def params(self) -> dict[str, Any]:
        return self.whole.params

    @property
    def duration(self) -> float:
        return self.whole.duration

    @property
    def max_users(self) -> int:
        return len(range(self.index, self.whole.max_users, self.count))

    def users_at(self, t: float) -> int:
        return len(range(self.index, self.whole.users_at(t), self.count))

    def stage_at(self, t: float) -> int:
        return self.whole.stage_at(t)

    def user_spans(self) -> list[UserSpan]:
        return [s for s in self.whole.user_spans() if s.vu % self.count == self.index]

    def describe(self) -> dict[str, Any]:
        return {**self.whole.describe(), "shard": self.index, "shards": self.count}



def users(n: int, duration: float, *, think: Think = Constant(0.0), ramp_up: float = 0, seed: int = 0
          ) -> ClosedPlan:
    """``n`` virtual users for ``duration`` seconds, after ``ramp_up`` seconds of starting them
    at an even rate (``n / ramp_up`` users per second)."""
    stages = [Stage(duration, n, n, "users")]
    if ramp_up and ramp_up > 0:
        stages.insert(0, Stage(ramp_up, 0, n, "ramp-up"))
    return ClosedPlan(tuple(stages), think=think, seed=seed, kind="users",
                      params={"users": n, "duration": duration, "ramp_up": ramp_up})


def user_stages(spec: Sequence[tuple[float, float]], *, think: Think = Constant(0.0), seed: int = 0) -> ClosedPlan:
    """k6-style ramping users: each ``(duration, target)`` moves linearly from the previous target
    (0 at first) to ``target`` users."""
    out, prev = [], 0.0
    for i, (duration, target) in enumerate(spec):
        out.append(Stage(float(duration), prev, float(target), f"stage {i + 1}"))
        prev = float(target)
    return ClosedPlan(tuple(out), think=think, seed=seed, kind="user_stages", params={"spec": [list(s) for s in spec]})


