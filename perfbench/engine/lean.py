"""The lean HTTP/1.1 path: keep-alive connections on (uv)loop transports, httptools' C parser.

Why: the per-request path is the whole budget of a Python load generator. aiohttp's client
spends a Task, a Future, a ClientResponse, a header multidict and a StreamReader on every
request; here a request is a ``transport.write`` of prebuilt bytes, and a response is a
``data_received`` fed to llhttp (through httptools) with two small callbacks. No Task, no
Future, no timer per request.

Pieces:

- :class:`LeanSender`: a pool of :class:`_Conn` (``asyncio.Protocol``) to one ``http://``
  origin, at most ``max_connections`` of them, opened on demand and replaced when they die.
  Two interfaces: the awaitable ``request()`` every sender offers (login, closed model), and the
  callback interface the open-model engine drives (``compile`` once per request kind, then
  ``submit(data, job, done)`` per request; ``done(job, status, nbytes, body, error, detail)``
  runs when the response is complete or the request failed).
- Errors are data, made here as kinds (``done``'s ``error`` and ``detail``, ``request()``'s
  :class:`~perfbench.engine.protocols.Outcome`), the same kinds (and mostly the same details) as
  :func:`perfbench.engine.classify.classify` gives on the aiohttp path: ``connect``
  (``ConnectionRefusedError``...), ``dns``, ``timeout`` (``connect timeout``, ``read timeout``),
  ``reset`` (``ServerDisconnectedError`` before a response, ``ClientPayloadError`` for a
  truncated body, the OS error's class for a reset), ``protocol`` (the parser's message). A dead
  connection is never retried behind the caller's back (as on the aiohttp path) and is replaced
  by a new one when a request needs it.
- Timeouts: the periodic sweep of ``sweep.py`` over the pool fails the connections whose
  request is older than ``timeout`` (no timer and no clock read per request).

TLS: ``https://`` targets run on uvloop's TLS transport with :func:`tls_context` (the context
aiohttp makes by default, and the one the aiohttp path gets too): certificates and host names are verified against the
system's CAs, or the bundle ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` name (how a test or a local
service with its own CA is trusted). A failed handshake or verification is an error of kind
``tls`` (detail: the ``ssl`` exception's class), as on the aiohttp path.

What the lean path does not do, so ``auto`` leaves it to aiohttp (see :func:`lean_refusal`):
proxies, credentials in the URL, HEAD (a response without the body its headers announce),
``Expect``, a ``Transfer-Encoding`` or ``Accept-Encoding`` the scenario sets itself (the
lean path sends no ``Accept-Encoding``, so servers answer uncompressed and ``bytes`` counts the
same body the aiohttp path counts after decompression), and request bodies over
``LEAN_MAX_BODY``. Redirects and cookies are the engine's (``follow.py``), on both paths: a 3xx
response's ``Location`` is handed to ``done`` as its ``detail`` (read from the header block only
for a 3xx), and ``request()`` returns ``Set-Cookie`` values in its :class:`Outcome`.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import sys
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

from ..errors import ConfigError, PerfbenchError
from ..wire import REQUEST_ID_HEADER
from .protocols import Done, Outcome
from .sweep import Sweep

if TYPE_CHECKING:
    from ..scenario import Request

try:  # the C parser (llhttp); without it ``auto`` uses aiohttp and ``lean`` refuses to start
    import httptools

    _HTTPTOOLS = True
except ImportError:  # pragma: no cover - httptools is a dependency
    _HTTPTOOLS = False

LEAN_MAX_BODY = 64 * 1024  # request bodies up to this size go on the lean path under ``auto``
# paths sent exactly as written; anything else is normalized and quoted the way aiohttp does
# (yarl), so both paths put the same request line on the wire
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9\-._~/=&?,:@+]*").fullmatch
_DOT_SEGMENT = re.compile(r"(^|/)\.\.?(/|$|\?)").search
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:", re.I).search
_CHUNKED = re.compile(rb"\r\ntransfer-encoding[ \t]*:[^\r\n]*chunked", re.I).search
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # aiohttp sends Content-Length: 0 for these


def _user_agent() -> str:
    try:
        from importlib.metadata import version

        v = version("perfbench")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        v = "dev"
    return f"perfbench/{v} (lean; Python {sys.version_info.major}.{sys.version_info.minor})"


def tls_context() -> ssl.SSLContext:
    """The TLS context of both HTTP paths: aiohttp's default one (verified, ALPN http/1.1), made
    when the sender is, so ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` set by then are honoured (aiohttp
    makes its own default once, when it is imported)."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(("http/1.1",))
    return context


class LeanTemplate:
    """The bytes of one kind of request, built once; ``build`` fills the path and body."""

    __slots__ = ("method_b", "headers_b", "id_header", "body_method")

    def __init__(self, method: str, header_block: bytes, id_header: str | None):
        self.method_b = method.encode("ascii")
        self.headers_b = header_block
        self.id_header = b"" if id_header is None else id_header.encode("ascii") + b": "
        self.body_method = method in _BODY_METHODS

    def build(self, raw_path: bytes, body: bytes | None) -> tuple[bytes, bytes]:
        """``(prefix, suffix)``: the request is ``prefix + request id + suffix`` (or the two joined
        when there is no id header)."""
        prefix = b"%b %b HTTP/1.1\r\n%b%b" % (self.method_b, raw_path, self.headers_b, self.id_header)
        if body is not None:
            suffix = b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
        elif self.body_method:
            suffix = b"Content-Length: 0\r\n\r\n"
        else:
            suffix = b"\r\n"
        if self.id_header:
            suffix = b"\r\n" + suffix
        return prefix, suffix


# a connection's transport until it is connected, and its ``done`` while no request is in flight:
# markers, so both attributes keep one type (the hot path reads them with no None check)
_NOT_CONNECTED: Final = asyncio.Transport()


def _no_request(job: Any, status: int | None, nbytes: int, body: bytes | None, error: str | None,
                detail: str | None) -> None:
    raise PerfbenchError("a response completed with no request in flight")


class _Conn(asyncio.Protocol):
    """One keep-alive connection; at most one request at a time (no pipelining)."""

    __slots__ = ("pool", "transport", "parser", "job", "done", "nbytes", "chunks", "head", "complete", "status",
                 "keep_alive", "pending", "task", "closed", "extra")

    def __init__(self, pool: LeanSender):
        self.pool = pool
        self.transport: asyncio.Transport = _NOT_CONNECTED
        self.parser = httptools.HttpResponseParser(self)
        self.job: Any = None  # what the caller gave with the request; None when idle
        self.done: Done = _no_request
        self.nbytes = 0
        self.chunks: list[bytes] | None = None  # body chunks, when the caller keeps the body
        # the data of a response that did not complete in one read (for the EOF-delimited body
        # check in connection_lost); a response read whole in one data_received never lands here
        self.head: list[bytes] = []
        self.complete = False
        self.status = 0
        self.keep_alive = True
        self.pending: bytes | None = None  # written once connected
        self.task: asyncio.Task[None] | None = None  # the connect task
        self.closed = False
        self.extra = False

    # -- the request --------------------------------------------------------------------------
    def begin(self, data: bytes, job: Any, done: Done, keep: bool) -> None:
        """Send a request (on a new or connecting connection; idle ones are reused by
        :meth:`LeanSender.submit`, which does the same inline)."""
        self.job = job
        self.done = done
        self.nbytes = 0
        self.chunks = [] if keep else None
        if self.transport is _NOT_CONNECTED:
            self.pending = data
        else:
            self.transport.write(data)

    def _finish(self, status: int | None, body: bytes | None, error: str | None, detail: str | None) -> None:
        """End the request in flight on an error or an EOF (the connection is not reused)."""
        job, done, nbytes = self.job, self.done, self.nbytes
        self.job = None
        self.done = _no_request
        self.chunks = None
        self.head.clear()
        done(job, status, nbytes, body, error, detail)

    def fail(self, error: str, detail: str) -> None:
        """End the request with an error and drop the connection (it is in an unknown state)."""
        self.drop()
        if self.job is not None:
            self._finish(None, None, error, detail)

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
        if self.closed:  # timed out while connecting
            stream.abort()
            return
        data, self.pending = self.pending, None
        if data is not None:
            stream.write(data)

    def data_received(self, data: bytes) -> None:
        # the hot path: everything a completed response needs is inline (no further Python call
        # before ``done``), and the connection is idle again before ``done`` runs, so ``done`` can
        # send the next request on it at once
        job = self.job
        if job is None:
            self.fail("protocol", "data received with no request in flight")
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.complete = False
            self.fail("protocol", _short(exc) or type(exc).__name__)
            return
        if not self.complete:
            self.head.append(data)
            return
        self.complete = False
        if self.extra:  # a second response to one request
            self.fail("protocol", "more than one response to one request")
            return
        done = self.done
        self.job = None
        self.done = _no_request
        body = None
        status = self.status
        location = None
        if (chunks := self.chunks) is not None:
            body = b"".join(chunks)
            self.chunks = None
            if job.__class__ is _Waiter:  # request(): the awaitable interface hands the headers on too
                self.pool.last_head = _head_of(self.head, data)
        if 300 <= status < 400:  # a redirect: its Location goes to ``done`` as the detail
            location = _header(_head_of(self.head, data), b"location")
        if self.head:
            self.head.clear()
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
        done(job, status, self.nbytes, body, None, location)

    def eof_received(self) -> bool:
        return False  # close; connection_lost decides what a request in flight gets

    def connection_lost(self, exc: Exception | None) -> None:
        was_closed = self.closed
        self.closed = True
        if not was_closed:
            self.pool._forget(self)
        if self.job is None:
            return
        head = b"".join(self.head)
        end = head.find(b"\r\n\r\n")  # the response's headers were complete
        if end >= 0 and exc is None and _CONTENT_LENGTH(head[:end]) is None and _CHUNKED(head[:end]) is None:
            # a body delimited by the end of the connection: complete now
            self.status = status = self.parser.get_status_code()
            if self.chunks is not None and self.job.__class__ is _Waiter:
                self.pool.last_head = head[:end]
            location = _header(head[:end], b"location") if 300 <= status < 400 else None
            self._finish(status, b"".join(self.chunks) if self.chunks is not None else None, None, location)
        elif exc is None:
            self._finish(None, None, "reset", "ClientPayloadError" if end >= 0 else "ServerDisconnectedError")
        else:
            self._finish(None, None, "reset", type(exc).__name__)

    # -- httptools callbacks (each a Python call per response: only the two needed) -------------
    def on_body(self, body: bytes) -> None:
        self.nbytes += len(body)
        if self.chunks is not None:
            self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.complete:
            self.extra = True
        self.complete = True
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()


class _Waiter:
    """The job of a ``request()`` (the awaitable interface): the future it resolves."""

    __slots__ = ("fut", "keep_body")

    def __init__(self, fut: asyncio.Future[Outcome], keep_body: bool):
        self.fut = fut
        self.keep_body = keep_body


def _head_of(head: list[bytes], data: bytes) -> bytes:
    """The header block of the response whose reads are ``head`` and then ``data``."""
    raw = b"".join(head) + data if head else data
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[:end]


def _header(block: bytes, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case) in a response's header block."""
    for value in _headers(block, name):
        return value
    return None


def _headers(block: bytes, name: bytes) -> list[str]:
    """Every value of header ``name`` (lower case) in a response's header block."""
    out = []
    for line in block.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            out.append(value.strip().decode("latin-1"))
    return out


def _short(exc: BaseException, limit: int = 120) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:limit]


class LeanSender:
    """Keep-alive HTTP/1.1 to one ``http://`` or ``https://`` origin; see the module docstring."""

    name = "lean"

    def __init__(self, base_url: str, *, max_connections: int = 0, timeout: float = 30.0):
        if not _HTTPTOOLS:
            from ..errors import ConfigError

            raise ConfigError("the lean HTTP path needs httptools (pip install httptools); use http_path='aiohttp'")
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname or u.username or u.password:
            from ..errors import ConfigError

            raise ConfigError(f"the lean HTTP path serves http:// and https:// targets without credentials, "
                              f"not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.base_path = u.path.rstrip("/")
        self.host = u.hostname
        default_port = 443 if u.scheme == "https" else 80
        self.port = u.port or default_port
        self.ssl: ssl.SSLContext | None = tls_context() if u.scheme == "https" else None
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if self.port == default_port else f"{host}:{self.port}"
        self.max_connections = max_connections if max_connections > 0 else 10_000
        self.timeout = timeout
        self._idle: list[_Conn] = []
        self._conns: set[_Conn] = set()  # open or connecting
        self._queue: deque[tuple[bytes, Any, Done, bool]] = deque()  # waiting for a connection
        self._addrs: list[tuple[str, int]] | None = None
        self._dns_error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweep = Sweep(timeout, self._requests_in_flight, self._expire)
        self._closing = False
        self._user_agent = _user_agent()
        self.opened = 0  # connections opened over the sender's life (keep-alive reuse is visible)
        self.last_head = b""  # the header block of the last response to request() (read by its done)

    # -- life cycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            infos = await self._loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            # (host, port) of each address: IPv4 and IPv6 socket addresses start with them
            self._addrs = [(str(i[4][0]), int(i[4][1])) for i in infos]
        except socket.gaierror as exc:
            self._dns_error = _short(exc)
        self._sweep.start()

    async def close(self) -> None:
        self._closing = True
        self._sweep.stop()
        self.abort_all("aborted", "still in flight when the sender closed")
        for c in list(self._conns):
            c.drop()
        await asyncio.sleep(0)  # let the transports close

    # -- building requests ----------------------------------------------------------------------
    def template(self, method: str, headers: Mapping[str, str], id_header: str | None = REQUEST_ID_HEADER
                 ) -> LeanTemplate:
        """Headers as the aiohttp path sends them: defaults, overridden by the given ones."""
        merged = {"host": ("Host", self.host_header), "user-agent": ("User-Agent", self._user_agent),
                  "accept": ("Accept", "*/*")}
        for k, v in headers.items():
            if id_header is not None and k.lower() == id_header.lower():
                continue
            if k.lower() == "content-length":
                continue  # computed from the body
            merged[k.lower()] = (k, str(v))
        lines = []
        for k, v in merged.values():
            if any(ch in k or ch in v for ch in "\r\n\0") or not k:
                raise ConfigError(f"header {k!r} holds a line break or NUL")
            lines.append(f"{k}: {v}\r\n")
        return LeanTemplate(method.upper(), "".join(lines).encode("latin-1"), id_header)

    def raw_path(self, path: str) -> bytes:
        """The request target aiohttp would send for ``base_url + path``."""
        full = self.base_path + path
        if _PLAIN_PATH(full) and not _DOT_SEGMENT(full):
            return full.encode("ascii")
        import yarl

        return yarl.URL(self.base_url + path).raw_path_qs.encode("ascii")

    def compile(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None,
                id_header: str | None = REQUEST_ID_HEADER) -> tuple[bytes, bytes]:
        return self.template(method, headers, id_header).build(self.raw_path(path), body)

    # -- the callback interface (the open-model engine) ------------------------------------------
    def submit(self, data: bytes, job: Any, done: Done, keep: bool = False) -> None:
        """Send ``data`` on an idle connection (or a new one, or when one frees up); ``done(job,
        status, nbytes, body, error, detail)`` is called exactly once, from the event loop."""
        idle = self._idle
        if idle:  # _Conn.begin, inline (the hot path): an idle connection is connected
            c = idle.pop()
            c.job = job
            c.done = done
            c.nbytes = 0
            c.chunks = [] if keep else None
            c.transport.write(data)
        elif len(self._conns) < self.max_connections:
            self._open().begin(data, job, done, keep)
        else:
            self._queue.append((data, job, done, keep))

    def abort_all(self, error: str = "aborted", detail: str = "still in flight when the run stopped") -> int:
        """End every request in flight or queued with ``error``; their connections are dropped."""
        n = 0
        while self._queue:
            _, job, done, _ = self._queue.popleft()
            done(job, None, 0, None, error, detail)
            n += 1
        for c in list(self._conns):
            if c.job is not None:
                c.fail(error, detail)
                n += 1
        return n

    @property
    def in_flight(self) -> int:
        return sum(1 for c in self._conns if c.job is not None) + len(self._queue)

    # -- the awaitable interface ----------------------------------------------------------------
    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None,
                      keep_body: bool = False) -> Outcome:
        assert self._loop is not None, "start() the sender first"
        prefix, suffix = self.compile(method, path, headers, body, id_header=None)
        fut: asyncio.Future[Outcome] = self._loop.create_future()
        # the body is always read (bounded): its headers come with it (cookies, redirects)
        self.submit(prefix + suffix, _Waiter(fut, keep_body), self._resolve, True)
        return await fut

    def _resolve(self, job: _Waiter, status: int | None, nbytes: int, body: bytes | None, error: str | None,
                 detail: str | None) -> None:
        """``done`` for ``request()``: the callback interface's outcome, as the awaitable one's (a
        response's ``Set-Cookie`` values and a redirect's ``Location`` too)."""
        fut, keep_body = job.fut, job.keep_body
        head, self.last_head = self.last_head, b""
        if fut.done():
            return
        if status is None or error is not None:
            fut.set_result(Outcome(status, nbytes, None, error, detail))
            return
        cookies = tuple(_headers(head, b"set-cookie")) if b"set-cookie" in head.lower() else ()
        fut.set_result(Outcome(status, nbytes, body if keep_body else None, None, None, detail, cookies))

    # -- the pool -------------------------------------------------------------------------------
    def _open(self) -> _Conn:
        assert self._loop is not None, "start() the sender first"
        conn = _Conn(self)
        self._conns.add(conn)
        self.opened += 1
        conn.task = self._loop.create_task(self._connect(conn))
        return conn

    async def _connect(self, conn: _Conn) -> None:
        if self._dns_error is not None:
            conn.task = None
            conn.fail("dns", self._dns_error)
            return
        assert self._loop is not None, "start() the sender first"
        err: OSError | None = None
        hostname = None if self.ssl is None else self.host  # TLS verifies the name, not the address
        for host, port in self._addrs or [(self.host, self.port)]:
            try:
                await self._loop.create_connection(lambda: conn, host, port, ssl=self.ssl, server_hostname=hostname)
                return
            except ssl.SSLError as exc:  # the server answered: another address would not do better
                conn.task = None
                conn.fail("tls", type(exc).__name__)
                return
            except OSError as exc:
                err = exc
            except asyncio.CancelledError:  # dropped (timed out) while connecting
                return
        conn.task = None
        conn.fail("connect", type(err).__name__ if err is not None else "no address")

    def _release(self, conn: _Conn) -> None:
        if self._queue and not self._closing:
            data, job, done, keep = self._queue.popleft()
            conn.begin(data, job, done, keep)
            return
        self._idle.append(conn)

    def _forget(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        if self._queue and not self._closing and len(self._conns) < self.max_connections:
            data, job, done, keep = self._queue.popleft()
            self._open().begin(data, job, done, keep)

    def _requests_in_flight(self) -> list[tuple[_Conn, object]]:
        """``(connection, request)`` for the timeout sweep (see ``sweep.py``)."""
        return [(c, c.job) for c in self._conns if c.job is not None]

    def _expire(self, conns: list[_Conn]) -> None:
        """The sweep's verdict: these connections' requests are older than ``timeout``."""
        for c in conns:
            if c.job is not None:
                c.fail("timeout", "read timeout" if c.transport is not _NOT_CONNECTED else "connect timeout")


def lean_refusal(target: str, requests: Iterable[Request | tuple[str, Mapping[str, str], bytes | None]] = ()
                 ) -> str | None:
    """Why the lean path cannot serve ``target`` and the scenario's ``requests`` (None: it can).

    ``requests`` holds :class:`perfbench.scenario.Request` objects, or ``(method, headers,
    body)`` tuples (the engine's view, after scenario and login headers are merged).
    """
    if not _HTTPTOOLS:
        return "httptools is not installed"
    u = urlsplit(target)
    if u.scheme not in ("http", "https"):
        return f"{u.scheme}:// targets go through aiohttp"
    if u.username or u.password:
        return "credentials in the target URL"
    for r in requests:
        if isinstance(r, tuple):
            method, headers, body = r
            name = method
        else:
            from ..scenario import _body

            method, headers, name = r.method.upper(), r.headers, r.name
            body = _body(r.json) if r.is_static else None
        if method.upper() in ("HEAD", "CONNECT"):
            return f"request {name!r}: {method} responses have no body to read"
        if body is not None and len(body) > LEAN_MAX_BODY:
            return f"request {name!r}: a body over {LEAN_MAX_BODY} bytes"
        for k, v in headers.items():
            low = k.lower()
            if low in ("expect", "transfer-encoding", "upgrade"):
                return f"request {name!r}: header {k}"
            if low == "accept-encoding" and str(v).strip().lower() != "identity":
                return f"request {name!r}: Accept-Encoding {v!r} (the lean path does not decompress)"
            if any(ch in str(k) + str(v) for ch in "\r\n\0"):
                return f"request {name!r}: header {k!r} holds a line break"
    return None
