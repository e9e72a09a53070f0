"""The ceiling for a Python generator here: a minimal keep-alive HTTP/1.1 client, nothing else.

uvloop transports and httptools' C parser, N connections, each sending the next GET as soon as a
response completes; no scheduling, no recording, no checks. What perfbench's lean path costs on top
of this is the price of its features (the issue's 60-line prototype reached about 130,000 req per
CPU-second on a similar machine).

    taskset -c 0 python benchmarks/python_ceiling.py URL SECONDS CONNECTIONS   # prints the count
"""

from __future__ import annotations

import asyncio
import sys
import time
from urllib.parse import urlsplit

import httptools
import uvloop

count = 0


class Conn(asyncio.Protocol):
    def __init__(self, request: bytes, deadline: float, closed: asyncio.Future):
        self.request, self.deadline, self.closed = request, deadline, closed
        self.parser = httptools.HttpResponseParser(self)
        self.nbytes = 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.nbytes += len(body)

    def on_message_complete(self) -> None:
        global count
        count += 1
        if time.monotonic() < self.deadline:
            self.transport.write(self.request)
        else:
            self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def main(url: str, seconds: float, conns: int) -> None:
    u = urlsplit(url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback targets only")
    request = (f"GET {u.path or '/'} HTTP/1.1\r\nHost: {u.netloc}\r\nUser-Agent: ceiling\r\n"
               "Accept: */*\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + seconds
    closed = []
    for _ in range(conns):
        fut = loop.create_future()
        closed.append(fut)
        await loop.create_connection(lambda fut=fut: Conn(request, deadline, fut), u.hostname, u.port or 80)
    await asyncio.wait_for(asyncio.gather(*closed), seconds + 30)
    print(count)


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
