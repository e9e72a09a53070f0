"""Open-model plans: stages of arrival rates, and the exact intended send time of every arrival.

Within a stage the rate moves linearly from ``start`` to ``end``; the k-th arrival is due when the
cumulative count N(t) (the rate's integral) reaches k, or, for Poisson arrivals, the k-th point of a
unit-rate Poisson process (time rescaling), so a varying rate stays exact in both modes.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ..errors import ConfigError

NS = 1_000_000_000
ARRIVAL_CHUNK = 1024  # arrivals computed at a time (OpenPlan.arrival_tuples)
# the highest arrival rate a plan may ask for (req/s, at any moment, whole plan): ten times what the
# lean path sends per core here; beyond it a plan only measures how far the generator falls behind
MAX_RATE = 1_000_000
MAX_DURATION_S = 30 * 86_400  # a plan's length at most: a month (a soak test runs hours, not years)


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


def stage_problems(stages: Sequence[Stage], value_rule: str) -> list[str]:
    """Every problem with a plan's stages; ``value_rule`` names the start/end values' unit."""
    problems = [] if stages else ["a plan needs at least one stage"]
    for i, st in enumerate(stages):
        if not (st.duration > 0 and math.isfinite(st.duration)):
            problems.append(f"stage {i}: duration must be a positive number of seconds, got {st.duration!r}")
        for name in ("start", "end"):
            v = getattr(st, name)
            if not (v >= 0 and math.isfinite(v)):
                problems.append(f"stage {i}: {value_rule.format(name=name)}, got {v!r}")
    total = sum(st.duration for st in stages if st.duration > 0 and math.isfinite(st.duration))
    if total > MAX_DURATION_S:
        problems.append(f"the plan lasts {total:g} s, above the limit of {MAX_DURATION_S:,} s (30 days) per plan")
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
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    model: ClassVar[Literal["open"]] = "open"

    def __post_init__(self) -> None:
        problems = stage_problems(self.stages, "rate {name} must be >= 0 req/s")
        for i, st in enumerate(self.stages):
            if max(st.start, st.end) > MAX_RATE:
                problems.append(f"stage {i}: rate {max(st.start, st.end):g} req/s is above the limit of "
                                f"{MAX_RATE:,} req/s per plan (one process sends about 100,000 req/s)")
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
                    ms = np.arange(index, hi, dtype=np.float64) - count_before
                    offsets = np.rint((begin_s + ms / start) * NS).astype(np.int64).tolist()
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

    def count_due(self, first: tuple[int, int, int], t_ns: int) -> dict[int, int]:
        """Per stage, how many arrivals from ``first`` (an arrival tuple, included) on are due by
        ``t_ns``: what a run that stops at ``t_ns`` never sent, counted without generating them.

        Exact for evenly spaced arrivals (each stage's first and last due index are found with
        the generator's own arithmetic); for Poisson arrivals, the expected count (the area under
        the rate between ``first`` and ``t_ns``, plus ``first`` itself)."""
        return _count_due(self, first, t_ns, 0, 1)

    def describe(self) -> dict[str, Any]:
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


def check_shard(index: int, count: int) -> None:
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
        check_shard(self.index, self.count)
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
    def params(self) -> dict[str, Any]:
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

    def count_due(self, first: tuple[int, int, int], t_ns: int) -> dict[int, int]:
        """:meth:`OpenPlan.count_due` for this shard's arrivals (indices k with k % count == index)."""
        return _count_due(self.whole, first, t_ns, self.index, self.count)

    def describe(self) -> dict[str, Any]:
        return {**self.whole.describe(), "shard": self.index, "shards": self.count}


def _offset_ns(st: Stage, begin_s: float, count_before: float, i: int, poisson: bool) -> int:
    """The intended time of arrival ``i`` of stage ``st``, as ``_arrival_chunks`` computes it (for
    evenly spaced arrivals; the same float operations, so the same integer)."""
    m = float(i) - count_before
    if not poisson and st.end == st.start:
        return int(round((begin_s + m / st.start) * NS))
    two_slope = 2 * ((st.end - st.start) / st.duration)
    return round((begin_s + (2 * m / (st.start + math.sqrt(st.start * st.start + two_slope * m)) if m > 0 else 0.0))
                 * NS)


def _in_shard(lo: int, hi: int, index: int, count: int) -> int:
    """How many k in [lo, hi] have k % count == index."""
    if hi < lo:
        return 0
    return (hi - index) // count - (lo - 1 - index) // count


def _count_due(plan: OpenPlan, first: tuple[int, int, int], t_ns: int, index: int, count: int) -> dict[int, int]:
    out: dict[int, int] = {}
    first_index, first_ns, first_stage = first
    if first_ns > t_ns:
        return out
    begin_s, count_before, lo = 0.0, 0.0, 0
    for si, st in enumerate(plan.stages):
        count_end = count_before + st.arrivals
        hi = math.ceil(count_end)  # the stage's indices are lo .. hi - 1 (see _arrival_chunks)
        end_s = begin_s + st.duration
        if si >= first_stage:
            def area(at_ns: int, st: Stage = st, begin_s: float = begin_s, before: float = count_before) -> float:
                """The expected count of arrivals by ``at_ns`` (the area under the rate), within this stage."""
                tau = min(max(at_ns / NS - begin_s, 0.0), st.duration)
                return before + st.start * tau + (st.end - st.start) / st.duration * tau * tau / 2

            if plan.poisson:
                n = area(t_ns) - (area(first_ns) - 1 if si == first_stage else count_before)
                out[si] = round(n / count)
            elif hi > lo:
                start = max(lo, first_index)
                # the last index due: near the area under the rate, then checked with the generator's arithmetic
                last = min(hi - 1, math.floor(area(t_ns)) + 1)
                while last >= start and _offset_ns(st, begin_s, count_before, last, False) > t_ns:
                    last -= 1
                while last + 1 < hi and _offset_ns(st, begin_s, count_before, last + 1, False) <= t_ns:
                    last += 1
                out[si] = _in_shard(start, last, index, count)
        if t_ns < end_s * NS:
            break
        begin_s, count_before, lo = end_s, count_end, hi
    return {k: v for k, v in out.items() if v > 0}


def _with_ramp(stages: list[Stage], ramp_up: float) -> list[Stage]:
    if ramp_up and ramp_up > 0:
        return [Stage(ramp_up, 0.0, stages[0].start, "ramp-up"), *stages]
    return stages


def _plan(kind: str, stages: list[Stage], ramp_up: float, poisson: bool, seed: int, **params: Any) -> OpenPlan:
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

