"""Tests of the bundled demo target (perfbench.demo).

The app runs in-process on 127.0.0.1 through aiohttp's TestServer/TestClient.
The SQLite database is seeded once per session (tests/conftest.py) and copied for this
module; each test starts a fresh app on it (a few tens of milliseconds), so cache counters start at zero every time.
Tests that write use their own seeded user, so they do not see each other's rows.

Async code runs through `asyncio.run` (pytest-asyncio is not used here).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientConnectorError, ClientSession, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import event

from perfbench.demo import create_app, credentials, leak, run_server, serve
from perfbench.demo.auth import TokenSigner, hash_password, verify_password
from perfbench.demo.cache import MemoryCache
from perfbench.demo.seed import SeedMismatchError, generate_users
from perfbench.demo.server import loopback_bind_address
from perfbench.demo.state import STATE

Scenario = Callable[[TestClient], Awaitable[Any]]

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def seeded_db(demo_db_copy: Callable[[], Path]) -> Path:
    """A SQLite file seeded with seed 42 (a copy of the session's) and shared by the module's tests."""
    return demo_db_copy()


@pytest.fixture
def demo(seeded_db: Path) -> Callable[..., Any]:
    """`demo(scenario, setup=None, **create_app_options)`: run `scenario(client)` against a
    freshly started app on the shared database and return what it returns."""

    def run(scenario: Scenario, *, setup: Callable[[web.Application], None] | None = None, **options: Any) -> Any:
        async def main() -> Any:
            options.setdefault("db_path", seeded_db)
            app = create_app(**options)
            if setup is not None:
                setup(app)
            async with TestClient(TestServer(app, host="127.0.0.1")) as client:
                return await scenario(client)

        return asyncio.run(main())

    return run


async def login(client: TestClient, n: int) -> dict[str, str]:
    """Authorization headers for seeded user n."""
    email, password = credentials(n)
    resp = await client.post("/auth/login", json={"email": email, "password": password})
    assert resp.status == 200, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


def count_statements(app: web.Application) -> list[str]:
    """Record every SQL statement the app runs once it has started (the list fills in later)."""
    statements: list[str] = []

    async def attach(app: web.Application) -> None:
        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        event.listen(app[STATE].engine.sync_engine, "before_cursor_execute", record)

    app.on_startup.append(attach)
    return statements


def notification(i: int = 0, **overrides: Any) -> dict[str, Any]:
    item = {"kind": "digest", "title": f"{i + 3} new posts about load testing", "body": "This week's most read."}
    item.update(overrides)
    return item


# --- seeding and credentials ---------------------------------------------------------------------


def test_seeded_counts_and_marker(seeded_db: Path) -> None:
    with closing(sqlite3.connect(seeded_db)) as db:
        counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("users", "posts", "comments")}
        notifications = db.execute("SELECT COUNT(*) FROM notifications").fetchone()[0]
        per_user = db.execute("SELECT MIN(n), MAX(n) FROM (SELECT COUNT(*) n FROM notifications GROUP BY user_id)")
        low, high = per_user.fetchone()
        marker = json.loads(db.execute("SELECT value FROM demo_meta WHERE key = 'seed'").fetchone()[0])
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert counts == {"users": 1000, "posts": 5000, "comments": 10000}
    assert low >= 5 and high <= 20 and 1000 * 5 <= notifications <= 1000 * 20
    assert marker["seed"] == 42
    assert mode == "wal"


def test_seeded_data_looks_real(seeded_db: Path) -> None:
    with closing(sqlite3.connect(seeded_db)) as db:
        username, email, first, password_hash = db.execute(
            "SELECT username, email, first_name, password_hash FROM users WHERE id = 1"
        ).fetchone()
        title, body = db.execute("SELECT title, body FROM posts WHERE id = 1").fetchone()
        distinct_titles = db.execute("SELECT COUNT(DISTINCT title) FROM posts").fetchone()[0]
    assert re.fullmatch(r"[a-z]+\.[a-z]+\d+", username) and email == f"{username}@example.com"
    assert first[0].isupper() and "test" not in username
    assert password_hash.startswith("pbkdf2_sha256$3000$")
    assert len(title.split()) >= 3 and len(body) > 200 and body.count(". ") >= 2
    assert distinct_titles > 1000


def test_starting_on_a_seeded_database_does_not_seed_again(demo: Callable[..., Any], seeded_db: Path) -> None:
    seeded_now: list[bool] = []

    def setup(app: web.Application) -> None:
        async def note(app: web.Application) -> None:
            seeded_now.append(app[STATE].seeded_now)

        app.on_startup.append(note)

    async def scenario(client: TestClient) -> None:
        assert (await client.get("/health")).status == 200

    demo(scenario, setup=setup)
    assert seeded_now == [False]
    with closing(sqlite3.connect(seeded_db)) as db:
        assert db.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 1000


def test_a_different_seed_is_refused(seeded_db: Path) -> None:
    async def main() -> None:
        runner = web.AppRunner(create_app(db_path=seeded_db, seed=7))
        try:
            await runner.setup()  # startup: checks the seed marker
        finally:
            await runner.cleanup()

    with pytest.raises(SeedMismatchError, match="seeded with"):
        asyncio.run(main())


def test_credentials_are_deterministic_and_unique() -> None:
    assert credentials(0) == credentials(0)
    email, password = credentials(17)
    assert re.fullmatch(r"[a-z]+\.[a-z]+\d+@example\.com", email)
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d\d", password)
    emails = {credentials(n)[0] for n in range(1000)}
    assert len(emails) == 1000
    assert generate_users(42, 10)[3] == generate_users(42, 1000)[3]  # user n does not depend on the count
    assert credentials(0, seed=7) != credentials(0)
    for bad in (-1, 1000):
        with pytest.raises(IndexError, match="0 <= n < 1000"):
            credentials(bad)


# --- auth ----------------------------------------------------------------------------------------


def test_password_hashing_and_tokens() -> None:
    encoded = hash_password("maple-harbor-42", salt=b"0123456789abcdef", iterations=1000)
    algorithm, iterations, _salt, _hash = encoded.split("$")
    assert (algorithm, iterations) == ("pbkdf2_sha256", "1000")
    assert verify_password("maple-harbor-42", encoded)
    assert not verify_password("maple-harbor-43", encoded)
    assert not verify_password("maple-harbor-42", "md5$1$x$y")
    assert not verify_password("maple-harbor-42", "garbage")

    now = [1_000_000.0]
    signer = TokenSigner(b"k" * 32, ttl=60, clock=lambda: now[0])
    token = signer.issue(7)
    assert signer.verify(token) == 7
    user, expires, signature = token.split(".")
    assert signer.verify(f"8.{expires}.{signature}") is None  # another user id, same signature
    assert TokenSigner(b"x" * 32, ttl=60, clock=lambda: now[0]).verify(token) is None  # another secret
    now[0] += 61
    assert signer.verify(token) is None  # expired


def test_health(demo: Callable[..., Any]) -> None:
    async def scenario(client: TestClient) -> None:
        resp = await client.get("/health")
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}

    demo(scenario)


def test_login_ok_wrong_password_and_unknown_email(demo: Callable[..., Any]) -> None:
    async def scenario(client: TestClient) -> None:
        for n in (0, 999):
            email, password = credentials(n)
            resp = await client.post("/auth/login", json={"email": email.upper(), "password": password})
            assert resp.status == 200
            body = await resp.json()
            assert body["user_id"] == n + 1 and body["token"].startswith(f"{n + 1}.")
        email, password = credentials(1)
        resp = await client.post("/auth/login", json={"email": email, "password": password + "x"})
        assert resp.status == 401
        assert await resp.json() == {"error": "invalid email or password"}
        resp = await client.post("/auth/login", json={"email": "nobody@example.com", "password": password})
        assert resp.status == 401

    demo(scenario)


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (b'{"password": "x"}', "'email'"),
        (b'{"email": 42, "password": "x"}', "'email'"),
        (b'{"email": "a@example.com"}', "'password'"),
        (b'{"email": "a@example.com", "password": ""}', "'password'"),
    ],
)
def test_login_malformed_body_is_400(demo: Callable[..., Any], body: bytes, mentions: str) -> None:
    async def scenario(client: TestClient) -> None:
        resp = await client.post("/auth/login", data=body, headers={"Content-Type": "application/json"})
        assert resp.status == 400
        assert mentions in (await resp.json())["error"]

    demo(scenario)


def test_token_required(demo: Callable[..., Any]) -> None:
    async def scenario(client: TestClient) -> None:
        headers = await login(client, 2)
        token = headers["Authorization"].removeprefix("Bearer ")
        user, expires, signature = token.split(".")
        for path in ("/api/notifications", "/api/notifications/1", "/api/reports/activity"):
            for auth in (None, "Bearer", "Bearer not-a-token", f"Bearer 1.{expires}.{signature}", f"Basic {token}"):
                resp = await client.get(path, headers={"Authorization": auth} if auth else {})
                assert resp.status == 401, (path, auth)
                assert "error" in await resp.json()
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        resp = await client.post("/api/notifications", json=notification())
        assert resp.status == 401
        assert (await client.get("/api/notifications", headers=headers)).status == 200

    demo(scenario)


# --- notifications -------------------------------------------------------------------------------


def test_notifications_list(demo: Callable[..., Any]) -> None:
    async def scenario(client: TestClient) -> None:
        headers = await login(client, 3)
        resp = await client.get("/api/notifications", headers=headers)
        assert resp.status == 200
        body = await resp.json()
        items = body["notifications"]
        assert body["count"] == len(items) and 5 <= len(items) <= 20
        assert [n["created_at"] for n in items] == sorted((n["created_at"] for n in items), reverse=True)
        assert set(items[0]) == {"id", "kind", "title", "body", "read", "created_at"}
        assert items[0]["created_at"].endswith("+00:00")

        limited = await (await client.get("/api/notifications?limit=2", headers=headers)).json()
        assert limited["notifications"] == items[:2]
        unread = await (await client.get("/api/notifications?unread=1&limit=100", headers=headers)).json()
        assert all(not n["read"] for n in unread["notifications"])
        assert len(unread["notifications"]) == sum(not n["read"] for n in items)
        for query in ("limit=0", "limit=101", "limit=ten", "unread=maybe"):
            resp = await client.get(f"/api/notifications?{query}", headers=headers)
            assert resp.status == 400
            assert query.split("=")[0] in (await resp.json())["error"]

    demo(scenario)


def test_notification_detail_and_404(demo: Callable[..., Any], seeded_db: Path) -> None:
    with closing(sqlite3.connect(seeded_db)) as db:
        foreign_id = db.execute("SELECT id FROM notifications WHERE user_id = 5 LIMIT 1").fetchone()[0]

    async def scenario(client: TestClient) -> None:
        headers = await login(client, 3)  # user id 4
        first = (await (await client.get("/api/notifications", headers=headers)).json())["notifications"][0]
        resp = await client.get(f"/api/notifications/{first['id']}", headers=headers)
        assert resp.status == 200
        assert await resp.json() == first
        for missing in (foreign_id, 99_999_999, 10**30):
            resp = await client.get(f"/api/notifications/{missing}", headers=headers)
            assert resp.status == 404
            assert "not found" in (await resp.json())["error"]
        assert (await client.get("/api/notifications/abc", headers=headers)).status == 404

    demo(scenario)


def test_create_notification_and_mark_read(demo: Callable[..., Any]) -> None:
    async def scenario(client: TestClient) -> None:
        headers = await login(client, 10)
        resp = await client.post("/api/notifications", json=notification(title="Ana Silva liked your post"), headers=headers)
        assert resp.status == 201
        created = await resp.json()
        assert created["title"] == "Ana Silva liked your post" and created["read"] is False
        newest = (await (await client.get("/api/notifications?limit=1", headers=headers)).json())["notifications"]
        assert newest == [created]

        resp = await client.post(f"/api/notifications/{created['id']}/read", headers=headers)
        assert resp.status == 200
        assert (await resp.json()) == {**created, "read": True}
        detail = await (await client.get(f"/api/notifications/{created['id']}", headers=headers)).json()
        assert detail["read"] is True

        other = await login(client, 11)
        assert (await client.post(f"/api/notifications/{created['id']}/read", headers=other)).status == 404
        assert (await client.get(f"/api/notifications/{created['id']}", headers=other)).status == 404

    demo(scenario)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": "x"}, "kind"),
        (notification(kind="spam"), "kind"),
        (notification(title=""), "title"),
        (notification(title=42), "title"),
        (notification(title="x" * 201), "title"),
        ({"kind": "like"}, "title"),
        (notification(body=["no"]), "body"),
        (notification(read="yes"), "read"),
        (notification(titel="typo"), "titel"),
    ],
)
def test_create_notification_validation(demo: Callable[..., Any], payload: dict[str, Any], field: str) -> None:
    async def scenario(client: TestClient) -> None:
        headers = await login(client, 12)
        resp = await client.post("/api/notifications", json=payload, headers=headers)
        assert resp.status == 400
        assert f"'{field}'" in (await resp.json())["error"]

    demo(scenario)


def test_notification_batch(demo: Callable[..., Any]) -> None:
    async def scenario(client: TestClient) -> None:
        headers = await login(client, 13)
        for size in (9, 101, 0):
            resp = await client.post("/api/notifications/batch", json={"items": [notification(i) for i in range(size)]}, headers=headers)
            assert resp.status == 400
            assert "10 to 100" in (error := (await resp.json())["error"]) and f"got {size} items" in error
        resp = await client.post("/api/notifications/batch", json={"items": "nope"}, headers=headers)
        assert resp.status == 400
        items = [notification(i) for i in range(10)]
        items[3] = notification(3, title=None)
        resp = await client.post("/api/notifications/batch", json={"items": items}, headers=headers)
        assert resp.status == 400
        assert "'items[3].title'" in (await resp.json())["error"]

        for size in (10, 100):
            resp = await client.post(
                "/api/notifications/batch", json={"items": [notification(i) for i in range(size)]}, headers=headers
            )
            assert resp.status == 201
            ids = (await resp.json())["ids"]
            assert len(ids) == size and ids == sorted(ids) and len(set(ids)) == size
        mine = await client.get(f"/api/notifications/{ids[-1]}", headers=headers)
        assert (await mine.json())["title"] == notification(99)["title"]

    demo(scenario)


# --- posts: the N+1 and its fix ------------------------------------------------------------------


def test_posts_naive_and_eager_return_identical_json(demo: Callable[..., Any]) -> None:
    def setup(app: web.Application) -> None:
        nonlocal statements
        statements = count_statements(app)

    statements: list[str] = []

    async def scenario(client: TestClient) -> None:
        for query in ("", "limit=7&offset=13"):
            start = len(statements)
            naive = await client.get(f"/api/posts?{query}")
            naive_count = len(statements) - start
            start = len(statements)
            eager = await client.get(f"/api/posts?eager=1&{query}")
            eager_count = len(statements) - start
            v2 = await client.get(f"/api/v2/posts?{query}")
            assert naive.status == eager.status == v2.status == 200
            body = await naive.json()
            assert body == await eager.json() == await v2.json()
            page = body["posts"]
            assert len(page) == (7 if query else 20)
            assert naive_count == 1 + 2 * len(page)  # the N+1, on purpose
            assert eager_count == 2
        first = page[0]
        assert set(first) == {"id", "title", "body", "created_at", "author", "comments", "comment_count"}
        assert set(first["author"]) == {"id", "username", "name"}
        assert all(p["comment_count"] == len(p["comments"]) for p in page)
        assert any(p["comments"] for p in page)
        assert set(next(p for p in page if p["comments"])["comments"][0]) == {"id", "body", "author_id", "created_at"}
        times = [p["created_at"] for p in page]
        assert times == sorted(times, reverse=True)
        for query in ("limit=0", "limit=101", "offset=-1", "eager=maybe"):
            assert (await client.get(f"/api/posts?{query}")).status == 400

    demo(scenario, setup=setup)


# --- the cached report ---------------------------------------------------------------------------


def test_report_cache_miss_then_hit_and_clear(demo: Callable[..., Any]) -> None:
    async def scenario(client: TestClient) -> None:
        headers = await login(client, 4)
        first = await client.get("/api/reports/activity", headers=headers)
        assert first.status == 200 and first.headers["X-Cache"] == "MISS"
        cold = await first.json()
        assert cold["cached"] is False
        report = cold["report"]
        assert report["window"]["months"] == 12 and len(report["months"]) == 12
        assert len(report["top_authors"]) == 10
        received = [a["comments_received"] for a in report["top_authors"]]
        assert received == sorted(received, reverse=True) and received[0] > 0
        assert report["keywords"] and report["comments_per_post"]["posts"] > 0

        second = await client.get("/api/reports/activity?months=12&top=010", headers=headers)
        assert second.headers["X-Cache"] == "HIT"
        assert await second.json() == {"report": report, "cached": True}
        assert await (await client.get("/api/cache/stats")).json() == {
            "hits": 1, "misses": 1, "backend": "memory", "keys": 1,
        }
        other = await client.get("/api/reports/activity?months=3&top=5", headers=headers)
        assert other.headers["X-Cache"] == "MISS" and len((await other.json())["report"]["months"]) == 3

        cleared = await client.post("/api/cache/clear")
        assert cleared.status == 200 and (await cleared.json())["cleared"] == 2
        assert await (await client.get("/api/cache/stats")).json() == {
            "hits": 0, "misses": 0, "backend": "memory", "keys": 0,
        }
        again = await client.get("/api/reports/activity", headers=headers)
        assert again.headers["X-Cache"] == "MISS"
        for query in ("months=0", "months=49", "top=0", "top=51"):
            assert (await client.get(f"/api/reports/activity?{query}", headers=headers)).status == 400

    demo(scenario)


def test_memory_cache_expires_entries() -> None:
    now = [0.0]
    cache = MemoryCache(clock=lambda: now[0])

    async def scenario() -> None:
        await cache.set("k", "v", ttl=60)
        assert await cache.get("k") == "v"
        now[0] = 59.9
        assert await cache.size() == 1
        now[0] = 60.0
        assert await cache.get("k") is None
        assert (cache.hits, cache.misses, await cache.size()) == (1, 1, 0)

    asyncio.run(scenario())


# --- leak, request ids, errors -------------------------------------------------------------------


def test_leak_grows_the_module_level_list(demo: Callable[..., Any]) -> None:
    before = len(leak.REQUEST_LOG)

    async def scenario(client: TestClient) -> list[int]:
        counts = []
        for _ in range(3):
            resp = await client.post("/api/leak", headers={"X-Request-Id": "leak-test"})
            assert resp.status == 200
            counts.append((await resp.json())["count"])
        assert (await client.get("/api/leak")).status == 405
        return counts

    assert demo(scenario) == [before + 1, before + 2, before + 3]
    assert len(leak.REQUEST_LOG) == before + 3
    entry = leak.REQUEST_LOG[-1]
    assert entry["request_id"] == "leak-test" and len(entry["body_snapshot"]) >= 10 * 1024


def test_request_id_is_echoed_on_every_response(demo: Callable[..., Any]) -> None:
    async def scenario(client: TestClient) -> None:
        email, password = credentials(5)
        requests = [
            ("GET", "/health", None, 200),
            ("POST", "/auth/login", {"email": email, "password": password}, 200),
            ("POST", "/auth/login", {"email": email}, 400),
            ("GET", "/api/notifications", None, 401),
            ("GET", "/api/posts?limit=1", None, 200),
            ("GET", "/no/such/path", None, 404),
            ("DELETE", "/health", None, 405),
        ]
        for i, (method, path, body, status) in enumerate(requests):
            rid = f"req-{i}-{uuid.uuid4().hex}"
            resp = await client.request(method, path, json=body, headers={"X-Request-Id": rid})
            assert resp.status == status, path
            assert resp.headers["X-Request-Id"] == rid
            assert resp.content_type == "application/json"
            if status >= 400:
                assert set(await resp.json()) == {"error"}
        assert "X-Request-Id" not in (await client.get("/health")).headers

    demo(scenario)


# --- running the server --------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com", "10.0.0.1"])
def test_non_loopback_host_is_refused(host: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        loopback_bind_address(host)
    with pytest.raises(ValueError, match="not a loopback address"):
        asyncio.run(serve(host, 0, db_path=tmp_path / "never.sqlite3", max_seconds=1))
    with pytest.raises(ValueError, match="not a loopback address"):
        run_server(host, 0, db_path=tmp_path / "never.sqlite3", max_seconds=1)
    assert not (tmp_path / "never.sqlite3").exists()


def test_loopback_hosts_are_accepted() -> None:
    assert loopback_bind_address("127.0.0.1") == "127.0.0.1"
    assert loopback_bind_address("127.3.2.1") == "127.3.2.1"
    assert loopback_bind_address("localhost") == "127.0.0.1"
    assert loopback_bind_address("::1") == "::1"
    assert loopback_bind_address("[::1]") == "::1"


def test_serve_on_port_0_calls_ready_and_stops_at_max_seconds(seeded_db: Path) -> None:
    max_seconds = 1.0

    async def main() -> None:
        loop = asyncio.get_running_loop()
        became_ready: asyncio.Future[str] = loop.create_future()
        server = asyncio.create_task(
            serve(port=0, db_path=seeded_db, max_seconds=max_seconds, ready=became_ready.set_result)
        )
        await asyncio.wait({server, became_ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        assert became_ready.done(), server.exception() if server.done() else "not ready within 60 s"
        ready_at = time.monotonic()
        url = became_ready.result()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url) and not url.endswith(":0")
        async with ClientSession() as session, session.get(f"{url}/health") as resp:
            assert resp.status == 200 and await resp.json() == {"status": "ok"}
        assert await asyncio.wait_for(server, timeout=60) is None
        assert time.monotonic() - ready_at >= max_seconds * 0.9
        async with ClientSession() as session:
            with pytest.raises(ClientConnectorError):
                await session.get(f"{url}/health")

    asyncio.run(main())


def test_serve_stops_when_cancelled(seeded_db: Path) -> None:
    async def main() -> None:
        became_ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(serve("localhost", 0, db_path=seeded_db, ready=became_ready.set_result))
        url = await asyncio.wait_for(became_ready, timeout=60)
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server
        async with ClientSession() as session:
            with pytest.raises(ClientConnectorError):
                await session.get(f"{url}/health")

    asyncio.run(main())


def test_run_server_prints_one_line_and_stops_on_sigterm(seeded_db: Path) -> None:
    code = (
        "import sys\nfrom perfbench.demo import run_server\n"
        f"run_server(port=0, db_path={str(seeded_db)!r}, max_seconds=120)\n"
        "print('returned', file=sys.stderr)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[1], env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline()
        match = re.fullmatch(r"perfbench demo serving on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")

        async def check() -> None:
            async with ClientSession() as session, session.get(f"{match.group(1)}/health") as resp:
                assert resp.status == 200

        asyncio.run(check())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out == "" and "returned" in err


# --- PostgreSQL and Redis (both really run on this machine) ----------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
def test_against_postgresql() -> None:
    import asyncpg

    schema = f"perfbench_demo_test_{uuid.uuid4().hex[:10]}"

    async def scenario(client: TestClient) -> None:
        assert (await client.get("/health")).status == 200
        headers = await login(client, 0)
        assert len((await (await client.get("/api/notifications", headers=headers)).json())["notifications"]) >= 5
        naive = await (await client.get("/api/posts?limit=5&offset=2")).json()
        assert naive == await (await client.get("/api/v2/posts?limit=5&offset=2")).json()
        assert len(naive["posts"]) == 5
        created = await client.post("/api/notifications", json=notification(), headers=headers)
        assert created.status == 201  # needs the sequences moved past the seeded ids
        batch = await client.post("/api/notifications/batch", json={"items": [notification(i) for i in range(10)]}, headers=headers)
        assert batch.status == 201 and min((await batch.json())["ids"]) > (await created.json())["id"]
        first = await client.get("/api/reports/activity", headers=headers)
        assert first.headers["X-Cache"] == "MISS" and len((await first.json())["report"]["months"]) == 12
        assert (await client.get("/api/reports/activity", headers=headers)).headers["X-Cache"] == "HIT"

    async def main() -> None:
        try:
            for _ in range(2):  # the second start finds the schema seeded and leaves it alone
                app = create_app(db_url=PG_URL, db_schema=schema)
                async with TestClient(TestServer(app, host="127.0.0.1")) as client:
                    await scenario(client)
            conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
            try:
                counts = [await conn.fetchval(f'SELECT COUNT(*) FROM "{schema}".{t}') for t in ("users", "posts", "comments")]
                assert counts == [1000, 5000, 10000]
                assert await conn.fetchval(f'SELECT COUNT(*) FROM "{schema}".notifications WHERE user_id = 1 AND kind = \'digest\' AND title = $1', notification()["title"]) == 2 * 2
            finally:
                await conn.close()
        finally:
            conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()

    asyncio.run(main())


@pytest.mark.redis
def test_with_redis_cache(demo: Callable[..., Any]) -> None:
    import redis.asyncio as aioredis

    prefix = f"perfbench-test:{uuid.uuid4().hex}:"
    bystander = f"perfbench-test:{uuid.uuid4().hex}-bystander"

    async def scenario(client: TestClient) -> None:
        redis = aioredis.from_url(REDIS_URL)
        try:
            await redis.set(bystander, b"must survive clear", ex=300)
            headers = await login(client, 6)
            first = await client.get("/api/reports/activity?months=6", headers=headers)
            assert first.headers["X-Cache"] == "MISS"
            second = await client.get("/api/reports/activity?months=6", headers=headers)
            assert second.headers["X-Cache"] == "HIT"
            assert (await second.json())["report"] == (await first.json())["report"]
            assert await (await client.get("/api/cache/stats")).json() == {
                "hits": 1, "misses": 1, "backend": "redis", "keys": 1,
            }
            keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
            assert len(keys) == 1 and 0 < await redis.ttl(keys[0]) <= 60

            assert (await (await client.post("/api/cache/clear")).json())["cleared"] == 1
            assert await (await client.get("/api/cache/stats")).json() == {
                "hits": 0, "misses": 0, "backend": "redis", "keys": 0,
            }
            assert [key async for key in redis.scan_iter(match=f"{prefix}*")] == []
            assert await redis.get(bystander) == b"must survive clear"
        finally:
            await redis.delete(bystander)
            stale = [key async for key in redis.scan_iter(match=f"{prefix}*")]
            if stale:
                await redis.delete(*stale)
            await redis.aclose()

    demo(scenario, cache_url=REDIS_URL, cache_prefix=prefix)
