"""User journeys: ordered steps per user, values taken from responses, several user classes.

A :class:`Flow` is a list of :class:`Step` run in order by one virtual user (closed model) or
for one arrival (open model). A step is a :class:`~perfbench.scenario.Request` plus what it takes
from its response into the user's context (:class:`Extract`: a JSON path, a header, a cookie or a
regex), an optional loop (``repeat_while``: send the step again while a context value is present,
at most ``max_repeats`` times) and branches (:class:`Branch`: on the status or a context value,
go to another step or end the flow). Later steps use context values as ``{name}`` placeholders in
their path, headers and JSON body (GraphQL variables included); a step's own random ``vars`` are
drawn once and kept in the context too (register with a fresh email, then log in with it).

A :class:`UserClass` is one population: its weight (or a fixed number of users), its flows (or a
plain weighted mix of requests), its think time, an ``on_start`` flow (register, then log in) and
initial context values. :class:`FlowScenario` is a :class:`~perfbench.scenario.Scenario` made of
flows and user classes; its ``requests`` are every step's request, so everything that reads a
scenario's requests (the HTTP path's choice, the SLO scopes, meta.json) sees them.

    >>> browse = Flow("browse", [
    ...     Step(Request("feed", "GET", "/api/feed?limit=5&cursor={cursor}"),
    ...          extract=[Extract("cursor", json="page.next_cursor", optional=True)],
    ...          repeat_while="cursor", max_repeats=5)])
    >>> scenario = FlowScenario(flows=[browse], context={"cursor": ""})

Everything is validated up front, every problem at once, each naming its flow, step and field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ConfigError
from .fields import CONTROL as _CONTROL
from .fields import header_problems, number_problem
from .fields import short as _short
from .rundir import FLOW_METHOD
from .scenario import (
    _MISSING,
    _PLACEHOLDER,
    MAX_WEIGHT,
    MIN_WEIGHT,
    UUID4,
    Request,
    Scenario,
    _read_problems,
    _redirect_problems,
    login_problems,
    target_problems,
)
from .scenario_hooks import hooks_problems
from .shapes import Constant, Pacing, Uniform
from .shapes.warmup import Warmup

__all__ = ["FLOW_METHOD", "Branch", "Extract", "Flow", "FlowScenario", "Step", "UserClass"]

END = "end"  # a branch's ``goto`` that ends the flow
MAX_REPEATS_LIMIT = 10_000
MAX_FLOW_STEPS = 10_000  # steps one run of a flow may send at most (loops and backward branches included)
# context values every user has: its index, its class's name, and a token new each run (``{run}``: an
# email registered in this run does not collide with the last run's)
BUILTINS = ("vu", "user_class", "run")
FLOW_PREFIX = "flow:"

Think = Constant | Uniform | Pacing


@dataclass(frozen=True)
class Extract:
    """Take one value from a step's response into the user's context, as ``name``.

    Exactly one source: ``json`` (a dotted path, list indexes as numbers: ``data.items.0.id``),
    ``header`` (a response header, case-insensitive), ``cookie`` (a cookie the user's jar holds
    after the response), or ``regex`` (over the body as text: group 1 if it has groups, else the
    match). A missing value is an error of kind ``check`` that stops the flow, unless
    ``optional`` (the name is then unset: a cursor at the last page). A JSON ``null`` is taken as
    it is (present as a key, absent for ``repeat_while`` and branches).
    """

    name: str
    json: str | None = None
    header: str | None = None
    cookie: str | None = None
    regex: str | None = None
    optional: bool = False

    @property
    def source(self) -> tuple[str, str]:
        """``(kind, what)``: the one source given."""
        for kind in ("json", "header", "cookie", "regex"):
            value = getattr(self, kind)
            if value is not None:
                return kind, value
        return "", ""

    def problems(self, where: str) -> list[str]:
        out = []
        if not isinstance(self.name, str) or not re.fullmatch(r"\w+", self.name):
            out.append(f"{where}: name must be a word (letters, digits, _), got {_short(self.name)}")
        given = [k for k in ("json", "header", "cookie", "regex") if getattr(self, k) is not None]
        if len(given) != 1:
            out.append(f"{where}: give exactly one of json, header, cookie, regex (got {', '.join(given) or 'none'})")
        else:
            value = getattr(self, given[0])
            if not isinstance(value, str) or not value:
                out.append(f"{where}.{given[0]}: a non-empty string, got {_short(value)}")
            elif given[0] == "regex":
                try:
                    re.compile(value)
                except re.error as exc:
                    out.append(f"{where}.regex: not a regular expression ({exc})")
        if not isinstance(self.optional, bool):
            out.append(f"{where}.optional: true or false, got {_short(self.optional)}")
        return out


@dataclass(frozen=True)
class Branch:
    """After a step, go to ``goto`` (a step of the same flow, or ``"end"``) when every condition
    given holds: the response's ``status`` is one of these; the context value ``present`` is
    present (not missing, null or empty), and equal to ``equals`` when given; the context value
    ``absent`` is not present. The first branch that holds wins; none: the next step."""

    goto: str
    status: tuple[int, ...] = ()
    present: str | None = None
    absent: str | None = None
    equals: Any = _MISSING

    def holds(self, status: int | None, ctx: Mapping[str, Any]) -> bool:
        if self.status and status not in self.status:
            return False
        if self.present is not None:
            value = ctx.get(self.present)
            if not is_present(value) or (self.equals is not _MISSING and value != self.equals):
                return False
        return self.absent is None or not is_present(ctx.get(self.absent))


def is_present(value: Any) -> bool:
    """A context value counts as present: not missing, not null, not an empty string or list."""
    return value is not None and value != "" and value != [] and value != {}


@dataclass(frozen=True)
class Step:
    """One request of a flow, what it takes from its response, and where the flow goes next."""

    request: Request
    extract: Sequence[Extract] = ()
    repeat_while: str | None = None  # send again while this context value is present
    max_repeats: int = 10  # sends of this step at most, per visit
    branches: Sequence[Branch] = ()

    @property
    def name(self) -> str:
        return self.request.name

    @property
    def needs_body(self) -> bool:
        return self.request.needs_body or any(e.json is not None or e.regex is not None for e in self.extract)


@dataclass(frozen=True)
class Flow:
    """Steps run in order for one user; ``weight``: its share among its class's flows."""

    name: str
    steps: Sequence[Step]
    weight: float = 1.0


@dataclass(frozen=True)
class UserClass:
    """One population of users: its share of the users (``weight``) or a fixed number
    (``users``), its ``flows`` (one picked by weight per iteration) or ``requests`` (a weighted
    mix, as a plain scenario's), its ``think`` time (None: the plan's), its ``on_start`` flow
    (once per user: register, log in) and initial ``context`` values."""

    name: str
    flows: Sequence[Flow] = ()
    requests: Sequence[Request] = ()
    weight: float = 1.0
    users: int | None = None
    think: Think | None = None
    on_start: Flow | None = None
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowScenario(Scenario):
    """A scenario of flows: ``flows`` (one user class, ``default``) or ``user_classes``.

    ``requests`` is filled from the steps (give none); ``on_start`` and ``context`` apply to the
    ``default`` class made from ``flows``. Every other field is a :class:`Scenario`'s.
    """

    requests: Sequence[Request] = ()
    flows: Sequence[Flow] = ()
    user_classes: Sequence[UserClass] = ()
    on_start: Flow | None = None
    context: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = flow_scenario_problems(self)
        try:
            object.__setattr__(self, "warmup", Warmup.parse(self.warmup))
        except ConfigError as exc:
            problems.append(str(exc))
        if problems:
            raise ConfigError(f"invalid scenario {_short(self.name)}", problems)
        if self.flows and not self.user_classes:
            object.__setattr__(self, "user_classes", (_default_class(self),))
        object.__setattr__(self, "requests", tuple(all_requests(self.user_classes)))

    def flow_names(self) -> list[str]:
        """The endpoint names of the flows' own rows (``flow:<name>``), for SLO scopes."""
        names = []
        for uc in self.user_classes:
            for f in (*uc.flows, *([uc.on_start] if uc.on_start else [])):
                names.append(FLOW_PREFIX + f.name)
        return list(dict.fromkeys(names))


    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["user_classes"] = [
            {"name": uc.name, "weight": uc.weight, "users": uc.users, "think": repr(uc.think) if uc.think else None,
             "on_start": _describe_flow(uc.on_start) if uc.on_start else None,
             "flows": [_describe_flow(f) for f in uc.flows], "requests": [r.name for r in uc.requests],
             "context": sorted(uc.context)}
            for uc in self.user_classes]
        return out


def endpoint_names(scenario: Scenario) -> list[str]:
    """The endpoint names a run of ``scenario`` records: its requests, the login's, and a journey's
    flows' own (``flow:<name>``)."""
    names = [r.name for r in scenario.requests] + (["login"] if scenario.login is not None else [])
    return names + (scenario.flow_names() if isinstance(scenario, FlowScenario) else [])


def _default_class(s: FlowScenario) -> UserClass:
    """The one class of users of a scenario given as ``flows``."""
    return UserClass("default", flows=tuple(s.flows), on_start=s.on_start, context=dict(s.context))


def _describe_flow(f: Flow) -> dict[str, Any]:
    return {"name": f.name, "weight": f.weight, "steps": [
        {"name": s.name, "extract": [dict([("name", e.name), e.source]) for e in s.extract],
         **({"repeat_while": s.repeat_while, "max_repeats": s.max_repeats} if s.repeat_while else {}),
         **({"branches": [{k: v for k, v in vars(b).items() if v not in ((), None, _MISSING)} for b in s.branches]}
            if s.branches else {})}
        for s in f.steps]}


def all_requests(classes: Sequence[UserClass]) -> list[Request]:
    """Every request the classes send: their flows' steps and their mixes, each once."""
    out: dict[str, Request] = {}
    for uc in classes:
        for f in (*([uc.on_start] if uc.on_start else []), *uc.flows):
            for s in f.steps:
                out.setdefault(s.name, s.request)
        for r in uc.requests:
            out.setdefault(r.name, r)
    return list(out.values())


def _seq(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def flow_scenario_problems(s: FlowScenario) -> list[str]:
    """Every problem of a flow scenario, each naming its class, flow, step and field."""
    problems: list[str] = []
    classes = s.user_classes
    if not _seq(classes) or not _seq(s.flows):
        return ["flows and user_classes must be lists"]
    if s.flows and classes and tuple(classes) == (_default_class(s),):
        classes = ()  # made from the flows (a copy made by dataclasses.replace)
    if s.requests and tuple(s.requests) != tuple(all_requests(classes or [_default_class(s)])):
        problems.append("requests: a flow scenario's requests are its steps; give flows or user_classes instead")
    if bool(s.flows) == bool(classes):
        problems.append("give flows (one class of users) or user_classes, exactly one of them")
    if classes and (s.on_start is not None or s.context):
        problems.append("on_start and context belong to each user class when user_classes are given")
    implicit = not classes  # the one class made from flows: its problems name the flows alone
    if implicit:
        classes = [_default_class(s)]
    seen_steps: dict[str, Request] = {}
    seen_classes: set[str] = set()
    for k, uc in enumerate(classes):
        if not isinstance(uc, UserClass):
            problems.append(f"user_classes[{k}]: a UserClass, got {type(uc).__name__}")
            continue
        problems.extend(_class_problems(uc, k, seen_steps, seen_classes, implicit))
    problems.extend(header_problems(s.headers, "headers"))
    if s.login is not None:
        problems.extend(login_problems(s.login))
    if isinstance(s.seed, bool) or not isinstance(s.seed, int):
        problems.append(f"seed: an integer, got {_short(s.seed)}")
    if not isinstance(s.name, str) or _CONTROL(s.name):
        problems.append(f"name: a string without line breaks, got {_short(s.name)}")
    problems.extend(_read_problems("scenario", s.timeout, s.max_body, s.accept_encoding))
    problems.extend(_redirect_problems(s.follow_redirects, "follow_redirects"))
    problems.extend(target_problems(s.targets, list(seen_steps.values())))
    if not isinstance(s.cookies, bool):
        problems.append(f"cookies must be true or false, got {s.cookies!r}")
    problems.extend(hooks_problems(s.hooks))
    return problems


def _class_problems(uc: UserClass, k: int, seen_steps: dict[str, Request], seen_classes: set[str],
                    implicit: bool = False) -> list[str]:
    where = f"user_classes[{k}] ({uc.name})" if isinstance(uc.name, str) and uc.name else f"user_classes[{k}]"
    if implicit:
        where = ""
    out = []
    if not isinstance(uc.name, str) or not uc.name or _CONTROL(uc.name):
        out.append(f"{where}: name must be a non-empty string without line breaks")
    elif uc.name in seen_classes:
        out.append(f"{where}: name {uc.name!r} is used twice; names must be unique")
    else:
        seen_classes.add(uc.name)
    if not _seq(uc.flows) or not _seq(uc.requests):
        return [*out, f"{where}: flows and requests must be lists"]
    if bool(uc.flows) == bool(uc.requests):
        out.append(f"{where}: give flows or requests (a weighted mix), exactly one of them")
    if (bad := number_problem(uc.weight, "weight", MIN_WEIGHT, MAX_WEIGHT)) is not None:
        out.append(f"{where}: {bad}")
    if uc.users is not None and (isinstance(uc.users, bool) or not isinstance(uc.users, int) or uc.users < 1):
        out.append(f"{where}.users: a number of users >= 1 (or leave it out and give weight), got {_short(uc.users)}")
    if uc.think is not None and not isinstance(uc.think, Constant | Uniform | Pacing):
        out.append(f"{where}.think: seconds, or Uniform(low, high), got {_short(uc.think)}")
    if not isinstance(uc.context, Mapping) or not all(isinstance(n, str) for n in uc.context):
        out.append(f"{where}.context: a table of names to values")
        context: Mapping[str, Any] = {}
    else:
        context = uc.context
        try:
            json.dumps(dict(context), allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            out.append(f"{where}.context: values must be JSON data (strings, numbers, lists, tables)")
    flows = [*([uc.on_start] if uc.on_start is not None else []), *uc.flows]
    known = set(BUILTINS) | set(context)  # names some step may set: extracts and drawn vars
    for f in flows:
        if isinstance(f, Flow) and _seq(f.steps):
            for st in f.steps:
                if isinstance(st, Step) and isinstance(st.request, Request):
                    known.update(e.name for e in st.extract if isinstance(e, Extract) and isinstance(e.name, str))
                    if isinstance(st.request.vars, Mapping):
                        known.update(n for n in st.request.vars if isinstance(n, str))
    at_start = set(BUILTINS) | set(context)  # what a class flow's first step can use: also what on_start sets
    if isinstance(uc.on_start, Flow) and _seq(uc.on_start.steps):
        for st in uc.on_start.steps:
            if isinstance(st, Step) and isinstance(st.request, Request):
                at_start.update(e.name for e in st.extract if isinstance(e, Extract) and isinstance(e.name, str))
                if isinstance(st.request.vars, Mapping):
                    at_start.update(n for n in st.request.vars if isinstance(n, str))
    flow_names: set[str] = set()
    for j, f in enumerate(flows):
        fw = f"{where}.on_start" if uc.on_start is not None and j == 0 else \
            f"{where}.flows[{j - (uc.on_start is not None)}]"
        fw = fw.lstrip(".")
        if not isinstance(f, Flow):
            out.append(f"{fw}: a Flow, got {type(f).__name__}")
            continue
        fw = f"{fw} ({f.name})" if isinstance(f.name, str) and f.name else fw
        if not isinstance(f.name, str) or not re.fullmatch(r"[\w.\-]+", f.name):
            out.append(f"{fw}: name must be letters, digits, '_', '-' or '.', got {_short(f.name)}")
        elif f.name in flow_names:
            out.append(f"{fw}: name {f.name!r} is used twice in this class")
        flow_names.add(f.name if isinstance(f.name, str) else "")
        if (bad := number_problem(f.weight, "weight", MIN_WEIGHT, MAX_WEIGHT)) is not None:
            out.append(f"{fw}: {bad}")
        out.extend(_flow_problems(f, fw, known, seen_steps))
        on_start = uc.on_start is not None and j == 0
        out.extend(_first_step_problems(f, fw, known, set(BUILTINS) | set(context) if on_start else at_start))
    for i, r in enumerate(uc.requests):
        rw = f"{where}.requests[{i}]"
        if not isinstance(r, Request):
            out.append(f"{rw}: a Request, got {type(r).__name__}")
            continue
        out.extend(_request_problems(r, f"{rw} ({r.name})", known, seen_steps))
    return [p.lstrip(".") for p in out] if implicit else out


def _request_problems(r: Request, where: str, known: set[str], seen: dict[str, Request]) -> list[str]:
    """A step's request problems; its placeholders may name any context value, not only its vars."""
    vars_ = dict(r.vars) if isinstance(r.vars, Mapping) else r.vars
    named = set(_PLACEHOLDER.findall(r.path)) if isinstance(r.path, str) else set()
    stand_in = {n: UUID4() for n in known | named} | vars_ if isinstance(vars_, dict) else vars_
    out = replace(r, vars=stand_in).problems(where)
    for text in _texts(r):
        for name in _PLACEHOLDER.findall(text):
            if name not in known:
                out.append(f"{where}: placeholder {{{name}}} is not a context value (known: "
                           f"{', '.join(sorted(known))})")
    if isinstance(r.name, str) and r.name:
        other = seen.get(r.name)
        if other is not None and other != r:
            out.append(f"{where}: name {r.name!r} is used by another step or request that differs; a name "
                       f"stands for one request (classes may share a step written alike)")
        seen.setdefault(r.name, r)
    return out


def _first_step_problems(f: Flow, fw: str, known: set[str], available: set[str]) -> list[str]:
    """The placeholders of a flow's first step that nothing sets before it is sent (its own extracts
    come after its response): every run of the flow would stop there with a ``check`` error."""
    if not _seq(f.steps) or not f.steps or not isinstance(f.steps[0], Step) \
            or not isinstance(f.steps[0].request, Request):
        return []
    st = f.steps[0]
    own = set(st.request.vars) if isinstance(st.request.vars, Mapping) else set()
    missing = sorted({name for text in _texts(st.request) for name in _PLACEHOLDER.findall(text)
                      if name in known and name not in available and name not in own})
    return [f"{fw}.steps[0] ({st.name}): placeholder {{{name}}} has no value when the flow starts (this is its "
            f"first step; what a step extracts comes after its response): give it a start value in the "
            f"context (context = {{ {name} = \"\" }}) or extract it in on_start" for name in missing]


def _texts(r: Request) -> list[str]:
    """The strings of a request that may hold placeholders: its path, header values, and the JSON
    body's strings."""
    out = [v for v in (r.headers.values() if isinstance(r.headers, Mapping) else ()) if isinstance(v, str)]
    if isinstance(r.path, str):
        out.append(r.path)

    def walk(obj: Any) -> None:
        if isinstance(obj, str):
            out.append(obj)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                if k != "query":  # a GraphQL query is full of braces that are not placeholders
                    walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)
    walk(r.json)
    return out


def _flow_problems(f: Flow, fw: str, known: set[str], seen: dict[str, Request]) -> list[str]:
    if not _seq(f.steps) or not f.steps:
        return [f"{fw}.steps: a flow needs at least one step"]
    out = []
    names = {s.name for s in f.steps if isinstance(s, Step) and isinstance(s.request, Request)}
    for i, st in enumerate(f.steps):
        sw = f"{fw}.steps[{i}]"
        if not isinstance(st, Step) or not isinstance(st.request, Request):
            out.append(f"{sw}: a Step(Request(...)), got {type(st).__name__}")
            continue
        sw = f"{sw} ({st.name})"
        out.extend(_request_problems(st.request, sw, known, seen))
        if not _seq(st.extract):
            out.append(f"{sw}.extract: a list of Extract")
        else:
            for j, e in enumerate(st.extract):
                if not isinstance(e, Extract):
                    out.append(f"{sw}.extract[{j}]: an Extract, got {type(e).__name__}")
                else:
                    out.extend(e.problems(f"{sw}.extract[{j}]"))
        if st.repeat_while is not None and (not isinstance(st.repeat_while, str) or st.repeat_while not in known):
            out.append(f"{sw}.repeat_while: the name of a context value this or an earlier step sets, "
                       f"got {_short(st.repeat_while)}")
        if isinstance(st.max_repeats, bool) or not isinstance(st.max_repeats, int) \
                or not 1 <= st.max_repeats <= MAX_REPEATS_LIMIT:
            out.append(f"{sw}.max_repeats: a number from 1 to {MAX_REPEATS_LIMIT}, got {_short(st.max_repeats)}")
        if not _seq(st.branches):
            out.append(f"{sw}.branches: a list of Branch")
            continue
        for j, b in enumerate(st.branches):
            bw = f"{sw}.branches[{j}]"
            if not isinstance(b, Branch):
                out.append(f"{bw}: a Branch, got {type(b).__name__}")
                continue
            if b.goto != END and b.goto not in names:
                out.append(f"{bw}.goto: a step of flow {f.name!r} ({', '.join(sorted(names))}) or \"end\", "
                           f"got {_short(b.goto)}")
            if not isinstance(b.status, tuple | list) or not all(
                    isinstance(x, int) and not isinstance(x, bool) and 100 <= x <= 599 for x in b.status):
                out.append(f"{bw}.status: a list of HTTP statuses, got {_short(b.status)}")
            for key in ("present", "absent"):
                value = getattr(b, key)
                if value is not None and (not isinstance(value, str) or value not in known):
                    out.append(f"{bw}.{key}: the name of a context value, got {_short(value)}")
            if b.equals is not _MISSING and b.present is None:
                out.append(f"{bw}.equals: compares the value named by present; give present too")
            if not (b.status or b.present or b.absent):
                out.append(f"{bw}: give a condition (status, present or absent); an unconditional jump "
                           f"is the next step")
    return out
