"""The lean path's own CPU per request, without the kernel: the engine against a fake transport.

Why: against nginx, ~60% of the generator's CPU is the kernel's TCP work for one write and one
read per request (the same per request as wrk's), and the machine is noisy, so a change to the
Python hot path of a few percent is hard to see there. Here the whole open-model engine runs as
it does in a real run (scenario, open-model scheduling, every column recorded into a journal on
disk, live progress on), but each connection's transport is a fake that answers every write
with a canned response, delivered in batches from the event loop as a saturated target's
replies arrive. What is measured is the CPU of ``OpenModelEngine.run`` alone, per request.

    python benchmarks/hot_path.py [REQUESTS] [CONNECTIONS] [REPEAT] [MAX_LATENCY_MS]  # ns of CPU per request
    valgrind --tool=callgrind python benchmarks/hot_path.py 50000 50 1  # instructions, repeatable

Compare two versions in the same session, alternating (the figures drift with the machine).
``MAX_LATENCY_MS`` gives the request a ``max_latency`` (the recorder then checks every row against it:
a large value, no row is slow; a tiny one, every row is).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from perfbench import shapes
from perfbench.engine.lean import LeanSender, _Conn
from perfbench.engine.open_model import OpenModelEngine
from perfbench.engine.recorder import Recorder
from perfbench.rundir import Journal
from perfbench.scenario import Request, Scenario

RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 21 Nov 2026 11:00:00 GMT\r\n"
            b"Content-Type: application/json\r\nContent-Length: 11\r\nConnection: keep-alive\r\n\r\n"
            b'{"ok":true}')


class FakeTransport:
    """Takes a request and has its connection answered on the loop's next round, in a batch."""

    def __init__(self, conn: _Conn, wire: Wire):
        self.conn, self.wire = conn, wire
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += 1
        self.wire.pending.append(self.conn)
        if not self.wire.scheduled:
            self.wire.scheduled = True
            self.wire.loop.call_soon(self.wire.deliver)

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


class Wire:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.pending: list[_Conn] = []
        self.scheduled = False

    def deliver(self) -> None:
        self.scheduled = False
        batch, self.pending = self.pending, []
        for conn in batch:
            conn.data_received(RESPONSE)


async def one_run(requests: int, connections: int, runs_dir: Path, max_latency_ms: float | None = None
                  ) -> tuple[float, int]:
    loop = asyncio.get_running_loop()
    wire = Wire(loop)
    sender = LeanSender("http://127.0.0.1:9/", max_connections=connections)
    await sender.start()
    for _ in range(connections):  # connected already: the run never opens a socket
        conn = _Conn(sender)
        conn.transport = FakeTransport(conn, wire)
        sender._conns.add(conn)
        sender._idle.append(conn)
    journal = Journal(runs_dir)
    recorder = Recorder(journal.write, max_latency={"get": round(max_latency_ms * 1e6)} if max_latency_ms else None)
    # the highest rate a plan may ask for, far above what one core can send: the run is saturated
    # from the start, as against nginx
    plan = shapes.constant(shapes.MAX_RATE, 10)
    engine = OpenModelEngine(plan, Scenario([Request("get", "GET", "/")]), sender, recorder,
                             max_in_flight=connections, max_requests=requests, grace=5, progress=lambda p: None)
    cpu = time.process_time()
    stats = await engine.run()
    cpu = time.process_time() - cpu
    journal.close()
    await sender.close()
    if stats.completed != requests or recorder.rows != requests:
        raise SystemExit(f"expected {requests} requests, completed {stats.completed}, recorded {recorder.rows}")
    return cpu, stats.completed


def main(argv: list[str]) -> None:
    requests = int(argv[1]) if len(argv) > 1 else 300_000
    connections = int(argv[2]) if len(argv) > 2 else 50
    repeat = int(argv[3]) if len(argv) > 3 else 5
    max_latency_ms = float(argv[4]) if len(argv) > 4 else None
    per_request = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as d, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            cpu, n = runner.run(one_run(requests, connections, Path(d), max_latency_ms))
        per_request.append(cpu / n * 1e9)
    print(f"{statistics.median(per_request):.0f} ns of CPU per request (median of {repeat}; "
          f"each: {', '.join(f'{x:.0f}' for x in per_request)}; {requests} requests, {connections} connections"
          f"{f', max_latency {max_latency_ms:g} ms' if max_latency_ms else ''})")


if __name__ == "__main__":
    main(sys.argv)
