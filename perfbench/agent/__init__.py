"""The service agent: what a user adds to their own Python service so perfbench sees inside it.

It is the base install (``pip install perfbench``: standard library only). With the token in
``$PERFBENCH_AGENT_TOKEN``:

    from perfbench.agent import Agent
    Agent().install_aiohttp(app)                  # aiohttp: adds the middleware and installs the capture
    app.add_middleware(Agent)                     # Starlette, FastAPI
    app = Agent().wrap_asgi(app)                  # any ASGI application
    app.wsgi_app = Agent().wrap_wsgi(app.wsgi_app)  # Flask; any WSGI application: Agent().wrap_wsgi(app)
    # Django: "perfbench.agent.django.AgentMiddleware" first in settings.MIDDLEWARE

Per request it reads the engine's ``X-Request-Id`` header (an integer; a missing or malformed value
is recorded as unattributed, never an error), binds it in a ContextVar so every SQL statement
(``perfbench.agent.sql``), every cache hit/miss the service reports (:func:`cache_hit`/:func:`cache_miss`),
every Redis command and every outbound HTTP call (:mod:`perfbench.agent.events`) is attributed to it,
also in executor threads. Each request's wait for a SQLAlchemy pool's connection is timed, and the pools
and the asyncio loop's ready queue are sampled every 100 ms as gauges (:mod:`perfbench.agent.pools`).

Records stay in a bounded ring buffer (``capacity`` per kind; the oldest are dropped and counted).
The engine fetches them through the agent's endpoints (``AgentCollector``), which are:

- on exactly when there is a token (``token=`` or ``$PERFBENCH_AGENT_TOKEN``; ``endpoints=False`` turns
  them off); ``endpoints=True`` without a token raises :class:`AgentError`;
- answered only for loopback clients (others get 403), and only with the token
  (``X-Perfbench-Token`` header, compared in constant time; otherwise 401);
- ``GET {prefix}/status``: the agent's clock (``perf_counter_ns``) and buffer counts;
  ``POST {prefix}/reset``: forget every record; ``POST {prefix}/records?limit=N``: take records
  (fetch-and-clear, oldest first; ``more`` says whether to call again). Default prefix ``/_perfbench``.

In-process, with no HTTP and no agent: ``with perfbench.agent.capture() as c:`` around any block of code
(an ORM call, a test) records its statements, fingerprints, N+1 groups with their call site, DB time and
slowest statements (``print(c.report())``; see :mod:`perfbench.agent.inprocess`).

Beside it, :mod:`perfbench.agent.memory` is the memory endpoint a service mounts for tracemalloc
snapshots (``install_from_env(app)``: on only when ``PERFBENCH_MEMORY_TOKEN`` is set; same loopback
and token rules, under ``/_perfbench/memory``), read by ``perfbench.profilers.tracemalloc``.
"""

from __future__ import annotations

from . import django as _django  # noqa: F401 - registers Django's ORM capture (where Django is set up)
from . import drivers as _drivers  # noqa: F401 - registers the asyncpg and psycopg hooks
from . import events as _events  # noqa: F401 - registers the redis-py, aiohttp and httpx client hooks
from .core import (
    DEFAULT_PREFIX,
    REQUEST_ID_HEADER,
    TOKEN_HEADER,
    Agent,
    AgentError,
    cache_hit,
    cache_miss,
    current_request,
)
from .inprocess import Capture, capture

__all__ = ["DEFAULT_PREFIX", "REQUEST_ID_HEADER", "TOKEN_HEADER", "Agent", "AgentCollector", "AgentError", "Capture",
           "cache_hit", "cache_miss", "capture", "current_request"]


def __getattr__(name: str):
    if name == "AgentCollector":  # engine side: imported on demand, the service never needs it
        from .collector import AgentCollector

        return AgentCollector
    raise AttributeError(name)
