"""Load generation on Dask distributed (perfbench.distributed): the exact split, one merged run
directory with exact percentiles, a lost worker reported with the rest kept.

One local cluster (2 worker processes) serves the module; the CLI test starts its own, as
``--workers 2`` does. Workers are killed only by the PID the cluster reports.
"""

from __future__ import annotations

import json
import math
import os
import signal

import pyarrow as pa
import pytest

from perfbench import shapes
from perfbench.analysis.results import PERCENTILES, Run
from perfbench.distributed import (
    histogram_quantile,
    latency_histogram,
    local_cluster,
)
from perfbench.engine.options import LoadOptions, split_budget
from perfbench.errors import UnsafeTargetError


# ------------------------------------------------------------------------------------ pure: the split
@pytest.mark.parametrize("plan", [
    shapes.constant(10, 1.3),
    shapes.ramp(0, 17, 2.0),
    shapes.steps([5, 11, 3], 0.7),
    shapes.constant(40, 1.0, poisson=True, seed=7),
    shapes.spike(5, 23, before=0.5, during=0.3, after=0.4, ramp_up=0.2),
])
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_open_plan_split_is_exact(plan, n):
    whole = [(a.index, a.offset_ns, a.stage) for a in plan.arrivals()]
    shards = [[(a.index, a.offset_ns, a.stage) for a in plan.shard(i, n).arrivals()] for i in range(n)]
    # every shard gets arrival k with k mod n == its index, at the plan's exact time
    for i, part in enumerate(shards):
        assert part == [w for w in whole if w[0] % n == i]
    # and the union of the shards' intended send times is the plan, nothing more or less
    assert sorted(x for part in shards for x in part) == whole
    assert sum(plan.shard(i, n).expected_requests for i in range(n)) == pytest.approx(plan.expected_requests)


def test_closed_plan_split_partitions_the_users():
    plan = shapes.user_stages([(1, 5), (1, 2), (1, 7)], think=shapes.Constant(0.1))
    whole = plan.user_spans()
    parts = [plan.shard(i, 3) for i in range(3)]
    spans = [p.user_spans() for p in parts]
    assert sorted((s.vu, s.start_ns) for sp in spans for s in sp) == sorted((s.vu, s.start_ns) for s in whole)
    for i, sp in enumerate(spans):
        assert all(s.vu % 3 == i for s in sp)
    assert [p.max_users for p in parts] == [3, 2, 2]
    assert parts[1].think == plan.think and parts[1].duration == plan.duration


def test_a_shard_keeps_the_aligned_tick():
    """A shard of an evenly spaced plan ticks on its own arrivals' phase, as a whole plan of its
    rate does (the scheduler would otherwise wake on a free-running tick); Poisson never aligns."""
    from perfbench.engine.open_model import OpenModelEngine
    from perfbench.engine.recorder import MemorySink, Recorder
    from perfbench.scenario import Request, Scenario

    class Sender:
        name = "test"

        async def request(self, method, path, headers, body, keep_body=False, spec=None):  # never called
            raise AssertionError

    def period(plan, stage=0):
        eng = OpenModelEngine(plan, Scenario([Request("a", "GET", "/a")]), Sender(), Recorder(MemorySink()))
        return eng._aligned_period(stage, 50_000_000)

    assert period(shapes.constant(6000, 1).shard(2, 3)) == period(shapes.constant(2000, 1)) == 1_000_000
    assert period(shapes.steps([100, 3000], 1).shard(0, 2), 1) == round(2 / 1500 * 1e9)
    assert period(shapes.constant(6000, 1, poisson=True).shard(0, 3)) is None


def test_budget_split_adds_up():
    assert split_budget(None, 3) == [None, None, None]
    assert split_budget(10, 3) == [4, 3, 3] and sum(split_budget(7, 4)) == 7


def test_a_shard_gets_its_share_of_the_bounds_and_none_of_the_hooks():
    opts = LoadOptions(max_in_flight=10, max_requests=10, timeout=2.0, progress=True, handle_signals=True,
                       collectors=(object(),), slos=("p95<300ms",), parameters={"x": 1})
    shards = [opts.shard(i, 3) for i in range(3)]
    assert [s.max_in_flight for s in shards] == [4, 4, 4] and [s.max_requests for s in shards] == [4, 3, 3]
    for s in shards:
        assert (s.timeout, s.grace, s.http_path) == (2.0, 3.0, "auto")
        assert s.progress is None and not s.handle_signals and s.collectors == () and s.slos == ()
    assert opts.shard(0, 30).max_in_flight == 1


def test_progress_histogram_merges_by_sum_within_one_percent():
    a = list(range(1_000_000, 50_000_000, 7919))
    b = list(range(2_000_000, 90_000_000, 104729))
    ha, hb = latency_histogram(pa.array(a, pa.int64())), latency_histogram(pa.array(b, pa.int64()))
    merged = {k: ha.get(k, 0) + hb.get(k, 0) for k in ha.keys() | hb.keys()}
    both = sorted(a + b)
    for p in (0.5, 0.95, 0.99):
        exact = both[math.ceil(p * len(both)) - 1] / 1e6
        assert exact <= histogram_quantile(merged, p) <= exact * 1.0101


# ------------------------------------------------------------------------------------ on a cluster


@pytest.fixture(scope="module")
def client():
    with local_cluster(2, dashboard=False) as c:
        yield c


def _exact(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[max(math.ceil(p * len(s)) - 1, 0)]


@pytest.mark.slow
def test_cli_workers_2_against_the_demo_target(demo_target, tmp_path, capsys):
    from perfbench.cli import main

    plan_n = 120  # 60 req/s for 2 s
    code = main(["run", demo_target.url, "--scenario", "demo", "--rate", "60", "--duration", "2", "--workers", "2",
                 "--runs-dir", str(tmp_path), "--quiet", "--json", "--slo", "p99<5s"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Dask dashboard at http://127.0.0.1:" in err
    runs = list(tmp_path.iterdir())
    assert len(runs) == 1  # one run directory
    run = Run.load(runs[0])
    df = run.requests.collect()
    assert df.height == plan_n  # as many requests as the plan asks
    assert sorted(df["worker"].unique().to_list()) == [0, 1]
    assert df["request_id"].n_unique() == plan_n
    # the union of the shards' intended times is the plan's
    assert sorted(df["intended_ns"].to_list()) == [a.offset_ns for a in shapes.constant(60, 2).arrivals()]
    # exact merged percentiles, equal to those computed from the concatenated rows
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert json.loads(out[:out.rindex("}") + 1])["run_id"] == summary["run_id"]
    lat = df["latency_ms"].to_list()
    for name, p in PERCENTILES.items():
        assert summary["overall"]["latency_ms"][name] == pytest.approx(_exact(lat, p), abs=1e-6)
    assert summary["overall"]["count"] == plan_n and summary["slo"][0]["ok"]
    meta = run.meta
    dist = meta["distributed"]
    assert dist["workers"] == 2 and dist["lost_shards"] == [] and len(dist["clock_offsets"]) == 2
    assert all("offset_ms" in o and "rtt_ms" in o for o in dist["clock_offsets"].values())
    assert not (runs[0] / "parts").exists() and not list(runs[0].glob("*.arrows"))
    # the machine's load, recorded by the coordinator for the one host it shares with its local workers
    assert (runs[0] / "machine.parquet").is_file() and summary["machine"]["samples"] >= 2
    assert meta["collectors"]["machine"]["scope"].startswith("the one host ")


@pytest.mark.slow
def test_closed_model_shards_partition_the_users(client, http_server, tmp_path):
    from perfbench.load import run_load

    plan = shapes.users(4, 1.0, think=shapes.Constant(0.05))
    res = run_load(http_server.url, plan, runs_dir=tmp_path, client=client, progress=False)
    df = Run.load(res.path).requests.collect()
    assert df.height > 0 and res.end_reason == "completed"
    assert set(df["vu"].unique().to_list()) == {0, 1, 2, 3}
    assert (df["vu"] % 2 == df["worker"].cast(df["vu"].dtype)).all()
    assert res.summary["overall"]["count"] == df.height


@pytest.mark.slow
def test_a_distributed_run_s_hooks_see_every_merged_row_on_the_coordinator(client, http_server, tmp_path):
    from perfbench.load import run_load
    from perfbench.scenario import Request, Scenario
    from perfbench.scenario_hooks import Hooks

    seen: list[dict] = []
    stopped: list[dict] = []

    def on_request(row: dict) -> None:
        seen.append(row)
        if len(seen) == 3:
            raise ValueError("a hook's own bug")  # reported and counted, never fatal

    scenario = Scenario([Request("root", "GET", "/")], hooks=Hooks(on_request=on_request, on_stop=stopped.append))
    res = run_load(http_server.url, shapes.constant(40, 1.0), scenario, runs_dir=tmp_path, client=client,
                   progress=False, announce=lambda line: None)
    df = Run.load(res.path).requests.collect()
    assert res.end_reason == "completed" and df.height == 40
    assert sorted(r["request_id"] for r in seen) == sorted(df["request_id"].to_list())
    assert {r["worker"] for r in seen} == {0, 1}
    assert stopped == [res.summary]
    hooks = Run.load(res.path).meta["hooks"]
    assert hooks["on_request"]["calls"] == 40 and hooks["on_request"]["skipped"] == 0
    assert hooks["on_request"]["errors"] == 1 and "a hook's own bug" in hooks["on_request"]["first_error"]
    assert hooks["on_stop"]["calls"] == 1 and "coordinator" in hooks["delivered"]


@pytest.mark.slow
def test_a_killed_worker_is_reported_and_the_rest_kept(client, http_server, tmp_path):
    from perfbench.load import run_load

    pids = client.run(os.getpid)
    victim_addr = sorted(pids)[1]  # shard 1 runs on the second worker (shards follow sorted addresses)
    victim = pids[victim_addr]
    killed = []

    def progress(p):
        # once both shards have sent something, kill shard 1's worker process by its PID
        if not killed and p["total"] >= 60:
            os.kill(victim, signal.SIGKILL)
            killed.append(p["total"])

    plan = shapes.constant(60, 4)
    res = run_load(http_server.url, plan, runs_dir=tmp_path, client=client, progress=progress,
                   announce=lambda line: None)
    assert killed, "the run ended before the kill"
    run = Run.load(res.path)
    df = run.requests.collect()
    lost = res.summary["generator"]["lost_shards"]
    assert [x["shard"] for x in lost] == [1] and lost[0]["worker"] == victim_addr and lost[0]["pid"] == victim
    assert lost[0]["reason"]
    # the surviving shard sent its whole share; the lost one kept what it had flushed
    w0 = df.filter(df["worker"] == 0)
    w1 = df.filter(df["worker"] == 1)
    assert w0.height == 120
    assert w1.height == lost[0]["rows_kept"] < 120
    if w1.height:
        assert lost[0]["since_s"] == pytest.approx(w1["end_ns"].max() / 1e9)
    assert run.meta["distributed"]["lost_shards"] == lost
    # the run says it did not send what was planned
    assert res.summary["generator"]["planned"] == 240 and res.summary["generator"]["saturated"]
    assert any("not sent" in r for r in res.summary["generator"]["saturation_reasons"])


def test_non_loopback_target_is_refused_before_any_shard(client, tmp_path):
    from perfbench.load import run_load

    with pytest.raises(UnsafeTargetError):
        run_load("http://10.1.2.3:8080", shapes.constant(10, 1), runs_dir=tmp_path, client=client, progress=False)
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


def test_the_machine_scope_says_which_hosts_were_recorded():
    from perfbench.distributed.coordinator import machine_scope

    assert "all 2 workers ran" in machine_scope("a", ["a", "a"])
    assert "workers on b, c are not recorded" in machine_scope("a", ["a", "b", "c", "b"])
