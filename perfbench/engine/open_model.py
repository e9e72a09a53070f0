"""The open model: requests are sent at their planned times whatever the server does.

The scheduler wakes on a short tick and sends every arrival that is due; it never sleeps less
than ``MIN_TICK`` because uvloop runs sub-millisecond timers at once and would spin a core.
Latency is measured from each request's intended time, so a stalled server costs every client
that was due during the stall (no coordinated omission); the lag between intended and actual
send is kept per row, and a generator that falls behind is flagged, not passed off as the
server's latency.

In-flight cap: when ``max_in_flight`` requests are outstanding, further arrivals wait in a queue
and go out as slots free. Their latency still counts from their intended time, and the number
that had to wait is reported (``capped``): the cap is visible, never a silent closed loop.

Two ways to send, same records: a sender with the callback interface (``submit``, the lean
path in ``lean.py``) gets prebuilt request bytes and calls back when the response is complete,
with no Task or Future per request; any other sender gets one Task per request awaiting its
``request()`` (the aiohttp path). On a real clock on Linux the scheduler wakes through a
timerfd (:class:`~perfbench.engine.lean.PreciseTimer`) at each arrival's exact time, at most
on a ``TICK_NS`` tick while arrivals are close, instead of the loop's millisecond timers.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..scenario import Request, Scenario
from ..shapes import Arrival, OpenPlan
from .classify import classify, status_kind
from .clock import MonotonicClock
from .lean import PreciseTimer
from .recorder import Recorder
from .senders import Sender

MIN_TICK = 0.001  # seconds; see the module docstring
MAX_SLEEP = 0.05  # wake at least this often to notice a stop request and report progress
TICK_NS = 500_000  # the precise timer's tick while arrivals are close: at most 2,000 wake-ups a second
REQUEST_ID_HEADER = "X-Request-Id"


@dataclass
class EngineStats:
    """What the engine knows about its own behaviour (the generator's side of the summary)."""

    planned: int = 0  # arrivals taken from the plan
    sent: int = 0
    completed: int = 0
    capped: int = 0  # arrivals that found the in-flight cap reached and waited for a slot
    aborted: int = 0  # in flight when the run stopped and the grace period ran out
    max_in_flight_seen: int = 0
    end_reason: str = "completed"
    stop_detail: str | None = None
    extra: dict = field(default_factory=dict)


class OpenModelEngine:
    """Runs one OpenPlan over one Scenario with one Sender, recording into one Recorder."""

    def __init__(self, plan: OpenPlan, scenario: Scenario, sender: Sender, recorder: Recorder, *,
                 clock=None, max_in_flight: int = 10_000, max_requests: int | None = None,
                 grace: float = 5.0, deadline: float | None = None, auth_headers: dict | None = None,
                 progress: Callable[[dict], None] | None = None, progress_every: float = 1.0,
                 worker: int = 0):
        self.plan = plan
        self.scenario = scenario
        self.sender = sender
        self.recorder = recorder
        self.clock = clock or MonotonicClock()
        self.max_in_flight = max_in_flight
        self.max_requests = max_requests
        self.grace = grace
        self.deadline = deadline if deadline is not None else plan.duration + grace
        self.progress = progress
        self.progress_every = progress_every
        self.stats = EngineStats()
        self._stop_reason: str | None = None
        self._tasks: dict[asyncio.Task, Arrival] = {}
        self._closing = False  # set once in-flight requests are being cancelled
        self._waiting: deque = deque()
        self._in_flight = 0
        self._id_base = worker << 40  # request ids stay unique across workers
        self._rng = random.Random(scenario.seed)
        reqs = list(scenario.requests)
        self._requests = reqs
        self._cum = list(itertools.accumulate(r.weight for r in reqs))
        # headers are built once per request kind; only the request id changes per send
        base = {**scenario.headers}
        self._headers = []
        for r in reqs:
            h = {**base, **r.headers}
            if r.auth and auth_headers:
                h.update(auth_headers)
            if r.json is not None:
                h.setdefault("Content-Type", "application/json")
            self._headers.append(h)
        self._static = [r.render(self._rng) if r.is_static else None for r in reqs]
        self._t0 = 0
        self._auto = None
        if callable(getattr(sender, "bind", None)):  # ``auto`` decides now that the requests are known
            self._auto = sender
            self.sender = sender = sender.bind([(r.method.upper(), h, st[1] if st is not None else None)
                                                for r, h, st in zip(reqs, self._headers, self._static, strict=True)])
        self._names = [r.name for r in reqs]
        self._methods = [r.method for r in reqs]
        self._expect = [r.expect for r in reqs]
        self._now = self.clock.now_ns
        self._append = recorder.append
        recorder.interval = progress is not None
        # the callback interface (lean path): request bytes built once per request kind
        self._lean = callable(getattr(sender, "submit", None))
        if self._lean:
            self._templates = [sender.template(r.method, h) for r, h in zip(reqs, self._headers, strict=True)]
            self._wires = [t.build(sender.raw_path(st[0]), st[1]) if st is not None else None
                           for t, st in zip(self._templates, self._static, strict=True)]

    def stop(self, reason: str = "interrupted") -> None:
        """Stop sending (from a signal handler or another task); in-flight requests get the grace."""
        if self._stop_reason is None:
            self._stop_reason = reason

    def _pick(self) -> int:
        if len(self._requests) == 1:
            return 0
        return bisect.bisect_right(self._cum, self._rng.random() * self._cum[-1])

    def _dispatch(self, arrival: Arrival) -> None:
        self.stats.planned += 1
        if self._in_flight >= self.max_in_flight:
            self.stats.capped += 1
            self._waiting.append(arrival)
            return
        self._launch(arrival)

    def _launch(self, arrival: Arrival) -> None:
        if self._lean:
            self._launch_lean(arrival)
            return
        self._in_flight += 1
        if self._in_flight > self.stats.max_in_flight_seen:
            self.stats.max_in_flight_seen = self._in_flight
        task = asyncio.get_running_loop().create_task(self._send(arrival))
        self._tasks[task] = arrival
        task.add_done_callback(self._done)

    def _launch_lean(self, arrival: Arrival) -> None:
        self._in_flight += 1
        if self._in_flight > self.stats.max_in_flight_seen:
            self.stats.max_in_flight_seen = self._in_flight
        i = self._pick()
        rid = self._id_base | arrival.index
        wire = self._wires[i]
        if wire is None:
            path, body = self._requests[i].render(self._rng)
            wire = self._templates[i].build(self.sender.raw_path(path), body)
        start = self._now() - self._t0
        self.stats.sent += 1
        self.sender.submit(b"%b%d%b" % (wire[0], rid, wire[1]), (rid, i, arrival.offset_ns, start, arrival.stage),
                           self._lean_done)

    def _lean_done(self, job, status, nbytes, body, error, detail) -> None:
        """The lean sender's callback: one request ended (response complete, or an error)."""
        self._in_flight -= 1
        rid, i, intended, start, stage = job
        if error is None:
            self.stats.completed += 1
            expect = self._expect[i]
            if expect is None:
                if status >= 400:
                    error = status_kind(status)
            elif status not in expect:
                error = status_kind(status) if status >= 400 else "check"
                detail = f"status {status} not in {list(expect)}"
        elif error == "aborted":
            self.stats.aborted += 1
        else:
            self.stats.completed += 1
        self._append((rid, self._names[i], self._methods[i], intended, start, self._now() - self._t0, status,
                      error, detail, nbytes, None, stage))
        if self._waiting and self._stop_reason is None and not self._closing:
            self._launch_lean(self._waiting.popleft())

    def _done(self, task: asyncio.Task) -> None:
        arrival = self._tasks.pop(task)
        self._in_flight -= 1
        if task.cancelled():  # cancelled before its first step: it never sent, but it was due
            self._abort(arrival, "never sent: cancelled when the run stopped")
        if self._waiting and self._stop_reason is None and not self._closing:
            self._launch(self._waiting.popleft())

    async def _send(self, arrival: Arrival) -> None:
        i = self._pick()
        req: Request = self._requests[i]
        rid = self._id_base | arrival.index
        headers = self._headers[i].copy()
        headers[REQUEST_ID_HEADER] = str(rid)
        static = self._static[i]
        path, body = static if static is not None else req.render(self._rng)
        intended = arrival.offset_ns
        clock = self.clock
        t0 = self._t0
        start = clock.now_ns() - t0
        status = None
        error = detail = None
        nbytes = 0
        self.stats.sent += 1
        try:
            status, nbytes, _ = await self.sender.request(req.method, path, headers, body)
            if req.expect is None:
                if status >= 400:
                    error = status_kind(status)
            elif status not in req.expect:
                error = status_kind(status) if status >= 400 else "check"
                detail = f"status {status} not in {list(req.expect)}"
        except asyncio.CancelledError:
            # recorded, not re-raised: the task ends normally, so _done can tell it from a task
            # cancelled before it ever ran
            self.stats.aborted += 1
            self._record(rid, req, intended, start, None, "aborted", "still in flight when the run stopped",
                         0, arrival.stage)
            return
        except Exception as exc:  # nothing a server does may crash the run
            error, detail = classify(exc)
        self.stats.completed += 1
        self._record(rid, req, intended, start, status, error, detail, nbytes, arrival.stage)

    def _record(self, rid, req, intended, start, status, error, detail, nbytes, stage) -> None:
        end = self.clock.now_ns() - self._t0
        self.recorder.add(rid, req.name, req.method, intended, start, end, status, error, detail, nbytes,
                          None, stage)

    async def run(self, t0_ns: int | None = None) -> EngineStats:
        """Send the plan; ``t0_ns`` (a clock reading) is the run's time zero, default now."""
        clock = self.clock
        if self._auto is not None:
            await self._auto.start_chosen()
        self._t0 = t0 = clock.now_ns() if t0_ns is None else t0_ns
        deadline_ns = round(self.deadline * 1e9)
        budget = self.max_requests
        arrivals = self.plan.arrivals()
        nxt = next(arrivals, None)
        next_report = round(self.progress_every * 1e9)
        last_report_at = 0
        sent_at_report = 0
        recorder = self.recorder
        timer = PreciseTimer.create(TICK_NS) if isinstance(clock, MonotonicClock) else None
        max_sleep_ns = round(MAX_SLEEP * 1e9)
        try:
            await self._schedule(clock, t0, timer, arrivals, nxt, deadline_ns, budget, next_report,
                                 last_report_at, sent_at_report, recorder, max_sleep_ns)
        finally:
            if timer is not None:
                timer.close()
        return self.stats

    async def _schedule(self, clock, t0, timer, arrivals, nxt, deadline_ns, budget, next_report, last_report_at,
                        sent_at_report, recorder, max_sleep_ns) -> None:
        while nxt is not None and self._stop_reason is None:
            now = clock.now_ns() - t0
            while nxt is not None and nxt.offset_ns <= now:
                if budget is not None and self.stats.planned >= budget:
                    self.stop("budget")
                    break
                self._dispatch(nxt)
                nxt = next(arrivals, None)
            if now >= deadline_ns:
                self.stop("deadline")
            if now >= next_report:
                recorder.flush()
                self._report(now, last_report_at, sent_at_report)
                last_report_at, sent_at_report = now, self.stats.planned
                next_report = now + round(self.progress_every * 1e9)
            elif recorder.due:
                recorder.flush()
            if nxt is None or self._stop_reason is not None:
                break
            if timer is not None:
                await timer.sleep_until(min(t0 + nxt.offset_ns, clock.now_ns() + max_sleep_ns))
            else:
                delay = (nxt.offset_ns - (clock.now_ns() - t0)) / 1e9
                await clock.sleep(min(max(delay, MIN_TICK), MAX_SLEEP))
        if timer is not None:
            timer.close()  # no ticks while draining
        if self._stop_reason is not None:
            self.stats.end_reason = self._stop_reason
        await self._drain()
        self.recorder.flush()
        now = clock.now_ns() - t0
        self._report(now, last_report_at, sent_at_report, final=True)

    async def _drain(self) -> None:
        """Give in-flight requests the grace period, then cancel and record the rest."""
        if self._stop_reason is not None:
            self._abort_waiting("never sent: waiting for an in-flight slot when the run stopped")
        if self._lean:
            await self._drain_lean()
            return
        # queued arrivals keep launching as tasks finish (see _done) until the grace runs out
        end = self.clock.now_ns() + round(self.grace * 1e9)
        while self._tasks and (left := (end - self.clock.now_ns()) / 1e9) > 0:
            await asyncio.wait(set(self._tasks), timeout=min(left, MAX_SLEEP * 4))
        if self._tasks:
            self._closing = True
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._abort_waiting("never sent: waiting for an in-flight slot when the grace period ended")

    async def _drain_lean(self) -> None:
        end = self.clock.now_ns() + round(self.grace * 1e9)
        while self._in_flight and (left := (end - self.clock.now_ns()) / 1e9) > 0:
            await self.clock.sleep(min(left, 0.005))
        if self._in_flight:
            self._closing = True
            self.sender.abort_all("aborted", "still in flight when the run stopped")
        self._abort_waiting("never sent: waiting for an in-flight slot when the grace period ended")

    def _abort_waiting(self, detail: str) -> None:
        # arrivals that were due but never sent are recorded as aborted: pretending they never
        # existed would hide the generator's saturation
        while self._waiting:
            self._abort(self._waiting.popleft(), detail)

    def _abort(self, a: Arrival, detail: str) -> None:
        req = self._requests[self._pick()]
        now = self.clock.now_ns() - self._t0
        self.stats.aborted += 1
        self.recorder.add(self._id_base | a.index, req.name, req.method, a.offset_ns, now, now, None,
                          "aborted", detail, 0, None, a.stage)

    def _report(self, now: int, since: int, planned_at_since: int, final: bool = False) -> None:
        if self.progress is None:
            return
        lat, errors = self.recorder.take_interval()
        lat.sort()
        n = len(lat)

        def q(p: float) -> float | None:
            return lat[min(n - 1, int(p * n))] / 1e6 if n else None

        span = max(now - since, 1) / 1e9
        self.progress({
            "elapsed_s": now / 1e9,
            "duration_s": self.plan.duration,
            "planned_rps": (self.stats.planned - planned_at_since) / span,
            "completed_rps": n / span,
            "p50_ms": q(0.50), "p95_ms": q(0.95), "p99_ms": q(0.99),
            "errors": errors,
            "in_flight": self._in_flight,
            "waiting": len(self._waiting),
            "total": self.recorder.rows,
            "final": final,
        })
