"""The lean HTTP/1.1 path: keep-alive connections on (uv)loop transports, httptools' C parser.

Why: the per-request path is the whole budget of a Python load generator. aiohttp's client
spends a Task, a Future, a ClientResponse, a header multidict and a StreamReader on every
request; here a request is a ``transport.write`` of prebuilt bytes, and a response is a
``data_received`` fed to llhttp (through httptools) with two small callbacks. No Task, no
Future, no timer per request.

Pieces:

- :class:`LeanSender`: a pool of connections (``lean_conn.Conn``, an ``asyncio.Protocol``) to one
  origin, at most ``max_connections`` of them, opened on demand and replaced when they die.
  Two interfaces: the awaitable ``request()`` every sender offers (login, closed model), and the
  callback interface the open-model engine drives (``template`` and ``kind`` once per request
  kind, then ``submit(data, job, done, kind, sent)`` per request; ``done`` runs with an
  Outcome's fields when the response is complete or the request failed).
- Responses are read as ``reading.py`` says, alike on both paths: bounded bodies and heads
  (``too_large``), gzip and deflate decoded, a body cut short is ``incomplete``.
- Errors are data, made here as kinds (``done``'s ``error`` and ``detail``, ``request()``'s
  :class:`~perfbench.engine.protocols.Outcome`), the same kinds and details as the aiohttp path
  records: ``connect`` (``ConnectionRefusedError``...), ``dns``, ``timeout`` (by phase, see
  ``reading.Timeouts``), ``reset`` (``ServerDisconnectedError`` before a response, the OS error's
  class for a reset), ``incomplete``, ``too_large``, ``protocol`` (the parser's message). A dead
  connection is never retried behind the caller's back (as on the aiohttp path) and is replaced
  by a new one when a request needs it.
- Timeouts: one timer armed at the earliest deadline (``deadlines.py``), checked against each
  request's send time (read by the engine when it sends anyway).

TLS: ``https://`` targets run on uvloop's TLS transport with :func:`tls_context` (the context
aiohttp makes by default, and the one the aiohttp path gets too): certificates and host names are verified against the
system's CAs, or the bundle ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` name (how a test or a local
service with its own CA is trusted). A failed handshake or verification is an error of kind
``tls`` (detail: the ``ssl`` exception's class), as on the aiohttp path.

What the lean path does not do, so ``auto`` leaves it to aiohttp (see :func:`lean_refusal`):
proxies, credentials in the URL, HEAD (a response without the body its headers announce),
``Expect``, a ``Transfer-Encoding`` the scenario sets itself, and request bodies over
``LEAN_MAX_BODY``. Redirects and cookies are the engine's (``follow.py``), on both paths: a 3xx
response's ``Location`` is handed to ``done`` as its ``detail``, and ``request()`` (whose kinds
ask for the heads, see ``LeanKind``) returns the ``Location`` and ``Set-Cookie`` values in its
:class:`Outcome`.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..wire import REQUEST_ID_HEADER
from .deadlines import NEVER, Deadlines
from .lean_conn import Conn, LeanKind, header_value, header_values
from .protocols import AT_END, NO_BYTE, Done, Outcome, ReadSpec
from .reading import DEFAULT_ACCEPT_ENCODING, DEFAULT_MAX_BODY, Timeouts, decodes

_Conn = Conn  # the connection's former name (benchmarks/hot_path.py builds them)

if TYPE_CHECKING:
    from ..scenario import Request

try:  # the C parser (llhttp); without it ``auto`` uses aiohttp and ``lean`` refuses to start
    from .lean_conn import Conn, LeanKind

    _HTTPTOOLS = True
except ImportError:  # pragma: no cover - httptools is a dependency
    _HTTPTOOLS = False

LEAN_MAX_BODY = 64 * 1024  # request bodies up to this size go on the lean path under ``auto``
# paths sent exactly as written; anything else is normalized and quoted the way aiohttp does
# (yarl), so both paths put the same request line on the wire
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9\-._~/=&?,:@+]*").fullmatch
_DOT_SEGMENT = re.compile(r"(^|/)\.\.?(/|$|\?)").search
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


def _short(exc: BaseException, limit: int = 120) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:limit]


class LeanSender:
    """Keep-alive HTTP/1.1 to one ``http://`` or ``https://`` origin; see the module docstring."""

    name = "lean"

    def __init__(self, base_url: str, *, max_connections: int = 0, timeout: float = 30.0, dns: str = "once"):
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
        self._queue: deque[tuple[bytes, Any, Done, LeanKind, int]] = deque()  # waiting for a connection
        self.dns = dns  # "once": resolved at start; "per-connection": again for every new connection
        self._addrs: list[tuple[str, int]] | None = None
        self._dns_error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.deadlines = Deadlines(self._check, self._expire)
        self._kinds: dict[tuple[ReadSpec, bool | str], LeanKind] = {}
        self.default_kind = self.kind(ReadSpec(DEFAULT_MAX_BODY))
        self._closing = False
        self._user_agent = _user_agent()
        self.opened = 0  # connections opened over the sender's life (keep-alive reuse is visible)

    # -- life cycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.dns == "once":
            self._addrs, self._dns_error = await self._resolve()
        self.deadlines.start()

    async def _resolve(self) -> tuple[list[tuple[str, int]] | None, str | None]:
        """The target's addresses ``(host, port)``, or why they could not be had."""
        assert self._loop is not None, "start() the sender first"
        try:
            infos = await self._loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return None, _short(exc)
        # (host, port) of each address: IPv4 and IPv6 socket addresses start with them
        return [(str(i[4][0]), int(i[4][1])) for i in infos], None

    async def close(self) -> None:
        self._closing = True
        self.deadlines.stop()
        self.abort_all("aborted", "still in flight when the sender closed")
        for c in list(self._conns):
            c.drop()
        await asyncio.sleep(0)  # let the transports close

    # -- building requests ----------------------------------------------------------------------
    def template(self, method: str, headers: Mapping[str, str], id_header: str | None = REQUEST_ID_HEADER
                 ) -> LeanTemplate:
        """Headers as the aiohttp path sends them: defaults, overridden by the given ones."""
        merged = {"host": ("Host", self.host_header), "user-agent": ("User-Agent", self._user_agent),
                  "accept": ("Accept", "*/*"), "accept-encoding": ("Accept-Encoding", DEFAULT_ACCEPT_ENCODING)}
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
    def kind(self, spec: ReadSpec, heads: bool | str = False) -> LeanKind:
        """How requests read by ``spec`` are read (one object per distinct spec); ``heads``: the
        response heads are handed to ``done`` (see ``LeanKind``)."""
        kind = self._kinds.get((spec, heads))
        if kind is None:
            timeouts = Timeouts(spec.total or self.timeout, spec.connect, spec.ttfb, spec.idle)
            kind = self._kinds[spec, heads] = LeanKind(spec.max_body, spec.keep_body, timeouts,
                                                       decodes(spec.accept_encoding), heads)
        return kind

    def submit(self, data: bytes, job: Any, done: Done, kind: LeanKind, sent: int) -> None:
        """Send ``data`` on an idle connection (or a new one, or when one frees up); ``done`` is
        called exactly once, from the event loop. ``sent``: ``time.perf_counter_ns()`` at the send."""
        idle = self._idle
        if idle:  # Conn.begin, inline (the hot path): an idle connection is connected
            c = idle.pop()
            c.job = job
            c.done = done
            c.kind = kind
            c.sent = sent
            c.nbytes = 0
            c.limit = kind.limit
            if sent + kind.floor < self.deadlines.armed:
                self.deadlines.arm(sent + kind.floor)
            c.transport.write(data)
        elif len(self._conns) < self.max_connections:
            self._open().begin(data, job, done, kind, sent)
        else:
            self._queue.append((data, job, done, kind, sent))

    def abort_all(self, error: str = "aborted", detail: str = "still in flight when the run stopped") -> int:
        """End every request in flight or queued with ``error``; their connections are dropped."""
        n = 0
        while self._queue:
            _, job, done, _, _ = self._queue.popleft()
            done(job, None, 0, 0, None, error, detail, NO_BYTE, -2)
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
                      keep_body: bool = False, spec: ReadSpec | None = None) -> Outcome:
        assert self._loop is not None, "start() the sender first"
        if spec is None:
            spec = ReadSpec(DEFAULT_MAX_BODY, keep_body)
        elif spec.keep_body != keep_body:
            spec = spec._replace(keep_body=keep_body)
        prefix, suffix = self.compile(method, path, headers, body, id_header=None)
        fut: asyncio.Future[Outcome] = self._loop.create_future()
        sent = time.perf_counter_ns()
        self.submit(prefix + suffix, (fut, sent), _resolve, self.kind(spec, heads=True), sent)
        return await fut

    # -- the pool -------------------------------------------------------------------------------
    def _open(self) -> _Conn:
        assert self._loop is not None, "start() the sender first"
        conn = _Conn(self)
        self._conns.add(conn)
        self.opened += 1
        conn.task = self._loop.create_task(self._connect(conn))
        return conn

    async def _connect(self, conn: _Conn) -> None:
        addrs, dns_error = self._addrs, self._dns_error
        if self.dns != "once":  # re-resolved for every new connection (a name whose addresses change)
            try:
                addrs, dns_error = await self._resolve()
            except asyncio.CancelledError:  # dropped (timed out) while resolving
                return
        if dns_error is not None:
            conn.task = None
            conn.fail("dns", dns_error)
            return
        assert self._loop is not None, "start() the sender first"
        err: OSError | None = None
        hostname = None if self.ssl is None else self.host  # TLS verifies the name, not the address
        for host, port in addrs or [(self.host, self.port)]:
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
            conn.begin(*self._queue.popleft())
            return
        self._idle.append(conn)

    def _forget(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        if self._queue and not self._closing and len(self._conns) < self.max_connections:
            self._open().begin(*self._queue.popleft())

    def _check(self, now: int) -> tuple[int, list[tuple[Conn, Any, str]]]:
        """The deadlines' check (``deadlines.py``): the next deadline, and the requests past theirs."""
        nxt = NEVER
        late: list[tuple[Conn, Any, str]] = []
        for c in self._conns:
            if c.job is None:
                continue
            due, detail = c.kind.timeouts.due(c.phase(), c.sent, c.opened, c.last)
            if due <= now:
                late.append((c, c.job, detail))
            elif due < nxt:
                nxt = due
        return nxt, late

    def _expire(self, late: list[tuple[Conn, Any, str]]) -> None:
        for c, job, detail in late:
            if c.job is job:  # still the request that was late
                c.time_out(detail)


def _resolve(job: tuple[asyncio.Future[Outcome], int], status: int | None, nbytes: int, wire: int,
             body: bytes | None, error: str | None, detail: str | None, ttfb: int, connect: int) -> None:
    """``done`` for ``request()``: the callback interface's outcome, as the awaitable one's."""
    fut, sent = job
    first = time.perf_counter_ns() - sent if ttfb == AT_END else None if ttfb == NO_BYTE else ttfb
    if fut.done():
        return
    if status is None or error is not None or detail is None:
        fut.set_result(Outcome(status, nbytes, body, error, detail, wire, first, connect))
        return
    # a response: its detail is its head (the kind asked for heads), for its Location and cookies
    head = detail.encode("latin-1")
    location = header_value(head, b"location") if 300 <= status < 400 else None
    cookies = tuple(header_values(head, b"set-cookie")) if b"set-cookie" in head.lower() else ()
    fut.set_result(Outcome(status, nbytes, body, None, None, wire, first, connect, location, cookies, detail))


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
            if any(ch in str(k) + str(v) for ch in "\r\n\0"):
                return f"request {name!r}: header {k!r} holds a line break"
    return None
