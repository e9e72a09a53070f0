"""perfbench stress."""

from __future__ import annotations

import json

from ._util import SLO_HELP, positive

ORDER = 25


def register(sub) -> None:
    import argparse

    p = sub.add_parser(
        "stress", help="find the breaking point: step the rate up until an SLO breaks",
        description="Run open-model steps at rising arrival rates until an SLO breaks (default p99<1s and "
                    "errors<1%%), the generator saturates, or --max-rate is reached. Prints the evidence per "
                    "step, the breaking point and the highest rate that held; writes a stress directory "
                    "(stress.json and one run directory per step).",
        epilog="example:\n  perfbench stress http://127.0.0.1:8080 --path /api/posts --start 50 --step 50 "
               "--step-duration 10s --slo 'p95<200ms'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", help="base URL (loopback unless --allow-host)")
    p.add_argument("--path", action="append", default=[], metavar="SPEC",
                   help="a request of the mix: [NAME=][METHOD ]PATH[*WEIGHT], repeatable")
    p.add_argument("--scenario", help="'demo', a .toml scenario or a .py file defining `scenario`")
    p.add_argument("--start", type=positive(float), default=50.0, help="first rate, req/s (default 50)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--step", type=positive(float), help="add this many req/s per step (default: the start rate)")
    g.add_argument("--factor", type=positive(float), help="multiply the rate by this per step, e.g. 1.5")
    p.add_argument("--max-rate", type=positive(float), default=10_000.0, help="highest rate to try (default 10000)")
    p.add_argument("--step-duration", default="10s", help="length of each step (default 10s)")
    p.add_argument("--slo", action="append", default=[], metavar="SLO",
                   help=SLO_HELP.replace("; a broken SLO exits with code 10", "") + " (default: p99<1s, errors<1%%)")
    p.add_argument("--timeout", type=positive(float), default=10.0, help="per-request timeout, s (default 10)")
    p.add_argument("--lag-bound", type=positive(float), default=10.0, metavar="MS",
                   help="send lag p99 above which the generator counts as saturated (default 10 ms)")
    p.add_argument("--warmup", default="2s", metavar="DURATION",
                   help="the first part of each step left out of its SLO check (default 2s, at most a quarter "
                        "of the step; 0 to judge every request)")
    p.add_argument("--runs-dir", default="data/runs")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST")
    p.add_argument("--json", action="store_true", help="print stress.json at the end")
    p.set_defaults(func=cmd_stress)


def cmd_stress(args) -> int:
    from ..analysis.slo import parse_all, scope_problems
    from ..experiments.stress import DEFAULT_SLOS, rates, stress
    from ..safety import check_target
    from ..scenarios import load_scenario
    from ..shapes import parse_duration
    from ._util import Problems, writable_dir_problem
    from .run import scenario_endpoints

    # everything checked before the first step, every problem at once
    problems = Problems()
    problems.attempt(check_target, args.target, args.allow_host)
    scenario = problems.attempt(load_scenario, args.scenario, args.path)
    step_duration = problems.attempt(parse_duration, args.step_duration)
    warmup = 0.0 if args.warmup in ("0", "0s") else problems.attempt(parse_duration, args.warmup)
    slos = problems.attempt(parse_all, args.slo or DEFAULT_SLOS)
    if scenario is not None and slos:
        problems.extend(scope_problems(slos, scenario_endpoints(scenario)))
    step = args.start if args.step is None and args.factor is None else args.step  # stress()'s default
    problems.attempt(lambda: rates(args.start, step=step, factor=args.factor, max_rate=args.max_rate))
    problems.add(writable_dir_problem(args.runs_dir, "--runs-dir"))
    problems.raise_any()
    result = stress(args.target, scenario, start=args.start, step=args.step,
                    factor=args.factor, max_rate=args.max_rate, step_duration=step_duration,
                    slos=args.slo or DEFAULT_SLOS, runs_dir=args.runs_dir, allow_hosts=args.allow_host,
                    timeout=args.timeout, handle_signals=True, lag_bound_ms=args.lag_bound,
                    warmup_s=warmup or 0.0)
    if args.json:
        print(json.dumps({"verdict": result.verdict, "steps": result.steps}, indent=2))
    print(f"stress directory: {result.path}")
    return 0
