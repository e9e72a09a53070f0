"""The guides' journeys in examples/, run against the demo target: every step in order, and the
values each step took from a response carried into the next."""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from pathlib import Path

import polars as pl
import pytest

from perfbench import shapes
from perfbench.analysis.results import Run
from perfbench.load import run_load
from perfbench.scenario_flows import FlowScenario
from perfbench.scenarios import load_scenario
from perfbench.shapes import Constant

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str, think: float | None = None) -> FlowScenario:
    s = load_scenario(str(EXAMPLES / name))
    assert isinstance(s, FlowScenario)
    if think is not None:  # the guide's 0.5..2 s of think time, shortened for a test
        s = dataclasses.replace(s, user_classes=[dataclasses.replace(uc, think=Constant(think))
                                                 for uc in s.user_classes])
    return s


def _rows(res) -> pl.DataFrame:
    return Run.load(res.path).requests.collect()


def _runs(df: pl.DataFrame, flow: str) -> list[tuple[dict, pl.DataFrame]]:
    """Each run of ``flow``: its own row, and its steps' rows in order."""
    out = []
    for run in df.filter((pl.col("method") == "FLOW") & (pl.col("flow") == flow)).iter_rows(named=True):
        steps = df.filter((pl.col("flow_run") == run["flow_run"]) & (pl.col("method") != "FLOW")).sort("step")
        out.append((run, steps))
    return out


def test_notification_users_read_heavy_and_write_heavy(demo_target, tmp_path):
    res = run_load(demo_target.url, shapes.users(4, 3.0), _load("notification_users.toml", think=0.02),
                   runs_dir=tmp_path, progress=False, max_requests=400)
    df = _rows(res)
    done = df.filter(pl.col("error").is_null() | (pl.col("error") != "aborted"))
    assert done["error"].null_count() == done.height, done.filter(pl.col("error").is_not_null()).head()
    # two classes, two users each; every user signed up once, first thing
    classes = dict(df.group_by("vu").agg(pl.col("user_class").unique()).iter_rows())
    assert sorted(v[0] for v in classes.values()) == ["read_heavy", "read_heavy", "write_heavy", "write_heavy"]
    for vu in classes:
        mine = df.filter((pl.col("vu") == vu) & (pl.col("method") != "FLOW")).sort("start_ns")
        assert mine["endpoint"].to_list()[:2] == ["register", "login"]
        assert mine.filter(pl.col("endpoint") == "register").height == 1
    # a write: create, then mark that one read (another user's id would answer 404, a check on read=true)
    for run, steps in _runs(df, "write"):
        if run["error"] != "aborted":
            assert steps["endpoint"].to_list() == ["create_notification", "mark_read"]
            assert steps["status"].to_list() == [201, 200] and run["error"] is None
    # the mix per class: writes are about 10% of the read-heavy users' flows, 70% of the write-heavy's
    flows = df.filter(pl.col("method") == "FLOW").filter(pl.col("flow") != "signup")
    share = dict(flows.group_by("user_class").agg((pl.col("flow") == "write").mean()).iter_rows())
    assert share["write_heavy"] > share["read_heavy"]


def _pages(url: str, first: str, cursor_of, limit: int = 5) -> list[int]:
    """The decoded body size of each page of the feed, following its cursor by hand."""
    sizes, cursor = [], ""
    for _ in range(limit):
        body = urllib.request.urlopen(first(cursor), timeout=10).read()  # noqa: S310 - the local demo
        sizes.append(len(body))
        cursor = cursor_of(json.loads(body))
        if not cursor:
            break
    return sizes


def test_feed_journey_pages_with_the_cursor_each_page_returns(demo_target, tmp_path):
    url = demo_target.url
    rest = _pages(url, lambda c: f"{url}/api/feed?limit=5&cursor={c}", lambda d: d["page"]["next_cursor"])

    def gql(cursor: str) -> urllib.request.Request:
        q = ("query Posts($first: Int, $after: String) { posts(first: $first, after: $after) { edges { node "
             "{ id title } } pageInfo { hasNextPage endCursor } } }")
        return urllib.request.Request(f"{url}/graphql", json.dumps(
            {"query": q, "variables": {"first": 5, "after": cursor}}, separators=(",", ":")).encode(),
            {"Content-Type": "application/json"})
    graph = _pages(url, gql, lambda d: d["data"]["posts"]["pageInfo"]["endCursor"])
    assert len(set(rest)) > 1  # pages differ: a cursor not carried would read page one again and again

    res = run_load(url, shapes.constant(rate=10, duration=1.0), _load("feed_journey.toml"), runs_dir=tmp_path,
                   progress=False)
    df = _rows(res)
    runs = _runs(df, "rest_feed") + _runs(df, "graphql_feed")
    assert len(runs) == 10
    for run, steps in runs:
        want = rest if run["flow"] == "rest_feed" else graph
        assert run["error"] is None and run["step"] == len(want) == steps.height
        assert steps["step"].to_list() == list(range(len(want)))
        assert steps["bytes"].to_list() == want  # each page is the one the last page's cursor names
        # the journey's latency runs from the arrival's intended time to its last page
        assert run["intended_ns"] == steps["intended_ns"][0]
        assert run["latency_ns"] >= steps["end_ns"].max() - run["intended_ns"]
    assert res.summary["overall"]["count"] == df.filter(pl.col("method") != "FLOW").height


@pytest.mark.parametrize("http_path", ["lean", "aiohttp"])
def test_register_login_act_carries_the_token_and_the_new_id(demo_target, tmp_path, http_path):
    res = run_load(demo_target.url, shapes.users(3, 1.5), _load("register_login_act.toml"), runs_dir=tmp_path,
                   progress=False, http_path=http_path, max_requests=200)
    df = _rows(res)
    signups = _runs(df, "signup")
    assert len(signups) == 3
    for run, steps in signups:
        assert steps["endpoint"].to_list() == ["register", "login"] and steps["status"].to_list() == [201, 200]
        assert run["error"] is None
    acts = [(r, s) for r, s in _runs(df, "act") if r["error"] != "aborted"]
    assert acts
    for run, steps in acts:
        assert steps["endpoint"].to_list() == ["create", "read_one", "mark_read", "unread"]
        # read_one and mark_read answer 200 only for the id this user's POST created, with its token
        assert steps["status"].to_list() == [201, 200, 200, 200] and steps["error"].null_count() == 4
        assert run["error"] is None


def test_the_python_example_logs_slow_requests_through_its_hooks(demo_target, tmp_path, capsys):
    s = load_scenario(str(EXAMPLES / "log_slow_requests.py"))
    assert isinstance(s, FlowScenario) and s.hooks is not None
    hooks = s.hooks
    seen: list[dict] = []

    def on_request(row: dict) -> None:  # the example's, with a bar every request passes
        seen.append(row)
        hooks.on_request({**row, "latency_ns": 10**10})

    s = dataclasses.replace(s, hooks=dataclasses.replace(hooks, on_request=on_request))
    res = run_load(demo_target.url, shapes.users(1, 0.5), s, runs_dir=tmp_path, progress=False, max_requests=10)
    out = capsys.readouterr().out
    assert len(seen) == _rows(res).height and out.count("slow: ") == len(seen)
    assert f"requests slower than 5 s of {res.summary['overall']['count']}" in out
