"""One request as a user agent sends it: cookies from the user's jar, redirects followed.

Both HTTP paths answer a redirect with its status and ``Location`` (neither library follows it
on its own), so the chain is walked here, the same way for both: :func:`exchange` sends a
request and follows what it leads to; :func:`follow` takes over from a first response the
engine already has (the lean path's callback interface sends the first hop itself and hands a
redirect to this slow path). The rules of each hop are ``redirects.py``'s. The chain is one row:
its latency runs from the first request's intended time to the last response, its status,
bytes and body are the last response's, and the row notes how many redirects were followed and
where the chain ended (:meth:`perfbench.engine.recorder.Recorder.note_redirect`).

Hops to another origin (a loopback port other than the target's, or an allow-listed host) go
through a sender of the same kind made for that origin on first use (:class:`Origins`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

from .cookies import CookieJar
from .protocols import Outcome, ReadSpec, Sender
from .redirects import REDIRECT_STATUSES, next_hop, origin, path_of


class Origins:
    """The run's sender for its target, a sender per other base URL the scenario names (its
    ``targets`` and absolute URLs: :meth:`for_base`), and one per other origin a redirect leads
    to (:meth:`route`). Every sender but the target's is made here and closed by :meth:`close`."""

    def __init__(self, sender: Sender, base_url: str, make: Callable[[str], Sender],
                 allow_hosts: Iterable[str] = ()):
        self.sender = sender
        self.base_url = base_url.rstrip("/")
        self.allow_hosts = tuple(allow_hosts)
        self._origin = origin(self.base_url)
        self._base_path = urlsplit(self.base_url).path.rstrip("/")
        self._make = make
        self._others: dict[tuple[str, str, int], Sender] = {}
        self._bases: dict[str, Sender] = {}
        self._started: set[int] = set()

    def url(self, path: str, base: str | None = None) -> str:
        """The absolute URL of a path on the target (or on ``base``)."""
        return (self.base_url if base is None else base) + path

    def for_base(self, base: str | None) -> Sender:
        """The sender for requests to ``base`` (None: the target), made on first call and started
        by :meth:`start` (the engine's run starts them before the first request)."""
        if base is None or base.rstrip("/") == self.base_url:
            return self.sender
        base = base.rstrip("/")
        sender = self._bases.get(base)
        if sender is None:
            sender = self._bases[base] = self._make(base)
        return sender

    async def start(self) -> None:
        """Start the senders :meth:`for_base` made that are not started yet."""
        for sender in list(self._bases.values()):
            if id(sender) not in self._started:
                self._started.add(id(sender))
                await sender.start()

    async def route(self, url: str) -> tuple[Sender, str]:
        """The sender for ``url`` and the path to give it."""
        key = origin(url)
        path = path_of(url)
        base = self._base_path
        if key == self._origin and (not base or path == base or path.startswith(base + "/")
                                    or path.startswith(base + "?")):
            return self.sender, path[len(base):] or "/"
        sender = self._others.get(key)
        if sender is None:
            scheme, host, port = key
            netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            sender = self._make(f"{scheme}://{netloc}")
            await sender.start()
            self._others[key] = sender
        return sender, path

    async def close(self) -> None:
        others, self._others = self._others, {}
        bases, self._bases = self._bases, {}
        for s in [*others.values(), *bases.values()]:
            await s.close()
        self._started.clear()


class Exchanged(NamedTuple):
    """How a request ended after its redirects: the last outcome, how many redirects were
    followed, and the URL that gave the last answer."""

    outcome: Outcome
    redirects: int
    url: str


def _with_cookies(headers: Mapping[str, str], jar: CookieJar | None, url: str) -> Mapping[str, str]:
    if jar is None or not len(jar):
        return headers
    u = urlsplit(url)
    value = jar.header(u.hostname or "", path_of(url), u.scheme == "https")
    if value is None:
        return headers
    out = {k: v for k, v in headers.items() if k.lower() != "cookie"}
    out["Cookie"] = value
    return out


def _store(jar: CookieJar | None, url: str, out: Outcome) -> None:
    if jar is not None and out.set_cookies:
        jar.store(urlsplit(url).hostname or "", path_of(url), list(out.set_cookies))


async def exchange(origins: Origins, method: str, path: str, headers: Mapping[str, str], body: bytes | None, *,
                   keep_body: bool = False, limit: int = 0, jar: CookieJar | None = None,
                   base: str | None = None, spec: ReadSpec | None = None) -> Exchanged:
    """Send ``method path`` to the target (or to ``base``) with the user's cookies and follow up
    to ``limit`` redirects (0: a redirect is an answer like any other)."""
    url = origins.url(path, base)
    sender = origins.for_base(base)
    out = await sender.request(method, path, _with_cookies(headers, jar, url), body, keep_body=keep_body, spec=spec)
    _store(jar, url, out)
    return await follow(origins, out, method, url, headers, body, keep_body=keep_body, limit=limit, jar=jar,
                        spec=spec)


async def follow(origins: Origins, first: Outcome, method: str, url: str, headers: Mapping[str, str],
                 body: bytes | None, *, keep_body: bool = False, limit: int = 0,
                 jar: CookieJar | None = None, spec: ReadSpec | None = None) -> Exchanged:
    """Follow the redirects ``first`` (the answer to ``method url``) leads to, at most ``limit``.

    A redirect that is not followed (off the machine, not http, over the limit) ends the request
    as an error of kind ``redirect`` with its status kept."""
    out, hops = first, 0
    if limit <= 0:
        return Exchanged(out, 0, url)
    while out.error is None and out.status in REDIRECT_STATUSES and out.location:
        if hops >= limit:
            return Exchanged(out._replace(error="redirect", detail=f"more than {limit} redirects"), hops, url)
        hop = next_hop(out.status, out.location, method, url, body, headers, origins.allow_hosts)
        if isinstance(hop, str):
            return Exchanged(out._replace(error="redirect", detail=hop), hops, url)
        hops += 1
        method, url, body, headers = hop
        sender, path = await origins.route(url)
        out = await sender.request(method, path, _with_cookies(headers, jar, url), body, keep_body=keep_body,
                                   spec=spec)
        _store(jar, url, out)
    return Exchanged(out, hops, url)


def origins_for(sender: Sender, allow_hosts: Iterable[str] = (), *, timeout: float = 30.0,
                max_connections: int = 0, dns: str = "once") -> Origins:
    """The :class:`Origins` of a run whose target ``sender`` serves: a hop to another origin
    gets a sender of the same HTTP path (the lean one when the target's is lean, else aiohttp)."""
    from .senders import make_sender

    base = str(getattr(sender, "base_url", None) or getattr(sender, "target", ""))

    def make(url: str) -> Sender:
        path = "lean" if sender.name == "lean" else "aiohttp"
        return make_sender(url, http_path=path, max_connections=max_connections, timeout=timeout, dns=dns)

    return Origins(sender, base, make, allow_hosts)
