import json

import polars as pl
import pyarrow as pa
import pytest

from perfbench.analysis.results import Run
from perfbench.engine.recorder import FIELDS, Recorder
from perfbench.errors import RunDirError
from perfbench.rundir import (
    JOURNAL,
    REQUEST_SCHEMA,
    REQUESTS,
    SCHEMA_VERSION,
    Journal,
    RunDir,
    journal_to_parquet,
    redact,
)

F = len(FIELDS)  # the slots of one row in the recorder's flat list


def _fill(rec: Recorder, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        rec.add(i, "ep", "GET", i * 1000, i * 1000 + 10, i * 1000 + 500, 200, None, None, 12, None, 0)


def _new(tmp_path) -> RunDir:
    rd = RunDir.create(tmp_path, "r1")
    rd.write_meta({"target": "http://127.0.0.1:1", "scenario": {"login": {"json": {"password": "hunter2"}}}})
    return rd


def test_meta_round_trip_and_secret_redaction(tmp_path):
    rd = _new(tmp_path)
    meta = rd.meta()
    assert meta["schema_version"] == SCHEMA_VERSION and meta["run_id"] == "r1"
    assert meta["scenario"]["login"]["json"]["password"] == "***"
    assert "hunter2" not in (rd.path / "meta.json").read_text()


def test_redact_nested():
    assert redact({"a": [{"Authorization": "Bearer x"}], "api_key": "k", "ok": 1}) == \
        {"a": [{"Authorization": "***"}], "api_key": "***", "ok": 1}


def test_unknown_schema_version_is_refused_with_both_versions(tmp_path):
    rd = _new(tmp_path)
    meta = json.loads((rd.path / "meta.json").read_text())
    meta["schema_version"] = 99
    (rd.path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(RunDirError, match=r"schema_version 99.*reads 1"):
        Run.load(rd.path)


def test_journal_becomes_parquet_with_every_row(tmp_path):
    rd = _new(tmp_path)
    j = Journal(rd.path)
    rec = Recorder(j.write, flush_rows=100)
    _fill(rec, 250)
    rec.flush()
    j.close()
    assert journal_to_parquet(rd.path) == 250
    df = pl.read_parquet(rd.path / REQUESTS)
    assert df.height == 250 and not (rd.path / JOURNAL).exists()
    assert df["latency_ns"].to_list()[:2] == [500, 500] and df["service_ns"][0] == 490


def test_nanosecond_columns_are_delta_encoded_and_read_back_exactly(tmp_path):
    import random

    import pyarrow.parquet as pq

    rd = _new(tmp_path)
    j = Journal(rd.path)
    rec = Recorder(j.write, flush_rows=1000)
    rnd = random.Random(1)
    rows = []
    for i in range(3000):  # times that rise with jitter, latencies that jump (deltas of both signs)
        t = i * 1_000_000 + rnd.randrange(0, 900_000)
        row = (i, "ep", "GET", t, t + rnd.randrange(0, 10**6), t + rnd.randrange(10**6, 10**10),
               200, None, None, 12, None, 0)
        rec.add(*row)
        rows.append(row)
    rec.flush()
    j.close()
    journal_to_parquet(rd.path)
    meta = pq.ParquetFile(rd.path / REQUESTS).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    for col in ("request_id", "intended_ns", "start_ns", "end_ns", "latency_ns", "service_ns"):
        assert "DELTA_BINARY_PACKED" in meta.row_group(0).column(names.index(col)).encodings, col
    df = pl.read_parquet(rd.path / REQUESTS)
    assert df["start_ns"].to_list() == [r[4] for r in rows]
    assert df["latency_ns"].to_list() == [r[5] - r[3] for r in rows]


def test_crash_keeps_every_flushed_batch(tmp_path):
    """A kill -9 mid-run: the journal is cut in the middle of a batch; every complete batch stays."""
    rd = _new(tmp_path)
    j = Journal(rd.path)
    rec = Recorder(j.write, flush_rows=100)
    _fill(rec, 300)  # three complete batches on disk
    size_after_three = (rd.path / JOURNAL).stat().st_size
    _fill(rec, 100, start=300)  # a fourth batch...
    # ...torn in half by the crash (no close, no end-of-stream marker)
    with open(rd.path / JOURNAL, "r+b") as f:
        f.truncate(size_after_three + 200)
    run = Run.load(rd.path)
    assert run.meta["end_reason"] == "crashed"
    assert run.requests.collect().height == 300


def test_corrupt_parquet_is_a_clear_error(tmp_path):
    rd = _new(tmp_path)
    (rd.path / REQUESTS).write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(RunDirError, match="not a readable Parquet file"):
        Run.load(rd.path)


def test_missing_directory_and_meta(tmp_path):
    with pytest.raises(RunDirError, match="no such run directory"):
        Run.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="no meta.json"):
        Run.load(tmp_path / "empty")


def test_create_refuses_an_existing_run(tmp_path):
    _new(tmp_path)
    with pytest.raises(RunDirError, match="already exists"):
        RunDir.create(tmp_path, "r1")


def test_recorder_schema_matches_contract(tmp_path):
    got = []
    rec = Recorder(got.append, worker=3)
    rec.add(1, "a", "GET", 0, 5, 9, None, "connect", "ConnectionRefusedError", 0, None, 2)
    rec.flush()
    b = got[0]
    assert isinstance(b, pa.RecordBatch)
    row = b.to_pylist()[0]
    assert row["worker"] == 3 and row["status"] is None and row["error"] == "connect" and row["stage"] == 2


def test_recorder_converting_in_slices_gives_the_same_batches(monkeypatch):
    from perfbench.engine import recorder as recmod

    monkeypatch.setattr(recmod, "CHUNK_ROWS", 7)
    whole, sliced = [], []
    a, b = Recorder(whole.append, flush_rows=50), Recorder(sliced.append, flush_rows=50)
    for i in range(123):
        err = "timeout" if i % 11 == 0 else None
        for rec in (a, b):
            rec.record((i, rec.endpoint("ep", "GET"), i * 1000, i * 1000 + 10, i * 1000 + 500, None if err else 200,
                        err, "read timeout" if err else None, 12, 12, -1, -1, None, i % 3))
        if i % 5 == 0:
            b.convert_some()  # what the engine does on its ticks
            assert b.rows == a.rows == i + 1 and b.pending == i + 1 - b.flushed_rows
            assert len(b._flat) < 7 * F and b._converted == b.pending - len(b._flat) // F  # whole slices converted
        if a.due:
            a.flush()
        if b.due:
            b.flush()
    a.flush()
    b.flush()
    assert [x.num_rows for x in whole] == [x.num_rows for x in sliced] == [50, 50, 23]
    assert pa.Table.from_batches(whole).equals(pa.Table.from_batches(sliced))
    assert b._chunks == [] and b.pending == 0 and b.rows == 123


def test_recorder_interval_quantiles_are_the_ranks_progress_shows():
    import random

    rng = random.Random(7)
    for n in [1, 2, 3, 10, 99, 100, 101, 2500]:
        vals = [rng.randint(0, 10**9) if rng.random() < 0.9 else rng.choice([5, 7]) for _ in range(n)]
        rec = Recorder(lambda b: None, interval=True)
        for i, v in enumerate(vals):
            rec.record((i, rec.endpoint("e", "GET"), 0, 0, v, 200, "timeout" if i % 4 == 0 else None, None, 1, 1, -1, -1,
                        None, 0))
        rec.flush()
        got_n, got, errors = rec.take_interval()
        s = sorted(vals)
        assert got_n == n and got == [s[min(n - 1, int(p * n))] / 1e6 for p in (0.5, 0.95, 0.99)]
        assert errors == {"timeout": (n + 3) // 4}
        assert rec.take_interval() == (0, [None, None, None], {})  # taken: the next interval starts empty


def test_recorder_rows_come_back_exactly_with_their_endpoint_names_and_methods(monkeypatch):
    """Rows recorded by index (the hot path) and by name (add) come back field for field; two
    endpoints may share a name with different methods."""
    from perfbench.engine import recorder as recmod

    monkeypatch.setattr(recmod, "CHUNK_ROWS", 4)
    got = []
    rec = Recorder(got.append, worker=2, flush_rows=1000)
    eps = [("items", "GET"), ("items", "POST"), ("login", "POST")]
    want = []
    for i in range(23):
        name, method = eps[i % 3]
        status, err, detail = (None, "timeout", "read timeout") if i % 5 == 0 else (200 + i % 2, None, None)
        row = (10**12 + i, 10**10 + i, 10**10 + 2 * i + 7, 10**10 + 3 * i + 99, status, err, detail, i * 3,
               (i if i % 2 else None), i % 4)
        rid, intended, start, end, status, err, detail, nbytes, vu, stage = row
        wire, ttfb, connect = nbytes + 1, (-1, -2, 5)[i % 3], (-1, -2, 7)[i % 3]  # markers and values
        if i % 2:
            rec.add(row[0], name, method, *row[1:], wire=wire, ttfb_ns=None if ttfb == -2 else ttfb, connect=connect)
        else:
            rec.record((rid, rec.endpoint(name, method), intended, start, end, status, err, detail, nbytes, wire, ttfb,
                        connect, vu, stage))
        if i % 6 == 0:
            rec.convert_some()
        want.append({"request_id": rid, "endpoint": name, "method": method, "intended_ns": intended,
                     "start_ns": start, "end_ns": end, "latency_ns": end - intended, "service_ns": end - start,
                     "status": status, "error": err, "error_detail": detail, "bytes": nbytes, "wire_bytes": wire,
                     "worker": 2, "vu": vu, "stage": stage, "connect_ns": None if connect < 0 else connect,
                     "ttfb_ns": {-1: end - start, -2: None}.get(ttfb, ttfb),
                     "reused": {-1: True, -2: None}.get(connect, False),
                     "redirects": 0 if i != 4 else 2, "final_path": "/x" if i == 4 else None,
                     "flow": "f" if i == 9 else None, "flow_run": 77 if i == 9 else None,
                     "step": 3 if i == 9 else None, "user_class": "u" if i == 9 else None})
    rec.note_redirect(10**12 + 4, 2, "/x")  # noted after its row: still this batch's
    rec.note_flow(10**12 + 9, "f", 77, 3, "u")  # a flow's step: its flow, run, place and user class
    rec.note_redirect(10**12 + 7, 0, "/no")  # no redirect: nothing noted
    rec.flush()
    assert len(got) == 1 and got[0].schema.equals(REQUEST_SCHEMA) and got[0].to_pylist() == want


def test_the_summary_of_the_rows_in_memory_is_the_summary_of_the_file(tmp_path):
    """The engine hands the rows it just converted to the summary (no second read of the file):
    the same summary as one computed from requests.parquet."""
    from perfbench.rundir import convert_journal

    rd = _new(tmp_path)
    rd.update_meta(engine_stats={"planned": 500, "capped": 3, "max_in_flight": 10}, elapsed_s=2.0,
                   shape={"model": "open"})
    j = Journal(rd.path)
    rec = Recorder(j.write, flush_rows=128)
    for i in range(500):
        err = "timeout" if i % 37 == 0 else None
        rec.add(i, ("a", "b", "c")[i % 3], "GET", i * 10**6, i * 10**6 + i % 7 * 1000, i * 10**6 + (i * 7919) % 10**7,
                None if err else 200 + (i % 2) * 304, err, "read timeout" if err else None, 11, None, i % 2)
    rec.flush()
    j.close()
    table = convert_journal(rd.path)
    assert table.num_rows == 500 and not (rd.path / JOURNAL).exists()
    run = Run.load(rd.path)
    assert run.compute_summary(table) == run.compute_summary()
    assert set(run.compute_summary(table)["endpoints"]) == {"a", "b", "c"}
