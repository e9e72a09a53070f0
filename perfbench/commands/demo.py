"""perfbench demo."""

from __future__ import annotations

from ._util import err, positive

ORDER = 10
AGENT_TOKEN_ENV = "PERFBENCH_AGENT_TOKEN"


def register(sub) -> None:
    p = sub.add_parser("demo", help="the main job: demo target + load_test experiment + HTML report",
                       description="Start the bundled demo target (with the perfbench agent on) on a free "
                                   "loopback port, run the load_test experiment against it, print where the run "
                                   "and the report are, stop the target.")
    p.add_argument("--rate", type=positive(float), default=100.0, help="arrivals per second (default 100)")
    p.add_argument("--duration", type=positive(float), default=30.0, help="seconds of load (default 30)")
    p.add_argument("--runs-dir", default="data/runs")
    p.add_argument("--reports-dir", default="reports")
    p.add_argument("--db-path", default="data/demo/demo.sqlite", help="the demo's SQLite file")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    import os
    import secrets

    from ..demo.process import DemoProcess
    from ..experiments.runner import run_experiment

    # The demo runs the perfbench agent, so the report joins each request to the SQL it caused.
    # The token travels in the environment (inherited by the demo and the notebook's kernel),
    # never on a command line (visible in ps) or as a notebook parameter (saved in the report).
    os.environ.setdefault(AGENT_TOKEN_ENV, secrets.token_urlsafe(24))
    with DemoProcess(db_path=args.db_path, max_seconds=args.duration + 600, log=err) as demo:
        err(f"demo target serving on {demo.url} (pid {demo.pid})")
        result = run_experiment("load_test", {"target": demo.url, "rate": args.rate, "duration": args.duration,
                                              "scenario": "demo", "agent_token_env": AGENT_TOKEN_ENV},
                                runs_dir=args.runs_dir, reports_dir=args.reports_dir, log=err)
    print(f"run directory: {result.run_dir}")
    print(f"report:        {result.report}")
    return 0
