"""A Python scenario's callbacks (``perfbench.scenario.Hooks``), run beside the load at a bounded cost.

``on_request(row)`` gets every recorded row as a dict, batch by batch, when the recorder flushes
(at least every second, or every 8,192 rows), on the event loop: each batch gets at most
``budget_ms`` of the loop, and the rows left when the budget is spent are skipped and counted,
so a slow callback delays the load by at most that much per flush. ``on_stop(summary)`` gets
summary.json's content once the run is summarized. A distributed run calls them on the coordinator
once the shards' rows are merged (every row, in the order of the merged file, with no budget: the load is
over), never on the workers. What a callback raises is reported (the
first error of each, on the run's announce line) and counted; the run goes on. meta.json's
``hooks`` says how many rows each callback got, skipped, and how many errors it raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from ..fields import reason
from ..scenario_hooks import Hooks


class HookRunner:
    def __init__(self, hooks: Hooks, announce: Callable[[str], None], bounded: bool = True):
        self.hooks = hooks
        self.announce = announce
        self.bounded = bounded  # False: after the run (a distributed run's merged rows), nothing to protect
        self.stats: dict[str, dict[str, Any]] = {}
        for name in ("on_request", "on_stop"):
            if getattr(hooks, name) is not None:
                self.stats[name] = {"calls": 0, "skipped": 0, "errors": 0, "first_error": None, "seconds": 0.0}

    def sink(self, write: Callable[[pa.RecordBatch], None]) -> Callable[[pa.RecordBatch], None]:
        """``write``, then ``on_request`` for each row of the batch (when there is one)."""
        if self.hooks.on_request is None:
            return write

        def sink(batch: pa.RecordBatch) -> None:
            write(batch)
            self.rows(batch)
        return sink

    def rows(self, batch: pa.RecordBatch) -> None:
        fn = self.hooks.on_request
        if fn is None or not batch.num_rows:
            return
        st = self.stats["on_request"]
        start = time.perf_counter()
        end = start + self.hooks.budget_ms / 1e3
        rows = batch.to_pylist()
        done = 0
        for row in rows:
            try:
                fn(row)
            except Exception as exc:  # noqa: BLE001 - the user's code: reported, never fatal
                self._error("on_request", st, exc)
            done += 1
            if self.bounded and time.perf_counter() > end:
                break
        st["calls"] += done
        st["skipped"] += len(rows) - done
        st["seconds"] += time.perf_counter() - start

    def stop(self, summary: dict[str, Any]) -> None:
        fn = self.hooks.on_stop
        if fn is None:
            return
        st = self.stats["on_stop"]
        start = time.perf_counter()
        try:
            fn(summary)
        except Exception as exc:  # noqa: BLE001 - the user's code: reported, never fatal
            self._error("on_stop", st, exc)
        st["calls"] += 1
        st["seconds"] += time.perf_counter() - start

    def _error(self, name: str, st: dict[str, Any], exc: Exception) -> None:
        st["errors"] += 1
        if st["first_error"] is None:
            st["first_error"] = text = reason(exc)
            self.announce(f"perfbench: the scenario's {name} raised {text}; the run goes on (errors are "
                          f"counted in meta.json's hooks)")

    def describe(self) -> dict[str, Any]:
        return {k: {**v, "seconds": round(v["seconds"], 6)} for k, v in self.stats.items()}
