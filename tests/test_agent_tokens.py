"""A malformed token header (not UTF-8, lone bytes, huge) is a 401 from the agent's endpoints and the
memory endpoint, on aiohttp and ASGI, never a 500 and never a server-side traceback."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest
from aiohttp import web

from perfbench.agent import Agent
from perfbench.agent.core import MAX_TOKEN_BYTES, TOKEN_HEADER, token_matches
from perfbench.agent.memory import memory_app
from tests.conftest import ThreadServer

TOKEN = "test-token-" + "x" * 16
BAD_TOKENS = {
    "not utf-8": b"\xff\xfe\xfd" + b"\x80" * 20,
    "latin-1 look-alike": TOKEN.replace("x", "\xe9").encode("latin-1"),
    "huge": b"a" * 8000,
    "just over the cap": TOKEN.encode() + b"x" * MAX_TOKEN_BYTES,
    "empty": b"",
}
# bytes an HTTP parser refuses in a header (aiohttp answers 400 itself; an ASGI server may pass them on)
CONTROL = b"\x01\x02\x7f" + TOKEN.encode()


def raw_get(url: str, path: str, token: bytes) -> int:
    """The status of a GET sent byte for byte (no client library cleans the header up)."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + TOKEN_HEADER.encode() + b": " + token
                  + b"\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def agent_server():
    app = web.Application()
    Agent(TOKEN, endpoints=True).install_aiohttp(app)
    server = ThreadServer(app).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def memory_server():
    app = web.Application()
    app.add_subapp("/_perfbench/memory", memory_app(TOKEN))
    server = ThreadServer(app).start()
    yield server
    server.stop()


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_a_malformed_token_is_401_on_the_aiohttp_agent(agent_server, case, caplog):
    with caplog.at_level(logging.ERROR):
        assert raw_get(agent_server.url, "/_perfbench/status", BAD_TOKENS[case]) == 401
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert raw_get(agent_server.url, "/_perfbench/status", TOKEN.encode()) == 200  # the right one still works


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_a_malformed_token_is_401_on_the_memory_endpoint(memory_server, case, caplog):
    with caplog.at_level(logging.ERROR):
        assert raw_get(memory_server.url, "/_perfbench/memory/status", BAD_TOKENS[case]) == 401
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert raw_get(memory_server.url, "/_perfbench/memory/status", TOKEN.encode()) == 200


def test_headers_the_http_parser_refuses_are_400_not_500(agent_server, memory_server):
    # aiohttp refuses a header line over 8190 bytes, or with control bytes, itself, before the agent sees it
    for token in (b"a" * 20_000, CONTROL):
        assert raw_get(agent_server.url, "/_perfbench/status", token) == 400
        assert raw_get(memory_server.url, "/_perfbench/memory/status", token) == 400


@pytest.mark.parametrize("case", [*BAD_TOKENS, "control bytes", "very huge"])
def test_a_malformed_token_is_401_on_the_asgi_agent(case):
    agent = Agent(TOKEN, endpoints=True)
    token = BAD_TOKENS.get(case, CONTROL if case == "control bytes" else b"a" * 1_000_000)

    async def app(scope, receive, send):  # the wrapped application is never reached
        raise AssertionError("the agent's endpoint went to the app")

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/_perfbench/status", "query_string": b"",
             "headers": [(b"x-perfbench-token", token)], "client": ("127.0.0.1", 5555)}
    from perfbench.agent.core import AgentASGIMiddleware

    asyncio.run(AgentASGIMiddleware(app, agent)(scope, receive, send))
    assert sent[0]["status"] == 401
    assert "wrong" in json.loads(sent[1]["body"])["error"]
    agent.uninstall()


def test_token_matches_never_raises():
    expected = TOKEN.encode()
    assert token_matches(TOKEN, expected) and token_matches(expected, expected)
    for given in (None, "", "\udcff" * 3, "\ud800", "é" * 40, b"\xff" * 40, "a" * 10**6):
        assert token_matches(given, expected) is False
    assert token_matches(TOKEN, None) is False  # endpoints without a token: nothing matches
