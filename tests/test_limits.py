"""The deadline and signals hold whatever the plan: plan-size limits, unsent arrivals counted (not
written one by one), a signal's one-second grace, and exit code 4 for a target never reached."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfbench import cli, shapes
from perfbench.analysis.results import Run
from perfbench.engine.clock import FakeClock
from perfbench.engine.open_model import SIGNAL_GRACE_S, OpenModelEngine
from perfbench.engine.recorder import MemorySink, Recorder
from perfbench.engine.session import RunResult
from perfbench.errors import ConfigError
from perfbench.load import judge_reach
from perfbench.rundir import JOURNAL, META, REQUESTS, RunDir
from perfbench.scenario import Request, Scenario

# --- plan size: refused up front, with the limit named -----------------------------------------------


@pytest.mark.parametrize("argv, words", [
    (["--rate", "1e9", "--duration", "1"], "above the limit of 1,000,000 req/s"),
    (["--stages", "1s:10,1s:5000000"], "stage 1: rate 5e+06 req/s is above the limit"),
    (["--users", "1000000"], "above the limit of 50,000 users"),
    (["--duration", "1e308"], "above the limit of 2,592,000 s (30 days)"),
    (["--users", "2", "--stages", "400h:2,400h:2"], "above the limit of 2,592,000 s"),
])
def test_a_plan_beyond_the_limits_is_refused_before_any_load(tmp_path, capsys, argv, words):
    code = cli.main(["run", "http://127.0.0.1:9", *argv, "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()  # nothing was created, nothing was sent


def test_the_limits_are_part_of_the_plans():
    shapes.constant(shapes.MAX_RATE, 0.001)  # at the limit: fine
    with pytest.raises(ConfigError, match="limit"):
        shapes.ramp(0, shapes.MAX_RATE * 2, 1)
    shapes.users(shapes.MAX_USERS, 1)
    with pytest.raises(ConfigError, match="limit"):
        shapes.user_stages([(1, shapes.MAX_USERS + 1)])
    shapes.constant(1, shapes.MAX_DURATION_S)
    with pytest.raises(ConfigError, match="30 days"):
        shapes.constant(1, shapes.MAX_DURATION_S + 1)


def test_more_users_than_open_files_is_refused(monkeypatch, tmp_path):
    import resource

    from perfbench.load import run_load

    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 1024))
    with pytest.raises(ConfigError, match=r"2,000 users need one connection each.*1,024 files"):
        run_load("http://127.0.0.1:9", shapes.users(2000, 1), runs_dir=tmp_path)
    assert not list(tmp_path.iterdir())


# --- arrivals never sent are counted, exactly, without generating them -------------------------------


def _brute_force(arrivals, first_pos: int, t_ns: int) -> dict[int, int]:
    out: dict[int, int] = {}
    for a in arrivals[first_pos:]:
        if a[1] <= t_ns:
            out[a[2]] = out.get(a[2], 0) + 1
    return out


stage_st = st.tuples(st.floats(0.05, 1.5), st.floats(0, 3000), st.floats(0, 3000))


@given(st.lists(stage_st, min_size=1, max_size=4), st.integers(1, 3), st.data())
def test_counting_due_arrivals_agrees_with_generating_them(spec, shards, data):
    try:
        plan = shapes.stages([(round(d, 3), round(a, 1), round(b, 1)) for d, a, b in spec])
    except ConfigError:
        return  # a plan of no arrivals
    shard = data.draw(st.integers(0, shards - 1))
    load = plan if shards == 1 else plan.shard(shard, shards)
    arrivals = list(load.arrival_tuples())
    if not arrivals:
        return
    first = data.draw(st.integers(0, len(arrivals) - 1))
    # any time, and the exact times of arrivals and one nanosecond before them (the boundaries)
    k = data.draw(st.integers(first, len(arrivals) - 1))
    for t in (arrivals[k][1], arrivals[k][1] - 1, data.draw(st.integers(0, round(plan.duration * 1.1e9)))):
        assert load.count_due(arrivals[first], t) == _brute_force(arrivals, first, t)


def test_poisson_counts_are_the_expected_number():
    plan = shapes.constant(2000, 5, poisson=True)
    arrivals = list(plan.arrival_tuples())
    got = sum(plan.count_due(arrivals[1000], 4_000_000_000).values())
    real = sum(_brute_force(arrivals, 1000, 4_000_000_000).values())
    assert abs(got - real) <= 4 * real ** 0.5  # four standard deviations of a Poisson count


class HangingSender:
    """The callback interface; never answers (``abort_all`` ends what is in flight)."""

    name = "hanging"

    def __init__(self):
        self.pending = []

    def template(self, method, headers, id_header="X-Request-Id"):
        from perfbench.engine.lean import LeanTemplate

        return LeanTemplate(method, b"", id_header)

    def raw_path(self, path):
        return path.encode()

    def kind(self, spec, heads=False):
        return spec

    def submit(self, data, job, done, kind, sent):
        self.pending.append((job, done))

    def abort_all(self, error="aborted", detail=""):
        from perfbench.engine.protocols import NO_BYTE, NO_CONNECTION

        pending, self.pending = self.pending, []
        for job, done in pending:
            done(job, None, 0, 0, None, error, detail, NO_BYTE, NO_CONNECTION)
        return len(pending)


def test_a_plan_far_beyond_the_generator_ends_on_time_and_writes_one_row_per_request_sent():
    clock, sink = FakeClock(), MemorySink()
    plan = shapes.constant(shapes.MAX_RATE, 60)  # 60 million arrivals; 10 slots, never answered
    eng = OpenModelEngine(plan, Scenario([Request("a", "GET", "/a")]), HangingSender(), Recorder(sink),
                          clock=clock, max_in_flight=10, grace=2)
    started = time.process_time()
    stats = asyncio.run(eng.run())
    cpu = time.process_time() - started
    assert clock.now_ns() <= (60 + 2 + 0.1) * 1e9  # the plan, then the grace: its deadline
    assert stats.sent == 10 == sink.table().num_rows  # one row per request sent, none per unsent arrival
    assert stats.unsent == stats.planned - 10 and stats.unsent > 59_000_000
    assert stats.unsent_by_stage == {0: stats.unsent}
    assert cpu < 30  # generating 60 M arrivals one by one would take minutes (a bound, not a timing)


def test_a_signal_gives_in_flight_requests_at_most_a_second():
    clock, sink = FakeClock(), MemorySink()
    eng = OpenModelEngine(shapes.constant(100, 30), Scenario([Request("a", "GET", "/a")]), HangingSender(),
                          Recorder(sink), clock=clock, max_in_flight=5, grace=30)

    async def main():
        run = asyncio.ensure_future(eng.run())
        while clock.now_ns() < 2e9:  # noqa: ASYNC110 - virtual time moves as the engine runs
            await asyncio.sleep(0)
        eng.stop("terminated")
        stopped = clock.now_ns()
        stats = await run
        return stats, stopped

    stats, stopped = asyncio.run(main())
    assert stats.end_reason == "terminated"
    assert clock.now_ns() - stopped <= (SIGNAL_GRACE_S + 0.1) * 1e9  # not the 30 s grace
    assert stats.aborted == 5 and sink.table().num_rows == 5


def test_the_drain_never_runs_past_the_deadline():
    clock = FakeClock()
    # a deadline before the plan's end: the run stops sending there, and in-flight requests get no
    # grace beyond it (the announced deadline is when the run ends)
    eng = OpenModelEngine(shapes.constant(1000, 2), Scenario([Request("a", "GET", "/a")]), HangingSender(),
                          Recorder(MemorySink()), clock=clock, max_in_flight=5, grace=3, deadline=1.0)
    stats = asyncio.run(eng.run())
    assert stats.end_reason == "deadline" and clock.now_ns() <= 1.1e9 and stats.aborted == 5


# --- through the CLI: a huge plan under SIGTERM, an unreachable target -------------------------------


def _wait_for_journal(runs_dir: Path, proc: subprocess.Popen, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        dirs = [d for d in runs_dir.glob("*") if (d / JOURNAL).exists() and (d / JOURNAL).stat().st_size > 0]
        if dirs:
            return dirs[0]
        time.sleep(0.05)  # polling a file another process writes; not a timing assumption
    raise AssertionError("the run never flushed")


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_huge_plan_stops_on_a_signal_within_its_grace_and_fills_no_disk(http_server, tmp_path, sig, code):
    proc = subprocess.Popen([sys.executable, "-m", "perfbench", "run", http_server.url, "--rate", "1000000",
                             "--duration", "60", "--path", "/", "--runs-dir", str(tmp_path), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_dir = _wait_for_journal(tmp_path, proc)
        signalled = time.monotonic()
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert took < 15, took  # one second of grace, then the run directory is written (not 60 s, not minutes)
    meta = json.loads((run_dir / META).read_text())
    stats = meta["engine_stats"]
    assert meta["end_reason"] in ("terminated", "interrupted") and stats["unsent"] > 0
    rows = pq.read_metadata(run_dir / REQUESTS).num_rows
    assert rows == stats["sent"]  # a row per request sent; the unsent are a count
    assert (run_dir / REQUESTS).stat().st_size < 20_000_000
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_closed_model_against_a_server_that_never_answers_stops_on_sigterm(tmp_path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4096)
    conns: list[socket.socket] = []

    def accept() -> None:  # accepts and never answers
        while True:
            try:
                conns.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{srv.getsockname()[1]}"
    proc = subprocess.Popen([sys.executable, "-m", "perfbench", "run", url, "--users", "2000", "--duration", "60",
                             "--runs-dir", str(tmp_path), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(conns) < 2000 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)  # waiting for the users' connections; not a timing assumption
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        srv.close()
        for c in conns:
            c.close()
    assert proc.returncode == 143, err
    assert took < 15, took
    run = Run.load(next(tmp_path.iterdir()))
    df = run.requests.collect()
    assert df.height == 2000 and set(df["error"].to_list()) == {"aborted"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_target_that_refuses_every_connection_is_exit_4(tmp_path, capsys):
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    code = cli.main(["run", url, "--rate", "40", "--duration", "0.5", "--runs-dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 4, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("perfbench: error")]
    assert len(lines) == 1 and "was not reached" in lines[0] and "connect" in lines[0]
    run = Run.load(next(tmp_path.iterdir()))
    assert run.meta["end_reason"] == "unreachable" and run.meta["ran_until"] == "completed"
    assert run.requests.collect().height == 20  # what was tried is kept


def test_a_run_that_sent_nothing_is_unreachable_and_one_that_reached_the_target_is_not(tmp_path, http_server):
    rd = RunDir.create(tmp_path, "r")
    rd.write_meta({"target": "http://127.0.0.1:1"})
    nothing = judge_reach(RunResult(rd.path, "r", {"overall": {"count": 0, "errors": 0}}, "completed"))
    assert nothing.end_reason == "unreachable" and nothing.reach == "no request was sent"
    assert rd.meta()["end_reason"] == "unreachable"
    some = {"overall": {"count": 10, "errors": 9, "errors_by_kind": {"connect": 9}}}
    assert judge_reach(RunResult(rd.path, "r", some, "completed")).end_reason == "completed"
    # an interrupted run keeps its own reason (exit 130/143), whatever it reached
    assert judge_reach(RunResult(rd.path, "r", {"overall": {"count": 0}}, "interrupted")).end_reason == "interrupted"
