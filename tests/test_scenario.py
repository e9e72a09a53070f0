import random

import pytest

from perfbench.errors import ConfigError
from perfbench.scenario import (
    BodyContains,
    Choice,
    IntRange,
    JsonField,
    Login,
    NoGraphQLErrors,
    Predicate,
    Request,
    Scenario,
    from_paths,
    graphql,
)
from perfbench.scenario_toml import load_toml
from perfbench.scenarios import NAMED, load_scenario


def test_status_expectations_and_checks():
    r = Request("a")
    assert r.evaluate(200, b"") == (None, None)
    assert r.evaluate(503, b"") == ("http_5xx", None)
    assert r.evaluate(404, b"")[0] == "http_4xx"
    r = Request("b", expect=(200, 404))
    assert r.evaluate(404, b"") == (None, None)
    assert r.evaluate(201, b"") == ("check", "status 201 not in [200, 404]")
    r = Request("c", checks=(JsonField("user.id"), BodyContains("alice")))
    assert r.evaluate(200, b'{"user": {"id": 7, "name": "alice"}}') == (None, None)
    assert r.evaluate(200, b'{"user": {"name": "alice"}}') == ("check", "JSON has no field user.id")
    assert r.evaluate(200, b'{"user": {"id": 7}}') == ("check", "body does not contain 'alice'")
    assert r.evaluate(200, b"<html>") == ("check", "body is not JSON")
    assert r.evaluate(500, b"") == ("http_5xx", None)  # checks run only on accepted statuses


def test_json_field_equality_and_list_indexes():
    check = JsonField("items.-1.sku", equals="B2")
    assert check(200, b'{"items": [{"sku": "A1"}, {"sku": "B2"}]}') is None
    assert "is 'A1', expected 'B2'" in check(200, b'{"items": [{"sku": "B2"}, {"sku": "A1"}]}')


def test_predicate_failures_and_exceptions_are_reasons_not_crashes():
    p = Predicate(lambda status, body: len(body) > 3, "long enough")
    assert p(200, b"abcd") is None and p(200, b"ab") == "long enough failed"
    assert "raised ZeroDivisionError" in Predicate(lambda s, b: 1 / 0)(200, b"")


def test_graphql_requests_post_query_and_variables_and_catch_errors():
    r = graphql("search", "query($q: String!) { search(q: $q) { id } }", {"q": "{term}"},
                vars={"term": Choice(("shoes",))})
    path, body = r.render(random.Random(0))
    assert r.method == "POST" and path == "/graphql"
    assert body == b'{"query":"query($q: String!) { search(q: $q) { id } }","variables":{"q":"shoes"}}'
    assert r.evaluate(200, b'{"data": {"search": []}}') == (None, None)
    assert r.evaluate(200, b'{"errors": [{"message": "boom"}]}') == ("check", "GraphQL errors: 'boom'")
    assert NoGraphQLErrors()(200, b"nope") == "GraphQL answer is not JSON"


def test_variables_render_with_types_kept():
    r = Request("p", "POST", "/items/{n}", json={"n": "{n}", "label": "item-{n}"}, vars={"n": IntRange(5, 5)})
    assert r.render(random.Random(1)) == ("/items/5", b'{"n":5,"label":"item-5"}')


def test_choice_from_files(tmp_path):
    (tmp_path / "ids.txt").write_text("a\n\nb\nc\n")
    assert Choice.from_file(tmp_path / "ids.txt").values == ("a", "b", "c")
    (tmp_path / "skus.csv").write_text("sku,price\nX1,3\nX2,4\n")
    assert Choice.from_file(tmp_path / "skus.csv", column="sku").values == ("X1", "X2")
    with pytest.raises(ConfigError, match="no column 'nope'"):
        Choice.from_file(tmp_path / "skus.csv", column="nope")
    with pytest.raises(ConfigError, match="cannot read it"):
        Choice.from_file(tmp_path / "missing.txt")


def test_scenario_validation_reports_every_problem():
    with pytest.raises(ConfigError) as e:
        Scenario([Request("", "FETCH", "api", weight=0), Request("x", path="/a/{id}"), Request("x")])
    msg = str(e.value)
    for part in ("name must not be empty", "method 'FETCH'", "must start with '/'", "weight must be a number from 1e-06",
                 "placeholder {id} has no variable", "name 'x' is used twice"):
        assert part in msg, part


def test_per_user_login_bodies():
    login = Login("/auth/login", lambda vu: {"email": f"u{vu}@example.com", "password": "pw"})
    assert login.body(3) == b'{"email": "u3@example.com", "password": "pw"}'


TOML = """
name = "shop"
seed = 4
[headers]
Accept = "application/json"
[login]
path = "/auth/login"
json = { email = "a@example.com", password = "s3cret" }

[[request]]
name = "detail"
path = "/api/items/{id}"
weight = 3
expect = [200, 404]
vars = { id = { int = [1, 500] }, sku = { file = "skus.txt" }, ref = "uuid" }
checks = [{ json_field = "id" }, { body_contains = "price" }]

[[request]]
name = "create"
method = "post"
path = "/api/items"
json = { title = "x", ref = "{ref}" }
vars = { ref = "uuid" }

[[request]]
name = "search"
graphql = "query { search { id } }"
"""


def test_toml_scenario(tmp_path):
    (tmp_path / "skus.txt").write_text("A\nB\n")
    f = tmp_path / "shop.toml"
    f.write_text(TOML)
    s = load_scenario(str(f))
    assert s.name == "shop" and s.seed == 4 and s.headers == {"Accept": "application/json"}
    assert [r.name for r in s.requests] == ["detail", "create", "search"]
    detail, create, search = s.requests
    assert detail.weight == 3 and detail.expect == (200, 404) and isinstance(detail.vars["id"], IntRange)
    assert detail.vars["sku"].values == ("A", "B") and len(detail.checks) == 2
    assert create.method == "POST" and search.method == "POST" and search.path == "/graphql"
    assert s.login.path == "/auth/login"
    assert s.describe()["login"]["json"]["password"] == "s3cret"  # redacted when written: see test_rundir


def test_toml_problems_are_all_reported_with_their_field(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("""
colour = "red"
seed = "x"
[[request]]
name = "a"
path = "nope"
weight = -1
retries = 3
vars = { id = { int = [5, 1] }, f = { file = "missing.txt" } }
checks = [{ json = "x" }]
[[request]]
path = "/b"
""")
    with pytest.raises(ConfigError) as e:
        load_toml(f)
    msg = str(e.value)
    for part in ("unknown field 'colour'", "seed: an integer", "request[0] (a): unknown field 'retries'",
                 "request[0] (a): weight must be a number from", "request[0] (a): path 'nope' must start",
                 "vars.id: one of", "vars.f: data file", "checks[0]:", "request[1]: name must not be empty"):
        assert part in msg, part


def test_toml_syntax_error_is_one_clear_message(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("[[request]\nname = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(f)


def test_cli_path_specs():
    s = from_paths(["/health", "posts=GET /api/posts*3", "POST /api/items"])
    assert [(r.name, r.method, r.path, r.weight) for r in s.requests] == [
        ("GET /health", "GET", "/health", 1.0), ("posts", "GET", "/api/posts", 3.0),
        ("POST /api/items", "POST", "/api/items", 1.0)]


def test_load_scenario_resolves_names_files_and_paths(tmp_path):
    assert set(NAMED) == {"demo"}
    demo = load_scenario("demo")
    assert demo.name == "demo" and demo.login is not None and "posts_naive" in [r.name for r in demo.requests]
    assert [(r.method, r.path) for r in load_scenario(None, ["POST /api/leak"]).requests] == [("POST", "/api/leak")]
    assert [r.path for r in load_scenario("").requests] == ["/"]
    f = tmp_path / "mix.py"
    f.write_text("from perfbench.scenario import single\nscenario = single('/health')\n")
    assert load_scenario(str(f)).requests[0].path == "/health"
    with pytest.raises(ConfigError, match="expected 'demo'"):
        load_scenario("nope")
    with pytest.raises(ConfigError, match="not both"):
        load_scenario("demo", ["/"])
