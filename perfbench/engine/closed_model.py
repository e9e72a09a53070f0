"""The closed model: N virtual users, each a session that waits for every response.

Each user logs in once (``Scenario.login``, with its own credentials when ``Login.json`` is a
function of the user index), keeps its token, then loops over the weighted request mix with
think time between requests, for as long as the plan keeps it active (``ClosedPlan.user_spans``).

What a closed model measures: a user waits for each response before sending the next request,
so when the server stalls the load drops with it and the stall hides from the percentiles
(coordinated omission by construction). With ``Pacing`` think time each request has an intended
slot, and latency is measured from the slot, which restores part of the honesty; with
``Constant`` or ``Uniform`` think time the intended time is the actual send. The run's summary
says all this; the open model (``OpenModelEngine``) is the honest one for latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping
from typing import Any

from ..fields import token_problem
from ..scenario import Scenario, max_redirects
from ..shapes import ClosedLoad, Pacing, UserSpan
from .clock import Clock, MonotonicClock
from .cookies import CookieJar
from .follow import Origins, exchange, origins_for
from .open_model import SIGNAL_GRACE_S, SIGNAL_REASONS
from .prepared import PreparedScenario
from .protocols import NO_CONNECTION, ReadSpec, Sender
from .recorder import Recorder
from .redirects import path_of
from .stats import EngineStats

MAX_SLEEP = 0.05
START_BATCH = 256  # users started per event-loop iteration (see run)
LOGIN_ENDPOINT = "login"

# judges a response: (error kind, detail), or (None, None) for a success
Evaluate = Callable[[int, bytes | None], tuple[str | None, str | None]]


class ClosedModelEngine:
    def __init__(self, plan: ClosedLoad, scenario: Scenario, sender: Sender, recorder: Recorder, *,
                 clock: Clock | None = None, max_requests: int | None = None, grace: float = 5.0,
                 progress: Callable[[dict[str, Any]], None] | None = None, progress_every: float = 1.0,
                 worker: int = 0, origins: Origins | None = None):
        self.plan = plan
        self.scenario = scenario
        self.sender = sender
        self.recorder = recorder
        self.clock: Clock = clock or MonotonicClock()
        self.max_requests = max_requests
        self.grace = grace
        self.progress = progress
        self.progress_every = progress_every
        recorder.interval = progress is not None  # live progress reads each interval's rows
        self.stats = EngineStats()
        self._stop_reason: str | None = None
        self._cut_ns: int | None = None  # a signal's end of the grace (run time), see stop()
        self._seq = 0
        self._id_base = worker << 40
        self._t0 = 0
        self._active = 0
        # where redirects lead (the target's sender, and others made on first use)
        self.origins = origins if origins is not None else origins_for(sender)
        self._limits = {r.name: scenario.redirect_limit(r) for r in scenario.requests}
        self._bases = {r.name: scenario.base_of(r) for r in scenario.requests}
        for b in self._bases.values():
            self.origins.for_base(b)  # made now, started by run()

    def stop(self, reason: str = "interrupted") -> None:
        """Stop the users; their requests in flight get the grace, at most SIGNAL_GRACE_S from now
        when the reason is a signal."""
        if self._stop_reason is None:
            self._stop_reason = reason
        if reason in SIGNAL_REASONS:
            cut = self._now() + round(SIGNAL_GRACE_S * 1e9)
            self._cut_ns = cut if self._cut_ns is None else min(self._cut_ns, cut)

    def _now(self) -> int:
        return self.clock.now_ns() - self._t0

    async def _sleep_until(self, t_ns: int) -> bool:
        """Sleep until ``t_ns`` (run time); False if the run was stopped meanwhile."""
        while self._stop_reason is None:
            left = (t_ns - self._now()) / 1e9
            if left <= 0:
                return True
            await self.clock.sleep(min(left, MAX_SLEEP))
        return False

    def _next_id(self) -> int | None:
        if self.max_requests is not None and self._seq >= self.max_requests:
            self.stop("budget")
            return None
        rid = self._id_base | self._seq
        self._seq += 1
        self.stats.planned += 1
        return rid

    async def _exchange(self, rid: int, name: str, method: str, path: str, headers: Mapping[str, str],
                        body: bytes | None, intended: int | None, vu: int, stage: int, evaluate: Evaluate,
                        keep_body: bool, spec: ReadSpec | None = None, limit: int = 0, jar: CookieJar | None = None,
                        base: str | None = None) -> tuple[int | None, bytes | None, str | None]:
        start = self._now()
        if intended is None:  # no schedule: the intended time is the send
            intended = start
        status: int | None = None
        error: str | None = None
        detail: str | None = None
        nbytes = wire = 0
        data: bytes | None = None
        ttfb: int | None = None
        connect = NO_CONNECTION
        self.stats.sent += 1
        try:
            out, hops, url = await exchange(self.origins, method, path, headers, body, keep_body=keep_body,
                                            limit=limit, jar=jar, base=base, spec=spec)
            status, nbytes, data, error, detail = out.status, out.nbytes, out.body, out.error, out.detail
            wire, ttfb, connect = out.wire, out.ttfb_ns, out.connect_ns
            if hops:
                self.recorder.note_redirect(rid, hops, path_of(url))
            if error is None and status is not None:  # a response (else an error)
                error, detail = evaluate(status, data)
        except asyncio.CancelledError:
            self.stats.aborted += 1
            self.recorder.add(rid, name, method, intended, start, self._now(), None, "aborted",
                              "still in flight when the run stopped", 0, vu, stage)
            raise
        except Exception as exc:  # a response check that raised: nothing a server sends may crash the run
            from .classify import classify

            error, detail = classify(exc)
        self.stats.completed += 1
        self.recorder.add(rid, name, method, intended, start, self._now(), status, error, detail, nbytes, vu, stage,
                          wire, ttfb, connect)
        return status, data, error

    async def _login(self, vu: int, stage: int, jar: CookieJar | None = None) -> dict[str, str] | None:
        """Log user ``vu`` in; its bearer header, or None when the login failed (recorded)."""
        login = self.scenario.login
        if login is None:
            return {}
        rid = self._next_id()
        if rid is None:
            return None
        token: list[str] = []

        def evaluate(status: int, data: bytes | None) -> tuple[str | None, str | None]:
            if status != 200:
                return ("http_5xx" if status >= 500 else "http_4xx" if status >= 400 else "check"), \
                    f"login answered {status}"
            import json

            try:
                value = json.loads(data or b"")[login.token_field]
            except (ValueError, KeyError, TypeError, RecursionError):
                return "check", f"no JSON field {login.token_field!r} in the login answer"
            if (problem := token_problem(value)) is not None:
                return "check", f"login answer: {problem}"
            token.append(value)
            return None, None

        await self._exchange(rid, LOGIN_ENDPOINT, "POST", login.path, {"Content-Type": "application/json"},
                             login.body(vu), None, vu, stage, evaluate, True,
                             limit=max_redirects(self.scenario.follow_redirects), jar=jar)
        return {"Authorization": f"Bearer {token[0]}"} if token else None

    async def _user(self, span: UserSpan) -> None:
        vu, stage = span.vu, span.stage
        if not await self._sleep_until(span.start_ns):
            return
        self._active += 1
        try:
            jar = CookieJar() if self.scenario.cookies else None  # the user's own, as a browser's
            auth = await self._login(vu, stage, jar)
            if auth is None:
                return  # a user who cannot log in stops, as a real one would; the failure is recorded
            rng = random.Random((self.plan.seed << 20) ^ (self.scenario.seed << 8) ^ vu)
            prepared = PreparedScenario(self.scenario, auth, rng)
            think = self.plan.think
            pacing_ns = round(think.interval * 1e9) if isinstance(think, Pacing) else None  # the slots' spacing
            slot = self._now()
            while self._stop_reason is None and self._now() < span.stop_ns:
                rid = self._next_id()
                if rid is None:
                    return
                i = prepared.pick()
                req, path, headers, body = prepared.build(i, rid)
                intended = slot if pacing_ns is not None else None
                await self._exchange(rid, req.name, req.method, path, headers, body, intended, vu, stage,
                                     req.evaluate, req.needs_body, prepared.specs[i], self._limits[req.name], jar,
                                     self._bases[req.name])
                if pacing_ns is not None:
                    slot += pacing_ns
                    wake = slot
                else:
                    wake = self._now() + round(think.draw(rng) * 1e9)
                if not await self._sleep_until(min(wake, span.stop_ns)):
                    return
        finally:
            self._active -= 1

    async def run(self, t0_ns: int | None = None) -> EngineStats:
        await self.origins.start()
        self._t0 = self.clock.now_ns() if t0_ns is None else t0_ns
        end_ns = round(self.plan.duration * 1e9)
        reporter = asyncio.create_task(self._report_loop())
        tasks: list[asyncio.Task[None]] = []
        left = [0]  # users not finished
        all_done = asyncio.Event()

        def finished(_task: asyncio.Task[None]) -> None:
            left[0] -= 1
            if not left[0]:
                all_done.set()

        async def wait(until_ns: int | None) -> None:
            """Until every user is done, the run stops, or ``until_ns`` (run time) passes."""
            while left[0] and (until_ns is None or self._now() < until_ns):
                if until_ns is None and (self._stop_reason is not None or self._now() >= end_ns):
                    return
                if until_ns is not None and self._cut_ns is not None and self._now() >= self._cut_ns:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_done.wait(), MAX_SLEEP)

        try:
            # users start START_BATCH per loop iteration: opening thousands of connections at once
            # holds the loop for seconds (each connect to a struggling server costs the kernel ~0.5 ms),
            # and a signal must be heard between batches
            for span in self.plan.user_spans():
                if self._stop_reason is not None:
                    break
                task = asyncio.create_task(self._user(span))
                left[0] += 1
                task.add_done_callback(finished)
                tasks.append(task)
                if len(tasks) % START_BATCH == 0:
                    await asyncio.sleep(0)
            await wait(None)
            if self._stop_reason is not None:
                self.stats.end_reason = self._stop_reason
            # users finish their current request within the grace period (they stop at the plan's end)
            await wait(self._now() + round(self.grace * 1e9))
            if self._cut_ns is not None and self.stats.end_reason == "completed" and self._stop_reason:
                self.stats.end_reason = self._stop_reason
            for t in tasks:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await self.origins.close()
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
        self.recorder.flush()
        self._report(final=True)
        return self.stats

    async def _report_loop(self) -> None:
        while True:
            await self.clock.sleep(self.progress_every)
            self.recorder.flush()
            self._report()

    def _report(self, final: bool = False) -> None:
        if self.progress is None:
            return
        n, (p50, p95, p99), errors = self.recorder.take_interval()

        self.progress({
            "elapsed_s": self._now() / 1e9, "duration_s": self.plan.duration,
            "planned_rps": n / self.progress_every, "completed_rps": n / self.progress_every,
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "errors": errors,
            "in_flight": self._active, "waiting": 0, "total": self.recorder.rows, "final": final,
        })
