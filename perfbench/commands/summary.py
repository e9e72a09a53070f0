"""perfbench summary."""

from __future__ import annotations

import json

ORDER = 40


def register(sub) -> None:
    p = sub.add_parser("summary", help="print the summary table of a run directory",
                       description="Print per-endpoint counts, req/s, exact latency percentiles and errors of "
                                   "a run directory (recomputed from requests.parquet with --recompute).")
    p.add_argument("run_dir", help="a run directory, e.g. data/runs/20261121-143012-load_test-9f2c")
    p.add_argument("--json", action="store_true", help="print summary.json")
    p.add_argument("--recompute", action="store_true", help="recompute from the raw rows and rewrite summary.json")
    p.set_defaults(func=cmd_summary)


def cmd_summary(args) -> int:
    from ..report_text import endpoint_table_text
    from ..results import Run

    run = Run.load(args.run_dir)
    summary = run.write_summary() if args.recompute else run.summary()
    print(json.dumps(summary, indent=2) if args.json else endpoint_table_text(summary))
    return 0
