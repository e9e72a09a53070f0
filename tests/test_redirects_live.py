"""Redirects, cookies and several services in one run, against real servers on 127.0.0.1, on both
HTTP paths and both load models: a redirect chain is one row (final status, redirects, final path),
the same on either path."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pytest
from aiohttp import web
from conftest import ThreadServer

from perfbench import shapes
from perfbench.analysis.results import Run
from perfbench.errors import ConfigError, UnsafeTargetError
from perfbench.load import run_load
from perfbench.scenario import IntRange, Login, Request, Scenario
from perfbench.scenario_toml import load_toml

PATHS = ["lean", "aiohttp"]
OTHER = web.AppKey("other", str)


def _app() -> web.Application:
    async def hop(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        raise web.HTTPFound("/ok" if n <= 1 else f"/r/{n - 1}")

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def method(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"method": request.method, "body": body.decode()})

    async def see_other(request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/method")

    async def temporary(request: web.Request) -> web.Response:
        await request.read()
        raise web.HTTPTemporaryRedirect("/method")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def away(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://10.255.255.1/x")  # must never be sent: not loopback

    async def other(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.app[OTHER] + "/ok")

    async def relative(request: web.Request) -> web.Response:
        raise web.HTTPFound("ok")  # relative to /d/rel: /d/ok

    async def login(request: web.Request) -> web.Response:
        await request.read()
        resp = web.json_response({"token": "t"})
        resp.set_cookie("session", "abc", path="/")
        return resp

    async def me(request: web.Request) -> web.Response:
        if request.cookies.get("session") != "abc":
            return web.Response(status=401, text="no session")
        return web.Response(text="me")

    async def not_modified(request: web.Request) -> web.Response:
        return web.Response(status=304)

    app = web.Application()
    app[OTHER] = ""
    app.router.add_get("/r/{n}", hop)
    app.router.add_get("/ok", ok)
    app.router.add_get("/d/ok", ok)
    app.router.add_get("/d/rel", relative)
    app.router.add_route("*", "/method", method)
    app.router.add_post("/see-other", see_other)
    app.router.add_post("/temporary", temporary)
    app.router.add_get("/loop", loop)
    app.router.add_get("/away", away)
    app.router.add_get("/other", other)
    app.router.add_post("/login", login)
    app.router.add_get("/me", me)
    app.router.add_get("/not-modified", not_modified)
    return app


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ThreadServer, ThreadServer]]:
    second = ThreadServer(_app()).start()
    app = _app()
    app[OTHER] = second.url
    first = ThreadServer(app).start()
    yield first, second
    first.stop()
    second.stop()


def _rows(url, scenario, runs_dir, path, plan=None) -> pl.DataFrame:
    res = run_load(url, plan or shapes.constant(40, 0.5), scenario, runs_dir=runs_dir, http_path=path,
                   progress=False, timeout=5)
    return Run.load(res.path).requests.collect().sort("request_id")


def _by_endpoint(df: pl.DataFrame) -> dict[str, tuple]:
    """Per endpoint, the set of (status, error, detail, bytes, redirects, final_path) its rows have."""
    out = {}
    for name, g in df.group_by("endpoint"):
        out[name[0]] = set(g.select("status", "error", "error_detail", "bytes", "redirects", "final_path").rows())
    return out


SCENARIO = Scenario([
    Request("chain", "GET", "/r/3"),
    Request("post303", "POST", "/see-other", json={"a": 1}),
    Request("post307", "POST", "/temporary", json={"a": 1}),
    Request("loop", "GET", "/loop"),
    Request("away", "GET", "/away"),
    Request("other", "GET", "/other"),
    Request("relative", "GET", "/d/rel"),
    Request("unfollowed", "GET", "/r/2", follow_redirects=False),
    Request("two", "GET", "/r/3", follow_redirects=2),
    Request("304", "GET", "/not-modified"),
], name="redirects")

EXPECTED = {
    "chain": {(200, None, None, 2, 3, "/ok")},
    "post303": {(200, None, None, len('{"method": "GET", "body": ""}'), 1, "/method")},
    "post307": {(200, None, None, len('{"method": "POST", "body": "{\\"a\\":1}"}'), 1, "/method")},
    "loop": {(302, "redirect", "more than 10 redirects", None, 10, "/loop")},
    "away": {(302, "redirect", "redirect to 10.255.255.1 not followed: not loopback and not allow-listed "
                               "(--allow-host)", None, 0, None)},
    "other": {(200, None, None, 2, 1, "/ok")},
    "relative": {(200, None, None, 2, 1, "/d/ok")},
    "unfollowed": {(302, None, None, None, 0, None)},
    "two": {(302, "redirect", "more than 2 redirects", None, 2, "/r/1")},
    "304": {(304, None, None, 0, 0, None)},
}


def _normalize(got: dict[str, set]) -> dict[str, set]:
    # a redirect answer's body size is the server's business (aiohttp writes a short text): ignored
    return {k: {(s, e, d, None if s in (301, 302, 303, 307, 308) else b, r, f) for s, e, d, b, r, f in v}
            for k, v in got.items()}


@pytest.mark.parametrize("path", PATHS)
def test_redirect_chains_are_one_row_each_the_same_on_both_paths(servers, runs_dir, path):
    df = _rows(servers[0].url, SCENARIO, runs_dir, path)
    assert df.height == 20
    got = _normalize(_by_endpoint(df))
    for name, rows in got.items():
        assert rows == EXPECTED[name], name


@pytest.mark.parametrize("path", PATHS)
def test_the_closed_model_follows_redirects_too(servers, runs_dir, path):
    df = _rows(servers[0].url, SCENARIO, runs_dir, path, plan=shapes.users(2, 0.5, think=shapes.Pacing(0.05)))
    got = _normalize(_by_endpoint(df))
    for name, rows in got.items():
        assert rows == EXPECTED[name], name


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("model", ["open", "closed"])
def test_a_session_cookie_set_by_the_login_is_sent_back(servers, runs_dir, path, model):
    sc = Scenario([Request("me", "GET", "/me")], login=Login("/login", {"user": "u"}))
    plan = shapes.constant(20, 0.5) if model == "open" else shapes.users(2, 0.5, think=shapes.Pacing(0.05))
    df = _rows(servers[0].url, sc, runs_dir, path, plan=plan)
    me = df.filter(pl.col("endpoint") == "me")
    assert me.height > 0 and me["status"].unique().to_list() == [200]
    without = Scenario([Request("me", "GET", "/me")], login=Login("/login", {"user": "u"}), cookies=False)
    df = _rows(servers[0].url, without, runs_dir, path, plan=plan)
    assert df.filter(pl.col("endpoint") == "me")["status"].unique().to_list() == [401]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("model", ["open", "closed"])
def test_requests_to_several_services_in_one_run(servers, runs_dir, path, model):
    first, second = servers
    hits = []
    sc = Scenario([
        Request("here", "GET", "/ok"),
        Request("named", "GET", "/method", target="other"),
        Request("absolute", "GET", second.url + "/d/ok"),
        Request("templated", "GET", "/r/{n}", target="other", vars={"n": IntRange(1, 2)}),
    ], targets={"other": second.url}, name="hosts")
    plan = shapes.constant(40, 0.5) if model == "open" else shapes.users(2, 0.5, think=shapes.Pacing(0.02))
    res = run_load(first.url, plan, sc, runs_dir=runs_dir, http_path=path, progress=False, timeout=5)
    df = Run.load(res.path).requests.collect()
    hits.append(df)
    assert set(df["endpoint"]) == {"here", "named", "absolute", "templated"}
    assert df["error"].null_count() == df.height and set(df["status"]) == {200}
    assert df.filter(pl.col("endpoint") == "templated")["final_path"].unique().to_list() == ["/ok"]
    meta = Run.load(res.path).meta
    assert meta["scenario"]["targets"] == {"other": second.url}


@pytest.mark.parametrize("bad", [{"targets": {"x": "http://10.255.255.1:80"}},
                                 {"path": "http://192.0.2.7/x"}])
def test_every_service_a_scenario_names_passes_the_allow_list_before_any_packet(servers, runs_dir, bad):
    if "targets" in bad:
        sc = Scenario([Request("a", "GET", "/ok"), Request("b", "GET", "/ok", target="x")], targets=bad["targets"])
    else:
        sc = Scenario([Request("a", "GET", "/ok"), Request("b", "GET", bad["path"])])
    with pytest.raises(UnsafeTargetError, match="not loopback"):
        run_load(servers[0].url, shapes.constant(10, 0.2), sc, runs_dir=runs_dir, progress=False)
    assert not any(runs_dir.iterdir()) if runs_dir.exists() else True  # refused before a run directory


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"requests": [Request("a", "GET", "/", target="nope")]}, "target 'nope' is not one of the scenario's targets"),
    ({"requests": [Request("a", "GET", "/")], "targets": {"t": "ftp://127.0.0.1"}}, "must be http:// or https://"),
    ({"requests": [Request("a", "GET", "/")], "targets": {"t": "http://u:p@127.0.0.1"}}, "credentials"),
    ({"requests": [Request("a", "GET", "http://127.0.0.1:1/x", target="t")], "targets": {"t": "http://127.0.0.1"}},
     "give one of them"),
    ({"requests": [Request("a", "GET", "/", follow_redirects=-1)]}, "follow_redirects must be"),
])
def test_bad_targets_and_policies_are_named(kwargs, message):
    with pytest.raises(ConfigError) as info:
        Scenario(**kwargs)
    assert message in str(info.value) + " ".join(getattr(info.value, "problems", []) or [])


def test_a_toml_scenario_declares_targets_and_policies(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('follow_redirects = 3\ncookies = false\n[targets]\nauth = "http://127.0.0.1:9"\n'
                 '[[request]]\nname = "a"\npath = "/x"\ntarget = "auth"\nfollow_redirects = false\n'
                 '[[request]]\nname = "b"\npath = "http://localhost:8/y"\n')
    sc = load_toml(f)
    assert sc.follow_redirects == 3 and sc.cookies is False and sc.targets == {"auth": "http://127.0.0.1:9"}
    a, b = sc.requests
    assert (sc.base_of(a), sc.redirect_limit(a)) == ("http://127.0.0.1:9", 0)
    assert (sc.base_of(b), sc.redirect_limit(b), b.render(None)[0]) == ("http://localhost:8", 3, "/y")
    assert sc.urls() == ["http://127.0.0.1:9", "http://localhost:8"]
    f.write_text('follow_redirects = "yes"\ntargets = 5\n[[request]]\nname = "a"\npath = "/x"\n')
    with pytest.raises(ConfigError) as info:
        load_toml(f)
    text = str(info.value) + " ".join(info.value.problems)
    assert "follow_redirects" in text and "targets" in text


@pytest.mark.parametrize("path", PATHS)
def test_the_dns_policy_resolves_once_or_per_connection(servers, runs_dir, path, monkeypatch):
    """``localhost`` resolves from the hosts file (no query leaves the machine); the policy decides how
    often, and the run says which it used."""
    import aiohttp.resolver

    from perfbench.engine.lean import LeanSender

    calls = []
    lean_resolve, aio_resolve = LeanSender._resolve, aiohttp.resolver.DefaultResolver.resolve

    async def counted_lean(self):
        calls.append(self.host)
        return await lean_resolve(self)

    async def counted_aio(self, host, *args, **kwargs):
        calls.append(host)
        return await aio_resolve(self, host, *args, **kwargs)

    monkeypatch.setattr(LeanSender, "_resolve", counted_lean)
    monkeypatch.setattr(aiohttp.resolver.DefaultResolver, "resolve", counted_aio)
    url = servers[0].url.replace("127.0.0.1", "localhost")
    for dns in ("once", "per-connection"):
        calls.clear()
        sc = Scenario([Request("close", "GET", "/ok", headers={"Connection": "close"})])  # a new connection each
        res = run_load(url, shapes.constant(40, 0.25), sc, runs_dir=runs_dir, http_path=path, progress=False,
                       dns=dns)
        df = Run.load(res.path).requests.collect()
        assert df.height == 10 and set(df["status"]) == {200}
        assert Run.load(res.path).meta["engine"]["dns"] == dns
        if dns == "per-connection":
            assert len(calls) >= 10, calls  # one per new connection
        else:
            assert len(calls) <= 2, calls  # at the start (and the login-less auto choice), not per connection
    with pytest.raises(ConfigError, match="dns 'sometimes'"):
        run_load(url, shapes.constant(10, 0.1), runs_dir=runs_dir, progress=False, dns="sometimes")
