"""perfbench run."""

from __future__ import annotations

import argparse
import json

from ._util import SLO_HELP, check_slos, positive

ORDER = 20


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="send load to a target and write a run directory",
        description="Send an open-model load (requests at planned times, whatever the server does) to TARGET "
                    "and write data/runs/<run-id>/ (meta.json, requests.parquet, summary.json). Latency is "
                    "measured from each request's planned send time (coordinated-omission correct).",
        epilog="examples:\n  perfbench run http://127.0.0.1:8080 --rate 200 --duration 20 --path /health\n"
               "  perfbench run http://127.0.0.1:8080 --scenario demo --rate 100 --duration 30\n"
               "  perfbench run http://127.0.0.1:8080 --scenario my_scenario.py --rate 50 --duration 60",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", help="base URL, e.g. http://127.0.0.1:8080 (loopback unless --allow-host)")
    p.add_argument("--rate", type=positive(float), default=50.0, help="arrivals per second (default 50)")
    p.add_argument("--duration", type=positive(float), default=10.0, help="seconds of load (default 10)")
    p.add_argument("--ramp-up", type=float, default=0.0, help="seconds to ramp from 0 to --rate first")
    p.add_argument("--poisson", action="store_true", help="Poisson arrivals instead of evenly spaced ones")
    p.add_argument("--path", action="append", default=[], metavar="SPEC",
                   help="a request of the mix: [NAME=][METHOD ]PATH[*WEIGHT], repeatable; default GET /")
    p.add_argument("--scenario", help="'demo' (the bundled demo target's mix), a .toml scenario, or a Python file defining "
                                      "`scenario` (a perfbench.scenario.Scenario)")
    p.add_argument("--runs-dir", default="data/runs", help="where run directories go (default data/runs)")
    p.add_argument("--label", default="run", help="a word for the run id (default 'run')")
    p.add_argument("--max-in-flight", type=positive(int), default=10_000,
                   help="cap on outstanding requests; arrivals over it wait and are counted (default 10000)")
    p.add_argument("--max-requests", type=positive(int), help="stop after this many requests")
    p.add_argument("--timeout", type=positive(float), default=30.0, help="per-request timeout, s (default 30)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                   help="allow a non-loopback target host (never needed for 127.0.0.1/localhost)")
    p.add_argument("--slo", action="append", default=[], metavar="SLO", help=SLO_HELP)
    p.add_argument("--quiet", action="store_true", help="no live progress lines")
    p.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    from .. import shapes
    from ..engine import run_load
    from ..report_text import endpoint_table_text
    from ..scenario import load_scenario

    scenario = load_scenario(args.scenario, args.path)
    plan = shapes.constant(args.rate, args.duration, ramp_up=args.ramp_up, poisson=args.poisson)
    result = run_load(args.target, plan, scenario, runs_dir=args.runs_dir, label=args.label,
                      allow_hosts=args.allow_host, max_in_flight=args.max_in_flight,
                      max_requests=args.max_requests, timeout=args.timeout, progress=not args.quiet,
                      handle_signals=True, slos=args.slo)
    if args.json:
        print(json.dumps(result.summary, indent=2))
    else:
        print(endpoint_table_text(result.summary))
        print(f"run directory: {result.path}  (ended: {result.end_reason})")
    check_slos(result.summary.get("slo", []))
    return 0
