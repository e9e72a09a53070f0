"""Scenarios written as TOML files: the format, and every problem reported at once with its field.

:func:`load_toml` reads a file into a :class:`perfbench.scenario.Scenario` (the format is in its
docstring); what the fields mean, and their checks, are ``scenario.py``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ConfigError
from .fields import reason as _reason
from .fields import short as _short
from .fields import utf8_text as _text
from .scenario import (
    _MISSING,
    UUID4,
    BodyContains,
    Check,
    Choice,
    IntRange,
    JsonField,
    Login,
    NoGraphQLErrors,
    Request,
    Scenario,
    Timeout,
    Var,
    _read_problems,
    _redirect_problems,
    _where,
    scenario_problems,
    target_problems,
)
from .shapes.warmup import Warmup

_READ_KEYS = {"timeout", "max_body", "accept_encoding"}
_TOP_KEYS = {"name", "seed", "headers", "login", "request", "follow_redirects", "cookies", "targets",
             "warmup"} | _READ_KEYS
_REQUEST_KEYS = {"name", "method", "path", "weight", "headers", "json", "vars", "expect", "auth", "checks",
                 "graphql", "variables", "follow_redirects", "target", "max_latency"} | _READ_KEYS
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
        timeout = { total = 5, connect = 1, ttfb = 2, idle = 1 }   # optional (or a number: total), s
        max_body = 1048576               # optional: body bytes read at most (default 16 MiB)
        accept_encoding = "identity"     # optional (default "gzip, deflate"); also per request
        warmup = "30s"                   # optional: left out of the summary and SLOs ("30s", or 500 requests)
        [targets]                        # optional: other services a request may name
        auth = "http://127.0.0.1:8081"
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
        max_latency = "2s"               # optional: a slower response is an error of kind "slow"

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
    doc = _read_toml(path, tomllib)
    problems: list[str] = []
    for key in sorted(set(doc) - _TOP_KEYS):
        problems.append(f"unknown field {_short(key)} (known: {', '.join(sorted(_TOP_KEYS))})")
    raw_requests = doc.get("request", [])
    if not isinstance(raw_requests, list) or not raw_requests:
        problems.append("request: give at least one [[request]] table")
        raw_requests = []
    requests: list[Any] = []
    for i, raw in enumerate(raw_requests):
        requests.append(_toml_request(raw, _where("request", i, raw.get("name") if isinstance(raw, dict) else None),
                                      path.parent, problems))
    login = None
    if "login" in doc:
        raw = doc["login"]
        if not isinstance(raw, dict):
            problems.append("login: must be a table with path and json")
        else:
            for key in sorted(set(raw) - _LOGIN_KEYS):
                problems.append(f"login: unknown field {_short(key)} (known: {', '.join(sorted(_LOGIN_KEYS))})")
            login = Login(raw.get("path"), raw.get("json"), raw.get("token_field", "token"))  # type: ignore[arg-type]
    headers, seed, name = doc.get("headers", {}), doc.get("seed", 0), doc.get("name", path.stem)
    problems.extend(scenario_problems(requests, login, headers, seed, name, label="request"))
    read = _toml_read(doc, "scenario", problems)
    follow, cookies, targets = doc.get("follow_redirects", True), doc.get("cookies", True), doc.get("targets", {})
    problems.extend(_redirect_problems(follow, "follow_redirects"))
    if not isinstance(cookies, bool):
        problems.append(f"cookies: true or false, got {_short(cookies)}")
    problems.extend(target_problems(targets, [r for r in requests if r is not None]))
    try:
        warmup = Warmup.parse(doc.get("warmup"))
    except ConfigError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigError(f"invalid scenario {str(path)!r}", problems)
    return Scenario(requests, login=login, headers=headers, seed=seed, name=name, follow_redirects=follow,
                    cookies=cookies, targets=targets, warmup=warmup, **read)


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


def _read_toml(path: Path, tomllib: Any) -> dict[str, Any]:
    """The TOML document of ``path``: UTF-8 text (a leading byte-order mark is skipped), or a ConfigError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"scenario {str(path)!r}: cannot read it ({exc.strerror})") from None
    text = _text(data, f"scenario {str(path)!r}", "a TOML scenario")
    try:
        doc: dict[str, Any] = tomllib.loads(text)
        return doc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"scenario {str(path)!r}: not valid TOML ({exc})") from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits, arrays nested thousands deep
        raise ConfigError(f"scenario {str(path)!r}: not a TOML file perfbench can read ({_reason(exc)})") from None


def _toml_request(raw: Any, where: str, base: Path, problems: list[str]) -> Request | None:
    """A Request of the raw values (checked with the others by :func:`scenario_problems`); the problems
    of what only TOML has (unknown fields, variable and check tables, graphql) go to ``problems``."""
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a table")
        return None
    for key in sorted(set(raw) - _REQUEST_KEYS):
        problems.append(f"{where}: unknown field {_short(key)} (known: {', '.join(sorted(_REQUEST_KEYS))})")
    variables: dict[str, Var] = {}
    raw_vars = raw.get("vars", {})
    if not isinstance(raw_vars, dict):
        problems.append(f"{where}.vars: a table of variables")
        raw_vars = {}
    for vname, spec in raw_vars.items():
        # a refused variable still stands in for its name, so its placeholder is not reported twice
        variables[vname] = _toml_var(spec, f"{where}.vars.{vname}", base, problems) or UUID4()
    checks: list[Check] = []
    raw_checks = raw.get("checks", [])
    if not isinstance(raw_checks, list):
        problems.append(f"{where}.checks: a list of tables")
        raw_checks = []
    for j, c in enumerate(raw_checks):
        cw = f"{where}.checks[{j}]"
        if not isinstance(c, dict) or not (set(c) <= _CHECK_KEYS) or len({"json_field", "body_contains"} & set(c)) != 1 \
                or ("equals" in c and "json_field" not in c):
            problems.append(f"{cw}: {{ json_field = \"a.b\" [, equals = ...] }} or {{ body_contains = \"text\" }}")
        elif "json_field" in c:
            checks.append(JsonField(c["json_field"], c.get("equals", _MISSING)))
        else:
            checks.append(BodyContains(c["body_contains"]))
    expect = raw.get("expect")
    common: dict[str, Any] = dict(weight=raw.get("weight", 1.0), headers=raw.get("headers", {}), vars=variables,
                                  expect=tuple(expect) if isinstance(expect, list) else expect,
                                  auth=raw.get("auth", True), follow_redirects=raw.get("follow_redirects"),
                                  target=raw.get("target"), max_latency=raw.get("max_latency"),
                                  **_toml_read(raw, where, problems))
    name = raw.get("name", "")
    if "graphql" not in raw:
        if "variables" in raw:
            problems.append(f"{where}: variables belong to a graphql request (add graphql = \"query ...\")")
        method = raw.get("method", "GET")
        return Request(name, method.upper() if isinstance(method, str) else method, raw.get("path", ""),
                       json=raw.get("json"), checks=tuple(checks), **common)
    query, gql_vars = raw["graphql"], raw.get("variables", {})
    if not isinstance(query, str) or not query.strip():
        problems.append(f"{where}.graphql: the query, a string such as \"query {{ items {{ id }} }}\"")
    if not isinstance(gql_vars, dict):
        problems.append(f"{where}.variables: a table of the query's variables")
    if "json" in raw or str(raw.get("method", "POST")).upper() != "POST":
        problems.append(f"{where}: a graphql request is a POST of the query; drop method and json")
    return Request(name, "POST", raw.get("path", "/graphql"), json={"query": query, "variables": gql_vars},
                   checks=(*checks, NoGraphQLErrors()), **common)


def _toml_var(spec: Any, where: str, base: Path, problems: list[str]) -> Var | None:
    if spec == "uuid":
        return UUID4()
    if isinstance(spec, dict) and len(spec.keys() - {"column"}) == 1:
        kind = next(iter(spec.keys() - {"column"}))
        value = spec[kind]
        if kind == "int" and isinstance(value, list) and len(value) == 2 and value[0] <= value[1] \
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return IntRange(value[0], value[1])
        if kind == "choice" and isinstance(value, list) and value:
            return Choice(tuple(value))
        if kind == "file" and isinstance(value, str) and isinstance(spec.get("column", ""), str):
            try:
                return Choice.from_file(base / value, spec.get("column"))
            except ConfigError as exc:
                problems.append(f"{where}: {exc}")
                return None
    problems.append(f"{where}: one of {{ int = [low, high] }}, {{ choice = [...] }}, {{ file = \"values.txt\" }} "
                    f"or \"uuid\", got {_short(spec)}")
    return None
