"""How requests go over the wire. The engine talks to a sender (``protocols.py``), never to
aiohttp directly, so a leaner HTTP/1.1 path can sit beside the general one and produce the same
records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .classify import classify, short
from .deadlines import NEVER, Deadlines
from .protocols import Outcome, ReadSpec, Sender
from .reading import BODY, DEFAULT_ACCEPT_ENCODING, DEFAULT_MAX_BODY, MAX_HEAD, ReadError, Timeouts

if TYPE_CHECKING:
    import ssl

    from ..scenario import Scenario
    from .aio import State


class AiohttpSender:
    """The general path: aiohttp's client (TLS, proxies, HEAD, large request bodies).

    aiohttp silently re-sends an idempotent request once when a reused keep-alive connection
    turns out dead (``ClientSession._retry_connection``). In a load test that hides a failure
    and sends a request the plan never asked for, so it is switched off: a dead connection is an
    error of kind ``reset``, recorded. What aiohttp raises is classified where it is caught
    (``classify.py``) and returned as the request's :class:`~perfbench.engine.protocols.Outcome`.

    Responses are read as the lean path reads them (``reading.py``): aiohttp's decompression is
    off and the body is read a read at a time, bounded, and decoded here; the head is bounded and
    the reads are timed by the hooks of ``aio.py``.

    Timeouts: aiohttp's own timeouts arm and cancel timers per request (about a tenth of this
    path's CPU on a fast target), so they are all off, and the lean path's deadline timer
    (``deadlines.py``) cancels a request's task when it passes a deadline; the request then ends
    as a ``timeout`` whose detail says the phase, with what it had read.
    """

    name = "aiohttp"

    def __init__(self, base_url: str, *, max_connections: int = 0, timeout: float = 30.0,
                 connect_timeout: float | None = None, dns: str = "once"):
        self.base_url = base_url.rstrip("/")
        self.dns = dns
        self.max_connections = max_connections
        self.request_timeout = timeout
        self.connect_timeout = connect_timeout
        self._session: Any = None  # aiohttp.ClientSession, once started

        self._states: dict[asyncio.Task[Any], State] = {}  # in request(): task -> its request's state
        self._timeouts: dict[ReadSpec, Timeouts] = {}
        self.deadlines = Deadlines(self._check, self._expire)

    async def start(self) -> None:
        import inspect

        import aiohttp

        from .aio import Connector

        tls: ssl.SSLContext | bool = True  # aiohttp's default (http:// targets need none)
        if self.base_url.startswith("https:"):
            from .lean import tls_context  # the same verification as the lean path's

            tls = tls_context()
        # dns "once": each name resolved once for the run (no expiry); "per-connection": no cache
        connector = Connector(self._states, limit=self.max_connections, limit_per_host=0, ttl_dns_cache=None,
                              use_dns_cache=self.dns == "once", ssl=tls)
        # aiohttp bounds each header line and the header count; the whole head is bounded by the
        # protocol hook (aio.Handler), as on the lean path
        limits: dict[str, Any] = {"max_line_size": MAX_HEAD, "max_field_size": MAX_HEAD, "max_headers": MAX_HEAD // 4}
        known = inspect.signature(aiohttp.ClientSession.__init__).parameters
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(), **{k: v for k, v in limits.items() if k in known})
        self._session._retry_connection = False  # see the class docstring
        self.deadlines.start()

    def _limits(self, spec: ReadSpec) -> Timeouts:
        t = self._timeouts.get(spec)
        if t is None:
            t = self._timeouts[spec] = Timeouts(spec.total or self.request_timeout, spec.connect or self.connect_timeout,
                                                spec.ttfb, spec.idle)
        return t

    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None,
                      keep_body: bool = False, spec: ReadSpec | None = None) -> Outcome:
        assert self._session is not None, "start() the sender first"
        from .aio import State, error_outcome
        from .reading import Decoder, coding_of, decodes

        task = asyncio.current_task()
        assert task is not None, "request() runs in a task"
        if spec is None:
            spec = ReadSpec(DEFAULT_MAX_BODY, keep_body)
        timeouts = self._limits(spec)
        st = State(spec, timeouts, time.perf_counter_ns())
        self._states[task] = st
        self.deadlines.arm(st.sent + timeouts.floor)
        if not any(k.lower() == "accept-encoding" for k in headers):
            headers = {**headers, "Accept-Encoding": DEFAULT_ACCEPT_ENCODING}
        try:
            async with self._session.request(method, self.base_url + path, headers=headers, data=body,
                                             allow_redirects=False) as resp:
                st.phase = BODY
                st.head_done = True
                st.status = resp.status
                st.declared = resp.content_length
                st.chunked = "chunked" in resp.headers.get("Transfer-Encoding", "").lower()
                st.content = content = resp.content
                try:
                    coding = coding_of(resp.headers.get("Content-Encoding")) if decodes(spec.accept_encoding) else None
                    if coding is not None:
                        st.decoder = Decoder(coding, spec.max_body, keep_body)
                    elif keep_body:
                        st.chunks = []
                    while data := await content.readany():
                        st.take(data)
                    if st.decoder is not None:
                        st.decoder.finish()
                except ReadError:
                    resp.close()  # never reused: the rest of the body is not read
                    raise
                if not keep_body:
                    kept = None
                elif st.decoder is not None:
                    kept = st.decoder.body()
                else:
                    kept = b"".join(st.chunks or ())
                status = resp.status
                location = resp.headers.get("Location") if 300 <= status < 400 else None
                cookies = tuple(resp.headers.getall("Set-Cookie", ())) if "Set-Cookie" in resp.headers else ()
                return Outcome(status, st.nbytes, kept, None, None, st.wire, st.ttfb, st.connect_ns, location, cookies,
                               resp.raw_headers)
        except asyncio.CancelledError:
            if st.timed_out is None:  # the run's cancel, not the deadline check's
                raise
            task.uncancel()
            return self._ended(st, *error_outcome(st, "timeout", st.timed_out))
        except ReadError as exc:
            return self._ended(st, *error_outcome(st, exc.kind, exc.detail))
        except Exception as exc:  # noqa: BLE001 - a failed request is data, whatever aiohttp raised
            return self._failed(st, exc)
        finally:
            del self._states[task]
            if st.proto is not None:
                st.proto.pb = None

    def _ended(self, st: State, status: int | None, nbytes: int, wire: int, kind: str, detail: str) -> Outcome:
        return Outcome(status, nbytes, None, kind, detail, wire, st.ttfb, st.connect_ns)

    def _failed(self, st: State, exc: Exception) -> Outcome:
        """The outcome of what aiohttp raised: a body cut short when the connection ended after the
        response's head, a reset when it ended before, else as ``classify`` says."""
        from .aio import error_outcome
        from .reading import incomplete_detail

        if st.bad:  # a malformed response (head or body): what aiohttp's parser said
            return self._ended(st, st.status if st.content is not None else None, st.nbytes, st.wire, "protocol",
                               short(exc))
        if st.lost and st.content is not None:
            status, nbytes, wire, kind, detail = error_outcome(st, "incomplete", "")
            if kind == "incomplete":
                detail = incomplete_detail(wire, st.declared, st.chunked, st.lost_exc is not None)
            return self._ended(st, status, nbytes, wire, kind, detail)
        if st.lost:
            return self._ended(st, None, 0, 0, "reset",
                               type(st.lost_exc).__name__ if st.lost_exc is not None else "ServerDisconnectedError")
        kind, detail = classify(exc)
        return Outcome(None, 0, None, kind, detail, 0, st.ttfb, st.connect_ns)

    def _check(self, now: int) -> tuple[int, list[tuple[asyncio.Task[Any], State, str]]]:
        """The deadlines' check (``deadlines.py``): the next deadline, and the requests past theirs."""
        nxt = NEVER
        late = []
        for task, st in self._states.items():
            if st.timed_out is not None:
                continue
            due, detail = st.timeouts.due(st.phase, st.sent, st.opened, st.last)
            if due <= now:
                late.append((task, st, detail))
            elif due < nxt:
                nxt = due
        return nxt, late

    def _expire(self, late: list[tuple[asyncio.Task[Any], State, str]]) -> None:
        """Cancel the late requests' tasks; each ends as a timeout with the phase it was in."""
        for task, st, detail in late:
            if st.timed_out is None and self._states.get(task) is st:
                st.timed_out = detail
                task.cancel()

    async def close(self) -> None:
        self.deadlines.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None


class AutoSender:
    """``auto`` when the scenario is not known yet: the lean path if the target and every request
    allow it, else aiohttp, decided when the engine binds the scenario (:meth:`bind`).

    Until then ``name`` is ``"auto"`` and ``request()`` (the login) goes through aiohttp, the
    general path. Pass ``scenario=`` to :func:`make_sender` to decide at once instead.
    """

    def __init__(self, target: str, *, max_connections: int = 0, timeout: float = 30.0, dns: str = "once"):
        self.target = target
        self.max_connections = max_connections
        self.timeout = timeout
        self.dns = dns
        self.chosen: Sender | None = None
        self.reason: str | None = None
        self._general: AiohttpSender | None = None

    @property
    def name(self) -> str:
        return "auto" if self.chosen is None else self.chosen.name

    async def start(self) -> None:
        pass

    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None,
                      keep_body: bool = False, spec: ReadSpec | None = None) -> Outcome:
        sender = self.chosen
        if sender is None:
            if self._general is None:
                self._general = AiohttpSender(self.target, max_connections=self.max_connections, timeout=self.timeout,
                                              dns=self.dns)
                await self._general.start()
            sender = self._general
        return await sender.request(method, path, headers, body, keep_body=keep_body, spec=spec)

    def bind(self, requests: Sequence[tuple[str, Mapping[str, str], bytes | None]]) -> Sender:
        """Choose for ``requests`` (see ``lean.lean_refusal``); returns the chosen sender, not started."""
        from .lean import LeanSender, lean_refusal

        if self.chosen is None:
            self.reason = lean_refusal(self.target, requests)
            if self.reason is None:
                self.chosen = LeanSender(self.target, max_connections=self.max_connections, timeout=self.timeout,
                                         dns=self.dns)
            else:
                self.chosen = self._general or AiohttpSender(self.target, max_connections=self.max_connections,
                                                             timeout=self.timeout, dns=self.dns)
        return self.chosen

    async def start_chosen(self) -> None:
        """Start the chosen sender (unless it is the aiohttp one the login already started)."""
        if self.chosen is not None and self.chosen is not self._general:
            await self.chosen.start()

    async def close(self) -> None:
        for s in {id(x): x for x in (self.chosen, self._general) if x is not None}.values():
            await s.close()


HTTP_PATHS = ("auto", "lean", "aiohttp")


def _engine_view(scenario: Scenario) -> list[tuple[str, Mapping[str, str], bytes | None]]:
    """``(method, headers, body)`` of each request as the engine sends it (for ``lean_refusal``)."""
    from ..scenario import _body

    return [(r.method.upper(), {**scenario.headers, **r.headers}, _body(r.json) if r.is_static else None)
            for r in scenario.requests]


DNS_POLICIES = ("once", "per-connection")


def make_sender(target: str, *, http_path: str = "auto", max_connections: int = 0, timeout: float = 30.0,
                scenario: Scenario | None = None, dns: str = "once") -> Sender:
    """The sender for ``http_path``; the run records which one ran (``meta.engine.path``).

    ``dns``: ``"once"`` resolves each host name once for the run (the default: a name's addresses
    do not change under a load test, and a resolver's latency stays out of the measurements);
    ``"per-connection"`` resolves it again for every new connection (a name behind DNS-based
    balancing or failover). Both are recorded in ``meta.engine.dns``.

    ``lean``: the lean HTTP/1.1 path (``lean.py``), refused (ConfigError) for a target it cannot
    serve. ``aiohttp``: the general path. ``auto``: lean when the target and every request of
    ``scenario`` allow it, else aiohttp; without ``scenario`` the choice waits for the engine
    (:class:`AutoSender`).
    """
    if http_path == "aiohttp":
        return AiohttpSender(target, max_connections=max_connections, timeout=timeout, dns=dns)
    if http_path == "lean":
        from .lean import LeanSender

        return LeanSender(target, max_connections=max_connections, timeout=timeout, dns=dns)
    if http_path == "auto":
        if scenario is None:
            return AutoSender(target, max_connections=max_connections, timeout=timeout, dns=dns)
        from .lean import LeanSender, lean_refusal

        if lean_refusal(target, _engine_view(scenario)) is None:
            return LeanSender(target, max_connections=max_connections, timeout=timeout, dns=dns)
        return AiohttpSender(target, max_connections=max_connections, timeout=timeout, dns=dns)
    from ..errors import ConfigError

    raise ConfigError(f"http path {http_path!r} is not one of {', '.join(HTTP_PATHS)}")
