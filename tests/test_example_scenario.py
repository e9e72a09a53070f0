"""examples/real_world.toml, run as a user would on both HTTP paths against servers that do what real
services do: every endpoint's outcome is the expected one, and the counts by kind add up."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from aiohttp import web
from conftest import ThreadServer

from perfbench import shapes
from perfbench.analysis.results import Run
from perfbench.load import run_load
from perfbench.scenario_toml import load_toml

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "real_world.toml"
BODY = json.dumps({"items": [{"id": i, "name": f"item {i}"} for i in range(50)]}).encode()


def _app() -> web.Application:
    async def old(request: web.Request) -> web.Response:
        raise web.HTTPFound("/older")

    async def older(request: web.Request) -> web.Response:
        raise web.HTTPFound("/new")

    async def new(request: web.Request) -> web.Response:
        return web.Response(text="new")

    async def gz(request: web.Request) -> web.Response:
        assert "gzip" in request.headers.get("Accept-Encoding", "")
        return web.Response(body=gzip.compress(BODY), headers={"Content-Encoding": "gzip"},
                            content_type="application/json")

    async def login(request: web.Request) -> web.Response:
        await request.read()
        resp = web.json_response({"token": "t"})
        resp.set_cookie("session", "s1", path="/")
        return resp

    async def me(request: web.Request) -> web.Response:
        return web.Response(text="me") if request.cookies.get("session") == "s1" else web.Response(status=401)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    for path, handler in (("/old", old), ("/older", older), ("/new", new), ("/gzip", gz), ("/me", me),
                          ("/slow", slow), ("/ok", ok)):
        app.router.add_get(path, handler)
    app.router.add_post("/login", login)
    return app


@pytest.fixture(scope="module")
def two_services() -> Iterator[tuple[ThreadServer, ThreadServer]]:
    a, b = ThreadServer(_app()).start(), ThreadServer(_app()).start()
    yield a, b
    a.stop()
    b.stop()


# every row of an endpoint ends this way: (status, error kind, redirects, final_path)
EXPECTED = {
    "login": (200, None, 0, None),
    "moved": (200, None, 2, "/new"),
    "compressed": (200, None, 0, None),
    "me": (200, None, 0, None),
    "slow": (None, "timeout", 0, None),
    "missing": (404, "http_4xx", 0, None),
    "unfollowed": (302, None, 0, None),
    "other": (200, None, 0, None),
}


@pytest.mark.parametrize("path", ["lean", "aiohttp"])
def test_the_example_scenario_meets_every_outcome(two_services, tmp_path, path):
    main, other = two_services
    scenario = load_toml(EXAMPLE)
    scenario = dataclasses.replace(scenario, targets={"other": other.url})  # its port is this test's
    res = run_load(main.url, shapes.constant(40, 1.5), scenario, runs_dir=tmp_path, http_path=path,
                   progress=False)
    df = Run.load(res.path).requests.collect()
    assert df.height == 60 and res.end_reason == "completed"
    for (name,), rows in df.group_by("endpoint"):
        got = set(rows.select("status", "error", "redirects", "final_path").rows())
        assert got == {EXPECTED[name]}, name
    comp = df.filter(pl.col("endpoint") == "compressed")
    assert (comp["bytes"] == len(BODY)).all() and (comp["wire_bytes"] < len(BODY)).all()
    slow = df.filter(pl.col("endpoint") == "slow")
    assert set(slow["error_detail"]) == {"ttfb timeout"}
    # the counts by kind in summary.json are the rows' own
    kinds = df.filter(pl.col("error").is_not_null()).group_by("error").len()
    assert res.summary["overall"]["errors_by_kind"] == dict(kinds.rows())
