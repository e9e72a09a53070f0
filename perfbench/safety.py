"""Target safety: load is only ever sent to loopback unless the user names the host.

A load test is a weapon pointed at a server. The check runs before any request is sent and
refuses, with the reason, any host that is not a loopback address and not allow-listed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from .errors import ConfigError, UnsafeTargetError
from .redaction import redact_url, unredacted

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback_address(address: str | None) -> bool:
    """True for an IP address in 127.0.0.0/8 or ::1 (a zone suffix such as ``%lo`` is ignored); names are not."""
    if not address:
        return False
    try:
        return ipaddress.ip_address(address.strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the usual names of localhost."""
    return host.strip("[]").lower() in LOOPBACK_NAMES or is_loopback_address(host)


def check_target(url: str, allow_hosts: Iterable[str] = ()) -> str:
    """Validate ``url`` as a load target and return it without a trailing slash.

    Raises ConfigError for a malformed URL and UnsafeTargetError for a host that is neither
    loopback nor in ``allow_hosts``. Messages show the URL with its secrets redacted; the redacted
    target an experiment notebook is given stands for the real one (``perfbench.redaction.unredacted``).
    """
    url = unredacted(url)
    shown = redact_url(url)
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ConfigError(f"target {shown!r}: a URL has no spaces or control characters, e.g. http://127.0.0.1:8080")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL" for http://[::1, for one
        raise ConfigError(f"target {shown!r}: not a URL ({exc}), e.g. http://127.0.0.1:8080 or http://[::1]:8080") \
            from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"target {shown!r}: the scheme must be http or https, e.g. http://127.0.0.1:8080")
    if not parts.hostname:
        raise ConfigError(f"target {shown!r}: no host, e.g. http://127.0.0.1:8080")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ConfigError(f"target {shown!r}: the port must be a number from 1 to 65535") from None
    host = parts.hostname
    allowed = {h.lower() for h in allow_hosts}
    if not is_loopback_host(host) and host.lower() not in allowed:
        raise UnsafeTargetError(
            f"target host {host!r} is not loopback; perfbench only loads 127.0.0.1, localhost or [::1] "
            f"unless you name the host with --allow-host {host}"
        )
    return url.rstrip("/")


def check_address(address: str, allow_hosts: Iterable[str] = (), what: str = "address") -> str:
    """Validate an address perfbench connects to that is not a load target (a Dask scheduler's
    ``tcp://HOST:PORT`` or ``HOST:PORT``, a service's URL): the same rule as :func:`check_target`,
    checked before any connection. Returns ``address`` unchanged.

    Raises ConfigError for a malformed address and UnsafeTargetError for a host that is neither
    loopback nor in ``allow_hosts``. ``inproc://`` (a cluster inside this process) is always fine.
    """
    text = address.strip()
    if "://" not in text:
        text = "tcp://" + text
    parts = urlsplit(text)
    if parts.scheme == "inproc":
        return address
    if not parts.hostname:
        raise ConfigError(f"{what} {address!r}: no host, e.g. tcp://127.0.0.1:8786")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ConfigError(f"{what} {address!r}: the port must be a number from 1 to 65535") from None
    host = parts.hostname
    if not is_loopback_host(host) and host.lower() not in {h.lower() for h in allow_hosts}:
        raise UnsafeTargetError(
            f"{what} host {host!r} is not loopback; perfbench only connects to 127.0.0.1, localhost or [::1] "
            f"unless you name the host with --allow-host {host}"
        )
    return address
