import pytest

from perfbench.analysis.slo import evaluate, parse, parse_all
from perfbench.cli import main
from perfbench.errors import ConfigError

SUMMARY = {
    "overall": {"count": 100, "error_rate": 0.02, "rps": 99.5,
                "latency_ms": {"p50": 5.0, "p95": 250.0, "p99": 400.0, "p99_9": 900.0, "max": 1200.0, "mean": 20.0}},
    "endpoints": {"GET /health": {"error_rate": 0.0, "rps": 10.0, "latency_ms": {"p95": 2.0, "p99": 3.0}}},
}


@pytest.mark.parametrize("text, metric, op, threshold, scope", [
    ("p95<300ms", "p95", "<", 300.0, None),
    ("p99 <= 1s", "p99", "<=", 1000.0, None),
    ("p99.9<1500", "p99.9", "<", 1500.0, None),
    ("max<250us", "max", "<", 0.25, None),
    ("errors<1%", "errors", "<", 0.01, None),
    ("errors<0.05", "errors", "<", 0.05, None),
    ("rps>=95", "rps", ">=", 95.0, None),
    ("GET /health:p95<10ms", "p95", "<", 10.0, "GET /health"),
])
def test_parse(text, metric, op, threshold, scope):
    s = parse(text)
    assert (s.metric, s.op, s.threshold, s.scope) == (metric, op, pytest.approx(threshold), scope)


@pytest.mark.parametrize("text, fragment", [
    ("p95 is small", r"is not \[ENDPOINT:\]METRIC OP VALUE"),
    ("p42<3ms", "percentile p42 is not one of"),
    ("p95<3%", "takes ms, s or us"),
    ("errors<3ms", "takes % or a fraction"),
    ("errors<150%", "above 100%"),
    ("rps>3ms", "rps takes no unit"),
])
def test_bad_slos_are_explained(text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse(text)


def test_all_bad_slos_reported_at_once():
    with pytest.raises(ConfigError) as e:
        parse_all(["p95<3%", "nonsense", "p99<1s"])
    assert "p95<3%" in str(e.value) and "nonsense" in str(e.value)


def test_evaluate():
    res = {r["slo"]: r for r in evaluate(parse_all(
        ["p95<300ms", "p99<300ms", "errors<1%", "rps>=95", "GET /health:p99<5ms", "nope:p95<1ms"]), SUMMARY)}
    assert res["p95<300ms"]["ok"] and not res["p99<300ms"]["ok"] and res["p99<300ms"]["actual"] == 400.0
    assert not res["errors<1%"]["ok"] and res["rps>=95"]["ok"] and res["GET /health:p99<5ms"]["ok"]
    assert not res["nope:p95<1ms"]["ok"] and res["nope:p95<1ms"]["note"] == "no such endpoint in the run"


def test_cli_exit_codes_separate_a_broken_slo_from_a_broken_configuration(http_server, tmp_path, capsys):
    base = ["run", http_server.url, "--rate", "40", "--duration", "0.5", "--runs-dir", str(tmp_path), "--quiet",
            "--path", "/", "--path", "slow=GET /delay/60"]
    assert main(base + ["--slo", "p99<10s", "--slo", "errors<1%"]) == 0
    assert main(base + ["--slo", "slow:p50<1ms"]) == 10
    out = capsys.readouterr()
    assert "BROKEN" in out.out and "SLO broken: slow:p50<1ms" in out.err
    assert main(base + ["--slo", "p50 fast"]) == 2
    # the run's SLOs are kept in summary.json and re-checked by `summary --recompute`
    import json

    run_dir = next(d for d in tmp_path.iterdir()
                   if json.loads((d / "meta.json").read_text())["parameters"]["slos"] == ["slow:p50<1ms"])
    assert main(["summary", str(run_dir), "--recompute"]) == 10
    assert main(["summary", str(run_dir), "--slo", "p99<10s"]) == 0
