"""perfbench summary."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import ConfigError
from ._util import SLO_HELP, check_slos

ORDER = 40


def register(sub) -> None:
    p = sub.add_parser("summary", help="print the summary table of a run directory",
                       description="Print per-endpoint counts, req/s, exact latency percentiles and errors of "
                                   "a run directory (recomputed from requests.parquet with --recompute). Of a "
                                   "micro-benchmark run (perfbench.bench): its results table, recomputed from "
                                   "its rounds.")
    p.add_argument("run_dir", help="a run directory, e.g. data/runs/20261121-143012-load_test-9f2c")
    p.add_argument("--json", action="store_true", help="print summary.json")
    p.add_argument("--recompute", action="store_true", help="recompute from the raw rows and rewrite summary.json")
    p.add_argument("--slo", action="append", default=[], metavar="SLO",
                   help=SLO_HELP + "; checked against this run (the run's own SLOs are kept otherwise)")
    p.add_argument("--csv", metavar="PREFIX",
                   help="also write Locust-compatible PREFIX_stats.csv, PREFIX_stats_history.csv and "
                        "PREFIX_failures.csv (Locust's columns; perfbench's exact numbers, the warm-up left out)")
    p.set_defaults(func=cmd_summary)


def cmd_summary(args) -> int:
    from ..analysis.results import Run
    from ..analysis.sides import is_ab, side_summaries
    from ..analysis.slo import check_scopes, evaluate, parse_all
    from ..compare.noise import AB_LIMITS, ab_reasons
    from ..report.text import endpoint_table_text, machine_text, sql_summary_text
    from ..rundir import SUMMARY, write_json

    slos = parse_all(args.slo)
    from ..bench.store import is_bench_run

    if is_bench_run(args.run_dir):
        return _bench_summary(args)
    if args.csv is not None:
        from ._util import writable_dir_problem

        if (bad := writable_dir_problem(str(Path(args.csv).parent), "--csv")) is not None:
            raise ConfigError(bad)
    run = Run.load(args.run_dir)
    if slos:  # an SLO of an endpoint the run never had is a typo, not a broken SLO
        scenario = run.meta.get("scenario") if isinstance(run.meta, dict) else None
        named = [str(r.get("name")) for r in scenario.get("requests", []) if isinstance(r, dict)] \
            if isinstance(scenario, dict) and isinstance(scenario.get("requests"), list) else []
        check_scopes(slos, [*named, *map(str, run.summary().get("endpoints") or {})])
    if args.recompute and run.note is None:
        summary = run.write_summary(slos or parse_all(run.meta.get("parameters", {}).get("slos", [])))
        if is_ab(run):  # an A/B run: each side's own summary too
            summary["sides"] = side_summaries(run)
            write_json(run.path / SUMMARY, summary)
    else:  # a run in progress (or one that cannot be written) is read, never written into
        summary = run.summary()
        if slos:
            summary["slo"] = evaluate(slos, summary)
    if run.note is not None:
        summary["in_progress" if run.live else "note"] = True if run.live else run.note
        if args.json:
            print(f"perfbench: {run.note}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
    elif summary.get("sides"):
        ab = run.meta.get("ab") or {}
        print("\n\n".join(f"{side} ({(ab.get(side) or {}).get('target', '?')}):\n{endpoint_table_text(s)}"
                          for side, s in summary["sides"].items()))
        machine = machine_text(summary, limits=AB_LIMITS, noisy=ab_reasons(summary, AB_LIMITS))
        if machine:  # one machine for both sides
            print("\n" + machine)
    else:
        print((f"{run.note}\n\n" if run.note else "") + endpoint_table_text(summary))
        machine = machine_text(summary)  # the machine's other load and whether compare would call the run noisy
        if machine:
            print(machine)
        sql = sql_summary_text(summary)  # with the agent: the same SQL block as perfbench run --agent prints
        if sql:
            print(sql)
    if args.csv is not None:
        from ..analysis.locust_csv import write

        paths = write(run, args.csv)
        print(f"Locust CSV: {', '.join(map(str, paths))}", file=sys.stderr if args.json else sys.stdout)
    check_slos(summary.get("slo", []))
    return 0


def _bench_summary(args) -> int:
    """A micro-benchmark run: its table (or summary.json), every figure recomputed from rounds.parquet."""
    from ..bench.render import to_text
    from ..bench.store import load_table

    if args.slo:
        raise ConfigError("--slo: a micro-benchmark run has no SLOs; compare it with a baseline (perfbench compare)")
    if args.csv is not None:
        raise ConfigError("--csv: a micro-benchmark run has no Locust statistics; --json gives its table")
    table = load_table(args.run_dir)
    print(json.dumps(table.to_dicts(), indent=2) if args.json else to_text(table, title=f"benchmarks of {os.path.basename(os.path.normpath(args.run_dir))}"))
    return 0
