"""The ``perfbench`` command line. Thin: each subcommand parses, calls the package, prints.

Subcommands live in ``perfbench/commands/``, one module each, found automatically.
Exit codes (a contract for CI): 0 ok; 1 perfbench failed; 2 bad input; 3 bad run directory;
4 target unreachable or not startable; 5 an experiment notebook failed; 10 an SLO was broken;
130 interrupted (Ctrl-C) and 143 terminated (SIGTERM): the run directory holds what was measured.
"""

from __future__ import annotations

import argparse
import sys

from .errors import PerfbenchError, SLOBreached
from .version import __version__

EPILOG = """exit codes: 0 ok, 1 perfbench failed, 2 bad input, 3 bad run directory, 4 target unreachable,
5 experiment notebook failed, 10 SLO broken, 130/143 interrupted/terminated (what was measured is kept).
Add --debug for a traceback."""


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)  # the engine sets its own while a load runs
    try:
        return args.func(args)
    except SLOBreached as exc:
        print(f"perfbench: SLO broken: {exc}", file=sys.stderr)
        return exc.exit_code
    except PerfbenchError as exc:
        if args.debug:
            raise
        print(f"perfbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        hint = missing_extra(exc)
        if hint is None or args.debug:
            raise
        print(f"perfbench: error: {hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"perfbench: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130
