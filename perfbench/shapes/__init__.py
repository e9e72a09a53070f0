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

``open_plans`` holds the open model (stages, arrivals, the shapes), ``closed_plans`` the closed model
(users, think time), ``protocols`` what the engine reads, ``text`` the command line's forms.
"""

from __future__ import annotations

from .closed_plans import (
    MAX_USERS,
    ClosedPlan,
    ClosedShard,
    Constant,
    Pacing,
    Think,
    Uniform,
    UserSpan,
    user_stages,
    users,
)
from .open_plans import (
    ARRIVAL_CHUNK,
    MAX_DURATION_S,
    MAX_RATE,
    NS,
    Arrival,
    OpenPlan,
    OpenShard,
    Stage,
    constant,
    ramp,
    soak,
    spike,
    stages,
    steps,
)
from .protocols import ClosedLoad, OpenLoad
from .text import parse_duration, parse_stages, parse_think

__all__ = [
    "ARRIVAL_CHUNK", "MAX_DURATION_S", "MAX_RATE", "MAX_USERS", "NS", "Arrival", "ClosedLoad", "ClosedPlan", "ClosedShard", "Constant", "OpenLoad",
    "OpenPlan", "OpenShard", "Pacing", "Stage", "Think", "Uniform", "UserSpan", "constant", "parse_duration",
    "parse_stages", "parse_think", "ramp", "soak", "spike", "stages", "steps", "user_stages", "users",
]
