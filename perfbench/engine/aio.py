"""What the aiohttp path adds to aiohttp's client so it reads responses as the lean path does.

Loaded by :class:`~perfbench.engine.senders.AiohttpSender` only (it imports aiohttp). Two hooks,
both on aiohttp's documented extension points of the connector:

- :class:`Handler`, the connection's protocol (``connector._factory``): before aiohttp's parser
  sees a read, it notes the time of the first and the last read (the ``ttfb`` and ``idle``
  timeouts, ``ttfb_ns``), bounds the response head at ``reading.MAX_HEAD`` bytes (aiohttp's own
  limits are per line and per header count), and notes how the connection ended (a body cut
  short is told from a malformed one by that).
- :class:`Connector`: marks the connect phase and whether the connection was kept alive, and
  ties the connection's protocol to the request's :class:`State`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

from .protocols import NO_CONNECTION, REUSED, ReadSpec
from .reading import (
    BODY,
    CONNECTING,
    HEAD,
    HEAD_END,
    MAX_HEAD,
    WAITING,
    Decoder,
    ReadError,
    Timeouts,
    body_too_large,
    head_too_large,
)

_SENTINEL: Any = object()


class State:
    """One request in flight on the aiohttp path, as its deadline check and its outcome see it."""

    __slots__ = ("spec", "timeouts", "sent", "phase", "opened", "first", "last", "status", "wire", "decoder",
                 "chunks", "head", "tail", "head_done", "lost", "lost_exc", "proto", "connect_ns", "timed_out",
                 "content", "declared", "chunked", "bad")

    def __init__(self, spec: ReadSpec, timeouts: Timeouts, sent: int):
        self.spec = spec
        self.timeouts = timeouts
        self.sent = sent
        self.phase = WAITING
        self.opened = sent
        self.first = 0
        self.last = 0
        self.status: int | None = None
        self.wire = 0
        self.decoder: Decoder | None = None
        self.chunks: list[bytes] | None = None
        self.head = 0  # bytes of the response head seen so far
        self.tail = b""  # the last bytes of the head seen, to find its end across reads
        self.head_done = False
        self.lost = False  # the connection ended while the request was in flight
        self.lost_exc: BaseException | None = None
        self.proto: Handler | None = None
        self.connect_ns = NO_CONNECTION
        self.timed_out: str | None = None  # the timeout's detail, once the deadline check ended it
        self.content: aiohttp.StreamReader | None = None
        self.declared: int | None = None  # the response's Content-Length
        self.bad = False  # aiohttp's parser refused the response (it then closes the connection itself)
        self.chunked = False

    def take(self, data: bytes) -> None:
        """Count (and decode, or keep) a read of the body; ReadError past the bounds."""
        limit = self.spec.max_body
        n = self.wire + len(data)
        over = n > limit
        if over:  # reading stops at the bound, as on the lean path
            data = data[:len(data) - (n - limit)]
            n = limit
        self.wire = n
        if self.decoder is not None:
            self.decoder.feed(data)
        elif self.chunks is not None:
            self.chunks.append(data)
        if over:
            raise body_too_large(limit)

    def drain(self) -> None:
        """Take what aiohttp read and the request did not yet (the request ended early): the lean
        path has counted (and decoded) every byte read, so this path does too."""
        content = self.content
        if content is None:
            return
        buffered: Any = getattr(content, "_buffer", ())
        offset = getattr(content, "_buffer_offset", 0)
        for i, chunk in enumerate(list(buffered)):
            self.take(chunk[offset:] if i == 0 else chunk)

    @property
    def nbytes(self) -> int:
        return self.decoder.size if self.decoder is not None else self.wire

    @property
    def ttfb(self) -> int | None:
        return self.first - self.sent if self.first else None


class Handler(ResponseHandler):
    """aiohttp's connection protocol, with the reads noted and the head bounded (see the module)."""

    pb: State | None = None
    pb_used = False  # a request was sent on this connection already

    def data_received(self, data: bytes) -> None:
        st = self.pb
        if st is not None and data:
            now = time.perf_counter_ns()
            if not st.first:
                st.first = now
                if len(data) >= 12 and data.startswith(b"HTTP/"):  # the status, for a timeout mid-body
                    code = data[9:12]
                    st.status = int(code) if code.isdigit() else None
                if st.phase < HEAD:
                    st.phase = HEAD
            st.last = now
            if not st.head_done:
                buf = st.tail + data
                end = buf.find(HEAD_END)
                if end < 0:
                    st.head += len(data)
                    st.tail = buf[-3:]
                else:
                    st.head += end + 4 - len(st.tail)
                    st.head_done = True
                    st.phase = BODY
                if st.head > MAX_HEAD:
                    exc = head_too_large()
                    if self.transport is not None:
                        self.transport.abort()
                    self.set_exception(exc)
                    return
        super().data_received(data)

    def set_exception(self, exc: BaseException, exc_cause: BaseException = _SENTINEL) -> None:
        st = self.pb
        if st is not None and not st.lost and not isinstance(exc, ReadError):
            st.bad = True  # raised by the parser on a malformed response, not by the end of the connection
        if exc_cause is _SENTINEL:
            super().set_exception(exc)
        else:
            super().set_exception(exc, exc_cause)

    def connection_lost(self, exc: BaseException | None) -> None:
        st = self.pb
        if st is not None:
            st.lost = True
            st.lost_exc = exc
        super().connection_lost(exc)


class Connector(aiohttp.TCPConnector):
    """aiohttp's TCP connector with :class:`Handler` as its protocol; ``states`` maps a request's
    task to its :class:`State`."""

    def __init__(self, states: dict[asyncio.Task[Any], State], **kwargs: Any):
        super().__init__(**kwargs)
        self._factory = functools.partial(Handler, loop=self._loop)  # type: ignore[assignment]
        self._pb_states = states

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:  # noqa: ASYNC109 - aiohttp's signature
        task = asyncio.current_task()
        st = self._pb_states.get(task) if task is not None else None
        if st is None:
            return await super().connect(req, traces, timeout)
        st.phase = CONNECTING
        st.opened = time.perf_counter_ns()
        conn = await super().connect(req, traces, timeout)
        proto = conn.protocol
        if isinstance(proto, Handler):
            if proto.pb_used:
                st.connect_ns = REUSED
            else:
                proto.pb_used = True
                st.connect_ns = time.perf_counter_ns() - st.opened
            proto.pb = st
            st.proto = proto
        st.phase = WAITING
        return conn


def error_outcome(st: State, kind: str, detail: str) -> tuple[int | None, int, int, str, str]:
    """``(status, bytes, wire, kind, detail)`` of a request that ended early; the status only
    when the response's head was complete."""
    try:
        st.drain()
    except ReadError as exc:  # a bound passed in what was read already: the lean path saw it first
        kind, detail = exc.kind, exc.detail
    return (st.status if st.head_done else None), st.nbytes, st.wire, kind, detail
