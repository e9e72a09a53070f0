"""The agent added to real applications of each framework as README says (three lines), driven by perfbench's
engine over 127.0.0.1, its statement counts checked request by request against the application's own tracing.

- Flask on werkzeug's threaded server (WSGI), SQLite through ``sqlite3``: the truth is SQLite's own trace
  callback, keyed by the request id the view reads from its request.
- Django on the same server, through its ORM: the truth is Django's own ``connection.queries`` (DEBUG).
- Starlette and FastAPI on uvicorn (ASGI), the agent added with ``app.add_middleware(Agent, ...)``.
And the agent's defaults: the token from the environment, the endpoints on exactly when there is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from perfbench import shapes
from perfbench.agent import Agent, AgentCollector, AgentError
from perfbench.analysis import queries as analysis
from perfbench.analysis import results
from perfbench.load import run_load
from perfbench.scenario import Request, Scenario
from tests.conftest import UvicornThread

TOKEN = "frameworks-token-" + "y" * 16
ITEMS = 20


# --- the agent's defaults ----------------------------------------------------------------------------------


def test_token_from_the_environment_turns_the_endpoints_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERFBENCH_AGENT_TOKEN", raising=False)
    assert not Agent().endpoints  # no token: capture only, nothing served
    monkeypatch.setenv("PERFBENCH_AGENT_TOKEN", TOKEN)
    agent = Agent()
    assert agent.endpoints and agent.handle("GET", "/_perfbench/status", {}, "127.0.0.1", TOKEN)[0] == 200
    assert agent.handle("GET", "/_perfbench/status", {}, "127.0.0.1", "wrong")[0] == 401
    assert not Agent(endpoints=False).endpoints
    monkeypatch.setenv("PERFBENCH_AGENT_TOKEN", "short")
    with pytest.raises(AgentError, match="at least 16"):
        Agent()
    monkeypatch.delenv("PERFBENCH_AGENT_TOKEN")
    with pytest.raises(AgentError, match="need a token"):
        Agent(endpoints=True)
    with pytest.raises(AgentError, match="given twice"):
        Agent(TOKEN, token=TOKEN)


def test_agent_given_an_app_is_its_asgi_middleware() -> None:
    seen: list[Any] = []

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        seen.append(sqlite3.connect(":memory:").execute("SELECT 1").fetchall())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    agent = Agent(app, token=TOKEN)  # what Starlette's add_middleware(Agent, token=...) calls
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    try:
        asyncio.run(agent({"type": "http", "method": "GET", "path": "/x/12", "headers": [(b"x-request-id", b"5")]},
                          receive, send))
        asyncio.run(agent({"type": "http", "method": "GET", "path": "/_perfbench/status", "client": ("127.0.0.1", 1),
                           "headers": [(b"x-perfbench-token", TOKEN.encode())]}, receive, send))
        records = agent.log.drain()["queries"]
    finally:
        agent.uninstall()
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [204, 200]
    assert records["request_id"] == [5] and records["endpoint"] == ["GET /x/{id}"]
    with pytest.raises(AgentError, match="wraps no application"):
        asyncio.run(Agent(TOKEN)({"type": "http"}, receive, send))


# --- helpers --------------------------------------------------------------------------------------------------


def shop_db(path: Path) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        conn.executemany("INSERT INTO items VALUES (?, ?, ?)", [(i, f"item {i}", i * 1.5) for i in range(1, ITEMS + 1)])
        conn.commit()
    return path


@contextlib.contextmanager
def wsgi_server(app: Callable) -> Iterator[str]:
    """``app`` on werkzeug's threaded WSGI server (HTTP/1.1, keep-alive) on 127.0.0.1, in a thread."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(30)


def load(url: str, runs_dir: Path, requests: list[Request]) -> results.Run:
    """A short open-model run with the agent's collector; the run, loaded."""
    result = run_load(url, shapes.constant(rate=40, duration=1.0), Scenario(name="shop", seed=3, requests=requests),
                      runs_dir=runs_dir, progress=False, announce=lambda line: None,
                      collectors=[AgentCollector(TOKEN, poll_s=0.3, batch=40)])
    run = results.Run.load(result.path)
    report = run.meta["collectors"]["agent"]
    assert "error" not in report, report
    assert report["dropped_queries"] == 0 and report["unattributed_queries"] == 0
    return run


def check_counts(run: results.Run, truth: dict[int, int], expect_per_endpoint: dict[str, set[int]]) -> pl.DataFrame:
    """Every request the engine sent answered 200, and its statement count is the application's own."""
    per = analysis.request_queries(run.requests, run.queries)
    assert per.height > 10 and set(per["status"]) == {200}
    got = dict(zip(per["request_id"].to_list(), per["queries"].to_list(), strict=True))
    assert got == {rid: truth.get(rid, 0) for rid in got}
    assert set(truth) <= set(got)  # the application saw no request the engine did not send
    by = {name: set(qs) for name, qs in per.group_by("endpoint").agg(pl.col("queries").unique()).iter_rows()}
    assert by == expect_per_endpoint
    return per


def check_timed(run: results.Run, mode: str) -> None:
    """The agent timed every request the engine sent (server_requests.parquet), in ``mode``, and the
    explain breakdown of each adds up to its wall time."""
    from perfbench.analysis import explain

    timed = pl.read_parquet(run.path / "server_requests.parquet")
    sent = set(run.requests.select("request_id").collect()["request_id"].to_list())
    assert set(timed["request_id"].to_list()) == sent and set(timed["mode"]) == {mode}
    assert (timed["cpu_ns"].null_count() == 0) == (mode == "sync") and timed["wall_ns"].min() > 0
    per = explain.request_breakdown(run.requests, timed, run.queries)
    parts = per.select(pl.sum_horizontal(*(f"{p}_ms" for p in explain.SERVER_PARTS)) - pl.col("server_ms")).to_series()
    assert parts.abs().max() < 1e-6


# --- Flask (WSGI) -----------------------------------------------------------------------------------------------


def make_flask_app(db: Path, traced: list[tuple[int, str]]) -> Any:
    import flask

    app = flask.Flask("shop")

    def connect() -> sqlite3.Connection:
        rid = int(flask.request.headers["X-Request-Id"])  # the application's own tracing, by its own reading
        conn = sqlite3.connect(db)
        conn.set_trace_callback(lambda sql: traced.append((rid, sql)))
        return conn

    @app.get("/items")
    def items() -> Any:  # an N+1: the list, then each item's price on its own
        conn = connect()
        ids = [r[0] for r in conn.execute("SELECT id FROM items ORDER BY id LIMIT ?", (int(flask.request.args["limit"]),))]
        out = [{"id": i, "price": conn.execute("SELECT price FROM items WHERE id = ?", (i,)).fetchone()[0]} for i in ids]
        conn.close()
        return flask.jsonify(out)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        conn = connect()
        row = conn.execute("SELECT id, name, price FROM items WHERE id = ?", (item_id,)).fetchone()
        conn.close()
        return flask.jsonify(list(row))

    @app.get("/stream")
    def stream() -> Any:  # statements run while the server iterates the response, after the view returned
        conn = connect()

        def rows() -> Iterator[str]:
            for i in (1, 2, 3):
                yield str(conn.execute("SELECT name FROM items WHERE id = ?", (i,)).fetchone()[0]) + "\n"
            conn.close()

        return flask.Response(rows(), mimetype="text/plain")

    @app.get("/health")
    def health() -> Any:
        return "ok"

    return app


def test_flask_three_lines_counts_match_sqlite_trace(tmp_path: Path, runs_dir: Path) -> None:
    traced: list[tuple[int, str]] = []
    app = make_flask_app(shop_db(tmp_path / "shop.db"), traced)
    # README's three lines for Flask
    agent = Agent(token=TOKEN)
    app.wsgi_app = agent.wrap_wsgi(app.wsgi_app)
    try:
        with wsgi_server(app) as url:
            run = load(url, runs_dir, [Request("list", "GET", "/items?limit=6"), Request("one", "GET", "/items/7"),
                                       Request("stream", "GET", "/stream"), Request("health", "GET", "/health")])
    finally:
        agent.uninstall()
    truth: dict[int, int] = {}
    for rid, _sql in traced:
        truth[rid] = truth.get(rid, 0) + 1
    check_counts(run, truth, {"list": {7}, "one": {1}, "stream": {3}, "health": {0}})
    check_timed(run, "sync")
    queries = run.queries.collect()
    assert set(queries["endpoint"]) == {"GET /items", "GET /items/<int:item_id>", "GET /stream"}
    assert set(queries["source"]) == {"sqlite3"}
    findings = analysis.n_plus_one(queries)
    assert set(findings["endpoint"]) == {"GET /items"} and set(findings["repetitions"]) == {6}


# --- Django (WSGI, the ORM) ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def django_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Callable, dict[int, int]]]:
    """A Django project configured in this process: two models, three views, the agent in MIDDLEWARE."""
    import types

    import django
    from django.conf import settings

    truth: dict[int, int] = {}
    urls = types.ModuleType("perfbench_test_urls")  # hashable, as Django caches resolvers by urlconf
    assert not settings.configured, "another test configured Django in this process"
    settings.configure(
        DEBUG=True,  # Django's own per-request tracing (connection.queries) is the independent count
        SECRET_KEY="perfbench-test-" + "k" * 40, ALLOWED_HOSTS=["127.0.0.1"], ROOT_URLCONF=urls,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                               "NAME": str(tmp_path_factory.mktemp("django") / "shop.sqlite3")}},
        INSTALLED_APPS=["django.contrib.contenttypes"], USE_TZ=True,
        # README's three lines for Django: the middleware, first
        MIDDLEWARE=["perfbench.agent.django.AgentMiddleware", "django.middleware.common.CommonMiddleware"],
        PERFBENCH_AGENT={"token": TOKEN},
    )
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection, models
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    class Category(models.Model):
        name = models.CharField(max_length=40)

        class Meta:
            app_label = "perfbench_shop"

    class Item(models.Model):
        name = models.CharField(max_length=40)
        category = models.ForeignKey(Category, on_delete=models.CASCADE)

        class Meta:
            app_label = "perfbench_shop"

    with connection.schema_editor() as editor:
        editor.create_model(Category)
        editor.create_model(Item)
    cats = [Category.objects.create(name=f"cat {i}") for i in range(4)]
    for i in range(ITEMS):
        Item.objects.create(name=f"item {i}", category=cats[i % 4])

    def traced(view: Callable) -> Callable:
        def run(request: HttpRequest, **kwargs: Any) -> Any:
            response = view(request, **kwargs)
            truth[int(request.headers["X-Request-Id"])] = len(connection.queries)  # reset by Django per request
            return response

        return run

    @traced
    def items(request: HttpRequest) -> JsonResponse:  # an N+1: each item's category on its own
        limit = int(request.GET["limit"])
        return JsonResponse([[it.name, it.category.name] for it in Item.objects.order_by("id")[:limit]], safe=False)

    @traced
    def items_eager(request: HttpRequest) -> JsonResponse:
        qs = Item.objects.select_related("category").order_by("id")[: int(request.GET["limit"])]
        return JsonResponse([[it.name, it.category.name] for it in qs], safe=False)

    @traced
    def item(request: HttpRequest, pk: int) -> JsonResponse:
        return JsonResponse({"name": Item.objects.get(pk=pk).name})

    urls.urlpatterns = [path("items/", items), path("items/eager/", items_eager), path("items/<int:pk>/", item)]
    from perfbench.agent import django as agent_django

    try:
        yield WSGIHandler(), truth
    finally:
        if agent_django._agent is not None:
            agent_django._agent.uninstall()
            agent_django._agent = None


def test_django_middleware_counts_match_connection_queries(django_app: tuple[Callable, dict[int, int]],
                                                           runs_dir: Path) -> None:
    application, truth = django_app
    with wsgi_server(application) as url:
        run = load(url, runs_dir, [Request("naive", "GET", "/items/?limit=5"),
                                   Request("eager", "GET", "/items/eager/?limit=5"),
                                   Request("one", "GET", "/items/3/")])
    check_counts(run, truth, {"naive": {6}, "eager": {1}, "one": {1}})
    check_timed(run, "sync")
    queries = run.queries.collect()
    assert set(queries["source"]) == {"django"}  # once each: the sqlite3 hook did not count them again
    assert set(queries["endpoint"]) == {"GET /items/", "GET /items/eager/", "GET /items/<int:pk>/"}
    findings = analysis.n_plus_one(queries)
    assert set(findings["endpoint"]) == {"GET /items/"} and set(findings["repetitions"]) == {5}


# --- Starlette and FastAPI (ASGI) ---------------------------------------------------------------------------------


def test_starlette_and_fastapi_add_middleware(tmp_path: Path, runs_dir: Path) -> None:
    from fastapi import FastAPI, Header
    from starlette.applications import Starlette
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    db = shop_db(tmp_path / "shop.db")
    traced: list[tuple[int, str]] = []

    def lookup(rid: int, ids: list[int]) -> list[Any]:
        conn = sqlite3.connect(db)
        conn.set_trace_callback(lambda sql: traced.append((rid, sql)))
        try:
            return [conn.execute("SELECT name FROM items WHERE id = ?", (i,)).fetchone()[0] for i in ids]
        finally:
            conn.close()

    async def starlette_items(request: StarletteRequest) -> JSONResponse:
        n = int(request.path_params["n"])
        return JSONResponse(lookup(int(request.headers["x-request-id"]), list(range(1, n + 1))))

    star = Starlette(routes=[Route("/items/{n:int}", starlette_items)])
    star.add_middleware(Agent, token=TOKEN)  # README's lines for Starlette

    fast = FastAPI()

    @fast.get("/items/{n}")
    def fastapi_items(n: int, x_request_id: int = Header()) -> list:  # sync: it runs in FastAPI's thread pool
        return lookup(x_request_id, list(range(1, n + 1)))

    fast.add_middleware(Agent, token=TOKEN)  # and for FastAPI

    for app, route in ((star, "GET /items/{n:int}"), (fast, "GET /items/{n}")):
        traced.clear()
        try:
            with UvicornThread(app) as url:
                run = load(url, runs_dir, [Request("two", "GET", "/items/2"), Request("five", "GET", "/items/5")])
        finally:
            layer = app.middleware_stack  # the agent Starlette built: uninstalled, so later tests start clean
            while layer is not None and not isinstance(layer, Agent):
                layer = getattr(layer, "app", None)
            assert isinstance(layer, Agent)
            layer.uninstall()
        truth: dict[int, int] = {}
        for rid, _sql in traced:
            truth[rid] = truth.get(rid, 0) + 1
        check_counts(run, truth, {"two": {2}, "five": {5}})
        assert set(run.queries.collect()["endpoint"]) == {route}


def test_collector_says_when_no_agent_answers(tmp_path: Path, runs_dir: Path) -> None:
    app = make_flask_app(shop_db(tmp_path / "shop.db"), [])
    agent = Agent(endpoints=False)  # records, serves nothing: Flask answers its own HTML 404
    app.wsgi_app = agent.wrap_wsgi(app.wsgi_app)
    try:
        with wsgi_server(app) as url:
            result = run_load(url, shapes.constant(rate=10, duration=0.3), Scenario([Request("h", "GET", "/health")]),
                              runs_dir=runs_dir, progress=False, announce=lambda line: None,
                              collectors=[AgentCollector(TOKEN)])
    finally:
        agent.uninstall()
    error = results.Run.load(result.path).meta["collectors"]["agent"]["error"]
    assert "no perfbench agent answers" in error and "HTTP 404" in error and "PERFBENCH_AGENT_TOKEN" in error
