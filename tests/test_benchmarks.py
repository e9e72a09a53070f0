"""The benchmark scripts that reach into the engine keep working as the engine changes."""

import json
import os
import re
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "benchmarks")


def test_hot_path_runs_the_engine_against_its_fake_transport():
    """hot_path.py drives the whole open-model engine with fake connections (it uses the lean
    sender's pool directly); it checks that every request completed and was recorded."""
    r = subprocess.run([sys.executable, os.path.join(BENCH, "hot_path.py"), "3000", "7", "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r"^(\d+) ns of CPU per request \(median of 2; each: (\d+), (\d+); 3000 requests, 7 connections\)$",
                  r.stdout.strip())
    assert m and all(int(x) > 0 for x in m.groups()), r.stdout


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.path.join(BENCH, "..")}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow  # starts several Python processes; the last two run load
def test_summary_scale_builds_a_run_directory_and_its_summary_is_verified(tmp_path):
    """summary_scale.py with a few rows: it builds the run directory with the engine's writers, runs
    `perfbench summary` on it and checks every percentile against numpy (--verify)."""
    r = _run(os.path.join(BENCH, "summary_scale.py"), "--rows", "30000", "--repeat", "1", "--verify",
             "--dir", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "verified: counts, errors and every percentile of 6 endpoints and overall" in r.stdout
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert last["rows"] == 30000 and len(last["runs"]) == 1 and last["runs"][0]["peak_rss_mb"] > 0
    assert (tmp_path / "run" / "requests.parquet").exists() and not (tmp_path / "run" / "summary.json").exists()


@pytest.mark.slow  # starts several Python processes; the last two run load
def test_timeout_precision_reports_the_timed_out_rows_of_each_path():
    """timeout_precision.py for a short run on the lean path: a quarter of the requests time out and
    their deviation from the timeout is reported (whatever it is: this is not a timing assertion)."""
    r = _run(os.path.join(BENCH, "timeout_precision.py"), "--seconds", "1", "--rate", "200", "--paths", "lean")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    (lean,) = out["results"]
    assert lean["requests"] == 200 and lean["outcomes"].get("timeout", 0) > 0
    assert set(lean["latency_minus_timeout_ms"]) == {"min", "p50", "p90", "p99", "max"}
    assert "service - timeout" in r.stdout and "bar: |latency - timeout| at p99 <= 5 ms" in r.stdout


@pytest.mark.slow  # starts several Python processes; the last two run load
def test_gzip_probe_says_what_the_lean_path_sends_and_records(tmp_path):
    """gzip_bench's probe (a local server that gzips on request): which Accept-Encoding the lean path
    sent, how many answers were compressed, and the byte columns of its rows."""
    sys.path.insert(0, BENCH)
    try:
        import gzip_bench
    finally:
        sys.path.remove(BENCH)
    probe = gzip_bench.probe_engine("lean", tmp_path, None)
    assert probe["requests"] == 100 and probe["errors"] == 0 and "bytes" in probe["byte_columns"]
    assert probe["body_bytes"] == 11 and probe["gzip_bytes"] > probe["body_bytes"]
    sentence = gzip_bench.describe(probe)
    assert ("uncompressed" in sentence) == (probe["answered_gzip"] == 0)


def test_agent_timing_measures_the_middleware_and_the_sampler():
    """agent_timing.py calls the agent's middlewares directly and idles a loop with the lag sampler."""
    r = _run(os.path.join(BENCH, "agent_timing.py"), "500", "1", "0.2", timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert re.search(r"^middleware added: WSGI -?[0-9.]+ µs, ASGI -?[0-9.]+ µs per request; timing alone: sync "
                     r"[0-9.]+ µs, asyncio [0-9.]+ µs$", r.stdout, re.M), r.stdout
    assert re.search(r"^idle event loop, 0.2 s: [0-9.]+ ms of CPU without the lag sampler, [0-9.]+ ms with it", r.stdout,
                     re.M), r.stdout
