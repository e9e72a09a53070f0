"""tracemalloc snapshots (in-process and through the service endpoint) and memray captures read into Polars."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import aiohttp
import polars as pl
import pytest
from aiohttp import web

from perfbench import shapes
from perfbench.agent import memory as endpoint
from perfbench.demo.process import DemoProcess
from perfbench.load import run_load
from perfbench.profilers import memray as mr
from perfbench.profilers import tracemalloc as tm
from perfbench.scenario import single
from tests.conftest import ThreadServer

KEEP: list = []


def _grow(n: int) -> None:
    KEEP.extend(bytearray(1000) for _ in range(n))  # the growing line


def _line_of(func, text: str) -> int:
    import inspect

    lines, start = inspect.getsourcelines(func)
    return start + next(i for i, ln in enumerate(lines) if text in ln)


def test_tracer_take_compare_top_and_write(tmp_path):
    tr = tm.Tracer(nframes=3)
    try:
        tr.take("before")
        with tr.around("work"):
            _grow(2000)
        tr.take("after")
    finally:
        tr.close()
        KEEP.clear()
    line = _line_of(_grow, "the growing line")
    d = tr.compare("before", "after", by="lineno")
    top = d.row(0, named=True)
    assert top["file"] == __file__ and top["line"] == line
    assert top["size_diff"] >= 2000 * 1000 and top["count_diff"] >= 2000
    assert {"size", "count", "size_before", "count_before", "size_diff", "count_diff"} <= set(d.columns)
    assert tr.compare("work:before", "work:after", by="traceback").row(0, named=True)["line"] == line
    assert tr.top("after", 3, by="site").height <= 3
    written = tr.write(tmp_path)
    snaps = tm.read_snapshots(tmp_path)
    # (an empty snapshot, like "before" right after tracemalloc started, has no rows)
    assert {"work:before", "work:after", "after"} <= set(snaps["label"].unique().to_list())
    # the Tracer's own bookkeeping (its labels, its dict of frames) is not the traced code's memory
    assert snaps.filter(pl.col("traceback").str.contains(tm.__file__, literal=True)).height == 0
    diff = pl.read_parquet(tmp_path / written["diff_site"])
    assert diff.row(0, named=True)["line"] == line


def test_snapshot_groups_by_site_outside_the_stdlib():
    data = {"files": ["/usr/lib/python3.11/secrets.py", "/app/leak.py"], "library_prefixes": ["/usr/lib/python3.11"],
            "label": "x", "stats": [[[[0, 59], [1, 31]], 10_000, 1]]}
    row = tm.snapshot_frame(data).row(0, named=True)
    assert (row["file"], row["line"]) == ("/usr/lib/python3.11/secrets.py", 59)
    assert (row["site_file"], row["site_line"]) == ("/app/leak.py", 31)


def test_endpoint_needs_the_token_and_returns_snapshots():
    app = web.Application()
    token = "t" * 24
    assert endpoint.install(app, token)
    assert not endpoint.install(app, token)  # mounting twice is a no-op
    server = ThreadServer(app).start()
    was_tracing = tracemalloc.is_tracing()
    try:

        async def go():
            async with aiohttp.ClientSession() as s:
                base = server.url + endpoint.PREFIX
                async with s.get(base + "/status") as r:
                    assert r.status == 401
                async with s.get(base + "/status", headers={endpoint.TOKEN_HEADER: "wrong" * 5}) as r:
                    assert r.status == 401
                h = {endpoint.TOKEN_HEADER: token}
                async with s.post(base + "/start", headers=h, params={"nframes": "2"}) as r:
                    assert (await r.json())["tracing"] is True
                async with s.post(base + "/snapshot", headers=h, params={"label": "one"}) as r:
                    return r.status, await r.json()

        status, data = asyncio.run(go())
    finally:
        if not was_tracing:
            tracemalloc.stop()
        server.stop()
    assert status == 200 and data["label"] == "one"
    assert tm.snapshot_frame(data).columns[:3] == ["snapshot", "label", "t_ns"]
    with pytest.raises(ValueError, match="token"):
        endpoint.memory_app("short")


def test_one_token_for_the_agent_and_the_memory_endpoint(monkeypatch, tmp_path):
    """A service running the agent and the memory endpoint answers tracemalloc's calls with the agent's
    token (the agent leaves /_perfbench/memory to the endpoint), and a demo started with
    $PERFBENCH_AGENT_TOKEN exported serves its memory endpoint with that token."""
    from perfbench.agent import Agent
    from perfbench.demo.process import DemoProcess

    token = "a" * 24
    app = web.Application()
    Agent(token, endpoints=True).install_aiohttp(app)
    endpoint.install(app, token)
    server = ThreadServer(app).start()
    try:
        async def go():
            async with aiohttp.ClientSession() as s:
                h = {endpoint.TOKEN_HEADER: token}
                async with s.get(server.url + endpoint.PREFIX + "/status", headers=h) as r:
                    memory = r.status
                async with s.get(server.url + endpoint.PREFIX + "/status", headers={endpoint.TOKEN_HEADER: "b" * 24}
                                 ) as r:
                    wrong = r.status
                return memory, wrong

        memory, wrong = asyncio.run(go())
    finally:
        server.stop()
    assert (memory, wrong) == (200, 401)
    monkeypatch.setenv("PERFBENCH_AGENT_TOKEN", token)
    demo = DemoProcess(db_path=tmp_path / "demo.sqlite", tracemalloc=True)
    assert demo.memory_token == token and demo.environment()["PERFBENCH_MEMORY_TOKEN"] == token
    monkeypatch.delenv("PERFBENCH_AGENT_TOKEN")
    assert DemoProcess(db_path=tmp_path / "demo.sqlite", tracemalloc=True).memory_token not in (None, token)


def test_the_endpoint_module_stays_light():
    # it runs inside the user's service: no Polars, Arrow or NumPy at import
    code = ("import sys, perfbench.agent.memory; "
            "print(' '.join(m for m in ('polars', 'pyarrow', 'numpy') if m in sys.modules))")
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root,
                         timeout=120, check=True)
    assert out.stdout.strip() == ""


def test_profiler_modules_named_like_the_libraries_use_the_libraries():
    assert tm.tracemalloc is tracemalloc
    assert mr.__name__ == "perfbench.profilers.memray"
    assert not importlib.import_module("memray").__name__.startswith("perfbench")


def test_trace_at_start_only_when_asked(monkeypatch):
    assert not tracemalloc.is_tracing()
    monkeypatch.setenv(endpoint.TOKEN_ENV, "m" * 24)
    monkeypatch.setenv(endpoint.NFRAMES_ENV, "4")
    monkeypatch.delenv(endpoint.TRACE_AT_START_ENV, raising=False)
    assert not endpoint.trace_at_start_from_env() and not tracemalloc.is_tracing()
    monkeypatch.setenv(endpoint.TRACE_AT_START_ENV, "1")
    monkeypatch.delenv(endpoint.TOKEN_ENV)
    assert not endpoint.trace_at_start_from_env() and not tracemalloc.is_tracing()  # no endpoint, no tracing
    monkeypatch.setenv(endpoint.TOKEN_ENV, "m" * 24)
    try:
        assert endpoint.trace_at_start_from_env()
        assert tracemalloc.is_tracing() and tracemalloc.get_traceback_limit() == 4
        assert not endpoint.trace_at_start_from_env()  # already tracing
    finally:
        tracemalloc.stop()


def test_demo_with_tracemalloc_is_served_by_serve_demo(tmp_path):
    plain = DemoProcess(db_path=tmp_path / "demo.sqlite")
    traced = DemoProcess(db_path=tmp_path / "demo.sqlite", tracemalloc=True, tracemalloc_nframes=3,
                         tracemalloc_at_start=True)
    assert plain.command() == traced.command()
    assert traced.command()[1:4] == ["-m", "perfbench", "serve-demo"]
    env = traced.environment()
    assert env[endpoint.TOKEN_ENV] == traced.memory_token and env[endpoint.NFRAMES_ENV] == "3"
    assert env[endpoint.TRACE_AT_START_ENV] == "1"
    assert plain.memory_token is None


@pytest.mark.slow
def test_demo_traced_from_its_start_answers_the_endpoint(tmp_path):
    with DemoProcess(db_path=tmp_path / "demo.sqlite", max_seconds=120):  # seed first, untraced
        pass
    with DemoProcess(db_path=tmp_path / "demo.sqlite", tracemalloc=True, tracemalloc_nframes=3,
                     tracemalloc_at_start=True, max_seconds=120) as demo:

        async def status():
            async with aiohttp.ClientSession() as s, s.get(
                    demo.url + endpoint.PREFIX + "/status", headers={endpoint.TOKEN_HEADER: demo.memory_token}) as r:
                return r.status, await r.json()

        code, body = asyncio.run(status())
    assert code == 200 and body["tracing"] is True and body["nframes"] == 3  # before any collector asked
    assert body["pid"] == demo.pid


def test_collector_on_a_service_without_the_endpoint_says_so(http_server, runs_dir):
    result = run_load(http_server.url, shapes.constant(rate=10, duration=0.2), single("/"), runs_dir=runs_dir,
                      progress=False, announce=lambda line: None,
                      collectors=[tm.TracemallocCollector(http_server.url, "x" * 24)])
    err = json.loads((result.path / "meta.json").read_text())["collectors"]["tracemalloc"]["error"]
    assert "not mounted" in err


def _stats_match(report: mr.MemrayReport, stats: dict) -> None:
    assert report.totals["total_num_allocations"] == stats["total_num_allocations"]
    assert report.totals["total_bytes_allocated"] == stats["total_bytes_allocated"]
    assert report.totals["peak_memory"] == stats["metadata"]["peak_memory"]
    assert report.totals["high_water_bytes"] == stats["metadata"]["peak_memory"]


def test_memray_in_process_matches_memray_stats(tmp_path):
    capture = tmp_path / "cap.bin"
    with mr.memray_tracker(capture):
        blocks = [bytearray(50_000) for _ in range(40)]  # above pymalloc's limit: one malloc each
        del blocks[:20]
    report = mr.read_memray(capture)
    stats = mr.memray_stats_json(capture, tmp_path / "stats.json")
    _stats_match(report, stats)
    hw = report.by_location("high_water")
    assert hw.filter(pl.col("file") == __file__)["size"].sum() >= 40 * 50_000
    leaked = report.by_location("leaked")
    assert leaked.filter(pl.col("file") == __file__)["size"].sum() >= 20 * 50_000
    assert report.timeline.columns == ["t_ms", "rss", "heap"]


@pytest.mark.slow
def test_demo_under_memray_during_a_run(runs_dir, seeded_demo_db):
    # a seeded database: seeding under memray is ~12M allocations to trace and read back
    with DemoProcess(db_path=seeded_demo_db, memray=True, max_seconds=300) as demo:
        result = run_load(demo.url, shapes.constant(rate=40, duration=1.5), single("/api/leak", "POST"),
                          runs_dir=runs_dir, progress=False, collectors=[mr.MemrayCollector(demo)])
        assert demo.proc.poll() is not None  # the collector stopped it to finish the capture
    meta = json.loads((result.path / "meta.json").read_text())["collectors"]["memray"]
    assert "error" not in meta, meta
    mem = result.path / "memory"
    stats = json.loads((mem / "memray_stats.json").read_text())
    _stats_match(mr.read_memray(mem / "memray.bin"), stats)
    html = (mem / "memray_flamegraph.html").read_text()
    assert "cdn.jsdelivr" not in html  # --no-web: renders offline
    leaked = pl.read_parquet(mem / "memray_leaked_site.parquet")
    assert leaked.filter(pl.col("file").str.ends_with("demo/leak.py")).height >= 1
    # what a report reads back instead of the capture: the same totals and sites as reading the capture again
    totals, sites = mr.memray_written(result.path)
    again = mr.read_memray(mem / "memray.bin")
    assert totals == again.totals
    assert sites.sort(sites.columns).equals(again.by_location("leaked", by="site").sort(sites.columns))
    assert mr.memray_written(mem) is None  # not a run directory
