"""End to end: the demo target, served twice as built and once with a sleep added to one endpoint.

The slowed build is made without touching the demo's files: tests/data/importers/slow_demo.py builds
``perfbench.demo.create_app`` and appends an aiohttp middleware that sleeps 100 ms on ``/api/v2/posts``
(p50 a few ms) before the app starts; it serves in its own process on 127.0.0.1, port 0. perfbench's engine loads each server
with the same open-model plan; the comparison must flag that endpoint alone (exit code 10 and a JUnit
failure). A statistical test with a large effect, not a timing assertion. That the same build is not
a regression is asked of the paired A/B (``perfbench ab``), which shares the machine's noise between
the two sides.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from perfbench import compare as cmp
from perfbench import shapes
from perfbench.cli import main
from perfbench.compare import paired
from perfbench.experiments.ab import run_ab
from perfbench.load import run_load
from perfbench.scenario import Request, Scenario

pytestmark = pytest.mark.slow

SLOW_PATH = "/api/v2/posts"
SLOW_DEMO = Path(__file__).parent / "data" / "importers" / "slow_demo.py"
SCENARIO = Scenario(name="e2e", requests=[
    Request("health", "GET", "/health", auth=False),
    Request("posts_eager", "GET", f"{SLOW_PATH}?limit=10", auth=False),
    Request("posts_naive", "GET", "/api/posts?limit=3", auth=False),
])


class DemoProcess:
    """The (slowed) demo in its own process, as users run it: the load generator does not share its GIL.

    Started from tests/data/importers/slow_demo.py (``--delay-ms 0``: the build as it is); its URL is read
    from its first line; stopped by its PID (ours), with a lifetime limit as a backstop.
    """

    def __init__(self, db_path, delay_ms: float, when: Path):
        self.proc = subprocess.Popen(
            [sys.executable, str(SLOW_DEMO), "--db-path", str(db_path), "--path", SLOW_PATH,
             "--delay-ms", str(delay_ms), "--when", str(when), "--max-seconds", "120"], stdout=subprocess.PIPE,
            text=True)
        line = self.proc.stdout.readline()  # blocks until it listens (or exits)
        if "http://" not in line:
            self.stop()
            raise RuntimeError(f"the demo did not start: {line!r}")
        self.url = line.split()[-1]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, demo_db_copy):
    """Three runs against one demo process: the build twice, then slowed (its switch file created).

    One process for both builds, so that the only difference between them is the sleep: two processes of
    the same build differ by more than 10% at times on a shared machine (caches, memory layout), which
    is a real difference the statistics would rightly report.
    """
    root = tmp_path_factory.mktemp("e2e")
    switch = root / "slow-now"
    server = DemoProcess(demo_db_copy(), 100, switch)
    out = {}
    try:
        run_load(server.url, shapes.constant(50, 1.0), SCENARIO, runs_dir=root / "warmup", progress=False,
                 announce=lambda line: None)
        plan = shapes.constant(50, 5.0)  # light: the server is far from saturation
        for name in ("a", "b", "slowed"):
            if name == "slowed":
                switch.touch()
            out[name] = run_load(server.url, plan, SCENARIO, runs_dir=root / "runs", label=name, progress=False,
                                 announce=lambda line: None).path
    finally:
        server.stop()
    return out


def test_the_slowed_endpoint_is_caught_alone(runs, tmp_path, capsys):
    """+100 ms on a 2-5 ms endpoint, judged at a 100% threshold: on this shared 2-CPU machine, the p50 of an
    unchanged endpoint was seen to step from 3.4 to 7.4 ms between (and within) runs of one build, so a 10%
    threshold would make this test's "alone" a coin toss; the sleep is a change of +2000%."""
    junit = tmp_path / "junit.xml"
    code = main(["compare", str(runs["a"]), str(runs["slowed"]), "--junit", str(junit), "--boot", "1000",
                 "--threshold", "100%", "--judge-noisy"])  # a busy machine would be refused; the effect is x20
    out = capsys.readouterr().out
    assert code == 10, out
    noisy = cmp.compare(cmp.load_side(runs["a"]), cmp.load_side(runs["slowed"]), n_boot=200).noisy
    assert ("NOISY, JUDGED ANYWAY" in out) is bool(noisy), out
    suite = ET.fromstring(junit.read_text())
    failed = {tc.get("classname") for tc in suite.iter("testcase") if tc.find("failure") is not None}
    assert failed == {"perfbench.compare.posts_eager"}, out
    c = cmp.compare(cmp.load_side(runs["a"]), cmp.load_side(runs["slowed"]), n_boot=1000)  # default 10%
    eager = {r.stat: r for r in c.rows if r.endpoint == "posts_eager"}
    assert eager["p50"].verdict == cmp.REGRESSION and eager["p50"].low > 5  # +100 ms on a few ms


@pytest.fixture(scope="module")
def same_build(tmp_path_factory, demo_db_copy):
    """The build as it is, in its own process (its switch file is never created)."""
    root = tmp_path_factory.mktemp("aa")
    server = DemoProcess(demo_db_copy(), 100, root / "never")
    try:
        yield server.url
    finally:
        server.stop()


def test_two_runs_of_the_same_build_are_not_a_regression(same_build, tmp_path):
    """The same build against itself, as a paired A/B (``perfbench ab``): whatever else the machine
    runs meanwhile, both sides share it block by block, so the verdict is neither a regression nor an
    improvement. Two separate runs compared with ``compare`` cannot promise that: a neighbour busy
    during one run only was seen to make the same build's p50 +146% (that is ``benchmarks/ab_noise.py``'s
    subject). Enough requests that a verdict was possible: every endpoint's p50 has an interval."""
    run_load(same_build, shapes.constant(50, 1.0), SCENARIO, runs_dir=tmp_path / "warmup", progress=False,
             announce=lambda line: None)
    result = run_ab(same_build, same_build, shapes.constant(90, 12.0), SCENARIO, block_s=0.5,
                    runs_dir=tmp_path / "runs", announce=None)
    ab = result.comparison
    text = paired.to_text(ab)
    assert ab.verdict not in (cmp.REGRESSION, cmp.IMPROVEMENT), text
    assert ab.exit_code == 0, text
    p50 = [r for r in ab.comparison.rows if r.stat == "p50"]
    assert len(p50) == 3 and all(r.low is not None for r in p50), text
