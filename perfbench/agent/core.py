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
from . import pools, sql, timing

TOKEN_HEADER = "X-Perfbench-Token"
DEFAULT_PREFIX = "/_perfbench"
MEMORY_PATH = DEFAULT_PREFIX + "/memory"  # perfbench.agent.memory's endpoint: not the agent's to answer
TOKEN_ENV = "PERFBENCH_AGENT_TOKEN"
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
    - ``endpoints``: serve the records over HTTP. The default (None) is on when there is a token and
      off without one; True without a token is refused (:class:`AgentError`).
    - ``capacity``: records kept per kind before the oldest are dropped (and counted).
    - ``prefix``: where the endpoints live.

    Given an application first, the agent is that application's ASGI middleware
    (``Agent(app, token=...)``: what Starlette's and FastAPI's ``app.add_middleware(Agent)`` do).
    Otherwise ``install_aiohttp(app)``, ``wrap_asgi(app)`` and ``wrap_wsgi(app)`` put it in front of
    an application; ``install()``/``uninstall()`` start and stop the capture alone (the wrappers
    install it); ``log`` holds the records for in-process use (``log.drain()``).
    """

    def __init__(self, app: Any = None, /, token: str | None = None, *, endpoints: bool | None = None,
                 capacity: int = sql.DEFAULT_CAPACITY, prefix: str = DEFAULT_PREFIX):
        if isinstance(app, str):  # Agent("token"): the token, given positionally
            if token is not None:
                raise AgentError("the agent's token was given twice (positionally and as token=)")
            app, token = None, app
        if token is None:
            token = os.environ.get(TOKEN_ENV) or None
        if endpoints is None:  # the default: on when there is a token to guard them
            endpoints = token is not None
        if endpoints:
            if not token:
                raise AgentError(f"the agent's endpoints need a token: pass token=... (or set {TOKEN_ENV}); "
                                 "refusing to enable them without one")
            if len(token) < MIN_TOKEN_LENGTH:
                raise AgentError(f"the agent token must be at least {MIN_TOKEN_LENGTH} characters "
                                 "(use secrets.token_urlsafe())")
        if not prefix.startswith("/") or prefix.endswith("/") or len(prefix) < 2:
            raise AgentError(f"prefix must look like /_perfbench, got {prefix!r}")
        self._token = token.encode("utf-8") if (endpoints and token) else None
        self.endpoints = endpoints
        self.prefix = prefix
        self.log = sql.QueryLog(capacity)
        self.timings = timing.RequestTimings(capacity)  # server-side time per request (perfbench.agent.timing)
        self.gauges = pools.Gauges(capacity)  # pools and queues sampled over time (perfbench.agent.pools)
        self.requests_seen = 0
        self.unattributed_requests = 0
        self.app = app
        self._asgi = None if app is None else self.wrap_asgi(app)

    def __repr__(self) -> str:  # never shows the token
        return f"Agent(endpoints={self.endpoints}, prefix={self.prefix!r}, capacity={self.log.capacity})"

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        """The ASGI application, when the agent was given one (``Agent(app, ...)``)."""
        if self._asgi is None:
            raise AgentError("this Agent wraps no application: create it as Agent(app, ...) or use "
                             "agent.wrap_asgi(app)")
        await self._asgi(scope, receive, send)

    # capture ----------------------------------------------------------------------------------------

    def install(self) -> Agent:
        sql.install(self.log)
        self.timings.install()
        self.gauges.install()
        return self

    def uninstall(self) -> None:
        sql.uninstall(self.log)
        self.timings.uninstall()
        self.gauges.uninstall()

    def bind(self, raw_request_id: str | bytes | None, endpoint: str | None) -> sql.RequestTag:
        request_id, status = sql.parse_request_id(raw_request_id)
        self.requests_seen += 1
        if request_id is None:
            self.unattributed_requests += 1
        return sql.RequestTag(self.log, request_id, endpoint, status)

    # endpoints --------------------------------------------------------------------------------------

    def is_agent_path(self, path: str) -> bool:
        """A path the agent answers; the memory endpoint (``perfbench.agent.memory``, under ``MEMORY_PATH``)
        answers for itself, with the same token when the agent is on (one token for both)."""
        if path == MEMORY_PATH or path.startswith(MEMORY_PATH + "/"):
            return False
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
            cleared = self.log.reset() + self.timings.reset() + self.gauges.reset()
            self.requests_seen = self.unattributed_requests = 0
            return 200, {"cleared": cleared, **self.status()}
        if action == "records" and method == "POST":
            try:
                limit = int(query.get("limit", MAX_DRAIN))
            except ValueError:
                return 400, {"error": "limit must be an integer"}
            limit = max(1, min(limit, MAX_DRAIN))
            records, timed, gauges = self.log.drain(limit), self.timings.drain(limit), self.gauges.drain(limit)
            return 200, {**records, "requests": timed, "gauges": gauges,
                         "more": records["more"] or timed["more"] or gauges["more"],
                         "clock_ns": time.perf_counter_ns(),
                         "requests_seen": self.requests_seen, "unattributed_requests": self.unattributed_requests}
        if action in ("status", "reset", "records"):
            return 405, {"error": f"method {method} not allowed on {path}"}
        return 404, {"error": f"no agent endpoint {path}"}

    def status(self) -> dict[str, Any]:
        return {"agent": "perfbench", "pid": os.getpid(), "clock_ns": time.perf_counter_ns(),
                "capturing": sql.installed(), "capacity": self.log.capacity, **self.log.pending(),
                "request_timings": self.timings.pending(), "gauges": self.gauges.pending(),
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
            started = self.timings.begin(asynchronous=True)
            try:
                return await handler(request)
            finally:
                self.timings.finish(tag, started)
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

    # WSGI -------------------------------------------------------------------------------------------

    def wrap_wsgi(self, app):  # noqa: ANN001, ANN201
        """``app`` wrapped in the WSGI middleware (Flask: ``app.wsgi_app = agent.wrap_wsgi(app.wsgi_app)``;
        installs the capture at once)."""
        self.install()
        return AgentWSGIMiddleware(app, self)


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
        tag.scope = scope  # Starlette puts the matched route there (RequestTag.route reads it)
        ctx_token = sql.REQUEST.set(tag)
        started = self.agent.timings.begin(asynchronous=True)
        try:
            await self.app(scope, receive, send)
        finally:
            self.agent.timings.finish(tag, started)
            tag.route()
            tag.scope = None  # records keep the tag: not the request's scope
            sql.REQUEST.reset(ctx_token)


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed"}


class AgentWSGIMiddleware:
    """A WSGI middleware (Flask, Django, Pyramid, Bottle, any WSGI application): binds the request id
    while the application runs and while the server iterates its response, and answers the agent's
    endpoints. The endpoint is Flask's matched rule when there is one (``GET /items/<int:id>``),
    else the path with id-like segments as ``{id}``."""

    def __init__(self, app, agent: Agent):  # noqa: ANN001
        self.app = app
        self.agent = agent
        flask_app = getattr(app, "__self__", app)  # app.wsgi_app is a bound method of the Flask app
        if type(flask_app).__module__.startswith("flask") and hasattr(flask_app, "url_map"):
            import flask

            # sent after Flask matched the URL, inside the request's context (where the tag is bound)
            flask.request_started.connect(_flask_route, sender=flask_app, weak=False)

    def __call__(self, environ, start_response):  # noqa: ANN001, ANN204
        path = environ.get("PATH_INFO", "") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if self.agent.is_agent_path(path):
            query = {}
            for part in environ.get("QUERY_STRING", "").split("&"):
                key, _, val = part.partition("=")
                if key:
                    query[key] = val
            status, body = self.agent.handle(method, path, query, environ.get("REMOTE_ADDR"),
                                             environ.get("HTTP_X_PERFBENCH_TOKEN"))
            data = json.dumps(body).encode()
            start_response(f"{status} {_REASONS.get(status, '')}".rstrip(),
                           [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]
        tag = self.agent.bind(environ.get("HTTP_X_REQUEST_ID"), f"{method} {path_template(path)}")
        token = sql.REQUEST.set(tag)
        started = self.agent.timings.begin(asynchronous=False)
        try:
            result = self.app(environ, start_response)
        except BaseException:
            self.agent.timings.finish(tag, started)
            raise
        finally:
            sql.REQUEST.reset(token)
        if isinstance(result, list | tuple):  # nothing left to run
            self.agent.timings.finish(tag, started)
            return result
        return _BoundIterable(result, tag, lambda: self.agent.timings.finish(tag, started))


def _flask_route(sender, **extra) -> None:  # noqa: ANN001
    import flask

    tag = sql.REQUEST.get()
    rule = flask.request.url_rule
    if tag is not None and rule is not None:
        tag.endpoint = f"{flask.request.method} {rule.rule}"


class _BoundIterable:
    """A WSGI response iterable run with the request bound: statements a streamed response runs count too."""

    def __init__(self, iterable, tag: sql.RequestTag, done: Callable[[], None] | None = None):  # noqa: ANN001
        self._iterable = iterable
        self._it = None
        self._tag = tag
        self._done = done  # called once, when the server closes the response (the request's end)

    def __iter__(self) -> _BoundIterable:
        return self

    def __next__(self):  # noqa: ANN204
        token = sql.REQUEST.set(self._tag)
        try:
            if self._it is None:
                self._it = iter(self._iterable)
            return next(self._it)
        finally:
            sql.REQUEST.reset(token)

    def close(self) -> None:
        close = getattr(self._iterable, "close", None)
        try:
            if close is not None:
                token = sql.REQUEST.set(self._tag)
                try:
                    close()
                finally:
                    sql.REQUEST.reset(token)
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()
