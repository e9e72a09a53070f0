import polars as pl
import pytest

from perfbench import shapes
from perfbench.analysis.results import Run
from perfbench.errors import ConfigError
from perfbench.load import run_load
from perfbench.scenario import Login, Request, Scenario

S = 1_000_000_000


def spans(plan):
    return [(s.vu, s.start_ns / S, s.stop_ns / S) for s in plan.user_spans()]


def test_user_spans_are_exact():
    assert spans(shapes.users(2, 5)) == [(0, 0.0, 5.0), (1, 0.0, 5.0)]
    # a ramp of 3 users over 3 s starts one user per second, the first at once (as Locust does)
    assert spans(shapes.users(3, 2, ramp_up=3)) == [(0, 0.0, 5.0), (1, 1.0, 5.0), (2, 2.0, 5.0)]
    # up, hold, down: user 1 leaves when the count falls to 1
    assert spans(shapes.user_stages([(2, 2), (1, 2), (2, 0)])) == [(0, 0.0, 5.0), (1, 1.0, 4.0)]
    # a user can come back
    assert spans(shapes.user_stages([(1, 2), (1, 0), (1, 2)])) == [(0, 0.0, 3.0), (1, 0.5, 1.5), (1, 2.5, 3.0)]


def test_users_at_and_validation():
    plan = shapes.users(4, 10, ramp_up=4)
    assert [plan.users_at(t) for t in (0.0, 0.5, 1.5, 3.9, 5, 13.9, 14)] == [0, 1, 2, 4, 4, 4, 0]
    with pytest.raises(ConfigError) as e:
        shapes.ClosedPlan((shapes.Stage(0, 1, 1),), think=shapes.Uniform(3, 1))
    assert "duration must be a positive" in str(e.value) and "low <= high" in str(e.value)
    with pytest.raises(ConfigError, match="no user"):
        shapes.users(0, 5)


def _run(url, plan, scenario, tmp_path, **kw):
    return run_load(url, plan, scenario, runs_dir=tmp_path, progress=False, **kw)


def test_closed_model_users_loop_with_think_time(http_server, tmp_path):
    plan = shapes.users(3, 1.0, think=shapes.Constant(0.05))
    res = _run(http_server.url, plan, Scenario([Request("root", "GET", "/")]), tmp_path)
    df = Run.load(res.path).requests.collect()
    assert set(df["vu"].to_list()) == {0, 1, 2}
    per_user = df.group_by("vu").len()["len"].to_list()
    assert all(8 <= n <= 21 for n in per_user), per_user  # ~1 s / (50 ms think + a ms of service)
    assert (df["intended_ns"] == df["start_ns"]).all()  # no schedule: latency is the service time
    assert res.summary["model"] == "closed" and "hide the stall" in res.summary["notes"][0]
    assert Run.load(res.path).meta["engine"]["model"] == "closed"
    # a user never has two requests in flight
    for _, g in df.sort("start_ns").group_by("vu"):
        assert (g["start_ns"][1:] >= g["end_ns"][:-1]).all()


def test_pacing_measures_latency_from_the_slot(http_server, tmp_path):
    # 100 ms responses, a slot every 50 ms: each user falls behind, and the latency says so
    plan = shapes.users(2, 1.0, think=shapes.Pacing(0.05))
    res = _run(http_server.url, plan, Scenario([Request("slow", "GET", "/delay/100")]), tmp_path)
    df = Run.load(res.path).requests.collect().sort("vu", "intended_ns")
    for _, g in df.group_by("vu"):
        steps = g["intended_ns"].diff().drop_nulls().unique().to_list()
        assert steps == [50_000_000]  # intended times are the slots, exactly
    assert df["latency_ns"].max() > df["service_ns"].max() + 100_000_000


def test_each_user_logs_in_as_itself(http_server, tmp_path):
    login = Login("/echo/login", lambda vu: {"user": f"user{vu}", "password": "pw"}, token_field="path")
    sc = Scenario([Request("root", "GET", "/")], login=login)
    res = _run(http_server.url, shapes.users(2, 0.3, think=shapes.Constant(0.05)), sc, tmp_path)
    df = Run.load(res.path).requests.collect()
    logins = df.filter(pl.col("endpoint") == "login")
    assert sorted(logins["vu"].to_list()) == [0, 1] and logins["error"].null_count() == 2
    assert df.filter(pl.col("endpoint") == "root").height >= 2
    assert "pw" not in (res.path / "meta.json").read_text()


def test_a_user_whose_login_fails_stops_and_the_failure_is_recorded(http_server, tmp_path):
    sc = Scenario([Request("root", "GET", "/")], login=Login("/status/401", {"user": "x"}))
    res = _run(http_server.url, shapes.users(2, 0.3), sc, tmp_path)
    df = Run.load(res.path).requests.collect()
    assert df.height == 2 and set(df["error"].to_list()) == {"http_4xx"}


def test_closed_model_budget_and_checks(http_server, tmp_path):
    from perfbench.scenario import JsonField

    sc = Scenario([Request("root", "GET", "/", checks=(JsonField("ok", equals=False),))])
    res = _run(http_server.url, shapes.users(2, 5), sc, tmp_path, max_requests=25)
    assert res.end_reason == "budget" and res.summary["overall"]["count"] == 25
    assert res.summary["overall"]["errors_by_kind"] == {"check": 25}


@pytest.mark.parametrize("path", ["aiohttp", "lean"])
def test_a_user_whose_request_times_out_carries_on(http_server, tmp_path, path):
    # half the mix stalls past the timeout: each stalled request is a timeout of at least the
    # timeout (never the server's 3 s), and the same user goes on sending the other half
    sc = Scenario([Request("slow", "GET", "/delay/3000"), Request("fast", "GET", "/")])
    res = _run(http_server.url, shapes.users(2, 1.5), sc, tmp_path, timeout=0.2, http_path=path)
    df = Run.load(res.path).requests.collect()
    slow, fast = df.filter(pl.col("endpoint") == "slow"), df.filter(pl.col("endpoint") == "fast")
    assert slow.height >= 2 and set(slow["error"].to_list()) == {"timeout"}
    assert set(slow["error_detail"].to_list()) == {"total timeout while waiting for the response"}
    assert slow["service_ns"].min() >= 200_000_000 and slow["service_ns"].max() < 2_500_000_000
    assert fast.height >= 1 and fast["error"].null_count() == fast.height
    # a user went on after its timeout: some request of that user starts after a timed-out one ended
    first_timeout_end = slow.group_by("vu").agg(pl.col("end_ns").min())
    later = df.join(first_timeout_end, on="vu", suffix="_t").filter(pl.col("start_ns") >= pl.col("end_ns_t"))
    assert later.height >= 1


def test_closed_model_live_progress_counts_the_interval_s_requests(http_server, tmp_path):
    seen = []
    res = run_load(http_server.url, shapes.users(2, 0.5, think=shapes.Constant(0.01)),
                   Scenario([Request("root", "GET", "/")]), runs_dir=tmp_path, progress=seen.append)
    assert seen and seen[-1]["final"]
    # every recorded request is in exactly one interval's count (the last report flushes the rest)
    rps_sum = sum(p["completed_rps"] for p in seen) * 1.0  # progress_every is 1 s
    assert round(rps_sum) == Run.load(res.path).requests.collect().height > 0
