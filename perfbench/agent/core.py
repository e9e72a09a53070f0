"""The agent itself: request binding, the aiohttp and ASGI middlewares, the token-guarded endpoints."""

from __future__ import annotations

import hmac
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import ConfigError
from ..safety import is_loopback_address
from ..wire import REQUEST_ID_HEADER
from . import sql

TOKEN_HEADER = "X-Perfbench-Token"
DEFAULT_PREFIX = "/_perfbench"
MIN_TOKEN_LENGTH = 16
MAX_TOKEN_BYTES = 1024  # a longer token header is wrong without being compared


def token_matches(given: str | bytes | None, expected: bytes | None) -> bool:
    """Whether the token header ``given`` is ``expected``, in constant time; never raises: a header
    that is missing, huge or not text (non-UTF-8 bytes, lone surrogates) is simply wrong (a 401)."""
    if given is None or expected is None:
        return False
    if isinstance(given, str):
        try:  # aiohttp decodes header bytes as UTF-8 with surrogateescape: this gives them back
            given = given.encode("utf-8", "surrogateescape")
        except UnicodeError:
            return False
    if len(given) > MAX_TOKEN_BYTES:
        return False
    return hmac.compare_digest(given, expected)


MAX_DRAIN = 200_000

_NUMERIC_SEGMENT = re.compile(r"^(?:[0-9]+|[0-9a-fA-F-]{16,})$")


class AgentError(ConfigError):
    """The agent was configured in a way it refuses (e.g. endpoints without a token); a ConfigError, so a ValueError."""


def cache_hit(name: str | None = None) -> None:
    """Tell the agent the service answered from its cache (counted against the current request)."""
    sql.record_cache("hit", name)


def cache_miss(name: str | None = None) -> None:
    """Tell the agent the service missed its cache (counted against the current request)."""
    sql.record_cache("miss", name)


def current_request() -> sql.RequestTag | None:
    """The request the agent bound to this context (request_id, endpoint), or None outside one."""
    return sql.REQUEST.get()


def path_template(path: str) -> str:
    """A low-cardinality endpoint for a raw path: numeric and id-like segments become ``{id}``."""
    return "/".join("{id}" if _NUMERIC_SEGMENT.match(s) else s for s in path.split("/"))


class Agent:
    """Attributes a service's SQL and cache events to the engine's request ids, and serves them.

    - ``token``: the secret the engine must send (at least 16 characters; e.g.
      ``secrets.token_urlsafe()``); defaults to ``$PERFBENCH_AGENT_TOKEN``.
    - ``endpoints``: serve the records over HTTP (needs the token; refused without one).
    - ``capacity``: records kept per kind before the oldest are dropped (and counted).
    - ``prefix``: where the endpoints live.

    ``install()``/``uninstall()`` start and stop the capture (the middlewares do it for you at
    startup/shutdown); ``log`` holds the records for in-process use (``log.drain()``).
    """

    def __init__(self, token: str | None = None, *, endpoints: bool = False,
                 capacity: int = sql.DEFAULT_CAPACITY, prefix: str = DEFAULT_PREFIX):
        if token is None:
            token = os.environ.get("PERFBENCH_AGENT_TOKEN") or None
        if endpoints:
            if not token:
                raise AgentError("the agent's endpoints need a token: pass token=... (or set "
                                 "PERFBENCH_AGENT_TOKEN); refusing to enable them without one")
            if len(token) < MIN_TOKEN_LENGTH:
                raise AgentError(f"the agent token must be at least {MIN_TOKEN_LENGTH} characters "
                                 "(use secrets.token_urlsafe())")
        if not prefix.startswith("/") or prefix.endswith("/") or len(prefix) < 2:
            raise AgentError(f"prefix must look like /_perfbench, got {prefix!r}")
        self._token = token.encode("utf-8") if (endpoints and token) else None
        self.endpoints = endpoints
        self.prefix = prefix
        self.log = sql.QueryLog(capacity)
        self.requests_seen = 0
        self.unattributed_requests = 0

    def __repr__(self) -> str:  # never shows the token
        return f"Agent(endpoints={self.endpoints}, prefix={self.prefix!r}, capacity={self.log.capacity})"

    # capture ----------------------------------------------------------------------------------------

    def install(self) -> Agent:
        sql.install(self.log)
        return self

    def uninstall(self) -> None:
        sql.uninstall(self.log)

    def bind(self, raw_request_id: str | bytes | None, endpoint: str | None) -> sql.RequestTag:
        request_id, status = sql.parse_request_id(raw_request_id)
        self.requests_seen += 1
        if request_id is None:
            self.unattributed_requests += 1
        return sql.RequestTag(self.log, request_id, endpoint, status)

    # endpoints --------------------------------------------------------------------------------------

    def is_agent_path(self, path: str) -> bool:
        return self.endpoints and (path == self.prefix or path.startswith(self.prefix + "/"))

    def handle(self, method: str, path: str, query: dict[str, str], client_host: str | None,
               token: str | bytes | None) -> tuple[int, dict[str, Any]]:
        """Answer an agent endpoint: ``(status, json body)``. Framework-free, for both middlewares;
        ``token``: the token header as the framework gives it (text or raw bytes)."""
        if not is_loopback_address(client_host):
            return 403, {"error": "the perfbench agent answers only loopback clients"}
        if not token_matches(token, self._token):
            return 401, {"error": f"missing or wrong {TOKEN_HEADER}"}
        action = path[len(self.prefix):].strip("/")
        if action == "status" and method == "GET":
            return 200, self.status()
        if action == "reset" and method == "POST":
            cleared = self.log.reset()
            self.requests_seen = self.unattributed_requests = 0
            return 200, {"cleared": cleared, **self.status()}
        if action == "records" and method == "POST":
            try:
                limit = int(query.get("limit", MAX_DRAIN))
            except ValueError:
                return 400, {"error": "limit must be an integer"}
            limit = max(1, min(limit, MAX_DRAIN))
            return 200, {**self.log.drain(limit), "clock_ns": time.perf_counter_ns(),
                         "requests_seen": self.requests_seen, "unattributed_requests": self.unattributed_requests}
        if action in ("status", "reset", "records"):
            return 405, {"error": f"method {method} not allowed on {path}"}
        return 404, {"error": f"no agent endpoint {path}"}

    def status(self) -> dict[str, Any]:
        return {"agent": "perfbench", "pid": os.getpid(), "clock_ns": time.perf_counter_ns(),
                "capturing": sql.installed(), "capacity": self.log.capacity, **self.log.pending(),
                "requests_seen": self.requests_seen, "unattributed_requests": self.unattributed_requests}

    # aiohttp ----------------------------------------------------------------------------------------

    def aiohttp_middleware(self):
        """The aiohttp middleware (``web.Application(middlewares=[agent.aiohttp_middleware()])``)."""
        from aiohttp import web

        @web.middleware
        async def perfbench_agent(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]):
            if self.is_agent_path(request.path):
                status, body = self.handle(request.method, request.path, dict(request.query), request.remote,
                                           request.headers.get(TOKEN_HEADER))
                return web.json_response(body, status=status)
            resource = request.match_info.route.resource
            template = resource.canonical if resource is not None else path_template(request.path)
            tag = self.bind(request.headers.get(REQUEST_ID_HEADER), f"{request.method} {template}")
            token = sql.REQUEST.set(tag)
            try:
                return await handler(request)
            finally:
                sql.REQUEST.reset(token)

        return perfbench_agent

    def install_aiohttp(self, app) -> Agent:  # noqa: ANN001
        """Put the middleware first in ``app`` (so it sees every request) and install the capture on
        startup, uninstall it on cleanup. Call before the app starts."""
        app.middlewares.insert(0, self.aiohttp_middleware())

        async def start(_app) -> None:  # noqa: ANN001
            self.install()

        async def stop(_app) -> None:  # noqa: ANN001
            self.uninstall()

        app.on_startup.insert(0, start)
        app.on_cleanup.append(stop)
        return self

    # ASGI -------------------------------------------------------------------------------------------

    def wrap_asgi(self, app) -> AgentASGIMiddleware:  # noqa: ANN001
        """``app`` wrapped in the pure ASGI middleware (installs the capture at once)."""
        self.install()
        return AgentASGIMiddleware(app, self)


class AgentASGIMiddleware:
    """A pure ASGI middleware: binds the request id for ``http`` and ``websocket`` scopes and answers
    the agent's endpoints; ``lifespan`` and anything else pass through untouched."""

    def __init__(self, app, agent: Agent):  # noqa: ANN001
        self.app = app
        self.agent = agent

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        raw_id = token = None
        for name, value in scope.get("headers") or ():
            lname = name.lower()
            if lname == b"x-request-id" and raw_id is None:
                raw_id = value
            elif lname == b"x-perfbench-token" and token is None:
                token = bytes(value)  # compared as the bytes sent (token_matches)
        method = scope.get("method", "WS")
        if kind == "http" and self.agent.is_agent_path(path):
            client = scope.get("client")
            query = {}
            for part in (scope.get("query_string") or b"").decode("latin-1").split("&"):
                key, _, val = part.partition("=")
                if key:
                    query[key] = val
            status, body = self.agent.handle(method, path, query, client[0] if client else None, token)
            data = json.dumps(body).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(data)).encode())]})
            await send({"type": "http.response.body", "body": data})
            return
        tag = self.agent.bind(raw_id, f"{method} {path_template(path)}")
        ctx_token = sql.REQUEST.set(tag)
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")  # Starlette sets the matched route in the scope
            route_path = getattr(route, "path", None)
            if isinstance(route_path, str):
                tag.endpoint = f"{method} {route_path}"
            sql.REQUEST.reset(ctx_token)
