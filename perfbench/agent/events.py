"""Cache commands and downstream calls: the Redis and HTTP-client hooks of the agent.

Installed with the SQL hooks (``sql.INSTALLERS``) when the library is importable, removed with them:

- **redis-py**, sync and asyncio clients: every command through ``Redis.execute_command`` is a cache
  event (``source = "redis"``, ``name = "redis"``): the command, its first key redacted (segments with a
  digit, an e-mail address or a segment longer than 32 characters become ``?``; at most 80 characters), its duration,
  and ``kind`` = hit or miss where the command says (GET, GETEX, GETDEL, HGET, MGET, HMGET: a nil is a
  miss; MGET/HMGET miss when any key is nil; EXISTS, HEXISTS: a miss when not every key exists), else
  ``command``. A pipeline is one event, ``PIPELINE`` (``MULTI`` for a transaction), for its whole round
  trip. Commands outside a request are kept with a null request id, as statements are.
- **aiohttp** ``ClientSession`` and **httpx** ``Client``/``AsyncClient``: every request the service
  makes while it handles a request (or inside a ``capture()``) is a downstream event: method, host
  (``host:port``), path template (id-like segments as ``{id}``, no query string), status, duration
  (aiohttp: until the response's head arrived; httpx: what ``send`` took, the body too unless streamed)
  and the error's class name when it failed. Calls outside any request are not recorded (in-process,
  those are the load generator's own requests).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from . import sql
from .core import path_template

MAX_KEY = 80
_SEPARATORS = re.compile(r"([:/.|#,=\s{}\[\]-])")
_EMAIL = re.compile(r"[^\s:/|#,=]*@[^\s:/|#,=]*")
SINGLE_READS = frozenset({"GET", "GETEX", "GETDEL", "HGET"})
MULTI_READS = frozenset({"MGET", "HMGET"})
EXISTS = frozenset({"EXISTS", "HEXISTS"})


def redact_key(key: Any) -> str:
    """A Redis key without what identifies a user or a secret: ``user:1234:profile`` -> ``user:?:profile``."""
    if isinstance(key, bytes | bytearray | memoryview):
        key = bytes(key).decode("utf-8", "replace")
    elif not isinstance(key, str):
        key = str(key)
    parts = _SEPARATORS.split(_EMAIL.sub("?", key[: 4 * MAX_KEY]))
    out = "".join(p if i % 2 or not p or (len(p) <= 32 and "@" not in p and not any(c.isdigit() for c in p))
                  else "?" for i, p in enumerate(parts))
    return out if len(out) <= MAX_KEY else out[: MAX_KEY - 3] + "..."


def command_name(args: tuple) -> str:
    name = args[0] if args else "?"
    if isinstance(name, bytes | bytearray):
        name = bytes(name).decode("ascii", "replace")
    return str(name).upper()


def hit_or_miss(command: str, args: tuple, result: Any) -> str:
    """``hit``, ``miss`` or ``command`` for a Redis command's reply (see the module's docstring)."""
    if command in SINGLE_READS:
        return "miss" if result is None else "hit"
    if command in MULTI_READS:
        return "miss" if not isinstance(result, list | tuple) or any(v is None for v in result) else "hit"
    if command == "EXISTS":
        return "hit" if isinstance(result, int) and result >= max(1, len(args) - 1) else "miss"
    if command == "HEXISTS":
        return "hit" if result else "miss"
    return "command"


def _key_of(command: str, args: tuple) -> str | None:
    if len(args) < 2:
        return None
    key = redact_key(args[1])
    if command in ("MGET", "EXISTS", "DEL", "UNLINK") and len(args) > 2:
        key += f" (+{len(args) - 2})"
    return key


def _record_redis(args: tuple, result: Any, start: int, error: bool) -> None:
    command = command_name(args)
    kind = "command" if error else hit_or_miss(command, args, result)
    sql.record_cache(kind, "redis", source="redis", command=command, key=_key_of(command, args),
                     duration_ns=time.perf_counter_ns() - start, t_ns=start)


def _record_pipeline(pipe: Any, start: int) -> None:
    transaction = getattr(pipe, "is_transaction", None)  # redis.asyncio; the sync pipeline's is .transaction
    if not isinstance(transaction, bool):
        transaction = getattr(pipe, "transaction", False)
    command = "MULTI" if transaction is True else "PIPELINE"
    sql.record_cache("command", "redis", source="redis", command=command, key=None,
                     duration_ns=time.perf_counter_ns() - start, t_ns=start)


def install_redis() -> Callable[[], None] | None:
    try:
        import redis.asyncio.client as aclient
        import redis.client as client
    except ImportError:  # the service does not use redis-py
        return None
    originals = [(client.Redis, "execute_command"), (client.Pipeline, "execute"),
                 (aclient.Redis, "execute_command"), (aclient.Pipeline, "execute")]
    saved = [(cls, name, cls.__dict__[name]) for cls, name in originals]
    sync_cmd, sync_pipe, async_cmd, async_pipe = (fn for _cls, _name, fn in saved)

    @functools.wraps(sync_cmd)
    def execute_command(self, *args, **options):  # noqa: ANN001, ANN202
        start = time.perf_counter_ns()
        try:
            result = sync_cmd(self, *args, **options)
        except BaseException:
            _record_redis(args, None, start, True)
            raise
        _record_redis(args, result, start, False)
        return result

    @functools.wraps(async_cmd)
    async def async_execute_command(self, *args, **options):  # noqa: ANN001, ANN202
        start = time.perf_counter_ns()
        try:
            result = await async_cmd(self, *args, **options)
        except BaseException:
            _record_redis(args, None, start, True)
            raise
        _record_redis(args, result, start, False)
        return result

    @functools.wraps(sync_pipe)
    def execute(self, *args, **kwargs):  # noqa: ANN001, ANN202
        start = time.perf_counter_ns()
        try:
            return sync_pipe(self, *args, **kwargs)
        finally:
            _record_pipeline(self, start)

    @functools.wraps(async_pipe)
    async def async_execute(self, *args, **kwargs):  # noqa: ANN001, ANN202
        start = time.perf_counter_ns()
        try:
            return await async_pipe(self, *args, **kwargs)
        finally:
            _record_pipeline(self, start)

    for (cls, name), fn in zip(originals, (execute_command, execute, async_execute_command, async_execute),
                               strict=True):
        setattr(cls, name, fn)

    def undo() -> None:
        for cls, name, fn in saved:
            setattr(cls, name, fn)

    return undo


# downstream HTTP -------------------------------------------------------------------------------------------


def _watched() -> bool:
    """Whether a downstream call now belongs to something: a request the agent bound, or a capture."""
    tag = sql.REQUEST.get()
    return (tag is not None and tag.log is not None) or bool(sql.CAPTURES.get())


def _record_http(method: Any, url: str, status: int | None, start: int, error: BaseException | None) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    sql.record_downstream(str(method).upper(), host, path_template(parts.path or "/"), status, start,
                          time.perf_counter_ns() - start, None if error is None else type(error).__name__)


def install_aiohttp_client() -> Callable[[], None] | None:
    try:
        import aiohttp
    except ImportError:  # the service does not use aiohttp's client
        return None
    cls = aiohttp.ClientSession
    original = cls.__dict__["_request"]

    @functools.wraps(original)
    async def _request(self, method, str_or_url, *args, **kwargs):  # noqa: ANN001, ANN202
        if not _watched():
            return await original(self, method, str_or_url, *args, **kwargs)
        url = str(str_or_url)
        base = getattr(self, "_base_url", None)
        if base is not None and not urlsplit(url).scheme:
            url = urljoin(str(base), url)
        start = time.perf_counter_ns()
        try:
            response = await original(self, method, str_or_url, *args, **kwargs)
        except BaseException as exc:
            _record_http(method, url, None, start, exc)
            raise
        _record_http(method, url, response.status, start, None)
        return response

    cls._request = _request  # type: ignore[method-assign]

    def undo() -> None:
        cls._request = original  # type: ignore[method-assign]

    return undo


def install_httpx() -> Callable[[], None] | None:
    try:
        import httpx
    except ImportError:  # the service does not use httpx
        return None
    sync_send = httpx.Client.__dict__["send"]
    async_send = httpx.AsyncClient.__dict__["send"]

    @functools.wraps(sync_send)
    def send(self, request, *args, **kwargs):  # noqa: ANN001, ANN202
        if not _watched():
            return sync_send(self, request, *args, **kwargs)
        start = time.perf_counter_ns()
        try:
            response = sync_send(self, request, *args, **kwargs)
        except BaseException as exc:
            _record_http(request.method, str(request.url), None, start, exc)
            raise
        _record_http(request.method, str(request.url), response.status_code, start, None)
        return response

    @functools.wraps(async_send)
    async def asend(self, request, *args, **kwargs):  # noqa: ANN001, ANN202
        if not _watched():
            return await async_send(self, request, *args, **kwargs)
        start = time.perf_counter_ns()
        try:
            response = await async_send(self, request, *args, **kwargs)
        except BaseException as exc:
            _record_http(request.method, str(request.url), None, start, exc)
            raise
        _record_http(request.method, str(request.url), response.status_code, start, None)
        return response

    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]

    def undo() -> None:
        httpx.Client.send = sync_send  # type: ignore[method-assign]
        httpx.AsyncClient.send = async_send  # type: ignore[method-assign]

    return undo


sql.INSTALLERS.extend([install_redis, install_aiohttp_client, install_httpx])
