"""Start the demo target (or a user's service) as a child process and stop it again, by its PID, whatever happens.

``DemoProcess(tracemalloc=True)`` serves the demo with tracemalloc on and perfbench's memory
endpoint mounted (token in ``demo.memory_token``, see ``perfbench.profilers.memory``);
``DemoProcess(memray=True)`` runs it under ``memray run`` (capture at ``demo.memray_path``,
complete once the process has stopped). ``demo.pid`` is the served process's PID in every mode
(``memray run`` runs the program in its own process), for the resource sampler and py-spy.
"""

from __future__ import annotations

import os
import secrets
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
                 log: Callable[[str], None] | None = None, tracemalloc: bool = False,
                 tracemalloc_nframes: int = 5, tracemalloc_at_start: bool = False, memray: bool | str | os.PathLike = False,
                 memray_native: bool = False, memray_trace_python_allocators: bool = False):
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
        self.tracemalloc = tracemalloc
        self.tracemalloc_nframes = tracemalloc_nframes
        self.tracemalloc_at_start = tracemalloc_at_start
        # the memory endpoint's token: fresh per process, never written to a run directory
        self.memory_token: str | None = secrets.token_urlsafe(24) if tracemalloc else None
        if isinstance(memray, str) and memray.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no",
                                                                     "off", ""):
            memray = memray.strip().lower() in ("true", "1", "yes", "on")  # a flag given as text
        if memray is True:
            memray = self.db_path.parent / f"memray-demo-{os.getpid()}-{secrets.token_hex(3)}.bin"
        self.memray_path: Path | None = Path(memray) if memray else None
        self.memray_native = memray_native
        self.memray_trace_python_allocators = memray_trace_python_allocators

    def command(self) -> list[str]:
        """The command line that serves the demo, with the chosen profilers around it."""
        if self.tracemalloc:
            cmd = [sys.executable, "-m", "perfbench.profilers.memory", "demo"]
        else:
            cmd = [sys.executable, "-m", "perfbench", "serve-demo"]
        cmd += ["--port", "0", "--max-seconds", str(self.max_seconds)]
        if self.db_url:
            cmd += ["--db-url", self.db_url]
        else:
            cmd += ["--db-path", str(self.db_path)]
        if self.cache_url:
            cmd += ["--cache-url", self.cache_url]
        if self.memray_path is not None:
            from ..profilers.memory import memray_command

            cmd = memray_command(self.memray_path, cmd, native=self.memray_native,
                                 trace_python_allocators=self.memray_trace_python_allocators)
        return cmd

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.memory_token:
            env["PERFBENCH_MEMORY_TOKEN"] = self.memory_token
            env["PERFBENCH_MEMORY_NFRAMES"] = str(self.tracemalloc_nframes)
            if self.tracemalloc_at_start:
                env["PERFBENCH_MEMORY_TRACE_AT_START"] = "1"
        return env

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> str:
        cmd = self.command()
        if not self.db_url:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        if self.memray_path is not None:
            self.memray_path.parent.mkdir(parents=True, exist_ok=True)
        if not self.db_url and not self.db_path.exists():
            self.log(f"seeding the demo database {self.db_path} (first run only)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "w")  # noqa: SIM115 - closed in __exit__/stop
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log_file, text=True,
                                     env=self.environment())
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

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the child (ours, by PID), then SIGKILL if it does not exit in ``timeout``.

        Under memray the default wait is longer (60 s): memray finishes its capture file on exit.
        """
        if timeout is None:
            timeout = 60.0 if self.memray_path is not None else 10.0
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
