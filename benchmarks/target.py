"""A fast keep-alive HTTP/1.1 target for benchmarks: uvloop + a fixed response, no framework.

Run: python benchmarks/target.py PORT_FILE MAX_SECONDS [EVERY DELAY_S]. Binds 127.0.0.1:0, writes
its port to PORT_FILE, stops by itself after MAX_SECONDS. With EVERY and DELAY_S (for
benchmarks/timeout_precision.py): every EVERY-th request it receives is answered DELAY_S seconds
later instead of at once (the connection is busy meanwhile, as a slow handler's would be).
"""

import asyncio
import sys
from pathlib import Path

import uvloop

BODY = b'{"ok":true}'
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


EVERY, DELAY_S = 0, 0.0
received = 0


class Proto(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        global received
        buf = self.buf + data
        n = buf.count(b"\r\n\r\n")  # GETs without bodies
        if n:
            if EVERY:
                for _ in range(n):
                    received += 1
                    if received % EVERY == 0:
                        asyncio.get_running_loop().call_later(DELAY_S, self._late)
                    else:
                        self.t.write(RESPONSE)
            else:
                self.t.write(RESPONSE * n)
            buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
        self.buf = buf

    def _late(self):
        if not self.t.is_closing():  # the client gave up (timed out) and closed: nothing to answer
            self.t.write(RESPONSE)


async def main(port_file: str, max_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Proto, "127.0.0.1", 0, backlog=1024)
    Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))  # noqa: ASYNC240 - once, at start-up
    await asyncio.sleep(max_seconds)
    server.close()


if __name__ == "__main__":
    if len(sys.argv) > 4:
        EVERY, DELAY_S = int(sys.argv[3]), float(sys.argv[4])
    uvloop.run(main(sys.argv[1], float(sys.argv[2])))
