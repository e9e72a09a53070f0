"""The run directory: the versioned contract between the measuring half and the analysing half.

Layout of ``data/runs/<run-id>/`` (schema version 1)::

    meta.json          what ran: schema_version, run id, target, scenario and shape as given
                       (secrets redacted), parameters, start and end, how it ended, versions, machine
    requests.parquet   one row per request (REQUEST_SCHEMA), row groups of at most ROW_GROUP_ROWS
    requests.arrows    the journal while the run goes on (Arrow IPC stream, one batch per flush);
                       turned into requests.parquet when the run ends. After a crash (kill -9) it
                       is what remains: every flushed batch is readable and ``recover`` converts it.
    summary.json       per endpoint and overall: counts, throughput, exact percentiles, errors
    resources.parquet, queries.parquet, memory/   written by the profilers when they run
    queries.parquet    server-side SQL, one row per statement (perfbench.agent.AgentCollector):
                       request_id (null: outside a request or a malformed header, see
                       request_id_status), endpoint (the server's route), fingerprint, statement
                       (redacted: no literal or parameter value), duration_ns, t_ns (statement start
                       on the requests' time base, via the agent's measured clock offset), source, error
    cache.parquet      cache hits and misses the service reported to the agent, one row each:
                       request_id, request_id_status, endpoint, kind (hit/miss), name, t_ns

All times in requests.parquet are integer nanoseconds from the run's start (a monotonic clock);
``meta.json["start_unix_ns"]`` anchors them to wall-clock time.

Why a journal and not Parquet directly: a Parquet file is unreadable without its footer, which
is written last, so a Parquet file written as the run goes is lost entirely on kill -9. An Arrow
IPC stream is readable up to its last complete batch.
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import socket
import subprocess
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

SCHEMA_VERSION = 1
ROW_GROUP_ROWS = 256 * 1024

META = "meta.json"
REQUESTS = "requests.parquet"
JOURNAL = "requests.arrows"
SUMMARY = "summary.json"
QUERIES = "queries.parquet"
CACHE = "cache.parquet"

# Error kinds, the vocabulary of the ``error`` column (null: no error).
# timeout: no answer in time; connect: refused or unreachable; dns: the name does not resolve;
# tls: handshake or certificate; reset: closed or reset early; protocol: malformed HTTP;
# http_4xx / http_5xx: a status the scenario did not accept; check: a failed response check;
# aborted: still in flight when the run stopped; client: any other exception in the client.
ERROR_KINDS = ("timeout", "connect", "dns", "tls", "reset", "protocol", "http_4xx", "http_5xx", "check",
               "aborted", "client")

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
        pa.field("bytes", pa.int64(), nullable=False),  # response body bytes received
        pa.field("worker", pa.int16(), nullable=False),  # load-generator worker (shard)
        pa.field("vu", pa.int32()),  # virtual user (closed model), null in the open model
        pa.field("stage", pa.int16(), nullable=False),  # index of the load shape's stage
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
    """Write JSON atomically: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except FileNotFoundError:
        raise RunDirError(f"{path.parent}: no {path.name}; is this a perfbench run directory?") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Journal:
    """Appends record batches to ``requests.arrows``; every flushed batch survives a crash."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / JOURNAL
        self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self._writer = ipc.new_stream(self._file, REQUEST_SCHEMA)
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def close(self) -> None:
        self._writer.close()
        self._file.close()


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
DICTIONARY_COLUMNS = [f.name for f in REQUEST_SCHEMA
                       if not (pa.types.is_integer(f.type) and f.type.bit_width == 64)] + ["bytes"]
# the nanosecond columns are stored as deltas (DELTA_BINARY_PACKED: ids and times rise almost
# monotonically, latencies vary little): on 600k rows the write takes ~40% less CPU and the file
# is ~25% smaller than with plain encoding; every Parquet reader (pyarrow, polars, DuckDB) reads it
DELTA_COLUMNS = [f.name for f in REQUEST_SCHEMA if f.name not in DICTIONARY_COLUMNS]
PARQUET_OPTIONS = {"compression": "zstd", "use_dictionary": DICTIONARY_COLUMNS,
                   "column_encoding": dict.fromkeys(DELTA_COLUMNS, "DELTA_BINARY_PACKED")}


def journal_to_parquet(run_dir: Path) -> int:
    """Convert the journal into requests.parquet (row groups) and remove it; the row count."""
    rows: int = convert_journal(run_dir).num_rows
    return rows


def convert_journal(run_dir: Path) -> pa.Table:
    """:func:`journal_to_parquet`, returning the rows it wrote (their buffers map the removed
    journal: the summary reads them from memory instead of decoding the Parquet file again)."""
    journal = run_dir / JOURNAL
    batches, _clean = read_journal(journal)
    tmp = run_dir / (REQUESTS + ".tmp")
    table = pa.Table.from_batches(batches, schema=REQUEST_SCHEMA)
    with pq.ParquetWriter(tmp, REQUEST_SCHEMA, **PARQUET_OPTIONS) as writer:
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
    os.replace(tmp, run_dir / REQUESTS)
    journal.unlink()
    return table


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
        if version != SCHEMA_VERSION:
            raise RunDirError(
                f"{self.path}: schema_version {version!r} is not one this perfbench ({__version__}) reads "
                f"(it reads {SCHEMA_VERSION}); open it with the perfbench version that wrote it"
            )
        return meta

    def recover(self) -> bool:
        """If the run was killed before it finished, turn its journal into requests.parquet.

        Returns True when something was recovered. The meta then says ``end_reason: crashed``.
        """
        journal = self.path / JOURNAL
        if (self.path / REQUESTS).exists() or not journal.exists():
            return False
        rows = journal_to_parquet(self.path)
        meta = read_json(self.path / META)
        if not meta.get("end_reason"):
            self.update_meta(end_reason="crashed", recovered_rows=rows, ended_at=None)
        return True

