"""Callable targets: load an async function (an ORM call, a queue client, a gRPC stub) instead of HTTP.

:class:`CallSender` is a sender (``protocols.Sender``) whose ``request()`` awaits the function the
request names (its path is ``/<name>``, see ``perfbench.load.run_load``'s ``target``), so both
models, the recorder and the summary treat a call as any request: one row per call, latency from the
intended time (the open model's schedule, so a slow function costs every call due meanwhile), and
errors as data: a call slower than the run's ``timeout`` is a ``timeout`` (the coroutine is
cancelled), what it raises is classified as a client's exception is (a ``ConnectionResetError`` is a
``reset``, a ``socket.gaierror`` ``dns``, anything else ``client`` with its class and message).
A call has no status; what it returns is its ``bytes`` when it is ``bytes`` or ``str``.

A function that takes one argument gets the request id (the ``X-Request-Id`` an HTTP request would
carry), to tag what it does for the agent's capture.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..wire import REQUEST_ID_HEADER
from .protocols import Outcome, ReadSpec

Call = Callable[..., Awaitable[Any]]
CALL = "CALL"  # the method of a callable target's requests (Request(name, CALL, "/name")): no HTTP


def call_problems(calls: Mapping[str, Any]) -> list[str]:
    out = []
    if not calls:
        return ["target: give an async function, or a table of names to async functions"]
    for name, fn in calls.items():
        if not isinstance(name, str) or not name or "/" in name or any(c.isspace() for c in name):
            out.append(f"target: {name!r} is not a call's name (a word, without spaces or '/')")
        elif not callable(fn):
            out.append(f"target {name!r}: an async function, got {type(fn).__name__}")
        elif not (inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)):
            out.append(f"target {name!r}: an async function (async def), got {fn!r}")
        else:
            try:
                params = [p for p in inspect.signature(fn).parameters.values()
                          if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            except (TypeError, ValueError):
                params = []
            if len(params) > 1:
                out.append(f"target {name!r}: takes no argument, or one (the request id); it takes {len(params)}")
    return out


class CallSender:
    """A sender over async functions, one per request name."""

    name = "callable"

    def __init__(self, calls: Mapping[str, Call], *, timeout: float = 30.0):
        self.calls = dict(calls)
        self.timeout = timeout
        self.base_url = "callable:"
        self._with_id: dict[str, bool] = {}
        for name, fn in self.calls.items():
            try:
                self._with_id[name] = any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                                          for p in inspect.signature(fn).parameters.values())
            except (TypeError, ValueError):
                self._with_id[name] = False

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None,
                      keep_body: bool = False, spec: ReadSpec | None = None) -> Outcome:
        name = path.lstrip("/")
        fn = self.calls.get(name)
        if fn is None:
            return Outcome(None, 0, None, "client", f"no call named {name!r}")
        limit = spec.total if spec is not None and spec.total else self.timeout
        try:
            async with asyncio.timeout(limit):
                if self._with_id[name]:
                    result = await fn(int(headers.get(REQUEST_ID_HEADER, "0")))
                else:
                    result = await fn()
        except TimeoutError:
            return Outcome(None, 0, None, "timeout", f"the call took longer than {limit:g} s")
        except Exception as exc:  # noqa: BLE001 - a failed call is data
            from .classify import classify

            kind, detail = classify(exc)
            return Outcome(None, 0, None, kind, detail)
        if isinstance(result, str):
            result = result.encode()
        n = len(result) if isinstance(result, bytes | bytearray | memoryview) else 0
        return Outcome(None, n, bytes(result) if keep_body and n else None, wire=n)
