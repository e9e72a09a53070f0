"""Paired A/B: one plan's load alternates between a baseline and a candidate in short blocks.

``run_ab(baseline_url, candidate_url, plan, scenario)`` cuts the plan's time into blocks of
``block_s`` seconds; blocks ``2k`` and ``2k + 1`` are pair ``k``, one block per side, and the order
is random and balanced: for every two pairs a coin chooses ABBA or BAAB. Each block sends the
plan's own arrivals of its time window to its side, with the open-model engine as ``run_load``
does (each side has its own sender, logged in once, kept alive across its blocks). The next
block's engine starts as the previous block's last arrival is due, not when its responses are
all in, so no arrival of the next block waits for the previous one.

With ``segments`` (and a ``restart`` callback: ``perfbench ab`` restarts the services it started) the
pairs are cut into that many parts; between parts the services are restarted, the other one first,
and the plan's clock waits. Two processes of one build differ for their whole lives (the one started
first ran ~1.5% slower), an offset no interval within one pair of processes can see; over parts
started in both orders it cancels, and the rest reaches the interval as spread between units.

Why alternating blocks and not paired arrivals (each arrival sent to both sides at once): on a
small machine the two services, sent requests at the same instant, compete for the same CPUs,
so a slower candidate slows the baseline too and the ratio shrinks towards 1, and which request
of a pair goes first matters. Blocks give each side the machine alone for a moment while sharing
everything slower than that (a neighbour's job, a CPU's clock, a cache's state); the engine runs
unchanged; and the verdict needs only that the order within a pair be random.

One run directory (``meta.json`` kind ``ab``): ``requests.parquet`` holds every request of both
sides with three more columns, ``side`` ("baseline" or "candidate"), ``block`` and ``segment``; ``summary.json``
is the usual summary over all rows plus ``sides`` (each side's own summary); ``ab.json`` holds the
verdict (``perfbench.compare.paired``), the per-pair ratios and the schedule.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa

from ..analysis.sides import side_summaries
from ..compare.core import Rule
from ..compare.noise import AB_LIMITS, NoiseLimits, ab_reasons
from ..compare.paired import (
    AB_MIN_CHANGE_MS,
    AB_STATS,
    AB_THRESHOLD,
    BASELINE,
    CANDIDATE,
    SIDES,
    ABComparison,
    paired_compare,
)
from ..engine.heap import frozen_heap
from ..engine.machine import MachineSampler
from ..engine.open_model import OpenModelEngine
from ..engine.options import LoadOptions, stderr_line
from ..engine.recorder import Recorder
from ..engine.session import LoadSession, StopSignals, run_coroutine, start_meta
from ..errors import ConfigError, RunDirError, TargetError
from ..rundir import (
    REQUEST_SCHEMA,
    Journal,
    RunDir,
    convert_journal,
    new_run_id,
    read_json,
    utc_now_iso,
    write_json,
)
from ..safety import check_target
from ..scenario import Scenario, single
from ..shapes import OpenPlan
from ..shapes.open_plans import Stage

AB_JSON = "ab.json"
AB_SCHEMA = REQUEST_SCHEMA.append(pa.field("side", pa.string(), nullable=False)).append(
    pa.field("block", pa.int16(), nullable=False)).append(pa.field("segment", pa.int16(), nullable=False))
DEFAULT_BLOCK_S = 0.25  # benchmarks/README.md: narrower intervals than 0.5 s and 1 s blocks under a random hog
RESTART_FAILED = "restarting the services failed"  # the end reason's start when a restart between segments failed
LEAD_NS = 2_000_000  # the next block's engine starts this long before its first arrival is due


def block_order(pairs: int, seed: int = 0) -> list[str]:
    """The side of each block in time order: per two pairs ABBA or BAAB, chosen by a seeded coin."""
    rng = random.Random(f"ab-order:{seed}")
    out: list[str] = []
    for q in range(0, pairs, 2):
        first = BASELINE if rng.random() < 0.5 else CANDIDATE
        other = CANDIDATE if first == BASELINE else BASELINE
        out += [first, other, other, first][: 2 * min(2, pairs - q)]
    return out


def start_order(seed: int = 0) -> tuple[str, str]:
    """The order to start the two services in, by a seeded coin. Of two processes of one build started one
    after the other, the first read ~1.5% slower at p50 through the whole run (benchmarks/README.md: 40 A/A
    runs of fresh pairs, either side first at random: the two orders' mean log-ratios 0.033 apart, about
    7 standard errors). Starting the
    baseline first every time would make every candidate look 1.5% faster; a coin makes that a noise of
    either sign instead of a bias."""
    return (BASELINE, CANDIDATE) if random.Random(f"ab-start:{seed}").random() < 0.5 else (CANDIDATE, BASELINE)


def segment_starts(pairs: int, segments: int) -> list[int]:
    """The first pair of each segment: ``segments`` runs of about equal length, each of whole ABBA/BAAB
    quartets (an even number of pairs) where the pairs allow it."""
    if segments < 1 or segments != int(segments):
        raise ConfigError(f"segments must be a whole number >= 1, got {segments!r}")
    if segments > pairs:
        raise ConfigError(f"{segments} segments need at least {segments} pairs of blocks; the run has {pairs} "
                          "(a longer run, shorter blocks or fewer segments)")
    step = 2 if pairs >= 2 * segments else 1
    return [round(pairs * k / segments / step) * step for k in range(segments)]


def restart_order(first: tuple[str, str], segment: int) -> tuple[str, str]:
    """The start order of segment ``segment``: the first segment's, reversed in every other segment, so that
    with an even number of segments each side is started first equally often and the offset the order
    gives (``start_order``) cancels in the verdict."""
    return first if segment % 2 == 0 else (first[1], first[0])


def schedule(duration: float, block_s: float) -> tuple[int, float]:
    """(pairs, block seconds): the plan's duration cut into whole pairs of blocks near ``block_s``."""
    if not block_s > 0:
        raise ConfigError(f"block must be a positive number of seconds, got {block_s!r}")
    pairs = max(1, round(duration / (2 * block_s)))
    return pairs, duration / (2 * pairs)


@dataclass(frozen=True)
class BlockWindow:
    """What the open-model engine reads of a plan (``OpenLoad``), for one block: the plan's arrivals
    with intended times in [start_ns, end_ns), on the whole run's time base."""

    whole: OpenPlan
    index: np.ndarray
    offset: np.ndarray
    stage: np.ndarray
    start_ns: int
    end_ns: int
    model: ClassVar[Literal["open"]] = "open"

    @property
    def stages(self) -> tuple[Stage, ...]:
        return self.whole.stages

    @property
    def poisson(self) -> bool:
        return self.whole.poisson

    @property
    def duration(self) -> float:
        return self.end_ns / 1e9  # the engine's plan end and deadline count from the run's start

    @property
    def expected_requests(self) -> float:
        return float(len(self.index))

    def rate_at(self, t: float) -> float:
        return self.whole.rate_at(t) if self.start_ns <= t * 1e9 < self.end_ns else 0.0

    def arrival_tuples(self) -> Iterator[tuple[int, int, int]]:
        return zip(self.index.tolist(), self.offset.tolist(), self.stage.tolist(), strict=True)

    def count_due(self, first: tuple[int, int, int], t_ns: int) -> dict[int, int]:
        """Per stage, the block's arrivals from ``first`` (included) on that are due by ``t_ns``
        (exact: the block holds its arrivals)."""
        at = np.nonzero(self.index == first[0])[0]
        if not at.size:
            return {}
        offsets, stages = self.offset[int(at[0]):], self.stage[int(at[0]):]
        due = stages[offsets <= t_ns]
        values, counts = np.unique(due, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts, strict=True)}

    def describe(self) -> dict[str, Any]:
        return {**self.whole.describe(), "window_s": [self.start_ns / 1e9, self.end_ns / 1e9]}


def windows(plan: OpenPlan, bounds: list[tuple[int, int]]) -> list[BlockWindow]:
    """The plan's arrivals split by the blocks' [start, end) bounds (ns)."""
    arr = np.array(list(plan.arrival_tuples()), dtype=np.int64).reshape(-1, 3)
    out = []
    for start, end in bounds:
        a, b = np.searchsorted(arr[:, 1], [start, end], side="left")
        out.append(BlockWindow(plan, arr[a:b, 0], arr[a:b, 1], arr[a:b, 2], start, end))
    return out


@dataclass
class ABResult:
    path: Path
    run_id: str
    comparison: ABComparison
    summary: dict[str, Any]
    end_reason: str


def _tag(batch: pa.RecordBatch, side: str, block: int, segment: int = 0) -> pa.RecordBatch:
    n = batch.num_rows
    return pa.RecordBatch.from_arrays([*batch.columns, pa.array([side] * n, pa.string()),
                                       pa.array(np.full(n, block, dtype=np.int16)),
                                       pa.array(np.full(n, segment, dtype=np.int16))], schema=AB_SCHEMA)


def _sink(journal: Journal, side: str, block: int, segment: int) -> Callable[[pa.RecordBatch], None]:
    return lambda batch: journal.write(_tag(batch, side, block, segment))


def _forget(running: list[OpenModelEngine], engine: OpenModelEngine) -> Callable[[asyncio.Task[Any]], None]:
    return lambda _task: running.remove(engine)


def pair_scenario(scenario: Scenario, pair: int) -> Scenario:
    """The scenario with a seed of its own for each pair of blocks, the same for both blocks of a pair.

    Each block runs its own engine, which draws the request mix from ``random.Random(scenario.seed)``;
    with one seed for every block, every block would replay the same first draws (a 0.25 s block at
    50 req/s sent none of a mix's lightest request). Per pair, both sides get the same draws.
    """
    return dataclasses.replace(scenario, seed=scenario.seed * 1_000_003 + pair + 1)


Restart = Callable[[int], Any]  # restart(segment): stop both services, start them anew; returns the start order


async def _send_segment(targets: dict[str, str], plan: OpenPlan, scenario: Scenario, options: LoadOptions,
                        blocks: list[tuple[int, str, BlockWindow]], segment: int, journal: Journal,
                        running: list[OpenModelEngine], stopping: list[str], progress: Callable[[int], None]) -> list[tuple[str, Any]]:
    """One segment's blocks, on one session per side (logged in once); per block its side and engine stats."""
    assert options.grace is not None
    tasks: list[asyncio.Task[Any]] = []
    async with LoadSession(targets[BASELINE], plan, scenario, options, worker=0) as base, \
            LoadSession(targets[CANDIDATE], plan, scenario, options, worker=1) as cand:
        sessions = {BASELINE: base, CANDIDATE: cand}
        # what the engine's MonotonicClock reads at the plan's time zero; a later segment's plan time goes on
        # from where the last one ended, its first arrival due LEAD_NS from now: no arrival is late for a pause
        first_ns = blocks[0][2].start_ns
        t0 = time.perf_counter_ns() - first_ns + (LEAD_NS if first_ns else 0)
        try:
            for k, side, win in blocks:
                wait = (t0 + win.start_ns - LEAD_NS - time.perf_counter_ns()) / 1e9
                if wait > 0:
                    await asyncio.sleep(wait)
                if stopping:
                    break
                progress(k)
                s = sessions[side]
                worker = SIDES.index(side)
                recorder = Recorder(_sink(journal, side, k, segment), worker=worker)
                engine = OpenModelEngine(win, pair_scenario(scenario, k // 2), s.sender, recorder,
                                         max_in_flight=s.max_in_flight, max_requests=None, grace=options.grace,
                                         auth_headers=s.auth, worker=worker)
                running.append(engine)
                tasks.append(asyncio.create_task(engine.run(t0_ns=t0)))
                tasks[-1].add_done_callback(_forget(running, engine))
            results = await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
    return [(side, stats) for (_k, side, _w), stats in zip(blocks, results, strict=False)]


async def _run_blocks(targets: dict[str, str], plan: OpenPlan, scenario: Scenario, options: LoadOptions,
                      order: list[str], wins: list[BlockWindow], journal: Journal,
                      announce: Callable[[str], None] | None, firsts: list[int] | None = None,
                      restart: Restart | None = None) -> tuple[dict[str, dict[str, int]], str, float, list[Any]]:
    """Send every block, segment by segment (``firsts``: each segment's first pair; before each segment but
    the first, ``restart(segment)`` restarts the services, and the plan's clock waits for it: no arrival
    is late for the pause). Per side the engine's counts, the end reason, the seconds it took and what
    each ``restart`` returned."""
    assert options.grace is not None
    totals = {s: {"planned": 0, "sent": 0, "completed": 0, "capped": 0, "aborted": 0} for s in SIDES}
    stopping: list[str] = []
    running: list[OpenModelEngine] = []
    firsts = firsts or [0]
    bounds = [*(2 * f for f in firsts), len(order)]
    restarted: list[Any] = []

    def stop(reason: str) -> None:
        stopping.append(reason)
        for e in running:
            e.stop(reason)

    def progress(k: int) -> None:
        if announce and k and k % (2 * max(1, len(order) // 20)) == 0:
            announce(f"perfbench ab: {k // 2} of {len(order) // 2} pairs of blocks sent")

    signals = StopSignals(stop)
    if options.handle_signals:
        signals.install()
    with frozen_heap():  # as a run's load: the collector skips the set-up's objects
        started = time.perf_counter()
        try:
            for segment, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
                if stopping:
                    break
                if segment:
                    assert restart is not None
                    if announce:
                        announce(f"perfbench ab: segment {segment + 1} of {len(firsts)}: restarting both services")
                    paused = time.perf_counter()
                    try:
                        what = await asyncio.to_thread(restart, segment)
                    except (TargetError, ConfigError, OSError) as exc:  # the blocks sent are kept and judged
                        stopping.append(f"{RESTART_FAILED}: {str(exc).splitlines()[0]}")
                        break
                    restarted.append({"segment": segment, "first_pair": firsts[segment], "started": what,
                                      "pause_s": round(time.perf_counter() - paused, 3)})
                    if stopping:
                        break
                blocks = [(k, order[k], wins[k]) for k in range(a, b)]
                for side, stats in await _send_segment(targets, plan, scenario, options, blocks, segment, journal,
                                                       running, stopping, progress):
                    for key in totals[side]:
                        totals[side][key] += getattr(stats, key)
        finally:
            signals.remove()
    end_reason = stopping[0] if stopping else "completed"
    return totals, end_reason, time.perf_counter() - started, restarted


def run_ab(baseline: str, candidate: str, plan: OpenPlan, scenario: Scenario | None = None, *,
           block_s: float = DEFAULT_BLOCK_S, seed: int = 0, runs_dir: str | Path = "data/runs",
           run_id: str | None = None, label: str = "ab", allow_hosts: Iterable[str] = (),
           max_in_flight: int = 10_000, timeout: float = 30.0, http_path: str = "auto",
           handle_signals: bool = False, announce: Callable[[str], None] | None = stderr_line,
           threshold: float = AB_THRESHOLD, confidence: float = 0.95, rules: list[Rule] | None = None,
           stats: tuple[str, ...] = AB_STATS, min_change_ms: float = AB_MIN_CHANGE_MS,
           labels: tuple[str, str] = (BASELINE, CANDIDATE), parameters: dict[str, Any] | None = None,
           noise: NoiseLimits | None = AB_LIMITS, judge_noisy: bool = False,
           service_cpus: Iterable[int] | None = None, started: Iterable[str] | None = None,
           segments: int = 1, restart: Restart | None = None) -> ABResult:
    """Alternate ``plan``'s load between ``baseline`` and ``candidate`` (URLs) in blocks, write one run
    directory and judge the candidate against the baseline, paired by blocks (see the module docstring).

    ``plan``: an open-model plan (``shapes.constant`` ...). ``block_s``: a block's length, adjusted so
    the plan holds whole pairs. ``seed``: the order of the blocks. The verdict's settings are
    ``perfbench.compare.paired.paired_compare``'s. ``noise``: when the run counts as too noisy to judge
    (``perfbench.compare.noise``; default ``AB_LIMITS``: a side whose arrivals were capped or unsent;
    None: never); ``judge_noisy`` judges anyway. ``service_cpus``: the CPUs both services were pinned
    to, if they were; ``started``: the order perfbench started them in, if it did (both recorded in
    ``meta.json``). ``segments``: cut the run into this many parts of whole pairs, and before each part but
    the first call ``restart(segment)``, which stops both services and starts them anew (in
    ``restart_order``; what it returns is recorded as that segment's ``started``). Each part then holds
    its own pair of processes: an offset between two processes (one read ~1.5% slower for a whole run)
    cancels over an even number of parts, and what is left of it reaches the interval as spread.
    """
    if getattr(plan, "model", None) != "open":
        raise ConfigError("an A/B run takes an open-model plan (a rate): the closed model's users would "
                          "carry their state from one side to the other")
    targets = {BASELINE: check_target(baseline, allow_hosts), CANDIDATE: check_target(candidate, allow_hosts)}
    scenario = scenario or single("/")
    pairs, block = schedule(plan.duration, block_s)
    if segments > 1 and restart is None:
        raise ConfigError("segments > 1 restart the services between segments: give restart (perfbench ab: "
                          "--baseline-start and --candidate-start)")
    firsts = segment_starts(pairs, segments)
    order = block_order(pairs, seed)
    bounds = [(round(k * block * 1e9), round((k + 1) * block * 1e9)) for k in range(len(order))]
    bounds[-1] = (bounds[-1][0], max(bounds[-1][1], round(plan.duration * 1e9) + 1))
    wins = windows(plan, bounds)
    options = LoadOptions(max_in_flight=max_in_flight, timeout=timeout, http_path=http_path,
                          handle_signals=handle_signals, parameters=parameters or {},
                          announce=announce or (lambda line: None))
    rd = RunDir.create(Path(runs_dir), run_id or new_run_id(label))
    design: dict[str, Any] = {"baseline": {"target": targets[BASELINE], "label": labels[0]},
              "candidate": {"target": targets[CANDIDATE], "label": labels[1]},
              "block_s": block, "pairs": pairs, "order": "ABBA or BAAB per two pairs, by a seeded coin",
              "seed": seed, "service_cpus": sorted(service_cpus) if service_cpus else None,
              "started": list(started) if started else None,
              "segments": [{"segment": 0, "first_pair": 0, "started": list(started) if started else None}],
              "blocks": [{"block": k, "side": s, "start_s": a / 1e9, "end_s": b / 1e9, "planned": len(w.index)}
                         for k, (s, (a, b), w) in enumerate(zip(order, bounds, wins, strict=True))]}
    meta = start_meta(targets[BASELINE], scenario, plan, options, max_in_flight=max_in_flight, path=None)
    rd.write_meta({**meta, "kind": "ab", "ab": {k: v for k, v in design.items() if k != "blocks"}})
    if announce:
        announce(f"perfbench ab: {plan.expected_requests:.0f} requests over {plan.duration:g} s in {pairs} pairs of "
                 f"{block:g} s blocks; baseline {targets[BASELINE]}, candidate {targets[CANDIDATE]}; run directory "
                 f"{rd.path}")
    journal = Journal(rd.path, schema=AB_SCHEMA)
    sampler = MachineSampler()  # the machine's other load, as every run records it
    sampler.start_sync()
    try:
        totals, end_reason, elapsed, restarted = run_coroutine(
            _run_blocks(targets, plan, scenario, options, order, wins, journal, announce, firsts, restart))
    finally:
        journal.close()
        rd.update_meta(collectors={"machine": sampler.stop_sync(rd.path)})
    design["segments"] += restarted
    elapsed -= sum(r["pause_s"] for r in restarted)
    rd.update_meta(ab={k: v for k, v in design.items() if k != "blocks"})
    return finish(rd, design, totals, end_reason, elapsed, plan.duration, labels=labels, threshold=threshold,
                  confidence=confidence, rules=rules, stats=stats, min_change_ms=min_change_ms, noise=noise,
                  judge_noisy=judge_noisy)


def finish(rd: RunDir, design: dict[str, Any], totals: dict[str, dict[str, int]], end_reason: str, elapsed: float,
           planned_s: float, **verdict: Any) -> ABResult:
    """requests.parquet, meta, both sides' summaries and the verdict, from the journal."""
    from ..analysis.results import Run

    table = convert_journal(rd.path)
    engine_stats = {k: sum(t[k] for t in totals.values()) for k in totals[BASELINE]}
    rd.update_meta(ended_at=utc_now_iso(), end_reason=end_reason,
                   elapsed_s=min(elapsed, planned_s) if end_reason == "completed" else elapsed,
                   rows=table.num_rows, engine_stats=engine_stats, ab_engine_stats=totals)
    run = Run.load(rd.path)
    summary = run.write_summary(table=table)
    block_s = {s: sum(b["end_s"] - b["start_s"] for b in design["blocks"] if b["side"] == s) for s in SIDES}
    summary["sides"] = side_summaries(run, durations=block_s, engine=totals)
    write_json(rd.path / "summary.json", summary)
    labels = verdict.pop("labels")
    limits = verdict.pop("noise", AB_LIMITS)
    noisy = [] if limits is None else ab_reasons(summary, limits)  # each side's generator; the machine once
    notes = [f"{side}: the load generator saturated: " + "; ".join(s["generator"]["saturation_reasons"])
             for side, s in summary["sides"].items() if s["generator"]["saturated"]]
    warnings = []
    if design["baseline"]["target"] == design["candidate"]["target"]:
        warnings.append("both sides are the same target: an A/A test of the method and the machine")
    elif len(design.get("segments") or ()) < 2:
        notes.append("one pair of processes: an offset between two processes of one build (about 1.5% at p50 "
                     "on a 2-CPU machine) is not in the interval; with --baseline-start and --candidate-start, "
                     "perfbench restarts both midway in the other order to cancel it (--segments)")
    if end_reason != "completed":
        notes.append(f"the run ended early ({end_reason}): only the blocks sent are judged")
    ab = paired_compare(run.requests, baseline=labels[0], candidate=labels[1], warnings=warnings, notes=notes,
                        noisy=noisy,
                        design={k: v for k, v in design.items() if k != "blocks"}, **verdict)
    write_json(rd.path / AB_JSON, {**ab.to_dict(), "schedule": design["blocks"]})
    return ABResult(rd.path, rd.run_id, ab, summary, end_reason)


def is_ab_dir(path: str | Path) -> bool:
    """Whether ``path`` is an A/B run directory (``meta.json`` kind ``ab``)."""
    meta = Path(path) / "meta.json"
    if not meta.is_file():
        return False
    try:
        return read_json(meta).get("kind") == "ab"
    except RunDirError:
        return False


def read_verdict(run_dir: str | Path) -> ABComparison:
    """The verdict an A/B run directory holds (``ab.json``), as it was judged when the run ended."""
    from ..compare.paired import from_dict

    path = Path(run_dir) / AB_JSON
    if not path.is_file():
        raise RunDirError(f"{path}: missing; an A/B run directory has its verdict there (was the run cut short? "
                          "perfbench ab writes it when the blocks end)")
    try:
        return from_dict(read_json(path))
    except ConfigError as exc:
        raise RunDirError(f"{path}: {exc}") from None
