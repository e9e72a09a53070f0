"""The benchmark scripts that reach into the engine keep working as the engine changes."""

import os
import re
import subprocess
import sys

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
