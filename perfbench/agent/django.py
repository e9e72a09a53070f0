"""The agent in a Django project: a middleware class, and the ORM captured through ``execute_wrapper``.

    # settings.py: first, so it sees every request (and answers its endpoints before CSRF and the rest)
    MIDDLEWARE = ["perfbench.agent.django.AgentMiddleware", *MIDDLEWARE]

The token comes from ``$PERFBENCH_AGENT_TOKEN`` (the endpoints are on with it, off without it);
``PERFBENCH_AGENT = {...}`` in settings, if present, holds :class:`~perfbench.agent.Agent`'s options.
One agent per process (:func:`get_agent`), however many handlers Django builds.

Every statement Django runs goes through the wrapper this module adds to each database connection as
it is created (``connection_created``; Django's documented ``connection.execute_wrapper`` hook), and to
the open connections of the thread that installs the hooks (an agent, or a ``perfbench.agent.capture()``
block in a process where Django is set up: :func:`install_when_configured`), so
it is recorded once, as ``source = "django"``, whichever backend runs it: the driver-level hooks
(sqlite3, psycopg) skip a statement the ORM already records. The endpoint is the matched URL pattern
(``GET /items/<int:pk>/``), else the path with id-like segments as ``{id}``. Statements a streaming
response runs after the view returned are not attributed to the request.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..wire import REQUEST_ID_HEADER
from . import sql
from .core import TOKEN_HEADER, Agent, path_template

_lock = threading.Lock()
_agent: Agent | None = None
_DISPATCH_UID = "perfbench.agent.django"


def get_agent() -> Agent:
    """The process's agent, created (from settings and the environment) and installed on first use."""
    global _agent
    with _lock:
        if _agent is None:
            from django.conf import settings

            agent = Agent(**dict(getattr(settings, "PERFBENCH_AGENT", None) or {}))
            agent.install()
            install_orm_capture()
            _agent = agent
        return _agent


def execute_wrapper(execute, sql_text, params, many, context):  # noqa: ANN001, ANN201 - Django's signature
    """What Django calls around every statement (see ``connection.execute_wrapper`` in Django's docs)."""
    if not sql.active():  # an agent records, or a capture() block is open
        return execute(sql_text, params, many, context)
    start = time.perf_counter_ns()
    outer = sql.OUTER.set(True)  # the driver-level hooks skip what is recorded here
    try:
        result = execute(sql_text, params, many, context)
    except BaseException:
        sql.OUTER.reset(outer)
        sql.emit(sql_text, start, time.perf_counter_ns() - start, "django", error=True)
        raise
    sql.OUTER.reset(outer)
    sql.emit(sql_text, start, time.perf_counter_ns() - start, "django")
    return result


def _add_wrapper(connection: Any) -> None:
    if execute_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(execute_wrapper)


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    _add_wrapper(connection)


def install_orm_capture() -> None:
    """Add the wrapper to every Django database connection: those of this thread already open, and each
    one created from now on (connections are per thread). Idempotent."""
    from django.db import connections
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection_created, dispatch_uid=_DISPATCH_UID, weak=False)
    for connection in connections.all(initialized_only=True):
        _add_wrapper(connection)


def _remove_orm_capture() -> None:
    from django.db import connections
    from django.db.backends.signals import connection_created

    connection_created.disconnect(dispatch_uid=_DISPATCH_UID)
    for connection in connections.all(initialized_only=True):
        if execute_wrapper in connection.execute_wrappers:
            connection.execute_wrappers.remove(execute_wrapper)


def install_when_configured() -> Callable[[], None] | None:
    """The hook set of ``perfbench.agent.sql.INSTALLERS``: in a process where Django is imported and its
    settings are configured, the ORM is captured through the execute wrapper (so an agent or a
    ``capture()`` block sees the ORM's statements whatever the driver, and a SQLite connection Django opened
    earlier too); returns how to undo it. Nothing is imported when Django is not already in use."""
    if "django" not in sys.modules:
        return None
    try:
        from django.conf import settings

        if not settings.configured:
            return None
        install_orm_capture()
    except Exception:  # Django half set up (apps not ready): its driver's hooks still see what they can
        return None
    return _remove_orm_capture


sql.INSTALLERS.append(install_when_configured)


class AgentMiddleware:
    """The Django middleware (``"perfbench.agent.django.AgentMiddleware"`` in ``settings.MIDDLEWARE``)."""

    sync_capable = True
    async_capable = False  # under ASGI, Django runs it in a thread; the request's context goes along

    def __init__(self, get_response):  # noqa: ANN001
        self.get_response = get_response
        self.agent = get_agent()

    def __call__(self, request):  # noqa: ANN001, ANN204
        path = request.path_info or "/"
        method = request.method or "GET"
        if self.agent.is_agent_path(path):
            from django.http import JsonResponse

            status, body = self.agent.handle(method, path, request.GET.dict(), request.META.get("REMOTE_ADDR"),
                                             request.headers.get(TOKEN_HEADER))
            return JsonResponse(body, status=status)
        tag = self.agent.bind(request.headers.get(REQUEST_ID_HEADER), f"{method} {path_template(path)}")
        token = sql.REQUEST.set(tag)
        started = self.agent.timings.begin(asynchronous=False)
        try:
            return self.get_response(request)
        finally:
            self.agent.timings.finish(tag, started)
            sql.REQUEST.reset(token)

    def process_view(self, request, view_func, view_args, view_kwargs) -> None:  # noqa: ANN001
        """Called by Django once the URL is resolved, before the view: the endpoint becomes the pattern."""
        tag = sql.REQUEST.get()
        route = getattr(getattr(request, "resolver_match", None), "route", None)
        if tag is not None and isinstance(route, str) and route:
            tag.endpoint = f"{request.method} /{route.lstrip('^').rstrip('$')}"
