"""What the service agent costs: per captured statement, on the demo's p50, and nothing when it is off.

    .venv/bin/python benchmarks/agent_overhead.py                     # all three, ~2 minutes
    .venv/bin/python benchmarks/agent_overhead.py --only statement     # just the per-statement cost
    .venv/bin/python benchmarks/agent_overhead.py --blocks 8 --seconds 10 --rate 40

1. **Per captured statement** (sqlite3, in process): the same indexed ``SELECT`` run ``--statements``
   times on a plain connection and on a traced one inside a request the agent bound (and inside a
   ``capture()`` block), alternately, ``--repeat`` times; the cost is the median of the paired
   differences of CPU time (``time.process_time_ns``: on a shared machine, wall time measures the
   neighbours as much as the hooks), per statement. Bar: at most 5 µs.
2. **The demo's p50, with and without the agent**: two demo processes, each on its own copy of the
   seeded SQLite database (read-only GETs), one started with ``PERFBENCH_AGENT_TOKEN`` (the agent on,
   its records fetched by an ``AgentCollector`` every 2 s, as ``perfbench run --agent`` does) and one
   without. One scenario sends the same requests (health, the eager and the naive post listings) to
   both, interleaved in one arrival process at ``--rate`` req/s each (the second demo is a scenario
   target), so whatever else this shared machine does falls on both alike. ``--blocks`` runs of
   ``--seconds``; the overhead is the median over blocks of p50(agent) / p50(no agent) - 1. Bar: at
   most 3 %. Beside it, each demo process's CPU time per request it served (psutil), the same ratio:
   far less sensitive to the machine's other load than a latency. ``--control`` starts both demos
   without the agent: what the method reads when there is nothing to find.
3. **Nothing installed when off**: the originals (``sqlite3.connect``, ``ThreadPoolExecutor.submit``,
   asyncpg's, psycopg's, redis-py's, aiohttp's and httpx's patched methods, SQLAlchemy's event
   registry) are read before perfbench is imported and checked to be the very same objects after
   importing ``perfbench.agent``, after a ``capture()`` block ends and after an ``Agent`` uninstalls.

The figures are printed and the last line is their JSON.
"""

from __future__ import annotations

# the originals, read before anything of perfbench is imported ----------------------------------------------
import sqlite3  # noqa: I001 - the order is the point
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import asyncpg.connection
import httpx
import psycopg
import redis.asyncio.client
import redis.client
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool.base import _ConnectionRecord

ORIGINALS = {
    "sqlalchemy _ConnectionRecord.checkout": _ConnectionRecord.__dict__["checkout"],
    "sqlite3.connect": sqlite3.connect, "ThreadPoolExecutor.submit": ThreadPoolExecutor.submit,
    "asyncpg.Connection._execute": asyncpg.connection.Connection._execute,
    "psycopg.Cursor.execute": psycopg.Cursor.__dict__["execute"],
    "redis.Redis.execute_command": redis.client.Redis.__dict__["execute_command"],
    "redis.asyncio.Redis.execute_command": redis.asyncio.client.Redis.__dict__["execute_command"],
    "aiohttp.ClientSession._request": aiohttp.ClientSession.__dict__["_request"],
    "httpx.Client.send": httpx.Client.__dict__["send"], "httpx.AsyncClient.send": httpx.AsyncClient.__dict__["send"],
}

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def current() -> dict[str, object]:
    return {
        "sqlalchemy _ConnectionRecord.checkout": _ConnectionRecord.__dict__["checkout"],
        "sqlite3.connect": sqlite3.connect, "ThreadPoolExecutor.submit": ThreadPoolExecutor.submit,
        "asyncpg.Connection._execute": asyncpg.connection.Connection._execute,
        "psycopg.Cursor.execute": psycopg.Cursor.__dict__["execute"],
        "redis.Redis.execute_command": redis.client.Redis.__dict__["execute_command"],
        "redis.asyncio.Redis.execute_command": redis.asyncio.client.Redis.__dict__["execute_command"],
        "aiohttp.ClientSession._request": aiohttp.ClientSession.__dict__["_request"],
        "httpx.Client.send": httpx.Client.__dict__["send"], "httpx.AsyncClient.send": httpx.AsyncClient.__dict__["send"],
    }


def sqlalchemy_listeners() -> bool:
    from sqlalchemy.pool import Pool

    from perfbench.agent import pools, sql

    return any(event.contains(Engine, name, fn) for name, fn in (
        ("before_cursor_execute", sql._sa_before), ("after_cursor_execute", sql._sa_after))) or \
        event.contains(Pool, "connect", pools._on_connect)


def nothing_installed() -> dict[str, object]:
    """Checks 3: the same objects after import, after a capture, after an Agent (raises if not)."""
    import perfbench.agent
    from perfbench.agent import Agent, capture

    checks = {}
    for when in ("after import perfbench.agent", "after a capture() block", "after Agent().install()/uninstall()"):
        if when == "after a capture() block":
            with capture():
                conn = sqlite3.connect(":memory:")
                conn.execute("SELECT 1")
                assert sqlite3.connect is not ORIGINALS["sqlite3.connect"]  # on while the block runs
        elif when.startswith("after Agent"):
            agent = Agent(endpoints=False).install()
            assert sqlite3.connect is not ORIGINALS["sqlite3.connect"]
            agent.uninstall()
        changed = [name for name, fn in current().items() if fn is not ORIGINALS[name]]
        if sqlalchemy_listeners():
            changed.append("sqlalchemy Engine listeners")
        if any(t.name == "perfbench-gauges" for t in threading.enumerate()):
            changed.append("the gauge sampler thread still runs")
        if changed:
            raise SystemExit(f"FAIL {when}: still patched: {', '.join(changed)}")
        checks[when] = "every original in place"
    assert perfbench.agent.capture is capture
    return checks


def per_statement(statements: int, repeat: int) -> dict[str, float]:
    """Checks 1: paired differences plain/traced per statement, in µs."""
    from perfbench.agent import Agent, capture, sql

    def make(connect) -> sqlite3.Connection:  # noqa: ANN001
        conn = connect(":memory:")
        conn.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, "x") for i in range(100)])
        return conn

    def loop(conn: sqlite3.Connection) -> float:
        q = "SELECT b FROM t WHERE a = ?"
        start = time.process_time_ns()  # this process's CPU: what the hooks cost, not the neighbours' load
        for i in range(statements):
            conn.execute(q, (i % 100,))
        return (time.process_time_ns() - start) / statements

    plain = make(ORIGINALS["sqlite3.connect"])
    with capture():
        traced = make(sqlite3.connect)  # a traced connection (it stays traced, inert, when the hooks go)
    request, in_capture, base = [], [], []
    for _ in range(repeat):
        a = loop(plain)
        agent = Agent(capacity=statements + 10, endpoints=False).install()  # the agent, in a request
        token = sql.REQUEST.set(agent.bind("1", "GET /bench"))
        b = loop(traced)
        sql.REQUEST.reset(token)
        agent.uninstall()
        with capture(max_events=statements + 10):  # a capture() block alone
            c = loop(traced)
        base.append(a)
        request.append(b - a)
        in_capture.append(c - a)
    return {"plain_us": statistics.median(base) / 1e3, "in_request_us": statistics.median(request) / 1e3,
            "in_capture_us": statistics.median(in_capture) / 1e3}


def demo_p50(blocks: int, seconds: float, rate: float, control: bool = False) -> dict[str, object]:
    """Checks 2: ABBA blocks on two demo processes, one with the agent (and its collector)."""
    import polars as pl
    import psutil

    from perfbench import shapes
    from perfbench.agent import AgentCollector
    from perfbench.demo.db import make_engine, prepare_database
    from perfbench.demo.process import DemoProcess
    from perfbench.load import run_load
    from perfbench.scenario import Request, Scenario

    paths = [("health", "/health", 1), ("posts_eager", "/api/v2/posts?limit=10", 2), ("posts_naive", "/api/posts?limit=5", 2)]

    def scenario(off_url: str) -> Scenario:
        """Each request to both demos alike, interleaved in one arrival process: noise falls on both sides."""
        return Scenario(name="agent_overhead", seed=7, targets={"off": off_url}, requests=[
            *(Request(f"on:{name}", "GET", path, auth=False, weight=w) for name, path, w in paths),
            *(Request(f"off:{name}", "GET", path, auth=False, weight=w, target="off") for name, path, w in paths)])

    token = secrets.token_urlsafe(24)

    class Demo(DemoProcess):
        def __init__(self, agent: bool, **kw) -> None:  # noqa: ANN003
            super().__init__(**kw)
            self.agent = agent

        def environment(self) -> dict[str, str]:
            env = {k: v for k, v in super().environment().items() if k != "PERFBENCH_AGENT_TOKEN"}
            return {**env, "PERFBENCH_AGENT_TOKEN": token} if self.agent else env

    tmp = Path(tempfile.mkdtemp(prefix="agent-overhead-"))
    try:
        import asyncio

        db = tmp / "demo.sqlite"

        async def seed() -> None:
            engine = make_engine(db_path=db)
            try:
                await prepare_database(engine)
            finally:
                await engine.dispose()

        asyncio.run(seed())
        for side in ("on", "off"):
            (tmp / side).mkdir()
            shutil.copy(db, tmp / side / "demo.sqlite")
        p50: dict[str, list[float]] = {"on": [], "off": []}
        cpu: dict[str, list[float]] = {"on": [], "off": []}  # the demo process's CPU ms per request it served
        with Demo(not control, db_path=tmp / "on" / "demo.sqlite", max_seconds=3600) as on, \
                Demo(False, db_path=tmp / "off" / "demo.sqlite", max_seconds=3600) as off:
            both = scenario(off.url)
            run_load(on.url, shapes.constant(rate=rate, duration=2.0), both, runs_dir=tmp / "runs",
                     progress=False, announce=lambda line: None)  # warm-up, not counted
            procs = {"on": psutil.Process(on.pid), "off": psutil.Process(off.pid)}

            def cpu_s(side: str) -> float:
                t = procs[side].cpu_times()
                return t.user + t.system

            for i in range(blocks):
                cpu0 = {side: cpu_s(side) for side in procs}
                result = run_load(on.url, shapes.constant(rate=2 * rate, duration=seconds), both,
                                  runs_dir=tmp / "runs", progress=False, announce=lambda line: None,
                                  collectors=[] if control else [AgentCollector(token, poll_s=2.0)])
                if result.summary["overall"].get("errors"):
                    raise SystemExit(f"block {i} had {result.summary['overall']['errors']} errors")
                rows = pl.read_parquet(result.path / "requests.parquet", columns=["endpoint", "latency_ns"])
                for side in ("on", "off"):
                    mine = rows.filter(pl.col("endpoint").str.starts_with(side + ":"))["latency_ns"]
                    p50[side].append(float(mine.quantile(0.5, "nearest")) / 1e6)
                    cpu[side].append((cpu_s(side) - cpu0[side]) * 1e3 / len(mine))
                first = "the first demo (no agent: control)" if control else "with the agent"
                print(f"  block {i + 1:2d}: p50 {p50['on'][-1]:.2f} ms {first}, {p50['off'][-1]:.2f} ms "
                      f"without; service CPU per request {cpu['on'][-1]:.3f} ms / {cpu['off'][-1]:.3f} ms "
                      f"({rows.height} requests)", flush=True)
        ratios = [a / b - 1 for a, b in zip(p50["on"], p50["off"], strict=True)]
        cpu_ratios = [a / b - 1 for a, b in zip(cpu["on"], cpu["off"], strict=True)]
        return {"rate_per_side": rate, "seconds": seconds, "blocks": blocks,
                "p50_on_ms": p50["on"], "p50_off_ms": p50["off"],
                "p50_on_median_ms": statistics.median(p50["on"]), "p50_off_median_ms": statistics.median(p50["off"]),
                "overhead_median": statistics.median(ratios), "overhead_per_block": ratios,
                "cpu_per_request_on_ms": cpu["on"], "cpu_per_request_off_ms": cpu["off"],
                "cpu_overhead_median": statistics.median(cpu_ratios)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", choices=("statement", "demo", "off"), help="run one of the three")
    p.add_argument("--statements", type=int, default=20_000)
    p.add_argument("--repeat", type=int, default=9)
    p.add_argument("--blocks", type=int, default=8, help="blocks, each sending to both demos")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rate", type=float, default=40.0, help="req/s to each demo")
    p.add_argument("--control", action="store_true",
                   help="both demos without the agent: what the method itself reads (should be about 0%%)")
    args = p.parse_args()
    out: dict[str, object] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    ok = True
    if args.only in (None, "off"):
        out["nothing_installed_when_off"] = nothing_installed()
        print("nothing installed when off: " + "; ".join(f"{k}: {v}" for k, v in out["nothing_installed_when_off"].items()))
    if args.only in (None, "statement"):
        st = per_statement(args.statements, args.repeat)
        out["per_statement"] = st
        ok &= st["in_request_us"] <= 5.0
        print(f"per captured statement (sqlite3, median of {args.repeat} x {args.statements}): "
              f"{st['in_request_us']:.2f} µs in a request, {st['in_capture_us']:.2f} µs in a capture() "
              f"(the statement alone: {st['plain_us']:.2f} µs); bar <= 5 µs: "
              f"{'met' if st['in_request_us'] <= 5.0 else 'NOT met'}")
    if args.only in (None, "demo"):
        demo = demo_p50(args.blocks, args.seconds, args.rate, args.control)
        demo["control"] = args.control
        out["demo"] = demo
        ok &= demo["overhead_median"] <= 0.03
        first = "in the first demo (no agent: --control)" if args.control else "with the agent"
        print(f"demo p50 at {args.rate:g} req/s each: {demo['p50_on_median_ms']:.2f} ms {first}, "
              f"{demo['p50_off_median_ms']:.2f} ms without (medians of {demo['blocks']} blocks); overhead (median "
              f"of the blocks' ratios) {demo['overhead_median'] * 100:+.1f}%; bar <= 3%: "
              f"{'met' if demo['overhead_median'] <= 0.03 else 'NOT met'}; the service's CPU per request "
              f"{demo['cpu_overhead_median'] * 100:+.1f}% (median of the blocks' ratios)")
    print(json.dumps(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
