"""What a flow costs: the engine's CPU per request for the same three requests drawn independently,
run as a flow, and run as a flow that takes a value from every response by JSON path.

The open-model engine runs against the fake transport of ``hot_path.py`` (every write answered
with a canned JSON response from the event loop, in batches, as a saturated target's replies come),
on the lean path, recording every row into a journal on disk with live progress on. What is
measured is the CPU of the engine's ``run`` alone, divided by the requests sent:

- ``independent``: ``Scenario`` of requests a, b, c (equal weights): the lean callback hot path;
- ``flow``: a ``FlowScenario`` whose one flow sends a, b, c in order (``engine/flows_lean.py``: a
  state machine per arrival driven by the sender's callbacks; a row per step and one per flow);
- ``flow+extract``: the same flow, each step taking ``data.feed.pageInfo.endCursor`` from its
  response into the context, and b and c sending it back in their path.

    python benchmarks/flow_overhead.py [REQUESTS] [CONNECTIONS] [REPEAT]
    python benchmarks/flow_overhead.py --nginx RATE SECONDS [REPEAT]   # a real target, fixed rate

The variants run alternately, REPEAT rounds; the medians are printed, with the flow's overhead
over the independent requests, and the JSON extraction's cost per request.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from hot_path import FakeTransport

from perfbench import shapes
from perfbench.engine.flows import FlowOpenEngine
from perfbench.engine.lean import LeanSender, _Conn
from perfbench.engine.open_model import OpenModelEngine
from perfbench.engine.recorder import Recorder
from perfbench.rundir import Journal
from perfbench.scenario import Request, Scenario
from perfbench.scenario_flows import Extract, Flow, FlowScenario, Step

BODY = (b'{"data":{"feed":{"edges":[{"node":{"id":1,"title":"first post"}},{"node":{"id":2,"title":"second"}}],'
        b'"pageInfo":{"hasNextPage":true,"endCursor":"YXJyYXljb25uZWN0aW9uOjE="}}}}')
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 21 Nov 2026 11:00:00 GMT\r\n"
            b"Content-Type: application/json\r\nContent-Length: " + str(len(BODY)).encode()
            + b"\r\nConnection: keep-alive\r\n\r\n" + BODY)
PATH = "data.feed.pageInfo.endCursor"


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


def scenario(variant: str) -> Scenario:
    if variant == "independent":
        return Scenario([Request("a", "GET", "/a"), Request("b", "GET", "/b"), Request("c", "GET", "/c")])
    extract = variant == "flow+extract"
    take = [Extract("cursor", json=PATH)] if extract else []
    q = "?after={cursor}" if extract else ""
    return FlowScenario(flows=[Flow("abc", [Step(Request("a", "GET", "/a"), extract=take),
                                            Step(Request("b", "GET", "/b" + q), extract=take),
                                            Step(Request("c", "GET", "/c" + q), extract=take)])])


async def one_run(variant: str, requests: int, connections: int, runs_dir: Path) -> tuple[float, int]:
    loop = asyncio.get_running_loop()
    wire = Wire(loop)
    sender = LeanSender("http://127.0.0.1:9/", max_connections=connections)
    await sender.start()
    for _ in range(connections):  # connected already: the run never opens a socket
        conn = _Conn(sender)
        conn.transport = FakeTransport(conn, wire)  # type: ignore[arg-type]
        sender._conns.add(conn)
        sender._idle.append(conn)
    journal = Journal(runs_dir)
    recorder = Recorder(journal.write)
    plan = shapes.constant(shapes.MAX_RATE, 10)  # saturated from the start
    s = scenario(variant)
    flows = isinstance(s, FlowScenario)
    engine = (FlowOpenEngine if flows else OpenModelEngine)(
        plan, s, sender, recorder, max_in_flight=connections, max_requests=requests // 3 if flows else requests,
        grace=5, progress=lambda p: None)
    cpu = time.process_time()
    stats = await engine.run()
    cpu = time.process_time() - cpu
    journal.close()
    await sender.close()
    sent = stats.sent
    want_rows = sent + (requests // 3 if flows else 0)
    if sent != (requests // 3 * 3 if flows else requests) or recorder.rows != want_rows:
        raise SystemExit(f"{variant}: expected {requests} requests, sent {sent}, recorded {recorder.rows}")
    return cpu, sent


async def nginx_run(variant: str, url: str, rate: float, seconds: float, runs_dir: Path) -> tuple[float, int]:
    """The same variants against a real target (a private nginx on another core) at a fixed rate:
    the generator's CPU (user and kernel) per request, connections and TCP included."""
    sender = LeanSender(url, max_connections=50)
    await sender.start()
    journal = Journal(runs_dir)
    recorder = Recorder(journal.write)
    s = scenario(variant)
    flows = isinstance(s, FlowScenario)
    plan = shapes.constant(rate / 3 if flows else rate, seconds)
    engine = (FlowOpenEngine if flows else OpenModelEngine)(plan, s, sender, recorder, max_in_flight=50, grace=5,
                                                            progress=lambda p: None)
    cpu = time.process_time()
    stats = await engine.run()
    cpu = time.process_time() - cpu
    journal.close()
    await sender.close()
    return cpu, stats.sent


def main_nginx(rate: float, seconds: float, repeat: int) -> None:
    from nginx_server import NginxServer

    variants = ("independent", "flow", "flow+extract")
    per: dict[str, list[float]] = {v: [] for v in variants}
    with NginxServer(cpu=1, body=BODY) as url:
        for _ in range(repeat):
            for v in variants:
                with tempfile.TemporaryDirectory() as d, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    cpu, n = runner.run(nginx_run(v, url, rate, seconds, Path(d)))
                per[v].append(cpu / n * 1e9)
    _print(per, repeat, f"{rate:g} req/s for {seconds:g} s against nginx")


def _print(per: dict[str, list[float]], repeat: int, what: str) -> None:
    med = {v: statistics.median(x) for v, x in per.items()}
    for v, x in per.items():
        print(f"{v:>13}: {med[v]:.0f} ns of CPU per request (median of {repeat}; "
              f"each: {', '.join(f'{y:.0f}' for y in x)})")
    print(f"flow over independent: {100 * (med['flow'] / med['independent'] - 1):+.0f}%; "
          f"JSON path extraction (and the path filled with the value): {med['flow+extract'] - med['flow']:+.0f} ns "
          f"per request ({what})")


def main(argv: list[str]) -> None:
    if len(argv) > 1 and argv[1] == "--nginx":  # --nginx RATE SECONDS REPEAT
        main_nginx(float(argv[2]), float(argv[3]), int(argv[4]) if len(argv) > 4 else 3)
        return
    requests = int(argv[1]) if len(argv) > 1 else 60_000
    connections = int(argv[2]) if len(argv) > 2 else 50
    repeat = int(argv[3]) if len(argv) > 3 else 3
    variants = ("independent", "flow", "flow+extract")
    per: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(repeat):
        for v in variants:
            with tempfile.TemporaryDirectory() as d, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                cpu, n = runner.run(one_run(v, requests, connections, Path(d)))
            per[v].append(cpu / n * 1e9)
    _print(per, repeat, f"{requests} requests, {connections} connections, fake transport")


if __name__ == "__main__":
    main(sys.argv)
