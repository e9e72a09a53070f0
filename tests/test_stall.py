"""The measurement model on a server that stalls for 1 s every 5 s (issue 3's check).

Open model: requests keep being due during the stall; every one of them waits until the stall
ends, so about a fifth of all requests see latencies spread up to a second. Closed model: the
users block on the stall too, stop sending, and only one request per user sees it: the stall
nearly vanishes from the percentiles. Shares, not timings, are asserted.
"""

import asyncio

import polars as pl
import pytest
from aiohttp import web
from conftest import ThreadServer

from perfbench import shapes
from perfbench.analysis.results import Run
from perfbench.load import run_load
from perfbench.scenario import Request, Scenario

pytestmark = pytest.mark.slow
PERIOD, STALL_AT, STALL = 5.0, 2.0, 1.0


def stalling_app() -> web.Application:
    state = {}

    async def handler(request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        t0 = state.setdefault("t0", loop.time())  # the clock starts with the first request
        phase = (loop.time() - t0) % PERIOD
        if STALL_AT <= phase < STALL_AT + STALL:
            await asyncio.sleep(STALL_AT + STALL - phase)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    return app


@pytest.fixture
def stalling_server():
    server = ThreadServer(stalling_app()).start()
    yield server
    server.stop()


def test_open_model_counts_the_stall_for_every_request_that_was_due(stalling_server, tmp_path):
    res = run_load(stalling_server.url, shapes.constant(100, PERIOD), Scenario([Request("r", "GET", "/")]),
                   runs_dir=tmp_path, progress=False)
    df = Run.load(res.path).requests.collect()
    assert df.height == 500 and df["error"].null_count() == 500
    stalled = df.filter(pl.col("latency_ns") > 100_000_000).height / df.height
    assert 0.14 <= stalled <= 0.26, stalled  # a fifth of the requests were due during the stall
    assert 0.8e9 <= df["latency_ns"].max() <= 1.4e9  # the first one due waited about the whole second
    lat = res.summary["overall"]["latency_ms"]
    assert lat["p90"] > 100 and lat["p99"] > 800


def test_closed_model_hides_the_same_stall(stalling_server, tmp_path):
    res = run_load(stalling_server.url, shapes.users(10, PERIOD, think=shapes.Constant(0.1)),
                   Scenario([Request("r", "GET", "/")]), runs_dir=tmp_path, progress=False)
    df = Run.load(res.path).requests.collect()
    stalled = df.filter(pl.col("latency_ns") > 100_000_000).height / df.height
    assert stalled < 0.05, stalled  # only one request per user saw it
    assert "hide the stall" in res.summary["notes"][0]
