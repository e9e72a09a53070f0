"""`perfbench run FILE.py`: a callable target from the command line (the file defines ``calls``), with
``--capture`` joining each call's SQL to its row, and the options that make no sense for it refused."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from perfbench.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "orm_calls.py"


def test_a_python_file_of_async_functions_is_loaded_and_its_sql_joined_per_call(tmp_path: Path, capsys) -> None:
    code = main(["run", str(EXAMPLE), "--rate", "20", "--duration", "1.5", "--capture", "--quiet", "--json",
                 "--runs-dir", str(tmp_path)])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    (run,) = tmp_path.iterdir()
    rows = pl.read_parquet(run / "requests.parquet")
    assert len(rows) == 30 and set(rows["method"]) == {"CALL"}
    assert set(rows["endpoint"]) <= {"posts_naive", "posts_eager"} and rows["error"].null_count() == 30
    assert summary["overall"]["count"] == 30
    # every call's statements are attributed to its row: 1 + 2 x 20 for the naive listing, 2 for the eager one
    queries = pl.read_parquet(run / "queries.parquet")
    per_call = queries.filter(pl.col("request_id").is_not_null()).group_by("request_id").len()
    joined = rows.join(per_call, on="request_id", how="left")
    expected = {"posts_naive": 41, "posts_eager": 2}
    for endpoint, n in joined.select("endpoint", "len").iter_rows():
        assert n == expected[endpoint]
    assert sum(expected[e] for e in rows["endpoint"]) == per_call["len"].sum()


@pytest.mark.parametrize(("source", "extra", "says"), [
    ("x = 1\n", [], "must define `calls"),
    ("calls = 5\n", [], "`calls` must be an async function"),
    ("def f():\n    return 1\ncalls = f\n", [], "async function (async def)"),
    ("raise RuntimeError('boom')\n", [], "boom"),
    ("async def f():\n    return 1\ncalls = f\n", ["--agent", "--start", "x", "--workers", "2"],
     "--start, --agent, --workers: for an HTTP target"),
    ("async def f():\n    return 1\ncalls = f\nscenario = 3\n", [], "`scenario` must be a perfbench.scenario.Scenario"),
    ("async def f():\n    return 1\ncalls = f\n", ["--scenario", "demo"], "name no call of the target"),
])
def test_a_bad_callable_target_is_one_line_and_exit_2(tmp_path: Path, capsys, source: str, extra: list[str],
                                                       says: str) -> None:
    target = tmp_path / "calls.py"
    target.write_text(source)
    assert main(["run", str(target), "--duration", "1", "--runs-dir", str(tmp_path / "runs"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_capture_is_refused_for_an_http_target(tmp_path: Path, capsys) -> None:
    assert main(["run", "http://127.0.0.1:9", "--capture", "--duration", "1", "--runs-dir", str(tmp_path)]) == 2
    assert "--capture is for a callable target" in capsys.readouterr().err
