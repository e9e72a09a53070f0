"""perfbench run."""

from __future__ import annotations

import argparse
import json

from ..errors import ConfigError
from ..shapes.warmup import Warmup
from ._util import SLO_HELP, check_slos, positive

ORDER = 20


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="send load to a target and write a run directory",
        description="Send an open-model load (requests at planned times, whatever the server does) to TARGET "
                    "and write data/runs/<run-id>/ (meta.json, requests.parquet, summary.json). Latency is "
                    "measured from each request's planned send time (coordinated-omission correct).",
        epilog="examples:\n  perfbench run http://127.0.0.1:8080 --rate 200 --duration 20 --path /health\n"
               "  perfbench run http://127.0.0.1:8080 --stages 10s:50,30s:200,10s:0 --path /api/posts\n"
               "  perfbench run http://127.0.0.1:8080 --users 20 --think 1..3 --duration 1m --scenario demo\n"
               "  perfbench run http://127.0.0.1:8080 --scenario demo --rate 100 --duration 30\n"
               "  perfbench run http://127.0.0.1:8080 --scenario my_scenario.py --rate 50 --duration 60\n"
               "  perfbench run http://127.0.0.1:8080 --rate 4000 --duration 30 --workers 2\n"
               "  perfbench run http://127.0.0.1:8080 --start 'python -m myapp --port 8080' --ready-path /health "
               "--resources --memray",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", help="base URL, e.g. http://127.0.0.1:8080 (loopback unless --allow-host); "
                   "https:// targets are verified against the system's CAs, or the PEM bundle in "
                   "$SSL_CERT_FILE (how a local service's own CA is trusted). Or a callable target: a .py "
                   "file defining `calls`, an async function or a table of names to async functions (an ORM "
                   "call, a queue client), loaded in this process, each call a row (method CALL); the file "
                   "may define `scenario` to weight them")
    shape = p.add_argument_group("load shape (open model unless --users)")
    shape.add_argument("--rate", type=positive(float), help="arrivals per second (default 50)")
    shape.add_argument("--duration", help="duration of the load: 30, 30s, 2m, 1h (default 10 s)")
    shape.add_argument("--ramp-up", help="time to ramp from 0 to --rate (or --users) first")
    shape.add_argument("--stages", metavar="D:R,...",
                       help="k6-style stages instead of --rate/--duration, e.g. 30s:100,1m:100,30s:0 (each moves "
                            "linearly from the previous target; targets are req/s, or users with --users)")
    shape.add_argument("--poisson", action="store_true", help="Poisson arrivals instead of evenly spaced ones")
    shape.add_argument("--users", type=positive(int),
                       help="closed model: this many virtual users, each waiting for every response (can hide "
                            "stalls: see the summary's note); with --stages, the stage targets are users")
    shape.add_argument("--think", help="closed model think time: SECONDS or LOW..HIGH (default 0)")
    shape.add_argument("--pacing", help="closed model: start each user's requests every SECONDS instead of "
                                        "thinking; latency counts from the slot")
    p.add_argument("--path", action="append", default=[], metavar="SPEC",
                   help="a request of the mix: [NAME=][METHOD ]PATH[*WEIGHT], repeatable; default GET /")
    p.add_argument("--scenario", help="'demo' (the bundled demo target's mix), a .toml scenario, or a Python file defining "
                                      "`scenario` (a perfbench.scenario.Scenario)")
    p.add_argument("--runs-dir", default="data/runs", help="where run directories go (default data/runs)")
    p.add_argument("--label", default="run", help="a word for the run id (default 'run')")
    p.add_argument("--max-in-flight", type=positive(int), default=10_000,
                   help="cap on outstanding requests; arrivals over it wait and are counted (default 10000)")
    p.add_argument("--max-requests", type=positive(int),
                   help="stop after this many requests; with flows in the open model, after this many arrivals "
                        "(flow runs), each running its flow whole")
    p.add_argument("--timeout", type=positive(float), default=30.0,
                   help="a request's total time limit, s (default 30; a scenario's own total wins): from its send "
                        "to the end of its body. A "
                        "scenario (or one of its requests) can set each phase: timeout = { total = S, connect = S, "
                        "ttfb = S, idle = S }, where connect bounds opening a new connection (TCP and TLS), ttfb "
                        "the wait from the send to the response's first byte, and idle the longest wait for more "
                        "of the response (from the send, then between reads). A timed-out request keeps its status "
                        "(if the headers came) and the bytes read; error_detail names the phase, e.g. 'ttfb "
                        "timeout', 'total timeout while reading the body'")
    p.add_argument("--http-path", choices=("auto", "lean", "aiohttp"), default="auto",
                   help="how requests go over the wire: 'lean' (keep-alive HTTP/1.1 on uvloop and httptools, "
                        "about 7x cheaper per request), 'aiohttp' (the general client: HEAD, proxies, "
                        "large request bodies), or 'auto' (default: lean whenever the target and every "
                        "request allow it); both read responses alike (gzip and deflate decoded, bodies bounded "
                        "by max_body); meta.json records which ran")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                   help="allow a non-loopback target host (never needed for 127.0.0.1/localhost); a redirect "
                        "is followed only to loopback and these hosts")
    p.add_argument("--max-redirects", type=int, metavar="N",
                   help="follow at most N redirects per request, 0 to follow none (default: the scenario's "
                        "follow_redirects, else 10); a chain is one row with the last status, its redirects "
                        "and final_path, and a redirect not followed (off the machine, or over N) is an error "
                        "of kind 'redirect'")
    p.add_argument("--dns", choices=("once", "per-connection"), default="once",
                   help="resolve the target's host name once for the run (default: its addresses stay put "
                        "and a resolver's latency stays out of the figures), or again for every new "
                        "connection (a name behind DNS balancing or failover); meta.json records it")
    p.add_argument("--no-cookies", action="store_true",
                   help="keep no cookies (default: each virtual user keeps the cookies its responses set, "
                        "and the open model sends the login's cookies with every request)")
    p.add_argument("--slo", action="append", default=[], metavar="SLO", help=SLO_HELP)
    p.add_argument("--warmup", metavar="TIME|N",
                   help="the first part of the run, sent and recorded but left out of the summary, the SLOs and "
                        "comparisons: a time with a unit (30s, 2m; a part of --duration) or a number of requests "
                        "(500); default: the scenario's warmup, else none. meta.json records it (warmup.until_s: "
                        "where it ended, by intended send time)")
    p.add_argument("--agent", action="store_true",
                   help="the target runs the perfbench agent: fetch its SQL queries and cache events into the run "
                        "(queries.parquet) and its timing of each request (server_requests.parquet: see perfbench "
                        "explain); the agent's token is read from $PERFBENCH_AGENT_TOKEN")
    svc = p.add_argument_group("starting the service (perfbench starts it before the load and stops it after)")
    svc.add_argument("--start", metavar="CMD",
                     help="start the service with this command (split like a shell would, but run without one) "
                          "before the load, wait until TARGET answers, stop it (and what it forked) at the end (also on "
                          "Ctrl-C/SIGTERM); --resources and --pyspy watch it without --pid")
    svc.add_argument("--start-timeout", type=positive(float), metavar="S",
                     help="seconds to wait for the started service to answer (default 60)")
    svc.add_argument("--ready-path", metavar="PATH",
                     help="the path polled until the started service answers any HTTP status (default /)")
    svc.add_argument("--memray", action="store_true",
                     help="run the --start command (a Python program) under memray run; the service is stopped "
                          "when the load ends to complete the capture, and the reports go to memory/")
    svc.add_argument("--memray-native", action="store_true", help="with --memray: native (C) frames too")
    prof = p.add_argument_group("profiling the target process while the load runs")
    prof.add_argument("--pid", type=positive(int),
                      help="the target's process id (for --resources and --pyspy; not needed with --start)")
    prof.add_argument("--resources", action="store_true",
                      help="sample the target's CPU, RSS, files, connections and threads into resources.parquet")
    prof.add_argument("--resources-interval", type=positive(float), metavar="S",
                      help="seconds between resource samples (default 0.5)")
    prof.add_argument("--pyspy", action="store_true", help="record the target's CPU with py-spy into cpu/")
    prof.add_argument("--pyspy-rate", type=positive(int), metavar="N", help="py-spy samples per second (default 100)")
    prof.add_argument("--tracemalloc", action="store_true",
                      help="take tracemalloc snapshots through the service's perfbench memory endpoint "
                           "(perfbench.agent.memory.install; token from $PERFBENCH_MEMORY_TOKEN) into memory/")
    prof.add_argument("--snapshot-interval", type=positive(float), metavar="S",
                      help="seconds between tracemalloc snapshots (default 5)")
    dist = p.add_argument_group("distributed load generation (Dask)")
    dist.add_argument("--workers", type=positive(int), metavar="N",
                      help="start a local Dask cluster of N worker processes (one thread each) and split the plan "
                           "across them; the records merge into one run directory")
    dist.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                      help="run the shards on the workers of an existing Dask cluster instead (loopback unless "
                           "--allow-host names its host)")
    p.add_argument("--capture", action="store_true",
                   help="with a callable target: each call runs with its request id bound for the agent's "
                        "in-process capture, so its SQL statements go to queries.parquet (the summary's sql "
                        "block, queries_per_request SLOs, perfbench explain)")
    p.add_argument("--quiet", action="store_true", help="no live progress lines")
    p.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    p.add_argument("--dry-run", action="store_true",
                   help="check the options, target, scenario, SLOs and runs directory, print the plan, send nothing")
    p.set_defaults(func=cmd_run)


# the defaults of the options whose default is None on the parser (so that a given value can be told
# from the default, and an option the other options make meaningless is refused, not ignored)
DEFAULTS = {"rate": 50.0, "duration": "10", "ramp_up": "0", "think": "0", "start_timeout": 60.0, "ready_path": "/",
            "resources_interval": 0.5, "pyspy_rate": 100, "snapshot_interval": 5.0}


def _value(args, name: str):
    value = getattr(args, name, None)
    return DEFAULTS[name] if value is None else value


def option_problems(args) -> list[str]:
    """Every combination of ``perfbench run`` options that conflicts, or that would be silently ignored."""
    given = {name for name in DEFAULTS if getattr(args, name, None) is not None}
    out = []

    def refuse(condition: bool, text: str) -> None:
        if condition:
            out.append(text)

    closed, stages = bool(args.users), args.stages is not None
    refuse(closed and "rate" in given, "--rate is the open model's arrival rate; with --users the users' pace is "
                                       "their --think time or --pacing: drop --rate (or --users)")
    refuse(closed and args.poisson, "--poisson shapes open-model arrivals; with --users there are none: drop --poisson")
    refuse("think" in given and args.pacing is not None,
           "--think and --pacing both set a user's pace: give one of them")
    refuse(not closed and ("think" in given or args.pacing is not None),
           "--think and --pacing belong to the closed model: add --users N")
    refuse(stages and "rate" in given, "--stages gives the rates: drop --rate")
    refuse(stages and "duration" in given, "--stages gives the duration: drop --duration")
    refuse(stages and closed and "ramp_up" in given,
           "--ramp-up with --users --stages: ramp with a first stage instead, e.g. --stages 30s:20,1m:20")
    refuse(not args.start and ("start_timeout" in given or "ready_path" in given),
           "--start-timeout and --ready-path are for the service --start starts: add --start CMD")
    refuse(not args.resources and "resources_interval" in given, "--resources-interval without --resources")
    refuse(not args.pyspy and "pyspy_rate" in given, "--pyspy-rate without --pyspy")
    refuse(not args.tracemalloc and "snapshot_interval" in given, "--snapshot-interval without --tracemalloc")
    refuse(args.pid is not None and not (args.resources or args.pyspy),
           "--pid is the process --resources and --pyspy watch: add one of them (or drop --pid)")
    refuse(len(args.label) > 64, f"--label: at most 64 characters (it names the run directory), got {len(args.label)}")
    refuse(bool(args.workers) and bool(args.scheduler),
           "--workers starts a local cluster and --scheduler uses an existing one: give one of them")
    if is_call_target(args.target):
        http_only = [flag for flag, used in (
            ("--start", args.start is not None), ("--agent", args.agent), ("--tracemalloc", args.tracemalloc),
            ("--pid", args.pid is not None), ("--resources", args.resources), ("--pyspy", args.pyspy),
            ("--workers", bool(args.workers)), ("--scheduler", bool(args.scheduler)),
            ("--allow-host", bool(args.allow_host)), ("--max-redirects", args.max_redirects is not None),
            ("--http-path", args.http_path != "auto"), ("--dns", args.dns != "once"), ("--path", bool(args.path)))
            if used]
        refuse(bool(http_only), f"{', '.join(http_only)}: for an HTTP target; {args.target} is a callable target "
                                "(async functions run in this process; --capture attributes their SQL to each call)")
    else:
        refuse(args.capture, "--capture is for a callable target (a .py file defining `calls`); an HTTP service "
                             "captures with the agent in it (--agent)")
    return out


def is_call_target(target: str) -> bool:
    """Whether the run's TARGET names a Python file of async functions rather than a URL."""
    return target.endswith(".py") and "://" not in target


def plan_from_args(args):
    """The load plan the run command's shape options describe."""
    from .. import shapes

    ramp = _value(args, "ramp_up")
    ramp_up = shapes.parse_duration(ramp) if ramp not in ("0", "0s") else 0.0
    think_text = _value(args, "think")
    if args.users:
        think = shapes.Pacing(shapes.parse_duration(args.pacing)) if args.pacing is not None \
            else shapes.parse_think(think_text)
        if args.stages is not None:
            return shapes.user_stages(shapes.parse_stages(args.stages), think=think)
        return shapes.users(args.users, shapes.parse_duration(_value(args, "duration")), think=think, ramp_up=ramp_up)
    if args.pacing is not None or think_text not in ("0", "0.0"):
        raise ConfigError("--think and --pacing belong to the closed model: add --users N")
    if args.stages is not None:
        return shapes.stages(shapes.parse_stages(args.stages), ramp_up=ramp_up, poisson=args.poisson)
    return shapes.constant(_value(args, "rate"), shapes.parse_duration(_value(args, "duration")), ramp_up=ramp_up,
                           poisson=args.poisson)


def service_from_args(args):
    """The ServiceProcess ``--start`` asks for (not started yet), or None."""
    start = getattr(args, "start", None)
    if not start:
        if getattr(args, "memray", False) or getattr(args, "memray_native", False):
            raise ConfigError("--memray needs --start CMD: memray must start the service itself")
        return None
    if args.pid:
        raise ConfigError("--pid and --start: the started service's own PID is used; drop --pid")
    from ..service import ServiceProcess

    return ServiceProcess(start, url=args.target, ready_path=_value(args, "ready_path"),
                          start_timeout=_value(args, "start_timeout"),
                          memray=args.memray or args.memray_native, memray_native=args.memray_native)


def profilers_from_args(args, service=None) -> list:
    """The collectors the profiling options ask for (they need --pid or a started ``service``, or the memory token)."""
    import os

    out: list = []
    target = service if service is not None else args.pid
    if (args.resources or args.pyspy) and not target:
        raise ConfigError("--resources and --pyspy need the target's process id: --pid PID (or start it with --start)")
    if args.resources:
        from ..profilers.resources import ResourceSampler

        out.append(ResourceSampler(target, interval_s=_value(args, "resources_interval")))
    if args.pyspy:
        from ..profilers.cpu import PySpyCollector

        out.append(PySpyCollector(target, rate=_value(args, "pyspy_rate")))
    if args.tracemalloc:
        from ..profilers.tracemalloc import TracemallocCollector

        token = os.environ.get("PERFBENCH_MEMORY_TOKEN", "")
        if not token:
            raise ConfigError("--tracemalloc needs the service's memory token in $PERFBENCH_MEMORY_TOKEN")
        out.append(TracemallocCollector(args.target, token, interval_s=_value(args, "snapshot_interval"),
                                        allow_hosts=tuple(args.allow_host)))
    if service is not None and service.memray_path is not None:
        from ..profilers.memray import MemrayCollector

        # first, so it stops last: it stops the service to complete the capture, after the others are done
        out.insert(0, MemrayCollector(service))
    return out


def prepare(args):
    """The scenario, plan, service and collectors of a run, checked before anything is started or sent:
    every problem (options, target, scenario, plan, SLOs, profilers, runs directory) in one ConfigError."""
    from ..analysis.slo import parse_all, requirement_problems, scope_problems
    from ..safety import check_target
    from ..scenario import MAX_REDIRECTS_LIMIT
    from ..scenarios import load_scenario
    from ._util import Problems, writable_dir_problem

    problems = Problems(option_problems(args))
    if is_call_target(args.target):
        scenario, args.calls = _call_target(args, problems)
    else:
        problems.attempt(check_target, args.target, args.allow_host)
        scenario = problems.attempt(load_scenario, args.scenario, args.path)
    if args.max_redirects is not None and not 0 <= args.max_redirects <= MAX_REDIRECTS_LIMIT:
        problems.add(f"--max-redirects: a number of redirects from 0 to {MAX_REDIRECTS_LIMIT}, got {args.max_redirects}")
    elif scenario is not None and (args.max_redirects is not None or args.no_cookies):
        import dataclasses

        scenario = dataclasses.replace(
            scenario, cookies=scenario.cookies and not args.no_cookies,
            follow_redirects=scenario.follow_redirects if args.max_redirects is None else args.max_redirects)
    plan = problems.attempt(plan_from_args, args)
    slos = problems.attempt(parse_all, args.slo)
    if scenario is not None and slos:
        problems.extend(scope_problems(slos, scenario_endpoints(scenario)))
    if slos:
        problems.extend(requirement_problems(slos, resources=args.resources, agent=args.agent))
    warmup = problems.attempt(Warmup.parse, args.warmup)
    warmup = warmup if warmup is not None or scenario is None else scenario.warmup
    if warmup is not None and plan is not None:
        problems.add(warmup.problem(plan.duration, plan.expected_requests if plan.model == "open" else None))
    if is_call_target(args.target):  # no service to start or watch: option_problems refuses those flags
        service, collectors = None, []
    else:
        service = problems.attempt(service_from_args, args) if args.start is None or _splits(args.start, problems) \
            else None
        collectors = problems.attempt(collectors_from_args, args, service)
    problems.add(writable_dir_problem(args.runs_dir, "--runs-dir"))
    problems.raise_any()
    return scenario, plan, service, collectors


def _call_target(args, problems):
    """(scenario, calls) of a callable target: the file's ``calls``, weighted by ``--scenario`` or the
    file's own ``scenario`` (checked as ``run_load`` checks them); (None, None) after a problem."""
    from ..load import callable_target
    from ..scenarios import load_calls, load_scenario

    loaded = problems.attempt(load_calls, args.target)
    given = problems.attempt(load_scenario, args.scenario) if args.scenario else None
    if loaded is None or (args.scenario and given is None):
        return None, None
    calls, own = loaded
    checked = problems.attempt(callable_target, calls, given or own)
    return (checked[1], calls) if checked is not None else (None, None)


def scenario_endpoints(scenario) -> list[str]:
    """The endpoint names a run of ``scenario`` records (its requests, the login's, a journey's flows)."""
    from ..scenario_flows import endpoint_names

    return endpoint_names(scenario)


def _splits(command: str, problems) -> bool:
    import shlex

    try:
        shlex.split(command)
    except ValueError as exc:
        problems.add(f"--start {command!r}: {exc} (the command is split like a shell would split it)")
        return False
    return True


def collectors_from_args(args, service) -> list:
    collectors = []
    if args.agent:
        import os

        from ..agent import AgentCollector

        token = os.environ.get("PERFBENCH_AGENT_TOKEN", "")
        if not token:
            raise ConfigError("--agent needs the agent's token in $PERFBENCH_AGENT_TOKEN (the one the service "
                              "was started with)")
        collectors.append(AgentCollector(token, allow_hosts=tuple(args.allow_host)))
    collectors += profilers_from_args(args, service)
    # memray's collector first: collectors stop in reverse order, so it stops the service (to complete the
    # capture) only after every other collector, the agent's included, is done with it
    collectors.sort(key=lambda c: c.name != "memray")
    return collectors


def cmd_run(args) -> int:
    import contextlib

    from ..load import run_load
    from ..redaction import redact_url
    from ..report.text import endpoint_table_text
    from ..rundir import SERVER_REQUESTS
    from ._util import err

    scenario, plan, service, collectors = prepare(args)
    if args.dry_run:
        what = f"{plan.max_users} users" if plan.model == "closed" else f"{plan.expected_requests:.0f} requests"
        warm = Warmup.parse(args.warmup) or scenario.warmup
        left_out = "" if warm is None else (f"the first {warm.seconds:g} s" if warm.seconds is not None
                                            else f"the first {warm.requests} requests")
        print(f"dry run: {plan.describe()['kind']} load on {redact_url(args.target)}: {what} over {plan.duration:g} s; "
              f"scenario {scenario.name!r}: {', '.join(r.name for r in scenario.requests)}"
              f"{'; warm-up (left out of the figures): ' + left_out if left_out else ''}; nothing was sent")
        return 0
    # the service is stopped when this block ends, however it ends (the CLI raises SIGTERM as an exception)
    with contextlib.ExitStack() as stack:
        if service is not None:
            stack.enter_context(service)
            if not args.quiet:
                err(f"started the service: pid {service.pid}, serving on {redact_url(service.url)}, log {service.log_path}")
        calls = getattr(args, "calls", None)
        result = run_load(args.target if calls is None else calls, plan, scenario, runs_dir=args.runs_dir,
                          label=args.label, capture=args.capture,
                          allow_hosts=args.allow_host, dns=args.dns, max_in_flight=args.max_in_flight,
                          max_requests=args.max_requests, timeout=args.timeout, progress=not args.quiet,
                          handle_signals=True, slos=args.slo, collectors=collectors, workers=args.workers or 0,
                          scheduler=args.scheduler, http_path=args.http_path, warmup=args.warmup)
    if args.json:
        print(json.dumps(result.summary, indent=2))
    else:
        print(endpoint_table_text(result.summary))
        print_sql_summary(result.summary)
        print(f"run directory: {result.path}  (ended: {result.end_reason})")
        if (result.path / SERVER_REQUESTS).exists():  # the agent timed the requests: where their time went
            print(f"where the time went, request by request: perfbench explain {result.path}")
    for lost in result.summary.get("generator", {}).get("lost_shards") or []:
        print(f"warning: shard {lost['shard']} (worker {lost['worker']}) was lost: {lost['reason']}; "
              f"{lost['rows_kept']} of its records kept")
    if result.end_reason == "unreachable":
        from ..errors import TargetError

        raise TargetError(f"the target {args.target} was not reached: {result.reach}; the run directory "
                          f"{result.path} keeps what was recorded")
    check_slos(result.summary.get("slo", []))
    # an interrupted run kept everything it measured, but it is not a complete run: say so to CI
    return {"interrupted": 130, "terminated": 143}.get(result.end_reason, 0)


def print_sql_summary(summary: dict) -> None:
    """After the latency table, with --agent: the service's SQL in brief (summary.json's ``sql``)."""
    from ..report.text import sql_summary_text

    text = sql_summary_text(summary)
    if text:
        print(text)
