"""perfbench: a Jupyter-centred workbench for performance testing of web APIs.

The public API, for scripts and notebooks::

    import perfbench
    from perfbench import Request, Scenario, shapes
    result = perfbench.run_load("http://127.0.0.1:8080", shapes.constant(rate=200, duration=20),
                                Scenario([Request("list", "GET", "/api/posts")]))
    perfbench.Run.load(result.path).endpoint_table()

Names are imported on first use, so ``import perfbench`` (and ``import perfbench.agent`` inside a
service) loads nothing heavy. ``__all__`` is the whole public API; everything else is reachable by
its module path but may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

# public name -> the module that defines it (a module itself when the name is the module's own)
_EXPORTS: dict[str, str] = {
    # load: plans, scenarios, the engine
    "shapes": ".shapes",
    "run_load": ".load",
    "RunResult": ".load",
    "Scenario": ".scenario",
    "Request": ".scenario",
    "Login": ".scenario",
    "IntRange": ".scenario",
    "Choice": ".scenario",
    "UUID4": ".scenario",
    "JsonField": ".scenario",
    "BodyContains": ".scenario",
    "Predicate": ".scenario",
    "NoGraphQLErrors": ".scenario",
    "graphql": ".scenario",
    "load_scenario": ".scenarios",
    "from_paths": ".scenario",
    # results and verdicts
    "Run": ".analysis.results",
    "compare": ".compare",
    # experiments
    "stress": ".experiments.stress",
    "StressResult": ".experiments.stress",
    "cold_warm": ".experiments.coldwarm",
    "run_experiment": ".experiments.runner",
    "list_experiments": ".experiments.runner",
    # the service side
    "Agent": ".agent",
    "cache_hit": ".agent",
    "cache_miss": ".agent",
    "capture": ".agent",
    # errors
    "PerfbenchError": ".errors",
    "ConfigError": ".errors",
    "UnsafeTargetError": ".errors",
    "RunDirError": ".errors",
    "TargetError": ".errors",
    "ExperimentError": ".errors",
    "SLOBreached": ".errors",
    "RegressionFound": ".errors",
}
_MODULES = frozenset({"shapes", "compare"})

__all__ = [  # the whole public API; tests/test_public_api.py keeps it equal to _EXPORTS
    "__version__",
    "shapes", "run_load", "RunResult", "Scenario", "Request", "Login", "IntRange", "Choice", "UUID4",
    "JsonField", "BodyContains", "Predicate", "NoGraphQLErrors", "graphql", "load_scenario", "from_paths",
    "Run", "compare", "stress", "StressResult", "cold_warm", "run_experiment", "list_experiments", "Agent",
    "cache_hit", "cache_miss", "capture", "PerfbenchError", "ConfigError", "UnsafeTargetError", "RunDirError",
    "TargetError", "ExperimentError", "SLOBreached", "RegressionFound",
]


def __getattr__(name: str) -> Any:
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'perfbench' has no attribute {name!r}")
    module = importlib.import_module(where, __name__)
    value = module if name in _MODULES else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from . import compare, shapes
    from .agent import Agent, cache_hit, cache_miss, capture
    from .analysis.results import Run
    from .errors import (
        ConfigError,
        ExperimentError,
        PerfbenchError,
        RegressionFound,
        RunDirError,
        SLOBreached,
        TargetError,
        UnsafeTargetError,
    )
    from .experiments.coldwarm import cold_warm
    from .experiments.runner import list_experiments, run_experiment
    from .experiments.stress import StressResult, stress
    from .load import RunResult, run_load
    from .scenario import (
        UUID4,
        BodyContains,
        Choice,
        IntRange,
        JsonField,
        Login,
        NoGraphQLErrors,
        Predicate,
        Request,
        Scenario,
        from_paths,
        graphql,
    )
    from .scenarios import load_scenario
