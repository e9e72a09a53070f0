"""The engine against the bundled demo target, run as perfbench runs it: a child process."""

import polars as pl
import pytest

from perfbench import shapes
from perfbench.analysis.results import Run
from perfbench.demo.process import DemoProcess
from perfbench.demo.scenario import demo_scenario
from perfbench.load import run_load

pytestmark = pytest.mark.slow


def test_demo_mix_against_the_demo_target(demo_target, tmp_path):
    res = run_load(demo_target.url, shapes.constant(60, 3), demo_scenario(), runs_dir=tmp_path, progress=False)
    df = Run.load(res.path).requests.collect()
    assert df.height == 180 and res.end_reason == "completed"
    # every request answered with a status the scenario accepts: 200/201, and 404 for foreign notifications
    assert df["error"].null_count() == 180, df.filter(pl.col("error").is_not_null()).head()
    statuses = set(df["status"].to_list())
    assert statuses <= {200, 201, 404} and 200 in statuses
    assert set(df.filter(pl.col("endpoint") == "create_notification")["status"]) == {201}
    assert (df["latency_ns"] >= df["service_ns"]).all()
    # the naive N+1 listing is slower than the eager one returning the same JSON
    p50 = dict(df.group_by("endpoint").agg(pl.col("service_ns").median()).iter_rows())
    assert p50["posts_naive"] > p50["posts_eager"]


def test_demo_process_stops_when_asked(seeded_demo_db):
    d = DemoProcess(db_path=seeded_demo_db, max_seconds=60)
    d.start()
    pid = d.pid
    d.stop()
    assert d.proc.poll() is not None and pid
