"""Start the demo target as a child process and stop it again, by its PID, whatever happens."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import TargetError

READY_PREFIX = "perfbench demo serving on "


class DemoProcess:
    """``with DemoProcess() as demo: demo.url`` — the demo target on a free loopback port.

    The child has its own lifetime limit (``max_seconds``), so even if this process is killed
    the target stops by itself.
    """

    def __init__(self, *, db_path: str | os.PathLike = "data/demo/demo.sqlite", db_url: str | None = None,
                 cache_url: str | None = None, max_seconds: float = 3600, start_timeout: float = 120,
                 log: Callable[[str], None] | None = None):
        self.db_path = Path(db_path)
        self.db_url = db_url
        self.cache_url = cache_url
        self.max_seconds = max_seconds
        self.start_timeout = start_timeout
        self.log = log or (lambda line: None)
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        # the child's stderr goes to a file, never to an unread pipe that could fill and block it
        self.log_path = self.db_path.parent / "serve-demo.log"
        self._log_file = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> str:
        cmd = [sys.executable, "-m", "perfbench", "serve-demo", "--port", "0", "--max-seconds",
               str(self.max_seconds)]
        if self.db_url:
            cmd += ["--db-url", self.db_url]
        else:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--db-path", str(self.db_path)]
        if self.cache_url:
            cmd += ["--cache-url", self.cache_url]
        if not self.db_url and not self.db_path.exists():
            self.log(f"seeding the demo database {self.db_path} (first run only)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "w")  # noqa: SIM115 - closed in __exit__/stop
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log_file, text=True)
        deadline = time.monotonic() + self.start_timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith(READY_PREFIX):
                    self.url = line[len(READY_PREFIX):].strip()
                    return self.url
                if line == "" and self.proc.poll() is not None:
                    break
            elif self.proc.poll() is not None:
                break
        err = self._stderr_tail()
        self.stop()
        raise TargetError(f"the demo target did not start within {self.start_timeout:g} s"
                          + (f": {err}" if err else ""))

    def _stderr_tail(self) -> str:
        try:
            text = self.log_path.read_text()
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-3:])

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the child (ours, by PID), then SIGKILL if it does not exit in ``timeout``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> DemoProcess:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
