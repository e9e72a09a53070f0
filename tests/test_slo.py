import re

import pytest

from perfbench.analysis.slo import evaluate, format_results, parse, parse_all, requirement_problems
from perfbench.cli import main
from perfbench.errors import ConfigError

SUMMARY = {
    "overall": {"count": 100, "error_rate": 0.02, "rps": 99.5,
                "latency_ms": {"p50": 5.0, "p95": 250.0, "p99": 400.0, "p99_9": 900.0, "max": 1200.0, "mean": 20.0}},
    "endpoints": {"GET /health": {"error_rate": 0.0, "rps": 10.0, "latency_ms": {"p95": 2.0, "p99": 3.0}}},
}


@pytest.mark.parametrize("text, metric, op, threshold, scope", [
    ("p95<300ms", "p95", "<", 300.0, None),
    ("p99 <= 1s", "p99", "<=", 1000.0, None),
    ("p99.9<1500", "p99.9", "<", 1500.0, None),
    ("max<250us", "max", "<", 0.25, None),
    ("errors<1%", "errors", "<", 0.01, None),
    ("errors<0.05", "errors", "<", 0.05, None),
    ("rps>=95", "rps", ">=", 95.0, None),
    ("GET /health:p95<10ms", "p95", "<", 10.0, "GET /health"),
])
def test_parse(text, metric, op, threshold, scope):
    s = parse(text)
    assert (s.metric, s.op, s.threshold, s.scope) == (metric, op, pytest.approx(threshold), scope)


@pytest.mark.parametrize("text, fragment", [
    ("p95 is small", r"is not \[ENDPOINT:\]METRIC OP VALUE"),
    ("p42<3ms", "percentile p42 is not one of"),
    ("p95<3%", "takes ms, s or us"),
    ("errors<3ms", "takes % or a fraction"),
    ("errors<150%", "above 100%"),
    ("rps>3ms", "rps takes no unit"),
])
def test_bad_slos_are_explained(text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse(text)


def test_all_bad_slos_reported_at_once():
    with pytest.raises(ConfigError) as e:
        parse_all(["p95<3%", "nonsense", "p99<1s"])
    assert "p95<3%" in str(e.value) and "nonsense" in str(e.value)


def test_evaluate():
    res = {r["slo"]: r for r in evaluate(parse_all(
        ["p95<300ms", "p99<300ms", "errors<1%", "rps>=95", "GET /health:p99<5ms", "nope:p95<1ms"]), SUMMARY)}
    assert res["p95<300ms"]["ok"] and not res["p99<300ms"]["ok"] and res["p99<300ms"]["actual"] == 400.0
    assert not res["errors<1%"]["ok"] and res["rps>=95"]["ok"] and res["GET /health:p99<5ms"]["ok"]
    assert not res["nope:p95<1ms"]["ok"] and res["nope:p95<1ms"]["note"] == "no such endpoint in the run"


def test_cli_exit_codes_separate_a_broken_slo_from_a_broken_configuration(http_server, tmp_path, capsys):
    base = ["run", http_server.url, "--rate", "40", "--duration", "0.5", "--runs-dir", str(tmp_path), "--quiet",
            "--path", "/", "--path", "slow=GET /delay/60"]
    assert main(base + ["--slo", "p99<10s", "--slo", "errors<1%"]) == 0
    assert main(base + ["--slo", "slow:p50<1ms"]) == 10
    out = capsys.readouterr()
    assert "BROKEN" in out.out and "SLO broken: slow:p50<1ms" in out.err
    assert main(base + ["--slo", "p50 fast"]) == 2
    # the run's SLOs are kept in summary.json and re-checked by `summary --recompute`
    import json

    run_dir = next(d for d in tmp_path.iterdir()
                   if json.loads((d / "meta.json").read_text())["parameters"]["slos"] == ["slow:p50<1ms"])
    assert main(["summary", str(run_dir), "--recompute"]) == 10
    assert main(["summary", str(run_dir), "--slo", "p99<10s"]) == 0


# --- SLOs on everything the summary has -------------------------------------------------------------------

FULL = {
    "overall": {"count": 1000, "error_rate": 0.004, "rps": 100.0, "errors_by_kind": {"http_5xx": 3, "slow": 1},
                "latency_ms": {"p95": 80.0}, "ttfb_ms": {"p50": 5.0, "p95": 150.0, "p99": 400.0}},
    "endpoints": {"posts": {"count": 400, "errors_by_kind": {"http_5xx": 3}, "ttfb_ms": {"p99": 90.0},
                            "latency_ms": {}}},
    "status_counts": {"200": 990, "404": 6, "503": 3, "500": 1},
    "concurrency": {"max": 42, "mean": 7.5},
    "resources": {"cpu_percent_mean": 63.0, "cpu_percent_max": 97.0, "rss_mb_max": 180.0, "rss_growth_mb": 12.5,
                  "fds_max": 40, "threads_max": 9, "connections_max": 30},
    "cache": {"hits": 85, "misses": 15, "hit_rate": 0.85, "endpoints": {"posts": {"hit_rate": 0.5}}},
    "sql": {"per_request_mean": 4.2, "n_plus_one_patterns": 1, "endpoints": {"posts": {"per_request_mean": 6.0}}},
}


@pytest.mark.parametrize("text, metric, op, threshold, scope, count", [
    ("timeout==0", "timeout", "==", 0.0, None, True),
    ("http_5xx<0.1%", "http_5xx", "<", 0.001, None, False),
    ("posts:http_5xx<=3", "http_5xx", "<=", 3.0, "posts", True),
    ("slow<1%", "slow", "<", 0.01, None, False),
    ("status_5xx<1%", "status_5xx", "<", 0.01, None, False),
    ("status_503==0", "status_503", "==", 0.0, None, True),
    ("ttfb:p95<200ms", "ttfb:p95", "<", 200.0, None, False),
    ("posts:ttfb:p99<1s", "ttfb:p99", "<", 1000.0, "posts", False),
    ("concurrency<50", "concurrency", "<", 50.0, None, False),
    ("cpu<70%", "cpu", "<", 70.0, None, False),
    ("cpu_max<=90", "cpu_max", "<=", 90.0, None, False),
    ("rss_growth<10MB", "rss_growth", "<", 10.0, None, False),
    ("rss<1GB", "rss", "<", 1024.0, None, False),
    ("rss<512KB", "rss", "<", 0.5, None, False),
    ("hit_rate>0.8", "hit_rate", ">", 0.8, None, False),
    ("hit_rate>=80%", "hit_rate", ">=", 0.8, None, False),
    ("queries_per_request<5", "queries_per_request", "<", 5.0, None, False),
    ("posts:queries_per_request<5", "queries_per_request", "<", 5.0, "posts", False),
    ("errors==0", "errors", "==", 0.0, None, False),
])
def test_parse_every_metric(text, metric, op, threshold, scope, count):
    s = parse(text)
    assert (s.metric, s.op, s.threshold, s.scope, s.count) == (metric, op, pytest.approx(threshold), scope, count)


@pytest.mark.parametrize("text, fragment", [
    ("bogus<3", "unknown metric 'bogus'; valid: p50, "),
    ("posts:cpu<70%", "cpu is measured for the whole run; drop 'posts:'"),
    ("posts:status_5xx<1%", "status_5xx is measured for the whole run"),
    ("cpu<3ms", "cpu takes % (of one core), not ms"),
    ("rss<3%", "rss takes MB, KB, GB or B, not %"),
    ("timeout<3ms", "timeout takes % or a count, not ms"),
    ("hit_rate>120%", "above 100%"),
    ("concurrency<5ms", "concurrency takes no unit"),
    ("ttfb:p42<3ms", "unknown metric 'ttfb:p42'"),
])
def test_bad_new_slos_are_explained(text, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        parse(text)


def test_unknown_metric_lists_every_valid_name_on_one_line():
    with pytest.raises(ConfigError) as e:
        parse_all(["bogus<3"])
    text = str(e.value)
    assert "\n" not in text
    for name in ("p99.9", "ttfb:p95", "timeout", "slow", "status_Nxx", "concurrency", "cpu", "rss_growth",
                 "hit_rate", "queries_per_request"):
        assert name in text


def test_evaluate_every_metric_against_the_summary():
    texts = ["timeout==0", "http_5xx<0.1%", "http_5xx<=3", "posts:http_5xx<0.5%", "slow<=1", "status_5xx<1%",
             "status_5xx<0.3%", "status_404==6", "status_2xx>=99%", "ttfb:p95<200ms", "posts:ttfb:p99<50ms",
             "concurrency<50", "concurrency<40", "cpu<70%", "cpu_max<90%", "rss_growth<10MB", "rss<1GB",
             "hit_rate>0.8", "posts:hit_rate>0.8", "queries_per_request<5", "posts:queries_per_request<5",
             "n_plus_one==0", "fds<=40", "threads<10", "connections<30"]
    res = {r["slo"]: r for r in evaluate(parse_all(texts), FULL)}
    expected = {"timeout==0": (True, 0), "http_5xx<0.1%": (False, 0.003), "http_5xx<=3": (True, 3),
                "posts:http_5xx<0.5%": (False, 3 / 400), "slow<=1": (True, 1), "status_5xx<1%": (True, 0.004),
                "status_5xx<0.3%": (False, 0.004), "status_404==6": (True, 6), "status_2xx>=99%": (True, 0.99),
                "ttfb:p95<200ms": (True, 150.0), "posts:ttfb:p99<50ms": (False, 90.0), "concurrency<50": (True, 42),
                "concurrency<40": (False, 42), "cpu<70%": (True, 63.0), "cpu_max<90%": (False, 97.0),
                "rss_growth<10MB": (False, 12.5), "rss<1GB": (True, 180.0), "hit_rate>0.8": (True, 0.85),
                "posts:hit_rate>0.8": (False, 0.5), "queries_per_request<5": (True, 4.2),
                "posts:queries_per_request<5": (False, 6.0), "n_plus_one==0": (False, 1), "fds<=40": (True, 40),
                "threads<10": (True, 9), "connections<30": (False, 30)}
    for text, (ok, actual) in expected.items():
        assert (res[text]["ok"], res[text]["actual"]) == (ok, pytest.approx(actual)), text


def test_a_figure_the_run_lacks_is_broken_with_the_reason():
    bare = {"overall": {"count": 10, "errors_by_kind": {}}, "endpoints": {}}
    res = {r["slo"]: r for r in evaluate(parse_all(["cpu<70%", "hit_rate>0.8", "timeout==0"]), bare)}
    assert not res["cpu<70%"]["ok"] and "--resources" in res["cpu<70%"]["note"]
    assert not res["hit_rate>0.8"]["ok"] and "--agent" in res["hit_rate>0.8"]["note"]
    assert res["timeout==0"]["ok"] and res["timeout==0"]["actual"] == 0


def test_requirements_are_checked_before_the_load():
    slos = parse_all(["cpu<70%", "hit_rate>0.8", "p95<1s"])
    problems = requirement_problems(slos, resources=False, agent=False)
    assert len(problems) == 2 and "--resources" in problems[0] and "--agent" in problems[1]
    assert requirement_problems(slos, resources=True, agent=True) == []


def test_format_shows_each_metric_in_its_unit():
    text = format_results(evaluate(parse_all(["timeout==0", "http_5xx<0.1%", "cpu<70%", "rss_growth<10MB",
                                               "concurrency<50"]), FULL))
    assert "actual 0 requests" in text and "actual 0.30%" in text and "63.0% of one core" in text
    assert "12.50 MB" in text and "actual 42" in text


def test_concurrency_is_the_exact_most_in_flight():
    import random

    import pyarrow as pa

    from perfbench.analysis import rowstats, target

    rng = random.Random(7)
    starts = [rng.randrange(0, 10_000) for _ in range(400)]
    ends = [s + rng.randrange(0, 300) for s in starts]
    table = pa.table({"start_ns": pa.array(starts, pa.int64()), "end_ns": pa.array(ends, pa.int64())})
    got = target.concurrency(rowstats.table_batches(table, 64), span_s=1e-5)
    # brute force: at each send, the requests sent by then and not yet ended (an end at that instant is over)
    brute = max(sum(1 for s, e in zip(starts, ends, strict=True) if s <= t < e) for t in starts)
    assert got["max"] == brute
    # buckets narrower than the requests, swept in part or (too many candidates) replaced by a sort
    for width_ns, candidates in ((10**6, 4096), (10**6, 3), (10**6, 1), (10**9, 2)):
        again = target.concurrency(rowstats.table_batches(table, 64), 1e-5, width_ns * target.BUCKETS,
                                   candidates=candidates)
        assert again["max"] == brute, (width_ns, candidates)
    for seed in range(20):  # dense overlaps with ties, in micro-second buckets
        r = random.Random(seed)
        st = [r.randrange(0, 5_000_000) for _ in range(200)]
        en = [x + r.choice([0, 1, 1_000, r.randrange(0, 3_000_000)]) for x in st]
        t2 = pa.table({"start_ns": pa.array(st, pa.int64()), "end_ns": pa.array(en, pa.int64())})
        want = max(sum(1 for s, e in zip(st, en, strict=True) if s <= t < e) for t in st)
        got2 = target.concurrency(rowstats.table_batches(t2, 50), 1.0, 10**6 * target.BUCKETS, candidates=8)
        assert got2["max"] == want, seed
    assert got["mean"] == pytest.approx(sum(e - s for s, e in zip(starts, ends, strict=True)) / 1e9 / 1e-5)


def test_resources_and_cache_parts_of_the_summary(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from perfbench.agent.collector import CACHE_SCHEMA
    from perfbench.analysis import target
    from perfbench.profilers.resources import SCHEMA

    n = 5
    cols = {"t_ns": [-100, 0, 1_000_000_000, 2_000_000_000, 3_000_000_000],
            "cpu_percent": [None, 10.0, 50.0, 90.0, 30.0], "cpu_user_s": [1.0, 1.0, 1.4, 2.2, 2.4],
            "cpu_system_s": [0.0, 0.0, 0.1, 0.2, 0.3], "rss": [100 * 2**20, 100 * 2**20, 110 * 2**20, 130 * 2**20,
                                                           120 * 2**20],
            "vms": [0] * n, "uss": [None] * n, "fds": [5, 6, 9, 7, 6], "threads": [2, 2, 3, 3, 2],
            "connections": [None, 1, None, 4, None], "ctx_voluntary": [0] * n, "ctx_involuntary": [0] * n,
            "slow": [True] * n}
    pq.write_table(pa.Table.from_pydict(cols, schema=SCHEMA), tmp_path / "resources.parquet")
    r = target.resources(tmp_path, None)  # every sample, the baseline included
    assert r["rss_growth_mb"] == 20.0 and r["rss_mb_max"] == 130.0 and r["fds_max"] == 9
    assert r["cpu_percent_mean"] == pytest.approx(100 * (2.7 - 1.0) / 3.0000001, abs=1e-3)
    assert r["cpu_percent_max"] == 90.0 and r["connections_max"] == 4
    w = target.resources(tmp_path, 1_000_000_000)  # after a warm-up of 1 s
    assert w["samples"] == 3 and w["rss_growth_mb"] == 10.0
    assert w["cpu_percent_mean"] == pytest.approx(100 * (2.7 - 1.5) / 2.0)
    assert w["cpu_percent_max"] == 90.0  # the first sample's CPU covers time before the window
    events = pa.Table.from_pydict({"request_id": [1, 2, 3, 4, None], "request_id_status": ["ok"] * 4 + ["missing"],
                                   "endpoint": ["r"] * 5, "kind": ["miss", "hit", "hit", "miss", "hit"],
                                   "name": [None] * 5, "t_ns": [10, 20, 500, 600, 700], "source": ["app"] * 5,
                                   "command": [None] * 5, "key": [None] * 5, "duration_ns": [None] * 5},
                                  schema=CACHE_SCHEMA)
    pq.write_table(events, tmp_path / "cache.parquet")
    import polars as pl

    requests = pl.LazyFrame({"request_id": [1, 2, 3, 4], "endpoint": ["a", "b", "a", "b"],
                             "intended_ns": [0, 5, 400, 450]})
    c = target.cache(tmp_path, requests, None)
    assert (c["hits"], c["misses"], c["hit_rate"]) == (3, 2, 0.6)
    assert c["endpoints"] == {"a": {"hits": 1, "misses": 1, "hit_rate": 0.5}, "b": {"hits": 1, "misses": 1,
                                                                                    "hit_rate": 0.5}}
    c = target.cache(tmp_path, requests, 100)  # requests 1 and 2 are the warm-up's
    assert (c["hits"], c["misses"]) == (2, 1)
    # the same lookups also seen by the Redis hook: counted once (the service's own reports win)
    redis = pa.Table.from_pydict({"request_id": [1, 2, 3], "request_id_status": ["ok"] * 3, "endpoint": ["r"] * 3,
                                  "kind": ["miss", "hit", "command"], "name": ["redis"] * 3, "t_ns": [11, 21, 501],
                                  "source": ["redis"] * 3, "command": ["GET", "GET", "SET"], "key": ["k"] * 3,
                                  "duration_ns": [100] * 3}, schema=CACHE_SCHEMA)
    pq.write_table(pa.concat_tables([events, redis]), tmp_path / "cache.parquet")
    assert (lambda c: (c["hits"], c["misses"]))(target.cache(tmp_path, requests, None)) == (3, 2)
    pq.write_table(redis, tmp_path / "cache.parquet")  # only the hook's: its GETs are the lookups
    assert (lambda c: (c["hits"], c["misses"]))(target.cache(tmp_path, requests, None)) == (1, 1)


def test_cli_gates_on_error_kinds_status_and_concurrency(http_server, tmp_path, capsys):
    base = ["run", http_server.url, "--rate", "40", "--duration", "0.5", "--runs-dir", str(tmp_path), "--quiet",
            "--path", "/", "--path", "bad=GET /status/503"]
    assert main(base + ["--slo", "timeout==0", "--slo", "status_5xx<90%", "--slo", "concurrency<1000",
                        "--slo", "ttfb:p99<10s"]) == 0
    assert main(base + ["--slo", "bad:http_5xx==0"]) == 10
    assert "BROKEN  bad:http_5xx==0" in capsys.readouterr().out


@pytest.mark.parametrize("slo, fragment", [
    ("bogus<1", "unknown metric 'bogus'; valid:"),
    ("cpu<70%", "sampled with --resources"),
    ("hit_rate>0.8", "add --agent"),
])
def test_cli_refuses_an_slo_it_cannot_check_before_the_load(http_server, tmp_path, capsys, slo, fragment):
    args = ["run", http_server.url, "--rate", "40", "--duration", "0.5", "--runs-dir", str(tmp_path), "--quiet",
            "--path", "/", "--slo", slo]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_cli_resources_slos_on_a_real_process(http_server, tmp_path):
    import json
    import os

    args = ["run", http_server.url, "--rate", "40", "--duration", "1", "--runs-dir", str(tmp_path), "--quiet",
            "--path", "/", "--resources", "--pid", str(os.getpid()), "--resources-interval", "0.2",
            "--slo", "cpu<100000%", "--slo", "rss_growth<100000MB", "--slo", "threads>=1"]
    assert main(args) == 0
    summary = json.loads((next(tmp_path.iterdir()) / "summary.json").read_text())
    assert summary["resources"]["samples"] >= 2 and summary["resources"]["threads_max"] >= 1
    assert all(r["ok"] for r in summary["slo"])


def test_agent_slos_against_the_demo_with_a_warmup(demo_target, demo_agent_token, tmp_path, monkeypatch):
    """hit_rate and queries_per_request from a real run with the agent, recomputed from cache.parquet and
    queries.parquet over the requests after the warm-up."""
    import json

    import polars as pl

    monkeypatch.setenv("PERFBENCH_AGENT_TOKEN", demo_agent_token)
    assert main(["run", demo_target.url, "--scenario", "demo", "--agent", "--rate", "30", "--duration", "2",
                 "--warmup", "500ms", "--runs-dir", str(tmp_path), "--quiet", "--slo", "hit_rate>=0",
                 "--slo", "report:hit_rate>=0", "--slo", "queries_per_request<1000",
                 "--slo", "posts_naive:queries_per_request>=2"]) == 0
    run_dir = next(tmp_path.iterdir())
    s = json.loads((run_dir / "summary.json").read_text())
    req = pl.read_parquet(run_dir / "requests.parquet").filter(pl.col("intended_ns") >= 500_000_000)
    ids = req.select("request_id", "endpoint")
    cache = pl.read_parquet(run_dir / "cache.parquet").join(ids, on="request_id", how="inner")
    hits, misses = (cache["kind"] == "hit").sum(), (cache["kind"] == "miss").sum()
    assert hits + misses > 0
    assert (s["cache"]["hits"], s["cache"]["misses"]) == (hits, misses)
    assert s["cache"]["hit_rate"] == pytest.approx(hits / (hits + misses), abs=1e-6)
    q = pl.read_parquet(run_dir / "queries.parquet").join(ids, on="request_id", how="inner")
    assert s["sql"]["per_request_mean"] == pytest.approx(q.height / req.height)
    assert all(r["ok"] for r in s["slo"]), s["slo"]


def test_concurrency_of_too_many_rows_is_left_to_the_engine():
    import pyarrow as pa

    from perfbench.analysis import rowstats, target

    table = pa.table({"start_ns": pa.array([0, 1, 2], pa.int64()), "end_ns": pa.array([5, 5, 5], pa.int64())})
    assert target.concurrency(rowstats.table_batches(table, 2), 1.0)["max"] == 3
    # no bucket may be swept: the rows are sorted instead, unless there are too many of them
    assert target.concurrency(rowstats.table_batches(table, 2), 1.0, candidates=0)["max"] == 3
    assert target.concurrency(rowstats.table_batches(table, 2), 1.0, candidates=0, max_rows=2) is None
