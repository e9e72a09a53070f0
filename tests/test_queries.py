"""Fingerprinting and redaction (property tests), the bounded query log, the analyses."""

from __future__ import annotations

import sqlite3

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfbench import sqltext
from perfbench.agent import sql as capture
from perfbench.analysis import queries as analysis

# statement templates: {} marks a constant; no digits and no quotes outside the constants
TEMPLATES = [
    "SELECT * FROM users WHERE id = {}",
    "select name, email from users where email = {} and active = {}",
    "UPDATE posts SET title = {}, views = views + {} WHERE id = {}",
    "INSERT INTO comments (post_id, body) VALUES ({}, {})",
    "DELETE FROM sessions WHERE expires < {} OR user_id = {}",
    "SELECT count(*) FROM t WHERE a BETWEEN {} AND {} LIMIT {} OFFSET {}",
]
STYLES = ["?", "$n", "%s", ":name", "%(name)s"]

ints = st.integers(min_value=-(10**12), max_value=10**12).map(str)
floats = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9).map(repr)
strings = st.text(max_size=30).map(lambda s: "'" + s.replace("'", "''") + "'")
literals = st.one_of(ints, floats, strings, st.sampled_from(["-7", "0x1F", "1e-5", "E'a\\'b'", "$$x$y$$"]))


def render(template: str, values: list[str]) -> str:
    return template.format(*values)


def placeholders(template: str, style: str) -> str:
    n = template.count("{}")
    marks = {"?": ["?"] * n, "$n": [f"${i + 1}" for i in range(n)], "%s": ["%s"] * n,
             ":name": [f":p_{i}" for i in range(n)], "%(name)s": [f"%(p_{i})s" for i in range(n)]}[style]
    return template.format(*marks)


@pytest.mark.slow  # 300 examples
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TEMPLATES), st.data())
def test_literals_do_not_change_the_fingerprint(template: str, data: st.DataObject) -> None:
    n = template.count("{}")
    a = data.draw(st.lists(literals, min_size=n, max_size=n))
    b = data.draw(st.lists(literals, min_size=n, max_size=n))
    fa, ta = sqltext.fingerprint_and_text(render(template, a))
    fb, _ = sqltext.fingerprint_and_text(render(template, b))
    assert fa == fb
    # the redacted text holds no literal: no quote, no digit (the templates have neither)
    assert "'" not in ta and not any(c.isdigit() for c in ta)
    assert "$$" not in ta


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(TEMPLATES), st.sampled_from(STYLES), st.lists(literals, min_size=4, max_size=4))
def test_every_placeholder_style_matches_the_literal_form(template: str, style: str, values: list[str]) -> None:
    n = template.count("{}")
    assert sqltext.fingerprint(placeholders(template, style)) == sqltext.fingerprint(render(template, values[:n] + ["1"] * n))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=60), st.integers(min_value=1, max_value=60), st.sampled_from(STYLES),
       st.sampled_from(["", "::INTEGER", "::varchar(20)"]), st.lists(literals, min_size=1, max_size=60))
def test_in_lists_of_any_length_collapse(n: int, m: int, style: str, cast: str, values: list[str]) -> None:
    def stmt(items: list[str]) -> str:
        return f"SELECT * FROM posts WHERE author_id IN ({', '.join(items)}) AND hidden = false"

    by_marks = [s + cast for s in placeholders(", ".join(["{}"] * n), style).split(", ")]
    fp = sqltext.fingerprint(stmt(by_marks))
    assert fp == sqltext.fingerprint(stmt([v + cast for v in (values * m)[:m]]))
    assert sqltext.redact(stmt(by_marks)) == "SELECT * FROM posts WHERE author_id IN (...) AND hidden = false"


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=20), st.integers(min_value=1, max_value=5))
def test_multi_row_values_collapse(rows: int, cols: int) -> None:
    values = ", ".join("(" + ", ".join("?" for _ in range(cols)) + ")" for _ in range(rows))
    one = "(" + ", ".join("?" for _ in range(cols)) + ")"
    assert sqltext.fingerprint(f"INSERT INTO t VALUES {values}") == sqltext.fingerprint(f"INSERT INTO t VALUES {one}")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_never_raises_and_is_idempotent(sql: str) -> None:
    fp, text = sqltext.fingerprint_and_text(sql)
    assert len(fp) == 16
    assert sqltext.redact(text) == text
    assert sqltext.fingerprint(text) == fp or "'" in sql or '"' in sql or "$" in sql or "--" in sql or "/*" in sql


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(TEMPLATES), st.data())
def test_case_spacing_and_comments_do_not_matter(template: str, data: st.DataObject) -> None:
    n = template.count("{}")
    sql = render(template, data.draw(st.lists(ints, min_size=n, max_size=n)))
    noisy = "/* app=shop */ " + sql.upper().replace(" ", "  \n\t") + " -- trailing"
    assert sqltext.fingerprint(noisy) == sqltext.fingerprint(sql)


def test_different_statements_differ() -> None:
    fps = {sqltext.fingerprint(t.format(*["1"] * t.count("{}"))) for t in TEMPLATES}
    assert len(fps) == len(TEMPLATES)
    assert sqltext.fingerprint("SELECT a FROM t") != sqltext.fingerprint("SELECT b FROM t")
    assert sqltext.fingerprint('SELECT "A" FROM t') != sqltext.fingerprint('SELECT "a" FROM t')  # quoted: case matters
    assert sqltext.fingerprint("SELECT a::int FROM t") != sqltext.fingerprint("SELECT a FROM t")  # casts on columns stay
    assert sqltext.fingerprint("SELECT x - 1 FROM t") == sqltext.fingerprint("SELECT x - 2 FROM t")
    assert sqltext.fingerprint("SELECT x - 1 FROM t") != sqltext.fingerprint("SELECT x FROM t")


def test_secrets_never_reach_the_text() -> None:
    sql = ("INSERT INTO users (email, password) VALUES ('alice@example.com', 'hunter2'), "
           "('bob@example.com', $pw$s3cr3t$pw$) /* token=abc */ -- password=swordfish")
    text = sqltext.redact(sql)
    for secret in ("alice", "hunter2", "bob", "s3cr3t", "abc", "swordfish"):
        assert secret not in text
    assert text == "INSERT INTO users(email, password) VALUES (...)"


@pytest.mark.parametrize(("raw", "expected"), [
    ("42", (42, "ok")), (b"7", (7, "ok")), (" 9 ", (9, "ok")), ("-3", (-3, "ok")), (None, (None, "missing")),
    ("", (None, "malformed")), ("4x", (None, "malformed")), ("9" * 20, (None, "malformed")),
    ("9223372036854775808", (None, "malformed")), (b"\xff", (None, "malformed")), ("1.5", (None, "malformed")),
])
def test_parse_request_id(raw, expected) -> None:  # noqa: ANN001
    assert capture.parse_request_id(raw) == expected


def test_the_log_is_bounded_and_counts_what_it_dropped() -> None:
    log = capture.QueryLog(capacity=10)
    tag = capture.RequestTag(log, 1, "GET /x")
    for i in range(25):
        log.add_query(tag, f"SELECT {i}", i, 1, "test")
        log.add_cache(tag, "hit", None)
    first = log.drain(limit=4)
    assert len(first["queries"]["fingerprint"]) == 4 and first["more"] is True
    assert first["dropped"] == {"queries": 15, "cache": 15, "downstream": 0}
    assert first["queries"]["start_ns"] == [15, 16, 17, 18]  # the oldest were dropped
    rest = log.drain()
    assert len(rest["queries"]["fingerprint"]) == 6 and rest["dropped"] == {"queries": 0, "cache": 0, "downstream": 0}
    assert not rest["more"]
    assert list(first["statements"].values()) == ["SELECT ?"]


def test_sqlite3_capture_outside_requests_and_uninstall() -> None:
    log = capture.QueryLog()
    capture.install(log)
    try:
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE t (a)")
        conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
        cur = conn.cursor()
        cur.execute("SELECT a FROM t WHERE a IN (1, 2, 3)")
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("SELECT nope FROM t")
        conn.close()
    finally:
        capture.uninstall(log)
    assert sqlite3.connect.__name__ == "connect" and not hasattr(sqlite3.connect, "__perfbench_original__")
    body = log.drain()
    assert body["queries"]["request_id_status"] == ["outside"] * 4
    assert body["queries"]["error"] == [False, False, False, True]
    assert list(body["statements"].values()) == ["CREATE TABLE t(a)", "INSERT INTO t VALUES (...)",
                                                  "SELECT a FROM t WHERE a IN (...)", "SELECT nope FROM t"]


def frame() -> pl.DataFrame:
    rows = []
    for rid, endpoint, n in [(1, "naive", 6), (2, "naive", 4), (3, "eager", 1)]:
        rows.append((rid, endpoint, "page", "SELECT page", 1_000_000))
        rows += [(rid, endpoint, "author", "SELECT author", 500_000)] * n
    rows.append((None, None, "bg", "SELECT bg", 9_000_000))
    return pl.DataFrame(rows, schema=["request_id", "endpoint", "fingerprint", "statement", "duration_ns"],
                        orient="row")


def test_analyses() -> None:
    df = frame()
    findings = analysis.n_plus_one(df, threshold=5)
    assert findings.select("request_id", "fingerprint", "repetitions", "time_ms").rows() == [(1, "author", 6, 3.0)]
    assert analysis.n_plus_one(df, threshold=4)["request_id"].to_list() == [1, 2]
    summary = analysis.n_plus_one_summary(analysis.n_plus_one(df, threshold=4))
    assert summary.select("endpoint", "requests", "repetitions_min", "repetitions_max").rows() == [("naive", 2, 4, 6)]
    per = analysis.queries_per_request(df)
    assert per.select("request_id", "queries", "fingerprints").rows() == [(1, 7, 2), (2, 5, 2), (3, 2, 2)]
    stats = analysis.query_count_stats(per)
    assert stats.filter(pl.col("endpoint") == "naive").select("min", "max", "requests").row(0) == (5, 7, 2)
    slow = analysis.slowest_fingerprints(df)
    assert slow["fingerprint"].to_list()[0] == "bg" and slow.filter(pl.col("fingerprint") == "author")["count"].item() == 11
    with pytest.raises(ValueError):
        analysis.n_plus_one(df, threshold=1)


def requests() -> pl.LazyFrame:
    """The engine's side of :func:`frame`: requests 1-3 ran its SQL, request 4 ran none."""
    rows = [(1, "naive", 10_000_000, 8_000_000), (2, "naive", 6_000_000, 4_000_000),
            (3, "eager", 3_000_000, 2_000_000), (4, "health", 1_000_000, 0)]
    return pl.DataFrame(rows, schema=["request_id", "endpoint", "latency_ns", "service_ns"], orient="row").with_columns(
        pl.col("request_id").cast(pl.Int64), pl.lit(1_000).alias("intended_ns"), pl.lit(1_000).alias("start_ns"),
        pl.lit(200).alias("status"), pl.lit(None, pl.String).alias("error")).lazy()


def test_statements_alone_and_joined_to_requests_agree() -> None:
    df = frame().with_columns(pl.col("request_id").cast(pl.Int64))
    alone = analysis.queries_per_request(df)
    joined = analysis.request_queries(requests(), df.lazy())
    cols = ["request_id", "endpoint", "queries", "fingerprints", "db_ms"]
    assert alone.select(cols).rows() == [(1, "naive", 7, 2, 4.0), (2, "naive", 5, 2, 3.0), (3, "eager", 2, 2, 1.5)]
    # the join keeps every request: the one without SQL has zeros, the others the same figures
    assert joined.select(cols).rows() == [*alone.select(cols).rows(), (4, "health", 0, 0, 0.0)]
    assert joined["db_share"].to_list() == [0.5, 0.75, 0.75, None]
    # one distribution of queries per request, from either frame; the joined one adds the DB share
    stats_alone = analysis.query_count_stats(alone)
    stats_joined = analysis.query_count_stats(joined.filter(pl.col("queries") > 0))
    assert stats_joined.columns == [*stats_alone.columns, "db_share_p50"]
    assert stats_joined.drop("db_share_p50").equals(stats_alone)
    assert stats_alone.filter(pl.col("endpoint") == "naive").select("requests", "min", "p50", "max", "mean").row(0) \
        == (2, 5, 5, 7, 6.0)
    assert stats_joined.filter(pl.col("endpoint") == "naive")["db_share_p50"].item() == 0.5
    # the slowest requests' statements: the per-fingerprint figures of slowest_fingerprints
    slow, fps = analysis.slowest_requests_queries(requests(), df.lazy(), fraction=1.0)
    assert slow["request_id"].to_list() == [1, 2, 3, 4]
    every = analysis.slowest_fingerprints(df.filter(pl.col("request_id").is_not_null()))
    assert fps.select("fingerprint", "executions", "requests", "total_ms", "mean_ms").rows() == \
        every.select("fingerprint", "count", "requests", "total_ms", "mean_ms").rows() == \
        [("author", 11, 3, 5.5, 0.5), ("page", 3, 3, 3.0, 1.0)]
    assert fps["share"].to_list() == pytest.approx([5.5 / 8.5, 3.0 / 8.5])
