"""A scenario made ready to send: weighted choice, headers built once, static bodies rendered once."""

from __future__ import annotations

import bisect
import itertools
import random

from ..scenario import Request, Scenario
from ..wire import REQUEST_ID_HEADER
from .reading import spec_for, with_accept_encoding


class PreparedScenario:
    """Per request kind, the headers (with the auth token) and, when static, the path and body.

    ``build(i, rid)`` gives what one send needs: only the request id header and templated values
    change per request.
    """

    def __init__(self, scenario: Scenario, auth_headers: dict[str, str] | None, rng: random.Random):
        self.rng = rng
        self.requests: list[Request] = list(scenario.requests)
        self._cum = list(itertools.accumulate(r.weight for r in self.requests))
        self.headers: list[dict[str, str]] = []
        self.specs = [spec_for(scenario, r, r.needs_body) for r in self.requests]  # how responses are read
        for r in self.requests:
            h = {**scenario.headers, **r.headers}
            if r.auth and auth_headers:
                h.update(auth_headers)
            if r.json is not None:
                h.setdefault("Content-Type", "application/json")
            self.headers.append(h)
        self.specs = [with_accept_encoding(h, spec) for h, spec in zip(self.headers, self.specs, strict=True)]
        self.static = [r.render(rng) if r.is_static else None for r in self.requests]

    def pick(self) -> int:
        if len(self.requests) == 1:
            return 0
        return bisect.bisect_right(self._cum, self.rng.random() * self._cum[-1])

    def build(self, i: int, rid: int) -> tuple[Request, str, dict[str, str], bytes | None]:
        req = self.requests[i]
        headers = self.headers[i].copy()
        headers[REQUEST_ID_HEADER] = str(rid)
        static = self.static[i]
        path, body = static if static is not None else req.render(self.rng)
        return req, path, headers, body
