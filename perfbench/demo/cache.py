"""Cache backends for the expensive report: in-process (default) or Redis.

Both store text (the report serialised as JSON) under a key with a TTL, count
hits and misses, and can clear themselves. The counters live in the process
that serves the requests, also with Redis: they describe what *this* server saw,
which is what a cold-versus-warm cache experiment compares. Each hit and miss is
also reported to the perfbench agent (`perfbench.agent.cache_hit/cache_miss`, a
no-op when no agent runs), which attributes it to the request.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import cast

from ..agent import cache_hit, cache_miss
from ..errors import ConfigError

DEFAULT_PREFIX = "perfbench:demo:"


class Cache(ABC):
    """A text cache with TTLs and hit/miss counters.

    `get` counts a hit or a miss; `clear` removes this cache's keys (only its
    own) and resets the counters; `size` is the number of live keys.
    """

    backend: str

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0

    async def get(self, key: str) -> str | None:
        """The cached text for `key`, or None if it is missing or expired."""
        value = await self._get(key)
        if value is None:
            self.misses += 1
            cache_miss(self.backend)
        else:
            self.hits += 1
            cache_hit(self.backend)
        return value

    async def clear(self) -> int:
        """Remove every key of this cache, reset the counters; the number of keys removed."""
        removed = await self._clear()
        self.hits = 0
        self.misses = 0
        return removed

    async def check(self) -> None:  # noqa: B027 - optional hook, a no-op unless overridden
        """Raise if the backend cannot be reached (called once at startup)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, a no-op unless overridden
        """Release connections; the cache is unusable afterwards."""

    @abstractmethod
    async def _get(self, key: str) -> str | None: ...

    @abstractmethod
    async def set(self, key: str, value: str, ttl: float) -> None:
        """Store `value` under `key` for `ttl` seconds."""

    @abstractmethod
    async def _clear(self) -> int: ...

    @abstractmethod
    async def size(self) -> int:
        """How many unexpired keys this cache holds."""


class MemoryCache(Cache):
    """A dict with expiry times, for one process. `clock` is monotonic seconds (injectable for tests)."""

    backend = "memory"

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._items: dict[str, tuple[float, str]] = {}

    async def _get(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= self._clock():
            del self._items[key]
            return None
        return value

    async def set(self, key: str, value: str, ttl: float) -> None:
        now = self._clock()
        # Expired entries are dropped on every write, so keys that are never read
        # again do not pile up; the key space is small (validated query params).
        for stale in [k for k, (expires, _) in self._items.items() if expires <= now]:
            del self._items[stale]
        self._items[key] = (now + ttl, value)

    async def _clear(self) -> int:
        removed = len(self._items)
        self._items.clear()
        return removed

    async def size(self) -> int:
        now = self._clock()
        return sum(1 for expires, _ in self._items.values() if expires > now)


class RedisCache(Cache):
    """Redis (redis.asyncio) under a key prefix; `clear` deletes only keys with that prefix."""

    backend = "redis"

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        super().__init__()
        import redis.asyncio as aioredis  # only needed when Redis is asked for

        if not prefix:
            raise ConfigError("a Redis cache needs a non-empty key prefix, or clear() would empty the database")
        self.prefix = prefix
        self._redis = aioredis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        # SCAN MATCH is a glob: a prefix containing * ? [ ] \ must not match other keys.
        self._pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"

    async def check(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()

    async def _get(self, key: str) -> str | None:
        # redis types get() as bytes | str (str with decode_responses=True); this client returns bytes.
        value = cast(bytes | None, await self._redis.get(self.prefix + key))
        return None if value is None else value.decode("utf-8")

    async def set(self, key: str, value: str, ttl: float) -> None:
        await self._redis.set(self.prefix + key, value.encode("utf-8"), px=max(1, int(ttl * 1000)))

    async def _keys(self) -> list[bytes]:
        return [key async for key in self._redis.scan_iter(match=self._pattern, count=500)]

    async def _clear(self) -> int:
        keys = await self._keys()
        # UNLINK frees memory in the background; batches keep each command small.
        for start in range(0, len(keys), 500):
            await self._redis.unlink(*keys[start : start + 500])
        return len(keys)

    async def size(self) -> int:
        return len(await self._keys())


def make_cache(url: str | None = None, *, prefix: str = DEFAULT_PREFIX) -> Cache:
    """MemoryCache for `url` None, RedisCache for `redis://`, `rediss://` or `unix://` URLs."""
    if url is None:
        return MemoryCache()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisCache(url, prefix=prefix)
    raise ConfigError(f"unsupported cache URL {url!r}: use redis://host:port/db, or none for the in-process cache")
