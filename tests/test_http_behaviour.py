"""How both HTTP paths read responses from servers that behave in every way a real one can.

A raw asyncio server on 127.0.0.1 (port 0) answers by path: statuses, gzip and deflate bodies,
chunked bodies, slow drips, stalls before the head and mid-body, bodies cut short, endless bodies
and heads, huge chunks, zip bombs, corrupt gzip. Every behaviour is run through a real load run on
the lean path and on the aiohttp path, and the rows must agree field by field.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import socket
import threading
import time
import zlib

import polars as pl
import psutil
import pytest

from perfbench import shapes
from perfbench.analysis.results import Run
from perfbench.engine.reading import DEFAULT_MAX_BODY, MAX_HEAD
from perfbench.engine.senders import make_sender
from perfbench.load import run_load
from perfbench.scenario import BodyContains, Request, Scenario, Timeout

PATHS = ("lean", "aiohttp")
TEXT = b'{"items": [' + b", ".join(b'{"id": %d, "name": "item %d"}' % (i, i) for i in range(200)) + b"]}"
GZ = gzip.compress(TEXT)
DEFLATE = zlib.compress(TEXT)
_raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
RAW_DEFLATE = _raw.compress(TEXT) + _raw.flush()
BOMB = zlib.compress(b"\0" * (64 * 1024 * 1024), 9)  # ~64 KiB that decode to 64 MiB (zlib: "deflate")
SERVER_LIFE = 60.0  # an endless behaviour stops by itself after this long


def _head(status: int = 200, **headers: str | int) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


class Hostile:
    """The server; the request path picks the behaviour (see ``_answer``)."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.url = ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                if not await self._answer(path, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(self, path: str, w: asyncio.StreamWriter) -> bool:
        """Answer one request; False to end the connection."""
        if path.startswith("/status/"):
            w.write(_head(int(path.rsplit("/", 1)[1]), Content_Length=2) + b"ok")
        elif path == "/gzip":
            w.write(_head(Content_Encoding="gzip", Content_Length=len(GZ)) + GZ)
        elif path == "/gzip-chunked":
            w.write(_head(Content_Encoding="GZIP", Transfer_Encoding="chunked") + _chunked(GZ[:100], GZ[100:]))
        elif path == "/deflate":
            w.write(_head(Content_Encoding="deflate", Content_Length=len(DEFLATE)) + DEFLATE)
        elif path == "/raw-deflate":
            w.write(_head(Content_Encoding="deflate", Content_Length=len(RAW_DEFLATE)) + RAW_DEFLATE)
        elif path == "/bad-gzip":
            w.write(_head(Content_Encoding="gzip", Content_Length=40) + b"\x1f\x8b\x08\x00" + b"x" * 36)
        elif path == "/br":
            w.write(_head(Content_Encoding="br", Content_Length=4) + b"abcd")
        elif path == "/bomb":
            w.write(_head(Content_Encoding="deflate", Content_Length=len(BOMB)) + BOMB)
        elif path == "/chunked":
            w.write(_head(Transfer_Encoding="chunked") + _chunked(b"hello", b" ", b"world"))
        elif path == "/split":  # the head and the body in many small writes
            for piece in (b"HTTP/1.1 200 OK\r\nCont", b"ent-Length: 300\r\n", b"\r\n", b"z" * 100, b"z" * 200):
                w.write(piece)
                await w.drain()
                await asyncio.sleep(0.005)
        elif path == "/gzip-split":  # the head cut inside Content-Encoding, the body in three reads
            head = _head(Content_Encoding="gzip", Content_Length=len(GZ))
            for piece in (head[:30], head[30:] + GZ[:50], GZ[50:400], GZ[400:]):
                w.write(piece)
                await w.drain()
                await asyncio.sleep(0.01)
        elif path == "/gzip-stall":  # half a gzip body, then nothing
            w.write(_head(Content_Encoding="gzip", Content_Length=len(GZ)) + GZ[:len(GZ) // 2])
            await w.drain()
            await asyncio.sleep(SERVER_LIFE)
            return False
        elif path == "/drip":  # 20 bytes, 30 ms apart: done in 0.6 s, never idle for 0.2 s
            w.write(_head(Content_Length=20))
            for _ in range(20):
                await w.drain()
                await asyncio.sleep(0.03)
                w.write(b"d")
        elif path == "/never":
            await asyncio.sleep(SERVER_LIFE)
            return False
        elif path == "/stall-body":  # the head and 5 of 100 bytes, then nothing
            w.write(_head(Content_Length=100) + b"12345")
            await w.drain()
            await asyncio.sleep(SERVER_LIFE)
            return False
        elif path == "/close-early":
            w.write(_head(Content_Length=100) + b"partial")
            await w.drain()
            return False
        elif path == "/chunk-cut":
            w.write(_head(Transfer_Encoding="chunked") + b"a\r\n0123456789\r\n5\r\nabc")
            await w.drain()
            return False
        elif path == "/eof":
            w.write(_head(Connection="close") + b"y" * 300)
            await w.drain()
            return False
        elif path == "/endless":  # a chunked body that never ends
            w.write(_head(Transfer_Encoding="chunked"))
            await self._forever(w, b"%x\r\n%b\r\n" % (65536, b"e" * 65536))
            return False
        elif path == "/huge-chunk":  # one chunk announced as ~1 TB
            w.write(_head(Transfer_Encoding="chunked") + b"ffffffffff\r\n")
            await self._forever(w, b"h" * 65536)
            return False
        elif path == "/endless-head":
            w.write(b"HTTP/1.1 200 OK\r\n")
            await self._forever(w, b"X-Pad: " + b"p" * 1000 + b"\r\n")
            return False
        else:
            w.write(_head(Content_Length=2) + b"ok")
        await w.drain()
        return True

    @staticmethod
    async def _forever(w: asyncio.StreamWriter, piece: bytes) -> None:
        end = time.monotonic() + SERVER_LIFE
        while time.monotonic() < end and not w.is_closing():
            w.write(piece)
            await w.drain()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._ready.set()
        async with server:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 600)

    def __enter__(self) -> Hostile:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture(scope="module")
def hostile():
    with Hostile() as server:
        yield server


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rows(url: str, request: Request, tmp_path, path: str, **scenario_kw) -> pl.DataFrame:
    """The rows of 2 requests of ``request`` on ``path``."""
    res = run_load(url, shapes.constant(20, 0.1), Scenario([request], **scenario_kw), runs_dir=tmp_path / path,
                   progress=False, announce=lambda s: None, http_path=path, timeout=5, grace=6)
    return Run.load(res.path).requests.collect().sort("request_id")


# behaviour -> (request, scenario settings, the row both paths must record)
CATALOGUE = {
    "200": (Request("r", "GET", "/status/200"), {}, dict(status=200, error=None, bytes=2, wire_bytes=2)),
    "404": (Request("r", "GET", "/status/404"), {}, dict(status=404, error="http_4xx", bytes=2)),
    "503": (Request("r", "GET", "/status/503"), {}, dict(status=503, error="http_5xx", bytes=2)),
    "gzip": (Request("r", "GET", "/gzip", checks=(BodyContains("item 199"),)), {},
             dict(status=200, error=None, bytes=len(TEXT), wire_bytes=len(GZ))),
    "gzip-chunked": (Request("r", "GET", "/gzip-chunked", checks=(BodyContains("item 199"),)), {},
                     dict(status=200, error=None, bytes=len(TEXT), wire_bytes=len(GZ))),
    "gzip in pieces": (Request("r", "GET", "/gzip-split", checks=(BodyContains("item 199"),)), {},
                       dict(status=200, error=None, bytes=len(TEXT), wire_bytes=len(GZ))),
    "timeout mid gzip body": (Request("r", "GET", "/gzip-stall"), {"timeout": 0.3},
                              dict(status=200, error="timeout", wire_bytes=len(GZ) // 2,
                                   bytes=len(zlib.decompressobj(31).decompress(GZ[:len(GZ) // 2])),
                                   error_detail="total timeout while reading the body")),
    "gzip, not asked for": (Request("r", "GET", "/gzip"), {"accept_encoding": "identity"},
                            dict(status=200, error=None, bytes=len(GZ), wire_bytes=len(GZ))),
    "deflate": (Request("r", "GET", "/deflate"), {}, dict(status=200, error=None, bytes=len(TEXT),
                                                         wire_bytes=len(DEFLATE))),
    "raw-deflate": (Request("r", "GET", "/raw-deflate"), {},
                    dict(status=200, error=None, bytes=len(TEXT), wire_bytes=len(RAW_DEFLATE))),
    "bad-gzip": (Request("r", "GET", "/bad-gzip"), {}, dict(status=200, error="protocol")),
    "br": (Request("r", "GET", "/br"), {}, dict(status=200, error="protocol",
                                               error_detail="unsupported Content-Encoding 'br' (perfbench decodes "
                                                            "gzip and deflate)")),
    "chunked": (Request("r", "GET", "/chunked"), {}, dict(status=200, error=None, bytes=11, wire_bytes=11)),
    "split": (Request("r", "GET", "/split"), {}, dict(status=200, error=None, bytes=300, wire_bytes=300)),
    "eof-delimited": (Request("r", "GET", "/eof"), {}, dict(status=200, error=None, bytes=300)),
    "slow drip": (Request("r", "GET", "/drip"), {"timeout": Timeout(idle=0.2)},
                  dict(status=200, error=None, bytes=20)),
    "timeout before the head": (Request("r", "GET", "/never"), {"timeout": 0.3},
                                dict(status=None, error="timeout", bytes=0, wire_bytes=0,
                                     error_detail="total timeout while waiting for the response")),
    "ttfb timeout": (Request("r", "GET", "/never"), {"timeout": Timeout(ttfb=0.2)},
                     dict(status=None, error="timeout", error_detail="ttfb timeout")),
    "timeout mid-body": (Request("r", "GET", "/stall-body"), {"timeout": 0.3},
                         dict(status=200, error="timeout", bytes=5, wire_bytes=5,
                              error_detail="total timeout while reading the body")),
    "idle timeout mid-body": (Request("r", "GET", "/stall-body"), {"timeout": Timeout(idle=0.2)},
                              dict(status=200, error="timeout", bytes=5,
                                   error_detail="idle timeout while reading the body")),
    "drip past the total": (Request("r", "GET", "/drip", timeout=0.25), {},
                            dict(status=200, error="timeout", error_detail="total timeout while reading the body")),
    "body cut short": (Request("r", "GET", "/close-early"), {},
                       dict(status=200, error="incomplete", bytes=7, wire_bytes=7,
                            error_detail="connection closed after 7 of 100 body bytes")),
    "chunk cut short": (Request("r", "GET", "/chunk-cut"), {},
                        dict(status=200, error="incomplete", bytes=13,
                             error_detail="connection closed after 13 body bytes, before the chunked body ended")),
    "endless body": (Request("r", "GET", "/endless"), {"max_body": 1_000_000},
                     dict(status=200, error="too_large", bytes=1_000_000, wire_bytes=1_000_000,
                          error_detail="body over max_body (1000000 bytes)")),
    "huge chunk": (Request("r", "GET", "/huge-chunk", max_body=300_000), {},
                   dict(status=200, error="too_large", bytes=300_000, wire_bytes=300_000)),
    "endless head": (Request("r", "GET", "/endless-head"), {},
                     dict(status=None, error="too_large", bytes=0, error_detail=f"response headers over {MAX_HEAD} bytes")),
    "zip bomb": (Request("r", "GET", "/bomb"), {"max_body": 1_000_000},
                 dict(status=200, error="too_large", bytes=1_000_000,
                      error_detail="decoded body over max_body (1000000 bytes)")),
}
COMPARED = ("status", "error", "error_detail", "bytes", "wire_bytes")


@pytest.mark.parametrize("behaviour", list(CATALOGUE))
def test_both_paths_record_each_behaviour_alike(hostile, tmp_path, behaviour):
    request, settings, want = CATALOGUE[behaviour]
    got = {p: rows(hostile.url, request, tmp_path, p, **settings) for p in PATHS}
    for p, df in got.items():
        assert df.height == 2, p
        for field, value in want.items():
            assert df[field].to_list() == [value] * 2, (p, field, df.select(COMPARED).to_dicts())
    lean, aio = got["lean"], got["aiohttp"]
    # field by field; a zip bomb's wire bytes depend on where reads split the stream, a drip cut by
    # the clock has as many bytes as came in time, and each parser says in its own words what is
    # wrong with a malformed body
    skip = {"zip bomb": {"wire_bytes"}, "drip past the total": {"bytes", "wire_bytes"},
            "bad-gzip": {"error_detail"}}.get(behaviour, set())
    fields = [f for f in COMPARED if f not in skip]
    if behaviour == "drip past the total":  # 30 ms apart, cut at 250 ms
        assert all(3 <= b <= 10 for b in lean["bytes"].to_list() + aio["bytes"].to_list())
    assert lean.select(fields).to_dicts() == aio.select(fields).to_dicts()
    if behaviour == "bad-gzip":
        assert all(d.startswith("bad gzip") for d in lean["error_detail"].to_list() + aio["error_detail"].to_list())


@pytest.mark.parametrize("path", PATHS)
def test_refused_is_a_connect_error_with_no_connection(tmp_path, path):
    df = rows(f"http://127.0.0.1:{_closed_port()}", Request("r", "GET", "/"), tmp_path, path)
    assert df["error"].to_list() == ["connect"] * 2 and df["reused"].null_count() == 2
    assert df["connect_ns"].null_count() == 2 and df["ttfb_ns"].null_count() == 2


@pytest.mark.parametrize("path", PATHS)
def test_timing_columns_say_connect_ttfb_and_reuse(hostile, tmp_path, path):
    res = run_load(hostile.url, shapes.constant(50, 0.2), Scenario([Request("r", "GET", "/status/200")]),
                   runs_dir=tmp_path, progress=False, announce=lambda s: None, http_path=path, max_in_flight=1)
    df = Run.load(res.path).requests.collect().sort("request_id")
    assert df.height == 10 and df["error"].null_count() == 10
    first, rest = df.head(1), df.tail(9)
    assert first["reused"].to_list() == [False] and first["connect_ns"][0] > 0
    assert rest["reused"].to_list() == [True] * 9 and rest["connect_ns"].null_count() == 9
    assert (df["ttfb_ns"] > 0).all() and (df["ttfb_ns"] <= df["service_ns"]).all()
    summary = res.summary["endpoints"]["r"]
    assert 0 < summary["ttfb_ms"]["p50"] <= summary["ttfb_ms"]["p99"] <= summary["latency_ms"]["max"]


def test_accept_encoding_is_sent_and_identity_turns_it_off(tmp_path):
    """Both paths send ``gzip, deflate`` by default, and the scenario's value when it sets one."""
    seen: list[bytes] = []

    async def handle(reader, writer):
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                seen.append(b"".join(line for line in head.split(b"\r\n")
                                     if line.lower().startswith(b"accept-encoding")))
                writer.write(_head(Content_Length=2) + b"ok")
                await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        for path in PATHS:
            for spec_ae in (None, "identity"):
                from perfbench.engine.protocols import ReadSpec
                from perfbench.engine.reading import with_accept_encoding

                spec = ReadSpec(accept_encoding=spec_ae or "gzip, deflate")
                s = make_sender(url, http_path=path)
                await s.start()
                try:
                    headers: dict[str, str] = {}
                    await s.request("GET", "/", headers, None, spec=with_accept_encoding(headers, spec))
                    await s.request("GET", "/", {}, None)  # a request without the engine's headers (the login)
                finally:
                    await s.close()
        server.close()

    asyncio.run(main())
    gz, identity = b"Accept-Encoding: gzip, deflate", b"Accept-Encoding: identity"
    assert seen == [gz, gz, identity, gz] * len(PATHS)


# -- bounded memory ------------------------------------------------------------------------------

class PeakRss:
    """The process's resident memory, sampled every 10 ms in a thread: the peak above the start."""

    def __enter__(self) -> PeakRss:
        self._proc = psutil.Process(os.getpid())
        self.start = self.peak = self._proc.memory_info().rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(5)
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


GROWTH_BOUND_MB = 400  # generous: one body of 16 MiB read on each of a few connections; unbounded reads go to GBs


@pytest.mark.parametrize("path", PATHS)
def test_hostile_servers_cannot_grow_the_engine_without_bound(hostile, path):
    """An endless body, endless headers and a ~1 TB chunk each end as too_large, with the default
    bounds, while the process's memory stays within a few bodies' worth."""

    async def main():
        s = make_sender(hostile.url, http_path=path, timeout=20)
        await s.start()
        try:
            return [await s.request("GET", p, {}, None, keep_body=keep)
                    for p in ("/endless", "/endless-head", "/huge-chunk") for keep in (False, True)]
        finally:
            await s.close()

    with PeakRss() as rss:
        outcomes = asyncio.run(main())
    kinds = [(o.error, o.status, o.nbytes) for o in outcomes]
    assert kinds == [("too_large", 200, DEFAULT_MAX_BODY)] * 2 + [("too_large", None, 0)] * 2 + \
        [("too_large", 200, DEFAULT_MAX_BODY)] * 2
    assert all(o.body is None for o in outcomes)  # a body past its bound is never handed over
    assert rss.growth_mb < GROWTH_BOUND_MB, rss.growth_mb


# -- the run directory and the scenario ------------------------------------------------------------

def test_a_version_1_run_directory_still_loads_with_the_new_columns_filled(tmp_path):
    """Version 1 had no wire_bytes nor timing columns: wire_bytes reads as bytes, the rest as null."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from perfbench.rundir import REQUEST_SCHEMA, REQUESTS

    v1 = pa.schema([f for f in REQUEST_SCHEMA if f.name not in ("wire_bytes", "connect_ns", "ttfb_ns", "reused",
                                                                   "redirects", "final_path")])
    row = {"request_id": 1, "endpoint": "e", "method": "GET", "intended_ns": 0, "start_ns": 1, "end_ns": 5,
           "latency_ns": 5, "service_ns": 4, "status": 200, "error": None, "error_detail": None, "bytes": 7,
           "worker": 0, "vu": None, "stage": 0}
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    pq.write_table(pa.Table.from_pylist([row], schema=v1), run_dir / REQUESTS)
    (run_dir / "meta.json").write_text(json.dumps({"schema_version": 1, "run_id": "old", "end_reason": "completed"}))
    df = Run.load(run_dir).requests.collect()
    got = df.select("bytes", "wire_bytes", "connect_ns", "ttfb_ns", "reused").to_dicts()
    assert got == [{"bytes": 7, "wire_bytes": 7, "connect_ns": None, "ttfb_ns": None, "reused": None}]


def test_the_reading_settings_of_a_toml_scenario_and_their_problems(tmp_path):
    from perfbench.engine.reading import spec_for
    from perfbench.errors import ConfigError
    from perfbench.scenario_toml import load_toml

    good = tmp_path / "good.toml"
    good.write_text('timeout = { total = 5, idle = 1 }\nmax_body = 1000\n'
                    '[[request]]\nname = "a"\npath = "/a"\ntimeout = { ttfb = 0.5 }\naccept_encoding = "identity"\n'
                    '[[request]]\nname = "b"\npath = "/b"\ntimeout = 2\nmax_body = 50\n')
    sc = load_toml(good)
    a, b = (spec_for(sc, r, False) for r in sc.requests)
    assert (a.total, a.ttfb, a.idle, a.connect, a.max_body, a.accept_encoding) == (5, 0.5, 1, None, 1000, "identity")
    assert (b.total, b.ttfb, b.idle, b.max_body, b.accept_encoding) == (2, None, 1, 50, "gzip, deflate")
    bad = tmp_path / "bad.toml"
    bad.write_text('timeout = { total = -1, soon = 2 }\n[[request]]\nname = "a"\npath = "/a"\nmax_body = 0\n'
                   'accept_encoding = "br"\ntimeout = "slow"\n')
    with pytest.raises(ConfigError) as err:
        load_toml(bad)
    text = str(err.value) + " ".join(getattr(err.value, "problems", []) or [])
    for needle in ("scenario.timeout: unknown field 'soon'", "max_body: a number of bytes >= 1",
                   "accept_encoding: codings from", "timeout: seconds > 0"):
        assert needle in text, (needle, text)


@pytest.mark.parametrize("path", PATHS)
def test_a_tls_handshake_that_never_ends_is_a_connect_timeout(tmp_path, path):
    """A server that accepts TCP and never answers the TLS hello: the connect phase (TCP and TLS)
    passes its limit, on both paths alike."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepted by the kernel, never by anyone: no ServerHello ever comes
    try:
        url = f"https://127.0.0.1:{listener.getsockname()[1]}"
        sc = {"timeout": Timeout(connect=0.2, total=2)}
        df = rows(url, Request("r", "GET", "/"), tmp_path, path, **sc)
    finally:
        listener.close()
    assert df["error"].to_list() == ["timeout"] * 2 and df["error_detail"].to_list() == ["connect timeout"] * 2
    assert df["status"].null_count() == 2 and df["reused"].null_count() == 2
    assert (df["service_ns"] >= 200_000_000).all() and (df["service_ns"] < 1_500_000_000).all()
