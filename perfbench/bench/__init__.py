"""Micro-benchmarks: time a function (sync or async), and when asked its SQL and memory per call.

    from perfbench import bench
    r = bench.run(hash_password, b"secret")            # calibrated rounds, warm-up, a time budget
    r.stats["median_ns"], r.stats["ops"]
    s = bench.Session()                                 # several benchmarks, one run directory
    s.run(query_eager, sql=True, name="eager"); s.run(query_lazy, sql=True, name="lazy")
    s.table()                                           # min, max, mean, stddev, median, IQR, outliers, ops/s, SQL, memory
    s.save()                                            # data/runs/<id>/ (kind: bench); then perfbench compare
    await bench.arun(fetch_user, 7)                     # an async def function on the running loop

In pytest: the ``bench`` fixture (``perfbench.bench.plugin``) with ``--bench-save NAME`` and
``--bench-compare NAME``. A comparison of two bench runs (or a run and a saved baseline) gives, per
benchmark, the median's ratio with a bootstrap interval and a verdict, as ``perfbench compare`` does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .runner import BenchResult, Options, WorkerError, arun, is_async, run, timer_resolution_ns
from .stats import fit_scaling, round_stats

if TYPE_CHECKING:
    import polars as pl

# these need the analysis stack (polars, pyarrow: perfbench[load]); imported when first used, so that the
# runner and the pytest plugin load in an environment with the agent alone
_LAZY = {"to_text": "render", "is_bench_run": "store", "load_table": "store", "read_rounds": "store",
         "save_run": "store", "table": "store"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["BenchResult", "Options", "Session", "WorkerError", "arun", "compare", "fit_scaling", "is_async",
           "is_bench_run", "load_table", "read_rounds", "round_stats", "run", "save_run", "scaling", "table",
           "timer_resolution_ns", "to_text"]


def scaling(results: Iterable[BenchResult]) -> dict[str, Any]:
    """The fitted scaling of the median time per call against each result's numeric ``param``."""
    rs = [r for r in results if isinstance(r.param, int | float) and not isinstance(r.param, bool)]
    return fit_scaling([r.param for r in rs], [r.stats["median_ns"] for r in rs])


def compare(baseline: str | os.PathLike, current: str | os.PathLike, *, baselines_dir: str | os.PathLike =
            "data/baselines", **options: Any) -> Any:
    """``perfbench compare`` of two bench runs (or a saved baseline and a run): a ``compare.Comparison``."""
    from .. import compare as cmp

    return cmp.compare(cmp.load_side(baseline, baselines_dir), cmp.load_side(current, baselines_dir), **options)


class Session:
    """Several benchmarks measured together, saved as one run directory."""

    def __init__(self, label: str = "bench", **defaults: Any):
        Options.make(**defaults)
        self.label = label
        self.defaults = defaults
        self.results: list[BenchResult] = []

    def run(self, func: Callable[..., Any], *args: Any, **options: Any) -> BenchResult:
        r = run(func, *args, **{**self.defaults, **options})
        self.results.append(r)
        return r

    async def arun(self, func: Callable[..., Any], *args: Any, **options: Any) -> BenchResult:
        r = await arun(func, *args, **{**self.defaults, **options})
        self.results.append(r)
        return r

    def parametrize(self, func: Callable[[Any], Any], params: Iterable[Any], *, name: str | None = None,
                    **options: Any) -> list[BenchResult]:
        """``func(p)`` for each p of ``params``, each a benchmark named ``name[p]`` (sync functions)."""
        base = name or getattr(func, "__name__", "bench")
        return [self.run(func, p, name=f"{base}[{p}]", param=p, group=base, **options) for p in params]

    def scaling(self, group: str) -> dict[str, Any]:
        return scaling(r for r in self.results if r.group == group)

    def table(self) -> pl.DataFrame:
        from .store import table

        return table(self.results)

    def __str__(self) -> str:
        from .render import to_text

        return to_text(self.table())

    def save(self, runs_dir: str | os.PathLike = "data/runs", run_id: str | None = None) -> Path:
        from .store import save_run

        return save_run(self.results, runs_dir, self.label, run_id=run_id)
