"""Following redirects: where the next hop goes, with which method, or why it is not followed.

Pure decisions, shared by both HTTP paths (neither lets its HTTP library follow redirects, so
both record the same chain the same way). The rules are the browsers' and aiohttp's:

- 301, 302, 303, 307 and 308 with a ``Location`` are followed; other 3xx (300, 304...) are
  responses like any other.
- 303 turns any method but HEAD into GET; 301 and 302 turn POST into GET (what every browser,
  aiohttp and requests do); 307 and 308 keep the method and the body.
- The ``Location`` is resolved against the URL that answered (relative references included).
- A hop to another origin (scheme, host, port) drops ``Authorization`` and ``Cookie`` (the
  virtual user's cookie jar adds back what belongs to the new host).
- A hop to a host that is not loopback and not allow-listed is never followed: the request ends
  with error kind ``redirect`` (status kept), as does a chain longer than the limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

from ..safety import is_loopback_host
from ..scenario import DEFAULT_MAX_REDIRECTS, max_redirects  # noqa: F401 - the policy, re-exported

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DROPPED_ACROSS_ORIGINS = frozenset({"authorization", "cookie"})
_BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding", "content-encoding"})


class Hop(NamedTuple):
    """The next request of a redirect chain."""

    method: str
    url: str  # absolute
    body: bytes | None
    headers: dict[str, str]


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an absolute http(s) URL, the port made explicit."""
    u = urlsplit(url)
    return u.scheme, (u.hostname or "").lower(), u.port or (443 if u.scheme == "https" else 80)


def is_redirect(status: int, location: str | None) -> bool:
    return status in REDIRECT_STATUSES and bool(location)


def next_hop(status: int, location: str, method: str, url: str, body: bytes | None,
             headers: Mapping[str, str], allow_hosts: Iterable[str] = ()) -> Hop | str:
    """The hop a ``status`` response with ``location`` leads to, from the request ``method url``
    with ``body`` and ``headers``; or, as a string, why it is not followed (the detail of an
    error of kind ``redirect``)."""
    try:
        target = urljoin(url, location.strip())
        u = urlsplit(target)
        u.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return f"redirect to an invalid URL {location[:120]!r}"
    if u.scheme not in ("http", "https") or not u.hostname:
        return f"redirect to {target[:120]!r}: only http and https URLs are followed"
    host = u.hostname
    if not is_loopback_host(host) and host.lower() not in {h.lower() for h in allow_hosts}:
        return f"redirect to {host} not followed: not loopback and not allow-listed (--allow-host)"
    new_method = method
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        new_method = "GET"
    keep_body = new_method == method
    cross = origin(target) != origin(url)
    out = {}
    for k, v in headers.items():
        low = k.lower()
        if cross and low in _DROPPED_ACROSS_ORIGINS:
            continue
        if not keep_body and low in _BODY_HEADERS:
            continue
        if low == "host":
            continue
        out[k] = v
    return Hop(new_method, target.split("#", 1)[0], body if keep_body else None, out)


def path_of(url: str) -> str:
    """The path and query of an absolute URL (the row's ``final_path``)."""
    u = urlsplit(url)
    return (u.path or "/") + (f"?{u.query}" if u.query else "")
