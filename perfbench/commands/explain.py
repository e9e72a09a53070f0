"""perfbench explain."""

from __future__ import annotations

import argparse
import json

ORDER = 41


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"a fraction of the requests in (0, 1], e.g. 0.01; got {text}")
    return v


def register(sub) -> None:
    p = sub.add_parser(
        "explain", help="where each request's time went, from the service's agent (run --agent)",
        description="Join each request's latency to what the service's perfbench agent measured inside it and say "
                    "where the time went: outside the service (network, queueing before the handler, the load "
                    "generator), the SQL statements and the code between them, the cache, downstream calls, waiting for the event loop, garbage "
                    "collection, and the service's own code. Per endpoint, for its slowest requests (at or "
                    "above its p99) and for the slowest 1% of all requests: a breakdown, and the dominant cause "
                    "with its evidence (an N+1 or chatty SQL, one slow statement, cache misses, downstream calls, "
                    "a blocked event loop, GC, CPU in the service, or time outside the service).",
        epilog="examples:\n  perfbench explain data/runs/20261121-143012-run-9f2c\n"
               "  perfbench explain data/runs/20261121-143012-run-9f2c --json\n\n"
               "The run needs the agent's timing (server_requests.parquet): a run made with --agent against a "
               "service running perfbench.agent.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a run directory, e.g. data/runs/20261121-143012-run-9f2c")
    p.add_argument("--fraction", type=_fraction, default=0.01, metavar="F",
                   help="the slowest fraction of all requests to explain together (default 0.01: the slowest 1%%)")
    p.add_argument("--json", action="store_true", help="print the breakdown and the findings as JSON")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args) -> int:
    from ..analysis.explain import explain_path
    from ..report.text import explain_text

    ex = explain_path(args.run_dir, fraction=args.fraction)
    if not ex["agent"]:
        line = (f"no agent data in {ex['path']}: the run has no server_requests.parquet (run with --agent against a "
                "service running perfbench.agent to see where the time went)")
        print(json.dumps({"run_id": ex["run_id"], "agent": False, "message": line}, indent=2) if args.json else line)
        return 0
    if args.json:
        per = ex["requests"]
        print(json.dumps({"run_id": ex["run_id"], "agent": True, "requests": per.height,
                          "timed": int(per["timed"].sum()), "fraction": args.fraction,
                          "table": ex["table"].to_dicts(), "findings": ex["findings"],
                          "loop_blocks": ex["suspects"].to_dicts(), "pools": ex.get("pools", [])}, indent=2))
    else:
        print(explain_text(ex))
    return 0
