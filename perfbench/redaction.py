"""Secrets in URLs, hidden before any URL is written or shown.

A target may carry credentials (``http://admin:pw@127.0.0.1:8080``) and a path may carry a secret in
its query (``/items?api_key=...``). :func:`redact_url` hides both in any text: the user information
becomes ``***`` and the value of every query parameter whose name looks secret becomes ``***``. It
is applied to what perfbench writes (``meta.json``, endpoint names, reports, notebooks) and prints.

A notebook gets redacted parameters (papermill saves parameters into the executed notebook), and the
real values travel in the environment (:data:`SECRETS_ENV`, inherited by its kernel, never saved):
:func:`unredacted` maps a redacted target or request path back to the real one where it is used.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

MASK = "***"
SECRETS_ENV = "PERFBENCH_URL_SECRETS"  # {redacted text: real text} of an experiment's parameters (JSON)

# names of query parameters (and keys) whose values are secrets
SECRET_NAME = re.compile(
    r"pass|pwd|secret|token|auth(?!or)|api[-_.]?key|access[-_.]?key|private[-_.]?key|(?:^|[-_.])key(?:$|[-_.])"
    r"|signature|(?:^|[-_.])sig$|credential|session|cookie|bearer|jwt|otp",
    re.I,
)
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/?#@\s]*@")
_QUERY_PARAM = re.compile(r"([?&;])([^=&;#\s]+)=([^&;#\s\"']*)")


def redact_url(text: str) -> str:
    """``text`` with URL credentials and secret-looking query parameter values replaced by ``***``."""
    if "@" in text:
        text = _USERINFO.sub(lambda m: m[1] + MASK + "@", text)
    if "=" in text:
        text = _QUERY_PARAM.sub(_param, text)
    return text


def _param(m: re.Match[str]) -> str:
    from urllib.parse import unquote

    if m[3] and SECRET_NAME.search(unquote(m[2])):
        return f"{m[1]}{m[2]}={MASK}"
    return m[0]


def redact_parameters(value: Any, found: dict[str, str] | None = None) -> tuple[Any, dict[str, str]]:
    """``value`` (parameters: strings, lists, dicts) with every string redacted, and ``{redacted: real}``
    for the strings that changed (what :data:`SECRETS_ENV` carries)."""
    found = {} if found is None else found
    if isinstance(value, str):
        shown = redact_url(value)
        if shown != value:
            found[shown] = value
        return shown, found
    if isinstance(value, list):
        return [redact_parameters(v, found)[0] for v in value], found
    if isinstance(value, dict):
        return {k: redact_parameters(v, found)[0] for k, v in value.items()}, found
    return value, found


def unredacted(text: str) -> str:
    """The real text behind a redacted one, from :data:`SECRETS_ENV` (how an experiment notebook gets a
    target or request path with secrets); any other text as it is."""
    if MASK not in text or not (raw := os.environ.get(SECRETS_ENV)):
        return text
    try:
        real = json.loads(raw).get(text)
    except (ValueError, AttributeError):
        return text
    return real if isinstance(real, str) and redact_url(real) == text else text
