"""Paired A/B: the statistics on known block ratios and synthetic noise, the schedule, the run
directory, and one end-to-end A/B between two tiny servers on 127.0.0.1 (ephemeral ports)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import sys
import time

import numpy as np
import polars as pl
import psutil
import pytest
from aiohttp import web

from perfbench import shapes
from perfbench.analysis.results import Run
from perfbench.cli import main
from perfbench.compare import paired
from perfbench.compare.paired import (
    BASELINE,
    CANDIDATE,
    INCONCLUSIVE,
    hodges_lehmann,
    paired_compare,
    signed_rank_cdf,
    units,
)
from perfbench.errors import ConfigError
from perfbench.experiments.ab import block_order, is_ab_dir, read_verdict, run_ab, schedule, start_order
from perfbench.service import check_cpus, format_cpus, parse_cpus


def rows_from(latencies: dict[tuple[int, str], np.ndarray], endpoint: str = "e") -> pl.DataFrame:
    """An A/B run's rows from {(pair, side): latencies in ms}; the side's block in the pair by the pair's parity."""
    parts = []
    for (pair, side), ms in latencies.items():
        first = BASELINE if pair % 2 == 0 else CANDIDATE
        block = 2 * pair + (0 if side == first else 1)
        parts.append(pl.DataFrame({"endpoint": endpoint, "side": side, "block": block,
                                   "latency_ns": (np.asarray(ms) * 1e6).astype(np.int64)}))
    return pl.concat(parts)


def synthetic(seed: int, effect: float = 1.0, pairs: int = 20, per_block: int = 60, hog: float = 0.8) -> pl.DataFrame:
    """Lognormal latencies; per pair a noise level both sides share (a neighbour's load, from x1 to
    x2.7), and a hog that doubles latency in a random tenth of the blocks of one side only."""
    rng = np.random.default_rng(seed)
    lat = {}
    for k in range(pairs):
        shared = rng.uniform(0, 1.0)
        for side in (BASELINE, CANDIDATE):
            own = math.log(2) * hog if rng.random() < 0.1 else 0.0
            ms = np.exp(rng.normal(math.log(3.0) + shared + own, 0.3, per_block))
            lat[(k, side)] = ms * (effect if side == CANDIDATE else 1.0)
    return rows_from(lat)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the statistics -------------------------------------------------------------------------------

def test_signed_rank_null_distribution_is_exact_for_small_m():
    # m = 3: T+ takes 0..6 with counts 1,1,1,2,1,1,1 out of 8
    cdf = signed_rank_cdf(3)
    assert np.allclose(cdf * 8, np.cumsum([1, 1, 1, 2, 1, 1, 1]))
    # m = 6: P(T+ <= 0) = 1/64, so the 95% interval is [min, max] of the Walsh averages
    assert signed_rank_cdf(6)[0] == pytest.approx(1 / 64)


def test_hodges_lehmann_of_known_differences():
    est, lo, hi = hodges_lehmann([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 0.95)
    assert est == pytest.approx(3.5)
    assert (lo, hi) == (1.0, 6.0)  # m = 6: the extremes (coverage 1 - 2/64)
    est, lo, hi = hodges_lehmann(np.linspace(-1, 1, 30), 0.95)
    assert est == pytest.approx(0.0, abs=1e-12) and lo < 0 < hi


def test_pairs_with_one_side_empty_are_kept_and_merged():
    """Short blocks at a low rate: many pairs have a light request on one side only. They count: units merge
    pairs until both sides have enough, so no request is dropped."""
    rng = np.random.default_rng(4)
    lat = {}
    for k in range(60):
        side = BASELINE if k % 2 else CANDIDATE  # each pair has requests on one side only
        lat[(k, side)] = np.exp(rng.normal(1.0, 0.3, 8))
    rows = rows_from(lat)
    er = paired.endpoint_rows(rows)["e"]
    assert len(er.by_pair) == 60 and sum(len(v[BASELINE]) + len(v[CANDIDATE]) for v in er.by_pair.values()) == 480
    ab = paired_compare(rows, stats=("p50",))
    (row,) = ab.comparison.rows
    assert row.n_baseline == row.n_current == 240 and row.low is not None


def test_units_merge_pairs_until_each_side_has_enough():
    counts = [(k, 10, 12) for k in range(7)]
    assert units(counts, 20) == [[0, 1], [2, 3], [4, 5, 6]]  # the short last one joins the one before
    assert units(counts, 10) == [[k] for k in range(7)]
    assert units(counts, 1000) == []


def test_a_unit_needs_a_few_requests_around_the_median_and_many_beyond_a_tail():
    assert [paired.need_for(p) for p in (0.5, 0.25, 0.75)] == [6, 12, 12]
    assert [paired.need_for(p) for p in (0.9, 0.95, 0.99, 0.999)] == [100, 200, 1000, 10000]


def test_known_block_ratios_give_known_verdicts():
    """Every pair's candidate is exactly r times its baseline (the same requests scaled): the
    interval is the point r, and the verdict follows the threshold."""
    base = {k: np.linspace(1.0, 5.0, 40) * (1 + k % 3) for k in range(8)}
    for r, verdict in ((1.30, paired.REGRESSION), (0.70, paired.IMPROVEMENT), (1.02, paired.NO_CHANGE)):
        lat = {}
        for k, ms in base.items():
            lat[(k, BASELINE)], lat[(k, CANDIDATE)] = ms, ms * r
        ab = paired_compare(rows_from(lat), stats=("p50",))
        (row,) = ab.comparison.rows
        assert row.ratio == pytest.approx(r, rel=1e-3) and row.low == pytest.approx(r, rel=1e-3)
        assert row.verdict == verdict and ab.verdict == verdict
        assert ab.exit_code == (10 if verdict == paired.REGRESSION else 0)
    blocks = ab.blocks.filter(pl.col("stat") == "p50")
    assert blocks.height == 8 and blocks["ratio"].to_list() == pytest.approx([1.02] * 8, rel=1e-3)


def test_aa_with_shared_noise_and_a_one_sided_hog_gives_no_verdict():
    """A/A under noise that moves both sides by up to x2.7 from pair to pair, and a hog that doubles
    one side's latency in a tenth of the blocks: 40 trials, not one verdict."""
    verdicts = [paired_compare(synthetic(seed)).verdict for seed in range(40)]
    assert not [v for v in verdicts if v in (paired.REGRESSION, paired.IMPROVEMENT)], verdicts


def test_injected_effect_under_the_same_noise_is_a_regression():
    found = [paired_compare(synthetic(seed, effect=1.25, pairs=30), stats=("p50",)).verdict for seed in range(20)]
    assert found.count(paired.REGRESSION) >= 18, found
    ab = paired_compare(synthetic(0, effect=1.25))
    p50 = next(r for r in ab.comparison.rows if r.stat == "p50")
    assert p50.low < 1.25 < p50.high


def test_a_noisy_run_is_inconclusive_unless_judged_anyway():
    """A +25% candidate whose run is flagged noisy (a side that did not get its planned load): no verdict,
    the reason named; judge_noisy judges it and says so."""
    why = ["candidate: the load generator saturated: 12 planned requests were never sent"]
    ab = paired_compare(synthetic(0, effect=1.25, pairs=30), noisy=why)
    assert ab.comparison.judged_regressions and ab.verdict == paired.INCONCLUSIVE and ab.exit_code == 0
    assert ab.comparison.verdict_reason == "noisy"
    text = paired.to_text(ab)
    assert "INCONCLUSIVE: noisy: candidate: the load generator saturated" in text and "--judge-noisy" in text
    assert json.loads(paired.to_json(ab))["verdict"] == "inconclusive"
    judged = paired_compare(synthetic(0, effect=1.25, pairs=30), noisy=why, judge_noisy=True)
    assert judged.verdict == paired.REGRESSION and judged.exit_code == 10
    assert "NOISY, JUDGED ANYWAY (--judge-noisy)" in paired.to_text(judged)


def test_the_same_noise_between_two_unpaired_halves_would_be_a_false_regression():
    """Why pairing: the same A/A rows, but the baseline's blocks taken from calm pairs and the
    candidate's from noisy ones (as two separate runs on a machine that got busier): the paired
    verdict stays quiet only because each ratio is taken within a pair."""
    rows = synthetic(3, pairs=20)
    ab = paired_compare(rows)
    assert ab.verdict not in (paired.REGRESSION, paired.IMPROVEMENT)
    by_pair = rows.with_columns((pl.col("block") // 2).alias("pair"))
    calm = by_pair.filter(pl.col("side") == BASELINE).group_by("pair").agg(pl.col("latency_ns").median()).sort(
        "latency_ns")["pair"].to_list()[:10]
    b = by_pair.filter((pl.col("side") == BASELINE) & pl.col("pair").is_in(calm))["latency_ns"].median()
    c = by_pair.filter((pl.col("side") == CANDIDATE) & ~pl.col("pair").is_in(calm))["latency_ns"].median()
    assert c / b > 1.3  # what an unpaired comparison of those halves would see


def test_too_few_pairs_or_requests_is_inconclusive_not_a_verdict():
    lat = {(k, s): np.full(30, 2.0) * (2.0 if s == CANDIDATE else 1.0) for k in range(4) for s in (BASELINE, CANDIDATE)}
    ab = paired_compare(rows_from(lat), stats=("p50", "p99"))
    assert ab.verdict == INCONCLUSIVE and ab.exit_code == 0
    assert all(r.low is None and "too few requests" in r.note for r in ab.comparison.rows)
    assert "INCONCLUSIVE" in paired.to_text(ab)


def test_bad_settings_and_rows_are_config_errors():
    rows = synthetic(0, pairs=8)
    with pytest.raises(ConfigError, match="threshold"):
        paired_compare(rows, threshold=-1)
    with pytest.raises(ConfigError, match="rps"):
        paired_compare(rows, rules=[paired.Rule("rps", 0.05)])
    with pytest.raises(ConfigError, match="side"):
        paired_compare(rows.with_columns(pl.lit("other").alias("side")))


# --- the schedule ---------------------------------------------------------------------------------

def test_unit_frame_holds_the_units_the_verdict_judges():
    """The report's per-unit ratios are the verdict's: the signed-rank interval over their logs is the row's,
    and each side's percentile per unit is its requests' in the unit's pairs."""
    rows = synthetic(3, effect=1.2).with_columns(intended_ns=pl.col("block").cast(pl.Int64) * 250_000_000 + 7)
    ab = paired_compare(rows)
    units = paired.unit_frame(rows, "p50")
    row = next(r for r in ab.comparison.rows if r.stat == "p50")
    _, lo, hi = hodges_lehmann(np.log(units["ratio"].to_numpy()), 0.95)
    assert (math.exp(lo), math.exp(hi)) == (pytest.approx(row.low), pytest.approx(row.high))
    ms = rows.with_columns(pair=pl.col("block") // 2, ms=pl.col("latency_ns") / 1e6)
    for u in units.iter_rows(named=True):
        pairs = list(range(u["first_pair"], u["first_pair"] + u["pairs"]))
        for side in (BASELINE, CANDIDATE):
            x = np.sort(ms.filter(pl.col("pair").is_in(pairs) & (pl.col("side") == side))["ms"].to_numpy())
            assert u[f"{side}_ms"] == x[math.ceil(len(x) * 0.5) - 1]
        assert u["ratio"] == pytest.approx(u["candidate_ms"] / u["baseline_ms"])
        assert u["t_s"] == pytest.approx((2 * u["first_pair"] * 250_000_000 + 7) / 1e9)
    with pytest.raises(ConfigError, match="unknown statistic"):
        paired.unit_frame(rows, "p42")


def test_block_order_is_balanced_abba_and_seeded():
    order = block_order(10, seed=3)
    assert len(order) == 20 and order == block_order(10, seed=3)
    for q in range(0, 20, 4):
        quad = order[q:q + 4]
        assert quad in ([BASELINE, CANDIDATE, CANDIDATE, BASELINE], [CANDIDATE, BASELINE, BASELINE, CANDIDATE])
    assert order.count(BASELINE) == order.count(CANDIDATE)
    assert {tuple(block_order(10, s)[:4]) for s in range(20)} == {tuple(order[:4]) for order in
                                                                   ([BASELINE, CANDIDATE, CANDIDATE, BASELINE],
                                                                    [CANDIDATE, BASELINE, BASELINE, CANDIDATE])}
    assert len(block_order(3, 0)) == 6
    assert schedule(10, 1.0) == (5, 1.0) and schedule(9, 1.0) == (4, 1.125)
    with pytest.raises(ConfigError):
        schedule(10, 0)


# --- end to end -----------------------------------------------------------------------------------

def test_ab_end_to_end_finds_the_slower_candidate_and_keeps_every_row(ab_servers, tmp_path, capsys):
    """+8 ms of busy work per request on a sub-millisecond endpoint: a regression (exit 10); the run
    directory has every row with its side and block, loads with Run.load and summarizes both sides."""
    fast, slow = ab_servers
    code = main(["ab", fast, slow, "--rate", "80", "--duration", "4", "--block", "0.25", "--path", "/",
                 "--runs-dir", str(tmp_path), "--quiet", "--json", str(tmp_path / "ab.json")])
    out = capsys.readouterr().out
    assert code == 10, out
    assert "REGRESSION" in out and "pairs of blocks" in out
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = Run.load(run_dir)
    df = run.requests.collect()
    assert df.height == 320 and set(df["side"].unique()) == {BASELINE, CANDIDATE}
    assert df.group_by("block").agg(pl.col("side").n_unique())["side"].max() == 1  # one side per block
    assert df["block"].n_unique() == 16 and df["error"].null_count() == df.height
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["sides"]) == {BASELINE, CANDIDATE}
    assert summary["sides"][BASELINE]["overall"]["count"] == 160
    assert summary["sides"][CANDIDATE]["overall"]["latency_ms"]["p50"] > 8
    assert json.loads((tmp_path / "ab.json").read_text())["verdict"] == paired.REGRESSION
    machine = summary["machine"]  # the machine's load, recorded around the blocks
    assert machine["samples"] >= 2 and (run_dir / "machine.parquet").is_file()
    assert main(["summary", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("baseline (") and "candidate (" in text
    assert "\nmachine: other processes used " in text and "\nnoisy: " in text  # one machine block for both sides


def test_ab_aa_against_one_target_gives_no_verdict(ab_servers, tmp_path):
    """A/A (the same server on both sides, in one process with the generator): no verdict."""
    fast, _ = ab_servers
    result = run_ab(fast, fast, shapes.constant(80, 4), block_s=0.25, runs_dir=tmp_path, announce=None)
    assert result.comparison.verdict not in (paired.REGRESSION, paired.IMPROVEMENT), paired.to_text(result.comparison)
    assert result.comparison.exit_code == 0
    assert "same target" in result.comparison.comparison.warnings[0]
    assert is_ab_dir(result.path) and not is_ab_dir(tmp_path)
    assert read_verdict(result.path).to_dict() == result.comparison.to_dict()  # the report reads what was judged


def test_ab_refuses_bad_input_in_one_line(capsys, tmp_path):
    assert main(["ab", "http://127.0.0.1:1", "http://127.0.0.1:2", "--block", "0", "--runs-dir", str(tmp_path)]) == 2
    assert "--block" in capsys.readouterr().err
    assert main(["ab", "http://127.0.0.1:1", "http://127.0.0.1:2", "--fail-on", "rps:-5%", "--duration", "1",
                 "--runs-dir", str(tmp_path)]) == 2
    with pytest.raises(ConfigError, match="open-model"):
        run_ab("http://127.0.0.1:1", "http://127.0.0.1:2", shapes.users(2, 1), runs_dir=tmp_path)


# a stdlib HTTP service that answers on the port it is given; reports its threads' CPUs on /cpus
PINNABLE = """\
import http.server, os, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        cpus = set()
        for tid in os.listdir("/proc/self/task"):
            cpus |= os.sched_getaffinity(int(tid))
        body = ",".join(map(str, sorted(cpus))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def test_ab_starts_both_services_pins_them_to_the_same_cpus_and_stops_them(tmp_path, capsys):
    """--baseline-start / --candidate-start with --service-cpus: both services serve on the one CPU asked for
    (every thread, also those made while serving), the run records it, both are stopped after."""
    script = tmp_path / "svc.py"
    script.write_text(PINNABLE)
    cpu = max(os.sched_getaffinity(0))
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    code = main(["ab", *urls, "--baseline-start", f"{sys.executable} {script} {ports[0]}",
                 "--candidate-start", f"{sys.executable} {script} {ports[1]}", "--service-cpus", str(cpu),
                 "--segments", "1",
                 "--rate", "40", "--duration", "2", "--path", "/cpus", "--runs-dir", str(tmp_path / "runs"),
                 "--threshold", "50%"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert err.count(f"on CPUs {cpu}, log") == 2
    pids = [int(line.split("pid ")[1].split(",")[0]) for line in err.splitlines() if line.startswith("started the")]
    (run_dir,) = (tmp_path / "runs").iterdir()
    ab_meta = json.loads((run_dir / "meta.json").read_text())["ab"]
    assert ab_meta["service_cpus"] == [cpu]
    started = [line.split()[2].rstrip(":") for line in err.splitlines() if line.startswith("started the")]
    assert ab_meta["started"] == started == list(start_order(0))  # the seed's coin, in the order it says
    df = Run.load(run_dir).requests.collect()
    assert df.height == 80 and df["bytes"].min() == len(str(cpu))  # each answer: the CPUs its threads may use
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_which_service_starts_first_is_a_seeded_coin():
    """The first of two processes started reads slower for the whole run: never the baseline every time."""
    orders = {start_order(seed) for seed in range(20)}
    assert orders == {("baseline", "candidate"), ("candidate", "baseline")}
    assert all(start_order(seed) == start_order(seed) for seed in range(20))


def test_ab_service_cpus_refuses_bad_lists_and_unstarted_services(tmp_path, capsys):
    urls = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert main(["ab", *urls, "--service-cpus", "0", "--runs-dir", str(tmp_path)]) == 2
    assert "give both --baseline-start and --candidate-start" in capsys.readouterr().err
    starts = ["--baseline-start", "true", "--candidate-start", "true"]
    for bad, says in (("4096", "CPU 4096 is not available here; this process may use CPUs"),
                      ("1-0", "'1-0' is not a CPU number or an increasing range"), ("x", "'x' is not a CPU number")):
        assert main(["ab", *urls, *starts, "--service-cpus", bad, "--runs-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "--service-cpus: CPU list" in err or "--service-cpus: CPU 4096" in err, err
        assert says in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing started, nothing written


def test_cpu_lists_read_and_written_as_taskset_does():
    assert parse_cpus(str(min(os.sched_getaffinity(0)))) == {min(os.sched_getaffinity(0))}
    assert format_cpus([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8" and format_cpus([3]) == "3"
    with pytest.raises(ConfigError, match="empty"):
        check_cpus([])


def test_demo_slowdown_specs():
    from perfbench.demo.slowdown import Slowdown, parse_slowdown

    assert parse_slowdown("/api/posts=15%") == Slowdown("/api/posts", fraction=0.15)
    assert parse_slowdown(" /health = 2ms ") == Slowdown("/health", fixed_ms=2.0)
    assert parse_slowdown("/api/posts=15%").extra_s(0.010) == pytest.approx(0.0015)
    for bad in ("posts=15%", "/api/posts=15", "/api/posts=-3%", "/a=1s"):
        with pytest.raises(ConfigError, match="PATH=N%"):
            parse_slowdown(bad)


def test_serve_demo_refuses_a_bad_slowdown_before_starting(capsys, tmp_path):
    assert main(["serve-demo", "--slowdown", "posts=15%", "--db-path", str(tmp_path / "d.sqlite")]) == 2
    assert "--slowdown 'posts=15%'" in capsys.readouterr().err
    assert not (tmp_path / "d.sqlite").exists()


def test_demo_app_installs_the_slowdown_only_when_asked(tmp_path):
    from perfbench.demo import create_app

    slowed = create_app(db_path=tmp_path / "d.sqlite", slowdown=["/api/posts=15%"])
    plain = create_app(db_path=tmp_path / "d.sqlite")
    assert [m.__name__ for m in slowed.middlewares][:1] == ["slowdown"]
    assert "slowdown" not in [m.__name__ for m in plain.middlewares]


def test_a_slowdown_is_cpu_work_added_to_the_handler_by_its_recent_median():
    """=Nms adds N ms of the thread's CPU time; =N% adds N% of the handler's own time (its first WARM
    requests) or of the median over its recent requests. Lower bounds on CPU time only (a busy machine only
    makes wall time longer)."""
    from aiohttp.test_utils import TestClient, TestServer

    from perfbench.demo.slowdown import WARM, parse_slowdown, slowdown_middleware

    work_s = 0.002

    async def handler(request):
        until = time.thread_time() + work_s  # 2 ms of CPU work, whatever the wall clock does
        while time.thread_time() < until:
            pass
        return web.Response(text="ok")

    async def cpu_per_request(spec: str, n: int) -> list[float]:
        app = web.Application(middlewares=[slowdown_middleware([parse_slowdown(spec)])])
        app.router.add_get("/api/posts", handler)
        app.router.add_get("/other", handler)
        out = []
        async with TestClient(TestServer(app)) as client:
            for path in ["/api/posts"] * n + ["/other"]:
                t0 = time.thread_time()
                async with client.get(path) as resp:
                    assert resp.status == 200
                out.append(time.thread_time() - t0)
        return out

    fixed = asyncio.run(cpu_per_request("/api/posts=3ms", 3))
    assert all(t >= work_s + 0.003 for t in fixed[:-1])  # client, server and middleware on this thread
    pct = asyncio.run(cpu_per_request("/api/posts=100%", WARM + 5))
    assert all(t >= work_s * 2 for t in pct[:-1])  # each warming request by its own time, then by the median
    assert pct[-1] < min(pct[:-1])  # /other is not slowed


def test_the_running_median_is_the_median_of_the_last_values():
    import random as rnd
    import statistics

    from perfbench.demo.slowdown import RunningMedian

    rm, seen, rng = RunningMedian(size=7), [], rnd.Random(3)
    for _ in range(60):
        v = rng.choice([rng.random(), 0.5, 0.25])  # ties too
        rm.add(v)
        seen.append(v)
        last = seen[-7:]
        assert len(rm) == len(last)
        assert rm.median() == sorted(last)[len(last) // 2] == statistics.median_high(last)


def test_each_pair_draws_its_own_request_mix_the_same_for_both_sides(http_server, tmp_path):
    """Each block runs its own engine: with one seed for all, every block replayed the same first draws of
    the mix (a 0.25 s block at 50 req/s sent none of the lightest request). Now each pair has its own draws,
    and the two blocks of a pair the same ones, so the mix is paired too."""
    from perfbench.scenario import Request, Scenario

    mix = Scenario(requests=[Request("a", "GET", "/"), Request("b", "GET", "/bytes/1"),
                             Request("c", "GET", "/status/200", weight=2)])
    res = run_ab(http_server.url, http_server.url, shapes.constant(80, 4), mix, block_s=0.1, runs_dir=tmp_path,
                 announce=None)
    df = pl.read_parquet(res.path / "requests.parquet").sort("intended_ns")
    seqs = {}
    for (block, side), g in df.group_by("block", "side", maintain_order=True):
        seqs.setdefault(block // 2, {})[side] = g.sort("intended_ns")["endpoint"].to_list()
    assert all(v[BASELINE] == v[CANDIDATE] for v in seqs.values() if len(v) == 2)
    assert len({tuple(v[BASELINE]) for v in seqs.values()}) > len(seqs) // 2  # pairs differ
    counts = df.group_by("endpoint").len().sort("endpoint")["len"].to_list()
    assert len(counts) == 3 and counts[2] > max(counts[:2])  # c weighs twice as much
