"""Memory per virtual user (closed model): RSS growth with N users each holding a request in flight.

A local server (a thread in this process) accepts every connection, reads the request and never
answers, so every user of the closed model waits on its own keep-alive connection: the state a
user costs at its largest (its coroutine, its prepared scenario and random generator, its
connection with the sender's buffers, its request). The RSS delta between N users and N/5 users,
over the difference in users, is what one more user costs (fixed costs cancel out).

    python benchmarks/vu_memory.py [N]        # default 5000; each size in a fresh process

perfbench states the figure in docs/reliability.md and bounds the users per run (shapes.MAX_USERS).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time

import psutil


def hanging_server() -> socket.socket:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(20_000)
    conns: list = []

    def accept() -> None:
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            conns.append(c)

    threading.Thread(target=accept, daemon=True).start()
    return srv


def one(n: int) -> int:
    """RSS growth (bytes) with ``n`` users waiting on a server that never answers."""
    from perfbench import shapes
    from perfbench.engine.closed_model import ClosedModelEngine
    from perfbench.engine.recorder import MemorySink, Recorder
    from perfbench.engine.senders import make_sender
    from perfbench.scenario import single

    srv = hanging_server()
    url = f"http://127.0.0.1:{srv.getsockname()[1]}"
    proc = psutil.Process()
    peak = [0]

    async def main() -> None:
        sender = make_sender(url, http_path="auto", max_connections=n, timeout=30.0, scenario=single("/"))
        await sender.start()
        base = proc.memory_info().rss
        plan = shapes.users(n, 6.0)
        engine = ClosedModelEngine(plan, single("/"), sender, Recorder(MemorySink()), grace=0.5)
        task = asyncio.ensure_future(engine.run())
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:  # sample while every user waits for its answer
            await asyncio.sleep(0.2)
            peak[0] = max(peak[0], proc.memory_info().rss - base)
        engine.stop("interrupted")
        await task
        await sender.close()

    import uvloop

    uvloop.run(main())
    srv.close()
    return peak[0]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    if len(sys.argv) > 2 and sys.argv[2] == "--one":
        print(one(n))
        return
    small = n // 5
    got = {}
    for size in (small, n):
        out = subprocess.run([sys.executable, __file__, str(size), "--one"], capture_output=True, text=True,
                             check=True)
        got[size] = int(out.stdout.strip().splitlines()[-1])
    per = (got[n] - got[small]) / (n - small)
    print(f"closed model, {small} -> {n} users waiting: RSS +{got[small] / 1e6:.1f} MB -> +{got[n] / 1e6:.1f} MB; "
          f"{per / 1024:.1f} KiB per virtual user")


if __name__ == "__main__":
    main()
