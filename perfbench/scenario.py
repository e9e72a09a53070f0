"""What a virtual user does: named, weighted requests, with variables and checks.

A scenario is data: a list of :class:`Request` with weights, optional random variables that fill
``{placeholders}`` in paths and bodies, and an optional :class:`Login` run once before the load
whose token is then sent as a bearer header (the token never reaches the run directory).

    >>> s = Scenario([Request("health", "GET", "/health", weight=1),
    ...               Request("note", "GET", "/api/notifications/{nid}", weight=3,
    ...                       vars={"nid": IntRange(1, 500)}, expect=(200, 404))])
"""

from __future__ import annotations

import json
import random
import string
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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

    values: tuple

    def draw(self, rng: random.Random) -> Any:
        return rng.choice(self.values)


@dataclass(frozen=True)
class UUID4:
    """A random UUID (from the scenario's seeded generator, so runs are reproducible)."""

    def draw(self, rng: random.Random) -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))


Var = IntRange | Choice | UUID4


@dataclass(frozen=True)
class Request:
    """One kind of request in the mix.

    ``path`` may hold ``{name}`` placeholders filled from ``vars`` on every send; so may the
    string values of ``json``. ``expect`` lists the statuses that count as success (default:
    any status below 400); any other status is an error of kind ``http_4xx`` or ``http_5xx``.
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
        names = {n for _, n, _, _ in string.Formatter().parse(self.path) if n}
        for missing in sorted(names - set(self.vars)):
            out.append(f"{where}: path placeholder {{{missing}}} has no variable in vars")
        return out

    @property
    def is_static(self) -> bool:
        return not self.vars

    def render(self, rng: random.Random) -> tuple[str, bytes | None]:
        """The path and body bytes for one send."""
        if not self.vars:
            return self.path, _body(self.json)
        values = {k: v.draw(rng) for k, v in self.vars.items()}
        path = self.path.format_map(values)
        return path, _body(_fill(self.json, values))


def _fill(obj: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(obj, str):
        # a string that is exactly one placeholder keeps the variable's type ("{n}" -> 7)
        if obj.startswith("{") and obj.endswith("}") and obj[1:-1] in values:
            return values[obj[1:-1]]
        return obj.format_map(values)
    if isinstance(obj, dict):
        return {k: _fill(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill(v, values) for v in obj]
    return obj


def _body(obj: Any) -> bytes | None:
    return None if obj is None else json.dumps(obj, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Login:
    """Log in once before the load; the JSON field ``token_field`` of the answer becomes
    ``Authorization: Bearer <token>`` on every request with ``auth=True``."""

    path: str
    json: Mapping[str, Any]
    token_field: str = "token"


@dataclass(frozen=True)
class Scenario:
    requests: Sequence[Request]
    login: Login | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    seed: int = 0
    name: str = "scenario"

    def __post_init__(self) -> None:
        problems = []
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
            "login": None if self.login is None else {"path": self.login.path, "json": dict(self.login.json)},
            "requests": [
                {"name": r.name, "method": r.method, "path": r.path, "weight": r.weight,
                 "vars": {k: repr(v) for k, v in r.vars.items()}, "expect": r.expect}
                for r in self.requests
            ],
        }


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


def load_scenario(spec: str | None = None, paths: Sequence[str] = ()) -> Scenario:
    """The scenario named by the CLI and notebook parameters.

    ``spec``: ``"demo"`` (the bundled demo target's mix), a ``.py`` file that defines
    ``scenario``, or empty; ``paths``: request specs for :func:`from_paths`. Neither: ``GET /``.
    """
    if spec and paths:
        raise ConfigError("give either a scenario or request paths, not both")
    if paths:
        return from_paths(list(paths))
    if not spec:
        return single("/")
    if spec == "demo":
        from .demo.scenario import demo_scenario

        return demo_scenario()
    from pathlib import Path

    path = Path(spec)
    if path.suffix != ".py":
        raise ConfigError(f"scenario {spec!r}: expected 'demo' or a .py file that defines `scenario`")
    if not path.is_file():
        raise ConfigError(f"scenario {spec!r}: no such file")
    import runpy

    found = runpy.run_path(str(path)).get("scenario")
    if not isinstance(found, Scenario):
        raise ConfigError(f"scenario {spec!r}: the file must define `scenario = Scenario([...])` "
                          f"(perfbench.scenario.Scenario); found {type(found).__name__}")
    return found
