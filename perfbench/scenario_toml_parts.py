"""The pieces of a TOML scenario that plain scenarios and user journeys share: a request table,
its variables and checks, the response-reading fields, and reading the file (see
:mod:`perfbench.scenario_toml` for the format)."""

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
    Timeout,
    Var,
    _read_problems,
)

_READ_KEYS = {"timeout", "max_body", "accept_encoding"}
_REQUEST_KEYS = {"name", "method", "path", "weight", "headers", "json", "vars", "expect", "auth", "checks",
                 "graphql", "variables", "follow_redirects", "target", "max_latency"} | _READ_KEYS
_TIMEOUT_KEYS = ("total", "connect", "ttfb", "idle")
_LOGIN_KEYS = {"path", "json", "token_field"}
_CHECK_KEYS = {"json_field", "equals", "body_contains"}


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


def _toml_login(doc: dict[str, Any], problems: list[str]) -> Login | None:
    """A scenario's ``[login]`` table (None without one); what is wrong with it goes into ``problems``."""
    if "login" not in doc:
        return None
    raw = doc["login"]
    if not isinstance(raw, dict):
        problems.append("login: must be a table with path and json")
        return None
    for key in sorted(set(raw) - _LOGIN_KEYS):
        problems.append(f"login: unknown field {_short(key)} (known: {', '.join(sorted(_LOGIN_KEYS))})")
    return Login(raw.get("path"), raw.get("json"), raw.get("token_field", "token"))  # type: ignore[arg-type]
