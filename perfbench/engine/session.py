"""One process's load: the engine set up, run and torn down in one place.

:class:`LoadSession` holds what a run needs on the machine that sends: the sender (started,
logged in for the open model), the recorder, the open- or closed-model engine, the stop signals
and the run loop. :func:`run_local` uses it for a run in this process, writing a run directory;
a distributed shard (``perfbench.distributed``) uses the same session with its journal part as
the sink. Where the load runs (here or on a cluster) is decided above the engine, in
``perfbench.load``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pyarrow as pa

from .. import stops
from ..errors import RunDirError, TargetError
from ..fields import token_problem
from ..redaction import redact_url
from ..rundir import Journal, RunDir, WriterLock, convert_journal, git_commit, machine_info, utc_now_iso
from ..scenario import Scenario, max_redirects
from ..scenario_flows import FlowScenario
from ..shapes import ClosedLoad, OpenLoad
from ..shapes.warmup import Warmup
from ..wire import REQUEST_ID_HEADER
from .calls import CallSender
from .closed_model import ClosedModelEngine
from .collectors import RunContext, start_all, stop_all
from .cookies import CookieJar
from .follow import Origins, exchange, origins_for
from .heap import frozen_heap
from .hooks import HookRunner
from .machine import MachineSampler
from .open_model import OpenModelEngine
from .options import LoadOptions
from .protocols import Sender
from .recorder import Recorder
from .recorder import prime as prime_recorder
from .senders import make_sender
from .stats import EngineStats

T = TypeVar("T")


@dataclass
class RunResult:
    path: Path
    run_id: str
    summary: dict[str, Any]
    end_reason: str
    reach: str | None = None  # why the target counts as not reached (end_reason "unreachable")


def run_span(elapsed: float, planned: float, end_reason: str, capped: int) -> float:
    """The seconds a run's throughput is counted over (``meta.elapsed_s``, the summary's req/s).

    A completed run counts over its planned duration, so the last responses' latency does not
    dilute the rate it was sent at. But when arrivals waited for the in-flight cap, the backlog
    went out after the plan ended: the rate then counts over the whole run, or a saturated run
    would report the rate it was asked for instead of the one it achieved.
    """
    if end_reason == "completed" and not capped:
        return min(elapsed, planned)
    return elapsed


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh (uv)loop; on a thread of its own if this thread has a running loop
    (a Jupyter cell), so the caller's loop never carries the load."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            return runner.run(coro)
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            with asyncio.Runner(loop_factory=_new_loop) as runner:
                results.append(runner.run(coro))
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    t = threading.Thread(target=target, name="perfbench-engine")
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return results[0]


async def login(sender: Sender | Origins, scenario: Scenario) -> dict[str, str]:
    """The open model's one login (``Scenario.login``): the headers every request carries, the
    bearer token and (``Scenario.cookies``) the cookies the login set, redirects followed."""
    if scenario.login is None:
        return {}
    body = scenario.login.body()
    origins = sender if isinstance(sender, Origins) else origins_for(sender)
    jar = CookieJar() if scenario.cookies else None
    out, _, _ = await exchange(origins, "POST", scenario.login.path, {"Content-Type": "application/json"}, body,
                               keep_body=True, limit=max_redirects(scenario.follow_redirects), jar=jar)
    if not isinstance(sender, Origins):
        await origins.close()
    status, data, error, detail = out.status, out.body, out.error, out.detail
    if error is not None:
        raise TargetError(f"login at {scenario.login.path} failed: {error}: {detail}")
    if status != 200:
        raise TargetError(f"login at {scenario.login.path} answered HTTP {status}; expected 200 with a token")
    try:
        token = json.loads(data or b"")[scenario.login.token_field]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise TargetError(f"login at {scenario.login.path}: no JSON field {scenario.login.token_field!r} "
                          f"in the answer") from None
    if (problem := token_problem(token)) is not None:
        raise TargetError(f"login at {scenario.login.path}: {problem}")
    headers = {"Authorization": f"Bearer {token}"}
    cookie = jar.header(urlsplit(origins.base_url).hostname or "", scenario.login.path) if jar is not None else None
    if cookie is not None:
        # sent with every request (cookie paths are not matched per request in the open model)
        headers["Cookie"] = cookie
    return headers


def start_meta(target: str, scenario: Scenario, plan: OpenLoad | ClosedLoad, options: LoadOptions, *,
               max_in_flight: int, path: str | None) -> dict[str, Any]:
    """meta.json as a run starts (the same for one process and for shards on Dask)."""
    return {
        "target": target,
        "scenario": scenario.describe(),
        "shape": plan.describe(),
        "parameters": {"max_in_flight": max_in_flight, "max_requests": options.max_requests,
                       "timeout_s": options.timeout, "grace_s": options.grace,
                       "lag_bound_ms": options.lag_bound_ms, "slos": [x.text for x in options.slos],
                       **options.parameters},
        "engine": {"path": path, "model": plan.model, "retries": "disabled", "request_id_header": REQUEST_ID_HEADER,
                   "dns": options.dns},
        "started_at": utc_now_iso(),
        "start_unix_ns": time.time_ns(),
        "ended_at": None,
        "end_reason": None,
        "machine": machine_info(),
        "code_commit": git_commit(options.code_dir) if options.code_dir else None,
        # the first part of the run, left out of the figures (perfbench.analysis.warmup); None: no warm-up
        "warmup": w.describe() if (w := Warmup.parse(options.warmup) or Warmup.parse(scenario.warmup)) else None,
    }


def announce_start(options: LoadOptions, target: str, plan: OpenLoad | ClosedLoad, rd: RunDir,
                   flows: bool = False) -> None:
    """The line that says what is about to be sent, where, and where it is recorded (``flows``: the
    scenario's arrivals start flows, so the plan counts flow runs, not requests)."""
    what = (f"{plan.max_users} users (closed model)" if plan.model == "closed"
            else f"{plan.expected_requests:.0f} flow runs planned" if flows
            else f"{plan.expected_requests:.0f} requests planned")
    assert options.grace is not None  # resolved by LoadOptions
    options.announce(f"perfbench: {plan.describe()['kind']} load on {redact_url(target)}: {what} over {plan.duration:g} s "
                     f"(deadline {plan.duration + options.grace:g} s), run directory {rd.path}")


class StopSignals:
    """While installed, SIGINT and SIGTERM call ``stop("interrupted")`` / ``stop("terminated")``
    instead of killing the process (only from the main thread, where the loop can take them)."""

    def __init__(self, stop: Callable[[str], Any]):
        self._stop = stop
        self._installed: list[signal.Signals] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._loop = loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stop, "interrupted" if sig == signal.SIGINT else "terminated")
                self._installed.append(sig)
        if (asked := stops.pending()) is not None:  # a signal came before, its exception dropped (perfbench.stops)
            self._stop(asked)

    def remove(self) -> None:
        installed, self._installed = self._installed, []
        if self._loop is not None:
            for sig in installed:
                self._loop.remove_signal_handler(sig)


class LoadSession:
    """The engine for one plan (a whole plan or a shard of one) on this machine, as an async
    context manager: entering starts the sender and logs in (open model: once; the closed model's
    users each log in), leaving closes it. :meth:`build` makes the recorder and the engine,
    :meth:`run` runs the engine from a time zero."""

    def __init__(self, target: str, plan: OpenLoad | ClosedLoad, scenario: Scenario, options: LoadOptions, *,
                 worker: int = 0):
        self.target, self.plan, self.scenario, self.options, self.worker = target, plan, scenario, options, worker
        self.closed = plan.model == "closed"
        # the closed model: one connection per user (a shard may have none)
        self.max_in_flight = max(1, plan.max_users) if plan.model == "closed" else options.max_in_flight
        self.sender: Sender = make_sender(target, http_path=options.http_path, max_connections=self.max_in_flight,
                                          timeout=options.timeout, scenario=scenario, dns=options.dns) \
            if options.calls is None else CallSender(options.calls, timeout=options.timeout)
        self.origins = origins_for(self.sender, options.allow_hosts, timeout=options.timeout,
                                   max_connections=self.max_in_flight, dns=options.dns)
        self.auth: dict[str, str] = {}
        self.recorder: Recorder | None = None
        self.engine: OpenModelEngine | ClosedModelEngine | None = None
        self.elapsed = 0.0  # seconds the engine ran, once it has
        self._signals = StopSignals(self.stop)

    async def __aenter__(self) -> LoadSession:
        prime_recorder()  # a conversion's first-use costs paid before the run's clock starts
        await self.sender.start()
        try:
            if self.plan.model == "open":
                self.auth = await login(self.origins, self.scenario)
        except BaseException:
            await self.sender.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._signals.remove()
        await self.origins.close()
        await self.sender.close()

    def build(self, sink: Callable[[pa.RecordBatch], None],
              progress: Callable[[dict[str, Any]], None] | None) -> OpenModelEngine | ClosedModelEngine:
        """The recorder (writing into ``sink``) and the engine; ``progress`` gets the live intervals."""
        o, plan = self.options, self.plan
        assert o.grace is not None  # resolved by LoadOptions
        limits = {r.name: ns for r in self.scenario.requests if (ns := r.max_latency_ns)}
        self.recorder = recorder = Recorder(sink, worker=self.worker, max_latency=limits)
        from .flows import (  # user journeys: a flow per arrival or user iteration
            FlowClosedEngine,
            FlowOpenEngine,
        )

        flows = isinstance(self.scenario, FlowScenario)
        if plan.model == "closed":
            self.engine = (FlowClosedEngine if flows else ClosedModelEngine)(
                plan, self.scenario, self.sender, recorder, max_requests=o.max_requests, grace=o.grace,
                progress=progress, worker=self.worker, origins=self.origins)
        else:
            self.engine = (FlowOpenEngine if flows else OpenModelEngine)(
                plan, self.scenario, self.sender, recorder, max_in_flight=self.max_in_flight,
                max_requests=o.max_requests, grace=o.grace, auth_headers=self.auth, progress=progress,
                worker=self.worker, origins=self.origins)
        return self.engine

    def stop(self, reason: str = "interrupted") -> None:
        """Stop sending; in-flight requests get the grace."""
        if self.engine is not None:
            self.engine.stop(reason)

    def handle_signals(self) -> None:
        """SIGINT/SIGTERM stop the engine (``options.handle_signals``) until the run ends."""
        if self.options.handle_signals:
            self._signals.install()

    async def run(self, t0_ns: int) -> EngineStats:
        """Run the engine from ``t0_ns`` (its clock's reading for the run's time zero); the signals
        are removed and the recorder flushed however it ends."""
        assert self.engine is not None and self.recorder is not None, "build() first"
        started = time.perf_counter()
        try:
            with frozen_heap():
                return await self.engine.run(t0_ns=t0_ns)
        finally:
            self.elapsed = time.perf_counter() - started
            self._signals.remove()
            self.recorder.flush()


async def run_local(target: str, plan: OpenLoad | ClosedLoad, scenario: Scenario, options: LoadOptions, *,
                    runs_dir: Path, run_id: str) -> RunResult:
    """The whole run in this process: run directory, collectors beside the load, summary.

    While it runs, the run directory holds a :class:`~perfbench.rundir.WriterLock`, so readers
    leave it alone. When the run directory cannot be written (the journal's write fails: a full
    disk; or the directory is removed), the run stops sending at once (``end_reason:
    write_failed``), keeps what it can, and raises RunDirError saying so."""
    from ..analysis.results import Run

    async with LoadSession(target, plan, scenario, options) as session:
        rd = RunDir.create(runs_dir, run_id)
        announce_start(options, target, plan, rd, flows=isinstance(scenario, FlowScenario))
        rd.write_meta(start_meta(target, scenario, plan, options, max_in_flight=session.max_in_flight,
                                 path=session.sender.name))
        loop = asyncio.get_running_loop()
        write_error: list[str] = []

        def write_failed(reason: str) -> None:  # on the loop's thread
            if not write_error:
                write_error.append(reason)
                options.announce(f"perfbench: {reason}: stopping the load")
            session.stop("write_failed")

        def lost(why: str) -> None:  # on the lock's heartbeat thread
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the run is over
                loop.call_soon_threadsafe(write_failed, why)

        lock = WriterLock(rd.path, on_lost=lost).acquire()
        try:
            journal = Journal(rd.path, on_fail=lambda exc: write_failed(
                f"cannot write {rd.path / 'requests.arrows'} ({exc.strerror or exc})"))
            hooks = HookRunner(scenario.hooks, options.announce) if scenario.hooks is not None else None
            engine = session.build(hooks.sink(journal.write) if hooks else journal.write, options.progress_hook)
            session.handle_signals()
            ctx = RunContext(rd.path, target, plan.duration)
            collected: dict[str, Any] = {}
            collectors = list(options.collectors)
            if not any(getattr(c, "name", None) == MachineSampler.name for c in collectors):
                collectors.append(MachineSampler())  # every run records the machine's other load
            active = await start_all(collectors, ctx, collected, options.announce)
            try:
                ctx.t0_ns, ctx.start_unix_ns = engine.clock.now_ns(), time.time_ns()
                stats = await session.run(ctx.t0_ns)
            finally:
                journal.close()
                await stop_all(active, ctx, collected, options.announce)
            engine_stats = {"planned": stats.planned, "sent": stats.sent, "completed": stats.completed,
                            "capped": stats.capped, "aborted": stats.aborted, "unsent": stats.unsent,
                            "unsent_by_stage": {str(k): v for k, v in sorted(stats.unsent_by_stage.items())},
                            "max_in_flight": session.max_in_flight, "max_in_flight_seen": stats.max_in_flight_seen,
                            "path": session.sender.name}
            if write_error or journal.failed is not None:
                _write_failed(rd, journal, write_error, stats.end_reason, engine_stats, collected,
                              session.elapsed)
            table = convert_journal(rd.path)
            rd.update_meta(ended_at=utc_now_iso(), end_reason=stats.end_reason,
                           elapsed_s=run_span(session.elapsed, plan.duration, stats.end_reason, stats.capped),
                           rows=table.num_rows, engine_stats=engine_stats, collectors=collected,
                           start_unix_ns=ctx.start_unix_ns)
            summary = Run.load(rd.path).write_summary(list(options.slos), table)
            if hooks is not None:
                hooks.stop(summary)
                rd.update_meta(hooks=hooks.describe())
        finally:
            lock.release()
    return RunResult(rd.path, rd.run_id, summary, stats.end_reason)


def _write_failed(rd: RunDir, journal: Journal, errors: list[str], end_reason: str, engine_stats: dict[str, Any],
                  collected: dict[str, Any], elapsed: float) -> None:
    """The run could not write its run directory: keep what can be kept, record why, raise RunDirError."""
    reason = errors[0] if errors else f"cannot write {journal.path} ({journal.failed})"
    unwritten = sum(b.num_rows for b in journal.unwritten)
    kept = "the rows written before are in requests.arrows"
    if rd.path.is_dir():
        try:
            table = convert_journal(rd.path, journal.unwritten)
            kept = f"all {table.num_rows} rows recorded were saved to requests.parquet"
        except OSError:
            if unwritten:
                kept += f"; {unwritten} rows recorded after the failure could not be saved"
        with contextlib.suppress(OSError, RunDirError):
            rd.update_meta(ended_at=utc_now_iso(), end_reason="write_failed", write_error=reason,
                           stopped_because=end_reason, elapsed_s=elapsed, engine_stats=engine_stats,
                           collectors=collected, rows_not_saved=unwritten if "could not" in kept else 0)
    else:
        kept = "nothing was kept (the directory is gone)"
    raise RunDirError(f"{reason}; the load was stopped after {elapsed:.1f} s ({engine_stats['sent']} requests "
                      f"sent); {kept}")
