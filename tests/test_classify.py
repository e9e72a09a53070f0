"""Errors are data: what the client raises maps to one error kind (unit tests of the mapping;
the kinds are exercised end to end against misbehaving servers in test_faults.py and test_lean.py).

DNS failures are tested here rather than live: resolving a name that does not exist would send a
query to a resolver off this machine, and load tests here only ever talk to loopback."""

import errno
import socket
import ssl
from types import SimpleNamespace

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from perfbench.engine.classify import classify

KEY = SimpleNamespace(host="nonexistent.invalid", port=80, ssl=False, is_ssl=False)


@pytest.mark.parametrize("exc, kind", [
    (aiohttp.ClientConnectorDNSError(KEY, socket.gaierror(socket.EAI_NONAME, "Name or service not known")), "dns"),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "dns"),
    (aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(errno.ECONNREFUSED, "refused")), "connect"),
    (aiohttp.ClientSSLError(KEY, ssl.SSLError("bad handshake")), "tls"),
    (aiohttp.ServerDisconnectedError(), "reset"),
    (aiohttp.ClientPayloadError("incomplete"), "incomplete"),
    (ConnectionResetError(errno.ECONNRESET, "reset by peer"), "reset"),
    (aiohttp.ConnectionTimeoutError(), "timeout"),
    (TimeoutError(), "timeout"),
    (aiohttp.ClientResponseError(aiohttp.RequestInfo(URL("http://127.0.0.1/x"), "GET", CIMultiDictProxy(CIMultiDict()),
                                                     URL("http://127.0.0.1/x")), (), status=400,
                                 message="Bad status line"), "protocol"),
    (ValueError("anything else"), "client"),
])
def test_each_exception_maps_to_its_kind(exc, kind):
    got, detail = classify(exc)
    assert got == kind and detail


PLAIN = """
import errno, socket, ssl, sys
import perfbench.engine.classify as c
import perfbench.engine.open_model, perfbench.engine.senders, perfbench.engine.lean  # what a lean run loads
assert "aiohttp" not in sys.modules, "the lean path's error mapping loads aiohttp"
cases = [TimeoutError(), ConnectionResetError(errno.ECONNRESET, "reset"), BrokenPipeError(),
         ConnectionResetError(errno.ECONNREFUSED, "refused"), ssl.SSLError("bad"),
         socket.gaierror(socket.EAI_NONAME, "no name"), ValueError("x")]
before = [c.classify(e) for e in cases]
import aiohttp
assert before == [c.classify(e) for e in cases], (before, [c.classify(e) for e in cases])
print(c.status_kind(503), c.status_kind(404), [k for k, _ in before])
"""


def test_mapping_errors_never_loads_aiohttp_and_maps_the_same_without_it():
    """A lean run has not loaded aiohttp; loading it at the first error (a 5xx or a reset: 180 ms on the event
    loop) stalled the run there and made its generator look saturated. Without aiohttp the standard library's
    errors map as they do with it."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", PLAIN], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("http_5xx http_4xx ['timeout', 'reset', 'reset', 'connect', 'tls', 'dns', "
                                   "'client']"), proc.stdout
