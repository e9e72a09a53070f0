"""A notebook reopened in JupyterLab, with no kernel, shows its charts from what its .ipynb saved: a real
JupyterLab on 127.0.0.1 opened in headless Chromium (tests/browser.py). The charts are the timeline (whose
brush on a line with points JupyterLab's own Vega-Lite cannot draw, so it is given the compiled Vega) and a
perfbench.select output as ``perfbench experiment`` keeps it (the widget gone, its chart left)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import browser
import nbformat
import pytest
from test_charts import make_requests

from perfbench.analysis import results
from perfbench.report import charts
from perfbench.report.charts import embed
from perfbench.report.export import settled
from perfbench.report.selection import brush_chart

pytestmark = pytest.mark.slow

STATE_JS = """JSON.stringify([...document.querySelectorAll('.jp-OutputArea-output')].map(o => ({
  drawn: !!o.querySelector('.jp-RenderedVegaCommon5 svg.marks'),
  text: o.innerText.slice(0, 200)})))"""


def saved_notebook(path: Path) -> None:
    lf = make_requests(600, duration_s=10.0).lazy()
    timeline = charts.timeline(results.latency_timeseries(lf, 1.0), results.throughput_timeseries(lf, 1.0),
                               status=charts.status_timeseries(lf, 1.0), domain=(0.0, 10.0), warmup_end_s=2.0)
    book = nbformat.v4.new_notebook()
    for spec, widget in ((timeline.to_dict(), False), (brush_chart(lf, domain=(0.0, 10.0)).to_dict(), True)):
        data, meta = embed.lab_bundle(spec)
        if widget:  # as perfbench.select shows it while its kernel lives
            data[embed.WIDGET_MIME] = {"model_id": "0" * 32, "version_major": 2, "version_minor": 0}
        book.cells.append(nbformat.v4.new_code_cell("...", outputs=[
            nbformat.v4.new_output("display_data", data=data, metadata=meta)]))
    nbformat.write(settled(book), str(path))


def test_a_reopened_notebook_shows_its_charts_without_a_kernel(tmp_path):
    root = tmp_path / "lab"
    (root / ".settings/@jupyterlab/notebook-extension").mkdir(parents=True)
    (root / ".settings/@jupyterlab/notebook-extension/tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}')  # every cell drawn, not only those in view
    saved_notebook(root / "reopened.ipynb")
    token = secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(root / ".config"), JUPYTER_RUNTIME_DIR=str(root / ".runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(root / ".settings"), JUPYTER_DATA_DIR=str(Path(sys.prefix) / "share/jupyter"))
    lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", "--port=0",
                            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline and lab.poll() is None:
            found = list((root / ".runtime").glob("jpserver-*.json"))
            port = json.loads(found[0].read_text())["port"] if found else None
            time.sleep(0.2)
        assert port, "JupyterLab did not start"
        pipe = browser._Pipe(browser.chromium(), 1200, 1600)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            pipe.send("Runtime.enable", session=session)
            pipe.send("Page.navigate", {"url": f"http://127.0.0.1:{port}/lab/tree/reopened.ipynb?token={token}"},
                      session=session)
            outputs: list = []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                pipe.pump(0.5)
                outputs = json.loads(browser._evaluate(pipe, session, STATE_JS) or "[]")
                if len(outputs) == 2 and all(o["drawn"] or "Error" in o["text"] for o in outputs):
                    break
        finally:
            pipe.close()
    finally:
        lab.terminate()
        lab.wait(timeout=30)
    assert len(outputs) == 2, outputs
    assert [o["drawn"] for o in outputs] == [True, True], outputs  # both charts, from the saved outputs alone
    assert not any("Error" in o["text"] for o in outputs), outputs
