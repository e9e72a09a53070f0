"""Secrets in URLs: what is hidden, what is kept, and how a notebook gets the real value back."""

from __future__ import annotations

import json

import pytest

from perfbench.redaction import SECRETS_ENV, redact_parameters, redact_url, unredacted
from perfbench.rundir import redact
from perfbench.safety import check_target
from perfbench.scenario import from_paths, single


@pytest.mark.parametrize("text, shown", [
    ("http://admin:pw@127.0.0.1:8080", "http://***@127.0.0.1:8080"),
    ("https://token@localhost/x", "https://***@localhost/x"),
    ("/x?api_key=K&page=2", "/x?api_key=***&page=2"),
    ("/x?password=P&Signature=S&X-Amz-Signature=T&access_token=A&key=K&sig=G&auth=U&session_id=I",
     "/x?password=***&Signature=***&X-Amz-Signature=***&access_token=***&key=***&sig=***&auth=***&session_id=***"),
    ("/x?author=bob&keyword=fast&monkey=1&page=2", "/x?author=bob&keyword=fast&monkey=1&page=2"),
    ("400, url='http://127.0.0.1:1/x?token=abc'", "400, url='http://127.0.0.1:1/x?token=***'"),
    ("no URL, a=b and user@example.com", "no URL, a=b and user@example.com"),
])
def test_redact_url(text, shown):
    assert redact_url(text) == shown


def test_meta_and_names_carry_no_url_secret():
    meta = redact({"target": "http://u:pw@127.0.0.1:1", "requests": [{"path": "/a?token=t"}], "rate": 5})
    assert meta == {"target": "http://***@127.0.0.1:1", "requests": [{"path": "/a?token=***"}], "rate": 5}
    assert from_paths(["/a?token=t"]).requests[0].name == "GET /a?token=***"
    assert from_paths(["/a?token=t"]).requests[0].path == "/a?token=t"  # what is sent is the real path
    assert single("/a?api_key=k").name == "/a?api_key=***"


def test_error_messages_show_the_target_redacted():
    with pytest.raises(Exception, match=r"'ftp://\*\*\*@127.0.0.1/'") as e:
        check_target("ftp://admin:pw@127.0.0.1/")
    assert "pw" not in str(e.value)


def test_a_notebook_gets_redacted_parameters_and_the_real_values_from_the_environment(monkeypatch):
    params = {"target": "http://u:pw@127.0.0.1:8", "paths": ["/a?token=t", "/b"], "rate": 3}
    shown, secrets = redact_parameters(params)
    assert shown == {"target": "http://***@127.0.0.1:8", "paths": ["/a?token=***", "/b"], "rate": 3}
    assert "pw" not in json.dumps(shown) and secrets == {"http://***@127.0.0.1:8": "http://u:pw@127.0.0.1:8",
                                                         "/a?token=***": "/a?token=t"}
    assert unredacted("http://***@127.0.0.1:8") == "http://***@127.0.0.1:8"  # nothing in the environment
    monkeypatch.setenv(SECRETS_ENV, json.dumps(secrets))
    assert check_target("http://***@127.0.0.1:8") == "http://u:pw@127.0.0.1:8"
    assert from_paths(["/a?token=***"]).requests[0].path == "/a?token=t"
    # a mapping whose real value does not redact to the key is ignored (no substitution by a forged entry)
    monkeypatch.setenv(SECRETS_ENV, json.dumps({"http://***@127.0.0.1:8": "http://10.0.0.1:8"}))
    assert unredacted("http://***@127.0.0.1:8") == "http://***@127.0.0.1:8"
    monkeypatch.setenv(SECRETS_ENV, "not json")
    assert unredacted("/a?token=***") == "/a?token=***"
