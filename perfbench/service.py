"""Start the user's own service as a child process, wait until it answers, stop it and what it forked.

    with ServiceProcess("python -m myapp --port 8080", url="http://127.0.0.1:8080", ready_path="/health",
                        memray=True) as svc:
        run_load(svc.url, plan, collectors=[MemrayCollector(svc), ResourceSampler(svc), PySpyCollector(svc)])

``svc.pid`` is the command's own process (no shell runs it: a string is split with ``shlex``), so the
resource sampler and py-spy watch the service itself; a command that forks its real server (a shell
script, gunicorn's workers) is watched at its parent. ``memray=True`` runs the command under
``memray run`` (:func:`memray_command`); the capture at ``svc.memray_path`` is complete once the
process has stopped, which :class:`~perfbench.profilers.memray.MemrayCollector` does at the end of
the run by calling ``svc.stop()``. memray runs a Python program in perfbench's own interpreter:
the command must be ``python -m module ...``, ``python script.py ...``, a ``.py`` file or a Python
console script (``uvicorn``, ``gunicorn``, ...), and the service's packages must be importable from
perfbench's environment.

:class:`ChildProcess` is the part shared with :class:`perfbench.demo.process.DemoProcess`: the command
is started with stdin closed and stdout and stderr in a log file (never an unread pipe that could fill
and block it), in a process group of its own; a subclass says when it is ready; it is stopped with its
whole group (SIGTERM, then SIGKILL after a timeout: a shell's children and a server's workers too), on exit from the ``with`` block, also on an exception, Ctrl-C or SIGTERM (the CLI
raises SIGTERM as an exception), and also when starting it fails.
"""

from __future__ import annotations

import abc
import contextlib
import http.client
import os
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from .errors import ConfigError, TargetError
from .safety import check_target

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


def memray_capture_path(memray: bool | str | os.PathLike, directory: str | os.PathLike,
                        prefix: str) -> Path | None:
    """Where a memray capture goes: ``memray`` is a flag (also as text, ``"true"``) or the path itself."""
    if isinstance(memray, str) and memray.strip().lower() in _TRUE + _FALSE:
        memray = memray.strip().lower() in _TRUE  # a flag given as text
    if memray is True:
        return Path(directory) / f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}.bin"
    return Path(memray) if memray else None


def memray_executable() -> list[str]:
    return [sys.executable, "-m", "memray"]


def memray_command(capture: str | Path, cmd: list[str], *, native: bool = False,
                   trace_python_allocators: bool = False) -> list[str]:
    """``cmd`` (starting with the Python interpreter, ``python -m mod ...`` or ``python script.py``) under memray run."""
    out = [*memray_executable(), "run", "-q", "-f", "-o", str(capture)]
    if native:
        out.append("--native")
    if trace_python_allocators:
        out.append("--trace-python-allocators")
    rest = list(cmd)
    if rest and Path(rest[0]).name.startswith("python"):
        rest = rest[1:]
    return out + rest


def parse_cpus(text: str) -> frozenset[int]:
    """A CPU list as ``taskset -c`` takes it: ``1``, ``0,2``, ``2-3``; checked against the CPUs this process
    may use (:func:`check_cpus`)."""
    cpus: set[int] = set()
    for part in (p.strip() for p in str(text).split(",")):
        lo, dash, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            raise ConfigError(f"CPU list {text!r}: {part!r} is not a CPU number or a range such as 2-3") from None
        if first < 0 or last < first:
            raise ConfigError(f"CPU list {text!r}: {part!r} is not a CPU number or an increasing range such as 2-3")
        cpus.update(range(first, last + 1))
    return check_cpus(cpus)


def check_cpus(cpus: Iterable[int]) -> frozenset[int]:
    """``cpus`` as a set, if this process may run on every one of them (else ConfigError naming those it may use)."""
    wanted = frozenset(int(c) for c in cpus)
    allowed = frozenset(os.sched_getaffinity(0))
    if not wanted:
        raise ConfigError("the CPU list is empty: give CPU numbers such as 1 or 0,2-3")
    if not wanted <= allowed:
        raise ConfigError(f"CPU {', '.join(map(str, sorted(wanted - allowed)))} is not available here; this process "
                          f"may use CPUs {format_cpus(allowed)}")
    return wanted


def format_cpus(cpus: Iterable[int]) -> str:
    """``{0, 1, 2, 5}`` as ``0-2,5``."""
    runs: list[list[int]] = []
    for c in sorted(cpus):
        if runs and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in runs)


class ChildProcess(abc.ABC):
    """A command started as our child with its output in ``log_path``, ready when a subclass says so,
    stopped with its process group. Subclasses implement :meth:`command` and :meth:`_wait_ready`."""

    what = "the target"  # for messages

    def __init__(self, *, log_path: str | os.PathLike, start_timeout: float = 60.0,
                 memray_path: Path | None = None, memray_native: bool = False,
                 memray_trace_python_allocators: bool = False, stop_timeout: float | None = None,
                 watchdog_seconds: float | None = None, cwd: str | os.PathLike | None = None,
                 cpus: Iterable[int] | None = None):
        self.log_path = Path(log_path)
        self.cpus = check_cpus(cpus) if cpus is not None else None
        self.start_timeout = start_timeout
        self.memray_path = memray_path
        self.memray_native = memray_native
        self.memray_trace_python_allocators = memray_trace_python_allocators
        self.stop_timeout = stop_timeout
        self.watchdog_seconds = watchdog_seconds
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.expired = False  # set when the watchdog stopped it (its lifetime limit)
        self._log_file: TextIO | None = None
        self._watchdog: threading.Timer | None = None

    # -- what subclasses provide ------------------------------------------------------------------

    @abc.abstractmethod
    def command(self) -> list[str]:
        """The argv that starts the process."""

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    @abc.abstractmethod
    def _wait_ready(self, deadline: float) -> str | None:
        """Block until ready (return its URL), or until the process exits or ``deadline`` passes (None)."""

    def _prepare(self) -> None:  # noqa: B027 - an optional hook: nothing to prepare by default
        """Checks and directories before the command starts."""

    # -- shared ---------------------------------------------------------------------------------------

    def _with_memray(self, cmd: list[str]) -> list[str]:
        """``cmd`` under ``memray run`` when a capture was asked for."""
        if self.memray_path is None:
            return cmd
        return memray_command(self.memray_path, cmd, native=self.memray_native,
                              trace_python_allocators=self.memray_trace_python_allocators)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> str:
        """Start the command and wait until it is ready; its URL. Raises TargetError (with the last
        lines of its log) if it exits first or is not ready within ``start_timeout``; it is stopped then."""
        self._prepare()
        cmd = self.command()
        if self.memray_path is not None:
            self.memray_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        try:
            # in a session (and process group) of its own: stop() signals the whole group, so what the
            # command forks (a shell's children, a server's workers) is stopped with it
            # pinned (``cpus``) in the child before the command runs, so every thread and process it ever
            # makes inherits the CPU set
            pin = (lambda cpus=self.cpus: os.sched_setaffinity(0, cpus)) if self.cpus else None
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                         stderr=subprocess.STDOUT, env=self.environment(), cwd=self.cwd,
                                         start_new_session=True, preexec_fn=pin)
        except OSError as exc:
            self.stop()
            raise TargetError(f"could not start {self.what} ({shlex.join(cmd)}): {exc}") from None
        spawned = time.monotonic()
        try:
            url = self._wait_ready(spawned + self.start_timeout)
        except BaseException:  # Ctrl-C, SIGTERM (raised by the CLI) or a bug: never leave it behind
            self.stop()
            raise
        if url is None:
            code = self.proc.poll()
            how = (f"exited with code {code} before it was ready" if code is not None
                   else f"was not ready within {self.start_timeout:g} s{self._not_ready_hint()}")
            self.stop()
            tail = self.log_tail()
            raise TargetError(f"{self.what} {how}"
                              + (f"; last lines of its log ({self.log_path}):\n{tail}" if tail
                                 else f"; its log ({self.log_path}) is empty"))
        self.url = url
        if self.watchdog_seconds is not None:
            left = self.watchdog_seconds - (time.monotonic() - spawned)  # a lifetime counted from the start
            self._watchdog = threading.Timer(max(left, 0.0), self._expire)
            self._watchdog.daemon = True
            self._watchdog.start()
        return url

    def _not_ready_hint(self) -> str:
        return ""

    def _pause(self, seconds: float) -> None:
        """Wait up to ``seconds`` between readiness checks, returning at once if the child exits."""
        assert self.proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(seconds)

    def _expire(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            self.expired = True
            self._signal_group(signal.SIGTERM)

    def _signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the child's process group (the child's own, see start()); False when the
        group has no process left. Never another group: the id is our child's pid, and a group id
        stays reserved while any of its processes lives."""
        proc = self.proc
        if proc is None:
            return False
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return False
        except (PermissionError, AttributeError):  # not our group after all, or no process groups here
            if proc.poll() is None:
                proc.send_signal(sig)
                return True
            return False
        return True

    def _group_gone(self, deadline: float) -> bool:
        """Wait until the child's process group is empty, up to ``deadline`` (monotonic); True if it is."""
        while True:
            if not self._signal_group(0):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)  # polling processes that are not our children (they cannot be waited for)

    def log_tail(self, lines: int = 10) -> str:
        """The last ``lines`` lines of the child's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join("  " + line for line in text.rstrip().splitlines()[-lines:])

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the child's process group (the child and whatever it forked), then SIGKILL the
        group if any of it is still there after ``timeout``.

        The default wait is ``stop_timeout``, else 60 s under memray (memray finishes its capture on
        exit) and 10 s otherwise. Safe to call more than once.
        """
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if timeout is None:
            timeout = self.stop_timeout
        if timeout is None:
            timeout = 60.0 if self.memray_path is not None else 10.0
        proc = self.proc
        if proc is not None and self._signal_group(signal.SIGTERM):
            deadline = time.monotonic() + timeout
            try:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(deadline - time.monotonic(), 0.0))
                if not self._group_gone(deadline):
                    self._signal_group(signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(10)
                    self._group_gone(time.monotonic() + 10)
            except BaseException:  # interrupted again while waiting: stop it now
                self._signal_group(signal.SIGKILL)
                raise
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def answers_http(url: str, timeout: float) -> bool:
    """True if ``url`` answers with any HTTP status (GET, no redirects followed, certificates not checked)."""
    parts = urlsplit(url)
    if parts.hostname is None:
        raise ConfigError(f"{url!r} names no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "perfbench-ready-check"})
        conn.getresponse()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _listening(host: str | None, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _python_program(cmd: list[str], cwd) -> list[str]:
    """``cmd`` as ``python ...`` for memray run (which runs a Python program in perfbench's interpreter)."""
    head = cmd[0]
    if Path(head).name.startswith("python"):
        return cmd
    if head.endswith(".py"):
        return [sys.executable, *cmd]
    found = head if os.sep in head else shutil.which(head)
    if found and cwd is not None and not os.path.isabs(found):
        found = os.path.join(cwd, found)
    if found and os.path.isfile(found):
        try:
            with open(found, "rb") as f:
                first = f.readline(200)
        except OSError:
            first = b""
        if first.startswith(b"#!") and b"python" in first:  # a console script: uvicorn, gunicorn, ...
            return [sys.executable, os.path.abspath(found), *cmd[1:]]
    raise ConfigError(f"memray runs a Python program: start the service with `python -m module ...`, "
                      f"`python script.py ...` or a Python console script; {head!r} is none of these")


class ServiceProcess(ChildProcess):
    """``with ServiceProcess(cmd, url=...) as svc:`` — the user's service, started, ready, then stopped.

    ``cmd``: argv, or a string split with ``shlex`` (no shell). ``url``: where it serves; loopback
    only, checked before anything starts, and nothing may already listen there (else the load would
    go to that other process). Ready when ``url + ready_path`` answers any HTTP status, polled with
    short timeouts for up to ``start_timeout`` s. ``memray``: run it under ``memray run`` (True, or
    the capture's path); ``memray_native``: with native frames. ``env``: added to (and overriding)
    perfbench's environment. ``log_path``: its stdout and stderr (default: a new file in the temp
    directory, kept). ``max_seconds``: a lifetime limit enforced from this process by a watchdog
    thread (SIGTERM once it has run that long, ``.expired`` set; gone if this process is killed with -9).
    ``cpus``: run it (and all it forks) on these CPUs only (:func:`parse_cpus` reads ``taskset -c`` lists).
    """

    what = "the service"

    def __init__(self, cmd: list[str] | str, *, url: str, ready_path: str = "/", start_timeout: float = 60,
                 memray: bool | str | os.PathLike = False, memray_native: bool = False, env: dict | None = None,
                 cwd: str | os.PathLike | None = None, log_path: str | os.PathLike | None = None,
                 max_seconds: float | None = None, stop_timeout: float | None = None,
                 cpus: Iterable[int] | None = None):
        base = check_target(url)  # loopback only, before anything starts (raises UnsafeTargetError)
        argv = shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd]
        if not argv:
            raise ConfigError("the service's command is empty")
        if not ready_path.startswith("/"):
            ready_path = "/" + ready_path
        if max_seconds is not None and not max_seconds > 0:
            raise ConfigError(f"max_seconds must be positive, got {max_seconds!r}")
        tag = f"{os.getpid()}-{secrets.token_hex(3)}"
        log_path = Path(log_path) if log_path else Path(tempfile.gettempdir()) / f"perfbench-service-{tag}.log"
        super().__init__(log_path=log_path, start_timeout=start_timeout,
                         memray_path=memray_capture_path(memray, log_path.parent, "memray-service"),
                         memray_native=memray_native, stop_timeout=stop_timeout, watchdog_seconds=max_seconds,
                         cwd=cwd, cpus=cpus)
        self.argv = argv
        self.target = self.url = base
        self.ready_url = base + ready_path
        self.env = {str(k): str(v) for k, v in (env or {}).items()}
        if self.memray_path is not None:
            _python_program(argv, cwd)  # refuse a non-Python command now, not after the load was planned

    def command(self) -> list[str]:
        if self.memray_path is None:
            return list(self.argv)
        return self._with_memray(_python_program(self.argv, self.cwd))

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def _prepare(self) -> None:
        parts = urlsplit(self.target)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if _listening(parts.hostname, port):
            raise TargetError(f"something already listens on {parts.hostname}:{port}: the load would go to it, "
                              f"not to the service perfbench starts; stop it or serve on another port")

    def _wait_ready(self, deadline: float) -> str | None:
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if answers_http(self.ready_url, timeout=min(1.0, max(left, 0.05))):
                return self.target
            self._pause(min(0.1, max(deadline - time.monotonic(), 0.01)))

    def _not_ready_hint(self) -> str:
        return f" ({self.ready_url} did not answer)"
