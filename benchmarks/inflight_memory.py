"""Memory held per in-flight request, on each HTTP path: RSS growth with N requests in flight.

A local server (a thread in this process) accepts and reads every connection and never answers,
so N requests stay in flight on N keep-alive connections; the RSS delta over N (after 20 warm-up
requests) is what one in-flight request costs: its connection (transport, parser, buffers) and
its request state. The lean path is driven through the engine's callback interface, the aiohttp
path through ``request()`` (one task per request, as the engine runs it).

    python benchmarks/inflight_memory.py [N]      # default 5000; each path in a fresh process
"""

from __future__ import annotations

import asyncio
import gc
import socket
import subprocess
import sys
import threading

import psutil
import uvloop

from perfbench.engine.senders import make_sender


def hanging_server() -> tuple[socket.socket, list]:
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
    return srv, conns


async def until(cond) -> None:
    """Poll ``cond`` (the server thread's accept count), then let the writes settle."""
    for _ in range(6000):
        if cond():
            break
        await asyncio.sleep(0.01)  # noqa: ASYNC110 - the condition is set by another thread
    await asyncio.sleep(0.3)


async def measure(path: str, n: int) -> float:
    srv, conns = hanging_server()
    sender = make_sender(f"http://127.0.0.1:{srv.getsockname()[1]}", http_path=path, max_connections=n + 50,
                         timeout=120)
    await sender.start()
    proc = psutil.Process()
    tasks = [asyncio.ensure_future(sender.request("GET", "/x", {"X-Request-Id": str(i)}, None)) for i in range(20)]
    await until(lambda: len(conns) >= 20)
    gc.collect()
    before = proc.memory_info().rss
    if path == "lean":
        for i in range(n):
            sender.submit(b"GET /x HTTP/1.1\r\nHost: x\r\nX-Request-Id: %d\r\n\r\n" % i, (i, 0, 0, 0, 0),
                          lambda *a: None)
    else:
        tasks += [asyncio.ensure_future(sender.request("GET", "/x", {"X-Request-Id": str(i)}, None))
                  for i in range(n)]
    await until(lambda: len(conns) >= n + 20)
    gc.collect()
    grown = proc.memory_info().rss - before
    for t in tasks:
        t.cancel()
    await sender.close()
    srv.close()
    for c in conns:
        c.close()
    return grown / n


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    if len(sys.argv) > 2:  # one path, in this (fresh) process
        per = uvloop.run(measure(sys.argv[2], n))
        print(f"{sys.argv[2]:8s} {n} requests in flight: {per / 1024:.1f} KiB per in-flight request (RSS)")
        return
    for path in ("lean", "aiohttp"):  # each in its own interpreter: freed memory is not reused across
        subprocess.run([sys.executable, __file__, str(n), path], check=True)


if __name__ == "__main__":
    main()
