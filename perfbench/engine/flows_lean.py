"""Flows on the lean path's callback interface: the open model's journeys without a Task per arrival.

A run of a flow is a small state machine (:class:`_Run`) driven by the lean sender's ``done``
callbacks: the arrival sends the first step's prebuilt bytes; each response is judged, its values
are taken into the user's context, its row is recorded, and the next step (the same one again
while ``repeat_while`` holds, a branch's, or the next) is built and submitted from the callback.
No Task, no Future, no ``Outcome`` per step. What each flow and step needs is made once (the
steps' bytes, per flow a list saying which steps only go on to the next one, the notes' key of
the flow and of the user class, per class its users' context to copy, or none when no step uses
it), so a step of a plain flow allocates its row (its note in it: ``Recorder.flow_rows``) and its
request's bytes, and nothing else (``benchmarks/flow_overhead.py``: 10-15% more CPU per request
than independent requests on the fake transport, a good part of it the flow's own row).
A step over its ``max_latency`` is ``slow`` when it ends (the flow goes on; its row says so).

The rows are the ones :class:`~perfbench.engine.flows.FlowDriver` records on the awaitable path:
a row per step, a row per run of the flow (``flow:<name>``, method ``FLOW``). Cookies go into the
user's jar from the response heads (asked for when the scenario keeps cookies or a step extracts
a header or a cookie) and out as a ``Cookie`` header. A redirect to follow leaves the fast path
for that step only: a task walks the chain (``follow.py``) and hands the last answer back.
Requests to other services (``targets``, absolute URLs) keep the flow on the awaitable path.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from ..rundir import FLOW_METHOD
from ..scenario import Request, _body, _fill, split_url
from ..scenario_flows import END, FLOW_PREFIX, MAX_FLOW_STEPS, Flow, FlowScenario, Step, UserClass, is_present
from ..wire import REQUEST_ID_HEADER
from .cookies import CookieJar
from .extract import NOT_FOUND, Response, fill_path, fill_text, placeholders, split_path, walk
from .follow import follow
from .lean_conn import LeanKind, header_value, header_values
from .protocols import AT_END, NO_BYTE, NO_CONNECTION, BatchSender, Outcome
from .reading import spec_for, with_accept_encoding
from .recorder import over_limit

if TYPE_CHECKING:
    from .lean import LeanSender

class _Step:
    """A step (or a mix's request) made ready for the lean path, once per request name."""

    __slots__ = ("req", "name", "method", "headers", "template", "raw", "wire", "kind", "heads", "limit",
                 "ep", "path", "plain", "simple", "path_names", "header_names", "body_names", "static_body", "extracts", "vars",
                 "url", "max_ns", "plain_end", "ready")

    def __init__(self, lf: LeanFlows, req: Request, keep_body: bool, heads: bool | str, extracts: list[Any]):
        scenario, sender = lf.scenario, lf.sender
        self.req, self.name, self.method = req, req.name, req.method.upper()
        self.simple = req.expect is None and not req.checks
        h = {**scenario.headers, **req.headers}
        if req.auth and lf.auth:  # the open model's one login (Scenario.login)
            h.update(lf.auth)
        if req.json is not None:
            h.setdefault("Content-Type", "application/json")
        spec = with_accept_encoding(h, spec_for(scenario, req, keep_body))
        self.headers = h
        self.heads = heads
        self.kind: LeanKind = sender.kind(spec, heads=heads)
        self.limit = scenario.redirect_limit(req)
        self.ep = lf.recorder.endpoint(req.name, req.method)
        self.path = split_url(req.path)[1]
        self.url = lf.origins.url(self.path)
        self.path_names = placeholders(self.path)
        # a path whose text around its placeholders is sent as written: the filled values are
        # percent-encoded (fill_path), so the filled path is sent as it is, without yarl
        bare = re.sub(r"\{\w+\}", "x", self.path)
        self.plain = bool(self.path_names) and sender.raw_path(bare) == (sender.base_path + bare).encode("ascii")
        self.header_names = any(placeholders(v) for v in h.values())
        import json

        self.body_names = req.json is not None and bool(placeholders(json.dumps(req.json)))
        self.vars = list(req.vars.items())
        self.static_body = _body(req.json) if not self.body_names and not req.vars else None
        self.template = None if self.header_names else sender.template(self.method, h)
        self.raw: bytes = b"" if self.path_names else sender.raw_path(self.path)
        self.wire: tuple[bytes, bytes] | None = None
        if self.template is not None and not self.path_names and (req.json is None or self.static_body is not None):
            self.wire = self.template.build(self.raw, self.static_body)
        self.extracts = extracts
        self.max_ns = req.max_latency_ns or 0  # a slower success is an error of kind "slow"
        # the common cases, one test each per step: a response judged by its status alone (no
        # expect, no checks, nothing to extract, no max_latency), and bytes prebuilt (nothing drawn)
        self.plain_end = self.simple and not extracts and not self.max_ns
        self.ready = self.wire if not self.vars else None


# a flow (or a mix's request) made ready: its steps, where each name is, per step the Step when
# more than "the next" can follow it (else None), the flow's part of its rows' notes (Recorder.note_key,
# plus one: the step's place counts from 0; 0 for a mix's request: no flow, no step), the flow's endpoint
_Made = tuple[list[_Step], dict[str, int], list[Step | None], int, int]


class _Run:
    """One run of a flow (or one request of a mix: ``flow`` None) for one user, in flight."""

    __slots__ = ("flow", "made", "steps", "moves", "uc", "ctx", "jar", "pos", "seq", "repeats", "rid",
                 "frun", "key", "intended", "start", "nbytes", "stage", "then", "step", "step_rid", "step_start",
                 "step_intended", "error", "detail", "slow")

    def __init__(self, flow: Flow | None, made: _Made, uc: UserClass, ctx: dict[str, Any], jar: CookieJar | None,
                 rid: int, intended: int | None, stage: int, then: Flow | Request | None, class_key: int):
        self.flow, self.made, self.uc, self.ctx, self.jar = flow, made, uc, ctx, jar
        self.steps = made[0]
        self.moves = made[2]  # what can follow each step (None: the next one)
        # each row's note: (its request id, frun, key + its place in the run); see Recorder.note_key
        self.frun = rid if flow is not None else -1
        self.key = made[3] | class_key
        self.pos = self.seq = self.repeats = self.nbytes = 0
        self.rid, self.intended, self.stage, self.then = rid, intended, stage, then
        # step, step_rid, step_start, step_intended, start: set by _send
        self.step: _Step
        self.step_rid: int
        self.step_start: int
        self.step_intended: int
        self.start: int
        self.error: str | None = None
        self.detail: str | None  # set with error
        self.slow: str | None = None  # the first step over its max_latency: the flow goes on, its row says so


_new_run = _Run.__new__


class LeanFlows:
    """The open model's flows on a :class:`~perfbench.engine.protocols.BatchSender`."""

    def __init__(self, engine: Any, sender: BatchSender):
        # engine: the FlowOpenEngine (flows.py) whose arrivals these are, its counters and clock
        self.engine = engine
        scenario = engine.scenario
        assert isinstance(scenario, FlowScenario)
        self.scenario = scenario
        self.sender = cast("LeanSender", sender)  # the one BatchSender: its kinds hand heads over
        self.recorder = engine.recorder
        self.origins = engine.origins
        self.auth = engine._auth
        self._submit = sender.submit
        self._ids = itertools.count()
        self._flow_ids = itertools.count()
        self.run_token = engine.driver.run_token
        self._steps: dict[str, _Step] = {}
        # per flow (by id): its steps made ready, where each name is, what can follow each step
        # (None: the next one), its label for the recorder
        self._flows: dict[int, _Made] = {}
        self._mix: dict[str, _Made] = {}
        self._host = urlsplit(self.origins.base_url).hostname or ""
        self._cookies = scenario.cookies
        # a row with its note (the flow run, the flow's, the class's and the step's labels) in one call
        self._record = self.recorder.flow_rows()
        self._cb = self._step_done  # the sender's callback, bound once
        self._one_class = len(scenario.user_classes) == 1
        self._now = engine._now
        self._real = engine._real_clock
        self._base = engine._id_base
        self._t0 = 0  # engine._t0, read as each arrival begins (set when the run starts)
        self._flow_base = engine._id_base | (1 << 39)
        self._step_base = engine._id_base | (1 << 39) | (1 << 38)
        # per user class: its part of its rows' notes (Recorder.note_key)
        self._class_keys = {uc.name: self.recorder.note_key(None, uc.name) for uc in scenario.user_classes}
        for uc in scenario.user_classes:
            for f in (*([uc.on_start] if uc.on_start else []), *uc.flows):
                for s in f.steps:
                    self._prepare(s.request, s.needs_body, [(e.name, *e.source, e.optional, split_path(e.json or ""))
                                                            for e in s.extract])
            for r in uc.requests:
                self._prepare(r, r.needs_body, [])
        self._flow_eps = {FLOW_PREFIX + f.name: self.recorder.endpoint(FLOW_PREFIX + f.name, FLOW_METHOD)
                          for uc in scenario.user_classes for f in (*([uc.on_start] if uc.on_start else []), *uc.flows)}
        for uc in scenario.user_classes:
            for f in (*([uc.on_start] if uc.on_start else []), *uc.flows):
                self._flows[id(f)] = ([self._steps[s.name] for s in f.steps],
                                      {s.name: i for i, s in enumerate(f.steps)},
                                      [s if s.repeat_while is not None or s.branches else None for s in f.steps],
                                      self.recorder.note_key(f.name, None) + 1, self._flow_eps[FLOW_PREFIX + f.name])
            for r in uc.requests:
                self._mix[r.name] = ([self._steps[r.name]], {}, [None], 0, -1)
        # per user class: the class, its flows (or its mix's requests) each with what _Run needs, their
        # picker (None: only one), its users' context before their own values, its part of the notes,
        # whether its users need a context of their own (a step reads or writes it)
        self._class_plans = [(uc, [(f, self._flows[id(f)]) for f in uc.flows] or
                              [(None, self._mix[r.name]) for r in uc.requests],
                              None if len(uc.flows or uc.requests) == 1 else engine._pick_in[k],
                              {**uc.context, "vu": 0, "user_class": uc.name, "run": engine.driver.run_token},
                              self._class_keys[uc.name], self._uses_context(uc))
                             for k, uc in enumerate(engine._classes)]
        # (flow, made, class, context, steps, moves, its notes' key) when every arrival runs that one flow
        # and no step uses the user's context: begin()'s short way
        self._one: tuple[Flow, _Made, UserClass, dict[str, Any], list[_Step], list[Step | None], int] | None = None
        if self._one_class:
            uc, mains, picker, base, key, own = self._class_plans[0]
            flow, made = mains[0]
            if picker is None and uc.on_start is None and flow is not None and not own:
                self._one = (flow, made, uc, base, made[0], made[2], made[3] | key)
        self._unsent = 0  # steps given a request id but not sent (see sent())

    def _uses_context(self, uc: UserClass) -> bool:
        """A step of the class reads or writes its user's context (else its users share one, unread)."""
        steps = [s for f in (*([uc.on_start] if uc.on_start else []), *uc.flows) for s in f.steps]
        return any(s.repeat_while is not None or s.branches for s in steps) or \
            any(st.path_names or st.header_names or st.body_names or st.vars or st.extracts
                for st in [self._steps[s.name] for s in steps] + [self._steps[r.name] for r in uc.requests])

    def sent(self) -> int:
        """Requests sent so far: every request id given, but those of steps that were not sent."""
        n = next(self._ids)  # the next id: as many have been given
        self._ids = itertools.count(n)  # not used up
        return n - self._unsent

    def _prepare(self, req: Request, keep_body: bool, extracts: list[Any]) -> None:
        if req.name in self._steps:
            return
        # the heads: every one for a step taking a header or cookie, else those that set a cookie
        heads: bool | str = True if any(e[1] in ("header", "cookie") for e in extracts) else \
            "cookies" if self.scenario.cookies else False
        self._steps[req.name] = _Step(self, req, keep_body, heads, extracts)

    # -- starting -------------------------------------------------------------------------------
    def begin(self, arrival: tuple[int, int, int]) -> None:
        """An arrival ``(index, intended, stage)``: a new user of a class picked by weight runs its
        on_start flow, then a flow."""
        eng = self.engine
        self._t0 = eng._t0  # the run's start: the same all run long
        if (one := self._one) is not None:  # the same flow for every arrival, its context unread
            # _Run(flow, made, uc, ctx, None, rid, intended, stage, None, key), without the call (a third cheaper)
            run = _new_run(_Run)
            run.flow, run.made, run.uc, run.ctx, run.steps, run.moves, run.key = one
            run.rid = run.frun = self._flow_base | next(self._flow_ids)
            run.pos = run.seq = run.repeats = run.nbytes = 0
            _, run.intended, run.stage = arrival
            run.jar = run.then = run.error = run.slow = None
            self._send(run)
            return
        index, intended, stage = arrival
        rng = eng._rng
        k = 0 if self._one_class else eng._class_pick.pick(rng)
        uc, mains, picker, base, label, own = self._class_plans[k]
        if own:
            ctx = base.copy()  # the user's context: the class's values, the user class, the run's token
            ctx["vu"] = index
        else:  # nothing reads it, nothing writes it
            ctx = base
        flow, made = mains[0] if picker is None else mains[picker.pick(rng)]
        # the cookie jar (None) is made with the first cookie a response sets (scenario.cookies)
        if uc.on_start is not None:
            self._start(uc.on_start, uc, ctx, None, intended, stage,
                        flow if flow is not None else made[0][0].req)
        elif flow is not None:
            self._send(_Run(flow, made, uc, ctx, None, self._flow_base | next(self._flow_ids), intended, stage,
                            None, label))
        else:
            self._send(_Run(None, made, uc, ctx, None, self._base | next(self._ids), intended, stage, None, label))

    def _start(self, what: Flow | Request, uc: UserClass, ctx: dict[str, Any], jar: CookieJar | None,
               intended: int | None, stage: int, then: Flow | Request | None) -> None:
        if isinstance(what, Request):
            run = _Run(None, self._mix[what.name], uc, ctx, jar, self._base | next(self._ids), intended, stage,
                       None, self._class_keys[uc.name])
        else:
            run = _Run(what, self._flows[id(what)], uc, ctx, jar, self._flow_base | next(self._flow_ids), intended,
                       stage, then, self._class_keys[uc.name])
        self._send(run)

    # -- one step -------------------------------------------------------------------------------
    def _send(self, run: _Run) -> None:
        st = run.steps[run.pos]
        run.step = st
        now = self._now()
        start = now - self._t0
        if run.seq == 0:
            run.start = start
            if run.intended is None:
                run.intended = start
            run.step_intended = run.intended
        else:
            run.step_intended = start
        run.step_start = start
        run.step_rid = rid = self._step_base | next(self._ids) if run.flow is not None else run.rid
        if self.engine._closing:  # the run is over: the flow stops before this step
            self._unsent += 1
            run.error, run.detail = "aborted", f"the run stopped before step {st.name}"
            run.pos -= 1  # this step is among those not sent
            self._end(run, start)
            return
        wire = st.ready if run.jar is None else None  # the bytes made once (the common case)
        if wire is None:
            wire = self._build(run, st)
            if wire is None:  # a value missing: the step ended as a check error
                return
        self._submit(b"%b%d%b" % (wire[0], rid, wire[1]), run, self._cb, st.kind,
                     now if self._real else time.perf_counter_ns())

    def _build(self, run: _Run, st: _Step) -> tuple[bytes, bytes] | None:
        """The step's bytes (around its request id) with the values drawn and the user's context and
        cookies filled in; None when a value is missing (the step has ended as an error of kind check)."""
        ctx = run.ctx
        if st.vars:
            for name, var in st.vars:
                ctx[name] = var.draw(self.engine._rng)
        wire = st.wire
        cookie = None
        if run.jar is not None:
            cookie = run.jar.header(self._host, st.path.split("?", 1)[0] if not st.path_names else "/")
        if wire is None or cookie is not None:
            if st.path_names:
                missing = [n for n in st.path_names if n not in ctx]
                if missing:
                    self._unsent += 1
                    self._step_done(run, None, 0, 0, None, "check",
                                    f"no value for {{{missing[0]}}} in the context", NO_BYTE, NO_CONNECTION, None)
                    return None
                raw = (self.sender.base_path + fill_path(st.path, ctx)).encode("ascii") if st.plain \
                    else self.sender.raw_path(fill_path(st.path, ctx))
            else:
                raw = st.raw
            body = st.static_body if st.static_body is not None or st.req.json is None \
                else _body(_fill(st.req.json, ctx))
            template = st.template
            if template is None or cookie is not None:
                headers = {k: fill_text(v, ctx) for k, v in st.headers.items()} if st.header_names else st.headers
                if cookie is not None:
                    headers = {**{k: v for k, v in headers.items() if k.lower() != "cookie"}, "Cookie": cookie}
                template = self.sender.template(st.method, headers)
            wire = template.build(raw, body)
        return wire

    def _head(self, run: _Run, status: int | None, nbytes: int, wire: int, body: bytes | None, detail: str,
              ttfb: int, connect: int) -> None:
        """A response whose head (or a redirect's Location) the sender handed over: its cookies into
        the jar, a redirect followed, then the step ends as any other."""
        st = run.step
        head: str | None = None
        cookies: tuple[str, ...] = ()
        if st.heads:
            head = detail
            block = detail.encode("latin-1")
            if b"set-cookie" in block.lower():
                cookies = tuple(header_values(block, b"set-cookie"))
                if self._cookies:  # the user's jar, made with its first cookie
                    if run.jar is None:
                        run.jar = CookieJar()
                    run.jar.store(self._host, st.path.split("?", 1)[0], list(cookies))
            location = header_value(block, b"location") if status is not None and 300 <= status < 400 else None
        else:
            location = detail
        if location is not None and st.limit:
            if ttfb == AT_END:  # the first byte came with the whole first answer: now
                ttfb = self.engine._now() - self.engine._t0 - run.step_start
            self._follow(run, Outcome(status, nbytes, body, None, None, wire, None, connect, location), ttfb,
                         connect)
            return
        self._step_done(run, status, nbytes, wire, body, None, None, ttfb, connect, head if head is not None else "",
                        cookies)

    def _follow(self, run: _Run, first: Outcome, ttfb: int, connect: int) -> None:
        """A redirect: a task walks the chain on the awaitable path, then the flow goes on."""
        eng = self.engine
        st = run.step
        if self._cookies and run.jar is None:  # the hops may set cookies
            run.jar = CookieJar()

        async def chain() -> None:
            headers = {**st.headers, REQUEST_ID_HEADER: str(run.step_rid)}
            try:
                out, hops, url = await follow(self.origins, first, st.method, st.url, headers, None,
                                              keep_body=st.kind.keep, limit=st.limit, jar=run.jar)
            except asyncio.CancelledError:
                out, hops, url = Outcome(None, 0, None, "aborted", "still in flight when the run stopped"), 0, ""
            if hops:
                from .redirects import path_of

                self.recorder.note_redirect(run.step_rid, hops, path_of(url))
            self._step_done(run, out.status, out.nbytes, out.wire, out.body, out.error, out.detail, ttfb, connect,
                            out.head, out.set_cookies)

        task = asyncio.get_running_loop().create_task(chain())
        eng._hopping.add(task)
        task.add_done_callback(eng._hopping.discard)

    def _step_done(self, run: _Run, status: int | None, nbytes: int, wire: int, body: bytes | None,
                   error: str | None, detail: str | None, ttfb: int, connect: int, head: Any = None,
                   cookies: tuple[str, ...] = ()) -> None:
        """The lean sender's callback for a step (``Done``), and where every step ends: judge it, take
        its values, record its row, and send the next step or end the flow."""
        if detail is not None and error is None and head is None:  # a head or a Location handed over
            self._head(run, status, nbytes, wire, body, detail, ttfb, connect)
            return
        st = run.step
        end = self._now() - self._t0
        if error is None and status is not None:
            if st.plain_end:  # Request.evaluate without expect or checks, inline; nothing to take, no limit
                if status >= 400:
                    error = "http_5xx" if status >= 500 else "http_4xx"
            else:
                error, detail = self._judge(run, st, status, nbytes, body, head, cookies, end)
        elif error == "aborted":
            self.engine._aborted += 1
        seq = run.seq
        self._record((run.step_rid, st.ep, run.step_intended, run.step_start, end, status, error, detail,
                      nbytes, wire, ttfb, connect, None, run.stage, run.frun, run.key + seq))
        run.seq = seq = seq + 1
        run.nbytes += nbytes
        if error is not None and error != "slow":
            run.error, run.detail = error, f"step {st.name}: {detail or error}"
            self._end(run, end)
            return
        step = run.moves[run.pos]
        if step is None:  # the next step (the common case; a mix's one request ends here)
            pos = run.pos = run.pos + 1
            if pos >= len(run.steps):
                self._end(run, end)
            elif seq >= MAX_FLOW_STEPS:
                self._too_many(run, end)
            else:
                self._send(run)
            return
        run.repeats += 1
        if step.repeat_while is not None and run.repeats < step.max_repeats and seq < MAX_FLOW_STEPS \
                and is_present(run.ctx.get(step.repeat_while)):
            self._send(run)
            return
        goto = None
        for b in step.branches:
            if b.holds(status, run.ctx):
                goto = b.goto
                break
        if goto == END:
            run.pos = len(run.steps)
            self._end(run, end)
            return
        run.pos = run.made[1][goto] if goto is not None else run.pos + 1
        run.repeats = 0
        if run.pos >= len(run.steps):
            self._end(run, end)
        elif seq >= MAX_FLOW_STEPS:
            self._too_many(run, end)
        else:
            self._send(run)

    def _judge(self, run: _Run, st: _Step, status: int, nbytes: int, body: bytes | None, head: Any,
               cookies: tuple[str, ...], end: int) -> tuple[str | None, str | None]:
        """A response's error and detail (None, None: a success): its status and checks, its
        values taken into the context, its time against the step's max_latency."""
        error: str | None = None
        detail: str | None = None
        if st.simple:
            if status >= 400:
                error = "http_5xx" if status >= 500 else "http_4xx"
        else:
            error, detail = st.req.evaluate(status, body)
        if error is None and st.extracts:
            error, detail = self._extract(run, Outcome(status, nbytes, body, head=head, set_cookies=cookies))
        if st.max_ns and error is None and end - run.step_intended > st.max_ns:  # as the recorder would mark it
            error, detail = "slow", over_limit(st.max_ns)
            if run.slow is None:
                run.slow = f"step {st.name}: {detail}"
        return error, detail

    def _too_many(self, run: _Run, end: int) -> None:
        run.error, run.detail = "check", f"more than {MAX_FLOW_STEPS} steps sent in one run of the flow"
        run.pos -= 1
        self._end(run, end)

    def _extract(self, run: _Run, out: Outcome) -> tuple[str | None, str | None]:
        resp = Response(out)
        jar_header = None
        ctx = run.ctx
        for name, kind, what, optional, parts in run.step.extracts:
            if kind == "json":  # the common case, inline: the path was split once
                doc = resp.doc()
                value = walk(doc, parts) if doc is not NOT_FOUND else NOT_FOUND
                if value is not NOT_FOUND:
                    ctx[name] = value
                    continue
            if kind == "cookie" and jar_header is None and run.jar is not None:
                jar_header = run.jar.header(self._host, run.step.path.split("?", 1)[0]) or ""
            value, why = resp.take(kind, what, jar_header)
            if value is NOT_FOUND:
                if optional:
                    ctx.pop(name, None)
                    continue
                return "check", f"step {run.step.name}: {why}"
            ctx[name] = value
        return None, None

    # -- ending ---------------------------------------------------------------------------------
    def _end(self, run: _Run, end: int) -> None:
        flow = run.flow
        if flow is not None:
            error = run.error
            detail = None
            if error is not None:
                detail = run.detail
                rest = [s.name for s in flow.steps[run.pos + 1:]]
                if rest:
                    detail = f"{detail}; not sent: {', '.join(rest)}"
            elif run.slow is not None:
                error, detail = "slow", run.slow
            rid = run.rid
            self._record((rid, run.made[4], run.intended, run.start, end, None, error, detail, run.nbytes,
                          run.nbytes, NO_BYTE, NO_CONNECTION, None, run.stage, rid, run.key + run.seq))
            if run.error is None and run.then is not None:  # a slow on_start goes on
                self._start(run.then, run.uc, run.ctx, run.jar, None, run.stage, None)
                return
        # its slot frees; what is due is sent (as OpenModelEngine._lean_done does for a request)
        eng = self.engine
        in_flight = eng._in_flight
        eng._in_flight = in_flight - 1
        if eng._stop_reason is None and not eng._closing:
            if (nxt := eng._nxt) is not None and nxt[1] <= end:
                if in_flight >= eng.max_in_flight:
                    eng._full_seen = True
                if not eng._pump_due:
                    eng._pump_due = True
                    eng._call_soon(eng._pump_soon)
            elif eng._slow:
                eng._fast()
