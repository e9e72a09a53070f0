"""Faults at the target (issue 9): the engine keeps its schedule, classifies each error by kind,
completes the run and writes a valid run directory, on every HTTP path it has."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import polars as pl
import pytest

from perfbench import shapes
from perfbench.analysis.results import Run
from perfbench.engine.senders import HTTP_PATHS
from perfbench.load import run_load
from perfbench.scenario import Request, Scenario

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class FaultServer:
    """A raw HTTP/1.1 server on 127.0.0.1:0 whose misbehaviour is chosen by the request path."""

    def __init__(self) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                if path == "/ok":
                    writer.write(OK)
                elif path == "/reset":
                    writer.transport.abort()  # RST, no response
                    return
                elif path == "/close-early":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                    await writer.drain()
                    writer.close()
                    return
                elif path == "/drip":  # headers, then a byte every 50 ms (longer than the timeout)
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                    for _ in range(100):
                        writer.write(b"x")
                        await writer.drain()
                        await asyncio.sleep(0.05)
                elif path == "/never":  # accepts, reads, never answers
                    await asyncio.sleep(30)
                    return
                elif path == "/malformed":
                    writer.write(b"HTTP/1.1 abc\r\nthis is not a header line\r\n\r\n")
                    await writer.drain()
                    writer.close()
                    return
                elif path.startswith("/big/"):
                    n = int(path.rsplit("/", 1)[1])
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
                    chunk = b"y" * 65536
                    left = n
                    while left:
                        writer.write(chunk[: min(left, len(chunk))])
                        left -= min(left, len(chunk))
                        await writer.drain()
                elif path == "/500":
                    writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 600)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture(scope="module")
def faults():
    with FaultServer() as server:
        yield server


def run(url, paths: dict[str, str], tmp_path, http_path, *, rate=40.0, duration=0.5, **kw):
    sc = Scenario([Request(name, "GET", p) for name, p in paths.items()])
    kw.setdefault("timeout", 0.3)
    res = run_load(url, shapes.constant(rate, duration), sc, runs_dir=tmp_path, progress=False, http_path=http_path,
                   **kw)
    return res, Run.load(res.path).requests.collect()


# "auto" sends these plain GETs through the lean path: the fast target (`make check`) runs the two
# paths themselves, the full suite all three
@pytest.fixture(params=[pytest.param(p, marks=pytest.mark.slow) if p == "auto" else p for p in HTTP_PATHS])
def http_path(request):
    return request.param


@pytest.mark.parametrize("path, kind", [
    ("/reset", "reset"),
    ("/close-early", "incomplete"),
    ("/drip", "timeout"),
    ("/never", "timeout"),
    ("/malformed", "protocol"),
    ("/500", "http_5xx"),
])
def test_each_fault_is_recorded_as_its_kind(faults, tmp_path, http_path, path, kind):
    res, df = run(faults.url, {"fault": path, "ok": "/ok"}, tmp_path, http_path)
    assert df.height == 20 and res.end_reason == "completed"  # the schedule was kept
    fault = df.filter(pl.col("endpoint") == "fault")
    assert fault["error"].to_list() == [kind] * fault.height, fault.select("error", "error_detail").head(3)
    ok = df.filter(pl.col("endpoint") == "ok")
    assert ok["error"].null_count() == ok.height  # good requests on the same target still succeed
    assert res.summary["endpoints"]["fault"]["errors_by_kind"] == {kind: fault.height}


def test_a_5xx_storm_keeps_the_schedule(faults, tmp_path, http_path):
    res, df = run(faults.url, {"storm": "/500"}, tmp_path, http_path, rate=200, duration=1)
    assert df.height == 200 and res.summary["overall"]["errors_by_kind"] == {"http_5xx": 200}
    assert (df["status"] == 503).all()


def test_large_bodies_are_counted_not_kept(faults, tmp_path, http_path):
    res, df = run(faults.url, {"big": "/big/8000000"}, tmp_path, http_path, rate=10, duration=0.5, timeout=20)
    assert df["error"].null_count() == 5 and (df["bytes"] == 8_000_000).all()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_target_killed_mid_run(tmp_path, http_path):
    """The target dies after a second: the requests before succeed, the ones after are connect
    errors (or resets for the ones in flight), and the run completes with every request recorded."""
    port_file = tmp_path / "port"
    target = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "..", "benchmarks", "target.py"),
                               str(port_file), "60"])
    try:
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.02)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        killed = []

        def progress(p):
            if p["elapsed_s"] >= 1.0 and not killed:
                os.kill(target.pid, signal.SIGKILL)
                killed.append(p["elapsed_s"])

        res = run_load(url, shapes.constant(50, 2.5), Scenario([Request("r", "GET", "/")]), runs_dir=tmp_path,
                       progress=progress, http_path=http_path, timeout=1)
    finally:
        if target.poll() is None:
            target.kill()
        target.wait(10)
    df = Run.load(res.path).requests.collect()
    assert killed and df.height == 125 and res.end_reason == "completed"
    kinds = set(df["error"].drop_nulls().to_list())
    assert df["error"].null_count() >= 30 and kinds and kinds <= {"connect", "reset", "incomplete"}, kinds


def test_response_checks_run_in_the_open_model_on_every_path(http_server, tmp_path, http_path):
    from perfbench.scenario import BodyContains, JsonField

    sc = Scenario([Request("good", "GET", "/", checks=(JsonField("ok", equals=True),)),
                   Request("bad", "GET", "/", checks=(JsonField("ok", equals=False),)),
                   Request("text", "GET", "/bytes/10", checks=(BodyContains("xxxxx"),)),
                   Request("missing", "GET", "/bytes/10", checks=(BodyContains("nope"),))])
    res = run_load(http_server.url, shapes.constant(80, 0.5), sc, runs_dir=tmp_path, progress=False,
                   http_path=http_path)
    eps = res.summary["endpoints"]
    assert eps["good"]["errors"] == 0 and eps["text"]["errors"] == 0
    assert eps["bad"]["errors_by_kind"] == {"check": eps["bad"]["count"]} and eps["bad"]["count"] > 0
    assert eps["missing"]["errors_by_kind"] == {"check": eps["missing"]["count"]}
    df = Run.load(res.path).requests.filter(pl.col("endpoint") == "bad").collect()
    assert set(df["error_detail"]) == {"JSON field ok is True, expected False"}
