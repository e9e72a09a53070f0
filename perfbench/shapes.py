"""Load plans as pure data: how load varies over time, with no clock and no I/O.

An open-model plan is a list of stages; within a stage the arrival rate moves linearly from
``start`` to ``end`` requests per second (equal values hold it constant). Every shape is built
from stages: constant, ramp, steps, spike, soak, or your own list (like k6's stages or Locust's
LoadTestShape, but computed ahead, so it can be tested against exact times).

The intended send times follow from the cumulative arrival count N(t), the integral of the
rate: the k-th request (k = 0, 1, 2, ...) is due when N(t) = k. Poisson arrivals use the same
inversion at the points of a unit-rate Poisson process instead of at the integers (the
time-rescaling theorem), so a varying rate stays exact in both modes. Times are integer
nanoseconds from the start of the run.

    >>> plan = constant(rate=4, duration=1)
    >>> [a.offset_ns for a in plan.arrivals()]
    [0, 250000000, 500000000, 750000000]

A plan splits exactly into shards (``plan.shard(index, count)``, for load spread over several
processes); :class:`OpenLoad` and :class:`ClosedLoad` declare what the engine reads of a plan,
which a whole plan and a shard both provide.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol

from .errors import ConfigError

NS = 1_000_000_000
ARRIVAL_CHUNK = 1024  # arrivals computed at a time (OpenPlan.arrival_tuples)


@dataclass(frozen=True)
class Stage:
    """``duration`` seconds during which the rate moves linearly from ``start`` to ``end`` (req/s)."""

    duration: float
    start: float
    end: float
    name: str = ""

    @property
    def arrivals(self) -> float:
        """The expected number of arrivals in the stage (the area under its rate)."""
        return (self.start + self.end) / 2 * self.duration

    def time_of(self, n: float) -> float:
        """Seconds into the stage at which its cumulative count reaches ``n``."""
        # N(t) = start*t + slope*t^2/2; the root below is the numerically stable form of
        # (-start + sqrt(start^2 + 2*slope*n)) / slope, valid for slope == 0 as well.
        if n <= 0:
            return 0.0
        slope = (self.end - self.start) / self.duration
        return 2 * n / (self.start + math.sqrt(self.start * self.start + 2 * slope * n))


def _stage_problems(stages: Sequence[Stage], value_rule: str) -> list[str]:
    """Every problem with a plan's stages; ``value_rule`` names the start/end values' unit."""
    problems = [] if stages else ["a plan needs at least one stage"]
    for i, st in enumerate(stages):
        if not (st.duration > 0 and math.isfinite(st.duration)):
            problems.append(f"stage {i}: duration must be a positive number of seconds, got {st.duration!r}")
        for name in ("start", "end"):
            v = getattr(st, name)
            if not (v >= 0 and math.isfinite(v)):
                problems.append(f"stage {i}: {value_rule.format(name=name)}, got {v!r}")
    return problems


@dataclass(frozen=True)
class Arrival:
    """One intended request: when (ns from the run's start) and in which stage."""

    index: int
    offset_ns: int
    stage: int


@dataclass(frozen=True)
class OpenPlan:
    """An open-model plan: arrivals per second over time, in stages.

    ``poisson=True`` draws exponential gaps (seeded by ``seed``, so a plan is reproducible);
    otherwise arrivals are evenly spaced. ``checkpoints`` are times (s) at which a soak run takes
    its periodic measurements.
    """

    stages: tuple[Stage, ...]
    poisson: bool = False
    seed: int = 0
    checkpoints: tuple[float, ...] = ()
    kind: str = "stages"
    params: dict = field(default_factory=dict, compare=False)
    model: ClassVar[Literal["open"]] = "open"

    def __post_init__(self) -> None:
        problems = _stage_problems(self.stages, "rate {name} must be >= 0 req/s")
        if not problems and self.expected_requests <= 0:
            problems.append("the plan sends no requests: give a rate above 0")
        if problems:
            raise ConfigError("invalid load plan", problems)

    @property
    def duration(self) -> float:
        return sum(st.duration for st in self.stages)

    @property
    def expected_requests(self) -> float:
        return sum(st.arrivals for st in self.stages)

    def rate_at(self, t: float) -> float:
        """The planned arrival rate (req/s) at ``t`` seconds."""
        begin = 0.0
        for st in self.stages:
            if t < begin + st.duration:
                return st.start + (st.end - st.start) * (t - begin) / st.duration
            begin += st.duration
        return 0.0

    def stage_bounds(self) -> list[tuple[float, float]]:
        """(start, end) seconds of every stage."""
        out, begin = [], 0.0
        for st in self.stages:
            out.append((begin, begin + st.duration))
            begin += st.duration
        return out

    def arrivals(self) -> Iterator[Arrival]:
        """The intended send times, lazily (a 24-hour soak never builds a list)."""
        for index, offset_ns, stage in self.arrival_tuples():
            yield Arrival(index, offset_ns, stage)

    def arrival_tuples(self) -> Iterator[tuple[int, int, int]]:
        """What :meth:`arrivals` yields, as plain ``(index, offset_ns, stage)`` tuples.

        The engine's hot path: a tuple costs a tenth of a frozen dataclass, the stage's
        ``time_of`` is inlined (the same float operations in the same order, so the same times),
        and the tuples are made ``ARRIVAL_CHUNK`` at a time and handed out by a C iterator
        (``itertools.chain``), so taking the next arrival resumes no Python frame.
        """
        return itertools.chain.from_iterable(self._arrival_chunks())

    def _arrival_chunks(self) -> Iterator[list[tuple[int, int, int]]]:
        import numpy as np  # here: a plan is pure data, and describing one needs no numpy

        rng = random.Random(self.seed)
        poisson = self.poisson
        expovariate = rng.expovariate
        sqrt = math.sqrt
        n = 0.0 if not poisson else expovariate(1.0)
        index = 0
        begin_s, count_before = 0.0, 0.0
        for stage_index, st in enumerate(self.stages):
            count_end = count_before + st.arrivals
            start = st.start
            start_sq = start * start
            two_slope = 2 * ((st.end - st.start) / st.duration)
            if two_slope == 0.0 and not poisson:
                # a constant stage: time_of(m) = 2m / (start + sqrt(start^2)) is exactly m / start
                # (sqrt of a rounded square is exact, and halving both sides changes no rounding);
                # the arrivals are the indices i with float(i) < count_end, and m = float(i) - count_before
                # (never negative: the stage's first index is the first with float(i) >= count_before).
                # Computed a chunk at a time in numpy: the same IEEE operations in the same order, and
                # numpy.rint rounds half to even as round() does, so the same integers
                end = math.ceil(count_end)
                while index < end:
                    hi = min(index + ARRIVAL_CHUNK, end)
                    m = np.arange(index, hi, dtype=np.float64) - count_before
                    offsets = np.rint((begin_s + m / start) * NS).astype(np.int64).tolist()
                    yield list(zip(range(index, hi), offsets, itertools.repeat(stage_index, hi - index), strict=True))
                    index = hi
                n = float(index)
                begin_s += st.duration
                count_before = count_end
                continue
            chunk: list[tuple[int, int, int]] = []
            add = chunk.append
            while n < count_end:
                m = n - count_before  # Stage.time_of(m), inlined
                add((index, round((begin_s + (2 * m / (start + sqrt(start_sq + two_slope * m)) if m > 0 else 0.0))
                                  * NS), stage_index))
                index += 1
                n = n + expovariate(1.0) if poisson else float(index)
                if len(chunk) >= ARRIVAL_CHUNK:
                    yield chunk
                    chunk = []
                    add = chunk.append
            if chunk:
                yield chunk
            begin_s += st.duration
            count_before = count_end

    def describe(self) -> dict:
        """The plan as plain data, for meta.json."""
        return {
            "model": "open",
            "kind": self.kind,
            "params": self.params,
            "poisson": self.poisson,
            "seed": self.seed,
            "duration_s": self.duration,
            "expected_requests": self.expected_requests,
            "stages": [
                {"duration_s": s.duration, "start_rps": s.start, "end_rps": s.end, "name": s.name}
                for s in self.stages
            ],
            "checkpoints_s": list(self.checkpoints),
        }

    def shard(self, index: int, count: int) -> OpenShard:
        """Shard ``index`` of ``count``: arrival k goes to shard ``k % count`` (see :class:`OpenShard`)."""
        return OpenShard(self, index, count)


def _check_shard(index: int, count: int) -> None:
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"shard {index} of {count}: need 0 <= index < count")


@dataclass(frozen=True)
class OpenShard:
    """Shard ``index`` of ``count`` of an open plan: the arrivals k with ``k % count == index``.

    Arrivals keep their plan index, intended time and stage, so the union of the shards is the
    plan. The shard's stages are the plan's at ``1/count`` of the rate: every count-th arrival of
    evenly spaced arrivals is evenly spaced at that rate, so the engine's tick aligns to a shard's
    arrivals as it does to a whole plan's.
    """

    whole: OpenPlan
    index: int
    count: int
    stages: tuple[Stage, ...] = field(init=False, repr=False, compare=False)
    model: ClassVar[Literal["open"]] = "open"

    def __post_init__(self) -> None:
        _check_shard(self.index, self.count)
        n = self.count
        object.__setattr__(self, "stages", tuple(Stage(st.duration, st.start / n, st.end / n, st.name)
                                                 for st in self.whole.stages))

    @property
    def poisson(self) -> bool:
        return self.whole.poisson

    @property
    def seed(self) -> int:
        return self.whole.seed

    @property
    def checkpoints(self) -> tuple[float, ...]:
        return self.whole.checkpoints

    @property
    def kind(self) -> str:
        return self.whole.kind

    @property
    def params(self) -> dict:
        return self.whole.params

    @property
    def duration(self) -> float:
        return self.whole.duration

    @property
    def expected_requests(self) -> float:
        return self.whole.expected_requests / self.count

    def rate_at(self, t: float) -> float:
        return self.whole.rate_at(t) / self.count

    def stage_bounds(self) -> list[tuple[float, float]]:
        return self.whole.stage_bounds()

    def arrivals(self) -> Iterator[Arrival]:
        i, n = self.index, self.count
        for a in self.whole.arrivals():
            if a.index % n == i:
                yield a

    def arrival_tuples(self) -> Iterator[tuple[int, int, int]]:
        """What :meth:`arrivals` yields, as the engine's plain tuples."""
        i, n = self.index, self.count
        for a in self.whole.arrival_tuples():
            if a[0] % n == i:
                yield a

    def describe(self) -> dict:
        return {**self.whole.describe(), "shard": self.index, "shards": self.count}


def _with_ramp(stages: list[Stage], ramp_up: float) -> list[Stage]:
    if ramp_up and ramp_up > 0:
        return [Stage(ramp_up, 0.0, stages[0].start, "ramp-up"), *stages]
    return stages


def _plan(kind: str, stages: list[Stage], ramp_up: float, poisson: bool, seed: int, **params) -> OpenPlan:
    checkpoints = tuple(params.pop("_checkpoints", ()))
    return OpenPlan(
        tuple(_with_ramp(stages, ramp_up)),
        poisson=poisson,
        seed=seed,
        kind=kind,
        params={**params, "ramp_up": ramp_up},
        checkpoints=checkpoints,
    )


def constant(rate: float, duration: float, *, ramp_up: float = 0, poisson: bool = False, seed: int = 0) -> OpenPlan:
    """``rate`` req/s for ``duration`` seconds."""
    return _plan("constant", [Stage(duration, rate, rate, "constant")], ramp_up, poisson, seed,
                 rate=rate, duration=duration)


def ramp(start: float, end: float, duration: float, *, ramp_up: float = 0, poisson: bool = False,
         seed: int = 0) -> OpenPlan:
    """A linear ramp from ``start`` to ``end`` req/s over ``duration`` seconds."""
    return _plan("ramp", [Stage(duration, start, end, "ramp")], ramp_up, poisson, seed,
                 start=start, end=end, duration=duration)


def steps(rates: Sequence[float], step_duration: float, *, ramp_up: float = 0, poisson: bool = False,
          seed: int = 0) -> OpenPlan:
    """Each rate of ``rates`` held for ``step_duration`` seconds, in turn (a stress staircase)."""
    stages = [Stage(step_duration, r, r, f"step {i + 1}") for i, r in enumerate(rates)]
    return _plan("steps", stages, ramp_up, poisson, seed, rates=list(rates), step_duration=step_duration)


def spike(baseline: float, peak: float, *, before: float, during: float, after: float, ramp_up: float = 0,
          poisson: bool = False, seed: int = 0) -> OpenPlan:
    """``baseline`` req/s, a jump to ``peak`` for ``during`` seconds, then back to baseline."""
    stages = [
        Stage(before, baseline, baseline, "baseline"),
        Stage(during, peak, peak, "spike"),
        Stage(after, baseline, baseline, "recovery"),
    ]
    return _plan("spike", stages, ramp_up, poisson, seed, baseline=baseline, peak=peak,
                 before=before, during=during, after=after)


def soak(rate: float, duration: float, *, checkpoint_every: float = 60, ramp_up: float = 0,
         poisson: bool = False, seed: int = 0) -> OpenPlan:
    """A long constant ``rate`` with a checkpoint every ``checkpoint_every`` seconds."""
    if not checkpoint_every > 0:
        raise ConfigError(f"checkpoint_every must be > 0 seconds, got {checkpoint_every!r}")
    total = duration + (ramp_up or 0)
    marks = [k * checkpoint_every for k in range(1, int(total // checkpoint_every) + 1)]
    return _plan("soak", [Stage(duration, rate, rate, "soak")], ramp_up, poisson, seed,
                 rate=rate, duration=duration, checkpoint_every=checkpoint_every, _checkpoints=marks)


def stages(spec: Sequence[tuple[float, float] | tuple[float, float, float]], *, ramp_up: float = 0,
           poisson: bool = False, seed: int = 0) -> OpenPlan:
    """Custom stages, k6 style: ``(duration, target)`` ramps linearly from the previous target
    (0 at first) to ``target``; ``(duration, start, end)`` gives both ends explicitly."""
    out, prev = [], 0.0
    for i, item in enumerate(spec):
        if len(item) == 2:
            duration, target = item
            out.append(Stage(float(duration), prev, float(target), f"stage {i + 1}"))
            prev = float(target)
        elif len(item) == 3:
            duration, start, end = item
            out.append(Stage(float(duration), float(start), float(end), f"stage {i + 1}"))
            prev = float(end)
        else:
            raise ConfigError(f"stage {i}: expected (duration, target) or (duration, start, end), got {item!r}")
    return _plan("stages", out, ramp_up, poisson, seed, spec=[list(s) for s in spec])


# ------------------------------------------------------------------------------------ closed model
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
    params: dict = field(default_factory=dict, compare=False)
    model: ClassVar[Literal["closed"]] = "closed"

    def __post_init__(self) -> None:
        problems = _stage_problems(self.stages, "{name} users must be >= 0")
        if not problems and self.max_users < 1:
            problems.append("the plan has no user: give at least 1 user")
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
            current: list | None = None  # [start_s, stage] of the open span
            begin = 0.0
            for si, st in enumerate(self.stages):
                lo, hi, end = st.start, st.end, begin + st.duration
                cross = begin + (k - lo) / (hi - lo) * st.duration if hi != lo else None
                if lo > k and hi > k:
                    a, b = begin, end
                elif hi > lo and lo <= k < hi:
                    a, b = cross, end
                elif lo > hi and hi <= k < lo:
                    a, b = begin, cross
                else:
                    a = b = None
                if a is not None and current is not None and abs(a - begin) < 1e-12 and current[2] == begin:
                    current[2] = b  # contiguous with the previous stage's span
                else:
                    if current is not None:
                        spans.append(UserSpan(k, round(current[0] * NS), round(current[2] * NS), current[1]))
                        current = None
                    if a is not None:
                        current = [a, si, b]
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

    def describe(self) -> dict:
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
        _check_shard(self.index, self.count)

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
    def params(self) -> dict:
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

    def describe(self) -> dict:
        return {**self.whole.describe(), "shard": self.index, "shards": self.count}


# ------------------------------------------------------------------------------------ what the engine reads
class OpenLoad(Protocol):
    """What the open-model engine reads of a plan: an :class:`OpenPlan` or an :class:`OpenShard`.

    ``stages`` and ``poisson`` decide whether the scheduler's tick aligns to the arrivals (evenly
    spaced in a constant stage); ``rate_at`` estimates how many arrivals wait for a slot.
    """

    model: ClassVar[Literal["open"]]

    @property
    def stages(self) -> tuple[Stage, ...]: ...

    @property
    def poisson(self) -> bool: ...

    @property
    def duration(self) -> float: ...

    @property
    def expected_requests(self) -> float: ...

    def rate_at(self, t: float) -> float: ...

    def arrival_tuples(self) -> Iterator[tuple[int, int, int]]: ...

    def describe(self) -> dict: ...


class ClosedLoad(Protocol):
    """What the closed-model engine reads of a plan: a :class:`ClosedPlan` or a :class:`ClosedShard`."""

    model: ClassVar[Literal["closed"]]

    @property
    def think(self) -> Think: ...

    @property
    def seed(self) -> int: ...

    @property
    def duration(self) -> float: ...

    @property
    def max_users(self) -> int: ...

    def user_spans(self) -> list[UserSpan]: ...

    def describe(self) -> dict: ...


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


# ------------------------------------------------------------------------------------ text forms
def parse_duration(text: str) -> float:
    """``"30"``, ``"30s"``, ``"2m"``, ``"1h"`` or ``"500ms"`` as seconds."""
    t = text.strip().lower()
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if t.endswith(suffix):
            t, mult = t[: -len(suffix)], factor
            break
    else:
        mult = 1.0
    try:
        value = float(t) * mult
    except ValueError:
        raise ConfigError(f"duration {text!r}: a number of seconds, or with a unit: 500ms, 30s, 2m, 1h") from None
    if not value > 0:
        raise ConfigError(f"duration {text!r} must be > 0")
    return value


def parse_stages(text: str) -> list[tuple[float, float]]:
    """k6-style stages ``"30s:100,1m:100,30s:0"`` as ``[(30, 100), (60, 100), (30, 0)]``."""
    out, problems = [], []
    for i, part in enumerate(p for p in text.split(",") if p.strip()):
        if ":" not in part:
            problems.append(f"stage {i + 1} {part.strip()!r}: write DURATION:TARGET, e.g. 30s:100")
            continue
        d, target = part.split(":", 1)
        try:
            duration = parse_duration(d)
            value = float(target)
            if value < 0:
                raise ValueError
            out.append((duration, value))
        except ConfigError as exc:
            problems.append(f"stage {i + 1}: {exc}")
        except ValueError:
            problems.append(f"stage {i + 1}: target {target.strip()!r} must be a number >= 0")
    if not out and not problems:
        problems.append("no stages given, e.g. 30s:100,1m:100,30s:0")
    if problems:
        raise ConfigError("bad --stages", problems)
    return out


def parse_think(text: str) -> Think:
    """``"0.5"`` constant, ``"1..3"`` uniform between 1 and 3 seconds."""
    try:
        if ".." in text:
            lo, hi = text.split("..", 1)
            return Uniform(parse_duration(lo) if lo.strip() not in ("0", "0.0") else 0.0, parse_duration(hi))
        return Constant(0.0 if text.strip() in ("0", "0.0") else parse_duration(text))
    except ConfigError:
        raise ConfigError(f"think time {text!r}: SECONDS (e.g. 0.5) or LOW..HIGH (e.g. 1..3)") from None
