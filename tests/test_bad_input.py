"""Bad input as a careless user gives it: one line on stderr, the documented exit code, nothing sent.

Every case runs the real command line in this process (``perfbench.cli.main``) and checks the exit
code, that stderr is one line without a traceback, and, for ``run``, that no run directory was made
(the problem was found before any load).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from perfbench.cli import main

URL = "http://127.0.0.1:1"  # never reached: every case fails validation first


def run_cli(argv, capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse: --help, or an argument it refuses
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err: str) -> None:
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err


# --------------------------------------------------------------------- one line, the right code, always
def test_an_unexpected_exception_is_one_line_naming_where_and_the_traceback_file(monkeypatch, capsys):
    from perfbench.commands import summary

    def broken(args):
        return {}["no such key"]  # a bug of perfbench, as an unforeseen exception

    monkeypatch.setattr(summary, "cmd_summary", broken)
    code, _, err = run_cli(["summary", "somewhere"], capsys)
    # where: the innermost frame in perfbench (here the CLI, which called the broken command)
    assert code == 1 and err.startswith("perfbench: internal error: KeyError: 'no such key' in _main (perfbench/cli.py:")
    assert_one_line(err)
    path = err.split("the full traceback is in ", 1)[1].split(" ", 1)[0]
    try:
        text = Path(path).read_text()
        assert "Traceback (most recent call last)" in text and "no such key" in text
    finally:
        os.unlink(path)
    with pytest.raises(KeyError):  # --debug, anywhere on the line: the traceback itself
        main(["summary", "somewhere", "--debug"])


def test_an_error_while_stopping_on_sigterm_keeps_the_exit_code_143(monkeypatch, capsys):
    """SIGTERM cuts perfbench short anywhere (an import, a cleanup); what fails while it unwinds is told
    on the same line, and the exit code stays the documented 143, not 1 (CI reads it)."""
    import signal

    from perfbench.commands import summary

    def cut_short(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the CLI's handler raises Terminated here
            time.sleep(5)
        finally:
            raise RuntimeError("cleanup met a half-imported module")

    monkeypatch.setattr(summary, "cmd_summary", cut_short)
    code, _, err = run_cli(["summary", "somewhere"], capsys)
    assert code == 143 and err.startswith("perfbench: terminated; while stopping: RuntimeError: cleanup met"), err
    assert_one_line(err)
    os.unlink(err.split("the full traceback is in ", 1)[1].split(" ", 1)[0])
    monkeypatch.undo()
    code, _, err = run_cli(["summary", str(os.devnull)], capsys)  # the next command starts afresh
    assert code == 3 and "terminated" not in err


DROPPED = """
import os, signal, sys, weakref
from perfbench import cli, stops
signal.signal(signal.SIGTERM, cli._on_sigterm)  # as the CLI sets them up
sys.unraisablehook = cli._quiet_dropped_stop
class Thing:
    pass
def callback(_):  # SIGTERM arrives while a weakref callback runs: Python drops the exception it raises
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):
        pass
thing = Thing()
ref = weakref.ref(thing, callback)
del thing
print("went on; stop recorded:", stops.pending())
"""


def test_a_sigterm_python_drops_is_recorded_and_not_printed_as_a_traceback():
    import subprocess

    proc = subprocess.run([sys.executable, "-c", DROPPED], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "went on; stop recorded: terminated\n", proc
    assert proc.stderr == ""  # not "Exception ignored in ... Traceback"


def test_argument_errors_are_one_line_exit_2(capsys):
    code, _, err = run_cli(["run", URL, "--rate", "many"], capsys)
    assert code == 2 and err == "perfbench run: error: argument --rate: 'many' is not a number " \
                                "(see perfbench run --help)\n"
    code, _, err = run_cli(["run"], capsys)
    assert code == 2 and "the following arguments are required: target" in err
    assert_one_line(err)
    code, out, err = run_cli([], capsys)
    assert code == 2 and "usage" in out and err == "perfbench: error: name a command (see perfbench --help)\n"
    code, _, err = run_cli(["baseline"], capsys)
    assert code == 2 and "name an action" in err
    assert_one_line(err)


# ------------------------------------------------------------- run options: refused, never ignored
@pytest.mark.parametrize("extra, fragment", [
    (["--users", "2", "--rate", "50"], "--rate is the open model's arrival rate"),
    (["--poisson", "--users", "2"], "--poisson shapes open-model arrivals"),
    (["--users", "2", "--think", "1", "--pacing", "2"], "give one of them"),
    (["--stages", ""], "no stages given"),
    (["--stages", "1s:5", "--rate", "5"], "--stages gives the rates"),
    (["--stages", "1s:5", "--duration", "5"], "--stages gives the duration"),
    (["--users", "2", "--stages", "1s:2", "--ramp-up", "3"], "ramp with a first stage"),
    (["--ready-path", "/up"], "--ready-path are for the service --start starts"),
    (["--resources-interval", "2"], "--resources-interval without --resources"),
    (["--pyspy-rate", "50"], "--pyspy-rate without --pyspy"),
    (["--snapshot-interval", "2"], "--snapshot-interval without --tracemalloc"),
    (["--pid", "1"], "--pid is the process --resources and --pyspy watch"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "give one of them"),
    (["--start", "serve 'unclosed"], "No closing quotation"),
    (["--label", "x" * 65], "--label: at most 64 characters"),
    (["--slo", "nosuch:p95<1s"], "no endpoint 'nosuch' in the scenario (its endpoints: GET /)"),
    (["--timeout", "nan"], "must be > 0 and finite"),
    (["--rate", "inf"], "must be > 0 and finite"),
    (["--duration", "inf"], "must be > 0 and finite"),
    (["--users", "2", "--think", "1..inf"], "think time '1..inf'"),
    (["--path", "/x*inf"], "weight must be a number from 1e-06 to 1e+09, got inf"),
    (["--path", "/x*1e308", "--path", "/y*1e308"], "got 1e+308"),
    (["--path", "/x*5e-324"], "got 5e-324"),
    (["--pid", "1" * 400], "must be from 1 to 1e+12"),
    (["--max-requests", "1e3"], "is not a number"),
])
def test_conflicting_ignored_and_non_finite_options_are_refused_before_any_load(extra, fragment, tmp_path, capsys):
    code, _, err = run_cli(["run", URL, "--runs-dir", str(tmp_path / "runs"), *extra], capsys)
    assert code == 2 and fragment in err, err
    assert_one_line(err)
    assert not (tmp_path / "runs").exists()


def test_every_problem_of_a_run_is_reported_at_once(tmp_path, capsys):
    code, _, err = run_cli(["run", "http://[::1", "--users", "2", "--rate", "5", "--path", "/a*inf",
                            "--slo", "p95<<1", "--runs-dir", str(tmp_path)], capsys)
    assert code == 2 and err.startswith("perfbench: error: 4 problems: ")
    for part in ("--rate is the open model's", "not a URL (Invalid IPv6 URL)", "got inf", "SLO 'p95<<1'"):
        assert part in err, part
    assert_one_line(err)


@pytest.mark.parametrize("target, fragment", [
    ("http://[::1", "not a URL (Invalid IPv6 URL)"),
    ("http://127.0.0.1:80/a b", "no spaces or control characters"),
    ("http://127.0.0.1:99999", "port must be a number"),
])
def test_malformed_targets_are_clean_errors(target, fragment, capsys):
    code, _, err = run_cli(["run", target], capsys)
    assert code == 2 and fragment in err
    assert_one_line(err)


def test_an_unusable_runs_dir_is_a_clear_error(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _, err = run_cli(["run", URL, "--runs-dir", str(a_file / "runs")], capsys)
    assert code == 2 and "is not a directory" in err
    assert_one_line(err)
    code, _, err = run_cli(["run", URL, "--runs-dir", str(a_file)], capsys)
    assert code == 2 and "is not a directory" in err
    if os.path.isdir("/proc/self"):  # a directory nothing can be created in, even by root
        code, _, err = run_cli(["run", URL, "--runs-dir", "/proc/perfbench-runs"], capsys)
        assert code == 2 and "--runs-dir '/proc/perfbench-runs': not a usable directory" in err
    if os.geteuid() != 0:  # root writes into a read-only directory anyway
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        code, _, err = run_cli(["run", URL, "--runs-dir", str(ro / "runs")], capsys)
        assert code == 2 and "is not writable" in err


def test_stress_and_summary_check_their_input_before_any_load(tmp_path, capsys):
    code, _, err = run_cli(["stress", URL, "--path", "/a*0", "--step-duration", "nan", "--max-rate", "5",
                            "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 2 and err.startswith("perfbench: error: 3 problems: ") and not (tmp_path / "runs").exists()
    code, _, err = run_cli(["stress", URL, "--slo", "nope:p99<1s", "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 2 and "no endpoint 'nope'" in err and not (tmp_path / "runs").exists()


# -------------------------------------------------------------------------- scenario files
TOML_CASES = {
    "weight_inf": ('[[request]]\nname="a"\npath="/"\nweight=inf\n', "weight must be a number from 1e-06"),
    "weight_nan": ('[[request]]\nname="a"\npath="/"\nweight=nan\n', "got nan"),
    "weight_huge": ('[[request]]\nname="a"\npath="/"\nweight=1e308\n', "got 1e+308"),
    "weight_subnormal": ('[[request]]\nname="a"\npath="/"\nweight=5e-324\n', "got 5e-324"),
    "graphql_number": ('[[request]]\nname="a"\ngraphql=5\n', "graphql: the query, a string"),
    "json_field_number": ('[[request]]\nname="a"\npath="/"\nchecks=[{json_field=5}]\n', "json_field must be a dotted"),
    "body_contains_number": ('[[request]]\nname="a"\npath="/"\nchecks=[{body_contains=5}]\n', "body_contains must"),
    "header_crlf": ('[[request]]\nname="a"\npath="/"\nheaders={X-A="a\\r\\nInjected: 1"}\n', "contains a line break"),
    "top_header_crlf": ('[headers]\nX-A="a\\nb"\n[[request]]\nname="a"\npath="/"\n', "contains a line break"),
    "header_name": ('[headers]\n"X A"="1"\n[[request]]\nname="a"\npath="/"\n', "is not a header name"),
    "header_number": ('[[request]]\nname="a"\npath="/"\nheaders={X-A=5}\n', "X-A must be a string, got int"),
    "json_nan": ('[[request]]\nname="a"\npath="/"\nmethod="POST"\njson={a=nan}\n', "json must be JSON data"),
    "auth_string": ('[[request]]\nname="a"\npath="/"\nauth="yes"\n', "auth must be true or false"),
    "expect_bool": ('[[request]]\nname="a"\npath="/"\nexpect=[true]\n', "expect must list HTTP statuses"),
    "name_number": ('name=5\n[[request]]\nname="a"\npath="/"\n', "name: a string"),
    "path_control": ('[[request]]\nname="a"\npath="/a\\u0000b"\n', "control characters"),
    "login_types": ('[login]\npath=5\njson="x"\n[[request]]\nname="a"\npath="/"\n', "login.path"),
    "huge_int": ("seed = " + "1" * 5000 + '\n[[request]]\nname="a"\npath="/"\n', "not a TOML file perfbench can read"),
    "deep_array": ("a = " + "[" * 3000 + "]" * 3000 + "\n", "not a TOML file perfbench can read"),
}


@pytest.mark.parametrize("case", sorted(TOML_CASES))
def test_every_scenario_field_is_type_checked(case, tmp_path, capsys):
    text, fragment = TOML_CASES[case]
    f = tmp_path / "s.toml"
    f.write_text(text)
    code, _, err = run_cli(["run", URL, "--scenario", str(f), "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 2 and fragment in err, err
    assert_one_line(err)
    assert not (tmp_path / "runs").exists()


def test_path_and_method_problems_come_with_the_others(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text('[[request]]\nname="a"\npath="x"\nmethod="FOO"\nweight=-1\nretries=3\n')
    code, _, err = run_cli(["run", URL, "--scenario", str(f)], capsys)
    assert code == 2
    for part in ("method 'FOO' is not one of", "path 'x' must start with '/'", "weight must be a number",
                 "unknown field 'retries'"):
        assert part in err, part


def test_binary_and_bom_files(tmp_path, capsys):
    binary = tmp_path / "bin.toml"
    binary.write_bytes(bytes(range(256)) * 4)
    code, _, err = run_cli(["run", URL, "--scenario", str(binary)], capsys)
    assert code == 2 and "not UTF-8 text" in err
    nul = tmp_path / "nul.toml"
    nul.write_bytes(b'name = "a"\x00\n')
    code, _, err = run_cli(["run", URL, "--scenario", str(nul)], capsys)
    assert code == 2 and "binary file" in err
    (tmp_path / "data.bin").write_bytes(b"\xff\xfe\x00\x01" * 64)
    f = tmp_path / "binvar.toml"
    f.write_text('[[request]]\nname="a"\npath="/{x}"\nvars={x={file="data.bin"}}\n')
    code, _, err = run_cli(["run", URL, "--scenario", str(f)], capsys)
    assert code == 2 and "data file" in err and "not UTF-8 text" in err
    assert_one_line(err)
    # a byte-order mark (as some editors write) is skipped: the scenario is read as written
    from perfbench.scenario_toml import load_toml

    bom = tmp_path / "bom.toml"
    bom.write_bytes(b'\xef\xbb\xbf[[request]]\nname = "a"\npath = "/bom"\n')
    assert load_toml(bom).requests[0].path == "/bom"


@pytest.mark.parametrize("source, fragment", [
    ("x = 1\ndef f(:\n", "s.py:2: syntax error"),
    ("import sys\n\nsys.exit(3)\n", "s.py:3: called sys.exit(3)"),
    ("a = 1\nraise RuntimeError('boom')\n", "s.py:2: RuntimeError: boom"),
    ("def f():\n    return f()\nf()\n", "RecursionError"),
    ("from perfbench.scenario import Request, Scenario\n\nscenario = Scenario([Request('a', headers={'X': 'a\\nb'})])\n",
     "s.py:3: invalid scenario"),
    ("scenario = 5\n", "found int"),
])
def test_a_python_scenario_that_fails_is_a_configuration_error_with_its_line(source, fragment, tmp_path, capsys):
    f = tmp_path / "s.py"
    f.write_text(source)
    code, _, err = run_cli(["run", URL, "--scenario", str(f), "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 2 and fragment in err, err
    assert_one_line(err)
    assert not (tmp_path / "runs").exists()


def test_documented_exit_codes_are_the_ones_main_returns(tmp_path, capsys):
    """2 bad input, 3 bad run directory, 10 a broken SLO: each from a real case (4, 130 and 143 are
    covered by the target and signal tests)."""
    assert run_cli(["run", "ftp://127.0.0.1/"], capsys)[0] == 2
    assert run_cli(["summary", str(tmp_path / "missing")], capsys)[0] == 3
    assert run_cli(["experiment", "no_such_experiment"], capsys)[0] == 2
    assert sys.modules["perfbench.cli"].EPILOG.count("exit codes") == 1


@pytest.mark.slow
def test_a_failing_experiment_notebook_exits_5_in_one_line(tmp_path, capsys):
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("x: int = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("raise RuntimeError('the notebook broke')")]
    (tmp_path / "nbs").mkdir()
    nbformat.write(nb, str(tmp_path / "nbs" / "broken.ipynb"))
    code, _, err = run_cli(["experiment", "broken", "--notebooks-dir", str(tmp_path / "nbs"), "--runs-dir",
                            str(tmp_path / "runs"), "--reports-dir", str(tmp_path / "reports")], capsys)
    # a progress line ("running experiment ..."), then the error on one line
    assert code == 5 and err.splitlines()[-1].startswith("perfbench: error: experiment 'broken' failed in cell 2: "
                                                         "RuntimeError: the notebook broke")
    assert "Traceback" not in err
    del nb.metadata["kernelspec"]  # a notebook papermill cannot read is bad input, not a failed experiment
    nbformat.write(nb, str(tmp_path / "nbs" / "broken.ipynb"))
    code, _, err = run_cli(["experiment", "broken", "--notebooks-dir", str(tmp_path / "nbs")], capsys)
    assert code == 2 and "cannot read its parameters" in err
