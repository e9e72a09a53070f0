"""tracemalloc under load: snapshots in-process or from a running service, grouped, diffed, written to ``memory/``.

**In a notebook, around any code**::

    tr = Tracer(nframes=5)                     # starts tracemalloc if it is not running
    tr.take("before"); work(); tr.take("after")
    tr.compare("before", "after", by="site")  # Polars: file, line, size, count, *_before, *_diff
    tr.top("after", 10, by="lineno")
    tr.write(run_dir)                          # memory/tracemalloc_*.parquet

**Of a running Python service, during a load run**: the service mounts perfbench's memory
endpoint (``perfbench.agent.memory``; the demo does when ``PERFBENCH_MEMORY_TOKEN`` is set, e.g.
``DemoProcess(tracemalloc=True)``) and :class:`TracemallocCollector` takes one snapshot before the
first request, one every ``interval_s`` and one after the last response, into ``memory/``.

**Grouping.** ``lineno``: the innermost frame (tracemalloc's own ``"lineno"``); ``traceback``: the
whole stack as captured; ``site``: the innermost frame *outside* the standard library and
site-packages, i.e. the line of the user's code that caused the allocation. The demo's leak
allocates its 10 KB string inside ``secrets.token_hex``: by ``lineno`` that is ``secrets.py``, by
``site`` it is ``perfbench/demo/leak.py`` at the line that calls it. ``site`` needs ``nframes`` > 1.

Parquet files under ``memory/`` (sizes in bytes)::

    tracemalloc_snapshots.parquet   snapshot, label, t_ns, file, line, site_file, site_line,
                                    traceback, size, count   (one row per distinct traceback)
    tracemalloc_diff_<by>.parquet   first vs last snapshot grouped by lineno / site / traceback:
                                    file, line, [traceback], size, count, size_before,
                                    count_before, size_diff, count_diff

Cost: tracemalloc in the target slows allocation-heavy code several times (STACK.md: ×10 on an
allocation-only loop with ``nframes=1``) and every snapshot holds the target's GIL while it is
taken and summarised (tens to hundreds of ms for a service with 10^5 live traces): keep the
interval at seconds and compare latency with a run without it.

Inside this module ``import tracemalloc`` is absolute, so it is the standard library's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..agent.memory import DEFAULT_NFRAMES, PREFIX, TOKEN_HEADER, is_library, library_prefixes, snapshot_data
from ..errors import ConfigError, ProfilerError
from ..safety import check_target

if TYPE_CHECKING:
    import aiohttp
    import polars as pl

MEMORY_DIR = "memory"
SNAPSHOTS = "tracemalloc_snapshots.parquet"
GROUPINGS = ("lineno", "site", "traceback")


# --- Polars side ------------------------------------------------------------------------------------------


def snapshot_frame(data: dict[str, Any], *, snapshot: int = 0, t_ns: int | None = None) -> pl.DataFrame:
    """One snapshot (``snapshot_data``) as rows: file, line (innermost), site_file, site_line, traceback, size, count."""
    import polars as pl

    files = data["files"]
    prefixes = data.get("library_prefixes") or library_prefixes()
    lib = [is_library(f, prefixes) for f in files]
    rows: dict[str, list] = {k: [] for k in ("file", "line", "site_file", "site_line", "traceback", "size", "count")}
    for frames, size, count in data["stats"]:
        fi, ln = frames[0] if frames else (None, 0)
        site = next((fr for fr in frames if not lib[fr[0]]), frames[0] if frames else (None, 0))
        rows["file"].append(files[fi] if fi is not None else "<unknown>")
        rows["line"].append(ln)
        rows["site_file"].append(files[site[0]] if site[0] is not None else "<unknown>")
        rows["site_line"].append(site[1])
        rows["traceback"].append(" <- ".join(f"{files[f]}:{n}" for f, n in frames))
        rows["size"].append(size)
        rows["count"].append(count)
    df = pl.DataFrame(rows, schema={"file": pl.String, "line": pl.Int32, "site_file": pl.String,
                                    "site_line": pl.Int32, "traceback": pl.String, "size": pl.Int64,
                                    "count": pl.Int64})
    return df.with_columns(snapshot=pl.lit(snapshot, pl.Int32), label=pl.lit(data.get("label", "")),
                           t_ns=pl.lit(t_ns, pl.Int64)).select(
        "snapshot", "label", "t_ns", "file", "line", "site_file", "site_line", "traceback", "size", "count")


def _keys(by: str) -> list[str]:
    if by == "lineno":
        return ["file", "line"]
    if by == "site":
        return ["site_file", "site_line"]
    if by == "traceback":
        return ["file", "line", "traceback"]
    if by == "filename":
        return ["file"]
    raise ConfigError(f"by must be one of lineno, site, traceback, filename; got {by!r}")


def group(frame: pl.DataFrame, by: str = "lineno") -> pl.DataFrame:
    """Size and count per allocation site of one snapshot's rows, largest first (``file, line`` columns)."""
    import polars as pl

    keys = _keys(by)
    out = frame.group_by(keys).agg(pl.col("size").sum(), pl.col("count").sum())
    if by == "site":
        out = out.rename({"site_file": "file", "site_line": "line"})
    return out.sort("size", descending=True)


def top(frame: pl.DataFrame, n: int = 10, by: str = "lineno") -> pl.DataFrame:
    """The ``n`` largest sites of one snapshot."""
    return group(frame, by).head(n)


def diff(before: pl.DataFrame, after: pl.DataFrame, by: str = "lineno") -> pl.DataFrame:
    """``after`` minus ``before`` per site: size, count now, before, and their differences, largest growth first."""
    import polars as pl

    a, b = group(after, by), group(before, by)
    keys = [c for c in a.columns if c not in ("size", "count")]
    out = a.join(b.rename({"size": "size_before", "count": "count_before"}), on=keys, how="full", coalesce=True)
    out = out.with_columns(pl.col("size", "count", "size_before", "count_before").fill_null(0))
    return out.with_columns(size_diff=pl.col("size") - pl.col("size_before"),
                            count_diff=pl.col("count") - pl.col("count_before")).sort(
        "size_diff", descending=True)


def write_snapshots(frames: list[pl.DataFrame], run_dir: str | Path) -> dict[str, str]:
    """Write the snapshots and the first-vs-last diffs (by lineno, site, traceback) under ``memory/``."""
    import polars as pl

    out_dir = Path(run_dir) / MEMORY_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    if not frames:
        return written
    pl.concat(frames).write_parquet(out_dir / SNAPSHOTS)
    written["snapshots"] = f"{MEMORY_DIR}/{SNAPSHOTS}"
    if len(frames) >= 2:
        for by in GROUPINGS:
            name = f"tracemalloc_diff_{by}.parquet"
            diff(frames[0], frames[-1], by).write_parquet(out_dir / name)
            written[f"diff_{by}"] = f"{MEMORY_DIR}/{name}"
    return written


def read_snapshots(run_dir: str | Path) -> pl.DataFrame:
    """``memory/tracemalloc_snapshots.parquet`` of a run (one row per snapshot and distinct traceback)."""
    import polars as pl

    path = Path(run_dir) / MEMORY_DIR / SNAPSHOTS
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: no {MEMORY_DIR}/{SNAPSHOTS}; was the run made with a "
                                f"TracemallocCollector?")
    return pl.read_parquet(path)


class Tracer:
    """In-process tracemalloc for a notebook: take labelled snapshots, compare any two, top-N, write.

    Starts tracemalloc with ``nframes`` if it is not tracing (and stops it again in :meth:`close`
    only if it started it). Snapshots are kept as Polars frames (see :func:`snapshot_frame`).
    """

    def __init__(self, nframes: int = DEFAULT_NFRAMES):
        self.started_here = not tracemalloc.is_tracing()
        if self.started_here:
            tracemalloc.start(nframes)
        self.snapshots: dict[str, pl.DataFrame] = {}

    def take(self, label: str | None = None) -> pl.DataFrame:
        label = label or f"s{len(self.snapshots)}"
        data = snapshot_data(label=label, exclude=(__file__,))
        frame = snapshot_frame(data, snapshot=len(self.snapshots), t_ns=data["t_perf_ns"])
        self.snapshots[label] = frame
        return frame

    @contextlib.contextmanager
    def around(self, label: str) -> Iterator[Tracer]:
        """``with tr.around("work"): ...`` takes ``work:before`` and ``work:after``."""
        self.take(f"{label}:before")
        try:
            yield self
        finally:
            self.take(f"{label}:after")

    def _get(self, label: str) -> pl.DataFrame:
        try:
            return self.snapshots[label]
        except KeyError:
            raise ConfigError(f"no snapshot labelled {label!r}; taken: {', '.join(self.snapshots) or 'none'}") from None

    def compare(self, before: str, after: str, by: str = "lineno") -> pl.DataFrame:
        return diff(self._get(before), self._get(after), by)

    def top(self, label: str, n: int = 10, by: str = "lineno") -> pl.DataFrame:
        return top(self._get(label), n, by)

    def write(self, run_dir: str | Path) -> dict[str, str]:
        return write_snapshots(list(self.snapshots.values()), run_dir)

    def close(self) -> None:
        if self.started_here and tracemalloc.is_tracing():
            tracemalloc.stop()


# --- the collector: snapshots of a running service during a load run ---------------------------------------


class TracemallocCollector:
    """Collector: tracemalloc snapshots of a service that mounted :func:`install`, during a run.

    ``url``: the service's base URL (loopback); ``token``: its memory token (or an object with
    ``memory_token`` and ``url``, e.g. a ``DemoProcess(tracemalloc=True)``). One snapshot before the
    first request, one every ``interval_s``, one after the last response (at most
    ``max_snapshots``). Starts tracemalloc in the service if it is not tracing yet (``nframes``).
    """

    name = "tracemalloc"

    def __init__(self, target: Any, token: str | None = None, *, interval_s: float = 5.0,
                 nframes: int = DEFAULT_NFRAMES, max_snapshots: int = 500, timeout: float = 60.0,
                 prefix: str = PREFIX, allow_hosts: tuple[str, ...] = ()):
        url = getattr(target, "url", target)
        if isinstance(url, str) and url:  # loopback (or allow-listed), before any connection
            check_target(url, allow_hosts)
        self.allow_hosts = allow_hosts
        self.target = target
        self.token = token
        self.interval_s = float(interval_s)
        self.nframes = nframes
        self.max_snapshots = max_snapshots
        self.timeout = timeout
        self.prefix = prefix
        self.raw: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping: asyncio.Event | None = None

    def _endpoint(self) -> tuple[str, str]:
        url = getattr(self.target, "url", self.target)
        token = self.token or getattr(self.target, "memory_token", None)
        if not isinstance(url, str) or not url:
            raise ProfilerError(f"tracemalloc: no service URL in {self.target!r}")
        check_target(url, self.allow_hosts)  # a service object's URL may be set only once it has started
        if not token:
            raise ProfilerError("tracemalloc: no memory token; start the service with PERFBENCH_MEMORY_TOKEN set "
                               "and install_from_env(app), or DemoProcess(tracemalloc=True)")
        return url.rstrip("/") + self.prefix, token

    async def _call(self, method: str, path: str, **params) -> dict[str, Any]:
        import aiohttp

        base, token = self._endpoint()
        assert self._session is not None, "start() first"
        async with self._session.request(method, f"{base}/{path}", params=params, headers={TOKEN_HEADER: token},
                                         timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
            if resp.status == 404:
                raise ProfilerError(f"tracemalloc: {base} is not mounted on the service (HTTP 404); mount "
                                   f"perfbench.agent.memory.install(app, token) in it")
            if resp.status in (401, 403):
                raise ProfilerError(f"tracemalloc: the service refused the memory endpoint (HTTP {resp.status}: "
                                   f"{(await resp.text())[:200]})")
            if resp.status != 200:
                raise ProfilerError(f"tracemalloc: {path} answered HTTP {resp.status}: {(await resp.text())[:200]}")
            return await resp.json()

    async def _snap(self, label: str) -> None:
        if len(self.raw) >= self.max_snapshots:
            return
        data = await self._call("POST", "snapshot", label=label)
        data["t_local_ns"] = time.perf_counter_ns()
        self.raw.append(data)

    async def start(self, ctx) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession()
        try:
            status = await self._call("GET", "status")
            if not status.get("tracing"):
                await self._call("POST", "start", nframes=self.nframes)
            await self._snap("start")
        except BaseException:
            await self._session.close()
            raise
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        assert self._stopping is not None
        n = 0
        while len(self.raw) < self.max_snapshots - 1:
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
            if self._stopping.is_set():
                return
            try:
                await self._snap(f"t{n}")
            except Exception as exc:  # keep going: one failed snapshot is not the end of the run
                self.errors.append(f"snapshot {n}: {type(exc).__name__}: {exc}")
                if len(self.errors) > 5:
                    return

    async def stop(self, ctx) -> dict[str, Any]:
        if self._stopping is not None:
            self._stopping.set()
        if self._task is not None:
            await self._task
        try:
            try:
                await self._snap("end")
            except Exception as exc:
                self.errors.append(f"final snapshot: {type(exc).__name__}: {exc}")
        finally:
            assert self._session is not None, "start() first"
            await self._session.close()
        conv = ctx.run_ns if ctx.t0_ns is not None else (lambda ns: ns)
        frames = [snapshot_frame(d, snapshot=i, t_ns=conv(d["t_local_ns"])) for i, d in enumerate(self.raw)]
        written = await asyncio.to_thread(write_snapshots, frames, ctx.run_dir)
        out: dict[str, Any] = {"snapshots": len(self.raw), "interval_s": self.interval_s, "files": written,
                               "nframes": self.raw[0]["nframes"] if self.raw else None,
                               "traced_bytes": [d["traced_current"] for d in self.raw]}
        if self.errors:
            out["errors"] = self.errors
        return out

