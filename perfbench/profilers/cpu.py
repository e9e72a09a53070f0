"""CPU: py-spy samples the target's Python stacks from outside the process during a run.

    run_load(url, plan, collectors=[PySpyCollector(pid)])   # -> <run>/cpu/
    read_collapsed(run / "cpu" / "py-spy.txt")              # Polars: stack, samples
    top_functions(stacks)                                    # self and total samples per frame

py-spy attaches with ptrace (root, or CAP_SYS_PTRACE, or the same user with Yama
``ptrace_scope`` 0); it pauses the target briefly for each sample unless ``nonblocking``. Files in
``cpu/``: with the default ``format="raw"``, ``py-spy.txt`` (collapsed stacks, ``a;b;c N``, root
first) and ``py-spy.speedscope.json`` made from it (open it at speedscope.app or with the
``speedscope`` npm package); with ``format="flamegraph"``, ``py-spy.svg`` (interactive, renders
offline); with ``"speedscope"``, py-spy's own ``py-spy.speedscope.json``.

When py-spy cannot attach (no such process, permission denied, not a Python process, py-spy not
installed), ``start`` raises an error that says so and why; the collector seam records it in
``meta.json`` under ``collectors.py-spy.error`` and the run goes on without a CPU profile.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ProfilerError
from .resources import resolve_pid

if TYPE_CHECKING:
    import polars as pl

CPU_DIR = "cpu"
ATTACHED = "py-spy> Sampling process"
OUTPUTS = {"raw": "py-spy.txt", "flamegraph": "py-spy.svg", "speedscope": "py-spy.speedscope.json"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# colour forced on by the environment (Jupyter kernels set CLICOLOR_FORCE=1) puts escape codes into py-spy's
# "py-spy> Sampling process" line, which then never matched: asked for plain text, and escapes stripped anyway
_COLOUR_VARS = ("CLICOLOR_FORCE", "FORCE_COLOR")


def plain_environment() -> dict[str, str]:
    """perfbench's environment for py-spy, with colour off."""
    env = {k: v for k, v in os.environ.items() if k not in _COLOUR_VARS}
    env["NO_COLOR"] = "1"
    return env


def pyspy_executable() -> str | None:
    """py-spy beside this interpreter (the project's venv), else on PATH."""
    here = Path(sys.executable).parent / "py-spy"
    if here.exists():
        return str(here)
    return shutil.which("py-spy")


class PySpyCollector:
    """Collector: ``py-spy record --pid P`` for the whole run, into ``cpu/``.

    ``target``: a PID or an object with ``.pid`` (e.g. ``DemoProcess``), read when the run starts.
    ``rate``: samples per second; ``native``: C frames too; ``subprocesses``: children too;
    ``idle``: include idle threads; ``gil``: only samples holding the GIL.
    """

    name = "py-spy"

    def __init__(self, target: Any, *, rate: int = 100, format: str = "raw", native: bool = False,
                 subprocesses: bool = False, idle: bool = False, gil: bool = False, nonblocking: bool = False,
                 attach_timeout: float = 20.0, stop_timeout: float = 60.0):
        if format not in OUTPUTS:
            raise ConfigError(f"format must be one of {', '.join(OUTPUTS)}; got {format!r}")
        self.target = target
        self.rate = rate
        self.format = format
        self.flags = [f for f, on in (("--native", native), ("--subprocesses", subprocesses), ("--idle", idle),
                                      ("--gil", gil), ("--nonblocking", nonblocking)) if on]
        self.attach_timeout = attach_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.out: Path | None = None
        self._log: Path | None = None

    async def start(self, ctx) -> None:
        import asyncio

        await asyncio.to_thread(self.start_sync, ctx.run_dir)

    async def stop(self, ctx) -> dict[str, Any]:
        import asyncio

        return await asyncio.to_thread(self.stop_sync)

    def _fail(self, why: str) -> ProfilerError:
        return ProfilerError(f"py-spy could not profile PID {self.pid}: {why}; no CPU profile for this run, "
                            f"the load goes on")

    def start_sync(self, run_dir: str | Path) -> None:
        try:
            self.pid = resolve_pid(self.target)
        except ProfilerError as exc:
            raise ProfilerError(f"py-spy: {exc}; no CPU profile for this run, the load goes on") from None
        exe = pyspy_executable()
        if exe is None:
            raise self._fail("py-spy is not installed (pip install py-spy)")
        out_dir = Path(run_dir) / CPU_DIR
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out = out_dir / OUTPUTS[self.format]
        self._log = out_dir / "py-spy.log"
        cmd = [exe, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--format", self.format,
               "-o", str(self.out), *self.flags]
        log = open(self._log, "w")  # noqa: SIM115 - py-spy's stderr, closed below
        try:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=plain_environment(),
                                         start_new_session=True)  # our Ctrl-C is not py-spy's
        finally:
            log.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.attach_timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = _ANSI.sub("", self.proc.stdout.readline())
                if line.startswith(ATTACHED):
                    return
                if line:
                    seen.append(line.strip())
                    continue
            if self.proc.poll() is not None:
                break
        if self.proc.poll() is None:
            self._end(signal.SIGKILL)
            raise self._fail(f"it did not start sampling within {self.attach_timeout:g} s")
        raise self._fail(self._reason("\n".join(seen)))

    def _reason(self, stdout: str) -> str:
        text = stdout + "\n" + (self._log.read_text() if self._log and self._log.exists() else "")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(" ")]
        first = next((ln for ln in lines if ln.startswith("Error")), lines[0] if lines else "no output")
        hints = []
        low = text.lower()
        if "permission denied" in low or "operation not permitted" in low:
            hints.append("ptrace is not allowed: run as root, grant CAP_SYS_PTRACE, or set "
                         "kernel.yama.ptrace_scope=0")
        if "no such file" in low or "is the process running" in low or "not running" in low:
            hints.append("the process does not exist (it has exited, or the PID is wrong)")
        return first + (f" ({'; '.join(hints)})" if hints else "")

    def _end(self, sig: int) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)  # our child, by its PID
        try:
            proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def stop_sync(self) -> dict[str, Any]:
        """Stop py-spy (SIGINT: it writes its file and exits); what meta.json keeps."""
        assert self.proc is not None and self.out is not None
        exited_early = self.proc.poll() is not None
        self._end(signal.SIGINT)
        if self.proc.stdout is not None:
            tail = self.proc.stdout.read()
            self.proc.stdout.close()
        else:
            tail = ""
        run_dir = self.out.parent.parent
        result: dict[str, Any] = {"pid": self.pid, "rate": self.rate, "format": self.format,
                                  "returncode": self.proc.returncode}
        if not self.out.exists() or self.out.stat().st_size == 0:
            result["error"] = f"py-spy wrote no profile: {self._reason(tail)}"
            return result
        files = [self.out]
        if self.format == "raw":
            stacks = read_collapsed(self.out)
            result["samples"] = int(stacks["samples"].sum()) if stacks.height else 0
            sc = self.out.with_name("py-spy.speedscope.json")
            write_speedscope(stacks, sc, name=f"py-spy pid {self.pid}")
            files.append(sc)
        result["files"] = [str(f.relative_to(run_dir)) for f in files]
        if exited_early:
            result["note"] = "py-spy stopped before the run ended (the target exited?)"
        return result


def read_collapsed(path: str | Path) -> pl.DataFrame:
    """py-spy's raw output (collapsed stacks ``root;...;leaf N``) as ``stack, samples``."""
    import polars as pl

    stacks, counts = [], []
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            stacks.append(stack)
            counts.append(int(n))
    return pl.DataFrame({"stack": stacks, "samples": counts}, schema={"stack": pl.String, "samples": pl.Int64})


def top_functions(stacks: pl.DataFrame, n: int = 20) -> pl.DataFrame:
    """Per frame (``function (file:line)``): self samples (leaf), total samples (anywhere on the stack), shares."""
    import polars as pl

    total = stacks["samples"].sum() or 1
    frames = stacks.with_columns(frames=pl.col("stack").str.split(";"))
    self_ = frames.select(frame=pl.col("frames").list.last(), samples="samples").group_by("frame").agg(
        self_samples=pl.col("samples").sum())
    incl = (frames.select(frame=pl.col("frames").list.unique(), samples="samples").explode("frame")
            .group_by("frame").agg(total_samples=pl.col("samples").sum()))
    out = incl.join(self_, on="frame", how="left").with_columns(pl.col("self_samples").fill_null(0))
    return out.with_columns(self_share=pl.col("self_samples") / total, total_share=pl.col("total_samples") / total
                            ).sort("self_samples", "total_samples", descending=True).head(n)


def write_speedscope(stacks: pl.DataFrame, path: str | Path, name: str = "py-spy") -> Path:
    """A speedscope "sampled" profile from collapsed stacks (one sample per distinct stack, weighted)."""
    index: dict[str, int] = {}
    samples, weights = [], []
    for stack, n in stacks.iter_rows():
        samples.append([index.setdefault(f, len(index)) for f in stack.split(";")])
        weights.append(n)
    doc = {"$schema": "https://www.speedscope.app/file-format-schema.json",
           "shared": {"frames": [{"name": f} for f in index]},
           "profiles": [{"type": "sampled", "name": name, "unit": "none", "startValue": 0,
                         "endValue": sum(weights), "samples": samples, "weights": weights}],
           "name": name, "exporter": "perfbench"}
    Path(path).write_text(json.dumps(doc))
    return Path(path)

