"""perfbench ab."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._util import err, positive
from .compare import _fraction, add_noise_options, noise_limits

ORDER = 47


def register(sub) -> None:
    p = sub.add_parser(
        "ab", help="paired A/B load test: baseline and candidate in alternating blocks, one verdict",
        description="Send one plan's load to BASELINE and CANDIDATE (each a URL; add --baseline-start / "
                    "--candidate-start to have perfbench start and stop them) in alternating blocks of about "
                    "--block seconds, in a random balanced order (ABBA or BAAB for every two pairs). Each pair of "
                    "blocks saw the same machine, so the verdict, per endpoint and percentile, comes from the "
                    "pairs' ratios candidate / baseline: Hodges-Lehmann estimate and exact signed-rank interval. "
                    "Noise the two sides share, such as another job on the machine, cancels.",
        epilog="exit codes: 0 no regression (also inconclusive), 10 regression found, 2 bad input, 4 a target "
               "unreachable or not startable.\nexamples:\n"
               "  perfbench ab http://127.0.0.1:8080 http://127.0.0.1:8081 --rate 50 --duration 60 --scenario demo\n"
               "  perfbench ab http://127.0.0.1:8080 http://127.0.0.1:8081 --baseline-start 'python -m app --port "
               "8080' --candidate-start 'python -m app --port 8081' --ready-path /health --path /api/items\n"
               "  perfbench ab http://127.0.0.1:8080 http://127.0.0.1:8081 --baseline-cwd ../app-main --baseline-start "
               "'python -m app --port 8080' --candidate-cwd ../app-branch --candidate-start 'python -m app --port 8081'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("baseline", help="the baseline's base URL (loopback unless --allow-host)")
    p.add_argument("candidate", help="the candidate's base URL (the same URL as the baseline: an A/A test)")
    shape = p.add_argument_group("load (the open model: the same plan, cut into blocks)")
    shape.add_argument("--rate", type=positive(float), default=50.0, help="arrivals per second (default 50)")
    shape.add_argument("--duration", default="60", help="both sides together: 30, 30s, 2m (default 60 s)")
    shape.add_argument("--ramp-up", default="0", help="time to ramp from 0 to --rate first")
    shape.add_argument("--stages", metavar="D:R,...", help="k6-style stages instead of --rate/--duration")
    shape.add_argument("--poisson", action="store_true", help="Poisson arrivals instead of evenly spaced ones")
    shape.add_argument("--block", default="0.25", metavar="S",
                       help="a block's length, adjusted so the run holds whole pairs (default 0.25 s)")
    shape.add_argument("--seed", type=int, default=0,
                       help="seed of the blocks' order and of which service perfbench starts first (default 0)")
    p.add_argument("--path", action="append", default=[], metavar="SPEC",
                   help="a request of the mix: [NAME=][METHOD ]PATH[*WEIGHT], repeatable; default GET /")
    p.add_argument("--scenario", help="'demo', a .toml scenario, or a Python file defining `scenario`")
    p.add_argument("--runs-dir", default="data/runs", help="where the run directory goes (default data/runs)")
    p.add_argument("--label", default="ab", help="a word for the run id (default 'ab')")
    p.add_argument("--max-in-flight", type=positive(int), default=10_000, help="cap on outstanding requests a side")
    p.add_argument("--timeout", type=positive(float), default=30.0, help="per-request timeout, s (default 30)")
    p.add_argument("--http-path", choices=("auto", "lean", "aiohttp"), default="auto", help="as for run")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST", help="allow a non-loopback host")
    svc = p.add_argument_group("starting the services (started before the load, stopped after, by their PIDs)")
    svc.add_argument("--baseline-start", metavar="CMD", help="start the baseline with this command")
    svc.add_argument("--candidate-start", metavar="CMD", help="start the candidate with this command")
    svc.add_argument("--baseline-cwd", metavar="DIR",
                     help="run --baseline-start in this directory, e.g. the baseline's git worktree (with "
                          "'python -m app', the directory it runs in is searched first, before PYTHONPATH)")
    svc.add_argument("--candidate-cwd", metavar="DIR", help="run --candidate-start in this directory")
    svc.add_argument("--start-timeout", type=positive(float), default=60.0, metavar="S",
                     help="seconds to wait for a started service to answer (default 60)")
    svc.add_argument("--ready-path", default="/", metavar="PATH", help="polled until a started service answers")
    svc.add_argument("--segments", type=positive(int), metavar="N",
                     help="cut the run into N parts and restart both started services between them, started "
                          "first in turn (1, or an even number; default 2 when perfbench starts both, else 1). "
                          "Two processes of one build can differ by a few percent for their whole lives (the one "
                          "started first read ~1.5%% slower); with both orders in the run that cancels, and the "
                          "rest shows in the interval. The restarts' time is not part of the plan's")
    svc.add_argument("--service-cpus", metavar="LIST",
                     help="run both started services (and all they fork) on these CPUs, the same set for both, as "
                          "taskset -c takes it: 1, 0,2 or 2-3. On a shared machine this puts both in one run queue, "
                          "so another job's load falls on both alike; it also caps their CPU. Needs both --*-start")
    verdict = p.add_argument_group("the verdict")
    verdict.add_argument("--threshold", type=_fraction, default=0.05,
                         help="the smallest change worth a verdict: 0.05 or 5%% (default 5%%; pairing removes the "
                              "drift between runs that compare's 10%% tolerates)")
    verdict.add_argument("--confidence", type=_fraction, default=0.95, help="confidence level (default 0.95)")
    verdict.add_argument("--fail-on", action="append", default=[], metavar="RULE",
                         help="a gating rule such as p95:+10%%, repeatable; without it every percentile gates")
    verdict.add_argument("--min-change-ms", type=float, default=0.0,
                         help="a latency change must also exceed this many ms (default 0)")
    add_noise_options(p, other_cpu=None, steal=None)
    p.add_argument("--markdown", metavar="FILE", help="also write Markdown (for a pull-request comment)")
    p.add_argument("--json", metavar="FILE", help="also write JSON")
    p.add_argument("--junit", metavar="FILE", help="also write JUnit XML (one test case per gating statistic)")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text", help="what to print")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_ab)


def cmd_ab(args) -> int:
    import contextlib

    from .. import compare as cmp
    from .. import shapes
    from ..compare import paired
    from ..errors import ConfigError, TargetError
    from ..experiments.ab import RESTART_FAILED, restart_order, run_ab, schedule, segment_starts, start_order
    from ..scenarios import load_scenario
    from ..service import parse_cpus

    rules = cmp.parse_rules(args.fail_on)
    try:
        block = shapes.parse_duration(args.block)
    except ConfigError as exc:
        raise ConfigError(f"--block {args.block!r}: {exc}") from None
    if not block > 0:
        raise ConfigError(f"--block must be a positive duration such as 1 or 500ms, got {args.block!r}")
    ramp_up = shapes.parse_duration(args.ramp_up) if args.ramp_up not in ("0", "0s") else 0.0
    if args.stages:
        plan = shapes.stages(shapes.parse_stages(args.stages), ramp_up=ramp_up, poisson=args.poisson)
    else:
        plan = shapes.constant(args.rate, shapes.parse_duration(args.duration), ramp_up=ramp_up, poisson=args.poisson)
    scenario = load_scenario(args.scenario, args.path)
    starts = {"baseline": (args.baseline_start, args.baseline), "candidate": (args.candidate_start, args.candidate)}
    cwds = {"baseline": args.baseline_cwd, "candidate": args.candidate_cwd}
    for side, cwd in cwds.items():
        if cwd is None:
            continue
        if not starts[side][0]:
            raise ConfigError(f"--{side}-cwd is where perfbench runs --{side}-start: give --{side}-start too")
        if not Path(cwd).is_dir():
            raise ConfigError(f"--{side}-cwd {cwd!r}: not a directory")
    if args.baseline_start and args.candidate_start and args.baseline == args.candidate:
        raise ConfigError("--baseline-start and --candidate-start with one URL: give each side its own port")
    cpus = None
    if args.service_cpus is not None:
        if not (args.baseline_start and args.candidate_start):
            raise ConfigError("--service-cpus pins the services perfbench starts, both alike: give both "
                              "--baseline-start and --candidate-start")
        try:
            cpus = parse_cpus(args.service_cpus)
        except ConfigError as exc:
            raise ConfigError(f"--service-cpus: {exc}") from None
    both = bool(args.baseline_start and args.candidate_start)
    segments = args.segments if args.segments is not None else (2 if both else 1)
    if segments > 1 and not both:
        raise ConfigError(f"--segments {segments} restarts the services between segments: give both "
                          "--baseline-start and --candidate-start (or --segments 1)")
    if segments > 1 and segments % 2:
        raise ConfigError(f"--segments must be 1 or an even number (each side is started first in half of the "
                          f"segments, so the offset that order gives cancels), got {segments}")
    segment_starts(schedule(plan.duration, block)[0], segments)  # refused before anything starts
    order = start_order(args.seed)  # a coin: the service started first runs slower (see start_order)
    with contextlib.ExitStack() as stack:
        services = stack.enter_context(_Services(starts, args, cpus, cwds))
        services.start(order)
        result = run_ab(args.baseline, args.candidate, plan, scenario, block_s=block, seed=args.seed,
                        runs_dir=args.runs_dir, label=args.label, allow_hosts=args.allow_host,
                        max_in_flight=args.max_in_flight, timeout=args.timeout, http_path=args.http_path,
                        handle_signals=True, announce=None if args.quiet else err, threshold=args.threshold,
                        confidence=args.confidence, rules=rules or None, min_change_ms=args.min_change_ms,
                        noise=noise_limits(args, cmp.AB_LIMITS), judge_noisy=args.judge_noisy,
                        service_cpus=cpus, started=[s for s in order if starts[s][0]] or None,
                        segments=segments, restart=lambda k: services.start(restart_order(order, k)))
    ab = result.comparison
    for path, text in ((args.markdown, paired.to_markdown), (args.json, paired.to_json),
                       (args.junit, lambda a: cmp.to_junit(a.comparison))):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text(ab))
    print({"text": paired.to_text, "markdown": paired.to_markdown, "json": paired.to_json}[args.format](ab))
    if args.format == "text":
        print(f"run directory: {result.path}  (ended: {result.end_reason})")
    for w in ab.comparison.warnings:
        err(f"perfbench: WARNING: {w}")
    if ab.comparison.regressions or ab.comparison.noisy:
        err(f"perfbench: {paired.headline(ab)}")
    if result.end_reason.startswith(RESTART_FAILED):
        err(f"perfbench: {result.end_reason.splitlines()[0]}; the blocks sent before it were judged (run directory "
            f"{result.path})")
        return TargetError.exit_code
    if result.end_reason in ("interrupted", "terminated"):
        return {"interrupted": 130, "terminated": 143}[result.end_reason]
    return ab.exit_code


class _Services:
    """The services perfbench starts for ``ab``: ``start(order)`` stops those running and starts each side
    that has a command, in ``order``; the sides started, in order. Leaving the ``with`` block stops them."""

    def __init__(self, starts: dict[str, tuple[str | None, str]], args, cpus, cwds: dict[str, str | None]) -> None:
        self.starts, self.args, self.cpus, self.cwds = starts, args, cpus, cwds
        self.running: list = []

    def start(self, order: tuple[str, str]) -> list[str]:
        from ..service import ServiceProcess, format_cpus

        self.stop()
        started = []
        for side in order:
            cmd, url = self.starts[side]
            if not cmd:
                continue
            svc = ServiceProcess(cmd, url=url, ready_path=self.args.ready_path,
                                 start_timeout=self.args.start_timeout, cpus=self.cpus, cwd=self.cwds.get(side))
            svc.start()  # stops it again if it never became ready
            self.running.append(svc)
            started.append(side)
            if not self.args.quiet:
                on = f", on CPUs {format_cpus(self.cpus)}" if self.cpus else ""
                where = f", in {self.cwds[side]}" if self.cwds.get(side) else ""
                err(f"started the {side}: pid {svc.pid}, serving on {svc.url}{on}{where}, log {svc.log_path}")
        return started

    def stop(self) -> None:
        while self.running:
            self.running.pop().stop()

    def __enter__(self) -> _Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
