"""A report opened in real headless Chromium (Debian's package), driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: no port, no extra Python package), with the network switched off.

    page = open_report(path, screenshot=png_path)
    page.charts, page.rendered, page.errors, page.external, page.overflow

The page counts as loaded when every chart figure (``figure.perfbench-chart``) holds a rendered Vega view
(an ``svg.marks``) or says it failed, or when ``timeout_s`` passes.

A page served on 127.0.0.1 (a JupyterLab) is driven as a user would, with real mouse and key events:

    with open_url(url) as tab:
        tab.wait_for(expression, 60, "what it waits for")
        tab.click(*tab.point(("selector", 0.5, 0.5))); tab.press("Enter", shift=True); tab.drag(x0, y0, x1, y1)
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")

STATE_JS = """(() => {
  const figs = [...document.querySelectorAll('figure.perfbench-chart')];
  const done = figs.filter(f => f.querySelector('svg.marks')).length;
  const failed = figs.filter(f => !f.querySelector('svg.marks') && /not rendered/.test(f.textContent)).length;
  const imgs = [...document.querySelectorAll('img')].filter(i => /image\\/svg/.test(i.src)).length;
  return JSON.stringify({charts: figs.length, rendered: done, failed: failed, svg_images: imgs,
                         described: figs.filter(f => (f.getAttribute('aria-label') || '').length > 20).length});
})()"""

# Text that spills out of its box: the page scrolls sideways, or a block whose overflow is visible holds
# content wider than itself (a cut-off path or SQL statement, a chart wider than the column).
OVERFLOW_JS = """(() => {
  const out = [];
  const W = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > W + 1)
    out.push('the page scrolls sideways: ' + document.documentElement.scrollWidth + ' px > ' + W + ' px');
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('svg') || el.closest('figure.perfbench-chart figcaption')) continue;
    const cs = getComputedStyle(el);
    if (cs.display === 'inline' || cs.display === 'none' || cs.overflowX !== 'visible') continue;
    if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) {
      let scrolls = false;
      for (let a = el.parentElement; a; a = a.parentElement) {
        const ox = getComputedStyle(a).overflowX;
        if (ox === 'auto' || ox === 'scroll') { scrolls = true; break; }
      }
      if (!scrolls)
        out.push(el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ? '.' +
                 el.className.split(' ')[0] : '') + ' (' + el.scrollWidth + ' > ' + el.clientWidth + ' px): ' +
                 (el.textContent || '').trim().slice(0, 80));
    }
  }
  return JSON.stringify(out.slice(0, 20));
})()"""


def chromium() -> str:
    """The Chromium executable; AssertionError saying how to install it when there is none."""
    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("no Chromium found: install Debian's package (apt-get install -y chromium); "
                         "`make test` does this when it is missing")


@dataclass
class Page:
    charts: int = 0
    rendered: int = 0
    failed: int = 0
    described: int = 0
    svg_images: int = 0
    errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    overflow: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _Pipe:
    """DevTools messages over the two pipes Chromium reads (fd 3) and writes (fd 4), each ended by NUL."""

    def __init__(self, binary: str, width: int, height: int):
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        self.profile = tempfile.mkdtemp(prefix="pb-chromium-")

        def wire() -> None:  # in the child: the pipes on the fds Chromium expects (kept open by pass_fds)
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", "--disable-extensions", "--mute-audio",
                "--disable-dev-shm-usage", f"--window-size={width},{height}",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no host but loopback is reachable
                f"--user-data-dir={self.profile}", "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, pass_fds=(3, 4, to_browser_r, from_browser_w),
                                     preexec_fn=wire)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             deadline: float | None = None) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        deadline = deadline or time.monotonic() + 30
        while True:
            reply = self.read(deadline)
            if reply is None:
                raise AssertionError(f"Chromium did not answer {method} in time")
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise AssertionError(f"Chromium refused {method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def read(self, deadline: float) -> dict | None:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.from_browser], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise AssertionError("Chromium exited")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def pump(self, seconds: float) -> None:
        """Collect events for up to ``seconds``."""
        deadline = time.monotonic() + seconds
        while (event := self.read(deadline)) is not None:
            self.events.append(event)

    def close(self) -> None:
        try:
            os.write(self.to_browser, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=10)
        finally:
            for fd in (self.to_browser, self.from_browser):
                with contextlib.suppress(OSError):
                    os.close(fd)
            shutil.rmtree(self.profile, ignore_errors=True)


def _new_session(pipe: _Pipe) -> str:
    """A blank page's session, with the runtime, log, page and network events on."""
    target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for method in ("Runtime.enable", "Log.enable", "Page.enable", "Network.enable"):
        pipe.send(method, session=session)
    return session


@contextlib.contextmanager
def _opened(path: str | os.PathLike, width: int, height: int, timeout_s: float):
    """A page of ``path`` loaded offline, waited for until its charts rendered or failed: ``(pipe, session,
    state)``."""
    pipe = _Pipe(chromium(), width, height)
    try:
        session = _new_session(pipe)
        pipe.send("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1,
                                                       "uploadThroughput": -1}, session=session)
        pipe.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=session)
        deadline = time.monotonic() + timeout_s
        state: dict = {}
        while time.monotonic() < deadline:
            pipe.pump(0.25)
            state = json.loads(_evaluate(pipe, session, STATE_JS))
            loaded = any(e.get("method") == "Page.loadEventFired" for e in pipe.events)
            if loaded and state["rendered"] + state["failed"] >= state["charts"]:
                break
        yield pipe, session, state
    finally:
        pipe.close()


def _errors(events: list[dict]) -> list[str]:
    """What a page logged as an error: console errors, uncaught exceptions, failed loads."""
    errors = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            errors.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            errors.append(params["entry"].get("text", ""))
    return errors


def _evaluate(pipe: _Pipe, session: str, expression: str):
    reply = pipe.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
    if "exceptionDetails" in reply:
        raise AssertionError(f"the page could not evaluate {expression[:60]!r}: {reply['exceptionDetails']}")
    return reply["result"].get("value")


def open_report(path: str | os.PathLike, *, screenshot: str | os.PathLike | None = None, width: int = 1200,
                height: int = 900, timeout_s: float = 25.0) -> Page:
    """Open ``path`` offline in headless Chromium and report what rendered, what failed and what overflowed."""
    started = time.monotonic()
    with _opened(path, width, height, timeout_s) as (pipe, session, state):
        page = Page()
        page.charts, page.rendered, page.failed = state["charts"], state["rendered"], state["failed"]
        page.described, page.svg_images = state["described"], state["svg_images"]
        page.overflow = json.loads(_evaluate(pipe, session, OVERFLOW_JS))
        if screenshot is not None:
            metrics = pipe.send("Page.getLayoutMetrics", session=session)
            full = metrics.get("cssContentSize") or metrics["contentSize"]
            shot = pipe.send("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": min(full["height"], 16000), "scale": 1}},
                session=session, deadline=time.monotonic() + 60)
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        page.errors = _errors(pipe.events)
        for e in pipe.events:
            if e.get("method") == "Network.requestWillBeSent":
                url = e.get("params", {}).get("request", {}).get("url", "")
                if not url.startswith(("file:", "data:", "about:", "blob:")):
                    page.external.append(url)
        page.seconds = time.monotonic() - started
        return page


@dataclass
class Drag:
    """A mouse drag from ``start`` to ``end``: each ``(css selector, x fraction, y fraction)`` of the first
    element the selector matches."""

    start: tuple[str, float, float]
    end: tuple[str, float, float]


def _point(pipe: _Pipe, session: str, where: tuple[str, float, float]) -> tuple[float, float]:
    selector, fx, fy = where
    box = json.loads(_evaluate(pipe, session, f"JSON.stringify(document.querySelector({json.dumps(selector)})"
                                               ".getBoundingClientRect())"))
    return box["left"] + fx * box["width"], box["top"] + fy * box["height"]


def _drag(pipe: _Pipe, session: str, x0: float, y0: float, x1: float, y1: float, steps: int = 10) -> None:
    """Press the left button at (x0, y0), move to (x1, y1) in ``steps`` moves, release it there."""
    mouse = "Input.dispatchMouseEvent"
    pipe.send(mouse, {"type": "mouseMoved", "x": x0, "y": y0}, session=session)
    pipe.send(mouse, {"type": "mousePressed", "x": x0, "y": y0, "button": "left", "buttons": 1,
                      "clickCount": 1}, session=session)
    for k in range(1, steps + 1):
        pipe.send(mouse, {"type": "mouseMoved", "x": x0 + (x1 - x0) * k / steps, "y": y0 + (y1 - y0) * k / steps,
                          "button": "left", "buttons": 1}, session=session)
    pipe.send(mouse, {"type": "mouseReleased", "x": x1, "y": y1, "button": "left", "buttons": 0,
                      "clickCount": 1}, session=session)


def evaluate_around(path: str | os.PathLike, expression: str, drag: Drag, *, width: int = 1200,
                    height: int = 1600, timeout_s: float = 25.0) -> tuple[object, object]:
    """``expression``'s value in the loaded page before and after a mouse ``drag``."""
    with _opened(path, width, height, timeout_s) as (pipe, session, _):
        before = _evaluate(pipe, session, expression)
        (x0, y0), (x1, y1) = _point(pipe, session, drag.start), _point(pipe, session, drag.end)
        _drag(pipe, session, x0, y0, x1, y1)
        pipe.pump(0.5)
        return before, _evaluate(pipe, session, expression)


# Input.dispatchKeyEvent's fields for the keys the tests press: (key, code, Windows virtual key code)
KEYS = {"Enter": ("Enter", "Enter", 13), "Escape": ("Escape", "Escape", 27), "Tab": ("Tab", "Tab", 9)}


@dataclass
class Tab:
    """A page in headless Chromium, driven with real input events (see :func:`open_url`)."""

    pipe: _Pipe
    session: str

    def evaluate(self, expression: str):
        """``expression``'s value in the page (returned by value: make it a string, number or JSON)."""
        return _evaluate(self.pipe, self.session, expression)

    def wait_for(self, expression: str, timeout_s: float, what: str, until: Callable[[object], bool] = bool):
        """``expression``'s value once ``until`` holds for it, evaluated every quarter second (a page that is
        still loading counts as not yet); AssertionError saying ``what`` was waited for, and the last value,
        after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        value: object = None
        while True:
            try:
                value = self.evaluate(expression)
            except AssertionError as e:  # no page to evaluate in yet (navigating)
                value = f"<{e}>"
            else:
                if until(value):
                    return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"waited {timeout_s:.0f} s for {what}; last: {str(value)[:1500]}")
            self.pipe.pump(0.25)

    def point(self, where: tuple[str, float, float]) -> tuple[float, float]:
        """The viewport point at ``(x fraction, y fraction)`` of the first element ``selector`` matches."""
        return _point(self.pipe, self.session, where)

    def click(self, x: float, y: float) -> None:
        mouse = "Input.dispatchMouseEvent"
        self.pipe.send(mouse, {"type": "mouseMoved", "x": x, "y": y}, session=self.session)
        for kind in ("mousePressed", "mouseReleased"):
            self.pipe.send(mouse, {"type": kind, "x": x, "y": y, "button": "left",
                                   "buttons": 1 if kind == "mousePressed" else 0, "clickCount": 1},
                           session=self.session)

    def press(self, name: str, *, shift: bool = False) -> None:
        """Press and release a key of :data:`KEYS` (with Shift held)."""
        key, code, vk = KEYS[name]
        common = {"key": key, "code": code, "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk,
                  "modifiers": 8 if shift else 0}
        self.pipe.send("Input.dispatchKeyEvent", {"type": "rawKeyDown", **common}, session=self.session)
        self.pipe.send("Input.dispatchKeyEvent", {"type": "keyUp", **common}, session=self.session)

    def drag(self, x0: float, y0: float, x1: float, y1: float, steps: int = 10) -> None:
        _drag(self.pipe, self.session, x0, y0, x1, y1, steps)

    def pump(self, seconds: float) -> None:
        """Take the page's events for up to ``seconds`` (the way to let time pass while watching it)."""
        self.pipe.pump(seconds)

    def errors(self) -> list[str]:
        """What the page logged as errors so far."""
        return _errors(self.pipe.events)

    def sent_frames(self) -> list[str]:
        """The WebSocket frames the page sent so far, as text (binary ones decoded as UTF-8, lossily)."""
        frames = []
        for e in self.pipe.events:
            if e.get("method") == "Network.webSocketFrameSent":
                response = e["params"].get("response", {})
                data = response.get("payloadData", "")
                if response.get("opcode") == 2:
                    data = base64.b64decode(data).decode("utf-8", "replace")
                frames.append(data)
        return frames

    def screenshot(self, path: str | os.PathLike) -> str:
        """The viewport as a PNG at ``path``; the path, or why there is none."""
        try:
            shot = self.pipe.send("Page.captureScreenshot", {"format": "png"}, session=self.session,
                                  deadline=time.monotonic() + 30)
        except AssertionError as e:
            return f"(no screenshot: {e})"
        Path(path).write_bytes(base64.b64decode(shot["data"]))
        return str(path)


@contextlib.contextmanager
def open_url(url: str, *, width: int = 1400, height: int = 1000) -> Iterator[Tab]:
    """``url`` (a server on 127.0.0.1: no other host resolves) opened in headless Chromium, as a :class:`Tab`
    that records the page's console, exceptions and WebSocket frames; the browser ends with the block."""
    pipe = _Pipe(chromium(), width, height)
    try:
        session = _new_session(pipe)
        # focus and key events as in a window in front (CodeMirror and JupyterLab's shortcuts want focus)
        pipe.send("Emulation.setFocusEmulationEnabled", {"enabled": True}, session=session)
        pipe.send("Page.navigate", {"url": url}, session=session)
        yield Tab(pipe, session)
    finally:
        pipe.close()


def check_report(path: str | os.PathLike, *, screenshot: str | os.PathLike | None = None,
                 min_charts: int = 1) -> Page:
    """Open a report and assert: it has charts, every one rendered with a description, nothing logged an
    error, nothing was fetched from the network and no text overflows."""
    page = open_report(path, screenshot=screenshot)
    name = Path(path).name
    assert page.charts >= min_charts, f"{name}: {page.charts} charts, expected at least {min_charts}"
    assert page.rendered == page.charts, f"{name}: {page.rendered} of {page.charts} charts rendered"
    assert page.described == page.charts, f"{name}: {page.charts - page.described} charts without a description"
    assert not page.errors, f"{name}: console errors: {page.errors[:5]}"
    assert not page.external, f"{name}: network requests: {page.external[:5]}"
    assert not page.overflow, f"{name}: text overflows: {page.overflow[:5]}"
    return page


def screenshot_dir() -> Path | None:
    """Where the tests put a screenshot of each report they open: ``$PERFBENCH_SCREENSHOTS`` (e.g. docs/img)."""
    d = os.environ.get("PERFBENCH_SCREENSHOTS")
    if not d:
        return None
    Path(d).mkdir(parents=True, exist_ok=True)
    return Path(d)
