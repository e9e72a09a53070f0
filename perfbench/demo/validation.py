"""Request parsing that fails with a precise 400: JSON bodies, query parameters, fields.

Every helper raises `ApiError`, which the app's error middleware turns into
`{"error": "<message>"}` with the error's status. Messages name the offending
field or parameter and the rule it broke.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web


class ApiError(Exception):
    """An error response: HTTP `status`, a human message, optional extra headers."""

    def __init__(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body parsed as a JSON object, or ApiError 400 saying what is wrong with it."""
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "request body is empty: expected a JSON object")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"request body must be a JSON object, got {_json_type(data)}")
    return data


def require_str(
    data: Mapping[str, Any], name: str, *, where: str = "", max_length: int = 1_000, required: bool = True
) -> str:
    """Field `name` of `data` as a non-blank string (at most `max_length` chars).

    With `required=False` a missing field gives "". `where` prefixes the field
    name in messages, e.g. `items[3].`.
    """
    if name not in data:
        if required:
            raise ApiError(400, f"field '{where}{name}' is required")
        return ""
    value = data[name]
    if not isinstance(value, str):
        raise ApiError(400, f"field '{where}{name}' must be a string, got {_json_type(value)}")
    if required and not value.strip():
        raise ApiError(400, f"field '{where}{name}' must not be empty")
    if len(value) > max_length:
        raise ApiError(400, f"field '{where}{name}' is too long: {len(value)} characters, at most {max_length}")
    return value


def optional_bool(data: Mapping[str, Any], name: str, *, default: bool, where: str = "") -> bool:
    """Field `name` as a JSON boolean, `default` when absent; 1/0 and strings are refused."""
    if name not in data:
        return default
    value = data[name]
    if not isinstance(value, bool):
        raise ApiError(400, f"field '{where}{name}' must be true or false, got {_json_type(value)}")
    return value


def reject_unknown(data: Mapping[str, Any], allowed: frozenset[str], *, where: str = "") -> None:
    """ApiError 400 naming the first field of `data` not in `allowed` (catches typos like `titel`)."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(400, f"unknown field '{where}{unknown[0]}'; allowed fields: {', '.join(sorted(allowed))}")


def query_int(request: web.Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """Query parameter `name` as an integer in [minimum, maximum], `default` when absent."""
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"query parameter '{name}' must be an integer, got {text[:50]!r}") from None
    if not minimum <= value <= maximum:
        raise ApiError(400, f"query parameter '{name}' must be between {minimum} and {maximum}, got {value}")
    return value


_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no", ""})


def query_flag(request: web.Request, name: str) -> bool:
    """Query parameter `name` as a boolean: 1/true/yes or 0/false/no (absent means false)."""
    text = request.query.get(name)
    if text is None:
        return False
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ApiError(400, f"query parameter '{name}' must be 1 or 0 (true/false), got {text[:50]!r}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
