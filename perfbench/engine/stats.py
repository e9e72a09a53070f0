"""What an engine run reports of itself: the generator's side of the summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EngineStats:
    """What the engine knows about its own behaviour (the generator's side of the summary)."""

    planned: int = 0  # arrivals taken from the plan
    sent: int = 0
    completed: int = 0
    capped: int = 0  # arrivals that found the in-flight cap reached and waited for a slot
    aborted: int = 0  # in flight when the run stopped and the grace period ran out
    unsent: int = 0  # arrivals due by the end that were never sent (counted, not recorded as rows)
    unsent_by_stage: dict[int, int] = field(default_factory=dict)  # the same, per stage of the plan
    max_in_flight_seen: int = 0
    end_reason: str = "completed"
    stop_detail: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
