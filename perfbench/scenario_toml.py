"""Scenarios written as TOML files: the format, and every problem reported at once with its field.

:func:`load_toml` reads a file into a :class:`perfbench.scenario.Scenario` (the format is in its
docstring); what the fields mean, and their checks, are ``scenario.py``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ConfigError
from .fields import short as _short
from .scenario import (
    Scenario,
    _redirect_problems,
    _where,
    scenario_problems,
    target_problems,
)
from .scenario_flows_toml import is_flow_document, load_flows
from .scenario_toml_parts import _READ_KEYS, _read_toml, _toml_login, _toml_read, _toml_request
from .shapes.warmup import Warmup

_TOP_KEYS = {"name", "seed", "headers", "login", "request", "follow_redirects", "cookies", "targets",
             "warmup"} | _READ_KEYS


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
    takes one column of a CSV file. A document with ``[[flow]]``, ``[[user_class]]`` or
    ``[on_start]`` is a scenario of user journeys (:mod:`perfbench.scenario_flows_toml`).
    """
    import tomllib

    path = Path(path)
    doc = _read_toml(path, tomllib)
    if is_flow_document(doc):  # user journeys: their own format
        return load_flows(doc, path)
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
    login = _toml_login(doc, problems)
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
