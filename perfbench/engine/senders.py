"""How requests go over the wire. The engine talks to a sender (``protocols.py``), never to
aiohttp directly, so a leaner HTTP/1.1 path can sit beside the general one and produce the same
records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .protocols import Outcome, Sender
from .sweep import Sweep

if TYPE_CHECKING:
    import ssl

    from ..scenario import Scenario


class AiohttpSender:
    """The general path: aiohttp's client (TLS, redirects, cookies, proxies).

    aiohttp silently re-sends an idempotent request once when a reused keep-alive connection
    turns out dead (``ClientSession._retry_connection``). In a load test that hides a failure
    and sends a request the plan never asked for, so it is switched off: a dead connection is an
    error of kind ``reset``, recorded. What aiohttp raises is classified where it is caught
    (``classify.py``) and returned as the request's :class:`~perfbench.engine.protocols.Outcome`.

    Timeouts: aiohttp's own total timeout arms and cancels a timer per request (about a tenth of
    this path's CPU on a fast target), so the request timeout is the lean path's periodic sweep
    (``sweep.py``): it cancels a request's task once it has seen it in flight for ``timeout``,
    and the request ends as a ``read timeout``. aiohttp's connect timeout (``sock_connect``) is
    kept as it is: it arms a timer only when a connection is opened.
    """

    name = "aiohttp"

    def __init__(self, base_url: str, *, max_connections: int = 0, timeout: float = 30.0,
                 connect_timeout: float | None = None):
        import aiohttp  # here, not at import: a run on the lean path never loads aiohttp

        self.base_url = base_url.rstrip("/")
        self.max_connections = max_connections
        self.request_timeout = timeout
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout or timeout)
        self._session: aiohttp.ClientSession | None = None
        self._watched: dict[asyncio.Task[Any], object] = {}  # in request(): task -> a token for this request
        self._expired: set[asyncio.Task[Any]] = set()  # cancelled by the sweep, not by the run
        self._sweep = Sweep(timeout, self._watched.items, self._expire)

    async def start(self) -> None:
        import aiohttp

        tls: ssl.SSLContext | bool = True  # aiohttp's default (http:// targets need none)
        if self.base_url.startswith("https:"):
            from .lean import tls_context  # the same verification as the lean path's

            tls = tls_context()
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0, ttl_dns_cache=300, ssl=tls)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self.timeout, auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar()
        )
        self._session._retry_connection = False  # see the class docstring
        self._sweep.start()

    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None,
                      keep_body: bool = False) -> Outcome:
        assert self._session is not None, "start() the sender first"
        task = asyncio.current_task()
        assert task is not None, "request() runs in a task"
        watched = self._watched
        watched[task] = object()
        try:
            async with self._session.request(method, self.base_url + path, headers=headers, data=body,
                                             allow_redirects=False) as resp:
                data = await resp.read()
                status = resp.status
                location = resp.headers.get("Location") if 300 <= status < 400 else None
                cookies = tuple(resp.headers.getall("Set-Cookie", ())) if "Set-Cookie" in resp.headers else ()
                return Outcome(status, len(data), data if keep_body else None, None, None, location, cookies)
        except asyncio.CancelledError:
            if task in self._expired:  # the sweep's cancel, not the run's: a timeout (finally forgets it)
                task.uncancel()
                return Outcome(None, 0, None, "timeout", "read timeout")
            raise
        except Exception as exc:  # noqa: BLE001 - a failed request is data, whatever aiohttp raised
            from .classify import classify  # here: classify loads aiohttp, which the lean path never needs

            return Outcome(None, 0, None, *classify(exc))
        finally:
            del watched[task]
            if self._expired:
                self._expired.discard(task)

    def _expire(self, tasks: list[asyncio.Task[Any]]) -> None:
        """The sweep's verdict: cancel the requests in flight for longer than the timeout."""
        for task in tasks:
            if task not in self._expired:
                self._expired.add(task)
                task.cancel()

    async def close(self) -> None:
        self._sweep.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None


class AutoSender:
    """``auto`` when the scenario is not known yet: the lean path if the target and every request
    allow it, else aiohttp, decided when the engine binds the scenario (:meth:`bind`).

    Until then ``name`` is ``"auto"`` and ``request()`` (the login) goes through aiohttp, the
    general path. Pass ``scenario=`` to :func:`make_sender` to decide at once instead.
    """

    def __init__(self, target: str, *, max_connections: int = 0, timeout: float = 30.0):
        self.target = target
        self.max_connections = max_connections
        self.timeout = timeout
        self.chosen: Sender | None = None
        self.reason: str | None = None
        self._general: AiohttpSender | None = None

    @property
    def name(self) -> str:
        return "auto" if self.chosen is None else self.chosen.name

    async def start(self) -> None:
        pass

    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None,
                      keep_body: bool = False) -> Outcome:
        sender = self.chosen
        if sender is None:
            if self._general is None:
                self._general = AiohttpSender(self.target, max_connections=self.max_connections, timeout=self.timeout)
                await self._general.start()
            sender = self._general
        return await sender.request(method, path, headers, body, keep_body=keep_body)

    def bind(self, requests: Sequence[tuple[str, Mapping[str, str], bytes | None]]) -> Sender:
        """Choose for ``requests`` (see ``lean.lean_refusal``); returns the chosen sender, not started."""
        from .lean import LeanSender, lean_refusal

        if self.chosen is None:
            self.reason = lean_refusal(self.target, requests)
            if self.reason is None:
                self.chosen = LeanSender(self.target, max_connections=self.max_connections, timeout=self.timeout)
            else:
                self.chosen = self._general or AiohttpSender(self.target, max_connections=self.max_connections,
                                                             timeout=self.timeout)
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


def make_sender(target: str, *, http_path: str = "auto", max_connections: int = 0, timeout: float = 30.0,
                scenario: Scenario | None = None) -> Sender:
    """The sender for ``http_path``; the run records which one ran (``meta.engine.path``).

    ``lean``: the lean HTTP/1.1 path (``lean.py``), refused (ConfigError) for a target it cannot
    serve. ``aiohttp``: the general path. ``auto``: lean when the target and every request of
    ``scenario`` allow it, else aiohttp; without ``scenario`` the choice waits for the engine
    (:class:`AutoSender`).
    """
    if http_path == "aiohttp":
        return AiohttpSender(target, max_connections=max_connections, timeout=timeout)
    if http_path == "lean":
        from .lean import LeanSender

        return LeanSender(target, max_connections=max_connections, timeout=timeout)
    if http_path == "auto":
        if scenario is None:
            return AutoSender(target, max_connections=max_connections, timeout=timeout)
        from .lean import LeanSender, lean_refusal

        if lean_refusal(target, _engine_view(scenario)) is None:
            return LeanSender(target, max_connections=max_connections, timeout=timeout)
        return AiohttpSender(target, max_connections=max_connections, timeout=timeout)
    from ..errors import ConfigError

    raise ConfigError(f"http path {http_path!r} is not one of {', '.join(HTTP_PATHS)}")
