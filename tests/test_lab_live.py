"""perfbench.select for real: a JupyterLab server on 127.0.0.1 with a real kernel, opened in headless Chromium
(tests/browser.py). The notebook's first cell is run with Shift+Enter and shows a run's requests as the
anywidget chart; a box is dragged over it with real mouse events; the widget sends the brush to the kernel
over its comm; the second cell, run with Shift+Enter too, writes ``pick.interval`` and ``pick.requests()`` to
a file; those rows must be exactly what :func:`brushed` makes of that interval, recomputed here."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import browser
import nbformat
import polars as pl
import pytest
from test_charts import make_requests

from perfbench.report.selection import BRUSH, brushed
from perfbench.rundir import RunDir

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]  # the kernel imports perfbench from here (PYTHONPATH)
DURATION_S = 20.0
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 directly

# The notebook as the page shows it: each cell tagged data-pb-cell=<index> (to click it), the kernel's state
# (JupyterLab's app, exposed with --LabApp.expose_app_in_browser), and each cell's output: its text, and
# whether it holds the widget's Vega view (an svg.marks not drawn by JupyterLab's own Vega renderer, which
# would mean the widget did not load; that svg is tagged data-pb-chart).
STATE_JS = """(() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  const ctx = panel && panel.sessionContext;
  const kernel = ctx && ctx.session && ctx.session.kernel;
  const cells = [...document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell')].map((c, i) => {
    c.setAttribute('data-pb-cell', String(i));
    const svgs = [...c.querySelectorAll('.jp-OutputArea-output svg.marks')];
    const chart = svgs.find(s => !s.closest('[class*="jp-RenderedVega"]'));
    if (chart) chart.setAttribute('data-pb-chart', '');
    return {widget: !!chart, svgs: svgs.length,
            text: [...c.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText).join('\\n').slice(0, 3000)};
  });
  return JSON.stringify({app: !!app, path: panel && panel.context ? panel.context.path : null,
                         kernel: kernel ? kernel.status : null, connection: kernel ? kernel.connectionStatus : null,
                         cells: cells});
})()"""


def state(value: object) -> dict:
    return json.loads(value) if isinstance(value, str) and value.startswith("{") else {}


def idle_with(cells: int, widget: bool = False):
    """The page's state once the kernel is idle and connected with ``cells`` cells (and the widget drawn)."""
    def ok(value: object) -> bool:
        s = state(value)
        if s.get("kernel") != "idle" or s.get("connection") != "connected" or len(s.get("cells", [])) != cells:
            return False
        return not widget or s["cells"][0]["widget"] or "Error" in s["cells"][0]["text"]
    return ok


@pytest.fixture
def run_dir(tmp_path):
    """A run directory written through the real contract (as tests/test_selection_browser.py writes one)."""
    requests = make_requests(1500, duration_s=DURATION_S)
    rd = RunDir.create(tmp_path / "runs", "r1")
    rd.write_meta({"target": "http://127.0.0.1:1",
                   "shape": {"model": "open", "kind": "constant", "duration_s": DURATION_S}, "elapsed_s": DURATION_S})
    requests.write_parquet(rd.path / "requests.parquet")
    return rd.path


def write_notebook(path: Path, run: Path, out: Path, pidfile: Path) -> None:
    """(a) shows the widget (and leaves the kernel's PID for the clean-up); (b) writes what it picked."""
    show = (f"import os, pathlib\npathlib.Path({str(pidfile)!r}).write_text(str(os.getpid()))\n"
            f"from perfbench import select\npick = select({str(run)!r}, max_points=1500)\npick")
    dump = ("import json, sys, perfbench\nrows = pick.requests()\n"
            f"part = pathlib.Path({str(out)!r} + '.part')\n"
            "part.write_text(json.dumps({'interval': pick.interval, 'request_id': rows['request_id'].to_list(),\n"
            "                            'height': rows.height, 'perfbench': perfbench.__file__,\n"
            "                            'python': sys.executable}))\n"
            f"part.replace({str(out)!r})")
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(show), nbformat.v4.new_code_cell(dump)])
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    book.metadata["language_info"] = {"name": "python"}
    nbformat.write(book, str(path))


@dataclass
class Lab:
    url: str
    token: str
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _alive(pid: int) -> bool:
    """``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


@contextlib.contextmanager
def jupyter_lab(root: Path, home: Path, kernel_pidfile: Path, timeout_s: float = 120.0) -> Iterator[Lab]:
    """``jupyter lab`` from the project's environment as ``make lab`` starts it, serving ``root`` on a free
    port of 127.0.0.1 with a token, in its own process group; its configuration, runtime and data
    directories, settings and workspaces are under ``home`` (the lab extensions still come from the
    environment's share/jupyter). Stopped on leaving, with the kernel it started (by the PID the notebook left
    in ``kernel_pidfile``)."""
    token = secrets.token_hex(16)
    config, runtime, settings = home / "config", home / "runtime", home / "settings"
    (settings / "@jupyterlab/notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab/notebook-extension/tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}')  # every cell in the page, not only those in view
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig/page_config.json").write_text(json.dumps(  # no news pop-up over the notebook
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(runtime),
               JUPYTER_DATA_DIR=str(home / "data"), JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), IPYTHONDIR=str(home / "ipython"),
               PYTHONPATH=os.pathsep.join([str(PROJECT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    env.pop("JUPYTER_PATH", None)
    jupyter = Path(sys.prefix) / "bin" / "jupyter"
    assert jupyter.exists(), f"no {jupyter}: run the tests with the project's environment (.venv/bin/python)"
    args = [str(jupyter), "lab", "--no-browser", "--ip", "127.0.0.1", "--port=0", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: the kernel's state, for the waits
            "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
            *(["--allow-root"] if os.getuid() == 0 else [])]
    log = home / "lab.log"
    with open(log, "wb") as sink:
        lab = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env,
                               cwd=root, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        url, status = None, None
        while time.monotonic() < deadline and lab.poll() is None:
            found = sorted(runtime.glob("jpserver-*.json"))
            if url is None and found:
                with contextlib.suppress(ValueError, KeyError):  # being written
                    url = f"http://127.0.0.1:{json.loads(found[0].read_text())['port']}"
            if url is not None:
                request = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
                with contextlib.suppress(OSError), NO_PROXY.open(request, timeout=5) as reply:
                    status = json.loads(reply.read())
                    break
            time.sleep(0.2)  # polling the start, bounded by the deadline
        lab_ = Lab(url or "", token, log)
        assert status is not None, (f"JupyterLab did not answer /api/status within {timeout_s:.0f} s "
                                    f"(exit code {lab.poll()}); its log ends:\n{lab_.tail()}")
        yield lab_
    finally:
        with contextlib.suppress(ProcessLookupError):
            lab.send_signal(signal.SIGTERM)  # it shuts its kernels down on the way out
        try:
            lab.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(lab.pid, signal.SIGKILL)  # its own group: lab.pid is the group's id
            lab.wait(timeout=30)
        _stop_kernel(kernel_pidfile, runtime)


def _stop_kernel(pidfile: Path, runtime: Path) -> None:
    """The kernel (in a session of its own) ends with its server; if it is still there after 20 s, it is
    killed: only that PID, and only while its command line is the ipykernel of this test's runtime dir."""
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):  # no kernel ran the first cell
        return
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling its exit
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        if _alive(pid) and "ipykernel" in cmdline and str(runtime) in cmdline:
            os.kill(pid, signal.SIGKILL)


def brush_messages(tab: browser.Tab) -> list[dict]:
    """Every value of the brush the page sent to the kernel (anywidget's comm messages setting
    ``_vl_selections``), whatever the kernel WebSocket's framing."""
    values = []
    decoder = json.JSONDecoder()
    for frame in tab.sent_frames():
        at = frame.find('"_vl_selections"')
        while at >= 0:
            start = frame.index("{", at)
            with contextlib.suppress(ValueError):
                selections, _ = decoder.raw_decode(frame, start)
                values.append((selections.get(BRUSH) or {}).get("value"))
            at = frame.find('"_vl_selections"', at + 1)
    return values


def run_cell(tab: browser.Tab, index: int) -> None:
    """Click into cell ``index``'s editor and press Shift+Enter, as a user runs it."""
    tab.evaluate(f"document.querySelector('[data-pb-cell=\"{index}\"]').scrollIntoView({{block: 'center'}})")
    tab.click(*tab.point((f'[data-pb-cell="{index}"] .jp-InputArea-editor', 0.5, 0.5)))
    tab.press("Enter", shift=True)


def test_a_box_dragged_in_jupyterlab_reaches_the_kernel_as_the_requests_inside_it(run_dir, tmp_path):
    started = time.monotonic()
    out, pidfile = tmp_path / "picked.json", tmp_path / "kernel.pid"
    write_notebook(tmp_path / "live.ipynb", run_dir, out, pidfile)
    home = tmp_path / ".lab"
    home.mkdir()
    sent: list = []
    with jupyter_lab(tmp_path, home, pidfile) as lab, \
            browser.open_url(f"{lab.url}/lab/tree/live.ipynb?token={lab.token}") as tab:
        last: object = None

        def fail(e: AssertionError) -> AssertionError:
            shot = tab.screenshot(tmp_path / "failure.png")
            return AssertionError(f"{e}\nscreenshot: {shot}\npage: {str(last)[:3000]}\nbrowser errors: "
                                  f"{tab.errors()[:10]}\nJupyterLab's log ends:\n{lab.tail()}")

        try:
            last = tab.wait_for(STATE_JS, 120, "the notebook open with its kernel idle", until=idle_with(2))
            run_cell(tab, 0)
            last = tab.wait_for(STATE_JS, 120, "cell (a) run and the widget's chart drawn",
                                until=idle_with(2, widget=True))
            assert state(last)["cells"][0]["widget"], "cell (a) did not draw the widget"
            tab.evaluate("document.querySelector('svg[data-pb-chart]').scrollIntoView({block: 'center'})")
            (x0, y0) = tab.point(("svg[data-pb-chart]", 0.3, 0.25))
            (x1, y1) = tab.point(("svg[data-pb-chart]", 0.55, 0.7))
            tab.drag(x0, y0, x1, y1)
            # the widget sends the brush as it moves (debounced): wait until it sent one and then 2 s of none
            quiet_since, count = time.monotonic(), len(brush_messages(tab))
            deadline = time.monotonic() + 60
            while True:
                sent = brush_messages(tab)
                if len(sent) != count:
                    quiet_since, count = time.monotonic(), len(sent)
                if sent and sent[-1] and time.monotonic() - quiet_since > 2:
                    break
                assert time.monotonic() < deadline, f"no brush sent to the kernel after the drag: {sent[-3:]}"
                tab.pump(0.25)
            tab.screenshot(tmp_path / "brushed.png")
            run_cell(tab, 1)
            deadline = time.monotonic() + 120
            while not out.exists():
                last = tab.evaluate(STATE_JS)
                assert time.monotonic() < deadline, f"cell (b) wrote no {out.name} within 120 s"
                shown = "".join(c["text"] for c in state(last).get("cells", [])[1:2])
                assert "Error" not in shown, f"cell (b) failed:\n{shown[-2000:]}"
                tab.pump(0.25)
        except AssertionError as e:
            raise fail(e) from None

    picked = json.loads(out.read_text())
    interval = picked["interval"]
    assert interval == sent[-1], (interval, sent[-3:])  # what the page sent, arrived in Python via the comm
    assert Path(picked["perfbench"]).resolve().is_relative_to(PROJECT), picked["perfbench"]  # this checkout's
    assert set(interval) == {"t_s", "latency_ms"}, interval
    (t0, t1), (lo, hi) = sorted(interval["t_s"]), sorted(interval["latency_ms"])
    requests = pl.read_parquet(run_dir / "requests.parquet")
    ms = requests["latency_ns"] / 1e6
    assert 0 <= t0 < t1 <= DURATION_S, interval  # within the chart's time axis: the run
    floor, ceiling = 10 ** math.floor(math.log10(ms.min())), 10 ** math.ceil(math.log10(ms.max()))
    assert floor <= lo < hi <= ceiling, (interval, floor, ceiling)  # within its log latency axis (niced to 10^k)
    assert 0.15 < (t1 - t0) / DURATION_S < 0.45, interval  # the box spans a quarter of the chart, most of it plot

    want = brushed(requests, interval)
    assert picked["height"] == want.height == len(picked["request_id"])
    assert picked["request_id"] == want["request_id"].to_list()  # exactly those, slowest first
    assert 0 < want.height < requests.height, (want.height, requests.height)
    print(f"JupyterLab end to end: {want.height} of {requests.height} requests picked, "
          f"{time.monotonic() - started:.1f} s")
