"""The memory endpoint a Python service mounts: tracemalloc snapshots on request, for perfbench's collector.

A tiny aiohttp sub-app (``install(app, token=...)``, or ``install_from_env(app)`` which mounts it
only when ``PERFBENCH_MEMORY_TOKEN`` is set). It is off unless enabled, answers only loopback
clients that send the token (``X-Perfbench-Token``), and has three routes under
``/_perfbench/memory``: ``GET status``, ``POST start`` and ``POST snapshot``. A snapshot is answered
as compact JSON of ``Snapshot.statistics("traceback")`` (one entry per distinct traceback: frames,
size, count), so no pickle ever crosses the wire and the client can group by line, by traceback or
by "site" itself (``perfbench.profilers.tracemalloc``, whose ``TracemallocCollector`` calls it).

Why a mounted sub-app and not a signal: HTTP is already how perfbench talks to the target, and the
answer comes back synchronously (a signal would need a file drop and a poll). This module runs
inside the user's service, so it imports only the standard library and aiohttp (no Polars).
tracemalloc starts when a collector asks (``POST start``), so only allocations made from then on
are traced; :func:`trace_at_start_from_env` traces from the process's start instead, for a
launcher that honours ``PERFBENCH_MEMORY_TRACE_AT_START=1`` (the demo's ``serve-demo``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sysconfig
import time
import tracemalloc
from typing import Any

from aiohttp import web

from ..safety import is_loopback_address
from .core import MEMORY_PATH, TOKEN_HEADER, AgentError, token_matches

PREFIX = MEMORY_PATH
TOKEN_ENV = "PERFBENCH_MEMORY_TOKEN"
NFRAMES_ENV = "PERFBENCH_MEMORY_NFRAMES"
TRACE_AT_START_ENV = "PERFBENCH_MEMORY_TRACE_AT_START"
DEFAULT_NFRAMES = 5

_INSTALLED = web.AppKey("perfbench_memory_installed", bool)
_SELF = os.path.normcase(os.path.abspath(__file__))


# --- snapshots as plain data (used in the target and in-process) ----------------------------------------


def library_prefixes() -> list[str]:
    """Path prefixes of this interpreter's standard library and installed packages."""
    paths = sysconfig.get_paths()
    out = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if paths.get(k)}
    return sorted(out)


def is_library(filename: str, prefixes: list[str]) -> bool:
    """Whether ``filename`` is library code (standard library, site-packages, ``<frozen ...>``), not the user's."""
    if filename.startswith("<"):
        return True
    if "site-packages" in filename or "dist-packages" in filename:
        return True
    return any(filename.startswith(p + os.sep) for p in prefixes)


def _excluded(filename: str, also: frozenset[str] = frozenset()) -> bool:
    if filename == tracemalloc.__file__ or filename == "<unknown>":
        return True
    name = os.path.normcase(filename)
    return name == _SELF or name in also


def snapshot_data(snapshot: tracemalloc.Snapshot | None = None, *, label: str = "",
                  exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A snapshot as compact JSON-able data: distinct tracebacks (innermost frame first) with size and count.

    Tracebacks through tracemalloc itself, this module or a file in ``exclude`` (the caller's
    own module, e.g. the in-process ``Tracer``'s) are dropped: a snapshot's own bookkeeping is
    not the target's memory.
    """
    also = frozenset(os.path.normcase(os.path.abspath(f)) for f in exclude)
    if snapshot is None:
        snapshot = tracemalloc.take_snapshot()
    files: dict[str, int] = {}
    stats = []
    for st in snapshot.statistics("traceback"):
        frames = [(f.filename, f.lineno) for f in reversed(st.traceback)]  # innermost first
        if any(_excluded(fn, also) for fn, _ in frames):
            continue
        stats.append([[[files.setdefault(fn, len(files)), ln] for fn, ln in frames], st.size, st.count])
    current, peak = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else (0, 0)
    return {"version": 1, "label": label, "t_unix_ns": time.time_ns(), "t_perf_ns": time.perf_counter_ns(),
            "pid": os.getpid(), "nframes": snapshot.traceback_limit, "traced_current": current,
            "traced_peak": peak, "files": list(files), "library_prefixes": library_prefixes(), "stats": stats}


# --- the service side: a sub-app a Python service mounts ---------------------------------------------------


def memory_app(token: str, *, nframes: int = DEFAULT_NFRAMES) -> web.Application:
    """The sub-app (routes ``status``, ``start``, ``snapshot``); mount it with :func:`install`."""
    if not token or len(token) < 16:
        raise AgentError("the memory endpoint needs a token of at least 16 characters")
    expected = token.encode("utf-8")

    @web.middleware
    async def guard(request: web.Request, handler):
        if not is_loopback_address(request.remote):
            raise web.HTTPForbidden(text="perfbench memory endpoint: loopback clients only")
        if not token_matches(request.headers.get(TOKEN_HEADER), expected):
            raise web.HTTPUnauthorized(text=f"perfbench memory endpoint: missing or wrong {TOKEN_HEADER}")
        return await handler(request)

    async def status(request: web.Request) -> web.Response:
        current, peak = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else (0, 0)
        return web.json_response({"tracing": tracemalloc.is_tracing(), "nframes": tracemalloc.get_traceback_limit(),
                                  "traced_current": current, "traced_peak": peak, "pid": os.getpid()})

    async def start(request: web.Request) -> web.Response:
        n = int(request.query.get("nframes", nframes))
        if not tracemalloc.is_tracing():
            tracemalloc.start(n)
        return web.json_response({"tracing": True, "nframes": tracemalloc.get_traceback_limit()})

    async def snapshot(request: web.Request) -> web.Response:
        if not tracemalloc.is_tracing():
            raise web.HTTPConflict(text="tracemalloc is not tracing in this process; POST start first "
                                        "(or start the service with PYTHONTRACEMALLOC=5)")
        label = request.query.get("label", "")
        # taking and summarising holds the GIL; on a thread the event loop still gets its turns
        data = await asyncio.to_thread(lambda: json.dumps(snapshot_data(label=label)))
        return web.Response(text=data, content_type="application/json")

    app = web.Application(middlewares=[guard])
    app.router.add_get("/status", status)
    app.router.add_post("/start", start)
    app.router.add_post("/snapshot", snapshot)
    return app


def install(app: web.Application, token: str, *, prefix: str = PREFIX, nframes: int = DEFAULT_NFRAMES) -> bool:
    """Mount the memory endpoint on ``app`` (before it starts); False if it was mounted already."""
    if app.get(_INSTALLED):
        return False
    app.add_subapp(prefix, memory_app(token, nframes=nframes))
    app[_INSTALLED] = True
    return True


def install_from_env(app: web.Application) -> bool:
    """Mount the memory endpoint only if ``PERFBENCH_MEMORY_TOKEN`` is set (off by default)."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        return False
    return install(app, token, nframes=int(os.environ.get(NFRAMES_ENV, DEFAULT_NFRAMES)))




def trace_at_start_from_env() -> bool:
    """Start tracemalloc now if ``PERFBENCH_MEMORY_TRACE_AT_START=1`` and the endpoint's token are set.

    For a launcher, called first thing: everything from then on is traced, imports included
    (snapshots of 10^5-10^6 traces then take seconds). True if it started tracing here.
    """
    if not os.environ.get(TOKEN_ENV) or os.environ.get(TRACE_AT_START_ENV) != "1" or tracemalloc.is_tracing():
        return False
    tracemalloc.start(int(os.environ.get(NFRAMES_ENV, DEFAULT_NFRAMES)))
    return True
