import asyncio

import pytest
from aiohttp import web
from conftest import ThreadServer

from perfbench.cli import main
from perfbench.errors import ConfigError
from perfbench.experiments.stress import load_stress, rates, steps_frame, stress
from perfbench.scenario import Request, Scenario


def test_rates():
    assert rates(50, step=50, max_rate=200) == [50, 100, 150, 200]
    assert rates(10, factor=2, max_rate=100) == [10, 20, 40, 80]
    with pytest.raises(ConfigError) as e:
        rates(0, step=-1, factor=2, max_rate=-5)
    msg = str(e.value)
    assert "start rate must be > 0" in msg and "exactly one of step" in msg and "max rate" in msg


def one_at_a_time_app(service_s: float = 0.005) -> web.Application:
    """A server with a known capacity: one request at a time, ``service_s`` each (~200 req/s)."""
    lock = asyncio.Lock()

    async def handler(request: web.Request) -> web.Response:
        async with lock:
            await asyncio.sleep(service_s)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    return app


@pytest.fixture
def limited_server():
    server = ThreadServer(one_at_a_time_app()).start()
    yield server
    server.stop()


@pytest.mark.slow
def test_stress_finds_the_breaking_point_with_evidence(limited_server, tmp_path):
    lines = []
    # 25 and 100 req/s are well under the capacity; 400 is twice over it, so the queue grows
    res = stress(limited_server.url, Scenario([Request("r", "GET", "/")]), start=25, factor=4, max_rate=2000,
                 step_duration=1.5, slos=["p99<200ms"], runs_dir=tmp_path, announce=lines.append,
                 lag_bound_ms=50)  # the test server shares this process (and its GIL) with the generator
    v = res.verdict
    assert v["cause"] == "slo" and v["breaking_rps"] == 400 and v["highest_ok_rps"] == 100, res.steps
    assert v["limit"] == "service" and v["warmup_s"] == 0.375  # a quarter of each 1.5 s step
    assert [s["offered_rps"] for s in res.steps] == [25, 100, 400]  # it stopped at the break
    assert res.steps[-1]["broken"] == ["p99<200ms"] and res.steps[-1]["p99_ms"] > 200
    assert "broke at 400 req/s" in v["text"] and "highest rate that held was 100" in v["text"]
    # the evidence is kept: stress.json and a run directory per step
    assert load_stress(res.path)["verdict"] == v
    frame = steps_frame(res.path)
    assert frame["offered_rps"].to_list() == [25, 100, 400]
    for s in res.steps:
        assert (res.path / s["run_dir"] / "requests.parquet").exists()
    assert any("step  2" in line and "BROKEN" in line for line in lines)


@pytest.mark.slow
def test_a_saturated_generator_is_not_called_the_services_limit(http_server, tmp_path):
    res = stress(http_server.url, Scenario([Request("slow", "GET", "/delay/200")]), start=20, step=20,
                 max_rate=100, step_duration=1, slos=["p99<10s"], runs_dir=tmp_path, max_in_flight=2,
                 announce=lambda line: None)
    assert res.verdict["cause"] == "generator" and "generator saturated" in res.verdict["text"]
    # the generator's limit, not the service's: no breaking point for a chart to draw, the rate it could not keep
    assert res.verdict["limit"] == "generator" and res.verdict["breaking_rps"] is None
    assert res.verdict["generator_limit_rps"] == res.steps[-1]["offered_rps"]


def test_stress_cli_refuses_bad_input(capsys, tmp_path):
    assert main(["stress", "http://127.0.0.1:1", "--start", "10", "--max-rate", "5", "--runs-dir",
                 str(tmp_path)]) == 2
    assert "max rate 5.0 must be >= the start rate" in capsys.readouterr().err


def test_wilson_interval_bounds_are_where_the_score_test_meets_its_z():
    """Recomputed from its definition: at each bound p0, |k/n - p0| / sqrt(p0 (1 - p0) / n) = 1.96."""
    import math

    from perfbench.analysis.slo import wilson

    for k, n in ((8, 675), (1, 75), (40, 675), (0, 50), (675, 675)):
        low, high = wilson(k, n)
        assert 0 <= low <= k / n <= high <= 1
        for p0 in (low, high):
            if 0 < p0 < 1:
                assert abs(abs(k / n - p0) / math.sqrt(p0 * (1 - p0) / n) - 1.96) < 1e-9, (k, n, p0)


def test_a_share_limit_broken_within_sampling_noise_is_not_a_break():
    from perfbench.analysis.slo import evaluate, parse_all, within_noise

    def summary(errors: int, count: int, kind: str = "http_5xx") -> dict:
        block = {"count": count, "errors": errors, "error_rate": errors / count, "errors_by_kind": {kind: errors}}
        return {"overall": block, "endpoints": {"api": dict(block)}, "status_counts": {"200": count - errors,
                                                                                     "500": errors}}

    slos = parse_all(["errors<1%", "api:http_5xx<1%", "status_5xx<1%", "http_5xx==0", "p99<1s"])
    chance = summary(8, 675)  # 1.19%: the 95% interval 0.60-2.32% holds 1%
    notes = [within_noise(r, chance) for r in evaluate(slos, chance)]
    assert [n is not None for n in notes] == [True, True, True, False, False], notes
    assert notes[0] == "errors<1%: 8 of 675 requests (1.19%), 95% interval 0.60-2.32%, which holds the limit"
    clear = summary(40, 675)  # 5.9%: the interval lies above 1%
    assert [within_noise(r, clear) for r in evaluate(slos, clear)] == [None] * 5
    held = summary(2, 675)  # not broken at all: nothing to say
    assert [within_noise(r, held) for r in evaluate(slos, held)] == [None] * 5


def failing_app(every: int) -> web.Application:
    """Every ``every``-th request answers 500, the others 200: a fixed share of failures at any rate."""
    seen = [0]

    async def handler(request: web.Request) -> web.Response:
        seen[0] += 1
        return web.Response(status=500 if seen[0] % every == 0 else 200, text="x")

    app = web.Application()
    app.router.add_get("/", handler)
    return app


@pytest.mark.slow
def test_a_few_failures_in_a_short_step_do_not_end_the_search_but_a_clear_share_does(tmp_path):
    scenario = Scenario([Request("r", "GET", "/")])
    server = ThreadServer(failing_app(60)).start()  # 1.7%, above errors<1%, but a step sees about one failure
    try:
        res = stress(server.url, scenario, start=40, step=40, max_rate=80, step_duration=2, slos=["errors<1%"],
                     runs_dir=tmp_path / "a", announce=lambda line: None, lag_bound_ms=50)
    finally:
        server.stop()
    v = res.verdict
    assert [s["offered_rps"] for s in res.steps] == [40, 80] and not any(s["broken"] for s in res.steps)
    unclear = [s for s in res.steps if s["undecided"]]  # a step with no failure after its warm-up is simply held
    assert unclear and v["undecided_rps"] == [s["offered_rps"] for s in unclear]
    assert v["breaking_rps"] is None and "not clearly broken, within sampling noise" in v["text"], v
    assert steps_frame(res.path)["undecided"].to_list() == ["; ".join(s["undecided"]) for s in res.steps]
    server = ThreadServer(failing_app(4)).start()  # 25%: broken beyond doubt at the first step
    try:
        res = stress(server.url, scenario, start=40, step=40, max_rate=80, step_duration=2, slos=["errors<1%"],
                     runs_dir=tmp_path / "b", announce=lambda line: None, lag_bound_ms=50)
    finally:
        server.stop()
    assert res.verdict["breaking_rps"] == 40 and res.steps[0]["broken"] == ["errors<1%"]
    assert "undecided_rps" not in res.verdict
