"""``run_load``: run a plan against a target and leave a run directory behind.

    from perfbench import shapes
    from perfbench.load import run_load
    result = run_load("http://127.0.0.1:8080", shapes.constant(rate=200, duration=20),
                      scenario=my_scenario)
    result.path, result.summary

Here, above the engine, a run is sent from this process (``engine.session.run_local``) or
sharded over a Dask cluster (``perfbench.distributed``). ``run_load`` works from a script, the
CLI and a Jupyter cell alike (inside a running event loop it runs the load on its own thread
and loop, so the kernel's loop never carries the load).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import distributed
from .analysis.slo import check_scopes, requirement_problems
from .analysis.slo import parse_all as parse_slos
from .engine.calls import CALL
from .engine.collectors import Collector
from .engine.options import LoadOptions, stderr_line
from .engine.session import RunResult, run_coroutine, run_local
from .errors import ConfigError
from .rundir import RunDir, new_run_id
from .safety import check_address, check_target
from .scenario import Request, Scenario, single
from .scenario_flows import endpoint_names
from .scenario_hooks import hooks_problems
from .shapes import ClosedPlan, OpenPlan
from .shapes.warmup import Warmup

DEFAULT_RUNS_DIR = Path("data/runs")

__all__ = ["DEFAULT_RUNS_DIR", "RunResult", "run_load"]


def run_load(target: str | Callable[..., Any] | dict[str, Callable[..., Any]], plan: OpenPlan | ClosedPlan, scenario: Scenario | None = None, *,
             runs_dir: str | Path = DEFAULT_RUNS_DIR, run_id: str | None = None, label: str = "run",
             allow_hosts: Iterable[str] = (), max_in_flight: int = 10_000, max_requests: int | None = None,
             timeout: float = 30.0, grace: float | None = None, lag_bound_ms: float = 10.0,
             progress: Callable[[dict[str, Any]], None] | bool | None = True, handle_signals: bool = False,
             parameters: dict[str, Any] | None = None, code_dir: str | None = None,
             announce: Callable[[str], None] | None = None, collectors: Iterable[Collector] = (),
             http_path: str = "auto", slos: Iterable[str] = (), workers: int = 0, scheduler: str | None = None,
             client: Any = None, on_cluster: Callable[[Any], None] | None = None, dns: str = "once",
             warmup: str | int | None = None, capture: bool = False) -> RunResult:
    """Run ``plan`` against ``target`` and write a run directory; returns its path and summary.

    Every run is bounded: it stops at the end of the plan (plus ``grace`` for in-flight
    requests, default ``min(timeout, 10) + 1`` s), at ``max_requests`` (requests; with flows in the
    open model, arrivals: each runs its flow whole), or on SIGINT/SIGTERM when
    ``handle_signals`` is set. Only loopback targets are loaded unless ``allow_hosts`` names
    the host. ``collectors`` (see ``perfbench.engine.collectors``) run beside the load and
    write their own files into the run directory. ``slos`` (``"p95<300ms"``, see
    ``perfbench.analysis.slo``) are checked at the end and stored in summary.json under ``slo``.
    ``dns``: ``"once"`` (each host name resolved once for the run) or ``"per-connection"``
    (see ``perfbench.engine.senders.make_sender``); ``meta.engine.dns`` records it.
    ``warmup``: the first part of the run (``"30s"``, or a number of requests; default the
    scenario's ``warmup``, else none) is recorded like the rest and left out of the summary, the
    SLOs and comparisons (``perfbench.shapes.warmup``; ``meta.warmup`` records it).

    ``target`` may also be an async function, or a table of names to async functions (an ORM call,
    a queue client, a gRPC stub): each call is a request (``perfbench.engine.calls``), recorded in
    the same rows; without a ``scenario`` every function is called with the same weight. With
    ``capture=True`` each call runs with its request id bound for the agent's in-process capture
    (``perfbench.agent.incall``): its SQL statements go to queries.parquet attributed to the call, its
    wall time to server_requests.parquet, so the summary's ``sql`` block, the agent's SLOs and
    ``perfbench explain`` work as on a run with the agent in an HTTP service.

    Distributed (``perfbench.distributed``): ``workers=N`` starts a local Dask cluster of N
    processes for the run (closed at the end), ``scheduler="tcp://HOST:PORT"`` uses an existing
    cluster (loopback, or a host named in ``allow_hosts``, like the target), ``client`` an existing ``distributed.Client``; each worker runs a shard of the plan
    and the records merge into one run directory. ``on_cluster(client)`` is called once the
    cluster is up (a notebook passes ``display`` to show the cluster widget).
    """
    calls = None
    if not isinstance(target, str):  # a callable target: async functions loaded in this process
        target, scenario, calls = callable_target(target, scenario)
        if workers or scheduler or client is not None:
            raise ConfigError("a callable target runs in this process: drop workers, scheduler and client")
        if capture:
            from .agent.incall import CallCapture

            if any(getattr(c, "name", None) == "agent" for c in collectors):
                raise ConfigError("capture=True is the agent of a callable target: drop the other agent collector")
            cc = CallCapture()
            calls = {name: cc.wrap(name, fn) for name, fn in calls.items()}
            collectors = (*collectors, cc)
    elif capture:
        raise ConfigError("capture=True is for a callable target (an async function); an HTTP service captures "
                          "with the agent in it (AgentCollector)")
    else:
        target = check_target(target, allow_hosts)
        if any(r.method == CALL for r in (scenario.requests if scenario else ())):
            raise ConfigError(f"method {CALL} is for a callable target (run_load(target=async_fn)); an HTTP "
                              f"target takes GET, POST, ...")
    if scheduler:  # the scheduler is checked like a target, before any connection
        check_address(scheduler, allow_hosts, "Dask scheduler")
    options = LoadOptions(max_in_flight=max_in_flight, max_requests=max_requests, timeout=timeout, grace=grace,
                          lag_bound_ms=lag_bound_ms, http_path=http_path, handle_signals=handle_signals,
                          slos=tuple(parse_slos(slos)), parameters=parameters or {}, code_dir=code_dir, progress=progress,
                          announce=announce or stderr_line, collectors=tuple(collectors),
                          allow_hosts=tuple(allow_hosts), dns=dns, warmup=warmup, calls=calls)
    scenario = scenario or single("/")
    if hook_problems := hooks_problems(scenario.hooks):  # a Scenario's hooks are checked here, before any load
        raise ConfigError(f"invalid scenario {scenario.name!r}", hook_problems)
    # every service the scenario names passes the same check, before any packet (a callable target names none)
    for url in scenario.urls() if calls is None else ():
        check_target(url, allow_hosts)
    check_scopes(options.slos, endpoint_names(scenario))
    names = {getattr(c, "name", None) for c in options.collectors}
    problems = requirement_problems(options.slos, resources="resources" in names, agent="agent" in names)
    if (warm := Warmup.parse(options.warmup) or Warmup.parse(scenario.warmup)) and (bad := warm.problem(
            plan.duration, plan.expected_requests if isinstance(plan, OpenPlan) else None)):
        problems.append(bad)
    if problems:
        raise ConfigError(problems[0]) if len(problems) == 1 else ConfigError("bad SLO or warm-up", problems)
    runs_dir, run_id = Path(runs_dir), run_id or new_run_id(label)
    if workers or scheduler or client is not None:
        result = distributed.run_on_cluster(target, plan, scenario, options, runs_dir=runs_dir, run_id=run_id,
                                            workers=workers, scheduler=scheduler, client=client,
                                            on_cluster=on_cluster)
    else:
        check_users(plan)
        result = run_coroutine(run_local(target, plan, scenario, options, runs_dir=runs_dir, run_id=run_id))
    return judge_reach(result)


def callable_target(target: Any, scenario: Scenario | None) -> tuple[str, Scenario, dict[str, Any]]:
    """``(target text, scenario, calls)`` for a callable target: an async function, or a table of names
    to async functions. Without a scenario, each call is a request of weight 1 (``Request(name, "CALL",
    "/name")``); a scenario given names its calls by their paths (``/name``)."""
    from .engine.calls import call_problems

    calls = {getattr(target, "__name__", "call"): target} if callable(target) else target
    if not isinstance(calls, dict):
        raise ConfigError(f"target: a URL, an async function or a table of names to async functions, got "
                          f"{type(target).__name__}")
    problems = call_problems(calls)
    if problems:
        raise ConfigError("invalid callable target", problems)
    if scenario is None:
        scenario = Scenario([Request(name, CALL, "/" + name) for name in calls], name="calls", cookies=False)
    unknown = [r.path for r in scenario.requests if r.path.lstrip("/") not in calls]
    if unknown:
        raise ConfigError(f"scenario: {', '.join(unknown)} name no call of the target (its calls: "
                          f"{', '.join('/' + n for n in calls)})")
    return "callable:" + ",".join(calls), scenario, dict(calls)


# a run that ran its course but reached nothing ends with this reason (the CLI's exit code 4)
UNREACHABLE = "unreachable"


def judge_reach(result: RunResult) -> RunResult:
    """A run that ran its course (completed, deadline, budget) but sent nothing, or whose every
    request failed to connect or resolve, did not test the target: its ``end_reason`` becomes
    ``unreachable`` (meta.json too, with ``reach`` saying why); the CLI exits with 4."""
    if result.end_reason not in ("completed", "deadline", "budget"):
        return result
    overall = result.summary.get("overall") or {}
    count = overall.get("count") or 0
    kinds = overall.get("errors_by_kind") or {}
    failed = (kinds.get("connect") or 0) + (kinds.get("dns") or 0)
    if count and failed < count:
        return result
    why = ("no request was sent" if not count else
           f"every request ({count}) failed to connect or resolve ({', '.join(f'{k} {v}' for k, v in kinds.items())})")
    RunDir(result.path).update_meta(end_reason=UNREACHABLE, reach=why, ran_until=result.end_reason)
    return RunResult(result.path, result.run_id, result.summary, UNREACHABLE, why)


def check_users(plan: OpenPlan | ClosedPlan) -> None:
    """A closed plan's users each hold a connection: refuse (ConfigError) more than this process
    may open (its RLIMIT_NOFILE, less what it needs besides), before any load."""
    if plan.model != "closed":
        return
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # pragma: no cover - not on this platform
        return
    if soft != resource.RLIM_INFINITY and plan.max_users > soft - FILES_RESERVED:
        raise ConfigError(f"{plan.max_users:,} users need one connection each, but this process may open only "
                          f"{soft:,} files (ulimit -n); raise the limit, use fewer users, or spread them over "
                          f"workers (--workers N)")


FILES_RESERVED = 256  # files a run needs besides its users' connections (journal, libraries, collectors)
