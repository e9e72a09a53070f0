"""The ``perfbench`` command line. Thin: each subcommand parses, calls the package, prints.

Exit codes (a contract for CI): 0 ok; 1 perfbench failed; 2 bad input; 3 bad run directory;
4 target unreachable or not startable; 5 an experiment notebook failed; 10 an SLO was broken;
130 interrupted before a run started.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import ConfigError, PerfbenchError

EPILOG = """exit codes: 0 ok, 1 perfbench failed, 2 bad input, 3 bad run directory, 4 target unreachable,
5 experiment notebook failed, 10 SLO broken. Add --debug for a traceback."""


def _positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return v

    return parse


# ---------------------------------------------------------------------------------------- run
def add_run(sub) -> None:
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
    p.add_argument("--rate", type=_positive(float), default=50.0, help="arrivals per second (default 50)")
    p.add_argument("--duration", type=_positive(float), default=10.0, help="seconds of load (default 10)")
    p.add_argument("--ramp-up", type=float, default=0.0, help="seconds to ramp from 0 to --rate first")
    p.add_argument("--poisson", action="store_true", help="Poisson arrivals instead of evenly spaced ones")
    p.add_argument("--path", action="append", default=[], metavar="SPEC",
                   help="a request of the mix: [NAME=][METHOD ]PATH[*WEIGHT], repeatable; default GET /")
    p.add_argument("--scenario", help="'demo' (the bundled demo target's mix) or a Python file defining "
                                      "`scenario` (a perfbench.scenario.Scenario)")
    p.add_argument("--runs-dir", default="data/runs", help="where run directories go (default data/runs)")
    p.add_argument("--label", default="run", help="a word for the run id (default 'run')")
    p.add_argument("--max-in-flight", type=_positive(int), default=10_000,
                   help="cap on outstanding requests; arrivals over it wait and are counted (default 10000)")
    p.add_argument("--max-requests", type=_positive(int), help="stop after this many requests")
    p.add_argument("--timeout", type=_positive(float), default=30.0, help="per-request timeout, s (default 30)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                   help="allow a non-loopback target host (never needed for 127.0.0.1/localhost)")
    p.add_argument("--quiet", action="store_true", help="no live progress lines")
    p.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    from . import shapes
    from .engine import run_load
    from .report_text import endpoint_table_text
    from .scenario import load_scenario

    scenario = load_scenario(args.scenario, args.path)
    plan = shapes.constant(args.rate, args.duration, ramp_up=args.ramp_up, poisson=args.poisson)
    result = run_load(args.target, plan, scenario, runs_dir=args.runs_dir, label=args.label,
                      allow_hosts=args.allow_host, max_in_flight=args.max_in_flight,
                      max_requests=args.max_requests, timeout=args.timeout, progress=not args.quiet,
                      handle_signals=True)
    if args.json:
        print(json.dumps(result.summary, indent=2))
    else:
        print(endpoint_table_text(result.summary))
        print(f"run directory: {result.path}  (ended: {result.end_reason})")
    return 0


# ---------------------------------------------------------------------------------------- summary
def add_summary(sub) -> None:
    p = sub.add_parser("summary", help="print the summary table of a run directory",
                       description="Print per-endpoint counts, req/s, exact latency percentiles and errors of "
                                   "a run directory (recomputed from requests.parquet with --recompute).")
    p.add_argument("run_dir", help="a run directory, e.g. data/runs/20261121-143012-load_test-9f2c")
    p.add_argument("--json", action="store_true", help="print summary.json")
    p.add_argument("--recompute", action="store_true", help="recompute from the raw rows and rewrite summary.json")
    p.set_defaults(func=cmd_summary)


def cmd_summary(args) -> int:
    from .report_text import endpoint_table_text
    from .results import Run

    run = Run.load(args.run_dir)
    summary = run.write_summary() if args.recompute else run.summary()
    print(json.dumps(summary, indent=2) if args.json else endpoint_table_text(summary))
    return 0


# ---------------------------------------------------------------------------------------- serve-demo
def add_serve_demo(sub) -> None:
    p = sub.add_parser("serve-demo", help="serve the bundled demo target on loopback",
                       description="Serve the bundled demo API (SQLite by default, seeded with realistic data; "
                                   "PostgreSQL with --db-url; Redis cache with --cache-url). Prints its URL, "
                                   "then serves until Ctrl-C, SIGTERM or --max-seconds.")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default 0)")
    p.add_argument("--db-url", help="e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test (default: SQLite)")
    p.add_argument("--db-path", default="data/demo/demo.sqlite",
                   help="SQLite file, seeded on first use (default data/demo/demo.sqlite)")
    p.add_argument("--cache-url", help="e.g. redis://127.0.0.1:6379/0 (default: in-process cache)")
    p.add_argument("--max-seconds", type=_positive(float), default=None,
                   help="stop by itself after this many seconds (a lifetime limit)")
    p.set_defaults(func=cmd_serve_demo)


def cmd_serve_demo(args) -> int:
    from .demo.server import run_server

    if not args.db_url:
        Path(args.db_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        run_server(host=args.host, port=args.port, db_url=args.db_url, db_path=args.db_path,
                   cache_url=args.cache_url, max_seconds=args.max_seconds)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return 0


# ---------------------------------------------------------------------------------------- experiment
def _param_value(text: str):
    """-p values: JSON where it parses (numbers, true/false, lists), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def add_experiment(sub) -> None:
    p = sub.add_parser(
        "experiment", help="run an experiment notebook with papermill and export its HTML report",
        description="Execute notebooks/<NAME>.ipynb with papermill (its `parameters` cell overridden by -p), "
                    "keep the executed notebook in the run directory and export an offline, self-contained "
                    "HTML report to reports/<run-id>.html.",
        epilog="example:\n  perfbench experiment load_test -p target http://127.0.0.1:8080 -p rate 200 -p duration 20",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="experiment name: a notebook in notebooks/ (e.g. load_test); "
                                "`perfbench experiment --list` shows them")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="set a notebook parameter (VALUE parsed as JSON when it can be)")
    p.add_argument("--runs-dir", default="data/runs", help="default data/runs")
    p.add_argument("--reports-dir", default="reports", help="default reports")
    p.add_argument("--notebooks-dir", help="where the experiment notebooks are (default: the project's notebooks/)")
    p.add_argument("--show-input", action="store_true", help="keep code cells in the HTML report")
    p.set_defaults(func=cmd_experiment)


def cmd_experiment(args) -> int:
    from .experiments import run_experiment

    params = {k: _param_value(v) for k, v in args.parameter}
    result = run_experiment(args.name, params, runs_dir=args.runs_dir, reports_dir=args.reports_dir,
                            notebooks_dir=args.notebooks_dir, show_input=args.show_input, log=_err)
    print(f"run directory: {result.run_dir}")
    print(f"notebook:      {result.notebook}")
    print(f"report:        {result.report}")
    return 0


def add_experiments_list(sub) -> None:
    p = sub.add_parser("experiments", help="list the experiment notebooks and their parameters",
                       description="List the experiment notebooks and the parameters each one takes.")
    p.add_argument("--notebooks-dir", help="default: the project's notebooks/")
    p.set_defaults(func=cmd_experiments)


def cmd_experiments(args) -> int:
    from .experiments import list_experiments

    for name, params in list_experiments(args.notebooks_dir).items():
        print(name)
        for pname, info in params.items():
            print(f"    {pname} = {info['default']}    ({info['type']}) {info['help']}".rstrip())
    return 0


# ---------------------------------------------------------------------------------------- demo
def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the main job: demo target + load_test experiment + HTML report",
                       description="Start the bundled demo target on a free loopback port, run the load_test "
                                   "experiment against it, print where the run and the report are, stop the "
                                   "target.")
    p.add_argument("--rate", type=_positive(float), default=100.0, help="arrivals per second (default 100)")
    p.add_argument("--duration", type=_positive(float), default=30.0, help="seconds of load (default 30)")
    p.add_argument("--runs-dir", default="data/runs")
    p.add_argument("--reports-dir", default="reports")
    p.add_argument("--db-path", default="data/demo/demo.sqlite", help="the demo's SQLite file")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from .demo.process import DemoProcess
    from .experiments import run_experiment

    with DemoProcess(db_path=args.db_path, max_seconds=args.duration + 600, log=_err) as demo:
        _err(f"demo target serving on {demo.url} (pid {demo.pid})")
        result = run_experiment("load_test", {"target": demo.url, "rate": args.rate, "duration": args.duration,
                                              "scenario": "demo"},
                                runs_dir=args.runs_dir, reports_dir=args.reports_dir, log=_err)
    print(f"run directory: {result.run_dir}")
    print(f"report:        {result.report}")
    return 0


# ---------------------------------------------------------------------------------------- main
def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perfbench",
        description="perfbench: performance testing of web APIs and the Python services behind them. Honest "
                    "(coordinated-omission-corrected) latency, exact percentiles, run directories you can "
                    "analyse in Polars, and notebook reports that open anywhere offline.",
        epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"perfbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (add_demo, add_run, add_experiment, add_experiments_list, add_summary, add_serve_demo):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except PerfbenchError as exc:
        if args.debug:
            raise
        print(f"perfbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("perfbench: interrupted", file=sys.stderr)
        return 130
