"""py-spy under load: a profile of a live Python process; a clear message when it cannot attach."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from perfbench import shapes
from perfbench.load import run_load
from perfbench.profilers.cpu import (
    PySpyCollector,
    pyspy_executable,
    read_collapsed,
    top_functions,
    write_speedscope,
)
from perfbench.scenario import single

# py-spy is a dependency and ptrace works on this machine (and on CI, which runs here): no skips
assert pyspy_executable() is not None, "py-spy is a dependency of perfbench; reinstall the venv"

BUSY = ("import time\ndef spin():\n    s = 0\n    for i in range(20000): s += i\n    return s\n"
        "t = time.monotonic()\nwhile time.monotonic() - t < 60: spin()\n")


@pytest.fixture
def busy_child():
    proc = subprocess.Popen([sys.executable, "-c", BUSY])
    yield proc
    proc.kill()
    proc.wait(10)


def test_records_a_live_process(http_server, runs_dir, busy_child):
    result = run_load(http_server.url, shapes.constant(rate=20, duration=1.0), single("/"), runs_dir=runs_dir,
                      progress=False, collectors=[PySpyCollector(busy_child.pid)])
    meta = json.loads((result.path / "meta.json").read_text())["collectors"]["py-spy"]
    assert "error" not in meta, meta
    assert meta["samples"] > 0
    stacks = read_collapsed(result.path / "cpu" / "py-spy.txt")
    assert stacks["samples"].sum() == meta["samples"]
    top = top_functions(stacks)
    assert top.filter(pl.col("frame").str.contains("spin")).height >= 1
    doc = json.loads((result.path / "cpu" / "py-spy.speedscope.json").read_text())
    assert doc["profiles"][0]["endValue"] == meta["samples"]


def test_attaches_when_the_environment_forces_colour(http_server, runs_dir, busy_child, monkeypatch):
    """A Jupyter kernel exports CLICOLOR_FORCE=1: py-spy then coloured its "Sampling process" line, which never
    matched, and every notebook run with py-spy waited out the attach timeout and had no profile."""
    monkeypatch.setenv("CLICOLOR_FORCE", "1")
    monkeypatch.setenv("FORCE_COLOR", "1")
    result = run_load(http_server.url, shapes.constant(rate=20, duration=1.0), single("/"), runs_dir=runs_dir,
                      progress=False, collectors=[PySpyCollector(busy_child.pid, attach_timeout=30)])
    meta = json.loads((result.path / "meta.json").read_text())["collectors"]["py-spy"]
    assert "error" not in meta and meta["samples"] > 0, meta


def test_cannot_attach_is_a_clear_message_and_the_run_goes_on(http_server, runs_dir):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    seen = []
    result = run_load(http_server.url, shapes.constant(rate=20, duration=0.3), single("/"), runs_dir=runs_dir,
                      progress=False, announce=seen.append, collectors=[PySpyCollector(gone.pid)])
    err = json.loads((result.path / "meta.json").read_text())["collectors"]["py-spy"]["error"]
    assert f"py-spy could not profile PID {gone.pid}" in err
    assert "the load goes on" in err
    assert any("py-spy did not start" in line for line in seen)
    assert pl.read_parquet(result.path / "requests.parquet").height > 0


def test_collapsed_stacks_to_functions_and_speedscope(tmp_path):
    raw = tmp_path / "p.txt"
    raw.write_text("main (a.py:1);f (a.py:5) 3\nmain (a.py:1);g (a.py:9) 1\nmain (a.py:1) 1\n")
    stacks = read_collapsed(raw)
    assert stacks["samples"].to_list() == [3, 1, 1]
    top = top_functions(stacks).to_dicts()
    assert top[0]["frame"] == "f (a.py:5)" and top[0]["self_samples"] == 3
    main = next(r for r in top if r["frame"] == "main (a.py:1)")
    assert main["total_samples"] == 5 and main["self_samples"] == 1
    doc = json.loads(write_speedscope(stacks, tmp_path / "s.json").read_text())
    assert doc["profiles"][0]["weights"] == [3, 1, 1]
    assert [f["name"] for f in doc["shared"]["frames"]] == ["main (a.py:1)", "f (a.py:5)", "g (a.py:9)"]
