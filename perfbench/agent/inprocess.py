"""In-process capture: the SQL, cache and downstream calls a block of code makes, no HTTP, no agent.

    from perfbench.agent import capture

    with capture() as c:              # or: async with capture() as c:
        posts = repository.list_posts(session, limit=20)
    print(c.report())                 # statements, fingerprints, N+1 groups with their call site, slowest
    assert c.count <= 3, c.report()   # e.g. in a test: the page must not be an N+1
    c.frame()                         # the statements as a Polars frame (when Polars is installed)

While the block runs, the agent's hooks (SQLAlchemy sync and async, sqlite3, asyncpg, psycopg, redis-py,
aiohttp and httpx clients; Django's ORM, where Django is set up, through its execute wrapper: added to
the connections of the thread that opens the block and to every one created while it is open) are installed, and everything the block's context runs is recorded:
its own code, the asyncio tasks it creates, work it submits to a ``ThreadPoolExecutor``
(``loop.run_in_executor`` too) and aiosqlite's thread. Other threads' and other tasks' statements are not.
At exit the hooks are removed again, unless an :class:`~perfbench.agent.Agent` or another capture still
uses them. Captures nest: a statement counts in every capture open around it.

Limits: a ``sqlite3`` connection opened while no hook was installed (no agent, no capture) is not seen
(its class cannot be patched): open it inside the block. A statement's text is redacted (no literal or parameter
value), as everywhere in perfbench; ``rows`` is what the driver says (DML row counts; SELECTs on asyncpg
and psycopg), else None. Memory is bounded by ``max_events`` per kind (the rest are counted in ``dropped``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import ConfigError
from ..sqltext import N_PLUS_ONE_THRESHOLD
from . import callsite, sql

DEFAULT_MAX_EVENTS = 100_000


class Statement(NamedTuple):  # a tuple: built once per statement, cheaply
    """One statement the block ran: redacted ``text``, its ``fingerprint``, where it came from."""

    text: str
    fingerprint: str
    duration_ns: int
    rows: int | None
    source: str  # sqlalchemy | sqlite3 | asyncpg | psycopg | django
    error: bool
    start_ns: int  # perf_counter_ns
    call_site: str | None  # "path/file.py:57", the first frame of the service's code (sampled per fingerprint)
    call_function: str | None

    @property
    def duration_ms(self) -> float:
        return self.duration_ns / 1e6


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """Every execution of one fingerprint in the block."""

    fingerprint: str
    text: str
    count: int
    total_ms: float
    max_ms: float
    rows: int | None  # the sum of the known row counts; None when the driver never said
    call_site: str | None
    call_function: str | None

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.count


@dataclass(frozen=True, slots=True)
class CacheEvent:
    kind: str  # hit | miss | command (a Redis command that is neither)
    name: str | None  # the cache's name ("redis" for a hooked client)
    source: str  # app (cache_hit/cache_miss) | redis
    command: str | None
    key: str | None  # redacted
    duration_ns: int | None


@dataclass(frozen=True, slots=True)
class DownstreamCall:
    method: str
    host: str
    path: str  # a template: id-like segments as {id}, no query
    status: int | None
    start_ns: int
    duration_ns: int
    error: str | None


@dataclass(eq=False, repr=False)
class Capture:
    """What :func:`capture` returns: the block's statements and everything derived from them."""

    n_plus_one_threshold: int = N_PLUS_ONE_THRESHOLD
    max_events: int = DEFAULT_MAX_EVENTS
    statements: list[Statement] = field(default_factory=list)
    cache_events: list[CacheEvent] = field(default_factory=list)
    downstream: list[DownstreamCall] = field(default_factory=list)
    dropped: int = 0
    start_ns: int | None = None
    end_ns: int | None = None
    _sites: dict[str, tuple[str, str] | None] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _token: Any = field(default=None, repr=False)
    _open: bool = field(default=False, repr=False)

    def __repr__(self) -> str:  # not the statements themselves: there can be 100,000
        state = "open" if self._open else "not started" if self.start_ns is None else "closed"
        return (f"<Capture {state}: {len(self.statements)} statements, {len(self.cache_events)} cache events, "
                f"{len(self.downstream)} downstream calls>")

    def __post_init__(self) -> None:
        if self.n_plus_one_threshold < 2:
            raise ConfigError(f"an N+1 needs a threshold of at least 2 repetitions, got {self.n_plus_one_threshold}")
        if self.max_events < 1:
            raise ConfigError(f"max_events must be at least 1, got {self.max_events}")

    # the block --------------------------------------------------------------------------------------

    def __enter__(self) -> Capture:
        if self._open or self.start_ns is not None:
            raise ConfigError("a capture() is used once: create a new one for another block")
        sql.open_capture()
        self._open = True
        self._token = sql.CAPTURES.set((*sql.CAPTURES.get(), self))
        self.start_ns = time.perf_counter_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        self.end_ns = time.perf_counter_ns()
        self._open = False
        try:
            sql.CAPTURES.reset(self._token)
        except ValueError:  # left in another context than it was entered: take this one out of it
            sql.CAPTURES.set(tuple(c for c in sql.CAPTURES.get() if c is not self))
        self._token = None
        sql.close_capture()

    async def __aenter__(self) -> Capture:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    # fed by the hooks (perfbench.agent.sql) -----------------------------------------------------------

    def add_statement(self, text: str, start_ns: int, duration_ns: int, source: str, error: bool,
                      rows: int | None) -> None:
        if not self._open:
            return
        fp, redacted = sql.fingerprinted(text)
        if fp in self._sites:
            site = self._sites[fp]
        else:  # the first of its fingerprint: where in the code did it come from?
            site = self._sites[fp] = callsite.find(2)
        where, function = site if site is not None else (None, None)
        with self._lock:
            if len(self.statements) < self.max_events:
                self.statements.append(Statement(redacted, fp, duration_ns, rows, source, error, start_ns, where,
                                                 function))
            else:
                self.dropped += 1

    def add_cache(self, kind: str, name: str | None, details: dict[str, Any]) -> None:
        if self._open:
            with self._lock:
                if len(self.cache_events) < self.max_events:
                    self.cache_events.append(CacheEvent(kind, name, details.get("source", "app"),
                                                        details.get("command"), details.get("key"),
                                                        details.get("duration_ns")))
                else:
                    self.dropped += 1

    def add_downstream(self, rec: tuple) -> None:
        if self._open:
            with self._lock:
                if len(self.downstream) < self.max_events:
                    self.downstream.append(DownstreamCall(*rec))
                else:
                    self.dropped += 1

    # what the block did -------------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Statements the block ran."""
        return len(self.statements)

    @property
    def db_ms(self) -> float:
        """Their summed durations (statements run concurrently count each)."""
        return sum(s.duration_ns for s in self.statements) / 1e6

    @property
    def elapsed_ms(self) -> float | None:
        """The block's wall time (None while it runs)."""
        return None if self.start_ns is None or self.end_ns is None else (self.end_ns - self.start_ns) / 1e6

    @property
    def fingerprints(self) -> list[Fingerprint]:
        """Per fingerprint: count, total and max ms, rows, call site; by total time, largest first."""
        return fingerprint_stats(self.statements)

    @property
    def n_plus_one(self) -> list[Fingerprint]:
        """The fingerprints run ``n_plus_one_threshold`` times or more (the query profiler's rule for
        one request, here for the block): most repeated first."""
        return sorted((f for f in self.fingerprints if f.count >= self.n_plus_one_threshold),
                      key=lambda f: (-f.count, -f.total_ms, f.fingerprint))

    def slowest(self, n: int = 5) -> list[Statement]:
        """The ``n`` longest statements, longest first."""
        return sorted(self.statements, key=lambda s: (-s.duration_ns, s.start_ns))[:n]

    def report(self, top: int = 10) -> str:
        """A short text table: totals, N+1 groups with their call site, fingerprints, slowest statements."""
        return report_text(self, top)

    def frame(self) -> Any:
        """The statements as a Polars DataFrame (one row each); needs Polars (``perfbench[load]``)."""
        try:
            import polars as pl
        except ImportError:
            raise ConfigError("Capture.frame() needs Polars, which is not installed: pip install 'perfbench[load]' "
                              "(Capture.statements has the same rows as dataclasses)") from None
        columns = ("text", "fingerprint", "duration_ns", "rows", "source", "error", "start_ns", "call_site",
                   "call_function")
        schema = {"text": pl.String, "fingerprint": pl.String, "duration_ns": pl.Int64, "rows": pl.Int64,
                  "source": pl.String, "error": pl.Boolean, "start_ns": pl.Int64, "call_site": pl.String,
                  "call_function": pl.String}
        data = {c: [getattr(s, c) for s in self.statements] for c in columns}
        return pl.DataFrame(data, schema=schema).with_columns((pl.col("duration_ns") / 1e6).alias("duration_ms"))


def capture(*, n_plus_one: int = N_PLUS_ONE_THRESHOLD, max_events: int = DEFAULT_MAX_EVENTS) -> Capture:
    """A context manager (``with`` or ``async with``) recording the SQL statements, cache events and
    downstream HTTP calls of the block it wraps; see :mod:`perfbench.agent.inprocess`.

    ``n_plus_one``: repetitions of one fingerprint in the block that make an N+1 (the query profiler's
    threshold by default); ``max_events``: records kept per kind (the rest are counted in ``dropped``)."""
    return Capture(n_plus_one_threshold=n_plus_one, max_events=max_events)


# pure: derived figures and their text ----------------------------------------------------------------


def fingerprint_stats(statements: list[Statement]) -> list[Fingerprint]:
    """Statements grouped by fingerprint, by total time (largest first, then fingerprint)."""
    groups: dict[str, list[Statement]] = {}
    for s in statements:
        groups.setdefault(s.fingerprint, []).append(s)
    out = []
    for fp, ss in groups.items():
        rows = [s.rows for s in ss if s.rows is not None]
        sited = next((s for s in ss if s.call_site is not None), None)
        out.append(Fingerprint(fp, ss[0].text, len(ss), sum(s.duration_ns for s in ss) / 1e6,
                               max(s.duration_ns for s in ss) / 1e6, sum(rows) if rows else None,
                               sited.call_site if sited else None, sited.call_function if sited else None))
    return sorted(out, key=lambda f: (-f.total_ms, f.fingerprint))


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _site(site: str | None, function: str | None) -> str:
    return "-" if site is None else f"{site} ({function})" if function else site


def report_text(c: Capture, top: int = 10) -> str:
    """The capture as a few lines of text (what :meth:`Capture.report` returns)."""
    fps = c.fingerprints
    elapsed = c.elapsed_ms
    lines = [f"capture: {c.count} statement{'s' if c.count != 1 else ''}, {len(fps)} fingerprint"
             f"{'s' if len(fps) != 1 else ''}, DB {c.db_ms:.2f} ms"
             + (f" of {elapsed:.2f} ms" if elapsed is not None else " (still open)")
             + (f"; {c.dropped} events dropped (max_events)" if c.dropped else "")]
    n1 = c.n_plus_one
    lines.append(f"N+1: {len(n1)} fingerprint{'s' if len(n1) != 1 else ''} run {c.n_plus_one_threshold}+ times"
                 + (":" if n1 else ""))
    for f in n1:
        lines.append(f"  {f.count} of one fingerprint issued from {_site(f.call_site, f.call_function)}: "
                     f"{_cut(f.text, 80)}")
    if fps:
        head = ("count", "total ms", "max ms", "rows", "call site", "statement")
        rows = [(str(f.count), f"{f.total_ms:.2f}", f"{f.max_ms:.2f}", "-" if f.rows is None else str(f.rows),
                 _site(f.call_site, f.call_function), _cut(f.text, 60)) for f in fps[:top]]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines.append("")
        for r in [head, tuple("-" * w for w in widths), *rows]:
            lines.append("  ".join(v.rjust(w) if i < 4 else v.ljust(w)
                                   for i, (v, w) in enumerate(zip(r, widths, strict=True))).rstrip())
        if len(fps) > top:
            lines.append(f"... and {len(fps) - top} more fingerprints")
        lines.append("")
        lines.append("slowest statements:")
        for s in c.slowest(min(top, 5)):
            lines.append(f"  {s.duration_ms:9.3f} ms  {_cut(s.text, 80)}" + (" (error)" if s.error else ""))
    if c.cache_events:
        kinds: dict[str, int] = {}
        for e in c.cache_events:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        lines.append("cache: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    if c.downstream:
        total = sum(d.duration_ns for d in c.downstream) / 1e6
        failed = sum(1 for d in c.downstream if d.error is not None or (d.status or 0) >= 500)
        lines.append(f"downstream: {len(c.downstream)} call{'s' if len(c.downstream) != 1 else ''}, "
                     f"{total:.2f} ms" + (f", {failed} failed" if failed else ""))
    return "\n".join(lines)
