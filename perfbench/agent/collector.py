"""The engine side of the agent: a Collector that fetches the agent's records into the run directory.

    from perfbench.agent import AgentCollector
    run_load(url, plan, scenario, collectors=[AgentCollector(token=token)])
    # -> <run>/queries.parquet (one row per SQL statement), <run>/cache.parquet (cache events) and
    #    <run>/downstream.parquet (the service's outbound HTTP calls), <run>/server_requests.parquet
    #    (each request's server time) and <run>/gauges.parquet (pools and queues over time)

``start`` checks the agent answers (and raises, so the run goes on without it and says why, if not),
measures the clock offset between the agent's process and this one, and resets the agent's
buffers, so the files hold exactly this run. While the load runs it drains the agent every
``poll_s`` seconds (the agent's memory stays bounded; batches go straight to Parquet, so does
ours). ``stop`` drains what is left and closes the files.

Time base: the agent stamps records with its own ``perf_counter_ns``. ``start`` reads the agent's
clock between two local readings and takes ``offset = agent - midpoint`` (on one Linux machine both
are CLOCK_MONOTONIC and the offset is about zero, within half the round trip, reported as
``clock_rtt_ns``). ``t_ns`` = agent time - offset - the run's t0: ns from the run's start, the
time base of requests.parquet (``RunContext.run_ns``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ConfigError, ProfilerError
from ..rundir import CACHE, DOWNSTREAM, GAUGES, LOOP_BLOCKS, QUERIES, SERVER_REQUESTS
from ..safety import check_target
from .core import DEFAULT_PREFIX, TOKEN_ENV, TOKEN_HEADER

if TYPE_CHECKING:
    import aiohttp

QUERY_SCHEMA = pa.schema([
    pa.field("request_id", pa.int64()),  # the X-Request-Id the engine sent; null when unattributed
    pa.field("request_id_status", pa.string(), nullable=False),  # ok | missing | malformed | outside
    pa.field("endpoint", pa.string()),  # server-side route, e.g. "GET /api/posts"; null outside requests
    pa.field("fingerprint", pa.string(), nullable=False),  # 16 hex digits, see perfbench.sqltext
    pa.field("statement", pa.string(), nullable=False),  # redacted text: no literal or parameter value
    pa.field("duration_ns", pa.int64(), nullable=False),
    pa.field("t_ns", pa.int64(), nullable=False),  # statement start, ns from the run's start
    pa.field("source", pa.string(), nullable=False),  # sqlalchemy | sqlite3 | asyncpg | psycopg | django
    pa.field("error", pa.bool_(), nullable=False),  # the statement raised
    # the service's code that issued it ("path/file.py:57", "function"): sampled on the first statement of
    # each fingerprint per endpoint, null on the others (and from an agent that does not sample)
    pa.field("call_site", pa.string()),
    pa.field("call_function", pa.string()),
])
CACHE_SCHEMA = pa.schema([
    pa.field("request_id", pa.int64()),
    pa.field("request_id_status", pa.string(), nullable=False),
    pa.field("endpoint", pa.string()),
    pa.field("kind", pa.string(), nullable=False),  # hit | miss | command (a Redis command that is neither)
    pa.field("name", pa.string()),  # what the service called the cache, if it said ("redis" for redis-py)
    pa.field("t_ns", pa.int64(), nullable=False),
    pa.field("source", pa.string(), nullable=False),  # app (cache_hit/cache_miss) | redis (a hooked client)
    pa.field("command", pa.string()),  # GET, MGET, SET, PIPELINE...; null for app events
    pa.field("key", pa.string()),  # redacted: id-like and long segments as ?
    pa.field("duration_ns", pa.int64()),  # the command's round trip; null for app events
])
DOWNSTREAM_SCHEMA = pa.schema([
    pa.field("request_id", pa.int64()),
    pa.field("request_id_status", pa.string(), nullable=False),
    pa.field("endpoint", pa.string()),
    pa.field("method", pa.string(), nullable=False),
    pa.field("host", pa.string(), nullable=False),  # host:port as the service called it
    pa.field("path", pa.string(), nullable=False),  # a template: id-like segments as {id}, no query
    pa.field("status", pa.int32()),  # null when the call failed before a response
    pa.field("t_ns", pa.int64(), nullable=False),  # the call's start, ns from the run's start
    pa.field("duration_ns", pa.int64(), nullable=False),
    pa.field("error", pa.string()),  # the exception's class name when it failed
])
SERVER_SCHEMA = pa.schema([  # one row per request the agent timed (perfbench.agent.timing)
    pa.field("request_id", pa.int64()),
    pa.field("request_id_status", pa.string(), nullable=False),
    pa.field("endpoint", pa.string()),
    pa.field("t_ns", pa.int64(), nullable=False),  # the handler's start, ns from the run's start
    pa.field("wall_ns", pa.int64(), nullable=False),  # the handler's wall time
    pa.field("cpu_ns", pa.int64()),  # CPU time of a synchronous handler's thread; null for asyncio
    pa.field("gc_ns", pa.int64(), nullable=False),  # garbage-collection pauses during the request
    pa.field("gc_pauses", pa.int64(), nullable=False),
    pa.field("lag_ns", pa.int64()),  # asyncio: the event loop blocked during the request; null for sync
    pa.field("mode", pa.string(), nullable=False),  # asyncio | sync
    pa.field("pool_ns", pa.int64()),  # waited for a SQLAlchemy pool's connection; null from an older agent
])
GAUGE_SCHEMA = pa.schema([  # pools and queues sampled during the run (perfbench.agent.pools)
    pa.field("t_ns", pa.int64(), nullable=False),  # when sampled, the run's time base
    pa.field("name", pa.string(), nullable=False),  # pool.checked_out_max, pool.capacity, pool.wait_ms, loop.ready...
    pa.field("target", pa.string(), nullable=False),  # which pool ("postgresql#1") or loop ("loop#1")
    pa.field("value", pa.float64(), nullable=False),
])
BLOCK_SCHEMA = pa.schema([  # the event loop blocked (perfbench.agent.timing.BLOCK_NS or more)
    pa.field("t_ns", pa.int64(), nullable=False),  # when the block began (the sampler's due time), run time base
    pa.field("duration_ns", pa.int64(), nullable=False),
])


class AgentCollector:
    """Collector (``perfbench.engine.collectors``) for a service running ``perfbench.agent``.

    - ``token``: the agent's token; ``url``: the service's base URL (default: the run's target);
    - ``poll_s``: drain interval during the run (None: only at the end); ``batch``: records per fetch;
    - ``timeout``: seconds per HTTP call; ``allow_hosts``: as for the engine (loopback otherwise).
    """

    name = "agent"

    def __init__(self, token: str, url: str | None = None, *, prefix: str = DEFAULT_PREFIX,
                 poll_s: float | None = 2.0, batch: int = 50_000, timeout: float = 10.0,
                 allow_hosts: tuple[str, ...] = ()):
        if not token:
            raise ConfigError("AgentCollector needs the agent's token")
        if poll_s is not None and poll_s <= 0:
            raise ConfigError(f"poll_s must be positive or None, got {poll_s}")
        if url is not None:  # refused here, before any run starts (the run's target is checked by run_load)
            check_target(url, allow_hosts)
        self._token = token
        self.url = url
        self.prefix = prefix
        self.poll_s = poll_s
        self.batch = batch
        self.timeout = timeout
        self.allow_hosts = allow_hosts
        self._session: aiohttp.ClientSession | None = None
        self._poller: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._run_dir: Path | None = None
        self.offset_ns = 0
        self.rtt_ns = 0
        self._local_start_ns = 0
        self.stats: dict[str, int] = {}
        self._timed = False  # the agent sent request timings (server_requests.parquet)
        self._gauged = False  # the agent sent gauges (gauges.parquet)

    def __repr__(self) -> str:
        return f"AgentCollector(url={self.url!r}, prefix={self.prefix!r})"

    async def _call(self, method: str, action: str, **params: Any) -> dict[str, Any]:
        assert self._session is not None
        url = f"{self.base}{self.prefix}/{action}"
        async with self._session.request(method, url, params=params or None,
                                         headers={TOKEN_HEADER: self._token}) as resp:
            text = await resp.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            if resp.status == 200 and isinstance(body, dict):
                return body
            if not isinstance(body, dict) or "error" not in body:  # the service's answer, not the agent's
                raise ProfilerError(
                    f"no perfbench agent answers at {url} (HTTP {resp.status}): is the agent in the service, "
                    f"with its endpoints on ({TOKEN_ENV} set in the service's environment)?")
            raise ProfilerError(f"agent at {url} answered HTTP {resp.status}: {body['error']}")

    async def start(self, ctx) -> None:  # noqa: ANN001
        import aiohttp

        self.base = check_target(self.url or ctx.target, self.allow_hosts)
        self._run_dir = Path(ctx.run_dir)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            best: tuple[int, int] | None = None
            for _ in range(3):  # keep the reading with the shortest round trip
                before = time.perf_counter_ns()
                status = await self._call("GET", "status")
                after = time.perf_counter_ns()
                if best is None or after - before < best[0]:
                    best = (after - before, status["clock_ns"] - (before + after) // 2)
            assert best is not None  # set by the first of the three readings
            self.rtt_ns, self.offset_ns = best
            if not status.get("capturing"):
                raise ProfilerError("the agent answers but is not capturing (was it installed?)")
            await self._call("POST", "reset")
        except Exception:
            await self._session.close()
            self._session = None
            raise
        self._local_start_ns = time.perf_counter_ns()
        self.stats = {"queries": 0, "cache_events": 0, "downstream_calls": 0, "dropped_queries": 0,
                      "dropped_cache": 0, "dropped_downstream": 0, "fetches": 0, "unattributed_queries": 0,
                      "timed_requests": 0, "dropped_timings": 0, "requests_seen": 0, "unattributed_requests": 0}
        if self.poll_s:
            self._poller = asyncio.create_task(self._poll(ctx, self.poll_s))

    async def _poll(self, ctx, every_s: float) -> None:  # noqa: ANN001
        while True:
            await asyncio.sleep(every_s)
            with contextlib.suppress(Exception):  # a failed poll is retried; stop() reports real failures
                await self._drain(ctx, max_rounds=1)

    async def _drain(self, ctx, max_rounds: int = 1000) -> None:  # noqa: ANN001
        async with self._lock:
            for _ in range(max_rounds):
                body = await self._call("POST", "records", limit=self.batch)
                self.stats["fetches"] += 1
                self._write(ctx, body)
                if not body.get("more"):
                    break

    def _t0(self, ctx) -> int:  # noqa: ANN001
        return ctx.t0_ns if ctx.t0_ns is not None else self._local_start_ns

    def _write(self, ctx, body: dict[str, Any]) -> None:  # noqa: ANN001
        queries, cache = records_to_tables(body, self.offset_ns + self._t0(ctx))
        if queries.num_rows:
            self._writer(QUERIES, QUERY_SCHEMA).write_table(queries)
            self.stats["queries"] += queries.num_rows
            self.stats["unattributed_queries"] += queries.column("request_id").null_count
        if cache.num_rows:
            self._writer(CACHE, CACHE_SCHEMA).write_table(cache)
            self.stats["cache_events"] += cache.num_rows
        downstream = downstream_table(body, self.offset_ns + self._t0(ctx))
        if downstream.num_rows:
            self._writer(DOWNSTREAM, DOWNSTREAM_SCHEMA).write_table(downstream)
            self.stats["downstream_calls"] += downstream.num_rows
        timed = body.get("requests")  # an agent without request timing sends none
        if timed is not None:
            table = server_requests_table(timed, self.offset_ns + self._t0(ctx))
            if table.num_rows:
                self._writer(SERVER_REQUESTS, SERVER_SCHEMA).write_table(table)
                self.stats["timed_requests"] += table.num_rows
            self.stats["dropped_timings"] += timed.get("dropped", 0)
            blocks = timed.get("blocks") or {"start_ns": [], "duration_ns": []}
            if blocks["start_ns"]:
                shift = self.offset_ns + self._t0(ctx)
                self._writer(LOOP_BLOCKS, BLOCK_SCHEMA).write_table(pa.table({
                    "t_ns": pa.array([t - shift for t in blocks["start_ns"]], pa.int64()),
                    "duration_ns": pa.array(blocks["duration_ns"], pa.int64())}, schema=BLOCK_SCHEMA))
                self.stats["loop_blocks"] = self.stats.get("loop_blocks", 0) + len(blocks["start_ns"])
            self._timed = True
        gauges = body.get("gauges")  # an agent without gauges sends none
        if gauges is not None:
            table = gauges_table(gauges, self.offset_ns + self._t0(ctx))
            if table.num_rows:
                self._writer(GAUGES, GAUGE_SCHEMA).write_table(table)
                self.stats["gauges"] = self.stats.get("gauges", 0) + table.num_rows
            self.stats["dropped_gauges"] = self.stats.get("dropped_gauges", 0) + gauges.get("dropped", 0)
            self._gauged = True
        self.stats["dropped_queries"] += body["dropped"]["queries"]
        self.stats["dropped_cache"] += body["dropped"]["cache"]
        self.stats["dropped_downstream"] += body["dropped"].get("downstream", 0)
        self.stats["requests_seen"] = body.get("requests_seen", 0)
        self.stats["unattributed_requests"] = body.get("unattributed_requests", 0)

    def _writer(self, name: str, schema: pa.Schema) -> pq.ParquetWriter:
        w = self._writers.get(name)
        if w is None:
            assert self._run_dir is not None
            w = self._writers[name] = pq.ParquetWriter(self._run_dir / (name + ".tmp"), schema,
                                                       compression="zstd")
        return w

    def _close_files(self) -> None:
        assert self._run_dir is not None
        files = [(QUERIES, QUERY_SCHEMA), (CACHE, CACHE_SCHEMA), (DOWNSTREAM, DOWNSTREAM_SCHEMA)]
        if self._timed or SERVER_REQUESTS in self._writers:  # only when the agent times requests
            files += [(SERVER_REQUESTS, SERVER_SCHEMA), (LOOP_BLOCKS, BLOCK_SCHEMA)]
        if self._gauged or GAUGES in self._writers:
            files.append((GAUGES, GAUGE_SCHEMA))
        for name, schema in files:
            w = self._writers.pop(name, None)
            if w is None:  # always leave the files, empty if nothing happened
                w = pq.ParquetWriter(self._run_dir / (name + ".tmp"), schema, compression="zstd")
            w.close()
            (self._run_dir / (name + ".tmp")).replace(self._run_dir / name)

    async def stop(self, ctx) -> dict[str, Any]:  # noqa: ANN001
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        try:
            await self._drain(ctx)
        finally:
            self._close_files()
            if self._session is not None:
                await self._session.close()
                self._session = None
        dropped = (self.stats["dropped_queries"] + self.stats["dropped_cache"] + self.stats["dropped_downstream"]
                   + self.stats["dropped_timings"] + self.stats.get("dropped_gauges", 0))
        files = [QUERIES, CACHE, DOWNSTREAM, *([SERVER_REQUESTS, LOOP_BLOCKS] if self._timed else []),
                 *([GAUGES] if self._gauged else [])]
        return {**self.stats, "files": files, "clock_offset_ns": self.offset_ns,
                "clock_rtt_ns": self.rtt_ns,
                **({"warning": f"the agent dropped {dropped} records (its buffer was full); "
                               "raise its capacity or poll more often"} if dropped else {})}


def records_to_tables(body: dict[str, Any], shift_ns: int = 0) -> tuple[pa.Table, pa.Table]:
    """The agent's drained records (``QueryLog.drain()`` or ``POST /_perfbench/records``) as
    ``(queries, cache)`` Arrow tables with QUERY_SCHEMA / CACHE_SCHEMA; ``t_ns`` = agent time - shift_ns.
    Records of an older agent (no call sites, cache events without source) read too: the missing columns
    are null (source: ``app``)."""
    qd = body["queries"]
    statements = body["statements"]
    nq, nc = len(qd["fingerprint"]), len(body["cache"]["kind"])
    queries = pa.table({
        "request_id": pa.array(qd["request_id"], pa.int64()),
        "request_id_status": pa.array(qd["request_id_status"], pa.string()),
        "endpoint": pa.array(qd["endpoint"], pa.string()),
        "fingerprint": pa.array(qd["fingerprint"], pa.string()),
        "statement": pa.array([statements[f] for f in qd["fingerprint"]], pa.string()),
        "duration_ns": pa.array(qd["duration_ns"], pa.int64()),
        "t_ns": pa.array([t - shift_ns for t in qd["start_ns"]], pa.int64()),
        "source": pa.array(qd["source"], pa.string()),
        "error": pa.array(qd["error"], pa.bool_()),
        "call_site": pa.array(qd.get("call_site", [None] * nq), pa.string()),
        "call_function": pa.array(qd.get("call_function", [None] * nq), pa.string()),
    }, schema=QUERY_SCHEMA)
    cd = body["cache"]
    cache = pa.table({
        "request_id": pa.array(cd["request_id"], pa.int64()),
        "request_id_status": pa.array(cd["request_id_status"], pa.string()),
        "endpoint": pa.array(cd["endpoint"], pa.string()),
        "kind": pa.array(cd["kind"], pa.string()),
        "name": pa.array(cd["name"], pa.string()),
        "t_ns": pa.array([t - shift_ns for t in cd["t_ns"]], pa.int64()),
        "source": pa.array(cd.get("source", ["app"] * nc), pa.string()),
        "command": pa.array(cd.get("command", [None] * nc), pa.string()),
        "key": pa.array(cd.get("key", [None] * nc), pa.string()),
        "duration_ns": pa.array(cd.get("duration_ns", [None] * nc), pa.int64()),
    }, schema=CACHE_SCHEMA)
    return queries, cache


def downstream_table(body: dict[str, Any], shift_ns: int = 0) -> pa.Table:
    """The drained downstream calls as a DOWNSTREAM_SCHEMA table (empty from an agent that records none)."""
    dd = body.get("downstream")
    if not dd:
        return DOWNSTREAM_SCHEMA.empty_table()
    return pa.table({
        "request_id": pa.array(dd["request_id"], pa.int64()),
        "request_id_status": pa.array(dd["request_id_status"], pa.string()),
        "endpoint": pa.array(dd["endpoint"], pa.string()),
        "method": pa.array(dd["method"], pa.string()),
        "host": pa.array(dd["host"], pa.string()),
        "path": pa.array(dd["path"], pa.string()),
        "status": pa.array(dd["status"], pa.int32()),
        "t_ns": pa.array([t - shift_ns for t in dd["start_ns"]], pa.int64()),
        "duration_ns": pa.array(dd["duration_ns"], pa.int64()),
        "error": pa.array(dd["error"], pa.string()),
    }, schema=DOWNSTREAM_SCHEMA)


def server_requests_table(timed: dict[str, Any], shift_ns: int = 0) -> pa.Table:
    """The agent's drained request timings (``RequestTimings.drain()``, the ``requests`` of ``POST
    /_perfbench/records``) as an Arrow table with SERVER_SCHEMA; ``t_ns`` = agent time - shift_ns."""
    c = timed["columns"]
    return pa.table({
        "request_id": pa.array(c["request_id"], pa.int64()),
        "request_id_status": pa.array(c["request_id_status"], pa.string()),
        "endpoint": pa.array(c["endpoint"], pa.string()),
        "t_ns": pa.array([t - shift_ns for t in c["start_ns"]], pa.int64()),
        "wall_ns": pa.array(c["wall_ns"], pa.int64()),
        "cpu_ns": pa.array(c["cpu_ns"], pa.int64()),
        "gc_ns": pa.array(c["gc_ns"], pa.int64()),
        "gc_pauses": pa.array(c["gc_pauses"], pa.int64()),
        "lag_ns": pa.array(c["lag_ns"], pa.int64()),
        "mode": pa.array(c["mode"], pa.string()),
        "pool_ns": pa.array(c.get("pool_ns", [None] * len(c["wall_ns"])), pa.int64()),
    }, schema=SERVER_SCHEMA)


def gauges_table(gauges: dict[str, Any], shift_ns: int = 0) -> pa.Table:
    """The agent's drained gauge rows (``Gauges.drain()``, the ``gauges`` of ``POST /_perfbench/records``) as
    an Arrow table with GAUGE_SCHEMA; ``t_ns`` = agent time - shift_ns."""
    c = gauges["columns"]
    return pa.table({
        "t_ns": pa.array([t - shift_ns for t in c["t_ns"]], pa.int64()),
        "name": pa.array(c["name"], pa.string()),
        "target": pa.array(c["target"], pa.string()),
        "value": pa.array(c["value"], pa.float64()),
    }, schema=GAUGE_SCHEMA)
