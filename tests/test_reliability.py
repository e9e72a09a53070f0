"""Interruptions of perfbench itself, bounded resources, and secrets that never leak (issue 9)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfbench import shapes
from perfbench.analysis.results import Run
from perfbench.errors import ConfigError
from perfbench.load import run_load
from perfbench.rundir import JOURNAL
from perfbench.scenario import Login, Request, Scenario
from perfbench.scenario_toml import load_toml

pytestmark = pytest.mark.slow


def start_cli_run(url: str, runs_dir: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "perfbench", "run", url, "--rate", "100", "--duration", "60", "--path", "/",
           "--runs-dir", str(runs_dir), "--quiet", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_rows(runs_dir: Path, proc: subprocess.Popen, timeout: float = 30) -> Path:
    """Wait until the run has flushed at least one batch to its journal (flushes are once a second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        dirs = [d for d in runs_dir.glob("*") if (d / JOURNAL).exists()]
        if dirs and (dirs[0] / JOURNAL).stat().st_size > 4096:
            return dirs[0]
        time.sleep(0.05)  # polling a file another process writes; not a timing assumption
    raise AssertionError("the run never flushed")


@pytest.mark.parametrize("sig, reason, code", [(signal.SIGTERM, "terminated", 143),
                                                (signal.SIGINT, "interrupted", 130)])
def test_a_signal_mid_run_leaves_a_valid_run_directory(http_server, tmp_path, sig, reason, code):
    proc = start_cli_run(http_server.url, tmp_path)
    run_dir = wait_for_rows(tmp_path, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    run = Run.load(run_dir)
    assert run.meta["end_reason"] == reason and not (run_dir / JOURNAL).exists()
    n = run.requests.collect().height
    assert n >= 50 and json.loads((run_dir / "summary.json").read_text())["overall"]["count"] == n
    assert "run directory" in out


def test_kill_9_loses_at_most_the_unflushed_second(http_server, tmp_path):
    proc = start_cli_run(http_server.url, tmp_path)
    run_dir = wait_for_rows(tmp_path, proc)
    time.sleep(1.5)  # let a couple more batches land; the assertion does not depend on how many
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    run = Run.load(run_dir)  # recovers the journal
    assert run.meta["end_reason"] == "crashed"
    df = run.requests.collect()
    assert df.height >= 100  # at 100 req/s, every flushed second is kept
    assert df["request_id"].n_unique() == df.height
    assert (run_dir / "requests.parquet").exists() and not (run_dir / JOURNAL).exists()


def client_connections_to(port: int) -> int:
    return sum(1 for c in psutil.Process().net_connections(kind="tcp") if c.raddr and c.raddr.port == port)


def test_connections_and_files_return_to_their_baseline(http_server, tmp_path):
    from perfbench.engine.senders import HTTP_PATHS

    port = int(http_server.url.rsplit(":", 1)[1])
    sc = Scenario([Request("r", "GET", "/delay/5")])

    def one_run(http_path):
        # 100 requests at 200/s open many connections: enough to see one that is not closed
        run_load(http_server.url, shapes.constant(200, 0.5), sc, runs_dir=tmp_path, progress=False,
                 http_path=http_path)

    one_run("aiohttp")  # the first run starts thread pools (pyarrow, polars) that live as long as the process
    baseline = _settled_fds(None)
    for http_path in (*HTTP_PATHS, *HTTP_PATHS):
        one_run(http_path)
        assert client_connections_to(port) == 0, http_path
        assert _settled_fds(baseline) <= baseline, http_path


def _settled_fds(target: int | None) -> int:
    # the server side of the closed connections is this process too: give its loop a moment
    deadline = time.monotonic() + 10
    n = psutil.Process().num_fds()
    while target is not None and n > target and time.monotonic() < deadline:
        time.sleep(0.05)
        n = psutil.Process().num_fds()
    return n


SECRETS = ("hunter2-pa55word", "sk_live_supersecret_token", "Bearer abc.def.secret-session")


def test_secrets_never_reach_the_run_directory_or_the_report(http_server, tmp_path):
    from perfbench.experiments.runner import run_experiment

    scen = tmp_path / "secret_scenario.py"
    scen.write_text(f'''
from perfbench.scenario import Login, Request, Scenario
scenario = Scenario(
    [Request("me", "GET", "/echo/me", headers={{"X-Api-Key": "{SECRETS[1]}"}}),
     Request("post", "POST", "/echo/post", json={{"password": "{SECRETS[0]}", "note": "ok"}})],
    headers={{"Authorization": "{SECRETS[2]}"}},
    login=Login("/echo/login", {{"user": "alice", "password": "{SECRETS[0]}"}}, token_field="path"),
)
''')
    r = run_experiment("load_test", {"target": http_server.url, "rate": 20, "duration": 1, "scenario": str(scen)},
                       runs_dir=tmp_path / "runs", reports_dir=tmp_path / "reports")
    produced = [p for p in [*r.run_dir.rglob("*"), r.report] if p.is_file()]
    assert len(produced) >= 4
    for path in produced:
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret!r} leaked into {path.name}"


URL_SECRETS = ("pa55-in-the-url", "k3y-in-the-query", "t0ken-in-the-query", "s1gnature-in-the-query")


def test_url_secrets_never_reach_the_run_directory_the_report_or_the_terminal(http_server, tmp_path):
    """Credentials in the target URL and secret query parameters, through the real CLI: `run` and
    `experiment` (whose notebook gets the target as a papermill parameter), then every file they wrote,
    the HTML report and what they printed are searched for each secret."""
    target = http_server.url.replace("http://", f"http://admin:{URL_SECRETS[0]}@")
    paths = [f"/echo/a?api_key={URL_SECRETS[1]}&page=2", f"/echo/b?access_token={URL_SECRETS[2]}",
             f"/status/500?signature={URL_SECRETS[3]}"]
    cli = [sys.executable, "-m", "perfbench"]
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    outputs = [subprocess.run([*cli, "run", target, *(a for p in paths for a in ("--path", p)), "--rate", "30",
                               "--duration", "0.5", "--runs-dir", str(runs)], capture_output=True, text=True,
                              timeout=120)]
    outputs.append(subprocess.run([*cli, "run", target, "--http-path", "lean", "--runs-dir", str(runs)],
                                  capture_output=True, text=True, timeout=120))  # an error that names the URL
    outputs.append(subprocess.run([*cli, "experiment", "load_test", "-p", "target", target, "-p", "scenario", "",
                                   "-p", "paths", json.dumps(paths), "-p", "rate", "20", "-p", "duration", "1",
                                   "--runs-dir", str(runs), "--reports-dir", str(reports)],
                                  capture_output=True, text=True, timeout=300))
    assert [o.returncode for o in outputs] == [0, 2, 0], [o.stderr for o in outputs]
    assert "api_key=***" in outputs[0].stdout and "http://***@127.0.0.1" in outputs[0].stderr
    produced = [p for p in [*runs.rglob("*"), *reports.rglob("*")] if p.is_file()]
    assert any(p.suffix == ".html" for p in produced) and any(p.suffix == ".ipynb" for p in produced)
    assert sum(p.name == "requests.parquet" for p in produced) == 2
    texts = {p: p.read_bytes() for p in produced}
    texts.update({Path(f"output {i}"): (o.stdout + o.stderr).encode() for i, o in enumerate(outputs)})
    for where, data in texts.items():
        for secret in URL_SECRETS:
            assert secret.encode() not in data, f"{secret!r} leaked into {where}"
    metas = [json.loads(p.read_text()) for p in produced if p.name == "meta.json"]
    assert all(m["target"].startswith("http://***@127.0.0.1:") for m in metas)


# --- property-based tests: plans and the TOML scenario parser -------------------------------------------------

stage = st.tuples(st.floats(0.01, 5), st.floats(0, 500), st.floats(0, 500))


@given(st.lists(stage, min_size=1, max_size=4), st.booleans())
def test_plans_are_sorted_inside_their_duration_and_count_what_they_promise(stages_, poisson):
    if sum((a + b) / 2 * d for d, a, b in stages_) < 1:
        return
    plan = shapes.stages(stages_, poisson=poisson, seed=1)
    arr = list(plan.arrivals())
    offsets = [a.offset_ns for a in arr]
    assert offsets == sorted(offsets)
    assert all(0 <= o <= plan.duration * 1e9 + 1 for o in offsets)
    assert [a.stage for a in arr] == sorted(a.stage for a in arr)
    if not poisson:  # evenly spaced: exactly the whole arrivals the integral of the rate holds
        expected = plan.expected_requests
        assert len(arr) in (int(expected), int(expected) + 1) or abs(len(arr) - expected) <= 1


toml_value = st.recursive(st.one_of(st.integers(-5, 5), st.text(max_size=6), st.booleans(), st.floats(-1, 1)),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                      max_size=3), max_leaves=8)


@given(st.dictionaries(st.sampled_from(["name", "seed", "request", "login", "headers", "extra"]),
                       toml_value, max_size=5),
       st.lists(st.dictionaries(st.sampled_from(["name", "path", "method", "weight", "vars", "expect", "checks",
                                                 "json", "graphql"]), toml_value, max_size=6), max_size=3))
def test_the_toml_parser_only_ever_raises_config_errors(tmp_path_factory, top, requests):
    lines = [f"{json.dumps(k)} = {_toml(v)}" for k, v in top.items() if k != "request"]
    for req in requests:
        lines.append("[[request]]")
        lines += [f"{json.dumps(k)} = {_toml(v)}" for k, v in req.items()]
    path = tmp_path_factory.mktemp("toml") / "s.toml"
    path.write_text("\n".join(lines) + "\n")
    with contextlib.suppress(ConfigError):  # anything else (a TypeError, a KeyError...) fails the test
        load_toml(path)


def _toml(v) -> str:
    """A TOML value for the generated data (inline tables and arrays)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(x)}" for k, x in v.items()) + "}"


def test_login_secrets_are_redacted_in_meta(http_server, tmp_path):
    sc = Scenario([Request("r", "GET", "/")], login=Login("/echo/login", {"password": SECRETS[0]}, token_field="path"))
    res = run_load(http_server.url, shapes.constant(10, 0.3), sc, runs_dir=tmp_path, progress=False)
    assert SECRETS[0] not in (res.path / "meta.json").read_text()


def test_terminating_perfbench_demo_stops_the_target_it_started(seeded_demo_db, tmp_path):
    """SIGTERM to `perfbench demo` mid-experiment: perfbench exits 143 and the demo target it
    started (a child process) is stopped, not left running."""
    proc = subprocess.Popen([sys.executable, "-m", "perfbench", "demo", "--duration", "30", "--rate", "20",
                             "--runs-dir", str(tmp_path / "runs"), "--reports-dir", str(tmp_path / "reports"),
                             "--db-path", str(seeded_demo_db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    demo_pid = None
    deadline = time.monotonic() + 120
    while demo_pid is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        assert line, "perfbench demo exited early"
        if "demo target serving on" in line:
            demo_pid = int(line.rsplit("pid ", 1)[1].rstrip(")\n"))
    assert demo_pid and psutil.pid_exists(demo_pid)
    wait_for_rows(tmp_path / "runs", proc)  # the experiment's load is under way
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert not psutil.pid_exists(demo_pid) or psutil.Process(demo_pid).status() == psutil.STATUS_ZOMBIE
