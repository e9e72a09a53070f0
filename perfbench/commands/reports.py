"""perfbench reports."""

from __future__ import annotations

ORDER = 35


def register(sub) -> None:
    p = sub.add_parser("reports", help="write reports/index.html: every report, headline figures, trends",
                       description="Write reports/index.html: every experiment report, newest first, with its "
                                   "headline figures (requests, req/s, p50/p95/p99, errors) and verdict, and trend "
                                   "charts of p95 and throughput across runs of the same experiment, target and "
                                   "parameters; and every micro-benchmark run's figures per benchmark (median, IQR, "
                                   "ops/s, rounds, SQL and memory per call). Offline, one file; no run directory is "
                                   "written into.")
    p.add_argument("--runs-dir", default="data/runs", help="default data/runs")
    p.add_argument("--reports-dir", default="reports", help="default reports")
    p.set_defaults(func=cmd_reports)


def cmd_reports(args) -> int:
    import os

    from ..errors import ConfigError
    from ..report.index import write_index
    from ._util import writable_dir_problem

    if os.path.exists(args.runs_dir) and not os.path.isdir(args.runs_dir):
        raise ConfigError(f"--runs-dir {args.runs_dir!r} is not a directory")
    problem = writable_dir_problem(args.reports_dir, "--reports-dir")
    if problem:
        raise ConfigError(problem)

    print(f"index: {write_index(args.runs_dir, args.reports_dir)}")
    return 0
