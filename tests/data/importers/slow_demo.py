"""Serve the perfbench demo with an added sleep on one path: the "deliberately slowed build".

    python slow_demo.py --db-path /tmp/demo.sqlite --path /api/v2/posts --delay-ms 50

Prints ``serving on http://127.0.0.1:PORT`` once it listens; stops after --max-seconds.
The demo's own files are untouched: the sleep is an aiohttp middleware added before startup. It runs on
uvloop when installed, as ``perfbench serve-demo`` does, so that only the sleep differs.
"""

import argparse
import asyncio
import contextlib
import os

from aiohttp import web

from perfbench.demo import create_app


def slowed_app(db_path: str, path: str, delay_ms: float, when: str | None = None) -> web.Application:
    """The demo app, sleeping ``delay_ms`` on ``path`` (only while the file ``when`` exists, if given)."""
    app = create_app(db_path=db_path)

    @web.middleware
    async def slow(request, handler):
        if request.path == path and (when is None or os.path.exists(when)):  # noqa: ASYNC240 - a stat, test only
            await asyncio.sleep(delay_ms / 1000)
        return await handler(request)

    app.middlewares.append(slow)
    return app


async def main(args) -> None:
    runner = web.AppRunner(slowed_app(args.db_path, args.path, args.delay_ms, args.when))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"serving on http://127.0.0.1:{port}", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.Event().wait(), timeout=args.max_seconds)
    await runner.cleanup()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--db-path", required=True)
    p.add_argument("--path", default="/api/v2/posts")
    p.add_argument("--delay-ms", type=float, default=50.0)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--when", help="sleep only while this file exists (one process serves both builds)")
    p.add_argument("--max-seconds", type=float, default=120.0)
    args = p.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(args))
    else:
        uvloop.run(main(args))
