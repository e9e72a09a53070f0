"""The ``perfbench`` command line. Thin: each subcommand parses, calls the package, prints.

Subcommands live in ``perfbench/commands/``, one module each, found automatically.
Exit codes (a contract for CI): 0 ok; 1 perfbench failed; 2 bad input; 3 bad run directory;
4 target unreachable or not startable; 5 an experiment notebook failed; 10 an SLO was broken;
130 interrupted (Ctrl-C) and 143 terminated (SIGTERM): the run directory holds what was measured.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from . import stops
from .errors import PerfbenchError, SLOBreached
from .redaction import redact_url
from .version import __version__

EPILOG = """exit codes: 0 ok, 1 perfbench failed, 2 bad input, 3 bad run directory, 4 target unreachable,
5 experiment notebook failed, 10 SLO broken, 130/143 interrupted/terminated (what was measured is kept).
Add --debug (anywhere on the line) for a traceback."""


# a third-party module the workbench imports -> the extra that installs it (pyproject.toml); the base
# install is the service agent alone, so a command run without its extra names what to install
EXTRA_OF_MODULE = {
    **dict.fromkeys(("aiohttp", "uvloop", "httptools", "psutil", "pyarrow", "numpy", "polars"), "load"),
    **dict.fromkeys(("memray",), "profilers"),
    **dict.fromkeys(("dask", "distributed", "bokeh"), "distributed"),
    **dict.fromkeys(("altair", "vl_convert", "papermill", "nbconvert", "nbformat", "ipykernel", "jupyter_client",
                     "jupyterlab"), "lab"),
    **dict.fromkeys(("sqlalchemy", "aiosqlite", "asyncpg", "redis"), "demo"),
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """One line naming the extra to install when ``exc`` is a workbench dependency left out, else None."""
    top = (exc.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return (f"this command needs {top}, which is not installed (the base install is the service agent alone): "
            f"pip install 'perfbench[{extra}]' (or 'perfbench[all]' for everything)")


def _commands() -> list:
    """The subcommand modules in perfbench/commands/, in their ORDER."""
    import importlib
    import pkgutil

    from . import commands

    mods = [importlib.import_module(f"{commands.__name__}.{m.name}")
            for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 50), m.__name__))


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``perfbench run: error: ... (see perfbench run --help)``, exit 2.
    Subparsers are made of the same class (argparse's default), so every command answers alike."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def one_line(text: str, limit: int = 2000) -> str:
    """``text`` on one line: line breaks become spaces, very long messages are cut."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="perfbench",
        description="perfbench: performance testing of web APIs and the Python services behind them. Honest "
                    "(coordinated-omission-corrected) latency, exact percentiles, run directories you can "
                    "analyse in Polars, and notebook reports that open anywhere offline.",
        epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"perfbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _commands():
        module.register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every ``with``/``finally`` runs: the processes perfbench
    started (the demo target, a notebook's kernel, profilers) are stopped, never left behind."""


def _on_sigterm(signum, frame) -> None:
    # recorded first: an exception raised inside a weakref callback or __del__ is dropped by Python, and the
    # engine then acts on the record when it takes the signals over; an error raised while perfbench unwinds
    # from the stop is reported with the stop's exit code (143), never as exit 1
    stops.request("terminated")
    raise Terminated()


def _quiet_dropped_stop(unraisable) -> None:
    """Python's "Exception ignored in ...", with its traceback, for everything but a SIGTERM dropped inside a
    weakref callback or ``__del__``: that one is recorded (perfbench.stops) and acted on, not an error."""
    if not isinstance(unraisable.exc_value, Terminated):
        sys.__unraisablehook__(unraisable)


def main(argv: list[str] | None = None) -> int:
    """Run one command; every outcome is an exit code and, on failure, one line on stderr."""
    argv = list(sys.argv[1:] if argv is None else argv)
    stops.clear()
    debug = "--debug" in argv
    if debug:  # accepted anywhere on the line, not only before the command
        argv = ["--debug", *(a for a in argv if a != "--debug")]
    try:
        return _main(argv)
    except SystemExit:
        raise  # argparse's --help, --version and argument errors (one line, exit 2)
    except BrokenPipeError:  # the reader of stdout went away (`perfbench summary RUN | head`): not an error
        import os

        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug of perfbench, or something no check foresaw: one line, traceback in a file
        if debug:
            raise
        if stopping := stops.pending():  # raised while stopping on a signal (an import or a cleanup cut short)
            print(f"perfbench: {stopping}; while stopping: {redact_url(_unexpected(exc))}", file=sys.stderr)
            return 143 if stopping == "terminated" else 130
        print(f"perfbench: internal error: {redact_url(_unexpected(exc))}", file=sys.stderr)
        return 1


def _unexpected(exc: BaseException) -> str:
    """One line for an unexpected exception: what failed, where, and the file its traceback went to."""
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    frames = traceback.extract_tb(exc.__traceback__)
    # where in perfbench it failed (the innermost of perfbench's own frames), else the innermost frame
    ours = [f for f in frames if "/perfbench/" in f.filename.replace("\\", "/")] or frames
    where = f" in {ours[-1].name} ({_short_path(ours[-1].filename)}:{ours[-1].lineno})" if ours else ""
    try:
        with tempfile.NamedTemporaryFile("w", prefix="perfbench-traceback-", suffix=".txt", delete=False) as f:
            f.write(text)
        saved = f"the full traceback is in {f.name}"
    except OSError as write_error:
        saved = f"the traceback could not be saved ({write_error.strerror}); add --debug to see it"
    return one_line(f"{type(exc).__name__}: {exc}{where}; {saved} (please report it)", limit=600)


def _short_path(filename: str) -> str:
    """A source file named from its package (``perfbench/engine/lean.py``), not from the root of the disk."""
    parts = filename.replace("\\", "/").split("/")
    if "perfbench" in parts[:-1]:
        return "/".join(parts[len(parts) - 1 - parts[::-1].index("perfbench"):])
    return filename


def _main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        print("perfbench: error: name a command (see perfbench --help)", file=sys.stderr)
        return 2
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)  # the engine sets its own while a load runs
        if sys.unraisablehook is sys.__unraisablehook__:
            sys.unraisablehook = _quiet_dropped_stop
    try:
        return args.func(args)
    except SLOBreached as exc:
        print(f"perfbench: SLO broken: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except PerfbenchError as exc:
        if args.debug or stops.pending():
            raise
        print(f"perfbench: error: {one_line(redact_url(str(exc)))}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        hint = missing_extra(exc)
        if hint is None or args.debug or stops.pending():
            raise
        print(f"perfbench: error: {hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"perfbench: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130
