"""A memory leak, on purpose, for memory profilers to find.

`remember_request()` appends a "request log entry" of about 10 KB to the
module-level list `REQUEST_LOG`, which nothing ever trims: the classic "keep a
little history for debugging" leak. It lives in its own module so tracemalloc or
memray name this file and the line that builds the entry.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

# Grows by one entry per call for the life of the process, never shrinks.
REQUEST_LOG: list[dict[str, Any]] = []

PAYLOAD_BYTES = 10 * 1024


def remember_request(method: str, path: str, request_id: str | None, user_agent: str | None) -> int:
    """Keep a log entry of this request forever; the number of entries kept so far."""
    entry = {
        "at": time.time(),
        "method": method,
        "path": path,
        "request_id": request_id,
        "user_agent": user_agent,
        # Stands in for a captured request/response body: fresh random text, so
        # no two entries share memory and the growth is honest.
        "body_snapshot": secrets.token_hex(PAYLOAD_BYTES // 2),
    }
    REQUEST_LOG.append(entry)
    return len(REQUEST_LOG)


def leaked_count() -> int:
    """How many entries `REQUEST_LOG` holds."""
    return len(REQUEST_LOG)
