"""Running one benchmark: calibration, warm-up, measured rounds, GC off, a time budget, worker processes.

One plan drives sync and async functions alike (``_plan``, a generator that yields the loop count of the
next round and receives how long it took); the drivers only time rounds:

- sync: ``for _ in repeat(None, loops): func(*args)`` between two ``time.perf_counter_ns()`` reads;
- async: the same loop of ``await func(*args)`` inside one coroutine on one event loop, timed from
  inside that coroutine (pyperf's ``bench_async_func``): scheduling a task per call is not measured.

Calibration doubles (or scales by the measured shortfall) the loops per round until one round lasts at
least ``min_time`` and 100 times the timer's measured resolution, so the two timer reads around a round
cost under 1% of it. Then ``warmup_rounds`` rounds are run and dropped, then rounds are measured until
``max_time`` has passed and at least ``min_rounds`` were measured, or ``max_rounds`` were. With
``processes`` > 1 the calibrated loop count is handed to that many forked worker processes, run one after
another, each measuring its share of the rounds (pyperf's way of sampling what differs between processes:
memory layout, hash seeds, allocator state).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import itertools
import math
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..errors import ConfigError, PerfbenchError
from . import cost as _cost
from .stats import round_stats

timer = time.perf_counter_ns
MAX_LOOPS = 10**9


@dataclass(frozen=True)
class Options:
    """How to run a benchmark. Times in seconds."""

    max_time: float = 1.0  # budget of the measured rounds (at least min_rounds are measured anyway)
    min_time: float = 20e-6  # a round lasts at least this long (and 100x the timer's resolution)
    min_rounds: int = 20  # a comparison's bootstrap of the median needs 20 rounds on each side
    max_rounds: int = 10_000
    warmup_rounds: int = 1
    disable_gc: bool = False
    processes: int = 1
    loops: int | None = None  # a fixed loop count per round: no calibration
    sql: bool = False  # count SQL statements per call (the agent's in-process capture)
    memory: bool = False  # tracemalloc peak and net allocation per call
    cost_calls: int = 3  # calls measured for sql/memory, after the timed rounds (capture slows calls down)

    def check(self) -> Options:
        problems = []
        for key in ("max_time", "min_time"):
            v = getattr(self, key)
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                problems.append(f"{key} must be a number of seconds >= 0, got {v!r}")
        for key, low in (("min_rounds", 1), ("max_rounds", 1), ("warmup_rounds", 0), ("processes", 1),
                         ("cost_calls", 1)):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                problems.append(f"{key} must be an integer >= {low}, got {v!r}")
        if self.loops is not None and (not isinstance(self.loops, int) or isinstance(self.loops, bool)
                                       or not 1 <= self.loops <= MAX_LOOPS):
            problems.append(f"loops must be an integer from 1 to {MAX_LOOPS} (or None to calibrate), got {self.loops!r}")
        if not problems and self.max_rounds < self.min_rounds:
            problems.append(f"max_rounds ({self.max_rounds}) must be >= min_rounds ({self.min_rounds})")
        if problems:
            raise ConfigError("bad benchmark options", problems)
        return self

    @classmethod
    def make(cls, **options: Any) -> Options:
        unknown = sorted(set(options) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown benchmark option {', '.join(unknown)}; known: "
                              f"{', '.join(cls.__dataclass_fields__)}")
        return cls(**options).check()


@dataclass
class BenchResult:
    """One benchmark's measured rounds (time per call, ns), how they were taken, and its cost per call."""

    name: str
    per_call_ns: list[float]
    starts_ns: list[int]  # each measured round's start, ns from the benchmark's start
    workers: list[int]  # the worker process of each round (0 when measured in this process)
    loops: int
    timer_resolution_ns: float
    options: Options
    is_async: bool = False
    param: Any = None
    group: str | None = None
    sql: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    value: Any = field(default=None, repr=False, compare=False)  # what the first (untimed) call returned

    @property
    def stats(self) -> dict[str, Any]:
        return round_stats(self.per_call_ns, self.loops)

    def info(self) -> dict[str, Any]:
        """What meta.json keeps of it (the rounds go to rounds.parquet)."""
        return {"name": self.name, "group": self.group, "param": self.param, "is_async": self.is_async,
                "loops": self.loops, "timer_resolution_ns": self.timer_resolution_ns,
                "options": asdict(self.options), "stats": self.stats, "sql": self.sql, "memory": self.memory,
                **({"extra": self.extra} if self.extra else {})}


def timer_resolution_ns() -> float:
    """The timer's effective resolution: the clock's stated one or the smallest step it is seen to make."""
    stated = time.get_clock_info("perf_counter").resolution * 1e9
    steps = []
    for _ in range(20):
        t0 = timer()
        t1 = timer()
        while t1 == t0:
            t1 = timer()
        steps.append(t1 - t0)
    return float(max(stated, min(steps)))


@dataclass
class _Measured:
    loops: int
    per_call_ns: list[float] = field(default_factory=list)
    starts_ns: list[int] = field(default_factory=list)


def _plan(o: Options, resolution_ns: float, loops: int | None = None) -> Generator[int, int, _Measured]:
    """Yields the loop count of each round to run, receives its duration (ns); returns the measured rounds."""
    target = max(o.min_time * 1e9, 100 * resolution_ns)
    if loops is None:
        loops = 1
        while True:
            took = yield loops
            if took >= target or loops >= MAX_LOOPS:
                break
            grow = 2.0 if took <= 0 else min(10.0, max(2.0, 1.2 * target / took))
            loops = min(MAX_LOOPS, math.ceil(loops * grow))
    for _ in range(o.warmup_rounds):
        yield loops
    m = _Measured(loops)
    t0 = timer()
    deadline = t0 + o.max_time * 1e9
    while len(m.per_call_ns) < o.max_rounds and (len(m.per_call_ns) < o.min_rounds or timer() < deadline):
        start = timer() - t0
        took = yield loops
        m.starts_ns.append(start)
        m.per_call_ns.append(took / loops)
    return m


def _calibration(o: Options, resolution_ns: float) -> Generator[int, int, _Measured]:
    """A plan that only calibrates (and measures one round): its result's ``loops``."""
    return _plan(replace(o, warmup_rounds=0, min_rounds=1, max_rounds=1, max_time=0), resolution_ns)


def _sync_round(func: Callable[..., Any], args: tuple) -> Callable[[int], int]:
    if args:
        def timed(loops: int) -> int:
            it = itertools.repeat(None, loops)
            t0 = timer()
            for _ in it:
                func(*args)
            return timer() - t0
        return timed

    def timed_noargs(loops: int) -> int:
        it = itertools.repeat(None, loops)
        t0 = timer()
        for _ in it:
            func()
        return timer() - t0
    return timed_noargs


async def _async_round(func: Callable[..., Any], args: tuple, loops: int) -> int:
    it = itertools.repeat(None, loops)
    t0 = timer()
    for _ in it:
        await func(*args)
    return timer() - t0


def _drive_sync(timed: Callable[[int], int], plan: Generator[int, int, _Measured], disable_gc: bool) -> _Measured:
    was = gc.isenabled()
    if disable_gc:
        gc.disable()
    try:
        loops = next(plan)
        while True:
            loops = plan.send(timed(loops))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        if disable_gc and was:
            gc.enable()


async def _drive_async(func: Callable[..., Any], args: tuple, plan: Generator[int, int, _Measured],
                       disable_gc: bool) -> _Measured:
    was = gc.isenabled()
    if disable_gc:
        gc.disable()
    try:
        loops = next(plan)
        while True:
            loops = plan.send(await _async_round(func, args, loops))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        if disable_gc and was:
            gc.enable()


def is_async(func: Callable[..., Any]) -> bool:
    """An ``async def`` function (or partial of one), or an object whose ``__call__`` is one."""
    call = type(func).__call__ if not inspect.isroutine(func) and not isinstance(func, functools.partial) else None
    return inspect.iscoroutinefunction(func) or (call is not None and inspect.iscoroutinefunction(call))


def _name_of(func: Callable[..., Any]) -> str:
    while isinstance(func, functools.partial):
        func = func.func
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or type(func).__name__


def _first_call_sync(func: Callable[..., Any], args: tuple) -> Any:
    out = func(*args)
    if inspect.isawaitable(out):
        if inspect.iscoroutine(out):
            out.close()
        raise ConfigError(f"{_name_of(func)} returned an awaitable but is not an async def function; wrap it in "
                          "one (async def f(): await ...) so the runner awaits it on the loop")
    return out


def run(func: Callable[..., Any], *args: Any, name: str | None = None, param: Any = None, group: str | None = None,
        **options: Any) -> BenchResult:
    """Benchmark ``func(*args)``: sync, or an ``async def`` function run on a new event loop.

    Options (keyword): see :class:`Options`. Keyword arguments of ``func``: bind them with functools.partial.
    Inside a running event loop (a notebook, an async test), an async function needs ``await arun(...)``.
    """
    o = Options.make(**options)
    if is_async(func):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(arun(func, *args, name=name, param=param, group=group, **options))
        raise ConfigError(f"{_name_of(func)} is an async function and an event loop is running here: "
                          "use `await perfbench.bench.arun(func)` (in pytest: `await bench.async_(func)`)")
    value = _first_call_sync(func, args)
    res = timer_resolution_ns()
    if o.processes > 1:
        measured, workers = _in_processes(lambda plan: _drive_sync(_sync_round(func, args), plan, o.disable_gc), o,
                                          res)
    else:
        measured = _drive_sync(_sync_round(func, args), _plan(o, res, o.loops), o.disable_gc)
        workers = [0] * len(measured.per_call_ns)
    result = BenchResult(name or _name_of(func), measured.per_call_ns, measured.starts_ns, workers, measured.loops,
                         res, o, False, param, group, value=value)
    if o.sql:
        result.sql = _cost.sql_cost(lambda: func(*args), o.cost_calls, result.name)
    if o.memory:
        result.memory = _cost.memory_cost(lambda: func(*args), o.cost_calls)
    return result


async def arun(func: Callable[..., Any], *args: Any, name: str | None = None, param: Any = None,
               group: str | None = None, **options: Any) -> BenchResult:
    """Benchmark the ``async def`` function ``func(*args)`` on the running event loop (see :func:`run`)."""
    o = Options.make(**options)
    if not is_async(func):
        raise ConfigError(f"{_name_of(func)} is not an async def function; use perfbench.bench.run for it")
    value = await func(*args)
    res = timer_resolution_ns()
    if o.processes > 1:
        def child(plan: Generator[int, int, _Measured]) -> _Measured:
            return asyncio.run(_drive_async(func, args, plan, o.disable_gc))  # a forked worker: a new loop
        loops = o.loops or (await _drive_async(func, args, _calibration(o, res), o.disable_gc)).loops
        measured, workers = _in_processes(child, replace(o, loops=loops), res)
    else:
        measured = await _drive_async(func, args, _plan(o, res, o.loops), o.disable_gc)
        workers = [0] * len(measured.per_call_ns)
    result = BenchResult(name or _name_of(func), measured.per_call_ns, measured.starts_ns, workers, measured.loops,
                         res, o, True, param, group, value=value)
    if o.sql:
        result.sql = await _cost.sql_cost_async(lambda: func(*args), o.cost_calls, result.name)
    if o.memory:
        result.memory = await _cost.memory_cost_async(lambda: func(*args), o.cost_calls)
    return result


class WorkerError(PerfbenchError):
    """A benchmark worker process failed."""


def _in_processes(drive: Callable[[Generator[int, int, _Measured]], _Measured], o: Options,
                  res: float) -> tuple[_Measured, list[int]]:
    """Calibrate here (when no loop count is fixed), then measure in ``o.processes`` forked workers in turn."""
    import multiprocessing

    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:
        raise ConfigError("processes > 1 needs the fork start method (Linux, macOS); use processes=1") from None
    loops = o.loops if o.loops is not None else drive(_calibration(o, res)).loops
    share = replace(o, max_time=o.max_time / o.processes, min_rounds=math.ceil(o.min_rounds / o.processes),
                    max_rounds=max(1, o.max_rounds // o.processes))
    share = replace(share, max_rounds=max(share.max_rounds, share.min_rounds))
    total = _Measured(loops)
    workers: list[int] = []
    offset = 0
    for w in range(o.processes):
        reader, writer = ctx.Pipe(duplex=False)

        def child(conn: Any = writer) -> None:
            try:
                m = drive(_plan(share, res, loops))
                conn.send(("ok", m.per_call_ns, m.starts_ns))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
            finally:
                conn.close()

        proc = ctx.Process(target=child, name=f"perfbench-bench-worker-{w}", daemon=True)
        proc.start()
        writer.close()
        try:
            msg = reader.recv()
        except EOFError:
            msg = ("error", "the worker exited without a result")
        finally:
            reader.close()
            proc.join()
        if msg[0] != "ok":
            raise WorkerError(f"benchmark worker {w} (pid {proc.pid}) failed: {msg[1]}")
        total.per_call_ns += msg[1]
        total.starts_ns += [offset + s for s in msg[2]]
        offset = total.starts_ns[-1] + math.ceil(total.per_call_ns[-1] * loops) if total.starts_ns else offset
        workers += [w + 1] * len(msg[1])
    return total, workers


__all__ = ["BenchResult", "Options", "WorkerError", "arun", "is_async", "run", "timer_resolution_ns"]
