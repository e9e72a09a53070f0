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
