"""A server cannot crash the recorder: hostile response bodies against every kind of check.

A real server on 127.0.0.1 answers 200 with bodies built to break a parser: JSON nested 200,000
deep, invalid UTF-8, a number of 100,000 digits, 1e999999, GraphQL ``errors`` of the wrong shape.
Every request of the plan must be recorded, each a success or an error of kind ``check`` with its
reason, on both HTTP paths and in both load models.
"""

from __future__ import annotations

import polars as pl
import pytest
from aiohttp import web
from conftest import ThreadServer

from perfbench import shapes
from perfbench.analysis.results import Run
from perfbench.load import run_load
from perfbench.scenario import BodyContains, JsonField, NoGraphQLErrors, Predicate, Request, Scenario

BODIES = {
    "deep_list": b"[" * 200_000,
    "deep_object": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "invalid_utf8": b'{"a": "\xff\xfe\xfd"}',
    "huge_int": b'{"a": ' + b"9" * 100_000 + b"}",
    "huge_float": b'{"a": 1e999999}',
    "graphql_errors_table": b'{"errors": {"message": "boom"}}',
    "graphql_errors_text": b'{"errors": "boom"}',
    "empty": b"",
}


def _raises(check_status: int, body: bytes) -> str | None:
    raise ValueError("a check of the user's that raises")


CHECKS = {
    "json_field": JsonField("a"),
    "json_equals": JsonField("a.0.b", equals=1),
    "body_contains": BodyContains("needle"),
    "predicate": Predicate(lambda status, body: body.decode()[0] == "{", "starts with {"),
    "graphql": NoGraphQLErrors(),
    "plain_function": _raises,  # any callable is accepted as a check
}


@pytest.fixture(scope="module")
def hostile():
    async def body(request: web.Request) -> web.Response:
        return web.Response(body=BODIES[request.match_info["name"]], content_type="application/json")

    app = web.Application()
    app.router.add_get("/body/{name}", body)
    server = ThreadServer(app).start()
    yield server
    server.stop()


def scenario() -> Scenario:
    return Scenario([Request(f"{b}.{c}", "GET", f"/body/{b}", checks=(check,))
                     for b in BODIES for c, check in CHECKS.items()], seed=3)


def assert_every_request_recorded_as_a_check_error(res, planned: int | None) -> pl.DataFrame:
    df = Run.load(res.path).requests.collect()
    if planned is not None:
        assert df.height == planned
        assert not any("not sent" in r for r in res.summary.get("generator", {}).get("reasons", []))
    assert res.end_reason == "completed"
    assert set(df["error"].drop_nulls().unique()) <= {"check"}, df.filter(pl.col("error") != "check").head()
    failed = df.filter(pl.col("error") == "check")
    assert failed["error_detail"].null_count() == 0 and failed.height > 0
    by_name = dict(zip(df["endpoint"], zip(df["error"], df["error_detail"], strict=True), strict=False))
    for name in ("deep_list.json_field", "deep_object.json_equals"):
        if name in by_name:
            assert by_name[name] == ("check", "body is JSON nested too deeply to read")
    if "deep_list.plain_function" in by_name:
        assert by_name["deep_list.plain_function"][1].startswith("function could not judge the response: ValueError")
    return df


@pytest.mark.parametrize("http_path", ["lean", "aiohttp"])
def test_hostile_bodies_against_every_check_open_model(hostile, tmp_path, http_path):
    # 2 s at 150/s: every one of the 48 request kinds is drawn several times
    res = run_load(hostile.url, shapes.constant(150, 2), scenario(), runs_dir=tmp_path, progress=False,
                   http_path=http_path, timeout=10)
    df = assert_every_request_recorded_as_a_check_error(res, planned=300)
    assert df["endpoint"].n_unique() == len(BODIES) * len(CHECKS)


@pytest.mark.parametrize("http_path", ["lean", "aiohttp"])
def test_hostile_bodies_against_every_check_closed_model(hostile, tmp_path, http_path):
    res = run_load(hostile.url, shapes.users(4, 0.5), scenario(), runs_dir=tmp_path, progress=False,
                   http_path=http_path, timeout=10)
    assert_every_request_recorded_as_a_check_error(res, planned=None)


def test_checks_called_directly_never_raise_on_hostile_bodies():
    for name, body in BODIES.items():
        for cname, check in CHECKS.items():
            if cname == "plain_function":
                continue
            reason = check(200, body)
            assert reason is None or isinstance(reason, str), (name, cname)
        r = Request("r", checks=tuple(CHECKS.values()))
        kind, detail = r.evaluate(200, body)
        assert kind == "check" and detail, name


TOKENS = [None, {"a": 1}, 7, "", "a\r\nX-Injected: 1", "caf\u00e9\u20ac", "x" * 10_000]


@pytest.fixture(scope="module")
def hostile_login():
    token: list = [None]

    async def login(request: web.Request) -> web.Response:
        return web.json_response({"token": token[0]})

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/login", login)
    app.router.add_get("/", ok)
    server = ThreadServer(app).start()
    yield server, token
    server.stop()


@pytest.mark.parametrize("http_path", ["lean", "aiohttp"])
def test_a_login_token_that_is_no_header_value_is_refused_not_sent(hostile_login, tmp_path, http_path):
    """The token comes from the server: null, a table, a number, CR/LF, non-Latin-1 or huge is never sent as
    ``Bearer ...``. The open model's one login fails the run (the target's fault: exit 4); in the closed
    model each user's login is a check error with its reason."""
    from perfbench.errors import TargetError
    from perfbench.scenario import Login

    server, token = hostile_login
    scenario = Scenario([Request("a", path="/")], login=Login("/login", {"user": "u"}))
    for bad in TOKENS:
        token[0] = bad
        with pytest.raises(TargetError, match="login at /login: the token"):
            run_load(server.url, shapes.constant(20, 0.2), scenario, runs_dir=tmp_path, progress=False,
                     http_path=http_path)
        res = run_load(server.url, shapes.users(2, 0.2), scenario, runs_dir=tmp_path, progress=False,
                       http_path=http_path)
        df = Run.load(res.path).requests.collect()
        assert df.height >= 2 and set(df["endpoint"]) == {"login"}, (bad, df["endpoint"].unique())
        assert set(df["error"]) == {"check"} and all(d.startswith("login answer: the token")
                                                     for d in df["error_detail"]), bad
