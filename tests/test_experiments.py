"""The load_test notebook run by papermill, and its HTML report: offline, with rendered charts."""

import base64
import json
import re

import pytest

from perfbench.errors import ConfigError, ExperimentError
from perfbench.experiments import list_experiments, run_experiment

pytestmark = pytest.mark.slow

# any reference to another host: attributes, CSS url(), script import()/fetch of an http(s) URL
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|import\(\s*["'`]https?:|["'`]https?://[^"'`\s]*\.m?js""", re.I)


def svgs(html: str) -> list[str]:
    return [base64.b64decode(m).decode() for m in re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", html)]


@pytest.fixture(scope="module")
def experiment(http_server, tmp_path_factory):
    base = tmp_path_factory.mktemp("exp")
    return run_experiment("load_test", {"target": http_server.url, "rate": 40, "duration": 2, "scenario": "",
                                        "paths": ["/", "slow=GET /delay/30", "missing=GET /status/404"]},
                          runs_dir=base / "runs", reports_dir=base / "reports")


def test_notebook_runs_and_leaves_the_run_directory(experiment):
    rd = experiment.run_dir
    assert (rd / "meta.json").exists() and (rd / "requests.parquet").exists() and (rd / "summary.json").exists()
    assert (rd / "load_test.ipynb") == experiment.notebook and experiment.notebook.exists()
    summary = json.loads((rd / "summary.json").read_text())
    assert summary["overall"]["count"] == 80
    assert summary["overall"]["errors_by_kind"] == {"http_4xx": summary["endpoints"]["missing"]["count"]}


def test_report_is_offline_and_holds_rendered_charts(experiment):
    html = experiment.report.read_text()
    assert experiment.report.name == f"{experiment.run_id}.html"
    assert not EXTERNAL.search(html), EXTERNAL.search(html).group(0)
    charts = svgs(html)
    assert len(charts) >= 5
    text = " ".join(charts)
    for title in ("Latency distribution", "Latency by percentile", "Latency over time", "Throughput"):
        assert title in text
    assert "<path" in text  # marks were drawn, not only axes
    assert "Traceback" not in html
    assert "req/s" in html and "p99" in html  # the headline and the endpoint table


def test_executed_notebook_has_no_errors_or_stderr(experiment):
    nb = json.loads(experiment.notebook.read_text())
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert not [o for o in outputs if o.get("name") == "stderr"], "warnings leak into the report"


def test_report_can_be_rebuilt_from_an_existing_run(experiment, tmp_path):
    again = run_experiment("load_test", {"run_dir": str(experiment.run_dir)}, reports_dir=tmp_path)
    assert again.run_id == experiment.run_id and again.report.exists()


def test_unknown_experiment_and_bad_parameters_are_refused():
    with pytest.raises(ConfigError, match="unknown experiment 'nope'.*load_test"):
        run_experiment("nope")
    with pytest.raises(ConfigError, match="parameter 'rate' must be float"):
        run_experiment("load_test", {"rate": "fast"})
    with pytest.raises(ConfigError, match="unknown parameter 'colour'"):
        run_experiment("load_test", {"colour": "red"})


def test_list_experiments_shows_parameters_with_types():
    params = list_experiments()["load_test"]
    assert params["rate"]["type"] == "float" and params["target"]["type"] == "str"


def test_a_failing_notebook_is_an_experiment_error_with_the_notebook_kept(tmp_path):
    with pytest.raises(ExperimentError, match=r"failed in cell .*RunDirError"):
        run_experiment("load_test", {"run_dir": str(tmp_path / "missing-run")}, reports_dir=tmp_path)
