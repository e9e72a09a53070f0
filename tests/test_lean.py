"""The lean HTTP/1.1 path beside the aiohttp path: same plans, same records, same error kinds.

Engine tests are parametrized over both paths; servers are real, on 127.0.0.1 port 0: the
shared aiohttp test app (conftest) and a raw asyncio server that misbehaves on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

import polars as pl
import pytest
from conftest import SEEN_IDS

from perfbench import shapes
from perfbench.analysis.results import Run
from perfbench.engine.clock import FakeClock
from perfbench.engine.lean import LeanSender, lean_refusal
from perfbench.engine.open_model import OpenModelEngine
from perfbench.engine.recorder import MemorySink, Recorder
from perfbench.engine.senders import AiohttpSender, AutoSender, make_sender
from perfbench.load import run_load
from perfbench.scenario import IntRange, Request, Scenario

PATHS = ("aiohttp", "lean")


def load(url, plan, scenario, runs_dir, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("announce", lambda s: None)
    return run_load(url, plan, scenario, runs_dir=runs_dir, **kw)


def frame(res) -> pl.DataFrame:
    return Run.load(res.path).requests.collect().sort("request_id")


# -- a raw server that misbehaves on purpose -----------------------------------------------------

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class _Raw(asyncio.Protocol):
    def __init__(self, server):
        self.server = server
        self.buf = b""

    def connection_made(self, transport):
        self.t = transport
        self.server.connections += 1

    def data_received(self, data):
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            path = head.split(b" ", 2)[1].decode()
            self.server.requests += 1
            self.respond(path)
            if self.t.is_closing():
                return

    def respond(self, path):
        t = self.t
        if path == "/close":  # a complete response, then the server closes the connection
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            t.close()
        elif path == "/reset":  # headers and part of the body, then a reset
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
            with contextlib.suppress(OSError):
                t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            t.abort()
        elif path == "/drop":  # no response at all
            t.close()
        elif path == "/chunked":
            t.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        elif path == "/eof":  # HTTP/1.0 style: the body ends when the connection does
            t.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"y" * 300)
            t.close()
        elif path == "/garbage":
            t.write(b"THIS IS NOT HTTP\r\n\r\n")
        else:
            t.write(OK)


class RawServer:
    def __init__(self):
        self.connections = 0
        self.requests = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self):
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        srv = await self._loop.create_server(lambda: _Raw(self), "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
        self._ready.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=600)
        srv.close()

    def start(self):
        self._thread.start()
        assert self._ready.wait(30)
        return self

    def stop(self):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def raw_server():
    s = RawServer().start()
    yield s
    s.stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- both paths, same records ----------------------------------------------------------------------

@pytest.mark.slow
def test_both_paths_record_the_same_plan_the_same_way(http_server, runs_dir):
    sc = Scenario([Request("root", "GET", "/", weight=3), Request("slow", "GET", "/delay/20"),
                   Request("bytes", "GET", "/bytes/1000"), Request("e404", "GET", "/status/404"),
                   Request("ok404", "GET", "/status/404", expect=(200, 404)),
                   Request("post", "POST", "/echo/{n}", json={"n": "{n}"}, vars={"n": IntRange(1, 9)})], seed=5)
    plan = shapes.constant(100, 1.5)
    frames = {p: frame(load(http_server.url, plan, sc, runs_dir / p, http_path=p)) for p in PATHS}
    a, b = frames["aiohttp"], frames["lean"]
    cols = ["request_id", "endpoint", "method", "intended_ns", "status", "error", "stage"]
    assert a.select(cols).equals(b.select(cols))
    # the echo's body holds the request headers (User-Agent differs), every other body is the same
    not_echo = pl.col("endpoint") != "post"
    assert a.filter(not_echo)["bytes"].equals(b.filter(not_echo)["bytes"])
    for df in (a, b):
        assert df.height == 150
        assert (df["latency_ns"] == df["end_ns"] - df["intended_ns"]).all()
        assert (df["service_ns"] == df["end_ns"] - df["start_ns"]).all()
        assert (df["start_ns"] >= df["intended_ns"]).all()
        assert df.filter(pl.col("endpoint") == "slow")["service_ns"].min() >= 20_000_000


@pytest.mark.parametrize("path", PATHS)
def test_the_run_says_which_path_ran(http_server, runs_dir, path):
    res = load(http_server.url, shapes.constant(20, 0.5), Scenario([Request("r", "GET", "/")]), runs_dir,
               http_path=path)
    meta = Run.load(res.path).meta
    assert meta["engine"]["path"] == path and meta["engine_stats"]["path"] == path


@pytest.mark.parametrize("path", PATHS)
def test_request_id_header_reaches_the_server(http_server, runs_dir, path):
    seen = http_server.app[SEEN_IDS]
    before = len(seen)
    res = load(http_server.url, shapes.constant(50, 0.4), Scenario([Request("root", "GET", "/")]), runs_dir,
               http_path=path)
    ids = frame(res)["request_id"].to_list()
    assert sorted(int(x) for x in seen[before:]) == ids


@pytest.mark.parametrize("path", PATHS)
def test_keep_alive_connections_are_reused(raw_server, runs_dir, path):
    c0, r0 = raw_server.connections, raw_server.requests
    res = load(raw_server.url, shapes.constant(100, 1), Scenario([Request("r", "GET", "/")]), runs_dir,
               http_path=path, max_in_flight=5)
    assert res.summary["overall"]["errors"] == 0 and raw_server.requests - r0 == 100
    assert raw_server.connections - c0 <= 5


@pytest.mark.parametrize("path", PATHS)
def test_connection_close_by_the_server_is_not_an_error(raw_server, runs_dir, path):
    c0 = raw_server.connections
    res = load(raw_server.url, shapes.constant(40, 0.5), Scenario([Request("c", "GET", "/close")]), runs_dir,
               http_path=path, max_in_flight=3)
    df = frame(res)
    assert df["status"].to_list() == [200] * 20 and df["error"].null_count() == 20
    assert df["bytes"].to_list() == [2] * 20
    assert raw_server.connections - c0 == 20  # a new connection for each


@pytest.mark.parametrize("path", PATHS)
def test_reset_mid_body_is_incomplete_and_no_response_is_a_reset(raw_server, runs_dir, path):
    sc = Scenario([Request("reset", "GET", "/reset"), Request("drop", "GET", "/drop")])
    res = load(raw_server.url, shapes.constant(40, 0.5), sc, runs_dir, http_path=path)
    df = frame(res)
    assert df.height == 20
    cut, drop = (df.filter(pl.col("endpoint") == e) for e in ("reset", "drop"))
    assert set(drop["error"]) == {"reset"} and drop["status"].null_count() == drop.height
    # headers and 10 of 1000 bytes, then a reset: the status and the bytes read are kept
    assert set(cut["error"]) == {"incomplete"} and set(cut["status"]) == {200} and set(cut["bytes"]) == {10}
    assert set(cut["error_detail"]) == {"connection reset after 10 of 1000 body bytes"}
    # a server that stays up after such errors keeps being used: the connections were replaced
    ok = load(raw_server.url, shapes.constant(40, 0.25), Scenario([Request("r", "GET", "/")]), runs_dir,
              http_path=path)
    assert ok.summary["overall"]["errors"] == 0


@pytest.mark.parametrize("path", PATHS)
def test_chunked_and_eof_delimited_bodies(raw_server, runs_dir, path):
    sc = Scenario([Request("chunked", "GET", "/chunked"), Request("eof", "GET", "/eof")])
    df = frame(load(raw_server.url, shapes.constant(40, 0.5), sc, runs_dir, http_path=path))
    assert df["error"].null_count() == 20
    sizes = dict(df.group_by("endpoint").agg(pl.col("bytes").unique().first()).iter_rows())
    counts = df.group_by("endpoint").agg(pl.col("bytes").n_unique())["bytes"].to_list()
    assert counts == [1, 1] and sizes == {"chunked": 11, "eof": 300}


@pytest.mark.parametrize("path", PATHS)
def test_garbage_is_a_protocol_error(raw_server, runs_dir, path):
    df = frame(load(raw_server.url, shapes.constant(20, 0.5), Scenario([Request("g", "GET", "/garbage")]),
                    runs_dir, http_path=path))
    assert df["error"].to_list() == ["protocol"] * 10


@pytest.mark.parametrize("path", PATHS)
def test_timeouts_are_recorded_as_timeouts(http_server, runs_dir, path):
    res = load(http_server.url, shapes.constant(20, 0.5), Scenario([Request("slow", "GET", "/delay/3000")]),
               runs_dir, timeout=0.2, http_path=path)
    assert res.summary["overall"]["errors_by_kind"] == {"timeout": 10}
    assert set(frame(res)["error_detail"]) == {"total timeout while waiting for the response"}


@pytest.mark.parametrize("path", PATHS)
def test_refused_connections_are_recorded_not_fatal(runs_dir, path):
    res = load(f"http://127.0.0.1:{_closed_port()}", shapes.constant(40, 0.5), Scenario([Request("r", "GET", "/")]),
               runs_dir, http_path=path)
    assert res.summary["overall"]["errors_by_kind"] == {"connect": 20}
    assert set(frame(res)["error_detail"]) == {"ConnectionRefusedError"}


@pytest.mark.parametrize("path", PATHS)
def test_a_500_storm_is_recorded_request_by_request(http_server, runs_dir, path):
    res = load(http_server.url, shapes.constant(400, 1), Scenario([Request("e", "GET", "/status/500")]), runs_dir,
               http_path=path)
    df = frame(res)
    assert df.height == 400 and df["status"].to_list() == [500] * 400
    assert res.summary["overall"]["errors_by_kind"] == {"http_5xx": 400}


@pytest.mark.parametrize("path", PATHS)
def test_large_bodies_are_counted_in_full(http_server, runs_dir, path):
    df = frame(load(http_server.url, shapes.constant(10, 0.5), Scenario([Request("big", "GET", "/bytes/3000000")]),
                    runs_dir, http_path=path))
    assert df["bytes"].to_list() == [3_000_000] * 5 and df["error"].null_count() == 5


@pytest.mark.parametrize("path", PATHS)
def test_in_flight_cap_is_visible_and_latency_counts_the_wait(http_server, runs_dir, path):
    res = load(http_server.url, shapes.constant(40, 0.5), Scenario([Request("slow", "GET", "/delay/100")]), runs_dir,
               max_in_flight=2, http_path=path)
    g = res.summary["generator"]
    assert g["capped"] > 0 and g["saturated"] and g["max_in_flight_seen"] == 2
    df = frame(res)
    assert df.height == 20 and df["error"].null_count() == 20
    assert (df["latency_ns"] - df["service_ns"]).max() > 100_000_000


@pytest.mark.parametrize("path", PATHS)
def test_every_planned_request_is_recorded_when_the_run_is_cut_off(http_server, runs_dir, path):
    sc = Scenario([Request("slow", "GET", "/delay/300")])
    res = load(http_server.url, shapes.constant(200, 0.5), sc, runs_dir, max_in_flight=5, grace=0.1, http_path=path)
    df = frame(res)
    g = res.summary["generator"]
    assert df.height == g["sent"] and df["request_id"].n_unique() == df.height
    assert g["planned"] == 100 == df.height + g["unsent"] and g["unsent"] >= 80
    aborted = df.filter(pl.col("error") == "aborted")
    assert g["aborted"] == aborted.height and aborted["status"].null_count() == aborted.height


@pytest.mark.parametrize("path", PATHS)
def test_budget_and_templated_json_bodies(http_server, runs_dir, path):
    sc = Scenario([Request("post", "POST", "/echo/{n}", json={"n": "{n}", "who": "user-{n}"},
                           vars={"n": IntRange(1, 9)})], seed=3)
    res = load(http_server.url, shapes.constant(40, 1), sc, runs_dir, max_requests=15, http_path=path)
    assert res.end_reason == "budget" and res.summary["overall"]["count"] == 15
    assert res.summary["overall"]["errors"] == 0


# -- auto -----------------------------------------------------------------------------------------

def test_auto_runs_lean_for_plain_gets_and_aiohttp_for_what_lean_leaves(http_server, runs_dir):
    res = load(http_server.url, shapes.constant(20, 0.5), Scenario([Request("r", "GET", "/")]), runs_dir / "a",
               http_path="auto")
    assert Run.load(res.path).meta["engine_stats"]["path"] == "lean"
    assert res.summary["overall"]["errors"] == 0
    sc = Scenario([Request("r", "GET", "/"), Request("h", "HEAD", "/")])
    res = load(http_server.url, shapes.constant(20, 0.5), sc, runs_dir / "b", http_path="auto")
    assert Run.load(res.path).meta["engine_stats"]["path"] == "aiohttp"
    assert res.summary["overall"]["errors"] == 0


def test_auto_decides_on_the_target_and_every_request():
    get = Scenario([Request("r", "GET", "/")])
    assert make_sender("http://127.0.0.1:1", http_path="auto", scenario=get).name == "lean"
    assert make_sender("https://127.0.0.1:1", http_path="auto", scenario=get).name == "lean"  # TLS: lean too
    big = Scenario([Request("b", "POST", "/", json={"x": "y" * 100_000})])
    assert make_sender("http://127.0.0.1:1", http_path="auto", scenario=big).name == "aiohttp"
    gz = Scenario([Request("r", "GET", "/")], headers={"Accept-Encoding": "gzip"})
    assert make_sender("http://127.0.0.1:1", http_path="auto", scenario=gz).name == "lean"  # it decodes gzip
    assert isinstance(make_sender("http://127.0.0.1:1", http_path="auto"), AutoSender)
    assert lean_refusal("http://u:p@127.0.0.1:1") is not None
    small_post = Scenario([Request("p", "POST", "/", json={"a": 1})])
    assert make_sender("http://127.0.0.1:1", http_path="auto", scenario=small_post).name == "lean"
    with pytest.raises(Exception, match="http:// and https://"):
        make_sender("ftp://127.0.0.1:1", http_path="lean")
    assert lean_refusal("ftp://127.0.0.1:1") is not None


# -- TLS ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PATHS)
def test_https_targets_give_the_same_records_on_both_paths(tls_server, runs_dir, monkeypatch, path):
    server, ca_file = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # trust the test CA (both paths read it when they start)
    sc = Scenario([Request("r", "GET", "/"), Request("b", "GET", "/bytes/5000")])
    res = load(server.url, shapes.constant(50, 0.4), sc, runs_dir, http_path=path)
    assert Run.load(res.path).meta["engine_stats"]["path"] == path
    df = frame(res)
    assert df.height == 20 and df["error"].null_count() == 20 and set(df["status"]) == {200}
    assert set(df.filter(pl.col("endpoint") == "b")["bytes"]) == {5000}
    assert set(df.filter(pl.col("endpoint") == "r")["bytes"]) == {len(b'{"ok": true}')}


def test_auto_sends_https_on_the_lean_path(tls_server, runs_dir, monkeypatch):
    server, ca_file = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    res = load(server.url, shapes.constant(20, 0.3), Scenario([Request("r", "GET", "/")]), runs_dir)
    assert Run.load(res.path).meta["engine_stats"]["path"] == "lean"
    assert res.summary["overall"]["errors"] == 0


@pytest.mark.parametrize("path", PATHS)
def test_an_untrusted_certificate_is_a_tls_error_on_both_paths(tls_server, runs_dir, monkeypatch, path):
    server, _ = tls_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    res = load(server.url, shapes.constant(20, 0.2), Scenario([Request("r", "GET", "/")]), runs_dir, http_path=path)
    assert res.summary["overall"]["errors_by_kind"] == {"tls": 4}
    assert all("Cert" in d for d in frame(res)["error_detail"])  # SSLCertVerificationError, ClientConnectorCertificateError


# -- the lean sender on its own ----------------------------------------------------------------------

def test_lean_request_api_reuses_one_connection_and_keeps_bodies(http_server):
    async def main():
        s = LeanSender(http_server.url, max_connections=4, timeout=5)
        await s.start()
        try:
            for _ in range(20):
                assert (await s.request("GET", "/", {}, None))[:2] == (200, 12)
            status, n, body, error, *_ = await s.request("POST", "/echo/x?a=1", {"Content-Type": "application/json"},
                                                        b'{"k":1}', keep_body=True)
            assert error is None
            return s.opened, status, n, body
        finally:
            await s.close()

    opened, status, n, body = asyncio.run(main())
    assert opened == 1 and status == 200 and n == len(body)
    assert b'"body": "{\\"k\\":1}"' in body and b'"path": "/echo/x?a=1"' in body


def test_lean_paths_match_aiohttps_request_target(http_server):
    async def main():
        out = []
        for cls in (AiohttpSender, LeanSender):
            s = cls(http_server.url, timeout=5)
            await s.start()
            try:
                for p in ("/echo/a b", "/echo/caf\u00e9?q=x y", "/echo/./x/../y", "/echo/%41"):
                    out.append((cls.__name__, p, (await s.request("GET", p, {}, None, keep_body=True))[2]))
            finally:
                await s.close()
        return out

    import json

    res = asyncio.run(main())
    paths = {}
    for name, p, body in res:
        paths.setdefault(p, {})[name] = json.loads(body)["path"]
    for p, by in paths.items():
        assert by["AiohttpSender"] == by["LeanSender"], p


@pytest.mark.parametrize("cls", [AiohttpSender, LeanSender])
def test_request_returns_failures_as_outcomes_of_their_kind(raw_server, cls):
    async def main():
        out = []
        for url in (f"http://127.0.0.1:{_closed_port()}", raw_server.url):
            s = cls(url, timeout=5)
            await s.start()
            try:
                for p in ("/", "/reset", "/drop", "/garbage"):
                    out.append((await s.request("GET", p, {}, None))[3:5])
            finally:
                await s.close()
        return out

    kinds = asyncio.run(main())
    assert [k for k, _ in kinds[:4]] == ["connect"] * 4 and kinds[0][1] == "ConnectionRefusedError"
    assert [k for k, _ in kinds[4:]] == [None, "incomplete", "reset", "protocol"]
    assert kinds[6] == ("reset", "ServerDisconnectedError")


@pytest.mark.parametrize("path", PATHS)
def test_the_closed_model_records_the_same_kinds_on_both_paths(runs_dir, path):
    res = load(f"http://127.0.0.1:{_closed_port()}", shapes.users(2, 0.2, think=shapes.Constant(0.05)),
               Scenario([Request("r", "GET", "/")]), runs_dir, http_path=path)
    df = frame(res)
    assert df.height > 2 and set(df["error"]) == {"connect"}
    assert set(df["error_detail"]) == {"ConnectionRefusedError"}


class CallbackSender:
    """The callback interface on a fake clock: answers every request on the next loop turn."""

    name = "fake-lean"

    def __init__(self):
        self.sent = []

    def template(self, method, headers, id_header="X-Request-Id"):
        from perfbench.engine.lean import LeanTemplate

        return LeanTemplate(method, b"", id_header)

    def raw_path(self, path):
        return path.encode()

    def kind(self, spec):
        return spec

    def submit(self, data, job, done, kind, sent):
        self.sent.append(data)
        asyncio.get_running_loop().call_soon(done, job, 200, 2, 2, None, None, None, -1, -1)

    def abort_all(self, error="aborted", detail=""):
        return 0


def test_callback_engine_on_a_fake_clock_sends_every_arrival_at_its_time():
    clock = FakeClock()
    sink = MemorySink()
    plan = shapes.ramp(0, 200, 2)
    sender = CallbackSender()
    eng = OpenModelEngine(plan, Scenario([Request("a", "GET", "/a"), Request("b", "GET", "/b")]), sender,
                          Recorder(sink), clock=clock)
    stats = asyncio.run(eng.run())
    t = sink.table().to_pydict()
    assert stats.planned == stats.completed == 200 == len(sender.sent)
    assert t["intended_ns"] == [a.offset_ns for a in plan.arrivals()]
    lags = [s - i for s, i in zip(t["start_ns"], t["intended_ns"], strict=True)]
    assert min(lags) >= 0 and max(lags) <= 1_000_000
    assert all(d.startswith((b"GET /a ", b"GET /b ")) and b"X-Request-Id: " in d for d in sender.sent)


def test_arrival_tuples_are_the_arrivals():
    plans = [shapes.constant(80_000, 0.5), shapes.ramp(3, 777, 13.3, poisson=True, seed=4),
             shapes.stages([(2, 100), (3, 50, 900), (1.7, 0)], ramp_up=2.5),
             shapes.spike(10, 300, before=1, during=2, after=3, poisson=True, seed=9), shapes.constant(2.5, 3.3)]
    for plan in plans:
        assert list(plan.arrival_tuples()) == [(a.index, a.offset_ns, a.stage) for a in plan.arrivals()]


def test_callback_engine_counts_arrivals_queued_behind_the_cap():
    clock = FakeClock()
    sink = MemorySink()
    plan = shapes.constant(10_000, 0.001)  # ten arrivals: one at 0, nine more before the next 1 ms tick
    sender = CallbackSender()
    eng = OpenModelEngine(plan, Scenario([Request("a", "GET", "/a")]), sender, Recorder(sink), clock=clock,
                          max_in_flight=1)
    stats = asyncio.run(eng.run())
    t = sink.table().to_pydict()
    # the first is sent at 0 and answered at once; on the next tick nine are due: one is sent and
    # eight wait for the slot, each sent as the one before it completes
    assert (stats.planned, stats.capped, stats.completed, stats.max_in_flight_seen) == (10, 8, 10, 1)
    assert t["intended_ns"] == [a.offset_ns for a in plan.arrivals()]
    assert t["error"] == [None] * 10


class BatchSender(CallbackSender):
    """Holds every request; ``answer_all`` answers them all in one loop callback, as one read of
    the event loop handles the responses that arrived together. Logs sends and answers in order."""

    def __init__(self):
        super().__init__()
        self.pending, self.log = [], []

    def submit(self, data, job, done, kind, sent):
        self.sent.append(data)
        self.log.append("send")
        self.pending.append((job, done))

    def answer_all(self):
        pending, self.pending = self.pending, []
        for job, done in pending:
            self.log.append("answer")
            done(job, 200, 2, 2, None, None, None, -1, -1)

    def abort_all(self, error="aborted", detail=""):
        pending, self.pending = self.pending, []
        for job, done in pending:
            done(job, None, 0, 0, None, error, detail, -2, -2)
        return len(pending)


def test_a_saturated_run_sends_after_each_batch_of_responses_all_together():
    clock, sink, sender = FakeClock(), MemorySink(), BatchSender()
    plan = shapes.constant(10_000, 0.01)  # 100 arrivals, far more than 4 slots can take at once
    eng = OpenModelEngine(plan, Scenario([Request("a", "GET", "/a")]), sender, Recorder(sink), clock=clock,
                          max_in_flight=4, grace=1)

    async def main():
        run = asyncio.ensure_future(eng.run())
        while not run.done():
            await asyncio.sleep(0)
            if len(sender.pending) == 4:
                sender.answer_all()  # four responses in one callback
        return await run

    stats = asyncio.run(main())
    # no request is sent while a batch of responses is being handled: the freed slots are filled
    # after it, the four sends back to back
    runs = "".join("s" if e == "send" else "a" for e in sender.log)
    assert "asa" not in runs and "aaaassss" in runs
    # (the fake clock runs ahead while the loop turns, so the run ends with arrivals still due:
    # they are counted as never sent)
    assert (stats.planned, stats.max_in_flight_seen) == (100, 4) and stats.completed >= 8
    assert stats.completed + stats.aborted + stats.unsent == 100
    t = sink.table().to_pydict()
    assert sorted(t["request_id"]) == list(range(stats.sent))
    assert t["error"].count(None) == stats.completed
    # the wait for a slot is send lag, never service time: a start is read when its request goes out
    assert all(s >= i for s, i in zip(t["start_ns"], t["intended_ns"], strict=True))
    assert stats.capped > 0


class HangingSender(CallbackSender):
    """Never answers; ``abort_all`` ends what is in flight (as the lean sender does)."""

    def __init__(self):
        super().__init__()
        self.pending = []

    def submit(self, data, job, done, kind, sent):
        self.sent.append(data)
        self.pending.append((job, done))

    def abort_all(self, error="aborted", detail=""):
        pending, self.pending = self.pending, []
        for job, done in pending:
            done(job, None, 0, 0, None, error, detail, -2, -2)
        return len(pending)


class CountingPlan:
    """An OpenPlan that counts the arrivals the engine has taken from it."""

    model = "open"

    def __init__(self, plan):
        self.plan, self.taken = plan, 0
        self.duration, self.rate_at, self.describe = plan.duration, plan.rate_at, plan.describe
        self.stages, self.poisson, self.expected_requests = plan.stages, plan.poisson, plan.expected_requests
        self.count_due = plan.count_due

    def arrival_tuples(self):
        for a in self.plan.arrival_tuples():
            self.taken += 1
            yield a


def test_a_saturated_run_holds_no_backlog_and_counts_every_due_arrival():
    clock, sink, sender = FakeClock(), MemorySink(), HangingSender()
    plan = CountingPlan(shapes.constant(1000, 2))  # 2,000 arrivals; the server never answers
    taken_during = []
    eng = OpenModelEngine(plan, Scenario([Request("a", "GET", "/a")]), sender, Recorder(sink, flush_rows=256),
                          clock=clock, max_in_flight=5, grace=0.5,
                          progress=lambda p: taken_during.append((plan.taken, p["waiting"])), progress_every=0.25)
    stats = asyncio.run(eng.run())
    # while saturated, the plan was read only as far as the in-flight requests and the next arrival
    assert taken_during and max(t for t, _ in taken_during[:-1]) <= 5 + 1
    assert max(w for _, w in taken_during) > 1000  # yet progress shows the backlog (an estimate)
    # every due arrival is accounted for: 5 sent and aborted in flight (rows), the rest never sent,
    # counted (capped), without being generated or written one by one
    t = sink.table().to_pydict()
    assert (stats.planned, stats.sent, stats.aborted, stats.unsent, stats.capped, stats.completed) == \
        (2000, 5, 5, 1995, 1995, 0)
    assert stats.unsent_by_stage == {0: 1995} and plan.taken <= 5 + 1
    assert sorted(t["request_id"]) == list(range(5)) and set(t["error"]) == {"aborted"}


def test_the_tick_aligns_to_evenly_spaced_arrivals():
    def period(plan, stage=0):
        eng = OpenModelEngine(plan, Scenario([Request("a", "GET", "/a")]), CallbackSender(), Recorder(MemorySink()))
        return eng._aligned_period(stage, 50_000_000)

    assert period(shapes.constant(2000, 1)) == 1_000_000  # two arrivals a tick: lags 0.5 ms and ~0
    assert period(shapes.constant(100_000, 1)) == 800_000  # 80 arrivals a tick
    assert period(shapes.constant(1250, 1)) == 800_000  # exactly one tick's worth
    assert period(shapes.constant(100, 1)) == 10_000_000  # one tick per arrival, no re-arming
    assert period(shapes.constant(10, 1)) is None  # 100 ms apart: wait with one-shot timers (stop requests)
    assert period(shapes.ramp(10, 2000, 1)) is None  # not evenly spaced
    assert period(shapes.constant(2000, 1, poisson=True)) is None
    assert period(shapes.stages([(1, 0, 0), (1, 3000, 3000)]), 1) == round(3 / 3000 * 1e9)  # 3 a tick
    assert period(shapes.stages([(1, 0, 0), (1, 3000, 3000)]), 0) is None  # a pause
