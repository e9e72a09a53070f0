"""The pytest plugin: a ``bench`` fixture, and options to save a session's benchmarks and compare them.

    def test_hash(bench):
        digest = bench(hashlib.pbkdf2_hmac, "sha256", b"pw", b"salt", 100_000)

    async def test_fetch(bench):                 # in an async test (pytest-asyncio, anyio)
        await bench.async_(fetch_user, 7)

    @pytest.mark.bench(sql=True, memory=True)    # options of this test's benchmark (see perfbench.bench.Options)
    def test_posts(bench): bench(list_posts)

``bench(func, *args, **kwargs)`` benchmarks ``func(*args, **kwargs)`` (an ``async def`` function is run
on a new event loop) and returns what its first call returned. Options: ``--bench-save NAME`` (save the
session as a run directory and as baseline NAME), ``--bench-compare NAME`` (compare with baseline NAME or
a run directory: per benchmark the median's ratio with a bootstrap interval and a verdict; a regression
ends the session with exit code 10, as ``perfbench compare``), ``--bench-only`` (deselect tests without
the fixture). The options are named ``--bench-*`` so they never clash with pytest-benchmark's
``--benchmark-*`` and its ``benchmark`` fixture: both plugins can be installed together.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import pytest

from ..errors import ConfigError, PerfbenchError
from .runner import BenchResult, Options, arun, is_async, run

STATE = pytest.StashKey["_State"]()


def _fraction(text: str) -> float:
    t = text.strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise pytest.UsageError(f"--bench-threshold {text!r}: not a number (0.1 or 10%)") from None
    if not 0 <= v < 10:
        raise pytest.UsageError(f"--bench-threshold {text!r}: must be from 0 to 1000%")
    return v


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("perfbench-bench", "micro-benchmarks (perfbench.bench; the bench fixture)")
    g.addoption("--bench-save", metavar="NAME", help="save this session's benchmarks as a run directory (under "
                "--bench-runs-dir) and as baseline NAME (under --bench-baselines-dir), replacing it")
    g.addoption("--bench-compare", metavar="NAME", help="compare this session's benchmarks with baseline NAME (or "
                "a bench run directory): the median per benchmark, with a bootstrap interval and a verdict; a "
                "regression ends the session with exit code 10")
    g.addoption("--bench-only", action="store_true", help="run only the tests that use the bench fixture")
    g.addoption("--bench-runs-dir", default="data/runs", metavar="DIR", help="where runs go (default data/runs)")
    g.addoption("--bench-baselines-dir", default="data/baselines", metavar="DIR",
                help="where baselines are (default data/baselines)")
    g.addoption("--bench-max-time", type=float, metavar="SECONDS",
                help="time budget of each benchmark's measured rounds (default 1.0)")
    g.addoption("--bench-min-rounds", type=int, metavar="N", help="rounds measured at least (default 20)")
    g.addoption("--bench-processes", type=int, metavar="N", help="worker processes per benchmark (default 1)")
    g.addoption("--bench-disable-gc", action="store_true", help="garbage collector off during the rounds")
    g.addoption("--bench-threshold", type=_fraction, default=0.10, metavar="FRACTION",
                help="tolerated change of the median for --bench-compare: 0.1 or 10%% (default 10%%)")
    g.addoption("--bench-markdown", metavar="FILE", help="also write --bench-compare's comparison as Markdown")
    g.addoption("--bench-json", metavar="FILE", help="also write --bench-compare's comparison as JSON")
    g.addoption("--bench-junit", metavar="FILE", help="also write --bench-compare's comparison as JUnit XML")


class _State:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.results: list[tuple[str, BenchResult]] = []  # (node id, result)
        self.lines: list[str] = []
        self.run_dir: Path | None = None
        opts = {"max_time": config.getoption("bench_max_time"), "min_rounds": config.getoption("bench_min_rounds"),
                "processes": config.getoption("bench_processes"),
                "disable_gc": config.getoption("bench_disable_gc") or None}
        self.defaults = {k: v for k, v in opts.items() if v is not None}
        try:
            Options.make(**self.defaults)
        except ConfigError as exc:
            raise pytest.UsageError(f"--bench-* options: {exc}") from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bench(**options): options of the bench fixture in this test (max_time, "
                                       "min_rounds, sql=True, memory=True, ... see perfbench.bench.Options)")
    config.stash[STATE] = _State(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("bench_only"):
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (keep if "bench" in getattr(item, "fixturenames", ()) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


class BenchFixture:
    """The ``bench`` fixture: benchmark one function per test."""

    def __init__(self, node: pytest.Item, options: dict[str, Any]):
        self.node = node
        self.options = options
        self.result: BenchResult | None = None
        callspec = getattr(node, "callspec", None)
        params = list(callspec.params.values()) if callspec is not None else []
        self.param = params[0] if len(params) == 1 and _is_number(params[0]) else None
        self.group = getattr(node, "originalname", None) if callspec is not None else None

    def configure(self, **options: Any) -> BenchFixture:
        """Set options of this test's benchmark (as the ``bench`` marker does)."""
        Options.make(**{**self.options, **options})
        self.options = {**self.options, **options}
        return self

    def _once(self) -> None:
        if self.result is not None:
            raise ConfigError("the bench fixture benchmarks one function per test; write another test for "
                              "the next function (or use perfbench.bench.Session in one test)")

    def __call__(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        self._once()
        fn = functools.partial(func, **kwargs) if kwargs else func
        self.result = run(fn, *args, name=self.node.name, param=self.param, group=self.group, **self.options)
        return self.result.value

    async def async_(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """``await bench.async_(fetch, 7)``: benchmark an ``async def`` function on the test's running loop."""
        self._once()
        if not is_async(func):
            raise ConfigError(f"bench.async_ takes an async def function; call bench({getattr(func, '__name__', func)}) "
                              "for a sync one")
        fn = functools.partial(func, **kwargs) if kwargs else func
        self.result = await arun(fn, *args, name=self.node.name, param=self.param, group=self.group,
                                 **self.options)
        return self.result.value

    @property
    def stats(self) -> dict[str, Any] | None:
        return None if self.result is None else self.result.stats


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@pytest.fixture
def bench(request: pytest.FixtureRequest) -> Any:
    """Benchmark a function: ``bench(func, *args, **kwargs)`` or ``await bench.async_(coro_fn, *args)``."""
    state: _State = request.config.stash[STATE]
    marker = request.node.get_closest_marker("bench")
    options = {**state.defaults, **(marker.kwargs if marker else {})}
    try:
        Options.make(**options)
    except ConfigError as exc:
        raise pytest.UsageError(f"{request.node.nodeid}: @pytest.mark.bench: {exc}") from None
    fx = BenchFixture(request.node, options)
    yield fx
    if fx.result is not None:
        state.results.append((request.node.nodeid, fx.result))


def _unique(results: list[tuple[str, BenchResult]]) -> list[BenchResult]:
    """The results, a name repeated across modules replaced by its node id."""
    names = [r.name for _, r in results]
    out = []
    for nodeid, r in results:
        if names.count(r.name) > 1:
            r.name = nodeid
        out.append(r)
    return out


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state: _State | None = session.config.stash.get(STATE, None)
    if state is None or not state.results:
        return
    results = _unique(state.results)
    try:
        from .render import to_text
        from .store import save_run, table
    except ImportError as exc:  # an install with the agent alone
        state.lines.append(f"perfbench: the results table needs {exc.name}: pip install 'perfbench[load]'")
        return
    state.lines.append(to_text(table(results)))
    from . import scaling

    for group in dict.fromkeys(r.group for r in results if r.group and r.param is not None):
        fit = scaling(r for r in results if r.group == group)
        if fit["model"] is not None:
            state.lines.append(f"{group}: {fit['text']}")
    save, against = session.config.getoption("bench_save"), session.config.getoption("bench_compare")
    if not (save or against):
        return
    from .. import compare as cmp
    from ..compare.baselines import save as save_baseline

    opt = session.config.getoption
    try:
        state.run_dir = save_run(results, opt("bench_runs_dir"), "pytest")
        state.lines.append(f"benchmarks saved in {state.run_dir}")
        if against:
            _check_side(against, opt("bench_baselines_dir"))
            c = cmp.compare(cmp.load_side(against, opt("bench_baselines_dir")), cmp.load_side(state.run_dir),
                            threshold=opt("bench_threshold"))
            for path, render in ((opt("bench_markdown"), cmp.to_markdown), (opt("bench_json"), cmp.to_json),
                                 (opt("bench_junit"), cmp.to_junit)):
                if path:
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                    Path(path).write_text(render(c))
            state.lines.append(cmp.to_text(c))
            state.lines += [f"WARNING: {w}" for w in c.warnings]
            if c.regressions:
                state.lines.append(f"perfbench: {cmp.headline(c)}")
                if session.exitstatus == 0:
                    session.exitstatus = c.exit_code
        if save:
            path = save_baseline(state.run_dir, save, root=opt("bench_baselines_dir"), overwrite=True)
            state.lines.append(f"baseline {save} saved in {path}")
    except PerfbenchError as exc:
        state.lines.append(f"perfbench: error: {exc}")
        if session.exitstatus == 0:
            session.exitstatus = exc.exit_code


def _check_side(spec: str, baselines_dir: str) -> None:
    from ..compare.baselines import list_baselines, resolve

    if resolve(spec, baselines_dir) is None and not Path(spec).exists():
        known = ", ".join(b["name"] for b in list_baselines(baselines_dir)) or "none"
        raise ConfigError(f"--bench-compare {spec!r}: no baseline of that name in {baselines_dir} (there: {known}) "
                          f"and no such run directory; save one first with --bench-save {spec}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state: _State | None = config.stash.get(STATE, None)
    if state is None or not state.lines:
        return
    terminalreporter.section("perfbench bench")
    for line in state.lines:
        terminalreporter.write_line(line)
