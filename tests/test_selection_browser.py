"""perfbench.select end to end, short of a kernel: the widget's own JavaScript (Altair's JupyterChart, offline)
draws a run's requests in headless Chromium; a box is dragged over it with real mouse events; what the widget
would send back to Python (its ``_vl_selections``, from the Vega view's ``pick`` signal) is set on the widget
in Python as the kernel would, and the Selection's rows are checked against the run's requests."""

from __future__ import annotations

import json

import browser
import polars as pl
import pytest
from test_charts import make_requests

from perfbench.report.charts import embed
from perfbench.report.selection import BRUSH, select
from perfbench.rundir import RunDir

pytestmark = pytest.mark.slow

# A stand-in for anywidget's model: the widget's synced state; every save_changes() is a message to Python.
HOST = """<figure class="perfbench-chart" aria-label="%(label)s" style="margin:0"><div id="w"></div></figure>
<script type="application/json" id="esm">%(esm)s</script>
<script type="application/json" id="state">%(state)s</script>
<script type="module">
const esm = JSON.parse(document.getElementById('esm').textContent);
const state = JSON.parse(document.getElementById('state').textContent);
window.pbSent = [];
const model = {
  get: k => state[k], set: (k, v) => { state[k] = v; }, on: () => {}, off: () => {}, send: () => {},
  save_changes: () => { window.pbSent.push(JSON.parse(JSON.stringify(state._vl_selections ?? {}))); },
};
const mod = await import(URL.createObjectURL(new Blob([esm], {type: 'text/javascript'})));
await mod.default.render({model, el: document.getElementById('w')});
</script>"""
SYNCED = ("spec", "embed_options", "debounce_wait", "max_wait", "_vl_selections", "_params", "_js_watch_plan")


def safe(value) -> str:
    return json.dumps(value).replace("<", "\\u003c")  # cannot end its <script> element


@pytest.fixture
def run_dir(tmp_path):
    """A run directory written through the real contract, with the SQL of every third request."""
    requests = make_requests(1500, duration_s=20.0)
    rd = RunDir.create(tmp_path / "runs", "r1")
    rd.write_meta({"target": "http://127.0.0.1:1", "shape": {"model": "open", "kind": "constant", "duration_s": 20.0},
                   "elapsed_s": 20.0})
    requests.write_parquet(rd.path / "requests.parquet")
    ids = requests["request_id"].to_list()[::3]
    pl.DataFrame({"request_id": ids, "endpoint": ["r"] * len(ids), "fingerprint": ["f"] * len(ids),
                  "statement": ["SELECT * FROM posts WHERE id = ?"] * len(ids), "duration_ns": [2_000_000] * len(ids),
                  "t_ns": [i * 10 for i in ids]}).write_parquet(rd.path / "queries.parquet")
    return rd.path, requests


def test_a_box_dragged_over_the_widget_gives_back_exactly_the_requests_inside_it(run_dir, tmp_path):
    path, requests = run_dir
    pick = select(path, max_points=1500)
    state = pick.widget.get_state()
    assert state["_vl_selections"] == {BRUSH: {"value": None, "store": []}}
    page = tmp_path / "select.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'></head><body style='margin:8px'>"
                    + HOST % {"label": embed.description(pick.spec), "esm": safe(pick.widget._esm),
                              "state": safe({k: state[k] for k in SYNCED})} + "</body></html>")
    sent = "JSON.stringify(window.pbSent.length ? window.pbSent[window.pbSent.length - 1] : null)"
    drag = browser.Drag(start=("svg.marks", 0.3, 0.25), end=("svg.marks", 0.55, 0.7))
    before, after = browser.evaluate_around(page, sent, drag)
    assert json.loads(before)[BRUSH]["value"] == {}  # drawn, nothing brushed yet
    message = json.loads(after)  # what the widget sends to the kernel after the drag
    value = message[BRUSH]["value"]
    assert set(value) == {"t_s", "latency_ms"}
    (t0, t1), (lo, hi) = sorted(value["t_s"]), sorted(value["latency_ms"])
    assert 0 < t0 < t1 < 20 and 0 < lo < hi  # a window inside the run and a latency band, from the mouse
    assert 0.15 < (t1 - t0) / 20 < 0.45  # the box spans a quarter of the chart's width, most of it the plot

    pick.widget._vl_selections = message  # as the kernel sets it on the widget's comm message
    assert pick.interval == value
    got = pick.requests()
    t, ms = requests["intended_ns"] / 1e9, requests["latency_ns"] / 1e6
    want = requests.filter((t >= t0) & (t <= t1) & (ms >= lo) & (ms <= hi))
    assert 0 < got.height < requests.height // 2
    assert got["request_id"].to_list() == want.sort(["latency_ns", "request_id"], descending=[True, False])[
        "request_id"].to_list()  # exactly those, slowest first
    with_sql = got.filter(pl.col("request_id") % 3 == 0)
    assert with_sql.height and with_sql["sql"].to_list()[0] == ["SELECT * FROM posts WHERE id = ?"]
    assert set(got.filter(pl.col("request_id") % 3 != 0)["queries"]) <= {0}
