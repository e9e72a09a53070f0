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
or a TOML file for simple mixes (:func:`perfbench.scenario_toml.load_toml`; the format is in its docstring). Both are
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
from .shapes.warmup import Warmup

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
    follow_redirects: bool | int | None = None  # None: the scenario's policy
    target: str | None = None  # the name of one of the scenario's ``targets`` (None: the run's target)
    # reading the response (see perfbench.engine.reading): None takes the scenario's setting
    timeout: Timeout | float | None = None
    max_body: int | None = None  # body bytes read at most (default 16 MiB): beyond, ``too_large``
    accept_encoding: str | None = None  # the Accept-Encoding sent (default "gzip, deflate")
    # a response slower than this (s, or "2s", "500ms"; from the intended send time) is an error of kind ``slow``
    max_latency: float | str | None = None

    @property
    def max_latency_ns(self) -> int | None:
        """``max_latency`` in ns (None: no limit); see :func:`max_latency_problem`."""
        return None if max_latency_problem(self.max_latency, "") else _seconds_ns(self.max_latency)

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
        base, rel = split_url(self.path) if isinstance(self.path, str) else (None, "")
        if not isinstance(self.path, str) or not rel.startswith("/"):
            out.append(f"{where}: path {_short(self.path)} must start with '/' (or be an absolute http(s):// URL)")
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
        if base is not None:
            out.extend(f"{where}: {p}" for p in url_problems(base))
            if self.target is not None:
                out.append(f"{where}: an absolute URL and target = {self.target!r}: give one of them")
        if self.target is not None and not isinstance(self.target, str):
            out.append(f"{where}: target must be the name of one of the scenario's targets, got {_short(self.target)}")
        if self.follow_redirects is not None:
            out.extend(_redirect_problems(self.follow_redirects, f"{where}: follow_redirects"))
        out.extend(_read_problems(where, self.timeout, self.max_body, self.accept_encoding))
        if (bad := max_latency_problem(self.max_latency, where)) is not None:
            out.append(bad)
        return out

    @property
    def is_static(self) -> bool:
        return not self.vars

    @property
    def base_url(self) -> str | None:
        """``scheme://host:port`` of a request given as an absolute URL (None: a path)."""
        return split_url(self.path)[0]

    def render(self, rng: random.Random) -> tuple[str, bytes | None]:
        """The path (without the origin of an absolute URL) and body bytes for one send."""
        path = split_url(self.path)[1]
        if not self.vars:
            return path, _body(self.json)
        values = {k: v.draw(rng) for k, v in self.vars.items()}
        return _fill(path, values), _body(_fill(self.json, values))


_ORIGIN = re.compile(r"(?i)(https?://[^/?#]*)(.*)")


def split_url(path: str) -> tuple[str | None, str]:
    """``(origin, path)`` of an absolute ``http(s)://`` URL (path at least ``/``); ``(None, path)`` else."""
    m = _ORIGIN.fullmatch(path)
    if m is None:
        return None, path
    return m[1], (m[2] or "/") if (m[2] or "/").startswith("/") else "/" + m[2]


def url_problems(url: str) -> list[str]:
    """What is wrong with ``url`` as a base URL to load (no safety check: that is the run's)."""
    from urllib.parse import urlsplit

    try:
        u = urlsplit(url)
        u.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return [f"URL {url!r} is not valid (e.g. http://127.0.0.1:8080)"]
    if u.scheme not in ("http", "https") or not u.hostname:
        return [f"URL {url!r} must be http:// or https:// with a host, e.g. http://127.0.0.1:8080"]
    if u.username or u.password:
        return [f"URL {url!r}: credentials in a URL are not sent; use headers"]
    if "{" in (u.netloc or ""):
        return [f"URL {url!r}: placeholders belong in the path, not the host"]
    return []


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


MAX_REDIRECTS_LIMIT = 100
DEFAULT_MAX_REDIRECTS = 10  # what ``follow_redirects = true`` means (aiohttp's and requests' default too)


def max_redirects(policy: bool | int | None) -> int:
    """The number of redirects followed under ``follow_redirects = policy`` (None or True: 10)."""
    if policy is None or policy is True:
        return DEFAULT_MAX_REDIRECTS
    if policy is False:
        return 0
    return int(policy)


def _redirect_problems(policy: Any, where: str) -> list[str]:
    if isinstance(policy, bool) or (isinstance(policy, int) and 0 <= policy <= MAX_REDIRECTS_LIMIT):
        return []
    return [f"{where} must be true, false or a number of redirects from 0 to {MAX_REDIRECTS_LIMIT}, got {policy!r}"]


@dataclass(frozen=True)
class Scenario:
    """The mix of requests, and what every request of it shares.

    ``follow_redirects``: redirects are followed (``True``: up to 10, ``False``: none, a number:
    up to that many); a request's own ``follow_redirects`` overrides it. ``cookies``: each
    virtual user keeps a cookie jar (closed model; the open model's login cookies are sent with
    every request), as a browser would.
    """

    requests: Sequence[Request]
    login: Login | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    seed: int = 0
    name: str = "scenario"
    follow_redirects: bool | int = True
    cookies: bool = True
    targets: Mapping[str, str] = field(default_factory=dict)  # name -> base URL, for requests' ``target``
    # reading the responses, for every request that does not set its own (see Request)
    timeout: Timeout | float | None = None
    max_body: int | None = None
    accept_encoding: str | None = None
    warmup: Warmup | str | int | None = None  # left out of the figures: "30s" or a number of requests

    def __post_init__(self) -> None:
        problems = scenario_problems(self.requests, self.login, self.headers, self.seed, self.name)
        try:
            object.__setattr__(self, "warmup", Warmup.parse(self.warmup))
        except ConfigError as exc:
            problems.append(str(exc))
        problems.extend(_read_problems("scenario", self.timeout, self.max_body, self.accept_encoding))
        problems.extend(_redirect_problems(self.follow_redirects, "follow_redirects"))
        problems.extend(target_problems(self.targets, self.requests))
        if not isinstance(self.cookies, bool):
            problems.append(f"cookies must be true or false, got {self.cookies!r}")
        if problems:
            raise ConfigError(f"invalid scenario {_short(self.name)}", problems)

    def base_of(self, request: Request) -> str | None:
        """The base URL ``request`` goes to: its own (an absolute URL), its named target's, or None
        for the run's target."""
        if request.target is not None:
            return self.targets[request.target].rstrip("/")
        return request.base_url

    def urls(self) -> list[str]:
        """Every base URL the scenario names (each passes the run's allow-list before any packet)."""
        out = [u.rstrip("/") for u in self.targets.values()]
        out.extend(b for r in self.requests if (b := r.base_url) is not None)
        return list(dict.fromkeys(out))

    def redirect_limit(self, request: Request) -> int:
        """How many redirects ``request`` follows."""
        policy = self.follow_redirects if request.follow_redirects is None else request.follow_redirects
        return max_redirects(policy)

    def describe(self) -> dict[str, Any]:
        """The scenario as plain data for meta.json (login credentials are redacted on write)."""
        return {
            "name": self.name,
            "seed": self.seed,
            "follow_redirects": self.follow_redirects,
            "cookies": self.cookies,
            "targets": dict(self.targets),
            "login": None if self.login is None else {
                "path": self.login.path,
                "json": "per-user function" if callable(self.login.json) else dict(self.login.json)},
            "requests": [
                {"name": r.name, "method": r.method, "path": r.path, "target": r.target, "weight": r.weight,
                 "vars": {k: _describe_var(v) for k, v in r.vars.items()}, "expect": r.expect,
                 "checks": [repr(c) for c in r.checks],
                 **{k: v for k, v in (("timeout", _describe_timeout(r.timeout)), ("max_body", r.max_body),
                                      ("accept_encoding", r.accept_encoding), ("max_latency", r.max_latency))
                    if v is not None}}
                for r in self.requests
            ],
            **{k: v for k, v in (("timeout", _describe_timeout(self.timeout)), ("max_body", self.max_body),
                                 ("accept_encoding", self.accept_encoding)) if v is not None},
            **({"warmup": self.warmup.describe()} if isinstance(self.warmup, Warmup) else {}),
        }


def _seconds_ns(value: Any) -> int | None:
    if value is None:
        return None
    from .shapes.text import parse_duration

    return round((parse_duration(value) if isinstance(value, str) else float(value)) * 1e9)


def max_latency_problem(value: Any, where: str) -> str | None:
    """Why ``value`` is not a max_latency (seconds > 0, or a duration such as "2s" or "500ms"), or None."""
    if value is None:
        return None
    try:
        ns = _seconds_ns(value) if isinstance(value, str) or (isinstance(value, int | float)
                                                              and not isinstance(value, bool)) else None
    except (ConfigError, ValueError, OverflowError):  # a bad duration; NaN or infinity
        ns = None
    if ns is None or not 0 < ns < 10**15:
        return f"{where}: max_latency: seconds > 0 or a duration such as '2s' or '500ms', got {_short(value)}"
    return None


def _describe_timeout(t: Timeout | float | None) -> dict[str, float] | None:
    if t is None:
        return None
    return {k: v for k, v in vars(as_timeout(t)).items() if v is not None}
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


def target_problems(targets: Any, requests: Any) -> list[str]:
    """Problems of a scenario's ``targets`` (name -> base URL) and of its requests' ``target``."""
    if not isinstance(targets, Mapping):
        return ["targets: a table of base URLs, e.g. auth = \"http://127.0.0.1:8081\""]
    problems = []
    for tname, url in targets.items():
        if not isinstance(url, str):
            problems.append(f"targets.{tname}: a base URL, e.g. \"http://127.0.0.1:8081\", got {_short(url)}")
        else:
            problems.extend(f"targets.{tname}: {p}" for p in url_problems(url))
    for i, r in enumerate(requests if isinstance(requests, Sequence) else ()):
        target = getattr(r, "target", None)
        if isinstance(target, str) and target not in targets:
            known = ", ".join(sorted(targets)) or "none declared: add [targets]"
            problems.append(f"requests[{i}] ({r.name}): target {target!r} is not one of the scenario's targets ({known})")
    return problems
