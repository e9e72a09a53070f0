"""Errors are data: one function maps what the client raised to an error kind and a detail.

The kinds are the vocabulary of the run directory's ``error`` column (``rundir.ERROR_KINDS``).
Order matters: aiohttp's exception classes inherit from each other and from OSError, so the
most specific match comes first (as httpx's ``map_httpcore_exceptions`` does).

This module never imports aiohttp: a run on the lean path has not loaded it, and loading it at the
first error (180 ms on the event loop) stalled the run there, late arrivals making the generator
look saturated. An exception can only be one of aiohttp's when aiohttp is loaded, so its classes are
looked at only then.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import sys

from ..redaction import redact_url


def classify(exc: BaseException) -> tuple[str, str]:
    """``(kind, detail)`` for an exception raised while sending or reading a request."""
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is None or not hasattr(aiohttp, "ClientOSError"):  # not loaded (or half): none of its errors
        return _plain(exc)
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "timeout", "connect timeout"
    if isinstance(exc, asyncio.TimeoutError | TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout", "read timeout"
    dns_error = getattr(aiohttp, "ClientConnectorDNSError", None)
    if dns_error is not None and isinstance(exc, dns_error):
        return "dns", short(exc)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError | ssl.SSLError):
        return "tls", name
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, socket.gaierror):
            return "dns", short(exc)
        return "connect", type(cause).__name__ if cause else name
    if isinstance(exc, aiohttp.ClientPayloadError):  # the body cut short (the aiohttp path tells it first)
        return "incomplete", name
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "reset", name
    if isinstance(exc, aiohttp.ClientResponseError):
        # raised by the response parser for malformed status lines, headers or bodies
        return "protocol", short(exc)
    if isinstance(exc, aiohttp.ClientOSError):
        return "connect" if getattr(exc, "errno", None) == errno.ECONNREFUSED else "reset", name
    return _plain(exc)


def _plain(exc: BaseException) -> tuple[str, str]:
    """What no aiohttp class matched: the standard library's timeouts, resets, TLS and DNS errors."""
    name = type(exc).__name__
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timeout", "read timeout"
    if isinstance(exc, ssl.SSLError):
        return "tls", name
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "connect" if getattr(exc, "errno", None) == errno.ECONNREFUSED else "reset", name
    if isinstance(exc, socket.gaierror):
        return "dns", short(exc)
    return "client", f"{name}: {short(exc)}"


def short(exc: BaseException, limit: int = 120) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return redact_url(text)[:limit]  # aiohttp's messages name the URL, query included


def status_kind(status: int) -> str:
    return "http_5xx" if status >= 500 else "http_4xx"
