"""One keep-alive connection of the lean HTTP/1.1 path (``lean.py``): reading a response.

The hot path is a response read whole in one ``data_received``: httptools' parser calls
``on_body`` (count the bytes, one comparison against the bound) and ``on_message_complete``,
then one bounded regex over the head's bytes says whether the body is compressed, and ``done``
runs. Anything else takes the careful path (``_slow``): a response over several reads (its head
kept, at most ``reading.MAX_HEAD`` bytes, until it is complete; the body is never kept unless a
check needs it), a compressed body (the body spans of the reads so far are parsed again and
decoded, and the rest is decoded as it comes), a body or head over its bound, a response cut
short. The times of the first and the last read (for the ``ttfb`` and ``idle`` timeouts) are
read on the careful path only: a response read in one go has its first byte at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Final, Protocol, cast

import httptools

from ..errors import PerfbenchError
from .deadlines import Deadlines
from .protocols import AT_END, NO_BYTE, NO_CONNECTION, REUSED, Done
from .reading import (
    BODY,
    CHUNKED,
    CONNECTING,
    CONTENT_ENCODING,
    CONTENT_LENGTH,
    HAS_CONTENT_ENCODING,
    HAS_EITHER,
    HAS_SET_COOKIE,
    HEAD,
    HEAD_END,
    MAX_HEAD,
    WAITING,
    Decoder,
    ReadError,
    Timeouts,
    body_too_large,
    coding_of,
    head_too_large,
    incomplete_detail,
)

# a connection's transport until it is connected, and its ``done`` while no request is in flight:
# markers, so both attributes keep one type (the hot path reads them with no None check)
_NOT_CONNECTED: Final = asyncio.Transport()


def _no_request(job: Any, status: int | None, nbytes: int, wire: int, body: bytes | None, error: str | None,
                detail: str | None, ttfb: int, connect: int) -> None:
    raise PerfbenchError("a response completed with no request in flight")


class Pool(Protocol):
    """What a connection uses of its pool (``lean.LeanSender``)."""

    default_kind: LeanKind
    deadlines: Deadlines
    _idle: list[Conn]
    _queue: Any

    def _release(self, conn: Conn) -> None: ...

    def _forget(self, conn: Conn) -> None: ...


class LeanKind:
    """How the lean path reads one kind of request (made once, by ``LeanSender.kind``)."""

    __slots__ = ("max_body", "keep", "decode", "limit", "timeouts", "floor", "heads", "scan")

    def __init__(self, max_body: int, keep: bool, timeouts: Timeouts, decode: bool = True,
                 heads: bool | str = False):
        self.max_body = max_body
        # the caller wants each response's head (``request()``: cookies, redirects): ``done``'s
        # detail is then a successful response's head block (latin-1); without it, only a 3xx
        # response's detail is set, to its Location. ``"cookies"``: the head of a response that
        # sets a cookie (or redirects), a flow user's jar on the lean path (``flows_lean.py``)
        self.heads = heads
        self.keep = keep
        self.decode = decode  # look for a Content-Encoding (not when the request asked for identity)
        # the one search of a head read in one go for what sends it the careful way: a Content-Encoding
        # (with a body), a Set-Cookie (heads "cookies"), either in one pass when both are looked for
        cookies = heads == "cookies"
        self.scan = (HAS_EITHER if decode and cookies else HAS_SET_COOKIE if cookies
                     else HAS_CONTENT_ENCODING if decode else None)
        # on_body's one comparison: past ``limit`` a body span takes the careful path (always, to be
        # kept, when the body is kept)
        self.limit = -1 if keep else max_body
        self.timeouts = timeouts
        self.floor = timeouts.floor  # no deadline of this kind comes sooner after the send


class _Stop(Exception):
    """Raised in a parser callback to stop reading (the reason is the connection's ``stop``)."""


class _Spans:
    """The body spans of a response's bytes (parsed again, when its body turns out compressed)."""

    def __init__(self) -> None:
        self.spans: list[bytes] = []

    def on_body(self, body: bytes) -> None:
        self.spans.append(body)


def body_spans(data: bytes) -> list[bytes]:
    sink = _Spans()
    with contextlib.suppress(httptools.HttpParserError):  # the first parse said what was wrong
        httptools.HttpResponseParser(sink).feed_data(data)
    return sink.spans


class Conn(asyncio.Protocol):
    """One keep-alive connection; at most one request at a time (no pipelining)."""

    __slots__ = ("pool", "transport", "parser", "job", "done", "kind", "sent", "opened", "connect_ns", "nbytes",
                 "limit", "chunks", "decoder", "head", "hend", "partial", "first", "last", "stop", "complete",
                 "status", "keep_alive", "pending", "task", "closed", "extra")

    def __init__(self, pool: Pool):
        self.pool = pool
        self.transport: asyncio.Transport = _NOT_CONNECTED
        self.parser = httptools.HttpResponseParser(self)
        self.job: Any = None  # what the caller gave with the request; None when idle
        self.done: Done = _no_request
        self.kind: LeanKind = pool.default_kind
        self.sent = 0  # perf_counter_ns of the request's send
        self.opened = time.perf_counter_ns()
        self.connect_ns = NO_CONNECTION  # the connect's duration until its first response, then REUSED
        self.nbytes = 0  # body bytes as they came (wire)
        self.limit = 0
        self.chunks: list[bytes] | None = None  # body spans, when the body is kept and not decoded (from the first)
        # the careful path's state, reset when a response ends (so idle connections hold nothing)
        self.decoder: Decoder | None = None
        self.head = bytearray()  # the bytes of a response's head while it is incomplete, then the head
        self.hend = -1  # the head's length once complete
        self.partial = False  # a read of this response came and did not complete it
        self.first = 0
        self.last = 0
        self.stop: ReadError | None = None
        self.complete = False
        self.status = 0
        self.keep_alive = True
        self.pending: bytes | None = None  # written once connected
        self.task: asyncio.Task[None] | None = None  # the connect task
        self.closed = False
        self.extra = False

    # -- the request --------------------------------------------------------------------------
    def begin(self, data: bytes, job: Any, done: Done, kind: LeanKind, sent: int) -> None:
        """Send a request (on a new or connecting connection; idle ones are reused by
        :meth:`LeanSender.submit`, which does the same inline)."""
        self.job = job
        self.done = done
        self.kind = kind
        self.sent = sent
        self.nbytes = 0
        self.limit = kind.limit
        self.pool.deadlines.arm(sent + kind.floor)
        if self.transport is _NOT_CONNECTED:
            self.pending = data
        else:
            self.transport.write(data)

    def phase(self) -> int:
        if self.transport is _NOT_CONNECTED:
            return CONNECTING
        if not self.partial:
            return WAITING
        return HEAD if self.hend < 0 else BODY

    def _reset(self) -> None:
        self.chunks = None
        self.decoder = None
        self.stop = None
        if self.partial or self.hend >= 0:
            self.head.clear()
            self.hend = -1
            self.partial = False
            self.first = self.last = 0

    def _end(self, status: int | None, body: bytes | None, error: str | None, detail: str | None) -> None:
        """End the request in flight on an error or an EOF (the connection is not reused)."""
        job, done, wire = self.job, self.done, self.nbytes
        nbytes = self.decoder.size if self.decoder is not None else wire
        ttfb = self.first - self.sent if self.partial else NO_BYTE
        connect = self.connect_ns
        self.job = None
        self.done = _no_request
        self._reset()
        done(job, status, nbytes, wire, body, error, detail, ttfb, connect)

    def fail(self, error: str, detail: str) -> None:
        """End the request with an error and drop the connection (it is in an unknown state);
        the status is kept when the response's head had arrived."""
        self.drop()
        if self.job is not None:
            self._end(self.parser.get_status_code() if self.hend >= 0 or self.nbytes else None, None, error, detail)

    def time_out(self, detail: str) -> None:
        self.fail("timeout", detail)

    def drop(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool._forget(self)
            if self.transport is not _NOT_CONNECTED:
                self.transport.abort()
            elif self.task is not None:
                self.task.cancel()

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream's transport: asyncio.Transport's methods (uvloop's does not subclass it)
        self.transport = stream = cast(asyncio.Transport, transport)
        self.connect_ns = time.perf_counter_ns() - self.opened
        if self.closed:  # timed out while connecting
            stream.abort()
            return
        data, self.pending = self.pending, None
        if data is not None:
            stream.write(data)

    def data_received(self, data: bytes) -> None:
        # the hot path: everything a response read in one go needs is inline (no further Python
        # call before ``done``), and the connection is idle again before ``done`` runs, so
        # ``done`` can send the next request on it at once
        job = self.job
        if job is None:
            self.fail("protocol", "data received with no request in flight")
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.complete = False
            if not self.partial:  # the first byte came in this read
                self.partial = True
                self.first = time.perf_counter_ns()
            stop = self.stop
            if stop is not None:  # a bound passed or a corrupt body, found by a callback
                self.fail(stop.kind, stop.detail)
            else:
                self.fail("protocol", _short(exc) or type(exc).__name__)
            return
        if not self.complete:
            self._slow(data, False)
            return
        self.complete = False
        if self.extra:  # a second response to one request
            self.fail("protocol", "more than one response to one request")
            return
        nbytes = self.nbytes
        hl = len(data) - nbytes  # the head (and any chunk framing): where a Content-Encoding can be
        kind = self.kind
        if self.partial or hl > MAX_HEAD or 300 <= self.status < 400 or kind.heads is True \
                or ((nbytes or kind.heads) and (scan := kind.scan) is not None and scan(data, 0, hl)):
            # a redirect, or a head asked for (always, or by a flow's user when it sets a cookie)
            self._slow(data, True)
            return
        done = self.done
        self.job = None
        self.done = _no_request
        body = None
        if (chunks := self.chunks) is not None:
            body = b"".join(chunks)
            self.chunks = None
        connect = self.connect_ns
        self.connect_ns = REUSED
        if self.keep_alive and not self.closed:
            pool = self.pool
            if pool._queue:
                pool._release(self)
            else:
                pool._idle.append(self)
        elif not self.closed:
            self.closed = True
            self.pool._forget(self)
            self.transport.close()
        done(job, self.status, nbytes, nbytes, body, None, None, AT_END, connect)

    # -- the careful path -----------------------------------------------------------------------
    def _slow(self, data: bytes, complete: bool) -> None:
        """A read of a response that is not the simple case (see the module docstring)."""
        now = time.perf_counter_ns()
        single = complete and not self.partial  # the whole response in this one read
        if not self.partial:
            self.partial = True
            self.first = now
        self.last = now
        if self.hend < 0:
            try:
                if not self._scan_head(data):
                    return
            except ReadError as exc:
                self.fail(exc.kind, exc.detail)
                return
        if complete:
            self._complete(single)

    def _scan_head(self, data: bytes) -> bool:
        """Add ``data`` to the response's head until the head is complete (then read its
        Content-Encoding and start decoding); False while it is not complete yet."""
        head = self.head
        start = max(len(head) - 3, 0)
        head += data
        end = head.find(HEAD_END, start)
        if end < 0:
            if len(head) > MAX_HEAD:
                raise head_too_large()
            return False
        end += 4
        if end > MAX_HEAD:
            raise head_too_large()
        so_far = bytes(head)  # the response's bytes until now: all of its body so far is in this read
        del head[end:]
        self.hend = end
        coding = coding_of(m[1] if self.kind.decode and (m := CONTENT_ENCODING(head)) is not None else None)
        if coding is not None:
            kind = self.kind
            decoder = self.decoder = Decoder(coding, kind.max_body, kind.keep)
            self.chunks = None
            self.limit = -1  # every body span from now on is decoded
            for span in body_spans(so_far):
                decoder.feed(span)
        return True

    def _complete(self, single: bool) -> None:
        body = None
        decoder = self.decoder
        try:
            if decoder is not None:
                decoder.finish()
                if decoder.keep:
                    body = decoder.body()
        except ReadError as exc:
            self.fail(exc.kind, exc.detail)
            return
        if decoder is None and self.chunks is not None:
            body = b"".join(self.chunks)
        wire = self.nbytes
        nbytes = decoder.size if decoder is not None else wire
        ttfb = AT_END if single else self.first - self.sent
        detail = None
        if 300 <= self.status < 400 or self.kind.heads:
            block = bytes(self.head[:self.hend]) if self.hend >= 0 else b""
            detail = block.decode("latin-1") if self.kind.heads else header_value(block, b"location")
        job, done, connect = self.job, self.done, self.connect_ns
        self.job = None
        self.done = _no_request
        self.connect_ns = REUSED
        self._reset()
        if self.keep_alive and not self.closed:
            self.pool._release(self)
        elif not self.closed:
            self.closed = True
            self.pool._forget(self)
            self.transport.close()
        done(job, self.status, nbytes, wire, body, None, detail, ttfb, connect)

    def eof_received(self) -> bool:
        return False  # close; connection_lost decides what a request in flight gets

    def connection_lost(self, exc: Exception | None) -> None:
        was_closed = self.closed
        self.closed = True
        if not was_closed:
            self.pool._forget(self)
        if self.job is None:
            return
        if self.hend < 0:  # no complete response head: nothing of a response to keep
            self._end(None, None, "reset", type(exc).__name__ if exc is not None else "ServerDisconnectedError")
            return
        head = bytes(self.head)
        status = self.parser.get_status_code()
        length = CONTENT_LENGTH(head)
        if exc is None and length is None and CHUNKED(head) is None:
            # a body delimited by the end of the connection: complete now
            self.status = status
            self._complete(False)
            return
        declared = int(length[1]) if length is not None and length[1] else None
        chunked = CHUNKED(head) is not None
        self._end(status, None, "incomplete", incomplete_detail(self.nbytes, declared, chunked, exc is not None))

    # -- httptools callbacks (each a Python call per response: only the two needed) -------------
    def on_body(self, body: bytes) -> None:
        n = self.nbytes + len(body)
        self.nbytes = n
        if n > self.limit:
            self._body(body, n)

    def _body(self, body: bytes, n: int) -> None:
        """A body span past the fast bound: the body is kept or decoded, or it is too large."""
        kind = self.kind
        over = n > kind.max_body
        if over:  # reading stops at the bound: what fits is counted (and decoded, or kept)
            body = body[:len(body) - (n - kind.max_body)]
            self.nbytes = kind.max_body
        decoder = self.decoder
        if decoder is not None:
            try:
                decoder.feed(body)
            except ReadError as exc:
                self.stop = exc
                raise _Stop from None
        elif kind.keep:
            if self.chunks is None:
                self.chunks = [body]
            else:
                self.chunks.append(body)
        if over:
            self.stop = body_too_large(kind.max_body)
            raise _Stop

    def on_message_complete(self) -> None:
        if self.complete:
            self.extra = True
        self.complete = True
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()


def header_values(block: bytes, name: bytes) -> list[str]:
    """Every value of header ``name`` (lower case) in a response's head block."""
    out = []
    for line in block.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            out.append(value.strip().decode("latin-1"))
    return out


def header_value(block: bytes, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case) in a response's head block."""
    values = header_values(block, name)
    return values[0] if values else None


def _short(exc: BaseException, limit: int = 120) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:limit]
