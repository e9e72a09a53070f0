"""Scenarios by name: what ``--scenario`` on the command line or a notebook's ``scenario`` parameter means.

``load_scenario(spec, paths)`` resolves a bundled name (``NAMED``: ``"demo"``, the demo target's
mix), a ``.toml`` scenario, a ``.py`` file that defines ``scenario``, or request specs. It lives
apart from :mod:`perfbench.scenario` so that the dependency runs one way: the scenario model
knows no target, the demo builds its mix with the model, and this layer, used by the commands,
experiments and notebooks, knows both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .fields import reason
from .scenario import Request, Scenario, from_paths, single
from .scenario_hooks import Hooks
from .scenario_toml import load_toml


def _demo() -> Scenario:
    from .demo.scenario import demo_scenario  # the demo package: only when its mix is asked for

    return demo_scenario()


NAMED: dict[str, Callable[[], Scenario]] = {"demo": _demo}


def load_scenario(spec: str | None = None, paths: Sequence[str] = ()) -> Scenario:
    """The scenario named by the CLI and notebook parameters.

    ``spec``: a name in ``NAMED`` (``"demo"``: the bundled demo target's mix), a ``.toml`` scenario,
    a ``.py`` file that defines ``scenario`` (and, if it likes, ``on_request(row)`` and
    ``on_stop(summary)``: the scenario's :class:`~perfbench.scenario.Hooks`), or empty; ``paths``: request specs for
    :func:`~perfbench.scenario.from_paths`. Neither: ``GET /``.
    """
    if spec and paths:
        raise ConfigError("give either a scenario or request paths, not both")
    if paths:
        return from_paths(list(paths))
    if not spec:
        return single("/")
    if spec in NAMED:
        return NAMED[spec]()

    path = Path(spec)
    if path.suffix not in (".py", ".toml"):
        raise ConfigError(f"scenario {spec!r}: expected 'demo', a .toml scenario or a .py file that defines "
                          f"`scenario`")
    if not path.is_file():
        raise ConfigError(f"scenario {spec!r}: no such file")
    if path.suffix == ".toml":
        return load_toml(path)
    namespace = _run_python(path)
    found = namespace.get("scenario")
    if not isinstance(found, Scenario):
        raise ConfigError(f"scenario {spec!r}: the file must define `scenario = Scenario([...])` "
                          f"(perfbench.scenario.Scenario); found {type(found).__name__}")
    return _with_hooks(found, namespace, spec)


def load_calls(spec: str) -> tuple[Any, Scenario | None]:
    """A callable target from a Python file: ``(calls, scenario)``.

    The file defines ``calls``: an async function, or a table of names to async functions (what
    ``run_load(target=...)`` takes), and, if it likes, ``scenario`` (weights of the calls:
    ``Request("fetch_user", "CALL", "/fetch_user", weight=3)``) and the hooks ``on_request(row)`` and
    ``on_stop(summary)``. The functions are checked by ``run_load``.
    """
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"target {spec!r}: no such file (a callable target is a .py file that defines `calls`)")
    namespace = _run_python(path)
    if "calls" not in namespace:
        raise ConfigError(f"target {spec!r}: the file must define `calls = my_async_function` or "
                          "`calls = {\"name\": my_async_function, ...}` (the async functions to load)")
    if not (callable(namespace["calls"]) or isinstance(namespace["calls"], dict)):
        raise ConfigError(f"target {spec!r}: `calls` must be an async function or a table of names to async "
                          f"functions, got {type(namespace['calls']).__name__}")
    found = namespace.get("scenario")
    if found is not None and not isinstance(found, Scenario):
        raise ConfigError(f"target {spec!r}: `scenario` must be a perfbench.scenario.Scenario; found "
                          f"{type(found).__name__}")
    hooked = _with_hooks(found or Scenario([Request(n, "CALL", "/" + n) for n in _names(namespace["calls"])],
                                           name="calls", cookies=False), namespace, spec)
    return namespace["calls"], hooked if found is not None or hooked.hooks is not None else None


def _names(calls: Any) -> list[str]:
    if isinstance(calls, dict):
        return [str(k) for k in calls]
    return [getattr(calls, "__name__", "call")]


def _with_hooks(found: Scenario, namespace: dict[str, Any], spec: str) -> Scenario:
    """``found`` with the callbacks the file defines beside it (see perfbench.scenario.Hooks)."""
    on_request, on_stop = namespace.get("on_request"), namespace.get("on_stop")
    if found.hooks is None and (on_request is not None or on_stop is not None):
        for name, fn in (("on_request", on_request), ("on_stop", on_stop)):
            if fn is not None and not callable(fn):
                raise ConfigError(f"scenario {spec!r}: {name} must be a function, got {type(fn).__name__}")
        found = dataclasses.replace(found, hooks=Hooks(on_request=on_request, on_stop=on_stop))
    return found


def _run_python(path: Path) -> dict[str, Any]:
    """Run a scenario file; whatever it raises (a syntax error, an exception, ``sys.exit``) is a ConfigError
    naming the file and line."""
    import runpy

    try:
        return runpy.run_path(str(path))
    except SyntaxError as exc:
        raise ConfigError(f"scenario {exc.filename or str(path)}:{exc.lineno}: syntax error: {exc.msg}") from None
    except SystemExit as exc:
        raise ConfigError(f"scenario {_where(path, exc)}: called sys.exit({exc.code!r}); a scenario file defines "
                          f"`scenario`, it does not exit") from None
    except ConfigError as exc:  # an invalid Scenario([...]): its problems, in full
        raise ConfigError(f"scenario {_where(path, exc)}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the user's code: any failure is a bad scenario, with its place
        raise ConfigError(f"scenario {_where(path, exc)}: {reason(exc)}") from None


def _where(path: Path, exc: BaseException) -> str:
    """``file:line`` of the innermost frame of the scenario file in ``exc``'s traceback (else the file)."""
    import traceback

    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return f"{path}:{lines[-1]}" if lines else str(path)
