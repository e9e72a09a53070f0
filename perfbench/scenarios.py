"""Scenarios by name: what ``--scenario`` on the command line or a notebook's ``scenario`` parameter means.

``load_scenario(spec, paths)`` resolves a bundled name (``NAMED``: ``"demo"``, the demo target's
mix), a ``.toml`` scenario, a ``.py`` file that defines ``scenario``, or request specs. It lives
apart from :mod:`perfbench.scenario` so that the dependency runs one way: the scenario model
knows no target, the demo builds its mix with the model, and this layer, used by the commands,
experiments and notebooks, knows both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import ConfigError
from .scenario import Scenario, from_paths, single
from .scenario_toml import load_toml


def _demo() -> Scenario:
    from .demo.scenario import demo_scenario  # the demo package: only when its mix is asked for

    return demo_scenario()


NAMED: dict[str, Callable[[], Scenario]] = {"demo": _demo}


def load_scenario(spec: str | None = None, paths: Sequence[str] = ()) -> Scenario:
    """The scenario named by the CLI and notebook parameters.

    ``spec``: a name in ``NAMED`` (``"demo"``: the bundled demo target's mix), a ``.toml`` scenario,
    a ``.py`` file that defines ``scenario``, or empty; ``paths``: request specs for
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
    import runpy

    found = runpy.run_path(str(path)).get("scenario")
    if not isinstance(found, Scenario):
        raise ConfigError(f"scenario {spec!r}: the file must define `scenario = Scenario([...])` "
                          f"(perfbench.scenario.Scenario); found {type(found).__name__}")
    return found
