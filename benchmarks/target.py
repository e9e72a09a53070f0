"""A fast keep-alive HTTP/1.1 target for benchmarks: uvloop + a fixed response, no framework.

Run: python benchmarks/target.py PORT_FILE MAX_SECONDS. Binds 127.0.0.1:0, writes its port to
PORT_FILE, stops by itself after MAX_SECONDS.
"""

import asyncio
import sys
from pathlib import Path

import uvloop

BODY = b'{"ok":true}'
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


class Proto(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        buf = self.buf + data
        n = buf.count(b"\r\n\r\n")  # GETs without bodies
        if n:
            self.t.write(RESPONSE * n)
            buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
        self.buf = buf


async def main(port_file: str, max_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Proto, "127.0.0.1", 0, backlog=1024)
    Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))  # noqa: ASYNC240 - once, at start-up
    await asyncio.sleep(max_seconds)
    server.close()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], float(sys.argv[2])))
