"""Run directories are never damaged by reading them: a live run is read without being touched,
a corrupt file is reported (exit 3, one line naming it) and left as it is, and a run that cannot
write its directory stops sending and says so."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from perfbench import cli, shapes
from perfbench.analysis.results import Run
from perfbench.engine import session as engine_session
from perfbench.engine.recorder import Recorder
from perfbench.errors import RunDirError
from perfbench.load import run_load
from perfbench.rundir import (
    JOURNAL,
    LOCK,
    META,
    REQUESTS,
    SUMMARY,
    Journal,
    RunDir,
    WriterLock,
    convert_journal,
    writer_alive,
)


def start_cli_run(url: str, runs_dir: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "perfbench", "run", url, "--rate", "100", "--duration", "60", "--path", "/",
           "--runs-dir", str(runs_dir), "--quiet"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_rows(runs_dir: Path, proc: subprocess.Popen, timeout: float = 30) -> Path:
    """Wait until the run has flushed at least one batch to its journal (flushes are once a second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        dirs = [d for d in runs_dir.glob("*") if (d / JOURNAL).exists()]
        if dirs and (dirs[0] / JOURNAL).stat().st_size > 4096:
            return dirs[0]
        time.sleep(0.05)  # polling a file another process writes; not a timing assumption
    raise AssertionError("the run never flushed")


def _finished_run(root: Path, name: str = "r1", rows: int = 50) -> Path:
    """A finished run directory (meta, requests.parquet, summary.json), made without sending load."""
    rd = RunDir.create(root, name)
    rd.write_meta({"target": "http://127.0.0.1:1", "end_reason": "completed", "elapsed_s": 1.0,
                   "shape": {"model": "open"}, "parameters": {}})
    j = Journal(rd.path)
    rec = Recorder(j.write, flush_rows=20)
    for i in range(rows):
        rec.add(i, "ep", "GET", i * 1000, i * 1000 + 10, i * 1000 + 500, 200, None, None, 12, None, 0)
    rec.flush()
    j.close()
    convert_journal(rd.path)
    Run.load(rd.path).write_summary()
    return rd.path


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# --- a live run is read, never touched ---------------------------------------------------------------


def test_summary_of_a_live_run_reads_it_without_touching_it_and_the_run_ends_intact(http_server, tmp_path):
    proc = start_cli_run(http_server.url, tmp_path)
    try:
        run_dir = wait_for_rows(tmp_path, proc)
        assert writer_alive(run_dir)
        names_before = sorted(p.name for p in run_dir.iterdir())
        out = subprocess.run([sys.executable, "-m", "perfbench", "summary", str(run_dir)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "in progress" in out.stdout
        seen = int(out.stdout.split("run in progress: ")[1].split()[0])
        assert seen > 0
        run = Run.load(run_dir)  # the notebook path: Run.load on a live run
        assert run.live and run.requests.collect().height >= seen
        with pytest.raises(RunDirError, match="in progress"):
            run.write_summary()
        # nothing was converted, removed or marked: the writer still owns its journal
        assert sorted(p.name for p in run_dir.iterdir()) == names_before
        assert json.loads((run_dir / META).read_text())["end_reason"] is None
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    done = Run.load(run_dir)
    assert done.meta["end_reason"] == "terminated" and not done.live
    assert done.requests.collect().height >= seen  # every row the reader saw is still there
    assert not (run_dir / JOURNAL).exists() and not (run_dir / LOCK).exists()


def test_a_live_run_in_this_process_counts_as_alive_and_a_dead_writer_does_not(tmp_path):
    (tmp_path / "live").mkdir()
    with WriterLock(tmp_path / "live"):
        assert writer_alive(tmp_path / "live")
    assert not writer_alive(tmp_path / "live")  # released: the lock is gone
    # a lock left by a process that has exited (and been reaped)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    lock = {"pid": child.pid, "start": "1", "host": socket.gethostname(), "heartbeat_s": 1.0}
    (tmp_path / "dead").mkdir()
    (tmp_path / "dead" / LOCK).write_text(json.dumps(lock))
    assert not writer_alive(tmp_path / "dead")
    # this pid, but another process's start time: the pid was reused
    (tmp_path / "reused").mkdir()
    (tmp_path / "reused" / LOCK).write_text(json.dumps({**lock, "pid": os.getpid(), "start": "-1"}))
    assert not writer_alive(tmp_path / "reused")
    # another host: alive while its heartbeat is fresh, dead once it is stale
    (tmp_path / "remote").mkdir()
    remote = tmp_path / "remote" / LOCK
    remote.write_text(json.dumps({**lock, "host": "elsewhere.invalid"}))
    assert writer_alive(tmp_path / "remote")
    old = time.time() - 3600
    os.utime(remote, (old, old))
    assert not writer_alive(tmp_path / "remote")


def test_a_crashed_run_is_recovered_once_its_writer_is_dead(tmp_path):
    rd = RunDir.create(tmp_path, "r")
    rd.write_meta({"target": "http://127.0.0.1:1"})
    j = Journal(rd.path)
    rec = Recorder(j.write, flush_rows=10)
    for i in range(30):
        rec.add(i, "ep", "GET", i, i, i + 5, 200, None, None, 1, None, 0)
    rec.flush()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    (rd.path / LOCK).write_text(json.dumps({"pid": child.pid, "start": "1", "host": socket.gethostname()}))
    run = Run.load(rd.path)
    assert run.meta["end_reason"] == "crashed" and run.requests.collect().height == 30
    assert not (rd.path / LOCK).exists() and not (rd.path / JOURNAL).exists()


def test_a_crashed_run_in_a_read_only_directory_is_read_as_it_is(tmp_path, monkeypatch):
    rd = RunDir.create(tmp_path, "r")
    rd.write_meta({"target": "http://127.0.0.1:1"})
    j = Journal(rd.path)
    rec = Recorder(j.write, flush_rows=10)
    for i in range(20):
        rec.add(i, "ep", "GET", i, i, i + 5, 200, None, None, 1, None, 0)
    rec.flush()
    before = _snapshot(rd.path)

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("perfbench.rundir.journal_to_parquet", read_only)
    run = Run.load(rd.path)
    assert run.note and "read as it is" in run.note and run.requests.collect().height == 20
    assert _snapshot(rd.path) == before


# --- corrupt files: exit 3, one line naming the file, left as they are -------------------------------

GARBAGE = bytes(range(256)) * 16


def _parquet_with_other_columns(path: Path) -> None:
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), path)


def _parquet_with_wrong_types(path: Path) -> None:
    t = pq.read_table(path)
    pq.write_table(t.set_column(t.schema.get_field_index("latency_ns"), "latency_ns",
                                pa.array([str(v) for v in t["latency_ns"].to_pylist()])), path)


CORRUPTIONS = {
    "journal random bytes": (JOURNAL, lambda p: p.write_bytes(GARBAGE)),
    "journal emptied": (JOURNAL, lambda p: p.write_bytes(b"")),
    "journal of other columns": (JOURNAL, lambda p: _write_stream(p, pa.table({"x": [1]}))),
    "meta a list": (META, lambda p: p.write_text("[1, 2, 3]")),
    "meta binary": (META, lambda p: p.write_bytes(GARBAGE)),
    "meta truncated": (META, lambda p: p.write_text(p.read_text()[:40])),
    "meta emptied": (META, lambda p: p.write_text("")),
    "meta future schema": (META, lambda p: p.write_text(json.dumps({**json.loads(p.read_text()),
                                                                   "schema_version": 99}))),
    "meta wrong types": (META, lambda p: p.write_text(json.dumps({**json.loads(p.read_text()),
                                                                 "parameters": [1], "elapsed_s": "x"}))),
    "parquet random bytes": (REQUESTS, lambda p: p.write_bytes(GARBAGE)),
    "parquet truncated": (REQUESTS, lambda p: p.write_bytes(p.read_bytes()[:300])),
    "parquet emptied": (REQUESTS, lambda p: p.write_bytes(b"")),
    "parquet other columns": (REQUESTS, _parquet_with_other_columns),
    "parquet wrong types": (REQUESTS, _parquet_with_wrong_types),
    "summary a list": (SUMMARY, lambda p: p.write_text("[]")),
    "summary wrong shape": (SUMMARY, lambda p: p.write_text(json.dumps({"endpoints": 5, "overall": []}))),
    "summary wrong values": (SUMMARY, lambda p: p.write_text(json.dumps(
        {"endpoints": {"a": {"count": "many", "latency_ms": {"p50": "fast"}}}, "overall": {}}))),
    "summary binary": (SUMMARY, lambda p: p.write_bytes(GARBAGE)),
    "summary future schema": (SUMMARY, lambda p: p.write_text(json.dumps({**json.loads(p.read_text()),
                                                                         "schema_version": 7}))),
}


def _write_stream(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_stream(f, table.schema) as w:
        w.write_table(table)


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_corrupt_file_is_exit_3_naming_it_and_is_left_as_it_is(tmp_path, capsys, case):
    name, damage = CORRUPTIONS[case]
    run_dir = _finished_run(tmp_path)
    if name == JOURNAL:  # a journal is only read when there is no requests.parquet (a crashed run)
        (run_dir / REQUESTS).unlink()
        (run_dir / SUMMARY).unlink()
        (run_dir / JOURNAL).write_bytes(b"")
    damage(run_dir / name)
    before = _snapshot(run_dir)
    for argv in (["summary", str(run_dir)], ["compare", str(run_dir), str(run_dir)],
                 ["experiment", "explore", "-p", "run_dir", str(run_dir), "--reports-dir", str(tmp_path / "rep")]):
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code == 3, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and name in lines[0] and "Traceback" not in err, (argv, err)
        assert _snapshot(run_dir) == before, argv  # never deleted, never rewritten, nothing added
    with pytest.raises(RunDirError, match=name.replace(".", r"\.")):
        Run.load(run_dir).summary()


def test_summary_recompute_rewrites_a_damaged_summary_from_the_rows(tmp_path, capsys):
    run_dir = _finished_run(tmp_path)
    (run_dir / SUMMARY).write_text("[]")
    assert cli.main(["summary", str(run_dir), "--recompute"]) == 0
    assert json.loads((run_dir / SUMMARY).read_text())["overall"]["count"] == 50


# --- a run that cannot write its run directory stops sending and says so ----------------------------


class _FailingFile:
    """A file whose writes fail with ENOSPC once ``budget`` bytes were written (a disk that fills)."""

    def __init__(self, path: Path, budget: int):
        self._f = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self.budget = budget
        self.failed_at: float | None = None
        self.closed = False

    def write(self, data) -> int:
        n = len(memoryview(data).cast("B"))
        if n > self.budget:
            self.failed_at = self.failed_at or time.monotonic()
            raise OSError(errno.ENOSPC, "No space left on device")
        self.budget -= n
        return self._f.write(data)

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self.closed = True
        self._f.close()

    def tell(self) -> int:
        return self._f.tell()

    def writable(self) -> bool:
        return True


def test_a_journal_write_that_fails_stops_the_load_and_keeps_what_was_recorded(http_server, tmp_path, monkeypatch):
    files: list[_FailingFile] = []

    class FullDiskJournal(Journal):
        def _open(self, path):
            files.append(_FailingFile(path, budget=2048))
            return files[-1]

    monkeypatch.setattr(engine_session, "Journal", FullDiskJournal)
    started = time.monotonic()
    with pytest.raises(RunDirError, match="No space left on device.*stopped after") as info:
        run_load(http_server.url, shapes.constant(200, 30), runs_dir=tmp_path, run_id="full", progress=False)
    took = time.monotonic() - started
    assert took < 15, took  # a 30 s plan: it stopped, it did not load the target blind
    assert files[0].failed_at is not None
    meta = json.loads((tmp_path / "full" / META).read_text())
    assert meta["end_reason"] == "write_failed" and "No space left" in meta["write_error"]
    # the rows recorded in memory after the failure were saved at the end (here the disk only failed the journal)
    rows = pq.read_table(tmp_path / "full" / REQUESTS).num_rows
    assert rows >= meta["engine_stats"]["sent"] > 0 and "all" in str(info.value)
    assert not list((tmp_path / "full").glob("*.tmp"))


def test_a_run_whose_directory_is_removed_stops_sending(http_server, tmp_path):
    removed: list[float] = []

    def progress(p):
        if not removed:
            shutil.rmtree(tmp_path / "gone")
            removed.append(time.monotonic())

    with pytest.raises(RunDirError, match="was removed.*stopped after"):
        run_load(http_server.url, shapes.constant(100, 30), runs_dir=tmp_path, run_id="gone", progress=progress)
    assert removed and time.monotonic() - removed[0] < 10  # the lock's heartbeat noticed within a second or two


def _mount_tmpfs(path: Path, size: str) -> bool:
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("mount"):
        return False
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def test_a_full_disk_stops_the_run_with_exit_3_and_leaves_no_tmp_files(http_server, tmp_path, capsys):
    small = tmp_path / "small"
    if not _mount_tmpfs(small, "256k"):
        pytest.skip("mounting a small tmpfs needs root and mount(8); the full disk is covered by the "
                    "fault-injection test above")
    try:
        started = time.monotonic()
        code = cli.main(["run", http_server.url, "--rate", "2000", "--duration", "30", "--runs-dir", str(small),
                         "--quiet", "--path", "/"])
        took = time.monotonic() - started
        err = capsys.readouterr().err
        assert code == 3, err
        assert "No space left on device" in err and "Traceback" not in err
        assert took < 20, took
        assert not list(small.rglob("*.tmp"))
    finally:
        subprocess.run(["umount", str(small)], check=False)
