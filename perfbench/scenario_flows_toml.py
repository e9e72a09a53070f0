"""User journeys written as TOML: flows, steps, extraction, loops, branches and user classes.

:func:`perfbench.scenario_toml.load_toml` hands a document with ``[[flow]]``, ``[[user_class]]``
or ``[on_start]`` here. The format (every key of a ``[[request]]`` works in a step)::

    name = "feed"
    [context]                          # initial values of every user's context
    cursor = ""
    [on_start]                         # once per user (closed model) or per arrival (open model)
    name = "signup"
    [[on_start.step]]
    name = "register"
    method = "POST"
    path = "/auth/register"
    json = { email = "u-{run}-{vu}-{tag}@example.com", password = "secret-{tag}" }
    vars = { tag = "uuid" }            # drawn once and kept: the login step sends the same email
    expect = [201]
    [[on_start.step]]
    name = "login"
    method = "POST"
    path = "/auth/login"
    json = { email = "u-{run}-{vu}-{tag}@example.com", password = "secret-{tag}" }
    extract = { token = "token" }      # a JSON path; or { json = , header = , cookie = , regex = }

    [[flow]]
    name = "browse"
    weight = 3                         # among this class's flows (default 1)
    [[flow.step]]
    name = "feed"
    path = "/api/feed?cursor={cursor}"
    headers = { Authorization = "Bearer {token}" }
    extract = { cursor = { json = "page.next_cursor", optional = true } }
    repeat_while = "cursor"            # send again while the value is present
    max_repeats = 5
    branch = [{ status = [404], goto = "end" }]   # goto a step of the flow, or "end"

Every user's context starts with ``vu`` (its index), ``user_class`` and ``run`` (new each run: an
email registered now does not collide with the last run's), then ``[context]``. Several populations: ``[[user_class]]`` tables, each with ``name``, ``weight`` or ``users``,
``think`` (seconds, or ``"LOW..HIGH"``), ``context``, ``on_start``, and ``[[user_class.flow]]``
or ``[[user_class.request]]`` (a weighted mix). Top-level ``flow``/``on_start``/``context``
and ``user_class`` do not mix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ConfigError
from .fields import short as _short
from .scenario import _MISSING, Request
from .scenario_flows import Branch, Extract, Flow, FlowScenario, Step, UserClass
from .scenario_toml_parts import _toml_login, _toml_read, _toml_request
from .shapes import Constant, parse_think

FLOW_TOP_KEYS = {"name", "seed", "headers", "login", "follow_redirects", "cookies", "targets", "timeout", "max_body",
                 "accept_encoding", "flow", "user_class", "on_start", "context", "warmup"}
_STEP_KEYS = {"extract", "repeat_while", "max_repeats", "branch"}
_FLOW_KEYS = {"name", "weight", "step"}
_CLASS_KEYS = {"name", "weight", "users", "think", "context", "on_start", "flow", "request"}
_BRANCH_KEYS = {"goto", "status", "present", "absent", "equals"}
_EXTRACT_KEYS = {"json", "header", "cookie", "regex", "optional"}


def is_flow_document(doc: dict[str, Any]) -> bool:
    return any(k in doc for k in ("flow", "user_class", "on_start"))


def load_flows(doc: dict[str, Any], path: Path) -> FlowScenario:
    """The :class:`FlowScenario` of a TOML document (see the module docstring); every problem at once."""

    problems: list[str] = []
    for key in sorted(set(doc) - FLOW_TOP_KEYS):
        hint = " ([[request]] belongs to a [[user_class]] in a scenario of flows)" if key == "request" else ""
        problems.append(f"unknown field {_short(key)}{hint} (known: {', '.join(sorted(FLOW_TOP_KEYS))})")
    base = path.parent
    flows = [_flow(raw, f"flow[{i}]", base, problems) for i, raw in enumerate(_tables(doc.get("flow", []), "flow",
                                                                                       problems))]
    on_start = _flow(doc["on_start"], "on_start", base, problems) if "on_start" in doc else None
    classes = [_class(raw, i, base, problems) for i, raw in enumerate(_tables(doc.get("user_class", []),
                                                                              "user_class", problems))]
    login = _toml_login(doc, problems)
    read = _toml_read(doc, "scenario", problems)
    fields: dict[str, Any] = dict(
        flows=[f for f in flows if f is not None], user_classes=[c for c in classes if c is not None],
        on_start=on_start, context=doc.get("context", {}), login=login, headers=doc.get("headers", {}),
        seed=doc.get("seed", 0), name=doc.get("name", path.stem), follow_redirects=doc.get("follow_redirects", True),
        cookies=doc.get("cookies", True), targets=doc.get("targets", {}), warmup=doc.get("warmup"), **read)
    try:
        scenario = FlowScenario(**fields)
    except ConfigError as exc:
        problems.extend(exc.problems or [str(exc)])
    if problems:
        raise ConfigError(f"invalid scenario {str(path)!r}", problems)
    return scenario


def _tables(value: Any, where: str, problems: list[str]) -> list[Any]:
    if not isinstance(value, list):
        problems.append(f"{where}: a list of tables ([[{where}]])")
        return []
    return value


def _flow(raw: Any, where: str, base: Path, problems: list[str]) -> Flow | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: a table with name and [[{where}.step]]")
        return None
    name = raw.get("name", "")
    where = f"{where} ({name})" if isinstance(name, str) and name else where
    for key in sorted(set(raw) - _FLOW_KEYS):
        problems.append(f"{where}: unknown field {_short(key)} (known: {', '.join(sorted(_FLOW_KEYS))})")
    steps = []
    for i, s in enumerate(_tables(raw.get("step", []), f"{where}.step", problems)):
        step = _step(s, f"{where}.step[{i}]", base, problems)
        if step is not None:
            steps.append(step)
    if not steps and not problems:
        problems.append(f"{where}: give at least one [[...step]] table")
    return Flow(name, steps, raw.get("weight", 1.0))


def _step(raw: Any, where: str, base: Path, problems: list[str]) -> Step | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a table")
        return None
    name = raw.get("name")
    where = f"{where} ({name})" if isinstance(name, str) and name else where
    request = _toml_request({k: v for k, v in raw.items() if k not in _STEP_KEYS}, where, base, problems)
    if request is None:
        return None
    extracts = []
    raw_extract = raw.get("extract", {})
    if not isinstance(raw_extract, dict):
        problems.append(f"{where}.extract: a table of name = \"json.path\" or name = {{ header = \"...\" }}")
        raw_extract = {}
    for ename, spec in raw_extract.items():
        if isinstance(spec, str):
            extracts.append(Extract(ename, json=spec))
        elif isinstance(spec, dict) and set(spec) <= _EXTRACT_KEYS:
            extracts.append(Extract(ename, **spec))
        else:
            problems.append(f"{where}.extract.{ename}: a JSON path (\"data.id\") or a table with one of json, header, "
                            f"cookie, regex (and optional = true), got {_short(spec)}")
    branches = []
    for j, b in enumerate(_tables(raw.get("branch", []), f"{where}.branch", problems)):
        if not isinstance(b, dict) or not set(b) <= _BRANCH_KEYS or "goto" not in b:
            problems.append(f"{where}.branch[{j}]: {{ goto = \"step\" or \"end\", status = [..] / present = \"name\" "
                            f"[, equals = ...] / absent = \"name\" }}, got {_short(b)}")
            continue
        status = b.get("status", ())
        branches.append(Branch(b["goto"], tuple(status) if isinstance(status, list) else status, b.get("present"),
                               b.get("absent"), b.get("equals", _MISSING)))
    return Step(request, extracts, raw.get("repeat_while"), raw.get("max_repeats", 10), branches)


def _class(raw: Any, i: int, base: Path, problems: list[str]) -> UserClass | None:
    where = f"user_class[{i}]"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a table")
        return None
    name = raw.get("name", "")
    where = f"{where} ({name})" if isinstance(name, str) and name else where
    for key in sorted(set(raw) - _CLASS_KEYS):
        problems.append(f"{where}: unknown field {_short(key)} (known: {', '.join(sorted(_CLASS_KEYS))})")
    flows = [_flow(f, f"{where}.flow[{j}]", base, problems)
             for j, f in enumerate(_tables(raw.get("flow", []), f"{where}.flow", problems))]
    requests: list[Request] = []
    for j, r in enumerate(_tables(raw.get("request", []), f"{where}.request", problems)):
        req = _toml_request(r, f"{where}.request[{j}]", base, problems)
        if req is not None:
            requests.append(req)
    think = raw.get("think")
    if think is not None:
        if isinstance(think, int | float) and not isinstance(think, bool) and think >= 0:
            think = Constant(float(think))
        elif isinstance(think, str):
            try:
                think = parse_think(think)
            except ConfigError as exc:
                problems.append(f"{where}.think: {exc}")
                think = None
        else:
            problems.append(f"{where}.think: seconds (e.g. 1.5) or \"LOW..HIGH\" (e.g. \"0.5..2\"), got {_short(think)}")
            think = None
    on_start = _flow(raw["on_start"], f"{where}.on_start", base, problems) if "on_start" in raw else None
    return UserClass(name, [f for f in flows if f is not None], requests, raw.get("weight", 1.0), raw.get("users"),
                     think, on_start, raw.get("context", {}))
