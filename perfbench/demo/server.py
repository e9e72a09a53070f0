"""Running the demo: `serve()` inside an event loop, `run_server()` from a CLI.

The demo only ever listens on loopback. It has deliberate bottlenecks, a
memory-leak endpoint and public cache controls: on any other interface it would
be a gift to whoever can reach it, so a non-loopback host is refused, not warned about.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import web

from ..errors import ConfigError
from ..safety import is_loopback_address
from .app import create_app
from .seed import DEFAULT_SEED

# How long a stopping server waits for requests in flight before cutting them off.
SHUTDOWN_TIMEOUT = 5.0


def loopback_bind_address(host: str) -> str:
    """The address to bind for `host`, or ConfigError (a ValueError) if `host` is not loopback.

    Accepts 127.0.0.0/8, ::1 (bracketed or not) and `localhost` (bound as
    127.0.0.1: binding the name could open two sockets on different ephemeral
    ports). Other host names are refused without a DNS lookup.
    """
    name = host.strip()
    if name.lower() in ("localhost", "localhost."):
        return "127.0.0.1"
    bare = name.removeprefix("[").removesuffix("]")
    if not is_loopback_address(bare):
        raise ConfigError(
            f"refusing to serve the demo on {host!r}: it is not a loopback address "
            "(127.0.0.0/8, ::1 or localhost). The demo has deliberate bottlenecks and a "
            "memory-leak endpoint, so it must not be reachable from other machines."
        )
    return str(ipaddress.ip_address(bare))


def _url(address: str, port: int) -> str:
    return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"


async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    db_url: str | None = None,
    db_path: str | Path | None = None,
    cache_url: str | None = None,
    max_seconds: float | None = None,
    ready: Callable[[str], None] | None = None,
    seed: int = DEFAULT_SEED,
    agent_token: str | None = None,
    slowdown: Sequence[str] = (),
) -> None:
    """Serve the demo on `host:port` until cancelled or `max_seconds` after it became ready.

    `port` 0 picks a free port. Startup (creating and, the first time, seeding the
    database) happens before `ready(url)` is called with the real URL, e.g.
    `http://127.0.0.1:43123`; from then on the server accepts connections.
    `max_seconds` is a lifetime limit, so a forgotten server stops by itself.
    `agent_token`: run with the perfbench agent on (see `create_app`).
    On return (or cancellation) the server has stopped and released the database.

    Raises ValueError for a non-loopback host (see `loopback_bind_address`), a
    bad port or a non-positive `max_seconds`.
    """
    address = loopback_bind_address(host)
    if not 0 <= port <= 65_535:
        raise ConfigError(f"port must be between 0 and 65535, got {port}")
    if max_seconds is not None and not max_seconds > 0:
        raise ConfigError(f"max_seconds must be positive (or None for no limit), got {max_seconds}")
    app = create_app(db_url=db_url, db_path=db_path, cache_url=cache_url, seed=seed, agent_token=agent_token,
                     slowdown=slowdown)
    # access_log=None: one log line per request would cost more than some of the
    # endpoints being measured. Signals are the caller's business (run_server).
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, address, port)
        await site.start()
        url = _url(address, runner.addresses[0][1])
        if ready is not None:
            ready(url)
        if max_seconds is None:
            await asyncio.get_running_loop().create_future()  # until cancelled
        else:
            await asyncio.sleep(max_seconds)
    finally:
        await runner.cleanup()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    db_url: str | None = None,
    db_path: str | Path | None = None,
    cache_url: str | None = None,
    max_seconds: float | None = None,
    seed: int = DEFAULT_SEED,
    agent_token: str | None = None,
    slowdown: Sequence[str] = (),
) -> None:
    """Run the demo in this thread until SIGINT/SIGTERM or `max_seconds`, then return.

    Prints exactly one line to stdout once the server accepts connections:
    `perfbench demo serving on http://127.0.0.1:PORT` (flushed, so a parent
    process can read the URL from a pipe). Uses uvloop when it is installed.
    Signal handlers are installed only when called from the main thread, and
    removed again before returning. Startup errors propagate.
    """
    loopback_bind_address(host)  # refuse before starting a loop

    def announce(url: str) -> None:
        print(f"perfbench demo serving on {url}", flush=True)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        installed = []
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(signum, stop.set)
                except (NotImplementedError, RuntimeError):
                    continue
                installed.append(signum)
        server = asyncio.create_task(
            serve(
                host,
                port,
                db_url=db_url,
                db_path=db_path,
                cache_url=cache_url,
                max_seconds=max_seconds,
                ready=announce,
                seed=seed,
                agent_token=agent_token,
                slowdown=slowdown,
            )
        )
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({server, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not server.done():
                server.cancel()
            try:
                await server  # re-raises a startup error
            except asyncio.CancelledError:
                # The server cancelled by us is a clean stop; any other
                # cancellation is main's own and must propagate.
                if not server.cancelled():
                    raise
            finally:
                for signum in installed:
                    loop.remove_signal_handler(signum)

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())
