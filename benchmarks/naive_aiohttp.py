"""The baseline of the issue: one ClientSession, N tasks each looping get + read, on uvloop.

Run: python benchmarks/naive_aiohttp.py URL SECONDS CONNECTIONS; prints the request count.
"""

import asyncio
import sys
import time

import aiohttp
import uvloop


async def main(url, seconds: float, conns: int, session_options: dict | None = None,
               retry: bool = True) -> None:
    """The loop; ``session_options`` and ``retry`` only for aiohttp_ceiling.py (the baseline uses
    neither: aiohttp's defaults)."""
    count = 0
    deadline = time.monotonic() + seconds

    async def user(session):
        nonlocal count
        while time.monotonic() < deadline:
            async with session.get(url) as r:
                await r.read()
            count += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conns), **(session_options or {})) as s:
        if not retry:
            s._retry_connection = False
        await asyncio.gather(*(user(s) for _ in range(conns)))
    print(count)


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
