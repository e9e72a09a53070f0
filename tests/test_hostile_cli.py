"""A careless or hostile user at the command line: generated argument lists and TOML documents.

The property, for every input: the exit code is a documented one, a failure is one line on stderr,
and no traceback or "internal error" is ever printed. Runs in this process (``perfbench.cli.main``)
and sends no load: ``run`` is given ``--dry-run``, which checks everything and sends nothing.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfbench import shapes
from perfbench.cli import main
from perfbench.load import run_load
from perfbench.scenario import Request, Scenario

EXPECTED_CODES = {0, 2, 3, 4, 10}  # of the documented ones, those these inputs can reach (1 would be a bug)
URL = "http://127.0.0.1:1"

HOSTILE = ["", " ", "0", "-1", "nan", "inf", "-inf", "1e308", "5e-324", "1e-400", "abc", "\x00", "é", "\r\n",
           "1..inf", "3..1", "10s:5", "1s:nan", ",", ":", "/x*inf", "/x*0", "/x?token=t", "GET", "POST /a b",
           "p95<1s", "x:p95<1s", "p95<<1", "errors<200%", "../..", "http://[::1", "-", "1" * 400, "[]", "{}",
           "10", "0.5", "2m", "1h", "auto", "lean", "tcp://127.0.0.1:1"]
value = st.sampled_from(HOSTILE) | st.text(max_size=6)

RUN_OPTIONS = ["--rate", "--duration", "--ramp-up", "--stages", "--users", "--think", "--pacing", "--path", "--slo",
               "--timeout", "--max-in-flight", "--max-requests", "--http-path", "--label", "--allow-host", "--pid",
               "--start", "--ready-path", "--start-timeout", "--resources-interval", "--pyspy-rate", "--workers",
               "--scheduler", "--scenario"]
RUN_FLAGS = ["--poisson", "--quiet", "--json", "--resources", "--pyspy", "--tracemalloc", "--memray", "--agent"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, http_server) -> dict[str, str]:
    """Files and directories a careless user points perfbench at, and one real run directory."""
    d = tmp_path_factory.mktemp("hostile")
    (d / "ok.toml").write_text('[[request]]\nname = "a"\npath = "/"\n')
    (d / "bad.toml").write_text('[[request]]\nname = 5\nweight = inf\n')
    (d / "binary.toml").write_bytes(bytes(range(256)))
    (d / "raises.py").write_text("raise RuntimeError('scenario bug')\n")
    (d / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (d / "afile").write_text("not a directory")
    (d / "empty").mkdir()
    res = run_load(http_server.url, shapes.constant(20, 0.2), Scenario([Request("a", path="/")]),
                   runs_dir=d / "runs", progress=False)
    return {"ok.toml": str(d / "ok.toml"), "bad.toml": str(d / "bad.toml"), "binary.toml": str(d / "binary.toml"),
            "raises.py": str(d / "raises.py"), "exits.py": str(d / "exits.py"), "afile": str(d / "afile"),
            "empty": str(d / "empty"), "missing": str(d / "missing"), "run": str(res.path),
            "runs": str(d / "runs"), "out": str(d / "out")}


def call(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse: an argument it refuses
            code = e.code if isinstance(e.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def assert_well_behaved(argv: list[str], code: int, err: str) -> None:
    assert code in EXPECTED_CODES, (argv, code, err)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    if code != 0:
        assert err.count("\n") == 1 and err.endswith("\n"), (argv, err)


# a sensible value per option, so that generated command lines also get past the first check
GOOD = {"--rate": ["5", "0.5"], "--duration": ["1", "2s", "500ms"], "--ramp-up": ["1s"], "--stages": ["1s:5,1s:0"],
        "--users": ["2"], "--think": ["1", "1..2"], "--pacing": ["1"], "--path": ["/a", "n=POST /b*2", "/c/{x}"],
        "--slo": ["p95<1s", "GET /a:p99<1s", "errors<1%", "n:rps>=1"], "--timeout": ["5"], "--max-in-flight": ["10"],
        "--max-requests": ["10"], "--http-path": ["aiohttp", "lean", "auto"], "--label": ["smoke"],
        "--allow-host": ["example.com"], "--pid": ["1"], "--start": ["python -m http.server"], "--ready-path": ["/"],
        "--start-timeout": ["5"], "--resources-interval": ["1"], "--pyspy-rate": ["50"], "--workers": ["2"],
        "--scheduler": ["tcp://127.0.0.1:8786"], "--scenario": ["demo"]}


def run_argv(files):
    anything = value | st.sampled_from(list(files.values()) + ["demo", "nope.txt"])
    option = st.sampled_from(RUN_OPTIONS).flatmap(
        lambda o: st.tuples(st.just(o), st.sampled_from(GOOD[o]) | anything if o != "--scenario" else anything))
    return st.tuples(st.sampled_from([URL, "http://[::1", "ftp://x", "http://10.0.0.1", "http://a:pw@127.0.0.1:1",
                                      "http://127.0.0.1:99999", "127.0.0.1:1", ""]),
                     st.lists(option, max_size=5), st.lists(st.sampled_from(RUN_FLAGS), max_size=2, unique=True))


def other_argv(files):
    place = st.sampled_from([files["run"], files["afile"], files["empty"], files["missing"], files["ok.toml"]])
    return st.one_of(
        st.tuples(st.just("summary"), place, st.lists(st.sampled_from(["--json", "--recompute", "--slo"]), max_size=2),
                  value).map(lambda t: ["summary", t[1], *t[2], t[3]] if "--slo" in t[2] else ["summary", t[1], *t[2]]),
        st.tuples(place, place, st.sampled_from(["--threshold", "--fail-on", "--confidence", "--min-change-ms",
                                                 "--seed"]), value)
        .map(lambda t: ["compare", t[0], t[1], t[2], t[3], "--boot", "20", "--baselines-dir", files["empty"]]),
        st.tuples(place, value).map(lambda t: ["baseline", "save", t[0], "--name", t[1], "--baselines-dir",
                                               files["out"]]),
        st.tuples(value, value).map(lambda t: ["experiment", "no_such_experiment", "-p", t[0], t[1],
                                               "--reports-dir", files["out"]]),
        st.lists(value, max_size=3).map(lambda rest: ["stress", URL, "--max-rate", "1", *rest]),
        st.lists(value, max_size=3),
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_run_command_line_exits_with_a_documented_code_and_one_line(files, data):
    target, options, flags = data.draw(run_argv(files))
    argv = ["run", target, *(x for pair in options for x in pair), *flags, "--runs-dir", files["runs"], "--dry-run"]
    code, out, err = call(argv)
    assert_well_behaved(argv, code, err)
    if code == 0:
        assert out.startswith("dry run: ") and "nothing was sent" in out


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_other_command_line_exits_with_a_documented_code_and_one_line(files, data):
    argv = data.draw(other_argv(files))
    code, _, err = call(argv)
    assert_well_behaved(argv, code, err)


scalar = st.one_of(st.integers(-(10**30), 10**30), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from(["/", "/a/{id}", "GET", "post", "a\r\nb", "\x7f", "uuid", "", "é"]),
                   st.booleans(), st.text(max_size=5))
toml_value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.sampled_from(["int", "choice", "file", "column", "json_field", "equals",
                                                             "body_contains", "x", "X-Key", "q"]), inner, max_size=3),
                          max_leaves=6)
REQUEST_KEYS = ["name", "path", "method", "weight", "vars", "expect", "checks", "json", "graphql", "variables",
                "headers", "auth", "extra"]


def to_toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(to_toml(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {to_toml(x)}" for k, x in v.items()) + "}"


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(top=st.dictionaries(st.sampled_from(["name", "seed", "headers", "login", "extra"]), toml_value, max_size=3),
       requests=st.lists(st.dictionaries(st.sampled_from(REQUEST_KEYS), toml_value, max_size=6), max_size=3),
       prefix=st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff", b"\x00"]))
def test_any_toml_scenario_is_a_scenario_or_one_clear_line(files, top, requests, prefix):
    lines = [f"{json.dumps(k)} = {to_toml(v)}" for k, v in top.items()]
    for req in requests:
        lines.append("[[request]]")
        lines += [f"{json.dumps(k)} = {to_toml(v)}" for k, v in req.items()]
    f = Path(files["out"]).with_name("generated.toml")
    f.write_bytes(prefix + "\n".join(lines).encode() + b"\n")
    argv = ["run", URL, "--scenario", str(f), "--runs-dir", files["runs"], "--dry-run"]
    code, _, err = call(argv)
    assert_well_behaved(argv, code, err)
    assert code in (0, 2)
