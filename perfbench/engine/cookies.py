"""A virtual user's cookies: what ``Set-Cookie`` stored, sent back as ``Cookie``.

Both HTTP paths use this jar (aiohttp's own is switched off), so a login that sets a session
cookie (Flask, Django) works the same on either. Deliberately small, RFC 6265's rules that
matter for one user talking to a few local services:

- host-only cookies unless ``Domain`` is given and domain-matches the host; ``Path`` as given,
  else the directory of the request's path;
- ``Max-Age`` (wins) and ``Expires``: a cookie whose lifetime is over is removed (a server's
  logout);
- ``Secure`` cookies only over https;
- a value is kept as the server sent it (no unquoting), and at most :data:`MAX_COOKIES` cookies
  of at most :data:`MAX_COOKIE_BYTES` each are kept (a hostile server cannot grow a jar).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import NamedTuple

MAX_COOKIES = 100
MAX_COOKIE_BYTES = 4096


class _Cookie(NamedTuple):
    value: str
    domain: str  # the host (host-only) or the Domain attribute, lower case, no leading dot
    host_only: bool
    path: str
    secure: bool
    expires: float | None  # time.time() seconds, None: a session cookie


def _default_path(request_path: str) -> str:
    path = request_path.split("?", 1)[0]
    if not path.startswith("/") or path.count("/") == 1:
        return "/"
    return path[: path.rfind("/")]


def _path_matches(request_path: str, cookie_path: str) -> bool:
    path = request_path.split("?", 1)[0] or "/"
    if path == cookie_path:
        return True
    if path.startswith(cookie_path):
        return cookie_path.endswith("/") or path[len(cookie_path)] == "/"
    return False


def _domain_matches(host: str, domain: str) -> bool:
    return host == domain or (host.endswith("." + domain) and not host.replace(".", "").isdigit())


class CookieJar:
    """One user's cookies; :meth:`store` takes a response's ``Set-Cookie`` values, :meth:`header`
    gives the ``Cookie`` value for a request (None: no cookie applies)."""

    __slots__ = ("_cookies", "_clock")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._cookies: dict[tuple[str, str, str], _Cookie] = {}  # (domain, path, name) -> cookie
        self._clock = clock

    def __len__(self) -> int:
        return len(self._cookies)

    def store(self, host: str, request_path: str, set_cookies: list[str]) -> None:
        host = host.lower().strip("[]")
        now = self._clock()
        for line in set_cookies:
            if len(line) > MAX_COOKIE_BYTES:
                continue
            parts = line.split(";")
            name, eq, value = parts[0].partition("=")
            name, value = name.strip(), value.strip()
            if not eq or not name:
                continue
            domain, host_only, path, secure, expires = host, True, _default_path(request_path), False, None
            max_age: float | None = None
            for attr in parts[1:]:
                key, _, val = attr.partition("=")
                key, val = key.strip().lower(), val.strip()
                if key == "domain" and val:
                    d = val.lstrip(".").lower()
                    if not _domain_matches(host, d):
                        break  # a cookie for another domain: rejected (RFC 6265 5.3 step 6)
                    domain, host_only = d, d == host
                elif key == "path" and val.startswith("/"):
                    path = val
                elif key == "secure":
                    secure = True
                elif key == "max-age":
                    with contextlib.suppress(ValueError):
                        max_age = float(int(val))
                elif key == "expires" and val:
                    with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
                        expires = parsedate_to_datetime(val).timestamp()
            else:
                if max_age is not None:
                    expires = now + max_age
                key3 = (domain, path, name)
                if expires is not None and expires <= now:
                    self._cookies.pop(key3, None)
                elif key3 in self._cookies or len(self._cookies) < MAX_COOKIES:
                    self._cookies[key3] = _Cookie(value, domain, host_only, path, secure, expires)

    def header(self, host: str, request_path: str, https: bool = False) -> str | None:
        if not self._cookies:
            return None
        host = host.lower().strip("[]")
        now = self._clock()
        pairs = []
        # longer paths first (RFC 6265 5.4 step 2)
        for (_, _, name), c in sorted(self._cookies.items(), key=lambda kv: -len(kv[1].path)):
            if c.expires is not None and c.expires <= now:
                continue
            if (host != c.domain if c.host_only else not _domain_matches(host, c.domain)):
                continue
            if c.secure and not https:
                continue
            if not _path_matches(request_path, c.path):
                continue
            pairs.append(f"{name}={c.value}")
        return "; ".join(pairs) or None
