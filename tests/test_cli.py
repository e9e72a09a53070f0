import json
import subprocess
import sys

import pytest

from perfbench.cli import build_parser, main

COMMANDS = ["demo", "run", "experiment", "experiments", "summary", "serve-demo"]


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in COMMANDS:
        assert cmd in out
    assert "exit codes" in out


@pytest.mark.parametrize("cmd", COMMANDS)
def test_each_command_explains_itself(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert len(capsys.readouterr().out) > 200


def test_console_script_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "perfbench", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("perfbench ")


def test_non_loopback_target_is_refused_in_one_line(capsys, tmp_path):
    code = main(["run", "http://10.1.2.3:80", "--duration", "1", "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not loopback" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv, fragment", [
    (["run", "ftp://127.0.0.1/x"], "scheme must be http or https"),
    (["run", "http://127.0.0.1:99999"], "port must be a number"),
    (["run", "http://127.0.0.1:1", "--path", "/a*many"], "weight 'many' is not a number"),
    (["run", "http://127.0.0.1:1", "--scenario", "nope.txt"], "expected 'demo', a .toml scenario"),
    (["summary", "/nonexistent/run"], "no such run directory"),
])
def test_bad_input_gives_a_clear_message_and_a_distinct_code(argv, fragment, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (2, 3) and fragment in err and "Traceback" not in err


def test_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "http://127.0.0.1:1", "--rate", "-5"])
    assert e.value.code == 2 and "must be > 0" in capsys.readouterr().err


def test_run_and_summary_end_to_end(http_server, tmp_path, capsys):
    code = main(["run", http_server.url, "--rate", "50", "--duration", "1", "--path", "/", "--path",
                 "slow=GET /delay/10*2", "--runs-dir", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "slow" in out and "p99 ms" in out and "ALL" in out
    run_dir = next(tmp_path.iterdir())
    assert main(["summary", str(run_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["overall"]["count"] == 50
    assert main(["summary", str(run_dir), "--recompute"]) == 0


def test_parser_builds_without_importing_heavy_modules():
    # `perfbench --help` must stay fast: the parser does not import polars, papermill or aiohttp
    code = ("import sys; from perfbench.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('polars', 'papermill', 'aiohttp', 'altair') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
    assert build_parser().prog == "perfbench"


def _plan(*extra):
    from perfbench.commands.run import plan_from_args

    return plan_from_args(build_parser().parse_args(["run", "http://127.0.0.1:1", *extra]))


def test_shape_options_build_the_right_plans():
    from perfbench import shapes

    p = _plan("--rate", "20", "--duration", "2m", "--ramp-up", "10s")
    assert p.duration == 130 and p.stages[0].name == "ramp-up" and p.stages[1].start == 20
    p = _plan("--stages", "10s:50,30s:50,500ms:0", "--poisson")
    assert [(s.duration, s.start, s.end) for s in p.stages] == [(10, 0, 50), (30, 50, 50), (0.5, 50, 0)] and p.poisson
    p = _plan("--users", "5", "--duration", "30", "--think", "1..3")
    assert isinstance(p, shapes.ClosedPlan) and p.max_users == 5 and p.think == shapes.Uniform(1, 3)
    p = _plan("--users", "1", "--stages", "10s:5,10s:0", "--pacing", "2")
    assert p.max_users == 5 and p.think == shapes.Pacing(2)


@pytest.mark.parametrize("extra, fragment", [
    (["--stages", "10s-50"], "write DURATION:TARGET"),
    (["--stages", "ten:5,5s:-1"], "stage 1: duration 'ten'"),
    (["--duration", "forever"], "duration 'forever'"),
    (["--think", "2"], "belong to the closed model"),
    (["--users", "3", "--think", "slow"], "think time 'slow'"),
])
def test_bad_shape_options(extra, fragment, capsys):
    assert main(["run", "http://127.0.0.1:1", *extra]) == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize("path", ["aiohttp", "lean"])
def test_run_http_path_option_over_https(tls_server, tmp_path, monkeypatch, capsys, path):
    server, ca_file = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    code = main(["run", server.url, "--rate", "40", "--duration", "0.5", "--http-path", path, "--runs-dir",
                 str(tmp_path), "--quiet", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["overall"]["count"] == 20 and summary["overall"]["errors"] == 0
    assert summary["generator"]["path"] == path
