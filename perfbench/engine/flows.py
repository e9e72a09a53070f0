"""Flows in the engine: one user's steps in order, values carried between them, a row per step
and a row per run of the flow.

:class:`FlowDriver` runs a flow (``scenario_flows.Flow``) for one :class:`FlowUser` over the
run's :class:`~perfbench.engine.follow.Origins` (both HTTP paths, redirects and cookies as for
any request). Each step is a row, as any request's, tagged with its flow, the flow run's id, its
place in the run and the user's class (``Recorder.note_flow``). When the flow ends, its own row
is recorded: endpoint ``flow:<name>``, method ``FLOW``, latency from the flow's intended time
(the arrival's in the open model) to its last response, bytes summed, and the error of the step
that stopped it (with the steps not sent named in the detail).

:class:`FlowOpenEngine` and :class:`FlowClosedEngine` are the open and closed engines with a
flow per arrival, or per user iteration. Each step awaits the sender's ``request()`` (a Task per
arrival in the open model: the lean path's callback interface is for independent requests).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from ..rundir import FLOW_METHOD
from ..scenario import Request, _body, _fill, split_url
from ..scenario_flows import FLOW_PREFIX, MAX_FLOW_STEPS, Flow, FlowScenario, Step, UserClass, is_present
from ..shapes import Pacing, UserSpan
from ..wire import REQUEST_ID_HEADER
from .closed_model import ClosedModelEngine
from .cookies import CookieJar
from .extract import NOT_FOUND, Response, fill_path, fill_text, placeholders
from .follow import Origins, exchange
from .open_model import ArrivalTuple, OpenModelEngine
from .protocols import NO_CONNECTION, BatchSender, Outcome, ReadSpec, Sender
from .reading import spec_for, with_accept_encoding
from .recorder import Recorder, over_limit
from .redirects import path_of
from .stats import EngineStats

if TYPE_CHECKING:
    from .flows_lean import LeanFlows

FLOW_ID_BIT = 1 << 39  # flow rows' ids (and an open-model flow's steps') live above the plan's indexes


@dataclass
class FlowUser:
    """One virtual user's state: its class, context, cookies and login headers."""

    user_class: UserClass
    ctx: dict[str, Any]
    rng: random.Random
    jar: CookieJar | None
    auth: Mapping[str, str] = field(default_factory=dict)
    vu: int | None = None


class _Prepared:
    """What sending a step needs, computed once per request kind."""

    __slots__ = ("req", "headers", "spec", "limit", "base", "path", "path_names", "header_names", "body_names",
                 "static_body", "method", "max_ns")

    def __init__(self, scenario: FlowScenario, req: Request, keep_body: bool):
        self.req = req
        self.method = req.method.upper()
        h = {**scenario.headers, **req.headers}
        if req.json is not None:
            h.setdefault("Content-Type", "application/json")
        self.spec: ReadSpec = with_accept_encoding(h, spec_for(scenario, req, keep_body))
        self.headers = h
        self.limit = scenario.redirect_limit(req)
        self.base = scenario.base_of(req)
        self.path = split_url(req.path)[1]
        self.path_names = placeholders(self.path)
        self.header_names = any(placeholders(v) for v in h.values())
        self.body_names = req.json is not None and bool(placeholders(_json_text(req.json)))
        self.static_body = _body(req.json) if not self.body_names and not req.vars else None
        self.max_ns = req.max_latency_ns or 0  # a slower success is an error of kind "slow"


def _json_text(obj: Any) -> str:
    import json

    return json.dumps(obj)


class FlowDriver:
    """Runs flows and single requests for users, recording their rows."""

    def __init__(self, scenario: FlowScenario, origins: Origins, recorder: Recorder, stats: EngineStats,
                 now: Callable[[], int], next_id: Callable[[], int | None], worker: int = 0):
        self.scenario = scenario
        self.origins = origins
        self.recorder = recorder
        self.stats = stats
        self.now = now
        self.next_id = next_id
        self._flow_ids = itertools.count()
        self.run_token = secrets.token_hex(4)  # the context's {run}: new every run
        self._flow_base = (worker << 40) | FLOW_ID_BIT
        self._prepared: dict[str, _Prepared] = {}
        for uc in scenario.user_classes:
            for f in (*([uc.on_start] if uc.on_start else []), *uc.flows):
                for s in f.steps:
                    self._prepared.setdefault(s.name, _Prepared(scenario, s.request, s.needs_body))
            for r in uc.requests:
                self._prepared.setdefault(r.name, _Prepared(scenario, r, r.needs_body))

    def flow_id(self) -> int:
        return self._flow_base | next(self._flow_ids)

    async def run(self, flow: Flow, user: FlowUser, intended: int | None, stage: int) -> bool:
        """Run ``flow`` for ``user``; True when it ran to its end, False when a step failed (or the
        budget ran out). The flow's own row is recorded either way (also when it is cancelled)."""
        flow_rid = self.flow_id()
        steps = flow.steps
        index = {s.name: i for i, s in enumerate(steps)}
        uc = user.user_class.name
        start = self.now()
        if intended is None:
            intended = start
        seq = nbytes = 0
        error: str | None = None
        detail: str | None = None
        slow: str | None = None  # the first step over its max_latency: the flow goes on, its row says so
        status: int | None = None
        pos = 0
        try:
            while pos < len(steps):
                step = steps[pos]
                repeats = 0
                while True:
                    rid = self.next_id()
                    if rid is None:
                        error, detail = "aborted", f"the run's request budget ran out before step {step.name}"
                        break
                    out = await self.send(step.request, step, user, rid, intended if seq == 0 else None, stage,
                                          (flow.name, flow_rid, seq, uc))
                    seq += 1
                    nbytes += out.nbytes
                    status = out.status
                    if out.error == "slow":
                        slow = slow or f"step {step.name}: {out.detail}"
                    elif out.error is not None:
                        error, detail = out.error, f"step {step.name}: {out.detail or out.error}"
                        break
                    repeats += 1
                    if step.repeat_while is None or repeats >= step.max_repeats \
                            or not is_present(user.ctx.get(step.repeat_while)) or seq >= MAX_FLOW_STEPS:
                        break
                if error is not None:
                    break
                goto = next((b.goto for b in step.branches if b.holds(status, user.ctx)), None)
                if goto == "end":
                    break
                pos = index[goto] if goto is not None else pos + 1
                if seq >= MAX_FLOW_STEPS and pos < len(steps):
                    error, detail = "check", f"more than {MAX_FLOW_STEPS} steps sent in one run of the flow"
                    break
        except asyncio.CancelledError:
            error, detail = "aborted", "still in flight when the run stopped"
            self._flow_row(flow, flow_rid, intended, start, error, detail, nbytes, user, stage, seq, uc, pos)
            raise
        if error is None and slow is not None:
            self._flow_row(flow, flow_rid, intended, start, "slow", slow, nbytes, user, stage, seq, uc, len(steps))
            return True
        self._flow_row(flow, flow_rid, intended, start, error, detail, nbytes, user, stage, seq, uc,
                       pos if error is not None else len(steps))
        return error is None

    def _flow_row(self, flow: Flow, rid: int, intended: int, start: int, error: str | None, detail: str | None,
                  nbytes: int, user: FlowUser, stage: int, seq: int, uc: str, pos: int) -> None:
        if error is not None:
            rest = [s.name for s in flow.steps[pos + 1:]]
            if rest:
                detail = f"{detail}; not sent: {', '.join(rest)}"
        self.recorder.add(rid, FLOW_PREFIX + flow.name, FLOW_METHOD, intended, start, self.now(), None, error,
                          detail, nbytes, user.vu, stage)
        self.recorder.note_flow(rid, flow.name, rid, seq, uc)

    async def send(self, req: Request, step: Step | None, user: FlowUser, rid: int, intended: int | None,
                   stage: int, tag: tuple[str | None, int | None, int | None, str | None]) -> Outcome:
        """Send one request for ``user`` (a step of a flow, or a request of a class's mix) and
        record its row; its extracts go into the user's context. Returns its outcome (the error
        of a failed extract included)."""
        p = self._prepared[req.name]
        ctx = user.ctx
        for name, var in req.vars.items():  # drawn once, kept: a later step may use them
            ctx[name] = var.draw(user.rng)
        missing = [n for n in p.path_names if n not in ctx]
        path = fill_path(p.path, ctx) if p.path_names else p.path
        headers = {k: fill_text(v, ctx) for k, v in p.headers.items()} if p.header_names else dict(p.headers)
        if req.auth and user.auth:
            headers.update(user.auth)
        headers[REQUEST_ID_HEADER] = str(rid)
        body = p.static_body if p.static_body is not None or req.json is None else _body(_fill(req.json, ctx))
        start = self.now()
        if intended is None:
            intended = start
        if missing:  # an optional value that was not there: the step cannot be sent
            out = Outcome(None, 0, None, "check", f"step {req.name}: no value for {{{missing[0]}}} in the context")
            self._row(rid, req, intended, start, out, user, stage, tag)
            return out
        self.stats.sent += 1
        try:
            out, hops, url = await exchange(self.origins, p.method, path, headers, body, keep_body=p.spec.keep_body,
                                            limit=p.limit, jar=user.jar, base=p.base, spec=p.spec)
            if hops:
                self.recorder.note_redirect(rid, hops, path_of(url))
            if out.error is None and out.status is not None:
                kind, why = req.evaluate(out.status, out.body)
                if kind is None and step is not None and step.extract:
                    kind, why = self._extract(step, out, user, url)
                if kind is not None:
                    out = out._replace(error=kind, detail=why)
        except asyncio.CancelledError:
            self.stats.aborted += 1
            self._row(rid, req, intended, start, Outcome(None, 0, None, "aborted",
                                                         "still in flight when the run stopped"), user, stage, tag)
            raise
        except Exception as exc:  # noqa: BLE001 - nothing a server sends may crash the run
            from .classify import classify

            kind, why = classify(exc)
            out = Outcome(None, 0, None, kind, why)
        self.stats.completed += 1
        return self._row(rid, req, intended, start, out, user, stage, tag, p.max_ns)

    def _extract(self, step: Step, out: Outcome, user: FlowUser, url: str) -> tuple[str | None, str | None]:
        resp = Response(out)
        jar_header = None
        if user.jar is not None and any(e.cookie is not None for e in step.extract):
            u = urlsplit(url)
            jar_header = user.jar.header(u.hostname or "", path_of(url), u.scheme == "https")
        for e in step.extract:
            kind, what = e.source
            value, why = resp.take(kind, what, jar_header)
            if value is NOT_FOUND:
                if e.optional:
                    user.ctx.pop(e.name, None)
                    continue
                return "check", f"step {step.name}: {why}"
            user.ctx[e.name] = value
        return None, None

    def _row(self, rid: int, req: Request, intended: int, start: int, out: Outcome, user: FlowUser, stage: int,
             tag: tuple[str | None, int | None, int | None, str | None], max_ns: int = 0) -> Outcome:
        """Record the step's row; a success slower than ``max_ns`` (its max_latency) is an error
        of kind ``slow`` here already, as the recorder would mark it, so the flow sees it."""
        end = self.now()
        if max_ns and out.error is None and end - intended > max_ns:
            out = out._replace(error="slow", detail=over_limit(max_ns))
        self.recorder.add(rid, req.name, req.method, intended, start, end, out.status, out.error, out.detail,
                          out.nbytes, user.vu, stage, out.wire, out.ttfb_ns,
                          out.connect_ns if out.error != "check" or out.status is not None else NO_CONNECTION)
        self.recorder.note_flow(rid, *tag)
        return out


def class_counts(classes: list[UserClass], n: int) -> list[int]:
    """How many of ``n`` users each class gets: its fixed ``users`` (all of them first, in order,
    while they fit), the rest shared by weight (largest remainder)."""
    counts = [0] * len(classes)
    left = n
    for i, uc in enumerate(classes):
        if uc.users is not None:
            counts[i] = min(uc.users, left)
            left -= counts[i]
    weighted = [i for i, uc in enumerate(classes) if uc.users is None]
    if weighted and left > 0:
        total = sum(classes[i].weight for i in weighted)
        exact = {i: left * classes[i].weight / total for i in weighted}
        for i in weighted:
            counts[i] = int(exact[i])
        for i in sorted(weighted, key=lambda i: (-(exact[i] - int(exact[i])), i))[:left - sum(counts[i] for i in weighted)]:
            counts[i] += 1
    return counts


def assign_classes(classes: list[UserClass], n: int) -> list[int]:
    """The class of each of ``n`` users, interleaved so that any first k users hold the classes in
    about their final proportions (a ramp starts every class at once): smooth weighted round robin."""
    counts = class_counts(classes, n)
    current = [0] * len(classes)
    out = []
    for _ in range(sum(counts)):
        for i, c in enumerate(counts):
            current[i] += c
        best = max(range(len(classes)), key=lambda i: (current[i], -i))
        current[best] -= sum(counts)
        out.append(best)
    return out


def _user(uc: UserClass, vu: int, rng: random.Random, jar: CookieJar | None, auth: Mapping[str, str],
          vu_column: int | None, run: str) -> FlowUser:
    return FlowUser(uc, {**uc.context, "vu": vu, "user_class": uc.name, "run": run}, rng, jar, auth, vu_column)


class _Picker:
    """Weighted choice of a class's flow or request."""

    def __init__(self, weights: list[float]):
        self.cum = list(itertools.accumulate(weights))

    def pick(self, rng: random.Random) -> int:
        if len(self.cum) == 1:
            return 0
        return bisect.bisect_right(self.cum, rng.random() * self.cum[-1])


def _pickers(classes: list[UserClass]) -> list[_Picker]:
    return [_Picker([f.weight for f in uc.flows] if uc.flows else [r.weight for r in uc.requests]) for uc in classes]


class FlowOpenEngine(OpenModelEngine):
    """The open model with a flow per arrival: the arrival picks a user class by weight, runs its
    ``on_start`` flow if it has one (a new user each arrival), then one of its flows (or one
    request of its mix). Latency of the first step and of the flow counts from the arrival's
    intended time."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        scenario = self.scenario
        assert isinstance(scenario, FlowScenario)
        self._classes = list(scenario.user_classes)
        self._class_pick = _Picker([uc.weight for uc in self._classes])
        self._pick_in = _pickers(self._classes)
        self._auth = dict(kwargs.get("auth_headers") or {})
        self._step_ids = itertools.count()
        self.driver = FlowDriver(scenario, self.origins, self.recorder, self.stats, self._run_now, self._step_id,
                                 kwargs.get("worker", 0))
        self._lean_flows: LeanFlows | None = None
        if isinstance(self.sender, BatchSender):
            if all(scenario.base_of(r) is None for r in scenario.requests):
                from .flows_lean import LeanFlows  # the callback path: no Task per arrival

                self._lean_flows = LeanFlows(self, self.sender)
                self._record_row = self.recorder.record  # rows now carry their notes (Recorder.flow_rows)
            else:  # a step to another service: every step awaits request(), a Task per arrival
                self._lean = False
                self._request = cast(Sender, self.sender).request

    def _pump_lean(self, nxt: ArrivalTuple, now: int, full: bool) -> None:
        """Start every due arrival's flow while a slot is free (a slot: a flow in flight); the
        counters in locals, as OpenModelEngine._pump_lean keeps them."""
        flows = self._lean_flows
        assert flows is not None
        arrivals, stats, budget, cap, begin = self._arrivals, self.stats, self.max_requests, self.max_in_flight, \
            flows.begin
        left = -1 if budget is None else max(budget - stats.planned, 0)  # arrivals the budget still allows
        n = self._in_flight
        seen = self._seen_max
        launched = 0
        try:
            while nxt[1] <= now and n < cap:
                if launched == left:
                    self.stop("budget")
                    return
                self._nxt = following = next(arrivals, None)  # first: a sender may call back at once
                n = self._in_flight = n + 1
                if n > seen:
                    seen = n
                launched += 1
                begin(nxt)
                if following is None or self._stop_reason is not None:
                    return
                n = self._in_flight  # as the flow left it (it may have ended at once)
                nxt = following
        finally:
            stats.planned += launched
            if full:
                stats.capped += launched
            self._seen_max = seen

    def _sync_lean_stats(self) -> None:
        if self._lean_flows is not None:  # the flows count their requests as request ids given
            self._sent = self._lean_flows.sent()
        super()._sync_lean_stats()

    def _run_now(self) -> int:
        return self.clock.now_ns() - self._t0

    def _step_id(self) -> int:
        return self._id_base | FLOW_ID_BIT | (1 << 38) | next(self._step_ids)

    async def _send(self, arrival: ArrivalTuple) -> None:
        index, at, stage = arrival
        intended: int | None = at
        rng = self._rng
        k = self._class_pick.pick(rng)
        uc = self._classes[k]
        user = _user(uc, index, random.Random(rng.getrandbits(64)), CookieJar() if self.scenario.cookies else None,
                     self._auth, None, self.driver.run_token)
        try:
            if uc.on_start is not None:
                if not await self.driver.run(uc.on_start, user, intended, stage):
                    return
                intended = None  # the flow starts when on_start ends
            i = self._pick_in[k].pick(rng)
            if uc.flows:
                await self.driver.run(uc.flows[i], user, intended, stage)
            else:
                await self.driver.send(uc.requests[i], None, user, self._id_base | index, intended, stage,
                                       (None, None, None, uc.name))
        except asyncio.CancelledError:
            return  # recorded (see OpenModelEngine._send): the task ends normally


class FlowClosedEngine(ClosedModelEngine):
    """The closed model with user classes: each user belongs to one class (``assign_classes``),
    runs its ``on_start`` flow once, then its flows (or its mix) with its class's think time."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        scenario = self.scenario
        assert isinstance(scenario, FlowScenario)
        self._classes = list(scenario.user_classes)
        whole = getattr(self.plan, "whole", self.plan)  # a shard's users keep the whole plan's classes
        self._of_vu = assign_classes(self._classes, max(whole.max_users, 1))
        self._pick_in = _pickers(self._classes)
        self.driver = FlowDriver(scenario, self.origins, self.recorder, self.stats, self._now, self._next_id,
                                 kwargs.get("worker", 0))

    async def _user(self, span: UserSpan) -> None:
        vu, stage = span.vu, span.stage
        if not await self._sleep_until(span.start_ns):
            return
        self._active += 1
        try:
            k = self._of_vu[vu % len(self._of_vu)]
            uc = self._classes[k]
            jar = CookieJar() if self.scenario.cookies else None
            auth = await self._login(vu, stage, jar)
            if auth is None:
                return
            rng = random.Random((self.plan.seed << 20) ^ (self.scenario.seed << 8) ^ vu)
            user = _user(uc, vu, rng, jar, auth, vu, self.driver.run_token)
            if uc.on_start is not None and not await self.driver.run(uc.on_start, user, None, stage):
                return  # a user who cannot register or log in stops; the failure is recorded
            think = uc.think or self.plan.think
            pacing_ns = round(think.interval * 1e9) if isinstance(think, Pacing) else None
            slot = self._now()
            picker = self._pick_in[k]
            while self._stop_reason is None and self._now() < span.stop_ns:
                intended = slot if pacing_ns is not None else None
                i = picker.pick(rng)
                if uc.flows:
                    await self.driver.run(uc.flows[i], user, intended, stage)
                else:
                    rid = self._next_id()
                    if rid is None:
                        return
                    await self.driver.send(uc.requests[i], None, user, rid, intended, stage, (None, None, None, uc.name))
                if self._stop_reason is not None:
                    return
                if pacing_ns is not None:
                    slot += pacing_ns
                    wake = slot
                else:
                    wake = self._now() + round(think.draw(rng) * 1e9)
                if not await self._sleep_until(min(wake, span.stop_ns)):
                    return
        finally:
            self._active -= 1
