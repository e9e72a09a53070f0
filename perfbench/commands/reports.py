"""perfbench reports."""

from __future__ import annotations

ORDER = 35


def register(sub) -> None:
    p = sub.add_parser("reports", help="write reports/index.html: every report, headline figures, trends",
                       description="Write reports/index.html: every experiment run with its report, headline "
                                   "figures (requests, req/s, p50/p95/p99, errors) and verdict, and per "
                                   "experiment a trend chart of p95 and throughput across runs. Offline, one file.")
    p.add_argument("--runs-dir", default="data/runs", help="default data/runs")
    p.add_argument("--reports-dir", default="reports", help="default reports")
    p.set_defaults(func=cmd_reports)


def cmd_reports(args) -> int:
    from ..report.index import write_index

    print(f"index: {write_index(args.runs_dir, args.reports_dir)}")
    return 0
