"""Shared fixtures: real servers on 127.0.0.1 with ephemeral ports, started and stopped by us.

The demo target is expensive (seeding its database takes seconds), so its database is seeded once
per session and copied for each user, and one demo process serves the tests that only send it load.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import settings

# Property tests are deterministic: the same examples on every run (CI must not find a new
# counterexample by chance); run with HYPOTHESIS_PROFILE=explore to search afresh.
settings.register_profile("ci", derandomize=True, deadline=None, database=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class ThreadServer:
    """An aiohttp app served on 127.0.0.1:0 from a thread with its own loop.

    Readiness is an Event set once the socket listens (no sleeps); ``stop()`` ends it.
    """

    def __init__(self, app: web.Application, ssl_context=None):
        self.app = app
        self.ssl_context = ssl_context  # serve https:// with it
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.app, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{port}"
        self._ready.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=5400)  # a lifetime limit (CI's 90 minutes)
        await runner.cleanup()

    def start(self) -> ThreadServer:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("test server did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


SEEN_IDS = web.AppKey("seen_ids", list)


def make_test_app() -> web.Application:
    seen_ids: list[str] = []

    async def ok(request: web.Request) -> web.Response:
        rid = request.headers.get("X-Request-Id")
        if rid is not None:
            seen_ids.append(rid)
        return web.json_response({"ok": True})

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status")

    async def delay(request: web.Request) -> web.Response:
        await asyncio.sleep(int(request.match_info["ms"]) / 1000)
        return web.Response(text="slept")

    async def size(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.match_info["n"]))

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"headers": dict(request.headers), "body": body.decode(), "path": request.path_qs})

    app = web.Application()
    app[SEEN_IDS] = seen_ids
    app.router.add_get("/", ok)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/delay/{ms}", delay)
    app.router.add_get("/bytes/{n}", size)
    app.router.add_route("*", "/echo{tail:.*}", echo)
    return app


def tiny_app(delay_ms: float) -> web.Application:
    """``ok`` on / and /other, after ``delay_ms`` asleep (the server shares the test process's GIL with the load)."""
    async def handler(request: web.Request) -> web.Response:
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    app.router.add_get("/other", handler)
    return app


@pytest.fixture(scope="module")
def ab_servers() -> Iterator[tuple[str, str]]:
    """Two servers for an A/B: (fast URL, URL of one 8 ms slower a request)."""
    fast, slow = ThreadServer(tiny_app(0)).start(), ThreadServer(tiny_app(8)).start()
    try:
        yield fast.url, slow.url
    finally:
        fast.stop()
        slow.stop()


@pytest.fixture(scope="session")
def http_server() -> Iterator[ThreadServer]:
    server = ThreadServer(make_test_app()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory) -> Iterator[tuple[ThreadServer, str]]:
    """The test app over TLS with a certificate for 127.0.0.1 from a throwaway CA; yields the
    server and the CA's PEM file (trusted through SSL_CERT_FILE by the tests that want it)."""
    import ssl

    import trustme

    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = ThreadServer(make_test_app(), ssl_context=ctx).start()
    yield server, str(ca_file)
    server.stop()


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"


# --- the demo target -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_db_template(tmp_path_factory) -> Path:
    """The demo's SQLite database seeded once per session (seed 42). Never used directly: tests get a
    copy from ``demo_db_copy``, so one that writes cannot change what another one sees."""
    from perfbench.demo.db import make_engine, prepare_database

    path = tmp_path_factory.mktemp("demo-template") / "demo.sqlite"

    async def seed() -> bool:
        engine = make_engine(db_path=path)
        try:
            return await prepare_database(engine)
        finally:
            await engine.dispose()

    assert asyncio.run(seed()) is True  # seeded now, into an empty file
    return path


@pytest.fixture(scope="session")
def demo_db_copy(demo_db_template, tmp_path_factory) -> Callable[[], Path]:
    """``demo_db_copy()``: a private copy of the seeded demo database, alone in a new directory (a
    DemoProcess writes its ``serve-demo.log`` beside the database)."""

    def copy() -> Path:
        path = tmp_path_factory.mktemp("demo-db") / "demo.sqlite"
        with closing(sqlite3.connect(demo_db_template)) as src, closing(sqlite3.connect(path)) as dst:
            src.backup(dst)
        return path

    return copy


@pytest.fixture
def seeded_demo_db(demo_db_copy) -> Path:
    """A seeded demo database of the test's own, for a demo target it starts itself."""
    return demo_db_copy()


@pytest.fixture(scope="session")
def demo_agent_token() -> str:
    """The perfbench agent's token in the shared ``demo_target`` (set $PERFBENCH_AGENT_TOKEN to it)."""
    return "test-token-0123456789abcdef"


@pytest.fixture(scope="session")
def demo_target(demo_db_copy, demo_agent_token):
    """The demo target as a child process (``serve-demo``, with the agent on), started once per session.

    For tests that send it load and read what comes back: their writes go to their own seeded users'
    rows, and the one that clears the report cache clears it first itself. Tests that change it in
    ways others would see (the leak endpoint, memory profilers, stopping it) start their own on
    ``seeded_demo_db``. Stopped by its PID at the end; its lifetime limit is a backstop.
    """
    from perfbench.demo.process import DemoProcess

    with pytest.MonkeyPatch.context() as mp:  # the child reads its agent token from the environment
        mp.setenv("PERFBENCH_AGENT_TOKEN", demo_agent_token)
        demo = DemoProcess(db_path=demo_db_copy(), max_seconds=3600)
        demo.start()
    try:
        yield demo
    finally:
        demo.stop()


class UvicornThread:
    """An ASGI application served by uvicorn on 127.0.0.1 (an ephemeral port) in a thread: ``with ... as url``."""

    def __init__(self, app: Callable) -> None:
        import uvicorn

        ready = self.ready = threading.Event()

        class Server(uvicorn.Server):
            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets)
                ready.set()

            def install_signal_handlers(self) -> None:  # not the main thread
                pass

        self.server = Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        assert self.ready.wait(30), "uvicorn did not start"
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(30)
