"""The agent's server-side timing of each request (perfbench.agent.timing), through its real middlewares:
wall time, a synchronous handler's CPU time, GC pauses, the event loop blocked during an asyncio request,
the bounded buffer, and the records the collector turns into server_requests.parquet."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import pytest

from perfbench.agent import Agent
from perfbench.agent.collector import SERVER_SCHEMA, server_requests_table
from perfbench.agent.timing import RequestTimings
from perfbench.errors import ConfigError


def _spin_cpu(ns: int) -> None:
    """Burn at least ``ns`` of this thread's CPU time (a CPU measure, not a wall-clock sleep)."""
    end = time.thread_time_ns() + ns
    while time.thread_time_ns() < end:
        pass


def _wsgi_call(app: Any, path: str, request_id: int) -> bytes:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "HTTP_X_REQUEST_ID": str(request_id),
               "REMOTE_ADDR": "127.0.0.1", "QUERY_STRING": ""}
    out = app(environ, lambda status, headers: None)
    try:
        return b"".join(out)
    finally:
        close = getattr(out, "close", None)
        if close is not None:
            close()


def _records(agent_or_body: Agent | dict[str, Any]) -> dict[int, dict[str, Any]]:
    body = agent_or_body.timings.drain() if isinstance(agent_or_body, Agent) else agent_or_body
    cols = body["columns"]
    return {rid: {k: cols[k][i] for k in cols} for i, rid in enumerate(cols["request_id"])}


def test_wsgi_wall_cpu_and_gc_per_request() -> None:
    def app(environ: dict, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        path = environ["PATH_INFO"]
        if path == "/cpu":
            _spin_cpu(20_000_000)
        elif path == "/sleep":
            time.sleep(0.03)
        elif path == "/gc":
            gc.collect()
        return [b"ok"]

    def streamed(environ: dict, start_response: Any):  # noqa: ANN202 - a generator: its work happens while iterated
        start_response("200 OK", [])
        yield b"a"
        _spin_cpu(10_000_000)
        yield b"b"

    agent = Agent(endpoints=False)
    wrapped, wrapped_stream = agent.wrap_wsgi(app), agent.wrap_wsgi(streamed)
    try:
        _wsgi_call(wrapped, "/cpu", 1)
        _wsgi_call(wrapped, "/sleep", 2)
        _wsgi_call(wrapped, "/gc", 3)
        assert _wsgi_call(wrapped_stream, "/stream", 4) == b"ab"
    finally:
        agent.uninstall()
    recs = _records(agent)
    assert set(recs) == {1, 2, 3, 4}
    assert all(r["mode"] == "sync" and r["lag_ns"] is None for r in recs.values())
    assert recs[1]["cpu_ns"] >= 20_000_000 and recs[1]["wall_ns"] >= recs[1]["cpu_ns"] * 0.9
    assert recs[2]["wall_ns"] >= 30_000_000 and recs[2]["cpu_ns"] < recs[2]["wall_ns"] / 2  # asleep, not on CPU
    assert recs[3]["gc_pauses"] >= 1 and recs[3]["gc_ns"] > 0
    assert recs[3]["gc_ns"] <= recs[3]["wall_ns"]
    assert recs[4]["cpu_ns"] >= 10_000_000  # the response iterated counts: the request ends at close()
    assert recs[1]["endpoint"] == "GET /cpu" and recs[1]["request_id_status"] == "ok"


def test_asgi_loop_blocked_during_a_request_is_attributed(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["path"] == "/block":
            time.sleep(0.05)  # noqa: ASYNC251 - on purpose: a synchronous call on the loop blocks every request
        else:
            await asyncio.sleep(0.05)  # waits without blocking
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    agent = Agent(endpoints=False)
    wrapped = agent.wrap_asgi(app)

    async def call(path: str, rid: int) -> None:
        scope = {"type": "http", "path": path, "method": "GET", "headers": [(b"x-request-id", str(rid).encode())]}

        async def receive() -> dict:
            return {"type": "http.request", "body": b""}

        async def send(message: dict) -> None:
            pass

        await wrapped(scope, receive, send)

    async def main() -> None:
        await call("/wait", 1)  # starts the loop's sampler
        await asyncio.gather(call("/wait", 2), call("/block", 3))  # 2 is in flight while 3 blocks the loop

    try:
        asyncio.run(main())
    finally:
        agent.uninstall()
    body = agent.timings.drain()
    recs = _records(body)
    # the block is kept too: it began before request 3 ended and lasted about as long as the sleep
    blocks = list(zip(body["blocks"]["start_ns"], body["blocks"]["duration_ns"], strict=True))
    assert any(d >= 39_000_000 and start < recs[3]["start_ns"] + recs[3]["wall_ns"] for start, d in blocks)
    assert all(r["mode"] == "asyncio" and r["cpu_ns"] is None for r in recs.values())
    # a 50 ms block is seen, less at most one sampling interval (10 ms) and the slack (1 ms)
    assert recs[3]["lag_ns"] >= 39_000_000 and recs[2]["lag_ns"] >= 39_000_000
    assert recs[3]["lag_ns"] <= recs[3]["wall_ns"]
    assert recs[1]["lag_ns"] < recs[3]["lag_ns"] / 2  # waiting without blocking is not lag
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # the sampler's callback never failed


def test_the_buffer_is_bounded_and_records_become_the_parquet_schema() -> None:
    agent = Agent(endpoints=False, capacity=2)

    def app(environ: dict, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = agent.wrap_wsgi(app)
    try:
        for rid in range(3):
            _wsgi_call(wrapped, "/x", rid)
        status = agent.status()
        assert status["request_timings"] == 2
        body = agent.timings.drain()
    finally:
        agent.uninstall()
    assert body["dropped"] == 1 and body["columns"]["request_id"] == [1, 2] and not body["more"]
    table = server_requests_table(body, shift_ns=body["columns"]["start_ns"][0])
    assert table.schema == SERVER_SCHEMA and table.column("t_ns").to_pylist()[0] == 0
    assert agent.timings.drain()["columns"]["request_id"] == []


def test_records_endpoint_drains_timings_with_the_sql() -> None:
    agent = Agent("t" * 20)

    def app(environ: dict, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = agent.wrap_wsgi(app)
    try:
        _wsgi_call(wrapped, "/x", 7)
        status, body = agent.handle("POST", "/_perfbench/records", {"limit": "10"}, "127.0.0.1", "t" * 20)
    finally:
        agent.uninstall()
    assert status == 200 and body["requests"]["columns"]["request_id"] == [7] and body["more"] is False


def test_bad_capacity_and_interval_are_refused() -> None:
    with pytest.raises(ConfigError, match="capacity"):
        RequestTimings(0)
    with pytest.raises(ConfigError, match="lag_interval_s"):
        RequestTimings(10, lag_interval_s=0)


def test_a_closed_loop_and_its_sampler_are_not_kept() -> None:
    agent = Agent(endpoints=False)

    async def once() -> None:
        agent.timings.finish(None, agent.timings.begin(asynchronous=True))

    try:
        for _ in range(3):
            asyncio.run(once())
        gc.collect()
        assert len(agent.timings._samplers) == 0  # each loop went with its sampler
    finally:
        agent.uninstall()
    assert agent.timings.drain()["columns"]["mode"] == ["asyncio"] * 3
