"""A/B runs in segments: the services restarted between them, started first in turn, so the offset
between two processes (the one started first runs slower) cancels; units never span two segments."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import polars as pl
import psutil
import pytest

from perfbench import shapes
from perfbench.analysis.results import Run
from perfbench.cli import main
from perfbench.compare import paired
from perfbench.compare.paired import BASELINE, CANDIDATE, paired_compare, units
from perfbench.errors import ConfigError
from perfbench.experiments.ab import restart_order, run_ab, segment_starts, start_order
from tests.test_ab import PINNABLE, free_port, rows_from


def test_segments_are_whole_quartets_of_about_equal_length():
    assert segment_starts(120, 1) == [0]
    assert segment_starts(120, 2) == [0, 60]
    assert segment_starts(120, 4) == [0, 30, 60, 90]
    assert segment_starts(10, 2) == [0, 6] or segment_starts(10, 2) == [0, 4]  # 5 pairs a side: a quartet edge
    assert all(f % 2 == 0 for f in segment_starts(10, 2))
    assert segment_starts(3, 2) == [0, 2]  # too short for quartets: whole pairs
    for bad in (0, -1, 1.5):
        with pytest.raises(ConfigError, match="whole number"):
            segment_starts(10, bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="4 segments need at least 4 pairs"):
        segment_starts(3, 4)


def test_each_side_is_started_first_in_every_other_segment():
    first = start_order(0)
    orders = [restart_order(first, k) for k in range(4)]
    assert orders[0] == orders[2] == first and orders[1] == orders[3] == first[::-1]
    assert sum(o[0] == BASELINE for o in orders) == 2


def test_units_never_hold_pairs_of_two_segments():
    counts = [(k, 3, 3) for k in range(8)]  # 3 requests a side a pair: a unit of 6 needs two pairs
    assert units(counts, 6) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    seg = {k: 0 if k < 3 else 1 for k in range(8)}  # pairs 0-2, then 3-7 after a restart
    got = units(counts, 6, seg)
    assert got == [[0, 1, 2], [3, 4], [5, 6, 7]]
    assert all(len({seg[p] for p in u}) == 1 for u in got)
    short = {k: 0 if k < 7 else 1 for k in range(8)}  # a last segment too short for a unit joins the one before
    assert units(counts, 6, short) == [[0, 1], [2, 3], [4, 5, 6, 7]]
    first = {k: 0 if k < 1 else 1 for k in range(8)}  # a first one too short joins the one after: nothing lost
    assert units(counts, 6, first) == [[0, 1, 2], [3, 4], [5, 6, 7]]


def with_segments(rows: pl.DataFrame, first_pair_of_second: int) -> pl.DataFrame:
    return rows.with_columns(segment=pl.when(pl.col("block") // 2 >= first_pair_of_second).then(1).otherwise(0)
                             .cast(pl.Int16))


def test_an_offset_between_processes_cancels_over_both_start_orders():
    """No change in the code, but each segment's pair of processes differs by 3% (the one started first is
    slower, and the order is reversed in the second segment): the estimate lies near 1, the interval
    covers 1; the same offset in one segment only is what a single pair of processes would show."""
    rng = np.random.default_rng(7)
    pairs, offset = 60, math.log(1.03)
    lat = {}
    for k in range(pairs):
        shared = rng.uniform(0, 0.5)
        sign = 1 if k < pairs // 2 else -1  # candidate started first, then the baseline
        for side in (BASELINE, CANDIDATE):
            shift = sign * offset if side == CANDIDATE else 0.0
            lat[(k, side)] = np.exp(rng.normal(math.log(3.0) + shared + shift, 0.05, 40))
    rows = with_segments(rows_from(lat), pairs // 2)
    ab = paired_compare(rows, stats=("p50",))
    (row,) = ab.comparison.rows
    assert row.low is not None and row.high is not None
    assert row.low <= 1.0 <= row.high and abs(math.log(row.ratio)) < offset / 2, paired.to_text(ab)
    one = paired_compare(rows.filter(pl.col("segment") == 0), stats=("p50",)).comparison.rows[0]
    assert one.low is not None and one.low > 1.0  # one pair of processes: the offset looks like a change
    frame = paired.unit_frame(rows, "p50")
    assert frame["segment"].to_list() == sorted(frame["segment"].to_list()) and set(frame["segment"]) == {0, 1}


def test_run_ab_restarts_between_segments_and_the_plan_waits(ab_servers, tmp_path):
    """run_ab with segments=2: restart(1) is called once between the halves; every row carries its
    segment, the plan's time runs on across the pause (no arrival is planned during it, none lost) and the
    design records each segment's start order and pause."""
    fast, slow = ab_servers
    calls = []

    def restart(segment: int) -> list[str]:
        calls.append(segment)
        return [CANDIDATE, BASELINE]

    result = run_ab(fast, slow, shapes.constant(80, 4), block_s=0.25, runs_dir=tmp_path, announce=None,
                    segments=2, restart=restart, started=[BASELINE, CANDIDATE])
    assert calls == [1]
    df = Run.load(result.path).requests.collect()
    assert df.height == 320
    seg = df.group_by("segment").agg(pl.col("block").min().alias("lo"), pl.col("block").max().alias("hi"),
                                     pl.col("intended_ns").min().alias("t0"), pl.col("intended_ns").max().alias("t1"))
    seg = {r["segment"]: r for r in seg.iter_rows(named=True)}
    assert seg[0]["hi"] < seg[1]["lo"] == 8 and seg[1]["hi"] == 15  # 8 pairs: pairs 0-3, then 4-7
    assert seg[0]["t1"] < seg[1]["t0"] == 2_000_000_000 and seg[1]["t1"] < 4_000_000_000
    meta = json.loads((result.path / "meta.json").read_text())["ab"]
    assert [s["started"] for s in meta["segments"]] == [[BASELINE, CANDIDATE], [CANDIDATE, BASELINE]]
    assert meta["segments"][1]["first_pair"] == 4 and meta["segments"][1]["pause_s"] >= 0
    assert result.comparison.verdict == paired.REGRESSION
    assert "in 2 segments, both services restarted" in paired.to_text(result.comparison)
    assert not any("one pair of processes" in n for n in result.comparison.comparison.notes)


def test_one_segment_of_two_targets_says_the_offset_is_not_in_the_interval(ab_servers, tmp_path):
    fast, slow = ab_servers
    result = run_ab(fast, slow, shapes.constant(80, 2), block_s=0.25, runs_dir=tmp_path, announce=None)
    assert any("one pair of processes" in n and "--segments" in n for n in result.comparison.comparison.notes)
    with pytest.raises(ConfigError, match="segments > 1 restart the services"):
        run_ab(fast, slow, shapes.constant(80, 2), runs_dir=tmp_path, announce=None, segments=2)


def test_ab_restarts_both_started_services_midway_in_the_other_order(tmp_path, capsys):
    """The default with both --*-start: two segments; four processes started (two per segment, the second
    segment's in the reverse order), every one stopped after; rows on both sides of both segments."""
    script = tmp_path / "svc.py"
    script.write_text(PINNABLE)
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    code = main(["ab", *urls, "--baseline-start", f"{sys.executable} {script} {ports[0]}",
                 "--candidate-start", f"{sys.executable} {script} {ports[1]}", "--seed", "3",
                 "--rate", "40", "--duration", "2", "--path", "/cpus", "--runs-dir", str(tmp_path / "runs"),
                 "--threshold", "50%"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    lines = [line for line in err.splitlines() if line.startswith("started the")]
    started = [line.split()[2].rstrip(":") for line in lines]
    first = list(start_order(3))
    assert started == first + first[::-1]
    assert "restarting both services" in err and "in 2 segments" in out
    pids = [int(line.split("pid ")[1].split(",")[0]) for line in lines]
    assert len(set(pids)) == 4
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    (run_dir,) = (tmp_path / "runs").iterdir()
    df = Run.load(run_dir).requests.collect()
    assert df.height == 80 and df.group_by("segment", "side").len().height == 4


@pytest.mark.parametrize("argv, says", [
    (["--segments", "2"], "--segments 2 restarts the services between segments: give both --baseline-start"),
    (["--segments", "3", "--baseline-start", "true", "--candidate-start", "true"], "1 or an even number"),
    (["--segments", "0"], "argument --segments: must be from 1"),
    (["--duration", "0.5", "--baseline-start", "true", "--candidate-start", "true"],
     "2 segments need at least 2 pairs of blocks; the run has 1"),
])
def test_ab_refuses_segments_it_cannot_run(argv, says, tmp_path, capsys):
    try:
        code = main(["ab", "http://127.0.0.1:1", "http://127.0.0.1:2", *argv, "--runs-dir", str(tmp_path)])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and says in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_the_ratio_chart_marks_where_the_services_were_restarted():
    from perfbench.report import charts
    from perfbench.report.charts.ab import restart_times

    units = pl.DataFrame({"endpoint": ["e"] * 4, "unit": [0, 1, 2, 3], "segment": [0, 0, 1, 1],
                          "t_s": [0.0, 1.0, 2.0, 3.0], "pairs": [1] * 4, "baseline_ms": [2.0, 2.1, 2.0, 2.2],
                          "candidate_ms": [2.2, 2.3, 2.1, 2.4], "ratio": [1.1, 1.095, 1.05, 1.09], "stat": ["p50"] * 4})
    assert restart_times(units)["t_s"].to_list() == [2.0]
    assert restart_times(units.drop("segment")).height == 0
    assert restart_times(units.with_columns(segment=pl.lit(0))).height == 0
    chart = charts.ab_ratio_over_time(units)
    spec = json.dumps(chart.to_dict())
    assert "both services restarted" in spec and "restarted 1 time (dotted" in spec
    assert "restarted" not in json.dumps(charts.ab_ratio_over_time(units.drop("segment")).to_dict())


ONCE = """\
import os, sys
marker = sys.argv[2]
if os.path.exists(marker):
    sys.exit("this build starts only once")
open(marker, "w").close()
""" + PINNABLE


def test_a_service_that_fails_to_restart_ends_the_run_with_the_blocks_sent_judged(tmp_path, capsys):
    """The candidate does not come up for the second segment: exit 4 in one line naming the failure, and the
    first segment's rows, summary and verdict are in the run directory."""
    ok, once = tmp_path / "svc.py", tmp_path / "once.py"
    ok.write_text(PINNABLE)
    once.write_text(ONCE)
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    code = main(["ab", *urls, "--baseline-start", f"{sys.executable} {ok} {ports[0]}",
                 "--candidate-start", f"{sys.executable} {once} {ports[1]} {tmp_path / 'marker'}",
                 "--rate", "40", "--duration", "4", "--path", "/cpus", "--runs-dir", str(tmp_path / "runs"),
                 "--start-timeout", "20"])
    out, err = capsys.readouterr()
    assert code == 4, out + err
    assert "perfbench: restarting the services failed: the service exited with code 1 before it was ready" in err
    assert "Traceback" not in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    df = Run.load(run_dir).requests.collect()
    assert df.height == 80 and set(df["segment"]) == {0}  # the first half: 2 s at 40 req/s
    assert json.loads((run_dir / "ab.json").read_text())["pairs"] == 4
    assert "ended early (restarting the services failed" in out


CWD_SERVER = PINNABLE.replace('''        cpus = set()
        for tid in os.listdir("/proc/self/task"):
            cpus |= os.sched_getaffinity(int(tid))
        body = ",".join(map(str, sorted(cpus))).encode()''', '''        body = os.getcwd().encode()''')


def test_each_started_service_runs_in_its_own_directory(tmp_path, capsys):
    """--baseline-cwd / --candidate-cwd: two builds in two directories (git worktrees), each service started in
    its own, also after the restart between segments; a directory's name is what each side answers."""
    script = tmp_path / "svc.py"
    script.write_text(CWD_SERVER)
    base, cand = tmp_path / "base", tmp_path / "candidate-tree"
    base.mkdir(), cand.mkdir()
    ports = [free_port(), free_port()]
    code = main(["ab", *(f"http://127.0.0.1:{p}" for p in ports),
                 "--baseline-start", f"{sys.executable} {script} {ports[0]}", "--baseline-cwd", str(base),
                 "--candidate-start", f"{sys.executable} {script} {ports[1]}", "--candidate-cwd", str(cand),
                 "--rate", "40", "--duration", "2", "--runs-dir", str(tmp_path / "runs"), "--threshold", "50%"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert err.count(f"in {base}, log") == 2 and err.count(f"in {cand}, log") == 2
    (run_dir,) = (tmp_path / "runs").iterdir()
    got = Run.load(run_dir).requests.collect().group_by("side", "segment").agg(pl.col("bytes").unique())
    for side, _segment, sizes in got.iter_rows():
        assert list(sizes) == [len(str(base if side == BASELINE else cand))]


def test_a_directory_for_a_service_perfbench_does_not_start_is_refused(tmp_path, capsys):
    urls = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert main(["ab", *urls, "--candidate-cwd", str(tmp_path), "--runs-dir", str(tmp_path / "r")]) == 2
    assert "--candidate-cwd is where perfbench runs --candidate-start: give --candidate-start too" in \
        capsys.readouterr().err
    assert main(["ab", *urls, "--baseline-start", "true", "--baseline-cwd", str(tmp_path / "nope"),
                 "--runs-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"--baseline-cwd '{tmp_path / 'nope'}': not a directory" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
