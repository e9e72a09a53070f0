"""perfbench starts the user's own service (ServiceProcess, ``perfbench run --start``), profiles it, stops it."""

from __future__ import annotations

import json
import os
import select
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl
import psutil
import pytest

from perfbench.analysis.results import Run
from perfbench.cli import main
from perfbench.errors import ConfigError, TargetError, UnsafeTargetError
from perfbench.service import ServiceProcess

# a tiny stdlib HTTP service: starts in a fraction of a second
TINY = """\
import http.server, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

print("tiny service starting", flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gone(pid: int, marker: str) -> bool:
    """True if no process ``pid`` runs our service any more (a reused PID runs something else)."""
    try:
        p = psutil.Process(pid)
        return p.status() == psutil.STATUS_ZOMBIE or marker not in " ".join(p.cmdline())
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def demo_db(demo_db_copy) -> Path:
    """The demo's database, already seeded (seeding under memray would be slow), for the module."""
    return demo_db_copy()


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny_service.py"
    path.write_text(TINY)
    return path


def demo_cmd(port: int, db: Path) -> list[str]:
    return [sys.executable, "-m", "perfbench", "serve-demo", "--port", str(port), "--db-path", str(db),
            "--max-seconds", "300"]


@pytest.mark.slow
def test_service_process_starts_the_demo_and_stops_it(demo_db, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with ServiceProcess(shlex.join(demo_cmd(port, demo_db)), url=url, ready_path="/health",
                        log_path=tmp_path / "svc.log", max_seconds=300) as svc:
        assert svc.url == url and svc.memray_path is None
        pid = svc.pid
        assert psutil.Process(pid).cmdline()[1:4] == ["-m", "perfbench", "serve-demo"]  # the service, no shell
        with urllib.request.urlopen(url + "/health", timeout=5) as resp:
            assert resp.status == 200
    assert svc.proc.returncode is not None and gone(pid, str(demo_db))
    assert "perfbench demo serving on" in (tmp_path / "svc.log").read_text()  # stdout went to the log


@pytest.mark.slow
def test_run_starts_the_service_profiles_it_with_resources_and_memray_then_stops_it(demo_db, tmp_path, capsys):
    port = free_port()
    code = main(["run", f"http://127.0.0.1:{port}", "--start", shlex.join(demo_cmd(port, demo_db)),
                 "--ready-path", "/health", "--start-timeout", "120", "--resources", "--resources-interval", "0.25",
                 "--memray", "--path", "/health", "--path", "leak=POST /api/leak", "--rate", "20",
                 "--duration", "2", "--runs-dir", str(tmp_path / "runs")])
    assert code == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "started the service: pid" in err
    run_dir = next((tmp_path / "runs").iterdir())
    meta = Run.load(run_dir).meta["collectors"]
    assert not [c for c in meta.values() if "error" in c], meta
    res = pl.read_parquet(run_dir / "resources.parquet")
    assert res.height >= 4 and (res["rss"] > 0).all()
    stats = json.loads((run_dir / "memory" / "memray_stats.json").read_text())
    assert stats["total_num_allocations"] > 0
    pid = meta["resources"]["pid"]
    assert meta["memray"]["metadata"]["pid"] == pid  # memray ran the service in the very process we watched
    assert gone(pid, str(demo_db))
    df = Run.load(run_dir).requests.collect()
    assert df["error"].null_count() == df.height  # the service answered every request of the load


def test_a_command_that_exits_at_once_gives_its_log_lines(tmp_path):
    cmd = [sys.executable, "-c", "import sys; print('booting', flush=True); sys.exit('config missing: DATABASE_URL')"]
    svc = ServiceProcess(cmd, url=f"http://127.0.0.1:{free_port()}", log_path=tmp_path / "svc.log")
    with pytest.raises(TargetError, match="exited with code 1") as exc:
        svc.start()
    assert "booting" in str(exc.value) and "config missing: DATABASE_URL" in str(exc.value)
    assert svc.proc.returncode == 1


def test_a_service_that_never_answers_is_stopped_after_the_start_timeout(tmp_path):
    svc = ServiceProcess([sys.executable, "-c", "import time; time.sleep(120)"], url=f"http://127.0.0.1:{free_port()}",
                         start_timeout=0.5, log_path=tmp_path / "svc.log")
    with pytest.raises(TargetError, match="not ready within 0.5 s"):
        svc.start()
    assert svc.proc.returncode is not None  # stopped, not left behind


def test_a_non_loopback_url_is_refused_before_anything_starts(tmp_path, capsys):
    marker = tmp_path / "started"
    cmd = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    with pytest.raises(UnsafeTargetError, match="not loopback"):
        ServiceProcess(cmd, url="http://10.1.2.3:8080")
    assert main(["run", "http://10.1.2.3:8080", "--allow-host", "10.1.2.3", "--start", shlex.join(cmd),
                 "--runs-dir", str(tmp_path / "runs"), "--quiet"]) == 2
    assert "not loopback" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "runs").exists()


def test_a_port_already_in_use_is_refused_before_anything_starts(tmp_path):
    marker = tmp_path / "started"
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        svc = ServiceProcess([sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"],
                             url=f"http://127.0.0.1:{port}", log_path=tmp_path / "svc.log")
        with pytest.raises(TargetError, match="already listens"):
            svc.start()
    assert svc.proc is None and not marker.exists()


def test_the_lifetime_limit_stops_the_service(tiny, tmp_path):
    port = free_port()
    with ServiceProcess([sys.executable, str(tiny), str(port)], url=f"http://127.0.0.1:{port}",
                        ready_path="health", max_seconds=0.5, log_path=tmp_path / "svc.log") as svc:
        assert svc.proc.wait(timeout=30) is not None  # the watchdog's SIGTERM
        assert svc.expired


def test_memray_needs_a_python_command():
    with pytest.raises(ConfigError, match="memray runs a Python program"):
        ServiceProcess(["/bin/sleep", "10"], url="http://127.0.0.1:1", memray=True)


def test_service_options_that_do_not_fit_together(tmp_path, capsys):
    assert main(["run", "http://127.0.0.1:1", "--memray", "--runs-dir", str(tmp_path)]) == 2
    assert "--memray needs --start" in capsys.readouterr().err
    assert main(["run", "http://127.0.0.1:1", "--start", "python -c pass", "--pid", "1", "--resources",
                 "--runs-dir", str(tmp_path)]) == 2
    assert "drop --pid" in capsys.readouterr().err


def test_terminating_perfbench_run_stops_the_service_it_started(tiny, tmp_path):
    port = free_port()
    cmd = [sys.executable, "-m", "perfbench", "run", f"http://127.0.0.1:{port}", "--start",
           shlex.join([sys.executable, str(tiny), str(port)]), "--ready-path", "/health", "--path", "/health",
           "--rate", "10", "--duration", "120", "--runs-dir", str(tmp_path / "runs")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        pid, lines = None, []
        deadline = time.monotonic() + 60
        while pid is None and time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stderr], [], [], 0.2)[0]:
                line = proc.stderr.readline()
                lines.append(line)
                if line.startswith("started the service: pid "):
                    pid = int(line.split()[4].rstrip(","))
        assert pid is not None, "".join(lines)
        assert not gone(pid, str(tiny))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143, "".join(lines) + proc.stderr.read()
        assert gone(pid, str(tiny))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def _grandchild(svc: ServiceProcess, marker: str) -> int:
    """The pid of the process the started command forked that runs ``marker``."""
    kids = [p for p in psutil.Process(svc.pid).children(recursive=True) if marker in " ".join(p.cmdline())]
    assert kids, "the shell did not fork its child"
    return kids[0].pid


def test_stopping_the_service_stops_what_its_shell_forked(tmp_path):
    port = free_port()
    cmd = f"bash -c '{sys.executable} -m http.server {port} --bind 127.0.0.1 & wait'"
    with ServiceProcess(cmd, url=f"http://127.0.0.1:{port}", start_timeout=60, log_path=tmp_path / "svc.log") as svc:
        child = _grandchild(svc, "http.server")
        assert os.getpgid(child) == os.getpgid(svc.pid) == svc.pid != os.getpgid(0)  # a group of its own
        assert not gone(child, "http.server")
    assert gone(svc.pid, "bash") and gone(child, "http.server")


def test_a_forked_child_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path):
    port = free_port()
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)  # stubborn"
    cmd = (f"bash -c '{sys.executable} -c \"{stubborn}\" & "
           f"exec {sys.executable} -m http.server {port} --bind 127.0.0.1'")
    svc = ServiceProcess(cmd, url=f"http://127.0.0.1:{port}", start_timeout=60, log_path=tmp_path / "svc.log")
    svc.start()
    try:
        child = _grandchild(svc, "stubborn")
    finally:
        svc.stop(timeout=1.0)
    assert gone(svc.pid, "http.server") and gone(child, "stubborn")
