"""perfbench serve-demo.

With ``PERFBENCH_MEMORY_TOKEN`` set the demo also serves perfbench's memory endpoint (its app calls
``perfbench.agent.memory.install_from_env``), and ``PERFBENCH_MEMORY_TRACE_AT_START=1`` starts
tracemalloc before the demo is imported (``DemoProcess(tracemalloc=True, tracemalloc_at_start=True)``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from ._util import positive

ORDER = 60


def register(sub) -> None:
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
    p.add_argument("--max-seconds", type=positive(float), default=None,
                   help="stop by itself after this many seconds (a lifetime limit)")
    p.add_argument("--agent-token", default=os.environ.get("PERFBENCH_AGENT_TOKEN") or None,
                   help="run with the perfbench agent on: SQL and cache events per request id, served with "
                        "this token (16+ characters) on /_perfbench/* to loopback clients "
                        "(default: $PERFBENCH_AGENT_TOKEN, else no agent)")
    p.add_argument("--slowdown", action="append", default=[], metavar="PATH=N%|Nms",
                   help="make responses to paths starting with PATH slower on purpose by more CPU work: N%% of the "
                        "median CPU time of their handler over its last 201 requests, or N ms; repeatable: a known "
                        "answer for `perfbench ab`")
    p.set_defaults(func=cmd_serve_demo)


def cmd_serve_demo(args) -> int:
    from ..agent.memory import trace_at_start_from_env

    trace_at_start_from_env()  # first: only when asked, traces the demo's imports too
    from ..demo.server import run_server
    from ..demo.slowdown import parse_slowdown

    for spec in args.slowdown:
        parse_slowdown(spec)  # a bad spec is bad input (exit 2), before anything starts

    if not args.db_url:
        Path(args.db_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        run_server(host=args.host, port=args.port, db_url=args.db_url, db_path=args.db_path,
                   cache_url=args.cache_url, max_seconds=args.max_seconds,
                   agent_token=args.agent_token, slowdown=args.slowdown)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return 0
