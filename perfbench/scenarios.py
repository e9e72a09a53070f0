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
from .scenario import Scenario, from_paths, single
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
    # callbacks the file defines beside its scenario (see perfbench.scenario.Hooks)
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
