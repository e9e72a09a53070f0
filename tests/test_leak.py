"""Leak verdicts: pure fits on synthetic series, and soaks of the demo's leaking and healthy endpoints."""

from __future__ import annotations

import inspect
import random

import polars as pl
import pytest

from perfbench.demo import leak as demo_leak
from perfbench.experiments.memory_soak import soak
from perfbench.profilers import leak

S = 1_000_000_000


def _series(f, n=120, rate=100.0, noise=200_000.0, seed=1):
    rng = random.Random(seed)
    t = [int(i * 0.1 * S) for i in range(n)]
    ends = [int(k / rate * S) for k in range(int(n * 0.1 * rate))]
    rss = [int(50e6 + f(ti / S * rate) + rng.gauss(0, noise)) for ti in t]
    return pl.DataFrame({"t_ns": t, "rss": rss}), ends


def test_ols_hac_recovers_a_slope():
    fit = leak.ols_hac([0, 1, 2, 3, 4, 5], [1.0, 3.1, 4.9, 7.0, 9.1, 10.9])
    assert 1.9 < fit.slope < 2.1 and fit.lo < fit.slope < fit.hi
    assert leak.ols_hac([1, 1, 1], [1, 2, 3]) is None
    assert abs(leak.t_quantile(10) - 2.228) < 0.01 and abs(leak.t_quantile(1000) - 1.962) < 0.01


def test_linear_growth_is_a_leak():
    rss, ends = _series(lambda r: 10_000 * r)  # 10 KB per request
    v = leak.assess(rss=rss, requests_end_ns=ends)
    assert v.verdict == "leak"
    g = v.series["rss"].per_request
    assert g.lo < 10_000 < g.hi


def test_flat_noise_is_not_a_leak():
    rss, ends = _series(lambda r: 0.0)
    v = leak.assess(rss=rss, requests_end_ns=ends)
    assert v.verdict == "no leak"


def test_warmup_then_plateau_is_not_a_leak():
    # grows fast while caches fill, then stays: the warm-up cut and the second-half check keep it from a leak
    rss, ends = _series(lambda r: 8e6 * min(r, 300) / 300)
    v = leak.assess(rss=rss, requests_end_ns=ends)
    assert v.verdict != "leak"


def _leak_line() -> int:
    lines, start = inspect.getsourcelines(demo_leak.remember_request)
    return start + next(i for i, ln in enumerate(lines) if "body_snapshot" in ln)


@pytest.fixture(scope="module")
def demo_db(demo_db_copy):
    """Seeded already: the soak's demo runs with tracemalloc on, under which seeding is slow."""
    return demo_db_copy()


@pytest.mark.slow
def test_soak_of_the_leak_endpoint_names_file_and_line(demo_db, tmp_path):
    out = soak(None, endpoints="POST /api/leak", rate=80, duration=5, sample_interval=0.1,
               snapshot_interval=0.5, runs_dir=tmp_path, demo_db_path=demo_db, announce=lambda line: None)
    v = out["verdict"]
    assert v.verdict == "leak", v.reason
    top = v.top_site
    assert top["file"].endswith("perfbench/demo/leak.py") and top["line"] == _leak_line()
    assert 8_000 < top["bytes_per_request"] < 13_000  # ~10 KB of hex text per request
    traced = v.series["traced"].per_request
    assert traced.lo > 5_000
    assert (out["run_dir"] / "memory" / "leak_verdict.json").exists()


@pytest.mark.slow
def test_soak_of_health_is_not_a_leak(demo_db, tmp_path):
    out = soak(None, endpoints="GET /health", rate=80, duration=5, sample_interval=0.1,
               snapshot_interval=0.5, runs_dir=tmp_path, demo_db_path=demo_db, announce=lambda line: None)
    v = out["verdict"]
    assert v.verdict != "leak", v.reason
    assert v.series["traced"].verdict == "no leak", v.series["traced"].reason


def test_growth_on_every_request_over_too_short_a_window_is_inconclusive_not_clean():
    # 10 KB per request over about a hundred requests: under the 1 MiB minimum growth, but not "no leak"
    rss, ends = _series(lambda r: 10_000 * r, n=12, noise=20_000.0)
    v = leak.assess(rss=rss, requests_end_ns=ends)
    s = v.series["rss"]
    assert s.per_request is not None and s.per_request.lo > leak.MIN_BYTES_PER_REQUEST
    assert s.verdict == "inconclusive" and "run longer" in s.reason and v.verdict == "inconclusive", s.reason
