"""User journeys: the flow model's checks, extraction, and flows run by both engines on both HTTP
paths against a real local server that checks every value a step carries from an earlier one."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator

import polars as pl
import pytest
from aiohttp import web
from conftest import ThreadServer

from perfbench import shapes
from perfbench.analysis.results import Run
from perfbench.engine.extract import NOT_FOUND, Response, cookie_value, fill_path, json_path
from perfbench.engine.flows import assign_classes, class_counts
from perfbench.engine.protocols import Outcome, header_of
from perfbench.errors import ConfigError
from perfbench.load import run_load
from perfbench.scenario import Choice, Request, Scenario, graphql
from perfbench.scenario_flows import Branch, Extract, Flow, FlowScenario, Step, UserClass
from perfbench.shapes import Uniform

PAGES = 4  # the feed has this many pages of 3 items


# ------------------------------------------------------------------------------------------------ the model

def test_flow_scenario_lists_its_steps_as_requests_and_its_flow_rows():
    s = FlowScenario(flows=[Flow("a", [Step(Request("one", "GET", "/1")), Step(Request("two", "GET", "/2"))])])
    assert [r.name for r in s.requests] == ["one", "two"]
    assert [uc.name for uc in s.user_classes] == ["default"]
    assert s.flow_names() == ["flow:a"]
    assert s.describe()["user_classes"][0]["flows"][0]["steps"][1]["name"] == "two"


def test_every_problem_is_reported_at_once_naming_flow_step_and_field():
    with pytest.raises(ConfigError) as exc:
        FlowScenario(flows=[Flow("j", [
            Step(Request("a", "GET", "/a/{nope}"), extract=[Extract("x", json="a", header="b")],
                 repeat_while="unknown", max_repeats=0, branches=[Branch("nowhere", status=(200,))]),
            Step(Request("a", "GET", "/b")),
        ])])
    text = str(exc.value)
    for needle in ("steps[0] (a): placeholder {nope} is not a context value",
                   "steps[0] (a).extract[0]: give exactly one of json, header, cookie, regex",
                   "steps[0] (a).repeat_while", "steps[0] (a).max_repeats: a number from 1",
                   "steps[0] (a).branches[0].goto: a step of flow 'j'",
                   "steps[1] (a): name 'a' is used by another step or request that differs"):
        assert needle in text, text


def test_a_placeholder_may_name_any_value_set_before_or_drawn():
    FlowScenario(user_classes=[UserClass("u", context={"base": "x"}, flows=[Flow("f", [
        Step(Request("make", "POST", "/items", json={"name": "{base}-{n}"}, vars={"n": Choice((1, 2))}),
             extract=[Extract("id", json="id")]),
        Step(Request("get", "GET", "/items/{id}", headers={"X-N": "{n}"})),
    ])])])
    with pytest.raises(ConfigError, match=r"placeholder \{later\} is not a context value"):
        FlowScenario(flows=[Flow("f", [Step(Request("get", "GET", "/items", headers={"X": "{later}"}))])])


def test_a_first_step_cannot_use_what_only_its_own_response_sets():
    """Paging by cursor: the first page's request uses {cursor}, which only its own response sets, so every
    run of the flow would stop at its first step; refused before the load, naming the fix."""
    paging = [Step(Request("page", "GET", "/items?after={cursor}"), extract=[Extract("cursor", json="next")],
                   repeat_while="cursor", max_repeats=5)]
    with pytest.raises(ConfigError, match=r"steps\[0\] \(page\): placeholder \{cursor\} has no value when the "
                                          r"flow starts .*\(context = \{ cursor = \"\" \}"):
        FlowScenario(flows=[Flow("feed", paging)])
    FlowScenario(flows=[Flow("feed", paging)], context={"cursor": ""})  # a start value: fine
    login = Flow("login", [Step(Request("login", "POST", "/login"), extract=[Extract("cursor", json="start")])])
    FlowScenario(user_classes=[UserClass("u", on_start=login, flows=[Flow("feed", paging)])])  # on_start sets it
    with pytest.raises(ConfigError, match=r"on_start \(login2\)\.steps\[0\] \(login2\): placeholder \{token\}"):
        FlowScenario(user_classes=[UserClass("u", flows=[Flow("feed", paging)], context={"cursor": ""}, on_start=Flow(
            "login2", [Step(Request("login2", "POST", "/login", headers={"A": "{token}"}),
                            extract=[Extract("token", json="t")])]))])


def test_user_class_problems():
    with pytest.raises(ConfigError) as exc:
        FlowScenario(user_classes=[UserClass("a", requests=[Request("x")], flows=[Flow("f", [Step(Request("y"))])]),
                                   UserClass("a", requests=[Request("z")], users=0)])
    text = str(exc.value)
    assert "give flows or requests (a weighted mix), exactly one" in text
    assert "name 'a' is used twice" in text and ".users: a number of users >= 1" in text


def test_classes_split_users_by_fixed_count_then_weight_interleaved():
    classes = [UserClass("admin", requests=[Request("a")], users=1),
               UserClass("read", requests=[Request("r")], weight=9), UserClass("write", requests=[Request("w")])]
    assert class_counts(classes, 11) == [1, 9, 1]
    order = assign_classes(classes, 11)
    assert sorted(order) == [0] + [1] * 9 + [2]
    assert 1 in order[:3]  # a ramp starts the big class at once
    assert class_counts(classes, 0) == [0, 0, 0]


# ------------------------------------------------------------------------------------------------ extraction

def test_json_path_reads_keys_and_list_indexes():
    doc = {"data": {"feed": {"edges": [{"id": 1}, {"id": 2}], "pageInfo": {"endCursor": None}}}}
    assert json_path(doc, "data.feed.edges.1.id") == 2
    assert json_path(doc, "data.feed.edges[-1].id") == 2
    assert json_path(doc, "data.feed.pageInfo.endCursor") is None  # null is a value
    assert json_path(doc, "data.feed.nope") is NOT_FOUND
    assert json_path(doc, "data.feed.edges.5") is NOT_FOUND


def test_each_source_and_what_a_miss_says():
    head = "HTTP/1.1 201 Created\r\nLocation: /items/7\r\nX-Item-Id: 7\r\nSet-Cookie: sid=abc; Path=/"
    out = Outcome(201, 10, b'{"id": 7, "token": "t-1"}', head=head, set_cookies=("sid=abc; Path=/",))
    r = Response(out)
    assert r.take("json", "id", None) == (7, "")
    assert r.take("header", "x-item-id", None) == ("7", "")
    assert r.take("cookie", "sid", None) == ("abc", "")
    assert r.take("regex", r'"token": "([^"]+)"', None) == ("t-1", "")
    assert r.take("json", "data.x", None)[1] == "JSON path data.x is not in the response"
    assert r.take("header", "etag", None)[1] == "header etag is not in the response"
    assert cookie_value((), "a=1; sid=zz", "sid") == "zz"
    aio = Outcome(200, 0, b"", head=((b"X-Item-Id", b"9"),))
    assert header_of(aio, "x-item-id") == "9"


def test_placeholders_in_paths_are_percent_encoded():
    assert fill_path("/feed?cursor={c}&n={n}", {"c": "a+b/c=", "n": 3}) == "/feed?cursor=a%2Bb%2Fc%3D&n=3"
    assert fill_path("/feed?cursor={c}", {"c": None}) == "/feed?cursor="


# ------------------------------------------------------------------------------------------------ a real server

def _app() -> web.Application:
    """Register, log in (a token and a cookie), a cursor-paged feed, items made and read by id; every
    handler checks that the values an earlier step gave come back, and answers 400 when not."""
    users: dict[str, str] = {}
    tokens: dict[str, str] = {}
    items: dict[int, str] = {}
    ids = itertools.count(1)

    def auth(request: web.Request) -> str | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return tokens.get(token) if request.cookies.get("sid") == "s-" + token else None

    async def register(request: web.Request) -> web.Response:
        body = await request.json()
        users[body["email"]] = body["password"]
        return web.json_response({"email": body["email"]}, status=201)

    async def login(request: web.Request) -> web.Response:
        body = await request.json()
        if users.get(body.get("email")) != body.get("password"):
            return web.json_response({"error": "bad login"}, status=401)
        token = f"t{next(ids)}"
        tokens[token] = body["email"]
        resp = web.json_response({"token": token})
        resp.set_cookie("sid", "s-" + token, path="/")
        return resp

    async def feed(request: web.Request) -> web.Response:
        if auth(request) is None:
            return web.json_response({"error": "no auth"}, status=401)
        cursor = request.query.get("cursor", "")
        page = int(base64.urlsafe_b64decode(cursor).decode()) if cursor else 0
        nxt = base64.urlsafe_b64encode(str(page + 1).encode()).decode() if page + 1 < PAGES else None
        return web.json_response({"page": page, "items": [page * 3 + i for i in range(3)],
                                  "pageInfo": {"endCursor": nxt}})

    async def make(request: web.Request) -> web.Response:
        if auth(request) is None:
            return web.json_response({"error": "no auth"}, status=401)
        body = await request.json()
        item = next(ids)
        items[item] = body["name"]
        return web.json_response({"id": item, "name": body["name"]}, status=201, headers={"X-Item-Id": str(item)})

    async def get(request: web.Request) -> web.Response:
        item = int(request.match_info["id"])
        if item not in items:
            return web.json_response({"error": "no such item"}, status=404)
        if request.headers.get("X-Item-Name") != items[item]:
            return web.json_response({"error": "wrong name header"}, status=400)
        return web.json_response({"id": item, "name": items[item]})

    async def gql(request: web.Request) -> web.Response:
        body = await request.json()
        after = body["variables"].get("after")
        page = int(after) if after else 0
        nxt = str(page + 1) if page + 1 < PAGES else None
        return web.json_response({"data": {"feed": {"page": page, "pageInfo": {"endCursor": nxt}}}})

    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/hopped")

    async def hopped(request: web.Request) -> web.Response:
        resp = web.json_response({"landed": "yes"})
        resp.set_cookie("h", "1", path="/")
        return resp

    async def needs_h(request: web.Request) -> web.Response:
        return web.json_response({"ok": True}) if request.cookies.get("h") == "1" else web.json_response({}, status=400)

    app = web.Application()
    app.router.add_get("/hop", hop)
    app.router.add_get("/hopped", hopped)
    app.router.add_get("/needs-h", needs_h)
    app.router.add_post("/register", register)
    app.router.add_post("/login", login)
    app.router.add_get("/feed", feed)
    app.router.add_post("/items", make)
    app.router.add_get(r"/items/{id:\d+}", get)
    app.router.add_post("/graphql", gql)
    return app


@pytest.fixture(scope="module")
def journey_server() -> Iterator[ThreadServer]:
    server = ThreadServer(_app()).start()
    yield server
    server.stop()


def journey(max_pages: int = 10) -> FlowScenario:
    """Register -> log in (on_start), then page the feed to its end, make an item, read it back."""
    on_start = Flow("signup", [
        Step(Request("register", "POST", "/register", json={"email": "u{vu}-{tag}@x.test", "password": "pw-{tag}"},
                     vars={"tag": Choice(("a", "b", "c"))}, expect=(201,))),
        Step(Request("login", "POST", "/login", json={"email": "u{vu}-{tag}@x.test", "password": "pw-{tag}"}),
             extract=[Extract("token", json="token"), Extract("sid", cookie="sid")]),
    ])
    auth = {"Authorization": "Bearer {token}"}
    act = Flow("act", [
        Step(Request("feed", "GET", "/feed?cursor={cursor}", headers=auth),
             extract=[Extract("cursor", json="pageInfo.endCursor"), Extract("page", json="page")],
             repeat_while="cursor", max_repeats=max_pages),
        Step(Request("make", "POST", "/items", headers=auth, json={"name": "n-{vu}-{page}"}, expect=(201,)),
             extract=[Extract("item", header="X-Item-Id"), Extract("name", regex=r'"name": ?"([^"]+)"')]),
        Step(Request("get", "GET", "/items/{item}", headers={"X-Item-Name": "{name}"}),
             branches=[Branch("end", status=(200,))]),
        Step(Request("never", "GET", "/never")),
    ])
    return FlowScenario(user_classes=[UserClass("member", flows=[act], on_start=on_start, context={"cursor": ""},
                                                think=Uniform(0, 0.01))], name="journey")


def _rows(res) -> pl.DataFrame:
    return Run.load(res.path).requests.collect()


def _check_runs(df: pl.DataFrame, pages: int) -> int:
    """Every run of ``act`` shows its steps in order with the values carried; returns how many ended."""
    flows = df.filter(pl.col("method") == "FLOW")
    done = 0
    for run in flows.filter(pl.col("flow") == "act").iter_rows(named=True):
        if run["error"] == "aborted":
            continue
        steps = df.filter((pl.col("flow_run") == run["flow_run"]) & (pl.col("method") != "FLOW")).sort("step")
        assert steps["step"].to_list() == list(range(len(steps))) == list(range(run["step"]))
        assert steps["endpoint"].to_list() == ["feed"] * pages + ["make", "get"], steps
        assert steps["error"].null_count() == len(steps), steps.filter(pl.col("error").is_not_null())
        assert run["error"] is None and run["user_class"] == "member"
        assert run["latency_ns"] >= steps["end_ns"].max() - run["intended_ns"]
        assert run["bytes"] == steps["bytes"].sum()
        done += 1
    return done


@pytest.mark.parametrize("http_path", ["lean", "aiohttp"])
def test_closed_model_journey_carries_values_between_steps(journey_server, tmp_path, http_path):
    res = run_load(journey_server.url, shapes.users(3, 1.0), journey(), runs_dir=tmp_path,
                   progress=False, http_path=http_path, max_requests=120)
    df = _rows(res)
    signup = df.filter(pl.col("flow") == "signup").sort(["flow_run", "step"])
    assert set(signup.filter(pl.col("method") == "FLOW")["error"].to_list()) == {None}
    assert signup.filter(pl.col("method") == "FLOW").height == 3  # once per user
    assert _check_runs(df, PAGES) >= 3
    # the flow row is an endpoint of its own, left out of overall
    summary = res.summary
    assert "flow:act" in summary["endpoints"] and "flow:signup" in summary["endpoints"]
    assert summary["overall"]["count"] == df.filter(pl.col("method") != "FLOW").height
    assert set(df["user_class"].to_list()) == {"member"}
    from perfbench.analysis.results import latency_timeseries, throughput_timeseries

    for name, rows in df.group_by("endpoint"):  # every endpoint's block, flows' included, from the rows
        block = summary["endpoints"][name[0]]
        assert block["count"] == rows.height and block["errors"] == rows["error"].is_not_null().sum()
        assert block["latency_ms"]["max"] == pytest.approx(rows["latency_ns"].max() / 1e6)
    run = Run.load(res.path)
    assert run.compute_summary()["endpoints"] == summary["endpoints"]
    from perfbench.analysis.locust_csv import history_rows, stats_rows

    csv_rows = {r["Name"]: r for r in stats_rows(run)}  # Locust's CSV: a flow is a Name, not in Aggregated
    assert csv_rows["Aggregated"]["Request Count"] == summary["overall"]["count"]
    assert csv_rows["flow:act"]["Type"] == "FLOW" and csv_rows["flow:act"]["Request Count"] == \
        summary["endpoints"]["flow:act"]["count"]
    assert history_rows(run)[-1]["Total Request Count"] == summary["overall"]["count"]
    assert latency_timeseries(run.requests)["requests"].sum() == summary["overall"]["count"]
    assert round(throughput_timeseries(run.requests)["rps"].sum()) == summary["overall"]["count"]


@pytest.mark.parametrize("http_path", ["lean", "aiohttp"])
def test_open_model_each_arrival_is_a_new_user_running_the_flow(journey_server, tmp_path, http_path):
    res = run_load(journey_server.url, shapes.constant(rate=20, duration=0.5), journey(), runs_dir=tmp_path,
                   progress=False, http_path=http_path)
    df = _rows(res)
    assert df.filter((pl.col("method") == "FLOW") & (pl.col("flow") == "signup")).height == 10
    assert _check_runs(df, PAGES) == 10
    first = df.filter(pl.col("endpoint") == "register")
    flow = df.filter(pl.col("endpoint") == "flow:signup")
    # the arrival's intended time is the first step's and the flow's
    assert sorted(first["intended_ns"].to_list()) == sorted(flow["intended_ns"].to_list())
    assert df["vu"].null_count() == df.height


def test_open_model_plain_flow_rows_every_step_then_the_flow(journey_server, tmp_path):
    """A flow with no placeholder (the lean path's short way: no context per user) but a cookie: every
    step a row in order, the flow's row after them, its latency from the arrival's intended time."""
    flow = Flow("plain", [Step(Request("one", "GET", "/hopped")), Step(Request("two", "GET", "/needs-h")),
                          Step(Request("three", "GET", "/hopped"))])
    res = run_load(journey_server.url, shapes.constant(rate=40, duration=0.25), FlowScenario(flows=[flow]),
                   runs_dir=tmp_path, progress=False, http_path="lean")
    df = _rows(res)
    runs = df.filter(pl.col("method") == "FLOW")
    assert runs.height == 10 and set(runs["endpoint"].to_list()) == {"flow:plain"}
    for run in runs.iter_rows(named=True):
        steps = df.filter((pl.col("flow_run") == run["flow_run"]) & (pl.col("method") != "FLOW")).sort("step")
        assert steps["endpoint"].to_list() == ["one", "two", "three"] and steps["step"].to_list() == [0, 1, 2]
        assert steps["status"].to_list() == [200, 200, 200]  # the cookie /hopped set went to /needs-h
        assert steps["error"].null_count() == 3 and run["error"] is None
        assert run["request_id"] == run["flow_run"] and run["user_class"] == "default"
        assert run["intended_ns"] == steps["intended_ns"][0]
        assert run["latency_ns"] >= steps["end_ns"].max() - run["intended_ns"]
    assert res.summary["generator"]["sent"] == df.filter(pl.col("method") != "FLOW").height == 30


def test_max_requests_counts_flow_runs_in_the_open_model_and_requests_in_the_closed(journey_server, tmp_path):
    flow = Flow("plain", [Step(Request("one", "GET", "/hopped")), Step(Request("two", "GET", "/needs-h")),
                          Step(Request("three", "GET", "/hopped"))])
    said: list[str] = []
    res = run_load(journey_server.url, shapes.constant(rate=400, duration=1.0), FlowScenario(flows=[flow]),
                   runs_dir=tmp_path, progress=False, max_requests=5, announce=said.append)
    df = _rows(res)
    assert res.end_reason == "budget" and "400 flow runs planned" in said[0]
    assert df.filter(pl.col("method") == "FLOW").height == 5  # five arrivals, each its flow whole
    assert df.filter(pl.col("method") != "FLOW").height == 15 == res.summary["generator"]["sent"]
    assert df["error"].null_count() == df.height

    res = run_load(journey_server.url, shapes.users(1, 2.0), FlowScenario(flows=[flow]), runs_dir=tmp_path,
                   progress=False, max_requests=5)
    df = _rows(res)
    assert res.end_reason == "budget" and df.filter(pl.col("method") != "FLOW").height == 5  # five requests
    runs = df.filter(pl.col("method") == "FLOW").sort("flow_run")
    assert runs["error"].to_list() == [None, "aborted"] and runs["step"].to_list() == [3, 2]
    assert "budget ran out before step three" in runs["error_detail"][1]


def test_a_missing_value_stops_the_flow_with_a_check_naming_step_and_path(journey_server, tmp_path):
    flow = Flow("broken", [
        Step(Request("feed", "GET", "/feed"), extract=[Extract("cursor", json="pageInfo.nextCursor")]),
        Step(Request("more", "GET", "/feed?cursor={cursor}")),
        Step(Request("last", "GET", "/feed")),
    ])
    res = run_load(journey_server.url, shapes.users(1, 0.3), FlowScenario(flows=[flow]),
                   runs_dir=tmp_path, progress=False, max_requests=3)
    df = _rows(res).sort("start_ns")
    assert set(df["endpoint"].to_list()) == {"feed", "flow:broken"}  # the rest never sent
    feed = df.filter(pl.col("endpoint") == "feed").row(0, named=True)
    # the feed answers 401 (no login): the status error comes first; a logged-in feed misses the path
    assert feed["error"] == "http_4xx"
    run = df.filter(pl.col("endpoint") == "flow:broken").row(0, named=True)
    assert run["error"] == "http_4xx" and run["error_detail"].endswith("not sent: more, last")


def test_a_missing_json_path_is_a_check_error(journey_server, tmp_path):
    flow = Flow("gql", [
        Step(graphql("page", "query($after: String) { feed(after: $after) { pageInfo { endCursor } } }",
                     {"after": "{cursor}"}),
             extract=[Extract("cursor", json="data.feed.pageInfo.endCursor"), Extract("x", json="data.feed.nope")]),
        Step(Request("after", "GET", "/feed")),
    ])
    res = run_load(journey_server.url, shapes.users(1, 0.3),
                   FlowScenario(flows=[flow], context={"cursor": None}), runs_dir=tmp_path, progress=False,
                   max_requests=1)
    df = _rows(res)
    page = df.filter(pl.col("endpoint") == "page").row(0, named=True)
    assert page["error"] == "check" and page["status"] == 200
    assert page["error_detail"] == "step page: JSON path data.feed.nope is not in the response"
    run = df.filter(pl.col("endpoint") == "flow:gql").row(0, named=True)
    assert run["error"] == "check" and "not sent: after" in run["error_detail"] and run["step"] == 1


def test_graphql_cursor_loop_stops_when_the_cursor_is_null(journey_server, tmp_path):
    flow = Flow("pages", [Step(
        graphql("page", "query($after: String) { feed(after: $after) { page pageInfo { endCursor } } }",
                {"after": "{cursor}"}),
        extract=[Extract("cursor", json="data.feed.pageInfo.endCursor"), Extract("page", json="data.feed.page")],
        repeat_while="cursor", max_repeats=10)])
    res = run_load(journey_server.url, shapes.users(1, 0.3),
                   FlowScenario(flows=[flow], context={"cursor": None}), runs_dir=tmp_path, progress=False,
                   max_requests=PAGES)
    df = _rows(res)
    run = df.filter(pl.col("endpoint") == "flow:pages").row(0, named=True)
    assert run["error"] is None and run["step"] == PAGES
    assert df.filter(pl.col("endpoint") == "page").height == PAGES


def test_max_repeats_bounds_a_loop(journey_server, tmp_path):
    s = journey(max_pages=2)
    res = run_load(journey_server.url, shapes.users(1, 0.5), s, runs_dir=tmp_path, progress=False,
                   max_requests=6)
    df = _rows(res)
    run = df.filter(pl.col("endpoint") == "flow:act").row(0, named=True)
    steps = df.filter(pl.col("flow_run") == run["flow_run"]).filter(pl.col("method") != "FLOW").sort("step")
    assert steps["endpoint"].to_list() == ["feed", "feed", "make", "get"]


def test_classes_in_one_run_each_row_says_its_class(journey_server, tmp_path):
    classes = [UserClass("reader", requests=[Request("r", "GET", "/items/1", expect=(200, 404, 400))], weight=3),
               UserClass("writer", users=1, flows=[Flow("w", [Step(Request("nolog", "POST", "/items", json={},
                                                                          expect=(401,)))])])]
    res = run_load(journey_server.url, shapes.users(4, 0.3), FlowScenario(user_classes=classes),
                   runs_dir=tmp_path, progress=False, max_requests=40)
    df = _rows(res).filter(pl.col("method") != "FLOW")
    by_vu = dict(df.group_by("vu").agg(pl.col("user_class").unique()).iter_rows())
    assert sorted(len(v) for v in by_vu.values()) == [1, 1, 1, 1]
    assert sorted(v[0] for v in by_vu.values()) == ["reader", "reader", "reader", "writer"]
    assert df.filter(pl.col("user_class") == "reader")["flow"].null_count() == df.filter(
        pl.col("user_class") == "reader").height


def test_a_flow_slo_scope_is_known_before_the_load(journey_server, tmp_path):
    s = journey()
    with pytest.raises(ConfigError):
        run_load(journey_server.url, shapes.users(1, 0.2), s, runs_dir=tmp_path, progress=False,
                 slos=["flow:nope:p95<1s"])
    res = run_load(journey_server.url, shapes.users(1, 0.3), s, runs_dir=tmp_path, progress=False,
                   slos=["flow:act:p95<30s"], max_requests=20)
    assert json.dumps(res.summary["slo"]).count("flow:act")


# ------------------------------------------------------------------------------------------------ TOML

def _toml(tmp_path, text: str):
    from perfbench.scenario_toml import load_toml

    p = tmp_path / "journey.toml"
    p.write_text(text)
    return load_toml(p)


def test_toml_flows_with_classes_extracts_loops_and_branches(tmp_path):
    s = _toml(tmp_path, """
name = "j"
[[user_class]]
name = "reader"
users = 2
think = "0.1..0.2"
context = { cursor = "" }
[user_class.on_start]
name = "signup"
[[user_class.on_start.step]]
name = "login"
method = "POST"
path = "/login"
json = { email = "a-{run}@x" }
extract = { token = "token", sid = { cookie = "sid" } }
[[user_class.flow]]
name = "browse"
weight = 2
[[user_class.flow.step]]
name = "feed"
path = "/feed?cursor={cursor}"
headers = { Authorization = "Bearer {token}" }
extract = { cursor = { json = "pageInfo.endCursor", optional = true } }
repeat_while = "cursor"
max_repeats = 3
branch = [{ status = [404], goto = "end" }, { present = "cursor", equals = "x", goto = "feed" }]
[[user_class]]
name = "writer"
weight = 1
[[user_class.request]]
name = "ping"
path = "/ping"
""")
    assert isinstance(s, FlowScenario)
    reader, writer = s.user_classes
    assert reader.users == 2 and reader.think == Uniform(0.1, 0.2) and reader.on_start.name == "signup"
    step = reader.flows[0].steps[0]
    assert step.repeat_while == "cursor" and step.max_repeats == 3
    assert step.extract[0] == Extract("cursor", json="pageInfo.endCursor", optional=True)
    assert step.branches[0] == Branch("end", status=(404,)) and step.branches[1].equals == "x"
    assert reader.on_start.steps[0].extract[1] == Extract("sid", cookie="sid")
    assert [r.name for r in writer.requests] == ["ping"] and [r.name for r in s.requests] == ["login", "feed", "ping"]


def test_toml_problems_name_class_flow_step_and_field(tmp_path):
    with pytest.raises(ConfigError) as exc:
        _toml(tmp_path, """
[[flow]]
name = "f"
[[flow.step]]
name = "a"
path = "/a/{missing}"
extract = { x = { jsn = "a" } }
branch = [{ to = "b" }]
colour = "red"
[[flow.step]]
name = "b"
path = "/b"
repeat_while = "nothing"
[[request]]
name = "r"
""")
    text = str(exc.value)
    for needle in ("unknown field 'request' ([[request]] belongs to a [[user_class]]",
                   "flow[0] (f).step[0] (a): unknown field 'colour'",
                   "flow[0] (f).step[0] (a).extract.x: a JSON path",
                   "flow[0] (f).step[0] (a).branch[0]: { goto",
                   "steps[0] (a): placeholder {missing} is not a context value",
                   "steps[1] (b).repeat_while: the name of a context value"):
        assert needle in text, text


@pytest.mark.parametrize("http_path", ["lean", "aiohttp"])
def test_a_step_follows_redirects_keeps_their_cookies_and_extracts_from_the_last_answer(journey_server, tmp_path,
                                                                                       http_path):
    flow = Flow("hops", [Step(Request("hop", "GET", "/hop"), extract=[Extract("landed", json="landed")]),
                         Step(Request("after", "GET", "/needs-h?landed={landed}"))])
    res = run_load(journey_server.url, shapes.constant(rate=20, duration=0.25), FlowScenario(flows=[flow]),
                   runs_dir=tmp_path, progress=False, http_path=http_path)
    df = _rows(res)
    hop = df.filter(pl.col("endpoint") == "hop")
    assert hop.height == 5 and set(hop["redirects"].to_list()) == {1} and set(hop["final_path"]) == {"/hopped"}
    after = df.filter(pl.col("endpoint") == "after")
    assert after["status"].to_list() == [200] * 5 and after["error"].null_count() == 5


class _Seen:
    def __init__(self, fail_on: str | None = None):
        self.rows: list[dict] = []
        self.summaries: list[dict] = []
        self.fail_on = fail_on

    def on_request(self, row: dict) -> None:
        if row["endpoint"] == self.fail_on:
            raise ValueError("boom")
        self.rows.append(row)

    def on_stop(self, summary: dict) -> None:
        self.summaries.append(summary)
        raise RuntimeError("on_stop fails too")


def test_hooks_see_every_row_and_the_summary_and_their_errors_are_reported_not_fatal(journey_server, tmp_path):
    import dataclasses

    from perfbench.scenario import Hooks

    seen = _Seen(fail_on="register")
    said: list[str] = []
    s = dataclasses.replace(journey(), hooks=Hooks(on_request=seen.on_request, on_stop=seen.on_stop))
    res = run_load(journey_server.url, shapes.constant(rate=10, duration=0.3), s, runs_dir=tmp_path,
                   progress=False, announce=said.append)
    df = _rows(res)
    assert len(seen.rows) == df.height - df.filter(pl.col("endpoint") == "register").height
    assert {r["request_id"] for r in seen.rows} == set(df.filter(pl.col("endpoint") != "register")["request_id"])
    assert seen.summaries == [res.summary]
    meta = Run.load(res.path).meta["hooks"]
    assert meta["on_request"]["errors"] == 3 and meta["on_request"]["first_error"] == "ValueError: boom"
    assert meta["on_stop"]["errors"] == 1 and meta["on_request"]["skipped"] == 0
    assert any("on_request raised ValueError: boom" in line for line in said)
    assert any("on_stop raised RuntimeError" in line for line in said)


def test_a_slow_hook_is_cut_to_its_budget_per_batch(journey_server, tmp_path):
    import time as _time

    from perfbench.scenario import Hooks

    def slow(row: dict) -> None:
        _time.sleep(0.002)

    s = FlowScenario(flows=[Flow("one", [Step(Request("needs", "GET", "/needs-h", expect=(400,)))])],
                     hooks=Hooks(on_request=slow, budget_ms=1.0))
    res = run_load(journey_server.url, shapes.constant(rate=40, duration=0.25), s, runs_dir=tmp_path, progress=False)
    meta = Run.load(res.path).meta["hooks"]["on_request"]
    rows = _rows(res).height
    assert meta["calls"] + meta["skipped"] == rows and meta["skipped"] > 0 and meta["calls"] >= 1


def test_a_python_scenario_file_defines_its_hooks(tmp_path):
    from perfbench.scenarios import load_scenario

    p = tmp_path / "s.py"
    p.write_text("from perfbench.scenario import Request, Scenario\n"
                 "scenario = Scenario([Request('a', 'GET', '/')])\n"
                 "def on_request(row):\n    pass\n")
    s = load_scenario(str(p))
    assert s.hooks is not None and s.hooks.on_request is not None and s.hooks.on_stop is None
    p.write_text("from perfbench.scenario import Request, Scenario\n"
                 "scenario = Scenario([Request('a', 'GET', '/')])\non_stop = 3\n")
    with pytest.raises(ConfigError, match="on_stop must be a function"):
        load_scenario(str(p))


# ------------------------------------------------------------------------------------------------ callable targets

def test_a_callable_target_is_loaded_like_http_rows_and_errors_as_data(tmp_path):
    import asyncio as _asyncio

    seen: list[int] = []

    async def fetch_user(request_id: int) -> bytes:
        seen.append(request_id)
        if len(seen) % 5 == 0:
            raise LookupError("no such user")
        return b"x" * 10

    async def slow_query() -> None:
        await _asyncio.sleep(5)

    res = run_load({"fetch_user": fetch_user, "slow_query": slow_query}, shapes.constant(rate=40, duration=0.5),
                   runs_dir=tmp_path, progress=False, timeout=0.2)
    df = _rows(res)
    assert df.height == 20 and set(df["method"]) == {"CALL"} and set(df["endpoint"]) == {"fetch_user", "slow_query"}
    fetch = df.filter(pl.col("endpoint") == "fetch_user")
    assert sorted(seen) == sorted(fetch["request_id"].to_list())  # the request id, as a header would carry it
    failed = fetch.filter(pl.col("error").is_not_null())
    assert set(failed["error"]) <= {"client"} and len(failed) == len(seen) // 5
    assert set(failed["error_detail"]) == {"LookupError: no such user"}
    assert set(fetch.filter(pl.col("error").is_null())["bytes"]) == {10}
    slow = df.filter(pl.col("endpoint") == "slow_query")
    assert set(slow["error"]) == {"timeout"} and (slow["latency_ns"] >= 0.19e9).all()  # a timer's ms of slack
    assert (df["latency_ns"] >= df["service_ns"]).all()  # from the intended time
    assert res.summary["overall"]["count"] == 20


def test_callable_target_problems():
    def not_async() -> None: ...

    with pytest.raises(ConfigError, match="an async function"):
        run_load(not_async, shapes.constant(rate=1, duration=0.1), progress=False)
    with pytest.raises(ConfigError, match="method CALL is for a callable target"):
        run_load("http://127.0.0.1:9", shapes.constant(rate=1, duration=0.1),
                 Scenario([Request("c", "CALL", "/c")]), progress=False)


@pytest.mark.parametrize("http_path", ["lean", "aiohttp"])
def test_open_model_arrivals_split_between_classes(journey_server, tmp_path, http_path):
    classes = [UserClass("reader", weight=3, flows=[Flow("r", [Step(Request("r1", "GET", "/items/1", expect=(404,))),
                                                                 Step(Request("r2", "GET", "/items/2", expect=(404,)))])]),
               UserClass("writer", weight=1, requests=[Request("w", "POST", "/items", json={}, expect=(401,))])]
    res = run_load(journey_server.url, shapes.constant(rate=160, duration=0.5), FlowScenario(user_classes=classes),
                   runs_dir=tmp_path, progress=False, http_path=http_path)
    df = _rows(res)
    assert df["error"].null_count() == df.height
    readers = df.filter(pl.col("endpoint") == "flow:r")
    writers = df.filter(pl.col("endpoint") == "w")
    assert readers.height + writers.height == 80 and readers.height > 0 and writers.height > 0
    assert set(writers["user_class"]) == {"writer"} and writers["flow"].null_count() == writers.height
    assert df.filter(pl.col("user_class") == "reader").height == 3 * readers.height  # two steps and the flow row


def test_a_step_slower_than_its_max_latency_is_marked_slow_and_the_flow_goes_on(journey_server, tmp_path):
    flow = Flow("timed", [Step(Request("first", "GET", "/items/1", expect=(404,), max_latency=1e-9)),
                          Step(Request("second", "GET", "/items/2", expect=(404,)))])
    res = run_load(journey_server.url, shapes.users(1, 0.3), FlowScenario(flows=[flow], warmup=1), runs_dir=tmp_path,
                   progress=False, max_requests=4)
    df = _rows(res)
    assert set(df.filter(pl.col("endpoint") == "first")["error"]) == {"slow"}
    assert df.filter(pl.col("endpoint") == "second")["error"].null_count() == 2
    runs = df.filter(pl.col("endpoint") == "flow:timed")  # the flow saw it: its row says which step was slow
    assert runs.filter(pl.col("error") != "aborted")["error_detail"].to_list() == \
        ["step first: over max_latency 1e-06 ms"] * 2


# ------------------------------------------------------------------------------------------------ a step over its max_latency

@pytest.mark.parametrize(("http_path", "model"), [("lean", "open"), ("aiohttp", "open"), ("lean", "closed"),
                                                  ("aiohttp", "closed")])
def test_a_step_over_its_max_latency_is_slow_and_the_flow_goes_on(http_server, tmp_path, http_path, model):
    """As a Locust task goes on after ``response.failure()``: the slow step's row is ``slow`` (status
    kept), the next steps are sent, and the flow's own row is ``slow``, naming the step; a slow
    ``on_start`` still lets the user's flow run."""
    login = Flow("login", [Step(Request("sleepy_login", "GET", "/delay/60", max_latency="20ms"))])
    main = Flow("main", [Step(Request("sleepy", "GET", "/delay/60", max_latency="20ms")),
                         Step(Request("after", "GET", "/", max_latency="30s"))])
    scenario = FlowScenario(user_classes=[UserClass("u", on_start=login, flows=[main])])
    plan = shapes.constant(rate=10, duration=0.5) if model == "open" else shapes.users(2, 0.5)
    res = run_load(http_server.url, plan, scenario, runs_dir=tmp_path, progress=False, http_path=http_path)
    df = _rows(res)
    runs = df.filter(pl.col("endpoint") == "flow:main")
    assert runs.height > 0
    for run in runs.iter_rows(named=True):
        steps = df.filter((pl.col("flow_run") == run["flow_run"]) & (pl.col("method") != "FLOW")).sort("step")
        if run["error"] == "aborted":  # stopped by the run's end: nothing to judge
            continue
        assert steps["endpoint"].to_list() == ["sleepy", "after"], steps  # the flow went on
        assert steps["error"].to_list() == ["slow", None] and steps["status"].to_list() == [200, 200]
        assert steps["error_detail"][0] == "over max_latency 20 ms" and steps["latency_ns"][0] > 20e6
        assert run["error"] == "slow" and run["error_detail"] == "step sleepy: over max_latency 20 ms"
    logins = df.filter(pl.col("endpoint") == "flow:login")
    assert set(logins["error"].drop_nulls()) <= {"slow", "aborted"} and "slow" in set(logins["error"])
    assert res.summary["overall"]["errors_by_kind"].get("slow", 0) == df.filter(
        (pl.col("error") == "slow") & (pl.col("method") != "FLOW")).height


def test_loads_parses_as_json_loads_does():
    from perfbench.engine.extract import loads

    for body in (b'{"a": [1, 2.5, null, "\\u00e9"]}', b'[1, {"b": true}]  \r\n', '{"é": "ü"}'.encode(),
                 '\ufeff{"bom": 1}'.encode(), '{"u16": 1}'.encode("utf-16"), b'  {"lead": 1}', b"7", b'"s"'):
        assert loads(body) == json.loads(body), body
    for bad in (b'{"a": 1} x', b'{"a": 1}{"b": 2}', b'{"a": ', b'{"a": "\xff"}', b"", b"[1,]"):
        with pytest.raises(ValueError):
            json.loads(bad)
        with pytest.raises(ValueError):
            loads(bad)
