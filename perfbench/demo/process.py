"""Start the demo target as a child process and stop it again, by its PID, whatever happens.

(A user's own service: :class:`perfbench.service.ServiceProcess`, which shares the starting and stopping.)

``DemoProcess(tracemalloc=True)`` serves the demo with tracemalloc on and perfbench's memory
endpoint mounted (token in ``demo.memory_token``, see ``perfbench.agent.memory``);
``DemoProcess(memray=True)`` runs it under ``memray run`` (capture at ``demo.memray_path``,
complete once the process has stopped). ``demo.pid`` is the served process's PID in every mode
(``memray run`` runs the program in its own process), for the resource sampler and py-spy.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ..service import ChildProcess, memray_capture_path

READY_PREFIX = "perfbench demo serving on "


class DemoProcess(ChildProcess):
    """``with DemoProcess() as demo: demo.url`` — the demo target on a free loopback port.

    The child has its own lifetime limit (``max_seconds``), so even if this process is killed
    the target stops by itself. Starting, the log (``serve-demo.log`` beside the database: stdout
    and stderr), and stopping by PID are :class:`perfbench.service.ChildProcess`'s, shared with
    :class:`perfbench.service.ServiceProcess`; the demo is ready when it prints its URL.
    """

    what = "the demo target"

    def __init__(self, *, db_path: str | os.PathLike = "data/demo/demo.sqlite", db_url: str | None = None,
                 cache_url: str | None = None, max_seconds: float = 3600, start_timeout: float = 120,
                 log: Callable[[str], None] | None = None, tracemalloc: bool = False,
                 tracemalloc_nframes: int = 5, tracemalloc_at_start: bool = False, memray: bool | str | os.PathLike = False,
                 memray_native: bool = False, memray_trace_python_allocators: bool = False,
                 slowdown: Sequence[str] = (), log_path: str | os.PathLike | None = None,
                 cpus: Iterable[int] | None = None, port: int = 0):
        self.db_path = Path(db_path)
        self.port = int(port)  # 0: a free one
        self.slowdown = list(slowdown)  # e.g. ["/api/posts=15%"]: see perfbench.demo.slowdown
        super().__init__(log_path=log_path or self.db_path.parent / "serve-demo.log", start_timeout=start_timeout,
                         memray_path=memray_capture_path(memray, self.db_path.parent, "memray-demo"),
                         memray_native=memray_native,
                         memray_trace_python_allocators=memray_trace_python_allocators, cpus=cpus)
        self.db_url = db_url
        self.cache_url = cache_url
        self.max_seconds = max_seconds
        self.log = log or (lambda line: None)
        self.tracemalloc = tracemalloc
        self.tracemalloc_nframes = tracemalloc_nframes
        self.tracemalloc_at_start = tracemalloc_at_start
        # the memory endpoint's token, never written to a run directory: the agent's when the demo runs the
        # agent ($PERFBENCH_AGENT_TOKEN: one token for both endpoints), else fresh per process
        agent_token = os.environ.get("PERFBENCH_AGENT_TOKEN") or ""
        self.memory_token: str | None = ((agent_token if len(agent_token) >= 16 else secrets.token_urlsafe(24))
                                         if tracemalloc else None)

    def command(self) -> list[str]:
        """The command line that serves the demo, with the chosen profilers around it."""
        cmd = [sys.executable, "-m", "perfbench", "serve-demo", "--port", str(self.port), "--max-seconds", str(self.max_seconds)]
        if self.db_url:
            cmd += ["--db-url", self.db_url]
        else:
            cmd += ["--db-path", str(self.db_path)]
        if self.cache_url:
            cmd += ["--cache-url", self.cache_url]
        for spec in self.slowdown:
            cmd += ["--slowdown", spec]
        return self._with_memray(cmd)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.memory_token:
            env["PERFBENCH_MEMORY_TOKEN"] = self.memory_token
            env["PERFBENCH_MEMORY_NFRAMES"] = str(self.tracemalloc_nframes)
            if self.tracemalloc_at_start:
                env["PERFBENCH_MEMORY_TRACE_AT_START"] = "1"
        return env

    def _prepare(self) -> None:
        if not self.db_url:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            if not self.db_path.exists():
                self.log(f"seeding the demo database {self.db_path} (first run only)")

    def _wait_ready(self, deadline: float) -> str | None:
        """Ready when the demo prints ``perfbench demo serving on URL`` (flushed) into its log."""
        assert self.proc is not None
        pending = ""
        with open(self.log_path, errors="replace") as log:
            while True:
                exited = self.proc.poll() is not None
                pending += log.read()
                *lines, pending = pending.split("\n")
                for line in lines:
                    if line.startswith(READY_PREFIX):
                        return line[len(READY_PREFIX):].strip()
                if exited or time.monotonic() >= deadline:
                    return None
                self._pause(0.05)
