"""What the agent's pool watch (perfbench.agent.pools) costs the service.

Per checkout: a SQLAlchemy ``QueuePool`` (SQLite file, one connection reused) checked out and in N times, with
and without the agent's pool watch (the checkout timed, the request's wait added, the pool's figures kept),
alternating, best of REPEAT rounds. And the gauge sampler: the process's CPU over IDLE_S seconds of an idle
process with one pool and one event loop registered, with and without the sampler thread (10 samples a second).

    python benchmarks/agent_pools.py [N] [REPEAT] [IDLE_S]   # µs per checkout added; sampler CPU when idle
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine

from perfbench.agent import Agent, pools


def per_checkout_ns(pool, n: int) -> float:  # noqa: ANN001
    start = time.perf_counter_ns()
    for _ in range(n):
        pool.connect().close()
    return (time.perf_counter_ns() - start) / n


def idle_cpu_ms(agent: Agent | None, seconds: float) -> float:
    stop = threading.Event()
    before = time.process_time()
    if agent is not None:
        agent.install()
    stop.wait(seconds)
    if agent is not None:
        agent.uninstall()
    return (time.process_time() - before) * 1000


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    idle_s = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    engine = create_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / 'b.db'}", pool_size=2, max_overflow=0)
    pool = engine.pool
    pool.connect().close()
    off, on = [], []
    for _ in range(repeat):
        off.append(per_checkout_ns(pool, n))
        undo = pools.install_sqlalchemy_pools()  # the pool watch alone: what an agent adds to a checkout
        assert undo is not None
        on.append(per_checkout_ns(pool, n))
        undo()
    print(f"checkout: {min(off) / 1000:.2f} µs without the pool watch, {min(on) / 1000:.2f} µs with it: "
          f"{(min(on) - min(off)) / 1000:+.2f} µs per checkout (best of {repeat} rounds of {n:,})")
    loop = asyncio.new_event_loop()
    pools.watch_loop(loop)  # registered like a served loop: its ready queue is read by each sample
    Agent(endpoints=False).install().uninstall()  # the first install imports the hooked libraries: not measured
    idle = idle_cpu_ms(None, idle_s)
    sampled = idle_cpu_ms(Agent(endpoints=False), idle_s)
    print(f"gauge sampler, idle: {idle:.1f} ms of CPU in {idle_s:g} s without it, {sampled:.1f} ms with it: "
          f"{(sampled - idle) / (idle_s * 10):.2f}% of a core")
    loop.close()
    engine.dispose()


if __name__ == "__main__":
    main()
