"""What the engine needs of a sender, declared: the interfaces both HTTP paths implement.

Every sender offers the awaitable ``request()`` (the login, the closed model, the open model on
the aiohttp path), which returns an :class:`Outcome`: a failed request is data (an error kind of
``rundir.ERROR_KINDS`` and a detail), never an exception the engine has to classify. A sender
that can also take prebuilt request bytes and call back when the response is complete (the lean
path) is a :class:`BatchSender`: the open model's hot path drives it with no Task or Future per
request. The engine checks for that once, when it is set up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ..wire import REQUEST_ID_HEADER
from .reading import ReadSpec

__all__ = ["Outcome", "ReadSpec", "Sender", "Template", "Done", "BatchSender", "ChoosingSender", "REUSED",
           "NO_CONNECTION", "AT_END", "NO_BYTE", "header_of"]


class Outcome(NamedTuple):
    """How one request ended: a response (``status``, body bytes read, decoded, and the body when
    it was asked for) or an error (``error`` a kind, ``detail`` the specifics; ``status`` is kept
    when the response's head had arrived: a body cut short, too large or too slow).

    ``wire``: the body's bytes as they came (before decoding; equal to ``nbytes`` for an
    uncompressed body). ``ttfb_ns``: from the send to the first byte of the response (None: no
    byte came). ``connect_ns``: see :data:`REUSED` and :data:`NO_CONNECTION`, else the time the
    request's new connection took to connect.

    A redirect's ``Location`` (on a 3xx response) and the response's ``Set-Cookie`` values come
    along for ``follow.py``, which walks redirect chains and keeps the user's cookies."""

    status: int | None
    nbytes: int
    body: bytes | None
    error: str | None = None
    detail: str | None = None
    wire: int = 0
    ttfb_ns: int | None = None
    connect_ns: int = -2
    location: str | None = None
    set_cookies: tuple[str, ...] = ()
    # the response's head as the sender has it at no cost (lean: the head's text; aiohttp: its raw
    # header pairs), for a flow's header extraction (:func:`header_of`); None: not kept
    head: Any = None


def header_of(out: Outcome, name: str) -> str | None:
    """The value of the response header ``name`` (case-insensitive; the first of several), or None."""
    head = out.head
    if head is None:
        return None
    want = name.lower()
    if isinstance(head, str):
        for line in head.split("\r\n"):
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == want:
                return value.strip()
        return None
    for key, value in head:  # aiohttp's raw_headers: (bytes, bytes) pairs
        if key.decode("latin-1").lower() == want:
            return str(value.decode("latin-1"))
    return None


REUSED = -1  # connect_ns of a request sent on a kept-alive connection
NO_CONNECTION = -2  # connect_ns of a request that never had a connection (refused, timed out connecting)
AT_END = -1  # ttfb of a done() whose first byte came in the read that completed the response
NO_BYTE = -2  # ttfb of a done() whose response never sent a byte


class Sender(Protocol):
    @property
    def name(self) -> str:
        """Which HTTP path this is (``meta.engine.path``); read-only."""
        ...

    async def start(self) -> None: ...

    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None,
                      keep_body: bool = False, spec: ReadSpec | None = None) -> Outcome:
        """Send one request and read the whole response. The body is kept only when ``keep_body``
        was asked for (a check needs it). ``spec``: the bounds and time limits (default: the
        sender's). Transport failures are returned, not raised; only the caller's cancellation
        propagates."""
        ...

    async def close(self) -> None: ...


class Template(Protocol):
    def build(self, raw_path: bytes, body: bytes | None) -> tuple[bytes, bytes]:
        """``(prefix, suffix)``: the request's bytes are ``prefix + request id + suffix``."""
        ...


# done(job, status, nbytes, wire, body, error, detail, ttfb, connect): the callback interface's
# completion, called once, with an Outcome's fields; ``ttfb`` is AT_END when the first byte came in
# the read that completed the response (the caller's end time is then the first byte's too), NO_BYTE
# when no byte came
Done = Callable[[Any, int | None, int, int, bytes | None, str | None, str | None, int, int], None]


@runtime_checkable
class BatchSender(Protocol):
    """The callback interface (the lean path): request bytes are built once per request kind
    (``template``, ``raw_path``), and ``submit`` sends them; ``done`` runs from the event loop
    when the response is complete or the request failed."""

    @property
    def name(self) -> str: ...

    def template(self, method: str, headers: Mapping[str, str], id_header: str | None = REQUEST_ID_HEADER
                 ) -> Template: ...

    def raw_path(self, path: str) -> bytes: ...

    def kind(self, spec: ReadSpec) -> object:
        """What ``submit`` takes for requests read by ``spec`` (made once per request kind)."""
        ...

    def submit(self, data: bytes, job: Any, done: Done, kind: object, sent: int) -> None:
        """Send ``data``; ``sent`` is ``time.perf_counter_ns()`` as the caller read it for the send."""
        ...

    def abort_all(self, error: str = "aborted", detail: str = "") -> int:
        """End every request in flight or queued with ``error``; how many there were."""
        ...


@runtime_checkable
class ChoosingSender(Protocol):
    """A sender that chooses its HTTP path once the requests are known (``auto``)."""

    @property
    def name(self) -> str: ...

    def bind(self, requests: Sequence[tuple[str, Mapping[str, str], bytes | None]]) -> Sender:
        """Choose for ``(method, headers, body)`` of each request; returns the chosen sender."""
        ...

    async def start_chosen(self) -> None: ...
