"""Redis commands (redis-py, sync and asyncio) as cache events and outbound HTTP calls (aiohttp, httpx sync and
async) as downstream events, attributed to the engine's request ids: real Redis on 127.0.0.1:6379, real
aiohttp servers on 127.0.0.1 with ephemeral ports, the AgentCollector's files read back; the hooks gone when
nothing uses them."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import polars as pl
import pytest
import redis
import redis.asyncio
import redis.asyncio.client
import redis.client
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from perfbench import shapes
from perfbench.agent import Agent, AgentCollector, capture
from perfbench.agent import sql as hooks
from perfbench.agent.collector import downstream_table, records_to_tables
from perfbench.agent.events import hit_or_miss, redact_key
from perfbench.analysis.queries import cache_lookups
from perfbench.load import run_load
from perfbench.scenario import Request, Scenario

REDIS_URL = "redis://127.0.0.1:6379/0"
TOKEN = "redis-http-token-" + "y" * 16
pytestmark = pytest.mark.redis


def originals() -> dict[str, Any]:
    return {"redis": redis.client.Redis.__dict__["execute_command"],
            "redis-pipe": redis.client.Pipeline.__dict__["execute"],
            "aredis": redis.asyncio.client.Redis.__dict__["execute_command"],
            "aiohttp": aiohttp.ClientSession.__dict__["_request"],
            "httpx": httpx.Client.__dict__["send"], "ahttpx": httpx.AsyncClient.__dict__["send"]}


@pytest.fixture
def prefix() -> Any:
    """A key prefix of the test's own, its keys deleted afterwards."""
    p = f"pbtest:{uuid.uuid4().hex[:8]}:"
    yield p
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(p + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_hit_or_miss_and_key_redaction() -> None:
    assert hit_or_miss("GET", ("GET", "k"), None) == "miss" and hit_or_miss("GET", ("GET", "k"), b"v") == "hit"
    assert hit_or_miss("MGET", ("MGET", "a", "b"), [b"1", None]) == "miss"
    assert hit_or_miss("MGET", ("MGET", "a", "b"), [b"1", b"2"]) == "hit"
    assert hit_or_miss("EXISTS", ("EXISTS", "a", "b"), 1) == "miss" and hit_or_miss("EXISTS", ("EXISTS", "a"), 1) == "hit"
    assert hit_or_miss("HGET", ("HGET", "h", "f"), None) == "miss" and hit_or_miss("SET", ("SET", "k", 1), True) == "command"
    assert redact_key("user:1234:profile") == "user:?:profile"
    assert redact_key(b"session:bob@example.com") == "session:?"
    assert redact_key("cache:" + "a" * 40) == "cache:?"
    assert redact_key("x" * 20 + ":" + "y" * 30 + ":" + "z" * 30 + ":" + "w" * 30) .endswith("...")
    assert len(redact_key("k:" * 200)) <= 80


ASYNC_REDIS: web.AppKey[Any] = web.AppKey("async_redis", object)
SYNC_REDIS: web.AppKey[Any] = web.AppKey("sync_redis", object)


def redis_app(prefix: str) -> web.Application:
    """A service on redis.asyncio (the handler) and sync redis-py (in an executor thread)."""
    app = web.Application()

    async def start(app: web.Application) -> None:
        app[ASYNC_REDIS] = redis.asyncio.Redis.from_url(REDIS_URL)
        app[SYNC_REDIS] = redis.Redis.from_url(REDIS_URL)

    async def stop(app: web.Application) -> None:
        await app[ASYNC_REDIS].aclose()
        app[SYNC_REDIS].close()

    async def page(request: web.Request) -> web.Response:
        r: redis.asyncio.Redis = request.app[ASYNC_REDIS]
        n = request.match_info["n"]
        key = f"{prefix}user:{n}"
        if await r.get(key) is None:  # a miss, then fill it
            await r.set(key, "v", ex=60)
        await r.get(key)  # a hit
        await r.mget(key, f"{prefix}absent:{n}")  # one of two: a miss
        async with r.pipeline(transaction=False) as pipe:
            pipe.incr(f"{prefix}count")
            pipe.exists(key)
            await pipe.execute()
        loop = asyncio.get_running_loop()
        exists = await loop.run_in_executor(None, request.app[SYNC_REDIS].exists, key)  # sync client, in a thread
        return web.json_response({"exists": exists})

    app.router.add_get("/page/{n}", page)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def test_redis_commands_are_attributed_cache_events(prefix: str) -> None:
    before = originals()
    app = redis_app(prefix)
    agent = Agent(endpoints=False).install_aiohttp(app)

    async def main() -> dict:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            for rid, n in ((1, 5), (2, 5), (3, 6)):
                resp = await client.get(f"/page/{n}", headers={"X-Request-Id": str(rid)})
                assert resp.status == 200 and (await resp.json())["exists"] == 1
            return agent.log.drain()

    body = asyncio.run(main())
    assert originals() == before  # the app's cleanup uninstalled the agent: every hook is gone
    _queries, cache_t = records_to_tables(body)
    cache = pl.from_arrow(cache_t)
    per = {rid: cache.filter(pl.col("request_id") == rid).sort("t_ns") for rid in (1, 2, 3)}
    # request 1 and 3: first sight of their key (GET miss, SET); request 2: the key is there (GET hit)
    assert per[1]["command"].to_list() == ["GET", "SET", "GET", "MGET", "PIPELINE", "EXISTS"]
    assert per[1]["kind"].to_list() == ["miss", "command", "hit", "miss", "command", "hit"]
    assert per[2]["command"].to_list() == ["GET", "GET", "MGET", "PIPELINE", "EXISTS"]
    assert per[2]["kind"].to_list() == ["hit", "hit", "miss", "command", "hit"]
    assert per[3]["kind"].to_list() == per[1]["kind"].to_list()
    assert set(cache["source"]) == {"redis"} and set(cache["name"]) == {"redis"}
    assert set(cache["endpoint"]) == {"GET /page/{n}"}
    assert set(per[1]["key"].drop_nulls()) - {per[1]["key"][3]} == {_redacted(prefix) + "user:?"}
    assert per[1].filter(pl.col("command") == "MGET")["key"].item().endswith(" (+1)")
    assert (cache["duration_ns"] > 0).all() and cache["request_id"].null_count() == 0
    # hit/miss counted once: from the redis events when the service reports none of its own
    lookups = cache_lookups(cache).collect()
    assert lookups.height == cache.filter(pl.col("kind") != "command").height == 3 * 4
    assert set(lookups["source"]) == {"redis"}


def _redacted(prefix: str) -> str:
    return redact_key(prefix + "x").removesuffix("x")


def test_redis_in_a_capture_sync_and_async(prefix: str) -> None:
    before = originals()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        with capture() as c:
            client.set(f"{prefix}a", "1")
            client.get(f"{prefix}a")
            client.get(f"{prefix}nope")
            client.hget(f"{prefix}h", "f")
    finally:
        client.close()

    async def main() -> Any:
        r = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            async with capture() as ac:
                await r.get(f"{prefix}a")
                await r.exists(f"{prefix}a", f"{prefix}nope")
        finally:
            await r.aclose()
        return ac

    ac = asyncio.run(main())
    assert originals() == before
    assert [(e.command, e.kind) for e in c.cache_events] == [("SET", "command"), ("GET", "hit"), ("GET", "miss"),
                                                             ("HGET", "miss")]
    assert [(e.command, e.kind) for e in ac.cache_events] == [("GET", "hit"), ("EXISTS", "miss")]
    assert "cache: 1 command, 1 hit, 2 miss" in c.report().splitlines()


# --- downstream HTTP -------------------------------------------------------------------------------------


def service_app(downstream: str) -> web.Application:
    """A service whose handler calls another service with aiohttp, httpx (async) and httpx (sync, in a thread)."""
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        n = request.match_info["n"]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{downstream}/status/200?secret=s3cr3t") as resp:
                await resp.read()
            async with session.get(f"{downstream}/status/503") as resp:
                await resp.read()
        async with httpx.AsyncClient() as ac:
            await ac.post(f"{downstream}/echo/items/{n}", content=b"x")

        def sync_call() -> int:
            with httpx.Client() as client:
                return client.get(f"{downstream}/").status_code

        await asyncio.get_running_loop().run_in_executor(None, sync_call)
        try:
            async with aiohttp.ClientSession() as session, session.get("http://127.0.0.1:9/") as resp:
                await resp.read()
        except aiohttp.ClientConnectionError:
            pass
        return web.json_response({"ok": True})

    app.router.add_get("/page/{n}", page)
    return app


def test_outbound_calls_are_attributed_downstream_events(http_server: Any, runs_dir: Path) -> None:
    """Through a real run: the engine's requests, the service's calls in downstream.parquet by request id."""
    before = originals()
    app = service_app(http_server.url)
    Agent(TOKEN, endpoints=True).install_aiohttp(app)

    from tests.conftest import ThreadServer

    server = ThreadServer(app).start()
    try:
        scenario = Scenario(name="svc", seed=1, requests=[Request("page", "GET", "/page/42")])
        result = run_load(server.url, shapes.constant(rate=8, duration=1.0), scenario, runs_dir=runs_dir,
                          collectors=[AgentCollector(TOKEN, poll_s=None)], progress=False,
                          announce=lambda line: None)
    finally:
        server.stop()
    assert originals() == before
    requests = pl.read_parquet(result.path / "requests.parquet")
    assert requests.height >= 4 and requests["error"].null_count() == requests.height
    down = pl.read_parquet(result.path / "downstream.parquet")
    host = http_server.url.removeprefix("http://")
    # five calls per request, none from the engine's own client (it calls outside any request)
    assert down.group_by("request_id").len()["len"].to_list() == [5] * requests.height
    assert set(down["request_id"]) == set(requests["request_id"])
    one = down.filter(pl.col("request_id") == requests["request_id"][0]).sort("t_ns")
    assert one.select("method", "host", "path", "status", "error").rows() == [
        ("GET", host, "/status/{id}", 200, None), ("GET", host, "/status/{id}", 503, None),
        ("POST", host, "/echo/items/{id}", 200, None), ("GET", host, "/", 200, None),
        ("GET", "127.0.0.1:9", "/", None, "ClientConnectorError")]
    assert (down["duration_ns"] > 0).all() and set(down["endpoint"]) == {"GET /page/{n}"}
    assert "s3cr3t" not in str(down.to_dicts())
    # on the run's time base: each call inside its request's span
    spans = requests.select("request_id", "start_ns", "end_ns")
    inside = down.join(spans, on="request_id").filter((pl.col("t_ns") >= pl.col("start_ns") - 5_000_000)
                                                      & (pl.col("t_ns") <= pl.col("end_ns")))
    assert inside.height == down.height
    from perfbench.analysis.results import Run

    assert Run.load(result.path).meta["collectors"]["agent"]["downstream_calls"] == down.height


def test_downstream_in_a_capture_and_old_records_still_read(http_server: Any) -> None:
    with capture() as c, httpx.Client() as client:
        client.get(f"{http_server.url}/status/404")
    (call,) = c.downstream
    assert (call.method, call.path, call.status, call.error) == ("GET", "/status/{id}", 404, None)
    assert "downstream: 1 call," in c.report()
    with httpx.Client() as client:  # outside a capture or request: not recorded, and no hook anyway
        client.get(f"{http_server.url}/")
    assert not hooks.active() and len(c.downstream) == 1
    # the records of an agent without downstream calls, call sites or cache sources still read
    old = {"queries": {k: [] for k in ("request_id", "request_id_status", "endpoint", "fingerprint", "start_ns",
                                       "duration_ns", "source", "error")}, "statements": {},
           "cache": {"request_id": [1], "request_id_status": ["ok"], "endpoint": ["GET /"], "kind": ["hit"],
                     "name": [None], "t_ns": [5]}, "dropped": {"queries": 0, "cache": 0}, "more": False}
    queries, cache = records_to_tables(old)
    assert queries.num_rows == 0 and "call_site" in queries.column_names
    assert cache.column("source").to_pylist() == ["app"] and downstream_table(old).num_rows == 0


def test_demo_report_on_redis_counts_each_lookup_once(seeded_demo_db: Path, prefix: str) -> None:
    """The demo's cached report on Redis: the service reports its hit/miss itself and the hooked client sees
    the GET too; both are recorded (sources app and redis) and the hit rate counts each lookup once."""
    from perfbench.demo import create_app
    from perfbench.demo.app import AGENT
    from perfbench.demo.seed import credentials

    async def main() -> pl.DataFrame:
        app = create_app(db_path=seeded_demo_db, agent_token=TOKEN, cache_url=REDIS_URL, cache_prefix=prefix)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            email, password = credentials(3)
            login = await (await client.post("/auth/login", json={"email": email, "password": password})).json()
            headers = {"Authorization": f"Bearer {login['token']}"}
            app[AGENT].log.reset()
            for rid in (21, 22):
                resp = await client.get("/api/reports/activity?months=2", headers={**headers, "X-Request-Id": str(rid)})
                assert resp.status == 200
            return pl.from_arrow(records_to_tables(app[AGENT].log.drain())[1])

    cache = asyncio.run(main())
    app_events = cache.filter(pl.col("source") == "app").select("request_id", "kind", "name").rows()
    assert app_events == [(21, "miss", "redis"), (22, "hit", "redis")]
    gets = cache.filter((pl.col("source") == "redis") & (pl.col("command") == "GET"))
    assert gets.select("request_id", "kind").rows() == [(21, "miss"), (22, "hit")]
    assert cache.filter((pl.col("request_id") == 21) & (pl.col("command") == "SET")).height == 1  # the fill
    lookups = cache_lookups(cache).collect()
    assert lookups.select("request_id", "kind").rows() == [(21, "miss"), (22, "hit")]
    assert set(lookups["source"]) == {"app"}
