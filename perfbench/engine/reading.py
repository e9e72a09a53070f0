"""How both HTTP paths read a response: the bounds, the decoding and the words for what went wrong.

One module, so the lean path (``lean.py``) and the aiohttp path (``senders.py``, with aiohttp's
own decompression off) read a response the same way and record the same row:

- **Bounds.** A body is read up to ``max_body`` bytes (:data:`DEFAULT_MAX_BODY`, 16 MiB, unless the
  scenario or the request says otherwise), both as it came over the wire and once decoded: beyond
  it the request ends as ``too_large`` (the status kept, ``bytes`` = the bound: reading stops there)
  and the connection is closed, never buffered. The response head (status line and headers) is
  bounded by :data:`MAX_HEAD` (64 KiB): beyond it, ``too_large`` with the detail saying headers.
- **Decoding.** ``gzip`` (also ``x-gzip``) and ``deflate`` (zlib-wrapped, or raw deflate as some
  servers send it) are decoded here, as the body arrives (:class:`Decoder`), bounded by
  ``max_body`` too (a zip bomb ends as ``too_large``). A corrupt stream is a ``protocol`` error
  (``bad gzip: ...``); any other coding (``br``, ``zstd``...) is a ``protocol`` error too
  (``unsupported Content-Encoding``): perfbench never asks for one.
- **Words.** The details of ``incomplete`` (a body cut short) and of ``timeout`` (by phase) are
  made here from what both paths know alike.
"""

from __future__ import annotations

import re
import zlib
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from ..scenario import Request, Scenario

DEFAULT_MAX_BODY: Final = 16 * 1024 * 1024  # bytes of a response body read at most (wire and decoded)
MAX_HEAD: Final = 64 * 1024  # bytes of a response head (status line and headers) read at most
DEFAULT_ACCEPT_ENCODING: Final = "gzip, deflate"  # what both paths ask for unless told otherwise
CODINGS: Final = frozenset({"gzip", "x-gzip", "deflate", "identity"})  # what perfbench decodes

# the response head's fields, read from its bytes (``\r\n`` before the name: never the status line)
CONTENT_ENCODING = re.compile(rb"\r\ncontent-encoding[ \t]*:[ \t]*([^\r\n]*)", re.I).search
HAS_CONTENT_ENCODING = re.compile(rb"\r\ncontent-encoding", re.I).search  # the lean hot path's test
HAS_SET_COOKIE = re.compile(rb"\r\nset-cookie", re.I).search  # a flow user's (see lean_conn.LeanKind)
HAS_EITHER = re.compile(rb"\r\n(?:content-encoding|set-cookie)", re.I).search  # both, in one pass
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*([0-9]*)", re.I).search
CHUNKED = re.compile(rb"\r\ntransfer-encoding[ \t]*:[^\r\n]*chunked", re.I).search
HEAD_END: Final = b"\r\n\r\n"


class ReadSpec(NamedTuple):
    """What one kind of request asks of the response reading (``reading.py``): the body bound,
    whether the body is kept (for checks), the Accept-Encoding sent, and the time limits in
    seconds (None: no limit of that kind; ``total`` None: the sender's own timeout)."""

    max_body: int = DEFAULT_MAX_BODY
    keep_body: bool = False
    accept_encoding: str = DEFAULT_ACCEPT_ENCODING
    total: float | None = None
    connect: float | None = None
    ttfb: float | None = None
    idle: float | None = None


def spec_for(scenario: Scenario, request: Request, keep_body: bool) -> ReadSpec:
    """How ``request`` of ``scenario`` is read: its own settings, else the scenario's, else the defaults."""
    from ..scenario import as_timeout

    t = as_timeout(request.timeout).over(as_timeout(scenario.timeout))
    return ReadSpec(request.max_body or scenario.max_body or DEFAULT_MAX_BODY, keep_body,
                    request.accept_encoding or scenario.accept_encoding or DEFAULT_ACCEPT_ENCODING,
                    t.total, t.connect, t.ttfb, t.idle)


def with_accept_encoding(headers: dict[str, str], spec: ReadSpec) -> ReadSpec:
    """Put the spec's Accept-Encoding into ``headers``, unless they set one themselves: theirs
    wins, and the spec returned says so (it decides whether responses are decoded)."""
    for k, v in headers.items():
        if k.lower() == "accept-encoding":
            return spec._replace(accept_encoding=str(v))
    headers["Accept-Encoding"] = spec.accept_encoding
    return spec


def decodes(accept_encoding: str) -> bool:
    """Whether responses to a request that sent this Accept-Encoding are decoded: unless it asked
    for ``identity`` alone, a body's Content-Encoding is undone. A request that asked for identity
    reads bodies as they come, on both paths (and the lean path skips looking for the header)."""
    return any(c.split(";")[0].strip().lower() not in ("identity", "") for c in accept_encoding.split(","))


class ReadError(Exception):
    """A response that must end as an error while it is being read: ``kind`` and ``detail``."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def body_too_large(limit: int) -> ReadError:
    return ReadError("too_large", f"body over max_body ({limit} bytes)")


def decoded_too_large(limit: int) -> ReadError:
    return ReadError("too_large", f"decoded body over max_body ({limit} bytes)")


def head_too_large() -> ReadError:
    return ReadError("too_large", f"response headers over {MAX_HEAD} bytes")


def coding_of(value: bytes | str | None) -> str | None:
    """The content coding to undo for a ``Content-Encoding`` value: None for none (or identity)."""
    if value is None:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip().lower()
    return None if text in ("", "identity") else text


class Decoder:
    """Undoes one content coding as the body arrives, keeping at most ``limit`` decoded bytes
    (and the decoded body itself only when ``keep``). :meth:`feed` and :meth:`finish` raise
    :class:`ReadError`: ``protocol`` for a corrupt stream, ``too_large`` past the bound."""

    __slots__ = ("coding", "limit", "keep", "parts", "size", "_d", "_started", "_name")

    def __init__(self, coding: str, limit: int, keep: bool):
        if coding not in CODINGS or coding == "identity":
            raise ReadError("protocol", f"unsupported Content-Encoding {coding!r} (perfbench decodes gzip and "
                                        f"deflate)")
        self.coding = coding
        self.limit = limit
        self.keep = keep
        self.parts: list[bytes] = []
        self.size = 0  # decoded bytes so far
        self._name = "gzip" if coding in ("gzip", "x-gzip") else "deflate"
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS if self._name == "gzip" else zlib.MAX_WBITS)
        self._started = False

    def feed(self, data: bytes) -> None:
        if not data:
            return
        d = self._d
        if not self._started:
            self._started = True
            if self._name == "deflate" and data[0] & 0x0F != 8:  # raw deflate, without the zlib header
                d = self._d = zlib.decompressobj(-zlib.MAX_WBITS)
        if d.eof:
            return  # data after the end of the stream is ignored (as aiohttp does)
        while data:
            try:
                out = d.decompress(data, self.limit - self.size + 1)
            except zlib.error as exc:
                raise ReadError("protocol", f"bad {self._name}: {exc}") from None
            self._take(out)
            data = d.unconsumed_tail
            if d.eof:
                return

    def _take(self, out: bytes) -> None:
        """Count (and keep, when the body is kept) decoded bytes; past the bound, ``too_large``."""
        self.size += len(out)
        if self.size > self.limit:
            self.size = self.limit
            raise decoded_too_large(self.limit)
        if self.keep and out:
            self.parts.append(out)

    def finish(self) -> None:
        """The body ended: the stream must have ended too."""
        if not self._started:
            return  # no body at all (a 204, a 304, an empty body): nothing to decode
        if not self._d.eof:
            try:
                out = self._d.flush()
            except zlib.error as exc:
                raise ReadError("protocol", f"bad {self._name}: {exc}") from None
            self._take(out)
            if not self._d.eof:
                raise ReadError("protocol", f"bad {self._name}: the compressed body ended early")

    def body(self) -> bytes:
        return b"".join(self.parts)


def incomplete_detail(wire: int, length: int | None, chunked: bool, reset: bool) -> str:
    """The detail of ``incomplete``: a body cut short by the server (``wire``: its bytes read)."""
    how = "reset" if reset else "closed"
    if chunked:
        return f"connection {how} after {wire} body bytes, before the chunked body ended"
    if length is not None:
        return f"connection {how} after {wire} of {length} body bytes"
    return f"connection {how} after {wire} body bytes"


# the phases of a request, for the timeout's detail
CONNECTING, WAITING, HEAD, BODY = 0, 1, 2, 3
_WHILE = {CONNECTING: "while connecting", WAITING: "while waiting for the response",
          HEAD: "while reading the headers", BODY: "while reading the body"}


class Timeouts:
    """A request's time limits in ns (0: none), and which one a request in flight has passed.

    ``connect``: from the start of a new connection to connected (TCP, and TLS for https).
    ``ttfb``: from the send to the first byte of the response. ``idle``: the longest wait for
    more of the response, from the send and from each read. ``total``: from the send to the end
    of the body. Each counts from the request's send, so they all bound the request from below
    by ``floor`` (the smallest), which is what the senders' deadline checks use.
    """

    __slots__ = ("connect", "ttfb", "total", "idle", "floor")

    def __init__(self, total: float, connect: float | None = None, ttfb: float | None = None,
                 idle: float | None = None):
        self.total = round(total * 1e9)
        self.connect = round(connect * 1e9) if connect else 0
        self.ttfb = round(ttfb * 1e9) if ttfb else 0
        self.idle = round(idle * 1e9) if idle else 0
        self.floor = min(x for x in (self.total, self.connect, self.ttfb, self.idle) if x > 0)

    def due(self, phase: int, sent: int, opened: int, last: int) -> tuple[int, str]:
        """The earliest deadline of a request in ``phase`` (sent at ``sent``, its connection opened
        at ``opened``, its last read at ``last`` or 0) and the detail a timeout then gets."""
        best, detail = sent + self.total, f"total timeout {_WHILE[phase]}"
        if phase == CONNECTING and self.connect and opened + self.connect < best:
            best, detail = opened + self.connect, "connect timeout"
        if phase <= WAITING and self.ttfb and sent + self.ttfb < best:
            best, detail = sent + self.ttfb, "ttfb timeout"
        if phase >= WAITING and self.idle and (last or sent) + self.idle < best:
            best, detail = (last or sent) + self.idle, f"idle timeout {_WHILE[phase]}"
        return best, detail
