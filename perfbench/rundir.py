"""The run directory: the versioned contract between the measuring half and the analysing half.

Layout of ``data/runs/<run-id>/`` (schema version 1)::

    meta.json          what ran: schema_version, run id, target, scenario and shape as given
                       (secrets redacted), parameters, start and end, how it ended, versions, machine;
                       ``warmup`` (None, or seconds/requests as asked and ``until_ns``: the rows with
                       an earlier intended_ns are the warm-up, left out of every figure)
    requests.parquet   one row per request (REQUEST_SCHEMA), row groups of at most ROW_GROUP_ROWS
    requests.arrows    the journal while the run goes on (Arrow IPC stream, one batch per flush);
                       turned into requests.parquet when the run ends. After a crash (kill -9) it
                       is what remains: every flushed batch is readable and ``recover`` converts it.
    summary.json       per endpoint and overall: counts, throughput, exact percentiles, errors; with
                       queries.parquet, ``sql`` (analysis.results.sql_summary): statements per request
                       by endpoint, N+1 patterns, unattributed statements; ``machine``: the machine's
                       other load (analysis.machine)
    machine.parquet    once a second, the machine's CPU counters, this process tree's CPU and the load
                       average, with other processes' cores derived (engine.machine, every run)
    writer.lock        while the run goes on: the writer's pid, its process's start time and host;
                       its mtime is a heartbeat, refreshed every second (see WriterLock). Readers
                       leave a run whose writer is alive untouched; only a dead writer's journal is
                       recovered.
    resources.parquet, queries.parquet, memory/   written by the profilers when they run
    queries.parquet    server-side SQL, one row per statement (perfbench.agent.AgentCollector):
                       request_id (null: outside a request or a malformed header, see
                       request_id_status), endpoint (the server's route), fingerprint, statement
                       (redacted: no literal or parameter value), duration_ns, t_ns (statement start
                       on the requests' time base, via the agent's measured clock offset), source, error,
                       call_site and call_function (the service's code that issued it: sampled once per
                       fingerprint per endpoint, null on the other rows)
    cache.parquet      cache events, one row each: request_id, request_id_status, endpoint, kind
                       (hit/miss; ``command`` for a Redis command that is neither), name, t_ns, source
                       (app: reported with cache_hit/cache_miss; redis: a hooked client's command),
                       command, key (redacted), duration_ns (null for app events)
    downstream.parquet the service's outbound HTTP calls (aiohttp, httpx), one row each: request_id,
                       request_id_status, endpoint, method, host, path (a template), status, t_ns,
                       duration_ns, error (the exception's class name)
    server_requests.parquet  the agent's timing of each request it handled (perfbench.agent.timing):
                       request_id, request_id_status, endpoint, t_ns (handler start), wall_ns, cpu_ns
                       (sync handlers), gc_ns, gc_pauses, lag_ns (asyncio: the loop blocked), mode,
                       pool_ns (waited for a SQLAlchemy pool's connection; null from an older agent)
    loop_blocks.parquet  the asyncio service's event loop blocked 5 ms or more: t_ns (start), duration_ns
    gauges.parquet     the service's pools and queues sampled every 100 ms (perfbench.agent.pools): t_ns,
                       name (pool.checked_out_max, pool.capacity, pool.wait_ms, loop.ready...), target, value

A micro-benchmark run (``perfbench.bench``, meta.json ``kind: bench``) holds meta.json, summary.json and
``rounds.parquet`` (BENCH_SCHEMA, one row per measured round) instead of the request files.

All times in requests.parquet are integer nanoseconds from the run's start (a monotonic clock);
``meta.json["start_unix_ns"]`` anchors them to wall-clock time.

Why a journal and not Parquet directly: a Parquet file is unreadable without its footer, which
is written last, so a Parquet file written as the run goes is lost entirely on kill -9. An Arrow
IPC stream is readable up to its last complete batch.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from .errors import RunDirError
from .redaction import redact_url
from .version import __version__

SCHEMA_VERSION = 2
FLOW_METHOD = "FLOW"  # the method of a flow's own row (endpoint ``flow:<name>``): not a request
READ_VERSIONS = (1, 2)  # version 1: requests.parquet without wire_bytes, connect_ns, ttfb_ns, reused
ROW_GROUP_ROWS = 256 * 1024

META = "meta.json"
REQUESTS = "requests.parquet"
JOURNAL = "requests.arrows"
SUMMARY = "summary.json"
QUERIES = "queries.parquet"
CACHE = "cache.parquet"
SERVER_REQUESTS = "server_requests.parquet"
LOOP_BLOCKS = "loop_blocks.parquet"
GAUGES = "gauges.parquet"
RESOURCES = "resources.parquet"  # the target's resources over time (perfbench.profilers.resources)
DOWNSTREAM = "downstream.parquet"
LOCK = "writer.lock"
HEARTBEAT_S = 1.0  # the writer refreshes its lock's mtime this often
STALE_S = 10.0  # a lock from another host belongs to a live writer while its heartbeat is younger than this

# Error kinds, the vocabulary of the ``error`` column (null: no error).
# timeout: no answer in time (the detail names the phase); connect: refused or unreachable; dns: the
# name does not resolve; tls: handshake or certificate; reset: closed or reset before a response;
# incomplete: the body cut short (closed before its Content-Length or its last chunk; status kept);
# too_large: a body over max_body or a head over 64 KiB (status kept for a body); protocol: malformed
# HTTP or a corrupt compressed body; http_4xx / http_5xx: a status the scenario did not accept;
# check: a failed response check; redirect: a redirect not followed (off loopback, over the limit); aborted: still in flight when the run stopped; client: any other
# exception in the client; slow: a response that was otherwise a success, slower than its request's
# max_latency (latency from the intended send time; status kept).
ERROR_KINDS = ("timeout", "connect", "dns", "tls", "reset", "incomplete", "too_large", "protocol", "http_4xx",
               "http_5xx", "check", "redirect", "aborted", "client", "slow")

REQUEST_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.int64(), nullable=False),  # also sent as the X-Request-Id header
        pa.field("endpoint", pa.string(), nullable=False),  # the scenario's request name
        pa.field("method", pa.string(), nullable=False),
        pa.field("intended_ns", pa.int64(), nullable=False),  # when the plan said to send it
        pa.field("start_ns", pa.int64(), nullable=False),  # when it was really sent
        pa.field("end_ns", pa.int64(), nullable=False),  # response read in full, or the error
        pa.field("latency_ns", pa.int64(), nullable=False),  # end - intended: coordinated-omission correct
        pa.field("service_ns", pa.int64(), nullable=False),  # end - start
        pa.field("status", pa.int16()),  # HTTP status, null without a response
        pa.field("error", pa.string()),  # null, or one of ERROR_KINDS
        pa.field("error_detail", pa.string()),  # a short reason (exception class, failed check)
        pa.field("bytes", pa.int64(), nullable=False),  # response body bytes received, decoded
        pa.field("wire_bytes", pa.int64(), nullable=False),  # the same body as it came (before decoding)
        pa.field("worker", pa.int16(), nullable=False),  # load-generator worker (shard)
        pa.field("vu", pa.int32()),  # virtual user (closed model), null in the open model
        pa.field("stage", pa.int16(), nullable=False),  # index of the load shape's stage
        pa.field("connect_ns", pa.int64()),  # the new connection's connect; null on a reused one (or none)
        pa.field("ttfb_ns", pa.int64()),  # from the send to the first byte of the response; null: no byte
        pa.field("reused", pa.bool_()),  # sent on a kept-alive connection; null: no connection was made
        pa.field("redirects", pa.int16(), nullable=False),  # redirects followed (the row is the whole chain)
        pa.field("final_path", pa.string()),  # where the chain ended (null: no redirect followed)
        # user journeys (scenario_flows): the flow this row belongs to (null: drawn on its own), the
        # id of that run of the flow (its own row's request_id), the row's place in it (0, 1, ...;
        # the flow's own row: how many steps were sent) and the user class that sent it
        pa.field("flow", pa.string()),
        pa.field("flow_run", pa.int64()),
        pa.field("step", pa.int32()),
        pa.field("user_class", pa.string()),
    ]
)

# A micro-benchmark run (meta.json ``kind: bench``, written by perfbench.bench): one row per measured round
# in rounds.parquet; no requests.parquet. summary.json holds each benchmark's statistics and cost per call.
BENCH_ROUNDS = "rounds.parquet"
BENCH_KIND = "bench"
BENCH_SCHEMA = pa.schema(
    [
        pa.field("benchmark", pa.string(), nullable=False),  # its name (a pytest test id, or the name given)
        pa.field("param", pa.string()),  # the parameter as JSON (null: not parametrized)
        pa.field("worker", pa.int16(), nullable=False),  # the worker process (0: measured in the main process)
        pa.field("round", pa.int32(), nullable=False),  # index among the benchmark's measured rounds
        pa.field("start_ns", pa.int64(), nullable=False),  # the round's start, ns from the run's start
        pa.field("loops", pa.int64(), nullable=False),  # calls in the round
        pa.field("per_call_ns", pa.float64(), nullable=False),  # the round's time divided by its loops
    ]
)

SECRET_KEYS = re.compile(r"pass(word)?|secret|token|authorization|api[_-]?key|cookie|credential", re.I)


def new_run_id(label: str = "run") -> str:
    """A sortable, unique run id: ``20261121-143012-load_test-9f2c``."""
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "run"
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{label}-{secrets.token_hex(2)}"


def redact(value: Any) -> Any:
    """A copy of ``value`` with the values of secret-looking keys replaced by ``"***"``, and so are
    the credentials and secret query parameters of every URL in its strings."""
    if isinstance(value, dict):
        return {k: ("***" if SECRET_KEYS.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):  # URL credentials and secret query parameters (a target, a path)
        return redact_url(value)
    return value


def machine_info() -> dict[str, Any]:
    """What a comparison needs to know about where a run ran (pytest-benchmark's machine_info)."""
    return {
        "perfbench": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "node": socket.gethostname(),
        "cpu_count": os.cpu_count(),
    }


def git_commit(path: str | os.PathLike[str] | None = None) -> str | None:
    """The git commit of the code at ``path`` (the code under test), or None."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path or ".", capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically: a reader never sees half a file, and a failed write (a full disk)
    leaves no ``.tmp`` behind."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a run directory; RunDirError naming the file when it is missing, not
    JSON, not text or not an object."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path.parent}: no {path.name}; is this a perfbench run directory?") from None
    except IsADirectoryError:
        raise RunDirError(f"{path}: a directory, not a JSON file") from None
    except PermissionError:
        raise RunDirError(f"{path}: not readable (permission denied)") from None
    except UnicodeDecodeError:
        raise RunDirError(f"{path}: not a text file (binary content); left as it is") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); left as it is") from None
    except RecursionError:
        raise RunDirError(f"{path}: JSON nested too deeply; left as it is") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: a JSON {type(data).__name__}, not an object; left as it is")
    return data


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Journal:
    """Appends record batches to ``requests.arrows``; every flushed batch survives a crash.

    A write that fails (a full disk, an I/O error) does not raise into the engine: the journal
    keeps that batch and every later one in memory (``unwritten``), writes nothing more to the
    file (a stream cut mid-batch is readable only up to the cut), and calls ``on_fail`` once with
    the error, so the run stops sending. The run then saves what it can (see ``convert_journal``).
    ``schema``: REQUEST_SCHEMA, or it with columns appended (an A/B run's ``side`` and ``block``).
    """

    def __init__(self, run_dir: Path, on_fail: Callable[[OSError], None] | None = None,
                 schema: pa.Schema = REQUEST_SCHEMA):
        self.path = run_dir / JOURNAL
        self.on_fail = on_fail
        self.failed: OSError | None = None
        self.unwritten: list[pa.RecordBatch] = []
        self._file = self._open(self.path)
        self._writer = ipc.new_stream(self._file, schema)
        self.rows = 0

    def _open(self, path: Path) -> Any:
        """The file the stream goes to (a seam: tests hand in a file whose writes fail)."""
        return open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()

    def write(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        if self.failed is None:
            try:
                self._writer.write_batch(batch)
                return
            except OSError as exc:
                self.failed = exc
                if self.on_fail is not None:
                    self.on_fail(exc)
        self.unwritten.append(batch)

    def close(self) -> None:
        """End the stream and close the file; a failure here is kept in ``failed`` too."""
        try:
            if self.failed is None:
                self._writer.close()
        except OSError as exc:
            self.failed = exc
        finally:
            with contextlib.suppress(OSError):
                self._file.close()


def check_journal(path: Path) -> None:
    """RunDirError, naming the file, unless ``path`` is a journal of requests: an Arrow IPC stream
    (possibly torn after its last complete batch, as a crash leaves it) of REQUEST_SCHEMA."""
    try:
        with pa.memory_map(str(path)) as source:
            schema = ipc.open_stream(source).schema
    except (pa.ArrowInvalid, OSError) as exc:
        if path.exists() and path.stat().st_size == 0:
            raise RunDirError(f"{path}: empty; the run stopped before it recorded anything, or the file was "
                              f"emptied; left as it is") from None
        raise RunDirError(f"{path}: not an Arrow IPC stream of requests ({str(exc).splitlines()[0][:120]}); "
                          f"left as it is") from None
    if not schema.equals(REQUEST_SCHEMA):
        raise RunDirError(f"{path}: an Arrow stream with other columns than a request journal "
                          f"({', '.join(schema.names[:8])}); left as it is")


def read_journal(path: Path) -> tuple[list[pa.RecordBatch], bool]:
    """Every complete batch of a journal, and whether the stream ended cleanly."""
    batches: list[pa.RecordBatch] = []
    try:
        reader = ipc.open_stream(pa.memory_map(str(path)))
    except (pa.ArrowInvalid, OSError):
        return batches, False  # killed before the schema was written: nothing to keep
    try:
        for batch in reader:
            batches.append(batch)
    except (pa.ArrowInvalid, OSError):
        return batches, False
    return batches, True


# dictionary encoding pays for repeated values (names, statuses, error kinds); on the nanosecond
# columns, which hardly repeat, it only spends time hashing (~40% of the write) and gives up
DICTIONARY_COLUMNS = [f.name for f in REQUEST_SCHEMA if not (pa.types.is_integer(f.type) and f.type.bit_width == 64)
                      and not pa.types.is_boolean(f.type)] + ["bytes", "wire_bytes"]
# the nanosecond columns are stored as deltas (DELTA_BINARY_PACKED: ids and times rise almost
# monotonically, latencies vary little): on 600k rows the write takes ~40% less CPU and the file
# is ~25% smaller than with plain encoding; every Parquet reader (pyarrow, polars, DuckDB) reads it
DELTA_COLUMNS = [f.name for f in REQUEST_SCHEMA if f.name not in DICTIONARY_COLUMNS and pa.types.is_integer(f.type)]
PARQUET_OPTIONS = {"compression": "zstd", "use_dictionary": DICTIONARY_COLUMNS,
                   "column_encoding": dict.fromkeys(DELTA_COLUMNS, "DELTA_BINARY_PACKED")}


def journal_to_parquet(run_dir: Path) -> int:
    """Convert the journal into requests.parquet (row groups) and remove it; the row count."""
    rows: int = convert_journal(run_dir).num_rows
    return rows


def convert_journal(run_dir: Path, extra: list[pa.RecordBatch] | tuple[()] = ()) -> pa.Table:
    """:func:`journal_to_parquet`, returning the rows it wrote (their buffers map the removed
    journal: the summary reads them from memory instead of decoding the Parquet file again).
    ``extra``: batches the journal could not write (``Journal.unwritten``), appended after its own.
    On failure (a full disk) the journal is left as it was and no ``.tmp`` stays behind."""
    journal = run_dir / JOURNAL
    batches, _clean = read_journal(journal)
    tmp = run_dir / (REQUESTS + ".tmp")
    schema = batches[0].schema if batches else REQUEST_SCHEMA  # a version-1 journal keeps its columns
    table = pa.Table.from_batches([*batches, *extra], schema=schema)
    options = dict(PARQUET_OPTIONS, use_dictionary=[c for c in DICTIONARY_COLUMNS if c in schema.names],
                   column_encoding={c: "DELTA_BINARY_PACKED" for c in DELTA_COLUMNS if c in schema.names})
    try:
        with pq.ParquetWriter(tmp, schema, **options) as writer:
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        os.replace(tmp, run_dir / REQUESTS)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    journal.unlink(missing_ok=True)
    return table


def read_live(run_dir: Path) -> pa.Table:
    """The complete batches of a run's journal, read without touching it (a run in progress)."""
    journal = run_dir / JOURNAL
    if journal.stat().st_size == 0:  # the stream's schema is written with its first batch
        return REQUEST_SCHEMA.empty_table()
    check_journal(journal)
    batches, _clean = read_journal(journal)
    return pa.Table.from_batches(batches, schema=REQUEST_SCHEMA)


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, from /proc), or None when it is
    gone or a zombie; "" when /proc cannot say (not Linux) but the process exists."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except FileNotFoundError:
        return None
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    if fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode()


class WriterLock:
    """Held by the process writing a run: ``writer.lock`` with its pid, its start time and host.

    The lock file's mtime is a heartbeat, refreshed every HEARTBEAT_S by a daemon thread (so a
    busy event loop does not make it look dead). When the refresh fails (the run directory was
    removed, the file system went away), ``on_lost`` is called once, from that thread, with the
    reason. :func:`writer_alive` is how readers tell a live run from a crashed one."""

    def __init__(self, run_dir: Path, on_lost: Callable[[str], None] | None = None):
        self.path = run_dir / LOCK
        self.on_lost = on_lost
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> WriterLock:
        pid = os.getpid()
        write_json(self.path, {"pid": pid, "start": _process_start(pid), "host": socket.gethostname(),
                               "heartbeat_s": HEARTBEAT_S})
        self._thread = threading.Thread(target=self._beat, name="perfbench-writer-lock", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError as exc:
                gone = not self.path.parent.exists()
                self.lost = (f"the run directory {self.path.parent} was removed" if gone
                             else f"cannot refresh {self.path} ({exc.strerror or exc})")
                if self.on_lost is not None:
                    self.on_lost(self.lost)
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def writer_alive(run_dir: Path) -> bool:
    """Whether the process that writes ``run_dir`` is still running it (see WriterLock).

    Same host: its pid exists and is the same process (its start time matches; a zombie is
    dead). Another host (a shared file system): its heartbeat is younger than STALE_S. No lock:
    no live writer. A lock that cannot be read or parsed counts as live while it is fresh."""
    path = run_dir / LOCK
    try:
        age = time.time() - path.stat().st_mtime
        info = json.loads(path.read_bytes())
        pid, start, host = int(info["pid"]), info.get("start"), str(info["host"])
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return age < STALE_S if "age" in locals() else True
    if host != socket.gethostname():
        return age < STALE_S
    now = _process_start(pid)
    if now is None:
        return False
    return not start or not now or now == start


@dataclass(frozen=True)
class RunDir:
    """A run directory on disk; creates, finishes and validates it."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, root: str | os.PathLike[str], run_id: str) -> RunDir:
        path = Path(root) / run_id
        try:
            path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise RunDirError(f"{path} already exists; choose another run id") from None
        except OSError as exc:  # a read-only file system, a file where a directory should be, a full disk
            raise RunDirError(f"cannot create the run directory {path}: {exc.strerror or exc}; give a writable "
                              f"directory with --runs-dir") from None
        return cls(path)

    def write_meta(self, meta: dict[str, Any]) -> None:
        meta = {"schema_version": SCHEMA_VERSION, "run_id": self.run_id, **redact(meta)}
        write_json(self.path / META, meta)

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        meta = read_json(self.path / META)
        meta.update(redact(changes))
        write_json(self.path / META, meta)
        return meta

    def meta(self) -> dict[str, Any]:
        meta = read_json(self.path / META)
        version = meta.get("schema_version")
        if version not in READ_VERSIONS:
            raise RunDirError(
                f"{self.path / META}: schema_version {version!r} is not one this perfbench ({__version__}) reads "
                f"(it reads {', '.join(map(str, READ_VERSIONS))}); open it with the perfbench version that wrote it"
            )
        wrong = [f"{key} is a {type(meta[key]).__name__}, not {what}" for key, types, what in _META_FIELDS
                 if meta.get(key) is not None and (not isinstance(meta[key], types) or isinstance(meta[key], bool))]
        if wrong:
            raise RunDirError(f"{self.path / META}: not the meta.json of a run ({'; '.join(wrong)}); "
                              f"left as it is")
        return meta

    @property
    def in_progress(self) -> bool:
        """The run is still being written: its journal is there and its writer alive (WriterLock)."""
        return (self.path / JOURNAL).exists() and not (self.path / REQUESTS).exists() and writer_alive(self.path)

    def recover(self) -> bool:
        """If the run's writer died before it finished, turn its journal into requests.parquet.

        Returns True when something was recovered. The meta then says ``end_reason: crashed``.
        A run whose writer is alive is never touched (False); a journal that is not one raises
        RunDirError and is left as it is.
        """
        journal = self.path / JOURNAL
        if (self.path / REQUESTS).exists() or not journal.exists() or writer_alive(self.path):
            return False
        check_journal(journal)
        rows = journal_to_parquet(self.path)
        meta = read_json(self.path / META)
        if not meta.get("end_reason"):
            self.update_meta(end_reason="crashed", recovered_rows=rows, ended_at=None)
        with contextlib.suppress(OSError):
            (self.path / LOCK).unlink(missing_ok=True)
        return True


# what readers take from meta.json, with the types they need (None is always allowed)
_META_FIELDS: tuple[tuple[str, tuple[type, ...], str], ...] = (
    ("run_id", (str,), "a string"), ("target", (str,), "a string"), ("end_reason", (str,), "a string"),
    ("parameters", (dict,), "an object"), ("engine_stats", (dict,), "an object"), ("shape", (dict,), "an object"),
    ("scenario", (dict,), "an object"), ("engine", (dict,), "an object"), ("machine", (dict,), "an object"),
    ("elapsed_s", (int, float), "a number"), ("start_unix_ns", (int,), "an integer"),
    ("kind", (str,), "a string"), ("experiment", (dict,), "an object"), ("verdict", (dict,), "an object"),
)

