"""What a virtual user does: named, weighted requests, with variables and checks.

A scenario is data: a list of :class:`Request` with weights, optional random variables that fill
``{placeholders}`` in paths and bodies, checks on the response, and an optional :class:`Login`
whose token is then sent as a bearer header (the token never reaches the run directory). In the
open model the login runs once before the load; in the closed model once per virtual user.

    >>> s = Scenario([Request("health", "GET", "/health", weight=1),
    ...               Request("note", "GET", "/api/notifications/{nid}", weight=3,
    ...                       vars={"nid": IntRange(1, 500)}, expect=(200, 404),
    ...                       checks=(JsonField("id"),))])

Two ways to write one: this Python API (in a notebook, or a ``.py`` file defining ``scenario``),
or a TOML file for simple mixes (:func:`load_toml`; the format is in its docstring). Both are
validated with every problem reported at once, naming the field and what would be right. What a
name on the command line or in a notebook resolves to (``demo``, a file, request paths) is
:func:`perfbench.scenarios.load_scenario`'s business: this module knows no target.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .fields import CONTROL as _CONTROL
from .fields import header_problems, number_problem
from .fields import reason as _reason
from .fields import short as _short
from .fields import utf8_text as _text
from .redaction import redact_url, unredacted

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class IntRange:
    """A random integer in [low, high], both included."""

    low: int
    high: int

    def draw(self, rng: random.Random) -> int:
        return rng.randint(self.low, self.high)


@dataclass(frozen=True)
class Choice:
    """A random element of ``values``."""

    values: tuple[Any, ...]

    def draw(self, rng: random.Random) -> Any:
        return rng.choice(self.values)

    @classmethod
    def from_file(cls, path: str | Path, column: str | None = None) -> Choice:
        """Values from a data file: one per line, or the named ``column`` of a CSV file with a header."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
            raise ConfigError(f"data file {str(path)!r}: cannot read it ({getattr(exc, 'strerror', None) or exc})") \
                from None
        text = _text(data, f"data file {str(path)!r}", "text, one value a line, or a CSV file")
        if column is None:
            values = tuple(line.strip() for line in text.splitlines() if line.strip())
        else:
            import csv

            try:
                rows = list(csv.DictReader(text.splitlines()))
            except csv.Error as exc:
                raise ConfigError(f"data file {str(path)!r}: not a CSV file ({exc})") from None
            if rows and column not in rows[0]:
                raise ConfigError(f"data file {str(path)!r}: no column {column!r} (columns: {', '.join(rows[0])})")
            values = tuple(r[column] for r in rows if r.get(column))
        if not values:
            raise ConfigError(f"data file {str(path)!r}: no values")
        return cls(values)


@dataclass(frozen=True)
class UUID4:
    """A random UUID (from the scenario's seeded generator, so runs are reproducible)."""

    def draw(self, rng: random.Random) -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))


Var = IntRange | Choice | UUID4

_MISSING = object()


@dataclass(frozen=True)
class JsonField:
    """The JSON body has the dotted ``path`` (``"data.items.0.id"``), equal to ``equals`` if given."""

    path: str
    equals: Any = _MISSING

    def __call__(self, status: int, body: bytes) -> str | None:
        try:
            value: Any = json.loads(body)
        except ValueError:
            return "body is not JSON"
        except RecursionError:
            return "body is JSON nested too deeply to read"
        for part in self.path.split("."):
            if isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
                value = value[int(part)]
            elif isinstance(value, dict) and part in value:
                value = value[part]
            else:
                return f"JSON has no field {self.path}"
        if self.equals is not _MISSING and value != self.equals:
            return f"JSON field {self.path} is {_short(value)}, expected {_short(self.equals)}"
        return None


@dataclass(frozen=True)
class BodyContains:
    """The body contains ``text``."""

    text: str

    def __call__(self, status: int, body: bytes) -> str | None:
        return None if self.text.encode() in body else f"body does not contain {self.text!r}"


@dataclass(frozen=True)
class Predicate:
    """Any test of the response: ``fn(status, body) -> bool``, named for the error detail."""

    fn: Callable[[int, bytes], bool]
    name: str = "predicate"

    def __call__(self, status: int, body: bytes) -> str | None:
        try:
            ok = self.fn(status, body)
        except Exception as exc:
            return f"{self.name} raised {type(exc).__name__}: {exc}"
        return None if ok else f"{self.name} failed"


@dataclass(frozen=True)
class NoGraphQLErrors:
    """A GraphQL answer without an ``errors`` list (GraphQL reports failures with HTTP 200)."""

    def __call__(self, status: int, body: bytes) -> str | None:
        try:
            doc = json.loads(body)
        except ValueError:
            return "GraphQL answer is not JSON"
        except RecursionError:
            return "GraphQL answer is JSON nested too deeply to read"
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if errors:
            first = errors[0] if isinstance(errors, list) else errors
            return f"GraphQL errors: {_short(first.get('message') if isinstance(first, dict) else first)}"
        return None


Check = JsonField | BodyContains | Predicate | NoGraphQLErrors


MIN_WEIGHT, MAX_WEIGHT = 1e-6, 1e9  # a weight is a share of the mix: beyond these the mix means nothing


def var_problems(var: Any) -> list[str]:
    if isinstance(var, IntRange):
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (var.low, var.high)) or var.low > var.high:
            return [f"IntRange needs integers low <= high, got {_short(var.low)} and {_short(var.high)}"]
    elif isinstance(var, Choice) and (not isinstance(var.values, tuple | list) or not var.values):
        return ["Choice needs at least one value"]
    return []


def check_problems(check: Any) -> list[str]:
    if isinstance(check, JsonField):
        if not isinstance(check.path, str) or not check.path:
            return [f"json_field must be a dotted path (a string such as \"data.id\"), got {_short(check.path)}"]
    elif isinstance(check, BodyContains):
        if not isinstance(check.text, str) or not check.text:
            return [f"body_contains must be a non-empty string, got {_short(check.text)}"]
    elif not callable(check):
        return [f"{_short(check)} is not a check (JsonField, BodyContains, Predicate, NoGraphQLErrors)"]
    return []


@dataclass(frozen=True)
class Request:
    """One kind of request in the mix.

    ``path`` may hold ``{name}`` placeholders filled from ``vars`` on every send; so may the
    string values of ``json``. ``expect`` lists the statuses that count as success (default:
    any status below 400); any other status is an error of kind ``http_4xx`` or ``http_5xx``
    (or ``check`` for an unexpected 2xx/3xx). ``checks`` run on every successful response; the
    first that fails makes the request an error of kind ``check`` with its reason.
    """

    name: str
    method: str = "GET"
    path: str = "/"
    weight: float = 1.0
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    vars: Mapping[str, Var] = field(default_factory=dict)
    expect: tuple[int, ...] | None = None
    auth: bool = True  # send the login token, when the scenario has a login
    checks: tuple[Check, ...] = ()

    @property
    def needs_body(self) -> bool:
        """Whether the response body must be kept for the checks."""
        return bool(self.checks)

    def evaluate(self, status: int, body: bytes | None) -> tuple[str | None, str | None]:
        """``(error kind, detail)`` for a response, or ``(None, None)`` when it is a success."""
        if self.expect is None:
            if status >= 400:
                return ("http_5xx" if status >= 500 else "http_4xx"), None
        elif status not in self.expect:
            kind = ("http_5xx" if status >= 500 else "http_4xx") if status >= 400 else "check"
            return kind, f"status {status} not in {list(self.expect)}"
        for check in self.checks:
            try:
                reason = check(status, body or b"")
            except Exception as exc:  # noqa: BLE001 - whatever a server sends, a check's failure is the request's
                return "check", f"{type(check).__name__} could not judge the response: {_reason(exc)}"
            if reason is not None:
                return "check", reason
        return None, None

    def problems(self, where: str) -> list[str]:
        """Every problem of this request, each naming its field and what would be right."""
        out = []
        if not isinstance(self.name, str) or not self.name:
            out.append(f"{where}: name must not be empty (a string)")
        elif _CONTROL(self.name):
            out.append(f"{where}: name must not contain line breaks or control characters")
        if not isinstance(self.method, str) or self.method.upper() not in METHODS:
            out.append(f"{where}: method {_short(self.method)} is not one of {', '.join(sorted(METHODS))}")
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            out.append(f"{where}: path {_short(self.path)} must start with '/'")
        elif _CONTROL(self.path) or " " in self.path:
            out.append(f"{where}: path {_short(self.path)} must not contain spaces, line breaks or control "
                       f"characters (percent-encode them, e.g. %20)")
        if (bad := number_problem(self.weight, "weight", MIN_WEIGHT, MAX_WEIGHT)) is not None:
            out.append(f"{where}: {bad}")
        out.extend(header_problems(self.headers, f"{where}: headers"))
        if not isinstance(self.vars, Mapping) or not all(isinstance(k, str) and isinstance(v, Var)
                                                          for k, v in self.vars.items()):
            out.append(f"{where}: vars must map names to IntRange, Choice or UUID4")
        else:
            names = set(_PLACEHOLDER.findall(self.path)) if isinstance(self.path, str) else set()
            for missing in sorted(names - set(self.vars)):
                out.append(f"{where}: path placeholder {{{missing}}} has no variable in vars")
            for vname, var in self.vars.items():
                out.extend(f"{where}: vars.{vname}: {p}" for p in var_problems(var))
        if self.json is not None:
            try:
                json.dumps(self.json, allow_nan=False)
            except (TypeError, ValueError, RecursionError) as exc:
                out.append(f"{where}: json must be JSON data (tables, lists, strings, finite numbers, booleans): "
                           f"{_reason(exc)}")
        if self.expect is not None and (not isinstance(self.expect, tuple | list) or not all(
                isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in self.expect)):
            out.append(f"{where}: expect must list HTTP statuses from 100 to 599, got {_short(self.expect)}")
        if not isinstance(self.auth, bool):
            out.append(f"{where}: auth must be true or false, got {_short(self.auth)}")
        if not isinstance(self.checks, tuple | list):
            out.append(f"{where}: checks must be a list of checks (JsonField, BodyContains, Predicate...)")
        else:
            for j, check in enumerate(self.checks):
                out.extend(f"{where}: checks[{j}]: {p}" for p in check_problems(check))
        return out

    @property
    def is_static(self) -> bool:
        return not self.vars

    def render(self, rng: random.Random) -> tuple[str, bytes | None]:
        """The path and body bytes for one send."""
        if not self.vars:
            return self.path, _body(self.json)
        values = {k: v.draw(rng) for k, v in self.vars.items()}
        return _fill(self.path, values), _body(_fill(self.json, values))


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _fill(obj: Any, values: Mapping[str, Any]) -> Any:
    """Fill ``{name}`` placeholders of declared variables; any other brace is left alone (GraphQL
    queries and JSON-in-strings are full of them)."""
    if isinstance(obj, str):
        # a string that is exactly one placeholder keeps the variable's type ("{n}" -> 7)
        if obj.startswith("{") and obj.endswith("}") and obj[1:-1] in values:
            return values[obj[1:-1]]
        return _PLACEHOLDER.sub(lambda m: str(values[m[1]]) if m[1] in values else m[0], obj)
    if isinstance(obj, dict):
        return {k: _fill(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill(v, values) for v in obj]
    return obj


def _body(obj: Any) -> bytes | None:
    return None if obj is None else json.dumps(obj, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Login:
    """Log in, and send the answer's JSON field ``token_field`` as ``Authorization: Bearer <token>``
    on every request with ``auth=True``. ``json`` is the body, or a function of the virtual user's
    index returning it (closed model: each user logs in as itself)."""

    path: str
    json: Mapping[str, Any] | Callable[[int], Mapping[str, Any]]
    token_field: str = "token"

    def body(self, vu: int = 0) -> bytes:
        data = self.json(vu) if callable(self.json) else self.json
        return json.dumps(dict(data)).encode()


def login_problems(login: Any) -> list[str]:
    if not isinstance(login, Login):
        return [f"login: a Login, got {type(login).__name__}"]
    out = []
    if not isinstance(login.path, str) or not login.path.startswith("/") or _CONTROL(login.path):
        out.append("login.path: a path starting with '/', e.g. \"/auth/login\"")
    if not (callable(login.json) or isinstance(login.json, Mapping)):
        out.append("login.json: a table, e.g. { email = \"...\", password = \"...\" }, or a function of the user")
    elif isinstance(login.json, Mapping):
        try:
            json.dumps(dict(login.json), allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            out.append(f"login.json: must be JSON data: {type(exc).__name__}")
    if not isinstance(login.token_field, str) or not login.token_field:
        out.append(f"login.token_field: the name of the answer's token field, got {_short(login.token_field)}")
    return out


def graphql(name: str, query: str, variables: Mapping[str, Any] | None = None, *, path: str = "/graphql",
            weight: float = 1.0, **kwargs: Any) -> Request:
    """A GraphQL request: POST ``{"query", "variables"}``; an ``errors`` list in the answer is a
    failed check (GraphQL reports errors with HTTP 200). ``{placeholders}`` in string variables
    are filled from ``vars`` like any JSON body."""
    checks = tuple(kwargs.pop("checks", ())) + (NoGraphQLErrors(),)
    return Request(name, "POST", path, weight=weight, json={"query": query, "variables": dict(variables or {})},
                   checks=checks, **kwargs)


@dataclass(frozen=True)
class Scenario:
    requests: Sequence[Request]
    login: Login | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    seed: int = 0
    name: str = "scenario"

    def __post_init__(self) -> None:
        problems = scenario_problems(self.requests, self.login, self.headers, self.seed, self.name)
        if problems:
            raise ConfigError(f"invalid scenario {_short(self.name)}", problems)

    def describe(self) -> dict[str, Any]:
        """The scenario as plain data for meta.json (login credentials are redacted on write)."""
        return {
            "name": self.name,
            "seed": self.seed,
            "login": None if self.login is None else {
                "path": self.login.path,
                "json": "per-user function" if callable(self.login.json) else dict(self.login.json)},
            "requests": [
                {"name": r.name, "method": r.method, "path": r.path, "weight": r.weight,
                 "vars": {k: _describe_var(v) for k, v in r.vars.items()}, "expect": r.expect,
                 "checks": [repr(c) for c in r.checks]}
                for r in self.requests
            ],
        }


def scenario_problems(requests: Any, login: Any, headers: Any, seed: Any, name: Any,
                      label: str = "requests") -> list[str]:
    """Every problem of a scenario's parts, each with its field (``label[i]`` names a request)."""
    problems = []
    if not isinstance(requests, Sequence) or isinstance(requests, str) or not requests:
        problems.append(f"{label}: a scenario needs at least one request")
        requests = ()
    seen: set[str] = set()
    for i, r in enumerate(requests):
        if r is None:  # refused already (not a table)
            continue
        if not isinstance(r, Request):
            problems.append(f"{label}[{i}]: a Request, got {type(r).__name__}")
            continue
        problems.extend(r.problems(_where(label, i, r.name)))
        if isinstance(r.name, str):
            if r.name in seen:
                problems.append(f"{label}[{i}]: name {r.name!r} is used twice; names must be unique")
            seen.add(r.name)
    problems.extend(header_problems(headers, "headers"))
    if login is not None:
        problems.extend(login_problems(login))
    if isinstance(seed, bool) or not isinstance(seed, int):
        problems.append(f"seed: an integer, got {_short(seed)}")
    if not isinstance(name, str) or _CONTROL(name):
        problems.append(f"name: a string without line breaks, got {_short(name)}")
    return problems


def _where(label: str, i: int, name: Any) -> str:
    """``request[2] (search)``: how a problem names its request."""
    if not isinstance(name, str) or not name:
        return f"{label}[{i}]"
    return f"{label}[{i}] ({name if len(name) <= 40 else name[:37] + '...'})"


def _describe_var(v: Var) -> str:
    if isinstance(v, Choice) and len(v.values) > 5:
        return f"Choice({len(v.values)} values, e.g. {_short(v.values[:3])})"
    return repr(v)


def single(path: str = "/", method: str = "GET", name: str | None = None) -> Scenario:
    """A scenario of one request, for ``perfbench run URL``."""
    shown = redact_url(path)  # a name is written and shown: never a secret of the query
    return Scenario([Request(name or f"{method} {shown}", method, path)], name=name or shown)


def from_paths(specs: Sequence[str]) -> Scenario:
    """Build a scenario from CLI specs ``[NAME=][METHOD ]PATH[*WEIGHT]``, e.g. ``posts=GET /api/posts*3``."""
    requests = []
    for spec in map(unredacted, specs):  # an experiment's redacted parameter stands for the real spec
        name = None
        body = spec
        if "=" in spec.split("/", 1)[0]:
            name, body = spec.split("=", 1)
        weight = 1.0
        if "*" in body:
            body, w = body.rsplit("*", 1)
            try:
                weight = float(w)
            except ValueError:
                raise ConfigError(f"request {spec!r}: weight {w!r} is not a number (e.g. /api/posts*3)") from None
        parts = body.split()
        method, path = (parts[0].upper(), parts[1]) if len(parts) == 2 else ("GET", parts[0] if parts else "")
        requests.append(Request(name or f"{method} {redact_url(path)}", method, path, weight=weight))
    return Scenario(requests, name="cli")


# ------------------------------------------------------------------------------------ TOML scenarios
_TOP_KEYS = {"name", "seed", "headers", "login", "request"}
_REQUEST_KEYS = {"name", "method", "path", "weight", "headers", "json", "vars", "expect", "auth", "checks",
                 "graphql", "variables"}
_LOGIN_KEYS = {"path", "json", "token_field"}
_CHECK_KEYS = {"json_field", "equals", "body_contains"}


def load_toml(path: str | Path) -> Scenario:
    """Read a scenario from a TOML file. Every problem is reported at once, with its field.

    Format::

        name = "shop"                    # optional
        seed = 1                         # optional: random variables are reproducible
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
    if problems:
        raise ConfigError(f"invalid scenario {str(path)!r}", problems)
    return Scenario(requests, login=login, headers=headers, seed=seed, name=name)


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
                                  auth=raw.get("auth", True))
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
