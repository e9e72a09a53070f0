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
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"data file {str(path)!r}: cannot read it ({exc.strerror})") from None
        if column is None:
            values = tuple(line.strip() for line in text.splitlines() if line.strip())
        else:
            import csv

            rows = list(csv.DictReader(text.splitlines()))
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
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if errors:
            first = errors[0].get("message") if isinstance(errors[0], dict) else errors[0]
            return f"GraphQL errors: {_short(first)}"
        return None


Check = JsonField | BodyContains | Predicate | NoGraphQLErrors


@dataclass(frozen=True)
class Timeout:
    """A request's time limits, in seconds (None: no limit of that kind).

    ``total``: from the send to the end of the body (default: the run's ``timeout``).
    ``connect``: opening a new connection (TCP, and TLS for https). ``ttfb``: from the send to the
    first byte of the response. ``idle``: the longest wait for more of the response, from the
    send and between reads. A request's own values override the scenario's, field by field.
    """

    total: float | None = None
    connect: float | None = None
    ttfb: float | None = None
    idle: float | None = None

    def problems(self, where: str) -> list[str]:
        out = []
        for name in ("total", "connect", "ttfb", "idle"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1e6):
                out.append(f"{where}.timeout.{name}: a number of seconds > 0, got {v!r}")
        return out

    def over(self, base: Timeout) -> Timeout:
        """These limits, with ``base``'s where these have none."""
        return Timeout(*(a if a is not None else b for a, b in zip(
            (self.total, self.connect, self.ttfb, self.idle), (base.total, base.connect, base.ttfb, base.idle),
            strict=True)))


def as_timeout(value: Timeout | float | None) -> Timeout:
    """A ``timeout`` setting as a :class:`Timeout` (a number is the total)."""
    if value is None:
        return Timeout()
    if isinstance(value, Timeout):
        return value
    return Timeout(total=value)


ACCEPT_CODINGS = ("gzip", "x-gzip", "deflate", "identity")  # what perfbench can decode (and so ask for)


def _read_problems(where: str, timeout: Any, max_body: Any, accept_encoding: Any) -> list[str]:
    """Problems of the response-reading fields (of a request or of the scenario)."""
    out = []
    if timeout is not None and not isinstance(timeout, Timeout):
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < 1e6:
            out.append(f"{where}.timeout: seconds > 0 or a Timeout(total=, connect=, ttfb=, idle=), got {timeout!r}")
    elif timeout is not None:
        out.extend(timeout.problems(where))
    if max_body is not None and (isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1):
        out.append(f"{where}.max_body: a number of bytes >= 1, got {max_body!r}")
    if accept_encoding is not None:
        codings = [c.split(";")[0].strip().lower() for c in str(accept_encoding).split(",")] \
            if isinstance(accept_encoding, str) else [None]
        bad = [c for c in codings if c not in ACCEPT_CODINGS]
        if bad:
            out.append(f"{where}.accept_encoding: codings from {', '.join(ACCEPT_CODINGS)} (perfbench decodes "
                       f"only those), got {accept_encoding!r}")
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    # reading the response (see perfbench.engine.reading): None takes the scenario's setting
    timeout: Timeout | float | None = None
    max_body: int | None = None  # body bytes read at most (default 16 MiB): beyond, ``too_large``
    accept_encoding: str | None = None  # the Accept-Encoding sent (default "gzip, deflate")

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
            reason = check(status, body or b"")
            if reason is not None:
                return "check", reason
        return None, None

    def problems(self, where: str) -> list[str]:
        out = []
        if not self.name:
            out.append(f"{where}: name must not be empty")
        if self.method.upper() not in METHODS:
            out.append(f"{where}: method {self.method!r} is not one of {', '.join(sorted(METHODS))}")
        if not self.path.startswith("/"):
            out.append(f"{where}: path {self.path!r} must start with '/'")
        if not (self.weight > 0):
            out.append(f"{where}: weight must be > 0, got {self.weight!r}")
        names = set(_PLACEHOLDER.findall(self.path))
        for missing in sorted(names - set(self.vars)):
            out.append(f"{where}: path placeholder {{{missing}}} has no variable in vars")
        if self.expect is not None and not all(isinstance(c, int) and 100 <= c <= 599 for c in self.expect):
            out.append(f"{where}: expect must list HTTP statuses from 100 to 599, got {list(self.expect)}")
        out.extend(_read_problems(where, self.timeout, self.max_body, self.accept_encoding))
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
    # reading the responses, for every request that does not set its own (see Request)
    timeout: Timeout | float | None = None
    max_body: int | None = None
    accept_encoding: str | None = None

    def __post_init__(self) -> None:
        problems = _read_problems("scenario", self.timeout, self.max_body, self.accept_encoding)
        if not self.requests:
            problems.append("requests: a scenario needs at least one request")
        seen = set()
        for i, r in enumerate(self.requests):
            problems.extend(r.problems(f"requests[{i}] ({r.name or '?'})"))
            if r.name in seen:
                problems.append(f"requests[{i}]: name {r.name!r} is used twice; names must be unique")
            seen.add(r.name)
        if problems:
            raise ConfigError(f"invalid scenario {self.name!r}", problems)

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
                 "checks": [repr(c) for c in r.checks],
                 **{k: v for k, v in (("timeout", _describe_timeout(r.timeout)), ("max_body", r.max_body),
                                      ("accept_encoding", r.accept_encoding)) if v is not None}}
                for r in self.requests
            ],
            **{k: v for k, v in (("timeout", _describe_timeout(self.timeout)), ("max_body", self.max_body),
                                 ("accept_encoding", self.accept_encoding)) if v is not None},
        }


def _describe_timeout(t: Timeout | float | None) -> dict[str, float] | None:
    if t is None:
        return None
    return {k: v for k, v in vars(as_timeout(t)).items() if v is not None}


def _describe_var(v: Var) -> str:
    if isinstance(v, Choice) and len(v.values) > 5:
        return f"Choice({len(v.values)} values, e.g. {_short(v.values[:3])})"
    return repr(v)


def single(path: str = "/", method: str = "GET", name: str | None = None) -> Scenario:
    """A scenario of one request, for ``perfbench run URL``."""
    return Scenario([Request(name or f"{method} {path}", method, path)], name=name or path)


def from_paths(specs: Sequence[str]) -> Scenario:
    """Build a scenario from CLI specs ``[NAME=][METHOD ]PATH[*WEIGHT]``, e.g. ``posts=GET /api/posts*3``."""
    requests = []
    for spec in specs:
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
        requests.append(Request(name or f"{method} {path}", method, path, weight=weight))
    return Scenario(requests, name="cli")


# ------------------------------------------------------------------------------------ TOML scenarios
_READ_KEYS = {"timeout", "max_body", "accept_encoding"}
_TOP_KEYS = {"name", "seed", "headers", "login", "request"} | _READ_KEYS
_REQUEST_KEYS = {"name", "method", "path", "weight", "headers", "json", "vars", "expect", "auth", "checks",
                 "graphql", "variables"} | _READ_KEYS
_TIMEOUT_KEYS = ("total", "connect", "ttfb", "idle")
_LOGIN_KEYS = {"path", "json", "token_field"}
_CHECK_KEYS = {"json_field", "equals", "body_contains"}


def load_toml(path: str | Path) -> Scenario:
    """Read a scenario from a TOML file. Every problem is reported at once, with its field.

    Format::

        name = "shop"                    # optional
        seed = 1                         # optional: random variables are reproducible
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
    read = _toml_read(doc, "scenario", problems)
    if problems:
        raise ConfigError(f"invalid scenario {str(path)!r}", problems)
    return Scenario(requests, login=login, headers=headers, seed=seed, name=str(doc.get("name", path.stem)), **read)


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
    read = _toml_read(raw, where, problems)
    if len(problems) > before:
        return None
    common = dict(weight=float(weight), headers=raw.get("headers", {}), vars=variables,
                  expect=tuple(expect) if expect is not None else None, auth=raw.get("auth", True), **read)
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
