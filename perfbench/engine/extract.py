"""A flow step's values: placeholders filled from the user's context, values taken from a response.

Pure functions over a response the engine already has (its status, body, head and cookies): no
I/O. What each source means is :class:`perfbench.scenario_flows.Extract`'s docstring.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..scenario import _PLACEHOLDER
from .protocols import Outcome, header_of

NOT_FOUND = object()
_INDEX = re.compile(r"\[(-?\d+)\]")
_DECODER = json.JSONDecoder()


def loads(body: bytes) -> Any:
    """``json.loads(body)``, in half the time for the usual body: UTF-8 text starting with ``{`` or
    ``[`` is decoded and parsed without ``json.loads``' wrappers (its encoding sniffing and its two
    regex passes); anything else (a BOM, UTF-16, leading whitespace) goes to ``json.loads``. Raises
    ValueError as it does (trailing data, invalid JSON, invalid UTF-8)."""
    if body[:1] in (b"{", b"["):  # not UTF-16/32, no BOM: json.loads would decode it as UTF-8
        text = body.decode("utf-8", "surrogatepass")
        doc, end = _DECODER.raw_decode(text)
        if end != len(text) and text[end:].strip(" \t\n\r"):
            raise json.JSONDecodeError("Extra data", text, end)
        return doc
    return json.loads(body)


def json_path(doc: Any, path: str) -> Any:
    """The value at the dotted ``path`` of ``doc`` (``data.items.0.id``, or ``data.items[0].id``);
    NOT_FOUND when a key or index is missing. A JSON null is a value (None)."""
    return walk(doc, split_path(path))


def split_path(path: str) -> tuple[tuple[str, int | None], ...]:
    """A JSON path's parts, once: each key, with its value as a list index when it is a number."""
    parts = [p for p in _INDEX.sub(r".\1", path).split(".") if p != ""]
    return tuple((p, int(p) if p.lstrip("-").isdigit() else None) for p in parts)


def walk(doc: Any, parts: tuple[tuple[str, int | None], ...]) -> Any:
    """The value at the path ``split_path`` gave, or NOT_FOUND."""
    value = doc
    for key, i in parts:
        if type(value) is dict:
            if key not in value:
                return NOT_FOUND
            value = value[key]
        elif type(value) is list and i is not None and -len(value) <= i < len(value):
            value = value[i]
        else:
            return NOT_FOUND
    return value


class Response:
    """One step's response, parsed lazily once for all its extracts."""

    __slots__ = ("out", "_doc")

    def __init__(self, out: Outcome):
        self.out = out
        self._doc: Any = NOT_FOUND

    def doc(self) -> Any:
        if self._doc is NOT_FOUND:
            try:
                self._doc = loads(self.out.body or b"")
            except (ValueError, RecursionError):
                self._doc = None
                return NOT_FOUND
        return self._doc

    def take(self, kind: str, what: str, cookie_header: str | None) -> tuple[Any, str]:
        """``(value, "")``, or ``(NOT_FOUND, why)`` naming the source."""
        if kind == "json":
            doc = self.doc()
            if doc is NOT_FOUND:
                return NOT_FOUND, f"JSON path {what}: the body is not JSON"
            value = json_path(doc, what)
            return value, "" if value is not NOT_FOUND else f"JSON path {what} is not in the response"
        if kind == "header":
            value = header_of(self.out, what)
            return (value, "") if value is not None else (NOT_FOUND, f"header {what} is not in the response")
        if kind == "cookie":
            value = cookie_value(self.out.set_cookies, cookie_header, what)
            return (value, "") if value is not None else (NOT_FOUND, f"cookie {what} was not set")
        text = (self.out.body or b"").decode("utf-8", "replace")
        m = re.search(what, text)
        if m is None:
            return NOT_FOUND, f"regex {what!r} does not match the body"
        return (m.group(1) if m.re.groups else m.group(0)), ""


def cookie_value(set_cookies: tuple[str, ...], jar_header: str | None, name: str) -> str | None:
    """The value of cookie ``name``: as this response set it, else as the user's jar holds it."""
    for line in set_cookies:
        key, sep, rest = line.partition("=")
        if sep and key.strip() == name:
            return rest.split(";", 1)[0].strip()
    for pair in (jar_header or "").split(";"):
        key, sep, value = pair.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    return None


def placeholders(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_PLACEHOLDER.findall(text)))


# ASCII characters other than letters, digits and -._~ as %XX (str.translate: no Python loop per character)
_QUOTE = {c: f"%{c:02X}" for c in range(128) if not (chr(c).isalnum() or chr(c) in "-._~")}


def _quoted(value: Any) -> str:
    text = _text(value)
    return text.translate(_QUOTE) if text.isascii() else quote(text, safe="-._~")


def fill_path(path: str, ctx: Mapping[str, Any]) -> str:
    """``path`` with its ``{name}`` placeholders replaced by the context's values, percent-encoded
    (a cursor's ``+``, ``/`` or ``=`` reach the server as written)."""
    return _PLACEHOLDER.sub(lambda m: _quoted(ctx[m[1]]) if m[1] in ctx else m[0], path)


def fill_text(text: str, ctx: Mapping[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: _text(ctx[m[1]]) if m[1] in ctx else m[0], text)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
