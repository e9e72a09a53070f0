"""How requests go over the wire. The engine talks to a sender, never to aiohttp directly,
so a leaner HTTP/1.1 path can sit beside the general one and produce the same records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import aiohttp


class Sender(Protocol):
    name: str

    async def start(self) -> None: ...

    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None
                      ) -> tuple[int, int, bytes | None]:
        """Send one request and read the whole response: ``(status, body bytes, body or None)``.

        The body is returned only when ``keep_body`` was asked for (a check needs it). Raises
        whatever the transport raises; the engine classifies it.
        """
        ...

    async def close(self) -> None: ...


class AiohttpSender:
    """The general path: aiohttp's client (TLS, redirects, cookies, proxies).

    aiohttp silently re-sends an idempotent request once when a reused keep-alive connection
    turns out dead (``ClientSession._retry_connection``). In a load test that hides a failure
    and sends a request the plan never asked for, so it is switched off: a dead connection is an
    error of kind ``reset``, recorded.
    """

    name = "aiohttp"

    def __init__(self, base_url: str, *, max_connections: int = 0, timeout: float = 30.0,
                 connect_timeout: float | None = None):
        self.base_url = base_url.rstrip("/")
        self.max_connections = max_connections
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout or timeout)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self.timeout, auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar()
        )
        self._session._retry_connection = False  # see the class docstring

    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None,
                      keep_body: bool = False) -> tuple[int, int, bytes | None]:
        assert self._session is not None, "start() the sender first"
        async with self._session.request(method, self.base_url + path, headers=headers, data=body,
                                         allow_redirects=False) as resp:
            data = await resp.read()
            return resp.status, len(data), data if keep_body else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


HTTP_PATHS = ("aiohttp",)


def make_sender(target: str, *, http_path: str = "aiohttp", max_connections: int = 0, timeout: float = 30.0) -> Sender:
    """The sender for ``http_path``; the run records which one ran (``meta.engine.path``)."""
    if http_path == "aiohttp":
        return AiohttpSender(target, max_connections=max_connections, timeout=timeout)
    from ..errors import ConfigError

    raise ConfigError(f"http path {http_path!r} is not one of {', '.join(HTTP_PATHS)}")
