"""``perfbench summary RUN --csv PREFIX``: Locust's three CSV files, Locust's columns, perfbench's exact numbers."""

from __future__ import annotations

import csv
import json
import math

import polars as pl
import pytest

from perfbench import importers
from perfbench.cli import main
from perfbench.rundir import REQUESTS

# the columns locust.stats.StatsCSV writes (Locust 2.x, --csv), as its documentation lists them
LOCUST_STATS = ["Type", "Name", "Request Count", "Failure Count", "Median Response Time", "Average Response Time",
                "Min Response Time", "Max Response Time", "Average Content Size", "Requests/s", "Failures/s",
                "50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
LOCUST_HISTORY = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "50%", "66%", "75%", "80%",
                  "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%", "Total Request Count", "Total Failure Count",
                  "Total Median Response Time", "Total Average Response Time", "Total Min Response Time",
                  "Total Max Response Time", "Total Average Content Size"]
LOCUST_FAILURES = ["Method", "Name", "Error", "Occurrences"]
QS = {"50%": 0.5, "66%": 0.66, "75%": 0.75, "80%": 0.8, "90%": 0.9, "95%": 0.95, "98%": 0.98, "99%": 0.99,
      "99.9%": 0.999, "99.99%": 0.9999, "100%": 1.0}


@pytest.fixture(scope="module")
def run_dir(http_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("csvruns")
    assert main(["run", http_server.url, "--rate", "60", "--duration", "1.5", "--runs-dir", str(root), "--quiet",
                 "--path", "root=/", "--path", "bad=GET /status/503", "--path", "nap=GET /delay/15",
                 "--warmup", "300ms"]) == 0
    return next(root.iterdir())


def _read(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def _ms(ns):
    return round(ns / 1e6, 3)


def _pct(sorted_ns, p):
    return _ms(sorted_ns[max(math.ceil(float(len(sorted_ns)) * p), 1) - 1])


@pytest.fixture(scope="module")
def written(run_dir, tmp_path_factory):
    prefix = tmp_path_factory.mktemp("csv") / "perf"
    assert main(["summary", str(run_dir), "--csv", str(prefix)]) == 0
    return prefix


def test_the_stats_file_has_locusts_columns_and_numbers_recomputed_from_the_rows(run_dir, written):
    header, rows = _read(f"{written}_stats.csv")
    assert header == LOCUST_STATS
    meta = json.loads((run_dir / "meta.json").read_text())
    until = meta["warmup"]["until_ns"]
    span = meta["elapsed_s"] - until / 1e9
    raw = pl.read_parquet(run_dir / REQUESTS)
    measured = raw.filter(pl.col("intended_ns") >= until)
    assert measured.height < raw.height  # the warm-up is left out
    groups = {name: measured.filter(pl.col("endpoint") == name) for name in ("bad", "nap", "root")}
    assert [r["Name"] for r in rows] == ["bad", "nap", "root", "Aggregated"]  # sorted, as Locust's, then the total
    assert rows[-1]["Type"] == "" and [r["Type"] for r in rows[:-1]] == ["GET"] * 3
    for row in rows:
        df = measured if row["Name"] == "Aggregated" else groups[row["Name"]]
        lat = sorted(df["latency_ns"].to_list())
        n = len(lat)
        assert int(row["Request Count"]) == n
        assert int(row["Failure Count"]) == df["error"].is_not_null().sum()
        assert float(row["Median Response Time"]) == _pct(lat, 0.5)
        assert float(row["Average Response Time"]) == pytest.approx(sum(lat) / n / 1e6, abs=1e-3)
        assert float(row["Min Response Time"]) == _ms(lat[0]) and float(row["Max Response Time"]) == _ms(lat[-1])
        assert float(row["Average Content Size"]) == pytest.approx(df["bytes"].sum() / n, abs=1e-3)
        assert float(row["Requests/s"]) == pytest.approx(n / span, rel=1e-5)
        assert float(row["Failures/s"]) == pytest.approx(df["error"].is_not_null().sum() / span, rel=1e-5, abs=1e-6)
        for col, q in QS.items():
            assert float(row[col]) == _pct(lat, q), (row["Name"], col)
    by_name = {r["Name"]: r for r in rows}
    assert int(by_name["bad"]["Failure Count"]) == int(by_name["bad"]["Request Count"]) > 0
    # the same figures as summary.json (one computation)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert int(by_name["Aggregated"]["Request Count"]) == summary["overall"]["count"]
    assert float(by_name["root"]["99%"]) == round(summary["endpoints"]["root"]["latency_ms"]["p99"], 3)


def test_the_history_file_is_per_second_and_ends_at_the_totals(run_dir, written):
    header, rows = _read(f"{written}_stats_history.csv")
    assert header == LOCUST_HISTORY
    _, stats = _read(f"{written}_stats.csv")
    total = stats[-1]
    assert rows and all(r["Name"] == "Aggregated" and r["Type"] == "" for r in rows)
    last = rows[-1]
    for col in ("Total Request Count", "Total Failure Count"):
        assert int(last[col]) == int(total[col.removeprefix("Total ")])
    assert float(last["Total Median Response Time"]) == float(total["Median Response Time"])
    assert float(last["99%"]) == float(total["99%"])
    assert float(last["Total Max Response Time"]) == float(total["Max Response Time"])
    meta = json.loads((run_dir / "meta.json").read_text())
    measured = pl.read_parquet(run_dir / REQUESTS).filter(pl.col("intended_ns") >= meta["warmup"]["until_ns"])
    per_second = measured.group_by(pl.col("end_ns") // 1_000_000_000).len().sort("end_ns")
    assert [float(r["Requests/s"]) for r in rows if float(r["Requests/s"])] == per_second["len"].cast(float).to_list()
    counts = [int(r["Total Request Count"]) for r in rows]
    assert counts == sorted(counts) and sum(float(r["Requests/s"]) for r in rows) == counts[-1]
    stamps = [int(r["Timestamp"]) for r in rows]
    assert stamps == list(range(stamps[0], stamps[0] + len(stamps)))
    assert abs(stamps[0] - meta["start_unix_ns"] / 1e9) < 5


def test_the_failures_file_counts_each_error(run_dir, written):
    header, rows = _read(f"{written}_failures.csv")
    assert header == LOCUST_FAILURES
    _, stats = _read(f"{written}_stats.csv")
    assert sum(int(r["Occurrences"]) for r in rows) == int(stats[-1]["Failure Count"])
    assert {(r["Method"], r["Name"], r["Error"]) for r in rows} == {("GET", "bad", "http_5xx")}


def test_perfbenchs_own_locust_reader_reads_the_files(written):
    m = importers.load(f"{written}_stats.csv")
    assert m.source == "locust"
    _, stats = _read(f"{written}_stats.csv")
    got = {r["endpoint"]: r for r in m.summary.iter_rows(named=True)}
    for row in stats[:-1]:
        assert got[row["Name"]]["count"] == int(row["Request Count"])
        assert got[row["Name"]]["p95_ms"] == pytest.approx(float(row["95%"]))


def test_csv_into_a_directory_that_cannot_be_written_is_refused(run_dir, tmp_path, capsys):
    (tmp_path / "ro").write_text("a file, not a directory")
    assert main(["summary", str(run_dir), "--csv", str(tmp_path / "ro" / "perf")]) == 2
    assert "--csv" in capsys.readouterr().err


def test_prefix_ranks_are_the_sorted_prefixs(tmp_path):
    import random

    import numpy as np

    from perfbench.analysis.locust_csv import _PrefixRanks

    rng = random.Random(5)
    values = np.array([rng.choice([rng.randrange(1, 50), rng.randrange(1, 10**9)]) for _ in range(3000)], np.int64)
    ranks = _PrefixRanks(values)
    lo = 0
    while lo < values.size:
        hi = min(values.size, lo + rng.randrange(0, 400))
        ranks.grow(lo, hi)
        prefix = sorted(values[:hi].tolist())
        for p in (0.0, 0.5, 0.66, 0.99, 0.9999, 1.0):
            if hi:
                assert ranks.value(p) == prefix[max(math.ceil(float(hi) * p), 1) - 1]
        lo = hi


def test_a_run_whose_warmup_took_every_request_writes_empty_files(tmp_path):
    from perfbench.shapes.warmup import Warmup
    from tests.test_warmup import _synthetic

    path = _synthetic(tmp_path, Warmup.parse(1000).describe())
    assert main(["summary", str(path), "--csv", str(tmp_path / "x")]) == 0
    _, stats = _read(tmp_path / "x_stats.csv")
    assert [(r["Name"], r["Request Count"], r["50%"]) for r in stats] == [("Aggregated", "0", "N/A")]
    assert _read(tmp_path / "x_stats_history.csv")[1] == [] and _read(tmp_path / "x_failures.csv")[1] == []
