"""Checks of values a user gives (numbers, header tables, text files), each returning a problem to report.

Shared by the scenario model and the command line, so the same bad value gets the same one-line
message wherever it is given. Pure functions over plain values; nothing here knows a scenario.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

CONTROL = re.compile(r"[\x00-\x1f\x7f]").search  # a line break or another control character
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch  # an HTTP token
_HEADER_VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]").search  # a tab is allowed, a line break never


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (an int too long to print is named, not printed)."""
    try:
        text = repr(value)
    except ValueError:  # Python's limit on the digits of an int
        text = f"<{type(value).__name__} too long to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def reason(exc: BaseException) -> str:
    """An exception as a short reason on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def number_problem(value: Any, what: str, low: float, high: float) -> str | None:
    """Why ``value`` is not a finite number from ``low`` to ``high`` (None when it is one). NaN, the
    infinities and subnormal numbers (5e-324) are outside every range a caller gives."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{what} must be a number, got {short(value)}"
    if not (isinstance(value, int) or math.isfinite(value)) or not low <= value <= high:
        return f"{what} must be a number from {low:g} to {high:g}, got {short(value)}"
    return None


def header_problems(headers: Any, where: str) -> list[str]:
    """Problems of a header table: names are HTTP tokens, values Latin-1 strings without line breaks
    (a value is never echoed: it may be a secret)."""
    if not isinstance(headers, Mapping):
        return [f"{where} must be a table of header names to strings, got {type(headers).__name__}"]
    out = []
    for k, v in headers.items():
        if not isinstance(k, str) or not _HEADER_NAME(k):
            out.append(f"{where}: {short(k)} is not a header name (letters, digits and -, e.g. X-Api-Key)")
        elif not isinstance(v, str):
            out.append(f"{where}: {k} must be a string, got {type(v).__name__}")
        elif _HEADER_VALUE_BAD(v):
            out.append(f"{where}: the value of {k} contains a line break or control character")
        elif not all(ord(c) < 256 for c in v):
            out.append(f"{where}: the value of {k} must be ASCII (or Latin-1) text")
    return out


def utf8_text(data: bytes, what: str, expected: str) -> str:
    """``data`` as UTF-8 text (a leading byte-order mark is skipped); binary data is a ConfigError."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what}: not UTF-8 text (byte {exc.start}); expected {expected}") from None
    if "\x00" in text:
        raise ConfigError(f"{what}: a binary file (it holds NUL bytes); expected {expected}")
    return text


def token_problem(token: Any) -> str | None:
    """Why a login answer's token cannot be sent as ``Authorization: Bearer <token>`` (None when it can):
    it comes from the server, so it is checked like any header value before it is sent."""
    if not isinstance(token, str) or not token:
        return f"the token is {type(token).__name__ if token is not None else 'null'}, not a non-empty string"
    if _HEADER_VALUE_BAD(token) or not all(ord(c) < 256 for c in token):
        return "the token holds a line break, a control character or non-Latin-1 text"
    if len(token) > 8000:
        return f"the token is {len(token)} characters long (more than a server reads in one header line)"
    return None
