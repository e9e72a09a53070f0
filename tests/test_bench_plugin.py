"""The pytest plugin (perfbench.bench.plugin), run in a child pytest on generated test files: the bench fixture
on sync and async functions, --bench-only, --bench-save / --bench-compare with compare's exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--bench-max-time", "0", "--bench-min-rounds", "25"]

TESTS = '''
import asyncio, os
import pytest

N = int(os.environ.get("WORK", "1000"))

def work(n):
    return sum(range(n))

def test_sync(bench):
    assert bench(work, N) == sum(range(N))
    assert bench.stats["rounds"] >= 25

async def ping(x):
    await asyncio.sleep(0)
    return x

def test_async_on_a_new_loop(bench):
    assert bench(ping, x=3) == 3
    assert bench.result.is_async

@pytest.mark.anyio
async def test_async_on_the_running_loop(bench):
    assert await bench.async_(ping, 4) == 4

@pytest.fixture
def anyio_backend():
    return "asyncio"

@pytest.mark.parametrize("n", [10, 100, 1000])
def test_sizes(bench, n):
    bench(work, n)
    assert bench.result.param == n and bench.result.group == "test_sizes"

@pytest.mark.bench(memory=True, min_rounds=30)
def test_marker(bench):
    bench(bytes, 10_000)
    assert bench.result.memory["peak_bytes"] >= 10_000 and bench.stats["rounds"] >= 30

def test_configure(bench):
    assert bench.configure(sql=True, min_rounds=26)(sorted, [2, 1]) == [1, 2]
    assert bench.result.sql["statements_per_call"] == 0 and bench.stats["rounds"] >= 26


def test_not_a_benchmark():
    assert True
'''


def pytest_run(tmp_path: Path, *args: str, work: int = 1000, files: dict[str, str] | None = None):
    for name, text in (files or {"test_b.py": TESTS}).items():
        (tmp_path / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WORK": str(work)}
    cmd = [sys.executable, "-m", "pytest", "-p", "perfbench.bench.plugin", "-p", "no:cacheprovider", "-q",
           "--rootdir", str(tmp_path), *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)


def test_the_fixture_times_sync_and_async_functions_and_prints_the_table(tmp_path):
    r = pytest_run(tmp_path, *FAST)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "9 passed" in r.stdout
    section = r.stdout[r.stdout.index("perfbench bench"):]
    for name in ("test_sync", "test_async_on_a_new_loop", "test_async_on_the_running_loop", "test_sizes[100]",
                 "test_marker", "test_configure"):
        assert name in section
    assert "Peak KiB" in section and "SQL/call" in section and "test_not_a_benchmark" not in section
    assert "test_sizes: time" in section  # the parametrized group's fitted scaling


def test_bench_only_deselects_the_other_tests(tmp_path):
    r = pytest_run(tmp_path, *FAST, "--bench-only", "-k", "test_sync or test_not_a")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed, 8 deselected" in r.stdout


def test_save_then_compare_fails_the_session_on_a_slowdown_with_exit_code_10(tmp_path):
    dirs = ["--bench-runs-dir", str(tmp_path / "runs"), "--bench-baselines-dir", str(tmp_path / "bl")]
    saved = pytest_run(tmp_path, *FAST, *dirs, "-k", "test_sync", "--bench-save", "main")
    assert saved.returncode == 0, saved.stdout + saved.stderr
    assert "baseline main saved" in saved.stdout and (tmp_path / "bl" / "main" / "baseline.json").is_file()
    slow = pytest_run(tmp_path, *FAST, *dirs, "-k", "test_sync", "--bench-compare", "main", "--bench-json",
                      str(tmp_path / "c.json"), "--bench-junit", str(tmp_path / "c.xml"), work=30_000)
    assert slow.returncode == 10, slow.stdout + slow.stderr
    assert "REGRESSION: test_sync p50" in slow.stdout and "1 passed" in slow.stdout
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["verdict"] == "regression" and [r["stat"] for r in doc["rows"]] == ["p50"]
    assert 'failures="1"' in (tmp_path / "c.xml").read_text()
    slow_run = slow.stdout.split("benchmarks saved in ")[1].split()[0]  # a run directory is a side too
    fast = pytest_run(tmp_path, *FAST, *dirs, "-k", "test_sync", "--bench-compare", slow_run, work=1000)
    assert fast.returncode == 0, fast.stdout + fast.stderr  # 30x faster than the slow run: an improvement
    assert "improvement" in fast.stdout


def test_a_missing_baseline_is_a_usage_error_with_exit_code_2(tmp_path):
    r = pytest_run(tmp_path, *FAST, "-k", "test_sync", "--bench-compare", "nope", "--bench-baselines-dir",
                   str(tmp_path / "bl"), "--bench-runs-dir", str(tmp_path / "runs"))
    assert r.returncode == 2 and "perfbench: error: --bench-compare 'nope': no baseline" in r.stdout


def test_misuse_is_reported_in_one_line(tmp_path):
    files = {"test_m.py": '''
import pytest

def test_twice(bench):
    bench(len, "x")
    bench(len, "y")

@pytest.mark.bench(rounds=3)
def test_bad_marker(bench):
    bench(len, "x")
'''}
    r = pytest_run(tmp_path, *FAST, files=files)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "one function per test" in r.stdout
    assert "unknown benchmark option rounds" in r.stdout + r.stderr


def test_options_never_clash_with_pytest_benchmark(tmp_path):
    r = pytest_run(tmp_path, "--help")
    opts = {w.split("=")[0].rstrip(",") for line in r.stdout.splitlines() for w in line.split()
            if w.startswith("--bench")}
    assert {"--bench-save", "--bench-compare", "--bench-only"} <= opts
    assert not [o for o in opts if o.startswith("--benchmark")]


def test_the_examples_run_under_pytest_with_tiny_budgets(tmp_path):
    examples = [str(ROOT / "examples" / f"bench_{n}.py") for n in ("password_hashing", "orm_loading", "bulk_insert")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "perfbench.bench.plugin", "-p", "no:cacheprovider",
                        "-q", "--rootdir", str(tmp_path), *FAST[:2], "--bench-min-rounds", "3", *examples],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "11 passed" in r.stdout
    section = r.stdout[r.stdout.index("perfbench bench"):]
    assert "test_posts_lazy" in section and "SQL/call" in section and "test_insert_1000_rows[100]" in section
    assert "test_pbkdf2_sha256: time" in section and "test_insert_1000_rows: time" in section  # the fitted scaling
