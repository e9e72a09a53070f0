"""How late a timeout fires: requests to a server that never answers, on both HTTP paths.

    python benchmarks/timeout_silent.py [RATE] [DURATION] [TIMEOUT]   # default 50 req/s, 4 s, 0.3 s

A local server accepts and reads every request and never answers; every request times out. What
is printed, per path, is how long after its deadline each request was ended (its service time
minus the timeout): p50, p99 and max, in ms. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading

import polars as pl

from perfbench import shapes
from perfbench.analysis.results import Run
from perfbench.load import run_load
from perfbench.scenario import Request, Scenario


def silent_server() -> tuple[str, threading.Event]:
    ready, stop = threading.Event(), threading.Event()
    url: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(65536):
                pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url.append(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        ready.set()
        await asyncio.to_thread(stop.wait, 600)
        server.close()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    ready.wait(10)
    return url[0], stop


def main(argv: list[str]) -> None:
    rate = float(argv[1]) if len(argv) > 1 else 50.0
    duration = float(argv[2]) if len(argv) > 2 else 4.0
    timeout = float(argv[3]) if len(argv) > 3 else 0.3
    url, stop = silent_server()
    try:
        for path in ("lean", "aiohttp"):
            with tempfile.TemporaryDirectory() as d:
                res = run_load(url, shapes.constant(rate, duration), Scenario([Request("r", "GET", "/")]),
                               runs_dir=d, progress=False, announce=lambda s: None, http_path=path, timeout=timeout)
                df = Run.load(res.path).requests.collect()
            late = (df["service_ns"] - round(timeout * 1e9)) / 1e6
            kinds = df["error"].value_counts().to_dicts()
            print(f"{path:8s} {df.height} requests {kinds}: ended after the deadline by p50 "
                  f"{late.quantile(0.5):.2f} ms, p99 {late.quantile(0.99):.2f} ms, max {late.max():.2f} ms, "
                  f"min {late.min():.2f} ms")
            assert isinstance(late, pl.Series)
    finally:
        stop.set()


if __name__ == "__main__":
    main(sys.argv)
