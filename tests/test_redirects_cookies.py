"""The pure rules of redirects and cookies (the engine's use of them is tested live elsewhere)."""

from __future__ import annotations

import pytest

from perfbench.engine.cookies import MAX_COOKIES, CookieJar
from perfbench.engine.redirects import Hop, max_redirects, next_hop, path_of

BASE = "http://127.0.0.1:8000/a/b"


@pytest.mark.parametrize(("status", "method", "want"), [
    (301, "GET", "GET"), (302, "GET", "GET"), (301, "POST", "GET"), (302, "POST", "GET"),
    (303, "POST", "GET"), (303, "PUT", "GET"), (303, "HEAD", "HEAD"), (307, "POST", "POST"),
    (308, "PUT", "PUT"), (302, "DELETE", "DELETE"),
])
def test_the_method_of_the_next_hop_follows_the_browsers_rules(status, method, want):
    hop = next_hop(status, "/c", method, BASE, b"{}", {"Content-Type": "application/json", "X-A": "1"})
    assert isinstance(hop, Hop)
    assert hop.method == want
    if want == method:
        assert hop.body == b"{}" and hop.headers["Content-Type"] == "application/json"
    else:
        assert hop.body is None and "Content-Type" not in hop.headers
    assert hop.headers["X-A"] == "1"


def test_locations_resolve_against_the_url_that_answered():
    assert next_hop(302, "c?x=1", "GET", BASE, None, {}).url == "http://127.0.0.1:8000/a/c?x=1"
    assert next_hop(302, "//localhost:9/z", "GET", BASE, None, {}).url == "http://localhost:9/z"
    assert next_hop(302, "/z#frag", "GET", BASE, None, {}).url == "http://127.0.0.1:8000/z"
    assert path_of("http://127.0.0.1:8000/a/c?x=1") == "/a/c?x=1"
    assert path_of("http://127.0.0.1:8000") == "/"


def test_credentials_stay_on_their_origin():
    headers = {"Authorization": "Bearer t", "Cookie": "s=1", "X-A": "1"}
    same = next_hop(302, "/z", "GET", BASE, None, headers)
    other = next_hop(302, "http://127.0.0.1:8001/z", "GET", BASE, None, headers)
    assert same.headers == headers
    assert other.headers == {"X-A": "1"}


@pytest.mark.parametrize("location", ["http://10.0.0.5/x", "https://example.com/", "http://[2001:db8::1]/"])
def test_a_redirect_off_the_machine_is_refused(location):
    why = next_hop(302, location, "GET", BASE, None, {})
    assert isinstance(why, str) and "not followed" in why
    assert isinstance(next_hop(302, "http://example.com/", "GET", BASE, None, {}, allow_hosts=["example.com"]), Hop)


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/x", "http://127.0.0.1:99999/", "javascript:alert(1)"])
def test_a_redirect_to_something_else_than_http_is_refused(location):
    assert isinstance(next_hop(302, location, "GET", BASE, None, {}), str)


def test_the_redirect_policy():
    assert [max_redirects(p) for p in (None, True, False, 0, 3)] == [10, 10, 0, 0, 3]


class Clock:
    t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def test_a_jar_sends_back_what_the_host_set():
    jar = CookieJar()
    jar.store("127.0.0.1", "/auth/login", ["session=abc; Path=/; HttpOnly", "pref=1"])
    assert jar.header("127.0.0.1", "/api/x") == "session=abc"
    assert jar.header("127.0.0.1", "/auth/me") == "pref=1; session=abc"  # the longer path first
    assert jar.header("localhost", "/api/x") is None  # host-only
    jar.store("127.0.0.1", "/", ["session=def; Path=/"])
    assert jar.header("127.0.0.1", "/") == "session=def"


def test_expiry_secure_and_domain():
    clock = Clock()
    jar = CookieJar(clock)
    jar.store("127.0.0.1", "/", ["a=1; Max-Age=10", "b=2; Secure", "c=3; Domain=example.com",
                                 "d=4; Expires=Wed, 21 Oct 2015 07:28:00 GMT", "e=5; Path=/x"])
    assert jar.header("127.0.0.1", "/") == "a=1"
    assert jar.header("127.0.0.1", "/", https=True) == "a=1; b=2"
    assert jar.header("127.0.0.1", "/x/y") == "e=5; a=1"
    assert jar.header("127.0.0.1", "/xy") == "a=1"
    clock.t += 11
    assert jar.header("127.0.0.1", "/") is None
    jar.store("127.0.0.1", "/", ["e=gone; Path=/x; Max-Age=0"])
    assert jar.header("127.0.0.1", "/x") is None


def test_a_hostile_server_cannot_grow_a_jar():
    jar = CookieJar()
    jar.store("127.0.0.1", "/", [f"k{i}=v" for i in range(10 * MAX_COOKIES)] + ["big=" + "x" * 10_000, "=x", "noeq"])
    assert len(jar) == MAX_COOKIES
