"""What the engine reads of a plan, declared: a whole plan and a shard of one both provide it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

if TYPE_CHECKING:
    from .closed_plans import Think, UserSpan
    from .open_plans import Stage

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

    def count_due(self, first: tuple[int, int, int], t_ns: int) -> dict[int, int]: ...

    def describe(self) -> dict[str, Any]: ...


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

    def describe(self) -> dict[str, Any]: ...

