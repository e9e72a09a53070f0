"""Scenarios written as TOML files: the format, and every problem reported at once with its field.

:func:`load_toml` reads a file into a :class:`perfbench.scenario.Scenario` (the format is in its
docstring); what the fields mean is ``scenario.py``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ConfigError
from .scenario import (
    _MISSING,
    UUID4,
    BodyContains,
    Check,
    Choice,
    IntRange,
    JsonField,
    Login,
    Request,
    Scenario,
    Timeout,
    Var,
    _read_problems,
    _redirect_problems,
    graphql,
)

_READ_KEYS = {"timeout", "max_body", "accept_encoding"}
_TOP_KEYS = {"name", "seed", "headers", "login", "request", "follow_redirects", "cookies", "targets"} | _READ_KEYS
_REQUEST_KEYS = {"name", "method", "path", "weight", "headers", "json", "vars", "expect", "auth", "checks",
                 "graphql", "variables", "follow_redirects", "target"} | _READ_KEYS
_TIMEOUT_KEYS = ("total", "connect", "ttfb", "idle")
_LOGIN_KEYS = {"path", "json", "token_field"}
_CHECK_KEYS = {"json_field", "equals", "body_contains"}


def load_toml(path: str | Path) -> Scenario:
    """Read a scenario from a TOML file. Every problem is reported at once, with its field.

    Format::

        name = "shop"                    # optional
        seed = 1                         # optional: random variables are reproducible
        follow_redirects = true          # default true (up to 10); false, or a number
        cookies = true                   # default true: each virtual user keeps its cookies
        [targets]                        # optional: other services a request may name
        auth = "http://127.0.0.1:8081"
        timeout = { total = 5, connect = 1, ttfb = 2, idle = 1 }   # optional (or a number: total), s
        max_body = 1048576               # optional: body bytes read at most (default 16 MiB)
        accept_encoding = "identity"     # optional (default "gzip, deflate"); also per request
        [headers]                        # optional, sent on every request
        Accept = "application/json"
        [login]                          # optional: run once, token sent as a bearer header
        path = "/auth/login"
        json = { email = "a@example.com", password = "..." }
        token_field = "token"            # default "token"

        [[request]]
        name = "detail"
        method = "GET"                   # default GET
        path = "/api/items/{id}"
        weight = 3                       # default 1
        expect = [200, 404]              # default: any status below 400
        vars = { id = { int = [1, 500] }, kind = { choice = ["a", "b"] },
                 sku = { file = "skus.txt" }, ref = "uuid" }
        checks = [{ json_field = "id" }, { body_contains = "price" }]
        follow_redirects = false         # optional: this request's own redirect policy
        target = "auth"                  # optional: one of [targets] (or give path as an absolute URL)

        [[request]]
        name = "search"
        graphql = "query($q: String!) { search(q: $q) { id } }"
        variables = { q = "{kind}" }
        path = "/graphql"                # default /graphql for graphql requests

    Data files (``file = ...``) are relative to the TOML file; ``{ file = "x.csv", column = "sku" }``
    takes one column of a CSV file.
    """
    import tomllib

    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"scenario {str(path)!r}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"scenario {str(path)!r}: not valid TOML ({exc})") from None
    problems: list[str] = []
    for key in sorted(set(doc) - _TOP_KEYS):
        problems.append(f"unknown field {key!r} (known: {', '.join(sorted(_TOP_KEYS))})")
    raw_requests = doc.get("request", [])
    if not isinstance(raw_requests, list) or not raw_requests:
        problems.append("request: give at least one [[request]] table")
        raw_requests = []
    requests = []
    for i, raw in enumerate(raw_requests):
        where = f"request[{i}]" + (f" ({raw.get('name')})" if isinstance(raw, dict) and raw.get("name") else "")
        req = _toml_request(raw, where, path.parent, problems)
        if req is not None:
            requests.append(req)
    login = None
    if "login" in doc:
        raw = doc["login"]
        if not isinstance(raw, dict):
            problems.append("login: must be a table with path and json")
        else:
            for key in sorted(set(raw) - _LOGIN_KEYS):
                problems.append(f"login: unknown field {key!r} (known: {', '.join(sorted(_LOGIN_KEYS))})")
            if not isinstance(raw.get("path"), str) or not raw.get("path", "").startswith("/"):
                problems.append("login.path: a path starting with '/', e.g. \"/auth/login\"")
            if not isinstance(raw.get("json"), dict):
                problems.append("login.json: a table, e.g. { email = \"...\", password = \"...\" }")
            if not problems:
                login = Login(raw["path"], raw["json"], raw.get("token_field", "token"))
    seed = doc.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        problems.append(f"seed: an integer, got {seed!r}")
    headers = doc.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        problems.append("headers: a table of strings")
    follow = doc.get("follow_redirects", True)
    problems.extend(_redirect_problems(follow, "follow_redirects"))
    cookies = doc.get("cookies", True)
    if not isinstance(cookies, bool):
        problems.append(f"cookies: true or false, got {cookies!r}")
    targets = doc.get("targets", {})
    if not isinstance(targets, dict) or not all(isinstance(v, str) for v in targets.values()):
        problems.append("targets: a table of base URLs, e.g. auth = \"http://127.0.0.1:8081\"")
        targets = {}
    read = _toml_read(doc, "scenario", problems)
    if problems:
        raise ConfigError(f"invalid scenario {str(path)!r}", problems)
    return Scenario(requests, login=login, headers=headers, seed=seed, name=str(doc.get("name", path.stem)),
                    follow_redirects=follow, cookies=cookies, targets=targets, **read)


def _toml_read(raw: dict[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    """The response-reading fields of a TOML table (timeout as a number or a table)."""
    out: dict[str, Any] = {k: raw[k] for k in ("max_body", "accept_encoding") if k in raw}
    t = raw.get("timeout")
    if isinstance(t, dict):
        unknown = sorted(set(t) - set(_TIMEOUT_KEYS))
        if unknown:
            problems.append(f"{where}.timeout: unknown field {unknown[0]!r} (known: {', '.join(_TIMEOUT_KEYS)})")
            t = None
        else:
            t = Timeout(**t)
    if t is not None:
        out["timeout"] = t
    found = _read_problems(where, out.get("timeout"), out.get("max_body"), out.get("accept_encoding"))
    problems.extend(found)
    return {} if found else out


def _toml_request(raw: Any, where: str, base: Path, problems: list[str]) -> Request | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a table")
        return None
    before = len(problems)
    for key in sorted(set(raw) - _REQUEST_KEYS):
        problems.append(f"{where}: unknown field {key!r} (known: {', '.join(sorted(_REQUEST_KEYS))})")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f"{where}.name: a non-empty string")
        name = ""  # never used: the request is refused below
    weight = raw.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        problems.append(f"{where}.weight: a number > 0, got {weight!r}")
    expect = raw.get("expect")
    if expect is not None and (not isinstance(expect, list) or not all(isinstance(c, int) for c in expect)):
        problems.append(f"{where}.expect: a list of HTTP statuses, e.g. [200, 404]")
    variables = {}
    raw_vars = raw.get("vars", {})
    if not isinstance(raw_vars, dict):
        problems.append(f"{where}.vars: a table of variables")
        raw_vars = {}
    for vname, spec in raw_vars.items():
        var = _toml_var(spec, f"{where}.vars.{vname}", base, problems)
        if var is not None:
            variables[vname] = var
    checks: list[Check] = []
    raw_checks = raw.get("checks", [])
    if not isinstance(raw_checks, list):
        problems.append(f"{where}.checks: a list of tables")
        raw_checks = []
    for j, c in enumerate(raw_checks):
        cw = f"{where}.checks[{j}]"
        if not isinstance(c, dict) or not (set(c) <= _CHECK_KEYS) or not ({"json_field", "body_contains"} & set(c)):
            problems.append(f"{cw}: {{ json_field = \"a.b\" [, equals = ...] }} or {{ body_contains = \"text\" }}")
        elif "json_field" in c:
            checks.append(JsonField(c["json_field"], c.get("equals", _MISSING)))
        else:
            checks.append(BodyContains(str(c["body_contains"])))
    if len(problems) > before:
        return None
    follow = raw.get("follow_redirects")
    if follow is not None:
        problems.extend(_redirect_problems(follow, f"{where}.follow_redirects"))
    read = _toml_read(raw, where, problems)
    if len(problems) > before:
        return None
    common = dict(weight=float(weight), headers=raw.get("headers", {}), vars=variables,
                  expect=tuple(expect) if expect is not None else None, auth=raw.get("auth", True),
                  follow_redirects=follow, target=raw.get("target"), **read)
    if "graphql" in raw:
        return graphql(name, raw["graphql"], raw.get("variables"), path=raw.get("path", "/graphql"),
                       checks=tuple(checks), **common)
    method = str(raw.get("method", "GET")).upper()
    req = Request(name, method, str(raw.get("path", "")), json=raw.get("json"), checks=tuple(checks), **common)
    found = req.problems(where)
    problems.extend(found)
    return None if found else req


def _toml_var(spec: Any, where: str, base: Path, problems: list[str]) -> Var | None:
    if spec == "uuid":
        return UUID4()
    if isinstance(spec, dict) and len(spec.keys() - {"column"}) == 1:
        kind = next(iter(spec.keys() - {"column"}))
        value = spec[kind]
        if kind == "int" and isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value) \
                and value[0] <= value[1]:
            return IntRange(value[0], value[1])
        if kind == "choice" and isinstance(value, list) and value:
            return Choice(tuple(value))
        if kind == "file" and isinstance(value, str):
            try:
                return Choice.from_file(base / value, spec.get("column"))
            except ConfigError as exc:
                problems.append(f"{where}: {exc}")
                return None
    problems.append(f"{where}: one of {{ int = [low, high] }}, {{ choice = [...] }}, {{ file = \"values.txt\" }} "
                    f"or \"uuid\", got {spec!r}")
    return None
