"""A Python scenario's callbacks: :class:`Hooks` and their checks (``perfbench.engine.hooks`` runs them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .fields import number_problem
from .fields import short as _short

__all__ = ["Hooks", "hooks_problems"]


@dataclass(frozen=True)
class Hooks:
    """Callbacks of a Python scenario (``perfbench.engine.hooks`` runs them): ``on_request(row)``
    with every recorded row as a dict (a flow's steps and its own row too), batch by batch as the
    run flushes them (at least every second), at most ``budget_ms`` per batch (the rest of a batch
    is skipped and counted); ``on_stop(summary)`` once, with summary.json's content. What they
    raise is reported and counted, never fatal to the run."""

    on_request: Callable[[dict[str, Any]], Any] | None = None
    on_stop: Callable[[dict[str, Any]], Any] | None = None
    budget_ms: float = 5.0


def hooks_problems(hooks: Any) -> list[str]:
    if hooks is None:
        return []
    if not isinstance(hooks, Hooks):
        return [f"hooks: a Hooks(on_request=..., on_stop=...), got {type(hooks).__name__}"]
    out = [f"hooks.{k}: a function, got {_short(getattr(hooks, k))}" for k in ("on_request", "on_stop")
           if getattr(hooks, k) is not None and not callable(getattr(hooks, k))]
    if (bad := number_problem(hooks.budget_ms, "budget_ms", 0.01, 60_000)) is not None:
        out.append(f"hooks: {bad}")
    return out
